//! The nftables rule renderer of the proxy (the default mode), modelled on upstream
//! kube-proxy's nftables proxier: turns a [`ProxyState`] into `nft -f -` transactions for the
//! table `ip kube-proxy`. The first transaction rebuilds the table atomically; later ones carry
//! only what changed since the last applied one. Pure: it renders text and remembers what it
//! rendered, the caller runs `nft` and reports back with [`NftRenderer::applied`].
//!
//! Ruleset layout (names as upstream):
//! - base chains: `filter-input`, `filter-forward`, `filter-output` (filter, priority -110 =
//!   dstnat-10, i.e. before DNAT), `filter-output-post-dnat` (filter, output, -90),
//!   `nat-prerouting` / `nat-output` (nat, -100 = dstnat), `nat-postrouting` (nat, 100 = srcnat).
//! - `service-endpoints-check` (from the three filter hooks, `ct state new`) looks
//!   `ip daddr . meta l4proto . th dport` up in the verdict map `no-endpoint-services`;
//!   `nodeport-endpoints-check` (from `filter-input`) looks `meta l4proto . th dport` up in
//!   `no-endpoint-nodeports`. Their verdicts are `goto reject-chain` (tcp reset for TCP,
//!   icmp port-unreachable otherwise) for ports without any endpoint and `drop` for a Local
//!   policy without local endpoints.
//! - `cluster-ips-check` (from `filter-forward` and `filter-output-post-dnat`, so after DNAT,
//!   every packet, not only new ones): a packet still aimed at an active ClusterIP (set
//!   `cluster-ips`) is rejected, anything else still aimed at the service CIDR is dropped, so
//!   nothing aimed at the service CIDR ever leaves the node.
//! - `services` (from both nat DNAT hooks) dispatches through the verdict maps `service-ips`
//!   (ClusterIP, external and load-balancer IPs) and `service-nodeports` (`fib daddr type
//!   local`, not 127/8) to the per-service-port chains:
//!   `service-<HASH>-ns/name/proto/port` (Cluster policy endpoints), `local-<HASH>-…` (Local
//!   policy endpoints), `external-<HASH>-…` (masquerade or Local short-circuits) and
//!   `endpoint-<HASH>-ns/name/proto/port__ip/port` (hairpin mark, affinity update, DNAT);
//!   load balancing is `numgen random mod N vmap { … }`, ClientIP affinity uses one timeout
//!   set `affinity-<HASH>-…` per endpoint, as upstream.
//! - `mark-for-masquerade` sets bit 0x4000; `masquerading` (from `nat-postrouting`) clears it
//!   and masquerades marked packets (`fully-random`).
//!
//! Incremental transactions: new chains are added first, changed and removed chains are
//! flushed, affinity sets deleted/added, rules written, map/set elements deleted and added,
//! and removed chains deleted last (after the elements and rules that referenced them).
//!
//! State fingerprint: every transaction that changes anything also rewrites the map
//! `state-fingerprint` (`inet_service : mark`, elements `0..8` = the eight big-endian 32-bit
//! words of a SHA-256 over [`FORMAT_VERSION`] and the whole [`ProxyState`]). It says which
//! state the table was rendered from, so a restarted proxy (or the periodic re-check) can read
//! it back with `nft -j list map` and, when it equals the desired state's [`Fingerprint`],
//! [`NftRenderer::adopt`] the state instead of rewriting ~20,000 identical rules.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use crate::model::{Endpoint, ProxyState, ServicePort, ServicePortName};

/// Family and name of our table, as written in every command.
const TABLE: &str = "ip kube-proxy";
/// Version of the rendered layout, part of every [`Fingerprint`]. Bump it whenever the rules
/// rendered for a given [`ProxyState`] change (new chain, different rule text, ...), so a
/// table written by an older build is never adopted as current.
pub const FORMAT_VERSION: u32 = 1;
/// The map holding the fingerprint of the state the table was rendered from.
const FINGERPRINT_MAP: &str = "state-fingerprint";
/// `nft` arguments printing the fingerprint map as JSON (fails when the table or map is
/// missing); parse the output with [`Fingerprint::from_nft_json`].
pub const FINGERPRINT_LIST_ARGS: [&str; 6] =
    ["-j", "list", "map", "ip", "kube-proxy", FINGERPRINT_MAP];
/// Packet mark bit for "masquerade me" (upstream's default `--masquerade-bit` 14).
const MASQ_MARK: &str = "0x00004000";
const MARK_MASQ_CHAIN: &str = "mark-for-masquerade";
const REJECT_CHAIN: &str = "reject-chain";
/// Longest hashed name base (upstream: 256 minus the longest chain prefix).
const NAME_BASE_MAX: usize = 240;
/// nft rejects comments longer than this.
const COMMENT_MAX: usize = 128;

/// The sets and maps that hold per-service elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Container {
    ClusterIps,
    NoEndpointNodePorts,
    NoEndpointServices,
    ServiceIps,
    ServiceNodePorts,
}

impl Container {
    fn name(self) -> &'static str {
        match self {
            Container::ClusterIps => "cluster-ips",
            Container::NoEndpointNodePorts => "no-endpoint-nodeports",
            Container::NoEndpointServices => "no-endpoint-services",
            Container::ServiceIps => "service-ips",
            Container::ServiceNodePorts => "service-nodeports",
        }
    }
}

/// One element of one of our sets/maps, e.g. `service-ips` / `10.43.0.10 . tcp . 80`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ElemKey {
    container: Container,
    key: String,
}

/// The verdict of a map element (empty for set elements) and its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ElemVal {
    value: String,
    comment: Option<String>,
}

/// Everything one service port owns: its chains (with their rules), its affinity sets (with
/// their timeouts) and the elements it wants in the shared sets/maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SvcRules {
    chains: BTreeMap<String, Vec<String>>,
    sets: BTreeMap<String, u32>,
    elems: BTreeMap<ElemKey, ElemVal>,
}

impl SvcRules {
    fn rule_count(&self) -> usize {
        self.chains.values().map(Vec::len).sum()
    }

    fn chain(&mut self, name: &str) -> &mut Vec<String> {
        self.chains.entry(name.to_string()).or_default()
    }

    /// First claim of a key within one service port wins (e.g. an external IP listed twice).
    fn claim(&mut self, container: Container, key: String, value: String, comment: Option<&str>) {
        self.elems
            .entry(ElemKey { container, key })
            .or_insert_with(|| ElemVal {
                value,
                comment: comment.map(str::to_string),
            });
    }
}

/// SHA-256 of [`FORMAT_VERSION`] and a whole [`ProxyState`]: equal fingerprints mean equal
/// rendered rulesets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of the rules the current renderer writes for `state`.
    pub fn of(state: &ProxyState) -> Self {
        Self::with_version(FORMAT_VERSION, state)
    }

    /// Hashes the `Debug` form of the state (every field, in its own order: the state is
    /// built sorted), streamed into the hasher without building the string.
    fn with_version(version: u32, state: &ProxyState) -> Self {
        struct HashWriter(Sha256);
        impl std::fmt::Write for HashWriter {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0.update(s.as_bytes());
                Ok(())
            }
        }
        let mut w = HashWriter(Sha256::new());
        let _ = write!(w, "minik8s kube-proxy nftables v{version}\n{state:?}");
        Fingerprint(w.0.finalize().into())
    }

    /// The eight big-endian 32-bit words stored in the map.
    fn words(&self) -> [u32; 8] {
        let mut out = [0u32; 8];
        for (i, chunk) in self.0.chunks_exact(4).enumerate() {
            out[i] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        out
    }

    /// Reads the fingerprint from `nft -j list map ip kube-proxy state-fingerprint` output;
    /// `None` unless all eight words are there.
    pub fn from_nft_json(json: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        let map = v["nftables"]
            .as_array()?
            .iter()
            .find_map(|o| o.get("map").filter(|m| m["name"] == FINGERPRINT_MAP))?;
        let mut words: [Option<u32>; 8] = [None; 8];
        for elem in map["elem"].as_array()? {
            let pair = elem.as_array()?;
            let idx = usize::try_from(pair.first()?.as_u64()?).ok()?;
            let word = u32::try_from(pair.get(1)?.as_u64()?).ok()?;
            *words.get_mut(idx)? = Some(word);
        }
        let mut out = [0u8; 32];
        for (i, w) in words.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&(*w)?.to_be_bytes());
        }
        Some(Fingerprint(out))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Node facts the rules depend on; a change forces a full rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeFacts {
    node_name: String,
    cluster_cidr: String,
    service_cidr: String,
}

impl NodeFacts {
    fn of(state: &ProxyState) -> Self {
        NodeFacts {
            node_name: state.node_name.clone(),
            cluster_cidr: cidr(state.cluster_cidr),
            service_cidr: cidr(state.service_cidr),
        }
    }
}

/// What the kernel holds after the last applied (or just rendered) transaction.
#[derive(Debug)]
struct Known {
    facts: NodeFacts,
    services: BTreeMap<ServicePortName, (ServicePort, SvcRules)>,
    /// Every service port claiming each element; the smallest name's value is installed.
    claims: BTreeMap<ElemKey, BTreeMap<ServicePortName, ElemVal>>,
    service_rules: usize,
    /// The fingerprint in the map (`None` before the first render of a rebuild).
    fingerprint: Option<Fingerprint>,
}

