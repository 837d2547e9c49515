//! Node networking for the kubelet: the CNI config containerd uses for pod sandboxes
//! (bridge + host-local + portmap), the host-gw routes between nodes, and the guard routes
//! and iptables rules that keep pod-CIDR and service-CIDR traffic from ever following the
//! machine's default route.
//!
//! Pure logic ([`cni_conflist`], [`desired_routes`], [`guard_rules`]) is separate from the side
//! effects, which all go through the [`HostNet`] trait: [`IpCommand`] runs `ip` and
//! `iptables` (optionally inside another network namespace through `nsenter`) and writes
//! `/proc/sys`; [`FakeHostNet`] records calls and keeps an in-memory route table.
//!
//! Routes we create carry the protocol number [`ROUTE_PROTO`] (77), and only routes with that
//! tag are ever replaced or deleted, so routes made by anyone else are left alone.
//!
//! Intended use on a node, in order:
//! 1. [`write_cni_config`] with [`cni_conflist`] (containerd picks the file up by fsnotify);
//! 2. [`ensure_pod_bridge`] (creates `cni0` with the gateway address, so that the service
//!    route's `src` is a local address before the first pod exists);
//! 3. [`install_guards`] (service bridge, `ip_forward`, guard chain);
//! 4. whenever Nodes change (and periodically): [`reconcile_routes`] with [`desired_routes`],
//!    then [`install_guards`] again, which exempts the host-gw routes now installed from the
//!    guard rules and follows the default route if it moved.
//!
//! Cleanup is [`remove_guards`] and [`remove_routes`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

/// The CNI network name.
pub const NETWORK_NAME: &str = "minik8s";
/// The bridge the CNI bridge plugin attaches pods to.
pub const POD_BRIDGE: &str = "cni0";
/// An empty bridge that holds the local route for the service CIDR (the kernel here has no
/// `dummy` link type, so this plays the role of kube-proxy's `kube-ipvs0`).
pub const SVC_BRIDGE: &str = "minik8s-svc0";
/// File name of the CNI config inside containerd's `conf_dir`.
pub const CNI_CONFIG_FILE: &str = "10-minik8s.conflist";
/// Route protocol number tagging every route this module creates (`ip route ... proto 77`).
pub const ROUTE_PROTO: u8 = 77;
/// iptables table and chain of the guard rules.
pub const GUARD_TABLE: &str = "filter";
pub const GUARD_CHAIN: &str = "MINIK8S-GUARD";
/// Built-in chains that jump to [`GUARD_CHAIN`].
pub const GUARD_HOOKS: [&str; 2] = ["OUTPUT", "FORWARD"];
/// nat table chain masquerading pod traffic to destinations outside the cluster CIDR (what
/// flannel's `ipMasq` does in k3s), jumped to from POSTROUTING.
pub const MASQ_TABLE: &str = "nat";
pub const MASQ_CHAIN: &str = "MINIK8S-POSTROUTING";
/// Default cluster (pod) and service CIDRs.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";
pub const DEFAULT_SERVICE_CIDR: &str = "10.43.0.0/16";

const JUMP_COMMENT: &str = "minik8s: keep cluster and service cidrs local";
const MASQ_JUMP_COMMENT: &str = "minik8s: masquerade pod traffic leaving the cluster cidr";

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("invalid cidr {value:?}: {reason}")]
    InvalidCidr { value: String, reason: String },
    #[error("pod cidr {cidr} has no usable gateway address")]
    NoGateway { cidr: String },
    #[error("build cni config: {0}")]
    CniConfig(String),
    #[error("list routes: {0}")]
    ListRoutes(String),
    #[error("add route {route}: {detail}")]
    AddRoute { route: String, detail: String },
    #[error("replace route {route}: {detail}")]
    ReplaceRoute { route: String, detail: String },
    #[error("delete route {route}: {detail}")]
    DeleteRoute { route: String, detail: String },
    #[error("find default route: {0}")]
    DefaultRoute(String),
    #[error("ensure link {link}: {detail}")]
    EnsureLink { link: String, detail: String },
    #[error("ensure address {addr} on {link}: {detail}")]
    EnsureAddress {
        link: String,
        addr: String,
        detail: String,
    },
    #[error("delete link {link}: {detail}")]
    DeleteLink { link: String, detail: String },
    #[error("ensure chain {chain}: {detail}")]
    EnsureChain { chain: String, detail: String },
    #[error("delete chain {chain}: {detail}")]
    DeleteChain { chain: String, detail: String },
    #[error("replace chain {chain}: {detail}")]
    ReplaceChain { chain: String, detail: String },
    #[error("list rules of {chain}: {detail}")]
    ListRules { chain: String, detail: String },
    #[error("ensure rule in {chain} ({rule}): {detail}")]
    EnsureRule {
        chain: String,
        rule: String,
        detail: String,
    },
    #[error("delete rule in {chain} ({rule}): {detail}")]
    DeleteRule {
        chain: String,
        rule: String,
        detail: String,
    },
    #[error("set sysctl {key}: {detail}")]
    SetSysctl { key: String, detail: String },
    #[error("read sysctl {key}: {detail}")]
    ReadSysctl { key: String, detail: String },
}

// ---------------------------------------------------------------------------------------
// CIDRs
// ---------------------------------------------------------------------------------------

/// An IPv4 network: the address is always the network address (host bits cleared).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// Builds the network containing `addr` with the given prefix length (host bits are cleared).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, NetworkError> {
        if prefix > 32 {
            return Err(NetworkError::InvalidCidr {
                value: format!("{addr}/{prefix}"),
                reason: "prefix length above 32".into(),
            });
        }
        Ok(Ipv4Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether every address of `other` is inside `self`.
    pub fn covers(&self, other: &Ipv4Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// The first host address (network + 1), used as the pod gateway; none for /31 and /32.
    pub fn first_host(&self) -> Option<Ipv4Addr> {
        (self.prefix <= 30).then(|| Ipv4Addr::from(u32::from(self.addr) + 1))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = NetworkError;

    /// Parses `a.b.c.d/p`; a bare address means /32 (that is how `ip route` prints host routes).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| NetworkError::InvalidCidr {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (
                a,
                p.parse::<u8>().map_err(|_| invalid("bad prefix length"))?,
            ),
            None => (s, 32),
        };
        let addr = addr
            .parse::<Ipv4Addr>()
            .map_err(|_| invalid("not an ipv4 address"))?;
        Ipv4Cidr::new(addr, prefix).map_err(|_| invalid("prefix length above 32"))
    }
}

/// The pod gateway of a pod CIDR: its first address (e.g. 10.42.3.1 for 10.42.3.0/24).
pub fn gateway_ip(pod_cidr: &str) -> Result<Ipv4Addr, NetworkError> {
    let cidr: Ipv4Cidr = pod_cidr.parse()?;
    cidr.first_host().ok_or(NetworkError::NoGateway {
        cidr: cidr.to_string(),
    })
}

// ---------------------------------------------------------------------------------------
// CNI config
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniSettings {
    pub network_name: String,
    pub bridge: String,
    pub pod_cidr: Ipv4Cidr,
    pub cluster_cidr: Ipv4Cidr,
    pub service_cidr: Ipv4Cidr,
    /// host-local's `dataDir` (IP allocations), a parameter so nothing lands in /var/lib/cni.
    pub ipam_data_dir: PathBuf,
    pub mtu: Option<u32>,
}

