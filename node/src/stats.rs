//! Node and pod resource usage: the kubelet's `/stats/summary` (the cpu and memory subset of
//! upstream's `k8s.io/kubelet/pkg/apis/stats/v1alpha1` Summary) that the API server's
//! `metrics.k8s.io` serves `kubectl top` from.
//!
//! * Node cpu is the cumulative cpu time of the root cpuacct cgroup (`cpuacct.usage`, what
//!   cadvisor reports for `/`), or, where that is not readable, the busy time of the first
//!   `cpu` line of `/proc/stat` (user + nice + system + irq + softirq + steal).
//! * Node memory working set is cadvisor's for the root cgroup (v1):
//!   `memory.usage_in_bytes - total_inactive_file` (from `memory.stat`); where the memory
//!   cgroup is not readable it is approximated from `/proc/meminfo` as
//!   `MemTotal - MemAvailable`.
//! * Containers come from CRI `ListContainerStats` (cumulative cpu and working set, as
//!   upstream's CRI stats provider), named by their `io.kubernetes.*` labels (or their
//!   sandbox's metadata), with start times from `ListContainers` / `ListPodSandbox`.
//! * `usageNanoCores` is the rate between the last two samples (cumulative cpu delta over
//!   the time delta); a container seen once falls back to the runtime's own rate, if any.
//!
//! [`StatsCollector`] samples every [`DEFAULT_INTERVAL`] and keeps the last two samples;
//! [`routes`] serves `GET /stats/summary` from them.

use crate::cri::Runtime;
use crate::labels;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::StatusCode;
use jiff::Timestamp;
use k8s_cri::v1::{Container, ContainerStats as CriContainerStats, PodSandbox};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the collector samples (upstream's cadvisor housekeeping and metrics-server's
/// resolution are both in this range).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// The delay before the second sample after start, so that rates exist soon.
pub const DEFAULT_FIRST_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("reading {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {}: {message}", .path.display())]
    Parse { path: PathBuf, message: String },
    #[error("listing container stats: {0}")]
    ListContainerStats(crate::cri::CriError),
}

// ---------------------------------------------------------------- summary types

/// Upstream's `Summary` (subset): the node and its pods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub node: NodeStats,
    #[serde(default)]
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    #[serde(with = "rfc3339_opt", default)]
    pub start_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    #[serde(with = "rfc3339")]
    pub time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    #[serde(with = "rfc3339")]
    pub time: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_faults: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major_page_faults: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    #[serde(with = "rfc3339_opt", default)]
    pub start_time: Option<Timestamp>,
    #[serde(default)]
    pub containers: Vec<ContainerStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    #[serde(with = "rfc3339_opt", default)]
    pub start_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// `metav1.Time` text: RFC 3339 in UTC, whole seconds (Go truncates).
pub fn format_time(t: &Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

mod rfc3339 {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

mod rfc3339_opt {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_time(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => s.parse().map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

// ---------------------------------------------------------------- pure parsing

/// What the first `cpu` line and `btime` of `/proc/stat` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// user + nice + system + irq + softirq + steal, in clock ticks (guest time is already
    /// part of user and nice).
    pub busy_ticks: u64,
    /// Boot time, seconds since the epoch.
    pub boot_time: Option<i64>,
}

pub fn parse_proc_stat(text: &str) -> Result<ProcStat, String> {
    let mut busy = None;
    let mut boot_time = None;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("cpu") => {
                let v: Vec<u64> = f
                    .map(|x| x.parse::<u64>().map_err(|_| format!("bad cpu field {x:?}")))
                    .collect::<Result<_, _>>()?;
                if v.len() < 4 {
                    return Err(format!("cpu line has {} fields, want at least 4", v.len()));
                }
                let at = |i: usize| v.get(i).copied().unwrap_or(0);
                // user nice system idle iowait irq softirq steal guest guest_nice
                busy = Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7));
            }
            Some("btime") => {
                boot_time = f.next().and_then(|x| x.parse::<i64>().ok());
            }
            _ => {}
        }
    }
    let busy_ticks = busy.ok_or_else(|| "no cpu line".to_string())?;
    Ok(ProcStat {
        busy_ticks,
        boot_time,
    })
}

/// Clock ticks to nanoseconds.
pub fn ticks_to_nanos(ticks: u64, ticks_per_second: u64) -> u64 {
    if ticks_per_second == 0 {
        return 0;
    }
    let ns = u128::from(ticks) * 1_000_000_000 / u128::from(ticks_per_second);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// One number in a cgroup file (`cpuacct.usage`, `memory.usage_in_bytes`).
pub fn parse_single_u64(text: &str) -> Result<u64, String> {
    let t = text.trim();
    t.parse::<u64>().map_err(|_| format!("bad value {t:?}"))
}

/// `key value` lines (`memory.stat`).
pub fn parse_flat_keyed(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let k = f.next()?;
            let v = f.next()?.parse::<u64>().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

/// The `/proc/meminfo` fields used, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemInfo {
    pub total: u64,
    pub free: u64,
    pub available: Option<u64>,
}

pub fn parse_meminfo(text: &str) -> Result<MemInfo, String> {
    let mut total = None;
    let mut free = None;
    let mut available = None;
    for line in text.lines() {
        let Some((k, rest)) = line.split_once(':') else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let Some(n) = f.next().and_then(|x| x.parse::<u64>().ok()) else {
            continue;
        };
        let bytes = match f.next() {
            Some("kB") => n.saturating_mul(1024),
            _ => n,
        };
        match k.trim() {
            "MemTotal" => total = Some(bytes),
            "MemFree" => free = Some(bytes),
            "MemAvailable" => available = Some(bytes),
            _ => {}
        }
    }
    Ok(MemInfo {
        total: total.ok_or_else(|| "no MemTotal".to_string())?,
        free: free.ok_or_else(|| "no MemFree".to_string())?,
        available,
    })
}

/// Node memory usage, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeMemory {
    pub usage_bytes: u64,
    pub working_set_bytes: u64,
    pub rss_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
}

