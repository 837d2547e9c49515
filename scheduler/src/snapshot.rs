//! The scheduler's cache: compact per-node aggregates (requested resources, host ports,
//! images, pods) and compact per-pod summaries, updated incrementally from watch events.
//! Full API objects are never kept for assigned pods or nodes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, Node, Pod, PodAffinityTerm, Taint, Toleration, TopologySpreadConstraint,
};

use crate::labels::{parse_quantity, NodeTerm, Selector};

pub type Labels = Arc<BTreeMap<String, String>>;

/// Label sets in use, shared between pods with equal labels (the replicas of a workload
/// usually carry the same ones): one map per distinct set instead of one per pod.
static LABEL_SETS: std::sync::Mutex<LabelSets> = std::sync::Mutex::new(LabelSets {
    sets: None,
    sweep_at: 1024,
});

struct LabelSets {
    sets: Option<std::collections::HashSet<Labels>>,
    /// Drop the sets no pod uses any more once this many are held.
    sweep_at: usize,
}

/// The shared copy of a label set.
pub fn intern_labels(labels: Option<&BTreeMap<String, String>>) -> Labels {
    let Some(labels) = labels.filter(|l| !l.is_empty()) else {
        return Labels::default();
    };
    let mut g = LABEL_SETS.lock().expect("label sets lock");
    let LabelSets { sets, sweep_at } = &mut *g;
    let sets = sets.get_or_insert_with(Default::default);
    if let Some(l) = sets.get(labels) {
        return l.clone();
    }
    if sets.len() >= *sweep_at {
        sets.retain(|l| Arc::strong_count(l) > 1);
        *sweep_at = (sets.len() * 2).max(1024);
    }
    let l = Arc::new(labels.clone());
    sets.insert(l.clone());
    l
}

/// Default cpu request (millicores) used for scoring when a container sets none.
pub const DEFAULT_MILLI_CPU: i64 = 100;
/// Default memory request (bytes) used for scoring when a container sets none.
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// A set of resource amounts (cpu in millicores, the rest in base units).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub pods: i64,
    /// Extended resources, sorted by name.
    pub scalar: Vec<(String, i64)>,
}

impl Resources {
    fn scalar_mut(&mut self, name: &str) -> &mut i64 {
        let i = match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => i,
            Err(i) => {
                self.scalar.insert(i, (name.to_string(), 0));
                i
            }
        };
        &mut self.scalar[i].1
    }

    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map(|i| self.scalar[i].1)
            .unwrap_or(0)
    }

    /// Sets one resource from a quantity string.
    pub fn set(&mut self, name: &str, q: &str) {
        let Some(v) = parse_quantity(q) else { return };
        match name {
            "cpu" => self.milli_cpu = (v * 1000.0).ceil() as i64,
            "memory" => self.memory = v.ceil() as i64,
            "ephemeral-storage" => self.ephemeral_storage = v.ceil() as i64,
            "pods" => self.pods = v as i64,
            n if is_scalar(n) => *self.scalar_mut(n) = v.ceil() as i64,
            _ => {}
        }
    }

    pub fn from_list(
        list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    ) -> Resources {
        let mut r = Resources::default();
        for (k, v) in list.into_iter().flatten() {
            r.set(k, &v.0);
        }
        r
    }

    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
        self.pods += o.pods;
        for (n, v) in &o.scalar {
            *self.scalar_mut(n) += v;
        }
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
        self.pods -= o.pods;
        for (n, v) in &o.scalar {
            *self.scalar_mut(n) -= v;
        }
    }

    fn max_with(&mut self, o: &Resources) {
        self.milli_cpu = self.milli_cpu.max(o.milli_cpu);
        self.memory = self.memory.max(o.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(o.ephemeral_storage);
        for (n, v) in &o.scalar {
            let s = self.scalar_mut(n);
            *s = (*s).max(*v);
        }
    }
}

/// Extended resources: a domain-qualified name (`example.com/foo`) or `hugepages-*`.
fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/"))
        || name.starts_with("requests.")
}

