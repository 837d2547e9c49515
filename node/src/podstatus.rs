//! The API status the kubelet reports for a pod, computed from the pod, its runtime
//! objects and the kubelet's own knowledge (probe results, start failures): upstream's
//! `generateAPIPodStatus` / `convertToAPIContainerStatuses` / `getPhase`
//! (pkg/kubelet/kubelet_pods.go), the probe manager's `UpdatePodStatus`, the condition
//! generators of pkg/kubelet/status/generate.go, and the status manager's normalisation
//! (lastTransitionTime kept while a condition's status holds, startTime kept, second
//! precision, termination messages capped). Pure logic, no IO.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
    VolumeMountStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::podsync::{self, RuntimePod};

pub const REASON_CONTAINER_CREATING: &str = "ContainerCreating";
pub const REASON_POD_INITIALIZING: &str = "PodInitializing";
pub const REASON_CONTAINER_STATUS_UNKNOWN: &str = "ContainerStatusUnknown";
/// Upstream's `MaxPodTerminationMessageLogLength`, shared by all containers of a pod.
pub const MAX_POD_TERMINATION_MESSAGE_LOG_LENGTH: usize = 1024 * 12;
/// The runtime name in container ids (`containerd://<id>`).
pub const RUNTIME_NAME: &str = "containerd";

/// Condition types the kubelet owns (upstream's `PodConditionsByKubelet`).
pub const KUBELET_CONDITIONS: [&str; 5] = [
    "PodScheduled",
    "Ready",
    "Initialized",
    "ContainersReady",
    "PodReadyToStartContainers",
];

static NO_WAITING: BTreeMap<String, (String, String)> = BTreeMap::new();
static NO_BOOLS: BTreeMap<String, bool> = BTreeMap::new();
static NO_MESSAGES: BTreeMap<String, String> = BTreeMap::new();

/// What the kubelet knows beyond the runtime.
#[derive(Debug, Clone, Copy)]
pub struct KubeletView<'a> {
    /// Container name → (reason, message) of its last failed start (upstream's reason
    /// cache): ErrImagePull, ImagePullBackOff, CreateContainerConfigError,
    /// CrashLoopBackOff, RunContainerError... Reported as the waiting state of a container
    /// that should (re)start. Clear an entry once the container starts.
    pub waiting: &'a BTreeMap<String, (String, String)>,
    /// Container name → readiness probe result of its current instance. Without an entry
    /// a running container is ready iff it has no readiness probe.
    pub ready: &'a BTreeMap<String, bool>,
    /// Container name → startup probe result of its current instance. Without an entry a
    /// running container is started iff it has no startup probe.
    pub started: &'a BTreeMap<String, bool>,
    /// The node IP.
    pub host_ip: &'a str,
    /// Container id → termination message read from the container's message file (or
    /// its log tail under FallbackToLogsOnError); overrides the runtime's message.
    pub termination_messages: &'a BTreeMap<String, String>,
    /// The pod is being terminated (upstream's `podIsTerminal`): stopped containers will
    /// not restart, so the phase goes terminal whatever the restart policy.
    pub terminal: bool,
}

impl Default for KubeletView<'static> {
    fn default() -> Self {
        KubeletView {
            waiting: &NO_WAITING,
            ready: &NO_BOOLS,
            started: &NO_BOOLS,
            host_ip: "",
            termination_messages: &NO_MESSAGES,
            terminal: false,
        }
    }
}

/// A timestamp at the second precision the API keeps.
pub fn truncate_to_second(t: jiff::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// A CRI nanosecond timestamp as an API time (seconds); 0 means unset.
pub fn cri_time(ns: i64) -> Option<Time> {
    if ns <= 0 {
        return None;
    }
    jiff::Timestamp::from_second(ns.div_euclid(1_000_000_000))
        .ok()
        .map(Time)
}

/// Upstream's `generateAPIPodStatus` followed by the status manager's bookkeeping.
pub fn pod_status(
    pod: &Pod,
    rt: &RuntimePod,
    view: &KubeletView,
    now: jiff::Timestamp,
) -> PodStatus {
    let now = Time(truncate_to_second(now));
    let spec = podsync::pod_spec(pod);
    let old = pod.status.clone().unwrap_or_default();
    let inits = podsync::init_containers(&spec);
    let has_inits = !inits.is_empty();

    let mut s = PodStatus::default();
    set_pod_ips(&mut s, &spec, rt, &old, view.host_ip);
    s.qos_class = Some(qos_class(&spec).to_string());

    let mut regular = convert_statuses(
        pod,
        &spec,
        rt,
        old.container_statuses.as_deref().unwrap_or(&[]),
        &spec.containers,
        has_inits,
        false,
        view,
    );
    let mut init = convert_statuses(
        pod,
        &spec,
        rt,
        old.init_container_statuses.as_deref().unwrap_or(&[]),
        inits,
        has_inits,
        true,
        view,
    );

    // Phase, from the statuses before the probe results are applied (as upstream).
    let all: Vec<ContainerStatus> = regular.iter().chain(init.iter()).cloned().collect();
    let initialized_before = has_any_regular_container_started(&spec, &all);
    let mut phase = get_phase(&spec, &all, view.terminal, initialized_before).to_string();
    let old_phase = old.phase.clone().unwrap_or_default();
    let terminal = |p: &str| p == "Succeeded" || p == "Failed";
    if !terminal(&phase) && terminal(&old_phase) {
        phase = old_phase.clone();
    }
    if phase == old_phase {
        s.reason = old.reason.clone();
        s.message = old.message.clone();
    }

    apply_probe_results(&spec, &mut regular, &mut init, view);
    let all: Vec<ContainerStatus> = init.iter().chain(regular.iter()).cloned().collect();

    // Conditions: others' first, then the kubelet's.
    let mut conditions: Vec<PodCondition> = old
        .conditions
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let (sandbox_needed, _, _) = podsync::sandbox_changed(pod, rt);
    conditions.push(condition(
        "PodReadyToStartContainers",
        !sandbox_needed,
        None,
        None,
    ));
    conditions.push(initialized_condition(&spec, &all, &phase));
    let ready = ready_condition(&spec, &conditions, &all, &phase);
    conditions.push(ready);
    conditions.push(containers_ready_condition(&spec, &all, &phase));
    conditions.push(condition("PodScheduled", true, None, None));
    let old_conditions = old.conditions.as_deref().unwrap_or(&[]);
    for c in conditions.iter_mut() {
        if !KUBELET_CONDITIONS.contains(&c.type_.as_str()) {
            continue;
        }
        let kept = old_conditions
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
            .and_then(|o| o.last_transition_time.clone());
        c.last_transition_time = Some(kept.unwrap_or_else(|| now.clone()));
    }

    s.phase = Some(phase);
    s.conditions = Some(conditions);
    if !view.host_ip.is_empty() {
        s.host_ip = Some(view.host_ip.to_string());
        s.host_ips = Some(vec![HostIP {
            ip: view.host_ip.to_string(),
        }]);
    }
    s.start_time = Some(old.start_time.clone().unwrap_or(now));

    let count = spec.containers.len() + inits.len();
    let per_status = MAX_POD_TERMINATION_MESSAGE_LOG_LENGTH / count.max(1);
    for st in regular.iter_mut().chain(init.iter_mut()) {
        truncate_message(&mut st.state, per_status);
        truncate_message(&mut st.last_state, per_status);
    }
    s.container_statuses = (!regular.is_empty()).then_some(regular);
    s.init_container_statuses = (!init.is_empty()).then_some(init);
    s
}

/// Whether two statuses differ only in condition times and condition order (the kubelet
/// can skip such a patch).
pub fn status_equal_ignoring_time(a: &PodStatus, b: &PodStatus) -> bool {
    fn norm(s: &PodStatus) -> PodStatus {
        let mut s = s.clone();
        if let Some(cs) = s.conditions.as_mut() {
            for c in cs.iter_mut() {
                c.last_transition_time = None;
                c.last_probe_time = None;
            }
            cs.sort_by(|x, y| x.type_.cmp(&y.type_));
        }
        s
    }
    norm(a) == norm(b)
}

fn truncate_message(state: &mut Option<ContainerState>, max: usize) {
    let Some(t) = state.as_mut().and_then(|s| s.terminated.as_mut()) else {
        return;
    };
    if let Some(m) = t.message.as_mut() {
        if m.len() > max {
            let mut cut = max;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
        }
    }
}

fn condition(
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.map(str::to_string),
        message,
        ..Default::default()
    }
}