/// The conflist JSON for containerd: bridge (gateway on the bridge, no masquerade, hairpin
/// on) with host-local IPAM over the node's pod CIDR and a default route through the
/// bridge, as every CNI gives pods: replies to node addresses (NodePorts masqueraded by
/// another node, host-network endpoints) must find their way back. What then leaves the
/// node is the node's routing, under the guard chain (cluster and service CIDRs never
/// follow the node's default route) and [`MASQ_CHAIN`]; then portmap for hostPorts.
pub fn cni_conflist(cfg: &CniSettings) -> Result<String, NetworkError> {
    let gateway = cfg.pod_cidr.first_host().ok_or(NetworkError::NoGateway {
        cidr: cfg.pod_cidr.to_string(),
    })?;
    let data_dir = cfg.ipam_data_dir.to_str().ok_or_else(|| {
        NetworkError::CniConfig(format!(
            "ipam data dir {} is not valid utf-8",
            cfg.ipam_data_dir.display()
        ))
    })?;
    let mut bridge = serde_json::json!({
        "type": "bridge",
        "bridge": cfg.bridge,
        "isGateway": true,
        "ipMasq": false,
        "hairpinMode": true,
    });
    if let (Some(mtu), Some(obj)) = (cfg.mtu, bridge.as_object_mut()) {
        obj.insert("mtu".into(), mtu.into());
    }
    if let Some(obj) = bridge.as_object_mut() {
        obj.insert(
            "ipam".into(),
            serde_json::json!({
                "type": "host-local",
                "ranges": [[{"subnet": cfg.pod_cidr.to_string(), "gateway": gateway.to_string()}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": data_dir,
            }),
        );
    }
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": cfg.network_name,
        "plugins": [
            bridge,
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    let mut text =
        serde_json::to_string_pretty(&conf).map_err(|e| NetworkError::CniConfig(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// Writes `conf_dir/10-minik8s.conflist` atomically (temp file in the same directory, then
/// rename; the temp name ends in `.tmp`, which containerd ignores). Returns whether the
/// content changed; an identical file is left untouched.
pub fn write_cni_config(conf_dir: &Path, content: &str) -> io::Result<bool> {
    let target = conf_dir.join(CNI_CONFIG_FILE);
    match std::fs::read(&target) {
        Ok(existing) if existing == content.as_bytes() => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(conf_dir)?;
    let tmp = conf_dir.join(format!(".{CNI_CONFIG_FILE}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| true)
}

// ---------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    /// `dst via gateway`
    Via(Ipv4Addr),
    /// `dst dev X [src Y]`
    Dev { dev: String, src: Option<Ipv4Addr> },
    /// `unreachable dst`
    Unreachable,
    /// Another route type found with our protocol tag (e.g. "blackhole"): only ever deleted.
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    pub dst: Ipv4Cidr,
    pub kind: RouteKind,
}

impl Route {
    pub fn via(dst: Ipv4Cidr, gateway: Ipv4Addr) -> Self {
        Route {
            dst,
            kind: RouteKind::Via(gateway),
        }
    }

    pub fn dev(dst: Ipv4Cidr, dev: &str, src: Option<Ipv4Addr>) -> Self {
        Route {
            dst,
            kind: RouteKind::Dev {
                dev: dev.to_string(),
                src,
            },
        }
    }

    pub fn unreachable(dst: Ipv4Cidr) -> Self {
        Route {
            dst,
            kind: RouteKind::Unreachable,
        }
    }

    /// The `ip route` words selecting this route (without the verb and the protocol).
    fn ip_words(&self) -> Vec<String> {
        let mut w = Vec::new();
        match &self.kind {
            RouteKind::Unreachable => w.push("unreachable".to_string()),
            RouteKind::Other(t) => w.push(t.clone()),
            _ => {}
        }
        w.push(self.dst.to_string());
        match &self.kind {
            RouteKind::Via(gw) => w.extend(["via".to_string(), gw.to_string()]),
            RouteKind::Dev { dev, src } => {
                w.extend(["dev".to_string(), dev.clone()]);
                if let Some(src) = src {
                    w.extend(["src".to_string(), src.to_string()]);
                }
            }
            RouteKind::Unreachable | RouteKind::Other(_) => {}
        }
        w
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ip_words().join(" "))
    }
}

/// What the route logic needs from a Node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeRouteInfo {
    pub name: String,
    pub pod_cidr: Option<String>,
    pub internal_ip: Option<String>,
}

impl NodeRouteInfo {
    /// Name, `spec.podCIDR` and the first `InternalIP` of `status.addresses`.
    pub fn from_node(node: &k8s_openapi::api::core::v1::Node) -> Self {
        NodeRouteInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            pod_cidr: node.spec.as_ref().and_then(|s| s.pod_cidr.clone()),
            internal_ip: node
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
                .map(|a| a.address.clone()),
        }
    }
}

/// The routes this node should have (pure):
/// - for every other node with a valid IPv4 podCIDR and InternalIP: `podCIDR via InternalIP`
///   (host-gw); nodes missing either are skipped, and so is a podCIDR claimed twice (the
///   first node by name wins) or one that is not more specific than the cluster CIDR;
/// - `unreachable <cluster_cidr>`: less specific than every node /24 and the local cni0 /24,
///   so pod-CIDR packets with no better route die here instead of following a default route;
/// - `<service_cidr> dev <svc_bridge> src <gateway>`: host-to-ClusterIP traffic gets the pod
///   gateway as source (pods have no default route to answer anything else), and service
///   traffic that was not DNATed stays local.
pub fn desired_routes(
    self_node: &str,
    nodes: &[NodeRouteInfo],
    cluster_cidr: Ipv4Cidr,
    service_cidr: Ipv4Cidr,
    svc_bridge: &str,
    gateway: Ipv4Addr,
) -> Vec<Route> {
    let mut sorted: Vec<&NodeRouteInfo> = nodes.iter().filter(|n| n.name != self_node).collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut seen = BTreeSet::new();
    let mut routes = Vec::new();
    for node in sorted {
        let Some(dst) = node
            .pod_cidr
            .as_deref()
            .and_then(|c| c.parse::<Ipv4Cidr>().ok())
        else {
            continue;
        };
        let Some(ip) = node
            .internal_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        if dst.prefix() <= cluster_cidr.prefix() || dst.contains(gateway) || !seen.insert(dst) {
            continue;
        }
        routes.push(Route::via(dst, ip));
    }
    routes.push(Route::unreachable(cluster_cidr));
    routes.push(Route::dev(service_cidr, svc_bridge, Some(gateway)));
    routes
}

/// What [`reconcile_routes`] did. Failures of single routes do not stop the others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteChanges {
    pub added: Vec<Route>,
    pub replaced: Vec<Route>,
    pub deleted: Vec<Route>,
    pub failed: Vec<(Route, String)>,
}

impl RouteChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.replaced.is_empty()
            && self.deleted.is_empty()
            && self.failed.is_empty()
    }
}

/// Brings the routes tagged with [`ROUTE_PROTO`] to `desired`: deletes tagged routes whose
/// destination is no longer wanted, replaces tagged routes that differ, and adds missing ones
/// (with `add`, never `replace`, so a route someone else owns for the same destination is
/// not taken over: that shows up in `failed`). Errs only when the routes cannot be listed.
pub async fn reconcile_routes(
    net: &dyn HostNet,
    desired: &[Route],
) -> Result<RouteChanges, NetworkError> {
    let current = net.list_routes().await?;
    let mut changes = RouteChanges::default();
    let wanted: BTreeSet<Ipv4Cidr> = desired.iter().map(|r| r.dst).collect();
    let mut ours: BTreeMap<Ipv4Cidr, Vec<&Route>> = BTreeMap::new();
    for r in &current {
        ours.entry(r.dst).or_default().push(r);
    }
    for r in current.iter().filter(|r| !wanted.contains(&r.dst)) {
        match net.delete_route(r).await {
            Ok(()) => {
                tracing::info!(route = %r, "deleted stale route");
                changes.deleted.push(r.clone());
            }
            Err(e) => {
                tracing::warn!(route = %r, error = %e, "could not delete stale route");
                changes.failed.push((r.clone(), e.to_string()));
            }
        }
    }
    for r in desired {
        let existing = ours.get(&r.dst);
        let result = match existing {
            Some(list) if list.contains(&r) => continue,
            Some(_) => net.replace_route(r).await.map(|()| &mut changes.replaced),
            None => net.add_route(r).await.map(|()| &mut changes.added),
        };
        match result {
            Ok(list) => {
                tracing::info!(route = %r, "route set");
                list.push(r.clone());
            }
            Err(e) => {
                tracing::warn!(route = %r, error = %e, "could not set route");
                changes.failed.push((r.clone(), e.to_string()));
            }
        }
    }
    Ok(changes)
}

/// Deletes every route carrying our protocol tag.
pub async fn remove_routes(net: &dyn HostNet) -> Result<RouteChanges, NetworkError> {
    reconcile_routes(net, &[]).await
}

// ---------------------------------------------------------------------------------------
// Bridges and guards
// ---------------------------------------------------------------------------------------

/// Creates the pod bridge with the gateway address (first address of `pod_cidr`, with the
/// pod CIDR's prefix length) and brings it up. The CNI bridge plugin accepts a bridge that
/// already holds exactly this address. Returns whether anything changed.
pub async fn ensure_pod_bridge(
    net: &dyn HostNet,
    bridge: &str,
    pod_cidr: Ipv4Cidr,
) -> Result<bool, NetworkError> {
    let gateway = pod_cidr.first_host().ok_or(NetworkError::NoGateway {
        cidr: pod_cidr.to_string(),
    })?;
    let created = net.ensure_bridge(bridge).await?;
    let addr_added = net
        .ensure_address(bridge, gateway, pod_cidr.prefix())
        .await?;
    Ok(created || addr_added)
}

fn guard_rule(dst: Ipv4Cidr, dev: &str, comment: &str, target: &[&str]) -> Vec<String> {
    let mut rule = words(&[
        "-d",
        &dst.to_string(),
        "-o",
        dev,
        "-m",
        "comment",
        "--comment",
        comment,
        "-j",
    ]);
    rule.extend(words(target));
    rule
}

/// The rules of the guard chain, in order and in the form `iptables -S` prints them back
/// (pure). For every interface holding a default route: RETURN for each host-gw pod CIDR
/// (`host_gw`: packets to another node's pods legitimately leave through that interface when
/// the nodes share it), then REJECT whatever else of the cluster and service CIDRs would leave
/// through it. Nothing else: never all of 10.0.0.0/8 (the resolver is in it). Filter chains
/// see packets after DNAT, so service traffic DNATed to a remote pod counts as pod traffic.
pub fn guard_rules(
    default_devs: &[String],
    cluster_cidr: Ipv4Cidr,
    service_cidr: Ipv4Cidr,
    host_gw: &[Ipv4Cidr],
) -> Vec<Vec<String>> {
    let reject = ["REJECT", "--reject-with", "icmp-net-unreachable"];
    let mut rules = Vec::new();
    for dev in default_devs {
        for dst in host_gw {
            rules.push(guard_rule(
                *dst,
                dev,
                "minik8s: host-gw route to another node",
                &["RETURN"],
            ));
        }
        for (cidr, what) in [(cluster_cidr, "cluster"), (service_cidr, "service")] {
            let comment = format!("minik8s: {what} cidr must not leave via the default route");
            rules.push(guard_rule(cidr, dev, &comment, &reject));
        }
    }
    rules
}

/// The rule in OUTPUT and FORWARD that jumps to the guard chain.
pub fn guard_jump_rule() -> Vec<String> {
    words(&[
        "-m",
        "comment",
        "--comment",
        JUMP_COMMENT,
        "-j",
        GUARD_CHAIN,
    ])
}

/// The rules of [`MASQ_CHAIN`] (pure): pod traffic to anything outside the cluster CIDR
/// (other hosts, host-network endpoints of Services such as the API server or the cluster
/// DNS after DNAT) leaves with the node's address, so replies come back through this node
/// even when the destination has no route to the pod CIDRs. Pod-to-pod traffic keeps its
/// source.
pub fn masq_rules(cluster_cidr: Ipv4Cidr) -> Vec<Vec<String>> {
    let c = cluster_cidr.to_string();
    vec![words(&[
        "-s",
        &c,
        "!",
        "-d",
        &c,
        "-m",
        "comment",
        "--comment",
        MASQ_JUMP_COMMENT,
        "-j",
        "MASQUERADE",
    ])]
}

/// The rule in nat POSTROUTING that jumps to [`MASQ_CHAIN`].
pub fn masq_jump_rule() -> Vec<String> {
    words(&[
        "-m",
        "comment",
        "--comment",
        MASQ_JUMP_COMMENT,
        "-j",
        MASQ_CHAIN,
    ])
}

/// What [`install_guards`] changed (rules as space-joined iptables words).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuardReport {
    pub bridge_created: bool,
    /// The guard chain's content differed and was replaced as a whole.
    pub chain_rewritten: bool,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl GuardReport {
    pub fn is_empty(&self) -> bool {
        !self.bridge_created
            && !self.chain_rewritten
            && self.added.is_empty()
            && self.removed.is_empty()
    }
}

/// Ensures the service bridge [`SVC_BRIDGE`] exists and is up, `net.ipv4.ip_forward=1`
/// (host-gw forwards pod traffic between nodes), and the guard chain: [`GUARD_CHAIN`], jumped
/// to from the top of OUTPUT and FORWARD (`-C` then `-I`), holding [`guard_rules`] for the
/// current default-route interfaces, with the host-gw routes currently installed (our tagged
/// `via` routes inside the cluster CIDR) exempted. When the chain's content differs from that
/// (order included) it is replaced in one atomic step. Idempotent; run it after
/// [`reconcile_routes`] and periodically. Pod traffic to non-cluster destinations is left
/// alone (no masquerade; pods have no default route).
pub async fn install_guards(
    net: &dyn HostNet,
    cluster_cidr: Ipv4Cidr,
    service_cidr: Ipv4Cidr,
) -> Result<GuardReport, NetworkError> {
    let mut report = GuardReport {
        bridge_created: net.ensure_bridge(SVC_BRIDGE).await?,
        ..GuardReport::default()
    };
    net.set_sysctl("net.ipv4.ip_forward", "1").await?;
    net.ensure_chain(GUARD_TABLE, GUARD_CHAIN).await?;
    let devs: Vec<String> = net
        .default_route_devices()
        .await?
        .into_iter()
        .filter(|d| d != SVC_BRIDGE && d != POD_BRIDGE && d != "lo")
        .collect();
    let host_gw: BTreeSet<Ipv4Cidr> = net
        .list_routes()
        .await?
        .into_iter()
        .filter(|r| matches!(r.kind, RouteKind::Via(_)) && cluster_cidr.covers(&r.dst))
        .map(|r| r.dst)
        .collect();
    let host_gw: Vec<Ipv4Cidr> = host_gw.into_iter().collect();
    let desired = guard_rules(&devs, cluster_cidr, service_cidr, &host_gw);
    let current = net.list_rules(GUARD_TABLE, GUARD_CHAIN).await?;
    if current != desired {
        net.replace_chain(GUARD_TABLE, GUARD_CHAIN, &desired)
            .await?;
        report.chain_rewritten = true;
        report.removed = current
            .iter()
            .filter(|r| !desired.contains(r))
            .map(|r| r.join(" "))
            .collect();
        report.added = desired
            .iter()
            .filter(|r| !current.contains(r))
            .map(|r| r.join(" "))
            .collect();
    }
    let jump = guard_jump_rule();
    for hook in GUARD_HOOKS {
        if net.ensure_rule(GUARD_TABLE, hook, &jump).await? {
            report.added.push(format!("{hook}: {}", jump.join(" ")));
        }
    }
    net.ensure_chain(MASQ_TABLE, MASQ_CHAIN).await?;
    let desired = masq_rules(cluster_cidr);
    let current = net.list_rules(MASQ_TABLE, MASQ_CHAIN).await?;
    if current != desired {
        net.replace_chain(MASQ_TABLE, MASQ_CHAIN, &desired).await?;
        report.added.extend(
            desired
                .iter()
                .map(|r| format!("{MASQ_CHAIN}: {}", r.join(" "))),
        );
    }
    let jump = masq_jump_rule();
    if net.ensure_rule(MASQ_TABLE, "POSTROUTING", &jump).await? {
        report
            .added
            .push(format!("POSTROUTING: {}", jump.join(" ")));
    }
    Ok(report)
}

/// Removes the jumps, the guard chain and the service bridge (which takes its route with it).
/// Leaves `ip_forward` alone (other things on the machine may rely on it) and leaves `cni0`
/// (pods may still be attached); see [`remove_routes`] for the routes.
pub async fn remove_guards(net: &dyn HostNet) -> Result<(), NetworkError> {
    let jump = guard_jump_rule();
    for hook in GUARD_HOOKS {
        net.delete_rule(GUARD_TABLE, hook, &jump).await?;
    }
    net.delete_chain(GUARD_TABLE, GUARD_CHAIN).await?;
    net.delete_rule(MASQ_TABLE, "POSTROUTING", &masq_jump_rule())
        .await?;
    net.delete_chain(MASQ_TABLE, MASQ_CHAIN).await?;
    net.delete_link(SVC_BRIDGE).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Side effects
// ---------------------------------------------------------------------------------------

/// Host network side effects. Booleans say whether something changed.
#[async_trait]
pub trait HostNet: Send + Sync {
    /// Routes in the main table tagged with [`ROUTE_PROTO`].
    async fn list_routes(&self) -> Result<Vec<Route>, NetworkError>;
    /// Adds a tagged route; fails if a route for the same destination exists.
    async fn add_route(&self, route: &Route) -> Result<(), NetworkError>;
    /// Adds or replaces a tagged route.
    async fn replace_route(&self, route: &Route) -> Result<(), NetworkError>;
    /// Deletes a tagged route.
    async fn delete_route(&self, route: &Route) -> Result<(), NetworkError>;
    /// Interfaces holding an IPv4 default route in the main table.
    async fn default_route_devices(&self) -> Result<Vec<String>, NetworkError>;
    /// Creates a bridge (no ports) if missing and brings it up; errs if `name` is another kind.
    async fn ensure_bridge(&self, name: &str) -> Result<bool, NetworkError>;
    async fn ensure_address(
        &self,
        dev: &str,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<bool, NetworkError>;
    async fn delete_link(&self, name: &str) -> Result<bool, NetworkError>;
    async fn ensure_chain(&self, table: &str, chain: &str) -> Result<bool, NetworkError>;
    /// Flushes and deletes a chain; false if it did not exist.
    async fn delete_chain(&self, table: &str, chain: &str) -> Result<bool, NetworkError>;
    /// Sets a chain's rules, in order, in one atomic step (creating the chain if missing).
    async fn replace_chain(
        &self,
        table: &str,
        chain: &str,
        rules: &[Vec<String>],
    ) -> Result<(), NetworkError>;
    /// The rules of a chain as `iptables -S` prints them, without `-A CHAIN`.
    async fn list_rules(&self, table: &str, chain: &str) -> Result<Vec<Vec<String>>, NetworkError>;
    /// `-C`, then `-I` (at the top) if missing.
    async fn ensure_rule(
        &self,
        table: &str,
        chain: &str,
        rule: &[String],
    ) -> Result<bool, NetworkError>;
    /// Deletes every copy of a rule; false if there was none.
    async fn delete_rule(
        &self,
        table: &str,
        chain: &str,
        rule: &[String],
    ) -> Result<bool, NetworkError>;
    /// `key` in dotted form, e.g. "net.ipv4.ip_forward".
    async fn set_sysctl(&self, key: &str, value: &str) -> Result<(), NetworkError>;
    async fn read_sysctl(&self, key: &str) -> Result<String, NetworkError>;
}

/// Binary paths and the /proc/sys root used by [`IpCommand`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpCommandPaths {
    pub ip: PathBuf,
    pub iptables: PathBuf,
    pub iptables_restore: PathBuf,
    pub nsenter: PathBuf,
    pub proc_sys: PathBuf,
}

impl Default for IpCommandPaths {
    fn default() -> Self {
        IpCommandPaths {
            ip: "/usr/sbin/ip".into(),
            iptables: "/usr/sbin/iptables".into(),
            iptables_restore: "/usr/sbin/iptables-restore".into(),
            nsenter: "/usr/bin/nsenter".into(),
            proc_sys: "/proc/sys".into(),
        }
    }
}

/// [`HostNet`] over `ip`, `iptables`, `iptables-restore` and /proc/sys. With [`IpCommand::with_netns`], every
/// command runs inside that network namespace (`nsenter --net=PATH`), and sysctls are written
/// from a short-lived thread that joined it (net sysctls belong to the opener's namespace).
#[derive(Clone, Debug)]
pub struct IpCommand {
    paths: IpCommandPaths,
    netns: Option<PathBuf>,
}

/// How a command failed: its command line, and exit status plus stderr (or the spawn error).
#[derive(Debug)]
struct CmdFailure {
    cmdline: String,
    code: Option<i32>,
    message: String,
}

impl fmt::Display for CmdFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "`{}` exited {code}: {}", self.cmdline, self.message),
            None => write!(f, "`{}`: {}", self.cmdline, self.message),
        }
    }
}

