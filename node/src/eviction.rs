//! Node-pressure eviction, after upstream pkg/kubelet/eviction: every 10 s the kubelet
//! observes the eviction signals (memory.available, nodefs.available, nodefs.inodesFree,
//! imagefs.available, imagefs.inodesFree, pid.available), compares them with the hard
//! thresholds, keeps the MemoryPressure / DiskPressure / PIDPressure node conditions
//! (held for the pressure transition period after the last observation), reclaims
//! unused images first under disk pressure, and otherwise evicts at most one pod per
//! pass, ranked as upstream ranks them. Critical pods (static, mirror, priority >=
//! 2000000000) are never evicted. Also: the admission check under pressure, the
//! local-storage-limit evictions (emptyDir sizeLimit, ephemeral-storage limits), the
//! eviction message and the status patch (phase Failed, reason Evicted, the
//! DisruptionTarget condition).
//!
//! Everything but [`EvictionManager::run_pass`] is pure: observations, thresholds,
//! ranking and messages are computed from values the caller (or `run_pass`, from the
//! [`Runtime`] and [`Filesystems`]) provides.

use crate::cri::{CriError, Runtime};
use crate::imagegc::{image_fs_stat, DirUsage, Filesystems, FsStat, ImageGc, NodeEvent};
use crate::nodestatus::{parse_quantity, MachineFacts, Threshold};
use jiff::Timestamp;
use k8s_cri::v1::ContainerStats;
use k8s_openapi::api::core::v1::{Container, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// The pod status reason of an evicted pod (and of a pod refused under pressure).
pub const REASON: &str = "Evicted";
/// How often the kubelet runs a pass.
pub const MONITORING_INTERVAL: Duration = Duration::from_secs(10);
/// `evictionPressureTransitionPeriod` default.
pub const DEFAULT_PRESSURE_TRANSITION_PERIOD: Duration = Duration::from_secs(300);
/// The grace period a pod gets when a hard threshold evicts it.
pub const IMMEDIATE_EVICTION_GRACE_PERIOD_SECONDS: i64 = 1;
/// After an eviction, no further one until the pod's containers are gone or this passed.
pub const POD_CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// `scheduling.SystemCriticalPriority`.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;
/// Pod condition set on evicted pods, and its reason.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";
pub const TERMINATION_BY_KUBELET: &str = "TerminationByKubelet";
/// Node event recorded when a threshold is met.
pub const EVICTION_THRESHOLD_MET: &str = "EvictionThresholdMet";
/// Event annotations upstream attaches to the Evicted event.
pub const OFFENDING_CONTAINERS_KEY: &str = "offending_containers";
pub const OFFENDING_CONTAINERS_USAGE_KEY: &str = "offending_containers_usage";
pub const STARVED_RESOURCE_KEY: &str = "starved_resource";
/// The taint a BestEffort pod must tolerate to be admitted under memory pressure.
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// Static / mirror pod annotations (the same keys staticpods.rs sets).
const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";

#[derive(Debug, thiserror::Error)]
pub enum EvictionError {
    #[error("unsupported eviction signal {0}")]
    UnsupportedSignal(String),
    #[error("eviction threshold {signal}: {reason}")]
    InvalidThreshold { signal: String, reason: String },
    #[error("listing container stats: {0}")]
    ListContainerStats(#[source] CriError),
}

// ---------------------------------------------------------------------------------------
// Signals and observations
// ---------------------------------------------------------------------------------------

/// An eviction signal. The declaration order is the order thresholds are acted on:
/// memory first, as upstream's byEvictionPriority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    MemoryAvailable,
    NodeFsAvailable,
    NodeFsInodesFree,
    ImageFsAvailable,
    ImageFsInodesFree,
    PidAvailable,
}

/// A node condition eviction drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PressureCondition {
    MemoryPressure,
    DiskPressure,
    PidPressure,
}

impl PressureCondition {
    pub fn as_str(self) -> &'static str {
        match self {
            PressureCondition::MemoryPressure => "MemoryPressure",
            PressureCondition::DiskPressure => "DiskPressure",
            PressureCondition::PidPressure => "PIDPressure",
        }
    }
}

impl Signal {
    pub const ALL: [Signal; 6] = [
        Signal::MemoryAvailable,
        Signal::NodeFsAvailable,
        Signal::NodeFsInodesFree,
        Signal::ImageFsAvailable,
        Signal::ImageFsInodesFree,
        Signal::PidAvailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodeFsAvailable => "nodefs.available",
            Signal::NodeFsInodesFree => "nodefs.inodesFree",
            Signal::ImageFsAvailable => "imagefs.available",
            Signal::ImageFsInodesFree => "imagefs.inodesFree",
            Signal::PidAvailable => "pid.available",
        }
    }

    pub fn parse(s: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The resource the signal starves (upstream signalToResource).
    pub fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodeFsAvailable | Signal::ImageFsAvailable => "ephemeral-storage",
            Signal::NodeFsInodesFree | Signal::ImageFsInodesFree => "inodes",
            Signal::PidAvailable => "pids",
        }
    }

    pub fn condition(self) -> PressureCondition {
        match self {
            Signal::MemoryAvailable => PressureCondition::MemoryPressure,
            Signal::PidAvailable => PressureCondition::PidPressure,
            _ => PressureCondition::DiskPressure,
        }
    }

    pub fn is_disk(self) -> bool {
        self.condition() == PressureCondition::DiskPressure
    }

    /// Counts (inodes, pids) print as decimal quantities, bytes as binary ones.
    fn counts(self) -> bool {
        matches!(
            self,
            Signal::NodeFsInodesFree | Signal::ImageFsInodesFree | Signal::PidAvailable
        )
    }
}

/// What is left of a resource, and how much there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub available: i128,
    pub capacity: i128,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    pub signals: BTreeMap<Signal, Observation>,
    /// The image filesystem is a different device from the kubelet's root.
    pub dedicated_image_fs: bool,
}

impl Observations {
    pub fn get(&self, s: Signal) -> Option<Observation> {
        self.signals.get(&s).copied()
    }
}

/// The signals observable from the machine facts, the kubelet root's filesystem (statvfs,
/// with inodes; the facts' fs numbers when absent) and the image filesystem.
pub fn observe(
    facts: &MachineFacts,
    nodefs: Option<&FsStat>,
    imagefs: Option<&FsStat>,
) -> Observations {
    let mut o = Observations::default();
    let mut put = |s: Signal, available: u64, capacity: u64| {
        o.signals.insert(
            s,
            Observation {
                available: available as i128,
                capacity: capacity as i128,
            },
        );
    };
    if facts.memory_bytes > 0 {
        put(
            Signal::MemoryAvailable,
            facts.memory_available_bytes,
            facts.memory_bytes,
        );
    }
    match nodefs {
        Some(n) if n.capacity_bytes > 0 => {
            put(Signal::NodeFsAvailable, n.available_bytes, n.capacity_bytes);
            if n.inodes > 0 {
                put(Signal::NodeFsInodesFree, n.inodes_free, n.inodes);
            }
        }
        _ if facts.fs_capacity_bytes > 0 => put(
            Signal::NodeFsAvailable,
            facts.fs_available_bytes,
            facts.fs_capacity_bytes,
        ),
        _ => {}
    }
    if let Some(i) = imagefs.filter(|i| i.capacity_bytes > 0) {
        put(
            Signal::ImageFsAvailable,
            i.available_bytes,
            i.capacity_bytes,
        );
        if i.inodes > 0 {
            put(Signal::ImageFsInodesFree, i.inodes_free, i.inodes);
        }
    }
    if facts.pid_max > 0 {
        put(
            Signal::PidAvailable,
            facts.pid_max.saturating_sub(facts.pids_running),
            facts.pid_max,
        );
    }
    o.dedicated_image_fs = match (nodefs, imagefs) {
        (Some(n), Some(i)) => n.device != 0 && i.device != 0 && n.device != i.device,
        _ => false,
    };
    o
}

/// Upstream's checks on `--eviction-hard` entries.
pub fn validate_thresholds(thresholds: &BTreeMap<String, Threshold>) -> Result<(), EvictionError> {
    for (name, t) in thresholds {
        if Signal::parse(name).is_none() {
            return Err(EvictionError::UnsupportedSignal(name.clone()));
        }
        let bad = |reason: String| EvictionError::InvalidThreshold {
            signal: name.clone(),
            reason,
        };
        match t {
            Threshold::Percent(p) if *p < 0.0 => return Err(bad(format!("must be >= 0%: {p}%"))),
            Threshold::Percent(p) if *p > 100.0 => {
                return Err(bad(format!("must be <= 100%: {p}%")))
            }
            Threshold::Quantity(q) if *q <= 0 => return Err(bad(format!("must be positive: {q}"))),
            _ => {}
        }
    }
    Ok(())
}

/// The threshold in base units for a resource of `capacity` (upstream
/// GetThresholdQuantity: percentages are float32 fractions, truncated).
pub fn threshold_quantity(t: &Threshold, capacity: i128) -> i128 {
    match t {
        Threshold::Quantity(q) => *q,
        Threshold::Percent(p) => {
            let fraction = (*p as f32) / 100f32;
            (capacity as f64 * fraction as f64) as i128
        }
    }
}

fn ignored(t: &Threshold) -> bool {
    matches!(t, Threshold::Percent(p) if *p == 0.0 || *p == 100.0)
}

