//! The iptables mode of the service proxy (`--proxy-mode iptables`): renders a
//! [`ProxyState`] into `iptables-restore --noflush -w` input for the `filter` and `nat`
//! tables, modelled on upstream kube-proxy's iptables proxier
//! (kubernetes pkg/proxy/iptables/proxier.go). Pure: no IO. The runtime feeds the text to
//! iptables-restore, reports the outcome with [`IptablesRenderer::applied`], and installs the
//! [`IptablesRenderer::jump_rules`] that hook our chains into the built-in ones.
//!
//! Chains (upstream names):
//! - nat `KUBE-SERVICES` (from PREROUTING and OUTPUT): one rule per cluster IP, external IP
//!   and load-balancer IP, then, last, `-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8
//!   -j KUBE-NODEPORTS` (node ports on every local address except loopback, which would
//!   need `route_localnet`).
//! - nat `KUBE-NODEPORTS`: node ports to the service's `KUBE-EXT-*` chain.
//! - nat `KUBE-SVC-*` / `KUBE-SVL-*`: random load balancing (`-m statistic`) over the
//!   cluster-wide / node-local endpoints, with `-m recent` session affinity; the chain for
//!   cluster-IP traffic first marks traffic from outside the cluster CIDR for masquerade.
//! - nat `KUBE-EXT-*`: external destinations (node port, external IPs, LB IPs): masquerade
//!   and the cluster chain with `externalTrafficPolicy: Cluster`; with `Local`, pods and the
//!   node itself short-circuit to the cluster chain, everyone else keeps its source IP and
//!   goes to the local chain.
//! - nat `KUBE-SEP-*`: one per endpoint: hairpin masquerade mark, then DNAT.
//! - nat `KUBE-MARK-MASQ` / `KUBE-POSTROUTING`: mark 0x4000, masquerade marked packets and
//!   clear the mark (xor).
//! - filter `KUBE-SERVICES` (from INPUT, FORWARD and OUTPUT): REJECT for ports without
//!   endpoints, DROP for `internalTrafficPolicy: Local` without local endpoints, then DROP of
//!   anything still aimed at the service CIDR: a packet that was DNATed carries the endpoint
//!   address by the time it reaches the filter table, so only unallocated addresses and ports
//!   are caught and nothing aimed at the service network leaves the node. Unlike upstream
//!   the jumps to it are not limited to `--ctstate NEW`, so the drop also holds for flows
//!   that conntrack already knows without DNAT.
//! - filter `KUBE-EXTERNAL-SERVICES`: REJECT/DROP for node ports, external and LB IPs.
//! - filter `KUBE-FORWARD`: the service-CIDR drop again for packets of known (not NEW)
//!   flows, before its ACCEPTs, so the order of the FORWARD jumps does not matter; INVALID
//!   drop; accept marked and established traffic.
//! - filter `KUBE-NODEPORTS`, `KUBE-PROXY-FIREWALL`: declared and left empty (no health
//!   check node ports or load-balancer source ranges in this proxy).
//!
//! Chain names are upstream's: prefix + the first 16 base32 characters of the sha256 of
//! `namespace/name[:port]` + protocol (+ `ip:port` for endpoint chains).
//!
//! Every sync rewrites the fixed chains completely; a service's own chains are only
//! rewritten when their text changed since the last applied sync (upstream's partial sync),
//! or on a full sync (the first one, after a failure and after [`IptablesRenderer::reset`]).
//! Chains we created that are no longer needed are flushed and deleted (`-X`); a full sync
//! also deletes the stale service chains seen by [`IptablesRenderer::observe_existing`].

use crate::model::{Endpoint, ProxyState, ServicePort, ServicePortName};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

const KUBE_SERVICES: &str = "KUBE-SERVICES";
const KUBE_EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
const KUBE_NODEPORTS: &str = "KUBE-NODEPORTS";
const KUBE_POSTROUTING: &str = "KUBE-POSTROUTING";
const KUBE_MARK_MASQ: &str = "KUBE-MARK-MASQ";
const KUBE_FORWARD: &str = "KUBE-FORWARD";
const KUBE_PROXY_FIREWALL: &str = "KUBE-PROXY-FIREWALL";

/// Our fixed chains in the filter table, in declaration order.
const FILTER_CHAINS: [&str; 5] = [
    KUBE_SERVICES,
    KUBE_EXTERNAL_SERVICES,
    KUBE_FORWARD,
    KUBE_NODEPORTS,
    KUBE_PROXY_FIREWALL,
];
/// Our fixed chains in the nat table, in declaration order.
const NAT_CHAINS: [&str; 4] = [
    KUBE_SERVICES,
    KUBE_NODEPORTS,
    KUBE_POSTROUTING,
    KUBE_MARK_MASQ,
];

const SVC_PREFIX: &str = "KUBE-SVC-";
const SVL_PREFIX: &str = "KUBE-SVL-";
const EXT_PREFIX: &str = "KUBE-EXT-";
const SEP_PREFIX: &str = "KUBE-SEP-";
/// Upstream's load-balancer firewall chains: never created here, but deleted when stale.
const FW_PREFIX: &str = "KUBE-FW-";
const SERVICE_CHAIN_PREFIXES: [&str; 5] =
    [SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, SEP_PREFIX, FW_PREFIX];

/// The packet mark asking KUBE-POSTROUTING to masquerade (upstream's default bit 14).
pub const MASQUERADE_MARK: &str = "0x4000";

/// Above this many endpoints the per-endpoint rules lose their comments, as upstream's
/// "large cluster mode", to keep the restore input small.
const LARGE_CLUSTER_ENDPOINTS: usize = 1000;

/// One rule hooking one of our chains into a built-in chain: check it with
/// `iptables -w -t TABLE -C CHAIN ARGS...` and insert it with `-I CHAIN ARGS...` when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpRule {
    pub table: &'static str,
    pub chain: &'static str,
    /// One argument per element (no shell quoting: comments contain spaces).
    pub args: Vec<String>,
}

/// Renders [`ProxyState`]s into iptables-restore input and remembers which service chains
/// exist, so that the ones no longer needed are deleted and unchanged ones are not rewritten.
#[derive(Debug)]
pub struct IptablesRenderer {
    /// nat service chains that exist after the last applied restore.
    created: BTreeSet<String>,
    /// nat service chains seen in `iptables-save` (deleted by the next full sync when unused).
    observed: BTreeSet<String>,
    /// Per service port, the text of its own chains as last applied.
    applied_blocks: BTreeMap<ServicePortName, String>,
    /// What the last render would make true once applied.
    pending: Option<Pending>,
    /// Rewrite every chain (and delete observed stale ones) on the next render.
    full_sync: bool,
    /// Rules (`-A` lines) of the last render's complete rule set.
    rule_count: usize,
}

#[derive(Debug)]
struct Pending {
    chains: BTreeSet<String>,
    blocks: BTreeMap<ServicePortName, String>,
}

impl Default for IptablesRenderer {
    fn default() -> Self {
        Self::new()
    }
}

impl IptablesRenderer {
    pub fn new() -> Self {
        IptablesRenderer {
            created: BTreeSet::new(),
            observed: BTreeSet::new(),
            applied_blocks: BTreeMap::new(),
            pending: None,
            full_sync: true,
            rule_count: 0,
        }
    }

    /// Input for `iptables-restore --noflush -w` covering tables filter and nat: declares
    /// every chain we own (declaring flushes it), fills them, and deletes (`-X`) chains we
    /// created before but no longer need. A full sync (the first render, and the first after
    /// `applied(false)` or `reset()`) rewrites every service chain and also deletes the stale
    /// service chains passed in through [`Self::observe_existing`]; later renders leave the
    /// chains of unchanged service ports out of the input.
    pub fn render(&mut self, state: &ProxyState) -> String {
        let cluster_cidr = cidr(state.cluster_cidr);
        let service_cidr = cidr(state.service_cidr);
        let mut services: Vec<&ServicePort> = state.services.iter().collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        let total_endpoints: usize = services.iter().map(|s| s.endpoints.len()).sum();
        let large = total_endpoints > LARGE_CLUSTER_ENDPOINTS;

        let mut filter = Lines::default();
        let mut nat = Lines::default();
        nat.rule(
            KUBE_POSTROUTING,
            format_args!("-m mark ! --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j RETURN"),
        );
        // Clear the mark so a packet traversing the stack again is not masqueraded twice.
        nat.rule(
            KUBE_POSTROUTING,
            format_args!("-j MARK --xor-mark {MASQUERADE_MARK}"),
        );
        nat.rule(
            KUBE_POSTROUTING,
            format_args!(
                "-m comment --comment \"kubernetes service traffic requiring SNAT\" \
                 -j MASQUERADE --random-fully"
            ),
        );
        nat.rule(
            KUBE_MARK_MASQ,
            format_args!("-j MARK --or-mark {MASQUERADE_MARK}"),
        );

        let mut desired = BTreeSet::new();
        let mut blocks = BTreeMap::new();
        let mut service_decls: Vec<String> = Vec::new();
        let mut service_rules = String::new();
        let mut service_rule_count = 0;
        for sp in services {
            let plan = Plan::new(sp, &state.node_name);
            plan.write_entry_rules(&mut filter, &mut nat);
            let block = plan.service_chains(&cluster_cidr, large);
            service_rule_count += block.rules.rules;
            desired.extend(block.chains.iter().cloned());
            let text = block.fingerprint();
            let unchanged = !self.full_sync && self.applied_blocks.get(&sp.name) == Some(&text);
            if !unchanged {
                service_decls.extend(block.chains);
                service_rules.push_str(&block.rules.text);
            }
            blocks.insert(sp.name.clone(), text);
        }

        // Node ports last: they match any local destination address.
        nat.rule(
            KUBE_SERVICES,
            format_args!(
                "-m comment --comment \"kubernetes service nodeports; NOTE: this must be the \
                 last rule in this chain\" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 \
                 -j {KUBE_NODEPORTS}"
            ),
        );
        // After the REJECTs: whatever still aims at the service network was not DNATed.
        filter.rule(
            KUBE_SERVICES,
            format_args!(
                "-m comment --comment \"drop traffic to unallocated service IPs and ports\" \
                 -d {service_cidr} -j DROP"
            ),
        );
        // Before the ACCEPTs below, whatever FORWARD's order: packets of known flows still
        // aimed at the service network (NEW ones get REJECT or DROP in KUBE-SERVICES).
        filter.rule(
            KUBE_FORWARD,
            format_args!(
                "-m comment --comment \"drop traffic to unallocated service IPs and ports\" \
                 -m conntrack ! --ctstate NEW -d {service_cidr} -j DROP"
            ),
        );
        filter.rule(
            KUBE_FORWARD,
            format_args!("-m conntrack --ctstate INVALID -j DROP"),
        );
        filter.rule(
            KUBE_FORWARD,
            format_args!(
                "-m comment --comment \"kubernetes forwarding rules\" \
                 -m mark --mark {MASQUERADE_MARK}/{MASQUERADE_MARK} -j ACCEPT"
            ),
        );
        filter.rule(
            KUBE_FORWARD,
            format_args!(
                "-m comment --comment \"kubernetes forwarding conntrack rule\" \
                 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
            ),
        );

        let mut stale: BTreeSet<&String> = self.created.difference(&desired).collect();
        if self.full_sync {
            stale.extend(self.observed.difference(&desired));
        }

        let mut out = String::with_capacity(
            filter.text.len() + nat.text.len() + service_rules.len() + 64 * service_decls.len(),
        );
        out.push_str("*filter\n");
        for chain in FILTER_CHAINS {
            declare(&mut out, chain);
        }
        out.push_str(&filter.text);
        out.push_str("COMMIT\n*nat\n");
        for chain in NAT_CHAINS {
            declare(&mut out, chain);
        }
        for chain in &service_decls {
            declare(&mut out, chain);
        }
        for chain in &stale {
            declare(&mut out, chain);
        }
        out.push_str(&nat.text);
        out.push_str(&service_rules);
        for chain in &stale {
            let _ = writeln!(out, "-X {chain}");
        }
        out.push_str("COMMIT\n");

        self.rule_count = filter.rules + nat.rules + service_rule_count;
        self.pending = Some(Pending {
            chains: desired,
            blocks,
        });
        out
    }