impl IpCommand {
    pub fn new(paths: IpCommandPaths) -> Self {
        IpCommand { paths, netns: None }
    }

    /// Runs everything inside the network namespace at `netns` (e.g. /run/netns/NAME or
    /// /proc/PID/ns/net).
    pub fn with_netns(mut self, netns: impl Into<PathBuf>) -> Self {
        self.netns = Some(netns.into());
        self
    }

    async fn run(&self, program: &Path, args: &[String]) -> Result<String, CmdFailure> {
        self.run_with_input(program, args, None).await
    }

    async fn run_with_input(
        &self,
        program: &Path,
        args: &[String],
        input: Option<&str>,
    ) -> Result<String, CmdFailure> {
        use tokio::io::AsyncWriteExt;
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = tokio::process::Command::new(&self.paths.nsenter);
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg(program);
                c
            }
            None => tokio::process::Command::new(program),
        };
        let stdin = match input {
            Some(_) => std::process::Stdio::piped(),
            None => std::process::Stdio::null(),
        };
        cmd.args(args)
            .env("LC_ALL", "C")
            .stdin(stdin)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let cmdline = format!("{} {}", program.display(), args.join(" "));
        let failure = |message: String| CmdFailure {
            cmdline: cmdline.clone(),
            code: None,
            message,
        };
        let mut child = cmd.spawn().map_err(|e| failure(e.to_string()))?;
        if let (Some(text), Some(mut pipe)) = (input, child.stdin.take()) {
            pipe.write_all(text.as_bytes())
                .await
                .map_err(|e| failure(format!("write stdin: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| failure(e.to_string()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(CmdFailure {
                cmdline,
                code: out.status.code(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    async fn ip(&self, args: &[String]) -> Result<String, CmdFailure> {
        self.run(&self.paths.ip, args).await
    }

    async fn iptables(
        &self,
        table: &str,
        op: &str,
        chain: &str,
        rule: &[String],
    ) -> Result<String, CmdFailure> {
        let mut args = words(&["-w", "5", "-t", table, op, chain]);
        args.extend_from_slice(rule);
        self.run(&self.paths.iptables, &args).await
    }

    async fn route_cmd(&self, verb: &str, route: &Route) -> Result<String, CmdFailure> {
        let mut args = words(&["route", verb]);
        args.extend(route.ip_words());
        args.extend(words(&["proto", &ROUTE_PROTO.to_string()]));
        self.ip(&args).await
    }

    /// `ip -d -j link show dev NAME`: None if the link does not exist.
    async fn link(&self, name: &str) -> Result<Option<serde_json::Value>, CmdFailure> {
        match self
            .ip(&words(&["-d", "-j", "link", "show", "dev", name]))
            .await
        {
            Ok(out) => Ok(serde_json::from_str::<serde_json::Value>(&out)
                .ok()
                .and_then(|v| v.as_array().and_then(|a| a.first().cloned()))),
            Err(e) if e.message.contains("does not exist") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn chain_exists(&self, table: &str, chain: &str) -> bool {
        self.iptables(table, "-S", chain, &[]).await.is_ok()
    }

    async fn in_netns<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        let Some(ns) = self.netns.clone() else {
            return tokio::task::spawn_blocking(f)
                .await
                .map_err(|e| io::Error::other(e.to_string()))?;
        };
        // A dedicated thread joins the namespace and then exits; pool threads are reused and
        // must never change namespace.
        tokio::task::spawn_blocking(move || {
            let ns_file = std::fs::File::open(&ns)?;
            std::thread::spawn(move || {
                use std::os::fd::AsRawFd;
                // SAFETY: setns only changes the calling thread's network namespace; the fd is
                // valid for the call and this thread exits when `f` returns.
                let rc = unsafe { libc::setns(ns_file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
                f()
            })
            .join()
            .map_err(|_| io::Error::other("netns thread panicked"))?
        })
        .await
        .map_err(|e| io::Error::other(e.to_string()))?
    }
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

/// /proc/sys path of a dotted sysctl key; refuses keys that could escape /proc/sys.
fn sysctl_path(proc_sys: &Path, key: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || p.contains('/') || *p == "..")
    {
        return None;
    }
    Some(parts.iter().fold(proc_sys.to_path_buf(), |p, s| p.join(s)))
}

/// Parses `ip -j route show` output into routes.
pub fn parse_ip_routes(json: &str) -> Result<Vec<Route>, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let entries = value.as_array().ok_or("not a json array")?;
    let mut routes = Vec::new();
    for e in entries {
        let dst = match e.get("dst").and_then(|d| d.as_str()) {
            Some("default") => {
                Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0).map_err(|e| e.to_string())?
            }
            Some(d) => d.parse().map_err(|e: NetworkError| e.to_string())?,
            None => return Err(format!("route without dst: {e}")),
        };
        let rtype = e.get("type").and_then(|t| t.as_str()).unwrap_or("unicast");
        let ip_field = |k: &str| {
            e.get(k)
                .and_then(|v| v.as_str())
                .and_then(|v| v.parse().ok())
        };
        let kind = match rtype {
            "unreachable" => RouteKind::Unreachable,
            "unicast" => match (ip_field("gateway"), e.get("dev").and_then(|d| d.as_str())) {
                (Some(gw), _) => RouteKind::Via(gw),
                (None, Some(dev)) => RouteKind::Dev {
                    dev: dev.to_string(),
                    src: ip_field("prefsrc"),
                },
                (None, None) => RouteKind::Other(rtype.to_string()),
            },
            other => RouteKind::Other(other.to_string()),
        };
        routes.push(Route { dst, kind });
    }
    Ok(routes)
}

/// Interfaces named by `ip -j route show default` output (single-path and multipath).
pub fn parse_default_devices(json: &str) -> Result<Vec<String>, String> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let entries = value.as_array().ok_or("not a json array")?;
    let mut devs = BTreeSet::new();
    for e in entries {
        if let Some(d) = e.get("dev").and_then(|d| d.as_str()) {
            devs.insert(d.to_string());
        }
        for nh in e
            .get("nexthops")
            .and_then(|n| n.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(d) = nh.get("dev").and_then(|d| d.as_str()) {
                devs.insert(d.to_string());
            }
        }
    }
    Ok(devs.into_iter().collect())
}

/// Splits one `iptables -S` line into words: double quotes group, backslash escapes inside
/// quotes (iptables quotes comments with spaces and escapes `"` and `\`).
pub fn split_iptables_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Quotes one word for `iptables-restore` input (the inverse of [`split_iptables_words`]).
fn restore_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && !word
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == '\'');
    if plain {
        return word.to_string();
    }
    let mut out = String::from("\"");
    for c in word.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `iptables-restore --noflush` input that flushes `chain` (creating it if missing) and
/// appends `rules` in order, as one transaction; other chains are not touched.
pub fn restore_chain_input(table: &str, chain: &str, rules: &[Vec<String>]) -> String {
    let mut text = format!("*{table}\n:{chain} - [0:0]\n");
    for rule in rules {
        text.push_str(&format!("-A {chain}"));
        for w in rule {
            text.push(' ');
            text.push_str(&restore_quote(w));
        }
        text.push('\n');
    }
    text.push_str("COMMIT\n");
    text
}

#[async_trait]
impl HostNet for IpCommand {
    async fn list_routes(&self) -> Result<Vec<Route>, NetworkError> {
        let out = self
            .ip(&words(&[
                "-j",
                "route",
                "show",
                "table",
                "main",
                "proto",
                &ROUTE_PROTO.to_string(),
            ]))
            .await
            .map_err(|e| NetworkError::ListRoutes(e.to_string()))?;
        parse_ip_routes(&out).map_err(NetworkError::ListRoutes)
    }

    async fn add_route(&self, route: &Route) -> Result<(), NetworkError> {
        self.route_cmd("add", route)
            .await
            .map(drop)
            .map_err(|e| NetworkError::AddRoute {
                route: route.to_string(),
                detail: e.to_string(),
            })
    }

    async fn replace_route(&self, route: &Route) -> Result<(), NetworkError> {
        self.route_cmd("replace", route)
            .await
            .map(drop)
            .map_err(|e| NetworkError::ReplaceRoute {
                route: route.to_string(),
                detail: e.to_string(),
            })
    }

    async fn delete_route(&self, route: &Route) -> Result<(), NetworkError> {
        self.route_cmd("del", route)
            .await
            .map(drop)
            .map_err(|e| NetworkError::DeleteRoute {
                route: route.to_string(),
                detail: e.to_string(),
            })
    }

    async fn default_route_devices(&self) -> Result<Vec<String>, NetworkError> {
        let out = self
            .ip(&words(&[
                "-4", "-j", "route", "show", "table", "main", "default",
            ]))
            .await
            .map_err(|e| NetworkError::DefaultRoute(e.to_string()))?;
        parse_default_devices(&out).map_err(NetworkError::DefaultRoute)
    }

    async fn ensure_bridge(&self, name: &str) -> Result<bool, NetworkError> {
        let err = |detail: String| NetworkError::EnsureLink {
            link: name.to_string(),
            detail,
        };
        let mut changed = false;
        let link = match self.link(name).await.map_err(|e| err(e.to_string()))? {
            Some(link) => link,
            None => {
                self.ip(&words(&["link", "add", name, "type", "bridge"]))
                    .await
                    .map_err(|e| err(e.to_string()))?;
                changed = true;
                self.link(name)
                    .await
                    .map_err(|e| err(e.to_string()))?
                    .ok_or_else(|| err("missing right after creation".into()))?
            }
        };
        let kind = link
            .pointer("/linkinfo/info_kind")
            .and_then(|k| k.as_str())
            .unwrap_or("");
        if kind != "bridge" {
            return Err(err(format!("exists but is not a bridge (kind {kind:?})")));
        }
        let up = link
            .get("flags")
            .and_then(|f| f.as_array())
            .is_some_and(|f| f.iter().any(|f| f.as_str() == Some("UP")));
        if !up {
            self.ip(&words(&["link", "set", "dev", name, "up"]))
                .await
                .map_err(|e| err(e.to_string()))?;
            changed = true;
        }
        Ok(changed)
    }

    async fn ensure_address(
        &self,
        dev: &str,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<bool, NetworkError> {
        let cidr = format!("{addr}/{prefix}");
        let err = |detail: String| NetworkError::EnsureAddress {
            link: dev.to_string(),
            addr: cidr.clone(),
            detail,
        };
        let out = self
            .ip(&words(&["-4", "-j", "addr", "show", "dev", dev]))
            .await
            .map_err(|e| err(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| err(format!("parse ip addr output: {e}")))?;
        let present = value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.get("addr_info").and_then(|a| a.as_array()))
            .flatten()
            .any(|a| {
                a.get("local").and_then(|l| l.as_str()) == Some(addr.to_string().as_str())
                    && a.get("prefixlen").and_then(|p| p.as_u64()) == Some(u64::from(prefix))
            });
        if present {
            return Ok(false);
        }
        self.ip(&words(&["addr", "add", &cidr, "dev", dev]))
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(true)
    }

    async fn delete_link(&self, name: &str) -> Result<bool, NetworkError> {
        let err = |detail: String| NetworkError::DeleteLink {
            link: name.to_string(),
            detail,
        };
        if self
            .link(name)
            .await
            .map_err(|e| err(e.to_string()))?
            .is_none()
        {
            return Ok(false);
        }
        self.ip(&words(&["link", "del", "dev", name]))
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok(true)
    }

    async fn ensure_chain(&self, table: &str, chain: &str) -> Result<bool, NetworkError> {
        if self.chain_exists(table, chain).await {
            return Ok(false);
        }
        self.iptables(table, "-N", chain, &[])
            .await
            .map_err(|e| NetworkError::EnsureChain {
                chain: chain.to_string(),
                detail: e.to_string(),
            })?;
        Ok(true)
    }

    async fn delete_chain(&self, table: &str, chain: &str) -> Result<bool, NetworkError> {
        if !self.chain_exists(table, chain).await {
            return Ok(false);
        }
        for op in ["-F", "-X"] {
            self.iptables(table, op, chain, &[])
                .await
                .map_err(|e| NetworkError::DeleteChain {
                    chain: chain.to_string(),
                    detail: e.to_string(),
                })?;
        }
        Ok(true)
    }

    async fn replace_chain(
        &self,
        table: &str,
        chain: &str,
        rules: &[Vec<String>],
    ) -> Result<(), NetworkError> {
        let input = restore_chain_input(table, chain, rules);
        self.run_with_input(
            &self.paths.iptables_restore,
            &words(&["-w", "5", "--noflush"]),
            Some(&input),
        )
        .await
        .map(drop)
        .map_err(|e| NetworkError::ReplaceChain {
            chain: chain.to_string(),
            detail: e.to_string(),
        })
    }

    async fn list_rules(&self, table: &str, chain: &str) -> Result<Vec<Vec<String>>, NetworkError> {
        let out =
            self.iptables(table, "-S", chain, &[])
                .await
                .map_err(|e| NetworkError::ListRules {
                    chain: chain.to_string(),
                    detail: e.to_string(),
                })?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let w = split_iptables_words(line);
                (w.len() >= 2 && w[0] == "-A" && w[1] == chain).then(|| w[2..].to_vec())
            })
            .collect())
    }

    async fn ensure_rule(
        &self,
        table: &str,
        chain: &str,
        rule: &[String],
    ) -> Result<bool, NetworkError> {
        if self.iptables(table, "-C", chain, rule).await.is_ok() {
            return Ok(false);
        }
        self.iptables(table, "-I", chain, rule)
            .await
            .map_err(|e| NetworkError::EnsureRule {
                chain: chain.to_string(),
                rule: rule.join(" "),
                detail: e.to_string(),
            })?;
        Ok(true)
    }

    async fn delete_rule(
        &self,
        table: &str,
        chain: &str,
        rule: &[String],
    ) -> Result<bool, NetworkError> {
        let mut deleted = false;
        // Bounded: a rule that -C finds but -D cannot remove must not loop forever.
        for _ in 0..16 {
            if self.iptables(table, "-C", chain, rule).await.is_err() {
                return Ok(deleted);
            }
            self.iptables(table, "-D", chain, rule).await.map_err(|e| {
                NetworkError::DeleteRule {
                    chain: chain.to_string(),
                    rule: rule.join(" "),
                    detail: e.to_string(),
                }
            })?;
            deleted = true;
        }
        Ok(deleted)
    }

    async fn set_sysctl(&self, key: &str, value: &str) -> Result<(), NetworkError> {
        let err = |detail: String| NetworkError::SetSysctl {
            key: key.to_string(),
            detail,
        };
        let path = sysctl_path(&self.paths.proc_sys, key).ok_or_else(|| err("bad key".into()))?;
        let value = value.to_string();
        self.in_netns(move || std::fs::write(&path, value.as_bytes()))
            .await
            .map_err(|e| err(e.to_string()))
    }

    async fn read_sysctl(&self, key: &str) -> Result<String, NetworkError> {
        let err = |detail: String| NetworkError::ReadSysctl {
            key: key.to_string(),
            detail,
        };
        let path = sysctl_path(&self.paths.proc_sys, key).ok_or_else(|| err("bad key".into()))?;
        self.in_netns(move || std::fs::read_to_string(&path))
            .await
            .map(|s| s.trim().to_string())
            .map_err(|e| err(e.to_string()))
    }
}

// ---------------------------------------------------------------------------------------
// Fake
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakeLink {
    pub up: bool,
    pub addrs: Vec<(Ipv4Addr, u8)>,
}

/// The in-memory host of [`FakeHostNet`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FakeState {
    /// Every call, one line each, e.g. "add_route 10.42.1.0/24 via 10.0.0.2".
    pub calls: Vec<String>,
    /// Routes tagged with our protocol.
    pub routes: Vec<Route>,
    /// Routes owned by someone else: never listed, and `add_route` for their dst fails.
    pub foreign_routes: Vec<Route>,
    pub default_devs: Vec<String>,
    pub links: BTreeMap<String, FakeLink>,
    /// (table, chain) -> rules, first rule first. Built-in chains exist implicitly.
    pub chains: BTreeMap<(String, String), Vec<Vec<String>>>,
    pub sysctls: BTreeMap<String, String>,
    /// Route destinations for which add/replace fail (e.g. an unreachable gateway).
    pub fail_dsts: BTreeSet<Ipv4Cidr>,
}

