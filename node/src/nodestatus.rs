//! The Node object a kubelet registers and keeps current: addresses, capacity from the
//! machine, allocatable after reservations and hard eviction thresholds, the four node
//! conditions, nodeInfo, images, labels and taints. Machine facts come through
//! [`MachineInfo`] so the object is built by pure functions.
//!
//! Under the Node authorizer and NodeRestriction a kubelet may only set its own labels
//! (upstream `kubeletapis.IsKubeletLabel`): [`validate_node_labels`] refuses other
//! `kubernetes.io` / `k8s.io` labels as upstream's kubelet flag validation does,
//! [`role_labels`] are the labels someone with admin credentials sets instead, and
//! [`reconcile_default_labels`] is what a re-registering kubelet may change on its Node.

use k8s_openapi::api::core::v1::{
    ContainerImage, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use std::collections::BTreeMap;
use std::path::Path;

pub const KUBELET_VERSION: &str = "v1.33.0+minik8s";
pub const KUBELET_PORT: i32 = 10250;

#[derive(Debug, thiserror::Error)]
pub enum NodeConfigError {
    #[error("invalid {flag} entry {value:?}: {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    /// Upstream's `ValidateKubeletFlags` text; `labels` sorted.
    #[error(
        "unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: [{}]\n--node-labels in the 'kubernetes.io' namespace must begin with an allowed prefix ({}) or be in the specifically allowed set ({})",
        .labels.join(" "),
        KUBELET_LABEL_NAMESPACES.join(", "),
        KUBELET_LABELS.join(", ")
    )]
    UnknownLabels { labels: Vec<String> },
}

/// Label keys a kubelet may set on its own Node (upstream `KubeletLabels()`, sorted).
pub const KUBELET_LABELS: &[&str] = &[
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "beta.kubernetes.io/os",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "kubernetes.io/arch",
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
];

/// Label key namespaces a kubelet may set (upstream `KubeletLabelNamespaces()`, sorted).
pub const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

/// The control-plane role labels of a server's node. A node may not set them on itself
/// (NodeRestriction), so the server sets them with its own credentials: see [`role_labels`].
pub const CONTROL_PLANE_ROLE_LABELS: &[(&str, &str)] = &[
    ("node-role.kubernetes.io/control-plane", "true"),
    ("node-role.kubernetes.io/master", "true"),
];

/// The labels upstream's kubelet reconciles on an existing Node when it registers again
/// (`updateDefaultLabels`).
const DEFAULT_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "node.kubernetes.io/windows-build",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map(|(ns, _)| ns).unwrap_or("")
}

fn in_label_namespace(ns: &str, base: &str) -> bool {
    ns == base || ns.strip_suffix(base).is_some_and(|p| p.ends_with('.'))
}

/// Whether a kubelet may set this label on its own Node (upstream `IsKubeletLabel`).
pub fn is_kubelet_label(key: &str) -> bool {
    KUBELET_LABELS.contains(&key)
        || KUBELET_LABEL_NAMESPACES
            .iter()
            .any(|base| in_label_namespace(label_namespace(key), base))
}

/// A label in the `kubernetes.io` or `k8s.io` namespaces (upstream `isKubernetesLabel`).
pub fn is_kubernetes_label(key: &str) -> bool {
    let ns = label_namespace(key);
    in_label_namespace(ns, "kubernetes.io") || in_label_namespace(ns, "k8s.io")
}

/// Upstream's kubelet flag check on `--node-labels`: labels in the `kubernetes.io` /
/// `k8s.io` namespaces (which includes `node-restriction.kubernetes.io/` and
/// `node-role.kubernetes.io/`) must be kubelet labels, else the kubelet refuses to start.
pub fn validate_node_labels(labels: &BTreeMap<String, String>) -> Result<(), NodeConfigError> {
    let unknown: Vec<String> = labels
        .keys()
        .filter(|k| is_kubernetes_label(k) && !is_kubelet_label(k))
        .cloned()
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(NodeConfigError::UnknownLabels { labels: unknown })
    }
}

/// Facts about the machine, read once per status update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineFacts {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub memory_available_bytes: u64,
    pub fs_capacity_bytes: u64,
    pub fs_available_bytes: u64,
    pub pid_max: u64,
    pub pids_running: u64,
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
    pub hostname: String,
}

pub trait MachineInfo: Send + Sync {
    fn facts(&self, data_dir: &Path) -> MachineFacts;
}