    /// Remembers the service chains (`KUBE-SVC-`, `KUBE-SVL-`, `KUBE-EXT-`, `KUBE-SEP-`,
    /// `KUBE-FW-`) of the nat table in `iptables-save` output, so that the next full sync
    /// deletes those it does not need (left by a previous run).
    pub fn observe_existing(&mut self, iptables_save: &str) {
        self.observed = saved_chains(iptables_save)
            .remove("nat")
            .unwrap_or_default()
            .into_iter()
            .filter(|c| is_service_chain(c))
            .collect();
    }

    /// The outcome of restoring the last render. After a failure (or when unsure) the next
    /// render is a full sync, and every chain of the failed render is treated as possibly
    /// existing, so it is deleted if no longer wanted.
    pub fn applied(&mut self, ok: bool) {
        match self.pending.take() {
            Some(p) if ok => {
                self.created = p.chains;
                self.applied_blocks = p.blocks;
                self.observed.clear();
                self.full_sync = false;
            }
            Some(p) => {
                self.created.extend(p.chains);
                self.applied_blocks.clear();
                self.full_sync = true;
            }
            None if !ok => {
                self.applied_blocks.clear();
                self.full_sync = true;
            }
            None => {}
        }
    }

    /// Forces the next render to be a full sync (e.g. periodically, or after someone
    /// flushed the tables; call [`Self::observe_existing`] first to also catch strays).
    pub fn reset(&mut self) {
        // A render not yet reported may or may not be applied: treat its chains as existing.
        if let Some(p) = self.pending.take() {
            self.created.extend(p.chains);
        }
        self.applied_blocks.clear();
        self.full_sync = true;
    }

    /// The rules that hook our chains into the built-in ones (filter INPUT/FORWARD/OUTPUT,
    /// nat PREROUTING/OUTPUT/POSTROUTING). Insert them only after a restore created our
    /// chains; remove them with `-D` and the same arguments. Their relative order does not
    /// matter: every guard lives inside our chains.
    pub fn jump_rules() -> Vec<JumpRule> {
        const FIREWALL: &str = "kubernetes load balancer firewall";
        const HEALTH: &str = "kubernetes health check service ports";
        const EXTERNAL: &str = "kubernetes externally-visible service portals";
        const PORTALS: &str = "kubernetes service portals";
        // Not upstream's `--ctstate NEW` + PORTALS: this jump sees every packet (for the
        // service-CIDR guard), and its own comment keeps it distinct from nat OUTPUT's.
        const FILTER_PORTALS: &str = "kubernetes service portals and service CIDR guard";
        const FORWARD: &str = "kubernetes forwarding rules";
        const POSTROUTING: &str = "kubernetes postrouting rules";
        let jump = |table: &'static str,
                    chain: &'static str,
                    new_only: bool,
                    comment: &str,
                    target: &str| {
            let mut args: Vec<String> = Vec::new();
            if new_only {
                args.extend(["-m", "conntrack", "--ctstate", "NEW"].map(String::from));
            }
            args.extend(["-m", "comment", "--comment", comment, "-j", target].map(String::from));
            JumpRule { table, chain, args }
        };
        vec![
            jump("filter", "INPUT", true, FIREWALL, KUBE_PROXY_FIREWALL),
            jump("filter", "INPUT", false, HEALTH, KUBE_NODEPORTS),
            jump("filter", "INPUT", true, EXTERNAL, KUBE_EXTERNAL_SERVICES),
            jump("filter", "INPUT", false, FILTER_PORTALS, KUBE_SERVICES),
            jump("filter", "FORWARD", true, FIREWALL, KUBE_PROXY_FIREWALL),
            jump("filter", "FORWARD", false, FORWARD, KUBE_FORWARD),
            jump("filter", "FORWARD", false, FILTER_PORTALS, KUBE_SERVICES),
            jump("filter", "FORWARD", true, EXTERNAL, KUBE_EXTERNAL_SERVICES),
            jump("filter", "OUTPUT", true, FIREWALL, KUBE_PROXY_FIREWALL),
            jump("filter", "OUTPUT", false, FILTER_PORTALS, KUBE_SERVICES),
            jump("nat", "PREROUTING", false, PORTALS, KUBE_SERVICES),
            jump("nat", "OUTPUT", false, PORTALS, KUBE_SERVICES),
            jump("nat", "POSTROUTING", false, POSTROUTING, KUBE_POSTROUTING),
        ]
    }

    /// `iptables-restore --noflush -w` input flushing and deleting every chain of ours that
    /// `iptables_save` shows (run it after deleting the jump rules). Empty when there is
    /// none (nothing to run).
    pub fn cleanup_script(iptables_save: &str) -> String {
        let chains = saved_chains(iptables_save);
        let mut out = String::new();
        let empty = BTreeSet::new();
        for (table, fixed) in [("filter", &FILTER_CHAINS[..]), ("nat", &NAT_CHAINS[..])] {
            let existing = chains.get(table).unwrap_or(&empty);
            let ours: Vec<&String> = existing
                .iter()
                .filter(|c| fixed.contains(&c.as_str()) || (table == "nat" && is_service_chain(c)))
                .collect();
            if ours.is_empty() {
                continue;
            }
            let _ = writeln!(out, "*{table}");
            for chain in &ours {
                declare(&mut out, chain);
            }
            for chain in &ours {
                let _ = writeln!(out, "-X {chain}");
            }
            out.push_str("COMMIT\n");
        }
        out
    }

    /// Rules (`-A` lines) in the complete rule set of the last render, in both tables,
    /// including the service chains a partial sync left out of the input.
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }
}

/// Restore-input lines being built, with the number of rules among them.
#[derive(Debug, Default)]
struct Lines {
    text: String,
    rules: usize,
}

impl Lines {
    fn rule(&mut self, chain: &str, args: std::fmt::Arguments<'_>) {
        self.rules += 1;
        let _ = writeln!(self.text, "-A {chain} {args}");
    }
}

fn declare(out: &mut String, chain: &str) {
    let _ = writeln!(out, ":{chain} - [0:0]");
}

fn cidr((ip, len): (std::net::Ipv4Addr, u8)) -> String {
    format!("{ip}/{len}")
}

fn is_service_chain(chain: &str) -> bool {
    SERVICE_CHAIN_PREFIXES.iter().any(|p| chain.starts_with(p))
}

/// Chains per table declared in `iptables-save` output.
fn saved_chains(save: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut table = String::new();
    for line in save.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
        } else if let Some(rest) = line.strip_prefix(':') {
            if let Some(name) = rest.split_whitespace().next() {
                tables
                    .entry(table.clone())
                    .or_default()
                    .insert(name.to_string());
            }
        }
    }
    tables
}

/// Upstream's `ServicePortName.String()`: `namespace/name` plus `:port` when named.
fn port_name_string(n: &ServicePortName) -> String {
    if n.port.is_empty() {
        format!("{}/{}", n.namespace, n.name)
    } else {
        format!("{}/{}:{}", n.namespace, n.name, n.port)
    }
}

/// The first 16 characters of the standard base32 encoding of the sha256 of `parts`.
fn hash16(parts: &[&str]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update(p.as_bytes());
    }
    let digest = hasher.finalize();
    // 16 characters of 5 bits are exactly the first 10 bytes.
    let bits = digest[..10]
        .iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    (0..16)
        .map(|i| char::from(ALPHABET[((bits >> (75 - 5 * i)) & 31) as usize]))
        .collect()
}