/// Records calls and keeps routes, links, chains and sysctls in memory.
#[derive(Debug, Default)]
pub struct FakeHostNet {
    state: Mutex<FakeState>,
}

const BUILTIN_CHAINS: [&str; 5] = ["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"];

impl FakeHostNet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_state(state: FakeState) -> Self {
        FakeHostNet {
            state: Mutex::new(state),
        }
    }

    pub fn state(&self) -> FakeState {
        self.lock().clone()
    }

    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Changes the state in place (e.g. to move the default route between calls).
    pub fn update(&self, f: impl FnOnce(&mut FakeState)) {
        f(&mut self.lock());
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn chain_key(table: &str, chain: &str) -> (String, String) {
        (table.to_string(), chain.to_string())
    }
}

fn fake_rules<'a>(
    s: &'a mut FakeState,
    table: &str,
    chain: &str,
) -> Option<&'a mut Vec<Vec<String>>> {
    let key = FakeHostNet::chain_key(table, chain);
    if BUILTIN_CHAINS.contains(&chain) {
        return Some(s.chains.entry(key).or_default());
    }
    s.chains.get_mut(&key)
}

#[async_trait]
impl HostNet for FakeHostNet {
    async fn list_routes(&self) -> Result<Vec<Route>, NetworkError> {
        let mut s = self.lock();
        s.calls.push("list_routes".into());
        Ok(s.routes.clone())
    }