/// A `hostPort` in use: protocol, host IP (empty = all), port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: i32,
}

impl HostPort {
    pub fn conflicts(&self, o: &HostPort) -> bool {
        let wild = |ip: &str| ip.is_empty() || ip == "0.0.0.0";
        self.port == o.port
            && self.protocol == o.protocol
            && (self.ip == o.ip || wild(&self.ip) || wild(&o.ip))
    }
}

/// Which namespaces an affinity term selects.
#[derive(Debug, Clone, PartialEq)]
pub enum Namespaces {
    /// An explicit list (defaults to the owning pod's namespace).
    List(Vec<String>),
    /// `namespaceSelector: {}`: every namespace.
    All,
}

/// A compiled pod (anti-)affinity term.
#[derive(Debug, Clone, PartialEq)]
pub struct AffinityTerm {
    pub namespaces: Namespaces,
    pub selector: Selector,
    pub topology_key: String,
}

impl AffinityTerm {
    fn compile(t: &PodAffinityTerm, owner: &Pod) -> AffinityTerm {
        let own_ns = owner.metadata.namespace.clone().unwrap_or_default();
        let mut namespaces = t.namespaces.clone().unwrap_or_default();
        let mut all = false;
        if let Some(ns_sel) = &t.namespace_selector {
            // Namespace labels are not watched: only the empty selector ("all namespaces") is
            // evaluated; any other namespaceSelector contributes no namespaces.
            if ns_sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && ns_sel
                    .match_expressions
                    .as_ref()
                    .is_none_or(|m| m.is_empty())
            {
                all = true;
            }
        } else if namespaces.is_empty() {
            namespaces.push(own_ns);
        }
        let mut selector = Selector::compile(t.label_selector.as_ref());
        let labels = owner.metadata.labels.as_ref();
        for k in t.match_label_keys.iter().flatten() {
            if let Some(v) = labels.and_then(|l| l.get(k)) {
                selector.and_equals(k, v);
            }
        }
        AffinityTerm {
            namespaces: if all {
                Namespaces::All
            } else {
                Namespaces::List(namespaces)
            },
            selector,
            topology_key: t.topology_key.clone(),
        }
    }

    /// Whether the term selects a pod.
    pub fn matches(&self, pod: &PodInfo) -> bool {
        let ns_ok = match &self.namespaces {
            Namespaces::All => true,
            Namespaces::List(l) => l.contains(&pod.namespace),
        };
        ns_ok && self.selector.matches(&pod.labels)
    }
}

/// Pod (anti-)affinity of a pod, compiled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodAffinity {
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<(i32, AffinityTerm)>,
    pub preferred_anti_affinity: Vec<(i32, AffinityTerm)>,
}

/// A volume that can conflict with the same volume on another pod of the node.
#[derive(Debug, Clone, PartialEq)]
pub struct Disk {
    pub kind: &'static str,
    pub id: String,
    pub read_only: bool,
}

impl Disk {
    /// Upstream VolumeRestrictions: GCE PD conflicts unless both are read-only; AWS EBS
    /// always conflicts; RBD and iSCSI conflict unless both are read-only.
    pub fn conflicts(&self, o: &Disk) -> bool {
        if self.kind != o.kind || self.id != o.id {
            return false;
        }
        match self.kind {
            "aws" => true,
            _ => !(self.read_only && o.read_only),
        }
    }
}

/// Compact summary of a pod: everything the filters need from assigned pods.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub priority: i32,
    pub requests: Resources,
    pub non_zero_cpu: i64,
    pub non_zero_mem: i64,
    pub host_ports: Vec<HostPort>,
    pub affinity: Option<Arc<PodAffinity>>,
    pub disks: Vec<Disk>,
    pub terminating: bool,
    /// Creation time in seconds (for preemption tie breaks).
    pub created: i64,
}

