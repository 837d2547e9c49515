//! The EndpointSlice controller (upstream `pkg/controller/endpointslice` with the reconciler
//! of `k8s.io/endpointslice`): for every Service with a selector (any type but
//! ExternalName, headless included) it keeps EndpointSlices listing the selected pods that
//! have an IP and are not terminal, one endpoint per pod with its ready / serving /
//! terminating conditions, node, zone, target reference and (for a pod naming the Service as
//! its subdomain) hostname.
//!
//! Pods are grouped by the ports they resolve to (a named `targetPort` is looked up in each
//! pod), at most [`MAX_ENDPOINTS_PER_SLICE`] per slice. Reconciling follows upstream step by
//! step so writes stay minimal: existing slices keep the endpoints still wanted and are only
//! rewritten when one of them changed or went away (or the Service's labels changed), new
//! endpoints first fill the slices being rewritten anyway, then the unchanged slice closest
//! to full, then new slices; slices left empty are deleted, a create paired with a delete
//! becomes an update of that slice, and a Service with no endpoints keeps one empty
//! placeholder slice. Slices managed by another controller are never touched; slices of
//! another owner (an old Service of the same name) are replaced.
//!
//! A tracker of the resourceVersions this controller wrote holds a sync back while the
//! informer cache has not caught up with them (upstream `EndpointSliceTracker`), so a
//! lagging cache never causes a duplicate slice.
//!
//! Deviation: a headless Service without `spec.ipFamilies` (an API server that does not
//! default them) gets IPv4 slices only, where upstream would also keep an IPv6 placeholder.

#[path = "endpoint_util.rs"]
pub mod util;

use crate::cachedpod::CachedPod;
use crate::recorder::{Recorder, WARNING};
use crate::{Ctx, Error};
use k8s_openapi::api::core::v1::{Node, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use util::{KeyQueue, Members, RetryPolicy, TriggerTimes};

/// The value of [`LABEL_MANAGED_BY`] on the slices this controller owns.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Label naming a slice's Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// Node label copied into endpoints.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// Upstream's default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Event source of this controller.
pub const COMPONENT: &str = "endpoint-slice-controller";
/// Upstream's default `--concurrent-service-endpoint-syncs`.
const WORKERS: usize = 5;
/// Delay before a sync caused by a slice change (upstream `endpointSliceChangeMinSyncDelay`).
const SLICE_CHANGE_DELAY: Duration = Duration::from_secs(1);
/// Upstream's service queue back-off (1 s doubling up to 1000 s, 15 retries).
pub const RETRY: RetryPolicy = RetryPolicy {
    base: Duration::from_secs(1),
    max: Duration::from_secs(1000),
    max_retries: 15,
};

// ---------------------------------------------------------------------------------------
// Desired state (pure)

/// Address types of the Service's slices (upstream `getAddressTypesForService`): its
/// `ipFamilies`, else the family of its cluster IP, else IPv4 (see the module docs).
pub fn address_types(svc: &Service) -> Vec<&'static str> {
    let spec = svc.spec.as_ref();
    let mut out = vec![];
    for f in spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
    {
        let t = match f.as_str() {
            "IPv4" => "IPv4",
            "IPv6" => "IPv6",
            _ => continue,
        };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.is_empty() {
        let cip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or("");
        out.push(if util::is_service_ip_set(svc) && util::is_ipv6(cip) {
            "IPv6"
        } else {
            "IPv4"
        });
    }
    out
}

/// The ports of the pod's endpoint (upstream `getEndpointPorts`): each Service port the
/// pod resolves; none for a headless Service without ports.
pub fn endpoint_ports(svc: &Service, pod: &CachedPod) -> Vec<EndpointPort> {
    let spec = svc.spec.as_ref();
    let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
    ports
        .iter()
        .filter_map(|sp| {
            let n = util::find_port(pod, sp)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(n),
                protocol: Some(util::port_protocol(sp).to_string()),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// A set of ports as a grouping key, independent of order (upstream `PortMapKey`).
pub type PortKey = Vec<(String, i32, String, String)>;

pub fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut k: PortKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    k.sort();
    k
}

/// The endpoint of a pod for one address type (upstream `podToEndpoint`).
pub fn pod_to_endpoint(
    pod: &CachedPod,
    node: Option<&Node>,
    svc: &Service,
    address_type: &str,
) -> Endpoint {
    let serving = util::is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let ready = publish || (serving && !terminating);
    let want_v6 = address_type == "IPv6";
    let addresses = pod
        .pod_ips()
        .into_iter()
        .filter_map(|ip| ip.parse::<std::net::IpAddr>().ok())
        .filter(|ip| ip.is_ipv6() == want_v6)
        .map(|ip| ip.to_string())
        .collect();
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let zone = node
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(LABEL_ZONE))
        .filter(|z| !z.is_empty())
        .cloned();
    Endpoint {
        addresses,
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        node_name,
        zone,
        hostname: util::should_set_hostname(pod, svc)
            .then(|| util::pod_hostname(pod).map(str::to_string))
            .flatten(),
        ..Default::default()
    }
}

/// What identifies an endpoint across syncs (upstream `hashEndpoint`): its sorted
/// addresses, hostname and target pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EpKey {
    addresses: Vec<String>,
    hostname: String,
    namespace: String,
    name: String,
}

pub fn ep_key(ep: &Endpoint) -> EpKey {
    let mut addresses = ep.addresses.clone();
    addresses.sort();
    let r = ep.target_ref.as_ref();
    EpKey {
        addresses,
        hostname: ep.hostname.clone().unwrap_or_default(),
        namespace: r.and_then(|r| r.namespace.clone()).unwrap_or_default(),
        name: r.and_then(|r| r.name.clone()).unwrap_or_default(),
    }
}

/// Upstream `EndpointsEqualBeyondHash`: node, zone, conditions and target reference (its
/// resourceVersion aside).
pub fn endpoints_equal_beyond_hash(a: &Endpoint, b: &Endpoint) -> bool {
    let cond = |e: &Endpoint| {
        let c = e.conditions.clone().unwrap_or_default();
        (c.ready, c.serving, c.terminating)
    };
    let target = |e: &Endpoint| {
        e.target_ref.clone().map(|mut r| {
            r.resource_version = None;
            r
        })
    };
    a.node_name == b.node_name && a.zone == b.zone && cond(a) == cond(b) && target(a) == target(b)
}

fn is_reserved_label(k: &str) -> bool {
    k == LABEL_SERVICE_NAME || k == LABEL_MANAGED_BY || k == util::LABEL_HEADLESS
}

/// A slice's labels (upstream `setEndpointSliceLabels`): the Service's own labels (less the
/// reserved ones), the headless label for a Service without cluster IP, the Service name
/// and the manager. Also whether the slice's non-reserved labels differ from the Service's.
pub fn slice_labels(
    existing: Option<&BTreeMap<String, String>>,
    svc: &Service,
) -> (BTreeMap<String, String>, bool) {
    let strip = |m: Option<&BTreeMap<String, String>>| -> BTreeMap<String, String> {
        m.into_iter()
            .flatten()
            .filter(|(k, _)| !is_reserved_label(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut labels = strip(svc.metadata.labels.as_ref());
    let changed = strip(existing) != labels;
    if !util::is_service_ip_set(svc) {
        labels.insert(util::LABEL_HEADLESS.into(), String::new());
    }
    labels.insert(LABEL_SERVICE_NAME.into(), svc.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    (labels, changed)
}

/// A new slice for the Service (upstream `newEndpointSlice`).
pub fn new_slice(svc: &Service, ports: Vec<EndpointPort>, address_type: &str) -> EndpointSlice {
    let (labels, _) = slice_labels(None, svc);
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.name_any())),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                name: svc.name_any(),
                uid: svc.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        address_type: address_type.into(),
        endpoints: vec![],
        ports: Some(ports),
    }
}

/// Whether the Service owns the slice (upstream `ownedBy`).
pub fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    let uid = svc.metadata.uid.as_deref().unwrap_or_default();
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.kind == "Service" && o.api_version == "v1")
}