/// Reads /proc, /etc and statvfs.
pub struct SysMachine;

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn meminfo_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn os_pretty_name(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

impl MachineInfo for SysMachine {
    fn facts(&self, data_dir: &Path) -> MachineFacts {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let (fs_cap, fs_avail) = statvfs(data_dir).unwrap_or((0, 0));
        let loadavg = read_trim("/proc/loadavg");
        let pids_running = loadavg
            .split_whitespace()
            .nth(3)
            .and_then(|x| x.split_once('/'))
            .and_then(|(_, t)| t.parse().ok())
            .unwrap_or(0);
        MachineFacts {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            memory_bytes: meminfo_kib(&meminfo, "MemTotal") * 1024,
            memory_available_bytes: meminfo_kib(&meminfo, "MemAvailable") * 1024,
            fs_capacity_bytes: fs_cap,
            fs_available_bytes: fs_avail,
            pid_max: read_trim("/proc/sys/kernel/pid_max")
                .parse()
                .unwrap_or(32768),
            pids_running,
            kernel_version: read_trim("/proc/sys/kernel/osrelease"),
            os_image: os_pretty_name(
                &std::fs::read_to_string("/etc/os-release").unwrap_or_default(),
            ),
            machine_id: read_trim("/etc/machine-id"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            hostname: read_trim("/proc/sys/kernel/hostname"),
        }
    }
}

fn statvfs(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct; the path is NUL-terminated.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return None;
        }
        let bs = s.f_frsize;
        Some((s.f_blocks * bs, s.f_bavail * bs))
    }
}

/// Parses a Kubernetes quantity into an integer of base units (bytes, or millicores when
/// `millis`), rounded up as upstream's Value()/MilliValue().
pub fn parse_quantity(q: &str, millis: bool) -> Option<i128> {
    let q = crate::quantity::Quantity::parse(q).ok()?;
    Some(if millis { q.milli_value() } else { q.value() } as i128)
}