/// `1/n` as upstream prints it (`%0.10f`).
fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

/// One endpoint as the rules need it.
struct EndpointInfo<'a> {
    ep: &'a Endpoint,
    /// `ip:port`.
    addr: String,
    /// `KUBE-SEP-...`.
    chain: String,
}

/// Everything decided about one service port before writing its rules.
struct Plan<'a> {
    sp: &'a ServicePort,
    name: String,
    proto: &'static str,
    svc_chain: String,
    svl_chain: String,
    ext_chain: String,
    /// Endpoints any rule of this port may reach (cluster ∪ local), deduplicated by address.
    reachable: Vec<EndpointInfo<'a>>,
    /// Indexes into `reachable`.
    cluster: Vec<usize>,
    local: Vec<usize>,
    has_endpoints: bool,
    has_internal: bool,
    has_external: bool,
    internal_local: bool,
    external_local: bool,
    externally_accessible: bool,
}

/// A service port's own chains (`KUBE-EXT/SVC/SVL/SEP-*`) and their rules.
struct Block {
    chains: Vec<String>,
    rules: Lines,
}

impl Block {
    fn fingerprint(&self) -> String {
        let mut s = self.chains.join(" ");
        s.push('\n');
        s.push_str(&self.rules.text);
        s
    }
}

impl<'a> Plan<'a> {
    fn new(sp: &'a ServicePort, node: &str) -> Self {
        let name = port_name_string(&sp.name);
        let proto = sp.name.protocol.as_str();
        let hash = hash16(&[&name, proto]);
        let externally_accessible = sp.node_port.is_some()
            || !sp.external_ips.is_empty()
            || !sp.load_balancer_ips.is_empty();
        let internal_local = sp.internal_local;
        let external_local = sp.external_local && externally_accessible;
        // As upstream's UsesClusterEndpoints/UsesLocalEndpoints: Local external policy still
        // needs the cluster endpoints for the short-circuit of pod and node traffic.
        let uses_cluster = !internal_local || externally_accessible;
        let uses_local = internal_local || external_local;
        let cluster_eps = if uses_cluster {
            sp.cluster_endpoints()
        } else {
            Vec::new()
        };
        let local_eps = if uses_local {
            sp.local_endpoints(node)
        } else {
            Vec::new()
        };

        let mut reachable: Vec<EndpointInfo<'a>> = Vec::new();
        let mut index: BTreeMap<(std::net::Ipv4Addr, u16), usize> = BTreeMap::new();
        let mut positions = |eps: &[&'a Endpoint]| -> Vec<usize> {
            let mut out: Vec<usize> = Vec::new();
            for ep in eps {
                let i = *index.entry((ep.ip, ep.port)).or_insert_with(|| {
                    let addr = format!("{}:{}", ep.ip, ep.port);
                    let chain = format!("{SEP_PREFIX}{}", hash16(&[&name, proto, &addr]));
                    reachable.push(EndpointInfo { ep, addr, chain });
                    reachable.len() - 1
                });
                if !out.contains(&i) {
                    out.push(i);
                }
            }
            out
        };
        let cluster = positions(&cluster_eps);
        let local = positions(&local_eps);

        let has_endpoints = !sp.has_no_endpoints();
        let has_internal = has_endpoints && (!internal_local || !local.is_empty());
        let has_external = has_endpoints && (!external_local || !local.is_empty());
        Plan {
            sp,
            proto,
            svc_chain: format!("{SVC_PREFIX}{hash}"),
            svl_chain: format!("{SVL_PREFIX}{hash}"),
            ext_chain: format!("{EXT_PREFIX}{hash}"),
            name,
            reachable,
            cluster,
            local,
            has_endpoints,
            has_internal,
            has_external,
            internal_local,
            external_local,
            externally_accessible,
        }
    }

    fn internal_chain(&self) -> &str {
        if self.internal_local {
            &self.svl_chain
        } else {
            &self.svc_chain
        }
    }

    fn external_policy_chain(&self) -> &str {
        if self.external_local {
            &self.svl_chain
        } else {
            &self.svc_chain
        }
    }

    /// Rules in the fixed chains: nat KUBE-SERVICES/KUBE-NODEPORTS entries, filter
    /// REJECT/DROP rules for destinations without (local) endpoints.
    fn write_entry_rules(&self, filter: &mut Lines, nat: &mut Lines) {
        let (name, p, port) = (&self.name, self.proto, self.sp.port);
        let cluster_ip = self.sp.cluster_ip;
        let (internal_target, internal_comment, external_target, external_comment) =
            if !self.has_endpoints {
                let c = format!("{name} has no endpoints");
                ("REJECT", c.clone(), "REJECT", c)
            } else {
                let c = format!("{name} has no local endpoints");
                ("DROP", c.clone(), "DROP", c)
            };

        if self.has_internal {
            nat.rule(
                KUBE_SERVICES,
                format_args!(
                    "-m comment --comment \"{name} cluster IP\" -m {p} -p {p} -d {cluster_ip} \
                     --dport {port} -j {}",
                    self.internal_chain()
                ),
            );
        } else {
            filter.rule(
                KUBE_SERVICES,
                format_args!(
                    "-m comment --comment \"{internal_comment}\" -m {p} -p {p} -d {cluster_ip} \
                     --dport {port} -j {internal_target}"
                ),
            );
        }

        let destinations = [
            (sorted_ips(&self.sp.external_ips), "external IP"),
            (sorted_ips(&self.sp.load_balancer_ips), "loadbalancer IP"),
        ];
        for (ips, what) in &destinations {
            for ip in ips {
                if self.has_endpoints {
                    nat.rule(
                        KUBE_SERVICES,
                        format_args!(
                            "-m comment --comment \"{name} {what}\" -m {p} -p {p} -d {ip} \
                             --dport {port} -j {}",
                            self.ext_chain
                        ),
                    );
                }
                if !self.has_external {
                    // No endpoints at all (REJECT), or none for external traffic (DROP
                    // what the EXT chain did not short-circuit).
                    filter.rule(
                        KUBE_EXTERNAL_SERVICES,
                        format_args!(
                            "-m comment --comment \"{external_comment}\" -m {p} -p {p} -d {ip} \
                             --dport {port} -j {external_target}"
                        ),
                    );
                }
            }
        }

        if let Some(node_port) = self.sp.node_port {
            if self.has_endpoints {
                nat.rule(
                    KUBE_NODEPORTS,
                    format_args!(
                        "-m comment --comment {name} -m {p} -p {p} --dport {node_port} -j {}",
                        self.ext_chain
                    ),
                );
            }
            if !self.has_external {
                filter.rule(
                    KUBE_EXTERNAL_SERVICES,
                    format_args!(
                        "-m comment --comment \"{external_comment}\" -m addrtype --dst-type LOCAL \
                         -m {p} -p {p} --dport {node_port} -j {external_target}"
                    ),
                );
            }
        }
    }

    /// The port's own nat chains: EXT, SVC, SVL and one SEP per reachable endpoint.
    fn service_chains(&self, cluster_cidr: &str, large: bool) -> Block {
        let (name, p, port) = (&self.name, self.proto, self.sp.port);
        let cluster_ip = self.sp.cluster_ip;
        let mut chains = Vec::new();
        let mut rules = Lines::default();

        if self.has_internal {
            // Off-cluster traffic to the cluster IP may be answered from another node:
            // masquerade it (upstream's local-traffic detector by cluster CIDR).
            rules.rule(
                self.internal_chain(),
                format_args!(
                    "-m comment --comment \"{name} cluster IP\" -m {p} -p {p} -d {cluster_ip} \
                     --dport {port} ! -s {cluster_cidr} -j {KUBE_MARK_MASQ}"
                ),
            );
        }

        if self.has_endpoints && self.externally_accessible {
            let ext = &self.ext_chain;
            chains.push(ext.clone());
            if !self.external_local {
                rules.rule(
                    ext,
                    format_args!(
                        "-m comment --comment \"masquerade traffic for {name} external \
                         destinations\" -j {KUBE_MARK_MASQ}"
                    ),
                );
            } else {
                // Pods reaching an external destination behave as if they went out to a
                // load balancer and back: no traffic policy.
                rules.rule(
                    ext,
                    format_args!(
                        "-m comment --comment \"pod traffic for {name} external destinations\" \
                         -s {cluster_cidr} -j {}",
                        self.svc_chain
                    ),
                );
                // The node itself picks a local (external) address as source: masquerade.
                rules.rule(
                    ext,
                    format_args!(
                        "-m comment --comment \"masquerade LOCAL traffic for {name} external \
                         destinations\" -m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}"
                    ),
                );
                rules.rule(
                    ext,
                    format_args!(
                        "-m comment --comment \"route LOCAL traffic for {name} external \
                         destinations\" -m addrtype --src-type LOCAL -j {}",
                        self.svc_chain
                    ),
                );
            }
            if self.has_external {
                rules.rule(ext, format_args!("-j {}", self.external_policy_chain()));
            }
        }

        if !self.cluster.is_empty() {
            chains.push(self.svc_chain.clone());
            self.endpoint_rules(&mut rules, &self.svc_chain, &self.cluster, large);
        }
        if !self.local.is_empty() {
            chains.push(self.svl_chain.clone());
            self.endpoint_rules(&mut rules, &self.svl_chain, &self.local, large);
        }

        let comment = if large {
            String::new()
        } else {
            format!("-m comment --comment {name} ")
        };
        for info in &self.reachable {
            let (sep, ip, addr) = (&info.chain, info.ep.ip, &info.addr);
            chains.push(sep.clone());
            // Hairpin: an endpoint reaching itself through the service.
            rules.rule(sep, format_args!("{comment}-s {ip} -j {KUBE_MARK_MASQ}"));
            let recent = if self.sp.affinity_timeout.is_some() {
                format!("-m recent --name {sep} --set ")
            } else {
                String::new()
            };
            rules.rule(
                sep,
                format_args!("{comment}{recent}-m {p} -p {p} -j DNAT --to-destination {addr}"),
            );
        }
        Block { chains, rules }
    }