/// The signals whose available amount is below their threshold, in the order they are
/// acted on (memory first). Unknown signal names and 0 % / 100 % thresholds are ignored,
/// as are signals with no observation.
pub fn thresholds_met(obs: &Observations, thresholds: &BTreeMap<String, Threshold>) -> Vec<Signal> {
    let mut met: Vec<Signal> = thresholds
        .iter()
        .filter(|(_, t)| !ignored(t))
        .filter_map(|(name, t)| {
            let s = Signal::parse(name)?;
            let o = obs.get(s)?;
            (threshold_quantity(t, o.capacity) > o.available).then_some(s)
        })
        .collect();
    met.sort();
    met.dedup();
    met
}

// ---------------------------------------------------------------------------------------
// Quantities as upstream prints them
// ---------------------------------------------------------------------------------------

fn strip_factors(mut v: i128, base: i128) -> (i128, usize) {
    let mut e = 0;
    while v != 0 && v % base == 0 && e < 6 {
        v /= base;
        e += 1;
    }
    (v, e)
}

/// A DecimalSI quantity's canonical form: `1k`, `50M`, `1234`.
pub fn format_decimal_si(v: i128) -> String {
    let (n, e) = strip_factors(v, 1000);
    format!("{n}{}", ["", "k", "M", "G", "T", "P", "E"][e])
}

/// A BinarySI quantity's canonical form: `100Mi`, `51200Ki`, `52428801`; magnitudes under
/// 1024 print as decimal, as resource.Quantity does.
pub fn format_binary_si(v: i128) -> String {
    if v > -1024 && v < 1024 {
        return format_decimal_si(v);
    }
    let (n, e) = strip_factors(v, 1024);
    format!("{n}{}", ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][e])
}

/// A quantity string from a pod spec in canonical form (`"1024Mi"` -> `"1Gi"`), keeping
/// its binary or decimal flavour.
fn canonical_quantity(s: &str) -> String {
    match parse_quantity(s, false) {
        Some(v) if s.trim_end().ends_with('i') => format_binary_si(v),
        Some(v) => format_decimal_si(v),
        None => s.to_string(),
    }
}

fn format_threshold(signal: Signal, t: &Threshold, quantity: i128) -> String {
    match t {
        Threshold::Percent(_) => format_binary_si(quantity),
        Threshold::Quantity(_) if signal.counts() => format_decimal_si(quantity),
        // The flag's own flavour is lost in parsing: binary when it divides evenly.
        Threshold::Quantity(_) if quantity % 1024 == 0 => format_binary_si(quantity),
        Threshold::Quantity(_) => format_decimal_si(quantity),
    }
}

fn format_observed(signal: Signal, v: i128) -> String {
    if signal.counts() {
        format_decimal_si(v)
    } else {
        format_binary_si(v)
    }
}

// ---------------------------------------------------------------------------------------
// Per-pod usage
// ---------------------------------------------------------------------------------------

/// One container's usage, from CRI stats (memory, writable layer) and the kubelet's own
/// log directory (logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerUsage {
    pub name: String,
    pub memory_working_set_bytes: Option<u64>,
    pub rootfs_bytes: Option<u64>,
    pub rootfs_inodes: Option<u64>,
    pub logs_bytes: Option<u64>,
    pub logs_inodes: Option<u64>,
}

/// One pod's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodStats {
    pub containers: Vec<ContainerUsage>,
    /// Local ephemeral volumes (emptyDir on disk) by volume name.
    pub volumes: BTreeMap<String, DirUsage>,
    pub processes: u64,
}

/// Which of a pod's disk usages a disk signal counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FsMeasure {
    /// One filesystem for everything.
    All,
    /// nodefs with a dedicated imagefs.
    LogsAndVolumes,
    /// imagefs with a dedicated imagefs.
    Root,
}

impl PodStats {
    /// The pod's memory working set (sum over its containers).
    pub fn memory_bytes(&self) -> u64 {
        self.containers
            .iter()
            .filter_map(|c| c.memory_working_set_bytes)
            .sum()
    }

    /// Everything the pod writes to local disk: writable layers, logs, local volumes.
    pub fn ephemeral_storage_bytes(&self) -> u64 {
        self.disk(FsMeasure::All).0
    }

    fn disk(&self, m: FsMeasure) -> (u64, u64) {
        let (mut bytes, mut inodes) = (0u64, 0u64);
        for c in &self.containers {
            if m != FsMeasure::LogsAndVolumes {
                bytes += c.rootfs_bytes.unwrap_or(0);
                inodes += c.rootfs_inodes.unwrap_or(0);
            }
            if m != FsMeasure::Root {
                bytes += c.logs_bytes.unwrap_or(0);
                inodes += c.logs_inodes.unwrap_or(0);
            }
        }
        if m != FsMeasure::Root {
            for v in self.volumes.values() {
                bytes += v.bytes;
                inodes += v.inodes;
            }
        }
        (bytes, inodes)
    }
}

/// A pod the kubelet runs, with its usage; `stats` is None when the runtime reported
/// nothing for it (upstream ranks such pods first).
#[derive(Debug, Clone)]
pub struct PodUsage<'a> {
    pub pod: &'a Pod,
    pub stats: Option<PodStats>,
}

/// Groups CRI container stats by pod uid (label `io.kubernetes.pod.uid`); containers are
/// named by `io.kubernetes.container.name` (else their metadata), and stats of several
/// attempts of one container are added up.
pub fn aggregate_container_stats(stats: &[ContainerStats]) -> BTreeMap<String, PodStats> {
    let mut out: BTreeMap<String, PodStats> = BTreeMap::new();
    for s in stats {
        let Some(a) = &s.attributes else { continue };
        let Some(uid) = a.labels.get(crate::labels::POD_UID) else {
            continue;
        };
        let name = a
            .labels
            .get(crate::labels::CONTAINER_NAME)
            .cloned()
            .or_else(|| a.metadata.as_ref().map(|m| m.name.clone()))
            .unwrap_or_default();
        let memory = s
            .memory
            .as_ref()
            .and_then(|m| m.working_set_bytes.as_ref())
            .map(|v| v.value);
        let layer = s.writable_layer.as_ref();
        let rootfs = layer.and_then(|l| l.used_bytes.as_ref()).map(|v| v.value);
        let inodes = layer.and_then(|l| l.inodes_used.as_ref()).map(|v| v.value);
        let pod = out.entry(uid.clone()).or_default();
        let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        match pod.containers.iter_mut().find(|c| c.name == name) {
            Some(c) => {
                c.memory_working_set_bytes = add(c.memory_working_set_bytes, memory);
                c.rootfs_bytes = add(c.rootfs_bytes, rootfs);
                c.rootfs_inodes = add(c.rootfs_inodes, inodes);
            }
            None => pod.containers.push(ContainerUsage {
                name,
                memory_working_set_bytes: memory,
                rootfs_bytes: rootfs,
                rootfs_inodes: inodes,
                ..Default::default()
            }),
        }
    }
    out
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// Pairs each pod with its stats (by uid).
pub fn pod_usages<'a>(pods: &'a [Pod], stats: &BTreeMap<String, PodStats>) -> Vec<PodUsage<'a>> {
    pods.iter()
        .map(|pod| PodUsage {
            pod,
            stats: stats.get(uid(pod)).cloned(),
        })
        .collect()
}

/// The emptyDir volumes on disk (not `medium: Memory`) of a pod, by name.
fn disk_empty_dirs(pod: &Pod) -> Vec<&str> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter(|v| {
            v.empty_dir
                .as_ref()
                .is_some_and(|e| e.medium.as_deref().unwrap_or("").is_empty())
        })
        .map(|v| v.name.as_str())
        .collect()
}