/// `cpu=500m,memory=1Gi` → map.
pub fn parse_resource_list(
    flag: &'static str,
    s: &str,
) -> Result<BTreeMap<String, String>, NodeConfigError> {
    let mut out = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (k, v) = item.split_once('=').ok_or_else(|| NodeConfigError::Flag {
            flag,
            value: item.into(),
            reason: "expected name=quantity".into(),
        })?;
        if parse_quantity(v, k == "cpu").is_none() {
            return Err(NodeConfigError::Flag {
                flag,
                value: item.into(),
                reason: "not a quantity".into(),
            });
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// A hard eviction threshold: `memory.available<100Mi` or `nodefs.available<10%`.
#[derive(Debug, Clone, PartialEq)]
pub enum Threshold {
    Quantity(i128),
    Percent(f64),
}

pub fn default_eviction_hard() -> BTreeMap<String, Threshold> {
    BTreeMap::from([
        (
            "memory.available".to_string(),
            Threshold::Quantity(100 * 1024 * 1024),
        ),
        ("nodefs.available".to_string(), Threshold::Percent(10.0)),
        ("imagefs.available".to_string(), Threshold::Percent(15.0)),
        ("nodefs.inodesFree".to_string(), Threshold::Percent(5.0)),
    ])
}

/// `memory.available<100Mi,nodefs.available<10%`; an empty string keeps the defaults.
pub fn parse_eviction_hard(s: &str) -> Result<BTreeMap<String, Threshold>, NodeConfigError> {
    if s.trim().is_empty() {
        return Ok(default_eviction_hard());
    }
    let mut out = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let bad = |reason: &str| NodeConfigError::Flag {
            flag: "--eviction-hard",
            value: item.into(),
            reason: reason.into(),
        };
        let (k, v) = item
            .split_once('<')
            .ok_or_else(|| bad("expected signal<value"))?;
        let t = match v.strip_suffix('%') {
            Some(p) => Threshold::Percent(p.parse().map_err(|_| bad("bad percentage"))?),
            None => {
                Threshold::Quantity(parse_quantity(v, false).ok_or_else(|| bad("bad quantity"))?)
            }
        };
        out.insert(k.to_string(), t);
    }
    Ok(out)
}

/// `key=value:Effect` or `key:Effect`.
pub fn parse_taint(s: &str) -> Result<Taint, NodeConfigError> {
    let bad = |reason: &str| NodeConfigError::Flag {
        flag: "--node-taint",
        value: s.into(),
        reason: reason.into(),
    };
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| bad("expected key=value:Effect"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(bad(
            "effect must be NoSchedule, PreferNoSchedule or NoExecute",
        ));
    }
    let (k, v) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if k.is_empty() {
        return Err(bad("empty key"));
    }
    Ok(Taint {
        key: k.into(),
        value: v,
        effect: effect.into(),
        time_added: None,
    })
}

/// What the agent was told about its node.
#[derive(Debug, Clone, Default)]
pub struct NodeConfig {
    pub name: String,
    pub internal_ip: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub max_pods: u32,
    pub kube_reserved: BTreeMap<String, String>,
    pub system_reserved: BTreeMap<String, String>,
    pub eviction_hard: BTreeMap<String, Threshold>,
    /// The server's own agent. The agent itself does not label its Node with the
    /// control-plane roles (a node may not, under NodeRestriction); [`role_labels`] gives
    /// the labels the server sets with its own credentials once the Node is registered.
    pub control_plane: bool,
}

fn reserved(cfg: &NodeConfig, name: &str, millis: bool) -> i128 {
    [&cfg.kube_reserved, &cfg.system_reserved]
        .iter()
        .filter_map(|m| m.get(name))
        .filter_map(|q| parse_quantity(q, millis))
        .sum()
}

fn threshold_bytes(t: Option<&Threshold>, capacity: u64) -> i128 {
    match t {
        Some(Threshold::Quantity(q)) => *q,
        Some(Threshold::Percent(p)) => (capacity as f64 * p / 100.0) as i128,
        None => 0,
    }
}

fn qty(s: String) -> Quantity {
    Quantity(s)
}

fn millis_quantity(m: i128) -> Quantity {
    if m % 1000 == 0 {
        qty((m / 1000).to_string())
    } else {
        qty(format!("{m}m"))
    }
}

/// Capacity and allocatable as upstream reports them (memory in Ki).
pub fn resources(
    cfg: &NodeConfig,
    m: &MachineFacts,
) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let cpu_m = m.cpus as i128 * 1000;
    let mem = m.memory_bytes as i128;
    let fs = m.fs_capacity_bytes as i128;
    let capacity = BTreeMap::from([
        ("cpu".to_string(), millis_quantity(cpu_m)),
        ("memory".to_string(), qty(format!("{}Ki", mem / 1024))),
        (
            "ephemeral-storage".to_string(),
            qty(format!("{}Ki", fs / 1024)),
        ),
        ("pods".to_string(), qty(cfg.max_pods.to_string())),
        ("hugepages-2Mi".to_string(), qty("0".into())),
    ]);
    let alloc_cpu = (cpu_m - reserved(cfg, "cpu", true)).max(0);
    let alloc_mem = (mem
        - reserved(cfg, "memory", false)
        - threshold_bytes(cfg.eviction_hard.get("memory.available"), m.memory_bytes))
    .max(0);
    let alloc_fs = (fs
        - reserved(cfg, "ephemeral-storage", false)
        - threshold_bytes(
            cfg.eviction_hard.get("nodefs.available"),
            m.fs_capacity_bytes,
        ))
    .max(0);
    let allocatable = BTreeMap::from([
        ("cpu".to_string(), millis_quantity(alloc_cpu)),
        ("memory".to_string(), qty(format!("{}Ki", alloc_mem / 1024))),
        ("ephemeral-storage".to_string(), qty(alloc_fs.to_string())),
        ("pods".to_string(), qty(cfg.max_pods.to_string())),
        ("hugepages-2Mi".to_string(), qty("0".into())),
    ]);
    (capacity, allocatable)
}

/// The labels a kubelet sets on its own Node.
pub fn node_labels(cfg: &NodeConfig) -> BTreeMap<String, String> {
    let arch = if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        std::env::consts::ARCH
    };
    let mut l = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), cfg.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), arch.to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), arch.to_string()),
    ]);
    l.extend(cfg.labels.clone());
    l
}