/// Go's `%s` of a string slice: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn is_running_status(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}

fn terminated_of(s: &Option<ContainerState>) -> Option<&ContainerStateTerminated> {
    s.as_ref().and_then(|st| st.terminated.as_ref())
}

/// Upstream's `HasAnyRegularContainerStarted`.
fn has_any_regular_container_started(spec: &PodSpec, statuses: &[ContainerStatus]) -> bool {
    spec.containers.iter().any(|c| {
        find(statuses, &c.name).is_some_and(|s| {
            s.state
                .as_ref()
                .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
        })
    })
}

/// Upstream's `GenerateContainersReadyCondition`.
fn containers_ready_condition(
    spec: &PodSpec,
    statuses: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = podsync::init_containers(spec)
        .iter()
        .filter(|c| podsync::is_restartable_init(c));
    for c in sidecars.chain(spec.containers.iter()) {
        match find(statuses, &c.name) {
            Some(s) if !s.ready => unready.push(c.name.as_str()),
            Some(_) => {}
            None => unknown.push(c.name.as_str()),
        }
    }
    if phase == "Succeeded" && unknown.is_empty() {
        return condition("ContainersReady", false, Some("PodCompleted"), None);
    }
    if phase == "Failed" {
        return condition("ContainersReady", false, Some("PodFailed"), None);
    }
    let mut msgs = Vec::new();
    if !unknown.is_empty() {
        msgs.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !unready.is_empty() {
        msgs.push(format!(
            "containers with unready status: {}",
            go_list(&unready)
        ));
    }
    if !msgs.is_empty() {
        return condition(
            "ContainersReady",
            false,
            Some("ContainersNotReady"),
            Some(msgs.join(", ")),
        );
    }
    condition("ContainersReady", true, None, None)
}

/// Upstream's `GeneratePodReadyCondition` (readiness gates included).
fn ready_condition(
    spec: &PodSpec,
    conditions: &[PodCondition],
    statuses: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let cr = containers_ready_condition(spec, statuses, phase);
    if cr.status != "True" {
        return PodCondition {
            type_: "Ready".to_string(),
            ..cr
        };
    }
    let mut msgs = Vec::new();
    for gate in spec.readiness_gates.as_deref().unwrap_or(&[]) {
        match conditions.iter().find(|c| c.type_ == gate.condition_type) {
            None => msgs.push(format!(
                "corresponding condition of pod readiness gate {:?} does not exist.",
                gate.condition_type
            )),
            Some(c) if c.status != "True" => msgs.push(format!(
                "the status of pod readiness gate {:?} is not \"True\", but {}",
                gate.condition_type, c.status
            )),
            Some(_) => {}
        }
    }
    if !msgs.is_empty() {
        return condition(
            "Ready",
            false,
            Some("ReadinessGatesNotReady"),
            Some(msgs.join(", ")),
        );
    }
    condition("Ready", true, None, None)
}

/// Upstream's `GeneratePodInitializedCondition`.
fn initialized_condition(
    spec: &PodSpec,
    statuses: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for c in podsync::init_containers(spec) {
        let Some(s) = find(statuses, &c.name) else {
            unknown.push(c.name.as_str());
            continue;
        };
        let done = if podsync::is_restartable_init(c) {
            s.started == Some(true)
        } else {
            s.ready
        };
        if !done {
            incomplete.push(c.name.as_str());
        }
    }
    if phase == "Succeeded" && unknown.is_empty() {
        return condition("Initialized", true, Some("PodCompleted"), None);
    }
    if has_any_regular_container_started(spec, statuses) {
        return condition("Initialized", true, None, None);
    }
    let mut msgs = Vec::new();
    if !unknown.is_empty() {
        msgs.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !incomplete.is_empty() {
        msgs.push(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        ));
    }
    if !msgs.is_empty() {
        return condition(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(msgs.join(", ")),
        );
    }
    condition("Initialized", true, None, None)
}

/// Upstream's `getPhase` (without the ContainerRestartRules gate, off in 1.33).
pub fn get_phase(
    spec: &PodSpec,
    info: &[ContainerStatus],
    pod_is_terminal: bool,
    pod_has_initialized: bool,
) -> &'static str {
    let mut pending_sidecars = 0;
    let mut pending_inits = 0;
    let mut failed_inits = 0;
    let inits = podsync::init_containers(spec);
    for c in inits.iter().filter(|c| !podsync::is_restartable_init(c)) {
        let Some(s) = find(info, &c.name) else {
            pending_inits += 1;
            continue;
        };
        let st = s.state.clone().unwrap_or_default();
        if st.running.is_some() {
            pending_inits += 1;
        } else if let Some(t) = &st.terminated {
            if t.exit_code != 0 {
                failed_inits += 1;
            }
        } else if st.waiting.is_some() {
            match terminated_of(&s.last_state) {
                Some(t) => {
                    if t.exit_code != 0 {
                        failed_inits += 1;
                    }
                }
                None => pending_inits += 1,
            }
        } else {
            pending_inits += 1;
        }
    }

    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in inits.iter().filter(|c| podsync::is_restartable_init(c)) {
        let Some(s) = find(info, &c.name) else {
            unknown += 1;
            continue;
        };
        let st = s.state.clone().unwrap_or_default();
        if st.running.is_some() {
            if s.started != Some(true) {
                pending_sidecars += 1;
            }
            running += 1;
        } else if st.terminated.is_some() {
        } else if st.waiting.is_some() {
            if terminated_of(&s.last_state).is_none() {
                pending_sidecars += 1;
                waiting += 1;
            }
        } else {
            pending_sidecars += 1;
            unknown += 1;
        }
    }
    for c in &spec.containers {
        let Some(s) = find(info, &c.name) else {
            unknown += 1;
            continue;
        };
        let st = s.state.clone().unwrap_or_default();
        if st.running.is_some() {
            running += 1;
        } else if let Some(t) = &st.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if st.waiting.is_some() {
            if terminated_of(&s.last_state).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }

    let policy = podsync::restart_policy(spec);
    if failed_inits > 0 && policy == "Never" {
        return "Failed";
    }
    if pending_inits > 0 || (pending_sidecars > 0 && !pod_has_initialized) || waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

/// The probe manager's `UpdatePodStatus`: `started` and `ready` of every container.
fn apply_probe_results(
    spec: &PodSpec,
    regular: &mut [ContainerStatus],
    init: &mut [ContainerStatus],
    view: &KubeletView,
) {
    let spec_of = |name: &str| {
        podsync::init_containers(spec)
            .iter()
            .chain(spec.containers.iter())
            .find(|c| c.name == name)
            .cloned()
            .unwrap_or_default()
    };
    let is_started = |c: &Container, s: &ContainerStatus| {
        if !is_running_status(s) {
            return false;
        }
        match view.started.get(&s.name) {
            Some(v) => *v,
            None => c.startup_probe.is_none(),
        }
    };
    let is_ready = |c: &Container, s: &ContainerStatus| {
        is_running_status(s)
            && (view.ready.get(&s.name).copied().unwrap_or(false) || c.readiness_probe.is_none())
    };
    for s in regular.iter_mut() {
        let c = spec_of(&s.name);
        let started = is_started(&c, s);
        s.started = Some(started);
        if started {
            s.ready = is_ready(&c, s);
        }
    }
    for s in init.iter_mut() {
        let c = spec_of(&s.name);
        let started = is_started(&c, s);
        s.started = Some(started);
        if !podsync::is_restartable_init(&c) {
            if terminated_of(&s.state).is_some_and(|t| t.exit_code == 0) {
                s.ready = true;
            }
            continue;
        }
        if started {
            s.ready = is_ready(&c, s);
        }
    }
}

/// The volume mounts a container status lists (RecursiveReadOnlyMounts: containerd 1.6
/// cannot do recursive read-only, so read-only mounts report Disabled).
fn volume_mount_statuses(c: &Container) -> Option<Vec<VolumeMountStatus>> {
    let mounts = c.volume_mounts.as_deref().unwrap_or(&[]);
    if mounts.is_empty() {
        return None;
    }
    Some(
        mounts
            .iter()
            .map(|m| {
                let ro = m.read_only.unwrap_or(false);
                VolumeMountStatus {
                    name: m.name.clone(),
                    mount_path: m.mount_path.clone(),
                    read_only: ro.then_some(true),
                    recursive_read_only: ro.then(|| "Disabled".to_string()),
                }
            })
            .collect(),
    )
}

fn waiting(reason: Option<&str>, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: reason.map(str::to_string),
            message: message.filter(|m| !m.is_empty()).map(str::to_string),
        }),
        ..Default::default()
    }
}

