//! Change tracking for the service proxy, as upstream's ServiceChangeTracker,
//! EndpointsChangeTracker and EndpointSliceCache: every watched Service and EndpointSlice is
//! converted at once into a small struct ([`ServiceInfo`], [`SliceInfo`]; the full Kubernetes
//! objects are never kept), the [`ChangeTracker`] keeps those per object and remembers which
//! Services changed, and [`ChangeTracker::update`] rebuilds only those Services' entries of the
//! sorted `ProxyState.services` list, reporting every changed [`ServicePort`] (old and new) so the
//! caller can clean up conntrack. Pure: no IO.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::model::{Endpoint, Protocol, ServicePort, ServicePortName};

/// Services (and their slices) with this label belong to another proxy.
pub const LABEL_SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Set by the EndpointSlice controller on the slices of headless Services.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Names the Service an EndpointSlice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// `sessionAffinityConfig.clientIP.timeoutSeconds` when unset (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;
/// The label selector upstream kube-proxy lists and watches both kinds with.
pub const WATCH_LABEL_SELECTOR: &str =
    "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";

/// `namespace/name` of a watched object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn of(meta: &ObjectMeta) -> Self {
        ObjectKey::new(
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    }

    fn owns(&self, port: &ServicePortName) -> bool {
        port.namespace == self.namespace && port.name == self.name
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What the proxy keeps of one Service (see [`ServiceInfo::from_service`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub cluster_ip: Ipv4Addr,
    pub ports: Vec<ServicePortInfo>,
    pub external_ips: Vec<Ipv4Addr>,
    pub load_balancer_ips: Vec<Ipv4Addr>,
    pub affinity_timeout: Option<u32>,
    pub external_local: bool,
    pub internal_local: bool,
}

/// One `spec.ports` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortInfo {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub node_port: Option<u16>,
}

/// What the proxy keeps of one EndpointSlice (see [`SliceInfo::from_slice`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceInfo {
    /// The `kubernetes.io/service-name` label.
    pub service: String,
    pub ports: Vec<SlicePort>,
    pub endpoints: Vec<SliceEndpoint>,
}

/// One port of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

/// One endpoint of an EndpointSlice, with its conditions already defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoint {
    pub ip: Ipv4Addr,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node_name: Option<String>,
}

/// A watched object reduced to what the proxy needs. `info` is `None` when the object exists
/// but the proxy ignores it (an ExternalName or headless Service, an IPv6 slice, ...): it is
/// then treated as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<T> {
    pub key: ObjectKey,
    /// `metadata.resourceVersion` as a number (0 when missing or not numeric).
    pub resource_version: u64,
    pub info: Option<T>,
}

/// A watcher event with the object already reduced (mirrors `kube::runtime::watcher::Event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched<T> {
    /// A (re)list starts: the following `InitApply` events replace the whole set at `InitDone`.
    Init,
    InitApply(T),
    InitDone,
    Apply(T),
    Delete(T),
}

/// One event of either watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyEvent {
    Services(Watched<Object<ServiceInfo>>),
    Slices(Watched<Object<SliceInfo>>),
}

impl ProxyEvent {
    /// The resourceVersion of the object carried by the event (0 for Init/InitDone).
    pub fn resource_version(&self) -> u64 {
        fn rv<T>(w: &Watched<Object<T>>) -> u64 {
            match w {
                Watched::InitApply(o) | Watched::Apply(o) | Watched::Delete(o) => {
                    o.resource_version
                }
                Watched::Init | Watched::InitDone => 0,
            }
        }
        match self {
            ProxyEvent::Services(w) => rv(w),
            ProxyEvent::Slices(w) => rv(w),
        }
    }
}

