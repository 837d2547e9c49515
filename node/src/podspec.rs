//! Pure translation of a Pod (k8s-openapi core/v1) into the CRI v1 configs the kubelet hands
//! to the runtime: the sandbox config, each container's config, its environment, its mounts,
//! and the managed /etc/hosts content. Also owns the pod QoS class, the cgroupfs parent of a
//! pod, and a Kubernetes quantity parser.
//!
//! Everything here follows upstream pkg/kubelet/kuberuntime (sandbox, container, linux
//! container, security context, labels), pkg/kubelet/kubelet_pods.go (environment, mounts,
//! hosts file, hostname), pkg/kubelet/qos (oom_score_adj), pkg/apis/core/v1/helper/qos (QoS)
//! and component-helpers/resource (pod requests and limits). No IO happens here: whatever
//! the kubelet reads from the node, the API or the runtime is passed in by the caller.
//!
//! Deliberate choices where upstream has nothing deterministic or depends on the host:
//! - Environment order: upstream builds the list from a Go map (random order). Here: envFrom
//!   keys first (each source in key order), then `env` in declared order (a key keeps its
//!   first position and takes the latest value), then the service variables not already set.
//! - Quantities that fail to parse count as zero (the API server validates them).
//! - Pod-level resources (feature gate PodLevelResources, off in 1.33) are ignored.
//! - Hugepage limits are not set; the runtime supports no recursive read-only mounts.
//! - Masked and read-only paths are left empty for privileged containers (the runtime
//!   ignores them there anyway), and a "CAP_" prefix on capabilities is stripped because
//!   containerd adds it itself.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Container, EnvVar, ObjectFieldSelector, Pod, PodSecurityContext, PodSpec,
    ResourceFieldSelector, ResourceRequirements, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::labels;

/// Pod deletion grace period annotation (upstream kuberuntime/labels.go).
pub const POD_DELETION_GRACE_PERIOD: &str = "io.kubernetes.pod.deletionGracePeriod";
/// Default container termination message path (API default).
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Default cluster DNS domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// Where containers see the managed hosts file.
pub const ETC_HOSTS_PATH: &str = "/etc/hosts";

const MANAGED_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n";
const MANAGED_HOSTS_HEADER_HOST_NETWORK: &str = "# Kubernetes-managed hosts file (host network).\n";

/// CFS period in microseconds (100ms) and the smallest quota (1ms).
const QUOTA_PERIOD: i64 = 100_000;
const MIN_QUOTA_PERIOD: i64 = 1_000;
const MIN_SHARES: i64 = 2;
const MAX_SHARES: i64 = 262_144;
const SHARES_PER_CPU: i64 = 1024;
const MILLI_CPU_TO_CPU: i64 = 1000;

const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;
const SYSTEM_NODE_CRITICAL: &str = "system-node-critical";
const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const APPARMOR_CONTAINER_ANNOTATION_PREFIX: &str =
    "container.apparmor.security.beta.kubernetes.io/";

/// Paths masked in every unprivileged container unless procMount is Unmasked
/// (upstream pkg/securitycontext, kept in sync with moby).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// Paths made read-only in every unprivileged container unless procMount is Unmasked.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a config could not be built; the messages are those the kubelet reports (in a
/// CreateContainerConfigError or a failed sandbox creation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("unsupported pod version: {0}")]
    FieldRefVersion(String),
    #[error("field label not supported: {0}")]
    FieldRefLabel(String),
    #[error("field label does not support subscript: {0}")]
    FieldRefSubscript(String),
    #[error("invalid key subscript in {path}: {reason}")]
    FieldRefKey { path: String, reason: String },
    #[error("unsupported fieldPath: {0}")]
    FieldRefPath(String),
    #[error("unsupported container resource : {0}")]
    ResourceFieldRef(String),
    #[error("container {0} not found")]
    ResourceFieldRefContainer(String),
    #[error("invalid divisor {divisor:?} for resource {resource}")]
    ResourceFieldRefDivisor { resource: String, divisor: String },
    #[error("pod Hostname {hostname:?} is not a valid DNS label: {reason}")]
    Hostname { hostname: String, reason: String },
    #[error("pod Subdomain {subdomain:?} is not a valid DNS label: {reason}")]
    Subdomain { subdomain: String, reason: String },
    #[error("hostname for pod {pod:?} was invalid: {hostname:?}")]
    HostnameTruncate { pod: String, hostname: String },
    #[error("failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long (64 characters is the max, {len} characters requested)")]
    Fqdn { fqdn: String, len: usize },
    #[error("unsupported supplementalGroupsPolicy: {0}")]
    SupplementalGroupsPolicy(String),
    #[error("pod requested a user namespace (hostUsers: false), but the runtime does not support user namespaces")]
    UserNamespaces,
    #[error("localhostProfile must be set if seccompProfile type is Localhost.")]
    SeccompLocalhost,
    #[error("missing localhost apparmor profile name")]
    AppArmorLocalhost,
    #[error("unknown apparmor profile type: {0:?}")]
    AppArmorType(String),
    #[error("container's runAsUser breaks non-root policy (pod: {pod:?}, container: {container})")]
    RunAsNonRootUser { pod: String, container: String },
    #[error("container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {container})")]
    RunAsNonRootImageRoot { pod: String, container: String },
    #[error("container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: {pod:?}, container: {container})")]
    RunAsNonRootUsername {
        user: String,
        pod: String,
        container: String,
    },
    #[error("cannot find volume {volume:?} to mount into container {container:?}")]
    VolumeNotFound { volume: String, container: String },
    #[error("error SubPath `{0}` must not be an absolute path")]
    SubPathAbsolute(String),
    #[error("unable to provision SubPath `{0}`: must not contain '..'")]
    SubPathBacksteps(String),
    #[error("missing value for {0}")]
    SubPathExpr(String),
    #[error("invalid MountPropagation mode: {0:?}")]
    MountPropagation(String),
    #[error("failed to resolve recursive read-only mode: {0}")]
    RecursiveReadOnly(String),
}

// ---------------------------------------------------------------------------------------
// Quantities
// ---------------------------------------------------------------------------------------

pub use crate::quantity::{
    parse_quantity_to_bytes, parse_quantity_to_millis, Quantity, QuantityError,
};

/// A resource's quantity from a resource list: None when absent, zero when unparsable.
fn resource_quantity(list: Option<&BTreeMap<String, ApiQuantity>>, name: &str) -> Option<Quantity> {
    list.and_then(|l| l.get(name))
        .map(|q| Quantity::parse(&q.0).unwrap_or_default())
}

fn requests(r: Option<&ResourceRequirements>) -> Option<&BTreeMap<String, ApiQuantity>> {
    r.and_then(|r| r.requests.as_ref())
}

fn limits(r: Option<&ResourceRequirements>) -> Option<&BTreeMap<String, ApiQuantity>> {
    r.and_then(|r| r.limits.as_ref())
}

// ---------------------------------------------------------------------------------------
// Pod helpers
// ---------------------------------------------------------------------------------------

fn empty_spec() -> &'static PodSpec {
    static EMPTY: std::sync::OnceLock<PodSpec> = std::sync::OnceLock::new();
    EMPTY.get_or_init(PodSpec::default)
}

fn spec(pod: &Pod) -> &PodSpec {
    pod.spec.as_ref().unwrap_or_else(|| empty_spec())
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or_default()
}

fn pod_uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// upstream format.Pod: "name_namespace(uid)".
fn format_pod(pod: &Pod) -> String {
    format!("{}_{}({})", pod_name(pod), pod_namespace(pod), pod_uid(pod))
}

fn init_containers(pod: &Pod) -> &[Container] {
    spec(pod).init_containers.as_deref().unwrap_or_default()
}

fn is_restartable_init(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// Everything the translation needs to know about the pod and the node it runs on.
#[derive(Debug, Clone)]
pub struct PodContext<'a> {
    pub pod: &'a Pod,
    pub node_name: &'a str,
    /// The node's (first) IP: status.hostIP / status.hostIPs.
    pub node_ip: &'a str,
    /// The pod's IPs (the node's for hostNetwork pods); empty before the sandbox exists.
    pub pod_ips: &'a [String],
    /// spec.hostNetwork.
    pub host_network: bool,
    /// The sandbox log directory, `<pod logs root>/<ns>_<name>_<uid>`.
    pub log_dir: PathBuf,
    /// cgroupfs parent, see [`cgroup_parent`].
    pub cgroup_parent: String,
    pub cluster_domain: &'a str,
    /// Node allocatable, used as the limit of containers without one (downward API); 0 = unknown.
    pub node_allocatable_cpu_millis: i64,
    pub node_allocatable_memory: i64,
    pub node_allocatable_ephemeral_storage: i64,
    /// Node memory capacity in bytes (burstable oom_score_adj); 0 = unknown.
    pub node_memory_capacity: i64,
    /// The sandbox DNS config, [`crate::resolvconf::pod_dns`] of the pod (its dnsPolicy and
    /// dnsConfig over the kubelet's cluster DNS and host resolv.conf); None leaves the
    /// runtime to copy the node's resolv.conf.
    pub dns: Option<cri::DnsConfig>,
    /// Root for Localhost seccomp profiles (`<kubelet root>/seccomp`).
    pub seccomp_profile_root: PathBuf,
    /// The kubelet's --seccomp-default: RuntimeDefault instead of Unconfined when unset.
    pub seccomp_default: bool,
    /// cgroup v1 memory.memsw exists: memory+swap limit is pinned to the memory limit.
    pub swap_controller_available: bool,
}

impl<'a> PodContext<'a> {
    /// A context with the derived fields filled in and node-dependent ones at their
    /// "unknown" defaults (set the public fields afterwards as needed).
    pub fn new(
        pod: &'a Pod,
        node_name: &'a str,
        node_ip: &'a str,
        pod_ips: &'a [String],
        pod_logs_root: &Path,
    ) -> PodContext<'a> {
        PodContext {
            pod,
            node_name,
            node_ip,
            pod_ips,
            host_network: spec(pod).host_network.unwrap_or(false),
            log_dir: pod_log_dir(pod_logs_root, pod),
            cgroup_parent: cgroup_parent(pod),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN,
            node_allocatable_cpu_millis: 0,
            node_allocatable_memory: 0,
            node_allocatable_ephemeral_storage: 0,
            node_memory_capacity: 0,
            dns: None,
            seccomp_profile_root: PathBuf::new(),
            seccomp_default: false,
            swap_controller_available: false,
        }
    }
}

/// `<root>/<namespace>_<name>_<uid>` (upstream BuildPodLogsDirectory).
pub fn pod_log_dir(pod_logs_root: &Path, pod: &Pod) -> PathBuf {
    pod_logs_root.join(format!(
        "{}_{}_{}",
        pod_namespace(pod),
        pod_name(pod),
        pod_uid(pod)
    ))
}

/// `<container name>/<restart count>.log`, relative to the sandbox log directory.
pub fn container_log_path(container_name: &str, restart_count: u32) -> String {
    format!("{container_name}/{restart_count}.log")
}

// ---------------------------------------------------------------------------------------
// QoS and cgroups
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// The pod's QoS class: status.qosClass when set, else computed over init and app
/// containers from their cpu and memory requests and limits (upstream GetPodQOS).
pub fn pod_qos(pod: &Pod) -> QosClass {
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some("Guaranteed") => QosClass::Guaranteed,
        Some("Burstable") => QosClass::Burstable,
        Some("BestEffort") => QosClass::BestEffort,
        _ => compute_pod_qos(pod),
    }
}

/// [`pod_qos`] as the API string.
pub fn qos_class(pod: &Pod) -> &'static str {
    pod_qos(pod).as_str()
}

fn compute_pod_qos(pod: &Pod) -> QosClass {
    let mut pod_qos: Option<QosClass> = None;
    for c in init_containers(pod)
        .iter()
        .chain(spec(pod).containers.iter())
    {
        let q = resource_qos(c.resources.as_ref());
        match pod_qos {
            _ if q == QosClass::Burstable => return QosClass::Burstable,
            None => pod_qos = Some(q),
            Some(p) if p != q => return QosClass::Burstable,
            Some(_) => {}
        }
    }
    pod_qos.unwrap_or(QosClass::BestEffort)
}

fn resource_qos(r: Option<&ResourceRequirements>) -> QosClass {
    let reqs = requests(r);
    let lims = limits(r);
    if reqs.is_none_or(|m| m.is_empty()) && lims.is_none_or(|m| m.is_empty()) {
        return QosClass::BestEffort;
    }
    let mut qos: Option<QosClass> = None;
    for res in ["cpu", "memory"] {
        let req = resource_quantity(reqs, res).unwrap_or_default();
        let lim = resource_quantity(lims, res).unwrap_or_default();
        if req != lim {
            return QosClass::Burstable;
        }
        let best_effort = req.is_zero() && lim.is_zero();
        match qos {
            None => {
                qos = Some(if best_effort {
                    QosClass::BestEffort
                } else {
                    QosClass::Guaranteed
                })
            }
            Some(q) if best_effort != (q == QosClass::BestEffort) => return QosClass::Burstable,
            Some(_) => {}
        }
    }
    qos.unwrap_or(QosClass::BestEffort)
}

/// The pod's cgroup parent with the cgroupfs driver and per-QoS cgroups:
/// `/kubepods/pod<uid>`, `/kubepods/burstable/pod<uid>` or `/kubepods/besteffort/pod<uid>`.
pub fn cgroup_parent(pod: &Pod) -> String {
    let uid = pod_uid(pod);
    match pod_qos(pod) {
        QosClass::Guaranteed => format!("/kubepods/pod{uid}"),
        QosClass::Burstable => format!("/kubepods/burstable/pod{uid}"),
        QosClass::BestEffort => format!("/kubepods/besteffort/pod{uid}"),
    }
}

fn milli_cpu_to_shares(milli_cpu: i64) -> i64 {
    if milli_cpu == 0 {
        return MIN_SHARES;
    }
    let shares = milli_cpu.saturating_mul(SHARES_PER_CPU) / MILLI_CPU_TO_CPU;
    shares.clamp(MIN_SHARES, MAX_SHARES)
}

fn milli_cpu_to_quota(milli_cpu: i64, period: i64) -> i64 {
    if milli_cpu == 0 {
        return 0;
    }
    let quota = milli_cpu.saturating_mul(period) / MILLI_CPU_TO_CPU;
    quota.max(MIN_QUOTA_PERIOD)
}

