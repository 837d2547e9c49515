//! The node lifecycle controller, with node IPAM and taint-based eviction (upstream's
//! `node-lifecycle-controller`, `node-ipam-controller` range allocator and
//! `taint-eviction-controller`).
//!
//! One reconcile per node:
//! * IPAM: a node without `spec.podCIDR` gets the next free subnet of the cluster CIDR.
//! * Health: the node's Lease renewals and Ready heartbeats are observed; after the grace
//!   period without either, every condition goes Unknown (`NodeStatusUnknown`).
//! * Taints: `not-ready`/`unreachable` NoSchedule and NoExecute from the Ready condition, the
//!   pressure/unschedulable NoSchedule taints, removed when the node is Ready again.
//! * Pods on an unreachable node are marked Ready=False; pods not tolerating a NoExecute
//!   taint are deleted, at once or after their `tolerationSeconds`.
//!
//! Timing and allocation are pure functions, unit-tested below.

use crate::cachedpod::CachedPod;
use crate::recorder::{Recorder, NORMAL, WARNING};
use crate::{Ctx, Error};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// Taints this controller owns (others on the node are left alone).
const MANAGED: &[&str] = &[
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    TAINT_MEMORY_PRESSURE,
    TAINT_DISK_PRESSURE,
    TAINT_PID_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
];

/// Conditions set to Unknown when the kubelet goes silent.
const CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

const LEASE_NAMESPACE: &str = "kube-node-lease";

// ---------------------------------------------------------------------------------------
// IPAM

/// A range allocator handing out fixed-size IPv4 subnets of a cluster CIDR.
#[derive(Debug, Clone)]
pub struct CidrAllocator {
    base: u32,
    cluster_prefix: u8,
    mask: u8,
}

/// Parses `a.b.c.d/n`.
pub fn parse_cidr(s: &str) -> Result<(u32, u8), Error> {
    let bad = || Error::Invalid(format!("invalid cidr {s:?}"));
    let (ip, len) = s.trim().split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((u32::from(ip) & mask, len))
}

impl CidrAllocator {
    pub fn new(cluster_cidr: &str, mask: u8) -> Result<Self, Error> {
        let (base, cluster_prefix) = parse_cidr(cluster_cidr)?;
        if mask < cluster_prefix || mask > 32 {
            return Err(Error::Invalid(format!(
                "node cidr mask size {mask} does not fit cluster cidr {cluster_cidr}"
            )));
        }
        Ok(CidrAllocator {
            base,
            cluster_prefix,
            mask,
        })
    }

    /// Number of node subnets.
    pub fn capacity(&self) -> u64 {
        1u64 << (self.mask - self.cluster_prefix)
    }

    fn subnet(&self, i: u64) -> String {
        let ip = self.base + (i as u32).checked_shl(32 - self.mask as u32).unwrap_or(0);
        format!("{}/{}", Ipv4Addr::from(ip), self.mask)
    }

    /// Index of a subnet inside the range, if it is one of ours.
    pub fn index_of(&self, cidr: &str) -> Option<u64> {
        let (ip, len) = parse_cidr(cidr).ok()?;
        if len != self.mask {
            return None;
        }
        let cluster_mask = if self.cluster_prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.cluster_prefix)
        };
        if ip & cluster_mask != self.base {
            return None;
        }
        let shift = 32 - self.mask as u32;
        Some(if shift == 32 {
            0
        } else {
            ((ip - self.base) >> shift) as u64
        })
    }

    /// The first subnet not in `used`.
    pub fn next_free<'a>(&self, used: impl IntoIterator<Item = &'a str>) -> Option<String> {
        let used: HashSet<u64> = used.into_iter().filter_map(|c| self.index_of(c)).collect();
        (0..self.capacity())
            .find(|i| !used.contains(i))
            .map(|i| self.subnet(i))
    }
}

// ---------------------------------------------------------------------------------------
// Health timing