    async fn add_route(&self, route: &Route) -> Result<(), NetworkError> {
        let mut s = self.lock();
        s.calls.push(format!("add_route {route}"));
        let taken = s
            .routes
            .iter()
            .chain(&s.foreign_routes)
            .any(|r| r.dst == route.dst);
        if taken || s.fail_dsts.contains(&route.dst) {
            return Err(NetworkError::AddRoute {
                route: route.to_string(),
                detail: if taken {
                    "file exists"
                } else {
                    "injected failure"
                }
                .into(),
            });
        }
        s.routes.push(route.clone());
        Ok(())
    }

    async fn replace_route(&self, route: &Route) -> Result<(), NetworkError> {
        let mut s = self.lock();
        s.calls.push(format!("replace_route {route}"));
        if s.fail_dsts.contains(&route.dst) {
            return Err(NetworkError::ReplaceRoute {
                route: route.to_string(),
                detail: "injected failure".into(),
            });
        }
        s.foreign_routes.retain(|r| r.dst != route.dst);
        match s.routes.iter_mut().find(|r| r.dst == route.dst) {
            Some(r) => *r = route.clone(),
            None => s.routes.push(route.clone()),
        }
        Ok(())
    }

    async fn delete_route(&self, route: &Route) -> Result<(), NetworkError> {
        let mut s = self.lock();
        s.calls.push(format!("delete_route {route}"));
        let before = s.routes.len();
        s.routes.retain(|r| r != route);
        if s.routes.len() == before {
            return Err(NetworkError::DeleteRoute {
                route: route.to_string(),
                detail: "no such process".into(),
            });
        }
        Ok(())
    }

    async fn default_route_devices(&self) -> Result<Vec<String>, NetworkError> {
        let mut s = self.lock();
        s.calls.push("default_route_devices".into());
        Ok(s.default_devs.clone())
    }

    async fn ensure_bridge(&self, name: &str) -> Result<bool, NetworkError> {
        let mut s = self.lock();
        s.calls.push(format!("ensure_bridge {name}"));
        let link = s.links.entry(name.to_string()).or_default();
        let changed = !link.up;
        link.up = true;
        Ok(changed)
    }

    async fn ensure_address(
        &self,
        dev: &str,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<bool, NetworkError> {
        let mut s = self.lock();
        s.calls
            .push(format!("ensure_address {dev} {addr}/{prefix}"));
        let Some(link) = s.links.get_mut(dev) else {
            return Err(NetworkError::EnsureAddress {
                link: dev.to_string(),
                addr: format!("{addr}/{prefix}"),
                detail: "no such device".into(),
            });
        };
        if link.addrs.contains(&(addr, prefix)) {
            return Ok(false);
        }
        link.addrs.push((addr, prefix));
        Ok(true)
    }

    async fn delete_link(&self, name: &str) -> Result<bool, NetworkError> {
        let mut s = self.lock();
        s.calls.push(format!("delete_link {name}"));
        let existed = s.links.remove(name).is_some();
        // like the kernel: routes through the link go with it
        s.routes
            .retain(|r| !matches!(&r.kind, RouteKind::Dev { dev, .. } if dev == name));
        Ok(existed)
    }

    async fn ensure_chain(&self, table: &str, chain: &str) -> Result<bool, NetworkError> {
        let mut s = self.lock();
        s.calls.push(format!("ensure_chain {table} {chain}"));
        let key = Self::chain_key(table, chain);
        if s.chains.contains_key(&key) {
            return Ok(false);
        }
        s.chains.insert(key, Vec::new());
        Ok(true)
    }

    async fn delete_chain(&self, table: &str, chain: &str) -> Result<bool, NetworkError> {
        let mut s = self.lock();
        s.calls.push(format!("delete_chain {table} {chain}"));
        let jumped_to = s
            .chains
            .values()
            .flatten()
            .any(|r| r.windows(2).any(|w| w[0] == "-j" && w[1] == chain));
        if jumped_to {
            return Err(NetworkError::DeleteChain {
                chain: chain.to_string(),
                detail: "device or resource busy".into(),
            });
        }
        Ok(s.chains.remove(&Self::chain_key(table, chain)).is_some())
    }

    async fn replace_chain(
        &self,
        table: &str,
        chain: &str,
        rules: &[Vec<String>],
    ) -> Result<(), NetworkError> {
        let mut s = self.lock();
        s.calls.push(format!(
            "replace_chain {table} {chain} ({} rules)",
            rules.len()
        ));
        s.chains
            .insert(Self::chain_key(table, chain), rules.to_vec());
        Ok(())
    }

    async fn list_rules(&self, table: &str, chain: &str) -> Result<Vec<Vec<String>>, NetworkError> {
        let mut s = self.lock();
        s.calls.push(format!("list_rules {table} {chain}"));
        fake_rules(&mut s, table, chain)
            .map(|r| r.clone())
            .ok_or_else(|| NetworkError::ListRules {
                chain: chain.to_string(),
                detail: "no chain by that name".into(),
            })
    }

    async fn ensure_rule(
        &self,
        table: &str,
        chain: &str,
        rule: &[String],
    ) -> Result<bool, NetworkError> {
        let mut s = self.lock();
        s.calls
            .push(format!("ensure_rule {table} {chain} {}", rule.join(" ")));
        let rules = fake_rules(&mut s, table, chain).ok_or_else(|| NetworkError::EnsureRule {
            chain: chain.to_string(),
            rule: rule.join(" "),
            detail: "no chain by that name".into(),
        })?;
        if rules.iter().any(|r| r == rule) {
            return Ok(false);
        }
        rules.insert(0, rule.to_vec());
        Ok(true)
    }

    async fn delete_rule(
        &self,
        table: &str,
        chain: &str,
        rule: &[String],
    ) -> Result<bool, NetworkError> {
        let mut s = self.lock();
        s.calls
            .push(format!("delete_rule {table} {chain} {}", rule.join(" ")));
        let Some(rules) = fake_rules(&mut s, table, chain) else {
            return Ok(false);
        };
        let before = rules.len();
        rules.retain(|r| r != rule);
        Ok(rules.len() != before)
    }

    async fn set_sysctl(&self, key: &str, value: &str) -> Result<(), NetworkError> {
        let mut s = self.lock();
        s.calls.push(format!("set_sysctl {key}={value}"));
        s.sysctls.insert(key.to_string(), value.to_string());
        Ok(())
    }

    async fn read_sysctl(&self, key: &str) -> Result<String, NetworkError> {
        let mut s = self.lock();
        s.calls.push(format!("read_sysctl {key}"));
        s.sysctls
            .get(key)
            .cloned()
            .ok_or_else(|| NetworkError::ReadSysctl {
                key: key.to_string(),
                detail: "no such file or directory".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().expect("test cidr")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("test ip")
    }

    fn node(name: &str, pod_cidr: Option<&str>, internal_ip: Option<&str>) -> NodeRouteInfo {
        NodeRouteInfo {
            name: name.into(),
            pod_cidr: pod_cidr.map(String::from),
            internal_ip: internal_ip.map(String::from),
        }
    }

    fn settings(pod: &str) -> CniSettings {
        CniSettings {
            network_name: NETWORK_NAME.into(),
            bridge: POD_BRIDGE.into(),
            pod_cidr: cidr(pod),
            cluster_cidr: cidr(DEFAULT_CLUSTER_CIDR),
            service_cidr: cidr(DEFAULT_SERVICE_CIDR),
            ipam_data_dir: "/var/lib/minik8s/cni/ipam".into(),
            mtu: None,
        }
    }

    #[test]
    fn cidr_parse_normalize_and_contains() {
        let c = cidr("10.42.3.7/24");
        assert_eq!(c.to_string(), "10.42.3.0/24");
        assert_eq!(c.network(), ip("10.42.3.0"));
        assert!(c.contains(ip("10.42.3.255")));
        assert!(!c.contains(ip("10.42.4.0")));
        assert!(cidr("10.42.0.0/16").covers(&c));
        assert!(!c.covers(&cidr("10.42.0.0/16")));
        assert_eq!(cidr("10.1.2.3").to_string(), "10.1.2.3/32");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert!(cidr("0.0.0.0/0").contains(ip("192.0.2.1")));
        for bad in [
            "10.42.0.0/33",
            "10.42.0/24",
            "x/8",
            "10.42.0.0/",
            "fd00::/64",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn gateway_is_first_address() {
        assert_eq!(gateway_ip("10.42.3.0/24").expect("gw"), ip("10.42.3.1"));
        assert_eq!(gateway_ip("10.42.0.0/16").expect("gw"), ip("10.42.0.1"));
        assert!(matches!(
            gateway_ip("10.42.3.0/31"),
            Err(NetworkError::NoGateway { .. })
        ));
        assert!(matches!(
            gateway_ip("nope"),
            Err(NetworkError::InvalidCidr { .. })
        ));
    }

    #[test]
    fn conflist_matches_reference_layout() {
        let text = cni_conflist(&settings("10.42.1.0/24")).expect("conflist");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["name"], "minik8s");
        let bridge = &v["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["bridge"], "cni0");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["hairpinMode"], true);
        assert!(bridge.get("mtu").is_none());
        let ipam = &bridge["ipam"];
        assert_eq!(ipam["type"], "host-local");
        assert_eq!(ipam["ranges"][0][0]["subnet"], "10.42.1.0/24");
        assert_eq!(ipam["ranges"][0][0]["gateway"], "10.42.1.1");
        assert_eq!(ipam["routes"], serde_json::json!([{"dst": "0.0.0.0/0"}]));
        assert_eq!(ipam["dataDir"], "/var/lib/minik8s/cni/ipam");
        assert_eq!(v["plugins"][1]["type"], "portmap");
        assert_eq!(v["plugins"][1]["capabilities"]["portMappings"], true);
        assert_eq!(v["plugins"].as_array().map(|a| a.len()), Some(2));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn conflist_mtu_and_bad_pod_cidr() {
        let mut s = settings("10.42.1.0/24");
        s.mtu = Some(1400);
        let v: serde_json::Value =
            serde_json::from_str(&cni_conflist(&s).expect("conflist")).expect("json");
        assert_eq!(v["plugins"][0]["mtu"], 1400);
        s.pod_cidr = cidr("10.42.1.0/32");
        assert!(matches!(
            cni_conflist(&s),
            Err(NetworkError::NoGateway { .. })
        ));
    }

    #[test]
    fn write_cni_config_is_atomic_and_reports_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf_dir = dir.path().join("net.d");
        assert!(write_cni_config(&conf_dir, "one\n").expect("write"));
        let path = conf_dir.join(CNI_CONFIG_FILE);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "one\n");
        assert!(!write_cni_config(&conf_dir, "one\n").expect("rewrite"));
        assert!(write_cni_config(&conf_dir, "two\n").expect("change"));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "two\n");
        let names: Vec<String> = std::fs::read_dir(&conf_dir)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec![CNI_CONFIG_FILE.to_string()],
            "no temp files left"
        );
    }

    #[test]
    fn desired_routes_host_gw_guard_and_service() {
        let nodes = vec![
            node("c", Some("10.42.2.0/24"), Some("10.99.0.3")),
            node("a", Some("10.42.0.0/24"), Some("10.99.0.1")),
            node("b", Some("10.42.1.0/24"), Some("10.99.0.2")),
            node("no-ip", Some("10.42.5.0/24"), None),
            node("no-cidr", None, Some("10.99.0.9")),
            node("bad", Some("garbage"), Some("10.99.0.8")),
            node("v6", Some("fd00:42::/64"), Some("10.99.0.7")),
            node("dup", Some("10.42.1.0/24"), Some("10.99.0.6")),
            node("whole", Some("10.42.0.0/16"), Some("10.99.0.5")),
            node("mine", Some("10.42.0.0/25"), Some("10.99.0.4")),
        ];
        let routes = desired_routes(
            "a",
            &nodes,
            cidr("10.42.0.0/16"),
            cidr("10.43.0.0/16"),
            SVC_BRIDGE,
            ip("10.42.0.1"),
        );
        let text: Vec<String> = routes.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "10.42.1.0/24 via 10.99.0.2",
                "10.42.2.0/24 via 10.99.0.3",
                "unreachable 10.42.0.0/16",
                "10.43.0.0/16 dev minik8s-svc0 src 10.42.0.1",
            ]
        );
    }