/// upstream calculateLinuxResources (CFS quota enforced, cgroup v1).
fn linux_resources(
    cpu_request: Option<Quantity>,
    cpu_limit: Quantity,
    memory_limit: Quantity,
) -> cri::LinuxContainerResources {
    let cpu_shares = match cpu_request {
        None => milli_cpu_to_shares(cpu_limit.milli_value()),
        Some(req) => milli_cpu_to_shares(req.milli_value()),
    };
    let mem = memory_limit.value();
    cri::LinuxContainerResources {
        cpu_shares,
        memory_limit_in_bytes: if mem != 0 { mem } else { 0 },
        cpu_period: QUOTA_PERIOD,
        cpu_quota: milli_cpu_to_quota(cpu_limit.milli_value(), QUOTA_PERIOD),
        ..Default::default()
    }
}

/// Sum over app containers and restartable init containers, max with each init container's
/// own peak (plus the sidecars started before it); None when no container names the resource.
fn aggregate_pod_resource(pod: &Pod, name: &str, use_limits: bool) -> Option<Quantity> {
    let get = |c: &Container| {
        let r = c.resources.as_ref();
        resource_quantity(if use_limits { limits(r) } else { requests(r) }, name)
    };
    let add = |a: Option<Quantity>, b: Option<Quantity>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or_default().add(b.unwrap_or_default())),
    };
    let mut total: Option<Quantity> = None;
    for c in &spec(pod).containers {
        total = add(total, get(c));
    }
    let mut sidecars: Option<Quantity> = None;
    let mut init_peak: Option<Quantity> = None;
    for c in init_containers(pod) {
        let own = get(c);
        let in_use = if is_restartable_init(c) {
            total = add(total, own);
            sidecars = add(sidecars, own);
            sidecars
        } else {
            add(own, sidecars)
        };
        if let Some(u) = in_use {
            init_peak = Some(init_peak.map_or(u, |p| p.max(u)));
        }
    }
    match (total, init_peak) {
        (t, None) => t,
        (None, p) => p,
        (Some(t), Some(p)) => Some(t.max(p)),
    }
}

fn sandbox_resources(pod: &Pod) -> cri::LinuxContainerResources {
    let cpu_request = aggregate_pod_resource(pod, "cpu", false);
    let cpu_limit = aggregate_pod_resource(pod, "cpu", true).unwrap_or_default();
    let memory_limit = aggregate_pod_resource(pod, "memory", true).unwrap_or_default();
    linux_resources(cpu_request, cpu_limit, memory_limit)
}

fn sandbox_overhead(pod: &Pod) -> cri::LinuxContainerResources {
    match spec(pod).overhead.as_ref() {
        None => cri::LinuxContainerResources::default(),
        Some(o) => {
            let cpu = resource_quantity(Some(o), "cpu").unwrap_or_default();
            let mem = resource_quantity(Some(o), "memory").unwrap_or_default();
            linux_resources(Some(cpu), cpu, mem)
        }
    }
}

fn is_node_critical(pod: &Pod) -> bool {
    let annotations = pod.metadata.annotations.as_ref();
    let is_static = annotations
        .and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION))
        .is_some_and(|s| s != "api");
    let is_mirror = annotations.is_some_and(|a| a.contains_key(CONFIG_MIRROR_ANNOTATION));
    let critical_priority = spec(pod)
        .priority
        .is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY);
    (is_static || is_mirror || critical_priority)
        && spec(pod).priority_class_name.as_deref() == Some(SYSTEM_NODE_CRITICAL)
}

fn memory_request(c: &Container) -> i64 {
    resource_quantity(requests(c.resources.as_ref()), "memory")
        .unwrap_or_default()
        .value()
}

/// upstream qos.GetContainerOOMScoreAdjust (with the sidecar rule).
pub fn container_oom_score_adj(pod: &Pod, container: &Container, memory_capacity: i64) -> i64 {
    if is_node_critical(pod) {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match pod_qos(pod) {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    let adjust_for = |mem_request: i64| -> i64 {
        if memory_capacity <= 0 {
            return 1000;
        }
        let v = 1000 - (1000i128 * i128::from(mem_request)) / i128::from(memory_capacity);
        i64::try_from(v).unwrap_or(i64::MIN)
    };
    let mut adj = adjust_for(memory_request(container));
    let is_sidecar = is_restartable_init(container)
        && init_containers(pod)
            .iter()
            .any(|c| c.name == container.name);
    if is_sidecar {
        if let Some(min_regular) = spec(pod).containers.iter().map(memory_request).min() {
            adj = adj.min(adjust_for(min_regular));
        }
    }
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ {
        return 1000 + GUARANTEED_OOM_SCORE_ADJ;
    }
    if adj == BEST_EFFORT_OOM_SCORE_ADJ {
        return adj - 1;
    }
    adj
}

// ---------------------------------------------------------------------------------------
// Hostname and /etc/hosts
// ---------------------------------------------------------------------------------------

fn dns1123_label_error(value: &str) -> Option<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let b = value.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !b.is_empty()
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
        && b.iter().all(|c| alnum(c) || *c == b'-');
    if !ok {
        errs.push("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string());
    }
    (!errs.is_empty()).then(|| errs.join(";"))
}

/// The pod's hostname (spec.hostname or its name, cut to 63 characters) and domain
/// (`<subdomain>.<ns>.svc.<cluster domain>` when spec.subdomain is set, else empty).
pub fn pod_hostname_and_domain(
    pod: &Pod,
    cluster_domain: &str,
) -> Result<(String, String), ConfigError> {
    let s = spec(pod);
    let mut hostname = pod_name(pod).to_string();
    if let Some(h) = s.hostname.as_deref().filter(|h| !h.is_empty()) {
        if let Some(reason) = dns1123_label_error(h) {
            return Err(ConfigError::Hostname {
                hostname: h.to_string(),
                reason,
            });
        }
        hostname = h.to_string();
    }
    if hostname.len() > 63 {
        let cut: String = hostname.chars().take(63).collect();
        let trimmed = cut.trim_end_matches(['-', '.']);
        if trimmed.is_empty() {
            return Err(ConfigError::HostnameTruncate {
                pod: pod_name(pod).to_string(),
                hostname,
            });
        }
        hostname = trimmed.to_string();
    }
    let mut domain = String::new();
    if let Some(sub) = s.subdomain.as_deref().filter(|d| !d.is_empty()) {
        if let Some(reason) = dns1123_label_error(sub) {
            return Err(ConfigError::Subdomain {
                subdomain: sub.to_string(),
                reason,
            });
        }
        domain = format!("{sub}.{}.svc.{cluster_domain}", pod_namespace(pod));
    }
    Ok((hostname, domain))
}

/// The name the kernel sees: the FQDN when setHostnameAsFQDN and a domain exist.
fn nodename_for_kernel(
    hostname: &str,
    domain: &str,
    set_hostname_as_fqdn: Option<bool>,
) -> Result<String, ConfigError> {
    if !domain.is_empty() && set_hostname_as_fqdn == Some(true) {
        let fqdn = format!("{hostname}.{domain}");
        if fqdn.len() > 64 {
            let len = fqdn.len();
            return Err(ConfigError::Fqdn { fqdn, len });
        }
        return Ok(fqdn);
    }
    Ok(hostname.to_string())
}

/// The managed hosts file the kubelet mounts on /etc/hosts. For hostNetwork pods upstream
/// copies the node's own hosts file (passed in as `node_hosts_file`) under a different header.
pub fn etc_hosts_content(
    pod: &Pod,
    pod_ips: &[String],
    cluster_domain: &str,
    node_hosts_file: Option<&str>,
) -> Result<String, ConfigError> {
    let aliases = spec(pod).host_aliases.as_deref().unwrap_or_default();
    let mut out = String::new();
    if spec(pod).host_network.unwrap_or(false) {
        out.push_str(MANAGED_HOSTS_HEADER_HOST_NETWORK);
        out.push_str(node_hosts_file.unwrap_or_default());
    } else {
        let (hostname, domain) = pod_hostname_and_domain(pod, cluster_domain)?;
        out.push_str(MANAGED_HOSTS_HEADER);
        out.push_str("127.0.0.1\tlocalhost\n");
        out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
        out.push_str("fe00::0\tip6-localnet\n");
        out.push_str("fe00::0\tip6-mcastprefix\n");
        out.push_str("fe00::1\tip6-allnodes\n");
        out.push_str("fe00::2\tip6-allrouters\n");
        for ip in pod_ips {
            if domain.is_empty() {
                out.push_str(&format!("{ip}\t{hostname}\n"));
            } else {
                out.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n"));
            }
        }
    }
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{}\n", alias.ip, names));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Sandbox
// ---------------------------------------------------------------------------------------

/// Network, PID and IPC namespace modes of the pod (upstream NamespacesForPod).
pub fn namespace_options(pod: &Pod) -> Result<cri::NamespaceOption, ConfigError> {
    let s = spec(pod);
    let node_or_pod = |host: Option<bool>| {
        if host.unwrap_or(false) {
            cri::NamespaceMode::Node
        } else {
            cri::NamespaceMode::Pod
        }
    };
    let pid = if s.host_pid.unwrap_or(false) {
        cri::NamespaceMode::Node
    } else if s.share_process_namespace.unwrap_or(false) {
        cri::NamespaceMode::Pod
    } else {
        cri::NamespaceMode::Container
    };
    if s.host_users == Some(false) {
        return Err(ConfigError::UserNamespaces);
    }
    Ok(cri::NamespaceOption {
        network: node_or_pod(s.host_network) as i32,
        pid: pid as i32,
        ipc: node_or_pod(s.host_ipc) as i32,
        target_id: String::new(),
        userns_options: Some(cri::UserNamespace {
            mode: cri::NamespaceMode::Node as i32,
            ..Default::default()
        }),
    })
}

fn runtime_protocol(protocol: Option<&str>) -> cri::Protocol {
    match protocol {
        Some("UDP") => cri::Protocol::Udp,
        Some("SCTP") => cri::Protocol::Sctp,
        _ => cri::Protocol::Tcp,
    }
}

/// Every container port (upstream MakePortMappings; the runtime only acts on hostPorts).
fn port_mappings(pod: &Pod) -> Vec<cri::PortMapping> {
    let mut out = Vec::new();
    for c in &spec(pod).containers {
        let mut names = BTreeSet::new();
        for p in c.ports.as_deref().unwrap_or_default() {
            let host_ip = p.host_ip.clone().unwrap_or_default();
            let host_port = p.host_port.unwrap_or(0);
            let protocol = p.protocol.as_deref().unwrap_or_default();
            let name = match p.name.as_deref().filter(|n| !n.is_empty()) {
                Some(n) => n.to_string(),
                None => {
                    let family = if host_ip.is_empty() {
                        "any"
                    } else if host_ip.contains(':') {
                        "v6"
                    } else {
                        "v4"
                    };
                    format!(
                        "{family}-{protocol}-{host_ip}:{}:{host_port}",
                        p.container_port
                    )
                }
            };
            if !names.insert(name) {
                continue;
            }
            out.push(cri::PortMapping {
                protocol: runtime_protocol(p.protocol.as_deref()) as i32,
                container_port: p.container_port,
                host_port,
                host_ip,
            });
        }
    }
    out
}

fn has_privileged_container(pod: &Pod) -> bool {
    let s = spec(pod);
    let privileged = |sc: Option<&SecurityContext>| sc.and_then(|sc| sc.privileged) == Some(true);
    s.containers
        .iter()
        .chain(init_containers(pod))
        .any(|c| privileged(c.security_context.as_ref()))
        || s.ephemeral_containers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|c| privileged(c.security_context.as_ref()))
}

fn supplemental_groups_policy(sc: &PodSecurityContext) -> Result<i32, ConfigError> {
    match sc.supplemental_groups_policy.as_deref() {
        None => Ok(cri::SupplementalGroupsPolicy::Merge as i32),
        Some(p) => cri::SupplementalGroupsPolicy::from_str_name(p)
            .map(|v| v as i32)
            .ok_or_else(|| ConfigError::SupplementalGroupsPolicy(p.to_string())),
    }
}

fn pod_supplemental_groups(sc: &PodSecurityContext) -> Vec<i64> {
    sc.fs_group
        .into_iter()
        .chain(sc.supplemental_groups.iter().flatten().copied())
        .collect()
}

fn selinux_option(
    o: Option<&k8s_openapi::api::core::v1::SELinuxOptions>,
) -> Option<cri::SeLinuxOption> {
    o.map(|o| cri::SeLinuxOption {
        user: o.user.clone().unwrap_or_default(),
        role: o.role.clone().unwrap_or_default(),
        r#type: o.type_.clone().unwrap_or_default(),
        level: o.level.clone().unwrap_or_default(),
    })
}

fn to_hash_map(m: Option<&BTreeMap<String, String>>) -> HashMap<String, String> {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// The sandbox config for RunPodSandbox (upstream generatePodSandboxConfig).
pub fn sandbox_config(
    ctx: &PodContext,
    attempt: u32,
) -> Result<cri::PodSandboxConfig, ConfigError> {
    let pod = ctx.pod;
    let s = spec(pod);

    let mut sandbox_labels = to_hash_map(pod.metadata.labels.as_ref());
    sandbox_labels.insert(labels::POD_NAME.into(), pod_name(pod).into());
    sandbox_labels.insert(labels::POD_NAMESPACE.into(), pod_namespace(pod).into());
    sandbox_labels.insert(labels::POD_UID.into(), pod_uid(pod).into());

    let hostname = if ctx.host_network {
        String::new()
    } else {
        let (h, d) = pod_hostname_and_domain(pod, ctx.cluster_domain)?;
        nodename_for_kernel(&h, &d, s.set_hostname_as_fqdn)?
    };

    let mut security = cri::LinuxSandboxSecurityContext {
        namespace_options: Some(namespace_options(pod)?),
        privileged: has_privileged_container(pod),
        seccomp: Some(cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        }),
        ..Default::default()
    };
    let mut sysctls = HashMap::new();
    if let Some(sc) = s.security_context.as_ref() {
        for sysctl in sc.sysctls.iter().flatten() {
            sysctls.insert(sysctl.name.clone(), sysctl.value.clone());
        }
        security.run_as_user = sc.run_as_user.map(|value| cri::Int64Value { value });
        security.run_as_group = sc.run_as_group.map(|value| cri::Int64Value { value });
        security.supplemental_groups = pod_supplemental_groups(sc);
        security.supplemental_groups_policy = supplemental_groups_policy(sc)?;
        security.selinux_options = selinux_option(sc.se_linux_options.as_ref());
    }

    Ok(cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: pod_name(pod).into(),
            uid: pod_uid(pod).into(),
            namespace: pod_namespace(pod).into(),
            attempt,
        }),
        hostname,
        log_directory: ctx.log_dir.to_string_lossy().into_owned(),
        dns_config: ctx.dns.clone(),
        port_mappings: port_mappings(pod),
        labels: sandbox_labels,
        annotations: to_hash_map(pod.metadata.annotations.as_ref()),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: ctx.cgroup_parent.clone(),
            security_context: Some(security),
            sysctls,
            overhead: Some(sandbox_overhead(pod)),
            resources: Some(sandbox_resources(pod)),
        }),
        windows: None,
    })
}