impl Known {
    fn new(facts: NodeFacts) -> Self {
        Known {
            facts,
            services: BTreeMap::new(),
            claims: BTreeMap::new(),
            service_rules: 0,
            fingerprint: None,
        }
    }

    fn effective(&self, key: &ElemKey) -> Option<ElemVal> {
        self.claims
            .get(key)
            .and_then(|owners| owners.values().next().cloned())
    }
}

/// The commands of one transaction, grouped by phase (each phase sorted).
#[derive(Debug, Default)]
struct Tx {
    add_chains: BTreeSet<String>,
    flush_chains: BTreeSet<String>,
    del_sets: BTreeSet<String>,
    add_sets: BTreeMap<String, u32>,
    write_rules: BTreeMap<String, Vec<String>>,
    del_chains: BTreeSet<String>,
    /// The installed value of every element key touched, before this transaction.
    elems_before: BTreeMap<ElemKey, Option<ElemVal>>,
}

/// Renders nftables transactions for the proxy and remembers what was last applied.
#[derive(Debug, Default)]
pub struct NftRenderer {
    /// `None`: the kernel state is unknown, the next render is a full rebuild.
    known: Option<Known>,
    /// A render happened and `applied` was not called yet.
    unconfirmed: bool,
    /// Rule count of the last rendered transaction's result.
    rendered_rules: usize,
    /// Rule count after the last applied transaction.
    committed_rules: usize,
    /// Fingerprint in the kernel after the last applied transaction (`None`: unknown).
    committed_fingerprint: Option<Fingerprint>,
}

impl NftRenderer {
    pub fn new() -> Self {
        Self::default()
    }

    /// One `nft -f -` transaction taking the kernel from the last applied state to `state`.
    /// The first call (and any call after `applied(false)`, `reset()`, a non-empty render that
    /// was never confirmed with `applied`, or a change of node name / cluster CIDR / service
    /// CIDR) is a full rebuild that starts with `add table ip kube-proxy` + `delete table ip
    /// kube-proxy` so stale rules from a previous run vanish atomically; later calls contain
    /// only what changed, and an empty string when nothing did (nothing to run or confirm).
    pub fn render(&mut self, state: &ProxyState) -> String {
        let facts = NodeFacts::of(state);
        let full = self.unconfirmed
            || match &self.known {
                None => true,
                Some(known) => known.facts != facts,
            };
        if full {
            self.known = None;
        }
        let known = self.known.get_or_insert_with(|| Known::new(facts));
        let mut tx = Tx::default();

        let mut wanted: BTreeMap<&ServicePortName, &ServicePort> = BTreeMap::new();
        for sp in &state.services {
            wanted.entry(&sp.name).or_insert(sp);
        }
        let removed: Vec<ServicePortName> = known
            .services
            .keys()
            .filter(|name| !wanted.contains_key(name))
            .cloned()
            .collect();
        for name in removed {
            if let Some((_, old)) = known.services.remove(&name) {
                sync_service(known, &mut tx, &name, Some(&old), None);
            }
        }
        for (name, sp) in wanted {
            if matches!(known.services.get(name), Some((old_sp, _)) if old_sp == sp) {
                continue;
            }
            let old = known.services.remove(name).map(|(_, rules)| rules);
            let new = render_service(sp, &known.facts);
            sync_service(known, &mut tx, name, old.as_ref(), Some(&new));
            known.services.insert(name.clone(), (sp.clone(), new));
        }

        let mut out = String::new();
        if full {
            write_prelude(&mut out, &known.facts);
        }
        write_tx(&mut out, &tx, known);
        let fingerprint = Fingerprint::of(state);
        if full || !out.is_empty() || known.fingerprint != Some(fingerprint) {
            write_fingerprint(&mut out, &fingerprint);
            known.fingerprint = Some(fingerprint);
        }
        self.rendered_rules = BASE_RULES.len() + known.service_rules;
        self.unconfirmed = !out.is_empty();
        out
    }

    /// Whether the last rendered transaction was committed; false forces the next render full.
    pub fn applied(&mut self, ok: bool) {
        if ok && self.unconfirmed {
            self.committed_rules = self.rendered_rules;
            self.committed_fingerprint = self.known.as_ref().and_then(|k| k.fingerprint);
        }
        if !ok {
            self.known = None;
            self.committed_fingerprint = None;
        }
        self.unconfirmed = false;
    }

    /// Takes `state` as what the kernel already holds (its table carries `state`'s
    /// [`Fingerprint`]) without writing anything: renders it into a discarded transaction so
    /// later renders are incremental from it.
    pub fn adopt(&mut self, state: &ProxyState) {
        self.reset();
        let _ = self.render(state);
        self.applied(true);
    }

    /// The fingerprint the kernel holds after the last applied render (`None` when unknown).
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.committed_fingerprint
    }

    /// Forgets everything (e.g. after running [`Self::cleanup_script`]): the next render is
    /// a full rebuild.
    pub fn reset(&mut self) {
        self.known = None;
        self.unconfirmed = false;
        self.committed_rules = 0;
        self.rendered_rules = 0;
        self.committed_fingerprint = None;
    }

    /// `nft -f -` input removing everything we own (the table), tolerant of its absence.
    pub fn cleanup_script() -> String {
        format!("add table {TABLE}\ndelete table {TABLE}\n")
    }

    /// Rules in the kernel after the last applied render (for reporting).
    pub fn rule_count(&self) -> usize {
        self.committed_rules
    }
}

/// Records in `tx` what turns service port `name` from `old` into `new` (either may be
/// absent) and updates the element claims and rule count of `known`.
fn sync_service(
    known: &mut Known,
    tx: &mut Tx,
    name: &ServicePortName,
    old: Option<&SvcRules>,
    new: Option<&SvcRules>,
) {
    let empty = SvcRules::default();
    let old = old.unwrap_or(&empty);
    let new = new.unwrap_or(&empty);

    // A set whose timeout changed is deleted and re-added, so every chain of the service
    // that may reference it is flushed and rewritten around that.
    let mut recreated = false;
    for (set, timeout) in &new.sets {
        match old.sets.get(set) {
            None => {
                tx.add_sets.insert(set.clone(), *timeout);
            }
            Some(before) if before != timeout => {
                tx.del_sets.insert(set.clone());
                tx.add_sets.insert(set.clone(), *timeout);
                recreated = true;
            }
            Some(_) => {}
        }
    }
    for set in old.sets.keys() {
        if !new.sets.contains_key(set) {
            tx.del_sets.insert(set.clone());
        }
    }
    for (chain, rules) in &new.chains {
        match old.chains.get(chain) {
            None => {
                tx.add_chains.insert(chain.clone());
                tx.write_rules.insert(chain.clone(), rules.clone());
            }
            Some(before) if before != rules || recreated => {
                tx.flush_chains.insert(chain.clone());
                tx.write_rules.insert(chain.clone(), rules.clone());
            }
            Some(_) => {}
        }
    }
    for chain in old.chains.keys() {
        if !new.chains.contains_key(chain) {
            tx.flush_chains.insert(chain.clone());
            tx.del_chains.insert(chain.clone());
        }
    }

    for (key, value) in &old.elems {
        if new.elems.get(key) != Some(value) {
            note_elem(known, tx, key);
            if let Some(owners) = known.claims.get_mut(key) {
                owners.remove(name);
                if owners.is_empty() {
                    known.claims.remove(key);
                }
            }
        }
    }
    for (key, value) in &new.elems {
        if old.elems.get(key) != Some(value) {
            note_elem(known, tx, key);
            known
                .claims
                .entry(key.clone())
                .or_default()
                .insert(name.clone(), value.clone());
        }
    }

    known.service_rules = known.service_rules + new.rule_count() - old.rule_count();
}

/// Remembers the installed value of `key` before the first change in this transaction.
fn note_elem(known: &Known, tx: &mut Tx, key: &ElemKey) {
    if !tx.elems_before.contains_key(key) {
        tx.elems_before.insert(key.clone(), known.effective(key));
    }
}

