//! Stale conntrack entries of UDP and SCTP services, as upstream's conntrack cleanup: when a
//! sync removed an endpoint of a service port, flows to that port's frontends (cluster IP,
//! external IPs, load-balancer IPs, node port) that were DNATed to the endpoint would keep
//! going to it, so they are deleted; when a service port that had no endpoints gets some,
//! flows to its frontends are deleted (they were not DNATed and would stay broken).
//! [`stale_flows`] computes that from the old and new [`ServicePort`] (pure); [`Conntrack`]
//! runs `conntrack -D` for each through the [`Exec`] seam. A failed delete is logged, never
//! fatal. TCP needs nothing: its flows are reset by the rules.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::model::{Endpoint, Protocol, ServicePort};
use crate::netfilter::{Command, Exec};

/// One `conntrack -D` filter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flush {
    /// Every flow to `ip:port` (a frontend whose port just got endpoints).
    Frontend {
        protocol: Protocol,
        ip: Ipv4Addr,
        port: u16,
    },
    /// Every flow to node port `port` on any address (a node port that just got endpoints).
    NodePort { protocol: Protocol, port: u16 },
    /// Flows to `ip:port` DNATed to `endpoint` (an endpoint that went away).
    FrontendToEndpoint {
        protocol: Protocol,
        ip: Ipv4Addr,
        port: u16,
        endpoint: Ipv4Addr,
    },
    /// Flows to node port `port` DNATed to `endpoint`.
    NodePortToEndpoint {
        protocol: Protocol,
        port: u16,
        endpoint: Ipv4Addr,
    },
}

impl Flush {
    /// The `conntrack` arguments deleting these flows.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec!["-D".into(), "-p".into()];
        match self {
            Flush::Frontend { protocol, ip, port } => {
                a.push(protocol.as_str().into());
                a.extend(["--orig-dst".into(), ip.to_string()]);
                a.extend(["--orig-port-dst".into(), port.to_string()]);
            }
            Flush::NodePort { protocol, port } => {
                a.push(protocol.as_str().into());
                a.extend(["--orig-port-dst".into(), port.to_string()]);
            }
            Flush::FrontendToEndpoint {
                protocol,
                ip,
                port,
                endpoint,
            } => {
                a.push(protocol.as_str().into());
                a.extend(["--orig-dst".into(), ip.to_string()]);
                a.extend(["--orig-port-dst".into(), port.to_string()]);
                a.extend(["--dst-nat".into(), endpoint.to_string()]);
            }
            Flush::NodePortToEndpoint {
                protocol,
                port,
                endpoint,
            } => {
                a.push(protocol.as_str().into());
                a.extend(["--orig-port-dst".into(), port.to_string()]);
                a.extend(["--dst-nat".into(), endpoint.to_string()]);
            }
        }
        a
    }
}

/// Whether flows of this protocol outlive their rules (upstream: UDP and SCTP).
pub fn needs_cleanup(protocol: Protocol) -> bool {
    matches!(protocol, Protocol::Udp | Protocol::Sctp)
}

/// Adds the flows made stale by the change of one service port from `old` to `new` (`None` =
/// absent) to `out`. An endpoint is stale when it was serving and no longer is (or is gone);
/// all old serving endpoints are stale when the port itself went away or its frontends moved.
pub fn stale_flows(
    old: Option<&ServicePort>,
    new: Option<&ServicePort>,
    out: &mut BTreeSet<Flush>,
) {
    let Some(protocol) = old.or(new).map(|p| p.name.protocol) else {
        return;
    };
    if !needs_cleanup(protocol) {
        return;
    }
    if let Some(o) = old {
        let serving = o.endpoints.iter().filter(|e| e.serving);
        let same_frontends = new.is_some_and(|n| {
            n.cluster_ip == o.cluster_ip
                && n.port == o.port
                && n.node_port == o.node_port
                && n.external_ips == o.external_ips
                && n.load_balancer_ips == o.load_balancer_ips
        });
        let gone: Vec<&Endpoint> = match new {
            Some(n) if same_frontends => serving
                .filter(|e| {
                    !n.endpoints
                        .iter()
                        .any(|f| f.ip == e.ip && f.port == e.port && f.serving)
                })
                .collect(),
            _ => serving.collect(),
        };
        for ep in gone {
            for ip in frontend_ips(o) {
                out.insert(Flush::FrontendToEndpoint {
                    protocol,
                    ip,
                    port: o.port,
                    endpoint: ep.ip,
                });
            }
            if let Some(port) = o.node_port {
                out.insert(Flush::NodePortToEndpoint {
                    protocol,
                    port,
                    endpoint: ep.ip,
                });
            }
        }
    }
    if let Some(n) = new {
        let had_none = old.is_none_or(ServicePort::has_no_endpoints);
        if had_none && !n.has_no_endpoints() {
            for ip in frontend_ips(n) {
                out.insert(Flush::Frontend {
                    protocol,
                    ip,
                    port: n.port,
                });
            }
            if let Some(port) = n.node_port {
                out.insert(Flush::NodePort { protocol, port });
            }
        }
    }
}