    #[test]
    fn desired_routes_single_node_has_only_guards() {
        let routes = desired_routes(
            "solo",
            &[node("solo", Some("10.42.0.0/24"), Some("192.0.2.2"))],
            cidr("10.42.0.0/16"),
            cidr("10.43.0.0/16"),
            "svc",
            ip("10.42.0.1"),
        );
        assert_eq!(
            routes,
            vec![
                Route::unreachable(cidr("10.42.0.0/16")),
                Route::dev(cidr("10.43.0.0/16"), "svc", Some(ip("10.42.0.1"))),
            ]
        );
    }

    #[tokio::test]
    async fn reconcile_adds_replaces_deletes_and_keeps_foreign() {
        let foreign = Route::via(cidr("10.42.8.0/24"), ip("192.0.2.9"));
        let fake = FakeHostNet::with_state(FakeState {
            routes: vec![
                Route::via(cidr("10.42.1.0/24"), ip("10.99.0.20")), // changed gateway
                Route::via(cidr("10.42.9.0/24"), ip("10.99.0.9")),  // stale
                Route::unreachable(cidr("10.42.0.0/16")),           // unchanged
            ],
            foreign_routes: vec![foreign.clone()],
            ..FakeState::default()
        });
        let desired = vec![
            Route::via(cidr("10.42.1.0/24"), ip("10.99.0.2")),
            Route::via(cidr("10.42.2.0/24"), ip("10.99.0.3")),
            Route::unreachable(cidr("10.42.0.0/16")),
            Route::dev(cidr("10.43.0.0/16"), SVC_BRIDGE, Some(ip("10.42.0.1"))),
        ];
        let ch = reconcile_routes(&fake, &desired).await.expect("reconcile");
        assert_eq!(
            ch.deleted,
            vec![Route::via(cidr("10.42.9.0/24"), ip("10.99.0.9"))]
        );
        assert_eq!(
            ch.replaced,
            vec![Route::via(cidr("10.42.1.0/24"), ip("10.99.0.2"))]
        );
        assert_eq!(ch.added, vec![desired[1].clone(), desired[3].clone()]);
        assert!(ch.failed.is_empty());
        let state = fake.state();
        let mut have = state.routes.clone();
        have.sort();
        let mut want = desired.clone();
        want.sort();
        assert_eq!(have, want);
        assert_eq!(state.foreign_routes, vec![foreign]);
        assert!(!state.calls.iter().any(|c| c.contains("10.42.8.0")));

        // second pass: nothing to do, only the listing
        let ch = reconcile_routes(&fake, &desired).await.expect("reconcile");
        assert!(ch.is_empty(), "{ch:?}");
        assert_eq!(fake.calls().last().map(String::as_str), Some("list_routes"));
    }

    #[tokio::test]
    async fn reconcile_never_takes_over_a_foreign_route_and_continues_on_failure() {
        let fake = FakeHostNet::with_state(FakeState {
            foreign_routes: vec![Route::via(cidr("10.42.1.0/24"), ip("192.0.2.7"))],
            fail_dsts: [cidr("10.42.2.0/24")].into_iter().collect(),
            ..FakeState::default()
        });
        let desired = vec![
            Route::via(cidr("10.42.1.0/24"), ip("10.99.0.2")),
            Route::via(cidr("10.42.2.0/24"), ip("10.99.0.3")),
            Route::unreachable(cidr("10.42.0.0/16")),
        ];
        let ch = reconcile_routes(&fake, &desired).await.expect("reconcile");
        assert_eq!(ch.added, vec![Route::unreachable(cidr("10.42.0.0/16"))]);
        let failed: Vec<String> = ch.failed.iter().map(|(r, _)| r.to_string()).collect();
        assert_eq!(
            failed,
            vec!["10.42.1.0/24 via 10.99.0.2", "10.42.2.0/24 via 10.99.0.3"]
        );
        assert!(ch.failed[0].1.contains("file exists"));
        assert!(!fake.calls().iter().any(|c| c.starts_with("replace_route")));
    }

    #[tokio::test]
    async fn remove_routes_deletes_only_ours() {
        let fake = FakeHostNet::with_state(FakeState {
            routes: vec![Route::unreachable(cidr("10.42.0.0/16"))],
            foreign_routes: vec![Route::via(cidr("10.50.0.0/16"), ip("192.0.2.7"))],
            ..FakeState::default()
        });
        let ch = remove_routes(&fake).await.expect("remove");
        assert_eq!(ch.deleted, vec![Route::unreachable(cidr("10.42.0.0/16"))]);
        let s = fake.state();
        assert!(s.routes.is_empty());
        assert_eq!(s.foreign_routes.len(), 1);
    }

    #[tokio::test]
    async fn pod_bridge_gets_gateway_address_once() {
        let fake = FakeHostNet::new();
        assert!(ensure_pod_bridge(&fake, POD_BRIDGE, cidr("10.42.3.0/24"))
            .await
            .expect("bridge"));
        assert!(!ensure_pod_bridge(&fake, POD_BRIDGE, cidr("10.42.3.0/24"))
            .await
            .expect("bridge again"));
        let s = fake.state();
        assert_eq!(
            s.links.get(POD_BRIDGE),
            Some(&FakeLink {
                up: true,
                addrs: vec![(ip("10.42.3.1"), 24)]
            })
        );
    }

    #[test]
    fn guard_rules_exempt_host_gw_then_reject_cluster_and_service() {
        let (cl, sv) = (cidr("10.42.0.0/16"), cidr("10.43.0.0/16"));
        assert!(guard_rules(&[], cl, sv, &[cidr("10.42.1.0/24")]).is_empty());
        let rules = guard_rules(
            &["eth0".to_string(), "eth1".to_string()],
            cl,
            sv,
            &[cidr("10.42.1.0/24"), cidr("10.42.2.0/24")],
        );
        let summary: Vec<String> = rules
            .iter()
            .map(|r| format!("{} {} {}", r[1], r[3], r[9]))
            .collect();
        assert_eq!(
            summary,
            vec![
                "10.42.1.0/24 eth0 RETURN",
                "10.42.2.0/24 eth0 RETURN",
                "10.42.0.0/16 eth0 REJECT",
                "10.43.0.0/16 eth0 REJECT",
                "10.42.1.0/24 eth1 RETURN",
                "10.42.2.0/24 eth1 RETURN",
                "10.42.0.0/16 eth1 REJECT",
                "10.43.0.0/16 eth1 REJECT",
            ]
        );
        for r in rules.iter().filter(|r| r[9] == "REJECT") {
            assert_eq!(
                r[r.len() - 4..],
                ["-j", "REJECT", "--reject-with", "icmp-net-unreachable"]
            );
        }
        assert!(!rules.iter().flatten().any(|w| w.starts_with("10.0.0.0")));
    }