/// The labels of this node that only an administrator may set (the control-plane roles of
/// a server's node); empty for other agents.
pub fn role_labels(cfg: &NodeConfig) -> BTreeMap<String, String> {
    if !cfg.control_plane {
        return BTreeMap::new();
    }
    CONTROL_PLANE_ROLE_LABELS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What a kubelet changes on its existing Node when it registers again (upstream
/// `tryRegisterWithAPIServer` -> `updateDefaultLabels`): only the default labels the new
/// registration carries, set to their new values (`Some`) or removed when the new value is
/// empty (`None`). Other labels, annotations and taints are left alone. Returns the label
/// changes for a merge patch; empty when nothing needs updating.
pub fn reconcile_default_labels(
    initial: &BTreeMap<String, String>,
    existing: &BTreeMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for key in DEFAULT_LABELS {
        let Some(want) = initial.get(*key) else {
            continue;
        };
        let have = existing.get(*key);
        if want.is_empty() {
            if have.is_some() {
                out.insert(key.to_string(), None);
            }
        } else if have != Some(want) {
            out.insert(key.to_string(), Some(want.clone()));
        }
    }
    out
}

/// Pressure and readiness as the kubelet sees them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    /// None = ready; Some(message) = not ready and why.
    pub not_ready: Option<String>,
    pub memory_pressure: bool,
    pub disk_pressure: bool,
    pub pid_pressure: bool,
}

pub fn pressures(cfg: &NodeConfig, m: &MachineFacts) -> (bool, bool, bool) {
    let mem = (m.memory_available_bytes as i128)
        < threshold_bytes(cfg.eviction_hard.get("memory.available"), m.memory_bytes);
    let disk = m.fs_capacity_bytes > 0
        && (m.fs_available_bytes as i128)
            < threshold_bytes(
                cfg.eviction_hard.get("nodefs.available"),
                m.fs_capacity_bytes,
            );
    let pid = m.pid_max > 0 && m.pids_running * 100 > m.pid_max * 95;
    (mem, disk, pid)
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: &Time,
    old: &[NodeCondition],
) -> NodeCondition {
    let status = if status { "True" } else { "False" }.to_string();
    let transition = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    NodeCondition {
        type_: type_.into(),
        status,
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(transition),
    }
}

/// The four conditions in upstream's order and wording.
pub fn conditions(h: &Health, now: &Time, old: &[NodeCondition]) -> Vec<NodeCondition> {
    let mut v = vec![
        if h.memory_pressure {
            condition(
                "MemoryPressure",
                true,
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
                now,
                old,
            )
        } else {
            condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                now,
                old,
            )
        },
        if h.disk_pressure {
            condition(
                "DiskPressure",
                true,
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
                now,
                old,
            )
        } else {
            condition(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                now,
                old,
            )
        },
        if h.pid_pressure {
            condition(
                "PIDPressure",
                true,
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
                now,
                old,
            )
        } else {
            condition(
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                now,
                old,
            )
        },
    ];
    v.push(match &h.not_ready {
        None => condition(
            "Ready",
            true,
            "KubeletReady",
            "kubelet is posting ready status",
            now,
            old,
        ),
        Some(msg) => condition("Ready", false, "KubeletNotReady", msg, now, old),
    });
    v
}

/// Everything the status carries besides conditions.
pub struct StatusInputs<'a> {
    pub machine: &'a MachineFacts,
    pub runtime_version: &'a str,
    pub images: Vec<ContainerImage>,
    pub health: Health,
}

pub fn node_status(
    cfg: &NodeConfig,
    inp: &StatusInputs,
    now: &Time,
    old: &[NodeCondition],
) -> NodeStatus {
    let (capacity, allocatable) = resources(cfg, inp.machine);
    let m = inp.machine;
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: cfg.internal_ip.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: cfg.name.clone(),
            },
        ]),
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        conditions: Some(conditions(&inp.health, now, old)),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(k8s_openapi::api::core::v1::DaemonEndpoint {
                port: KUBELET_PORT,
            }),
        }),
        images: Some(inp.images.clone()),
        node_info: Some(NodeSystemInfo {
            architecture: node_labels(cfg)
                .get("kubernetes.io/arch")
                .cloned()
                .unwrap_or_default(),
            boot_id: m.boot_id.clone(),
            container_runtime_version: inp.runtime_version.into(),
            kernel_version: m.kernel_version.clone(),
            kube_proxy_version: KUBELET_VERSION.into(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: m.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: m.os_image.clone(),
            system_uuid: m.machine_id.clone(),
            swap: None,
        }),
        ..Default::default()
    }
}

/// The Node as first registered.
pub fn new_node(cfg: &NodeConfig) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            labels: Some(node_labels(cfg)),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_string(),
                "0".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!cfg.taints.is_empty()).then(|| cfg.taints.clone()),
            ..Default::default()
        }),
        status: None,
    }
}