/// The chains, sets and elements of one service port, following upstream's syncProxyRules.
fn render_service(sp: &ServicePort, facts: &NodeFacts) -> SvcRules {
    let mut out = SvcRules::default();
    let proto = sp.name.protocol.as_str();
    let base = port_name_base(&sp.name);
    let cluster_chain = format!("service-{base}");
    let local_chain = format!("local-{base}");
    let external_chain = format!("external-{base}");
    let comment = comment_text(&sp.name.to_string());
    let node_port = sp.node_port.filter(|p| *p != 0);

    let externally_accessible =
        node_port.is_some() || !sp.external_ips.is_empty() || !sp.load_balancer_ips.is_empty();
    let external_local = sp.external_local && externally_accessible;
    // Cluster endpoints are needed for Cluster internal policy and for any external access
    // (even with a Local external policy, for the pod / host short-circuits).
    let uses_cluster = !sp.internal_local || externally_accessible;
    let uses_local = sp.internal_local || external_local;
    let cluster_eps = if uses_cluster {
        unique(sp.cluster_endpoints())
    } else {
        Vec::new()
    };
    let local_eps = if uses_local {
        unique(sp.local_endpoints(&facts.node_name))
    } else {
        Vec::new()
    };
    let has_endpoints = !sp.has_no_endpoints();
    let (internal_chain, has_internal) = if sp.internal_local {
        (&local_chain, has_endpoints && !local_eps.is_empty())
    } else {
        (&cluster_chain, has_endpoints)
    };
    let (external_policy_chain, has_external) = if external_local {
        (&local_chain, has_endpoints && !local_eps.is_empty())
    } else {
        (&cluster_chain, has_endpoints)
    };
    let uses_external_chain = has_endpoints && externally_accessible;
    let filter_verdict = if has_endpoints {
        "drop".to_string()
    } else {
        format!("goto {REJECT_CHAIN}")
    };

    // Elements: dispatch for working destinations, reject/drop for the others.
    let ip_key = |ip: &Ipv4Addr| format!("{ip} . {proto} . {}", sp.port);
    out.claim(
        Container::ClusterIps,
        sp.cluster_ip.to_string(),
        String::new(),
        None,
    );
    if has_internal {
        out.claim(
            Container::ServiceIps,
            ip_key(&sp.cluster_ip),
            format!("goto {internal_chain}"),
            None,
        );
    } else {
        out.claim(
            Container::NoEndpointServices,
            ip_key(&sp.cluster_ip),
            filter_verdict.clone(),
            Some(&comment),
        );
    }
    for ip in sp.external_ips.iter().chain(&sp.load_balancer_ips) {
        if has_endpoints {
            out.claim(
                Container::ServiceIps,
                ip_key(ip),
                format!("goto {external_chain}"),
                None,
            );
        }
        if !has_external {
            out.claim(
                Container::NoEndpointServices,
                ip_key(ip),
                filter_verdict.clone(),
                Some(&comment),
            );
        }
    }
    if let Some(np) = node_port {
        let key = format!("{proto} . {np}");
        if has_endpoints {
            out.claim(
                Container::ServiceNodePorts,
                key.clone(),
                format!("goto {external_chain}"),
                None,
            );
        }
        if !has_external {
            out.claim(
                Container::NoEndpointNodePorts,
                key,
                filter_verdict.clone(),
                Some(&comment),
            );
        }
    }

    // Internal traffic from outside the pod network (e.g. the host) is masqueraded.
    if has_internal {
        out.chain(internal_chain).push(format!(
            "ip daddr {} {proto} dport {} ip saddr != {} jump {MARK_MASQ_CHAIN}",
            sp.cluster_ip, sp.port, facts.cluster_cidr
        ));
    }

    if uses_external_chain {
        let rules = out.chain(&external_chain);
        if !external_local {
            rules.push(format!("jump {MARK_MASQ_CHAIN}"));
        } else {
            rules.push(format!(
                "ip saddr {} goto {cluster_chain} comment \"short-circuit pod traffic\"",
                facts.cluster_cidr
            ));
            rules.push(format!(
                "fib saddr type local jump {MARK_MASQ_CHAIN} comment \"masquerade local traffic\""
            ));
            rules.push(format!(
                "fib saddr type local goto {cluster_chain} comment \"short-circuit local traffic\""
            ));
        }
        if has_external {
            rules.push(format!("goto {external_policy_chain}"));
        }
    }

    let affinity = sp.affinity_timeout.map(|t| t.max(1));
    let mut reachable: BTreeMap<(Ipv4Addr, u16), (&Endpoint, String)> = BTreeMap::new();
    for ep in cluster_eps.iter().chain(&local_eps) {
        reachable
            .entry((ep.ip, ep.port))
            .or_insert_with(|| (*ep, endpoint_name_base(&sp.name, ep)));
    }
    for (chain, eps) in [(&cluster_chain, &cluster_eps), (&local_chain, &local_eps)] {
        if eps.is_empty() {
            continue;
        }
        let mut rules = Vec::new();
        if affinity.is_some() {
            for ep in eps {
                let b = base_of(&reachable, ep);
                rules.push(format!("ip saddr @affinity-{b} goto endpoint-{b}"));
            }
        }
        let targets: Vec<String> = eps
            .iter()
            .enumerate()
            .map(|(i, ep)| format!("{i} : goto endpoint-{}", base_of(&reachable, ep)))
            .collect();
        rules.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            eps.len(),
            targets.join(", ")
        ));
        out.chain(chain).extend(rules);
    }
    for (ep, b) in reachable.values() {
        let chain = format!("endpoint-{b}");
        let mut rules = vec![format!("ip saddr {} jump {MARK_MASQ_CHAIN}", ep.ip)];
        if let Some(timeout) = affinity {
            out.sets.insert(format!("affinity-{b}"), timeout);
            rules.push(format!("update @affinity-{b} {{ ip saddr }}"));
        }
        rules.push(format!(
            "meta l4proto {proto} dnat to {}:{}",
            ep.ip, ep.port
        ));
        out.chains.insert(chain, rules);
    }
    out
}

/// The name base of a reachable endpoint.
fn base_of<'a>(
    reachable: &'a BTreeMap<(Ipv4Addr, u16), (&Endpoint, String)>,
    ep: &Endpoint,
) -> &'a str {
    reachable
        .get(&(ep.ip, ep.port))
        .map(|(_, base)| base.as_str())
        .unwrap_or_default()
}

/// Keeps the first endpoint of each ip:port (one chain per backend address).
fn unique(eps: Vec<&Endpoint>) -> Vec<&Endpoint> {
    let mut seen = BTreeSet::new();
    eps.into_iter()
        .filter(|e| seen.insert((e.ip, e.port)))
        .collect()
}

/// The rules of the base and top-level chains, installed by every full rebuild.
const BASE_RULES: &[(&str, &str)] = &[
    ("filter-input", "ct state new jump nodeport-endpoints-check"),
    ("filter-input", "ct state new jump service-endpoints-check"),
    ("filter-forward", "ct state new jump service-endpoints-check"),
    ("filter-forward", "jump cluster-ips-check"),
    ("filter-output", "ct state new jump service-endpoints-check"),
    ("filter-output-post-dnat", "jump cluster-ips-check"),
    ("nat-prerouting", "jump services"),
    ("nat-output", "jump services"),
    ("nat-postrouting", "jump masquerading"),
    ("mark-for-masquerade", "meta mark set meta mark or {MASQ}"),
    ("masquerading", "meta mark and {MASQ} == 0 return"),
    ("masquerading", "meta mark set meta mark xor {MASQ}"),
    ("masquerading", "masquerade fully-random"),
    ("reject-chain", "meta l4proto tcp reject with tcp reset"),
    ("reject-chain", "reject"),
    (
        "service-endpoints-check",
        "ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
    ),
    (
        "nodeport-endpoints-check",
        "ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports",
    ),
    (
        "services",
        "ip daddr . meta l4proto . th dport vmap @service-ips",
    ),
    (
        "services",
        "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
    ),
    (
        "cluster-ips-check",
        "ip daddr @cluster-ips goto reject-chain comment \"reject traffic to invalid ports of ClusterIPs\"",
    ),
    (
        "cluster-ips-check",
        "ip daddr {SERVICE_CIDR} drop comment \"drop traffic to unallocated ClusterIPs\"",
    ),
];

/// Base chains: name, type, hook, priority (numeric: nft 1.0.6 only knows `dstnat` for the
/// prerouting hook).
const BASE_CHAINS: &[(&str, &str, &str, i32)] = &[
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("filter-output-post-dnat", "filter", "output", -90),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
];

const REGULAR_CHAINS: &[&str] = &[
    "cluster-ips-check",
    MARK_MASQ_CHAIN,
    "masquerading",
    "nodeport-endpoints-check",
    REJECT_CHAIN,
    "service-endpoints-check",
    "services",
];

/// Sets and maps: container, type, comment.
const CONTAINERS: &[(Container, &str, &str)] = &[
    (Container::ClusterIps, "ipv4_addr", "Active ClusterIPs"),
    (
        Container::NoEndpointNodePorts,
        "inet_proto . inet_service : verdict",
        "vmap to drop or reject packets to service nodeports with no endpoints",
    ),
    (
        Container::NoEndpointServices,
        "ipv4_addr . inet_proto . inet_service : verdict",
        "vmap to drop or reject packets to services with no endpoints",
    ),
    (
        Container::ServiceIps,
        "ipv4_addr . inet_proto . inet_service : verdict",
        "ClusterIP, ExternalIP and LoadBalancer IP traffic",
    ),
    (
        Container::ServiceNodePorts,
        "inet_proto . inet_service : verdict",
        "NodePort traffic",
    ),
];

/// The start of a full rebuild: drop the old table and create the fixed skeleton.
fn write_prelude(out: &mut String, facts: &NodeFacts) {
    let _ = writeln!(out, "add table {TABLE}");
    let _ = writeln!(out, "delete table {TABLE}");
    let _ = writeln!(
        out,
        "add table {TABLE} {{ comment \"rules for kube-proxy\" ; }}"
    );
    for (name, kind, hook, prio) in BASE_CHAINS {
        let _ = writeln!(
            out,
            "add chain {TABLE} {name} {{ type {kind} hook {hook} priority {prio} ; policy accept ; }}"
        );
    }
    for name in REGULAR_CHAINS {
        let _ = writeln!(out, "add chain {TABLE} {name}");
    }
    for (container, kind, comment) in CONTAINERS {
        let what = if *container == Container::ClusterIps {
            "set"
        } else {
            "map"
        };
        let _ = writeln!(
            out,
            "add {what} {TABLE} {} {{ type {kind} ; comment \"{comment}\" ; }}",
            container.name()
        );
    }
    let _ = writeln!(
        out,
        "add map {TABLE} {FINGERPRINT_MAP} {{ type inet_service : mark ; comment \"sha256 of the rendered state\" ; }}"
    );
    for (chain, rule) in BASE_RULES {
        let rule = rule
            .replace("{MASQ}", MASQ_MARK)
            .replace("{SERVICE_CIDR}", &facts.service_cidr);
        let _ = writeln!(out, "add rule {TABLE} {chain} {rule}");
    }
}