fn container_requests(c: &Container) -> Resources {
    let res = c.resources.as_ref();
    let mut r = Resources::from_list(res.and_then(|r| r.limits.as_ref()));
    // Requests default to limits (what API defaulting does); explicit requests win.
    let req = Resources::from_list(res.and_then(|r| r.requests.as_ref()));
    if res.and_then(|r| r.requests.as_ref()).is_some() {
        let reqs = res.and_then(|r| r.requests.as_ref()).unwrap();
        if reqs.contains_key("cpu") {
            r.milli_cpu = req.milli_cpu;
        }
        if reqs.contains_key("memory") {
            r.memory = req.memory;
        }
        if reqs.contains_key("ephemeral-storage") {
            r.ephemeral_storage = req.ephemeral_storage;
        }
        for (n, v) in &req.scalar {
            *r.scalar_mut(n) = *v;
        }
    }
    r.pods = 0;
    r
}

fn non_zero(c: &Container) -> (i64, i64) {
    let res = c.resources.as_ref();
    let has = |k: &str| {
        res.and_then(|r| r.requests.as_ref())
            .is_some_and(|m| m.contains_key(k))
            || res
                .and_then(|r| r.limits.as_ref())
                .is_some_and(|m| m.contains_key(k))
    };
    let r = container_requests(c);
    (
        if has("cpu") {
            r.milli_cpu
        } else {
            DEFAULT_MILLI_CPU
        },
        if has("memory") {
            r.memory
        } else {
            DEFAULT_MEMORY
        },
    )
}