    #[test]
    fn restore_input_round_trips_through_the_save_parser() {
        let rules = guard_rules(
            &["eth0".to_string()],
            cidr("10.42.0.0/16"),
            cidr("10.43.0.0/16"),
            &[cidr("10.42.1.0/24")],
        );
        let text = restore_chain_input("filter", GUARD_CHAIN, &rules);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "*filter");
        assert_eq!(lines[1], ":MINIK8S-GUARD - [0:0]");
        assert_eq!(lines.last(), Some(&"COMMIT"));
        assert_eq!(lines.len(), rules.len() + 3);
        for (line, rule) in lines[2..].iter().zip(&rules) {
            let w = split_iptables_words(line);
            assert_eq!(w[..2], ["-A", GUARD_CHAIN]);
            assert_eq!(&w[2..], &rule[..]);
        }
        assert!(text.contains("--comment \"minik8s: host-gw route to another node\""));
        let odd = vec![vec![
            "--comment".to_string(),
            "a \"b\" \\ c".to_string(),
            String::new(),
        ]];
        let line = restore_chain_input("nat", "X", &odd);
        let parsed = split_iptables_words(line.lines().nth(2).expect("rule line"));
        assert_eq!(&parsed[2..], &odd[0][..]);
    }

    fn guard_chain(fake: &FakeHostNet) -> Vec<Vec<String>> {
        fake.state().chains[&("filter".to_string(), GUARD_CHAIN.to_string())].clone()
    }

    #[tokio::test]
    async fn install_guards_builds_chain_follows_default_route_and_is_idempotent() {
        let fake = FakeHostNet::with_state(FakeState {
            default_devs: vec!["eth0".into()],
            routes: vec![
                Route::via(cidr("10.42.1.0/24"), ip("192.0.2.3")),
                Route::via(cidr("10.50.0.0/24"), ip("192.0.2.4")), // not a pod cidr
                Route::unreachable(cidr("10.42.0.0/16")),
            ],
            ..FakeState::default()
        });
        let (cl, sv) = (cidr("10.42.0.0/16"), cidr("10.43.0.0/16"));
        let report = install_guards(&fake, cl, sv).await.expect("install");
        assert!(report.bridge_created && report.chain_rewritten);
        assert_eq!(
            report.added.len(),
            7,
            "3 chain rules, 2 jumps, the masquerade rule and its jump: {report:?}"
        );
        assert_eq!(
            fake.state().chains[&(MASQ_TABLE.to_string(), MASQ_CHAIN.to_string())],
            masq_rules(cl)
        );
        assert_eq!(
            fake.state().chains[&(MASQ_TABLE.to_string(), "POSTROUTING".to_string())],
            vec![masq_jump_rule()]
        );
        assert!(report.removed.is_empty());
        let s = fake.state();
        assert_eq!(
            s.sysctls.get("net.ipv4.ip_forward").map(String::as_str),
            Some("1")
        );
        assert!(s.links.get(SVC_BRIDGE).is_some_and(|l| l.up));
        assert_eq!(
            guard_chain(&fake),
            guard_rules(&["eth0".into()], cl, sv, &[cidr("10.42.1.0/24")])
        );
        for hook in GUARD_HOOKS {
            assert_eq!(
                s.chains[&("filter".to_string(), hook.to_string())],
                vec![guard_jump_rule()]
            );
        }

        let again = install_guards(&fake, cl, sv).await.expect("again");
        assert!(again.is_empty(), "{again:?}");
        let rewrites = fake
            .calls()
            .iter()
            .filter(|c| c.starts_with("replace_chain"))
            .count();
        assert_eq!(
            rewrites, 2,
            "the guard and masquerade chains once each; unchanged chains are not rewritten"
        );

        // a new host-gw route gets its exemption, ahead of the rejects
        fake.update(|s| {
            s.routes
                .push(Route::via(cidr("10.42.2.0/24"), ip("192.0.2.5")))
        });
        let grown = install_guards(&fake, cl, sv).await.expect("grown");
        assert_eq!(grown.added.len(), 1, "{grown:?}");
        assert!(grown.added[0].contains("10.42.2.0/24"));
        assert_eq!(
            guard_chain(&fake),
            guard_rules(
                &["eth0".into()],
                cl,
                sv,
                &[cidr("10.42.1.0/24"), cidr("10.42.2.0/24")]
            )
        );

        // the default route moves to eth1: old rules go, new ones come
        fake.update(|s| s.default_devs = vec!["eth1".into()]);
        let moved = install_guards(&fake, cl, sv).await.expect("moved");
        assert_eq!(moved.removed.len(), 4);
        assert_eq!(moved.added.len(), 4);
        assert!(moved.added.iter().all(|r| r.contains("-o eth1")));
        assert!(guard_chain(&fake)
            .iter()
            .all(|r| r.contains(&"eth1".to_string())));

        // no default route at all: the chain stays, empty
        fake.update(|s| s.default_devs.clear());
        let none = install_guards(&fake, cl, sv).await.expect("none");
        assert_eq!(none.removed.len(), 4);
        assert!(guard_chain(&fake).is_empty());
    }

    #[tokio::test]
    async fn install_guards_ignores_our_own_bridges_as_default_devices() {
        let fake = FakeHostNet::with_state(FakeState {
            default_devs: vec![SVC_BRIDGE.into(), POD_BRIDGE.into()],
            ..FakeState::default()
        });
        install_guards(&fake, cidr("10.42.0.0/16"), cidr("10.43.0.0/16"))
            .await
            .expect("install");
        assert!(fake.state().chains[&("filter".to_string(), GUARD_CHAIN.to_string())].is_empty());
    }

    #[tokio::test]
    async fn remove_guards_undoes_install() {
        let fake = FakeHostNet::with_state(FakeState {
            default_devs: vec!["eth0".into()],
            routes: vec![Route::dev(
                cidr("10.43.0.0/16"),
                SVC_BRIDGE,
                Some(ip("10.42.0.1")),
            )],
            ..FakeState::default()
        });
        install_guards(&fake, cidr("10.42.0.0/16"), cidr("10.43.0.0/16"))
            .await
            .expect("install");
        remove_guards(&fake).await.expect("remove");
        let s = fake.state();
        assert!(!s
            .chains
            .contains_key(&("filter".to_string(), GUARD_CHAIN.to_string())));
        for hook in GUARD_HOOKS {
            assert!(s.chains[&("filter".to_string(), hook.to_string())].is_empty());
        }
        assert!(!s
            .chains
            .contains_key(&(MASQ_TABLE.to_string(), MASQ_CHAIN.to_string())));
        assert!(s.chains[&(MASQ_TABLE.to_string(), "POSTROUTING".to_string())].is_empty());
        assert!(!s.links.contains_key(SVC_BRIDGE));
        assert!(
            s.routes.is_empty(),
            "the service route goes with its bridge"
        );
        // removing twice is fine
        remove_guards(&fake).await.expect("remove again");
    }

    #[test]
    fn parse_ip_route_json() {
        let json = r#"[{"type":"unreachable","dst":"10.42.0.0/16","flags":[]},
            {"dst":"10.42.1.0/24","gateway":"10.99.0.11","dev":"eth0","flags":[]},
            {"dst":"10.43.0.0/16","dev":"minik8s-svc0","scope":"link","prefsrc":"10.42.0.1","flags":[]},
            {"dst":"10.42.7.5","dev":"eth0","scope":"link","flags":[]},
            {"type":"blackhole","dst":"10.42.6.0/24","flags":[]},
            {"dst":"default","gateway":"10.99.0.1","dev":"eth0","flags":[]}]"#;
        let routes = parse_ip_routes(json).expect("parse");
        assert_eq!(
            routes,
            vec![
                Route::unreachable(cidr("10.42.0.0/16")),
                Route::via(cidr("10.42.1.0/24"), ip("10.99.0.11")),
                Route::dev(cidr("10.43.0.0/16"), SVC_BRIDGE, Some(ip("10.42.0.1"))),
                Route::dev(cidr("10.42.7.5/32"), "eth0", None),
                Route {
                    dst: cidr("10.42.6.0/24"),
                    kind: RouteKind::Other("blackhole".into())
                },
                Route::via(cidr("0.0.0.0/0"), ip("10.99.0.1")),
            ]
        );
        assert_eq!(
            routes[4].to_string(),
            "blackhole 10.42.6.0/24",
            "delete words keep the type"
        );
        assert_eq!(parse_ip_routes("[]").expect("empty"), vec![]);
        assert!(parse_ip_routes("{}").is_err());
        assert!(parse_ip_routes(r#"[{"gateway":"1.2.3.4"}]"#).is_err());
    }

    #[test]
    fn parse_default_route_devices() {
        let json = r#"[{"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},
            {"dst":"default","flags":[],"nexthops":[{"gateway":"198.51.100.1","dev":"eth1"},
            {"gateway":"198.51.100.2","dev":"eth2"}]}]"#;
        assert_eq!(
            parse_default_devices(json).expect("parse"),
            vec!["eth0", "eth1", "eth2"]
        );
        assert!(parse_default_devices("[]").expect("empty").is_empty());
    }

    #[test]
    fn split_iptables_save_lines() {
        let line = r#"-A MINIK8S-GUARD -d 10.42.0.0/16 -o eth0 -m comment --comment "minik8s: a \"b\" c" -j REJECT"#;
        assert_eq!(
            split_iptables_words(line),
            vec![
                "-A",
                "MINIK8S-GUARD",
                "-d",
                "10.42.0.0/16",
                "-o",
                "eth0",
                "-m",
                "comment",
                "--comment",
                "minik8s: a \"b\" c",
                "-j",
                "REJECT"
            ]
        );
        assert_eq!(
            split_iptables_words("-A X --comment plain  -j Y"),
            vec!["-A", "X", "--comment", "plain", "-j", "Y"]
        );
        assert_eq!(
            split_iptables_words(r#"--comment """#),
            vec!["--comment", ""]
        );
    }

    #[test]
    fn sysctl_keys_stay_under_proc_sys() {
        let root = Path::new("/proc/sys");
        assert_eq!(
            sysctl_path(root, "net.ipv4.ip_forward"),
            Some(PathBuf::from("/proc/sys/net/ipv4/ip_forward"))
        );
        assert_eq!(sysctl_path(root, "net..x"), None);
        assert_eq!(sysctl_path(root, "net/../../etc"), None);
        assert_eq!(sysctl_path(root, ""), None);
    }

    #[test]
    fn node_route_info_from_node() {
        let n: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "spec": {"podCIDR": "10.42.1.0/24"},
            "status": {"addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "10.99.0.2"}
            ]}
        }))
        .expect("node");
        assert_eq!(
            NodeRouteInfo::from_node(&n),
            node("n1", Some("10.42.1.0/24"), Some("10.99.0.2"))
        );
        assert_eq!(
            NodeRouteInfo::from_node(&Default::default()),
            NodeRouteInfo::default()
        );
    }
}

/// Real kernel checks inside throwaway network namespaces: root only, run with `--ignored`.
/// Each namespace is held by an `unshare --net sleep` process (nothing is mounted, nothing
/// goes under /run/netns); killing the holder removes the namespace and its links. Nothing
/// here touches the root namespace, which is checked at the end.
#[cfg(test)]
mod netns_tests {
    use super::*;
    use std::process::{Child, Command, Output, Stdio};
    use std::time::{Duration, Instant};

    struct Netns {
        child: Child,
        path: PathBuf,
    }

    impl Netns {
        fn spawn() -> Netns {
            let ours = std::fs::read_link("/proc/self/ns/net").expect("own netns");
            let child = Command::new("unshare")
                .args(["--net", "--", "sleep", "300"])
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn unshare");
            let path = PathBuf::from(format!("/proc/{}/ns/net", child.id()));
            let ns = Netns { child, path };
            // Until unshare(2) has run, /proc/PID/ns/net is still the root namespace: wait.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match std::fs::read_link(&ns.path) {
                    Ok(l) if l != ours => break,
                    _ => {}
                }
                assert!(
                    Instant::now() < deadline,
                    "holder never left the root netns"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            ns
        }

        fn pid(&self) -> u32 {
            self.child.id()
        }

        fn net(&self) -> IpCommand {
            IpCommand::new(IpCommandPaths::default()).with_netns(&self.path)
        }

        fn run(&self, program: &str, args: &[&str]) -> Output {
            Command::new("nsenter")
                .arg(format!("--net={}", self.path.display()))
                .arg("--")
                .arg(program)
                .args(args)
                .env("LC_ALL", "C")
                .output()
                .expect("nsenter")
        }