/// Upstream's placeholder comparison: namespace, labels, address type, and neither
/// endpoints nor ports.
fn placeholder_equal(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    let labels = |s: &EndpointSlice| s.metadata.labels.clone().unwrap_or_default();
    a.metadata.namespace == b.metadata.namespace
        && labels(a) == labels(b)
        && a.address_type == b.address_type
        && a.endpoints == b.endpoints
        && a.ports.clone().unwrap_or_default() == b.ports.clone().unwrap_or_default()
}

/// The slice closest to full that still fits `n` more endpoints (upstream
/// `getSliceToFill`).
fn slice_to_fill<'a>(
    slices: impl Iterator<Item = &'a EndpointSlice>,
    n: usize,
    max: usize,
) -> Option<&'a EndpointSlice> {
    let mut closest = max;
    let mut best = None;
    for s in slices {
        let used = n + s.endpoints.len();
        if used > max {
            continue;
        }
        let diff = max - used;
        if diff < closest {
            closest = diff;
            best = Some(s);
            if diff == 0 {
                break;
            }
        }
    }
    best
}

/// Slices to write.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

/// Upstream `reconcileByPortMapping`: the existing slices of one port set against the
/// endpoints wanted for it.
fn reconcile_by_port_mapping(
    svc: &Service,
    existing: &[EndpointSlice],
    mut desired: BTreeMap<EpKey, Endpoint>,
    ports: &[EndpointPort],
    address_type: &str,
    max: usize,
) -> Plan {
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut to_update: BTreeSet<String> = BTreeSet::new();
    let mut to_delete: BTreeSet<String> = BTreeSet::new();

    // 1. Keep the wanted endpoints of each slice, noting the ones that changed.
    for s in existing {
        let name = s.name_any();
        let mut kept = vec![];
        let mut changed = false;
        for ep in &s.endpoints {
            if let Some(want) = desired.remove(&ep_key(ep)) {
                if !endpoints_equal_beyond_hash(&want, ep) {
                    changed = true;
                }
                kept.push(want);
            }
        }
        let (labels, labels_changed) = slice_labels(s.metadata.labels.as_ref(), svc);
        if changed || kept.len() != s.endpoints.len() {
            if kept.is_empty() {
                to_delete.insert(name.clone());
                by_name.insert(name, s.clone());
            } else {
                let mut u = s.clone();
                u.endpoints = kept;
                u.metadata.labels = Some(labels);
                by_name.insert(name.clone(), u);
                to_update.insert(name);
            }
        } else if labels_changed {
            let mut u = s.clone();
            u.metadata.labels = Some(labels);
            by_name.insert(name.clone(), u);
            to_update.insert(name);
        } else {
            by_name.insert(name.clone(), s.clone());
            unchanged.insert(name);
        }
    }

    fn pop(desired: &mut BTreeMap<EpKey, Endpoint>) -> Option<Endpoint> {
        desired.pop_first().map(|(_, e)| e)
    }

    // 2. Fill the slices being rewritten anyway, fullest first.
    if !desired.is_empty() && !to_update.is_empty() {
        let mut names: Vec<&String> = to_update.iter().collect();
        names.sort_by_key(|n| std::cmp::Reverse(by_name[*n].endpoints.len()));
        let names: Vec<String> = names.into_iter().cloned().collect();
        for n in names {
            let s = by_name.get_mut(&n).expect("slice to update");
            while s.endpoints.len() < max {
                let Some(ep) = pop(&mut desired) else { break };
                s.endpoints.push(ep);
            }
        }
    }

    // 3. The rest into the unchanged slice closest to full, or new slices.
    let mut create = vec![];
    while !desired.is_empty() {
        let mut target: Option<EndpointSlice> = None;
        if desired.len() < max && !unchanged.is_empty() {
            target =
                slice_to_fill(unchanged.iter().map(|n| &by_name[n]), desired.len(), max).cloned();
        }
        let mut s = target.unwrap_or_else(|| new_slice(svc, ports.to_vec(), address_type));
        while s.endpoints.len() < max {
            let Some(ep) = pop(&mut desired) else { break };
            s.endpoints.push(ep);
        }
        match s.metadata.name.clone() {
            Some(name) => {
                unchanged.remove(&name);
                to_update.insert(name.clone());
                by_name.insert(name, s);
            }
            None => create.push(s),
        }
    }

    Plan {
        create,
        update: to_update.iter().map(|n| by_name[n].clone()).collect(),
        delete: to_delete.iter().map(|n| by_name[n].clone()).collect(),
    }
}