/// Upstream `resource.PodRequests`: containers summed, sidecars added, the max with each
/// init container's need, plus pod overhead.
pub fn pod_requests(pod: &Pod) -> (Resources, i64, i64) {
    let Some(spec) = &pod.spec else {
        return (
            Resources {
                pods: 1,
                ..Default::default()
            },
            0,
            0,
        );
    };
    let mut reqs = Resources::default();
    let (mut nz_cpu, mut nz_mem) = (0, 0);
    for c in &spec.containers {
        reqs.add(&container_requests(c));
        let (a, b) = non_zero(c);
        nz_cpu += a;
        nz_mem += b;
    }
    let mut sidecars = Resources::default();
    let (mut sc_cpu, mut sc_mem) = (0, 0);
    let mut init_max = Resources::default();
    let (mut im_cpu, mut im_mem) = (0, 0);
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        let (a, b) = non_zero(c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            sc_cpu += a;
            sc_mem += b;
            init_max.max_with(&sidecars);
            im_cpu = im_cpu.max(sc_cpu);
            im_mem = im_mem.max(sc_mem);
        } else {
            let mut t = r;
            t.add(&sidecars);
            init_max.max_with(&t);
            im_cpu = im_cpu.max(a + sc_cpu);
            im_mem = im_mem.max(b + sc_mem);
        }
    }
    reqs.add(&sidecars);
    nz_cpu += sc_cpu;
    nz_mem += sc_mem;
    reqs.max_with(&init_max);
    nz_cpu = nz_cpu.max(im_cpu);
    nz_mem = nz_mem.max(im_mem);
    if let Some(oh) = &spec.overhead {
        let o = Resources::from_list(Some(oh));
        reqs.add(&o);
        nz_cpu += o.milli_cpu;
        nz_mem += o.memory;
    }
    reqs.pods = 1;
    (reqs, nz_cpu, nz_mem)
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> PodInfo {
        let (requests, non_zero_cpu, non_zero_mem) = pod_requests(pod);
        let spec = pod.spec.as_ref();
        let mut host_ports = Vec::new();
        for c in spec.into_iter().flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        }) {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                    host_ports.push(HostPort {
                        protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        ip: p.host_ip.clone().unwrap_or_default(),
                        port: hp,
                    });
                }
            }
        }
        let affinity = spec.and_then(|s| s.affinity.as_ref()).and_then(|a| {
            let mut out = PodAffinity::default();
            if let Some(pa) = &a.pod_affinity {
                for t in pa
                    .required_during_scheduling_ignored_during_execution
                    .iter()
                    .flatten()
                {
                    out.required_affinity.push(AffinityTerm::compile(t, pod));
                }
                for t in pa
                    .preferred_during_scheduling_ignored_during_execution
                    .iter()
                    .flatten()
                {
                    out.preferred_affinity
                        .push((t.weight, AffinityTerm::compile(&t.pod_affinity_term, pod)));
                }
            }
            if let Some(pa) = &a.pod_anti_affinity {
                for t in pa
                    .required_during_scheduling_ignored_during_execution
                    .iter()
                    .flatten()
                {
                    out.required_anti_affinity
                        .push(AffinityTerm::compile(t, pod));
                }
                for t in pa
                    .preferred_during_scheduling_ignored_during_execution
                    .iter()
                    .flatten()
                {
                    out.preferred_anti_affinity
                        .push((t.weight, AffinityTerm::compile(&t.pod_affinity_term, pod)));
                }
            }
            (out != PodAffinity::default()).then(|| Arc::new(out))
        });
        let mut disks = Vec::new();
        for v in spec.into_iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Some(g) = &v.gce_persistent_disk {
                disks.push(Disk {
                    kind: "gce",
                    id: g.pd_name.clone(),
                    read_only: g.read_only.unwrap_or(false),
                });
            }
            if let Some(a) = &v.aws_elastic_block_store {
                disks.push(Disk {
                    kind: "aws",
                    id: a.volume_id.clone(),
                    read_only: a.read_only.unwrap_or(false),
                });
            }
            if let Some(r) = &v.rbd {
                let mut mons = r.monitors.clone();
                mons.sort();
                disks.push(Disk {
                    kind: "rbd",
                    id: format!(
                        "{}/{}/{}",
                        mons.join(","),
                        r.pool.clone().unwrap_or_else(|| "rbd".into()),
                        r.image
                    ),
                    read_only: r.read_only.unwrap_or(false),
                });
            }
            if let Some(i) = &v.iscsi {
                disks.push(Disk {
                    kind: "iscsi",
                    id: i.iqn.clone(),
                    read_only: i.read_only.unwrap_or(false),
                });
            }
        }
        PodInfo {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            labels: intern_labels(pod.metadata.labels.as_ref()),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            requests,
            non_zero_cpu,
            non_zero_mem,
            host_ports,
            affinity,
            disks,
            terminating: pod.metadata.deletion_timestamp.is_some(),
            created: pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
                .unwrap_or(0),
        }
    }

    pub fn has_required_anti_affinity(&self) -> bool {
        self.affinity
            .as_ref()
            .is_some_and(|a| !a.required_anti_affinity.is_empty())
    }
}

/// A compiled topology spread constraint of the pod being scheduled.
#[derive(Debug, Clone)]
pub struct SpreadConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    pub hard: bool,
    pub selector: Selector,
    pub min_domains: Option<i32>,
    /// nodeAffinityPolicy Honor (default): only count nodes matching the pod's node affinity.
    pub honor_affinity: bool,
    /// nodeTaintsPolicy Honor: only count nodes whose taints the pod tolerates.
    pub honor_taints: bool,
}

impl SpreadConstraint {
    fn compile(c: &TopologySpreadConstraint, pod: &Pod) -> SpreadConstraint {
        let mut selector = Selector::compile(c.label_selector.as_ref());
        let labels = pod.metadata.labels.as_ref();
        for k in c.match_label_keys.iter().flatten() {
            if let Some(v) = labels.and_then(|l| l.get(k)) {
                selector.and_equals(k, v);
            }
        }
        SpreadConstraint {
            max_skew: c.max_skew,
            topology_key: c.topology_key.clone(),
            hard: c.when_unsatisfiable == "DoNotSchedule",
            selector,
            min_domains: c.min_domains,
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        }
    }
}

