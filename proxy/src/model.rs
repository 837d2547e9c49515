//! The proxy's model of what a node must do: one [`ServicePort`] per (Service, port) with
//! the endpoints it may send traffic to, plus the node facts the rules need. Built from
//! Services and EndpointSlices by the change tracker, consumed by the nftables and
//! iptables renderers. Pure data, no IO.

use std::net::Ipv4Addr;

/// L4 protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Lower-case name as nft and iptables spell it (`tcp`, `udp`, `sctp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// From the Kubernetes spelling (`TCP`, `UDP`, `SCTP`); unknown values are `None`.
    pub fn from_k8s(s: &str) -> Option<Self> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// Identifies one port of one Service: `namespace/name:portName/protocol`, as upstream's
/// `ServicePortName`. Sorting by it gives the renderers a stable order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    /// `spec.ports[].name`; empty for a single unnamed port.
    pub port: String,
    pub protocol: Protocol,
}

impl std::fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.port.is_empty() {
            write!(f, ":{}", self.port)?;
        }
        write!(f, "/{}", self.protocol.as_str())
    }
}

/// One backend of a service port, already resolved to the port number it listens on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// EndpointSlice `conditions.ready` (nil counts as true).
    pub ready: bool,
    /// `conditions.serving` (nil: same as ready).
    pub serving: bool,
    /// `conditions.terminating` (nil counts as false).
    pub terminating: bool,
    /// `nodeName` of the endpoint, when known.
    pub node_name: Option<String>,
}

impl Endpoint {
    /// Whether the endpoint runs on `node`.
    pub fn is_local(&self, node: &str) -> bool {
        self.node_name.as_deref() == Some(node)
    }
}

/// One port of a non-headless, non-ExternalName Service, with its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: ServicePortName,
    /// `spec.clusterIP` (IPv4 only).
    pub cluster_ip: Ipv4Addr,
    /// `spec.ports[].port`.
    pub port: u16,
    /// `spec.ports[].nodePort`, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `sessionAffinity: ClientIP` with its timeout in seconds (default 10800).
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local` (only meaningful with a node port or external IPs).
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// Every endpoint of this port from the Service's EndpointSlices (deduplicated, sorted).
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// The endpoints cluster-wide traffic may use, as upstream's topology filter: the ready
    /// ones; when none is ready, the serving-and-terminating ones.
    pub fn cluster_endpoints(&self) -> Vec<&Endpoint> {
        let ready: Vec<&Endpoint> = self.endpoints.iter().filter(|e| e.ready).collect();
        if !ready.is_empty() {
            return ready;
        }
        self.endpoints
            .iter()
            .filter(|e| e.serving && e.terminating)
            .collect()
    }

    /// The endpoints on `node` that node-local traffic may use (same fallback rule).
    pub fn local_endpoints(&self, node: &str) -> Vec<&Endpoint> {
        let ready: Vec<&Endpoint> = self
            .endpoints
            .iter()
            .filter(|e| e.ready && e.is_local(node))
            .collect();
        if !ready.is_empty() {
            return ready;
        }
        self.endpoints
            .iter()
            .filter(|e| e.serving && e.terminating && e.is_local(node))
            .collect()
    }

    /// Whether traffic to this port has nowhere to go at all (rejected at once).
    pub fn has_no_endpoints(&self) -> bool {
        self.cluster_endpoints().is_empty()
    }
}

/// Everything one sync renders: the node's facts and every service port, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyState {
    /// This node's name (for the Local traffic policies).
    pub node_name: String,
    /// This node's IPs that NodePorts listen on.
    pub node_ips: Vec<Ipv4Addr>,
    /// Pod network (`--cluster-cidr`): traffic from outside it to a ClusterIP is masqueraded.
    pub cluster_cidr: (Ipv4Addr, u8),
    /// Service network (`--service-cidr`): traffic to an unallocated address in it is dropped.
    pub service_cidr: (Ipv4Addr, u8),
    /// Sorted by `name`.
    pub services: Vec<ServicePort>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(last: u8, ready: bool, serving: bool, terminating: bool, node: &str) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::new(10, 42, 0, last),
            port: 80,
            ready,
            serving,
            terminating,
            node_name: Some(node.into()),
        }
    }

    fn port(endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort {
            name: ServicePortName {
                namespace: "default".into(),
                name: "web".into(),
                port: "http".into(),
                protocol: Protocol::Tcp,
            },
            cluster_ip: Ipv4Addr::new(10, 43, 0, 20),
            port: 80,
            node_port: None,
            external_ips: vec![],
            load_balancer_ips: vec![],
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            endpoints,
        }
    }

    #[test]
    fn ready_endpoints_win_over_terminating_ones() {
        let p = port(vec![
            ep(1, true, true, false, "a"),
            ep(2, false, true, true, "b"),
            ep(3, false, false, false, "b"),
        ]);
        let ips: Vec<u8> = p
            .cluster_endpoints()
            .iter()
            .map(|e| e.ip.octets()[3])
            .collect();
        assert_eq!(ips, vec![1]);
        assert!(p
            .local_endpoints("b")
            .iter()
            .map(|e| e.ip.octets()[3])
            .eq([2]));
    }

    #[test]
    fn serving_terminating_endpoints_are_the_fallback() {
        let p = port(vec![
            ep(2, false, true, true, "b"),
            ep(3, false, false, true, "b"),
        ]);
        assert_eq!(p.cluster_endpoints().len(), 1);
        assert!(!p.has_no_endpoints());
        let none = port(vec![ep(3, false, false, false, "b")]);
        assert!(none.has_no_endpoints());
    }

    #[test]
    fn names_display_like_upstream() {
        let p = port(vec![]);
        assert_eq!(p.name.to_string(), "default/web:http/tcp");
    }
}