/// What the controller remembers about one node (upstream's nodeHealthData).
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// When we last saw a sign of life (our clock).
    pub probe: Timestamp,
    /// The Ready condition's heartbeat last seen.
    pub ready_heartbeat: Option<Timestamp>,
    /// The Lease renewTime last seen.
    pub lease_renew: Option<Timestamp>,
}

/// Folds a new observation into the saved health, as upstream's tryUpdateNodeHealth: a
/// changed heartbeat or a newer lease renewal moves the probe time to `now`.
pub fn observe(
    saved: Option<&Health>,
    now: Timestamp,
    created: Timestamp,
    ready_heartbeat: Option<Timestamp>,
    lease_renew: Option<Timestamp>,
) -> Health {
    let mut h = match saved {
        None if ready_heartbeat.is_none() => Health {
            probe: created,
            ready_heartbeat,
            lease_renew: None,
        },
        None => Health {
            probe: now,
            ready_heartbeat,
            lease_renew: None,
        },
        Some(s) => {
            let mut h = s.clone();
            if s.ready_heartbeat != ready_heartbeat {
                h.probe = now;
                h.ready_heartbeat = ready_heartbeat;
            }
            h
        }
    };
    if let Some(renew) = lease_renew {
        if h.lease_renew.is_none_or(|old| old < renew) {
            h.lease_renew = Some(renew);
            h.probe = now;
        }
    }
    h
}

/// When the node counts as silent (probe + grace), and whether it already is.
pub fn deadline(h: &Health, grace: Duration) -> Timestamp {
    h.probe + jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX)
}

pub fn timed_out(h: &Health, now: Timestamp, grace: Duration) -> bool {
    now > deadline(h, grace)
}

// ---------------------------------------------------------------------------------------
// Taints and tolerations

fn condition<'a>(node: &'a Node, ty: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)
}

fn taint(key: &str, effect: &str, now: Option<Timestamp>) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        time_added: now.map(Time),
        value: None,
    }
}

/// The taints this controller wants on the node (only the managed keys).
pub fn desired_taints(node: &Node) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    let status = |t: &str| condition(node, t).map(|c| c.status.as_str());
    match status("Ready") {
        Some("False") => {
            out.push((TAINT_NOT_READY, "NoSchedule"));
            out.push((TAINT_NOT_READY, "NoExecute"));
        }
        Some("True") => {}
        Some(_) => {
            out.push((TAINT_UNREACHABLE, "NoSchedule"));
            out.push((TAINT_UNREACHABLE, "NoExecute"));
        }
        // Never reported: upstream's NoSchedule pass only maps existing conditions, while the
        // NoExecute pass treats a missing Ready as Unknown.
        None => out.push((TAINT_UNREACHABLE, "NoExecute")),
    }
    for (cond, key) in [
        ("MemoryPressure", TAINT_MEMORY_PRESSURE),
        ("DiskPressure", TAINT_DISK_PRESSURE),
        ("PIDPressure", TAINT_PID_PRESSURE),
        ("NetworkUnavailable", TAINT_NETWORK_UNAVAILABLE),
    ] {
        if status(cond) == Some("True") {
            out.push((key, "NoSchedule"));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        out.push((TAINT_UNSCHEDULABLE, "NoSchedule"));
    }
    out
}

/// The node's new taint list, or None if unchanged. Existing matching taints (with their
/// timeAdded) are kept; new NoExecute taints get `now`.
pub fn reconcile_taints(
    current: &[Taint],
    desired: &[(&str, &str)],
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| {
            !MANAGED.contains(&t.key.as_str())
                || desired.iter().any(|(k, e)| t.key == *k && t.effect == *e)
        })
        .cloned()
        .collect();
    for (k, e) in desired {
        if !out.iter().any(|t| t.key == *k && t.effect == *e) {
            out.push(taint(k, e, (*e == "NoExecute").then_some(now)));
        }
    }
    (out != current).then_some(out)
}