fn resource_version(meta: &ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn has_label(meta: &ObjectMeta, key: &str) -> bool {
    meta.labels.as_ref().is_some_and(|l| l.contains_key(key))
}

fn ipv4(s: &str) -> Option<Ipv4Addr> {
    s.trim().parse().ok()
}

fn protocol(p: Option<&str>) -> Option<Protocol> {
    Protocol::from_k8s(p.unwrap_or("TCP"))
}

impl ServiceInfo {
    /// Reduces a Service, or `None` when the proxy must skip it as upstream does: no spec,
    /// ExternalName, headless or without cluster IP, no IPv4 cluster IP, or labelled
    /// `service.kubernetes.io/service-proxy-name`.
    pub fn from_service(svc: &Service) -> Option<ServiceInfo> {
        if has_label(&svc.metadata, LABEL_SERVICE_PROXY_NAME) {
            return None;
        }
        let spec = svc.spec.as_ref()?;
        let svc_type = spec.type_.as_deref().unwrap_or("ClusterIP");
        if svc_type == "ExternalName" {
            return None;
        }
        let primary = spec.cluster_ip.as_deref().unwrap_or("");
        if primary.is_empty() || primary == "None" {
            return None;
        }
        let cluster_ip = spec
            .cluster_ips
            .iter()
            .flatten()
            .map(String::as_str)
            .chain(std::iter::once(primary))
            .find_map(ipv4)?;
        let with_node_ports = matches!(svc_type, "NodePort" | "LoadBalancer");
        let mut ports: Vec<ServicePortInfo> = Vec::new();
        for p in spec.ports.iter().flatten() {
            let (Some(protocol), Ok(port)) =
                (protocol(p.protocol.as_deref()), u16::try_from(p.port))
            else {
                continue;
            };
            let name = p.name.clone().unwrap_or_default();
            if port == 0
                || ports
                    .iter()
                    .any(|q| q.name == name && q.protocol == protocol)
            {
                continue;
            }
            let node_port = p
                .node_port
                .filter(|_| with_node_ports)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0);
            ports.push(ServicePortInfo {
                name,
                protocol,
                port,
                node_port,
            });
        }
        let external_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|s| ipv4(s))
            .collect();
        let load_balancer_ips = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter(|ing| ing.ip_mode.as_deref().is_none_or(|m| m == "VIP"))
            .filter_map(|ing| ing.ip.as_deref().and_then(ipv4))
            .collect();
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
        });
        // upstream's ExternallyAccessible: only then does externalTrafficPolicy matter.
        let externally_accessible =
            with_node_ports || (svc_type == "ClusterIP" && !external_ips.is_empty());
        let external_local =
            externally_accessible && spec.external_traffic_policy.as_deref() == Some("Local");
        let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
        Some(ServiceInfo {
            cluster_ip,
            ports,
            external_ips,
            load_balancer_ips,
            affinity_timeout,
            external_local,
            internal_local,
        })
    }
}

impl SliceInfo {
    /// Reduces an EndpointSlice, or `None` when the proxy ignores it: no
    /// `kubernetes.io/service-name` label, labelled with another proxy's name, or not IPv4.
    /// Ports without a number are dropped (a port without a name counts as the unnamed port);
    /// each endpoint uses its first address; conditions: ready nil = true, serving nil =
    /// ready, terminating nil = false.
    pub fn from_slice(slice: &EndpointSlice) -> Option<SliceInfo> {
        let service = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_SERVICE_NAME))
            .filter(|s| !s.is_empty())?
            .clone();
        if has_label(&slice.metadata, LABEL_SERVICE_PROXY_NAME) || slice.address_type != "IPv4" {
            return None;
        }
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(SlicePort {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: protocol(p.protocol.as_deref())?,
                    port: p
                        .port
                        .and_then(|n| u16::try_from(n).ok())
                        .filter(|n| *n != 0)?,
                })
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .filter_map(|e| {
                let ip = ipv4(e.addresses.first()?)?;
                let c = e.conditions.as_ref();
                let ready = c.and_then(|c| c.ready).unwrap_or(true);
                let serving = c.and_then(|c| c.serving).unwrap_or(ready);
                let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
                Some(SliceEndpoint {
                    ip,
                    ready,
                    serving,
                    terminating,
                    node_name: e.node_name.clone(),
                })
            })
            .collect();
        Some(SliceInfo {
            service,
            ports,
            endpoints,
        })
    }
}

/// Reduces a Service for the tracker.
pub fn service_object(svc: &Service) -> Object<ServiceInfo> {
    Object {
        key: ObjectKey::of(&svc.metadata),
        resource_version: resource_version(&svc.metadata),
        info: ServiceInfo::from_service(svc),
    }
}

