//! Filter plugins as pure functions over the snapshot, in upstream's default-profile order:
//! NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit,
//! VolumeRestrictions, PodTopologySpread, InterPodAffinity. Each failure carries upstream's
//! reason strings and whether preemption could help (`Unschedulable`) or not
//! (`UnschedulableAndUnresolvable`).
//!
//! VolumeRestrictions evaluates only inline GCE PD, AWS EBS, RBD and iSCSI disk conflicts;
//! ReadWriteOncePod claims, volume limits, volume binding and volume zones need PVC/PV/CSI
//! objects this scheduler does not watch and are skipped.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::snapshot::{NodeInfo, Resources, SchedPod, Snapshot};

pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_NODE_NAME: &str = "node(s) didn't match the requested node name";
pub const ERR_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const ERR_TOO_MANY_PODS: &str = "Too many pods";
pub const ERR_DISK_CONFLICT: &str = "node(s) had no available disk";
pub const ERR_SPREAD: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_SPREAD_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// Why a node was filtered out.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reasons: Vec<String>,
    /// `UnschedulableAndUnresolvable`: removing pods cannot help.
    pub unresolvable: bool,
    /// The failure depends on other pods' placement (affinity or spreading).
    pub pod_dependent: bool,
}

impl Failure {
    fn new(reason: &str, unresolvable: bool) -> Failure {
        Failure {
            reasons: vec![reason.to_string()],
            unresolvable,
            pod_dependent: false,
        }
    }

    fn pods(mut self) -> Failure {
        self.pod_dependent = true;
        self
    }
}

/// Upstream `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    if let Some(k) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if k != taint.key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first NoSchedule/NoExecute taint the pod does not tolerate.
pub fn untolerated_taint<'a>(tolerations: &[Toleration], taints: &'a [Taint]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerated(tolerations, t))
}

/// NodeAffinity filter: `nodeSelector` and required node affinity.
pub fn matches_node_affinity(pod: &SchedPod, node: &NodeInfo) -> bool {
    if !pod
        .node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
    {
        return false;
    }
    match &pod.required_node {
        None => true,
        Some(terms) => terms.iter().any(|t| t.matches(&node.name, &node.labels)),
    }
}

/// Per-constraint counts for PodTopologySpread.
#[derive(Debug, Clone, Default)]
pub struct SpreadState {
    pub counts: HashMap<String, i64>,
    pub min: i64,
    pub self_match: i64,
}

/// Per-pod precomputed state (upstream PreFilter), computed once per attempt.
#[derive(Debug, Clone, Default)]
pub struct PreFilter {
    /// Per required affinity term: topology value → matching pods.
    affinity: Vec<HashMap<String, i64>>,
    /// Whether the incoming pod matches all of its own affinity terms.
    self_affinity: bool,
    /// Per required anti-affinity term: topology value → matching pods.
    anti: Vec<HashMap<String, i64>>,
    /// (topology key, value) pairs forbidden by existing pods' anti-affinity.
    existing_anti: HashSet<(String, String)>,
    /// Per hard spread constraint (same order as `SchedPod::spread` filtered to hard).
    pub spread: Vec<SpreadState>,
}

/// Counts pods matching `sel` in the pod's namespace on a node (ignoring terminating pods).
fn count_matching(pod: &SchedPod, sel: &crate::labels::Selector, node: &NodeInfo) -> i64 {
    node.pods
        .iter()
        .filter(|p| !p.terminating && p.namespace == pod.info.namespace && sel.matches(&p.labels))
        .count() as i64
}