/// Adds log and local volume usage to a pod's stats: logs under
/// `<logs_root>/<ns>_<name>_<uid>/<container>`, emptyDirs under
/// `<pods_dir>/<uid>/volumes/kubernetes.io~empty-dir/<name>`.
pub fn add_disk_usage(
    stats: &mut PodStats,
    pod: &Pod,
    fs: &dyn Filesystems,
    logs_root: Option<&Path>,
    pods_dir: Option<&Path>,
) {
    if let Some(root) = logs_root {
        let dir = crate::podspec::pod_log_dir(root, pod);
        for c in &mut stats.containers {
            let u = fs.usage(&dir.join(&c.name));
            c.logs_bytes = u.map(|u| u.bytes);
            c.logs_inodes = u.map(|u| u.inodes);
        }
    }
    if let Some(pods) = pods_dir {
        let base = pods
            .join(uid(pod))
            .join("volumes")
            .join(crate::volumes::EMPTY_DIR_PLUGIN);
        for name in disk_empty_dirs(pod) {
            if let Some(u) = fs.usage(&base.join(name)) {
                stats.volumes.insert(name.to_string(), u);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pod facts: requests, priority, criticality
// ---------------------------------------------------------------------------------------

fn quantity_of(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    resource: &str,
) -> Option<i128> {
    map.and_then(|m| m.get(resource))
        .and_then(|q| parse_quantity(&q.0, false))
}

fn container_request(c: &Container, resource: &str) -> i128 {
    quantity_of(
        c.resources.as_ref().and_then(|r| r.requests.as_ref()),
        resource,
    )
    .unwrap_or(0)
}

fn container_limit(c: &Container, resource: &str) -> Option<i128> {
    quantity_of(
        c.resources.as_ref().and_then(|r| r.limits.as_ref()),
        resource,
    )
}

/// The pod's request of `resource` in bytes: app containers plus sidecars, or the largest
/// init container step if bigger, plus overhead when non-zero (upstream PodRequests).
pub fn pod_request(pod: &Pod, resource: &str) -> i128 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let mut sum: i128 = spec
        .containers
        .iter()
        .map(|c| container_request(c, resource))
        .sum();
    let (mut sidecars, mut init_max) = (0i128, 0i128);
    for c in spec.init_containers.iter().flatten() {
        let r = container_request(c, resource);
        if c.restart_policy.as_deref() == Some("Always") {
            sum += r;
            sidecars += r;
            init_max = init_max.max(sidecars);
        } else {
            init_max = init_max.max(r + sidecars);
        }
    }
    let mut total = sum.max(init_max);
    if total != 0 {
        total += quantity_of(spec.overhead.as_ref(), resource).unwrap_or(0);
    }
    total
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// Static pods, mirror pods and system-critical priorities (upstream IsCriticalPod).
pub fn is_critical_pod(pod: &Pod) -> bool {
    let ann = pod.metadata.annotations.as_ref();
    let is_static = ann
        .and_then(|a| a.get(CONFIG_SOURCE))
        .is_some_and(|s| s != "api");
    let is_mirror = ann.is_some_and(|a| a.contains_key(CONFIG_MIRROR));
    is_static || is_mirror || priority(pod) >= SYSTEM_CRITICAL_PRIORITY
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

// ---------------------------------------------------------------------------------------
// Ranking
// ---------------------------------------------------------------------------------------

/// Pods without stats first; otherwise `f` decides.
fn with_stats<T>(a: Option<T>, b: Option<T>, f: impl FnOnce(T, T) -> Ordering) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => f(x, y),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// `true` sorts first.
fn true_first(a: bool, b: bool) -> Ordering {
    b.cmp(&a)
}

fn by_priority(a: &PodUsage, b: &PodUsage) -> Ordering {
    priority(a.pod).cmp(&priority(b.pod))
}

fn cmp_memory(a: &PodUsage, b: &PodUsage) -> Ordering {
    let mem = |u: &PodUsage| {
        let r = pod_request(u.pod, "memory");
        u.stats.as_ref().map(|s| (s.memory_bytes() as i128, r))
    };
    with_stats(mem(a), mem(b), |(ua, ra), (ub, rb)| {
        true_first(ua > ra, ub > rb)
    })
    .then_with(|| by_priority(a, b))
    .then_with(|| {
        with_stats(mem(a), mem(b), |(ua, ra), (ub, rb)| {
            (ub - rb).cmp(&(ua - ra))
        })
    })
}

fn cmp_pids(a: &PodUsage, b: &PodUsage) -> Ordering {
    let procs = |u: &PodUsage| u.stats.as_ref().map(|s| s.processes);
    by_priority(a, b).then_with(|| with_stats(procs(a), procs(b), |x, y| y.cmp(&x)))
}

fn cmp_disk(a: &PodUsage, b: &PodUsage, m: FsMeasure, inodes: bool) -> Ordering {
    let used = |u: &PodUsage| {
        u.stats.as_ref().map(|s| {
            let (bytes, count) = s.disk(m);
            let v = (if inodes { count } else { bytes }) as i128;
            let storage = pod_request(u.pod, "ephemeral-storage");
            // Inodes have no request; the usage above request is measured against the
            // ephemeral-storage request for both, as upstream does.
            let exceed_request = if inodes { 0 } else { storage };
            (v > exceed_request, v - storage)
        })
    };
    with_stats(used(a), used(b), |(ea, _), (eb, _)| true_first(ea, eb))
        .then_with(|| by_priority(a, b))
        .then_with(|| with_stats(used(a), used(b), |(_, oa), (_, ob)| ob.cmp(&oa)))
}

/// The order in which to evict for `signal`, as indices into `pods`. Memory: pods over
/// their requests first, then lower priority, then larger usage above requests. Disk:
/// the same with disk usage (what counts depends on whether the image filesystem is
/// dedicated). PIDs: lower priority, then more processes. Pods without stats come
/// first. Critical pods and pods already finished are left out: they are never evicted.
pub fn rank_for_eviction(
    signal: Signal,
    pods: &[PodUsage],
    dedicated_image_fs: bool,
) -> Vec<usize> {
    let measure = match (dedicated_image_fs, signal) {
        (false, _) => FsMeasure::All,
        (true, Signal::ImageFsAvailable | Signal::ImageFsInodesFree) => FsMeasure::Root,
        (true, _) => FsMeasure::LogsAndVolumes,
    };
    let mut idx: Vec<usize> = (0..pods.len())
        .filter(|&i| !is_critical_pod(pods[i].pod) && !is_terminal(pods[i].pod))
        .collect();
    idx.sort_by(|&i, &j| {
        let (a, b) = (&pods[i], &pods[j]);
        match signal {
            Signal::MemoryAvailable => cmp_memory(a, b),
            Signal::PidAvailable => cmp_pids(a, b),
            Signal::NodeFsInodesFree | Signal::ImageFsInodesFree => cmp_disk(a, b, measure, true),
            Signal::NodeFsAvailable | Signal::ImageFsAvailable => cmp_disk(a, b, measure, false),
        }
    });
    idx
}

// ---------------------------------------------------------------------------------------
// Messages and the status patch
// ---------------------------------------------------------------------------------------

/// Upstream evictionMessage: `The node was low on resource: memory. Threshold quantity:
/// 100Mi, available: 50Mi. Container app was using 200Mi, request is 0, has larger
/// consumption of memory. ` (a container sentence for each container over its request),
/// with the event annotations.
pub fn eviction_message(
    signal: Signal,
    met: &[Signal],
    thresholds: &BTreeMap<String, Threshold>,
    obs: &Observations,
    usage: &PodUsage,
) -> (String, BTreeMap<String, String>) {
    let resource = signal.resource();
    let mut message = format!("The node was low on resource: {resource}. ");
    let info = met
        .iter()
        .filter(|s| s.resource() == resource)
        .find_map(|s| Some((*s, thresholds.get(s.as_str())?, obs.get(*s)?)));
    if let Some((s, t, o)) = info {
        let q = threshold_quantity(t, o.capacity);
        message += &format!(
            "Threshold quantity: {}, available: {}. ",
            format_threshold(s, t, q),
            format_observed(s, o.available)
        );
    }
    let mut annotations = BTreeMap::new();
    let Some(stats) = usage.stats.as_ref() else {
        return (message, annotations);
    };
    let (mut names, mut usages) = (Vec::new(), Vec::new());
    let spec_containers = usage.pod.spec.iter().flat_map(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
    });
    for c in spec_containers {
        let Some(cs) = stats.containers.iter().find(|x| x.name == c.name) else {
            continue;
        };
        let used = match resource {
            "memory" => cs.memory_working_set_bytes,
            "ephemeral-storage" => match (cs.rootfs_bytes, cs.logs_bytes) {
                (Some(r), Some(l)) => Some(r + l),
                _ => None,
            },
            _ => None,
        };
        let Some(used) = used else { continue };
        let request = container_request(c, resource);
        if used as i128 > request {
            let request_str = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .map(|q| canonical_quantity(&q.0))
                .unwrap_or_else(|| "0".into());
            let used_str = format_binary_si(used as i128);
            message += &format!(
                "Container {} was using {used_str}, request is {request_str}, has larger consumption of {resource}. ",
                c.name
            );
            names.push(c.name.clone());
            usages.push(used_str);
        }
    }
    annotations.insert(OFFENDING_CONTAINERS_KEY.to_string(), names.join(","));
    annotations.insert(OFFENDING_CONTAINERS_USAGE_KEY.to_string(), usages.join(","));
    annotations.insert(STARVED_RESOURCE_KEY.to_string(), resource.to_string());
    (message, annotations)
}

/// Upstream localStorageEviction for one pod: an emptyDir over its sizeLimit, the pod over
/// the sum of its containers' ephemeral-storage limits, or a container over its own.
/// Returns the eviction message.
pub fn local_storage_violation(usage: &PodUsage, dedicated_image_fs: bool) -> Option<String> {
    let stats = usage.stats.as_ref()?;
    let spec = usage.pod.spec.as_ref()?;
    for v in spec.volumes.iter().flatten() {
        let Some(limit) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()) else {
            continue;
        };
        let limit_bytes = parse_quantity(&limit.0, false).unwrap_or(0);
        if let Some(used) = stats.volumes.get(&v.name) {
            if limit_bytes > 0 && used.bytes as i128 > limit_bytes {
                return Some(format!(
                    "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
                    v.name,
                    canonical_quantity(&limit.0)
                ));
            }
        }
    }
    // The pod's limit: containers (and sidecars) summed, or the largest init container.
    let limits: Vec<(bool, Option<i128>)> = spec
        .containers
        .iter()
        .map(|c| (true, container_limit(c, "ephemeral-storage")))
        .chain(spec.init_containers.iter().flatten().map(|c| {
            (
                c.restart_policy.as_deref() == Some("Always"),
                container_limit(c, "ephemeral-storage"),
            )
        }))
        .collect();
    if limits.iter().any(|(_, l)| l.is_some()) {
        let sum: i128 = limits
            .iter()
            .filter(|(s, _)| *s)
            .filter_map(|(_, l)| *l)
            .sum();
        let init = limits
            .iter()
            .filter(|(s, _)| !*s)
            .filter_map(|(_, l)| *l)
            .max()
            .unwrap_or(0);
        let limit = sum.max(init);
        if stats.ephemeral_storage_bytes() as i128 > limit {
            return Some(format!(
                "Pod ephemeral local storage usage exceeds the total limit of containers {}. ",
                format_binary_si(limit)
            ));
        }
    }
    for c in &spec.containers {
        let Some(limit) = container_limit(c, "ephemeral-storage").filter(|l| *l != 0) else {
            continue;
        };
        let Some(cs) = stats.containers.iter().find(|x| x.name == c.name) else {
            continue;
        };
        let mut used = cs.logs_bytes.unwrap_or(0);
        if !dedicated_image_fs {
            used += cs.rootfs_bytes.unwrap_or(0);
        }
        if used as i128 > limit {
            let shown = c
                .resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .and_then(|l| l.get("ephemeral-storage"))
                .map(|q| canonical_quantity(&q.0))
                .unwrap_or_default();
            return Some(format!(
                "Container {} exceeded its local ephemeral storage limit {shown:?}. ",
                c.name
            ));
        }
    }
    None
}

fn has_local_storage_limits(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| container_limit(c, "ephemeral-storage").is_some())
        || spec
            .volumes
            .iter()
            .flatten()
            .any(|v| v.empty_dir.as_ref().is_some_and(|e| e.size_limit.is_some()))
}

fn set_condition(conds: &mut Vec<PodCondition>, mut c: PodCondition, now: &Time) {
    match conds.iter_mut().find(|x| x.type_ == c.type_) {
        Some(old) => {
            c.last_transition_time = if old.status == c.status {
                old.last_transition_time.clone().or(Some(now.clone()))
            } else {
                Some(now.clone())
            };
            c.last_probe_time = old.last_probe_time.clone();
            *old = c;
        }
        None => {
            c.last_transition_time = Some(now.clone());
            conds.push(c);
        }
    }
}

/// The merge patch for an evicted pod's status: phase Failed, reason Evicted, the
/// message, and the full conditions list (a merge patch replaces lists): Ready and
/// ContainersReady False (reason PodCompleted), plus DisruptionTarget True (reason
/// TerminationByKubelet) when `disruption_target` (threshold evictions, as 1.33 does).
pub fn eviction_status_patch(
    pod: &Pod,
    message: &str,
    disruption_target: bool,
    now: Timestamp,
) -> serde_json::Value {
    let now = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let mut conds: Vec<PodCondition> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if disruption_target {
        set_condition(
            &mut conds,
            PodCondition {
                type_: DISRUPTION_TARGET.into(),
                status: "True".into(),
                reason: Some(TERMINATION_BY_KUBELET.into()),
                message: Some(message.into()),
                ..Default::default()
            },
            &now,
        );
    }
    for t in ["ContainersReady", "Ready"] {
        if conds.iter().any(|c| c.type_ == t) {
            set_condition(
                &mut conds,
                PodCondition {
                    type_: t.into(),
                    status: "False".into(),
                    reason: Some("PodCompleted".into()),
                    ..Default::default()
                },
                &now,
            );
        }
    }
    serde_json::json!({
        "status": {
            "phase": "Failed",
            "reason": REASON,
            "message": message,
            "conditions": conds,
        }
    })
}

/// One pod to evict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvictionDecision {
    pub pod_uid: String,
    pub namespace: String,
    pub name: String,
    /// The threshold that drove it; None for a local storage limit eviction.
    pub signal: Option<Signal>,
    pub message: String,
    /// Annotations for the Evicted event.
    pub annotations: BTreeMap<String, String>,
    /// The grace period to kill the pod with (1 s for hard thresholds).
    pub grace_period_seconds: i64,
}

impl EvictionDecision {
    /// The pod's status patch (see [`eviction_status_patch`]).
    pub fn status_patch(&self, pod: &Pod, now: Timestamp) -> serde_json::Value {
        eviction_status_patch(pod, &self.message, self.signal.is_some(), now)
    }
}

// ---------------------------------------------------------------------------------------
// The manager
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct EvictionConfig {
    /// `--eviction-hard`, by signal name.
    pub thresholds: BTreeMap<String, Threshold>,
    /// `evictionPressureTransitionPeriod`.
    pub pressure_transition_period: Duration,
    /// Evict pods over their local storage limits (upstream LocalStorageCapacityIsolation).
    pub local_storage_capacity_isolation: bool,
}

impl EvictionConfig {
    pub fn new(thresholds: BTreeMap<String, Threshold>) -> EvictionConfig {
        EvictionConfig {
            thresholds,
            pressure_transition_period: DEFAULT_PRESSURE_TRANSITION_PERIOD,
            local_storage_capacity_isolation: true,
        }
    }
}

/// The pressure conditions to report on the Node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// Why a pod is refused under pressure (reason `Evicted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmitRejection {
    pub reason: String,
    pub message: String,
}