/// Whether a toleration tolerates a taint (upstream's ToleratesTaint).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if e != taint.effect {
            return false;
        }
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "" | "Equal" => {
            // An empty key with Equal only makes sense with Exists.
            !key.is_empty()
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// When a pod must be evicted because of the node's NoExecute taints: `Some(None)` evicts
/// now, `Some(Some(t))` at `t`, `None` never. `since` is when the countdown starts (the taint's
/// timeAdded, or the pod's creation if later).
pub fn eviction_time(
    taints: &[Taint],
    tolerations: &[Toleration],
    pod_created: Option<Timestamp>,
) -> Option<Option<Timestamp>> {
    let mut earliest: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(None);
        }
        // The smallest tolerationSeconds wins; none means forever.
        let secs = matching.iter().filter_map(|t| t.toleration_seconds).min();
        let Some(secs) = secs else { continue };
        let added = taint.time_added.as_ref().map(|t| t.0);
        let start = match (added, pod_created) {
            (Some(a), Some(p)) => a.max(p),
            (a, p) => a.or(p).unwrap_or(Timestamp::UNIX_EPOCH),
        };
        let at = start + jiff::SignedDuration::from_secs(secs.max(0));
        earliest = Some(earliest.map_or(at, |e| e.min(at)));
    }
    earliest.map(Some)
}

// ---------------------------------------------------------------------------------------
// Controller

struct State {
    ctx: Arc<Ctx>,
    pods: Store<CachedPod>,
    leases: Store<Lease>,
    health: Mutex<HashMap<String, Health>>,
    /// Subnets handed out but maybe not yet visible in the cache.
    allocated: Mutex<HashMap<String, String>>,
    allocator: Option<CidrAllocator>,
    /// Pods already announced for eviction (uid).
    marked: Mutex<HashSet<String>>,
    recorder: Recorder,
}

pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let node_sub = ctx.informers.nodes.subscribe();
    let lease_sub = ctx.informers.leases.subscribe();
    let pod_sub = ctx.informers.pods.subscribe();
    let nodes = ctx.informers.nodes.store();
    let allocator =
        match CidrAllocator::new(&ctx.config.cluster_cidr, ctx.config.node_cidr_mask_size) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!(error = %e, "node ipam disabled");
                None
            }
        };
    let state = Arc::new(State {
        pods: ctx.informers.pods.store(),
        leases: ctx.informers.leases.store(),
        health: Mutex::new(HashMap::new()),
        allocated: Mutex::new(HashMap::new()),
        allocator,
        marked: Mutex::new(HashSet::new()),
        recorder: Recorder::new(ctx.client.clone(), "node-controller"),
        ctx: ctx.clone(),
    });
    let nodes_for_pods = nodes.clone();
    Controller::for_shared_stream(node_sub, nodes)
        .watches_shared_stream(lease_sub, |l: Arc<Lease>| {
            Some(ObjectRef::<Node>::new(&l.name_any()))
        })
        .watches_shared_stream(pod_sub, move |p: Arc<CachedPod>| {
            // Only pods on nodes that could evict them or mark them not ready.
            let node = p.spec.as_ref()?.node_name.clone()?;
            let r = ObjectRef::<Node>::new(&node);
            let n = nodes_for_pods.get(&r)?;
            let relevant = n
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_ref())
                .is_some_and(|t| t.iter().any(|t| t.effect == "NoExecute"))
                || condition(&n, "Ready").is_some_and(|c| c.status == "Unknown");
            relevant.then_some(r)
        })
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(_: Arc<Node>, e: &Error, _: Arc<State>) -> Action {
    tracing::debug!(error = %e, "node lifecycle reconcile failed");
    Action::requeue(Duration::from_secs(2))
}

fn ts(t: &Time) -> Timestamp {
    t.0
}