/// True when two statuses differ in more than heartbeat times.
pub fn status_changed(a: &NodeStatus, b: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| {
        let mut s = s.clone();
        if let Some(cs) = s.conditions.as_mut() {
            for c in cs {
                c.last_heartbeat_time = None;
            }
        }
        s
    };
    strip(a) != strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> MachineFacts {
        MachineFacts {
            cpus: 2,
            memory_bytes: 4 * 1024 * 1024 * 1024,
            memory_available_bytes: 3 * 1024 * 1024 * 1024,
            fs_capacity_bytes: 100 * 1024 * 1024 * 1024,
            fs_available_bytes: 50 * 1024 * 1024 * 1024,
            pid_max: 32768,
            pids_running: 100,
            ..Default::default()
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("500m", true), Some(500));
        assert_eq!(parse_quantity("2", true), Some(2000));
        assert_eq!(parse_quantity("1Gi", false), Some(1 << 30));
        assert_eq!(parse_quantity("100M", false), Some(100_000_000));
        assert_eq!(parse_quantity("1e3", false), Some(1000));
        assert_eq!(parse_quantity("x", false), None);
    }

    #[test]
    fn allocatable_subtracts_reservations_and_eviction() {
        let cfg = NodeConfig {
            name: "n1".into(),
            max_pods: 110,
            kube_reserved: parse_resource_list("--kube-reserved", "cpu=100m,memory=256Mi").unwrap(),
            system_reserved: parse_resource_list("--system-reserved", "cpu=100m").unwrap(),
            eviction_hard: parse_eviction_hard("").unwrap(),
            ..Default::default()
        };
        let (cap, alloc) = resources(&cfg, &facts());
        assert_eq!(cap["cpu"].0, "2");
        assert_eq!(cap["memory"].0, format!("{}Ki", 4 * 1024 * 1024));
        assert_eq!(alloc["cpu"].0, "1800m");
        assert_eq!(
            alloc["memory"].0,
            format!("{}Ki", 4 * 1024 * 1024 - 256 * 1024 - 100 * 1024)
        );
        assert_eq!(alloc["pods"].0, "110");
    }

    #[test]
    fn flags_parse() {
        let t = parse_taint("dedicated=gpu:NoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        assert!(parse_taint("x:Bogus").is_err());
        assert!(parse_resource_list("--kube-reserved", "cpu").is_err());
        let e = parse_eviction_hard("memory.available<1Gi,nodefs.available<5%").unwrap();
        assert_eq!(e["memory.available"], Threshold::Quantity(1 << 30));
        assert_eq!(e["nodefs.available"], Threshold::Percent(5.0));
        assert!(parse_eviction_hard("memory.available=1Gi").is_err());
    }

    #[test]
    fn conditions_keep_transition_times() {
        let t0 = Time(jiff::Timestamp::from_second(1000).unwrap());
        let t1 = Time(jiff::Timestamp::from_second(2000).unwrap());
        let c0 = conditions(&Health::default(), &t0, &[]);
        assert_eq!(c0.len(), 4);
        assert_eq!(c0[3].type_, "Ready");
        assert_eq!(c0[3].reason.as_deref(), Some("KubeletReady"));
        let c1 = conditions(&Health::default(), &t1, &c0);
        assert_eq!(c1[3].last_transition_time, Some(t0.clone()));
        assert_eq!(c1[3].last_heartbeat_time, Some(t1.clone()));
        let h = Health {
            not_ready: Some("runtime down".into()),
            ..Default::default()
        };
        let c2 = conditions(&h, &t1, &c1);
        assert_eq!(c2[3].status, "False");
        assert_eq!(c2[3].last_transition_time, Some(t1));
    }

    #[test]
    fn pressure_from_thresholds() {
        let cfg = NodeConfig {
            eviction_hard: default_eviction_hard(),
            ..Default::default()
        };
        let mut m = facts();
        assert_eq!(pressures(&cfg, &m), (false, false, false));
        m.memory_available_bytes = 50 * 1024 * 1024;
        m.fs_available_bytes = 1024;
        assert_eq!(pressures(&cfg, &m), (true, true, false));
    }

    #[test]
    fn registered_labels_are_kubelet_labels_and_roles_are_left_to_the_server() {
        let cfg = NodeConfig {
            name: "s".into(),
            control_plane: true,
            labels: BTreeMap::from([("a".to_string(), "b".to_string())]),
            ..Default::default()
        };
        let l = node_labels(&cfg);
        assert_eq!(l["kubernetes.io/hostname"], "s");
        assert_eq!(l["a"], "b");
        assert!(!l.contains_key("node-role.kubernetes.io/control-plane"));
        assert!(!l.contains_key("node-role.kubernetes.io/master"));
        // Everything the agent sets is allowed by NodeRestriction.
        assert!(l
            .keys()
            .all(|k| !is_kubernetes_label(k) || is_kubelet_label(k)));
        let roles = role_labels(&cfg);
        assert_eq!(roles.len(), 2);
        assert_eq!(roles["node-role.kubernetes.io/control-plane"], "true");
        assert_eq!(roles["node-role.kubernetes.io/master"], "true");
        let agent = NodeConfig {
            control_plane: false,
            ..cfg
        };
        assert!(role_labels(&agent).is_empty());
    }

    #[test]
    fn kubelet_label_rules() {
        for ok in [
            "kubernetes.io/hostname",
            "beta.kubernetes.io/os",
            "node.kubernetes.io/instance-type",
            "node.kubernetes.io/anything",
            "kubelet.kubernetes.io/x",
            "foo.kubelet.kubernetes.io/x",
            "sub.node.kubernetes.io/x",
        ] {
            assert!(is_kubelet_label(ok), "{ok}");
        }
        for bad in [
            "node-role.kubernetes.io/control-plane",
            "node-restriction.kubernetes.io/x",
            "kubernetes.io/foo",
            "xnode.kubernetes.io/x",
            "example.com/x",
            "plain",
        ] {
            assert!(!is_kubelet_label(bad), "{bad}");
        }
        assert!(is_kubernetes_label("foo.k8s.io/x"));
        assert!(is_kubernetes_label("k8s.io/x"));
        assert!(!is_kubernetes_label("notk8s.io/x"));
        assert!(!is_kubernetes_label("example.com/x"));
    }

    #[test]
    fn node_label_flags_outside_the_kubelet_set_are_refused() {
        let labels = |ks: &[&str]| -> BTreeMap<String, String> {
            ks.iter()
                .map(|k| (k.to_string(), "v".to_string()))
                .collect()
        };
        assert!(validate_node_labels(&labels(&[
            "example.com/team",
            "plain",
            "node.kubernetes.io/pool",
            "topology.kubernetes.io/zone",
        ]))
        .is_ok());
        let e = validate_node_labels(&labels(&[
            "node-role.kubernetes.io/worker",
            "node-restriction.kubernetes.io/secure",
            "example.com/ok",
            "foo.k8s.io/x",
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: \
             [foo.k8s.io/x node-restriction.kubernetes.io/secure node-role.kubernetes.io/worker]\n\
             --node-labels in the 'kubernetes.io' namespace must begin with an allowed prefix \
             (kubelet.kubernetes.io, node.kubernetes.io) or be in the specifically allowed set \
             (beta.kubernetes.io/arch, beta.kubernetes.io/instance-type, beta.kubernetes.io/os, \
             failure-domain.beta.kubernetes.io/region, failure-domain.beta.kubernetes.io/zone, \
             kubernetes.io/arch, kubernetes.io/hostname, kubernetes.io/os, \
             node.kubernetes.io/instance-type, topology.kubernetes.io/region, \
             topology.kubernetes.io/zone)"
        );
    }

    #[test]
    fn re_registration_reconciles_only_default_labels() {
        let m = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let initial = m(&[
            ("kubernetes.io/hostname", "n1"),
            ("kubernetes.io/arch", "amd64"),
            ("kubernetes.io/os", "linux"),
            ("topology.kubernetes.io/zone", ""),
            ("team", "new"),
        ]);
        let existing = m(&[
            ("kubernetes.io/hostname", "old"),
            ("kubernetes.io/arch", "amd64"),
            ("topology.kubernetes.io/zone", "z1"),
            ("topology.kubernetes.io/region", "r1"),
            ("team", "old"),
            ("node-role.kubernetes.io/control-plane", "true"),
        ]);
        let changes = reconcile_default_labels(&initial, &existing);
        assert_eq!(
            changes,
            BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), Some("n1".to_string())),
                ("kubernetes.io/os".to_string(), Some("linux".to_string())),
                ("topology.kubernetes.io/zone".to_string(), None),
            ])
        );
        // Up to date: nothing to patch.
        let same = m(&[
            ("kubernetes.io/hostname", "n1"),
            ("kubernetes.io/arch", "amd64"),
            ("kubernetes.io/os", "linux"),
        ]);
        assert!(reconcile_default_labels(&initial, &same).is_empty());
    }
}