/// Replaces the fingerprint map's content (last in every transaction that changes anything).
fn write_fingerprint(out: &mut String, fingerprint: &Fingerprint) {
    let words: Vec<String> = fingerprint
        .words()
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{i} : 0x{w:08x}"))
        .collect();
    let _ = writeln!(out, "flush map {TABLE} {FINGERPRINT_MAP}");
    let _ = writeln!(
        out,
        "add element {TABLE} {FINGERPRINT_MAP} {{ {} }}",
        words.join(", ")
    );
}

/// Writes the phases of `tx` in an order the kernel accepts within one transaction.
fn write_tx(out: &mut String, tx: &Tx, known: &Known) {
    for chain in &tx.add_chains {
        let _ = writeln!(out, "add chain {TABLE} {chain}");
    }
    for chain in &tx.flush_chains {
        let _ = writeln!(out, "flush chain {TABLE} {chain}");
    }
    for set in &tx.del_sets {
        let _ = writeln!(out, "delete set {TABLE} {set}");
    }
    for (set, timeout) in &tx.add_sets {
        let _ = writeln!(
            out,
            "add set {TABLE} {set} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"
        );
    }
    for (chain, rules) in &tx.write_rules {
        for rule in rules {
            let _ = writeln!(out, "add rule {TABLE} {chain} {rule}");
        }
    }
    let mut adds = Vec::new();
    for (key, before) in &tx.elems_before {
        let after = known.effective(key);
        if *before == after {
            continue;
        }
        if before.is_some() {
            let _ = writeln!(
                out,
                "delete element {TABLE} {} {{ {} }}",
                key.container.name(),
                key.key
            );
        }
        if let Some(value) = after {
            adds.push((key, value));
        }
    }
    for (key, value) in adds {
        let comment = value
            .comment
            .as_ref()
            .map(|c| format!(" comment \"{c}\""))
            .unwrap_or_default();
        let verdict = if value.value.is_empty() {
            String::new()
        } else {
            format!(" : {}", value.value)
        };
        let _ = writeln!(
            out,
            "add element {TABLE} {} {{ {}{comment}{verdict} }}",
            key.container.name(),
            key.key
        );
    }
    for chain in &tx.del_chains {
        let _ = writeln!(out, "delete chain {TABLE} {chain}");
    }
}

/// `a.b.c.d/n` with the host bits cleared (nft refuses a prefix with host bits set).
fn cidr((ip, len): (Ipv4Addr, u8)) -> String {
    let len = len.min(32);
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    format!("{}/{len}", Ipv4Addr::from(u32::from(ip) & mask))
}

/// A comment nft accepts: no quotes or backslashes, at most 128 bytes.
fn comment_text(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().filter(|c| *c != '"' && *c != '\\') {
        if out.len() + c.len_utf8() > COMMENT_MAX {
            break;
        }
        out.push(c);
    }
    out
}

/// The first 8 characters of the standard base32 encoding of sha256(`name`), i.e. the
/// encoding of its first 5 bytes, as upstream's chain-name hash.
fn hash8(name: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(name.as_bytes());
    let bits = digest[..5]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    (0..8)
        .map(|i| char::from(ALPHABET[((bits >> (35 - 5 * i)) & 31) as usize]))
        .collect()
}

/// `HASH-name`, cut to [`NAME_BASE_MAX`] with a `...` tail when too long (upstream's
/// hashAndTruncate).
fn hash_and_truncate(name: &str) -> String {
    let mut out = format!("{}-{name}", hash8(name));
    if out.len() > NAME_BASE_MAX {
        let mut cut = NAME_BASE_MAX - 3;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// `HASH-namespace/name/protocol/portName`, the base of a service port's chain names.
fn port_name_base(name: &ServicePortName) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}",
        name.namespace,
        name.name,
        name.protocol.as_str(),
        name.port
    ))
}