/// cadvisor's root-cgroup numbers (v1): working set = usage - total_inactive_file;
/// available = machine memory - working set.
pub fn memory_from_cgroup_v1(
    usage_in_bytes: u64,
    memory_stat: &HashMap<String, u64>,
    machine_memory: Option<u64>,
) -> NodeMemory {
    let inactive_file = memory_stat
        .get("total_inactive_file")
        .or_else(|| memory_stat.get("inactive_file"))
        .copied()
        .unwrap_or(0);
    let working_set_bytes = usage_in_bytes.saturating_sub(inactive_file);
    NodeMemory {
        usage_bytes: usage_in_bytes,
        working_set_bytes,
        rss_bytes: memory_stat
            .get("total_rss")
            .or_else(|| memory_stat.get("rss"))
            .copied(),
        available_bytes: machine_memory.map(|m| m.saturating_sub(working_set_bytes)),
    }
}

/// The `/proc/meminfo` approximation: usage = MemTotal - MemFree, working set = MemTotal -
/// MemAvailable (usage when the kernel has no MemAvailable).
pub fn memory_from_meminfo(m: &MemInfo) -> NodeMemory {
    let usage_bytes = m.total.saturating_sub(m.free);
    let working_set_bytes = m
        .available
        .map(|a| m.total.saturating_sub(a))
        .unwrap_or(usage_bytes);
    NodeMemory {
        usage_bytes,
        working_set_bytes,
        rss_bytes: None,
        available_bytes: Some(m.total.saturating_sub(working_set_bytes)),
    }
}

/// A cumulative cpu reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// When it was taken, nanoseconds since the epoch.
    pub time_ns: i64,
    pub usage_core_nano_seconds: u64,
}

/// Cores used between two readings, in nanocores (`usageNanoCores`); none when time did not
/// advance or the counter went back (a restart).
pub fn usage_nano_cores(prev: &CpuSample, last: &CpuSample) -> Option<u64> {
    if last.time_ns <= prev.time_ns || last.usage_core_nano_seconds < prev.usage_core_nano_seconds {
        return None;
    }
    let dt = u128::try_from(i128::from(last.time_ns) - i128::from(prev.time_ns)).ok()?;
    let dcpu = u128::from(last.usage_core_nano_seconds - prev.usage_core_nano_seconds);
    u64::try_from(dcpu * 1_000_000_000 / dt).ok()
}

fn timestamp_ns(t: Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
}

fn from_ns(ns: i64) -> Option<Timestamp> {
    if ns <= 0 {
        return None;
    }
    Timestamp::from_nanosecond(i128::from(ns)).ok()
}

// ---------------------------------------------------------------- samples

/// Where the node's numbers are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    pub proc_stat: PathBuf,
    pub meminfo: PathBuf,
    /// The root cpuacct cgroup's `cpuacct.usage` (cgroup v1), preferred over `/proc/stat`.
    pub cpuacct_usage: Option<PathBuf>,
    /// The root memory cgroup directory (cgroup v1: `memory.usage_in_bytes`, `memory.stat`),
    /// preferred over `/proc/meminfo`.
    pub memory_cgroup: Option<PathBuf>,
}

impl HostPaths {
    /// The host's own files (`/proc`, cgroup v1 under `/sys/fs/cgroup`).
    pub fn host() -> HostPaths {
        HostPaths {
            proc_stat: "/proc/stat".into(),
            meminfo: "/proc/meminfo".into(),
            cpuacct_usage: Some("/sys/fs/cgroup/cpuacct/cpuacct.usage".into()),
            memory_cgroup: Some("/sys/fs/cgroup/memory".into()),
        }
    }
}

/// The node's readings at one time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeSample {
    pub time_ns: i64,
    pub cpu: Option<CpuSample>,
    pub memory: Option<NodeMemory>,
    pub boot_time: Option<Timestamp>,
}

/// A container's readings at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSample {
    pub id: String,
    pub pod: PodReference,
    pub name: String,
    /// Creation time, nanoseconds since the epoch (upstream's container `startTime`).
    pub created_ns: i64,
    pub cpu: Option<CpuSample>,
    /// The runtime's own rate, used when there is no previous sample.
    pub runtime_nano_cores: Option<u64>,
    pub memory: Option<MemoryStats>,
}

/// Everything read at one time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    pub node: NodeSample,
    pub containers: Vec<ContainerSample>,
    /// Sandbox creation times by pod uid (upstream's pod `startTime`).
    pub pod_starts: HashMap<String, i64>,
}

