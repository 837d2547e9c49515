//! Turns API objects into the index's compact records the moment they arrive, so the DNS
//! keeps no whole Service, EndpointSlice or Namespace (CoreDNS's object.ToService /
//! EndpointSliceToEndpoints). Pure functions.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::index::{EndpointRecord, PortRecord, ServiceKind, ServiceRecord, SliceRecord};

/// The label naming an EndpointSlice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The compact record of a Service; `None` without namespace or name.
pub fn service_record(svc: &Service) -> Option<ServiceRecord> {
    let namespace = svc.metadata.namespace.clone()?;
    let name = svc.metadata.name.clone()?;
    let spec = svc.spec.as_ref();
    let kind = match spec {
        Some(s) if s.type_.as_deref() == Some("ExternalName") => {
            ServiceKind::ExternalName(s.external_name.clone().unwrap_or_default())
        }
        Some(s) => {
            let ips: Vec<&str> = match s.cluster_ips.as_deref() {
                Some(ips) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
                _ => s.cluster_ip.as_deref().into_iter().collect(),
            };
            if ips.first() == Some(&"None") {
                ServiceKind::Headless
            } else {
                ServiceKind::ClusterIp(ips.iter().filter_map(|ip| ip.parse().ok()).collect())
            }
        }
        None => ServiceKind::ClusterIp(Vec::new()),
    };
    let ports = spec
        .and_then(|s| s.ports.as_ref())
        .map(|ports| {
            ports
                .iter()
                .map(|p| PortRecord {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                    port: u16::try_from(p.port).ok(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ServiceRecord {
        namespace,
        name,
        kind,
        ports,
    })
}

/// The compact record of an EndpointSlice, keeping ready endpoints (`conditions.ready`
/// true or unset) with IP addresses; `None` without namespace, name or service label.
pub fn slice_record(slice: &EndpointSlice) -> Option<SliceRecord> {
    let namespace = slice.metadata.namespace.clone()?;
    let name = slice.metadata.name.clone()?;
    let service = slice
        .metadata
        .labels
        .as_ref()?
        .get(SERVICE_NAME_LABEL)?
        .clone();
    let ports = slice
        .ports
        .as_ref()
        .map(|ports| {
            ports
                .iter()
                .map(|p| PortRecord {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                    port: p.port.and_then(|n| u16::try_from(n).ok()),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut endpoints = Vec::new();
    for ep in &slice.endpoints {
        let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        if !ready {
            continue;
        }
        for addr in &ep.addresses {
            if let Ok(ip) = addr.parse::<IpAddr>() {
                endpoints.push(EndpointRecord {
                    ip,
                    hostname: ep.hostname.clone(),
                });
            }
        }
    }
    Some(SliceRecord {
        namespace,
        name,
        service,
        ports,
        endpoints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn endpoint_slice(v: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn cluster_ip_service() {
        let rec = service_record(&service(json!({
            "metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20", "fd00::20"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 81}]}
        })))
        .unwrap();
        assert_eq!(
            rec.kind,
            ServiceKind::ClusterIp(vec![
                "10.43.0.20".parse().unwrap(),
                "fd00::20".parse().unwrap()
            ])
        );
        assert_eq!(rec.ports.len(), 2);
        assert_eq!(rec.ports[1].protocol, "TCP");
        assert_eq!(rec.ports[1].name, "");
    }

    #[test]
    fn headless_and_external_name() {
        let rec = service_record(&service(json!({
            "metadata": {"namespace": "default", "name": "db"},
            "spec": {"clusterIP": "None"}
        })))
        .unwrap();
        assert_eq!(rec.kind, ServiceKind::Headless);
        let rec = service_record(&service(json!({
            "metadata": {"namespace": "default", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}
        })))
        .unwrap();
        assert_eq!(rec.kind, ServiceKind::ExternalName("example.com".into()));
        assert!(service_record(&service(json!({"metadata": {"name": "x"}}))).is_none());
    }

    #[test]
    fn slice_keeps_ready_endpoints() {
        let rec = slice_record(&endpoint_slice(json!({
            "metadata": {"namespace": "default", "name": "db-abc",
                         "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432}],
            "endpoints": [
                {"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.6"]},
                {"addresses": ["10.42.0.7"], "conditions": {"ready": false}},
                {"addresses": ["10.42.0.8"], "conditions": {}}
            ]
        })))
        .unwrap();
        assert_eq!(rec.service, "db");
        let ips: Vec<String> = rec.endpoints.iter().map(|e| e.ip.to_string()).collect();
        assert_eq!(ips, vec!["10.42.0.5", "10.42.0.6", "10.42.0.8"]);
        assert_eq!(rec.endpoints[0].hostname.as_deref(), Some("db-0"));
        assert_eq!(rec.ports[0].port, Some(5432));
        assert_eq!(rec.ports[0].protocol, "TCP");
    }

    #[test]
    fn slice_without_service_label_is_skipped() {
        assert!(slice_record(&endpoint_slice(json!({
            "metadata": {"namespace": "default", "name": "x"},
            "addressType": "IPv4", "endpoints": []
        })))
        .is_none());
    }
}