fn terminated_unknown(message: &str) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            reason: Some(REASON_CONTAINER_STATUS_UNKNOWN.to_string()),
            message: Some(message.to_string()),
            exit_code: 137,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One runtime instance as an API container status (upstream's `convertContainerStatus`).
fn convert_instance(
    c: &Container,
    inst: &cri::ContainerStatus,
    old: Option<&ContainerStatus>,
    view: &KubeletView,
) -> ContainerStatus {
    let cid = format!("{RUNTIME_NAME}://{}", inst.id);
    let image = inst
        .image
        .as_ref()
        .map(|i| i.image.clone())
        .filter(|i| !i.is_empty())
        .or_else(|| c.image.clone())
        .unwrap_or_default();
    let mut status = ContainerStatus {
        name: c.name.clone(),
        restart_count: i32::try_from(podsync::restart_count_of(inst)).unwrap_or(i32::MAX),
        image,
        image_id: inst.image_ref.clone(),
        container_id: Some(cid.clone()),
        volume_mounts: old
            .and_then(|o| o.volume_mounts.clone())
            .or_else(|| volume_mount_statuses(c)),
        ..Default::default()
    };
    let state = podsync::state_of(inst);
    status.state = Some(match state {
        cri::ContainerState::ContainerRunning => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: cri_time(inst.started_at),
            }),
            ..Default::default()
        },
        cri::ContainerState::ContainerCreated => waiting(None, None),
        cri::ContainerState::ContainerExited => {
            let reason = if !inst.reason.is_empty() {
                inst.reason.clone()
            } else if inst.exit_code == 0 {
                "Completed".to_string()
            } else {
                "Error".to_string()
            };
            let message = view
                .termination_messages
                .get(&inst.id)
                .filter(|m| !m.is_empty())
                .cloned()
                .unwrap_or_else(|| inst.message.clone());
            ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: inst.exit_code,
                    reason: Some(reason),
                    message: (!message.is_empty()).then_some(message),
                    started_at: cri_time(inst.started_at),
                    finished_at: cri_time(inst.finished_at),
                    container_id: Some(cid),
                    signal: None,
                }),
                ..Default::default()
            }
        }
        cri::ContainerState::ContainerUnknown => match old {
            Some(o) if o.state.as_ref().is_some_and(|s| s.running.is_some()) => {
                status.restart_count = o.restart_count.saturating_add(1);
                terminated_unknown("The container could not be located when the pod was terminated")
            }
            _ => waiting(None, None),
        },
    });
    if state == cri::ContainerState::ContainerRunning {
        if let Some(started) = old.and_then(|o| o.started) {
            status.started = Some(started);
        }
    }
    status.resources = Some(c.resources.clone().unwrap_or_default());
    status.allocated_resources = c
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .filter(|r| !r.is_empty());
    status
}