/// What the kubelet needs for one pass.
pub struct PassEnv<'a> {
    pub runtime: &'a dyn Runtime,
    pub fs: &'a dyn Filesystems,
    pub facts: &'a MachineFacts,
    /// The kubelet's root directory (nodefs), statted for bytes and inodes.
    pub nodefs_path: &'a Path,
    /// Statted when the runtime reports no image filesystem.
    pub image_fs_fallback: &'a Path,
    /// Where pod logs live (`<root>/<ns>_<name>_<uid>/<container>/`), for disk usage.
    pub pod_logs_root: Option<&'a Path>,
    /// Where pod directories live (`<dir>/<uid>/volumes/...`), for emptyDir usage.
    pub pods_dir: Option<&'a Path>,
    /// Node-level reclaim under disk pressure; None skips it.
    pub image_gc: Option<&'a mut ImageGc>,
}

/// What a pass found and decided.
#[derive(Debug, Clone, Default)]
pub struct PassOutcome {
    pub observations: Observations,
    pub thresholds_met: Vec<Signal>,
    /// Warnings to record on the Node (EvictionThresholdMet, image GC trouble).
    pub node_events: Vec<NodeEvent>,
    /// Images removed to relieve disk pressure.
    pub reclaimed_images: Vec<String>,
    /// Node-level reclaim brought every signal back over its threshold.
    pub reclaimed_enough: bool,
    /// Pods to evict: at most one for a threshold; local storage violations may add more.
    pub evictions: Vec<EvictionDecision>,
}

/// Eviction state kept between passes.
pub struct EvictionManager {
    config: EvictionConfig,
    /// When each condition's threshold was last seen met.
    last_observed: BTreeMap<PressureCondition, Timestamp>,
    conditions: BTreeSet<PressureCondition>,
    /// Pods this manager evicted (uid -> when), never picked twice.
    evicted: BTreeMap<String, Timestamp>,
    /// The latest eviction, to wait for its cleanup.
    last_eviction: Option<(String, Timestamp)>,
}

fn elapsed(t: Timestamp, now: Timestamp) -> i128 {
    now.as_nanosecond() - t.as_nanosecond()
}

impl EvictionManager {
    pub fn new(config: EvictionConfig) -> EvictionManager {
        EvictionManager {
            config,
            last_observed: BTreeMap::new(),
            conditions: BTreeSet::new(),
            evicted: BTreeMap::new(),
            last_eviction: None,
        }
    }

    pub fn config(&self) -> &EvictionConfig {
        &self.config
    }

    /// The conditions as of the last pass (held for the transition period).
    pub fn pressure(&self) -> Pressure {
        Pressure {
            memory: self.conditions.contains(&PressureCondition::MemoryPressure),
            disk: self.conditions.contains(&PressureCondition::DiskPressure),
            pid: self.conditions.contains(&PressureCondition::PidPressure),
        }
    }

    /// Upstream's eviction admit handler (see [`admit_under`]).
    pub fn admit(&self, pod: &Pod) -> Result<(), AdmitRejection> {
        admit_under(self.pressure(), pod)
    }

    /// Evaluates the thresholds and updates the pressure conditions; returns the signals
    /// met, in the order they are acted on.
    pub fn update_pressure(&mut self, now: Timestamp, obs: &Observations) -> Vec<Signal> {
        let met = thresholds_met(obs, &self.config.thresholds);
        for s in &met {
            self.last_observed.insert(s.condition(), now);
        }
        let period = self.config.pressure_transition_period.as_nanos() as i128;
        self.conditions = self
            .last_observed
            .iter()
            .filter(|(_, t)| elapsed(**t, now) < period)
            .map(|(c, _)| *c)
            .collect();
        met
    }

    /// One pass over given observations and usage (pure; no node-level reclaim): updates
    /// the conditions and picks at most one pod to evict for the first signal met.
    pub fn synchronize(
        &mut self,
        now: Timestamp,
        obs: &Observations,
        pods: &[PodUsage],
    ) -> Option<EvictionDecision> {
        let met = self.update_pressure(now, obs);
        self.select(now, &met, obs, pods)
    }