fn read(path: &Path) -> Result<String, StatsError> {
    std::fs::read_to_string(path).map_err(|source| StatsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_err(path: &Path, message: String) -> StatsError {
    StatsError::Parse {
        path: path.to_path_buf(),
        message,
    }
}

/// Reads the node's cpu and memory; what cannot be read is left out and reported.
pub fn read_node(
    paths: &HostPaths,
    ticks_per_second: u64,
    now: Timestamp,
) -> (NodeSample, Vec<StatsError>) {
    let time_ns = timestamp_ns(now);
    let mut errors = Vec::new();
    let mut sample = NodeSample {
        time_ns,
        ..Default::default()
    };
    let proc_stat = read(&paths.proc_stat)
        .and_then(|t| parse_proc_stat(&t).map_err(|m| parse_err(&paths.proc_stat, m)));
    let proc_stat = match proc_stat {
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    sample.boot_time = proc_stat
        .and_then(|p| p.boot_time)
        .and_then(|s| Timestamp::from_second(s).ok());
    let cpuacct = paths.cpuacct_usage.as_deref().and_then(|p| {
        read(p)
            .and_then(|t| parse_single_u64(&t).map_err(|m| parse_err(p, m)))
            .ok()
    });
    let cumulative =
        cpuacct.or_else(|| proc_stat.map(|p| ticks_to_nanos(p.busy_ticks, ticks_per_second)));
    sample.cpu = cumulative.map(|c| CpuSample {
        time_ns,
        usage_core_nano_seconds: c,
    });

    let meminfo = match read(&paths.meminfo)
        .and_then(|t| parse_meminfo(&t).map_err(|m| parse_err(&paths.meminfo, m)))
    {
        Ok(m) => Some(m),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let cgroup = paths.memory_cgroup.as_deref().and_then(|dir| {
        let usage_path = dir.join("memory.usage_in_bytes");
        let usage = read(&usage_path)
            .and_then(|t| parse_single_u64(&t).map_err(|m| parse_err(&usage_path, m)))
            .ok()?;
        let stat = read(&dir.join("memory.stat")).ok()?;
        Some(memory_from_cgroup_v1(
            usage,
            &parse_flat_keyed(&stat),
            meminfo.map(|m| m.total),
        ))
    });
    sample.memory = cgroup.or_else(|| meminfo.as_ref().map(memory_from_meminfo));
    (sample, errors)
}

fn label<'a>(labels: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    labels
        .get(key)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

/// Builds the container part of a sample from CRI answers. Containers that belong to no
/// Kubernetes pod (no pod labels and no known sandbox) are left out.
pub fn container_samples(
    stats: &[CriContainerStats],
    containers: &[Container],
    sandboxes: &[PodSandbox],
) -> Vec<ContainerSample> {
    let by_id: HashMap<&str, &Container> = containers.iter().map(|c| (c.id.as_str(), c)).collect();
    let sandbox_by_id: HashMap<&str, &PodSandbox> =
        sandboxes.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut out = Vec::new();
    for s in stats {
        let Some(attrs) = &s.attributes else {
            continue;
        };
        let container = by_id.get(attrs.id.as_str()).copied();
        let sandbox_meta = container
            .and_then(|c| sandbox_by_id.get(c.pod_sandbox_id.as_str()))
            .and_then(|sb| sb.metadata.as_ref());
        let l = &attrs.labels;
        let pod = match (
            label(l, labels::POD_NAME),
            label(l, labels::POD_NAMESPACE),
            label(l, labels::POD_UID),
        ) {
            (Some(name), Some(namespace), Some(uid)) => PodReference {
                name: name.to_string(),
                namespace: namespace.to_string(),
                uid: uid.to_string(),
            },
            _ => match sandbox_meta {
                Some(m) => PodReference {
                    name: m.name.clone(),
                    namespace: m.namespace.clone(),
                    uid: m.uid.clone(),
                },
                None => continue,
            },
        };
        let name = label(l, labels::CONTAINER_NAME)
            .map(str::to_string)
            .or_else(|| attrs.metadata.as_ref().map(|m| m.name.clone()))
            .unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        let cpu = s.cpu.as_ref().and_then(|c| {
            c.usage_core_nano_seconds.as_ref().map(|u| CpuSample {
                time_ns: c.timestamp,
                usage_core_nano_seconds: u.value,
            })
        });
        let runtime_nano_cores = s
            .cpu
            .as_ref()
            .and_then(|c| c.usage_nano_cores.as_ref())
            .map(|v| v.value);
        let memory = s.memory.as_ref().and_then(|m| {
            let time = from_ns(m.timestamp)?;
            let v = |x: &Option<k8s_cri::v1::UInt64Value>| x.as_ref().map(|x| x.value);
            Some(MemoryStats {
                time,
                available_bytes: v(&m.available_bytes),
                usage_bytes: v(&m.usage_bytes),
                working_set_bytes: v(&m.working_set_bytes),
                rss_bytes: v(&m.rss_bytes),
                page_faults: v(&m.page_faults),
                major_page_faults: v(&m.major_page_faults),
            })
        });
        out.push(ContainerSample {
            id: attrs.id.clone(),
            pod,
            name,
            created_ns: container.map(|c| c.created_at).unwrap_or(0),
            cpu,
            runtime_nano_cores,
            memory,
        });
    }
    out
}

/// Sandbox creation times by pod uid (the newest sandbox of a pod wins).
pub fn pod_starts(sandboxes: &[PodSandbox]) -> HashMap<String, i64> {
    let mut out: HashMap<String, i64> = HashMap::new();
    for sb in sandboxes {
        let Some(m) = &sb.metadata else { continue };
        let e = out.entry(m.uid.clone()).or_insert(sb.created_at);
        if sb.created_at > *e {
            *e = sb.created_at;
        }
    }
    out
}

fn container_cpu(prev: Option<&Sample>, c: &ContainerSample) -> Option<CpuStats> {
    let last = c.cpu?;
    let rate = prev
        .and_then(|p| p.containers.iter().find(|x| x.id == c.id))
        .and_then(|p| p.cpu)
        .and_then(|p| usage_nano_cores(&p, &last))
        .or(c.runtime_nano_cores);
    Some(CpuStats {
        time: from_ns(last.time_ns)?,
        usage_nano_cores: rate,
        usage_core_nano_seconds: Some(last.usage_core_nano_seconds),
    })
}

fn sum_opt(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    values.fold(None, |acc, v| match (acc, v) {
        (a, None) => a,
        (None, Some(v)) => Some(v),
        (Some(a), Some(v)) => Some(a.saturating_add(v)),
    })
}

fn pod_cpu(containers: &[ContainerStats]) -> Option<CpuStats> {
    let cpus: Vec<&CpuStats> = containers.iter().filter_map(|c| c.cpu.as_ref()).collect();
    let time = cpus.iter().map(|c| c.time).max()?;
    let usage_nano_cores = if cpus.iter().all(|c| c.usage_nano_cores.is_some()) {
        sum_opt(cpus.iter().map(|c| c.usage_nano_cores))
    } else {
        None
    };
    Some(CpuStats {
        time,
        usage_nano_cores,
        usage_core_nano_seconds: sum_opt(cpus.iter().map(|c| c.usage_core_nano_seconds)),
    })
}

fn pod_memory(containers: &[ContainerStats]) -> Option<MemoryStats> {
    let mems: Vec<&MemoryStats> = containers
        .iter()
        .filter_map(|c| c.memory.as_ref())
        .collect();
    let time = mems.iter().map(|m| m.time).max()?;
    Some(MemoryStats {
        time,
        available_bytes: None,
        usage_bytes: sum_opt(mems.iter().map(|m| m.usage_bytes)),
        working_set_bytes: sum_opt(mems.iter().map(|m| m.working_set_bytes)),
        rss_bytes: sum_opt(mems.iter().map(|m| m.rss_bytes)),
        page_faults: sum_opt(mems.iter().map(|m| m.page_faults)),
        major_page_faults: sum_opt(mems.iter().map(|m| m.major_page_faults)),
    })
}

/// The summary of the last sample, with rates against the previous one.
pub fn build_summary(node_name: &str, prev: Option<&Sample>, last: &Sample) -> Summary {
    let node_time = from_ns(last.node.time_ns);
    let node_cpu = match (node_time, last.node.cpu) {
        (Some(time), Some(cpu)) => Some(CpuStats {
            time,
            usage_nano_cores: prev
                .and_then(|p| p.node.cpu)
                .and_then(|p| usage_nano_cores(&p, &cpu)),
            usage_core_nano_seconds: Some(cpu.usage_core_nano_seconds),
        }),
        _ => None,
    };
    let node_memory = match (node_time, last.node.memory) {
        (Some(time), Some(m)) => Some(MemoryStats {
            time,
            available_bytes: m.available_bytes,
            usage_bytes: Some(m.usage_bytes),
            working_set_bytes: Some(m.working_set_bytes),
            rss_bytes: m.rss_bytes,
            page_faults: None,
            major_page_faults: None,
        }),
        _ => None,
    };

    // Group by pod; of two containers with one name keep the newest.
    let mut pods: BTreeMap<(String, String, String), BTreeMap<String, &ContainerSample>> =
        BTreeMap::new();
    for c in &last.containers {
        let key = (
            c.pod.namespace.clone(),
            c.pod.name.clone(),
            c.pod.uid.clone(),
        );
        let entry = pods.entry(key).or_default();
        match entry.get(&c.name) {
            Some(old) if old.created_ns >= c.created_ns => {}
            _ => {
                entry.insert(c.name.clone(), c);
            }
        }
    }
    let pods = pods
        .into_iter()
        .map(|((namespace, name, uid), containers)| {
            let containers: Vec<ContainerStats> = containers
                .into_values()
                .map(|c| ContainerStats {
                    name: c.name.clone(),
                    start_time: from_ns(c.created_ns),
                    cpu: container_cpu(prev, c),
                    memory: c.memory.clone(),
                })
                .collect();
            PodStats {
                start_time: last.pod_starts.get(&uid).copied().and_then(from_ns),
                pod_ref: PodReference {
                    name,
                    namespace,
                    uid,
                },
                cpu: pod_cpu(&containers),
                memory: pod_memory(&containers),
                containers,
            }
        })
        .collect();
    Summary {
        node: NodeStats {
            node_name: node_name.to_string(),
            start_time: last.node.boot_time,
            cpu: node_cpu,
            memory: node_memory,
        },
        pods,
    }
}

// ---------------------------------------------------------------- collector

/// Sampling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsConfig {
    pub interval: Duration,
    /// Delay before the second sample, so that the first rates are available early.
    pub first_interval: Duration,
    /// `USER_HZ`, the unit of `/proc/stat`.
    pub ticks_per_second: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            interval: DEFAULT_INTERVAL,
            first_interval: DEFAULT_FIRST_INTERVAL,
            ticks_per_second: 100,
        }
    }
}

impl StatsConfig {
    /// The defaults with this machine's `USER_HZ`.
    pub fn for_host() -> StatsConfig {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        StatsConfig {
            ticks_per_second: u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100),
            ..Default::default()
        }
    }
}