/// Upstream's `convertToAPIContainerStatuses` for one list of the spec.
#[allow(clippy::too_many_arguments)]
fn convert_statuses(
    pod: &Pod,
    spec: &PodSpec,
    rt: &RuntimePod,
    previous: &[ContainerStatus],
    containers: &[Container],
    has_inits: bool,
    is_init: bool,
    view: &KubeletView,
) -> Vec<ContainerStatus> {
    let old: BTreeMap<&str, &ContainerStatus> =
        previous.iter().map(|s| (s.name.as_str(), s)).collect();
    let default_reason = if has_inits {
        REASON_POD_INITIALIZING
    } else {
        REASON_CONTAINER_CREATING
    };
    let mut statuses: BTreeMap<String, ContainerStatus> = BTreeMap::new();
    for c in containers {
        let mut st = ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            state: Some(waiting(Some(default_reason), None)),
            volume_mounts: volume_mount_statuses(c),
            ..Default::default()
        };
        if let Some(o) = old.get(c.name.as_str()) {
            if terminated_of(&o.state).is_some() {
                st = (*o).clone();
            } else {
                st.restart_count = o.restart_count;
                st.last_state = o.last_state.clone();
            }
        }
        statuses.insert(c.name.clone(), st);
    }

    // A container that vanished from the runtime while running did terminate.
    for c in containers {
        if podsync::latest(rt, &c.name).is_some() {
            continue;
        }
        let Some(o) = old.get(c.name.as_str()) else {
            continue;
        };
        if terminated_of(&o.state).is_some() || !is_running_status(o) {
            continue;
        }
        let Some(st) = statuses.get_mut(&c.name) else {
            continue;
        };
        let is_default = st
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .is_some_and(|w| w.reason.as_deref() == Some(default_reason));
        if !is_default || terminated_of(&st.last_state).is_some() {
            continue;
        }
        st.last_state = Some(terminated_unknown(
            "The container could not be located when the pod was deleted.  The container used to be Running",
        ));
        if pod.metadata.deletion_timestamp.is_none() {
            st.restart_count = st.restart_count.saturating_add(1);
        }
    }

    // The newest instance gives the state, the one before it the last state.
    for c in containers {
        for (seen, inst) in podsync::instances(rt, &c.name)
            .into_iter()
            .take(2)
            .enumerate()
        {
            let converted = convert_instance(c, inst, old.get(c.name.as_str()).copied(), view);
            if seen == 0 {
                statuses.insert(c.name.clone(), converted);
            } else if let Some(st) = statuses.get_mut(&c.name) {
                st.last_state = converted.state;
            }
        }
    }

    // Containers that failed to start, or wait to restart, are Waiting with the reason.
    for c in containers {
        let latest = podsync::latest(rt, &c.name);
        if is_init {
            if latest.is_some_and(|s| podsync::is_exited(s) && s.exit_code == 0) {
                continue;
            }
            let still_waiting = statuses
                .get(&c.name)
                .is_some_and(|s| s.state.as_ref().is_some_and(|st| st.waiting.is_some()));
            if latest.is_none()
                && podsync::has_any_regular_container_created(spec, rt)
                && !podsync::is_restartable_init(c)
                && still_waiting
            {
                if let Some(st) = statuses.get_mut(&c.name) {
                    st.state = Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            reason: Some("Completed".to_string()),
                            message: Some("Unable to get init container status from container runtime and pod has been initialized, treat it as exited normally".to_string()),
                            exit_code: 0,
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                }
                continue;
            }
        }
        if !podsync::should_container_be_restarted(pod, spec, latest) {
            continue;
        }
        let Some((reason, message)) = view.waiting.get(&c.name) else {
            continue;
        };
        if let Some(st) = statuses.get_mut(&c.name) {
            if terminated_of(&st.state).is_some() {
                st.last_state = st.state.clone();
            }
            st.state = Some(waiting(Some(reason), Some(message)));
        }
    }

    if is_init {
        containers
            .iter()
            .filter_map(|c| statuses.remove(&c.name))
            .collect()
    } else {
        // Upstream sorts regular container statuses by name.
        statuses.into_values().collect()
    }
}

/// podIP/podIPs from the newest sandbox when ready (the node's family first, then one of
/// the other family); kept from the old status once no sandbox is ready; the node IP for
/// hostNetwork pods.
fn set_pod_ips(s: &mut PodStatus, spec: &PodSpec, rt: &RuntimePod, old: &PodStatus, host_ip: &str) {
    let sandboxes = podsync::sorted_sandboxes(rt);
    let mut raw: Vec<&str> = Vec::new();
    if let Some(sb) = sandboxes.first().filter(|sb| podsync::sandbox_ready(sb)) {
        if let Some(net) = &sb.network {
            raw.push(net.ip.as_str());
            raw.extend(net.additional_ips.iter().map(|p| p.ip.as_str()));
        }
    }
    let ips = sort_pod_ips(&raw, host_ip);
    if !ips.is_empty() {
        s.pod_ip = Some(ips[0].clone());
        s.pod_ips = Some(ips.into_iter().map(|ip| PodIP { ip }).collect());
    } else if !sandboxes.iter().any(|sb| podsync::sandbox_ready(sb)) {
        s.pod_ip = old.pod_ip.clone();
        s.pod_ips = old.pod_ips.clone();
    }
    if spec.host_network.unwrap_or(false)
        && s.pod_ip.as_deref().unwrap_or("").is_empty()
        && !host_ip.is_empty()
    {
        s.pod_ip = Some(host_ip.to_string());
        s.pod_ips = Some(vec![PodIP {
            ip: host_ip.to_string(),
        }]);
    }
}

/// Upstream's `sortPodIPs`.
fn sort_pod_ips(ips: &[&str], host_ip: &str) -> Vec<String> {
    let node_v6 = host_ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6());
    let parsed: Vec<IpAddr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
    let mut out = Vec::new();
    if let Some(ip) = parsed.iter().find(|ip| ip.is_ipv6() == node_v6) {
        out.push(ip.to_string());
    }
    if let Some(ip) = parsed.iter().find(|ip| ip.is_ipv6() != node_v6) {
        out.push(ip.to_string());
    }
    out
}

/// A quantity in nano-units (enough to sum and compare CPU and memory amounts).
pub fn parse_quantity_nanos(q: &str) -> Option<i128> {
    crate::quantity::Quantity::parse(q).ok().map(|q| q.nanos())
}

