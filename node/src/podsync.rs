//! What the kubelet must do to bring one pod's runtime objects (CRI sandboxes and
//! containers) in line with its spec: the pure decision half of upstream's
//! `kuberuntime_manager.go` (`computePodActions`, the order `SyncPod` acts in), the
//! init-container progression (`computeInitContainerActions`), restart policies,
//! the crash-loop back-off (`flowcontrol.Backoff` as the kubelet configures it) and the
//! dead-container garbage collection (`kuberuntime_gc.go`). No IO happens here: the
//! caller lists the runtime, asks [`compute_pod_actions`] what to do, and carries it out
//! in this order: kill (`containers_to_kill`, then every sandbox when `kill_pod`), remove
//! `containers_to_remove`, create the sandbox when `create_sandbox`, start
//! `init_containers_to_start` in order (stop at the first regular init container that
//! fails to start), then start `containers_to_start`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use crate::labels;

/// minik8s: annotation on each container carrying the crash-loop back-off level in force
/// when it was started (how many back-to-back restarts the back-off has counted), so the
/// back-off survives kubelet restarts without in-memory state. The kubelet writes
/// [`StartAction::backoff_level`] into it. Missing on a container: its attempt is used.
pub const CONTAINER_BACKOFF_LEVEL: &str = "io.minik8s.container.backoffLevel";

/// Upstream's `backOffPeriod`: the first crash-loop delay.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// Upstream's `MaxContainerBackOff`.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A run longer than twice the maximum back-off resets the back-off (flowcontrol's
/// `hasExpired`).
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);
/// Upstream's `minimumGracePeriodInSeconds`.
pub const MINIMUM_GRACE_PERIOD_SECONDS: i64 = 2;

/// Kill reasons, as upstream's `containerKillReason`.
pub const KILL_REASON_LIVENESS: &str = "LivenessProbe";
pub const KILL_REASON_STARTUP: &str = "StartupProbe";
pub const KILL_REASON_UNKNOWN: &str = "Unknown";

/// The waiting reason the kubelet reports for a container held back by [`BackoffWait`].
pub const REASON_CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";

/// Every runtime object of one pod, any attempt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimePod {
    pub sandboxes: Vec<cri::PodSandboxStatus>,
    /// Container statuses with their labels and annotations.
    pub containers: Vec<cri::ContainerStatus>,
    /// Container id → id of the sandbox it was created in (`Container.pod_sandbox_id`
    /// from ListContainers; CRI's ContainerStatus lacks it). Only garbage collection uses
    /// it: a dead sandbox is removed only when it is known to hold no container.
    pub container_sandbox: BTreeMap<String, String>,
}

/// Probe verdicts for the current instance of each container, by container name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeState {
    /// Liveness probe failed past its threshold: restart the container.
    pub liveness_failed: BTreeSet<String>,
    /// Startup probe failed past its threshold: restart the container.
    pub startup_failed: BTreeSet<String>,
    /// Startup probe succeeded (only consulted for sidecars, which block the next init
    /// container until started).
    pub startup_succeeded: BTreeSet<String>,
}

/// Which list of the pod spec a container comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ContainerKind {
    Init,
    App,
}

impl ContainerKind {
    /// The value of the `io.minik8s.container.kind` annotation.
    pub fn annotation(self) -> &'static str {
        match self {
            ContainerKind::Init => "init",
            ContainerKind::App => "app",
        }
    }
}

/// Create and start one container of the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartAction {
    pub kind: ContainerKind,
    /// Index in `spec.initContainers` or `spec.containers`.
    pub index: usize,
    pub name: String,
    /// CRI `metadata.attempt` and the restartCount annotation of the new container.
    pub restart_count: u32,
    /// Value for the [`CONTAINER_BACKOFF_LEVEL`] annotation of the new container.
    pub backoff_level: u32,
}

/// Stop one running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillAction {
    pub container_id: String,
    pub name: String,
    /// Upstream's kill reason: "LivenessProbe", "StartupProbe", "Unknown" or "".
    pub reason: String,
    /// The Killing event message, e.g. "Container x failed liveness probe, will be restarted".
    pub message: String,
    /// Upstream's `setTerminationGracePeriod`; the kill step subtracts the preStop hook's
    /// time and never goes below [`MINIMUM_GRACE_PERIOD_SECONDS`].
    pub grace_period_seconds: i64,
}

/// A container that should start but is in crash-loop back-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffWait {
    pub kind: ContainerKind,
    pub index: usize,
    pub name: String,
    /// The back-off in force (10 s doubling up to 300 s).
    pub backoff: Duration,
    /// Time left until the container may start.
    pub remaining: Duration,
    /// `back-off 10s restarting failed container=NAME pod=NAME_NS(UID)`; the kubelet
    /// reports it as the waiting message with reason [`REASON_CRASH_LOOP_BACK_OFF`].
    pub message: String,
}

/// What to do for a pod, see the module doc for the order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Stop every running container (all listed in `containers_to_kill`) and every sandbox.
    pub kill_pod: bool,
    /// Create a new sandbox (after killing the pod) with attempt `sandbox_attempt`.
    pub create_sandbox: bool,
    pub sandbox_attempt: u32,
    /// The newest existing sandbox: the one to start containers in when `create_sandbox`
    /// is false.
    pub sandbox_id: Option<String>,
    /// The regular (non-sidecar) init container to start now, if any (it is also in
    /// `init_containers_to_start`).
    pub next_init_container: Option<usize>,
    /// Init containers to start now, in spec order (sidecars included).
    pub init_containers_to_start: Vec<StartAction>,
    /// An init container failed and the restart policy is Never: the pod has failed.
    pub init_failed: bool,
    pub containers_to_start: Vec<StartAction>,
    pub containers_to_kill: Vec<KillAction>,
    /// Containers that should start but are in crash-loop back-off; resync after
    /// `remaining`.
    pub backoff: Vec<BackoffWait>,
    /// Container ids to remove before starting anything: every init container when the
    /// sandbox is recreated (upstream's purge), else all but the newest exited instance of
    /// each init container (upstream's prune).
    pub containers_to_remove: Vec<String>,
}

/// What garbage collection may remove for one pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPlan {
    /// Dead container ids, oldest first (unknown-state ones must be stopped first).
    pub containers: Vec<String>,
    /// Dead sandbox ids.
    pub sandboxes: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Reading CRI objects
// ---------------------------------------------------------------------------------------

/// The state of a CRI container (unknown values read as Unknown).
pub(crate) fn state_of(c: &cri::ContainerStatus) -> cri::ContainerState {
    cri::ContainerState::try_from(c.state).unwrap_or(cri::ContainerState::ContainerUnknown)
}

pub(crate) fn is_running(c: &cri::ContainerStatus) -> bool {
    state_of(c) == cri::ContainerState::ContainerRunning
}

pub(crate) fn is_exited(c: &cri::ContainerStatus) -> bool {
    state_of(c) == cri::ContainerState::ContainerExited
}

pub(crate) fn sandbox_ready(s: &cri::PodSandboxStatus) -> bool {
    s.state == cri::PodSandboxState::SandboxReady as i32
}

/// The spec name of a CRI container: its name label, else its metadata name.
pub(crate) fn container_name(c: &cri::ContainerStatus) -> &str {
    match c.labels.get(labels::CONTAINER_NAME) {
        Some(n) => n,
        None => c.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or(""),
    }
}

pub(crate) fn attempt_of(c: &cri::ContainerStatus) -> u32 {
    c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0)
}

/// The restart count the kubelet recorded on a container (annotation, else attempt).
pub(crate) fn restart_count_of(c: &cri::ContainerStatus) -> u32 {
    c.annotations
        .get(labels::CONTAINER_RESTART_COUNT)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| attempt_of(c))
}