async fn reconcile(node: Arc<Node>, st: Arc<State>) -> Result<Action, Error> {
    let name = node.name_any();
    let nodes: Api<Node> = Api::all(st.ctx.client.clone());
    let grace = st.ctx.config.node_monitor_grace_period;
    let now = Timestamp::now();
    if node.metadata.deletion_timestamp.is_some() {
        st.health.lock().expect("health").remove(&name);
        st.allocated.lock().expect("alloc").remove(&name);
        return Ok(Action::await_change());
    }

    // IPAM.
    let has_cidr = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_some();
    if !has_cidr {
        if let Some(alloc) = &st.allocator {
            let cidr = {
                let mut allocated = st.allocated.lock().expect("alloc");
                match allocated.get(&name) {
                    Some(c) => Some(c.clone()),
                    None => {
                        let all = st.ctx.informers.nodes.store().state();
                        // Reservations only count for nodes that still exist and whose
                        // patch has not reached the cache yet.
                        allocated.retain(|n, _| {
                            all.iter().any(|o| {
                                o.name_any() == *n
                                    && o.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_none()
                            })
                        });
                        let in_use: Vec<String> = all
                            .iter()
                            .filter(|n| n.name_any() != name)
                            .flat_map(|n| {
                                let s = n.spec.clone().unwrap_or_default();
                                s.pod_cidrs
                                    .unwrap_or_default()
                                    .into_iter()
                                    .chain(s.pod_cidr)
                            })
                            .chain(allocated.values().cloned())
                            .collect();
                        let c = alloc.next_free(in_use.iter().map(String::as_str));
                        if let Some(c) = &c {
                            allocated.insert(name.clone(), c.clone());
                        }
                        c
                    }
                }
            };
            match cidr {
                Some(cidr) => {
                    let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
                    nodes
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                    st.recorder
                        .record(
                            &*node,
                            NORMAL,
                            "CIDRAssignmentSucceeded",
                            &format!("Node {name} got CIDR {cidr}"),
                        )
                        .await;
                }
                None => {
                    st.recorder
                        .record(
                            &*node,
                            NORMAL,
                            "CIDRNotAvailable",
                            &format!("Node {name} status is now: CIDRNotAvailable"),
                        )
                        .await;
                }
            }
        }
    }

    // Health.
    let lease = st
        .leases
        .get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
    let lease_renew = lease
        .as_ref()
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let ready = condition(&node, "Ready");
    let created = node
        .metadata
        .creation_timestamp
        .as_ref()
        .map(ts)
        .unwrap_or(now);
    let health = {
        let mut map = st.health.lock().expect("health");
        let h = observe(
            map.get(&name),
            now,
            created,
            ready.and_then(|c| c.last_heartbeat_time.as_ref()).map(ts),
            lease_renew,
        );
        map.insert(name.clone(), h.clone());
        h
    };
    // Nodes that never reported get the longer startup grace (60 s for the default 40 s).
    let effective_grace = if ready.is_none() {
        grace * 3 / 2
    } else {
        grace
    };
    let mut node_now = (*node).clone();
    if timed_out(&health, now, effective_grace) {
        let mut conds = node_now
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let mut changed = false;
        for ty in CONDITIONS {
            match conds.iter_mut().find(|c| c.type_ == *ty) {
                None => {
                    conds.push(NodeCondition {
                        type_: ty.to_string(),
                        status: "Unknown".into(),
                        reason: Some("NodeStatusNeverUpdated".into()),
                        message: Some("Kubelet never posted node status.".into()),
                        last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                        last_transition_time: Some(Time(now)),
                    });
                    changed = true;
                }
                Some(c) if c.status != "Unknown" => {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some("Kubelet stopped posting node status.".into());
                    c.last_transition_time = Some(Time(now));
                    changed = true;
                }
                Some(_) => {}
            }
        }
        if changed {
            let was_ready = ready.is_some_and(|c| c.status == "True");
            let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version},
                               "status": {"conditions": conds}});
            let updated = nodes
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::info!(node = %name, "node stopped posting status, conditions set to Unknown");
            if was_ready {
                st.recorder
                    .record(
                        &*node,
                        NORMAL,
                        "NodeNotReady",
                        &format!("Node {name} status is now: NodeNotReady"),
                    )
                    .await;
            }
            node_now = updated;
        }
    }

    // Taints.
    let desired = desired_taints(&node_now);
    let current = node_now
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let taints = match reconcile_taints(&current, &desired, now) {
        Some(new) => {
            let patch = json!({"metadata": {"resourceVersion": node_now.metadata.resource_version},
                               "spec": {"taints": if new.is_empty() { serde_json::Value::Null } else { json!(new) }}});
            let updated = nodes
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            updated.spec.and_then(|s| s.taints).unwrap_or_default()
        }
        None => current,
    };

    // Pods on the node.
    let unknown = condition(&node_now, "Ready").is_none_or(|c| c.status == "Unknown");
    let no_execute: Vec<Taint> = taints
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .cloned()
        .collect();
    let mut next: Option<Timestamp> = None;
    if unknown || !no_execute.is_empty() {
        let pods: Vec<Arc<CachedPod>> = st
            .pods
            .state()
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
            .collect();
        for pod in pods {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            let created = pod.metadata.creation_timestamp.as_ref().map(ts);
            match eviction_time(&no_execute, &tolerations, created) {
                Some(at) if at.is_none_or(|at| at <= now) => {
                    evict(&st, &pod).await?;
                    continue;
                }
                Some(Some(at)) => next = Some(next.map_or(at, |n| n.min(at))),
                _ => {}
            }
            if unknown {
                mark_not_ready(&st, &pod, now).await?;
            }
        }
    }

    // Look again when the node would time out or the next eviction is due.
    let mut wake = deadline(&health, effective_grace);
    if wake <= now {
        wake = now + jiff::SignedDuration::from_secs(5);
    }
    if let Some(n) = next {
        wake = wake.min(n);
    }
    let wait = wake.duration_since(now).unsigned_abs() + Duration::from_millis(100);
    Ok(Action::requeue(wait.clamp(
        Duration::from_millis(500),
        Duration::from_secs(300),
    )))
}