/// Reduces an EndpointSlice for the tracker (the key is the slice's own name).
pub fn slice_object(slice: &EndpointSlice) -> Object<SliceInfo> {
    Object {
        key: ObjectKey::of(&slice.metadata),
        resource_version: resource_version(&slice.metadata),
        info: SliceInfo::from_slice(slice),
    }
}

/// The proxy's cache of every Service and EndpointSlice of the cluster, reduced, plus the set
/// of Services whose ports must be rebuilt at the next [`update`](ChangeTracker::update).
#[derive(Debug, Default)]
pub struct ChangeTracker {
    node_name: String,
    services: HashMap<ObjectKey, ServiceInfo>,
    /// Keyed by the slice's own `namespace/name`.
    slices: HashMap<ObjectKey, SliceInfo>,
    /// Service `namespace/name` to the names of its slices (sorted: a stable merge order).
    slices_by_service: HashMap<ObjectKey, BTreeSet<String>>,
    /// Objects of a (re)list in progress (between Init and InitDone).
    relist_services: Option<HashMap<ObjectKey, ServiceInfo>>,
    relist_slices: Option<HashMap<ObjectKey, SliceInfo>>,
    services_listed: bool,
    slices_listed: bool,
    dirty: BTreeSet<ObjectKey>,
}

impl ChangeTracker {
    /// `node_name` decides which of two duplicate endpoints wins (the local one, as upstream).
    pub fn new(node_name: impl Into<String>) -> Self {
        ChangeTracker {
            node_name: node_name.into(),
            ..Default::default()
        }
    }

    /// Whether both kinds have been listed completely at least once.
    pub fn synced(&self) -> bool {
        self.services_listed && self.slices_listed
    }

    /// Whether some Service's ports must be rebuilt.
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Number of Services and EndpointSlices kept.
    pub fn object_counts(&self) -> (usize, usize) {
        (self.services.len(), self.slices.len())
    }

    /// Applies one watch event to the cache.
    pub fn apply(&mut self, event: ProxyEvent) {
        match event {
            ProxyEvent::Services(w) => self.apply_service(w),
            ProxyEvent::Slices(w) => self.apply_slice(w),
        }
    }

    fn apply_service(&mut self, w: Watched<Object<ServiceInfo>>) {
        match w {
            Watched::Init => self.relist_services = Some(HashMap::new()),
            Watched::InitApply(o) => match (&mut self.relist_services, o.info) {
                (Some(buf), Some(info)) => {
                    buf.insert(o.key, info);
                }
                (Some(_), None) => {}
                (None, info) => self.set_service(o.key, info),
            },
            Watched::InitDone => {
                self.services_listed = true;
                let Some(new) = self.relist_services.take() else {
                    return;
                };
                let old = std::mem::replace(&mut self.services, new);
                for key in old.keys().chain(self.services.keys()) {
                    if old.get(key) != self.services.get(key) {
                        self.dirty.insert(key.clone());
                    }
                }
            }
            Watched::Apply(o) => self.set_service(o.key, o.info),
            Watched::Delete(o) => self.set_service(o.key, None),
        }
    }

    fn set_service(&mut self, key: ObjectKey, info: Option<ServiceInfo>) {
        let changed = match info {
            Some(info) => self.services.insert(key.clone(), info.clone()) != Some(info),
            None => self.services.remove(&key).is_some(),
        };
        if changed {
            self.dirty.insert(key);
        }
    }

    fn apply_slice(&mut self, w: Watched<Object<SliceInfo>>) {
        match w {
            Watched::Init => self.relist_slices = Some(HashMap::new()),
            Watched::InitApply(o) => match (&mut self.relist_slices, o.info) {
                (Some(buf), Some(info)) => {
                    buf.insert(o.key, info);
                }
                (Some(_), None) => {}
                (None, info) => self.set_slice(o.key, info),
            },
            Watched::InitDone => {
                self.slices_listed = true;
                let Some(new) = self.relist_slices.take() else {
                    return;
                };
                let old = std::mem::take(&mut self.slices);
                for (key, info) in &old {
                    if new.get(key) != Some(info) {
                        self.dirty
                            .insert(ObjectKey::new(&key.namespace, &info.service));
                    }
                }
                for (key, info) in &new {
                    if old.get(key) != Some(info) {
                        self.dirty
                            .insert(ObjectKey::new(&key.namespace, &info.service));
                    }
                }
                self.slices = new;
                self.slices_by_service.clear();
                for (key, info) in &self.slices {
                    self.slices_by_service
                        .entry(ObjectKey::new(&key.namespace, &info.service))
                        .or_default()
                        .insert(key.name.clone());
                }
            }
            Watched::Apply(o) => self.set_slice(o.key, o.info),
            Watched::Delete(o) => self.set_slice(o.key, None),
        }
    }