fn backoff_level_of(c: &cri::ContainerStatus) -> u32 {
    c.annotations
        .get(CONTAINER_BACKOFF_LEVEL)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| attempt_of(c))
}

/// Whether an exited (or unknown) container counts as failed: non-zero exit, OOM kill,
/// or unknown state (upstream's `isInitContainerFailed`).
pub(crate) fn is_failed(c: &cri::ContainerStatus) -> bool {
    if c.reason == "OOMKilled" {
        return true;
    }
    match state_of(c) {
        cri::ContainerState::ContainerExited => c.exit_code != 0,
        cri::ContainerState::ContainerUnknown => true,
        _ => false,
    }
}

/// All instances of one container, newest first (upstream sorts by creation time).
pub(crate) fn instances<'a>(rt: &'a RuntimePod, name: &str) -> Vec<&'a cri::ContainerStatus> {
    let mut v: Vec<&cri::ContainerStatus> = rt
        .containers
        .iter()
        .filter(|c| container_name(c) == name)
        .collect();
    v.sort_by(|a, b| newest_first(a, b));
    v
}

fn newest_first(a: &cri::ContainerStatus, b: &cri::ContainerStatus) -> std::cmp::Ordering {
    (b.created_at, attempt_of(b)).cmp(&(a.created_at, attempt_of(a)))
}

/// The newest instance of a container (upstream's `FindContainerStatusByName`).
pub(crate) fn latest<'a>(rt: &'a RuntimePod, name: &str) -> Option<&'a cri::ContainerStatus> {
    instances(rt, name).into_iter().next()
}

/// Sandboxes, newest first.
pub(crate) fn sorted_sandboxes(rt: &RuntimePod) -> Vec<&cri::PodSandboxStatus> {
    let mut v: Vec<&cri::PodSandboxStatus> = rt.sandboxes.iter().collect();
    v.sort_by(|a, b| {
        let aa = a.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
        let ba = b.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
        (b.created_at, ba).cmp(&(a.created_at, aa))
    });
    v
}

pub(crate) fn pod_spec(pod: &Pod) -> PodSpec {
    pod.spec.clone().unwrap_or_default()
}

pub(crate) fn init_containers(spec: &PodSpec) -> &[Container] {
    spec.init_containers.as_deref().unwrap_or(&[])
}

pub(crate) fn restart_policy(spec: &PodSpec) -> &str {
    spec.restart_policy.as_deref().unwrap_or("Always")
}

/// A sidecar: an init container with restartPolicy Always.
pub(crate) fn is_restartable_init(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn is_host_network(spec: &PodSpec) -> bool {
    spec.host_network.unwrap_or(false)
}

/// Whether the container's recorded spec hash differs from its current spec.
fn hash_changed(spec: &Container, c: &cri::ContainerStatus) -> bool {
    match c.annotations.get(labels::CONTAINER_HASH) {
        Some(h) => *h != labels::container_hash(spec),
        None => false,
    }
}

/// Upstream's `format.Pod`: `NAME_NAMESPACE(UID)`.
pub fn format_pod(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}

/// Go's `time.Duration.String()` for whole seconds: `10s`, `1m20s`, `5m0s`, `1h0m0s`.
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

// ---------------------------------------------------------------------------------------
// Sandbox
// ---------------------------------------------------------------------------------------

/// Upstream's `PodSandboxChanged`: (needs a new sandbox, attempt for it or of the current
/// one, id of the newest existing sandbox).
pub fn sandbox_changed(pod: &Pod, rt: &RuntimePod) -> (bool, u32, Option<String>) {
    let sandboxes = sorted_sandboxes(rt);
    let Some(newest) = sandboxes.first() else {
        return (true, 0, None);
    };
    let spec = pod_spec(pod);
    let ready_count = sandboxes.iter().filter(|s| sandbox_ready(s)).count();
    let max_attempt = sandboxes
        .iter()
        .map(|s| s.metadata.as_ref().map(|m| m.attempt).unwrap_or(0))
        .max()
        .unwrap_or(0);
    let id = Some(newest.id.clone());
    if ready_count > 1 || !sandbox_ready(newest) {
        return (true, max_attempt + 1, id);
    }
    let want_ns = if is_host_network(&spec) {
        cri::NamespaceMode::Node
    } else {
        cri::NamespaceMode::Pod
    };
    // A runtime that does not report namespace options cannot have changed them.
    if let Some(opts) = newest
        .linux
        .as_ref()
        .and_then(|l| l.namespaces.as_ref())
        .and_then(|n| n.options.as_ref())
    {
        if opts.network != want_ns as i32 {
            return (true, max_attempt + 1, None);
        }
    }
    if !is_host_network(&spec) {
        if let Some(net) = &newest.network {
            if net.ip.is_empty() {
                return (true, max_attempt + 1, id);
            }
        }
    }
    (false, max_attempt, id)
}

// ---------------------------------------------------------------------------------------
// Restart decisions
// ---------------------------------------------------------------------------------------

/// Upstream's `ShouldContainerBeRestarted`, given the container's newest instance.
pub(crate) fn should_container_be_restarted(
    pod: &Pod,
    spec: &PodSpec,
    latest: Option<&cri::ContainerStatus>,
) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let Some(st) = latest else {
        return true;
    };
    match state_of(st) {
        cri::ContainerState::ContainerRunning => false,
        cri::ContainerState::ContainerUnknown | cri::ContainerState::ContainerCreated => true,
        cri::ContainerState::ContainerExited => match restart_policy(spec) {
            "Never" => false,
            "OnFailure" => st.exit_code != 0,
            _ => true,
        },
    }
}

/// Upstream's `hasAnyRegularContainerCreated`.
pub(crate) fn has_any_regular_container_created(spec: &PodSpec, rt: &RuntimePod) -> bool {
    spec.containers.iter().any(|c| {
        latest(rt, &c.name).is_some_and(|s| {
            matches!(
                state_of(s),
                cri::ContainerState::ContainerCreated
                    | cri::ContainerState::ContainerRunning
                    | cri::ContainerState::ContainerExited
            )
        })
    })
}

/// The restart count for the next instance of a container: highest recorded + 1, or 0.
pub fn next_restart_count(rt: &RuntimePod, name: &str) -> u32 {
    rt.containers
        .iter()
        .filter(|c| container_name(c) == name)
        .map(|c| attempt_of(c).max(restart_count_of(c)).saturating_add(1))
        .max()
        .unwrap_or(0)
}

/// The back-off in force at a level: none at 0, then 10 s doubling up to 300 s.
pub fn backoff_for_level(level: u32) -> Duration {
    if level == 0 {
        return Duration::ZERO;
    }
    let shift = (level - 1).min(16);
    BACKOFF_INITIAL
        .saturating_mul(1u32 << shift)
        .min(BACKOFF_MAX)
}