fn frontend_ips(p: &ServicePort) -> impl Iterator<Item = Ipv4Addr> + '_ {
    std::iter::once(p.cluster_ip)
        .chain(p.external_ips.iter().copied())
        .chain(p.load_balancer_ips.iter().copied())
}

/// Runs `conntrack -D` for stale flows.
pub struct Conntrack {
    exec: Box<dyn Exec>,
    binary: String,
}

impl Conntrack {
    pub fn new(exec: Box<dyn Exec>, binary: impl Into<String>) -> Self {
        Conntrack {
            exec,
            binary: binary.into(),
        }
    }

    /// Deletes each set of flows; returns how many deletes failed (each is logged). "0 flow
    /// entries have been deleted" (status 1) is success.
    pub fn flush<'a>(&mut self, flows: impl IntoIterator<Item = &'a Flush>) -> usize {
        let mut failed = 0;
        for flow in flows {
            let cmd = Command::new(&self.binary, flow.args());
            match self.exec.run(&cmd) {
                Ok(out) if out.success() => {
                    tracing::debug!(command = %cmd.line(), "deleted stale conntrack entries");
                }
                Ok(out) if out.stderr.contains("0 flow entries") => {}
                Ok(out) => {
                    failed += 1;
                    tracing::warn!(
                        command = %cmd.line(),
                        status = out.status,
                        stderr = %out.stderr.trim(),
                        "conntrack delete failed"
                    );
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(command = %cmd.line(), error = %e, "conntrack delete failed");
                }
            }
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServicePortName;
    use crate::netfilter::{FakeExec, Output};

    fn ep(last: u8, serving: bool) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::new(10, 42, 0, last),
            port: 5353,
            ready: serving,
            serving,
            terminating: false,
            node_name: None,
        }
    }

    fn port(protocol: Protocol, node_port: Option<u16>, endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort {
            name: ServicePortName {
                namespace: "kube-system".into(),
                name: "dns".into(),
                port: "dns".into(),
                protocol,
            },
            cluster_ip: Ipv4Addr::new(10, 43, 0, 10),
            port: 53,
            node_port,
            external_ips: vec![],
            load_balancer_ips: vec![],
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            endpoints,
        }
    }

    fn flows(old: Option<&ServicePort>, new: Option<&ServicePort>) -> Vec<String> {
        let mut out = BTreeSet::new();
        stale_flows(old, new, &mut out);
        out.iter().map(|f| f.args().join(" ")).collect()
    }

    #[test]
    fn removed_udp_endpoints_only() {
        let old = port(
            Protocol::Udp,
            Some(30053),
            vec![ep(1, true), ep(2, true), ep(3, false)],
        );
        let new = port(Protocol::Udp, Some(30053), vec![ep(1, true)]);
        assert_eq!(
            flows(Some(&old), Some(&new)),
            vec![
                "-D -p udp --orig-dst 10.43.0.10 --orig-port-dst 53 --dst-nat 10.42.0.2",
                "-D -p udp --orig-port-dst 30053 --dst-nat 10.42.0.2",
            ]
        );
        // the same change on TCP needs nothing
        let old_tcp = port(Protocol::Tcp, None, old.endpoints.clone());
        let new_tcp = port(Protocol::Tcp, None, new.endpoints.clone());
        assert!(flows(Some(&old_tcp), Some(&new_tcp)).is_empty());
        // an endpoint that stops serving is stale too; one only added is not
        let stopped = port(
            Protocol::Udp,
            Some(30053),
            vec![ep(1, false), ep(2, true), ep(4, true)],
        );
        let new2 = port(Protocol::Udp, Some(30053), vec![ep(1, true), ep(2, true)]);
        assert_eq!(
            flows(Some(&new2), Some(&stopped)),
            vec![
                "-D -p udp --orig-dst 10.43.0.10 --orig-port-dst 53 --dst-nat 10.42.0.1",
                "-D -p udp --orig-port-dst 30053 --dst-nat 10.42.0.1",
            ]
        );
    }

    #[test]
    fn sctp_and_all_frontends() {
        let mut old = port(Protocol::Sctp, None, vec![ep(1, true)]);
        old.external_ips = vec![Ipv4Addr::new(192, 0, 2, 1)];
        old.load_balancer_ips = vec![Ipv4Addr::new(198, 51, 100, 1)];
        let mut new = old.clone();
        new.endpoints.clear();
        assert_eq!(
            flows(Some(&old), Some(&new)),
            vec![
                "-D -p sctp --orig-dst 10.43.0.10 --orig-port-dst 53 --dst-nat 10.42.0.1",
                "-D -p sctp --orig-dst 192.0.2.1 --orig-port-dst 53 --dst-nat 10.42.0.1",
                "-D -p sctp --orig-dst 198.51.100.1 --orig-port-dst 53 --dst-nat 10.42.0.1",
            ]
        );
    }

    #[test]
    fn newly_active_and_deleted_ports() {
        let empty = port(Protocol::Udp, Some(30053), vec![]);
        let active = port(Protocol::Udp, Some(30053), vec![ep(1, true)]);
        assert_eq!(
            flows(Some(&empty), Some(&active)),
            vec![
                "-D -p udp --orig-dst 10.43.0.10 --orig-port-dst 53",
                "-D -p udp --orig-port-dst 30053",
            ]
        );
        // a new port with endpoints counts as newly active
        assert_eq!(flows(None, Some(&active)).len(), 2);
        // a new port without endpoints needs nothing
        assert!(flows(None, Some(&empty)).is_empty());
        // a deleted port: flows to each of its serving endpoints
        assert_eq!(
            flows(Some(&active), None),
            vec![
                "-D -p udp --orig-dst 10.43.0.10 --orig-port-dst 53 --dst-nat 10.42.0.1",
                "-D -p udp --orig-port-dst 30053 --dst-nat 10.42.0.1",
            ]
        );
        // a moved port: the old frontend's flows go, even to endpoints that stay
        let mut moved = active.clone();
        moved.port = 54;
        assert_eq!(
            flows(Some(&active), Some(&moved)),
            vec![
                "-D -p udp --orig-dst 10.43.0.10 --orig-port-dst 53 --dst-nat 10.42.0.1",
                "-D -p udp --orig-port-dst 30053 --dst-nat 10.42.0.1",
            ]
        );
    }

    #[test]
    fn flush_runs_conntrack_and_tolerates_failures() {
        let mut fake = FakeExec::new();
        fake.push(Ok(Output::status(
            1,
            "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n",
        )));
        fake.push(Ok(Output::status(1, "conntrack: operation failed")));
        fake.push(Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "missing",
        )));
        let calls = fake.calls();
        let mut ct = Conntrack::new(Box::new(fake), "/usr/sbin/conntrack");
        let set: BTreeSet<Flush> = [
            Flush::NodePort {
                protocol: Protocol::Udp,
                port: 30053,
            },
            Flush::NodePort {
                protocol: Protocol::Udp,
                port: 30054,
            },
            Flush::NodePort {
                protocol: Protocol::Udp,
                port: 30055,
            },
            Flush::NodePort {
                protocol: Protocol::Udp,
                port: 30056,
            },
        ]
        .into();
        assert_eq!(ct.flush(&set), 2);
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 4);
        assert_eq!(
            calls[0].line(),
            "/usr/sbin/conntrack -D -p udp --orig-port-dst 30053"
        );
    }
}