/// `HASH-namespace/name/protocol/portName__ip/port`, the base of an endpoint's chain and
/// affinity set names.
fn endpoint_name_base(name: &ServicePortName, ep: &Endpoint) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}__{}/{}",
        name.namespace,
        name.name,
        name.protocol.as_str(),
        name.port,
        ep.ip,
        ep.port
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use std::process::{Command, Stdio};

    const NODE: &str = "node-a";

    /// `text` without its trailing fingerprint update, which must be there.
    fn without_fingerprint(text: &str) -> String {
        let lines: Vec<&str> = text.lines().collect();
        let n = lines.len();
        assert!(n >= 2, "{text}");
        assert_eq!(
            lines[n - 2],
            "flush map ip kube-proxy state-fingerprint",
            "{text}"
        );
        assert!(
            lines[n - 1].starts_with("add element ip kube-proxy state-fingerprint { 0 : 0x"),
            "{text}"
        );
        lines[..n - 2].iter().map(|l| format!("{l}\n")).collect()
    }

    fn ep(ip: [u8; 4], port: u16, node: &str) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::from(ip),
            port,
            ready: true,
            serving: true,
            terminating: false,
            node_name: Some(node.into()),
        }
    }

    fn svc(
        name: &str,
        proto: Protocol,
        cip: [u8; 4],
        port: u16,
        eps: Vec<Endpoint>,
    ) -> ServicePort {
        ServicePort {
            name: ServicePortName {
                namespace: "default".into(),
                name: name.into(),
                port: "p".into(),
                protocol: proto,
            },
            cluster_ip: Ipv4Addr::from(cip),
            port,
            node_port: None,
            external_ips: vec![],
            load_balancer_ips: vec![],
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            endpoints: eps,
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

    /// Rule bodies added to `chain` by a rendered transaction, in order.
    fn rules_of(text: &str, chain: &str) -> Vec<String> {
        let prefix = format!("add rule {TABLE} {chain} ");
        text.lines()
            .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }

    fn line_index(text: &str, line: &str) -> usize {
        text.lines()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("missing line {line:?} in:\n{text}"))
    }

    fn cname(prefix: &str, svc: &str, proto: &str) -> String {
        format!(
            "{prefix}-{}",
            hash_and_truncate(&format!("default/{svc}/{proto}/p"))
        )
    }

    fn ename(prefix: &str, svc: &str, proto: &str, ip: &str, port: u16) -> String {
        format!(
            "{prefix}-{}",
            hash_and_truncate(&format!("default/{svc}/{proto}/p__{ip}/{port}"))
        )
    }

    fn small_state() -> ProxyState {
        let web = svc(
            "web",
            Protocol::Tcp,
            [10, 43, 0, 10],
            80,
            vec![
                ep([10, 42, 0, 5], 8080, NODE),
                ep([10, 42, 1, 6], 8080, "node-b"),
            ],
        );
        let mut np = svc(
            "np",
            Protocol::Tcp,
            [10, 43, 0, 11],
            80,
            vec![ep([10, 42, 1, 7], 8080, "node-b")],
        );
        np.node_port = Some(30080);
        let mut loc = svc(
            "loc",
            Protocol::Udp,
            [10, 43, 0, 12],
            53,
            vec![
                ep([10, 42, 0, 8], 5353, NODE),
                ep([10, 42, 1, 9], 5353, "node-b"),
            ],
        );
        loc.node_port = Some(30053);
        loc.external_ips = vec![Ipv4Addr::new(192, 168, 5, 5)];
        loc.external_local = true;
        let mut itl = svc(
            "itl",
            Protocol::Tcp,
            [10, 43, 0, 13],
            80,
            vec![ep([10, 42, 1, 10], 80, "node-b")],
        );
        itl.internal_local = true;
        let mut dead = svc("dead", Protocol::Sctp, [10, 43, 0, 14], 9000, vec![]);
        dead.node_port = Some(30900);
        dead.external_ips = vec![Ipv4Addr::new(192, 168, 5, 6)];
        let mut sticky = svc(
            "sticky",
            Protocol::Tcp,
            [10, 43, 0, 15],
            443,
            vec![ep([10, 42, 0, 20], 8443, NODE)],
        );
        sticky.affinity_timeout = Some(600);
        state(vec![web, np, loc, itl, dead, sticky])
    }

    #[test]
    fn names_hash_like_upstream() {
        assert_eq!(
            hash_and_truncate("ns1/svc1/tcp/p80"),
            "ULMVA6XW-ns1/svc1/tcp/p80"
        );
        assert_eq!(
            hash_and_truncate("ns1/svc1/tcp/p80__10.180.0.1/80"),
            "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
        );
        let long = "x".repeat(300);
        let cut = hash_and_truncate(&long);
        assert_eq!(cut.len(), NAME_BASE_MAX);
        assert!(cut.ends_with("..."));
        assert_eq!(cidr((Ipv4Addr::new(10, 42, 3, 4), 16)), "10.42.0.0/16");
        assert_eq!(cidr((Ipv4Addr::new(10, 42, 3, 4), 0)), "0.0.0.0/0");
    }

    #[test]
    fn full_render_of_small_state() {
        let mut r = NftRenderer::new();
        let text = r.render(&small_state());
        assert!(text.starts_with(
            "add table ip kube-proxy\ndelete table ip kube-proxy\nadd table ip kube-proxy { comment \"rules for kube-proxy\" ; }\n"
        ));
        assert!(text.contains(
            "add chain ip kube-proxy filter-input { type filter hook input priority -110 ; policy accept ; }"
        ));
        assert_eq!(
            rules_of(&text, "cluster-ips-check"),
            vec![
                "ip daddr @cluster-ips goto reject-chain comment \"reject traffic to invalid ports of ClusterIPs\"",
                "ip daddr 10.43.0.0/16 drop comment \"drop traffic to unallocated ClusterIPs\"",
            ]
        );
        assert_eq!(
            rules_of(&text, "filter-output-post-dnat"),
            vec!["jump cluster-ips-check"]
        );

        // ClusterIP: random DNAT over both endpoints, host traffic masqueraded, hairpin.
        let web = cname("service", "web", "tcp");
        let web_a = ename("endpoint", "web", "tcp", "10.42.0.5", 8080);
        let web_b = ename("endpoint", "web", "tcp", "10.42.1.6", 8080);
        assert!(text.contains(&format!(
            "add element ip kube-proxy service-ips {{ 10.43.0.10 . tcp . 80 : goto {web} }}"
        )));
        assert!(text.contains("add element ip kube-proxy cluster-ips { 10.43.0.10 }"));
        assert_eq!(
            rules_of(&text, &web),
            vec![
                "ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade".to_string(),
                format!("numgen random mod 2 vmap {{ 0 : goto {web_a}, 1 : goto {web_b} }}"),
            ]
        );
        assert_eq!(
            rules_of(&text, &web_a),
            vec![
                "ip saddr 10.42.0.5 jump mark-for-masquerade",
                "meta l4proto tcp dnat to 10.42.0.5:8080",
            ]
        );
        assert_eq!(
            rules_of(&text, "masquerading"),
            vec![
                "meta mark and 0x00004000 == 0 return",
                "meta mark set meta mark xor 0x00004000",
                "masquerade fully-random",
            ]
        );

        // NodePort with Cluster policy: masquerade, then the cluster chain.
        let np_ext = cname("external", "np", "tcp");
        assert!(text.contains(&format!(
            "add element ip kube-proxy service-nodeports {{ tcp . 30080 : goto {np_ext} }}"
        )));
        assert_eq!(
            rules_of(&text, &np_ext),
            vec![
                "jump mark-for-masquerade".to_string(),
                format!("goto {}", cname("service", "np", "tcp")),
            ]
        );

        // externalTrafficPolicy Local: pods and the host short-circuit to all endpoints,
        // others reach only the local one, without masquerade.
        let loc_ext = cname("external", "loc", "udp");
        let loc_svc = cname("service", "loc", "udp");
        let loc_local = cname("local", "loc", "udp");
        assert_eq!(
            rules_of(&text, &loc_ext),
            vec![
                format!("ip saddr 10.42.0.0/16 goto {loc_svc} comment \"short-circuit pod traffic\""),
                "fib saddr type local jump mark-for-masquerade comment \"masquerade local traffic\"".to_string(),
                format!("fib saddr type local goto {loc_svc} comment \"short-circuit local traffic\""),
                format!("goto {loc_local}"),
            ]
        );
        let loc_a = ename("endpoint", "loc", "udp", "10.42.0.8", 5353);
        assert_eq!(
            rules_of(&text, &loc_local),
            vec![format!("numgen random mod 1 vmap {{ 0 : goto {loc_a} }}")]
        );
        assert!(rules_of(&text, &loc_a).contains(&"meta l4proto udp dnat to 10.42.0.8:5353".into()));
        assert!(text.contains(&format!(
            "add element ip kube-proxy service-ips {{ 192.168.5.5 . udp . 53 : goto {loc_ext} }}"
        )));
        assert!(!text.contains("no-endpoint-nodeports { udp . 30053"));

        // internalTrafficPolicy Local without local endpoints: ClusterIP dropped.
        assert!(text.contains(
            "add element ip kube-proxy no-endpoint-services { 10.43.0.13 . tcp . 80 comment \"default/itl:p/tcp\" : drop }"
        ));
        assert!(!text.contains("service-ips { 10.43.0.13"));
        assert!(!text.contains(&cname("service", "itl", "tcp")));

        // No endpoints at all: ClusterIP, node port and external IP rejected, no chains.
        for line in [
            "add element ip kube-proxy no-endpoint-services { 10.43.0.14 . sctp . 9000 comment \"default/dead:p/sctp\" : goto reject-chain }",
            "add element ip kube-proxy no-endpoint-services { 192.168.5.6 . sctp . 9000 comment \"default/dead:p/sctp\" : goto reject-chain }",
            "add element ip kube-proxy no-endpoint-nodeports { sctp . 30900 comment \"default/dead:p/sctp\" : goto reject-chain }",
            "add element ip kube-proxy cluster-ips { 10.43.0.14 }",
        ] {
            assert!(text.contains(line), "missing {line}");
        }
        assert!(!text.contains("default/dead/sctp/p"));
        assert_eq!(
            rules_of(&text, "reject-chain"),
            vec!["meta l4proto tcp reject with tcp reset", "reject"]
        );

        // ClientIP affinity: timeout set, update in the endpoint chain, lookup first.
        let sticky = cname("service", "sticky", "tcp");
        let sticky_a = ename("endpoint", "sticky", "tcp", "10.42.0.20", 8443);
        let aff = ename("affinity", "sticky", "tcp", "10.42.0.20", 8443);
        assert!(text.contains(&format!(
            "add set ip kube-proxy {aff} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }}"
        )));
        assert_eq!(
            rules_of(&text, &sticky)[1..],
            [
                format!("ip saddr @{aff} goto {sticky_a}"),
                format!("numgen random mod 1 vmap {{ 0 : goto {sticky_a} }}"),
            ]
        );
        assert_eq!(
            rules_of(&text, &sticky_a),
            vec![
                "ip saddr 10.42.0.20 jump mark-for-masquerade".to_string(),
                format!("update @{aff} {{ ip saddr }}"),
                "meta l4proto tcp dnat to 10.42.0.20:8443".to_string(),
            ]
        );

        // Chains are created before anything references them; counting rules.
        assert!(line_index(&text, &format!("add chain ip kube-proxy {web_a}"))
            < line_index(&text, &format!("add rule ip kube-proxy {web} numgen random mod 2 vmap {{ 0 : goto {web_a}, 1 : goto {web_b} }}")));
        let rules = text.lines().filter(|l| l.starts_with("add rule ")).count();
        assert_eq!(r.rule_count(), 0);
        r.applied(true);
        assert_eq!(r.rule_count(), rules);
        // Deterministic.
        assert_eq!(NftRenderer::new().render(&small_state()), text);
    }

    #[test]
    fn incremental_endpoint_change_touches_only_that_service() {
        let mut r = NftRenderer::new();
        let mut s = small_state();
        r.render(&s);
        r.applied(true);
        assert_eq!(r.render(&s), "", "nothing changed");
        r.applied(true);

        let web_idx = s
            .services
            .iter()
            .position(|p| p.name.name == "web")
            .unwrap();
        s.services[web_idx]
            .endpoints
            .push(ep([10, 42, 2, 30], 8080, "node-c"));
        let text = r.render(&s);
        r.applied(true);
        let web = cname("service", "web", "tcp");
        let new_ep = ename("endpoint", "web", "tcp", "10.42.2.30", 8080);
        assert!(
            !text.contains("table"),
            "incremental must not rebuild:\n{text}"
        );
        for other in ["np", "loc", "itl", "dead", "sticky"] {
            assert!(
                !text.contains(&format!("default/{other}")),
                "{other} in:\n{text}"
            );
        }
        assert_eq!(
            text.lines().take(2).collect::<Vec<_>>(),
            vec![
                format!("add chain ip kube-proxy {new_ep}"),
                format!("flush chain ip kube-proxy {web}"),
            ]
        );
        assert_eq!(rules_of(&text, &web).len(), 2);
        assert!(rules_of(&text, &web)[1].starts_with("numgen random mod 3 vmap"));
        assert_eq!(
            rules_of(&text, &new_ep),
            vec![
                "ip saddr 10.42.2.30 jump mark-for-masquerade",
                "meta l4proto tcp dnat to 10.42.2.30:8080",
            ]
        );
        assert_eq!(without_fingerprint(&text).lines().count(), 6, "{text}");
        assert_eq!(r.rule_count(), {
            let mut fresh = NftRenderer::new();
            let full = fresh.render(&s);
            full.lines().filter(|l| l.starts_with("add rule ")).count()
        });

        // Remove another endpoint: the service chain is rewritten before the chain goes.
        s.services[web_idx].endpoints.remove(0);
        let text = r.render(&s);
        r.applied(true);
        let gone = ename("endpoint", "web", "tcp", "10.42.0.5", 8080);
        assert!(!text.contains("default/np"));
        let flush = line_index(&text, &format!("flush chain ip kube-proxy {gone}"));
        let rewrite = text
            .lines()
            .position(|l| {
                l.starts_with(&format!("add rule ip kube-proxy {web} numgen random mod 2"))
            })
            .unwrap();
        let delete = line_index(&text, &format!("delete chain ip kube-proxy {gone}"));
        assert!(flush < rewrite && rewrite < delete, "{text}");
        assert_eq!(without_fingerprint(&text).lines().count(), 5, "{text}");
    }

    #[test]
    fn removing_a_service_deletes_its_chains_sets_and_elements() {
        let mut r = NftRenderer::new();
        let mut s = small_state();
        let sticky = s
            .services
            .iter_mut()
            .find(|p| p.name.name == "sticky")
            .unwrap();
        sticky.node_port = Some(30443);
        let s_before = s.clone();
        r.render(&s);
        r.applied(true);
        s.services.retain(|p| p.name.name != "sticky");
        let text = r.render(&s);
        r.applied(true);

        let chains = [
            cname("service", "sticky", "tcp"),
            cname("external", "sticky", "tcp"),
            ename("endpoint", "sticky", "tcp", "10.42.0.20", 8443),
        ];
        let aff = ename("affinity", "sticky", "tcp", "10.42.0.20", 8443);
        let elements = [
            "delete element ip kube-proxy cluster-ips { 10.43.0.15 }".to_string(),
            "delete element ip kube-proxy service-ips { 10.43.0.15 . tcp . 443 }".to_string(),
            "delete element ip kube-proxy service-nodeports { tcp . 30443 }".to_string(),
        ];
        let last_element = elements.iter().map(|l| line_index(&text, l)).max().unwrap();
        let set_delete = line_index(&text, &format!("delete set ip kube-proxy {aff}"));
        for chain in &chains {
            let flush = line_index(&text, &format!("flush chain ip kube-proxy {chain}"));
            let delete = line_index(&text, &format!("delete chain ip kube-proxy {chain}"));
            assert!(flush < set_delete && last_element < delete, "{text}");
        }
        let text = without_fingerprint(&text);
        assert_eq!(text.lines().count(), 3 + 1 + 3 + 3, "{text}");
        assert!(!text.contains("add "), "{text}");

        // Bringing it back re-creates exactly what a fresh render has.
        let text = r.render(&s_before);
        r.applied(true);
        assert_eq!(
            text.lines().filter(|l| l.starts_with("add rule ")).count(),
            3 + 2 + 3
        );
        let fresh = NftRenderer::new().render(&s_before);
        for line in text.lines() {
            assert!(fresh.contains(line), "{line} not in a fresh render");
        }
    }

    #[test]
    fn losing_all_endpoints_switches_to_reject() {
        let mut r = NftRenderer::new();
        let mut s = small_state();
        r.render(&s);
        r.applied(true);
        let np = s.services.iter_mut().find(|p| p.name.name == "np").unwrap();
        np.endpoints[0].ready = false;
        np.endpoints[0].serving = false;
        let text = r.render(&s);
        let ext = cname("external", "np", "tcp");
        let svc_chain = cname("service", "np", "tcp");
        for line in [
            "delete element ip kube-proxy service-ips { 10.43.0.11 . tcp . 80 }".to_string(),
            "delete element ip kube-proxy service-nodeports { tcp . 30080 }".to_string(),
            "add element ip kube-proxy no-endpoint-services { 10.43.0.11 . tcp . 80 comment \"default/np:p/tcp\" : goto reject-chain }".to_string(),
            "add element ip kube-proxy no-endpoint-nodeports { tcp . 30080 comment \"default/np:p/tcp\" : goto reject-chain }".to_string(),
            format!("delete chain ip kube-proxy {ext}"),
            format!("delete chain ip kube-proxy {svc_chain}"),
        ] {
            assert!(text.contains(&line), "missing {line} in:\n{text}");
        }
        assert!(!text.contains("cluster-ips"), "cluster IP stays: {text}");
    }

    #[test]
    fn conflicting_elements_go_to_the_first_claimant() {
        let mut a = svc(
            "a",
            Protocol::Tcp,
            [10, 43, 0, 1],
            80,
            vec![ep([10, 42, 0, 1], 80, NODE)],
        );
        let mut b = svc(
            "b",
            Protocol::Tcp,
            [10, 43, 0, 2],
            80,
            vec![ep([10, 42, 0, 2], 80, NODE)],
        );
        a.external_ips = vec![Ipv4Addr::new(192, 168, 1, 1)];
        b.external_ips = vec![Ipv4Addr::new(192, 168, 1, 1)];
        let mut r = NftRenderer::new();
        let text = r.render(&state(vec![a.clone(), b.clone()]));
        r.applied(true);
        assert_eq!(
            text.matches("service-ips { 192.168.1.1 . tcp . 80").count(),
            1
        );
        assert!(text.contains(&format!(
            "service-ips {{ 192.168.1.1 . tcp . 80 : goto {} }}",
            cname("external", "a", "tcp")
        )));
        let text = r.render(&state(vec![b]));
        r.applied(true);
        let del = line_index(
            &text,
            "delete element ip kube-proxy service-ips { 192.168.1.1 . tcp . 80 }",
        );
        let add = line_index(
            &text,
            &format!(
                "add element ip kube-proxy service-ips {{ 192.168.1.1 . tcp . 80 : goto {} }}",
                cname("external", "b", "tcp")
            ),
        );
        let drop_a = line_index(
            &text,
            &format!(
                "delete chain ip kube-proxy {}",
                cname("external", "a", "tcp")
            ),
        );
        assert!(del < add && add < drop_a, "{text}");
    }

    #[test]
    fn affinity_timeout_change_recreates_the_sets() {
        let mut r = NftRenderer::new();
        let mut s = small_state();
        r.render(&s);
        r.applied(true);
        s.services
            .iter_mut()
            .find(|p| p.name.name == "sticky")
            .unwrap()
            .affinity_timeout = Some(60);
        let text = r.render(&s);
        let aff = ename("affinity", "sticky", "tcp", "10.42.0.20", 8443);
        let chain = cname("service", "sticky", "tcp");
        let flush = line_index(&text, &format!("flush chain ip kube-proxy {chain}"));
        let del = line_index(&text, &format!("delete set ip kube-proxy {aff}"));
        let add = line_index(
            &text,
            &format!("add set ip kube-proxy {aff} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 60s ; }}"),
        );
        let rule = line_index(
            &text,
            &format!(
                "add rule ip kube-proxy {chain} ip saddr @{aff} goto {}",
                ename("endpoint", "sticky", "tcp", "10.42.0.20", 8443)
            ),
        );
        assert!(flush < del && del < add && add < rule, "{text}");
    }

    #[test]
    fn failed_or_unconfirmed_renders_force_a_full_one() {
        let s = small_state();
        let full_prefix = "add table ip kube-proxy\ndelete table ip kube-proxy\n";
        let mut r = NftRenderer::new();
        assert!(r.render(&s).starts_with(full_prefix));
        r.applied(true);
        let count = r.rule_count();
        assert!(count > BASE_RULES.len());
        assert_eq!(r.render(&s), "");
        assert_eq!(r.render(&s), "", "an empty render needs no confirmation");
        r.applied(false);
        assert_eq!(
            r.rule_count(),
            count,
            "a failed transaction changes nothing"
        );
        assert!(r.render(&s).starts_with(full_prefix));
        // Never confirmed: the kernel state is unknown, so the next one is full as well.
        assert!(r.render(&s).starts_with(full_prefix));
        r.applied(true);
        r.reset();
        assert_eq!(r.rule_count(), 0);
        assert!(r.render(&s).starts_with(full_prefix));
        r.applied(true);
        let mut other = s.clone();
        other.service_cidr = (Ipv4Addr::new(10, 96, 0, 0), 12);
        let text = r.render(&other);
        assert!(text.starts_with(full_prefix));
        assert!(text.contains("ip daddr 10.96.0.0/12 drop"));
        assert_eq!(
            NftRenderer::cleanup_script(),
            "add table ip kube-proxy\ndelete table ip kube-proxy\n"
        );
    }

    /// The element line the renderer writes for `state`'s fingerprint.
    fn fingerprint_line(state: &ProxyState) -> String {
        let words: Vec<String> = Fingerprint::of(state)
            .words()
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{i} : 0x{w:08x}"))
            .collect();
        format!(
            "add element ip kube-proxy state-fingerprint {{ {} }}",
            words.join(", ")
        )
    }

    fn web_of(s: &mut ProxyState) -> &mut ServicePort {
        s.services
            .iter_mut()
            .find(|p| p.name.name == "web")
            .expect("web service")
    }

    #[test]
    fn fingerprint_tracks_every_state_change_and_the_version() {
        let s = small_state();
        let fp = Fingerprint::of(&s);
        assert_eq!(fp, Fingerprint::of(&s.clone()), "deterministic");
        assert_eq!(fp, Fingerprint::with_version(FORMAT_VERSION, &s));
        assert_ne!(fp, Fingerprint::with_version(FORMAT_VERSION + 1, &s));
        let changes: Vec<fn(&mut ProxyState)> = vec![
            |s| s.node_name.push('x'),
            |s| s.node_ips.clear(),
            |s| s.cluster_cidr.1 = 17,
            |s| s.service_cidr.0 = Ipv4Addr::new(10, 96, 0, 0),
            |s| {
                s.services.pop();
            },
            |s| web_of(s).endpoints[0].terminating ^= true,
            |s| web_of(s).endpoints[0].node_name = None,
            |s| web_of(s).port += 1,
            |s| web_of(s).name.port.push('x'),
            |s| s.services[1].affinity_timeout = Some(5),
            |s| s.services[1].external_ips.push(Ipv4Addr::new(1, 2, 3, 4)),
            |s| s.services.swap(0, 1),
        ];
        let mut seen = BTreeSet::from([fp.0]);
        for change in changes {
            let mut other = s.clone();
            change(&mut other);
            assert!(seen.insert(Fingerprint::of(&other).0), "{other:?}");
        }
        assert_eq!(fp.to_string().len(), 64);
    }

    #[test]
    fn fingerprint_reads_back_from_nft_json() {
        let fp = Fingerprint::of(&small_state());
        let elem: Vec<serde_json::Value> = fp
            .words()
            .iter()
            .enumerate()
            .rev()
            .map(|(i, w)| serde_json::json!([i, w]))
            .collect();
        let json = |elem: &[serde_json::Value]| {
            serde_json::json!({"nftables": [
                {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
                {"map": {"family": "ip", "name": "state-fingerprint", "table": "kube-proxy",
                         "type": "inet_service", "handle": 1, "map": "mark", "elem": elem}}
            ]})
            .to_string()
        };
        assert_eq!(Fingerprint::from_nft_json(&json(&elem)), Some(fp));
        assert_eq!(Fingerprint::from_nft_json(&json(&elem[1..])), None);
        let mut bad = elem.clone();
        bad[0] = serde_json::json!([9, 1]);
        assert_eq!(Fingerprint::from_nft_json(&json(&bad)), None);
        bad[0] = serde_json::json!([7, u64::from(u32::MAX) + 1]);
        assert_eq!(Fingerprint::from_nft_json(&json(&bad)), None);
        assert_eq!(Fingerprint::from_nft_json(""), None);
        assert_eq!(Fingerprint::from_nft_json("{\"nftables\": []}"), None);
    }

    #[test]
    fn every_transaction_records_the_fingerprint_of_its_result() {
        let mut r = NftRenderer::new();
        let s = small_state();
        let full = r.render(&s);
        assert_eq!(r.fingerprint(), None, "not applied yet");
        r.applied(true);
        assert_eq!(r.fingerprint(), Some(Fingerprint::of(&s)));
        let map = line_index(
            &full,
            "add map ip kube-proxy state-fingerprint { type inet_service : mark ; comment \"sha256 of the rendered state\" ; }",
        );
        let flush = line_index(&full, "flush map ip kube-proxy state-fingerprint");
        let elem = line_index(&full, &fingerprint_line(&s));
        assert!(map < flush && flush + 1 == elem, "{full}");
        assert_eq!(elem + 1, full.lines().count(), "last line");
        assert_eq!(r.render(&s), "");

        // a change no rule depends on still updates the fingerprint, and only it
        let mut other = s.clone();
        other.node_ips.push(Ipv4Addr::new(192, 0, 2, 99));
        let text = r.render(&other);
        assert_eq!(without_fingerprint(&text), "");
        assert!(text.ends_with(&format!("{}\n", fingerprint_line(&other))));
        r.applied(true);
        assert_eq!(r.fingerprint(), Some(Fingerprint::of(&other)));
        r.applied(false);
        assert_eq!(r.fingerprint(), None);
    }

    #[test]
    fn adopted_state_renders_incrementally_like_an_applied_one() {
        let s = small_state();
        let mut applied = NftRenderer::new();
        applied.render(&s);
        applied.applied(true);
        let mut adopted = NftRenderer::new();
        adopted.adopt(&s);
        assert_eq!(adopted.fingerprint(), Some(Fingerprint::of(&s)));
        assert_eq!(adopted.rule_count(), applied.rule_count());
        assert_eq!(adopted.render(&s), "", "adopted state is current");

        let mut next = s.clone();
        next.services.retain(|p| p.name.name != "sticky");
        next.services[0]
            .endpoints
            .push(ep([10, 42, 3, 3], 8080, NODE));
        let text = adopted.render(&next);
        assert!(!text.contains("add table"), "{text}");
        assert_eq!(text, applied.render(&next));
        assert!(text.ends_with(&format!("{}\n", fingerprint_line(&next))));
        adopted.applied(true);
        applied.applied(true);
        assert_eq!(adopted.rule_count(), applied.rule_count());
    }

    /// 1,000 service ports, 10,000 endpoints, every feature somewhere.
    fn big_state() -> ProxyState {
        let mut services = Vec::new();
        for i in 0..1000u32 {
            let proto = match i % 10 {
                7 => Protocol::Udp,
                9 => Protocol::Sctp,
                _ => Protocol::Tcp,
            };
            let cip = [10, 43, (i / 250) as u8, (i % 250 + 1) as u8];
            let eps = (0..10u32)
                .map(|j| {
                    let n = i * 10 + j;
                    let mut e = ep(
                        [10, 42, (n / 250) as u8, (n % 250 + 1) as u8],
                        8000 + (j % 3) as u16,
                        if j % 3 == 0 { NODE } else { "node-b" },
                    );
                    if i % 97 == 0 {
                        e.ready = false;
                        e.serving = false;
                    }
                    e
                })
                .collect();
            let mut p = svc(&format!("svc-{i}"), proto, cip, 80 + (i % 3) as u16, eps);
            p.name.namespace = format!("ns-{}", i / 100);
            if i % 4 == 0 {
                p.node_port = Some(30000 + i as u16);
            }
            if i % 50 == 0 {
                p.external_ips = vec![Ipv4Addr::new(192, 168, 100, (i / 50) as u8 + 1)];
            }
            if i % 7 == 0 {
                p.affinity_timeout = Some(10800);
            }
            p.internal_local = i % 13 == 0;
            p.external_local = i % 8 == 0;
            services.push(p);
        }
        state(services)
    }

    fn have(cmd: &str, args: &[&str]) -> bool {
        Command::new(cmd)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Runs `script` with `sh` in a fresh network namespace (gone when it exits); returns
    /// stdout and stderr.
    fn in_netns(script: &str) -> (String, String) {
        let out = Command::new("unshare")
            .args(["-n", "sh", "-ec", script])
            .output()
            .expect("run unshare");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "netns script failed: {stderr}");
        (stdout, stderr)
    }

    /// `nft -j list table` output reduced to sorted, handle-free lines (rules keep their
    /// position in their chain), plus the rule count.
    fn normalize(json: &str) -> (Vec<String>, usize) {
        let v: serde_json::Value = serde_json::from_str(json).expect("nft json");
        let mut lines = Vec::new();
        let mut per_chain: BTreeMap<String, usize> = BTreeMap::new();
        let mut rules = 0;
        for obj in v["nftables"].as_array().expect("nftables array") {
            let Some((kind, body)) = obj.as_object().and_then(|o| o.iter().next()) else {
                continue;
            };
            if kind == "metainfo" {
                continue;
            }
            let mut body = body.clone();
            if let Some(o) = body.as_object_mut() {
                o.remove("handle");
                if let Some(serde_json::Value::Array(elems)) = o.get_mut("elem") {
                    elems.sort_by_key(|e| e.to_string());
                }
            }
            if kind == "rule" {
                rules += 1;
                let chain = body["chain"].as_str().unwrap_or_default().to_string();
                let idx = per_chain.entry(chain.clone()).or_default();
                lines.push(format!("rule {chain} #{idx} {body}"));
                *idx += 1;
            } else {
                lines.push(format!("{kind} {body}"));
            }
        }
        lines.sort();
        (lines, rules)
    }

    /// A network namespace held by an `unshare -n sleep` process, killed by pid on drop.
    struct NetnsHolder {
        child: std::process::Child,
        ns: String,
    }

    impl NetnsHolder {
        fn start() -> Self {
            let child = Command::new("unshare")
                .args(["-n", "sleep", "600"])
                .spawn()
                .expect("start unshare -n sleep");
            let holder = NetnsHolder {
                ns: format!("/proc/{}/ns/net", child.id()),
                child,
            };
            let ours = std::fs::read_link("/proc/self/ns/net").expect("own netns");
            for _ in 0..500 {
                match std::fs::read_link(&holder.ns) {
                    Ok(ns) if ns != ours => return holder,
                    _ => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
            panic!("unshare -n did not create a network namespace");
        }

        /// Runs `nft args` in the namespace, expecting success; returns stdout.
        fn nft(&self, args: &[&str]) -> String {
            let mut exec = NsExec(self.ns.clone());
            let cmd = crate::netfilter::Command::new("nft", args.iter().copied());
            let out = crate::netfilter::Exec::run(&mut exec, &cmd).expect("run nft");
            assert!(out.success(), "nft {args:?}: {}", out.stderr);
            out.stdout
        }
    }

    impl Drop for NetnsHolder {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Runs every command inside one network namespace with `nsenter --net=PATH`.
    struct NsExec(String);

    impl crate::netfilter::Exec for NsExec {
        fn run(
            &mut self,
            cmd: &crate::netfilter::Command,
        ) -> std::io::Result<crate::netfilter::Output> {
            let mut args = vec![
                format!("--net={}", self.0),
                "--".into(),
                cmd.program.clone(),
            ];
            args.extend(cmd.args.iter().cloned());
            let wrapped = crate::netfilter::Command {
                program: "nsenter".into(),
                args,
                stdin: cmd.stdin.clone(),
            };
            crate::netfilter::RealExec.run(&wrapped)
        }
    }

    #[test]
    fn restart_adopts_an_intact_table_at_scale() {
        use crate::netfilter::{Backend, NftBackend, Tools};
        use std::time::Instant;
        if !have("nft", &["--version"])
            || !have("unshare", &["-n", "true"])
            || !have("nsenter", &["--version"])
        {
            eprintln!("skipping: nft, unshare -n or nsenter not available");
            return;
        }
        let ns = NetnsHolder::start();
        let backend = || NftBackend::new(Box::new(NsExec(ns.ns.clone())), Tools::default());
        // Table and chain handles: a rebuild gives the table a new handle.
        let identity = || {
            (
                ns.nft(&["-j", "list", "tables", "ip"]),
                ns.nft(&["-j", "list", "chains", "ip"]),
            )
        };

        let s1 = big_state();
        let mut first = backend();
        let t = Instant::now();
        let stats = first.sync(&s1).expect("first full sync");
        let full_took = t.elapsed();
        assert!(stats.full);
        assert!(stats.rules > 20_000, "{} rules", stats.rules);
        let installed = identity();
        drop(first);

        // Restart with the same state: the kernel's rules are adopted, not rewritten.
        let mut restarted = backend();
        let t = Instant::now();
        let adopted = restarted.sync(&s1).expect("restart sync");
        let restart_took = t.elapsed();
        assert!(!adopted.full);
        assert_eq!(adopted.rules, stats.rules);
        assert_eq!(identity(), installed, "the restart rewrote the table");

        // The periodic re-check finds the table intact and leaves it alone.
        restarted.request_full();
        let t = Instant::now();
        assert!(!restarted.sync(&s1).expect("periodic sync").full);
        let recheck_took = t.elapsed();
        assert_eq!(identity(), installed);

        // An incremental change after adopting lands exactly like a fresh full render.
        let mut s2 = s1.clone();
        let svc1 = s2
            .services
            .iter_mut()
            .find(|p| p.name.name == "svc-1")
            .expect("svc-1");
        svc1.endpoints.push(ep([10, 42, 200, 1], 8000, NODE));
        s2.services.retain(|p| p.name.name != "svc-14");
        let t = Instant::now();
        let stats2 = restarted.sync(&s2).expect("incremental sync");
        let incremental_took = t.elapsed();
        assert!(!stats2.full);
        let (tables, _) = identity();
        assert_eq!(tables, installed.0, "incremental, not rebuilt");
        let path =
            std::env::temp_dir().join(format!("minik8s-nft-adopt-{}.nft", std::process::id()));
        std::fs::write(&path, NftRenderer::new().render(&s2)).expect("write fresh render");
        let (fresh, _) = in_netns(&format!(
            "nft -f {}\nnft -j list table ip kube-proxy",
            path.display()
        ));
        let _ = std::fs::remove_file(&path);
        let (got, got_rules) = normalize(&ns.nft(&["-j", "list", "table", "ip", "kube-proxy"]));
        let (want, want_rules) = normalize(&fresh);
        assert_eq!(got_rules, want_rules);
        assert_eq!(got_rules, stats2.rules);
        assert_eq!(got, want, "adopted + incremental differs from a rebuild");

        // Someone else touched the fingerprint: the next start rebuilds everything.
        ns.nft(&["flush", "map", "ip", "kube-proxy", "state-fingerprint"]);
        let mut third = backend();
        let t = Instant::now();
        assert!(third.sync(&s2).expect("rebuild").full);
        let rebuild_took = t.elapsed();
        assert_ne!(identity().0, installed.0, "a rebuild makes a new table");
        assert_eq!(
            normalize(&ns.nft(&["-j", "list", "table", "ip", "kube-proxy"])).0,
            want
        );
        eprintln!(
            "restart at scale ({} rules): first full sync {full_took:?}, restart (adopt) \
             {restart_took:?}, periodic re-check {recheck_took:?}, incremental after adopt \
             {incremental_took:?}, rebuild after tampering {rebuild_took:?}",
            stats.rules
        );
    }

    #[test]
    fn nft_accepts_full_and_incremental_renders_at_scale() {
        if !have("nft", &["--version"]) || !have("unshare", &["-n", "true"]) {
            eprintln!("skipping: nft or unshare -n not available");
            return;
        }
        /// Removes the scratch directory even when an assertion fails.
        struct TempDir(std::path::PathBuf);
        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir =
            TempDir(std::env::temp_dir().join(format!("minik8s-nft-test-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).expect("temp dir");

        let s1 = big_state();
        assert_eq!(
            s1.services.iter().map(|p| p.endpoints.len()).sum::<usize>(),
            10_000
        );
        let mut r = NftRenderer::new();
        let t = std::time::Instant::now();
        let full = r.render(&s1);
        let full_render = t.elapsed();
        r.applied(true);

        // One endpoint added to one service.
        fn find<'a>(s: &'a mut ProxyState, name: &str) -> &'a mut ServicePort {
            s.services
                .iter_mut()
                .find(|p| p.name.name == name)
                .expect("service")
        }
        let mut s2 = s1.clone();
        find(&mut s2, "svc-1")
            .endpoints
            .push(ep([10, 42, 200, 1], 8000, NODE));
        let t = std::time::Instant::now();
        let one = r.render(&s2);
        let one_render = t.elapsed();
        r.applied(true);
        assert!(one.lines().count() < 10, "{one}");

        // Many kinds of change at once.
        let mut s3 = s2.clone();
        find(&mut s3, "svc-2").endpoints.remove(3); // endpoint removed
        s3.services.retain(|p| p.name.name != "svc-14"); // removed, with affinity sets
        find(&mut s3, "svc-7").affinity_timeout = Some(60); // timeout change
        let dead = find(&mut s3, "svc-11"); // loses every endpoint
        dead.endpoints.iter_mut().for_each(|e| e.ready = false);
        find(&mut s3, "svc-24").external_local = false; // node port policy change
        find(&mut s3, "svc-31").external_ips = vec![Ipv4Addr::new(192, 168, 100, 1)]; // conflict
        find(&mut s3, "svc-42").affinity_timeout = None; // affinity off
        find(&mut s3, "svc-100").endpoints.clear(); // reject again (i % 50 == 0: external IP)
        let mut added = svc(
            "zz-new",
            Protocol::Udp,
            [10, 43, 9, 9],
            53,
            vec![ep([10, 42, 201, 1], 53, NODE)],
        );
        added.node_port = Some(31999);
        added.affinity_timeout = Some(30);
        s3.services.push(added);
        let many = r.render(&s3);
        r.applied(true);
        let fresh = NftRenderer::new().render(&s3);

        let path = |name: &str, text: &str| {
            let p = dir.0.join(name);
            std::fs::write(&p, text).expect("write nft input");
            p.display().to_string()
        };
        let (full_p, one_p, many_p, fresh_p) = (
            path("full.nft", &full),
            path("one.nft", &one),
            path("many.nft", &many),
            path("fresh.nft", &fresh),
        );
        let (incremental, timing) = in_netns(&format!(
            "nft -c -f {full_p}\n\
             t0=$(date +%s%N); nft -f {full_p}; t1=$(date +%s%N)\n\
             nft -c -f {one_p}\n\
             t2=$(date +%s%N); nft -f {one_p}; t3=$(date +%s%N)\n\
             nft -c -f {many_p}; nft -f {many_p}\n\
             nft -j list table ip kube-proxy\n\
             echo \"full-apply-ms=$(( (t1-t0)/1000000 )) one-apply-ms=$(( (t3-t2)/1000000 ))\" >&2"
        ));
        let (rebuilt, _) = in_netns(&format!(
            "nft -f {fresh_p}\nnft -j list table ip kube-proxy"
        ));
        // A full render over an existing table replaces it completely.
        let (replaced, _) = in_netns(&format!(
            "nft -f {many_p} 2>/dev/null || true\nnft -f {full_p}\nnft -f {fresh_p}\nnft -j list table ip kube-proxy"
        ));
        drop(dir);

        let (inc_lines, inc_rules) = normalize(&incremental);
        let (fresh_lines, fresh_rules) = normalize(&rebuilt);
        let (replaced_lines, _) = normalize(&replaced);
        assert!(fresh_rules > 20_000, "{fresh_rules} rules");
        assert_eq!(inc_rules, fresh_rules);
        assert_eq!(inc_rules, r.rule_count());
        assert_eq!(
            inc_lines, fresh_lines,
            "incremental result differs from a rebuild"
        );
        assert_eq!(replaced_lines, fresh_lines);
        eprintln!(
            "scale: full render {:?} ({} bytes, {} rules), one-endpoint render {:?} ({} lines), {}",
            full_render,
            full.len(),
            fresh_rules,
            one_render,
            one.lines().count(),
            timing.trim()
        );
    }
}