async fn evict(st: &State, pod: &CachedPod) -> Result<(), Error> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if st.marked.lock().expect("marked").insert(uid.clone()) {
        st.recorder
            .record(
                pod,
                NORMAL,
                "TaintManagerEviction",
                &format!("Marking for deletion Pod {ns}/{name}"),
            )
            .await;
    }
    let api: Api<Pod> = Api::namespaced(st.ctx.client.clone(), &ns);
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some(uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(pod = %format!("{ns}/{name}"), "taint eviction");
    st.marked.lock().expect("marked").remove(&uid);
    Ok(())
}

/// Upstream's MarkPodsNotReady, for one pod.
async fn mark_not_ready(st: &State, pod: &CachedPod, now: Timestamp) -> Result<(), Error> {
    let Some(mut conds) = pod.status.as_ref().and_then(|s| s.conditions.clone()) else {
        return Ok(());
    };
    let Some(c) = conds.iter_mut().find(|c| c.type_ == "Ready") else {
        return Ok(());
    };
    if c.status == "False" {
        return Ok(());
    }
    c.status = "False".into();
    c.last_transition_time = Some(Time(now));
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(st.ctx.client.clone(), &ns);
    let patch = json!({"metadata": {"resourceVersion": pod.metadata.resource_version},
                       "status": {"conditions": conds}});
    match api
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    st.recorder
        .record(pod, WARNING, "NodeNotReady", "Node is not ready")
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn allocator_hands_out_free_subnets() {
        let a = CidrAllocator::new("10.42.0.0/16", 24).unwrap();
        assert_eq!(a.capacity(), 256);
        assert_eq!(a.next_free([]).as_deref(), Some("10.42.0.0/24"));
        assert_eq!(
            a.next_free(["10.42.0.0/24", "10.42.2.0/24"]).as_deref(),
            Some("10.42.1.0/24")
        );
        assert_eq!(a.index_of("10.42.255.0/24"), Some(255));
        assert_eq!(a.index_of("10.43.0.0/24"), None);
        assert_eq!(a.index_of("10.42.1.0/25"), None);
        let used: Vec<String> = (0..256).map(|i| format!("10.42.{i}.0/24")).collect();
        assert_eq!(a.next_free(used.iter().map(String::as_str)), None);
        let small = CidrAllocator::new("10.0.0.0/30", 32).unwrap();
        assert_eq!(
            small.next_free(["10.0.0.0/32"]).as_deref(),
            Some("10.0.0.1/32")
        );
        assert!(CidrAllocator::new("10.0.0.0/24", 16).is_err());
        assert!(CidrAllocator::new("nonsense", 24).is_err());
    }

    #[test]
    fn lease_renewals_keep_node_alive() {
        let grace = Duration::from_secs(40);
        // First sight with a lease: alive from now.
        let h = observe(None, t(0), t(-1000), Some(t(-500)), Some(t(-1)));
        assert_eq!(h.probe, t(0));
        assert!(!timed_out(&h, t(40), grace));
        assert!(timed_out(&h, t(41), grace));
        // Renewal at 30 s observed at 35 s keeps it alive until 75 s.
        let h = observe(Some(&h), t(35), t(-1000), Some(t(-500)), Some(t(30)));
        assert_eq!(h.probe, t(35));
        assert!(!timed_out(&h, t(75), grace));
        // Same lease again: no progress.
        let h2 = observe(Some(&h), t(70), t(-1000), Some(t(-500)), Some(t(30)));
        assert_eq!(h2.probe, t(35));
        assert!(timed_out(&h2, t(76), grace));
        // A new Ready heartbeat counts too.
        let h3 = observe(Some(&h2), t(80), t(-1000), Some(t(79)), Some(t(30)));
        assert_eq!(h3.probe, t(80));
        // Never-reporting node: counted from its creation.
        let h4 = observe(None, t(100), t(0), None, None);
        assert_eq!(h4.probe, t(0));
        assert!(timed_out(&h4, t(100), Duration::from_secs(60)));
    }

    fn tol(key: &str, op: &str, effect: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some(op.into()),
            effect: Some(effect.into()),
            toleration_seconds: secs,
            value: None,
        }
    }

    #[test]
    fn taints_follow_conditions() {
        let mut node = Node::default();
        assert_eq!(
            desired_taints(&node),
            vec![(TAINT_UNREACHABLE, "NoExecute")]
        );
        node.status = Some(k8s_openapi::api::core::v1::NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "False".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(
            desired_taints(&node),
            vec![
                (TAINT_NOT_READY, "NoSchedule"),
                (TAINT_NOT_READY, "NoExecute")
            ]
        );
        let other = taint("example.com/x", "NoSchedule", None);
        let cur = vec![
            other.clone(),
            taint(TAINT_UNREACHABLE, "NoExecute", Some(t(0))),
        ];
        let new = reconcile_taints(&cur, &desired_taints(&node), t(5)).unwrap();
        assert_eq!(new.len(), 3);
        assert!(new.contains(&other));
        assert_eq!(
            new.iter()
                .find(|t| t.effect == "NoExecute")
                .unwrap()
                .time_added,
            Some(Time(t(5)))
        );
        assert!(reconcile_taints(&new, &desired_taints(&node), t(9)).is_none());
        assert_eq!(reconcile_taints(&new, &[], t(9)).unwrap(), vec![other]);
    }

    #[test]
    fn eviction_timing() {
        let taints = vec![taint(TAINT_UNREACHABLE, "NoExecute", Some(t(0)))];
        assert_eq!(eviction_time(&taints, &[], None), Some(None));
        let forever = tol(TAINT_UNREACHABLE, "Exists", "NoExecute", None);
        assert_eq!(
            eviction_time(&taints, std::slice::from_ref(&forever), None),
            None
        );
        let five = tol(TAINT_UNREACHABLE, "Exists", "NoExecute", Some(300));
        assert_eq!(
            eviction_time(&taints, std::slice::from_ref(&five), Some(t(-10))),
            Some(Some(t(300)))
        );
        assert_eq!(
            eviction_time(&taints, std::slice::from_ref(&five), Some(t(100))),
            Some(Some(t(400)))
        );
        let wrong = tol(TAINT_NOT_READY, "Exists", "NoExecute", Some(300));
        assert_eq!(eviction_time(&taints, &[wrong], None), Some(None));
        let all = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        assert_eq!(eviction_time(&taints, &[all], None), None);
        assert_eq!(
            eviction_time(&[taint("a", "NoSchedule", None)], &[], None),
            None
        );
    }
}