// ---------------------------------------------------------------------------------------
// Environment
// ---------------------------------------------------------------------------------------

/// ConfigMaps and Secrets of the pod's namespace, fetched by the caller beforehand.
/// None means "not found".
pub trait EnvSource {
    fn config_map(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, String>>;
    fn secret(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>>;
}

/// Expands `$(VAR)` references as upstream's forked expansion package: `$$` is an escaped
/// `$`, an unknown or unterminated reference is left as written.
pub fn expand(input: &str, mapping: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let mut chars = after.chars();
        match chars.next() {
            None => {
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after[1..].find(')') {
                Some(close) => {
                    let name = &after[1..1 + close];
                    match mapping(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 2..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(c) => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Insertion-ordered env map.
#[derive(Default)]
struct EnvList {
    order: Vec<String>,
    values: HashMap<String, String>,
}

impl EnvList {
    fn set(&mut self, key: String, value: String) {
        if !self.values.contains_key(&key) {
            self.order.push(key.clone());
        }
        self.values.insert(key, value);
    }
}

/// A relaxed env var name: non-empty printable ASCII without '='. Keys that fail can never
/// reach the runtime environment.
fn is_env_var_name(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// The container's environment (upstream makeEnvironmentVariables). `service_env` holds the
/// service link variables (KUBERNETES_SERVICE_HOST, ...): they are visible to `$(VAR)`
/// expansion and come last, unless the container sets the same name itself.
pub fn container_env(
    ctx: &PodContext,
    container: &Container,
    src: &dyn EnvSource,
    service_env: &[cri::KeyValue],
) -> Result<Vec<cri::KeyValue>, ConfigError> {
    let pod = ctx.pod;
    let ns = pod_namespace(pod);
    let mut env = EnvList::default();

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        if let Some(r) = from.config_map_ref.as_ref() {
            match src.config_map(ns, &r.name) {
                Some(data) => {
                    for (k, v) in data {
                        let key = format!("{prefix}{k}");
                        if is_env_var_name(&key) {
                            env.set(key, v);
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError::ConfigMapNotFound(r.name.clone())),
            }
        } else if let Some(r) = from.secret_ref.as_ref() {
            match src.secret(ns, &r.name) {
                Some(data) => {
                    for (k, v) in data {
                        let key = format!("{prefix}{k}");
                        if is_env_var_name(&key) {
                            env.set(key, String::from_utf8_lossy(&v).into_owned());
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError::SecretNotFound(r.name.clone())),
            }
        }
    }

    let service: HashMap<&str, &str> = service_env
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_str()))
        .collect();

    for var in container.env.iter().flatten() {
        let value = match env_var_value(ctx, container, src, var, &env, &service)? {
            Some(v) => v,
            None => continue, // optional source missing: the variable is not set
        };
        env.set(var.name.clone(), value);
    }

    let mut out: Vec<cri::KeyValue> = env
        .order
        .iter()
        .map(|k| cri::KeyValue {
            key: k.clone(),
            value: env.values.get(k).cloned().unwrap_or_default(),
        })
        .collect();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for kv in service_env {
        if !env.values.contains_key(&kv.key) && seen.insert(kv.key.as_str()) {
            out.push(kv.clone());
        }
    }
    Ok(out)
}

fn env_var_value(
    ctx: &PodContext,
    container: &Container,
    src: &dyn EnvSource,
    var: &EnvVar,
    env: &EnvList,
    service: &HashMap<&str, &str>,
) -> Result<Option<String>, ConfigError> {
    let pod = ctx.pod;
    let ns = pod_namespace(pod);
    let literal = var.value.as_deref().unwrap_or_default();
    if !literal.is_empty() {
        let mapping = |name: &str| {
            env.values
                .get(name)
                .cloned()
                .or_else(|| service.get(name).map(|v| v.to_string()))
        };
        return Ok(Some(expand(literal, &mapping)));
    }
    let Some(from) = var.value_from.as_ref() else {
        return Ok(Some(String::new()));
    };
    if let Some(f) = from.field_ref.as_ref() {
        return field_ref_value(ctx, f).map(Some);
    }
    if let Some(r) = from.resource_field_ref.as_ref() {
        return resource_field_ref_value(ctx, container, r).map(Some);
    }
    if let Some(r) = from.config_map_key_ref.as_ref() {
        let optional = r.optional == Some(true);
        let Some(data) = src.config_map(ns, &r.name) else {
            if optional {
                return Ok(None);
            }
            return Err(ConfigError::ConfigMapNotFound(r.name.clone()));
        };
        return match data.get(&r.key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(ConfigError::ConfigMapKeyNotFound {
                key: r.key.clone(),
                namespace: ns.to_string(),
                name: r.name.clone(),
            }),
        };
    }
    if let Some(r) = from.secret_key_ref.as_ref() {
        let optional = r.optional == Some(true);
        let Some(data) = src.secret(ns, &r.name) else {
            if optional {
                return Ok(None);
            }
            return Err(ConfigError::SecretNotFound(r.name.clone()));
        };
        return match data.get(&r.key) {
            Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
            None if optional => Ok(None),
            None => Err(ConfigError::SecretKeyNotFound {
                key: r.key.clone(),
                namespace: ns.to_string(),
                name: r.name.clone(),
            }),
        };
    }
    Ok(Some(String::new()))
}

/// "metadata.labels['k']" → ("metadata.labels", "k").
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let s = path.strip_suffix("']")?;
    let (head, key) = s.split_once("['")?;
    (!head.is_empty()).then_some((head, key))
}

fn qualified_name_error(value: &str) -> Option<String> {
    const NAME_FMT: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    let parts: Vec<&str> = value.split('/').collect();
    let (prefix, name) = match parts.as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => {
            return Some(format!(
                "a qualified name {NAME_FMT} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ))
        }
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        let valid_sub = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| dns1123_label_error(l).is_none());
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else if !valid_sub {
            errs.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".to_string());
        }
    }
    let b = name.as_bytes();
    if b.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else {
        if b.len() > 63 {
            errs.push("name part must be no more than 63 characters".to_string());
        }
        let ok = b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
        if !ok {
            errs.push(format!("name part {NAME_FMT}"));
        }
    }
    (!errs.is_empty()).then(|| errs.join(";"))
}

/// Go's `%q` for the strings of FormatMap.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// upstream fieldpath.FormatMap: sorted `key="value"` lines.
fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    m.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={}", go_quote(v)))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// A downward API fieldRef (upstream podFieldSelectorRuntimeValue).
pub fn field_ref_value(ctx: &PodContext, f: &ObjectFieldSelector) -> Result<String, ConfigError> {
    let pod = ctx.pod;
    let version = f
        .api_version
        .as_deref()
        .filter(|v| !v.is_empty())
        .unwrap_or("v1");
    if version != "v1" {
        return Err(ConfigError::FieldRefVersion(version.to_string()));
    }
    let path = f.field_path.as_str();
    if let Some((head, key)) = split_subscript(path) {
        let (map, check) = match head {
            "metadata.annotations" => (pod.metadata.annotations.as_ref(), key.to_lowercase()),
            "metadata.labels" => (pod.metadata.labels.as_ref(), key.to_string()),
            _ => return Err(ConfigError::FieldRefSubscript(path.to_string())),
        };
        if let Some(reason) = qualified_name_error(&check) {
            return Err(ConfigError::FieldRefKey {
                path: path.to_string(),
                reason,
            });
        }
        return Ok(map.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let s = spec(pod);
    let first_pod_ip = ctx.pod_ips.first().cloned().unwrap_or_default();
    Ok(match path {
        "metadata.name" => pod_name(pod).to_string(),
        "metadata.namespace" => pod_namespace(pod).to_string(),
        "metadata.uid" => pod_uid(pod).to_string(),
        "metadata.labels" => format_map(pod.metadata.labels.as_ref()),
        "metadata.annotations" => format_map(pod.metadata.annotations.as_ref()),
        "spec.nodeName" | "spec.host" => s
            .node_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| ctx.node_name.to_string()),
        "spec.serviceAccountName" => s.service_account_name.clone().unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => ctx.node_ip.to_string(),
        "status.podIP" => first_pod_ip,
        "status.podIPs" => ctx.pod_ips.join(","),
        "spec.terminationGracePeriodSeconds" => {
            s.termination_grace_period_seconds.unwrap_or(30).to_string()
        }
        "spec.restartPolicy" | "spec.schedulerName" | "status.phase" => {
            return Err(ConfigError::FieldRefPath(path.to_string()))
        }
        _ => return Err(ConfigError::FieldRefLabel(path.to_string())),
    })
}

/// The container with unset cpu/memory/ephemeral-storage limits defaulted to node
/// allocatable (upstream defaultPodLimitsForDownwardAPI).
fn with_default_limits(ctx: &PodContext, c: &Container) -> Container {
    let mut c = c.clone();
    let resources = c.resources.get_or_insert_with(Default::default);
    let lims = resources.limits.get_or_insert_with(Default::default);
    let allocatable = [
        ("cpu", ctx.node_allocatable_cpu_millis, true),
        ("memory", ctx.node_allocatable_memory, false),
        (
            "ephemeral-storage",
            ctx.node_allocatable_ephemeral_storage,
            false,
        ),
    ];
    for (name, amount, is_millis) in allocatable {
        if amount <= 0 {
            continue;
        }
        let unset = lims
            .get(name)
            .is_none_or(|q| Quantity::parse(&q.0).unwrap_or_default().is_zero());
        if unset {
            let q = if is_millis {
                format!("{amount}m")
            } else {
                amount.to_string()
            };
            lims.insert(name.to_string(), ApiQuantity(q));
        }
    }
    c
}

/// A downward API resourceFieldRef (upstream containerResourceRuntimeValue).
pub fn resource_field_ref_value(
    ctx: &PodContext,
    container: &Container,
    r: &ResourceFieldSelector,
) -> Result<String, ConfigError> {
    let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => with_default_limits(ctx, container),
        Some(name) => {
            if let Some(c) = spec(ctx.pod).containers.iter().find(|c| c.name == name) {
                with_default_limits(ctx, c)
            } else if let Some(c) = init_containers(ctx.pod).iter().find(|c| c.name == name) {
                c.clone()
            } else {
                return Err(ConfigError::ResourceFieldRefContainer(name.to_string()));
            }
        }
    };
    let divisor = r
        .divisor
        .as_ref()
        .map(|d| Quantity::parse(&d.0).unwrap_or_default())
        .filter(|d| !d.is_zero())
        .unwrap_or(Quantity::from_value(1));
    let res = target.resources.as_ref();
    let (list, name) = if let Some(n) = r.resource.strip_prefix("limits.") {
        (limits(res), n)
    } else if let Some(n) = r.resource.strip_prefix("requests.") {
        (requests(res), n)
    } else {
        return Err(ConfigError::ResourceFieldRef(r.resource.clone()));
    };
    let amount = resource_quantity(list, name).unwrap_or_default();
    let ceil_div = |a: i64, b: i64| -> Result<String, ConfigError> {
        if b == 0 {
            return Err(ConfigError::ResourceFieldRefDivisor {
                resource: r.resource.clone(),
                divisor: r.divisor.as_ref().map(|d| d.0.clone()).unwrap_or_default(),
            });
        }
        Ok((((a as f64) / (b as f64)).ceil() as i64).to_string())
    };
    match name {
        "cpu" => ceil_div(amount.milli_value(), divisor.milli_value()),
        "memory" | "ephemeral-storage" => ceil_div(amount.value(), divisor.value()),
        n if n.starts_with("hugepages-") => ceil_div(amount.value(), divisor.value()),
        _ => Err(ConfigError::ResourceFieldRef(r.resource.clone())),
    }
}

// ---------------------------------------------------------------------------------------
// Mounts
// ---------------------------------------------------------------------------------------

/// Lexical path cleaning as Go's filepath.Clean.
fn clean_path(p: &str) -> String {
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn mount_propagation(mode: Option<&str>) -> Result<cri::MountPropagation, ConfigError> {
    match mode {
        None | Some("None") => Ok(cri::MountPropagation::PropagationPrivate),
        Some("HostToContainer") => Ok(cri::MountPropagation::PropagationHostToContainer),
        Some("Bidirectional") => Ok(cri::MountPropagation::PropagationBidirectional),
        Some(m) => Err(ConfigError::MountPropagation(m.to_string())),
    }
}

fn recursive_read_only(m: &k8s_openapi::api::core::v1::VolumeMount) -> Result<bool, ConfigError> {
    let mode = match m.recursive_read_only.as_deref() {
        None | Some("Disabled") => return Ok(false),
        Some(mode) => mode,
    };
    if m.read_only != Some(true) {
        return Err(ConfigError::RecursiveReadOnly(format!(
            "volume {:?} requested recursive read-only mode, but it is not read-only",
            m.name
        )));
    }
    if let Some(p) = m.mount_propagation.as_deref().filter(|p| *p != "None") {
        return Err(ConfigError::RecursiveReadOnly(format!(
            "volume {:?} requested recursive read-only mode, but it is not compatible with propagation {p:?}",
            m.name
        )));
    }
    match mode {
        // containerd 1.6 has no recursive read-only mounts
        "IfPossible" => Ok(false),
        "Enabled" => Err(ConfigError::RecursiveReadOnly(format!(
            "volume {:?} requested recursive read-only mode, but it is not supported by the runtime",
            m.name
        ))),
        other => Err(ConfigError::RecursiveReadOnly(format!(
            "unknown recursive read-only mode {other:?}"
        ))),
    }
}

/// The container's CRI mounts (upstream makeMounts plus the termination-log mount).
///
/// `volume_paths` maps each pod volume to its host path and whether the volume itself is
/// read-only; `envs` is the container environment (for subPathExpr). `etc_hosts` is the
/// pod's managed hosts file: pass it once the pod IPs are known (upstream mounts it for
/// hostNetwork pods too); it is skipped when the container mounts something on /etc/hosts.
/// `termination_log` is the host file behind terminationMessagePath. The caller creates
/// subPath directories and the termination-log file.
pub fn volume_mounts(
    container: &Container,
    volume_paths: &BTreeMap<String, (PathBuf, bool)>,
    envs: &[cri::KeyValue],
    etc_hosts: Option<&Path>,
    termination_log: Option<&Path>,
) -> Result<Vec<cri::Mount>, ConfigError> {
    let mut mounts = Vec::new();
    let mut mount_etc_hosts = etc_hosts.is_some();
    for m in container.volume_mounts.iter().flatten() {
        mount_etc_hosts = mount_etc_hosts && m.mount_path != ETC_HOSTS_PATH;
        let Some((volume_path, volume_read_only)) = volume_paths.get(&m.name) else {
            return Err(ConfigError::VolumeNotFound {
                volume: m.name.clone(),
                container: container.name.clone(),
            });
        };
        let mut host_path = volume_path.to_string_lossy().into_owned();
        let mut sub_path = m.sub_path.clone().unwrap_or_default();
        if let Some(expr) = m.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
            sub_path = expand_sub_path_expr(expr, envs)?;
        }
        if !sub_path.is_empty() {
            if sub_path.starts_with('/') {
                return Err(ConfigError::SubPathAbsolute(sub_path));
            }
            if sub_path.split('/').any(|seg| seg == "..") {
                return Err(ConfigError::SubPathBacksteps(sub_path));
            }
            host_path = clean_path(&format!("{host_path}/{sub_path}"));
        }
        let container_path = if m.mount_path.starts_with('/') {
            m.mount_path.clone()
        } else {
            clean_path(&format!("/{}", m.mount_path))
        };
        let propagation = mount_propagation(m.mount_propagation.as_deref())?;
        let rro = recursive_read_only(m)?;
        mounts.push(cri::Mount {
            container_path,
            host_path,
            readonly: m.read_only.unwrap_or(false) || *volume_read_only,
            selinux_relabel: false,
            propagation: propagation as i32,
            recursive_read_only: rro,
            ..Default::default()
        });
    }
    if let (true, Some(hosts)) = (mount_etc_hosts, etc_hosts) {
        mounts.push(cri::Mount {
            container_path: ETC_HOSTS_PATH.into(),
            host_path: hosts.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    if let Some(log) = termination_log {
        let path = container
            .termination_message_path
            .as_deref()
            .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH);
        if !path.is_empty() {
            mounts.push(cri::Mount {
                container_path: if path.starts_with('/') {
                    path.to_string()
                } else {
                    clean_path(&format!("/{path}"))
                },
                host_path: log.to_string_lossy().into_owned(),
                ..Default::default()
            });
        }
    }
    Ok(mounts)
}

fn expand_sub_path_expr(expr: &str, envs: &[cri::KeyValue]) -> Result<String, ConfigError> {
    let map: HashMap<&str, &str> = envs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_str()))
        .collect();
    let missing = std::cell::RefCell::new(BTreeSet::new());
    let expanded = expand(expr, &|k: &str| match map.get(k) {
        Some(v) if !v.is_empty() => Some(v.to_string()),
        _ => {
            missing.borrow_mut().insert(k.to_string());
            Some(String::new())
        }
    });
    let missing = missing.into_inner();
    if !missing.is_empty() {
        return Err(ConfigError::SubPathExpr(
            missing.into_iter().collect::<Vec<_>>().join(", "),
        ));
    }
    Ok(expanded)
}

// ---------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    Init,
    App,
}

impl ContainerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKind::Init => "init",
            ContainerKind::App => "app",
        }
    }
}

/// The image as resolved by the runtime: the image reference to run (ImageStatus/PullImage
/// result) and the user the image runs as (ImageStatus uid or username; both unset means
/// root, as upstream treats it).
#[derive(Debug, Clone, Copy)]
pub struct ResolvedImage<'a> {
    pub image_ref: &'a str,
    pub uid: Option<i64>,
    pub username: &'a str,
}

/// The container's labels: pod name, namespace, uid and the container name.
pub fn container_labels(pod: &Pod, container: &Container) -> HashMap<String, String> {
    HashMap::from([
        (labels::POD_NAME.to_string(), pod_name(pod).to_string()),
        (
            labels::POD_NAMESPACE.to_string(),
            pod_namespace(pod).to_string(),
        ),
        (labels::POD_UID.to_string(), pod_uid(pod).to_string()),
        (labels::CONTAINER_NAME.to_string(), container.name.clone()),
    ])
}

/// The container's annotations (upstream newContainerAnnotations plus the kind).
pub fn container_annotations(
    pod: &Pod,
    container: &Container,
    kind: ContainerKind,
    restart_count: u32,
) -> HashMap<String, String> {
    let mut a = HashMap::new();
    a.insert(
        labels::CONTAINER_HASH.into(),
        labels::container_hash(container),
    );
    a.insert(
        labels::CONTAINER_RESTART_COUNT.into(),
        restart_count.to_string(),
    );
    a.insert(
        labels::CONTAINER_TERMINATION_MESSAGE_PATH.into(),
        container
            .termination_message_path
            .clone()
            .unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.into()),
    );
    a.insert(
        labels::CONTAINER_TERMINATION_MESSAGE_POLICY.into(),
        container
            .termination_message_policy
            .clone()
            .unwrap_or_else(|| "File".into()),
    );
    if let Some(g) = pod.metadata.deletion_grace_period_seconds {
        a.insert(POD_DELETION_GRACE_PERIOD.into(), g.to_string());
    }
    if let Some(g) = spec(pod).termination_grace_period_seconds {
        a.insert(labels::POD_TERMINATION_GRACE_PERIOD.into(), g.to_string());
    }
    if let Some(pre_stop) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
    {
        if let Ok(json) = serde_json::to_string(pre_stop) {
            a.insert(labels::CONTAINER_PRESTOP_HANDLER.into(), json);
        }
    }
    if let Some(ports) = container.ports.as_ref().filter(|p| !p.is_empty()) {
        if let Ok(json) = serde_json::to_string(ports) {
            a.insert(labels::CONTAINER_PORTS.into(), json);
        }
    }
    a.insert(labels::CONTAINER_KIND.into(), kind.as_str().into());
    a
}

/// The container's cgroup resources (upstream generateLinuxContainerResources).
pub fn container_resources(
    ctx: &PodContext,
    container: &Container,
) -> cri::LinuxContainerResources {
    let r = container.resources.as_ref();
    let cpu_request = resource_quantity(requests(r), "cpu");
    let cpu_limit = resource_quantity(limits(r), "cpu").unwrap_or_default();
    let memory_limit = resource_quantity(limits(r), "memory").unwrap_or_default();
    let mut lcr = linux_resources(cpu_request, cpu_limit, memory_limit);
    lcr.oom_score_adj = container_oom_score_adj(ctx.pod, container, ctx.node_memory_capacity);
    if ctx.swap_controller_available {
        // cgroup v1, NoSwap: memory+swap equals the memory limit (0 = unlimited)
        lcr.memory_swap_limit_in_bytes = lcr.memory_limit_in_bytes;
    }
    lcr
}

/// Pod-level fields overlaid by the container's (upstream DetermineEffectiveSecurityContext).
fn effective_security_context(pod: &Pod, container: &Container) -> SecurityContext {
    let mut eff = SecurityContext::default();
    if let Some(p) = spec(pod).security_context.as_ref() {
        eff.se_linux_options = p.se_linux_options.clone();
        eff.windows_options = p.windows_options.clone();
        eff.run_as_user = p.run_as_user;
        eff.run_as_group = p.run_as_group;
        eff.run_as_non_root = p.run_as_non_root;
    }
    if let Some(c) = container.security_context.as_ref() {
        if c.se_linux_options.is_some() {
            eff.se_linux_options = c.se_linux_options.clone();
        }
        if c.capabilities.is_some() {
            eff.capabilities = c.capabilities.clone();
        }
        if c.privileged.is_some() {
            eff.privileged = c.privileged;
        }
        if c.run_as_user.is_some() {
            eff.run_as_user = c.run_as_user;
        }
        if c.run_as_group.is_some() {
            eff.run_as_group = c.run_as_group;
        }
        if c.run_as_non_root.is_some() {
            eff.run_as_non_root = c.run_as_non_root;
        }
        if c.read_only_root_filesystem.is_some() {
            eff.read_only_root_filesystem = c.read_only_root_filesystem;
        }
        if c.allow_privilege_escalation.is_some() {
            eff.allow_privilege_escalation = c.allow_privilege_escalation;
        }
        if c.proc_mount.is_some() {
            eff.proc_mount = c.proc_mount.clone();
        }
    }
    eff
}

/// upstream verifyRunAsNonRoot.
fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    eff: &SecurityContext,
    image: &ResolvedImage,
) -> Result<(), ConfigError> {
    if eff.run_as_non_root != Some(true) {
        return Ok(());
    }
    let who = || (format_pod(pod), container.name.clone());
    if let Some(uid) = eff.run_as_user {
        if uid == 0 {
            let (pod, container) = who();
            return Err(ConfigError::RunAsNonRootUser { pod, container });
        }
        return Ok(());
    }
    match image_uid(image) {
        Some(0) => {
            let (pod, container) = who();
            Err(ConfigError::RunAsNonRootImageRoot { pod, container })
        }
        None => {
            let (pod, container) = who();
            Err(ConfigError::RunAsNonRootUsername {
                user: image.username.to_string(),
                pod,
                container,
            })
        }
        Some(_) => Ok(()),
    }
}

/// The image uid: its numeric user, none for a named user, root when neither is set.
fn image_uid(image: &ResolvedImage) -> Option<i64> {
    match (image.uid, image.username.is_empty()) {
        (Some(uid), _) => Some(uid),
        (None, true) => Some(0),
        (None, false) => None,
    }
}

fn seccomp_field(
    ctx: &PodContext,
    p: &SeccompProfile,
) -> Result<cri::SecurityProfile, ConfigError> {
    use cri::security_profile::ProfileType;
    let profile = |t: ProfileType, r: String| cri::SecurityProfile {
        profile_type: t as i32,
        localhost_ref: r,
    };
    match p.type_.as_str() {
        "RuntimeDefault" => Ok(profile(ProfileType::RuntimeDefault, String::new())),
        "Localhost" => match p.localhost_profile.as_deref().filter(|l| !l.is_empty()) {
            Some(l) => {
                let root = ctx.seccomp_profile_root.to_string_lossy();
                let joined = if root.is_empty() {
                    clean_path(l)
                } else {
                    clean_path(&format!("{root}/{l}"))
                };
                Ok(profile(ProfileType::Localhost, joined))
            }
            None => Err(ConfigError::SeccompLocalhost),
        },
        _ => Ok(profile(ProfileType::Unconfined, String::new())),
    }
}

/// Container seccomp: the container's field, then the pod's, then the kubelet default.
fn seccomp_profile(
    ctx: &PodContext,
    container: &Container,
) -> Result<cri::SecurityProfile, ConfigError> {
    use cri::security_profile::ProfileType;
    if let Some(p) = container
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
    {
        return seccomp_field(ctx, p);
    }
    if let Some(p) = spec(ctx.pod)
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
    {
        return seccomp_field(ctx, p);
    }
    let t = if ctx.seccomp_default {
        ProfileType::RuntimeDefault
    } else {
        ProfileType::Unconfined
    };
    Ok(cri::SecurityProfile {
        profile_type: t as i32,
        localhost_ref: String::new(),
    })
}

/// Container AppArmor: the container's field, its pod annotation, then the pod's field.
/// Returns the profile and the deprecated string form.
fn apparmor_profile(
    pod: &Pod,
    container: &Container,
) -> Result<Option<(cri::SecurityProfile, String)>, ConfigError> {
    use cri::security_profile::ProfileType;
    let from_annotation = || {
        let key = format!("{APPARMOR_CONTAINER_ANNOTATION_PREFIX}{}", container.name);
        let value = pod.metadata.annotations.as_ref()?.get(&key)?;
        Some(match value.as_str() {
            "runtime/default" => AppArmorProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            },
            "unconfined" => AppArmorProfile {
                type_: "Unconfined".into(),
                localhost_profile: None,
            },
            v => AppArmorProfile {
                type_: "Localhost".into(),
                localhost_profile: v.strip_prefix("localhost/").map(str::to_string),
            },
        })
    };
    let profile = container
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.clone())
        .or_else(from_annotation)
        .or_else(|| {
            spec(pod)
                .security_context
                .as_ref()
                .and_then(|s| s.app_armor_profile.clone())
        });
    let Some(p) = profile else {
        return Ok(None);
    };
    let sp = |t: ProfileType, r: &str| cri::SecurityProfile {
        profile_type: t as i32,
        localhost_ref: r.to_string(),
    };
    match p.type_.as_str() {
        "RuntimeDefault" => Ok(Some((
            sp(ProfileType::RuntimeDefault, ""),
            "runtime/default".into(),
        ))),
        "Unconfined" => Ok(Some((sp(ProfileType::Unconfined, ""), "unconfined".into()))),
        "Localhost" => match p.localhost_profile.as_deref() {
            Some(l) => Ok(Some((
                sp(ProfileType::Localhost, l),
                format!("localhost/{l}"),
            ))),
            None => Err(ConfigError::AppArmorLocalhost),
        },
        other => Err(ConfigError::AppArmorType(other.to_string())),
    }
}