    /// Session affinity and random load balancing from `chain` to the endpoints `which`.
    fn endpoint_rules(&self, rules: &mut Lines, chain: &str, which: &[usize], large: bool) {
        let comment = |info: &EndpointInfo<'_>| {
            if large {
                String::new()
            } else {
                format!("-m comment --comment \"{} -> {}\" ", self.name, info.addr)
            }
        };
        if let Some(seconds) = self.sp.affinity_timeout {
            for &i in which {
                let info = &self.reachable[i];
                rules.rule(
                    chain,
                    format_args!(
                        "{}-m recent --name {sep} --rcheck --seconds {seconds} --reap -j {sep}",
                        comment(info),
                        sep = info.chain
                    ),
                );
            }
        }
        let n = which.len();
        for (k, &i) in which.iter().enumerate() {
            let info = &self.reachable[i];
            if k + 1 < n {
                rules.rule(
                    chain,
                    format_args!(
                        "{}-m statistic --mode random --probability {} -j {}",
                        comment(info),
                        probability(n - k),
                        info.chain
                    ),
                );
            } else {
                rules.rule(chain, format_args!("{}-j {}", comment(info), info.chain));
            }
        }
    }
}

fn sorted_ips(ips: &[std::net::Ipv4Addr]) -> Vec<std::net::Ipv4Addr> {
    let mut v = ips.to_vec();
    v.sort();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use std::net::Ipv4Addr;
    use std::time::Instant;

    const NODE: &str = "node-a";

    fn ep(ip: [u8; 4], port: u16, node: &str) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::from(ip),
            port,
            ready: true,
            serving: true,
            terminating: false,
            node_name: Some(node.to_string()),
        }
    }

    fn port(
        ns: &str,
        name: &str,
        pname: &str,
        proto: Protocol,
        ip: [u8; 4],
        p: u16,
    ) -> ServicePort {
        ServicePort {
            name: ServicePortName {
                namespace: ns.into(),
                name: name.into(),
                port: pname.into(),
                protocol: proto,
            },
            cluster_ip: Ipv4Addr::from(ip),
            port: p,
            node_port: None,
            external_ips: vec![],
            load_balancer_ips: vec![],
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            endpoints: vec![],
        }
    }

    fn state(mut services: Vec<ServicePort>) -> ProxyState {
        services.sort_by(|a, b| a.name.cmp(&b.name));
        ProxyState {
            node_name: NODE.into(),
            node_ips: vec![Ipv4Addr::new(10, 99, 0, 1)],
            cluster_cidr: (Ipv4Addr::new(10, 42, 0, 0), 16),
            service_cidr: (Ipv4Addr::new(10, 43, 0, 0), 16),
            services,
        }
    }

    /// web: 3 endpoints, NodePort, external IP, LB IP, ClientIP affinity.
    fn web() -> ServicePort {
        let mut s = port("default", "web", "http", Protocol::Tcp, [10, 43, 0, 20], 80);
        s.node_port = Some(30080);
        s.external_ips = vec![Ipv4Addr::new(192, 0, 2, 10)];
        s.load_balancer_ips = vec![Ipv4Addr::new(192, 0, 2, 20)];
        s.affinity_timeout = Some(10800);
        s.endpoints = vec![
            ep([10, 42, 0, 5], 8080, NODE),
            ep([10, 42, 1, 6], 8080, "node-b"),
            ep([10, 42, 1, 7], 8080, "node-b"),
        ];
        s
    }

    /// dns: UDP, unnamed port, one endpoint.
    fn dns() -> ServicePort {
        let mut s = port(
            "kube-system",
            "kube-dns",
            "",
            Protocol::Udp,
            [10, 43, 0, 10],
            53,
        );
        s.endpoints = vec![ep([10, 42, 0, 3], 53, NODE)];
        s
    }

    /// empty: SCTP, NodePort, external IP, no endpoints.
    fn empty() -> ServicePort {
        let mut s = port(
            "default",
            "empty",
            "",
            Protocol::Sctp,
            [10, 43, 0, 30],
            9000,
        );
        s.node_port = Some(30900);
        s.external_ips = vec![Ipv4Addr::new(192, 0, 2, 30)];
        s
    }

    /// internal: internalTrafficPolicy Local with a local and a remote endpoint.
    fn internal_local() -> ServicePort {
        let mut s = port("default", "intl", "", Protocol::Tcp, [10, 43, 0, 40], 80);
        s.internal_local = true;
        s.endpoints = vec![
            ep([10, 42, 0, 9], 80, NODE),
            ep([10, 42, 1, 9], 80, "node-b"),
        ];
        s
    }

    /// internal-only-remote: internalTrafficPolicy Local without local endpoints.
    fn internal_remote() -> ServicePort {
        let mut s = port("default", "intr", "", Protocol::Tcp, [10, 43, 0, 41], 80);
        s.internal_local = true;
        s.endpoints = vec![ep([10, 42, 1, 10], 80, "node-b")];
        s
    }

    /// etl: externalTrafficPolicy Local, NodePort, one local and one remote endpoint.
    fn ext_local() -> ServicePort {
        let mut s = port("default", "etl", "", Protocol::Tcp, [10, 43, 0, 50], 80);
        s.node_port = Some(30050);
        s.external_local = true;
        s.endpoints = vec![
            ep([10, 42, 0, 11], 80, NODE),
            ep([10, 42, 1, 11], 80, "node-b"),
        ];
        s
    }

    /// etr: externalTrafficPolicy Local, NodePort, only remote endpoints.
    fn ext_remote() -> ServicePort {
        let mut s = port("default", "etr", "", Protocol::Tcp, [10, 43, 0, 51], 80);
        s.node_port = Some(30051);
        s.external_local = true;
        s.endpoints = vec![ep([10, 42, 1, 12], 80, "node-b")];
        s
    }

    fn all() -> Vec<ServicePort> {
        vec![
            web(),
            dns(),
            empty(),
            internal_local(),
            internal_remote(),
            ext_local(),
            ext_remote(),
        ]
    }

    fn chains_of(sp: &ServicePort) -> (String, String, String) {
        let name = port_name_string(&sp.name);
        let h = hash16(&[&name, sp.name.protocol.as_str()]);
        (
            format!("KUBE-SVC-{h}"),
            format!("KUBE-SVL-{h}"),
            format!("KUBE-EXT-{h}"),
        )
    }

    fn sep_of(sp: &ServicePort, ip: &str) -> String {
        let name = port_name_string(&sp.name);
        format!(
            "KUBE-SEP-{}",
            hash16(&[&name, sp.name.protocol.as_str(), ip])
        )
    }

    fn section<'a>(text: &'a str, table: &str) -> &'a str {
        let start = text.find(&format!("*{table}\n")).expect("table present");
        let rest = &text[start..];
        &rest[..rest.find("COMMIT\n").expect("commit")]
    }

    fn rules_of<'a>(text: &'a str, chain: &str) -> Vec<&'a str> {
        let prefix = format!("-A {chain} ");
        text.lines().filter(|l| l.starts_with(&prefix)).collect()
    }

    fn declared(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(':'))
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect()
    }

    fn deleted(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("-X "))
            .map(String::from)
            .collect()
    }

    #[test]
    fn chain_names_match_upstream() {
        // Values from upstream's proxier_test.go for ns1/svc1:p80 and 10.180.0.1:80.
        assert_eq!(hash16(&["ns1/svc1:p80", "tcp"]), "XPGD46QRK7WJZT7O");
        assert_eq!(
            hash16(&["ns1/svc1:p80", "tcp", "10.180.0.1:80"]),
            "SXIVWICOYRO3J4NJ"
        );
        let mut s = port("ns1", "svc1", "p80", Protocol::Tcp, [10, 43, 0, 1], 80);
        assert_eq!(chains_of(&s).0, "KUBE-SVC-XPGD46QRK7WJZT7O");
        s.name.port.clear();
        assert_eq!(port_name_string(&s.name), "ns1/svc1");
        assert_eq!(probability(3), "0.3333333333");
        assert_eq!(probability(2), "0.5000000000");
    }

    #[test]
    fn cluster_ip_load_balancing_affinity_and_masquerade() {
        let mut r = IptablesRenderer::new();
        let out = r.render(&state(all()));
        let nat = section(&out, "nat");
        let w = web();
        let (svc, _, ext) = chains_of(&w);
        let sep1 = sep_of(&w, "10.42.0.5:8080");
        let sep2 = sep_of(&w, "10.42.1.6:8080");
        let sep3 = sep_of(&w, "10.42.1.7:8080");

        let services = rules_of(nat, KUBE_SERVICES);
        assert!(services.contains(
            &format!(
            "-A KUBE-SERVICES -m comment --comment \"default/web:http cluster IP\" -m tcp -p tcp \
             -d 10.43.0.20 --dport 80 -j {svc}"
        )
            .as_str()
        ));
        assert!(services.contains(
            &format!(
            "-A KUBE-SERVICES -m comment --comment \"default/web:http external IP\" -m tcp -p tcp \
             -d 192.0.2.10 --dport 80 -j {ext}"
        )
            .as_str()
        ));
        assert!(services.contains(
            &format!(
            "-A KUBE-SERVICES -m comment --comment \"default/web:http loadbalancer IP\" -m tcp \
             -p tcp -d 192.0.2.20 --dport 80 -j {ext}"
        )
            .as_str()
        ));
        // The node-port jump is the last rule of nat KUBE-SERVICES.
        assert!(services
            .last()
            .expect("rules")
            .ends_with("-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS"));

        let svc_rules = rules_of(nat, &svc);
        assert_eq!(
            svc_rules,
            vec![
                format!(
                    "-A {svc} -m comment --comment \"default/web:http cluster IP\" -m tcp -p tcp \
                     -d 10.43.0.20 --dport 80 ! -s 10.42.0.0/16 -j KUBE-MARK-MASQ"
                ),
                format!(
                    "-A {svc} -m comment --comment \"default/web:http -> 10.42.0.5:8080\" -m recent \
                     --name {sep1} --rcheck --seconds 10800 --reap -j {sep1}"
                ),
                format!(
                    "-A {svc} -m comment --comment \"default/web:http -> 10.42.1.6:8080\" -m recent \
                     --name {sep2} --rcheck --seconds 10800 --reap -j {sep2}"
                ),
                format!(
                    "-A {svc} -m comment --comment \"default/web:http -> 10.42.1.7:8080\" -m recent \
                     --name {sep3} --rcheck --seconds 10800 --reap -j {sep3}"
                ),
                format!(
                    "-A {svc} -m comment --comment \"default/web:http -> 10.42.0.5:8080\" -m statistic \
                     --mode random --probability 0.3333333333 -j {sep1}"
                ),
                format!(
                    "-A {svc} -m comment --comment \"default/web:http -> 10.42.1.6:8080\" -m statistic \
                     --mode random --probability 0.5000000000 -j {sep2}"
                ),
                format!("-A {svc} -m comment --comment \"default/web:http -> 10.42.1.7:8080\" -j {sep3}"),
            ]
        );
        assert_eq!(
            rules_of(nat, &sep2),
            vec![
                format!("-A {sep2} -m comment --comment default/web:http -s 10.42.1.6 -j KUBE-MARK-MASQ"),
                format!(
                    "-A {sep2} -m comment --comment default/web:http -m recent --name {sep2} --set \
                     -m tcp -p tcp -j DNAT --to-destination 10.42.1.6:8080"
                ),
            ]
        );
        // External destinations with policy Cluster: masquerade, then the cluster chain.
        assert_eq!(
            rules_of(nat, &ext),
            vec![
                format!(
                    "-A {ext} -m comment --comment \"masquerade traffic for default/web:http \
                     external destinations\" -j KUBE-MARK-MASQ"
                ),
                format!("-A {ext} -j {svc}"),
            ]
        );
        assert!(rules_of(nat, KUBE_NODEPORTS).contains(
            &format!(
                "-A KUBE-NODEPORTS -m comment --comment default/web:http -m tcp -p tcp --dport 30080 \
                 -j {ext}"
            )
            .as_str()
        ));
        assert_eq!(
            rules_of(nat, KUBE_POSTROUTING),
            vec![
                "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
                "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
                "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring \
                 SNAT\" -j MASQUERADE --random-fully",
            ]
        );
        assert_eq!(
            rules_of(nat, KUBE_MARK_MASQ),
            vec!["-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"]
        );
    }

    #[test]
    fn udp_without_affinity_and_single_endpoint() {
        let mut r = IptablesRenderer::new();
        let out = r.render(&state(all()));
        let d = dns();
        let (svc, svl, ext) = chains_of(&d);
        let sep = sep_of(&d, "10.42.0.3:53");
        assert!(out.contains(&format!(
            "-A KUBE-SERVICES -m comment --comment \"kube-system/kube-dns cluster IP\" -m udp -p udp \
             -d 10.43.0.10 --dport 53 -j {svc}\n"
        )));
        assert!(out.contains(&format!(
            "-A {svc} -m comment --comment \"kube-system/kube-dns -> 10.42.0.3:53\" -j {sep}\n"
        )));
        assert!(out.contains(&format!(
            "-A {sep} -m comment --comment kube-system/kube-dns -m udp -p udp -j DNAT \
             --to-destination 10.42.0.3:53\n"
        )));
        assert!(!out.contains(&format!("-A {sep} -m recent")));
        // Neither a local chain nor an external chain for a plain ClusterIP service.
        assert!(!out.contains(&svl) && !out.contains(&ext));
    }

    #[test]
    fn no_endpoints_rejects_in_filter() {
        let mut r = IptablesRenderer::new();
        let out = r.render(&state(all()));
        let e = empty();
        let (svc, _, ext) = chains_of(&e);
        let filter = section(&out, "filter");
        assert!(rules_of(filter, KUBE_SERVICES).contains(
            &"-A KUBE-SERVICES -m comment --comment \"default/empty has no endpoints\" -m sctp -p sctp \
              -d 10.43.0.30 --dport 9000 -j REJECT"
        ));
        let external = rules_of(filter, KUBE_EXTERNAL_SERVICES);
        assert!(external.contains(
            &"-A KUBE-EXTERNAL-SERVICES -m comment --comment \"default/empty has no endpoints\" \
              -m sctp -p sctp -d 192.0.2.30 --dport 9000 -j REJECT"
        ));
        assert!(external.contains(
            &"-A KUBE-EXTERNAL-SERVICES -m comment --comment \"default/empty has no endpoints\" \
              -m addrtype --dst-type LOCAL -m sctp -p sctp --dport 30900 -j REJECT"
        ));
        // No nat rules or chains for it at all.
        assert!(!out.contains(&svc) && !out.contains(&ext));
        assert!(!section(&out, "nat").contains("10.43.0.30"));
    }

    #[test]
    fn service_cidr_guard_comes_after_the_rejects() {
        let mut r = IptablesRenderer::new();
        let out = r.render(&state(all()));
        let filter = section(&out, "filter");
        let services = rules_of(filter, KUBE_SERVICES);
        let guard =
            "-A KUBE-SERVICES -m comment --comment \"drop traffic to unallocated service IPs \
                     and ports\" -d 10.43.0.0/16 -j DROP";
        assert_eq!(services.last(), Some(&guard));
        assert!(services.len() > 1);
        let forward = rules_of(filter, KUBE_FORWARD);
        assert!(forward[0].ends_with("-m conntrack ! --ctstate NEW -d 10.43.0.0/16 -j DROP"));
        assert!(forward[1..]
            .iter()
            .any(|l| l.contains("--ctstate RELATED,ESTABLISHED -j ACCEPT")));
        assert!(forward[1..]
            .iter()
            .any(|l| l.contains("--mark 0x4000/0x4000 -j ACCEPT")));
        // Every filter chain of ours is declared; only the guard rules match the CIDR.
        for chain in FILTER_CHAINS {
            assert!(filter.contains(&format!(":{chain} - [0:0]\n")));
        }
        assert_eq!(filter.matches("10.43.0.0/16").count(), 2);
    }

    #[test]
    fn internal_traffic_policy_local() {
        let mut r = IptablesRenderer::new();
        let out = r.render(&state(all()));
        let nat = section(&out, "nat");
        let filter = section(&out, "filter");

        let l = internal_local();
        let (svc, svl, _) = chains_of(&l);
        let local_sep = sep_of(&l, "10.42.0.9:80");
        let remote_sep = sep_of(&l, "10.42.1.9:80");
        assert!(nat.contains(&format!(
            "-A KUBE-SERVICES -m comment --comment \"default/intl cluster IP\" -m tcp -p tcp \
             -d 10.43.0.40 --dport 80 -j {svl}\n"
        )));
        assert_eq!(
            rules_of(nat, &svl),
            vec![
                format!(
                    "-A {svl} -m comment --comment \"default/intl cluster IP\" -m tcp -p tcp \
                     -d 10.43.0.40 --dport 80 ! -s 10.42.0.0/16 -j KUBE-MARK-MASQ"
                ),
                format!(
                    "-A {svl} -m comment --comment \"default/intl -> 10.42.0.9:80\" -j {local_sep}"
                ),
            ]
        );
        // The cluster chain and the remote endpoint are not needed at all.
        assert!(!nat.contains(&svc) && !nat.contains(&remote_sep));

        let r2 = internal_remote();
        let (svc2, svl2, _) = chains_of(&r2);
        assert!(filter.contains(
            "-A KUBE-SERVICES -m comment --comment \"default/intr has no local endpoints\" -m tcp \
             -p tcp -d 10.43.0.41 --dport 80 -j DROP\n"
        ));
        assert!(!nat.contains(&svc2) && !nat.contains(&svl2) && !nat.contains("10.43.0.41"));
    }

    #[test]
    fn external_traffic_policy_local() {
        let mut r = IptablesRenderer::new();
        let out = r.render(&state(all()));
        let nat = section(&out, "nat");
        let filter = section(&out, "filter");

        let s = ext_local();
        let (svc, svl, ext) = chains_of(&s);
        let local_sep = sep_of(&s, "10.42.0.11:80");
        let remote_sep = sep_of(&s, "10.42.1.11:80");
        assert_eq!(
            rules_of(nat, &ext),
            vec![
                format!(
                    "-A {ext} -m comment --comment \"pod traffic for default/etl external \
                     destinations\" -s 10.42.0.0/16 -j {svc}"
                ),
                format!(
                    "-A {ext} -m comment --comment \"masquerade LOCAL traffic for default/etl \
                     external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ"
                ),
                format!(
                    "-A {ext} -m comment --comment \"route LOCAL traffic for default/etl external \
                     destinations\" -m addrtype --src-type LOCAL -j {svc}"
                ),
                format!("-A {ext} -j {svl}"),
            ]
        );
        // No masquerade for external clients: the EXT chain never marks them.
        assert_eq!(rules_of(nat, &svl).len(), 1);
        assert!(rules_of(nat, &svl)[0].ends_with(&format!("-j {local_sep}")));
        // The cluster chain serves cluster-IP traffic and the short-circuit with both endpoints.
        assert_eq!(rules_of(nat, &svc).len(), 3);
        assert!(nat.contains(&format!(":{remote_sep} - [0:0]")));

        let s2 = ext_remote();
        let (svc2, svl2, ext2) = chains_of(&s2);
        assert_eq!(rules_of(nat, &ext2).len(), 3, "no jump to a local chain");
        assert!(!nat.contains(&svl2));
        assert!(nat.contains(&format!(
            "-A KUBE-NODEPORTS -m comment --comment default/etr -m tcp -p tcp --dport 30051 -j {ext2}\n"
        )));
        assert!(nat.contains(&format!("-d 10.43.0.51 --dport 80 -j {svc2}\n")));
        assert!(filter.contains(
            "-A KUBE-EXTERNAL-SERVICES -m comment --comment \"default/etr has no local endpoints\" \
             -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30051 -j DROP\n"
        ));
    }

    #[test]
    fn terminating_endpoints_are_a_fallback() {
        let mut s = dns();
        s.endpoints = vec![
            Endpoint {
                ready: false,
                serving: true,
                terminating: true,
                ..ep([10, 42, 0, 3], 53, NODE)
            },
            Endpoint {
                ready: false,
                serving: false,
                terminating: true,
                ..ep([10, 42, 0, 4], 53, NODE)
            },
        ];
        let mut r = IptablesRenderer::new();
        let out = r.render(&state(vec![s.clone()]));
        assert!(out.contains(&format!(":{} - [0:0]", sep_of(&s, "10.42.0.3:53"))));
        assert!(!out.contains(&sep_of(&s, "10.42.0.4:53")));
        assert!(!out.contains("REJECT"));
    }

    #[test]
    fn output_is_deterministic_and_counts_rules() {
        let mut a = IptablesRenderer::new();
        let mut b = IptablesRenderer::new();
        let mut reversed = all();
        reversed.reverse();
        let st = state(all());
        let st_rev = ProxyState {
            services: reversed,
            ..st.clone()
        };
        let out = a.render(&st);
        assert_eq!(out, b.render(&st_rev));
        let adds = out.lines().filter(|l| l.starts_with("-A ")).count();
        assert_eq!(a.rule_count(), adds);
        assert!(out.starts_with("*filter\n:KUBE-SERVICES - [0:0]\n"));
        assert!(out.ends_with("COMMIT\n"));
        // Declarations come before every rule of a table.
        let nat = section(&out, "nat");
        let last_decl = nat.rfind("\n:").expect("declarations");
        let first_rule = nat.find("\n-A ").expect("rules");
        assert!(last_decl < first_rule);
    }

    #[test]
    fn large_clusters_drop_endpoint_comments() {
        let mut s = web();
        s.affinity_timeout = None;
        s.endpoints = (0..1001u32)
            .map(|i| {
                let [_, _, c, d] = (i + 256).to_be_bytes();
                ep([10, 42, c, d], 8080, "node-b")
            })
            .collect();
        let mut r = IptablesRenderer::new();
        let out = r.render(&state(vec![s.clone()]));
        let (svc, _, _) = chains_of(&s);
        let first = rules_of(&out, &svc)[1];
        assert!(first.starts_with(&format!(
            "-A {svc} -m statistic --mode random --probability 0.0009990010 -j KUBE-SEP-"
        )));
        let sep = sep_of(&s, "10.42.1.0:8080");
        assert_eq!(
            rules_of(&out, &sep),
            vec![
                format!("-A {sep} -s 10.42.1.0 -j KUBE-MARK-MASQ"),
                format!("-A {sep} -m tcp -p tcp -j DNAT --to-destination 10.42.1.0:8080"),
            ]
        );
    }

    #[test]
    fn removing_a_service_deletes_its_chains() {
        let mut r = IptablesRenderer::new();
        let first = r.render(&state(all()));
        r.applied(true);
        assert!(deleted(&first).is_empty());
        let w = web();
        let (svc, _, ext) = chains_of(&w);
        let seps: Vec<String> = ["10.42.0.5:8080", "10.42.1.6:8080", "10.42.1.7:8080"]
            .iter()
            .map(|a| sep_of(&w, a))
            .collect();

        let rest: Vec<ServicePort> = all().into_iter().filter(|s| s.name != w.name).collect();
        let second = r.render(&state(rest.clone()));
        let gone = deleted(&second);
        for chain in seps.iter().chain([&svc, &ext]) {
            assert!(gone.contains(chain), "{chain} not deleted:\n{second}");
            // Declared (flushed) before deletion, referenced by no rule.
            assert!(second.contains(&format!(":{chain} - [0:0]\n")));
            assert!(!second.contains(&format!("-j {chain}")));
        }
        assert_eq!(gone.len(), 5);
        assert!(!second.contains("10.43.0.20"));
        r.applied(true);

        // Nothing left to delete afterwards; the fixed chains are still declared.
        let third = r.render(&state(rest));
        assert!(deleted(&third).is_empty());
        assert!(third.contains(":KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n"));
    }

    #[test]
    fn removing_an_endpoint_deletes_only_its_chain() {
        let mut r = IptablesRenderer::new();
        r.render(&state(vec![web()]));
        r.applied(true);
        let mut w = web();
        w.endpoints.pop();
        let out = r.render(&state(vec![w.clone()]));
        assert_eq!(
            deleted(&out),
            BTreeSet::from([sep_of(&w, "10.42.1.7:8080")])
        );
        assert!(out.contains("--probability 0.5000000000"));
    }

    #[test]
    fn partial_sync_rewrites_only_changed_services() {
        let mut r = IptablesRenderer::new();
        let full = r.render(&state(all()));
        r.applied(true);
        let d = dns();
        let (dns_svc, _, _) = chains_of(&d);
        let w = web();
        let (web_svc, _, _) = chains_of(&w);
        assert!(declared(&full).contains(&dns_svc));

        // Unchanged: only the fixed chains are rewritten, but KUBE-SERVICES is complete.
        let same = r.render(&state(all()));
        r.applied(true);
        assert!(!declared(&same).contains(&dns_svc) && !declared(&same).contains(&web_svc));
        assert!(same.contains(&format!("--dport 53 -j {dns_svc}\n")));
        assert!(same.contains(&format!("--dport 80 -j {web_svc}\n")));
        assert_eq!(
            r.rule_count(),
            full.lines().filter(|l| l.starts_with("-A ")).count()
        );

        // One endpoint of dns changes: its chains are rewritten, web's are not.
        let mut changed = all();
        for s in &mut changed {
            if s.name == d.name {
                s.endpoints = vec![ep([10, 42, 0, 4], 53, NODE)];
            }
        }
        let out = r.render(&state(changed.clone()));
        let decl = declared(&out);
        assert!(decl.contains(&dns_svc) && !decl.contains(&web_svc));
        assert!(decl.contains(&sep_of(&d, "10.42.0.4:53")));
        assert_eq!(deleted(&out), BTreeSet::from([sep_of(&d, "10.42.0.3:53")]));

        // A failed restore makes the next render full again.
        r.applied(false);
        let retry = r.render(&state(changed.clone()));
        assert!(declared(&retry).contains(&web_svc));
        assert_eq!(
            deleted(&retry),
            BTreeSet::from([sep_of(&d, "10.42.0.3:53")])
        );
        r.applied(true);
        // reset() forces a full render too.
        r.reset();
        assert!(declared(&r.render(&state(changed))).contains(&web_svc));
    }

    #[test]
    fn restart_deletes_stale_chains_of_a_previous_run() {
        let mut old = IptablesRenderer::new();
        let old_out = old.render(&state(all()));
        old.applied(true);
        // A save as iptables-save prints it: built-in chains, our chains, foreign chains.
        let mut save = String::from(
            "# Generated by iptables-save\n*mangle\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC-MANGLEONLY - [0:0]\nCOMMIT\n\
             *nat\n:PREROUTING ACCEPT [3:180]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
             :DOCKER - [0:0]\n:KUBE-FW-AAAAAAAAAAAAAAAA - [0:0]\n",
        );
        for chain in declared(section(&old_out, "nat")) {
            save.push_str(&format!(":{chain} - [0:0]\n"));
        }
        save.push_str("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n");

        let w = web();
        let rest: Vec<ServicePort> = all().into_iter().filter(|s| s.name != w.name).collect();
        let mut new = IptablesRenderer::new();
        new.observe_existing(&save);
        let out = new.render(&state(rest.clone()));
        let gone = deleted(&out);
        let (svc, _, ext) = chains_of(&w);
        assert!(gone.contains(&svc) && gone.contains(&ext));
        assert!(gone.contains(&sep_of(&w, "10.42.1.6:8080")));
        assert!(gone.contains("KUBE-FW-AAAAAAAAAAAAAAAA"));
        // Never the fixed chains, foreign chains, or other tables' chains.
        for keep in [
            "DOCKER",
            "KUBE-SERVICES",
            "KUBE-SVC-MANGLEONLY",
            "PREROUTING",
        ] {
            assert!(!gone.contains(keep), "{keep} deleted");
        }
        // Chains still in use are rewritten, not deleted.
        let (dns_svc, _, _) = chains_of(&dns());
        assert!(!gone.contains(&dns_svc) && declared(&out).contains(&dns_svc));
        new.applied(true);
        assert!(deleted(&new.render(&state(rest))).is_empty());
    }

    #[test]
    fn failed_restore_keeps_chains_that_may_exist() {
        let mut r = IptablesRenderer::new();
        r.render(&state(vec![web()]));
        r.applied(false);
        // The chains of the failed render are deleted when no longer wanted.
        let out = r.render(&state(vec![dns()]));
        let (svc, _, _) = chains_of(&web());
        assert!(deleted(&out).contains(&svc));
    }

    #[test]
    fn reset_between_render_and_report_stays_full() {
        let mut r = IptablesRenderer::new();
        r.render(&state(vec![web()]));
        r.applied(true);
        let w2 = {
            let mut w = web();
            w.endpoints.truncate(1);
            w
        };
        r.render(&state(vec![w2]));
        r.reset();
        r.applied(true);
        // Still a full sync (dns and web rewritten), and the chains of both renders that
        // are no longer wanted are deleted.
        let out = r.render(&state(vec![dns()]));
        let (svc, _, ext) = chains_of(&web());
        let gone = deleted(&out);
        assert!(gone.contains(&svc) && gone.contains(&ext));
        assert!(gone.contains(&sep_of(&web(), "10.42.0.5:8080")));
        assert!(gone.contains(&sep_of(&web(), "10.42.1.7:8080")));
        assert!(declared(&out).contains(&chains_of(&dns()).0));
    }

    #[test]
    fn jump_rules_hook_every_chain_once() {
        let rules = IptablesRenderer::jump_rules();
        let key = |r: &JumpRule| (r.table, r.chain, r.args.join(" "));
        let unique: BTreeSet<_> = rules.iter().map(key).collect();
        assert_eq!(unique.len(), rules.len());
        // Not even the same `-A CHAIN ...` text in two tables (iptables-save readers compare
        // lines without their table).
        let lines: BTreeSet<_> = rules.iter().map(|r| (r.chain, r.args.join(" "))).collect();
        assert_eq!(lines.len(), rules.len());
        let has = |table: &str, chain: &str, target: &str| {
            rules.iter().any(|r| {
                r.table == table
                    && r.chain == chain
                    && r.args.ends_with(&["-j".into(), target.into()])
            })
        };
        assert!(has("nat", "PREROUTING", KUBE_SERVICES));
        assert!(has("nat", "OUTPUT", KUBE_SERVICES));
        assert!(has("nat", "POSTROUTING", KUBE_POSTROUTING));
        for chain in ["INPUT", "FORWARD", "OUTPUT"] {
            assert!(has("filter", chain, KUBE_SERVICES), "{chain}");
            assert!(has("filter", chain, KUBE_PROXY_FIREWALL), "{chain}");
        }
        assert!(has("filter", "FORWARD", KUBE_FORWARD));
        assert!(has("filter", "INPUT", KUBE_EXTERNAL_SERVICES));
        assert!(has("filter", "FORWARD", KUBE_EXTERNAL_SERVICES));
        assert!(has("filter", "INPUT", KUBE_NODEPORTS));
        // Comments are single arguments; the service-portal jumps see every packet.
        let portal = rules
            .iter()
            .find(|r| {
                r.table == "filter"
                    && r.chain == "OUTPUT"
                    && r.args.last().map(String::as_str) == Some(KUBE_SERVICES)
            })
            .expect("filter OUTPUT jump");
        assert_eq!(
            portal.args,
            [
                "-m",
                "comment",
                "--comment",
                "kubernetes service portals and service CIDR guard",
                "-j",
                "KUBE-SERVICES"
            ]
        );
    }

    #[test]
    fn cleanup_script_removes_only_our_chains() {
        let save = "*filter\n:INPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-FORWARD - [0:0]\n\
                    :KUBE-FIREWALL - [0:0]\n:MINE - [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n\
                    :KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n:KUBE-SEP-ABC - [0:0]\n\
                    :KUBE-SVC-ABC - [0:0]\n:DOCKER - [0:0]\nCOMMIT\n";
        let script = IptablesRenderer::cleanup_script(save);
        assert_eq!(
            deleted(section(&script, "filter")),
            BTreeSet::from(["KUBE-SERVICES".to_string(), "KUBE-FORWARD".to_string()])
        );
        assert_eq!(
            deleted(section(&script, "nat")),
            [
                "KUBE-MARK-MASQ",
                "KUBE-SEP-ABC",
                "KUBE-SERVICES",
                "KUBE-SVC-ABC"
            ]
            .map(String::from)
            .into_iter()
            .collect()
        );
        assert_eq!(script.lines().filter(|l| l.starts_with(':')).count(), 6);
        assert_eq!(
            IptablesRenderer::cleanup_script("*nat\n:DOCKER - [0:0]\nCOMMIT\n"),
            ""
        );
    }

    /// Runs commands in a network namespace of our own (held by an `unshare --net sleep`),
    /// never in the root namespace; the namespace dies with the process.
    mod netns {
        use std::fs::File;
        use std::os::unix::io::AsRawFd;
        use std::process::{Child, Command, Stdio};
        use std::time::{Duration, Instant};

        pub struct Netns {
            child: Child,
            /// Keeps the namespace pinned while we use it through /proc/self/fd.
            file: File,
        }

        fn tool(name: &str) -> bool {
            ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .any(|d| std::path::Path::new(d).join(name).exists())
        }

        fn is_root() -> bool {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .map(|u| u.split_whitespace().nth(1) == Some("0"))
                })
                .unwrap_or(false)
        }

        impl Netns {
            /// `None` (test skipped) unless root with iptables-restore, unshare and nsenter.
            pub fn create() -> Option<Netns> {
                if !is_root()
                    || ![
                        "iptables-restore",
                        "iptables-save",
                        "iptables",
                        "unshare",
                        "nsenter",
                    ]
                    .iter()
                    .all(|t| tool(t))
                {
                    eprintln!("skipping: needs root, iptables-restore, unshare and nsenter");
                    return None;
                }
                let own = std::fs::read_link("/proc/self/ns/net").expect("own netns");
                let mut child = Command::new("unshare")
                    .args(["--net", "--", "sleep", "600"])
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("spawn unshare");
                let path = format!("/proc/{}/ns/net", child.id());
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    // Only once the child left our namespace is its namespace file usable.
                    if let Ok(link) = std::fs::read_link(&path) {
                        if link != own {
                            break;
                        }
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!("unshare did not create a network namespace");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                let file = File::open(&path).expect("open netns");
                Some(Netns { child, file })
            }

            /// The pid holding the namespace (for `ip link set DEV netns PID`).
            pub fn pid(&self) -> u32 {
                self.child.id()
            }

            /// Starts `args` inside the namespace in the background (kill it by its handle).
            pub fn spawn(&self, args: &[&str]) -> Child {
                Command::new("nsenter")
                    .arg(format!("--net={}", self.path()))
                    .arg("--")
                    .args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("spawn nsenter")
            }

            fn path(&self) -> String {
                format!("/proc/{}/fd/{}", std::process::id(), self.file.as_raw_fd())
            }

            /// Runs `args` inside the namespace with `input` on stdin.
            pub fn run(&self, args: &[&str], input: &str) -> (bool, String, String) {
                use std::io::Write;
                let mut child = Command::new("nsenter")
                    .arg(format!("--net={}", self.path()))
                    .arg("--")
                    .args(args)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn nsenter");
                let mut stdin = child.stdin.take().expect("stdin");
                let data = input.as_bytes().to_vec();
                let writer = std::thread::spawn(move || {
                    let _ = stdin.write_all(&data);
                });
                let out = child.wait_with_output().expect("nsenter output");
                let _ = writer.join();
                (
                    out.status.success(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                )
            }

            pub fn ok(&self, args: &[&str], input: &str) -> String {
                let (ok, out, err) = self.run(args, input);
                assert!(
                    ok,
                    "{args:?} failed: {err}\ninput:\n{}",
                    &input[..input.len().min(4000)]
                );
                out
            }
        }

        impl Drop for Netns {
            fn drop(&mut self) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }

    /// What the runtime does for the jump rules: `-C`, then `-I` when absent.
    fn ensure_jumps(ns: &netns::Netns) {
        ensure_jumps_in(ns, IptablesRenderer::jump_rules());
    }

    fn ensure_jumps_in(ns: &netns::Netns, jumps: Vec<JumpRule>) {
        for j in jumps {
            let mut check = vec!["iptables", "-w", "-t", j.table, "-C", j.chain];
            check.extend(j.args.iter().map(String::as_str));
            if !ns.run(&check, "").0 {
                let mut insert = vec!["iptables", "-w", "-t", j.table, "-I", j.chain];
                insert.extend(j.args.iter().map(String::as_str));
                ns.ok(&insert, "");
            }
        }
    }

    fn restore(ns: &netns::Netns, input: &str) {
        ns.ok(&["iptables-restore", "--noflush", "-w"], input);
    }

    /// Chains of `table` in an iptables-save output.
    fn saved(save: &str, table: &str) -> BTreeSet<String> {
        saved_chains(save).remove(table).unwrap_or_default()
    }

    #[test]
    fn applies_in_a_private_network_namespace() {
        let Some(ns) = netns::Netns::create() else {
            return;
        };
        let mut r = IptablesRenderer::new();
        restore(&ns, &r.render(&state(all())));
        r.applied(true);
        ensure_jumps(&ns);
        // A second sync with the same jumps: nothing duplicated.
        restore(&ns, &r.render(&state(all())));
        r.applied(true);
        ensure_jumps(&ns);

        // Change: drop web, move dns to another endpoint.
        let w = web();
        let d = dns();
        let mut changed: Vec<ServicePort> =
            all().into_iter().filter(|s| s.name != w.name).collect();
        for s in &mut changed {
            if s.name == d.name {
                s.endpoints = vec![ep([10, 42, 0, 4], 53, NODE)];
            }
        }
        restore(&ns, &r.render(&state(changed.clone())));
        r.applied(true);
        ensure_jumps(&ns);

        let save = ns.ok(&["iptables-save"], "");
        let jumps: Vec<&str> = save
            .lines()
            .filter(|l| l.starts_with("-A ") && l.contains("-j KUBE-"))
            .collect();
        let unique: BTreeSet<&str> = jumps.iter().copied().collect();
        assert_eq!(jumps.len(), unique.len(), "duplicate rules:\n{save}");
        for chain in ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"] {
            assert!(
                save.contains(&format!("-A {chain} ")),
                "{chain} not hooked:\n{save}"
            );
        }
        let nat = saved(&save, "nat");
        let (web_svc, _, web_ext) = chains_of(&w);
        assert!(!nat.contains(&web_svc) && !nat.contains(&web_ext));
        assert!(!nat.contains(&sep_of(&d, "10.42.0.3:53")));
        assert!(nat.contains(&sep_of(&d, "10.42.0.4:53")));
        assert!(!save.contains("10.43.0.20"));
        // Exactly the chains the renderer wants, after the partial syncs.
        let service_chains: BTreeSet<String> = nat
            .iter()
            .filter(|c| is_service_chain(c))
            .cloned()
            .collect();
        assert_eq!(&service_chains, r.created_for_tests());

        // Restart: a new renderer learns about the old chains and drops the stale ones.
        let mut fresh = IptablesRenderer::new();
        fresh.observe_existing(&save);
        let only_dns = vec![dns()];
        restore(&ns, &fresh.render(&state(only_dns)));
        fresh.applied(true);
        ensure_jumps(&ns);
        let save = ns.ok(&["iptables-save"], "");
        let nat = saved(&save, "nat");
        let service_chains: BTreeSet<String> = nat
            .iter()
            .filter(|c| is_service_chain(c))
            .cloned()
            .collect();
        let (dns_svc, _, _) = chains_of(&d);
        assert_eq!(
            service_chains,
            BTreeSet::from([dns_svc, sep_of(&d, "10.42.0.3:53")])
        );
        let rules_total = save
            .lines()
            .filter(|l| {
                l.starts_with("-A ")
                    && !l.starts_with("-A INPUT")
                    && !l.starts_with("-A FORWARD")
                    && !l.starts_with("-A OUTPUT")
                    && !l.starts_with("-A PREROUTING")
                    && !l.starts_with("-A POSTROUTING")
            })
            .count();
        assert_eq!(rules_total, fresh.rule_count());

        // Cleanup: delete the jumps, then our chains.
        for j in IptablesRenderer::jump_rules() {
            let mut del = vec!["iptables", "-w", "-t", j.table, "-D", j.chain];
            del.extend(j.args.iter().map(String::as_str));
            ns.ok(&del, "");
        }
        let save = ns.ok(&["iptables-save"], "");
        restore(&ns, &IptablesRenderer::cleanup_script(&save));
        let save = ns.ok(&["iptables-save"], "");
        assert!(!save.contains("KUBE-"), "left over:\n{save}");
    }

    /// Python probe: connects to each `ip:port` argument with a 1 s timeout and prints
    /// `ok`, `refused`, `timeout` or `dropped` (EPERM: dropped in OUTPUT) per target.
    const PROBE: &str = r#"
import socket, errno, sys
def probe(target):
    ip, port = target.rsplit(":", 1)
    c = socket.socket(); c.settimeout(1.0)
    try:
        c.connect((ip, int(port))); return "ok"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return {errno.ECONNREFUSED: "refused", errno.EPERM: "dropped"}.get(e.errno, "error:" + str(e))
    finally:
        c.close()
print(" ".join(probe(t) for t in sys.argv[1:]))
"#;

    /// Packets counted by the rules of `chain` that end in `-d cidr ... -j DROP`.
    fn guard_packets(save_with_counters: &str, chain: &str) -> u64 {
        save_with_counters
            .lines()
            .filter(|l| {
                l.contains(&format!("-A {chain} -d 10.43.0.0/16 ")) && l.ends_with("-j DROP")
            })
            .filter_map(|l| l.strip_prefix('[')?.split(':').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Real traffic between a "node" namespace and a "pod" namespace joined by a veth: the
    /// service answers through DNAT (from the pod with hairpin masquerade, and from the
    /// node), a port without endpoints is refused at once, and what aims at an unallocated
    /// service IP or port is dropped by the guard instead of following the node's route.
    #[test]
    fn traffic_in_private_network_namespaces() {
        let (Some(node), Some(pod)) = (netns::Netns::create(), netns::Netns::create()) else {
            return;
        };
        if !std::path::Path::new("/usr/bin/python3").exists() {
            eprintln!("skipping: needs python3");
            return;
        }
        node.ok(
            &[
                "ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
            ],
            "",
        );
        node.ok(
            &[
                "ip",
                "link",
                "set",
                "veth1",
                "netns",
                &pod.pid().to_string(),
            ],
            "",
        );
        node.ok(&["ip", "addr", "add", "10.42.0.1/24", "dev", "veth0"], "");
        node.ok(&["ip", "link", "set", "veth0", "up"], "");
        node.ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"], "");
        // The service network's dead end, as on a real node (an empty bridge).
        node.ok(&["ip", "link", "add", "svc0", "type", "bridge"], "");
        node.ok(&["ip", "link", "set", "svc0", "up"], "");
        node.ok(
            &[
                "ip",
                "route",
                "add",
                "10.43.0.0/16",
                "dev",
                "svc0",
                "src",
                "10.42.0.1",
            ],
            "",
        );
        pod.ok(&["ip", "link", "set", "lo", "up"], "");
        pod.ok(&["ip", "addr", "add", "10.42.0.7/24", "dev", "veth1"], "");
        pod.ok(&["ip", "link", "set", "veth1", "up"], "");
        pod.ok(
            &["ip", "route", "add", "10.43.0.0/16", "via", "10.42.0.1"],
            "",
        );

        let mut web = port("default", "web", "", Protocol::Tcp, [10, 43, 0, 20], 80);
        web.endpoints = vec![ep([10, 42, 0, 7], 8080, NODE)];
        let none = port("default", "none", "", Protocol::Tcp, [10, 43, 0, 30], 80);
        let mut r = IptablesRenderer::new();
        let text = r.render(&state(vec![web, none]));
        node.ok(&["iptables-restore", "--noflush", "-w"], &text);
        r.applied(true);
        // Reversed, so that KUBE-FORWARD comes before KUBE-SERVICES in FORWARD: the order
        // must not matter.
        let mut jumps = IptablesRenderer::jump_rules();
        jumps.reverse();
        ensure_jumps_in(&node, jumps);

        let mut server = pod.spawn(&[
            "python3",
            "-c",
            "import socket,time\ns=socket.socket()\ns.bind(('10.42.0.7',8080))\ns.listen(64)\ntime.sleep(60)",
        ]);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while pod
            .ok(&["python3", "-c", PROBE, "10.42.0.7:8080"], "")
            .trim()
            != "ok"
        {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let from_pod = pod.ok(
            &[
                "python3",
                "-c",
                PROBE,
                // The refusal first: the hairpin makes the node send the pod an ICMP
                // redirect, which would use up the per-host ICMP rate limit (1/s).
                "10.43.0.30:80",
                "10.43.0.20:80",
                "10.43.0.99:80",
                "10.43.0.20:81",
            ],
            "",
        );
        let from_node = node.ok(
            &["python3", "-c", PROBE, "10.43.0.20:80", "10.43.0.99:80"],
            "",
        );
        let _ = server.kill();
        let _ = server.wait();
        assert_eq!(
            from_pod.split_whitespace().collect::<Vec<_>>(),
            ["refused", "ok", "timeout", "timeout"],
            "from the pod: {from_pod}"
        );
        let node_got: Vec<&str> = from_node.split_whitespace().collect();
        assert_eq!(node_got[0], "ok", "from the node: {from_node}");
        assert!(
            ["dropped", "timeout"].contains(&node_got[1]),
            "from the node: {from_node}"
        );
        // The guard did the dropping (in FORWARD for the pod, in OUTPUT for the node).
        let save = node.ok(&["iptables-save", "-c"], "");
        assert!(guard_packets(&save, KUBE_SERVICES) >= 3, "{save}");
    }

    /// Timing of a full render + restore of 1,000 service ports and 10,000 endpoints, then of
    /// a partial one (one port changed). Run with `--ignored --nocapture`.
    #[test]
    #[ignore]
    fn bench_restore_1000_ports_10000_endpoints() {
        let Some(ns) = netns::Netns::create() else {
            return;
        };
        let services: Vec<ServicePort> = (0..1000u32)
            .map(|i| {
                let [_, _, c, d] = (i + 256).to_be_bytes();
                let mut s = port(
                    "bench",
                    &format!("svc{i}"),
                    "http",
                    Protocol::Tcp,
                    [10, 43, c, d],
                    80,
                );
                if i % 2 == 0 {
                    s.node_port = Some(30000 + i as u16);
                }
                s.endpoints = (0..10u32)
                    .map(|e| {
                        let [_, b, c, d] = (i * 10 + e).to_be_bytes();
                        ep(
                            [10, 42 + b, c, d],
                            8080,
                            if e % 2 == 0 { NODE } else { "node-b" },
                        )
                    })
                    .collect();
                s
            })
            .collect();
        let st = state(services);
        let mut r = IptablesRenderer::new();
        let t = Instant::now();
        let text = r.render(&st);
        let render = t.elapsed();
        let t = Instant::now();
        restore(&ns, &text);
        let apply = t.elapsed();
        r.applied(true);
        ensure_jumps(&ns);
        eprintln!(
            "full: render {render:?}, iptables-restore {apply:?}, {} rules, {} bytes",
            r.rule_count(),
            text.len()
        );
        // Second full sync over the existing rules (as after a restart).
        r.reset();
        let t = Instant::now();
        let text = r.render(&st);
        let render = t.elapsed();
        let t = Instant::now();
        restore(&ns, &text);
        eprintln!(
            "full again: render {render:?}, iptables-restore {:?}",
            t.elapsed()
        );
        r.applied(true);
        let mut changed = st.clone();
        changed.services[0].endpoints.pop();
        let t = Instant::now();
        let text = r.render(&changed);
        let render = t.elapsed();
        let t = Instant::now();
        restore(&ns, &text);
        eprintln!(
            "partial (1 port changed): render {render:?}, iptables-restore {:?}, {} bytes",
            t.elapsed(),
            text.len()
        );
        r.applied(true);
        let t = Instant::now();
        let save = ns.ok(&["iptables-save"], "");
        eprintln!("iptables-save {:?}, {} bytes", t.elapsed(), save.len());
    }

    impl IptablesRenderer {
        fn created_for_tests(&self) -> &BTreeSet<String> {
            &self.created
        }
    }
}