/// What one sync should do.
#[derive(Debug, Default, Clone)]
pub struct Desired {
    pub plan: Plan,
    /// Pods skipped for a missing node (upstream reports these as the sync's error).
    pub errors: Vec<String>,
    /// Names of the pods the slices list.
    pub members: HashSet<Box<str>>,
}

/// Upstream `reconcileByAddressType` plus `finalize`'s pairing of creates with deletes.
#[allow(clippy::too_many_arguments)]
fn reconcile_by_address_type(
    svc: &Service,
    pods: &[Arc<CachedPod>],
    node_of: &dyn Fn(&str) -> Option<Arc<Node>>,
    existing: &[EndpointSlice],
    address_type: &str,
    max: usize,
    errors: &mut Vec<String>,
    members: &mut HashSet<Box<str>>,
) -> Plan {
    let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
    let svc_name = svc.name_any();
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut delete = vec![];
    let mut existing_by_ports: BTreeMap<PortKey, Vec<EndpointSlice>> = BTreeMap::new();
    for s in existing {
        if owned_by(s, svc) {
            let k = port_key(s.ports.as_deref().unwrap_or_default());
            existing_by_ports.entry(k).or_default().push(s.clone());
        } else {
            delete.push(s.clone());
        }
    }

    let mut desired_ports: BTreeMap<PortKey, Vec<EndpointPort>> = BTreeMap::new();
    let mut desired: BTreeMap<PortKey, BTreeMap<EpKey, Endpoint>> = BTreeMap::new();
    for pod in pods {
        if !util::should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let k = port_key(&ports);
        desired.entry(k.clone()).or_default();
        desired_ports.entry(k.clone()).or_insert(ports);
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        let node = node_of(node_name);
        if node.is_none() && !publish {
            errors.push(format!(
                "skipping Pod {} for Service {ns}/{svc_name}: Node {node_name} Not Found",
                pod.name_any()
            ));
            continue;
        }
        let ep = pod_to_endpoint(pod, node.as_deref(), svc, address_type);
        if !ep.addresses.is_empty() {
            members.insert(pod.name_any().into());
            desired.entry(k).or_default().insert(ep_key(&ep), ep);
        }
    }

    let mut plan = Plan::default();
    for (k, set) in &desired {
        let p = reconcile_by_port_mapping(
            svc,
            existing_by_ports
                .get(k)
                .map(Vec::as_slice)
                .unwrap_or_default(),
            set.clone(),
            &desired_ports[k],
            address_type,
            max,
        );
        plan.create.extend(p.create);
        plan.update.extend(p.update);
        delete.extend(p.delete);
    }
    for (k, slices) in existing_by_ports {
        if !desired.contains_key(&k) {
            delete.extend(slices);
        }
    }
    // A Service with no endpoints keeps one empty placeholder slice.
    if existing.len() == delete.len() && plan.create.is_empty() {
        let placeholder = new_slice(svc, vec![], address_type);
        if delete.len() == 1 && placeholder_equal(&delete[0], &placeholder) {
            delete.clear();
        } else {
            plan.create.push(placeholder);
        }
    }
    plan.delete = delete;
    pair_creates_with_deletes(svc, plan)
}

/// Turns creates into updates of slices that would otherwise be deleted (same address
/// type, owned by the Service), as upstream's `finalize`.
fn pair_creates_with_deletes(svc: &Service, mut plan: Plan) -> Plan {
    let mut i = 0;
    while i < plan.delete.len() && !plan.create.is_empty() {
        let del = &plan.delete[i];
        let last = plan.create.last().expect("a create");
        if del.address_type == last.address_type && owned_by(del, svc) {
            let mut s = plan.create.pop().expect("a create");
            s.metadata.name = del.metadata.name.clone();
            plan.update.push(s);
            plan.delete.remove(i);
        } else {
            i += 1;
        }
    }
    plan
}