fn strip_cap_prefix(cap: &str) -> String {
    match cap.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("CAP_") => cap[4..].to_string(),
        _ => cap.to_string(),
    }
}

/// The container's security context (upstream determineEffectiveSecurityContext).
pub fn container_security_context(
    ctx: &PodContext,
    container: &Container,
    image: &ResolvedImage,
) -> Result<cri::LinuxContainerSecurityContext, ConfigError> {
    let pod = ctx.pod;
    let eff = effective_security_context(pod, container);
    verify_run_as_non_root(pod, container, &eff, image)?;
    let privileged = eff.privileged.unwrap_or(false);

    let mut sc = cri::LinuxContainerSecurityContext {
        capabilities: eff.capabilities.as_ref().map(|c| cri::Capability {
            add_capabilities: c
                .add
                .iter()
                .flatten()
                .map(|s| strip_cap_prefix(s))
                .collect(),
            drop_capabilities: c
                .drop
                .iter()
                .flatten()
                .map(|s| strip_cap_prefix(s))
                .collect(),
            add_ambient_capabilities: Vec::new(),
        }),
        privileged,
        selinux_options: selinux_option(eff.se_linux_options.as_ref()),
        run_as_user: eff.run_as_user.map(|value| cri::Int64Value { value }),
        run_as_group: eff.run_as_group.map(|value| cri::Int64Value { value }),
        readonly_rootfs: eff.read_only_root_filesystem.unwrap_or(false),
        seccomp: Some(seccomp_profile(ctx, container)?),
        namespace_options: Some(namespace_options(pod)?),
        no_new_privs: eff.allow_privilege_escalation == Some(false),
        ..Default::default()
    };
    if let Some((profile, name)) = apparmor_profile(pod, container)? {
        sc.apparmor = Some(profile);
        #[allow(deprecated)]
        {
            sc.apparmor_profile = name;
        }
    }
    if sc.run_as_user.is_none() {
        sc.run_as_user = image_uid(image).map(|value| cri::Int64Value { value });
        sc.run_as_username = image.username.to_string();
    }
    if let Some(psc) = spec(pod).security_context.as_ref() {
        sc.supplemental_groups = pod_supplemental_groups(psc);
        sc.supplemental_groups_policy = supplemental_groups_policy(psc)?;
    }
    let unmasked = eff.proc_mount.as_deref() == Some("Unmasked");
    if !privileged && !unmasked {
        sc.masked_paths = DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect();
        sc.readonly_paths = DEFAULT_READONLY_PATHS
            .iter()
            .map(|s| s.to_string())
            .collect();
    }
    Ok(sc)
}