    fn set_slice(&mut self, key: ObjectKey, info: Option<SliceInfo>) {
        if let Some(old) = self.slices.get(&key) {
            if info.as_ref() == Some(old) {
                return;
            }
        }
        if let Some(old) = self.slices.remove(&key) {
            let svc = ObjectKey::new(&key.namespace, &old.service);
            if let Some(names) = self.slices_by_service.get_mut(&svc) {
                names.remove(&key.name);
                if names.is_empty() {
                    self.slices_by_service.remove(&svc);
                }
            }
            self.dirty.insert(svc);
        }
        if let Some(info) = info {
            let svc = ObjectKey::new(&key.namespace, &info.service);
            self.slices_by_service
                .entry(svc.clone())
                .or_default()
                .insert(key.name.clone());
            self.slices.insert(key, info);
            self.dirty.insert(svc);
        }
    }

    /// The service ports of one Service from its spec and slices, sorted by name.
    fn build(&self, key: &ObjectKey, svc: &ServiceInfo) -> Vec<ServicePort> {
        let slices: Vec<&SliceInfo> = self
            .slices_by_service
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|n| self.slices.get(&ObjectKey::new(&key.namespace, n)))
            .collect();
        let mut out: Vec<ServicePort> = svc
            .ports
            .iter()
            .map(|p| ServicePort {
                name: ServicePortName {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    port: p.name.clone(),
                    protocol: p.protocol,
                },
                cluster_ip: svc.cluster_ip,
                port: p.port,
                node_port: p.node_port,
                external_ips: svc.external_ips.clone(),
                load_balancer_ips: svc.load_balancer_ips.clone(),
                affinity_timeout: svc.affinity_timeout,
                external_local: svc.external_local,
                internal_local: svc.internal_local,
                endpoints: self.endpoints_for(&slices, &p.name, p.protocol),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Endpoints of the slice ports named `name`/`protocol`, deduplicated by `ip:port` (the
    /// first slice in name order wins, unless a later duplicate is on this node), sorted.
    fn endpoints_for(
        &self,
        slices: &[&SliceInfo],
        name: &str,
        protocol: Protocol,
    ) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = Vec::new();
        let mut index: HashMap<(Ipv4Addr, u16), usize> = HashMap::new();
        for slice in slices {
            for port in slice
                .ports
                .iter()
                .filter(|p| p.name == name && p.protocol == protocol)
            {
                for e in &slice.endpoints {
                    let ep = Endpoint {
                        ip: e.ip,
                        port: port.port,
                        ready: e.ready,
                        serving: e.serving,
                        terminating: e.terminating,
                        node_name: e.node_name.clone(),
                    };
                    match index.get(&(e.ip, port.port)) {
                        None => {
                            index.insert((e.ip, port.port), out.len());
                            out.push(ep);
                        }
                        Some(&i) => {
                            if ep.is_local(&self.node_name) {
                                out[i] = ep;
                            }
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// Rebuilds the entries of every changed Service in `ports` (kept sorted by name) and calls
    /// `on_change(old, new)` for each service port that was added (`None`, new), removed (old,
    /// `None`) or changed. Returns how many service ports changed.
    pub fn update(
        &mut self,
        ports: &mut Vec<ServicePort>,
        mut on_change: impl FnMut(Option<&ServicePort>, Option<&ServicePort>),
    ) -> usize {
        let mut changed = 0;
        for key in std::mem::take(&mut self.dirty) {
            let new = match self.services.get(&key) {
                Some(svc) => self.build(&key, svc),
                None => Vec::new(),
            };
            let before = |p: &ServicePort| {
                (p.name.namespace.as_str(), p.name.name.as_str())
                    < (key.namespace.as_str(), key.name.as_str())
            };
            let start = ports.partition_point(before);
            let end = start + ports[start..].partition_point(|p| key.owns(&p.name));
            let old = &ports[start..end];
            if old == new.as_slice() {
                continue;
            }
            let (mut i, mut j) = (0, 0);
            while i < old.len() || j < new.len() {
                match (old.get(i), new.get(j)) {
                    (Some(o), Some(n)) if o.name == n.name => {
                        if o != n {
                            changed += 1;
                            on_change(Some(o), Some(n));
                        }
                        i += 1;
                        j += 1;
                    }
                    (Some(o), Some(n)) if o.name < n.name => {
                        changed += 1;
                        on_change(Some(o), None);
                        i += 1;
                    }
                    (Some(o), None) => {
                        changed += 1;
                        on_change(Some(o), None);
                        i += 1;
                    }
                    (_, Some(n)) => {
                        changed += 1;
                        on_change(None, Some(n));
                        j += 1;
                    }
                    (None, None) => break,
                }
            }
            ports.splice(start..end, new);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ClientIPConfig, LoadBalancerIngress, LoadBalancerStatus, ServicePort as K8sServicePort,
        ServiceSpec, ServiceStatus, SessionAffinityConfig,
    };
    use k8s_openapi::api::discovery::v1::{
        Endpoint as K8sEndpoint, EndpointConditions, EndpointPort,
    };
    use std::collections::BTreeMap;

    fn meta(ns: &str, name: &str, rv: u64, labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            resource_version: Some(rv.to_string()),
            labels: (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()
            }),
            ..Default::default()
        }
    }

    fn svc_port(name: &str, protocol: &str, port: i32, node_port: Option<i32>) -> K8sServicePort {
        K8sServicePort {
            name: (!name.is_empty()).then(|| name.to_string()),
            protocol: Some(protocol.into()),
            port,
            node_port,
            ..Default::default()
        }
    }

    fn service(name: &str, ip: &str, ports: Vec<K8sServicePort>) -> Service {
        Service {
            metadata: meta("default", name, 5, &[]),
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                cluster_ips: Some(vec![ip.into()]),
                ports: Some(ports),
                type_: Some("ClusterIP".into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn ep(
        ip: &str,
        ready: Option<bool>,
        serving: Option<bool>,
        term: Option<bool>,
        node: &str,
    ) -> K8sEndpoint {
        K8sEndpoint {
            addresses: vec![ip.into()],
            conditions: Some(EndpointConditions {
                ready,
                serving,
                terminating: term,
            }),
            node_name: Some(node.into()),
            ..Default::default()
        }
    }

    fn slice(
        name: &str,
        svc: &str,
        ports: &[(&str, &str, i32)],
        eps: Vec<K8sEndpoint>,
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: meta("default", name, 7, &[(LABEL_SERVICE_NAME, svc)]),
            address_type: "IPv4".into(),
            endpoints: eps,
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p, port)| EndpointPort {
                        name: Some(n.to_string()),
                        protocol: Some(p.to_string()),
                        port: Some(*port),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }
    }

    fn tracker_with(
        svcs: &[Service],
        slices: &[EndpointSlice],
    ) -> (ChangeTracker, Vec<ServicePort>) {
        let mut t = ChangeTracker::new("node-a");
        t.apply(ProxyEvent::Services(Watched::Init));
        for s in svcs {
            t.apply(ProxyEvent::Services(Watched::InitApply(service_object(s))));
        }
        t.apply(ProxyEvent::Services(Watched::InitDone));
        t.apply(ProxyEvent::Slices(Watched::Init));
        for s in slices {
            t.apply(ProxyEvent::Slices(Watched::InitApply(slice_object(s))));
        }
        t.apply(ProxyEvent::Slices(Watched::InitDone));
        let mut ports = Vec::new();
        t.update(&mut ports, |_, _| {});
        (t, ports)
    }

    fn ips(p: &ServicePort) -> Vec<String> {
        p.endpoints
            .iter()
            .map(|e| format!("{}:{}", e.ip, e.port))
            .collect()
    }

    #[test]
    fn named_ports_take_endpoints_of_the_same_name_and_protocol() {
        let svc = service(
            "web",
            "10.43.0.20",
            vec![
                svc_port("http", "TCP", 80, None),
                svc_port("dns", "UDP", 53, None),
                svc_port("dns", "TCP", 53, None),
            ],
        );
        let sl = slice(
            "web-1",
            "web",
            &[
                ("http", "TCP", 8080),
                ("dns", "UDP", 5353),
                ("metrics", "TCP", 9090),
            ],
            vec![ep("10.42.0.5", Some(true), None, None, "node-a")],
        );
        let (_, ports) = tracker_with(&[svc], &[sl]);
        let names: Vec<String> = ports.iter().map(|p| p.name.to_string()).collect();
        assert_eq!(
            names,
            vec![
                "default/web:dns/tcp",
                "default/web:dns/udp",
                "default/web:http/tcp"
            ]
        );
        assert!(
            ports[0].endpoints.is_empty(),
            "no TCP dns port in the slice"
        );
        assert_eq!(ips(&ports[1]), vec!["10.42.0.5:5353"]);
        assert_eq!(ips(&ports[2]), vec!["10.42.0.5:8080"]);
        assert_eq!(ports[2].cluster_ip, Ipv4Addr::new(10, 43, 0, 20));
        assert_eq!(ports[2].port, 80);
        assert_eq!(ports[2].node_port, None);
    }

    #[test]
    fn multiple_slices_are_merged_and_deduplicated() {
        let svc = service("web", "10.43.0.20", vec![svc_port("", "TCP", 80, None)]);
        let a = slice(
            "web-a",
            "web",
            &[("", "TCP", 8080)],
            vec![
                ep("10.42.0.5", Some(true), None, None, "node-b"),
                ep("10.42.0.6", Some(true), None, None, "node-b"),
            ],
        );
        let b = slice(
            "web-b",
            "web",
            &[("", "TCP", 8080)],
            vec![
                ep("10.42.0.6", Some(true), None, None, "node-a"),
                ep("10.42.1.7", Some(false), None, None, "node-c"),
            ],
        );
        let other = slice(
            "db-a",
            "db",
            &[("", "TCP", 8080)],
            vec![ep("10.42.9.9", Some(true), None, None, "node-a")],
        );
        let (mut t, mut ports) = tracker_with(&[svc], &[a, b.clone(), other]);
        assert_eq!(ports.len(), 1);
        assert_eq!(
            ips(&ports[0]),
            vec!["10.42.0.5:8080", "10.42.0.6:8080", "10.42.1.7:8080"]
        );
        // the duplicate on this node wins
        assert_eq!(ports[0].endpoints[1].node_name.as_deref(), Some("node-a"));
        assert!(!ports[0].endpoints[2].ready);

        // deleting one slice removes only its endpoints
        t.apply(ProxyEvent::Slices(Watched::Delete(slice_object(&b))));
        let mut seen = Vec::new();
        let n = t.update(&mut ports, |o, n| seen.push((o.cloned(), n.cloned())));
        assert_eq!(n, 1);
        assert_eq!(ips(&ports[0]), vec!["10.42.0.5:8080", "10.42.0.6:8080"]);
        assert_eq!(ports[0].endpoints[1].node_name.as_deref(), Some("node-b"));
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0.as_ref().map(|p| p.endpoints.len()), Some(3));
    }

    #[test]
    fn nil_conditions_default_as_upstream() {
        let svc = service("web", "10.43.0.20", vec![svc_port("", "TCP", 80, None)]);
        let mut all_nil = ep("10.42.0.1", None, None, None, "n");
        all_nil.conditions = None;
        let sl = slice(
            "web-a",
            "web",
            &[("", "TCP", 80)],
            vec![
                all_nil,
                ep("10.42.0.2", Some(false), None, None, "n"),
                ep("10.42.0.3", Some(false), Some(true), Some(true), "n"),
                ep("10.42.0.4", None, Some(false), None, "n"),
            ],
        );
        let (_, ports) = tracker_with(&[svc], &[sl]);
        let e = &ports[0].endpoints;
        let conds: Vec<(bool, bool, bool)> = e
            .iter()
            .map(|e| (e.ready, e.serving, e.terminating))
            .collect();
        assert_eq!(
            conds,
            vec![
                (true, true, false),
                (false, false, false),
                (false, true, true),
                (true, false, false)
            ]
        );
    }

    #[test]
    fn headless_external_name_and_foreign_services_are_skipped() {
        let headless = service("h", "None", vec![svc_port("", "TCP", 80, None)]);
        let mut no_ip = service("n", "", vec![svc_port("", "TCP", 80, None)]);
        no_ip.spec.as_mut().unwrap().cluster_ips = None;
        let mut ext = service("e", "10.43.0.9", vec![svc_port("", "TCP", 80, None)]);
        ext.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        let mut foreign = service("f", "10.43.0.8", vec![svc_port("", "TCP", 80, None)]);
        foreign.metadata = meta("default", "f", 3, &[(LABEL_SERVICE_PROXY_NAME, "other")]);
        for s in [&headless, &no_ip, &ext, &foreign] {
            assert_eq!(ServiceInfo::from_service(s), None, "{:?}", s.metadata.name);
        }
        let (_, ports) = tracker_with(&[headless, no_ip, ext, foreign], &[]);
        assert!(ports.is_empty());

        let mut v6 = slice("x", "web", &[("", "TCP", 80)], vec![]);
        v6.address_type = "IPv6".into();
        assert_eq!(SliceInfo::from_slice(&v6), None);
        let mut unlabelled = slice("y", "web", &[("", "TCP", 80)], vec![]);
        unlabelled.metadata.labels = None;
        assert_eq!(SliceInfo::from_slice(&unlabelled), None);
    }

    #[test]
    fn load_balancer_service_fields() {
        let mut svc = service(
            "lb",
            "10.43.0.30",
            vec![svc_port("http", "TCP", 80, Some(30080))],
        );
        let spec = svc.spec.as_mut().unwrap();
        spec.type_ = Some("LoadBalancer".into());
        spec.external_ips = Some(vec!["192.0.2.1".into(), "2001:db8::1".into()]);
        spec.external_traffic_policy = Some("Local".into());
        spec.internal_traffic_policy = Some("Local".into());
        spec.session_affinity = Some("ClientIP".into());
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![
                    LoadBalancerIngress {
                        ip: Some("198.51.100.7".into()),
                        ..Default::default()
                    },
                    LoadBalancerIngress {
                        hostname: Some("lb.example".into()),
                        ..Default::default()
                    },
                    LoadBalancerIngress {
                        ip: Some("198.51.100.8".into()),
                        ip_mode: Some("Proxy".into()),
                        ..Default::default()
                    },
                ]),
            }),
            ..Default::default()
        });
        let info = ServiceInfo::from_service(&svc).unwrap();
        assert_eq!(info.load_balancer_ips, vec![Ipv4Addr::new(198, 51, 100, 7)]);
        assert_eq!(info.external_ips, vec![Ipv4Addr::new(192, 0, 2, 1)]);
        assert_eq!(info.ports[0].node_port, Some(30080));
        assert_eq!(info.affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
        assert!(info.external_local && info.internal_local);

        // a ClusterIP Service never gets a node port nor an external Local policy
        let mut plain = service(
            "c",
            "10.43.0.31",
            vec![svc_port("", "TCP", 80, Some(30081))],
        );
        let spec = plain.spec.as_mut().unwrap();
        spec.external_traffic_policy = Some("Local".into());
        spec.session_affinity = Some("ClientIP".into());
        spec.session_affinity_config = Some(SessionAffinityConfig {
            client_ip: Some(ClientIPConfig {
                timeout_seconds: Some(60),
            }),
        });
        let info = ServiceInfo::from_service(&plain).unwrap();
        assert_eq!(info.ports[0].node_port, None);
        assert!(!info.external_local);
        assert_eq!(info.affinity_timeout, Some(60));
    }

    #[test]
    fn update_reports_only_changed_ports_and_keeps_order() {
        let a = service("a", "10.43.0.1", vec![svc_port("", "UDP", 53, None)]);
        let b = service("b", "10.43.0.2", vec![svc_port("", "TCP", 80, None)]);
        let c = service("c", "10.43.0.3", vec![svc_port("", "TCP", 80, None)]);
        let (mut t, mut ports) = tracker_with(&[c.clone(), a, b.clone()], &[]);
        let names: Vec<&str> = ports.iter().map(|p| p.name.name.as_str()).collect();
        assert_eq!(names, vec!["a", "b", "c"]);
        assert!(t.synced());
        assert!(!t.has_changes());

        // same object again: nothing to do
        t.apply(ProxyEvent::Services(Watched::Apply(service_object(&c))));
        assert!(!t.has_changes());

        // a slice for b: one changed port
        let sl = slice(
            "b-1",
            "b",
            &[("", "TCP", 8080)],
            vec![ep("10.42.0.9", Some(true), None, None, "node-a")],
        );
        t.apply(ProxyEvent::Slices(Watched::Apply(slice_object(&sl))));
        let mut calls = 0;
        assert_eq!(
            t.update(&mut ports, |o, n| {
                calls += 1;
                assert_eq!(o.map(|p| p.endpoints.len()), Some(0));
                assert_eq!(n.map(|p| p.endpoints.len()), Some(1));
            }),
            1
        );
        assert_eq!(calls, 1);

        // b deleted, d added: removal and addition reported, order kept
        t.apply(ProxyEvent::Services(Watched::Delete(service_object(&b))));
        let d = service("d", "10.43.0.4", vec![svc_port("", "TCP", 80, None)]);
        t.apply(ProxyEvent::Services(Watched::Apply(service_object(&d))));
        let mut seen = Vec::new();
        t.update(&mut ports, |o, n| {
            seen.push((
                o.map(|p| p.name.name.clone()),
                n.map(|p| p.name.name.clone()),
            ))
        });
        assert_eq!(
            seen,
            vec![(Some("b".into()), None), (None, Some("d".into()))]
        );
        let names: Vec<&str> = ports.iter().map(|p| p.name.name.as_str()).collect();
        assert_eq!(names, vec!["a", "c", "d"]);
    }

    #[test]
    fn relist_replaces_the_cache_and_marks_only_differences() {
        let a = service("a", "10.43.0.1", vec![svc_port("", "TCP", 80, None)]);
        let b = service("b", "10.43.0.2", vec![svc_port("", "TCP", 80, None)]);
        let (mut t, mut ports) = tracker_with(&[a.clone(), b], &[]);
        assert_eq!(ports.len(), 2);
        // relist after a watch gap: b is gone, a unchanged
        t.apply(ProxyEvent::Services(Watched::Init));
        t.apply(ProxyEvent::Services(Watched::InitApply(service_object(&a))));
        assert!(!t.has_changes(), "nothing applied before InitDone");
        t.apply(ProxyEvent::Services(Watched::InitDone));
        let mut removed = Vec::new();
        t.update(&mut ports, |o, n| {
            assert!(n.is_none());
            removed.push(o.map(|p| p.name.name.clone()));
        });
        assert_eq!(removed, vec![Some("b".to_string())]);
        assert_eq!(ports.len(), 1);
    }

    #[test]
    fn slice_moving_to_another_service_updates_both() {
        let a = service("a", "10.43.0.1", vec![svc_port("", "TCP", 80, None)]);
        let b = service("b", "10.43.0.2", vec![svc_port("", "TCP", 80, None)]);
        let sl = slice(
            "s",
            "a",
            &[("", "TCP", 80)],
            vec![ep("10.42.0.9", Some(true), None, None, "x")],
        );
        let (mut t, mut ports) = tracker_with(&[a, b], std::slice::from_ref(&sl));
        assert_eq!((ports[0].endpoints.len(), ports[1].endpoints.len()), (1, 0));
        let mut moved = sl;
        moved.metadata = meta("default", "s", 9, &[(LABEL_SERVICE_NAME, "b")]);
        t.apply(ProxyEvent::Slices(Watched::Apply(slice_object(&moved))));
        assert_eq!(t.update(&mut ports, |_, _| {}), 2);
        assert_eq!((ports[0].endpoints.len(), ports[1].endpoints.len()), (0, 1));
    }

    #[test]
    fn events_carry_resource_versions() {
        let a = service("a", "10.43.0.1", vec![]);
        assert_eq!(
            ProxyEvent::Services(Watched::Apply(service_object(&a))).resource_version(),
            5
        );
        assert_eq!(ProxyEvent::Slices(Watched::InitDone).resource_version(), 0);
    }
}