/// Everything one sync of `svc` should write, given the pods its selector matches, a node
/// lookup and the slices this controller manages for it (upstream `Reconcile`).
pub fn reconcile(
    svc: &Service,
    pods: &[Arc<CachedPod>],
    node_of: &dyn Fn(&str) -> Option<Arc<Node>>,
    existing: &[Arc<EndpointSlice>],
    max: usize,
) -> Desired {
    let types = address_types(svc);
    let mut out = Desired::default();
    let mut unsupported = vec![];
    let mut by_type: BTreeMap<&str, Vec<EndpointSlice>> = BTreeMap::new();
    for s in existing {
        match types.iter().find(|t| **t == s.address_type) {
            Some(t) => by_type.entry(*t).or_default().push((**s).clone()),
            None => unsupported.push((**s).clone()),
        }
    }
    for t in &types {
        let p = reconcile_by_address_type(
            svc,
            pods,
            node_of,
            by_type.get(t).map(Vec::as_slice).unwrap_or_default(),
            t,
            max,
            &mut out.errors,
            &mut out.members,
        );
        out.plan.create.extend(p.create);
        out.plan.update.extend(p.update);
        out.plan.delete.extend(p.delete);
    }
    out.plan.delete.extend(unsupported);
    out
}

/// Joins errors as Go's `utilerrors.NewAggregate` prints them.
pub fn aggregate(errs: &[String]) -> String {
    let mut uniq: Vec<&String> = vec![];
    for e in errs {
        if !uniq.contains(&e) {
            uniq.push(e);
        }
    }
    match uniq.as_slice() {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Slice tracker

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Version(u64),
    Deletion,
}

/// The slices this controller wrote, by Service key and slice uid (upstream
/// `EndpointSliceTracker`, with resourceVersions for generations).
#[derive(Default)]
pub struct SliceTracker(Mutex<HashMap<String, HashMap<String, Expect>>>);

fn slice_service_key(s: &EndpointSlice) -> Option<String> {
    let svc = s.labels().get(LABEL_SERVICE_NAME)?;
    Some(util::key(s.metadata.namespace.as_deref()?, svc))
}

impl SliceTracker {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, HashMap<String, Expect>>) -> R) -> R {
        f(&mut self.0.lock().expect("slice tracker lock"))
    }

    /// Records a slice as written.
    pub fn update(&self, svc_key: &str, s: &EndpointSlice) {
        let (Some(uid), Some(rv)) = (
            s.metadata.uid.clone(),
            util::rv_number(s.metadata.resource_version.as_deref()),
        ) else {
            return;
        };
        self.with(|m| {
            m.entry(svc_key.to_string())
                .or_default()
                .insert(uid, Expect::Version(rv))
        });
    }

    /// Records a slice as deleted.
    pub fn expect_deletion(&self, svc_key: &str, s: &EndpointSlice) {
        if let Some(uid) = s.metadata.uid.clone() {
            self.with(|m| {
                m.entry(svc_key.to_string())
                    .or_default()
                    .insert(uid, Expect::Deletion)
            });
        }
    }

    /// Whether the cached slices predate what this controller wrote: an older version, a
    /// slice deleted but still cached, or a written slice not cached yet.
    pub fn stale(&self, svc_key: &str, slices: &[Arc<EndpointSlice>]) -> bool {
        self.with(|m| {
            let Some(tracked) = m.get(svc_key) else {
                return false;
            };
            let mut seen = HashSet::new();
            for s in slices {
                let uid = s.metadata.uid.as_deref().unwrap_or_default();
                seen.insert(uid);
                match tracked.get(uid) {
                    Some(Expect::Deletion) => return true,
                    Some(Expect::Version(v))
                        if util::rv_number(s.metadata.resource_version.as_deref())
                            .is_some_and(|n| n < *v) =>
                    {
                        return true;
                    }
                    _ => {}
                }
            }
            tracked
                .iter()
                .any(|(uid, e)| *e != Expect::Deletion && !seen.contains(uid.as_str()))
        })
    }

    /// Whether a slice change seen in the informer is news (not this controller's write).
    pub fn should_sync(&self, s: &EndpointSlice) -> bool {
        let Some(k) = slice_service_key(s) else {
            return true;
        };
        let uid = s.metadata.uid.as_deref().unwrap_or_default();
        self.with(|m| match m.get(&k).and_then(|t| t.get(uid)) {
            Some(Expect::Version(v)) => {
                util::rv_number(s.metadata.resource_version.as_deref()).is_none_or(|n| n > *v)
            }
            _ => true,
        })
    }

    /// A slice deletion seen in the informer: true when this controller expected it.
    pub fn handle_deletion(&self, s: &EndpointSlice) -> bool {
        let Some(k) = slice_service_key(s) else {
            return true;
        };
        let uid = s.metadata.uid.as_deref().unwrap_or_default();
        self.with(|m| {
            let Some(t) = m.get_mut(&k) else {
                return true;
            };
            let was = t.remove(uid);
            if t.is_empty() {
                m.remove(&k);
            }
            !matches!(was, Some(Expect::Version(_)))
        })
    }

    pub fn forget_service(&self, svc_key: &str) {
        self.with(|m| m.remove(svc_key));
    }
}

// ---------------------------------------------------------------------------------------
// The controller

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("EndpointSlice informer cache is out of date")]
    StaleCache,
    #[error("{0}")]
    Reconcile(String),
}

struct SliceCtx {
    client: kube::Client,
    services: Store<Service>,
    pods: Store<CachedPod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    tracker: SliceTracker,
    triggers: TriggerTimes,
    members: Members,
    rec: Recorder,
}