/// Computes the spread state for the given constraints (hard or soft).
pub fn spread_state(snap: &Snapshot, pod: &SchedPod, hard: bool) -> Vec<SpreadState> {
    let cons: Vec<_> = pod.spread.iter().filter(|c| c.hard == hard).collect();
    if cons.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<SpreadState> = cons
        .iter()
        .map(|c| SpreadState {
            self_match: c.selector.matches(&pod.info.labels) as i64,
            ..Default::default()
        })
        .collect();
    for node in &snap.nodes {
        if !cons
            .iter()
            .all(|c| node.labels.contains_key(&c.topology_key))
        {
            continue;
        }
        for (c, st) in cons.iter().zip(out.iter_mut()) {
            if c.honor_affinity && !matches_node_affinity(pod, node) {
                continue;
            }
            if c.honor_taints && untolerated_taint(&pod.tolerations, &node.taints).is_some() {
                continue;
            }
            let v = &node.labels[&c.topology_key];
            let n = count_matching(pod, &c.selector, node);
            *st.counts.entry(v.clone()).or_default() += n;
        }
    }
    for (c, st) in cons.iter().zip(out.iter_mut()) {
        st.min = st.counts.values().copied().min().unwrap_or(0);
        if c.min_domains
            .is_some_and(|m| (st.counts.len() as i64) < m as i64)
        {
            st.min = 0;
        }
    }
    out
}

/// Upstream PreFilter for InterPodAffinity and PodTopologySpread.
pub fn prefilter(snap: &Snapshot, pod: &SchedPod) -> PreFilter {
    let mut pre = PreFilter::default();
    let aff = pod.info.affinity.as_deref();
    if let Some(a) =
        aff.filter(|a| !a.required_affinity.is_empty() || !a.required_anti_affinity.is_empty())
    {
        pre.affinity = vec![HashMap::new(); a.required_affinity.len()];
        pre.anti = vec![HashMap::new(); a.required_anti_affinity.len()];
        pre.self_affinity = a.required_affinity.iter().all(|t| t.matches(&pod.info));
        for node in &snap.nodes {
            for p in &node.pods {
                for (t, m) in a.required_affinity.iter().zip(pre.affinity.iter_mut()) {
                    if let Some(v) = node.labels.get(&t.topology_key) {
                        if t.matches(p) {
                            *m.entry(v.clone()).or_default() += 1;
                        }
                    }
                }
                for (t, m) in a.required_anti_affinity.iter().zip(pre.anti.iter_mut()) {
                    if let Some(v) = node.labels.get(&t.topology_key) {
                        if t.matches(p) {
                            *m.entry(v.clone()).or_default() += 1;
                        }
                    }
                }
            }
        }
    }
    if snap.pods_with_affinity > 0 {
        for node in snap.nodes.iter().filter(|n| n.pods_with_affinity > 0) {
            for p in &node.pods {
                let Some(a) = &p.affinity else { continue };
                for t in &a.required_anti_affinity {
                    if let Some(v) = node.labels.get(&t.topology_key) {
                        if t.matches(&pod.info) {
                            pre.existing_anti
                                .insert((t.topology_key.clone(), v.clone()));
                        }
                    }
                }
            }
        }
    }
    pre.spread = spread_state(snap, pod, true);
    pre
}