/// Upstream's `GetPodQOS` (container-level resources, cpu and memory only).
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let all = spec
        .containers
        .iter()
        .chain(podsync::init_containers(spec).iter());
    for c in all {
        let res = c.resources.clone().unwrap_or_default();
        for (name, q) in res.requests.iter().flatten() {
            let name = name.as_str();
            if name != "cpu" && name != "memory" {
                continue;
            }
            if let Some(v) = parse_quantity_nanos(&q.0).filter(|v| *v > 0) {
                let key = if name == "cpu" { "cpu" } else { "memory" };
                *requests.entry(key).or_default() += v;
            }
        }
        let mut found = (false, false);
        for (name, q) in res.limits.iter().flatten() {
            let name = name.as_str();
            if name != "cpu" && name != "memory" {
                continue;
            }
            if let Some(v) = parse_quantity_nanos(&q.0).filter(|v| *v > 0) {
                let key = if name == "cpu" {
                    found.0 = true;
                    "cpu"
                } else {
                    found.1 = true;
                    "memory"
                };
                *limits.entry(key).or_default() += v;
            }
        }
        if !(found.0 && found.1) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        for (name, req) in &requests {
            if limits.get(name) != Some(req) {
                guaranteed = false;
                break;
            }
        }
    }
    if guaranteed && requests.len() == limits.len() {
        return "Guaranteed";
    }
    "Burstable"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podsync::tests::{exited, inst, now, ns, pod_with, rt, sandbox, with_level, NOW_S};
    use crate::podsync::{compute_pod_actions, ProbeState, REASON_CRASH_LOOP_BACK_OFF};
    use cri::ContainerState::{ContainerCreated as CREATED, ContainerRunning as RUNNING};
    use k8s_openapi::api::core::v1::{PodReadinessGate, Probe, ResourceRequirements, VolumeMount};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn t(secs_before_now: i64) -> Time {
        Time(jiff::Timestamp::from_second(NOW_S - secs_before_now).unwrap())
    }

    fn view() -> KubeletView<'static> {
        KubeletView {
            host_ip: "192.168.1.10",
            ..Default::default()
        }
    }

    fn cond<'a>(s: &'a PodStatus, type_: &str) -> &'a PodCondition {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap()
    }

    fn cs<'a>(s: &'a PodStatus, name: &str) -> &'a ContainerStatus {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
            .find(|c| c.name == name)
            .unwrap()
    }

    fn summary(c: &PodCondition) -> (&str, Option<&str>, Option<&str>) {
        (c.status.as_str(), c.reason.as_deref(), c.message.as_deref())
    }

    /// Feeds a generated status back as the pod's current status.
    fn posted(pod: &Pod, status: PodStatus) -> Pod {
        let mut p = pod.clone();
        p.status = Some(status);
        p
    }

    #[test]
    fn new_pod_is_pending_with_container_creating() {
        let pod = pod_with("Always", &[], &["a", "b"]);
        let s = pod_status(&pod, &RuntimePod::default(), &view(), now());
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        assert_eq!(s.host_ip.as_deref(), Some("192.168.1.10"));
        assert_eq!(s.host_ips.as_ref().unwrap()[0].ip, "192.168.1.10");
        assert_eq!(s.pod_ip, None);
        assert_eq!(s.start_time, Some(t(0)));
        let a = cs(&s, "a");
        assert_eq!(a.image, "busybox");
        assert_eq!(a.started, Some(false));
        assert!(!a.ready);
        let w = a.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(w.reason.as_deref(), Some("ContainerCreating"));
        let types: Vec<&str> = s
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(
            types,
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled"
            ]
        );
        assert_eq!(
            summary(cond(&s, "PodReadyToStartContainers")),
            ("False", None, None)
        );
        assert_eq!(summary(cond(&s, "Initialized")), ("True", None, None));
        assert_eq!(
            summary(cond(&s, "Ready")),
            (
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [a b]")
            )
        );
        assert_eq!(
            summary(cond(&s, "ContainersReady")),
            (
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [a b]")
            )
        );
        assert_eq!(summary(cond(&s, "PodScheduled")), ("True", None, None));
        assert_eq!(cond(&s, "Ready").last_transition_time, Some(t(0)));
    }

    #[test]
    fn running_pod_reports_ips_states_and_readiness() {
        let mut pod = pod_with("Always", &[], &["a", "b"]);
        pod.spec.as_mut().unwrap().containers[1].readiness_probe = Some(Probe::default());
        let mut sb = sandbox("s1", 0, true, 100);
        sb.network.as_mut().unwrap().additional_ips = vec![cri::PodIp {
            ip: "fd00::7".into(),
        }];
        let r = rt(
            vec![sb],
            vec![
                inst(&pod, "b", 0, RUNNING, 60),
                inst(&pod, "a", 0, RUNNING, 90),
            ],
        );
        let s = pod_status(&pod, &r, &view(), now());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.42.0.7"));
        let ips: Vec<&str> = s
            .pod_ips
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.ip.as_str())
            .collect();
        assert_eq!(ips, ["10.42.0.7", "fd00::7"]);
        let names: Vec<&str> = s
            .container_statuses
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let a = cs(&s, "a");
        assert!(a.ready);
        assert_eq!(a.started, Some(true));
        assert_eq!(a.container_id.as_deref(), Some("containerd://a-0"));
        assert_eq!(a.image, "docker.io/library/busybox:latest");
        assert_eq!(a.image_id, "docker.io/library/busybox@sha256:abc");
        assert_eq!(
            a.state
                .as_ref()
                .unwrap()
                .running
                .as_ref()
                .unwrap()
                .started_at,
            Some(t(89))
        );
        // b has a readiness probe without a result yet.
        assert!(!cs(&s, "b").ready);
        assert_eq!(
            cond(&s, "Ready").message.as_deref(),
            Some("containers with unready status: [b]")
        );
        assert_eq!(
            summary(cond(&s, "PodReadyToStartContainers")),
            ("True", None, None)
        );
        // The readiness probe passes.
        let ready = BTreeMap::from([("b".to_string(), true)]);
        let v = KubeletView {
            ready: &ready,
            ..view()
        };
        let s = pod_status(&pod, &r, &v, now());
        assert_eq!(summary(cond(&s, "Ready")), ("True", None, None));
        assert_eq!(summary(cond(&s, "ContainersReady")), ("True", None, None));
    }

    #[test]
    fn pending_to_running_to_succeeded_keeps_transition_times() {
        let pod = pod_with("OnFailure", &[], &["a"]);
        let s1 = pod_status(&pod, &RuntimePod::default(), &view(), now());
        let pod = posted(&pod, s1.clone());
        let later = jiff::Timestamp::from_second(NOW_S + 30).unwrap();
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![inst(&pod, "a", 0, RUNNING, 5)],
        );
        let s2 = pod_status(&pod, &r, &view(), later);
        assert_eq!(s2.phase.as_deref(), Some("Running"));
        // Unchanged conditions keep their time, flipped ones get the new time.
        assert_eq!(cond(&s2, "PodScheduled").last_transition_time, Some(t(0)));
        assert_eq!(cond(&s2, "Initialized").last_transition_time, Some(t(0)));
        assert_eq!(cond(&s2, "Ready").last_transition_time, Some(t(-30)));
        assert_eq!(
            cond(&s2, "PodReadyToStartContainers").last_transition_time,
            Some(t(-30))
        );
        assert_eq!(s2.start_time, Some(t(0)));
        // Same inputs again: equal, so the kubelet skips the patch.
        let pod = posted(&pod, s2.clone());
        let again = pod_status(
            &pod,
            &r,
            &view(),
            jiff::Timestamp::from_second(NOW_S + 60).unwrap(),
        );
        assert_eq!(again, s2);
        assert!(status_equal_ignoring_time(&again, &s2));

        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![exited(inst(&pod, "a", 0, RUNNING, 5), 0, 1)],
        );
        let s3 = pod_status(&pod, &r, &view(), later);
        assert_eq!(s3.phase.as_deref(), Some("Succeeded"));
        assert_eq!(
            summary(cond(&s3, "Ready")),
            ("False", Some("PodCompleted"), None)
        );
        assert_eq!(
            summary(cond(&s3, "ContainersReady")),
            ("False", Some("PodCompleted"), None)
        );
        assert_eq!(
            summary(cond(&s3, "Initialized")),
            ("True", Some("PodCompleted"), None)
        );
        let term = cs(&s3, "a").state.clone().unwrap().terminated.unwrap();
        assert_eq!(term.exit_code, 0);
        assert_eq!(term.reason.as_deref(), Some("Completed"));
        assert_eq!(term.container_id.as_deref(), Some("containerd://a-0"));
        assert_eq!(term.started_at, Some(t(4)));
        assert_eq!(term.finished_at, Some(t(1)));
        assert!(!status_equal_ignoring_time(&s3, &s2));
        // The sandbox stops: the IP stays, the phase cannot leave Succeeded.
        let pod = posted(&pod, s3);
        let r = rt(vec![sandbox("s1", 0, false, 100)], vec![]);
        let s4 = pod_status(&pod, &r, &view(), later);
        assert_eq!(s4.pod_ip.as_deref(), Some("10.42.0.7"));
        assert_eq!(s4.phase.as_deref(), Some("Succeeded"));
    }

    #[test]
    fn phase_by_restart_policy_when_containers_exit() {
        for (policy, code, phase) in [
            ("Always", 0, "Running"),
            ("Always", 1, "Running"),
            ("OnFailure", 0, "Succeeded"),
            ("OnFailure", 1, "Running"),
            ("Never", 0, "Succeeded"),
            ("Never", 1, "Failed"),
        ] {
            let pod = pod_with(policy, &[], &["a"]);
            let r = rt(
                vec![sandbox("s1", 0, true, 100)],
                vec![exited(inst(&pod, "a", 0, RUNNING, 50), code, 10)],
            );
            let s = pod_status(&pod, &r, &view(), now());
            assert_eq!(s.phase.as_deref(), Some(phase), "{policy} {code}");
            let term = cs(&s, "a").state.clone().unwrap().terminated.unwrap();
            assert_eq!(
                term.reason.as_deref(),
                Some(if code == 0 { "Completed" } else { "Error" })
            );
            // A terminating pod goes terminal whatever the policy.
            let v = KubeletView {
                terminal: true,
                ..view()
            };
            let s = pod_status(&pod, &r, &v, now());
            assert_eq!(
                s.phase.as_deref(),
                Some(if code == 0 { "Succeeded" } else { "Failed" })
            );
        }
        let pod = pod_with("Never", &[], &["a"]);
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![exited(inst(&pod, "a", 0, RUNNING, 50), 1, 10)],
        );
        let s = pod_status(&pod, &r, &view(), now());
        assert_eq!(
            summary(cond(&s, "Ready")),
            ("False", Some("PodFailed"), None)
        );
        assert_eq!(summary(cond(&s, "Initialized")), ("True", None, None));
    }

    #[test]
    fn oom_killed_and_termination_message() {
        let pod = pod_with("Never", &[], &["a"]);
        let mut c = exited(inst(&pod, "a", 0, RUNNING, 50), 137, 10);
        c.reason = "OOMKilled".into();
        c.message = "runtime says".into();
        let r = rt(vec![sandbox("s1", 0, true, 100)], vec![c]);
        let s = pod_status(&pod, &r, &view(), now());
        let term = cs(&s, "a").state.clone().unwrap().terminated.unwrap();
        assert_eq!(term.reason.as_deref(), Some("OOMKilled"));
        assert_eq!(term.exit_code, 137);
        assert_eq!(term.message.as_deref(), Some("runtime says"));
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let msgs = BTreeMap::from([("a-0".to_string(), "x".repeat(20_000))]);
        let v = KubeletView {
            termination_messages: &msgs,
            ..view()
        };
        let s = pod_status(&pod, &r, &v, now());
        let term = cs(&s, "a").state.clone().unwrap().terminated.unwrap();
        assert_eq!(
            term.message.map(|m| m.len()),
            Some(MAX_POD_TERMINATION_MESSAGE_LOG_LENGTH)
        );
    }

    #[test]
    fn crash_loop_back_off_shows_waiting_with_last_state() {
        let pod = pod_with("Always", &[], &["a"]);
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![
                exited(inst(&pod, "a", 0, RUNNING, 60), 1, 50),
                with_level(exited(inst(&pod, "a", 1, RUNNING, 20), 2, 3), 1),
            ],
        );
        let actions = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        let b = &actions.backoff[0];
        let waiting_map = BTreeMap::from([(
            b.name.clone(),
            (REASON_CRASH_LOOP_BACK_OFF.to_string(), b.message.clone()),
        )]);
        let v = KubeletView {
            waiting: &waiting_map,
            ..view()
        };
        let s = pod_status(&pod, &r, &v, now());
        let a = cs(&s, "a");
        assert_eq!(a.restart_count, 1);
        let w = a.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(w.reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(
            w.message.as_deref(),
            Some("back-off 10s restarting failed container=a pod=web_default(uid-1)")
        );
        let last = a.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 2);
        assert_eq!(last.container_id.as_deref(), Some("containerd://a-1"));
        // Waiting with a last termination counts as stopped: still Running.
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(
            cond(&s, "ContainersReady").message.as_deref(),
            Some("containers with unready status: [a]")
        );

        // Without a reason the newest instance is terminated, the older one the last state.
        let s = pod_status(&pod, &r, &view(), now());
        let a = cs(&s, "a");
        assert_eq!(
            a.state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            2
        );
        assert_eq!(
            a.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
    }

    #[test]
    fn restarted_container_reports_previous_run_as_last_state() {
        let pod = pod_with("Always", &[], &["a"]);
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![
                exited(inst(&pod, "a", 0, RUNNING, 60), 137, 30),
                inst(&pod, "a", 1, RUNNING, 20),
            ],
        );
        let s = pod_status(&pod, &r, &view(), now());
        let a = cs(&s, "a");
        assert_eq!(a.restart_count, 1);
        assert!(a.state.as_ref().unwrap().running.is_some());
        assert_eq!(a.container_id.as_deref(), Some("containerd://a-1"));
        let last = a.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 137);
        assert_eq!(last.reason.as_deref(), Some("Error"));
        assert_eq!(last.finished_at, Some(t(30)));
        assert!(a.ready);
    }

    #[test]
    fn image_pull_errors_show_as_waiting() {
        let pod = pod_with("Always", &[], &["a"]);
        let waiting_map = BTreeMap::from([(
            "a".to_string(),
            (
                "ErrImagePull".to_string(),
                "failed to pull image \"nope\"".to_string(),
            ),
        )]);
        let v = KubeletView {
            waiting: &waiting_map,
            ..view()
        };
        let r = rt(vec![sandbox("s1", 0, true, 100)], vec![]);
        let s = pod_status(&pod, &r, &v, now());
        let w = cs(&s, "a").state.clone().unwrap().waiting.unwrap();
        assert_eq!(w.reason.as_deref(), Some("ErrImagePull"));
        assert_eq!(w.message.as_deref(), Some("failed to pull image \"nope\""));
        assert_eq!(s.phase.as_deref(), Some("Pending"));
    }

    #[test]
    fn init_containers_progress_and_conditions() {
        let pod = pod_with("Always", &["i1", "i2"], &["a"]);
        let s0 = vec![sandbox("s1", 0, true, 100)];
        // i1 running.
        let r = rt(s0.clone(), vec![inst(&pod, "i1", 0, RUNNING, 50)]);
        let s = pod_status(&pod, &r, &view(), now());
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(
            summary(cond(&s, "Initialized")),
            (
                "False",
                Some("ContainersNotInitialized"),
                Some("containers with incomplete status: [i1 i2]")
            )
        );
        let names: Vec<&str> = s
            .init_container_statuses
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["i1", "i2"]);
        assert_eq!(
            cs(&s, "i2")
                .state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        assert_eq!(
            cs(&s, "a")
                .state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        // Both done, app running.
        let r = rt(
            s0.clone(),
            vec![
                exited(inst(&pod, "i1", 0, RUNNING, 50), 0, 45),
                exited(inst(&pod, "i2", 0, RUNNING, 40), 0, 35),
                inst(&pod, "a", 0, RUNNING, 30),
            ],
        );
        let s = pod_status(&pod, &r, &view(), now());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(summary(cond(&s, "Initialized")), ("True", None, None));
        assert!(cs(&s, "i1").ready && cs(&s, "i2").ready);
        assert_eq!(summary(cond(&s, "Ready")), ("True", None, None));
        // The init containers got garbage collected: still reported as completed.
        let r = rt(s0.clone(), vec![inst(&pod, "a", 0, RUNNING, 30)]);
        let s = pod_status(&pod, &r, &view(), now());
        let term = cs(&s, "i1").state.clone().unwrap().terminated.unwrap();
        assert_eq!(term.reason.as_deref(), Some("Completed"));
        assert_eq!(s.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn failed_init_container_fails_pod_under_never_only() {
        for (policy, phase) in [
            ("Never", "Failed"),
            ("OnFailure", "Pending"),
            ("Always", "Pending"),
        ] {
            let pod = pod_with(policy, &["i1"], &["a"]);
            let r = rt(
                vec![sandbox("s1", 0, true, 100)],
                vec![exited(inst(&pod, "i1", 0, RUNNING, 50), 3, 45)],
            );
            let s = pod_status(&pod, &r, &view(), now());
            assert_eq!(s.phase.as_deref(), Some(phase), "{policy}");
            assert_eq!(
                summary(cond(&s, "Initialized")),
                (
                    "False",
                    Some("ContainersNotInitialized"),
                    Some("containers with incomplete status: [i1]")
                ),
                "{policy}"
            );
        }
        // An init container in back-off (waiting, last state failed) under OnFailure.
        let pod = pod_with("OnFailure", &["i1"], &["a"]);
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![exited(inst(&pod, "i1", 0, RUNNING, 50), 3, 45)],
        );
        let waiting_map = BTreeMap::from([(
            "i1".to_string(),
            ("CrashLoopBackOff".to_string(), "back-off".to_string()),
        )]);
        let v = KubeletView {
            waiting: &waiting_map,
            ..view()
        };
        let s = pod_status(&pod, &r, &v, now());
        let i1 = cs(&s, "i1");
        assert!(i1.state.as_ref().unwrap().waiting.is_some());
        assert_eq!(
            i1.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            3
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));
    }

    #[test]
    fn created_container_is_waiting_without_reason() {
        let pod = pod_with("Always", &[], &["a"]);
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![inst(&pod, "a", 0, CREATED, 5)],
        );
        let s = pod_status(&pod, &r, &view(), now());
        let w = cs(&s, "a").state.clone().unwrap().waiting.unwrap();
        assert_eq!(w.reason, None);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
    }

    #[test]
    fn vanished_running_container_gets_unknown_last_state() {
        let pod = pod_with("Always", &[], &["a"]);
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![inst(&pod, "a", 0, RUNNING, 50)],
        );
        let s = pod_status(&pod, &r, &view(), now());
        let pod = posted(&pod, s);
        let s = pod_status(
            &pod,
            &rt(vec![sandbox("s1", 0, true, 100)], vec![]),
            &view(),
            now(),
        );
        let a = cs(&s, "a");
        assert_eq!(a.restart_count, 1);
        let last = a.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.reason.as_deref(), Some("ContainerStatusUnknown"));
        assert_eq!(last.exit_code, 137);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        // An instance in unknown state that was running reads as terminated.
        let pod2 = pod_with("Always", &[], &["a"]);
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![inst(&pod2, "a", 0, RUNNING, 50)],
        );
        let pod2 = posted(&pod2, pod_status(&pod2, &r, &view(), now()));
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![inst(
                &pod2,
                "a",
                0,
                cri::ContainerState::ContainerUnknown,
                50,
            )],
        );
        let s = pod_status(&pod2, &r, &view(), now());
        let term = cs(&s, "a").state.clone().unwrap().terminated.unwrap();
        assert_eq!(term.reason.as_deref(), Some("ContainerStatusUnknown"));
        assert_eq!(cs(&s, "a").restart_count, 1);
    }

    #[test]
    fn startup_probe_gates_started_and_ready() {
        let mut pod = pod_with("Always", &[], &["a"]);
        pod.spec.as_mut().unwrap().containers[0].startup_probe = Some(Probe::default());
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![inst(&pod, "a", 0, RUNNING, 50)],
        );
        let s = pod_status(&pod, &r, &view(), now());
        assert_eq!(cs(&s, "a").started, Some(false));
        assert!(!cs(&s, "a").ready);
        let started = BTreeMap::from([("a".to_string(), true)]);
        let v = KubeletView {
            started: &started,
            ..view()
        };
        let s = pod_status(&pod, &r, &v, now());
        assert_eq!(cs(&s, "a").started, Some(true));
        assert!(cs(&s, "a").ready);
    }

    #[test]
    fn readiness_gates_and_foreign_conditions() {
        let mut pod = pod_with("Always", &[], &["a"]);
        pod.spec.as_mut().unwrap().readiness_gates = Some(vec![PodReadinessGate {
            condition_type: "example.com/lb".into(),
        }]);
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![inst(&pod, "a", 0, RUNNING, 50)],
        );
        let s = pod_status(&pod, &r, &view(), now());
        assert_eq!(
            summary(cond(&s, "Ready")),
            (
                "False",
                Some("ReadinessGatesNotReady"),
                Some("corresponding condition of pod readiness gate \"example.com/lb\" does not exist.")
            )
        );
        let mut old = s.clone();
        old.conditions.as_mut().unwrap().insert(
            0,
            PodCondition {
                type_: "example.com/lb".into(),
                status: "True".into(),
                last_transition_time: Some(t(500)),
                ..Default::default()
            },
        );
        let pod = posted(&pod, old);
        let s = pod_status(&pod, &r, &view(), now());
        assert_eq!(summary(cond(&s, "Ready")), ("True", None, None));
        assert_eq!(s.conditions.as_ref().unwrap()[0].type_, "example.com/lb");
        assert_eq!(
            cond(&s, "example.com/lb").last_transition_time,
            Some(t(500))
        );
    }

    #[test]
    fn host_network_pod_uses_node_ip() {
        let mut pod = pod_with("Always", &[], &["a"]);
        pod.spec.as_mut().unwrap().host_network = Some(true);
        let mut sb = sandbox("s1", 0, true, 100);
        sb.network = Some(cri::PodSandboxNetworkStatus::default());
        sb.linux
            .as_mut()
            .unwrap()
            .namespaces
            .as_mut()
            .unwrap()
            .options
            .as_mut()
            .unwrap()
            .network = cri::NamespaceMode::Node as i32;
        let r = rt(vec![sb], vec![inst(&pod, "a", 0, RUNNING, 50)]);
        let s = pod_status(&pod, &r, &view(), now());
        assert_eq!(s.pod_ip.as_deref(), Some("192.168.1.10"));
        assert_eq!(s.pod_ips.as_ref().unwrap().len(), 1);
        assert_eq!(
            summary(cond(&s, "PodReadyToStartContainers")),
            ("True", None, None)
        );
    }

    #[test]
    fn volume_mounts_and_resources_are_reported() {
        let mut pod = pod_with("Always", &[], &["a"]);
        let c = &mut pod.spec.as_mut().unwrap().containers[0];
        c.volume_mounts = Some(vec![
            VolumeMount {
                name: "token".into(),
                mount_path: "/var/run/secrets".into(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "data".into(),
                mount_path: "/data".into(),
                ..Default::default()
            },
        ]);
        c.resources = Some(ResourceRequirements {
            requests: Some(BTreeMap::from([(
                "cpu".to_string(),
                Quantity("100m".into()),
            )])),
            ..Default::default()
        });
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![inst(&pod, "a", 0, RUNNING, 50)],
        );
        let s = pod_status(&pod, &r, &view(), now());
        let a = cs(&s, "a");
        let vm = a.volume_mounts.as_ref().unwrap();
        assert_eq!(vm[0].read_only, Some(true));
        assert_eq!(vm[0].recursive_read_only.as_deref(), Some("Disabled"));
        assert_eq!(vm[1].read_only, None);
        assert_eq!(
            a.allocated_resources.as_ref().unwrap().get("cpu"),
            Some(&Quantity("100m".into()))
        );
        assert_eq!(s.qos_class.as_deref(), Some("Burstable"));
    }

    #[test]
    fn qos_classes() {
        let res = |req: &[(&str, &str)], lim: &[(&str, &str)]| {
            let m = |v: &[(&str, &str)]| {
                (!v.is_empty()).then(|| {
                    v.iter()
                        .map(|(k, q)| (k.to_string(), Quantity(q.to_string())))
                        .collect::<BTreeMap<_, _>>()
                })
            };
            Some(ResourceRequirements {
                requests: m(req),
                limits: m(lim),
                ..Default::default()
            })
        };
        let mut pod = pod_with("Always", &["i"], &["a"]);
        let spec = pod.spec.as_mut().unwrap();
        assert_eq!(qos_class(spec), "BestEffort");
        let full = res(
            &[("cpu", "0.5"), ("memory", "128Mi")],
            &[("cpu", "500m"), ("memory", "134217728")],
        );
        spec.containers[0].resources = full.clone();
        spec.init_containers.as_mut().unwrap()[0].resources = full;
        assert_eq!(qos_class(spec), "Guaranteed");
        spec.init_containers.as_mut().unwrap()[0].resources = res(&[("cpu", "1")], &[]);
        assert_eq!(qos_class(spec), "Burstable");
        assert_eq!(
            parse_quantity_nanos("1.5Gi"),
            Some(1_610_612_736 * 1_000_000_000)
        );
        assert_eq!(parse_quantity_nanos("2e3"), Some(2000 * 1_000_000_000));
        assert_eq!(parse_quantity_nanos("250m"), Some(250_000_000));
        assert_eq!(parse_quantity_nanos("abc"), None);
    }

    #[test]
    fn cri_times_truncate_to_seconds() {
        assert_eq!(cri_time(0), None);
        assert_eq!(cri_time(ns(10) + 999_999_999), Some(t(10)));
        assert_eq!(
            serde_json::to_value(cri_time(ns(0)).unwrap()).unwrap(),
            serde_json::json!("1970-01-12T13:46:40Z")
        );
    }
}