/// The slices of `ns/name` this controller manages, not being deleted.
fn managed_slices(store: &Store<EndpointSlice>, ns: &str, name: &str) -> Vec<Arc<EndpointSlice>> {
    let mut v: Vec<Arc<EndpointSlice>> = store
        .state()
        .into_iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
        .filter(|s| {
            let l = s.labels();
            l.get(LABEL_SERVICE_NAME).map(String::as_str) == Some(name)
                && l.get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
        })
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .collect();
    v.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    v
}

/// The message of an API error, as Go prints one.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        e => e.to_string(),
    }
}

/// A create refused because the namespace is being deleted.
pub fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| {
        d.causes.iter().any(|c| c.reason == "NamespaceTerminating")
    }))
}

/// Runs the endpointslice controller.
pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let inf = &ctx.informers;
    let c = Arc::new(SliceCtx {
        client: ctx.client.clone(),
        services: inf.services.store(),
        pods: inf.pods.store(),
        nodes: inf.nodes.store(),
        slices: inf.endpointslices.store(),
        tracker: SliceTracker::default(),
        triggers: TriggerTimes::default(),
        members: Members::default(),
        rec: Recorder::new(ctx.client.clone(), COMPONENT),
    });
    let q = KeyQueue::new(RETRY);

    let q2 = q.clone();
    util::spawn_feed(inf.services.subscribe(), move |s: Arc<Service>| {
        q2.add(crate::meta::key(s.as_ref()));
    });
    let (q2, c2) = (q.clone(), c.clone());
    util::spawn_feed(inf.pods.subscribe(), move |p: Arc<CachedPod>| {
        let services = c2.services.state();
        for k in util::services_for_pod(&services, &c2.members, &p) {
            q2.add(k);
        }
    });
    let (q2, c2, informers) = (q.clone(), c.clone(), ctx.informers.clone());
    util::spawn_feed(
        inf.endpointslices.subscribe(),
        move |s: Arc<EndpointSlice>| {
            let Some(k) = slice_service_key(&s) else {
                return;
            };
            let ours =
                s.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME);
            let wake = if informers.endpointslices.is_gone(&s) {
                !ours || !c2.tracker.handle_deletion(&s)
            } else {
                !ours || c2.tracker.should_sync(&s)
            };
            if wake {
                q2.add_after(k, SLICE_CHANGE_DELAY);
            }
        },
    );

    util::wait_ready(&c.services).await;
    util::wait_ready(&c.pods).await;
    util::wait_ready(&c.nodes).await;
    util::wait_ready(&c.slices).await;
    q.run(WORKERS, |key| {
        let c = c.clone();
        async move { sync(&c, &key).await.map(|()| None) }
    })
    .await;
    Ok(())
}

async fn sync(c: &SliceCtx, key: &str) -> Result<(), SyncError> {
    let (ns, name) = util::split_key(key);
    let Some(svc) = c.services.get(&ObjectRef::new(name).within(ns)) else {
        c.triggers.forget(key);
        c.tracker.forget_service(key);
        c.members.forget(key);
        return Ok(());
    };
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some(util::EXTERNAL_NAME) {
        c.members.forget(key);
        return Ok(());
    }
    let Some(selector) = util::service_selector(&svc) else {
        c.members.forget(key);
        return Ok(());
    };
    let pods = util::selected_pods(&c.pods, ns, selector);
    let slices = managed_slices(&c.slices, ns, name);
    if c.tracker.stale(key, &slices) {
        return Err(SyncError::StaleCache);
    }
    let trigger = c.triggers.compute(key, &svc, &pods);
    let nodes = c.nodes.clone();
    let node_of = move |n: &str| nodes.get(&ObjectRef::new(n));
    let desired = reconcile(&svc, &pods, &node_of, &slices, MAX_ENDPOINTS_PER_SLICE);
    c.members.set(key, desired.members);
    let mut errs = desired.errors;
    if let Err(e) = apply(c, &svc, key, desired.plan, trigger).await {
        errs.push(e);
    }
    if errs.is_empty() {
        return Ok(());
    }
    let msg = aggregate(&errs);
    c.rec.event(
        svc.as_ref(),
        WARNING,
        "FailedToUpdateEndpointSlices",
        format!("Error updating Endpoint Slices for Service {ns}/{name}: {msg}"),
    );
    Err(SyncError::Reconcile(msg))
}