#[derive(Default)]
struct Samples {
    prev: Option<Sample>,
    last: Option<Sample>,
    /// Why the latest attempt failed, until one succeeds.
    failure: Option<String>,
}

/// Samples node and container usage and keeps the last two samples.
pub struct StatsCollector {
    runtime: Arc<dyn Runtime>,
    node_name: String,
    paths: HostPaths,
    config: StatsConfig,
    samples: Mutex<Samples>,
}

impl StatsCollector {
    pub fn new(
        runtime: Arc<dyn Runtime>,
        node_name: impl Into<String>,
        paths: HostPaths,
        config: StatsConfig,
    ) -> StatsCollector {
        StatsCollector {
            runtime,
            node_name: node_name.into(),
            paths,
            config,
            samples: Mutex::new(Samples::default()),
        }
    }

    /// Takes a sample now.
    pub async fn sample(&self) -> Result<(), StatsError> {
        self.sample_at(Timestamp::now()).await
    }

    /// Takes a sample, the node part stamped `now` (container parts carry the runtime's
    /// own timestamps). A failed `ListContainerStats` keeps the previous samples (so rates
    /// survive a blip) but is remembered until a sample succeeds: see [`Self::failure`].
    pub async fn sample_at(&self, now: Timestamp) -> Result<(), StatsError> {
        let (node, errors) = read_node(&self.paths, self.config.ticks_per_second, now);
        for e in errors {
            tracing::debug!(error = %e, "reading node stats");
        }
        let stats = match self.runtime.list_container_stats().await {
            Ok(s) => s,
            Err(e) => {
                let e = StatsError::ListContainerStats(e);
                self.lock().failure = Some(e.to_string());
                return Err(e);
            }
        };
        let containers = self.runtime.list_containers().await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "listing containers for stats");
            Vec::new()
        });
        let sandboxes = self.runtime.list_pod_sandboxes().await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "listing pod sandboxes for stats");
            Vec::new()
        });
        let sample = Sample {
            node,
            containers: container_samples(&stats, &containers, &sandboxes),
            pod_starts: pod_starts(&sandboxes),
        };
        let mut s = self.lock();
        s.prev = s.last.take();
        s.last = Some(sample);
        s.failure = None;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Samples> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The summary of the latest sample; none before the first.
    pub fn summary(&self) -> Option<Summary> {
        let s = self.lock();
        let last = s.last.as_ref()?;
        Some(build_summary(&self.node_name, s.prev.as_ref(), last))
    }

    /// Why the latest sampling attempt failed, if it did (the summary is then stale).
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// Samples forever: now, after `first_interval`, then every `interval`.
    pub async fn run(self: Arc<Self>) {
        let mut wait = self.config.first_interval;
        loop {
            if let Err(e) = self.sample().await {
                tracing::warn!(error = %e, "collecting resource usage");
            }
            tokio::time::sleep(wait).await;
            wait = self.config.interval;
        }
    }
}