fn ns_to_duration(ns: i128) -> Duration {
    if ns <= 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

/// The outcome of asking to start a container.
enum StartCheck {
    Start {
        backoff_level: u32,
    },
    Wait {
        backoff: Duration,
        remaining: Duration,
    },
}

/// Emulates upstream's `doBackOff` + `flowcontrol.Backoff` (keyed by container name and
/// spec hash) from what the runtime remembers: the level recorded on the newest instance
/// is the back-off entry, its creation time the entry's last update.
fn check_backoff(spec: &Container, rt: &RuntimePod, now: jiff::Timestamp) -> StartCheck {
    let insts = instances(rt, &spec.name);
    let Some(newest) = insts.first() else {
        return StartCheck::Start { backoff_level: 0 };
    };
    // A changed spec is a new back-off key: no entry.
    let level = if hash_changed(spec, newest) {
        0
    } else {
        backoff_level_of(newest)
    };
    // The newest exited instance (a running one being killed in this sync is not one).
    let Some(exited) = insts.iter().find(|c| is_exited(c)) else {
        // Upstream does not touch the back-off when there is no exited instance.
        return StartCheck::Start {
            backoff_level: level,
        };
    };
    let finished = i128::from(exited.finished_at);
    let expired = ns_to_duration(finished - i128::from(newest.created_at)) > BACKOFF_RESET_AFTER;
    if level == 0 || expired {
        return StartCheck::Start { backoff_level: 1 };
    }
    let backoff = backoff_for_level(level);
    let elapsed = ns_to_duration(now.as_nanosecond() - finished);
    if elapsed < backoff {
        StartCheck::Wait {
            backoff,
            remaining: backoff - elapsed,
        }
    } else {
        StartCheck::Start {
            backoff_level: level.saturating_add(1).min(16),
        }
    }
}

/// Upstream's `setTerminationGracePeriod`.
fn grace_period(pod: &Pod, spec: &PodSpec, c: &Container, reason: &str) -> i64 {
    if let Some(g) = pod.metadata.deletion_grace_period_seconds {
        return g;
    }
    let Some(pod_grace) = spec.termination_grace_period_seconds else {
        return MINIMUM_GRACE_PERIOD_SECONDS;
    };
    let probe = match reason {
        KILL_REASON_LIVENESS => c.liveness_probe.as_ref(),
        KILL_REASON_STARTUP => c.startup_probe.as_ref(),
        _ => None,
    };
    probe
        .and_then(|p| p.termination_grace_period_seconds)
        .unwrap_or(pod_grace)
}

struct Planner<'a> {
    pod: &'a Pod,
    spec: &'a PodSpec,
    rt: &'a RuntimePod,
    now: jiff::Timestamp,
    actions: PodActions,
    /// Containers upstream would put in ContainersToStart (back-off or not).
    wanted_app_starts: usize,
}

impl Planner<'_> {
    fn kill(&mut self, c: &Container, id: &str, reason: &str, message: String) {
        if self
            .actions
            .containers_to_kill
            .iter()
            .any(|k| k.container_id == id)
        {
            return;
        }
        self.actions.containers_to_kill.push(KillAction {
            container_id: id.to_string(),
            name: c.name.clone(),
            reason: reason.to_string(),
            message,
            grace_period_seconds: grace_period(self.pod, self.spec, c, reason),
        });
    }

    /// Plans a start, or a back-off wait. Returns whether it starts now.
    fn start(&mut self, kind: ContainerKind, index: usize) -> bool {
        let c = match kind {
            ContainerKind::Init => &init_containers(self.spec)[index],
            ContainerKind::App => &self.spec.containers[index],
        };
        match check_backoff(c, self.rt, self.now) {
            StartCheck::Start { backoff_level } => {
                let action = StartAction {
                    kind,
                    index,
                    name: c.name.clone(),
                    restart_count: next_restart_count(self.rt, &c.name),
                    backoff_level,
                };
                match kind {
                    ContainerKind::Init => self.actions.init_containers_to_start.push(action),
                    ContainerKind::App => self.actions.containers_to_start.push(action),
                }
                true
            }
            StartCheck::Wait { backoff, remaining } => {
                self.actions.backoff.push(BackoffWait {
                    kind,
                    index,
                    name: c.name.clone(),
                    backoff,
                    remaining,
                    message: format!(
                        "back-off {} restarting failed container={} pod={}",
                        go_duration(backoff),
                        c.name,
                        format_pod(self.pod)
                    ),
                });
                false
            }
        }
    }

    /// Kill every running container (the pod is being killed).
    fn kill_all_running(&mut self) {
        let all: Vec<&Container> = init_containers(self.spec)
            .iter()
            .chain(self.spec.containers.iter())
            .collect();
        let mut running: Vec<&cri::ContainerStatus> = self
            .rt
            .containers
            .iter()
            .filter(|c| is_running(c))
            .collect();
        running.sort_by(|a, b| newest_first(a, b));
        for st in running {
            let name = container_name(st);
            let spec_c = all.iter().find(|c| c.name == name).copied();
            let fallback = Container {
                name: name.to_string(),
                ..Default::default()
            };
            let c = spec_c.unwrap_or(&fallback);
            let msg = format!("Stopping container {name}");
            self.kill(c, &st.id, "", msg);
        }
    }

    /// Port of `computeInitContainerActions`; returns whether the pod is initialized.
    /// Fills a list of init indexes to start (spec order).
    fn init_actions(&mut self, probes: &ProbeState, to_start: &mut Vec<usize>) -> bool {
        let inits = init_containers(self.spec);
        if inits.is_empty() {
            return true;
        }
        let mut initialized = self.spec.containers.iter().any(|c| {
            latest(self.rt, &c.name).is_some_and(|s| {
                matches!(
                    state_of(s),
                    cri::ContainerState::ContainerCreated | cri::ContainerState::ContainerRunning
                )
            })
        });
        let mut previously_initialized = initialized;
        let restart_on_failure = restart_policy(self.spec) != "Never";
        let mut rev: Vec<usize> = Vec::new();
        for i in (0..inits.len()).rev() {
            let c = &inits[i];
            let sidecar = is_restartable_init(c);
            let Some(st) = latest(self.rt, &c.name) else {
                if previously_initialized && sidecar {
                    rev.push(i);
                }
                continue;
            };
            if previously_initialized && !sidecar {
                continue;
            }
            match state_of(st) {
                cri::ContainerState::ContainerCreated => rev.push(i),
                cri::ContainerState::ContainerRunning => {
                    if sidecar {
                        self.running_sidecar(
                            c,
                            st,
                            i,
                            probes,
                            previously_initialized,
                            &mut rev,
                            &mut initialized,
                        );
                    }
                }
                cri::ContainerState::ContainerExited => {
                    if sidecar {
                        rev.push(i);
                    } else if is_failed(st) {
                        if !restart_on_failure {
                            self.actions.kill_pod = true;
                            self.actions.init_failed = true;
                            to_start.clear();
                            return false;
                        }
                        rev.push(i);
                    } else if i == inits.len() - 1 {
                        initialized = true;
                    } else {
                        rev.push(i + 1);
                    }
                }
                cri::ContainerState::ContainerUnknown => {
                    if !sidecar && !restart_on_failure {
                        self.actions.kill_pod = true;
                        self.actions.init_failed = true;
                        to_start.clear();
                        return false;
                    }
                    let msg =
                        "Init container is in \"unknown\" state, try killing it before restart"
                            .to_string();
                    self.kill(c, &st.id, KILL_REASON_UNKNOWN, msg);
                    rev.push(i);
                }
            }
            previously_initialized = true;
        }
        if !previously_initialized {
            rev.push(0);
        }
        rev.reverse();
        to_start.extend(rev);
        initialized
    }

    #[allow(clippy::too_many_arguments)]
    fn running_sidecar(
        &mut self,
        c: &Container,
        st: &cri::ContainerStatus,
        i: usize,
        probes: &ProbeState,
        previously_initialized: bool,
        rev: &mut Vec<usize>,
        initialized: &mut bool,
    ) {
        let n = init_containers(self.spec).len();
        if c.startup_probe.is_some() {
            if probes.startup_failed.contains(&c.name) {
                let msg = format!("Init container {} failed startup probe", c.name);
                self.kill(c, &st.id, KILL_REASON_STARTUP, msg);
                rev.push(i);
                return;
            }
            if !probes.startup_succeeded.contains(&c.name) {
                return;
            }
        }
        if i == n - 1 {
            *initialized = true;
        } else if !previously_initialized {
            rev.push(i + 1);
        }
        if hash_changed(c, st) {
            let msg = format!("Init container {} definition changed", c.name);
            self.kill(c, &st.id, "", msg);
            rev.push(i);
            return;
        }
        if c.liveness_probe.is_some() && probes.liveness_failed.contains(&c.name) {
            let msg = format!("Init container {} failed liveness probe", c.name);
            self.kill(c, &st.id, KILL_REASON_LIVENESS, msg);
            rev.push(i);
        }
    }

    /// Turns init indexes into starts, as SyncPod does: a regular init container that
    /// cannot start stops the sequence, a sidecar that cannot start is skipped.
    fn start_inits(&mut self, to_start: &[usize]) {
        let mut seen = BTreeSet::new();
        for &i in to_start {
            if !seen.insert(i) {
                continue;
            }
            let started = self.start(ContainerKind::Init, i);
            let sidecar = is_restartable_init(&init_containers(self.spec)[i]);
            if started && !sidecar && self.actions.next_init_container.is_none() {
                self.actions.next_init_container = Some(i);
            }
            if !started && !sidecar {
                break;
            }
        }
    }
}