/// Writes a plan (upstream `finalize`): creates (not for a Service being deleted), updates,
/// deletes, stopping at the first failure.
async fn apply(
    c: &SliceCtx,
    svc: &Service,
    key: &str,
    plan: Plan,
    trigger: Option<jiff::Timestamp>,
) -> Result<(), String> {
    let (ns, name) = util::split_key(key);
    let api: Api<EndpointSlice> = Api::namespaced(c.client.clone(), ns);
    let pp = PostParams::default();
    if svc.metadata.deletion_timestamp.is_none() {
        for mut s in plan.create {
            util::set_trigger_time(&mut s.metadata.annotations, trigger);
            match api.create(&pp, &s).await {
                Ok(created) => c.tracker.update(key, &created),
                Err(e) if namespace_terminating(&e) => return Ok(()),
                Err(e) => {
                    return Err(format!(
                        "failed to create EndpointSlice for Service {ns}/{name}: {}",
                        api_message(&e)
                    ))
                }
            }
        }
    }
    for mut s in plan.update {
        util::set_trigger_time(&mut s.metadata.annotations, trigger);
        let slice_name = s.name_any();
        match api.replace(&slice_name, &pp, &s).await {
            Ok(updated) => c.tracker.update(key, &updated),
            Err(e) => {
                return Err(format!(
                    "failed to update {slice_name} EndpointSlice for Service {ns}/{name}: {}",
                    api_message(&e)
                ))
            }
        }
    }
    for s in plan.delete {
        let slice_name = s.name_any();
        match api.delete(&slice_name, &DeleteParams::default()).await {
            Ok(_) => c.tracker.expect_deletion(key, &s),
            Err(kube::Error::Api(st)) if st.code == 404 => {}
            Err(e) => {
                return Err(format!(
                    "failed to delete {slice_name} EndpointSlice for Service {ns}/{name}: {}",
                    api_message(&e)
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, Pod, PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn svc(ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("svc-uid".into()),
                labels: Some([("team".to_string(), "a".to_string())].into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.43.0.10".into()),
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(ports),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn http_port() -> ServicePort {
        ServicePort {
            name: Some("http".into()),
            port: 80,
            target_port: Some(IntOrString::String("http".into())),
            protocol: Some("TCP".into()),
            ..Default::default()
        }
    }

    fn pod(i: usize, container_port: Option<i32>, ready: bool) -> Arc<CachedPod> {
        Arc::new(CachedPod::from_pod(&Pod {
            metadata: ObjectMeta {
                name: Some(format!("web-{i}")),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{i}")),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: container_port.map(|p| {
                        vec![ContainerPort {
                            name: Some("http".into()),
                            container_port: p,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        }]
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(format!("10.42.{}.{}", i / 250, i % 250 + 1)),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(ts(i as i64))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }))
    }

    fn node_of(n: &str) -> Option<Arc<Node>> {
        (n == "n1").then(|| {
            Arc::new(Node {
                metadata: ObjectMeta {
                    name: Some("n1".into()),
                    labels: Some([(LABEL_ZONE.to_string(), "z1".to_string())].into()),
                    ..Default::default()
                },
                ..Default::default()
            })
        })
    }

    /// Applies a plan as the API server would (names for creates, versions bumped).
    fn apply_plan(
        existing: &[Arc<EndpointSlice>],
        plan: &Plan,
        next: &mut u32,
    ) -> Vec<Arc<EndpointSlice>> {
        let mut by_name: BTreeMap<String, EndpointSlice> = existing
            .iter()
            .map(|s| (s.name_any(), (**s).clone()))
            .collect();
        for s in &plan.delete {
            by_name.remove(&s.name_any());
        }
        for s in &plan.update {
            by_name.insert(s.name_any(), s.clone());
        }
        for s in &plan.create {
            let mut s = s.clone();
            *next += 1;
            s.metadata.name = Some(format!("web-{next:05}"));
            s.metadata.uid = Some(format!("slice-{next}"));
            by_name.insert(s.name_any(), s);
        }
        by_name.into_values().map(Arc::new).collect()
    }

    fn all_endpoints(slices: &[Arc<EndpointSlice>]) -> Vec<String> {
        let mut v: Vec<String> = slices
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .map(|e| e.target_ref.as_ref().unwrap().name.clone().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn endpoints_from_pods() {
        let s = svc(vec![http_port()]);
        let pods: Vec<_> = (0..3).map(|i| pod(i, Some(8080), i != 1)).collect();
        let d = reconcile(&s, &pods, &node_of, &[], MAX_ENDPOINTS_PER_SLICE);
        assert!(d.errors.is_empty());
        assert_eq!(d.plan.create.len(), 1);
        assert!(d.plan.update.is_empty() && d.plan.delete.is_empty());
        let slice = &d.plan.create[0];
        assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(slice.address_type, "IPv4");
        let labels = slice.metadata.labels.clone().unwrap();
        assert_eq!(labels[LABEL_SERVICE_NAME], "web");
        assert_eq!(labels[LABEL_MANAGED_BY], CONTROLLER_NAME);
        assert_eq!(labels["team"], "a");
        assert!(!labels.contains_key(util::LABEL_HEADLESS));
        let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Service", "svc-uid", Some(true))
        );
        assert_eq!(owner.block_owner_deletion, Some(true));
        let ports = slice.ports.as_ref().unwrap();
        assert_eq!(ports[0].port, Some(8080));
        assert_eq!(ports[0].name.as_deref(), Some("http"));
        assert_eq!(slice.endpoints.len(), 3);
        let ep1 = slice
            .endpoints
            .iter()
            .find(|e| e.addresses == ["10.42.0.2"])
            .unwrap();
        let c = ep1.conditions.clone().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(false), Some(false))
        );
        assert_eq!(ep1.node_name.as_deref(), Some("n1"));
        assert_eq!(ep1.zone.as_deref(), Some("z1"));
        let r = ep1.target_ref.as_ref().unwrap();
        assert_eq!(
            (r.kind.as_deref(), r.name.as_deref(), r.uid.as_deref()),
            (Some("Pod"), Some("web-1"), Some("uid-1"))
        );
        assert_eq!(d.members.len(), 3);
    }

    #[test]
    fn conditions_terminating_and_publish_not_ready() {
        let mut s = svc(vec![http_port()]);
        let mut p = (*pod(0, Some(8080), true)).clone();
        p.metadata.deletion_timestamp = Some(Time(ts(100)));
        let e = pod_to_endpoint(&p, None, &s, "IPv4");
        let c = e.conditions.unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(true), Some(true))
        );
        s.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let e = pod_to_endpoint(&p, None, &s, "IPv4");
        assert_eq!(e.conditions.unwrap().ready, Some(true));
        // No IPv6 address on an IPv4 pod.
        assert!(pod_to_endpoint(&p, None, &s, "IPv6").addresses.is_empty());
        // Hostname only for the pod's subdomain.
        p.spec.as_mut().unwrap().hostname = Some("h".into());
        assert_eq!(pod_to_endpoint(&p, None, &s, "IPv4").hostname, None);
        p.spec.as_mut().unwrap().subdomain = Some("web".into());
        assert_eq!(
            pod_to_endpoint(&p, None, &s, "IPv4").hostname.as_deref(),
            Some("h")
        );
    }

    #[test]
    fn pods_with_different_ports_go_to_different_slices() {
        let s = svc(vec![http_port()]);
        let pods = vec![
            pod(0, Some(8080), true),
            pod(1, Some(9090), true),
            pod(2, None, true),
        ];
        let d = reconcile(&s, &pods, &node_of, &[], MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(d.plan.create.len(), 3);
        let mut shapes: Vec<(Vec<Option<i32>>, usize)> = d
            .plan
            .create
            .iter()
            .map(|s| {
                (
                    s.ports.iter().flatten().map(|p| p.port).collect(),
                    s.endpoints.len(),
                )
            })
            .collect();
        shapes.sort();
        // The pod without the named port has an endpoint with no ports.
        assert_eq!(
            shapes,
            vec![(vec![], 1), (vec![Some(8080)], 1), (vec![Some(9090)], 1)]
        );
    }

    #[test]
    fn missing_node_skips_the_pod_and_reports() {
        let s = svc(vec![http_port()]);
        let mut p = (*pod(0, Some(8080), true)).clone();
        p.spec.as_mut().unwrap().node_name = Some("gone".into());
        let d = reconcile(&s, &[Arc::new(p)], &node_of, &[], MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(
            d.errors,
            ["skipping Pod web-0 for Service ns/web: Node gone Not Found"]
        );
        // Only the placeholder.
        assert_eq!(d.plan.create.len(), 1);
        assert!(d.plan.create[0].endpoints.is_empty());
    }

    #[test]
    fn packing_reuse_and_minimal_writes() {
        let s = svc(vec![http_port()]);
        let mut next = 0;
        let pods: Vec<_> = (0..250).map(|i| pod(i, Some(8080), true)).collect();
        let d = reconcile(&s, &pods, &node_of, &[], MAX_ENDPOINTS_PER_SLICE);
        let mut sizes: Vec<usize> = d.plan.create.iter().map(|s| s.endpoints.len()).collect();
        sizes.sort();
        assert_eq!(sizes, vec![50, 100, 100]);
        let slices = apply_plan(&[], &d.plan, &mut next);

        // Unchanged input: nothing to write.
        let d = reconcile(&s, &pods, &node_of, &slices, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(d.plan, Plan::default());

        // One pod turns unready: only its slice is rewritten.
        let mut pods2 = pods.clone();
        pods2[7] = pod(7, Some(8080), false);
        let d = reconcile(&s, &pods2, &node_of, &slices, MAX_ENDPOINTS_PER_SLICE);
        assert!(d.plan.create.is_empty() && d.plan.delete.is_empty());
        assert_eq!(d.plan.update.len(), 1);
        let ep = d.plan.update[0]
            .endpoints
            .iter()
            .find(|e| e.target_ref.as_ref().unwrap().name.as_deref() == Some("web-7"))
            .unwrap();
        assert_eq!(ep.conditions.as_ref().unwrap().ready, Some(false));

        // Ten new pods fit into the half-full slice (an update, no create).
        let pods3: Vec<_> = (0..260).map(|i| pod(i, Some(8080), true)).collect();
        let d = reconcile(&s, &pods3, &node_of, &slices, MAX_ENDPOINTS_PER_SLICE);
        assert!(d.plan.create.is_empty() && d.plan.delete.is_empty());
        assert_eq!(d.plan.update.len(), 1);
        assert_eq!(d.plan.update[0].endpoints.len(), 60);
        let slices = apply_plan(&slices, &d.plan, &mut next);
        assert_eq!(all_endpoints(&slices).len(), 260);

        // Removing a pod rewrites its slice, which also takes a new pod.
        let mut pods4: Vec<_> = pods3
            .iter()
            .filter(|p| p.name_any() != "web-3")
            .cloned()
            .collect();
        pods4.push(pod(300, Some(8080), true));
        let d = reconcile(&s, &pods4, &node_of, &slices, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(
            (
                d.plan.create.len(),
                d.plan.update.len(),
                d.plan.delete.len()
            ),
            (0, 1, 0)
        );
        let slices = apply_plan(&slices, &d.plan, &mut next);
        let eps = all_endpoints(&slices);
        assert!(eps.contains(&"web-300".to_string()) && !eps.contains(&"web-3".to_string()));
        assert!(slices
            .iter()
            .all(|s| s.endpoints.len() <= MAX_ENDPOINTS_PER_SLICE));
    }

    #[test]
    fn scale_to_zero_keeps_one_empty_slice() {
        let s = svc(vec![http_port()]);
        let mut next = 0;
        let pods: Vec<_> = (0..3).map(|i| pod(i, Some(8080), true)).collect();
        let d = reconcile(&s, &pods, &node_of, &[], MAX_ENDPOINTS_PER_SLICE);
        let slices = apply_plan(&[], &d.plan, &mut next);
        let d = reconcile(&s, &[], &node_of, &slices, MAX_ENDPOINTS_PER_SLICE);
        // The emptied slice becomes the placeholder in place (no delete + create).
        assert_eq!(
            (
                d.plan.create.len(),
                d.plan.update.len(),
                d.plan.delete.len()
            ),
            (0, 1, 0)
        );
        let u = &d.plan.update[0];
        assert_eq!(u.metadata.name, slices[0].metadata.name);
        assert!(u.endpoints.is_empty());
        assert_eq!(u.ports.as_deref(), Some(&[][..]));
        let slices = apply_plan(&slices, &d.plan, &mut next);
        // And stays as it is.
        let d = reconcile(&s, &[], &node_of, &slices, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(d.plan, Plan::default());
        // A Service with nothing at all gets a placeholder.
        let d = reconcile(&s, &[], &node_of, &[], MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(d.plan.create.len(), 1);
    }

    #[test]
    fn foreign_slices_and_labels() {
        let s = svc(vec![http_port()]);
        let mut next = 0;
        let pods: Vec<_> = (0..2).map(|i| pod(i, Some(8080), true)).collect();
        let d = reconcile(&s, &pods, &node_of, &[], MAX_ENDPOINTS_PER_SLICE);
        let slices = apply_plan(&[], &d.plan, &mut next);
        // The Service's labels change: the slice is rewritten with them.
        let mut s2 = s.clone();
        s2.metadata.labels = Some([("team".to_string(), "b".to_string())].into());
        let d = reconcile(&s2, &pods, &node_of, &slices, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(d.plan.update.len(), 1);
        assert_eq!(
            d.plan.update[0].metadata.labels.as_ref().unwrap()["team"],
            "b"
        );
        // A slice owned by an older Service of the same name is deleted and a new one
        // created (only owned slices are reused).
        let mut s3 = s.clone();
        s3.metadata.uid = Some("new-uid".into());
        let d = reconcile(&s3, &pods, &node_of, &slices, MAX_ENDPOINTS_PER_SLICE);
        assert_eq!(
            (
                d.plan.create.len(),
                d.plan.update.len(),
                d.plan.delete.len()
            ),
            (1, 0, 1)
        );
        assert_eq!(d.plan.delete[0].metadata.name, slices[0].metadata.name);
        assert_eq!(d.plan.create[0].endpoints.len(), 2);
    }

    #[test]
    fn headless_and_address_types() {
        let mut s = svc(vec![]);
        s.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        let pods = vec![pod(0, Some(8080), true)];
        let d = reconcile(&s, &pods, &node_of, &[], MAX_ENDPOINTS_PER_SLICE);
        let slice = &d.plan.create[0];
        assert_eq!(
            slice.metadata.labels.as_ref().unwrap()[util::LABEL_HEADLESS],
            ""
        );
        assert_eq!(slice.ports.as_deref(), Some(&[][..]));
        assert_eq!(slice.endpoints.len(), 1);
        assert_eq!(address_types(&s), ["IPv4"]);
        s.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into(), "IPv4".into()]);
        assert_eq!(address_types(&s), ["IPv6", "IPv4"]);
        let mut v6 = svc(vec![]);
        v6.spec.as_mut().unwrap().cluster_ip = Some("fd00::10".into());
        assert_eq!(address_types(&v6), ["IPv6"]);
    }

    #[test]
    fn tracker_detects_a_lagging_cache() {
        let t = SliceTracker::default();
        let mut s = new_slice(&svc(vec![]), vec![], "IPv4");
        s.metadata.name = Some("web-abc".into());
        s.metadata.uid = Some("u1".into());
        s.metadata.resource_version = Some("5".into());
        s.metadata.namespace = Some("ns".into());
        let cached = Arc::new(s.clone());
        assert!(!t.stale("ns/web", std::slice::from_ref(&cached)));
        // Written at 7: the cache at 5 is stale, and a new slice not cached yet too.
        let mut w = s.clone();
        w.metadata.resource_version = Some("7".into());
        t.update("ns/web", &w);
        assert!(t.stale("ns/web", std::slice::from_ref(&cached)));
        assert!(!t.should_sync(&cached));
        assert!(!t.should_sync(&w));
        assert!(!t.stale("ns/web", &[Arc::new(w.clone())]));
        let mut other = s.clone();
        other.metadata.uid = Some("u2".into());
        other.metadata.resource_version = Some("9".into());
        t.update("ns/web", &other);
        assert!(t.stale("ns/web", &[Arc::new(w.clone())]));
        // Someone else's later write is news.
        let mut later = w.clone();
        later.metadata.resource_version = Some("12".into());
        assert!(t.should_sync(&later));
        // Deleted but still cached: stale; the deletion seen: expected, no sync.
        t.expect_deletion("ns/web", &w);
        assert!(t.stale("ns/web", &[Arc::new(w.clone()), Arc::new(other.clone())]));
        assert!(t.handle_deletion(&w));
        assert!(!t.stale("ns/web", &[Arc::new(other.clone())]));
        // An unexpected deletion asks for a sync.
        assert!(!t.handle_deletion(&other));
        t.forget_service("ns/web");
        assert!(!t.stale("ns/web", &[]));
    }

    #[test]
    fn aggregate_like_go() {
        assert_eq!(aggregate(&["a".into()]), "a");
        assert_eq!(aggregate(&["a".into(), "b".into(), "a".into()]), "[a, b]");
    }
}