/// The pod being scheduled: its summary plus the scheduling-only parts of its spec.
#[derive(Debug, Clone)]
pub struct SchedPod {
    pub info: Arc<PodInfo>,
    pub node_name: Option<String>,
    pub node_selector: Vec<(String, String)>,
    /// Required node affinity terms (ORed); `None` when absent.
    pub required_node: Option<Vec<NodeTerm>>,
    pub preferred_node: Vec<(i32, NodeTerm)>,
    pub tolerations: Vec<Toleration>,
    pub spread: Vec<SpreadConstraint>,
    pub preempt_never: bool,
    /// Normalized container image names.
    pub images: Vec<String>,
    pub nominated_node: Option<String>,
}

impl SchedPod {
    pub fn from_pod(pod: &Pod) -> SchedPod {
        let info = Arc::new(PodInfo::from_pod(pod));
        let spec = pod.spec.as_ref();
        let na = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref());
        SchedPod {
            info,
            node_name: spec
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            node_selector: spec
                .and_then(|s| s.node_selector.as_ref())
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            required_node: na
                .and_then(|n| {
                    n.required_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(|r| {
                    r.node_selector_terms
                        .iter()
                        .map(NodeTerm::compile)
                        .collect()
                }),
            preferred_node: na
                .and_then(|n| {
                    n.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map(|p| {
                    p.iter()
                        .map(|t| (t.weight, NodeTerm::compile(&t.preference)))
                        .collect()
                })
                .unwrap_or_default(),
            tolerations: spec.and_then(|s| s.tolerations.clone()).unwrap_or_default(),
            spread: spec
                .and_then(|s| s.topology_spread_constraints.as_ref())
                .map(|v| {
                    v.iter()
                        .map(|c| SpreadConstraint::compile(c, pod))
                        .collect()
                })
                .unwrap_or_default(),
            preempt_never: spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never"),
            images: spec
                .map(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                        .filter_map(|c| c.image.as_deref())
                        .map(normalize_image)
                        .collect()
                })
                .unwrap_or_default(),
            nominated_node: pod
                .status
                .as_ref()
                .and_then(|s| s.nominated_node_name.clone())
                .filter(|n| !n.is_empty()),
        }
    }
}

/// Upstream ImageLocality normalization: add `:latest` when there is no tag or digest.
pub fn normalize_image(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Per-node aggregates.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    pub labels: Labels,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    pub requested: Resources,
    pub non_zero_cpu: i64,
    pub non_zero_mem: i64,
    pub pods: Vec<Arc<PodInfo>>,
    pub used_ports: Vec<HostPort>,
    /// Image name → size in bytes.
    pub images: HashMap<String, i64>,
    /// Pods here with any pod (anti-)affinity.
    pub pods_with_affinity: usize,
}

impl NodeInfo {
    pub fn new(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            labels: Arc::default(),
            taints: Vec::new(),
            unschedulable: false,
            allocatable: Resources::default(),
            requested: Resources::default(),
            non_zero_cpu: 0,
            non_zero_mem: 0,
            pods: Vec::new(),
            used_ports: Vec::new(),
            images: HashMap::new(),
            pods_with_affinity: 0,
        }
    }

    /// Updates the node-level fields from a Node object; returns whether anything that
    /// scheduling depends on changed.
    pub fn set_node(&mut self, node: &Node) -> bool {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let spec = node.spec.as_ref();
        let taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        let unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        let status = node.status.as_ref();
        let allocatable = Resources::from_list(
            status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref())),
        );
        let mut images = HashMap::new();
        for img in status.and_then(|s| s.images.as_ref()).into_iter().flatten() {
            for n in img.names.iter().flatten() {
                images.insert(n.clone(), img.size_bytes.unwrap_or(0));
            }
        }
        let changed = *self.labels != labels
            || self.taints != taints
            || self.unschedulable != unschedulable
            || self.allocatable != allocatable
            || self.images != images;
        if *self.labels != labels {
            self.labels = Arc::new(labels);
        }
        self.taints = taints;
        self.unschedulable = unschedulable;
        self.allocatable = allocatable;
        self.images = images;
        changed
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_cpu += pod.non_zero_cpu;
        self.non_zero_mem += pod.non_zero_mem;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.affinity.is_some() {
            self.pods_with_affinity += 1;
        }
        self.pods.push(pod);
    }

    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_cpu -= pod.non_zero_cpu;
        self.non_zero_mem -= pod.non_zero_mem;
        for hp in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == hp) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.affinity.is_some() {
            self.pods_with_affinity -= 1;
        }
        Some(pod)
    }
}