/// Runs every filter for one node; `nominated` is the resources of higher-or-equal
/// priority pods nominated to this node (counted as if they were running).
pub fn filter_node(
    pod: &SchedPod,
    pre: &PreFilter,
    node: &NodeInfo,
    nominated: Option<&Resources>,
) -> Result<(), Failure> {
    // NodeUnschedulable
    if node.unschedulable {
        let t = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tolerated(&pod.tolerations, &t) {
            return Err(Failure::new(ERR_UNSCHEDULABLE, true));
        }
    }
    // NodeName
    if pod.node_name.as_ref().is_some_and(|n| *n != node.name) {
        return Err(Failure::new(ERR_NODE_NAME, true));
    }
    // TaintToleration
    if let Some(t) = untolerated_taint(&pod.tolerations, &node.taints) {
        return Err(Failure::new(
            &format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            ),
            true,
        ));
    }
    // NodeAffinity
    if !matches_node_affinity(pod, node) {
        return Err(Failure::new(ERR_NODE_AFFINITY, true));
    }
    // NodePorts
    if pod
        .info
        .host_ports
        .iter()
        .any(|p| node.used_ports.iter().any(|u| u.conflicts(p)))
    {
        return Err(Failure::new(ERR_NODE_PORTS, false));
    }
    // NodeResourcesFit
    let reasons = insufficient(&pod.info.requests, node, nominated);
    if !reasons.is_empty() {
        return Err(Failure {
            reasons,
            unresolvable: false,
            pod_dependent: false,
        });
    }
    // VolumeRestrictions
    if !pod.info.disks.is_empty()
        && node.pods.iter().any(|p| {
            p.disks
                .iter()
                .any(|d| pod.info.disks.iter().any(|e| e.conflicts(d)))
        })
    {
        return Err(Failure::new(ERR_DISK_CONFLICT, false));
    }
    // PodTopologySpread
    for (c, st) in pod.spread.iter().filter(|c| c.hard).zip(&pre.spread) {
        let Some(v) = node.labels.get(&c.topology_key) else {
            return Err(Failure::new(ERR_SPREAD_LABEL, true).pods());
        };
        let count = st.counts.get(v).copied().unwrap_or(0);
        if count + st.self_match - st.min > c.max_skew as i64 {
            return Err(Failure::new(ERR_SPREAD, false).pods());
        }
    }
    // InterPodAffinity
    if let Some(a) = pod.info.affinity.as_deref() {
        if !a.required_affinity.is_empty() {
            let nobody = pre.affinity.iter().all(|m| m.is_empty());
            let ok = a.required_affinity.iter().zip(&pre.affinity).all(|(t, m)| {
                node.labels
                    .get(&t.topology_key)
                    .is_some_and(|v| m.get(v).copied().unwrap_or(0) > 0)
            }) || (nobody
                && pre.self_affinity
                && a.required_affinity
                    .iter()
                    .all(|t| node.labels.contains_key(&t.topology_key)));
            if !ok {
                return Err(Failure::new(ERR_AFFINITY, true).pods());
            }
        }
        for (t, m) in a.required_anti_affinity.iter().zip(&pre.anti) {
            if let Some(v) = node.labels.get(&t.topology_key) {
                if m.get(v).copied().unwrap_or(0) > 0 {
                    return Err(Failure::new(ERR_ANTI_AFFINITY, false).pods());
                }
            }
        }
    }
    if !pre.existing_anti.is_empty()
        && node
            .labels
            .iter()
            .any(|(k, v)| pre.existing_anti.contains(&(k.clone(), v.clone())))
    {
        return Err(Failure::new(ERR_EXISTING_ANTI_AFFINITY, false).pods());
    }
    Ok(())
}

/// NodeResourcesFit: the upstream "Too many pods" / "Insufficient X" reasons.
pub fn insufficient(
    req: &Resources,
    node: &NodeInfo,
    nominated: Option<&Resources>,
) -> Vec<String> {
    let mut used = node.requested.clone();
    if let Some(n) = nominated {
        used.add(n);
    }
    let alloc = &node.allocatable;
    let mut out = Vec::new();
    if used.pods + 1 > alloc.pods {
        out.push(ERR_TOO_MANY_PODS.to_string());
    }
    if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu - used.milli_cpu {
        out.push("Insufficient cpu".into());
    }
    if req.memory > 0 && req.memory > alloc.memory - used.memory {
        out.push("Insufficient memory".into());
    }
    if req.ephemeral_storage > 0
        && req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage
    {
        out.push("Insufficient ephemeral-storage".into());
    }
    for (n, v) in &req.scalar {
        if *v > 0 && *v > alloc.scalar(n) - used.scalar(n) {
            out.push(format!("Insufficient {n}"));
        }
    }
    out
}

/// Upstream `FitError.Error()` for the filter part: `0/N nodes are available: <sorted
/// histogram>.`
pub fn fit_error(num_nodes: usize, failures: &[&Failure]) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for f in failures {
        for r in &f.reasons {
            *counts.entry(r.as_str()).or_default() += 1;
        }
    }
    histogram(num_nodes, counts)
}

/// Formats `0/N nodes are available: <count reason, ...>.` with upstream's string sort.
pub fn histogram(num_nodes: usize, counts: HashMap<&str, usize>) -> String {
    let mut reasons: Vec<String> = counts.iter().map(|(r, c)| format!("{c} {r}")).collect();
    reasons.sort();
    let mut msg = format!("0/{num_nodes} nodes are available:");
    if !reasons.is_empty() {
        msg.push_str(&format!(" {}.", reasons.join(", ")));
    }
    msg
}