        fn sh(&self, script: &str) -> String {
            let out = self.run("sh", &["-c", script]);
            assert!(
                out.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Read-only view of the root namespace: main routes, link names, ip_forward, nft tables.
    fn root_snapshot() -> Vec<String> {
        let cmd = |p: &str, a: &[&str]| {
            let o = Command::new(p).args(a).output().expect("root read");
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let links = cmd("ip", &["-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_string()))
            .collect::<Vec<_>>()
            .join(",");
        vec![
            cmd("ip", &["route", "show", "table", "main"]),
            links,
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("ip_forward"),
            cmd("nft", &["list", "tables"]),
        ]
    }

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().expect("test cidr")
    }

    fn node(name: &str, pod_cidr: &str, ip: Option<&str>) -> NodeRouteInfo {
        NodeRouteInfo {
            name: name.into(),
            pod_cidr: Some(pod_cidr.into()),
            internal_ip: ip.map(String::from),
        }
    }

    fn trimmed_lines(s: &str) -> Vec<String> {
        s.lines().map(|l| l.trim().to_string()).collect()
    }

    #[tokio::test]
    #[ignore = "needs root, unshare, nsenter, ip, iptables, busybox and /usr/lib/cni"]
    async fn real_netns_host_gw_guards_and_bridge_plugin() {
        let root_before = root_snapshot();
        {
            let (a, b, pod) = (Netns::spawn(), Netns::spawn(), Netns::spawn());
            a.sh(&format!(
                "ip link set lo up && ip link add eth0 type veth peer name eth0 netns {} && \
                 ip addr add 10.99.0.1/24 dev eth0 && ip link set eth0 up",
                b.pid()
            ));
            b.sh("ip link set lo up && ip addr add 10.99.0.2/24 dev eth0 && ip link set eth0 up");
            pod.sh("ip link set lo up");
            assert!(a.sh("ip route show default").trim().is_empty());

            let (cl, sv) = (cidr(DEFAULT_CLUSTER_CIDR), cidr(DEFAULT_SERVICE_CIDR));
            let nodes = vec![
                node("a", "10.42.0.0/24", Some("10.99.0.1")),
                node("b", "10.42.1.0/24", Some("10.99.0.2")),
                node("c", "10.42.2.0/24", None),
            ];
            let (net_a, net_b) = (a.net(), b.net());
            for (net, name, pod_cidr) in
                [(&net_a, "a", "10.42.0.0/24"), (&net_b, "b", "10.42.1.0/24")]
            {
                assert!(ensure_pod_bridge(net, POD_BRIDGE, cidr(pod_cidr))
                    .await
                    .expect("pod bridge"));
                let g = install_guards(net, cl, sv).await.expect("guards");
                assert!(g.bridge_created);
                assert_eq!(
                    g.added.len(),
                    2,
                    "only the jumps without a default route: {g:?}"
                );
                let gw = gateway_ip(pod_cidr).expect("gateway");
                let desired = desired_routes(name, &nodes, cl, sv, SVC_BRIDGE, gw);
                let ch = reconcile_routes(net, &desired).await.expect("routes");
                assert_eq!(ch.added.len(), 3, "{ch:?}");
                assert!(ch.failed.is_empty(), "{ch:?}");
            }
            assert_eq!(
                trimmed_lines(&a.sh("ip route show proto 77")),
                vec![
                    "unreachable 10.42.0.0/16",
                    "10.42.1.0/24 via 10.99.0.2 dev eth0",
                    "10.43.0.0/16 dev minik8s-svc0 scope link src 10.42.0.1",
                ]
            );
            assert!(a
                .sh("ip route show dev cni0")
                .contains("10.42.0.0/24 proto kernel scope link src 10.42.0.1"));
            // routing decisions only (ip route get sends nothing)
            let lost = a.run("ip", &["route", "get", "10.42.7.1"]);
            assert!(!lost.status.success());
            let why = String::from_utf8_lossy(&lost.stderr);
            assert!(why.contains("No route to host"), "{why}");
            assert!(a
                .sh("ip route get 10.43.0.10")
                .contains("dev minik8s-svc0 src 10.42.0.1"));
            assert!(a
                .sh("ip route get 10.42.1.9")
                .contains("via 10.99.0.2 dev eth0"));

            // sysctl went to the namespace
            assert_eq!(
                net_a
                    .read_sysctl("net.ipv4.ip_forward")
                    .await
                    .expect("read"),
                "1"
            );
            assert_eq!(a.sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");

            // guard chain and jumps
            let saved = a.sh("iptables -S");
            assert!(saved.contains("-N MINIK8S-GUARD"), "{saved}");
            for hook in GUARD_HOOKS {
                let jump =
                    format!("-A {hook} -m comment --comment \"{JUMP_COMMENT}\" -j MINIK8S-GUARD");
                assert!(saved.contains(&jump), "{saved}");
            }
            assert!(net_a
                .list_rules(GUARD_TABLE, GUARD_CHAIN)
                .await
                .expect("list")
                .is_empty());

            // idempotent
            let again = install_guards(&net_a, cl, sv).await.expect("guards again");
            assert!(again.is_empty(), "{again:?}");
            let desired_a = desired_routes(
                "a",
                &nodes,
                cl,
                sv,
                SVC_BRIDGE,
                "10.42.0.1".parse().expect("ip"),
            );
            let ch = reconcile_routes(&net_a, &desired_a).await.expect("again");
            assert!(ch.is_empty(), "{ch:?}");

            // stale tagged route goes, foreign route stays, a moved node is replaced
            a.sh("ip route add 10.42.9.0/24 via 10.99.0.2 proto 77 && ip route add 10.42.8.0/24 via 10.99.0.2");
            let mut moved = nodes.clone();
            moved[1].internal_ip = Some("10.99.0.3".into());
            let gw_a: Ipv4Addr = "10.42.0.1".parse().expect("ip");
            let ch = reconcile_routes(
                &net_a,
                &desired_routes("a", &moved, cl, sv, SVC_BRIDGE, gw_a),
            )
            .await
            .expect("moved");
            assert_eq!(
                ch.deleted,
                vec![Route::via(
                    cidr("10.42.9.0/24"),
                    "10.99.0.2".parse().expect("ip")
                )]
            );
            assert_eq!(
                ch.replaced,
                vec![Route::via(
                    cidr("10.42.1.0/24"),
                    "10.99.0.3".parse().expect("ip")
                )]
            );
            assert!(ch.added.is_empty() && ch.failed.is_empty(), "{ch:?}");
            assert!(a
                .sh("ip route show")
                .contains("10.42.8.0/24 via 10.99.0.2 dev eth0"));
            // a gateway that is not on-link fails alone; the rest still converges
            let mut offlink = nodes.clone();
            offlink[1].internal_ip = Some("192.0.2.77".into());
            offlink[2].internal_ip = Some("10.99.0.4".into());
            let ch = reconcile_routes(
                &net_a,
                &desired_routes("a", &offlink, cl, sv, SVC_BRIDGE, gw_a),
            )
            .await
            .expect("offlink");
            assert_eq!(ch.failed.len(), 1, "{ch:?}");
            assert_eq!(
                ch.added,
                vec![Route::via(
                    cidr("10.42.2.0/24"),
                    "10.99.0.4".parse().expect("ip")
                )]
            );
            let ch = reconcile_routes(&net_a, &desired_a).await.expect("restore");
            assert!(ch.failed.is_empty(), "{ch:?}");
            assert_eq!(ch.deleted.len(), 1);
            a.sh("ip route del 10.42.8.0/24");

            // host-gw traffic between the two namespaces
            assert!(a
                .sh("busybox ping -c 1 -W 2 10.42.1.1")
                .contains("1 packets received"));

            // The guard rules in iptables form, on eth0 standing in for a default-route
            // interface (no default route is ever added). 10.42.5.0/24 is routed to "b" by a
            // route that is not ours (so not exempt); "b" answers on 10.42.5.1.
            a.sh("ip route add 10.42.5.0/24 via 10.99.0.2");
            b.sh("ip addr add 10.42.5.1/32 dev lo");
            assert!(a
                .sh("busybox ping -c 1 -W 2 10.42.5.1")
                .contains("1 packets received"));
            let rules = guard_rules(&["eth0".to_string()], cl, sv, &[cidr("10.42.1.0/24")]);
            net_a
                .replace_chain(GUARD_TABLE, GUARD_CHAIN, &rules)
                .await
                .expect("replace chain");
            assert_eq!(
                net_a
                    .list_rules(GUARD_TABLE, GUARD_CHAIN)
                    .await
                    .expect("list"),
                rules,
                "list_rules reads back exactly what guard_rules builds, in order"
            );
            for r in &rules {
                assert!(!net_a
                    .ensure_rule(GUARD_TABLE, GUARD_CHAIN, r)
                    .await
                    .expect("-C finds it"));
            }
            assert!(a
                .sh("busybox ping -c 1 -W 2 10.42.1.1")
                .contains("1 packets received"));
            let blocked = a.run("busybox", &["ping", "-c", "1", "-W", "2", "10.42.5.1"]);
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&blocked.stdout),
                String::from_utf8_lossy(&blocked.stderr)
            );
            assert!(!blocked.status.success(), "{said}");
            // netfilter refuses a local sender's packet at sendto (EPERM) before any ICMP
            assert!(said.contains("Operation not permitted"), "{said}");
            let g = install_guards(&net_a, cl, sv).await.expect("guards");
            assert!(g.chain_rewritten);
            assert_eq!(g.removed.len(), 3, "eth0 holds no default route: {g:?}");
            assert!(g.added.is_empty());
            assert!(a
                .sh("busybox ping -c 1 -W 2 10.42.5.1")
                .contains("1 packets received"));
            a.sh("ip route del 10.42.5.0/24");
            b.sh("ip addr del 10.42.5.1/32 dev lo");

            // the CNI bridge plugin with our config accepts the pre-created cni0
            let dir = tempfile::tempdir().expect("tempdir");
            let conflist = cni_conflist(&CniSettings {
                network_name: NETWORK_NAME.into(),
                bridge: POD_BRIDGE.into(),
                pod_cidr: cidr("10.42.0.0/24"),
                cluster_cidr: cl,
                service_cidr: sv,
                ipam_data_dir: dir.path().join("ipam"),
                mtu: None,
            })
            .expect("conflist");
            let list: serde_json::Value = serde_json::from_str(&conflist).expect("json");
            let mut conf = list["plugins"][0].clone();
            conf["cniVersion"] = list["cniVersion"].clone();
            conf["name"] = list["name"].clone();
            let mut child = Command::new("nsenter")
                .arg(format!("--net={}", a.path.display()))
                .args(["--", "/usr/lib/cni/bridge"])
                .env("CNI_COMMAND", "ADD")
                .env("CNI_CONTAINERID", "nettest")
                .env("CNI_NETNS", &pod.path)
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", "/usr/lib/cni")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("bridge plugin");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(conf.to_string().as_bytes())
                .expect("write conf");
            let out = child.wait_with_output().expect("plugin output");
            let result = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{result} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let result: serde_json::Value = serde_json::from_str(&result).expect("result");
            assert_eq!(result["ips"][0]["address"], "10.42.0.2/24");
            assert_eq!(result["ips"][0]["gateway"], "10.42.0.1");
            let pod_routes = pod.sh("ip route");
            assert!(
                pod_routes.contains("10.42.0.0/16 via 10.42.0.1 dev eth0"),
                "{pod_routes}"
            );
            assert!(
                pod_routes.contains("10.43.0.0/16 via 10.42.0.1 dev eth0"),
                "{pod_routes}"
            );
            assert!(!pod_routes.contains("default"), "{pod_routes}");
            // a pod on "a" reaches node "b" over the host-gw route and back
            assert!(pod
                .sh("busybox ping -c 1 -W 2 10.42.1.1")
                .contains("1 packets received"));

            // cleanup through the API
            remove_guards(&net_a).await.expect("remove guards");
            let ch = remove_routes(&net_a).await.expect("remove routes");
            assert_eq!(
                ch.deleted.len(),
                2,
                "the service route went with its bridge: {ch:?}"
            );
            assert!(a.sh("ip route show proto 77").trim().is_empty());
            assert!(!a.sh("iptables -S").contains("MINIK8S"));
            assert!(!a
                .run("ip", &["link", "show", "dev", SVC_BRIDGE])
                .status
                .success());
            remove_guards(&net_a).await.expect("remove guards twice");
        }
        assert_eq!(
            root_snapshot(),
            root_before,
            "the root namespace must be untouched"
        );
    }
}