    fn waiting_for_cleanup(&mut self, now: Timestamp, pods: &[PodUsage]) -> bool {
        let Some((uid_, at)) = &self.last_eviction else {
            return false;
        };
        // Running containers report memory; exited ones (still listed by containerd) do not.
        let running = pods.iter().any(|p| {
            uid(p.pod) == uid_
                && p.stats.as_ref().is_some_and(|s| {
                    s.containers
                        .iter()
                        .any(|c| c.memory_working_set_bytes.is_some())
                })
        });
        if running && elapsed(*at, now) < POD_CLEANUP_TIMEOUT.as_nanos() as i128 {
            return true;
        }
        self.last_eviction = None;
        false
    }

    fn remember(&mut self, uid_: &str, now: Timestamp) {
        // Forget evictions long past (the pod is Failed or gone by then).
        self.evicted
            .retain(|_, t| elapsed(*t, now) < 3600 * 1_000_000_000);
        self.evicted.insert(uid_.to_string(), now);
        self.last_eviction = Some((uid_.to_string(), now));
    }

    fn select(
        &mut self,
        now: Timestamp,
        met: &[Signal],
        obs: &Observations,
        pods: &[PodUsage],
    ) -> Option<EvictionDecision> {
        let signal = *met.first()?;
        if self.waiting_for_cleanup(now, pods) {
            return None;
        }
        for i in rank_for_eviction(signal, pods, obs.dedicated_image_fs) {
            let usage = &pods[i];
            let pod_uid = uid(usage.pod).to_string();
            if self.evicted.contains_key(&pod_uid) {
                continue;
            }
            let (message, annotations) =
                eviction_message(signal, met, &self.config.thresholds, obs, usage);
            self.remember(&pod_uid, now);
            return Some(EvictionDecision {
                pod_uid,
                namespace: usage.pod.metadata.namespace.clone().unwrap_or_default(),
                name: usage.pod.metadata.name.clone().unwrap_or_default(),
                signal: Some(signal),
                message,
                annotations,
                grace_period_seconds: IMMEDIATE_EVICTION_GRACE_PERIOD_SECONDS,
            });
        }
        None
    }

    async fn observe_env(&self, env: &PassEnv<'_>) -> Observations {
        let nodefs = env.fs.stat(env.nodefs_path);
        let imagefs = image_fs_stat(env.runtime, env.fs, env.image_fs_fallback).await;
        observe(env.facts, nodefs.as_ref(), imagefs.as_ref())
    }

    /// The kubelet's periodic pass (every [`MONITORING_INTERVAL`]) over its active pods
    /// (those not Succeeded/Failed): reads container stats and filesystems, updates the
    /// conditions, evicts pods over local storage limits, and for the first threshold met
    /// reclaims unused images (disk signals) and, if that was not enough, picks one pod.
    pub async fn run_pass(
        &mut self,
        mut env: PassEnv<'_>,
        pods: &[Pod],
        now: Timestamp,
    ) -> Result<PassOutcome, EvictionError> {
        let stats = env
            .runtime
            .list_container_stats()
            .await
            .map_err(EvictionError::ListContainerStats)?;
        let mut per_pod = aggregate_container_stats(&stats);
        let mut out = PassOutcome {
            observations: self.observe_env(&env).await,
            ..Default::default()
        };
        out.thresholds_met = self.update_pressure(now, &out.observations);

        // Disk usage (a du of logs and emptyDirs) is read only for the pods that need it.
        let mut measured: BTreeSet<String> = BTreeSet::new();
        if self.config.local_storage_capacity_isolation {
            for pod in pods.iter().filter(|p| has_local_storage_limits(p)) {
                if let Some(s) = per_pod.get_mut(uid(pod)) {
                    add_disk_usage(s, pod, env.fs, env.pod_logs_root, env.pods_dir);
                    measured.insert(uid(pod).to_string());
                }
            }
            let usages = pod_usages(pods, &per_pod);
            for u in &usages {
                if is_critical_pod(u.pod) || is_terminal(u.pod) {
                    continue;
                }
                let pod_uid = uid(u.pod).to_string();
                if self.evicted.contains_key(&pod_uid) {
                    continue;
                }
                if let Some(message) =
                    local_storage_violation(u, out.observations.dedicated_image_fs)
                {
                    self.remember(&pod_uid, now);
                    out.evictions.push(EvictionDecision {
                        pod_uid,
                        namespace: u.pod.metadata.namespace.clone().unwrap_or_default(),
                        name: u.pod.metadata.name.clone().unwrap_or_default(),
                        signal: None,
                        message,
                        annotations: BTreeMap::new(),
                        grace_period_seconds: IMMEDIATE_EVICTION_GRACE_PERIOD_SECONDS,
                    });
                }
            }
            if !out.evictions.is_empty() {
                return Ok(out);
            }
        }

        let Some(&signal) = out.thresholds_met.first() else {
            return Ok(out);
        };
        out.node_events.push(NodeEvent {
            reason: EVICTION_THRESHOLD_MET.into(),
            message: format!("Attempting to reclaim {}", signal.resource()),
        });
        if signal.is_disk() {
            if let Some(gc) = env.image_gc.as_deref_mut() {
                match gc.delete_unused(env.runtime, now).await {
                    Ok(r) => {
                        out.reclaimed_images = r.removed;
                        out.node_events.extend(r.events);
                    }
                    Err(e) => tracing::warn!(error = %e, "eviction: deleting unused images"),
                }
                let after = self.observe_env(&env).await;
                if thresholds_met(&after, &self.config.thresholds).is_empty() {
                    out.reclaimed_enough = true;
                    out.observations = after;
                    return Ok(out);
                }
            }
            for pod in pods.iter().filter(|p| !measured.contains(uid(p))) {
                if let Some(s) = per_pod.get_mut(uid(pod)) {
                    add_disk_usage(s, pod, env.fs, env.pod_logs_root, env.pods_dir);
                }
            }
        }
        let usages = pod_usages(pods, &per_pod);
        let met = out.thresholds_met.clone();
        if let Some(d) = self.select(now, &met, &out.observations, &usages) {
            out.evictions.push(d);
        }
        Ok(out)
    }
}

/// Upstream's eviction admit handler, given the current pressure: under any pressure only
/// critical pods are admitted, except that under memory pressure alone pods that are not
/// BestEffort, or that tolerate the memory-pressure taint, are admitted too. The rejection
/// has reason `Evicted` and a message like `The node had condition: [DiskPressure]. `.
pub fn admit_under(pressure: Pressure, pod: &Pod) -> Result<(), AdmitRejection> {
    let mut names: Vec<&str> = Vec::new();
    for (on, c) in [
        (pressure.memory, PressureCondition::MemoryPressure),
        (pressure.disk, PressureCondition::DiskPressure),
        (pressure.pid, PressureCondition::PidPressure),
    ] {
        if on {
            names.push(c.as_str());
        }
    }
    if names.is_empty() || is_critical_pod(pod) {
        return Ok(());
    }
    let only_memory = names == [PressureCondition::MemoryPressure.as_str()];
    if only_memory
        && (crate::podspec::pod_qos(pod) != crate::podspec::QosClass::BestEffort
            || tolerates_memory_pressure(pod))
    {
        return Ok(());
    }
    Err(AdmitRejection {
        reason: REASON.into(),
        message: format!("The node had condition: [{}]. ", names.join(" ")),
    })
}