// ---------------------------------------------------------------- http

/// `GET /stats/summary` (the `only_cpu_and_memory` parameter is accepted; the answer is
/// always that subset). Merge into the kubelet router so it sits behind its authorization.
pub fn routes(collector: Arc<StatsCollector>) -> axum::Router {
    axum::Router::new()
        .route("/stats/summary", get(summary_handler))
        .with_state(collector)
}

async fn summary_handler(State(c): State<Arc<StatsCollector>>) -> Response {
    // As upstream: while the runtime cannot be listed, the summary is an error.
    if let Some(f) = c.failure() {
        return internal_error(&f);
    }
    let summary = match c.summary() {
        Some(s) => Some(s),
        None => match c.sample().await {
            Ok(()) => c.summary(),
            Err(e) => return internal_error(&e.to_string()),
        },
    };
    let Some(summary) = summary else {
        return internal_error("no stats sample yet");
    };
    match serde_json::to_vec(&summary) {
        Ok(body) => {
            let mut r = Response::new(axum::body::Body::from(body));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => internal_error(&e.to_string()),
    }
}

/// Upstream's kubelet error answer: 500, `Internal Error: ...` as plain text.
fn internal_error(message: &str) -> Response {
    let mut r = (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("Internal Error: failed to get summary stats: {message}"),
    )
        .into_response();
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::FakeRuntime;
    use k8s_cri::v1::{
        ContainerConfig, ContainerMetadata, ImageSpec, PodSandboxConfig, PodSandboxMetadata,
    };
    use tower::ServiceExt;

    const SEC: i64 = 1_000_000_000;
    const T0: i64 = 1_700_000_000 * SEC;

    fn proc_stat(user: u64, system: u64, idle: u64) -> String {
        format!(
            "cpu  {user} 10 {system} {idle} 7 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1 2\nbtime 1699990000\nprocesses 5\n"
        )
    }

    const MEMINFO: &str = "MemTotal:        8000000 kB\nMemFree:         2000000 kB\nMemAvailable:    5000000 kB\nBuffers:  10 kB\n";

    #[test]
    fn proc_stat_busy_time_and_boot_time() {
        let p = parse_proc_stat(&proc_stat(100, 50, 1000)).unwrap();
        // user + nice + system + irq + softirq + steal
        assert_eq!(p.busy_ticks, 100 + 10 + 50 + 1 + 2 + 3);
        assert_eq!(p.boot_time, Some(1_699_990_000));
        assert_eq!(ticks_to_nanos(p.busy_ticks, 100), 166 * 10_000_000);
        assert!(parse_proc_stat("intr 1 2\n").is_err());
        assert!(parse_proc_stat("cpu 1 x 3 4\n").is_err());
        assert!(parse_proc_stat("cpu 1 2\n").is_err());
        // Old kernels have only four fields.
        assert_eq!(parse_proc_stat("cpu 1 2 3 4\n").unwrap().busy_ticks, 6);
    }

    #[test]
    fn meminfo_and_cgroup_working_sets() {
        let m = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(m.total, 8_000_000 * 1024);
        assert_eq!(m.available, Some(5_000_000 * 1024));
        let n = memory_from_meminfo(&m);
        assert_eq!(n.working_set_bytes, 3_000_000 * 1024);
        assert_eq!(n.usage_bytes, 6_000_000 * 1024);
        assert_eq!(n.available_bytes, Some(5_000_000 * 1024));
        assert!(parse_meminfo("MemFree: 1 kB\n").is_err());

        let stat = parse_flat_keyed("cache 5\ntotal_rss 300\ntotal_inactive_file 400\nbad\n");
        let c = memory_from_cgroup_v1(1000, &stat, Some(5000));
        assert_eq!(c.working_set_bytes, 600);
        assert_eq!(c.rss_bytes, Some(300));
        assert_eq!(c.available_bytes, Some(4400));
        // inactive larger than usage (racy reads) saturates
        let c = memory_from_cgroup_v1(100, &stat, None);
        assert_eq!((c.working_set_bytes, c.available_bytes), (0, None));
    }

    #[test]
    fn cpu_rate_from_cumulative_samples() {
        let a = CpuSample {
            time_ns: T0,
            usage_core_nano_seconds: 1_000,
        };
        let b = CpuSample {
            time_ns: T0 + 10 * SEC,
            usage_core_nano_seconds: 1_000 + 5 * SEC as u64,
        };
        // 5 cpu-seconds in 10 s: half a core.
        assert_eq!(usage_nano_cores(&a, &b), Some(500_000_000));
        assert_eq!(usage_nano_cores(&b, &a), None);
        assert_eq!(usage_nano_cores(&a, &a), None);
        let reset = CpuSample {
            time_ns: T0 + 20 * SEC,
            usage_core_nano_seconds: 10,
        };
        assert_eq!(usage_nano_cores(&b, &reset), None);
    }

    struct Host {
        _dir: tempfile::TempDir,
        paths: HostPaths,
    }

    fn host(with_cgroups: bool) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths {
            proc_stat: dir.path().join("stat"),
            meminfo: dir.path().join("meminfo"),
            cpuacct_usage: with_cgroups.then(|| dir.path().join("cpuacct.usage")),
            memory_cgroup: with_cgroups.then(|| dir.path().join("memory")),
        };
        std::fs::write(&paths.meminfo, MEMINFO).unwrap();
        if with_cgroups {
            std::fs::create_dir(dir.path().join("memory")).unwrap();
        }
        Host { _dir: dir, paths }
    }

    fn set_host(h: &Host, user: u64, cpuacct: u64, mem_usage: u64) {
        std::fs::write(&h.paths.proc_stat, proc_stat(user, 0, 1000)).unwrap();
        if let Some(p) = &h.paths.cpuacct_usage {
            std::fs::write(p, format!("{cpuacct}\n")).unwrap();
        }
        if let Some(d) = &h.paths.memory_cgroup {
            std::fs::write(d.join("memory.usage_in_bytes"), format!("{mem_usage}\n")).unwrap();
            std::fs::write(
                d.join("memory.stat"),
                "total_rss 1000\ntotal_inactive_file 4096\n",
            )
            .unwrap();
        }
    }

    async fn add_pod(rt: &FakeRuntime, ns: &str, name: &str, containers: &[&str]) -> Vec<String> {
        let meta = PodSandboxMetadata {
            name: name.into(),
            namespace: ns.into(),
            uid: format!("uid-{name}"),
            attempt: 0,
        };
        let mut pod_labels = HashMap::new();
        pod_labels.insert(labels::POD_NAME.to_string(), name.to_string());
        pod_labels.insert(labels::POD_NAMESPACE.to_string(), ns.to_string());
        pod_labels.insert(labels::POD_UID.to_string(), format!("uid-{name}"));
        let sb_cfg = PodSandboxConfig {
            metadata: Some(meta),
            labels: pod_labels.clone(),
            ..Default::default()
        };
        let sb = rt.run_pod_sandbox(sb_cfg.clone()).await.unwrap();
        let mut ids = Vec::new();
        for c in containers {
            let mut l = pod_labels.clone();
            l.insert(labels::CONTAINER_NAME.to_string(), c.to_string());
            let cfg = ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: c.to_string(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: "busybox".into(),
                    ..Default::default()
                }),
                labels: l,
                ..Default::default()
            };
            let id = rt.create_container(&sb, cfg, sb_cfg.clone()).await.unwrap();
            rt.start_container(&id).await.unwrap();
            ids.push(id);
        }
        ids
    }

    fn at(ns: i64) -> Timestamp {
        Timestamp::from_nanosecond(i128::from(ns)).unwrap()
    }

    #[tokio::test]
    async fn collector_summarises_node_and_pods_with_rates() {
        let rt = FakeRuntime::new();
        rt.add_image("busybox");
        rt.set_now(Some(T0 - 60 * SEC));
        let web = add_pod(&rt, "default", "web", &["app", "sidecar"]).await;
        let db = add_pod(&rt, "data", "db", &["pg"]).await;
        let h = host(true);
        let c = StatsCollector::new(
            Arc::new(rt.clone()),
            "node1",
            h.paths.clone(),
            StatsConfig::default(),
        );
        assert!(c.summary().is_none());

        set_host(&h, 0, 10 * SEC as u64, 1 << 30);
        rt.set_now(Some(T0));
        rt.set_stats(&web[0], SEC as u64, 10 << 20);
        rt.set_stats(&web[1], 0, 1 << 20);
        rt.set_stats(&db[0], 100, 5 << 20);
        c.sample_at(at(T0)).await.unwrap();
        let first = c.summary().unwrap();
        assert_eq!(first.node.cpu.as_ref().unwrap().usage_nano_cores, None);
        assert_eq!(
            first.node.cpu.as_ref().unwrap().usage_core_nano_seconds,
            Some(10 * SEC as u64)
        );

        // Ten seconds later: node used 15 cpu-seconds (1.5 cores), app 2.5 s (250m).
        set_host(&h, 0, 25 * SEC as u64, 2 << 30);
        rt.set_now(Some(T0 + 10 * SEC));
        rt.set_stats(&web[0], 3 * SEC as u64 + SEC as u64 / 2, 12 << 20);
        rt.set_stats(&web[1], SEC as u64 / 10, 1 << 20);
        rt.set_stats(&db[0], 100, 6 << 20);
        c.sample_at(at(T0 + 10 * SEC)).await.unwrap();
        let s = c.summary().unwrap();

        assert_eq!(s.node.node_name, "node1");
        assert_eq!(s.node.start_time, Some(at(1_699_990_000 * SEC)));
        let cpu = s.node.cpu.as_ref().unwrap();
        assert_eq!(cpu.usage_nano_cores, Some(1_500_000_000));
        assert_eq!(cpu.time, at(T0 + 10 * SEC));
        let mem = s.node.memory.as_ref().unwrap();
        assert_eq!(mem.working_set_bytes, Some((2 << 30) - 4096));
        assert_eq!(mem.rss_bytes, Some(1000));

        let names: Vec<(&str, &str)> = s
            .pods
            .iter()
            .map(|p| (p.pod_ref.namespace.as_str(), p.pod_ref.name.as_str()))
            .collect();
        assert_eq!(names, [("data", "db"), ("default", "web")]);
        let web_stats = &s.pods[1];
        assert_eq!(web_stats.pod_ref.uid, "uid-web");
        assert_eq!(web_stats.start_time, Some(at(T0 - 60 * SEC)));
        let app = &web_stats.containers[0];
        assert_eq!(app.name, "app");
        assert_eq!(app.start_time, Some(at(T0 - 60 * SEC)));
        assert_eq!(
            app.cpu.as_ref().unwrap().usage_nano_cores,
            Some(250_000_000)
        );
        assert_eq!(
            app.memory.as_ref().unwrap().working_set_bytes,
            Some(12 << 20)
        );
        let sidecar = &web_stats.containers[1];
        assert_eq!(
            sidecar.cpu.as_ref().unwrap().usage_nano_cores,
            Some(10_000_000)
        );
        // Pod totals are the sums of its containers.
        assert_eq!(
            web_stats.cpu.as_ref().unwrap().usage_nano_cores,
            Some(260_000_000)
        );
        assert_eq!(
            web_stats.memory.as_ref().unwrap().working_set_bytes,
            Some(13 << 20)
        );
        assert_eq!(
            s.pods[0].cpu.as_ref().unwrap().usage_nano_cores,
            Some(0),
            "an idle container uses zero"
        );
    }

    #[tokio::test]
    async fn proc_fallbacks_when_cgroups_are_unreadable() {
        let rt = FakeRuntime::new();
        let h = host(false);
        let c = StatsCollector::new(Arc::new(rt), "n", h.paths.clone(), StatsConfig::default());
        set_host(&h, 1000, 0, 0);
        c.sample_at(at(T0)).await.unwrap();
        set_host(&h, 1500, 0, 0);
        c.sample_at(at(T0 + 10 * SEC)).await.unwrap();
        let s = c.summary().unwrap();
        // 500 ticks of 10 ms in 10 s: half a core.
        assert_eq!(
            s.node.cpu.as_ref().unwrap().usage_nano_cores,
            Some(500_000_000)
        );
        assert_eq!(
            s.node.memory.as_ref().unwrap().working_set_bytes,
            Some(3_000_000 * 1024)
        );
        assert!(s.pods.is_empty());
    }

    #[tokio::test]
    async fn runtime_failure_keeps_previous_samples() {
        let rt = FakeRuntime::new();
        let h = host(false);
        set_host(&h, 1, 0, 0);
        let c = StatsCollector::new(
            Arc::new(rt.clone()),
            "n",
            h.paths.clone(),
            StatsConfig::default(),
        );
        c.sample_at(at(T0)).await.unwrap();
        rt.fail_next("list_container_stats", "boom");
        let err = c.sample_at(at(T0 + SEC)).await.unwrap_err();
        assert!(
            err.to_string().starts_with("listing container stats:"),
            "{err}"
        );
        assert_eq!(
            c.summary().unwrap().node.cpu.unwrap().time,
            at(T0),
            "the failed sample was not recorded"
        );
        assert_eq!(
            c.failure().as_deref(),
            Some("listing container stats: listcontainerstats: boom")
        );
        let resp = routes(Arc::new(c))
            .oneshot(
                http::Request::get("/stats/summary")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn a_successful_sample_clears_the_failure() {
        let rt = FakeRuntime::new();
        let h = host(false);
        set_host(&h, 1, 0, 0);
        let c = StatsCollector::new(
            Arc::new(rt.clone()),
            "n",
            h.paths.clone(),
            StatsConfig::default(),
        );
        rt.fail_next("list_container_stats", "boom");
        assert!(c.sample_at(at(T0)).await.is_err());
        assert!(c.failure().is_some() && c.summary().is_none());
        c.sample_at(at(T0 + SEC)).await.unwrap();
        assert!(c.failure().is_none() && c.summary().is_some());
    }

    #[test]
    fn containers_without_pod_labels_use_their_sandbox_or_are_skipped() {
        use k8s_cri::v1::{ContainerAttributes, CpuUsage, UInt64Value};
        let stat = |id: &str, labels: HashMap<String, String>| CriContainerStats {
            attributes: Some(ContainerAttributes {
                id: id.into(),
                metadata: Some(ContainerMetadata {
                    name: format!("name-{id}"),
                    attempt: 0,
                }),
                labels,
                annotations: HashMap::new(),
            }),
            cpu: Some(CpuUsage {
                timestamp: T0,
                usage_core_nano_seconds: Some(UInt64Value { value: 5 }),
                usage_nano_cores: Some(UInt64Value { value: 7 }),
            }),
            memory: None,
            writable_layer: None,
            swap: None,
        };
        let stats = vec![stat("a", HashMap::new()), stat("b", HashMap::new())];
        let containers = vec![Container {
            id: "a".into(),
            pod_sandbox_id: "sb".into(),
            created_at: T0,
            ..Default::default()
        }];
        let sandboxes = vec![PodSandbox {
            id: "sb".into(),
            metadata: Some(PodSandboxMetadata {
                name: "p".into(),
                namespace: "ns".into(),
                uid: "u".into(),
                attempt: 0,
            }),
            created_at: T0 - SEC,
            ..Default::default()
        }];
        let got = container_samples(&stats, &containers, &sandboxes);
        assert_eq!(got.len(), 1, "b has neither labels nor a sandbox");
        assert_eq!(got[0].name, "name-a");
        assert_eq!(got[0].pod.namespace, "ns");
        assert_eq!(got[0].runtime_nano_cores, Some(7));
        // Without a previous sample the runtime's own rate is used.
        let sample = Sample {
            node: NodeSample::default(),
            containers: got,
            pod_starts: pod_starts(&sandboxes),
        };
        let s = build_summary("n", None, &sample);
        assert_eq!(
            s.pods[0].containers[0]
                .cpu
                .as_ref()
                .unwrap()
                .usage_nano_cores,
            Some(7)
        );
        assert_eq!(s.pods[0].start_time, Some(at(T0 - SEC)));
        assert!(s.node.cpu.is_none() && s.node.memory.is_none());
    }

    #[test]
    fn json_follows_the_kubelet_summary_api() {
        let t = at(T0 + 1_500_000_000);
        let s = Summary {
            node: NodeStats {
                node_name: "n1".into(),
                start_time: None,
                cpu: Some(CpuStats {
                    time: t,
                    usage_nano_cores: Some(5),
                    usage_core_nano_seconds: Some(6),
                }),
                memory: Some(MemoryStats {
                    time: t,
                    available_bytes: None,
                    usage_bytes: Some(1),
                    working_set_bytes: Some(2),
                    rss_bytes: None,
                    page_faults: None,
                    major_page_faults: None,
                }),
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "p".into(),
                    namespace: "ns".into(),
                    uid: "u".into(),
                },
                start_time: Some(t),
                containers: vec![ContainerStats {
                    name: "c".into(),
                    start_time: Some(t),
                    cpu: None,
                    memory: None,
                }],
                cpu: None,
                memory: None,
            }],
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "node": {
                    "nodeName": "n1",
                    "startTime": null,
                    "cpu": {"time": "2023-11-14T22:13:21Z", "usageNanoCores": 5, "usageCoreNanoSeconds": 6},
                    "memory": {"time": "2023-11-14T22:13:21Z", "usageBytes": 1, "workingSetBytes": 2}
                },
                "pods": [{
                    "podRef": {"name": "p", "namespace": "ns", "uid": "u"},
                    "startTime": "2023-11-14T22:13:21Z",
                    "containers": [{"name": "c", "startTime": "2023-11-14T22:13:21Z"}]
                }]
            })
        );
        // Round trip (times are whole seconds on the wire).
        let back: Summary = serde_json::from_value(v).unwrap();
        assert_eq!(back.node.cpu.unwrap().time, at(T0 + SEC));
        assert_eq!(back.pods[0].pod_ref.uid, "u");
    }

    #[tokio::test]
    async fn summary_route_serves_json_and_samples_on_first_use() {
        let rt = FakeRuntime::new();
        rt.add_image("busybox");
        let ids = add_pod(&rt, "default", "web", &["app"]).await;
        rt.set_stats(&ids[0], 100, 4096);
        let h = host(false);
        set_host(&h, 1, 0, 0);
        let c = Arc::new(StatsCollector::new(
            Arc::new(rt.clone()),
            "node1",
            h.paths.clone(),
            StatsConfig::default(),
        ));
        let app = routes(c.clone());
        let req = http::Request::get("/stats/summary?only_cpu_and_memory=true")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers().get(CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["node"]["nodeName"], "node1");
        assert_eq!(v["pods"][0]["podRef"]["name"], "web");
        assert_eq!(
            v["pods"][0]["containers"][0]["memory"]["workingSetBytes"],
            4096
        );
        assert_eq!(rt.calls_to("list_container_stats").len(), 1);

        // A collector whose runtime fails answers 500 in the kubelet's words.
        let rt2 = FakeRuntime::new();
        rt2.fail_next("list_container_stats", "down");
        let c2 = Arc::new(StatsCollector::new(
            Arc::new(rt2),
            "n",
            h.paths.clone(),
            StatsConfig::default(),
        ));
        let resp = routes(c2)
            .oneshot(
                http::Request::get("/stats/summary")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(String::from_utf8_lossy(&body)
            .starts_with("Internal Error: failed to get summary stats: listing container stats:"));
    }

    #[tokio::test(start_paused = true)]
    async fn run_samples_on_schedule() {
        let rt = FakeRuntime::new();
        let h = host(false);
        set_host(&h, 1, 0, 0);
        let c = Arc::new(StatsCollector::new(
            Arc::new(rt.clone()),
            "n",
            h.paths.clone(),
            StatsConfig::default(),
        ));
        let task = tokio::spawn(c.clone().run());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(rt.calls_to("list_container_stats").len(), 1);
        tokio::time::sleep(DEFAULT_FIRST_INTERVAL).await;
        assert_eq!(rt.calls_to("list_container_stats").len(), 2);
        tokio::time::sleep(DEFAULT_INTERVAL).await;
        assert_eq!(rt.calls_to("list_container_stats").len(), 3);
        task.abort();
    }
}