/// The cluster cache: nodes in a dense vector plus pod locations.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub nodes: Vec<NodeInfo>,
    pub index: HashMap<String, usize>,
    /// Pod uid → node name, for assigned (or assumed) pods.
    pub pod_nodes: HashMap<String, String>,
    /// Pods bound to nodes we have no Node object for yet.
    orphans: HashMap<String, Vec<Arc<PodInfo>>>,
    /// Image name → number of nodes that have it.
    pub image_nodes: HashMap<String, usize>,
    /// Total pods with pod (anti-)affinity.
    pub pods_with_affinity: usize,
}

impl Snapshot {
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// Adds or updates a node; returns whether it is new or changed for scheduling.
    pub fn upsert_node(&mut self, node: &Node) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        let i = match self.index.get(&name) {
            Some(i) => *i,
            None => {
                let mut ni = NodeInfo::new(&name);
                for p in self.orphans.remove(&name).unwrap_or_default() {
                    ni.add_pod(p);
                }
                self.nodes.push(ni);
                self.index.insert(name, self.nodes.len() - 1);
                self.nodes.len() - 1
            }
        };
        for img in self.nodes[i].images.keys() {
            if let Some(c) = self.image_nodes.get_mut(img) {
                *c -= 1;
            }
        }
        let changed = self.nodes[i].set_node(node);
        for img in self.nodes[i].images.keys() {
            *self.image_nodes.entry(img.clone()).or_default() += 1;
        }
        self.image_nodes.retain(|_, c| *c > 0);
        changed || self.nodes[i].allocatable == Resources::default()
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let ni = self.nodes.swap_remove(i);
        if i < self.nodes.len() {
            self.index.insert(self.nodes[i].name.clone(), i);
        }
        for img in ni.images.keys() {
            if let Some(c) = self.image_nodes.get_mut(img) {
                *c -= 1;
            }
        }
        self.image_nodes.retain(|_, c| *c > 0);
        if !ni.pods.is_empty() {
            self.orphans.insert(ni.name, ni.pods);
        }
    }

    /// Adds (or moves) an assigned pod.
    pub fn add_pod(&mut self, node: &str, pod: Arc<PodInfo>) {
        self.remove_pod(&pod.uid);
        self.pod_nodes.insert(pod.uid.clone(), node.to_string());
        if pod.affinity.is_some() {
            self.pods_with_affinity += 1;
        }
        match self.index.get(node) {
            Some(i) => self.nodes[*i].add_pod(pod),
            None => self.orphans.entry(node.to_string()).or_default().push(pod),
        }
    }

    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let node = self.pod_nodes.remove(uid)?;
        let removed = match self.index.get(&node) {
            Some(i) => self.nodes[*i].remove_pod(uid),
            None => {
                let list = self.orphans.get_mut(&node)?;
                let j = list.iter().position(|p| p.uid == uid)?;
                let p = list.swap_remove(j);
                if list.is_empty() {
                    self.orphans.remove(&node);
                }
                Some(p)
            }
        };
        if removed.as_ref().is_some_and(|p| p.affinity.is_some()) {
            self.pods_with_affinity -= 1;
        }
        removed
    }

    /// The assigned pod with this uid, if any.
    pub fn pod(&self, uid: &str) -> Option<&Arc<PodInfo>> {
        let node = self.pod_nodes.get(uid)?;
        let i = self.index.get(node)?;
        self.nodes[*i].pods.iter().find(|p| p.uid == uid)
    }
}