/// Expands `$(VAR)` in command and args against the container environment
/// (upstream ExpandContainerCommandAndArgs).
pub fn expand_command_and_args(
    container: &Container,
    envs: &[cri::KeyValue],
) -> (Vec<String>, Vec<String>) {
    let map: HashMap<&str, &str> = envs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_str()))
        .collect();
    let mapping = |k: &str| map.get(k).map(|v| v.to_string());
    let command = container
        .command
        .iter()
        .flatten()
        .map(|c| expand(c, &mapping))
        .collect();
    let args = container
        .args
        .iter()
        .flatten()
        .map(|a| expand(a, &mapping))
        .collect();
    (command, args)
}

/// The container config for CreateContainer (upstream generateContainerConfig).
/// `envs` comes from [`container_env`], `mounts` from [`volume_mounts`].
pub fn container_config(
    ctx: &PodContext,
    container: &Container,
    kind: ContainerKind,
    restart_count: u32,
    envs: Vec<cri::KeyValue>,
    mounts: Vec<cri::Mount>,
    image: &ResolvedImage,
) -> Result<cri::ContainerConfig, ConfigError> {
    let pod = ctx.pod;
    let security_context = container_security_context(ctx, container, image)?;
    let (command, args) = expand_command_and_args(container, &envs);
    Ok(cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: container.name.clone(),
            attempt: restart_count,
        }),
        image: Some(cri::ImageSpec {
            image: image.image_ref.to_string(),
            user_specified_image: container.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs,
        mounts,
        labels: container_labels(pod, container),
        annotations: container_annotations(pod, container, kind, restart_count),
        log_path: container_log_path(&container.name, restart_count),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(container_resources(ctx, container)),
            security_context: Some(security_context),
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("valid pod json")
    }

    fn base_pod(containers: serde_json::Value) -> Pod {
        pod(json!({
            "metadata": {"name": "web", "namespace": "ns1", "uid": "u-1",
                          "labels": {"app": "web"}, "annotations": {"a/b": "c"}},
            "spec": {"nodeName": "node1", "serviceAccountName": "sa1", "containers": containers}
        }))
    }

    fn ctr(v: serde_json::Value) -> Container {
        serde_json::from_value(v).expect("valid container json")
    }

    fn ctx<'a>(p: &'a Pod, ips: &'a [String]) -> PodContext<'a> {
        let mut c = PodContext::new(p, "node1", "192.168.1.10", ips, Path::new("/agent/logs"));
        c.node_allocatable_cpu_millis = 2000;
        c.node_allocatable_memory = 4 << 30;
        c.node_memory_capacity = 4 << 30;
        c
    }

    fn kv(k: &str, v: &str) -> cri::KeyValue {
        cri::KeyValue {
            key: k.into(),
            value: v.into(),
        }
    }

    fn env_map(envs: &[cri::KeyValue]) -> BTreeMap<String, String> {
        envs.iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect()
    }

    #[derive(Default)]
    struct FakeSource {
        config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
        secrets: BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
    }

    impl FakeSource {
        fn with_cm(mut self, ns: &str, name: &str, data: &[(&str, &str)]) -> Self {
            self.config_maps.insert(
                (ns.into(), name.into()),
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
            self
        }
        fn with_secret(mut self, ns: &str, name: &str, data: &[(&str, &str)]) -> Self {
            self.secrets.insert(
                (ns.into(), name.into()),
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect(),
            );
            self
        }
    }

    impl EnvSource for FakeSource {
        fn config_map(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, String>> {
            self.config_maps
                .get(&(namespace.into(), name.into()))
                .cloned()
        }
        fn secret(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
            self.secrets.get(&(namespace.into(), name.into())).cloned()
        }
    }

    const IMAGE: ResolvedImage<'static> = ResolvedImage {
        image_ref: "sha256:abc",
        uid: Some(1000),
        username: "",
    };

    // ---- quantities ------------------------------------------------------------------

    #[test]
    fn quantity_millis_and_bytes() {
        let m = |s: &str| parse_quantity_to_millis(s).expect(s);
        let b = |s: &str| parse_quantity_to_bytes(s).expect(s);
        assert_eq!(m("100m"), 100);
        assert_eq!(m("1"), 1000);
        assert_eq!(m("0.5"), 500);
        assert_eq!(m(".5"), 500);
        assert_eq!(m("5."), 5000);
        assert_eq!(m("+2"), 2000);
        assert_eq!(m("1e3"), 1_000_000);
        assert_eq!(m("1E3"), 1_000_000);
        assert_eq!(m("1e-3"), 1);
        assert_eq!(m("1n"), 1, "below a milli rounds up");
        assert_eq!(m("5u"), 1);
        assert_eq!(m("0"), 0);
        assert_eq!(m("2k"), 2_000_000);
        assert_eq!(b("1Ki"), 1024);
        assert_eq!(b("1k"), 1000);
        assert_eq!(b("1M"), 1_000_000);
        assert_eq!(b("1Mi"), 1 << 20);
        assert_eq!(b("1.5Gi"), 1_610_612_736);
        assert_eq!(b("2Ti"), 2 << 40);
        assert_eq!(b("1Ei"), 1 << 60);
        assert_eq!(b("1E"), 1_000_000_000_000_000_000);
        assert_eq!(b("100m"), 1, "value rounds up");
        assert_eq!(b("128974848"), 128_974_848);
        assert_eq!(b("129e6"), 129_000_000);
        assert_eq!(b("123Mi"), 128_974_848);
        assert_eq!(b("-1"), -1);
        assert_eq!(b(" 64Mi "), 64 << 20);
        assert_eq!(b("1e100"), i64::MAX, "saturates");
    }

    #[test]
    fn quantity_errors_and_equality() {
        assert_eq!(Quantity::parse(""), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("."), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("abc"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1.2.3"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1Gb"), Err(QuantityError::Format));
        assert_eq!(Quantity::parse("1K"), Err(QuantityError::Suffix));
        assert_eq!(Quantity::parse("1e"), Err(QuantityError::Suffix));
        assert_eq!(Quantity::parse("1mi"), Err(QuantityError::Suffix));
        let q = |s: &str| Quantity::parse(s).expect(s);
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("0.1"), q("100m"));
        assert!(q("1.5") > q("1"));
        assert!(q("0m").is_zero());
        assert_eq!(
            QuantityError::Suffix.to_string(),
            "unable to parse quantity's suffix"
        );
    }

    // ---- QoS and cgroups ---------------------------------------------------------------

    fn qos_of(containers: serde_json::Value, init: serde_json::Value) -> &'static str {
        let p = pod(
            json!({"metadata": {"uid": "u"}, "spec": {"containers": containers, "initContainers": init}}),
        );
        qos_class(&p)
    }

    #[test]
    fn qos_classes() {
        let g = json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1000m", "memory": "1Gi"}});
        assert_eq!(qos_of(json!([{"name": "a"}]), json!([])), "BestEffort");
        assert_eq!(
            qos_of(json!([{"name": "a", "resources": g.clone()}]), json!([])),
            "Guaranteed"
        );
        assert_eq!(
            qos_of(
                json!([{"name": "a", "resources": g.clone()}, {"name": "b", "resources": g.clone()}]),
                json!([{"name": "i", "resources": g.clone()}])
            ),
            "Guaranteed"
        );
        // a best-effort init container next to guaranteed app containers
        assert_eq!(
            qos_of(
                json!([{"name": "a", "resources": g.clone()}]),
                json!([{"name": "i"}])
            ),
            "Burstable"
        );
        // a guaranteed app container next to a best-effort one
        assert_eq!(
            qos_of(
                json!([{"name": "a", "resources": g.clone()}, {"name": "b"}]),
                json!([])
            ),
            "Burstable"
        );
        // cpu only (request == limit), memory unset
        assert_eq!(
            qos_of(
                json!([{"name": "a", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}}]),
                json!([])
            ),
            "Burstable"
        );
        // limits without requests (not defaulted)
        assert_eq!(
            qos_of(
                json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]),
                json!([])
            ),
            "Burstable"
        );
        assert_eq!(
            qos_of(
                json!([{"name": "a", "resources": {"requests": {"memory": "10Mi"}}}]),
                json!([])
            ),
            "Burstable"
        );
        // only non-QoS resources
        assert_eq!(
            qos_of(
                json!([{"name": "a", "resources": {"requests": {"ephemeral-storage": "1Gi"}}}]),
                json!([])
            ),
            "BestEffort"
        );
        // status wins
        let p = pod(
            json!({"spec": {"containers": [{"name": "a"}]}, "status": {"qosClass": "Guaranteed"}}),
        );
        assert_eq!(qos_class(&p), "Guaranteed");
    }

    #[test]
    fn cgroup_parents() {
        let be = base_pod(json!([{"name": "a"}]));
        assert_eq!(cgroup_parent(&be), "/kubepods/besteffort/podu-1");
        let bu = base_pod(json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]));
        assert_eq!(cgroup_parent(&bu), "/kubepods/burstable/podu-1");
        let g = base_pod(
            json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]),
        );
        assert_eq!(cgroup_parent(&g), "/kubepods/podu-1");
        assert_eq!(ctx(&g, &[]).cgroup_parent, "/kubepods/podu-1");
    }

    fn resources_for(resources: serde_json::Value) -> cri::LinuxContainerResources {
        let p = base_pod(json!([{"name": "a", "resources": resources}]));
        let c = ctx(&p, &[]);
        container_resources(&c, &spec(&p).containers[0])
    }

    #[test]
    fn cpu_shares_and_quota() {
        let r = resources_for(json!({"requests": {"cpu": "100m"}}));
        assert_eq!((r.cpu_shares, r.cpu_quota, r.cpu_period), (102, 0, 100_000));
        let r = resources_for(json!({"requests": {"cpu": "1m"}}));
        assert_eq!(r.cpu_shares, 2, "tiny request is raised to the minimum");
        let r = resources_for(json!({"requests": {"cpu": "0"}}));
        assert_eq!(r.cpu_shares, 2);
        let r = resources_for(json!({}));
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes),
            (2, 0, 0)
        );
        // no request: shares follow the limit
        let r = resources_for(json!({"limits": {"cpu": "500m"}}));
        assert_eq!((r.cpu_shares, r.cpu_quota), (512, 50_000));
        let r = resources_for(json!({"requests": {"cpu": "250m"}, "limits": {"cpu": "2"}}));
        assert_eq!((r.cpu_shares, r.cpu_quota), (256, 200_000));
        // quota has a 1ms floor
        let r = resources_for(json!({"requests": {"cpu": "5m"}, "limits": {"cpu": "5m"}}));
        assert_eq!((r.cpu_shares, r.cpu_quota), (5, 1000));
        let r = resources_for(json!({"requests": {"cpu": "1000"}}));
        assert_eq!(r.cpu_shares, 262_144, "shares are capped");
        assert_eq!(milli_cpu_to_quota(1, 100_000), 1000);
        assert_eq!(milli_cpu_to_shares(1500), 1536);
    }

    #[test]
    fn memory_limits_and_swap() {
        let r = resources_for(json!({"limits": {"memory": "128Mi"}}));
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        assert_eq!(r.memory_swap_limit_in_bytes, 0);
        let r = resources_for(json!({"limits": {"memory": "1G"}}));
        assert_eq!(r.memory_limit_in_bytes, 1_000_000_000);
        let p = base_pod(json!([{"name": "a", "resources": {"limits": {"memory": "64Mi"}}}]));
        let mut c = ctx(&p, &[]);
        c.swap_controller_available = true;
        let r = container_resources(&c, &spec(&p).containers[0]);
        assert_eq!(r.memory_swap_limit_in_bytes, 64 << 20);
    }

    #[test]
    fn oom_score_adj_per_qos() {
        let gi = 1i64 << 30;
        let g = base_pod(
            json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]),
        );
        assert_eq!(
            container_oom_score_adj(&g, &spec(&g).containers[0], 4 * gi),
            -997
        );
        let be = base_pod(json!([{"name": "a"}]));
        assert_eq!(
            container_oom_score_adj(&be, &spec(&be).containers[0], 4 * gi),
            1000
        );
        let b = base_pod(json!([{"name": "a", "resources": {"requests": {"memory": "1Gi"}}}]));
        assert_eq!(
            container_oom_score_adj(&b, &spec(&b).containers[0], 4 * gi),
            750
        );
        // burstable without a memory request stays below best effort
        let b = base_pod(json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
        assert_eq!(
            container_oom_score_adj(&b, &spec(&b).containers[0], 4 * gi),
            999
        );
        // a huge request stays above guaranteed
        let b = base_pod(json!([{"name": "a", "resources": {"requests": {"memory": "8Gi"}}}]));
        assert_eq!(
            container_oom_score_adj(&b, &spec(&b).containers[0], 4 * gi),
            3
        );
        // node-critical static pod
        let mut crit = be.clone();
        crit.metadata.annotations = Some(BTreeMap::from([(
            CONFIG_SOURCE_ANNOTATION.to_string(),
            "file".to_string(),
        )]));
        crit.spec.as_mut().expect("spec").priority_class_name = Some("system-node-critical".into());
        assert_eq!(
            container_oom_score_adj(&crit, &spec(&crit).containers[0], 4 * gi),
            -997
        );
        // sidecar: no higher than the smallest regular container
        let sc = pod(json!({"spec": {
            "containers": [{"name": "a", "resources": {"requests": {"memory": "2Gi"}}}],
            "initContainers": [{"name": "s", "restartPolicy": "Always", "resources": {"requests": {"memory": "100Mi"}}}]
        }}));
        let sidecar = &init_containers(&sc)[0];
        assert_eq!(container_oom_score_adj(&sc, sidecar, 4 * gi), 500);
        // the resources land in the container config
        let b = base_pod(json!([{"name": "a", "resources": {"requests": {"memory": "1Gi"}}}]));
        let c = ctx(&b, &[]);
        assert_eq!(
            container_resources(&c, &spec(&b).containers[0]).oom_score_adj,
            750
        );
    }

    // ---- expansion ---------------------------------------------------------------------

    #[test]
    fn expansion_rules() {
        let vars: HashMap<&str, &str> = HashMap::from([("A", "x"), ("EMPTY", ""), ("É", "u")]);
        let m = |k: &str| vars.get(k).map(|v| v.to_string());
        assert_eq!(expand("$(A)", &m), "x");
        assert_eq!(expand("pre-$(A)-post", &m), "pre-x-post");
        assert_eq!(expand("$(A)$(A)", &m), "xx");
        assert_eq!(expand("$$(A)", &m), "$(A)", "escaped reference");
        assert_eq!(expand("$$$(A)", &m), "$x");
        assert_eq!(expand("$$", &m), "$");
        assert_eq!(expand("$(B)", &m), "$(B)", "undefined left as is");
        assert_eq!(expand("$(EMPTY)x", &m), "x");
        assert_eq!(expand("$(A", &m), "$(A", "unterminated");
        assert_eq!(expand("$A", &m), "$A");
        assert_eq!(expand("a$", &m), "a$");
        assert_eq!(expand("$", &m), "$");
        assert_eq!(expand("$()", &m), "$()");
        assert_eq!(expand("$(É)ü$é", &m), "uü$é");
        assert_eq!(expand("no refs", &m), "no refs");
    }

    // ---- environment -------------------------------------------------------------------

    #[test]
    fn env_from_and_env_with_expansion() {
        let p = base_pod(json!([]));
        let c = ctx(&p, &[]);
        let container = ctr(json!({
            "name": "a",
            "envFrom": [
                {"configMapRef": {"name": "cm"}, "prefix": "CM_"},
                {"secretRef": {"name": "sec"}}
            ],
            "env": [
                {"name": "FIRST", "value": "one"},
                {"name": "SECOND", "value": "$(FIRST)-two-$(CM_k1)-$(SVC_HOST)"},
                {"name": "ESC", "value": "$$(FIRST)"},
                {"name": "UNDEF", "value": "$(NOPE)"},
                {"name": "LATER", "value": "$(AFTER)"},
                {"name": "AFTER", "value": "x"},
                {"name": "CM_k1", "value": "override"},
                {"name": "EMPTY"}
            ]
        }));
        let src = FakeSource::default()
            .with_cm("ns1", "cm", &[("k1", "v1"), ("k2", "v2")])
            .with_secret("ns1", "sec", &[("PASS", "s3cret")]);
        let service = [kv("SVC_HOST", "10.43.0.1"), kv("CM_k1", "svc")];
        let envs = container_env(&c, &container, &src, &service).expect("env");
        let keys: Vec<&str> = envs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "CM_k1", "CM_k2", "PASS", "FIRST", "SECOND", "ESC", "UNDEF", "LATER", "AFTER",
                "EMPTY", "SVC_HOST"
            ]
        );
        let m = env_map(&envs);
        assert_eq!(m["CM_k1"], "override");
        assert_eq!(m["CM_k2"], "v2");
        assert_eq!(m["PASS"], "s3cret");
        assert_eq!(m["SECOND"], "one-two-v1-10.43.0.1");
        assert_eq!(m["ESC"], "$(FIRST)");
        assert_eq!(m["UNDEF"], "$(NOPE)");
        assert_eq!(m["LATER"], "$(AFTER)", "only earlier variables are visible");
        assert_eq!(m["EMPTY"], "");
        assert_eq!(m["SVC_HOST"], "10.43.0.1");
    }

    #[test]
    fn env_field_refs() {
        let mut p = base_pod(json!([]));
        p.metadata.labels = Some(BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "a\"b".to_string()),
        ]));
        p.spec
            .as_mut()
            .expect("spec")
            .termination_grace_period_seconds = Some(45);
        let ips = vec!["10.42.0.7".to_string(), "fd00::7".to_string()];
        let c = ctx(&p, &ips);
        let field = |path: &str| {
            field_ref_value(
                &c,
                &ObjectFieldSelector {
                    api_version: None,
                    field_path: path.into(),
                },
            )
        };
        assert_eq!(field("metadata.name").as_deref(), Ok("web"));
        assert_eq!(field("metadata.namespace").as_deref(), Ok("ns1"));
        assert_eq!(field("metadata.uid").as_deref(), Ok("u-1"));
        assert_eq!(field("metadata.labels['app']").as_deref(), Ok("web"));
        assert_eq!(field("metadata.labels['missing']").as_deref(), Ok(""));
        assert_eq!(field("metadata.annotations['a/b']").as_deref(), Ok("c"));
        assert_eq!(
            field("metadata.labels").as_deref(),
            Ok("app=\"web\"\ntier=\"a\\\"b\"")
        );
        assert_eq!(field("spec.nodeName").as_deref(), Ok("node1"));
        assert_eq!(field("spec.serviceAccountName").as_deref(), Ok("sa1"));
        assert_eq!(field("status.hostIP").as_deref(), Ok("192.168.1.10"));
        assert_eq!(field("status.hostIPs").as_deref(), Ok("192.168.1.10"));
        assert_eq!(field("status.podIP").as_deref(), Ok("10.42.0.7"));
        assert_eq!(field("status.podIPs").as_deref(), Ok("10.42.0.7,fd00::7"));
        assert_eq!(
            field("spec.terminationGracePeriodSeconds").as_deref(),
            Ok("45")
        );
        assert_eq!(
            field("spec.foo").map_err(|e| e.to_string()),
            Err("field label not supported: spec.foo".to_string())
        );
        assert_eq!(
            field("spec.nodeName['x']").map_err(|e| e.to_string()),
            Err("field label does not support subscript: spec.nodeName['x']".to_string())
        );
        assert!(matches!(
            field("metadata.labels['bad key']"),
            Err(ConfigError::FieldRefKey { .. })
        ));
        assert_eq!(
            field("status.phase"),
            Err(ConfigError::FieldRefPath("status.phase".into()))
        );
        let v2 = field_ref_value(
            &c,
            &ObjectFieldSelector {
                api_version: Some("v2".into()),
                field_path: "metadata.name".into(),
            },
        );
        assert_eq!(v2, Err(ConfigError::FieldRefVersion("v2".into())));
        // no pod IP before the sandbox exists
        let c0 = ctx(&p, &[]);
        let ip = field_ref_value(
            &c0,
            &ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: "status.podIP".into(),
            },
        );
        assert_eq!(ip.as_deref(), Ok(""));
        // through container_env
        let container = ctr(json!({"name": "a", "env": [
            {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "MY_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
            {"name": "BOTH", "value": "$(MY_POD)@$(MY_IP)"}
        ]}));
        let envs = container_env(&c, &container, &FakeSource::default(), &[]).expect("env");
        assert_eq!(env_map(&envs)["BOTH"], "web@10.42.0.7");
    }

    #[test]
    fn env_resource_field_refs() {
        let p = base_pod(json!([
            {"name": "main", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}},
            {"name": "nolimits", "resources": {"requests": {"cpu": "100m"}}}
        ]));
        let c = ctx(&p, &[]);
        let main = &spec(&p).containers[0];
        let nolimits = &spec(&p).containers[1];
        let rf =
            |container: &Container, resource: &str, divisor: Option<&str>, name: Option<&str>| {
                resource_field_ref_value(
                    &c,
                    container,
                    &ResourceFieldSelector {
                        container_name: name.map(str::to_string),
                        divisor: divisor.map(|d| ApiQuantity(d.to_string())),
                        resource: resource.into(),
                    },
                )
            };
        assert_eq!(
            rf(main, "limits.cpu", None, None).as_deref(),
            Ok("1"),
            "500m rounds up to 1"
        );
        assert_eq!(
            rf(main, "limits.cpu", Some("1m"), None).as_deref(),
            Ok("500")
        );
        assert_eq!(
            rf(main, "requests.cpu", Some("1m"), None).as_deref(),
            Ok("250")
        );
        assert_eq!(
            rf(main, "requests.cpu", Some("100m"), None).as_deref(),
            Ok("3")
        );
        assert_eq!(
            rf(main, "limits.memory", None, None).as_deref(),
            Ok("1073741824")
        );
        assert_eq!(
            rf(main, "limits.memory", Some("1Mi"), None).as_deref(),
            Ok("1024")
        );
        assert_eq!(
            rf(main, "requests.memory", Some("1M"), None).as_deref(),
            Ok("68")
        );
        assert_eq!(
            rf(main, "limits.memory", Some("0"), None).as_deref(),
            Ok("1073741824"),
            "zero divisor means 1"
        );
        // unset limits default to node allocatable
        assert_eq!(
            rf(nolimits, "limits.cpu", Some("1m"), None).as_deref(),
            Ok("2000")
        );
        assert_eq!(
            rf(nolimits, "limits.memory", None, None).as_deref(),
            Ok("4294967296")
        );
        assert_eq!(
            rf(nolimits, "limits.ephemeral-storage", None, None).as_deref(),
            Ok("0")
        );
        assert_eq!(
            rf(nolimits, "requests.memory", None, None).as_deref(),
            Ok("0")
        );
        // another container by name
        assert_eq!(
            rf(nolimits, "limits.cpu", Some("1m"), Some("main")).as_deref(),
            Ok("500")
        );
        assert_eq!(
            rf(main, "limits.cpu", None, Some("ghost")),
            Err(ConfigError::ResourceFieldRefContainer("ghost".into()))
        );
        assert_eq!(
            rf(main, "limits.gpu", None, None).map_err(|e| e.to_string()),
            Err("unsupported container resource : limits.gpu".to_string())
        );
        assert!(rf(main, "limits.memory", Some("1m"), None).is_ok());
        assert!(matches!(
            rf(main, "limits.cpu", Some("1n"), None),
            Ok(v) if v == "500"
        ));
    }

    #[test]
    fn env_config_map_and_secret_errors() {
        let p = base_pod(json!([]));
        let c = ctx(&p, &[]);
        let src = FakeSource::default()
            .with_cm("ns1", "cm", &[("k", "v")])
            .with_secret("ns1", "s", &[("k", "sv")]);
        let run = |env: serde_json::Value| {
            container_env(&c, &ctr(json!({"name": "a", "env": env})), &src, &[])
                .map(|e| env_map(&e))
                .map_err(|e| e.to_string())
        };
        let cmk = |name: &str, key: &str, optional: bool| json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": name, "key": key, "optional": optional}}}]);
        let sk = |name: &str, key: &str, optional: bool| json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": name, "key": key, "optional": optional}}}]);
        assert_eq!(
            run(cmk("cm", "k", false)).map(|m| m["X"].clone()),
            Ok("v".into())
        );
        assert_eq!(
            run(cmk("x", "k", false)),
            Err("configmap \"x\" not found".into())
        );
        assert_eq!(
            run(cmk("cm", "nope", false)),
            Err("couldn't find key nope in ConfigMap ns1/cm".into())
        );
        assert_eq!(
            run(cmk("x", "k", true)),
            Ok(BTreeMap::new()),
            "optional: not set at all"
        );
        assert_eq!(run(cmk("cm", "nope", true)), Ok(BTreeMap::new()));
        assert_eq!(
            run(sk("s", "k", false)).map(|m| m["X"].clone()),
            Ok("sv".into())
        );
        assert_eq!(
            run(sk("x", "k", false)),
            Err("secret \"x\" not found".into())
        );
        assert_eq!(
            run(sk("s", "nope", false)),
            Err("couldn't find key nope in Secret ns1/s".into())
        );
        assert_eq!(run(sk("x", "k", true)), Ok(BTreeMap::new()));
        // envFrom
        let from = |v: serde_json::Value| {
            container_env(&c, &ctr(json!({"name": "a", "envFrom": v})), &src, &[])
                .map(|e| env_map(&e))
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            from(json!([{"configMapRef": {"name": "gone"}}])),
            Err("configmap \"gone\" not found".into())
        );
        assert_eq!(
            from(json!([{"secretRef": {"name": "gone"}}])),
            Err("secret \"gone\" not found".into())
        );
        assert_eq!(
            from(
                json!([{"configMapRef": {"name": "gone", "optional": true}}, {"secretRef": {"name": "s"}, "prefix": "S_"}])
            ),
            Ok(BTreeMap::from([("S_k".to_string(), "sv".to_string())]))
        );
    }

    #[test]
    fn env_from_skips_unusable_keys() {
        let p = base_pod(json!([]));
        let c = ctx(&p, &[]);
        let mut src = FakeSource::default().with_cm("ns1", "cm", &[("ok", "1"), ("1digit", "2")]);
        src.config_maps
            .get_mut(&("ns1".to_string(), "cm".to_string()))
            .expect("cm")
            .insert("a=b".into(), "3".into());
        let envs = container_env(
            &c,
            &ctr(json!({"name": "a", "envFrom": [{"configMapRef": {"name": "cm"}}]})),
            &src,
            &[],
        )
        .expect("env");
        assert_eq!(
            env_map(&envs),
            BTreeMap::from([
                ("1digit".to_string(), "2".to_string()),
                ("ok".to_string(), "1".to_string())
            ])
        );
    }

    // ---- sandbox -----------------------------------------------------------------------

    #[test]
    fn sandbox_basic() {
        let p = pod(json!({
            "metadata": {"name": "web", "namespace": "ns1", "uid": "u-1",
                          "labels": {"app": "web"}, "annotations": {"note": "x"}},
            "spec": {
                "hostname": "myhost",
                "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                                    "supplementalGroups": [4000],
                                    "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
                "containers": [{"name": "a", "ports": [
                    {"containerPort": 80, "hostPort": 8080},
                    {"containerPort": 53, "protocol": "UDP"},
                    {"containerPort": 53, "protocol": "UDP"},
                    {"containerPort": 9000, "protocol": "SCTP", "hostIP": "fd00::1", "hostPort": 9000}
                ]}],
                "initContainers": [{"name": "i", "securityContext": {"privileged": true}}]
            }
        }));
        let mut c = ctx(&p, &[]);
        c.dns = Some(cri::DnsConfig {
            servers: vec!["10.43.0.10".into()],
            searches: vec!["ns1.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        });
        let cfg = sandbox_config(&c, 2).expect("sandbox");
        let md = cfg.metadata.as_ref().expect("metadata");
        assert_eq!(
            (
                md.name.as_str(),
                md.namespace.as_str(),
                md.uid.as_str(),
                md.attempt
            ),
            ("web", "ns1", "u-1", 2)
        );
        assert_eq!(cfg.hostname, "myhost");
        assert_eq!(cfg.log_directory, "/agent/logs/ns1_web_u-1");
        assert_eq!(cfg.labels["app"], "web");
        assert_eq!(cfg.labels[labels::POD_NAME], "web");
        assert_eq!(cfg.labels[labels::POD_NAMESPACE], "ns1");
        assert_eq!(cfg.labels[labels::POD_UID], "u-1");
        assert_eq!(cfg.annotations["note"], "x");
        assert_eq!(
            cfg.dns_config.as_ref().map(|d| d.servers.clone()),
            Some(vec!["10.43.0.10".to_string()])
        );
        let ports: Vec<(i32, i32, i32, &str)> = cfg
            .port_mappings
            .iter()
            .map(|p| {
                (
                    p.protocol,
                    p.container_port,
                    p.host_port,
                    p.host_ip.as_str(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            [
                (cri::Protocol::Tcp as i32, 80, 8080, ""),
                (cri::Protocol::Udp as i32, 53, 0, ""),
                (cri::Protocol::Sctp as i32, 9000, 9000, "fd00::1"),
            ],
            "duplicates dropped"
        );
        let linux = cfg.linux.as_ref().expect("linux");
        assert_eq!(linux.cgroup_parent, "/kubepods/besteffort/podu-1");
        assert_eq!(linux.sysctls["net.ipv4.ip_unprivileged_port_start"], "0");
        let sc = linux.security_context.as_ref().expect("sc");
        assert_eq!(sc.run_as_user, Some(cri::Int64Value { value: 1000 }));
        assert_eq!(sc.run_as_group, Some(cri::Int64Value { value: 3000 }));
        assert_eq!(sc.supplemental_groups, [2000, 4000]);
        assert!(sc.privileged, "an init container is privileged");
        assert_eq!(
            sc.seccomp.as_ref().map(|s| s.profile_type),
            Some(cri::security_profile::ProfileType::RuntimeDefault as i32)
        );
        let ns = sc.namespace_options.as_ref().expect("ns");
        assert_eq!(ns.network, cri::NamespaceMode::Pod as i32);
        assert_eq!(ns.pid, cri::NamespaceMode::Container as i32);
        assert_eq!(ns.ipc, cri::NamespaceMode::Pod as i32);
    }

    #[test]
    fn sandbox_host_network_has_no_hostname() {
        let p = pod(
            json!({"metadata": {"name": "hn", "namespace": "kube-system", "uid": "u2"},
            "spec": {"hostNetwork": true, "hostPID": true, "hostIPC": true, "containers": [{"name": "a"}]}}),
        );
        let c = ctx(&p, &[]);
        assert!(c.host_network);
        let cfg = sandbox_config(&c, 0).expect("sandbox");
        assert_eq!(cfg.hostname, "");
        let ns = cfg
            .linux
            .and_then(|l| l.security_context)
            .and_then(|s| s.namespace_options)
            .expect("ns");
        assert_eq!(
            (ns.network, ns.pid, ns.ipc),
            (
                cri::NamespaceMode::Node as i32,
                cri::NamespaceMode::Node as i32,
                cri::NamespaceMode::Node as i32
            )
        );
        assert!(!cfg.labels.contains_key("app"));
    }

    #[test]
    fn sandbox_carries_pod_dns() {
        use crate::resolvconf::{parse_resolv_conf, pod_dns, DnsSettings};
        let host = parse_resolv_conf("nameserver 10.255.255.53\nsearch corp.example\n")
            .expect("resolv.conf");
        let settings = DnsSettings {
            cluster_dns: vec!["10.43.0.10".parse().expect("ip")],
            cluster_domain: "example.org".into(),
            resolv_conf: Some(PathBuf::from("/etc/resolv.conf")),
        };
        let sandbox_dns = |spec: serde_json::Value| {
            let p = pod(
                json!({"metadata": {"name": "web", "namespace": "ns1", "uid": "u"},
                               "spec": spec}),
            );
            let mut c = ctx(&p, &[]);
            c.cluster_domain = &settings.cluster_domain;
            c.dns = Some(pod_dns(&p, &settings, Some(&host), &[]).config);
            let cfg = sandbox_config(&c, 0).expect("sandbox");
            (cfg.dns_config.expect("dns config"), cfg.hostname)
        };
        let (dns, hostname) = sandbox_dns(json!({"hostname": "h", "subdomain": "sub",
            "setHostnameAsFQDN": true, "containers": [{"name": "a"}]}));
        assert_eq!(
            dns,
            cri::DnsConfig {
                servers: vec!["10.43.0.10".into()],
                searches: vec![
                    "ns1.svc.example.org".into(),
                    "svc.example.org".into(),
                    "example.org".into(),
                    "corp.example".into()
                ],
                options: vec!["ndots:5".into()],
            }
        );
        assert_eq!(
            hostname, "h.sub.ns1.svc.example.org",
            "the configured cluster domain"
        );
        let (dns, _) = sandbox_dns(json!({"hostNetwork": true, "containers": [{"name": "a"}]}));
        assert_eq!(
            (dns.servers, dns.searches, dns.options),
            (
                vec!["10.255.255.53".to_string()],
                vec!["corp.example".to_string()],
                Vec::<String>::new()
            ),
            "ClusterFirst on the host network uses the host resolv.conf"
        );
        let (dns, _) = sandbox_dns(json!({"dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["1.2.3.4"], "options": [{"name": "ndots", "value": "2"}]},
            "containers": [{"name": "a"}]}));
        assert_eq!(
            dns,
            cri::DnsConfig {
                servers: vec!["1.2.3.4".into()],
                searches: vec![],
                options: vec!["ndots:2".into()],
            }
        );
        // no DNS config computed: the runtime's default
        let p = base_pod(json!([{"name": "a"}]));
        assert!(sandbox_config(&ctx(&p, &[]), 0)
            .expect("sandbox")
            .dns_config
            .is_none());
    }

    #[test]
    fn sandbox_hostname_rules() {
        let long = format!("{}-{}", "a".repeat(62), "bcd");
        let p = pod(
            json!({"metadata": {"name": long, "namespace": "ns", "uid": "u"}, "spec": {"containers": []}}),
        );
        let cfg = sandbox_config(&ctx(&p, &[]), 0).expect("sandbox");
        assert_eq!(
            cfg.hostname,
            "a".repeat(62),
            "cut to 63, trailing '-' trimmed"
        );

        let p = pod(
            json!({"metadata": {"name": "x", "namespace": "ns", "uid": "u"},
            "spec": {"hostname": "h", "subdomain": "sub", "setHostnameAsFQDN": true, "containers": []}}),
        );
        let cfg = sandbox_config(&ctx(&p, &[]), 0).expect("sandbox");
        assert_eq!(cfg.hostname, "h.sub.ns.svc.cluster.local");

        let p = pod(
            json!({"metadata": {"name": "x", "namespace": "ns", "uid": "u"},
            "spec": {"hostname": "Bad_Host", "containers": []}}),
        );
        assert!(matches!(
            sandbox_config(&ctx(&p, &[]), 0),
            Err(ConfigError::Hostname { .. })
        ));

        let p = pod(
            json!({"metadata": {"name": "x", "namespace": "ns", "uid": "u"},
            "spec": {"hostname": "h".repeat(40), "subdomain": "s".repeat(20), "setHostnameAsFQDN": true, "containers": []}}),
        );
        assert!(matches!(
            sandbox_config(&ctx(&p, &[]), 0),
            Err(ConfigError::Fqdn { .. })
        ));
    }

    #[test]
    fn sandbox_namespaces_and_user_namespaces() {
        let p = pod(json!({"spec": {"shareProcessNamespace": true, "containers": []}}));
        let ns = namespace_options(&p).expect("ns");
        assert_eq!(ns.pid, cri::NamespaceMode::Pod as i32);
        assert_eq!(
            ns.userns_options.map(|u| u.mode),
            Some(cri::NamespaceMode::Node as i32)
        );
        let p = pod(json!({"spec": {"hostUsers": false, "containers": []}}));
        assert_eq!(namespace_options(&p), Err(ConfigError::UserNamespaces));
        let p = pod(
            json!({"metadata": {"name": "x"}, "spec": {"securityContext": {"supplementalGroupsPolicy": "Strict"}, "containers": []}}),
        );
        let cfg = sandbox_config(&ctx(&p, &[]), 0).expect("sandbox");
        let sc = cfg.linux.and_then(|l| l.security_context).expect("sc");
        assert_eq!(
            sc.supplemental_groups_policy,
            cri::SupplementalGroupsPolicy::Strict as i32
        );
        let p = pod(
            json!({"metadata": {"name": "x"}, "spec": {"securityContext": {"supplementalGroupsPolicy": "Odd"}, "containers": []}}),
        );
        assert_eq!(
            sandbox_config(&ctx(&p, &[]), 0).map(|_| ()),
            Err(ConfigError::SupplementalGroupsPolicy("Odd".into()))
        );
    }

    #[test]
    fn sandbox_resources_follow_pod_requests_and_limits() {
        let p = pod(json!({"metadata": {"name": "x", "uid": "u"}, "spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m", "memory": "100Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "50Mi"}}}
            ],
            "initContainers": [
                {"name": "big", "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}},
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}}
            ],
            "overhead": {"cpu": "10m", "memory": "1Mi"}
        }}));
        let cfg = sandbox_config(&ctx(&p, &[]), 0).expect("sandbox");
        let linux = cfg.linux.expect("linux");
        let r = linux.resources.expect("resources");
        // requests: max(100m+100m+50m sidecar, 1 cpu init) = 1 cpu
        assert_eq!(r.cpu_shares, 1024);
        // limits: cpu 200m; memory max(150Mi, 1Gi)
        assert_eq!(r.cpu_quota, 20_000);
        assert_eq!(r.memory_limit_in_bytes, 1 << 30);
        let o = linux.overhead.expect("overhead");
        assert_eq!(
            (o.cpu_shares, o.cpu_quota, o.memory_limit_in_bytes),
            (10, 1000, 1 << 20)
        );
    }

    // ---- containers --------------------------------------------------------------------

    #[test]
    fn container_config_basics() {
        let p = pod(json!({
            "metadata": {"name": "web", "namespace": "ns1", "uid": "u-1", "deletionGracePeriodSeconds": 5},
            "spec": {"terminationGracePeriodSeconds": 30, "containers": [{
                "name": "app", "image": "busybox:1.36",
                "command": ["sh", "-c", "echo $(GREETING) $$(GREETING) $(NOPE)"],
                "args": ["$(GREETING)"],
                "workingDir": "/work", "stdin": true, "tty": true,
                "ports": [{"containerPort": 80, "name": "http"}],
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}}
            }]}
        }));
        let c = ctx(&p, &[]);
        let container = &spec(&p).containers[0];
        let envs = vec![kv("GREETING", "hi")];
        let mounts = vec![cri::Mount {
            container_path: "/data".into(),
            host_path: "/host/data".into(),
            ..Default::default()
        }];
        let cfg = container_config(&c, container, ContainerKind::App, 3, envs, mounts, &IMAGE)
            .expect("config");
        let md = cfg.metadata.as_ref().expect("metadata");
        assert_eq!((md.name.as_str(), md.attempt), ("app", 3));
        let image = cfg.image.as_ref().expect("image");
        assert_eq!(image.image, "sha256:abc");
        assert_eq!(image.user_specified_image, "busybox:1.36");
        assert_eq!(cfg.command, ["sh", "-c", "echo hi $(GREETING) $(NOPE)"]);
        assert_eq!(cfg.args, ["hi"]);
        assert_eq!(cfg.working_dir, "/work");
        assert_eq!(cfg.log_path, "app/3.log");
        assert!(cfg.stdin && cfg.tty && !cfg.stdin_once);
        assert_eq!(cfg.envs, [kv("GREETING", "hi")]);
        assert_eq!(cfg.mounts.len(), 1);
        assert_eq!(cfg.labels.len(), 4);
        assert_eq!(cfg.labels[labels::CONTAINER_NAME], "app");
        assert_eq!(cfg.labels[labels::POD_UID], "u-1");
        let a = &cfg.annotations;
        assert_eq!(a[labels::CONTAINER_HASH], labels::container_hash(container));
        assert_eq!(a[labels::CONTAINER_RESTART_COUNT], "3");
        assert_eq!(
            a[labels::CONTAINER_TERMINATION_MESSAGE_PATH],
            "/dev/termination-log"
        );
        assert_eq!(a[labels::CONTAINER_TERMINATION_MESSAGE_POLICY], "File");
        assert_eq!(a[labels::POD_TERMINATION_GRACE_PERIOD], "30");
        assert_eq!(a[POD_DELETION_GRACE_PERIOD], "5");
        assert_eq!(a[labels::CONTAINER_KIND], "app");
        let pre_stop: serde_json::Value =
            serde_json::from_str(&a[labels::CONTAINER_PRESTOP_HANDLER]).expect("json");
        assert_eq!(pre_stop, json!({"exec": {"command": ["sleep", "1"]}}));
        let ports: serde_json::Value =
            serde_json::from_str(&a[labels::CONTAINER_PORTS]).expect("json");
        assert_eq!(ports, json!([{"containerPort": 80, "name": "http"}]));
        let linux = cfg.linux.as_ref().expect("linux");
        assert_eq!(
            linux.resources.as_ref().map(|r| r.oom_score_adj),
            Some(1000)
        );

        let init = container_config(
            &c,
            container,
            ContainerKind::Init,
            0,
            vec![],
            vec![],
            &IMAGE,
        )
        .expect("config");
        assert_eq!(init.annotations[labels::CONTAINER_KIND], "init");
        assert_eq!(init.log_path, "app/0.log");
    }

    fn sc_for(
        pod_sc: serde_json::Value,
        container_sc: serde_json::Value,
        image: &ResolvedImage,
    ) -> Result<cri::LinuxContainerSecurityContext, ConfigError> {
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "n", "uid": "u"},
            "spec": {"securityContext": pod_sc, "containers": [{"name": "c", "securityContext": container_sc}]}}),
        );
        let mut c = ctx(&p, &[]);
        c.seccomp_profile_root = PathBuf::from("/var/lib/agent/seccomp");
        container_security_context(&c, &spec(&p).containers[0], image)
    }

    #[test]
    fn security_context_mapping() {
        let sc = sc_for(
            json!({"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 2000, "supplementalGroups": [5, 6]}),
            json!({"runAsUser": 1001, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                   "capabilities": {"add": ["NET_ADMIN", "CAP_SYS_TIME", "cap_chown"], "drop": ["ALL"]}}),
            &IMAGE,
        )
        .expect("sc");
        assert_eq!(sc.run_as_user, Some(cri::Int64Value { value: 1001 }));
        assert_eq!(sc.run_as_group, Some(cri::Int64Value { value: 100 }));
        assert_eq!(sc.run_as_username, "");
        assert!(sc.readonly_rootfs);
        assert!(sc.no_new_privs);
        assert!(!sc.privileged);
        let caps = sc.capabilities.as_ref().expect("caps");
        assert_eq!(caps.add_capabilities, ["NET_ADMIN", "SYS_TIME", "chown"]);
        assert_eq!(caps.drop_capabilities, ["ALL"]);
        assert_eq!(sc.supplemental_groups, [2000, 5, 6]);
        assert_eq!(sc.masked_paths, DEFAULT_MASKED_PATHS);
        assert_eq!(sc.readonly_paths, DEFAULT_READONLY_PATHS);
        assert_eq!(
            sc.seccomp.as_ref().map(|s| s.profile_type),
            Some(cri::security_profile::ProfileType::Unconfined as i32)
        );
        assert_eq!(
            sc.namespace_options.as_ref().map(|n| n.pid),
            Some(cri::NamespaceMode::Container as i32)
        );
        assert!(sc.apparmor.is_none());

        // allowPrivilegeEscalation unset or true: no no_new_privs
        let sc = sc_for(json!({}), json!({"allowPrivilegeEscalation": true}), &IMAGE).expect("sc");
        assert!(!sc.no_new_privs);
        assert!(sc.capabilities.is_none());
        // the image user fills in when nothing is set
        assert_eq!(sc.run_as_user, Some(cri::Int64Value { value: 1000 }));
        let named = ResolvedImage {
            image_ref: "x",
            uid: None,
            username: "nginx",
        };
        let sc = sc_for(json!({}), json!({}), &named).expect("sc");
        assert_eq!(
            (sc.run_as_user, sc.run_as_username.as_str()),
            (None, "nginx")
        );
        let unset = ResolvedImage {
            image_ref: "x",
            uid: None,
            username: "",
        };
        let sc = sc_for(json!({}), json!({}), &unset).expect("sc");
        assert_eq!(
            sc.run_as_user,
            Some(cri::Int64Value { value: 0 }),
            "no user means root"
        );
    }

    #[test]
    fn privileged_and_proc_mount_paths() {
        let sc = sc_for(json!({}), json!({"privileged": true}), &IMAGE).expect("sc");
        assert!(sc.privileged);
        assert!(sc.masked_paths.is_empty() && sc.readonly_paths.is_empty());
        let sc = sc_for(json!({}), json!({"procMount": "Unmasked"}), &IMAGE).expect("sc");
        assert!(sc.masked_paths.is_empty() && sc.readonly_paths.is_empty());
        let sc = sc_for(json!({}), json!({"procMount": "Default"}), &IMAGE).expect("sc");
        assert_eq!(sc.masked_paths.len(), DEFAULT_MASKED_PATHS.len());
    }

    #[test]
    fn run_as_non_root_checks() {
        let root = ResolvedImage {
            image_ref: "x",
            uid: Some(0),
            username: "",
        };
        let named = ResolvedImage {
            image_ref: "x",
            uid: None,
            username: "app",
        };
        assert!(sc_for(json!({"runAsNonRoot": true}), json!({}), &IMAGE).is_ok());
        assert_eq!(
            sc_for(json!({"runAsNonRoot": true}), json!({}), &root).map_err(|e| e.to_string()),
            Err("container has runAsNonRoot and image will run as root (pod: \"p_n(u)\", container: c)".into())
        );
        assert_eq!(
            sc_for(json!({"runAsNonRoot": true}), json!({}), &named).map_err(|e| e.to_string()),
            Err("container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root (pod: \"p_n(u)\", container: c)".into())
        );
        assert_eq!(
            sc_for(
                json!({"runAsNonRoot": true}),
                json!({"runAsUser": 0}),
                &IMAGE
            )
            .map_err(|e| e.to_string()),
            Err(
                "container's runAsUser breaks non-root policy (pod: \"p_n(u)\", container: c)"
                    .into()
            )
        );
        // an explicit non-zero runAsUser satisfies it even with a root image
        assert!(sc_for(
            json!({"runAsNonRoot": true, "runAsUser": 7}),
            json!({}),
            &root
        )
        .is_ok());
        // the container may switch it off
        assert!(sc_for(
            json!({"runAsNonRoot": true}),
            json!({"runAsNonRoot": false}),
            &root
        )
        .is_ok());
    }

    #[test]
    fn seccomp_and_apparmor_profiles() {
        use cri::security_profile::ProfileType;
        let t = |sc: &cri::LinuxContainerSecurityContext| {
            sc.seccomp
                .as_ref()
                .map(|s| (s.profile_type, s.localhost_ref.clone()))
        };
        let sc = sc_for(
            json!({"seccompProfile": {"type": "RuntimeDefault"}}),
            json!({}),
            &IMAGE,
        )
        .expect("sc");
        assert_eq!(
            t(&sc),
            Some((ProfileType::RuntimeDefault as i32, String::new()))
        );
        let sc = sc_for(
            json!({"seccompProfile": {"type": "RuntimeDefault"}}),
            json!({"seccompProfile": {"type": "Unconfined"}}),
            &IMAGE,
        )
        .expect("sc");
        assert_eq!(
            t(&sc),
            Some((ProfileType::Unconfined as i32, String::new()))
        );
        let sc = sc_for(json!({}), json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}}), &IMAGE).expect("sc");
        assert_eq!(
            t(&sc),
            Some((
                ProfileType::Localhost as i32,
                "/var/lib/agent/seccomp/profiles/audit.json".into()
            ))
        );
        assert_eq!(
            sc_for(
                json!({}),
                json!({"seccompProfile": {"type": "Localhost"}}),
                &IMAGE
            )
            .map(|_| ()),
            Err(ConfigError::SeccompLocalhost)
        );
        // kubelet --seccomp-default
        let p = base_pod(json!([{"name": "a"}]));
        let mut c = ctx(&p, &[]);
        c.seccomp_default = true;
        let sc = container_security_context(&c, &spec(&p).containers[0], &IMAGE).expect("sc");
        assert_eq!(
            t(&sc),
            Some((ProfileType::RuntimeDefault as i32, String::new()))
        );

        let sc = sc_for(
            json!({"appArmorProfile": {"type": "RuntimeDefault"}}),
            json!({}),
            &IMAGE,
        )
        .expect("sc");
        assert_eq!(
            sc.apparmor.map(|a| a.profile_type),
            Some(ProfileType::RuntimeDefault as i32)
        );
        let sc = sc_for(
            json!({}),
            json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-x"}}),
            &IMAGE,
        )
        .expect("sc");
        assert_eq!(
            sc.apparmor.map(|a| a.localhost_ref),
            Some("k8s-x".to_string())
        );
    }

    // ---- mounts ------------------------------------------------------------------------

    fn volumes() -> BTreeMap<String, (PathBuf, bool)> {
        BTreeMap::from([
            (
                "data".to_string(),
                (PathBuf::from("/pods/u/volumes/data"), false),
            ),
            (
                "cfg".to_string(),
                (PathBuf::from("/pods/u/volumes/cfg"), true),
            ),
        ])
    }

    #[test]
    fn mounts_from_volume_mounts() {
        let c = ctr(json!({"name": "a", "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "data", "mountPath": "/sub", "subPath": "x/./y", "mountPropagation": "HostToContainer"},
            {"name": "cfg", "mountPath": "etc/app", "readOnly": false},
            {"name": "data", "mountPath": "/ro", "readOnly": true, "mountPropagation": "Bidirectional"}
        ]}));
        let ms = volume_mounts(
            &c,
            &volumes(),
            &[],
            Some(Path::new("/pods/u/etc-hosts")),
            Some(Path::new("/pods/u/containers/a/1234")),
        )
        .expect("mounts");
        let view: Vec<(&str, &str, bool, i32)> = ms
            .iter()
            .map(|m| {
                (
                    m.container_path.as_str(),
                    m.host_path.as_str(),
                    m.readonly,
                    m.propagation,
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                (
                    "/data",
                    "/pods/u/volumes/data",
                    false,
                    cri::MountPropagation::PropagationPrivate as i32
                ),
                (
                    "/sub",
                    "/pods/u/volumes/data/x/y",
                    false,
                    cri::MountPropagation::PropagationHostToContainer as i32
                ),
                (
                    "/etc/app",
                    "/pods/u/volumes/cfg",
                    true,
                    cri::MountPropagation::PropagationPrivate as i32
                ),
                (
                    "/ro",
                    "/pods/u/volumes/data",
                    true,
                    cri::MountPropagation::PropagationBidirectional as i32
                ),
                (
                    "/etc/hosts",
                    "/pods/u/etc-hosts",
                    false,
                    cri::MountPropagation::PropagationPrivate as i32
                ),
                (
                    "/dev/termination-log",
                    "/pods/u/containers/a/1234",
                    false,
                    cri::MountPropagation::PropagationPrivate as i32
                ),
            ]
        );
    }

    #[test]
    fn mounts_etc_hosts_and_termination_log_rules() {
        let own_hosts = ctr(json!({"name": "a", "terminationMessagePath": "/tmp/msg",
            "volumeMounts": [{"name": "data", "mountPath": "/etc/hosts"}]}));
        let ms = volume_mounts(
            &own_hosts,
            &volumes(),
            &[],
            Some(Path::new("/h")),
            Some(Path::new("/t")),
        )
        .expect("mounts");
        let paths: Vec<&str> = ms.iter().map(|m| m.container_path.as_str()).collect();
        assert_eq!(paths, ["/etc/hosts", "/tmp/msg"]);
        assert_eq!(ms[0].host_path, "/pods/u/volumes/data");
        let plain = ctr(json!({"name": "a"}));
        assert!(volume_mounts(&plain, &volumes(), &[], None, None)
            .expect("mounts")
            .is_empty());
        let empty_path = ctr(json!({"name": "a", "terminationMessagePath": ""}));
        assert!(
            volume_mounts(&empty_path, &volumes(), &[], None, Some(Path::new("/t")))
                .expect("mounts")
                .is_empty()
        );
    }

    #[test]
    fn mounts_reject_bad_sub_paths_and_volumes() {
        let run = |m: serde_json::Value| {
            volume_mounts(
                &ctr(json!({"name": "a", "volumeMounts": [m]})),
                &volumes(),
                &[kv("POD", "web"), kv("E", "")],
                None,
                None,
            )
            .map(|ms| ms.into_iter().map(|m| m.host_path).collect::<Vec<_>>())
            .map_err(|e| e.to_string())
        };
        assert_eq!(
            run(json!({"name": "data", "mountPath": "/x", "subPath": "../etc"})),
            Err("unable to provision SubPath `../etc`: must not contain '..'".into())
        );
        assert_eq!(
            run(json!({"name": "data", "mountPath": "/x", "subPath": "a/../../b"})),
            Err("unable to provision SubPath `a/../../b`: must not contain '..'".into())
        );
        assert_eq!(
            run(json!({"name": "data", "mountPath": "/x", "subPath": "/etc"})),
            Err("error SubPath `/etc` must not be an absolute path".into())
        );
        assert_eq!(
            run(json!({"name": "nope", "mountPath": "/x"})),
            Err("cannot find volume \"nope\" to mount into container \"a\"".into())
        );
        assert_eq!(
            run(json!({"name": "data", "mountPath": "/x", "subPath": "..data"})),
            Ok(vec!["/pods/u/volumes/data/..data".to_string()]),
            "'..' only as a whole segment"
        );
        assert_eq!(
            run(json!({"name": "data", "mountPath": "/x", "subPathExpr": "logs/$(POD)"})),
            Ok(vec!["/pods/u/volumes/data/logs/web".to_string()])
        );
        assert_eq!(
            run(json!({"name": "data", "mountPath": "/x", "subPathExpr": "$(NOPE)/$(E)"})),
            Err("missing value for E, NOPE".into())
        );
        assert_eq!(
            run(json!({"name": "data", "mountPath": "/x", "mountPropagation": "Sideways"})),
            Err("invalid MountPropagation mode: \"Sideways\"".into())
        );
        assert_eq!(
            run(
                json!({"name": "data", "mountPath": "/x", "readOnly": true, "recursiveReadOnly": "IfPossible"})
            ),
            Ok(vec!["/pods/u/volumes/data".to_string()])
        );
        assert!(run(json!({"name": "data", "mountPath": "/x", "readOnly": true, "recursiveReadOnly": "Enabled"})).is_err());
        assert!(
            run(json!({"name": "data", "mountPath": "/x", "recursiveReadOnly": "IfPossible"}))
                .is_err()
        );
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean_path("/a/./b//c/"), "/a/b/c");
        assert_eq!(clean_path("/a/../.."), "/");
        assert_eq!(clean_path("a/../../b"), "../b");
        assert_eq!(clean_path(""), ".");
    }

    // ---- /etc/hosts --------------------------------------------------------------------

    #[test]
    fn hosts_file_contents() {
        let p = pod(
            json!({"metadata": {"name": "web", "namespace": "ns1"}, "spec": {
                "containers": [],
                "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}]
            }}),
        );
        let ips = vec!["10.42.0.5".to_string()];
        assert_eq!(
            etc_hosts_content(&p, &ips, "cluster.local", None).expect("hosts"),
            "# Kubernetes-managed hosts file.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n\
             10.42.0.5\tweb\n\
             \n\
             # Entries added by HostAliases.\n\
             10.1.2.3\tfoo.local\tbar.local\n"
        );
        let p = pod(
            json!({"metadata": {"name": "web-0", "namespace": "db"}, "spec": {
            "hostname": "db-0", "subdomain": "svc", "containers": []}}),
        );
        let ips = vec!["10.42.0.6".to_string(), "fd00::6".to_string()];
        let content = etc_hosts_content(&p, &ips, "example.org", None).expect("hosts");
        assert!(content.ends_with(
            "10.42.0.6\tdb-0.svc.db.svc.example.org\tdb-0\nfd00::6\tdb-0.svc.db.svc.example.org\tdb-0\n"
        ));
        let p = pod(json!({"spec": {"hostNetwork": true, "containers": []}}));
        assert_eq!(
            etc_hosts_content(&p, &[], "cluster.local", Some("127.0.0.1 localhost\n"))
                .expect("hosts"),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n"
        );
    }
}