/// Upstream's `computePodActions`: what to kill, create and start for a pod now. A deleted
/// pod, or one whose phase is already Succeeded/Failed, is only stopped. Starts that the
/// crash-loop back-off holds back come out as [`PodActions::backoff`] instead.
pub fn compute_pod_actions(
    pod: &Pod,
    rt: &RuntimePod,
    probes: &ProbeState,
    now: jiff::Timestamp,
) -> PodActions {
    let spec = pod_spec(pod);
    let (create, attempt, sandbox_id) = sandbox_changed(pod, rt);
    let mut p = Planner {
        pod,
        spec: &spec,
        rt,
        now,
        actions: PodActions {
            kill_pod: create,
            create_sandbox: create,
            sandbox_attempt: attempt,
            sandbox_id,
            ..Default::default()
        },
        wanted_app_starts: 0,
    };

    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if pod.metadata.deletion_timestamp.is_some() || matches!(phase, Some("Succeeded" | "Failed")) {
        // A deleted or finished pod is only stopped, never (re)started.
        p.actions.kill_pod = true;
        p.actions.create_sandbox = false;
        p.kill_all_running();
        return p.actions;
    }

    if create {
        p.kill_all_running();
        if restart_policy(&spec) == "Never" && attempt != 0 && !rt.containers.is_empty() {
            // The pod ran and must not restart: just make sure it is dead.
            p.actions.create_sandbox = false;
            return p.actions;
        }
        let to_start: Vec<usize> = spec
            .containers
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                !(restart_policy(&spec) == "OnFailure"
                    && latest(rt, &c.name).is_some_and(|s| is_exited(s) && s.exit_code == 0))
            })
            .map(|(i, _)| i)
            .collect();
        if to_start.is_empty() && has_any_regular_container_created(&spec, rt) {
            p.actions.create_sandbox = false;
            return p.actions;
        }
        // Everything restarts from scratch in the new sandbox: purge init containers.
        for c in init_containers(&spec) {
            for inst in instances(rt, &c.name) {
                p.actions.containers_to_remove.push(inst.id.clone());
            }
        }
        if !init_containers(&spec).is_empty() {
            p.start_inits(&[0]);
            return p.actions;
        }
        for i in to_start {
            p.start(ContainerKind::App, i);
        }
        return p.actions;
    }

    let mut init_to_start = Vec::new();
    let initialized = p.init_actions(probes, &mut init_to_start);
    if p.actions.kill_pod {
        p.kill_all_running();
        return p.actions;
    }
    prune_init_containers(&spec, rt, &mut p.actions);
    p.start_inits(&init_to_start);
    if !initialized {
        return p.actions;
    }

    let mut keep = 0usize;
    for (idx, c) in spec.containers.iter().enumerate() {
        let st = latest(rt, &c.name);
        match st {
            Some(s) if is_running(s) => {
                let mut restart = restart_policy(&spec) != "Never";
                let (reason, message) = if hash_changed(c, s) {
                    restart = true;
                    ("", format!("Container {} definition changed", c.name))
                } else if probes.liveness_failed.contains(&c.name) {
                    (
                        KILL_REASON_LIVENESS,
                        format!("Container {} failed liveness probe", c.name),
                    )
                } else if probes.startup_failed.contains(&c.name) {
                    (
                        KILL_REASON_STARTUP,
                        format!("Container {} failed startup probe", c.name),
                    )
                } else {
                    keep += 1;
                    continue;
                };
                let message = if restart {
                    p.wanted_app_starts += 1;
                    p.start(ContainerKind::App, idx);
                    format!("{message}, will be restarted")
                } else {
                    message
                };
                p.kill(c, &s.id, reason, message);
            }
            _ => {
                if should_container_be_restarted(pod, &spec, st) {
                    p.wanted_app_starts += 1;
                    if let Some(s) =
                        st.filter(|s| state_of(s) == cri::ContainerState::ContainerUnknown)
                    {
                        let msg =
                            "Container is in \"unknown\" state, try killing it before restart"
                                .to_string();
                        p.kill(c, &s.id, KILL_REASON_UNKNOWN, msg);
                    }
                    p.start(ContainerKind::App, idx);
                }
            }
        }
    }

    if keep == 0 && p.wanted_app_starts == 0 {
        // Every container is done: stop the pod (sidecars must not keep it alive).
        p.actions.kill_pod = true;
        p.actions.init_containers_to_start.clear();
        p.actions.next_init_container = None;
        p.actions.backoff.retain(|b| b.kind != ContainerKind::Init);
        p.kill_all_running();
    }
    p.actions
}

/// Upstream's `pruneInitContainersBeforeStart`: keep only the newest exited (or unknown)
/// instance of each init container.
fn prune_init_containers(spec: &PodSpec, rt: &RuntimePod, actions: &mut PodActions) {
    for c in init_containers(spec) {
        let dead = instances(rt, &c.name).into_iter().filter(|s| {
            matches!(
                state_of(s),
                cri::ContainerState::ContainerExited | cri::ContainerState::ContainerUnknown
            )
        });
        for s in dead.skip(1) {
            actions.containers_to_remove.push(s.id.clone());
        }
    }
}

/// Whether the pod is done for good: its phase is terminal, or no container will ever
/// run again (a regular init container failed under restartPolicy Never, or every app
/// container exited and the restart policy — or a deletion — keeps them down).
pub fn pod_is_terminal(pod: &Pod, rt: &RuntimePod) -> bool {
    if let Some(phase) = pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        if phase == "Succeeded" || phase == "Failed" {
            return true;
        }
    }
    let spec = pod_spec(pod);
    let never = restart_policy(&spec) == "Never";
    if never {
        let init_failed = init_containers(&spec)
            .iter()
            .filter(|c| !is_restartable_init(c))
            .any(|c| latest(rt, &c.name).is_some_and(is_failed));
        if init_failed {
            return true;
        }
    }
    if spec.containers.is_empty() {
        return false;
    }
    spec.containers.iter().all(|c| {
        let st = latest(rt, &c.name);
        st.is_some_and(is_exited) && !should_container_be_restarted(pod, &spec, st)
    })
}