/// Upstream TolerationsTolerateTaint for the memory-pressure NoSchedule taint.
fn tolerates_memory_pressure(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.tolerations.iter().flatten())
        .any(|t| {
            let effect = t.effect.as_deref().unwrap_or("");
            let key = t.key.as_deref().unwrap_or("");
            if !effect.is_empty() && effect != "NoSchedule" {
                return false;
            }
            if !key.is_empty() && key != TAINT_MEMORY_PRESSURE {
                return false;
            }
            match t.operator.as_deref().unwrap_or("") {
                "" | "Equal" => t.value.as_deref().unwrap_or("").is_empty(),
                "Exists" => true,
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::FakeRuntime;
    use crate::imagegc::{FakeFilesystems, ImageGcPolicy};
    use crate::nodestatus::{default_eviction_hard, parse_eviction_hard};
    use k8s_cri::v1::{
        ContainerConfig, ContainerMetadata, ImageSpec, PodSandboxConfig, PodSandboxMetadata,
    };
    use serde_json::json;
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Arc;

    const MI: u64 = 1 << 20;
    const GI: u64 = 1 << 30;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn pod(name: &str, containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": {"containers": containers},
            "status": {"phase": "Running"}
        }))
        .unwrap()
    }

    fn simple(name: &str, mem_request: Option<&str>, prio: Option<i32>) -> Pod {
        let resources = match mem_request {
            Some(r) => json!({"requests": {"memory": r}}),
            None => json!({}),
        };
        let mut p = pod(name, json!([{"name": "app", "resources": resources}]));
        p.spec.as_mut().unwrap().priority = prio;
        p
    }

    fn mem_stats(bytes: u64) -> Option<PodStats> {
        Some(PodStats {
            containers: vec![ContainerUsage {
                name: "app".into(),
                memory_working_set_bytes: Some(bytes),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    fn facts(mem_avail: u64) -> MachineFacts {
        MachineFacts {
            memory_bytes: 4 * GI,
            memory_available_bytes: mem_avail,
            fs_capacity_bytes: 100 * GI,
            fs_available_bytes: 50 * GI,
            ..Default::default()
        }
    }

    #[test]
    fn quantities_print_like_resource_quantity() {
        assert_eq!(format_binary_si(100 * MI as i128), "100Mi");
        assert_eq!(format_binary_si(50 * MI as i128 + 1), "52428801");
        assert_eq!(format_binary_si(1536), "1536");
        assert_eq!(format_binary_si(2048), "2Ki");
        assert_eq!(format_binary_si(1000), "1k");
        assert_eq!(format_binary_si(0), "0");
        assert_eq!(format_binary_si(GI as i128), "1Gi");
        assert_eq!(format_decimal_si(327680), "327680");
        assert_eq!(format_decimal_si(1_000_000), "1M");
        assert_eq!(canonical_quantity("1024Mi"), "1Gi");
        assert_eq!(canonical_quantity("64Mi"), "64Mi");
        assert_eq!(canonical_quantity("100M"), "100M");
        assert_eq!(canonical_quantity("0.5Gi"), "512Mi");
    }

    #[test]
    fn thresholds_with_quantities_and_percentages() {
        let t = parse_eviction_hard(
            "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,pid.available<100",
        )
        .unwrap();
        validate_thresholds(&t).unwrap();
        // float32 percentages as upstream: 10 % of 100Gi is 10737418400, not ...240.
        assert_eq!(
            threshold_quantity(&Threshold::Percent(10.0), 100 * GI as i128),
            10737418400
        );
        assert_eq!(
            threshold_quantity(&Threshold::Percent(5.0), 1_000_000),
            50000
        );

        let nodefs = FsStat {
            capacity_bytes: 100 * GI,
            available_bytes: 50 * GI,
            inodes: 1_000_000,
            inodes_free: 500_000,
            device: 1,
        };
        let mut m = facts(3 * GI);
        m.pid_max = 1000;
        m.pids_running = 100;
        let o = observe(&m, Some(&nodefs), None);
        assert!(thresholds_met(&o, &t).is_empty());
        assert_eq!(o.get(Signal::PidAvailable).unwrap().available, 900);
        assert!(o.get(Signal::ImageFsAvailable).is_none());

        // Memory exactly at the threshold is not below it; one byte less is.
        let o = observe(&facts(100 * MI), Some(&nodefs), None);
        assert!(thresholds_met(&o, &t).is_empty());
        let o = observe(&facts(100 * MI - 1), Some(&nodefs), None);
        assert_eq!(thresholds_met(&o, &t), vec![Signal::MemoryAvailable]);

        // Disk: 9 % free is below 10 %; inodes 4 % below 5 %; image fs 20 % is fine.
        let low = FsStat {
            available_bytes: 9 * GI,
            inodes_free: 40_000,
            ..nodefs
        };
        let image = FsStat {
            capacity_bytes: 10 * GI,
            available_bytes: 2 * GI,
            device: 2,
            ..Default::default()
        };
        let mut m = facts(50 * MI);
        m.pid_max = 1000;
        m.pids_running = 950;
        let o = observe(&m, Some(&low), Some(&image));
        assert!(o.dedicated_image_fs);
        assert_eq!(
            thresholds_met(&o, &t),
            vec![
                Signal::MemoryAvailable,
                Signal::NodeFsAvailable,
                Signal::NodeFsInodesFree,
                Signal::PidAvailable
            ]
        );

        // Without a statvfs the facts give nodefs bytes (no inodes).
        let o = observe(&facts(GI), None, None);
        assert_eq!(
            o.get(Signal::NodeFsAvailable),
            Some(Observation {
                available: 50 * GI as i128,
                capacity: 100 * GI as i128
            })
        );
        assert!(o.get(Signal::NodeFsInodesFree).is_none());

        // 0 % and 100 % are ignored, unknown signals rejected by validation.
        let t = BTreeMap::from([("memory.available".to_string(), Threshold::Percent(100.0))]);
        assert!(thresholds_met(&observe(&facts(1), None, None), &t).is_empty());
        let bad = BTreeMap::from([("memory.free".to_string(), Threshold::Quantity(1))]);
        assert_eq!(
            validate_thresholds(&bad).unwrap_err().to_string(),
            "unsupported eviction signal memory.free"
        );
        let bad = BTreeMap::from([("nodefs.available".to_string(), Threshold::Percent(150.0))]);
        assert!(validate_thresholds(&bad).is_err());
    }

    #[test]
    fn memory_ranking_follows_upstream_order() {
        let pods = vec![
            simple("besteffort", None, None),               // 0: over 0 by 100Mi
            simple("burstable-under", Some("200Mi"), None), // 1: under its request
            simple("burstable-over", Some("50Mi"), None),   // 2: over by 250Mi
            simple("nostats", Some("1Gi"), None),           // 3: no stats
            simple("high-prio-over", None, Some(1000)),     // 4: over by 1Gi, higher priority
            simple("system", None, Some(SYSTEM_CRITICAL_PRIORITY)), // 5: critical
        ];
        let mut stat = pod("static", json!([{"name": "app"}]));
        stat.metadata.annotations = Some(BTreeMap::from([
            (CONFIG_SOURCE.to_string(), "file".to_string()),
            (CONFIG_MIRROR.to_string(), "abc".to_string()),
        ]));
        let mut done = simple("finished", None, None);
        done.status.as_mut().unwrap().phase = Some("Failed".into());
        let all: Vec<Pod> = pods.into_iter().chain([stat, done]).collect();
        let usage = vec![
            PodUsage {
                pod: &all[0],
                stats: mem_stats(100 * MI),
            },
            PodUsage {
                pod: &all[1],
                stats: mem_stats(150 * MI),
            },
            PodUsage {
                pod: &all[2],
                stats: mem_stats(300 * MI),
            },
            PodUsage {
                pod: &all[3],
                stats: None,
            },
            PodUsage {
                pod: &all[4],
                stats: mem_stats(GI),
            },
            PodUsage {
                pod: &all[5],
                stats: mem_stats(3 * GI),
            },
            PodUsage {
                pod: &all[6],
                stats: mem_stats(3 * GI),
            },
            PodUsage {
                pod: &all[7],
                stats: mem_stats(3 * GI),
            },
        ];
        assert_eq!(
            rank_for_eviction(Signal::MemoryAvailable, &usage, false),
            vec![3, 2, 0, 4, 1]
        );
        // Among pods under their requests, lower priority goes first, then larger usage.
        let a = simple("a", Some("1Gi"), Some(10));
        let b = simple("b", Some("1Gi"), Some(5));
        let c = simple("c", Some("1Gi"), Some(5));
        let usage = vec![
            PodUsage {
                pod: &a,
                stats: mem_stats(10 * MI),
            },
            PodUsage {
                pod: &b,
                stats: mem_stats(10 * MI),
            },
            PodUsage {
                pod: &c,
                stats: mem_stats(20 * MI),
            },
        ];
        assert_eq!(
            rank_for_eviction(Signal::MemoryAvailable, &usage, false),
            vec![2, 1, 0]
        );
    }

    #[test]
    fn disk_and_pid_ranking() {
        let mut a = pod(
            "a",
            json!([{"name": "app", "resources": {"requests": {"ephemeral-storage": "1Gi"}}}]),
        );
        a.spec.as_mut().unwrap().priority = Some(0);
        let b = pod("b", json!([{"name": "app"}]));
        let c = pod("c", json!([{"name": "app"}]));
        let disk = |root: u64, logs: u64, vol: u64, procs: u64| {
            Some(PodStats {
                containers: vec![ContainerUsage {
                    name: "app".into(),
                    rootfs_bytes: Some(root),
                    rootfs_inodes: Some(root / MI),
                    logs_bytes: Some(logs),
                    logs_inodes: Some(1),
                    ..Default::default()
                }],
                volumes: BTreeMap::from([(
                    "v".to_string(),
                    DirUsage {
                        bytes: vol,
                        inodes: 1,
                    },
                )]),
                processes: procs,
            })
        };
        let usage = vec![
            // a: 1.5Gi total, over its 1Gi request by 512Mi.
            PodUsage {
                pod: &a,
                stats: disk(GI, 256 * MI, 256 * MI, 5),
            },
            // b: 100Mi in its writable layer, 900Mi in an emptyDir.
            PodUsage {
                pod: &b,
                stats: disk(100 * MI, 0, 900 * MI, 50),
            },
            // c: 600Mi writable layer.
            PodUsage {
                pod: &c,
                stats: disk(600 * MI, 0, 0, 10),
            },
        ];
        // One filesystem: everything counts; all exceed (b, c request 0): b 1000Mi, c
        // 600Mi, a 512Mi above request.
        assert_eq!(
            rank_for_eviction(Signal::NodeFsAvailable, &usage, false),
            vec![1, 2, 0]
        );
        // Dedicated image fs: imagefs counts writable layers only; a is under its request.
        assert_eq!(
            rank_for_eviction(Signal::ImageFsAvailable, &usage, true),
            vec![2, 1, 0]
        );
        // nodefs counts logs and volumes: b 900Mi is over its request; then a (512Mi, 512Mi
        // under its request) goes after c (0, at its request).
        assert_eq!(
            rank_for_eviction(Signal::NodeFsAvailable, &usage, true),
            vec![1, 2, 0]
        );
        // PIDs: same priority, more processes first.
        assert_eq!(
            rank_for_eviction(Signal::PidAvailable, &usage, false),
            vec![1, 2, 0]
        );
    }

    #[test]
    fn message_matches_upstream_wording() {
        let thresholds = default_eviction_hard();
        let p = pod(
            "web",
            json!([
                {"name": "app"},
                {"name": "sidecar", "resources": {"requests": {"memory": "64Mi"}}},
                {"name": "greedy", "resources": {"requests": {"memory": "1024Mi"}}}
            ]),
        );
        let stats = PodStats {
            containers: vec![
                ContainerUsage {
                    name: "greedy".into(),
                    memory_working_set_bytes: Some(2 * GI),
                    ..Default::default()
                },
                ContainerUsage {
                    name: "app".into(),
                    memory_working_set_bytes: Some(200 * MI),
                    ..Default::default()
                },
                ContainerUsage {
                    name: "sidecar".into(),
                    memory_working_set_bytes: Some(10 * MI),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let u = PodUsage {
            pod: &p,
            stats: Some(stats),
        };
        let obs = observe(&facts(50 * MI), None, None);
        let met = thresholds_met(&obs, &thresholds);
        let (msg, ann) = eviction_message(Signal::MemoryAvailable, &met, &thresholds, &obs, &u);
        assert_eq!(
            msg,
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. \
             Container app was using 200Mi, request is 0, has larger consumption of memory. \
             Container greedy was using 2Gi, request is 1Gi, has larger consumption of memory. "
        );
        assert_eq!(ann[OFFENDING_CONTAINERS_KEY], "app,greedy");
        assert_eq!(ann[OFFENDING_CONTAINERS_USAGE_KEY], "200Mi,2Gi");
        assert_eq!(ann[STARVED_RESOURCE_KEY], "memory");

        // Disk: percentage thresholds print as binary quantities; containers need both
        // writable layer and log figures.
        let mut m = facts(GI);
        m.fs_available_bytes = 5 * GI;
        let obs = observe(&m, None, None);
        let met = thresholds_met(&obs, &thresholds);
        assert_eq!(met, vec![Signal::NodeFsAvailable]);
        let u = PodUsage {
            pod: &p,
            stats: Some(PodStats {
                containers: vec![ContainerUsage {
                    name: "app".into(),
                    rootfs_bytes: Some(3 * GI),
                    logs_bytes: Some(GI),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        };
        let (msg, _) = eviction_message(Signal::NodeFsAvailable, &met, &thresholds, &obs, &u);
        assert_eq!(
            msg,
            "The node was low on resource: ephemeral-storage. Threshold quantity: 10737418400, available: 5Gi. \
             Container app was using 4Gi, request is 0, has larger consumption of ephemeral-storage. "
        );
        // No stats: only the node part, no annotations.
        let u = PodUsage {
            pod: &p,
            stats: None,
        };
        let (msg, ann) = eviction_message(Signal::NodeFsAvailable, &met, &thresholds, &obs, &u);
        assert_eq!(
            msg,
            "The node was low on resource: ephemeral-storage. Threshold quantity: 10737418400, available: 5Gi. "
        );
        assert!(ann.is_empty());
    }

    #[test]
    fn status_patch_marks_failed_evicted_with_disruption_target() {
        let mut p = simple("web", None, None);
        p.status = Some(
            serde_json::from_value(json!({
                "phase": "Running",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"},
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}
                ]
            }))
            .unwrap(),
        );
        let now = ts(1_700_000_000);
        let patch = eviction_status_patch(&p, "The node was low on resource: memory. ", true, now);
        let s = &patch["status"];
        assert_eq!(s["phase"], "Failed");
        assert_eq!(s["reason"], "Evicted");
        assert_eq!(s["message"], "The node was low on resource: memory. ");
        let conds = s["conditions"].as_array().unwrap();
        let find = |t: &str| conds.iter().find(|c| c["type"] == t).unwrap().clone();
        assert_eq!(find("PodScheduled")["status"], "True");
        assert_eq!(
            find("PodScheduled")["lastTransitionTime"],
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(find("Ready")["status"], "False");
        assert_eq!(find("Ready")["reason"], "PodCompleted");
        assert_eq!(find("Ready")["lastTransitionTime"], "2023-11-14T22:13:20Z");
        assert_eq!(find("ContainersReady")["status"], "False");
        let dt = find("DisruptionTarget");
        assert_eq!(dt["status"], "True");
        assert_eq!(dt["reason"], "TerminationByKubelet");
        assert_eq!(dt["message"], "The node was low on resource: memory. ");
        assert_eq!(dt["lastTransitionTime"], "2023-11-14T22:13:20Z");
        assert_eq!(conds.len(), 4);
        // Local storage evictions carry no DisruptionTarget.
        let patch = eviction_status_patch(&p, "x", false, now);
        assert!(patch["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["type"] != "DisruptionTarget"));
    }

    fn memory_config(period: Duration) -> EvictionConfig {
        EvictionConfig {
            pressure_transition_period: period,
            ..EvictionConfig::new(default_eviction_hard())
        }
    }

    #[test]
    fn synchronize_evicts_one_pod_and_holds_pressure() {
        let mut m = EvictionManager::new(memory_config(Duration::from_secs(300)));
        let pods = [simple("a", None, None), simple("b", None, None)];
        let usage = |a: u64, b: u64| {
            vec![
                PodUsage {
                    pod: &pods[0],
                    stats: mem_stats(a),
                },
                PodUsage {
                    pod: &pods[1],
                    stats: mem_stats(b),
                },
            ]
        };
        let ok = observe(&facts(GI), None, None);
        let low = observe(&facts(50 * MI), None, None);
        assert_eq!(m.synchronize(ts(0), &ok, &usage(MI, MI)), None);
        assert_eq!(m.pressure(), Pressure::default());

        let d = m
            .synchronize(ts(10), &low, &usage(100 * MI, 500 * MI))
            .unwrap();
        assert_eq!(d.pod_uid, "uid-b");
        assert_eq!((d.namespace.as_str(), d.name.as_str()), ("default", "b"));
        assert_eq!(d.signal, Some(Signal::MemoryAvailable));
        assert_eq!(d.grace_period_seconds, 1);
        assert!(d.message.starts_with("The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. Container app was using 500Mi"));
        assert!(m.pressure().memory && !m.pressure().disk);

        // Next pass: b still running -> wait for its cleanup (at most one per pass).
        assert_eq!(
            m.synchronize(ts(20), &low, &usage(100 * MI, 500 * MI)),
            None
        );
        // b's containers are gone: a is next; b is never picked again.
        let gone = vec![
            PodUsage {
                pod: &pods[0],
                stats: mem_stats(100 * MI),
            },
            PodUsage {
                pod: &pods[1],
                // Exited containers stay listed, without memory figures.
                stats: Some(PodStats {
                    containers: vec![ContainerUsage {
                        name: "app".into(),
                        rootfs_bytes: Some(4096),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
        ];
        assert_eq!(m.synchronize(ts(30), &low, &gone).unwrap().pod_uid, "uid-a");
        // After the cleanup timeout the wait ends even if the pod lingers.
        assert_eq!(
            m.synchronize(ts(61), &low, &gone),
            None,
            "nobody left to evict"
        );

        // Pressure is reported until the transition period has passed since last seen.
        assert!(m.synchronize(ts(100), &ok, &gone).is_none());
        assert!(m.pressure().memory);
        m.synchronize(ts(61 + 299), &ok, &gone);
        assert!(m.pressure().memory);
        m.synchronize(ts(61 + 300), &ok, &gone);
        assert!(!m.pressure().memory);
    }

    #[test]
    fn critical_pods_are_never_evicted() {
        let mut m = EvictionManager::new(memory_config(Duration::from_secs(300)));
        let p = simple("sys", None, Some(SYSTEM_CRITICAL_PRIORITY));
        let low = observe(&facts(MI), None, None);
        let usage = vec![PodUsage {
            pod: &p,
            stats: mem_stats(3 * GI),
        }];
        assert_eq!(m.synchronize(ts(0), &low, &usage), None);
        assert!(m.pressure().memory);
    }

    #[test]
    fn admission_under_pressure() {
        let mut m = EvictionManager::new(memory_config(Duration::from_secs(300)));
        let best_effort = simple("be", None, None);
        let burstable = simple("bu", Some("10Mi"), None);
        let mut tolerant = simple("tol", None, None);
        tolerant.spec.as_mut().unwrap().tolerations = Some(vec![serde_json::from_value(json!({
            "key": TAINT_MEMORY_PRESSURE, "operator": "Exists", "effect": "NoSchedule"
        }))
        .unwrap()]);
        assert!(m.admit(&best_effort).is_ok());
        m.synchronize(ts(0), &observe(&facts(MI), None, None), &[]);
        assert_eq!(
            m.admit(&best_effort).unwrap_err(),
            AdmitRejection {
                reason: "Evicted".into(),
                message: "The node had condition: [MemoryPressure]. ".into()
            }
        );
        assert!(m.admit(&burstable).is_ok());
        assert!(m.admit(&tolerant).is_ok());
        // Disk pressure too: everyone but critical pods is refused.
        let mut f = facts(MI);
        f.fs_available_bytes = GI;
        m.synchronize(ts(10), &observe(&f, None, None), &[]);
        assert_eq!(
            m.admit(&burstable).unwrap_err().message,
            "The node had condition: [MemoryPressure DiskPressure]. "
        );
        assert!(m
            .admit(&simple("c", None, Some(SYSTEM_CRITICAL_PRIORITY)))
            .is_ok());
    }

    #[test]
    fn local_storage_limits() {
        let mut p = pod(
            "ls",
            json!([{"name": "app", "resources": {"limits": {"ephemeral-storage": "1Gi"}}}]),
        );
        p.spec.as_mut().unwrap().volumes = Some(vec![serde_json::from_value(json!({
            "name": "scratch", "emptyDir": {"sizeLimit": "100Mi"}
        }))
        .unwrap()]);
        let stats = |vol: u64, root: u64| PodStats {
            containers: vec![ContainerUsage {
                name: "app".into(),
                rootfs_bytes: Some(root),
                logs_bytes: Some(0),
                ..Default::default()
            }],
            volumes: BTreeMap::from([(
                "scratch".to_string(),
                DirUsage {
                    bytes: vol,
                    inodes: 1,
                },
            )]),
            processes: 0,
        };
        let u = |s| PodUsage {
            pod: &p,
            stats: Some(s),
        };
        assert_eq!(
            local_storage_violation(&u(stats(10 * MI, 10 * MI)), false),
            None
        );
        assert_eq!(
            local_storage_violation(&u(stats(200 * MI, 0)), false).unwrap(),
            "Usage of EmptyDir volume \"scratch\" exceeds the limit \"100Mi\". "
        );
        assert_eq!(
            local_storage_violation(&u(stats(50 * MI, 2 * GI)), false).unwrap(),
            "Pod ephemeral local storage usage exceeds the total limit of containers 1Gi. "
        );
        // With a dedicated image fs the writable layer does not count for the container,
        // but still does for the pod total.
        assert!(local_storage_violation(&u(stats(0, 2 * GI)), true).is_some());
    }

    fn sandbox_config(name: &str) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            ..Default::default()
        }
    }

    async fn start(rt: &FakeRuntime, pod: &str, container: &str, working_set: u64) {
        let sb = rt.run_pod_sandbox(sandbox_config(pod)).await.unwrap();
        let labels = HashMap::from([
            (crate::labels::POD_UID.to_string(), format!("uid-{pod}")),
            (
                crate::labels::CONTAINER_NAME.to_string(),
                container.to_string(),
            ),
        ]);
        let cfg = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: container.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: "localhost/busybox:1.35".into(),
                ..Default::default()
            }),
            labels,
            ..Default::default()
        };
        let id = rt
            .create_container(&sb, cfg, sandbox_config(pod))
            .await
            .unwrap();
        rt.start_container(&id).await.unwrap();
        rt.set_stats(&id, 0, working_set);
    }

    #[tokio::test]
    async fn stats_aggregate_by_pod_uid() {
        let rt = FakeRuntime::new();
        rt.add_image("localhost/busybox:1.35");
        start(&rt, "a", "app", 100 * MI).await;
        start(&rt, "b", "app", 10 * MI).await;
        let stats = rt.list_container_stats().await.unwrap();
        let agg = aggregate_container_stats(&stats);
        assert_eq!(agg.len(), 2);
        assert_eq!(agg["uid-a"].memory_bytes(), 100 * MI);
        assert_eq!(agg["uid-a"].containers[0].name, "app");
        assert_eq!(agg["uid-a"].containers[0].rootfs_bytes, Some(4096));
        assert_eq!(agg["uid-b"].memory_bytes(), 10 * MI);
    }

    #[tokio::test]
    async fn run_pass_evicts_the_top_memory_consumer() {
        let rt = FakeRuntime::new();
        rt.add_image("localhost/busybox:1.35");
        start(&rt, "a", "app", 100 * MI).await;
        start(&rt, "b", "app", 900 * MI).await;
        let pods = vec![
            simple("a", None, None),
            simple("b", None, None),
            simple("c", Some("1Mi"), None),
        ];
        let fs = FakeFilesystems::new();
        let mut m = EvictionManager::new(EvictionConfig::new(default_eviction_hard()));
        let env = |f: &'static MachineFacts| PassEnv {
            runtime: &rt,
            fs: &fs,
            facts: f,
            nodefs_path: Path::new("/var/lib/kubelet"),
            image_fs_fallback: Path::new("/var/lib/containerd"),
            pod_logs_root: None,
            pods_dir: None,
            image_gc: None,
        };
        let plenty: &'static MachineFacts = Box::leak(Box::new(facts(GI)));
        let out = m.run_pass(env(plenty), &pods, ts(0)).await.unwrap();
        assert!(out.evictions.is_empty() && out.node_events.is_empty());

        let low: &'static MachineFacts = Box::leak(Box::new(facts(50 * MI)));
        let out = m.run_pass(env(low), &pods, ts(10)).await.unwrap();
        assert_eq!(out.thresholds_met, vec![Signal::MemoryAvailable]);
        assert_eq!(
            out.node_events,
            vec![NodeEvent {
                reason: "EvictionThresholdMet".into(),
                message: "Attempting to reclaim memory".into()
            }]
        );
        // c has no stats (nothing running): upstream evicts such pods first.
        assert_eq!(out.evictions.len(), 1);
        assert_eq!(out.evictions[0].pod_uid, "uid-c");
        assert_eq!(
            out.evictions[0].message,
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "
        );
        // c had nothing running: no cleanup to wait for; b (900Mi) is next.
        let out = m.run_pass(env(low), &pods[..2], ts(20)).await.unwrap();
        assert_eq!(out.evictions[0].pod_uid, "uid-b");
        assert!(out.evictions[0].message.ends_with(
            "Container app was using 900Mi, request is 0, has larger consumption of memory. "
        ));

        rt.fail_next("list_container_stats", "down");
        assert!(matches!(
            m.run_pass(env(low), &pods, ts(30)).await,
            Err(EvictionError::ListContainerStats(_))
        ));
    }

    #[tokio::test]
    async fn disk_pressure_reclaims_images_before_evicting() {
        let rt = FakeRuntime::new();
        rt.add_image("localhost/busybox:1.35");
        rt.add_image("localhost/pause:3.6");
        let unused = rt.add_image("docker.io/library/unused:1");
        start(&rt, "a", "app", MI).await;
        let pods = vec![simple("a", None, None)];
        let fs = Arc::new(FakeFilesystems::new());
        let full = FsStat {
            capacity_bytes: 100 * GI,
            available_bytes: 5 * GI,
            inodes: 1000,
            inodes_free: 900,
            device: 1,
        };
        let freed = FsStat {
            available_bytes: 20 * GI,
            ..full
        };
        // The kubelet root and the image fs share a device; image GC frees enough.
        fs.set_stat("/var/lib/kubelet", full);
        fs.set_stat(
            "/fake/snapshots",
            FsStat {
                available_bytes: 50 * GI,
                ..full
            },
        );
        let mut gc = ImageGc::new(
            ImageGcPolicy::default(),
            "localhost/pause:3.6",
            fs.clone(),
            PathBuf::from("/var/lib/containerd"),
        )
        .unwrap();
        gc.detect(&rt, ts(0)).await.unwrap();
        let facts = facts(GI);
        let mut m = EvictionManager::new(EvictionConfig::new(default_eviction_hard()));

        // Reclaiming images does not free enough: a is evicted, by disk usage.
        let out = m
            .run_pass(
                PassEnv {
                    runtime: &rt,
                    fs: fs.as_ref(),
                    facts: &facts,
                    nodefs_path: Path::new("/var/lib/kubelet"),
                    image_fs_fallback: Path::new("/var/lib/containerd"),
                    pod_logs_root: Some(Path::new("/logs")),
                    pods_dir: Some(Path::new("/pods")),
                    image_gc: Some(&mut gc),
                },
                &pods,
                ts(600),
            )
            .await
            .unwrap();
        assert_eq!(out.thresholds_met, vec![Signal::NodeFsAvailable]);
        assert_eq!(out.reclaimed_images, vec![unused]);
        assert!(!out.reclaimed_enough);
        assert_eq!(out.evictions.len(), 1);
        assert!(m.pressure().disk);
        assert!(fs
            .calls()
            .contains(&"usage /logs/default_a_uid-a/app".to_string()));

        // Next time image GC is enough: no eviction.
        rt.add_image("docker.io/library/another:1");
        gc.detect(&rt, ts(700)).await.unwrap();
        let pods = vec![simple("b", None, None)];
        fs.set_stat("/var/lib/kubelet", full);
        let out = {
            let env = PassEnv {
                runtime: &rt,
                fs: fs.as_ref(),
                facts: &facts,
                nodefs_path: Path::new("/var/lib/kubelet"),
                image_fs_fallback: Path::new("/var/lib/containerd"),
                pod_logs_root: None,
                pods_dir: None,
                image_gc: Some(&mut gc),
            };
            // The second stat of the root (after reclaim) shows the space freed.
            fs.queue_stat("/var/lib/kubelet", freed);
            m.run_pass(env, &pods, ts(1_000)).await.unwrap()
        };
        assert_eq!(out.reclaimed_images.len(), 1);
        assert!(out.reclaimed_enough);
        assert!(out.evictions.is_empty());
        assert!(
            m.pressure().disk,
            "pressure is held for the transition period"
        );
    }
}