/// Dead-container garbage collection for a pod that still exists (upstream's
/// `evictContainers` with MaxPerPodContainer = `keep_per_container`, then
/// `evictSandboxes`): per container name, all but the newest `keep_per_container`
/// non-running instances; then every sandbox that is not ready, is not the newest, and
/// is known to hold no container that survives.
pub fn containers_to_remove(rt: &RuntimePod, keep_per_container: usize) -> GcPlan {
    let mut plan = GcPlan::default();
    let mut by_name: BTreeMap<&str, Vec<&cri::ContainerStatus>> = BTreeMap::new();
    for c in rt.containers.iter().filter(|c| !is_running(c)) {
        by_name.entry(container_name(c)).or_default().push(c);
    }
    for dead in by_name.values_mut() {
        // Upstream's byAttempt: newest attempt first, then newest creation.
        dead.sort_by_key(|c| std::cmp::Reverse((attempt_of(c), c.created_at)));
        for c in dead.iter().skip(keep_per_container).rev() {
            plan.containers.push(c.id.clone());
        }
    }
    let removed: BTreeSet<&str> = plan.containers.iter().map(String::as_str).collect();
    let all_mapped = rt
        .containers
        .iter()
        .all(|c| removed.contains(c.id.as_str()) || rt.container_sandbox.contains_key(&c.id));
    let occupied: BTreeSet<&str> = rt
        .containers
        .iter()
        .filter(|c| !removed.contains(c.id.as_str()))
        .filter_map(|c| rt.container_sandbox.get(&c.id).map(String::as_str))
        .collect();
    if all_mapped {
        let mut sandboxes = rt.sandboxes.iter().collect::<Vec<_>>();
        sandboxes.sort_by(|a, b| {
            let aa = a.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
            let ba = b.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
            (ba, b.created_at).cmp(&(aa, a.created_at))
        });
        for s in sandboxes.iter().skip(1).rev() {
            if !sandbox_ready(s) && !occupied.contains(s.id.as_str()) {
                plan.sandboxes.push(s.id.clone());
            }
        }
    }
    plan
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodStatus, Probe};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use std::collections::HashMap;

    pub const SEC: i64 = 1_000_000_000;
    /// A fixed "now" for tests: 1_000_000 s after the epoch.
    pub const NOW_S: i64 = 1_000_000;

    pub fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(NOW_S).unwrap()
    }

    pub fn ns(secs_before_now: i64) -> i64 {
        (NOW_S - secs_before_now) * SEC
    }

    pub fn container(name: &str) -> Container {
        Container {
            name: name.to_string(),
            image: Some("busybox".to_string()),
            ..Default::default()
        }
    }

    pub fn pod_with(policy: &str, inits: &[&str], apps: &[&str]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some(policy.to_string()),
                termination_grace_period_seconds: Some(30),
                init_containers: if inits.is_empty() {
                    None
                } else {
                    Some(inits.iter().map(|n| container(n)).collect())
                },
                containers: apps.iter().map(|n| container(n)).collect(),
                ..Default::default()
            }),
            status: Some(PodStatus::default()),
        }
    }

    pub fn sandbox(
        id: &str,
        attempt: u32,
        ready: bool,
        created_s_ago: i64,
    ) -> cri::PodSandboxStatus {
        cri::PodSandboxStatus {
            id: id.to_string(),
            metadata: Some(cri::PodSandboxMetadata {
                name: "web".into(),
                uid: "uid-1".into(),
                namespace: "default".into(),
                attempt,
            }),
            state: if ready {
                cri::PodSandboxState::SandboxReady as i32
            } else {
                cri::PodSandboxState::SandboxNotready as i32
            },
            created_at: ns(created_s_ago),
            network: Some(cri::PodSandboxNetworkStatus {
                ip: "10.42.0.7".into(),
                additional_ips: vec![],
            }),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace {
                    options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                }),
            }),
            ..Default::default()
        }
    }

    /// A CRI container instance of `spec` (hash from the spec), created `created_s_ago`.
    pub fn inst(
        pod: &Pod,
        name: &str,
        attempt: u32,
        state: cri::ContainerState,
        created_s_ago: i64,
    ) -> cri::ContainerStatus {
        let spec = pod_spec(pod);
        let (c, kind) = match init_containers(&spec).iter().find(|c| c.name == name) {
            Some(c) => (c.clone(), "init"),
            None => (
                spec.containers
                    .iter()
                    .find(|c| c.name == name)
                    .cloned()
                    .unwrap_or_else(|| container(name)),
                "app",
            ),
        };
        let labels = HashMap::from([
            (labels::CONTAINER_NAME.to_string(), name.to_string()),
            (labels::POD_UID.to_string(), "uid-1".to_string()),
        ]);
        let annotations = HashMap::from([
            (
                labels::CONTAINER_HASH.to_string(),
                labels::container_hash(&c),
            ),
            (
                labels::CONTAINER_RESTART_COUNT.to_string(),
                attempt.to_string(),
            ),
            (labels::CONTAINER_KIND.to_string(), kind.to_string()),
        ]);
        let started = if state == cri::ContainerState::ContainerCreated {
            0
        } else {
            ns(created_s_ago) + SEC
        };
        cri::ContainerStatus {
            id: format!("{name}-{attempt}"),
            metadata: Some(cri::ContainerMetadata {
                name: name.to_string(),
                attempt,
            }),
            state: state as i32,
            created_at: ns(created_s_ago),
            started_at: started,
            image: Some(cri::ImageSpec {
                image: "docker.io/library/busybox:latest".into(),
                ..Default::default()
            }),
            image_ref: "docker.io/library/busybox@sha256:abc".into(),
            labels,
            annotations,
            ..Default::default()
        }
    }

    /// Marks an instance exited `finished_s_ago` with `code`.
    pub fn exited(
        mut c: cri::ContainerStatus,
        code: i32,
        finished_s_ago: i64,
    ) -> cri::ContainerStatus {
        c.state = cri::ContainerState::ContainerExited as i32;
        c.exit_code = code;
        c.finished_at = ns(finished_s_ago);
        c.reason = if code == 0 { "Completed" } else { "Error" }.to_string();
        c
    }

    pub fn with_level(mut c: cri::ContainerStatus, level: u32) -> cri::ContainerStatus {
        c.annotations
            .insert(CONTAINER_BACKOFF_LEVEL.to_string(), level.to_string());
        c
    }

    pub fn rt(
        sandboxes: Vec<cri::PodSandboxStatus>,
        containers: Vec<cri::ContainerStatus>,
    ) -> RuntimePod {
        RuntimePod {
            sandboxes,
            containers,
            container_sandbox: BTreeMap::new(),
        }
    }

    use cri::ContainerState::{ContainerCreated as CREATED, ContainerRunning as RUNNING};

    fn starts(a: &PodActions) -> Vec<(usize, u32)> {
        a.containers_to_start
            .iter()
            .map(|s| (s.index, s.restart_count))
            .collect()
    }

    #[test]
    fn new_pod_creates_sandbox_and_starts_all_containers() {
        let pod = pod_with("Always", &[], &["a", "b"]);
        let a = compute_pod_actions(&pod, &RuntimePod::default(), &ProbeState::default(), now());
        assert!(a.create_sandbox && a.kill_pod);
        assert_eq!(a.sandbox_attempt, 0);
        assert_eq!(a.sandbox_id, None);
        assert_eq!(starts(&a), vec![(0, 0), (1, 0)]);
        assert!(a.containers_to_kill.is_empty());
        assert_eq!(a.containers_to_start[0].backoff_level, 0);
    }

    #[test]
    fn steady_running_pod_needs_nothing() {
        let pod = pod_with("Always", &[], &["a"]);
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![inst(&pod, "a", 0, RUNNING, 90)],
        );
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert_eq!(
            a,
            PodActions {
                sandbox_id: Some("s1".into()),
                ..Default::default()
            }
        );
    }

    #[test]
    fn dead_sandbox_is_recreated_and_everything_killed() {
        let pod = pod_with("Always", &[], &["a"]);
        let r = rt(
            vec![sandbox("s1", 0, false, 100)],
            vec![inst(&pod, "a", 0, RUNNING, 90)],
        );
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert!(a.create_sandbox && a.kill_pod);
        assert_eq!(a.sandbox_attempt, 1);
        assert_eq!(a.containers_to_kill.len(), 1);
        assert_eq!(a.containers_to_kill[0].container_id, "a-0");
        assert_eq!(a.containers_to_kill[0].message, "Stopping container a");
        assert_eq!(starts(&a), vec![(0, 1)]);
    }

    #[test]
    fn network_namespace_change_recreates_sandbox() {
        let mut pod = pod_with("Always", &[], &["a"]);
        pod.spec.as_mut().unwrap().host_network = Some(true);
        let r = rt(
            vec![sandbox("s1", 2, true, 100)],
            vec![inst(&pod, "a", 0, RUNNING, 90)],
        );
        let (changed, attempt, id) = sandbox_changed(&pod, &r);
        assert!(changed);
        assert_eq!(attempt, 3);
        assert_eq!(id, None);
        // Two ready sandboxes are reconciled too.
        let pod = pod_with("Always", &[], &["a"]);
        let r = rt(
            vec![sandbox("s1", 0, true, 100), sandbox("s2", 1, true, 50)],
            vec![],
        );
        assert_eq!(sandbox_changed(&pod, &r), (true, 2, Some("s2".into())));
        // A sandbox without an IP is replaced.
        let mut s = sandbox("s1", 0, true, 100);
        s.network.as_mut().unwrap().ip.clear();
        assert_eq!(
            sandbox_changed(&pod, &rt(vec![s], vec![])),
            (true, 1, Some("s1".into()))
        );
    }

    #[test]
    fn never_pod_with_dead_sandbox_is_not_recreated() {
        let pod = pod_with("Never", &[], &["a"]);
        let r = rt(
            vec![sandbox("s1", 0, false, 100)],
            vec![exited(inst(&pod, "a", 0, RUNNING, 90), 0, 10)],
        );
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert!(a.kill_pod);
        assert!(!a.create_sandbox);
        assert!(a.containers_to_start.is_empty());
    }

    #[test]
    fn restart_policies_decide_restarts_of_exited_containers() {
        for (policy, code, restarts) in [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 2, true),
            ("Never", 0, false),
            ("Never", 1, false),
        ] {
            let pod = pod_with(policy, &[], &["a"]);
            let r = rt(
                vec![sandbox("s1", 0, true, 100)],
                vec![exited(inst(&pod, "a", 0, RUNNING, 90), code, 50)],
            );
            let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
            assert_eq!(
                !a.containers_to_start.is_empty(),
                restarts,
                "{policy} {code}"
            );
            // Nothing left to run: the sandbox is stopped.
            assert_eq!(a.kill_pod, !restarts, "{policy} {code}");
            assert!(!a.create_sandbox);
            if restarts {
                assert_eq!(starts(&a), vec![(0, 1)]);
            }
            assert_eq!(pod_is_terminal(&pod, &r), !restarts, "{policy} {code}");
        }
    }

    #[test]
    fn created_and_unknown_containers_are_restarted() {
        let pod = pod_with("Never", &[], &["a", "b"]);
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![
                inst(&pod, "a", 0, CREATED, 90),
                inst(&pod, "b", 0, cri::ContainerState::ContainerUnknown, 90),
            ],
        );
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert_eq!(starts(&a), vec![(0, 1), (1, 1)]);
        assert_eq!(a.containers_to_kill.len(), 1);
        assert_eq!(a.containers_to_kill[0].reason, "Unknown");
        assert_eq!(
            a.containers_to_kill[0].message,
            "Container is in \"unknown\" state, try killing it before restart"
        );
    }

    #[test]
    fn init_containers_run_one_at_a_time_in_order() {
        let pod = pod_with("Always", &["i1", "i2"], &["a"]);
        let none = ProbeState::default();
        // New pod: sandbox and the first init container only.
        let a = compute_pod_actions(&pod, &RuntimePod::default(), &none, now());
        assert!(a.create_sandbox);
        assert_eq!(a.next_init_container, Some(0));
        assert_eq!(a.init_containers_to_start.len(), 1);
        assert!(a.containers_to_start.is_empty());

        let s = vec![sandbox("s1", 0, true, 100)];
        // i1 running: wait.
        let r = rt(s.clone(), vec![inst(&pod, "i1", 0, RUNNING, 90)]);
        let a = compute_pod_actions(&pod, &r, &none, now());
        assert!(a.init_containers_to_start.is_empty() && a.containers_to_start.is_empty());
        assert!(!a.kill_pod);
        // i1 done: i2 next.
        let r = rt(
            s.clone(),
            vec![exited(inst(&pod, "i1", 0, RUNNING, 90), 0, 80)],
        );
        let a = compute_pod_actions(&pod, &r, &none, now());
        assert_eq!(a.next_init_container, Some(1));
        assert_eq!(a.init_containers_to_start[0].name, "i2");
        assert_eq!(a.init_containers_to_start[0].kind, ContainerKind::Init);
        assert!(a.containers_to_start.is_empty());
        // Both done: the app container.
        let r = rt(
            s.clone(),
            vec![
                exited(inst(&pod, "i1", 0, RUNNING, 90), 0, 80),
                exited(inst(&pod, "i2", 0, RUNNING, 70), 0, 60),
            ],
        );
        let a = compute_pod_actions(&pod, &r, &none, now());
        assert!(a.init_containers_to_start.is_empty());
        assert_eq!(a.next_init_container, None);
        assert_eq!(starts(&a), vec![(0, 0)]);
        // App running, inits long gone (garbage collected): no init re-runs.
        let r = rt(s, vec![inst(&pod, "a", 0, RUNNING, 50)]);
        let a = compute_pod_actions(&pod, &r, &none, now());
        assert!(a.init_containers_to_start.is_empty() && a.containers_to_start.is_empty());
    }

    #[test]
    fn failed_init_container_restarts_unless_never() {
        let s = vec![sandbox("s1", 0, true, 100)];
        let pod = pod_with("OnFailure", &["i1", "i2"], &["a"]);
        let r = rt(
            s.clone(),
            vec![
                exited(inst(&pod, "i1", 0, RUNNING, 90), 0, 85),
                exited(inst(&pod, "i2", 0, RUNNING, 80), 1, 70),
            ],
        );
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert!(!a.init_failed && !a.kill_pod);
        assert_eq!(a.next_init_container, Some(1));
        assert_eq!(a.init_containers_to_start[0].restart_count, 1);
        assert!(a.containers_to_start.is_empty());

        let pod = pod_with("Never", &["i1", "i2"], &["a"]);
        let r = rt(
            s,
            vec![
                exited(inst(&pod, "i1", 0, RUNNING, 90), 0, 85),
                exited(inst(&pod, "i2", 0, RUNNING, 80), 1, 70),
            ],
        );
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert!(a.init_failed && a.kill_pod && !a.create_sandbox);
        assert!(a.init_containers_to_start.is_empty() && a.containers_to_start.is_empty());
        assert!(pod_is_terminal(&pod, &r));
    }

    #[test]
    fn oom_killed_init_container_counts_as_failed() {
        let pod = pod_with("Never", &["i1"], &["a"]);
        let mut c = exited(inst(&pod, "i1", 0, RUNNING, 90), 0, 80);
        c.reason = "OOMKilled".into();
        let r = rt(vec![sandbox("s1", 0, true, 100)], vec![c]);
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert!(a.init_failed && a.kill_pod);
    }

    #[test]
    fn recreated_sandbox_purges_init_containers() {
        let pod = pod_with("Always", &["i1"], &["a"]);
        let r = rt(
            vec![sandbox("s1", 0, false, 100)],
            vec![
                exited(inst(&pod, "i1", 0, RUNNING, 90), 0, 85),
                exited(inst(&pod, "a", 0, RUNNING, 80), 137, 10),
            ],
        );
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert!(a.create_sandbox);
        assert_eq!(a.containers_to_remove, vec!["i1-0".to_string()]);
        assert_eq!(a.next_init_container, Some(0));
        assert!(a.containers_to_start.is_empty());
    }

    #[test]
    fn old_init_instances_are_pruned() {
        let pod = pod_with("Always", &["i1"], &["a"]);
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![
                exited(inst(&pod, "i1", 0, RUNNING, 90), 1, 85),
                exited(inst(&pod, "i1", 1, RUNNING, 80), 1, 75),
                exited(inst(&pod, "i1", 2, RUNNING, 70), 0, 65),
            ],
        );
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert_eq!(
            a.containers_to_remove,
            vec!["i1-1".to_string(), "i1-0".to_string()]
        );
        assert_eq!(starts(&a), vec![(0, 0)]);
    }

    #[test]
    fn spec_change_kills_and_restarts_even_under_never() {
        let pod = pod_with("Never", &[], &["a"]);
        let mut c = inst(&pod, "a", 0, RUNNING, 90);
        c.annotations
            .insert(labels::CONTAINER_HASH.to_string(), "deadbeef".into());
        let r = rt(vec![sandbox("s1", 0, true, 100)], vec![c]);
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert_eq!(a.containers_to_kill.len(), 1);
        assert_eq!(
            a.containers_to_kill[0].message,
            "Container a definition changed, will be restarted"
        );
        assert_eq!(a.containers_to_kill[0].reason, "");
        assert_eq!(starts(&a), vec![(0, 1)]);
        assert!(!a.kill_pod);
    }

    #[test]
    fn liveness_failure_kills_with_upstream_message() {
        let mut pod = pod_with("Always", &[], &["a", "b"]);
        pod.spec.as_mut().unwrap().containers[0].liveness_probe = Some(Probe {
            termination_grace_period_seconds: Some(5),
            ..Default::default()
        });
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![
                inst(&pod, "a", 0, RUNNING, 90),
                inst(&pod, "b", 0, RUNNING, 90),
            ],
        );
        let probes = ProbeState {
            liveness_failed: BTreeSet::from(["a".to_string()]),
            startup_failed: BTreeSet::from(["b".to_string()]),
            ..Default::default()
        };
        let a = compute_pod_actions(&pod, &r, &probes, now());
        let kills: Vec<(&str, &str, &str, i64)> = a
            .containers_to_kill
            .iter()
            .map(|k| {
                (
                    k.container_id.as_str(),
                    k.reason.as_str(),
                    k.message.as_str(),
                    k.grace_period_seconds,
                )
            })
            .collect();
        assert_eq!(
            kills,
            vec![
                (
                    "a-0",
                    "LivenessProbe",
                    "Container a failed liveness probe, will be restarted",
                    5
                ),
                (
                    "b-0",
                    "StartupProbe",
                    "Container b failed startup probe, will be restarted",
                    30
                ),
            ]
        );
        assert_eq!(starts(&a), vec![(0, 1), (1, 1)]);

        // Under Never the container is killed but not restarted, and the pod stops.
        let mut pod = pod_with("Never", &[], &["a"]);
        pod.spec.as_mut().unwrap().containers[0].liveness_probe = Some(Probe::default());
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![inst(&pod, "a", 0, RUNNING, 90)],
        );
        let a = compute_pod_actions(&pod, &r, &probes, now());
        assert_eq!(
            a.containers_to_kill[0].message,
            "Container a failed liveness probe"
        );
        assert!(a.containers_to_start.is_empty());
        assert!(a.kill_pod);
    }

    fn crashed(
        pod: &Pod,
        attempt: u32,
        level: Option<u32>,
        ran_s: i64,
        finished_s_ago: i64,
    ) -> RuntimePod {
        let mut c = exited(
            inst(pod, "a", attempt, RUNNING, finished_s_ago + ran_s + 1),
            1,
            finished_s_ago,
        );
        if let Some(l) = level {
            c = with_level(c, l);
        }
        rt(vec![sandbox("s1", 0, true, 100_000)], vec![c])
    }

    #[test]
    fn crash_loop_backoff_grows_and_caps() {
        let pod = pod_with("Always", &[], &["a"]);
        let none = ProbeState::default();
        // First crash: immediate restart, back-off level 1 from now on.
        let a = compute_pod_actions(&pod, &crashed(&pod, 0, None, 5, 1), &none, now());
        assert_eq!(starts(&a), vec![(0, 1)]);
        assert_eq!(a.containers_to_start[0].backoff_level, 1);
        assert!(a.backoff.is_empty());
        // Then 10s, 20s, 40s, 80s, 160s, 300s, 300s.
        for (level, secs, text) in [
            (1, 10, "10s"),
            (2, 20, "20s"),
            (3, 40, "40s"),
            (4, 80, "1m20s"),
            (5, 160, "2m40s"),
            (6, 300, "5m0s"),
            (9, 300, "5m0s"),
        ] {
            let r = crashed(&pod, level, Some(level), 5, 3);
            let a = compute_pod_actions(&pod, &r, &none, now());
            assert!(a.containers_to_start.is_empty(), "level {level}");
            assert!(!a.kill_pod, "a container in back-off keeps the pod");
            assert_eq!(a.backoff.len(), 1);
            let b = &a.backoff[0];
            assert_eq!(b.backoff, Duration::from_secs(secs));
            assert_eq!(b.remaining, Duration::from_secs(secs - 3));
            assert_eq!(
                b.message,
                format!("back-off {text} restarting failed container=a pod=web_default(uid-1)")
            );
            // Once the back-off has passed it starts, one level up.
            let r = crashed(&pod, level, Some(level), 5, secs as i64);
            let a = compute_pod_actions(&pod, &r, &none, now());
            assert_eq!(starts(&a), vec![(0, level + 1)]);
            assert_eq!(a.containers_to_start[0].backoff_level, (level + 1).min(16));
        }
    }

    #[test]
    fn backoff_without_annotation_uses_attempt() {
        let pod = pod_with("Always", &[], &["a"]);
        let a = compute_pod_actions(
            &pod,
            &crashed(&pod, 2, None, 5, 3),
            &ProbeState::default(),
            now(),
        );
        assert_eq!(a.backoff[0].backoff, Duration::from_secs(20));
    }

    #[test]
    fn backoff_resets_after_a_long_run() {
        let pod = pod_with("Always", &[], &["a"]);
        // Ran 11 minutes at level 6: restarts at once, back at level 1.
        let r = crashed(&pod, 7, Some(6), 660, 1);
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert_eq!(starts(&a), vec![(0, 8)]);
        assert_eq!(a.containers_to_start[0].backoff_level, 1);
        // Ran 9 minutes: still backing off.
        let r = crashed(&pod, 7, Some(6), 540, 1);
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert_eq!(a.backoff[0].backoff, BACKOFF_MAX);
        // A short run after a reset backs off 10s again.
        let r = crashed(&pod, 8, Some(1), 5, 2);
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert_eq!(a.backoff[0].backoff, Duration::from_secs(10));
    }

    #[test]
    fn init_container_backoff_blocks_the_sequence() {
        let pod = pod_with("Always", &["i1"], &["a"]);
        let c = with_level(exited(inst(&pod, "i1", 3, RUNNING, 20), 1, 5), 3);
        let r = rt(vec![sandbox("s1", 0, true, 100)], vec![c]);
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert_eq!(a.next_init_container, None);
        assert!(a.init_containers_to_start.is_empty());
        assert_eq!(a.backoff[0].kind, ContainerKind::Init);
        assert_eq!(a.backoff[0].backoff, Duration::from_secs(40));
        assert!(!a.kill_pod);
    }

    #[test]
    fn next_restart_count_is_max_attempt_plus_one() {
        let pod = pod_with("Always", &[], &["a", "b"]);
        let r = rt(
            vec![],
            vec![
                exited(inst(&pod, "a", 3, RUNNING, 90), 1, 80),
                exited(inst(&pod, "a", 4, RUNNING, 70), 1, 60),
            ],
        );
        assert_eq!(next_restart_count(&r, "a"), 5);
        assert_eq!(next_restart_count(&r, "b"), 0);
    }

    #[test]
    fn deleted_pod_is_not_restarted() {
        let mut pod = pod_with("Always", &[], &["a"]);
        pod.metadata.deletion_timestamp = Some(Time(now()));
        pod.metadata.deletion_grace_period_seconds = Some(7);
        let r = rt(
            vec![sandbox("s1", 0, true, 100)],
            vec![exited(inst(&pod, "a", 0, RUNNING, 90), 1, 80)],
        );
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert!(a.containers_to_start.is_empty());
        assert!(a.kill_pod && !a.create_sandbox);
        assert!(pod_is_terminal(&pod, &r));
        let r = rt(
            vec![sandbox("s1", 0, false, 100)],
            vec![inst(&pod, "a", 0, RUNNING, 90)],
        );
        let a = compute_pod_actions(&pod, &r, &ProbeState::default(), now());
        assert!(a.kill_pod && !a.create_sandbox);
        assert_eq!(a.containers_to_kill[0].grace_period_seconds, 7);
        assert!(!pod_is_terminal(&pod, &r));
    }

    #[test]
    fn finished_pod_is_never_restarted() {
        let mut pod = pod_with("Always", &[], &["a"]);
        pod.status.as_mut().unwrap().phase = Some("Succeeded".into());
        // Even with its sandbox and containers gone, nothing is created again.
        let a = compute_pod_actions(&pod, &RuntimePod::default(), &ProbeState::default(), now());
        assert!(a.kill_pod && !a.create_sandbox);
        assert!(a.containers_to_start.is_empty() && a.init_containers_to_start.is_empty());
    }

    #[test]
    fn terminal_detection() {
        let pod = pod_with("Always", &[], &["a"]);
        assert!(!pod_is_terminal(&pod, &RuntimePod::default()));
        let r = rt(vec![], vec![inst(&pod, "a", 0, RUNNING, 10)]);
        assert!(!pod_is_terminal(&pod, &r));
        let mut done = pod_with("Always", &[], &["a"]);
        done.status.as_mut().unwrap().phase = Some("Failed".into());
        assert!(pod_is_terminal(&done, &r));
        let pod = pod_with("OnFailure", &[], &["a", "b"]);
        let r = rt(
            vec![],
            vec![
                exited(inst(&pod, "a", 0, RUNNING, 10), 0, 5),
                inst(&pod, "b", 0, RUNNING, 10),
            ],
        );
        assert!(!pod_is_terminal(&pod, &r));
    }

    #[test]
    fn sidecar_starts_before_next_init_and_keeps_running() {
        let mut pod = pod_with("Always", &["side", "i2"], &["a"]);
        pod.spec.as_mut().unwrap().init_containers.as_mut().unwrap()[0].restart_policy =
            Some("Always".into());
        let s = vec![sandbox("s1", 0, true, 100)];
        let none = ProbeState::default();
        // Sidecar running: the next init container starts.
        let r = rt(s.clone(), vec![inst(&pod, "side", 0, RUNNING, 90)]);
        let a = compute_pod_actions(&pod, &r, &none, now());
        assert_eq!(a.next_init_container, Some(1));
        // All initialized, app running, sidecar crashed: the sidecar restarts.
        let r = rt(
            s.clone(),
            vec![
                exited(inst(&pod, "side", 0, RUNNING, 90), 1, 10),
                exited(inst(&pod, "i2", 0, RUNNING, 80), 0, 70),
                inst(&pod, "a", 0, RUNNING, 60),
            ],
        );
        let a = compute_pod_actions(&pod, &r, &none, now());
        assert_eq!(a.init_containers_to_start.len(), 1);
        assert_eq!(a.init_containers_to_start[0].name, "side");
        assert_eq!(a.next_init_container, None);
        assert!(a.containers_to_start.is_empty() && !a.kill_pod);
        // The app finished under OnFailure: the sidecar does not keep the pod alive.
        let mut pod2 = pod.clone();
        pod2.spec.as_mut().unwrap().restart_policy = Some("OnFailure".into());
        let r = rt(
            s,
            vec![
                inst(&pod2, "side", 0, RUNNING, 90),
                exited(inst(&pod2, "i2", 0, RUNNING, 80), 0, 70),
                exited(inst(&pod2, "a", 0, RUNNING, 60), 0, 5),
            ],
        );
        let a = compute_pod_actions(&pod2, &r, &none, now());
        assert!(a.kill_pod);
        assert!(a.init_containers_to_start.is_empty());
        assert_eq!(a.containers_to_kill.len(), 1);
        assert_eq!(a.containers_to_kill[0].container_id, "side-0");
    }

    #[test]
    fn gc_keeps_newest_dead_instance_and_newest_sandbox() {
        let pod = pod_with("Always", &[], &["a", "b"]);
        let mut r = rt(
            vec![
                sandbox("s0", 0, false, 300),
                sandbox("s1", 1, false, 200),
                sandbox("s2", 2, true, 100),
            ],
            vec![
                exited(inst(&pod, "a", 0, RUNNING, 290), 1, 280),
                exited(inst(&pod, "a", 1, RUNNING, 190), 1, 180),
                exited(inst(&pod, "a", 2, RUNNING, 90), 1, 80),
                inst(&pod, "a", 3, RUNNING, 50),
                exited(inst(&pod, "b", 0, RUNNING, 190), 0, 150),
            ],
        );
        // Unknown sandboxes of containers: no sandbox is touched.
        let plan = containers_to_remove(&r, 1);
        assert_eq!(plan.containers, vec!["a-0".to_string(), "a-1".to_string()]);
        assert!(plan.sandboxes.is_empty());
        r.container_sandbox = BTreeMap::from([
            ("a-0".to_string(), "s0".to_string()),
            ("a-1".to_string(), "s1".to_string()),
            ("a-2".to_string(), "s2".to_string()),
            ("a-3".to_string(), "s2".to_string()),
            ("b-0".to_string(), "s1".to_string()),
        ]);
        let plan = containers_to_remove(&r, 1);
        // s0 empties; s1 still holds b-0; s2 is the newest.
        assert_eq!(plan.sandboxes, vec!["s0".to_string()]);
        let plan = containers_to_remove(&r, 0);
        assert_eq!(
            plan.containers,
            vec![
                "a-0".to_string(),
                "a-1".to_string(),
                "a-2".to_string(),
                "b-0".to_string()
            ]
        );
        assert_eq!(plan.sandboxes, vec!["s0".to_string(), "s1".to_string()]);
    }

    #[test]
    fn go_duration_formats_like_go() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(backoff_for_level(0), Duration::ZERO);
        assert_eq!(backoff_for_level(40), BACKOFF_MAX);
    }
}
