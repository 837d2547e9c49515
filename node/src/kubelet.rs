//! The pod manager: watches the pods bound to this node, and for each one runs a worker
//! that drives the runtime towards the spec (sandbox, volumes, images, init containers,
//! containers, restarts, kills, graceful deletion) and reports status. A relist of the
//! runtime every second (upstream's PLEG) wakes the workers of pods whose containers
//! changed state; every worker also resyncs on its own every 10 s.

use crate::cri::Runtime;
use crate::events::{pod_ref, Recorder};
use crate::nodestatus::NodeConfig;
use crate::podspec::{self, ContainerKind, PodContext};
use crate::podstatus::{self, KubeletView};
use crate::podsync::{self, ProbeState, RuntimePod};
use futures::StreamExt;
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Where the kubelet keeps pod state on disk.
#[derive(Debug, Clone)]
pub struct KubeletPaths {
    /// AGENT/pods/<uid>/ (volumes, etc-hosts).
    pub pods: PathBuf,
    /// AGENT/logs/<ns>_<name>_<uid>/<container>/<n>.log.
    pub logs: PathBuf,
    /// AGENT/pod-manifests: static pods.
    pub manifests: PathBuf,
    /// AGENT: the node filesystem the eviction manager watches.
    pub agent: PathBuf,
    /// containerd's root: the image filesystem when CRI reports none.
    pub containerd_root: PathBuf,
    /// The cgroup v1 hierarchy root (one directory per controller).
    pub cgroup_root: PathBuf,
}

impl KubeletPaths {
    pub fn under(agent_dir: &Path) -> KubeletPaths {
        KubeletPaths {
            pods: agent_dir.join("pods"),
            logs: agent_dir.join("logs"),
            manifests: agent_dir.join("pod-manifests"),
            agent: agent_dir.to_path_buf(),
            containerd_root: agent_dir.join("containerd/root"),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}

/// Kubelet-side facts about one pod that the runtime does not hold.
#[derive(Default)]
struct PodState {
    waiting: BTreeMap<String, (String, String)>,
    image_backoff: HashMap<String, (Instant, Duration)>,
    ready: BTreeMap<String, bool>,
    started: BTreeMap<String, bool>,
    probes: ProbeState,
    last_status: Option<PodStatus>,
    admitted: bool,
}

pub struct Kubelet {
    client: kube::Client,
    runtime: Arc<dyn Runtime>,
    paths: KubeletPaths,
    node: NodeConfig,
    recorder: Recorder,
    mounter: Arc<dyn crate::volumes::Mounter>,
    /// The API's view of our pods, by uid.
    pods: Mutex<HashMap<String, Pod>>,
    state: Mutex<HashMap<String, PodState>>,
    workers: Mutex<HashMap<String, mpsc::Sender<()>>>,
    probers: Mutex<BTreeSet<String>>,
    /// The pod watch has delivered its first complete list: only then may runtime pods
    /// unknown to the API be torn down (a restarted agent must not kill its pods).
    synced: std::sync::atomic::AtomicBool,
    /// Node pressure as the eviction manager last saw it (node conditions, admission).
    pressure: Mutex<crate::eviction::Pressure>,
    sandbox_image: String,
    tokens: TokenCache,
    /// `--cluster-dns`, `--cluster-domain`, `--resolv-conf`.
    dns: crate::resolvconf::DnsSettings,
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn full_name(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        uid_of(pod)
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn label<'a>(labels: &'a HashMap<String, String>, k: &str) -> Option<&'a str> {
    labels.get(k).map(String::as_str)
}

impl Kubelet {
    pub fn new(
        client: kube::Client,
        runtime: Arc<dyn Runtime>,
        paths: KubeletPaths,
        node: NodeConfig,
        sandbox_image: String,
        dns: crate::resolvconf::DnsSettings,
    ) -> Arc<Kubelet> {
        Arc::new(Kubelet {
            recorder: Recorder::new(client.clone(), node.name.clone()),
            client,
            runtime,
            paths,
            node,
            mounter: Arc::new(crate::volumes::SysMounter),
            pods: Mutex::new(HashMap::new()),
            state: Mutex::new(HashMap::new()),
            workers: Mutex::new(HashMap::new()),
            probers: Mutex::new(BTreeSet::new()),
            synced: std::sync::atomic::AtomicBool::new(false),
            pressure: Mutex::new(crate::eviction::Pressure::default()),
            sandbox_image,
            tokens: Mutex::new(HashMap::new()),
            dns,
        })
    }

    pub(crate) fn runtime(&self) -> &dyn Runtime {
        self.runtime.as_ref()
    }

    pub(crate) fn register_prober(&self, key: &str) -> bool {
        lock(&self.probers).insert(key.to_string())
    }

    pub(crate) fn unregister_prober(&self, key: &str) {
        lock(&self.probers).remove(key);
    }

    pub(crate) fn pod_snapshot(&self, pod: &Pod) -> Option<Pod> {
        lock(&self.pods).get(&uid_of(pod)).cloned()
    }

    pub(crate) fn container_started(&self, pod: &Pod, name: &str) -> bool {
        lock(&self.state)
            .get(&uid_of(pod))
            .and_then(|s| s.started.get(name).copied())
            .unwrap_or(false)
    }

    pub(crate) fn probe_event(&self, pod: &Pod, name: &str, message: &str) {
        self.recorder.event(
            pod_ref(pod, Some(format!("spec.containers{{{name}}}"))),
            "Warning",
            "Unhealthy",
            message.to_string(),
        );
    }

    /// Records a probe verdict and wakes the pod's worker.
    pub(crate) fn probe_result(
        self: &Arc<Self>,
        pod: &Pod,
        name: &str,
        kind: crate::prober::Kind,
        ok: bool,
    ) {
        use crate::prober::Kind;
        let uid = uid_of(pod);
        {
            let mut st = lock(&self.state);
            let st = st.entry(uid.clone()).or_default();
            match kind {
                Kind::Readiness => {
                    st.ready.insert(name.to_string(), ok);
                }
                Kind::Startup if ok => {
                    st.started.insert(name.to_string(), true);
                }
                Kind::Startup => {
                    st.probes.startup_failed.insert(name.to_string());
                }
                Kind::Liveness if !ok => {
                    st.probes.liveness_failed.insert(name.to_string());
                }
                Kind::Liveness => {}
            }
        }
        self.signal(&uid);
    }

    /// Periodic node housekeeping: container log rotation.
    /// Node pressure as last observed by the eviction manager.
    pub fn pressure(&self) -> crate::eviction::Pressure {
        *lock(&self.pressure)
    }

    /// Periodic node housekeeping every 10 s: hard-threshold eviction (with image reclaim
    /// under disk pressure), container log rotation, and image GC every 5 minutes.
    async fn housekeeping_loop(self: Arc<Self>) {
        use crate::eviction::{EvictionConfig, EvictionManager, PassEnv};
        use crate::imagegc::{ImageGc, ImageGcPolicy, SysFilesystems};
        let fs = Arc::new(SysFilesystems);
        let mut gc = ImageGc::new(
            ImageGcPolicy::default(),
            &self.sandbox_image,
            fs.clone(),
            self.paths.containerd_root.clone(),
        )
        .map_err(|e| tracing::warn!(error = %e, "image gc disabled"))
        .ok();
        let mut mgr = EvictionManager::new(EvictionConfig::new(self.node.eviction_hard.clone()));
        let mut last_gc = Instant::now();
        loop {
            tokio::time::sleep(crate::eviction::MONITORING_INTERVAL).await;
            let facts = crate::nodestatus::MachineInfo::facts(
                &crate::nodestatus::SysMachine,
                &self.paths.agent,
            );
            let active: Vec<Pod> = {
                let st = lock(&self.state);
                lock(&self.pods)
                    .values()
                    .filter(|p| st.get(&uid_of(p)).is_some_and(|s| s.admitted))
                    .filter(|p| {
                        !matches!(
                            p.status.as_ref().and_then(|s| s.phase.as_deref()),
                            Some("Succeeded" | "Failed")
                        )
                    })
                    .cloned()
                    .collect()
            };
            let env = PassEnv {
                runtime: self.runtime.as_ref(),
                fs: fs.as_ref(),
                facts: &facts,
                nodefs_path: &self.paths.agent,
                image_fs_fallback: &self.paths.containerd_root,
                pod_logs_root: Some(&self.paths.logs),
                pods_dir: Some(&self.paths.pods),
                image_gc: gc.as_mut(),
            };
            match mgr.run_pass(env, &active, jiff::Timestamp::now()).await {
                Ok(out) => {
                    *lock(&self.pressure) = mgr.pressure();
                    for e in out.node_events {
                        self.recorder.event(
                            crate::events::node_ref(&self.node.name),
                            "Warning",
                            &e.reason,
                            e.message,
                        );
                    }
                    for d in out.evictions {
                        self.evict(&d).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "eviction pass"),
            }
            self.rotate_logs().await;
            if last_gc.elapsed() >= crate::imagegc::GC_PERIOD {
                last_gc = Instant::now();
                if let Some(gc) = gc.as_mut() {
                    match gc
                        .run_once(self.runtime.as_ref(), jiff::Timestamp::now())
                        .await
                    {
                        Ok(report) => {
                            for e in report.events {
                                self.recorder.event(
                                    crate::events::node_ref(&self.node.name),
                                    "Warning",
                                    &e.reason,
                                    e.message,
                                );
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "image gc"),
                    }
                }
            }
        }
    }

    /// Evicts one pod: Failed/Evicted status first, then its containers are stopped.
    async fn evict(&self, d: &crate::eviction::EvictionDecision) {
        let Some(pod) = lock(&self.pods).get(&d.pod_uid).cloned() else {
            return;
        };
        self.recorder.event(
            pod_ref(&pod, None),
            "Warning",
            crate::eviction::REASON,
            d.message.clone(),
        );
        if let Err(e) = self
            .patch_status(&pod, &d.status_patch(&pod, jiff::Timestamp::now()))
            .await
        {
            tracing::warn!(pod = %full_name(&pod), error = %e, "marking pod evicted");
        }
        if let Ok(rt) = self.runtime_pod(&d.pod_uid).await {
            if let Err(e) = self
                .kill_pod(Some(&pod), &rt, Some(d.grace_period_seconds))
                .await
            {
                tracing::warn!(pod = %full_name(&pod), error = %e, "stopping evicted pod");
            }
        }
    }

    /// Rotates container logs above 10 MiB, keeping 5 files per container (upstream's
    /// containerLogMaxSize / containerLogMaxFiles): rename, then ReopenContainerLog.
    async fn rotate_logs(&self) {
        let Ok(containers) = self.runtime.list_containers().await else {
            return;
        };
        for c in containers
            .iter()
            .filter(|c| c.state == cri::ContainerState::ContainerRunning as i32)
        {
            let Ok(st) = self.runtime.container_status(&c.id).await else {
                continue;
            };
            let path = PathBuf::from(&st.log_path);
            let (Some(dir), Some(base)) = (path.parent(), path.file_name()) else {
                continue;
            };
            let base = base.to_string_lossy().to_string();
            let existing: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&base))
                .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
                .collect();
            let plan = crate::logs::rotation_plan(
                &path,
                &existing,
                crate::logs::DEFAULT_MAX_SIZE,
                crate::logs::DEFAULT_MAX_FILES,
            );
            for r in &plan.remove {
                let _ = std::fs::remove_file(r);
            }
            if plan.rotate {
                let to = crate::logs::rotated_name(&path, jiff::Timestamp::now());
                if std::fs::rename(&path, &to).is_ok() {
                    if let Err(e) = self.runtime.reopen_container_log(&c.id).await {
                        tracing::warn!(container = %c.id, error = %e, "reopening container log");
                    }
                }
            }
        }
    }

    /// Watches pods and relists the runtime until cancelled.
    pub async fn run(self: Arc<Self>) {
        self.check_resolv_conf();
        let relist = tokio::spawn(self.clone().relist_loop());
        let housekeeping = tokio::spawn(self.clone().housekeeping_loop());
        let api: Api<Pod> = Api::all(self.client.clone());
        let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", self.node.name));
        let stream = watcher(api, cfg);
        futures::pin_mut!(stream);
        let mut init_seen: BTreeSet<String> = BTreeSet::new();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => {
                    let uid = uid_of(&p);
                    init_seen.insert(uid.clone());
                    lock(&self.pods).insert(uid.clone(), p);
                    self.signal(&uid);
                }
                Ok(watcher::Event::Delete(p)) => {
                    let uid = uid_of(&p);
                    lock(&self.pods).remove(&uid);
                    self.signal(&uid);
                }
                Ok(watcher::Event::Init) => init_seen.clear(),
                Ok(watcher::Event::InitDone) => {
                    // Pods that vanished while the watch was down.
                    let gone: Vec<String> = lock(&self.pods)
                        .keys()
                        .filter(|u| !init_seen.contains(*u))
                        .cloned()
                        .collect();
                    for uid in gone {
                        lock(&self.pods).remove(&uid);
                        self.signal(&uid);
                    }
                    self.synced.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pod watch");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        relist.abort();
        housekeeping.abort();
    }

    /// Wakes (or starts) the worker of a pod.
    fn signal(self: &Arc<Self>, uid: &str) {
        let mut workers = lock(&self.workers);
        if let Some(tx) = workers.get(uid) {
            if !tx.is_closed() {
                let _ = tx.try_send(());
                return;
            }
        }
        let (tx, rx) = mpsc::channel(1);
        let _ = tx.try_send(());
        workers.insert(uid.to_string(), tx);
        tokio::spawn(self.clone().worker(uid.to_string(), rx));
    }

    async fn worker(self: Arc<Self>, uid: String, mut rx: mpsc::Receiver<()>) {
        loop {
            let wait = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
            if let Ok(None) = wait {
                return;
            }
            match self.sync(&uid).await {
                Ok(SyncOutcome::Done) => {
                    lock(&self.workers).remove(&uid);
                    lock(&self.state).remove(&uid);
                    return;
                }
                Ok(SyncOutcome::Again(d)) => {
                    if let Some(d) = d {
                        let tx = lock(&self.workers).get(&uid).cloned();
                        if let Some(tx) = tx {
                            tokio::spawn(async move {
                                tokio::time::sleep(d).await;
                                let _ = tx.try_send(());
                            });
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(%uid, error = %e, "syncing pod");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let tx = lock(&self.workers).get(&uid).cloned();
                    if let Some(tx) = tx {
                        let _ = tx.try_send(());
                    }
                }
            }
        }
    }

    /// Relists the runtime every second and wakes workers whose pods changed.
    async fn relist_loop(self: Arc<Self>) {
        let mut last: HashMap<String, String> = HashMap::new();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (Ok(sandboxes), Ok(containers)) = (
                self.runtime.list_pod_sandboxes().await,
                self.runtime.list_containers().await,
            ) else {
                continue;
            };
            let mut now: HashMap<String, String> = HashMap::new();
            for s in &sandboxes {
                if let Some(uid) = label(&s.labels, crate::labels::POD_UID) {
                    now.entry(uid.to_string())
                        .or_default()
                        .push_str(&format!("{}:{};", s.id, s.state));
                }
            }
            for c in &containers {
                if let Some(uid) = label(&c.labels, crate::labels::POD_UID) {
                    now.entry(uid.to_string())
                        .or_default()
                        .push_str(&format!("{}:{};", c.id, c.state));
                }
            }
            for (uid, sig) in &now {
                if last.get(uid) != Some(sig) {
                    self.signal(uid);
                }
            }
            for uid in last.keys() {
                if !now.contains_key(uid) {
                    self.signal(uid);
                }
            }
            last = now;
        }
    }

    /// Everything the runtime holds for one pod.
    async fn runtime_pod(&self, uid: &str) -> Result<RuntimePod, crate::cri::CriError> {
        let mut rp = RuntimePod::default();
        for s in self.runtime.list_pod_sandboxes().await? {
            if label(&s.labels, crate::labels::POD_UID) == Some(uid) {
                match self.runtime.pod_sandbox_status(&s.id).await {
                    Ok(st) => rp.sandboxes.push(st),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        for c in self.runtime.list_containers().await? {
            if label(&c.labels, crate::labels::POD_UID) == Some(uid) {
                rp.container_sandbox
                    .insert(c.id.clone(), c.pod_sandbox_id.clone());
                match self.runtime.container_status(&c.id).await {
                    Ok(st) => rp.containers.push(st),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(rp)
    }
}

enum SyncOutcome {
    /// The pod is gone from the API and the runtime: the worker ends.
    Done,
    /// Sync again after this long (or on the next signal).
    Again(Option<Duration>),
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("runtime: {0}")]
    Runtime(#[from] crate::cri::CriError),
    #[error("api: {0}")]
    Api(#[from] kube::Error),
}

impl Kubelet {
    async fn sync(self: &Arc<Self>, uid: &str) -> Result<SyncOutcome, SyncError> {
        let pod = lock(&self.pods).get(uid).cloned();
        let rt = self.runtime_pod(uid).await?;
        let Some(pod) = pod else {
            if !self.synced.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(SyncOutcome::Again(Some(Duration::from_secs(1))));
            }
            // Not (or no longer) in the API: tear down whatever is left.
            self.kill_pod(None, &rt, Some(0)).await?;
            self.remove_runtime_objects(&rt).await;
            let dir = self.paths.pods.join(uid);
            if dir.exists() {
                match crate::volumes::teardown_volumes(&dir, self.mounter.as_ref()) {
                    Ok(()) => {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    Err(e) => {
                        tracing::warn!(%uid, error = %e, "tearing down volumes");
                        return Ok(SyncOutcome::Again(Some(Duration::from_secs(5))));
                    }
                }
            }
            remove_pod_cgroups(&self.paths.cgroup_root, uid);
            // The pod's log directory (`<ns>_<name>_<uid>`).
            if let Ok(entries) = std::fs::read_dir(&self.paths.logs) {
                for e in entries.flatten() {
                    if e.file_name()
                        .to_string_lossy()
                        .ends_with(&format!("_{uid}"))
                    {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
            return Ok(SyncOutcome::Done);
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return self.terminate(&pod, &rt).await;
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            // Terminal: make sure nothing runs and the sandbox is released.
            self.kill_pod(Some(&pod), &rt, None).await?;
            return Ok(SyncOutcome::Again(None));
        }
        if !self.admit(&pod).await? {
            return Ok(SyncOutcome::Again(None));
        }
        self.sync_running(&pod, rt).await
    }

    /// Node-side admission: refuses a pod whose requests do not fit in what is left of the
    /// node's allocatable (upstream: OutOfcpu / OutOfmemory / OutOfpods).
    async fn admit(self: &Arc<Self>, pod: &Pod) -> Result<bool, SyncError> {
        let uid = uid_of(pod);
        if lock(&self.state).entry(uid.clone()).or_default().admitted {
            return Ok(true);
        }
        let others: Vec<Pod> = lock(&self.pods)
            .values()
            .filter(|p| {
                uid_of(p) != uid
                    && lock(&self.state)
                        .get(&uid_of(p))
                        .is_some_and(|s| s.admitted)
                    && !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    )
            })
            .cloned()
            .collect();
        if let Err(r) = crate::eviction::admit_under(self.pressure(), pod) {
            self.recorder
                .event(pod_ref(pod, None), "Warning", &r.reason, r.message.clone());
            let patch =
                json!({"status": {"phase": "Failed", "reason": r.reason, "message": r.message}});
            self.patch_status(pod, &patch).await?;
            return Ok(false);
        }
        let facts =
            crate::nodestatus::MachineInfo::facts(&crate::nodestatus::SysMachine, &self.paths.pods);
        let (_, alloc) = crate::nodestatus::resources(&self.node, &facts);
        if let Some((resource, requested, used, capacity)) =
            crate::admit::does_not_fit(pod, &others, &alloc)
        {
            let reason = if resource == "pods" {
                "OutOfpods".to_string()
            } else {
                format!("OutOf{resource}")
            };
            let message = if resource == "pods" {
                format!("Node didn't have enough resource: pods, requested: 1, used: {used}, capacity: {capacity}")
            } else {
                format!("Pod was rejected: Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, capacity: {capacity}")
            };
            self.recorder
                .event(pod_ref(pod, None), "Warning", &reason, message.clone());
            let patch =
                json!({"status": {"phase": "Failed", "reason": reason, "message": message}});
            self.patch_status(pod, &patch).await?;
            return Ok(false);
        }
        lock(&self.state).entry(uid).or_default().admitted = true;
        Ok(true)
    }

    async fn patch_status(&self, pod: &Pod, patch: &serde_json::Value) -> Result<(), SyncError> {
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        api.patch_status(
            pod.metadata.name.as_deref().unwrap_or(""),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
        Ok(())
    }

    /// Graceful deletion: stop everything within the grace period, then remove the pod
    /// from the API (gracePeriodSeconds=0, guarded by its uid), as the kubelet does.
    async fn terminate(
        self: &Arc<Self>,
        pod: &Pod,
        rt: &RuntimePod,
    ) -> Result<SyncOutcome, SyncError> {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        self.kill_pod(Some(pod), rt, Some(grace)).await?;
        let rt = self.runtime_pod(&uid_of(pod)).await?;
        self.report_status(pod, &rt).await.ok();
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api
            .delete(pod.metadata.name.as_deref().unwrap_or(""), &dp)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        Ok(SyncOutcome::Again(Some(Duration::from_millis(200))))
    }

    /// Stops every running container (running preStop hooks, within `grace` seconds when
    /// given, else each pod's own grace period) and every ready sandbox.
    async fn kill_pod(
        &self,
        pod: Option<&Pod>,
        rt: &RuntimePod,
        grace: Option<i64>,
    ) -> Result<(), SyncError> {
        let grace = grace
            .or_else(|| pod.and_then(|p| p.spec.as_ref()?.termination_grace_period_seconds))
            .unwrap_or(30);
        let running: Vec<&cri::ContainerStatus> = rt
            .containers
            .iter()
            .filter(|c| c.state == cri::ContainerState::ContainerRunning as i32)
            .collect();
        let kills = running.iter().map(|c| async move {
            let name = c
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
            self.kill_container(
                pod,
                &c.id,
                &name,
                grace,
                "Killing",
                format!("Stopping container {name}"),
            )
            .await
        });
        for r in futures::future::join_all(kills).await {
            r?;
        }
        self.stop_ready_sandboxes(rt).await
    }

    /// Stops every ready sandbox of the pod (already-gone ones are fine).
    async fn stop_ready_sandboxes(&self, rt: &RuntimePod) -> Result<(), SyncError> {
        for s in &rt.sandboxes {
            if s.state == cri::PodSandboxState::SandboxReady as i32 {
                match self.runtime.stop_pod_sandbox(&s.id).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    async fn kill_container(
        &self,
        pod: Option<&Pod>,
        id: &str,
        name: &str,
        grace: i64,
        reason: &str,
        message: String,
    ) -> Result<(), SyncError> {
        let started = Instant::now();
        if let Some(pod) = pod {
            self.recorder.event(
                pod_ref(pod, Some(format!("spec.containers{{{name}}}"))),
                "Normal",
                reason,
                message,
            );
            if let Some(c) = find_container(pod, name) {
                if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
                    let budget = Duration::from_secs(grace.max(0) as u64);
                    let run = crate::hooks::run_handler(self.runtime.as_ref(), id, pod, h, budget);
                    if let Err(e) = tokio::time::timeout(budget, run).await.unwrap_or(Ok(())) {
                        self.recorder.event(
                            pod_ref(pod, Some(format!("spec.containers{{{name}}}"))),
                            "Warning",
                            "FailedPreStopHook",
                            format!("PreStopHook failed: {e}"),
                        );
                    }
                }
            }
        }
        let left = (grace - started.elapsed().as_secs() as i64).max(2);
        match self.runtime.stop_container(id, left).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn remove_runtime_objects(&self, rt: &RuntimePod) {
        for c in &rt.containers {
            let _ = self.runtime.remove_container(&c.id).await;
        }
        for s in &rt.sandboxes {
            let _ = self.runtime.stop_pod_sandbox(&s.id).await;
            let _ = self.runtime.remove_pod_sandbox(&s.id).await;
        }
    }
}

/// Removes the pod-level cgroups (`kubepods[/<qos>]/pod<uid>` under every controller)
/// that runc created as parents of the pod's containers, deepest directories first; a
/// cgroup that still has tasks stays (rmdir fails).
pub fn remove_pod_cgroups(cgroup_root: &Path, uid: &str) {
    fn rmdir_tree(dir: &Path) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rmdir_tree(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    let Ok(controllers) = std::fs::read_dir(cgroup_root) else {
        return;
    };
    for c in controllers.flatten() {
        for qos in ["kubepods", "kubepods/burstable", "kubepods/besteffort"] {
            let dir = c.path().join(qos).join(format!("pod{uid}"));
            if dir.is_dir() {
                rmdir_tree(&dir);
            }
        }
    }
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// ConfigMaps and Secrets a container's environment refers to, fetched before the
/// (pure) environment is computed.
#[derive(Default)]
struct FetchedEnv {
    config_maps: HashMap<String, BTreeMap<String, String>>,
    secrets: HashMap<String, BTreeMap<String, Vec<u8>>>,
}

impl podspec::EnvSource for FetchedEnv {
    fn config_map(&self, _ns: &str, name: &str) -> Option<BTreeMap<String, String>> {
        self.config_maps.get(name).cloned()
    }
    fn secret(&self, _ns: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.secrets.get(name).cloned()
    }
}

/// Service account tokens already issued for projected volumes, by request: reused
/// until 80% of their lifetime has passed (or 24 h), as the upstream token manager does.
type TokenCache = Mutex<HashMap<String, (String, Instant, Duration)>>;

/// ConfigMaps, Secrets and tokens for volumes, read from the API.
struct ApiObjects<'a> {
    client: kube::Client,
    tokens: &'a TokenCache,
}

#[async_trait::async_trait]
impl crate::volumes::ObjectSource for ApiObjects<'_> {
    async fn config_map(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<k8s_openapi::api::core::v1::ConfigMap>, crate::volumes::VolumeError> {
        Api::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|e| crate::volumes::VolumeError::Fetch(e.to_string()))
    }
    async fn secret(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<k8s_openapi::api::core::v1::Secret>, crate::volumes::VolumeError> {
        Api::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|e| crate::volumes::VolumeError::Fetch(e.to_string()))
    }
    async fn service_account_token(
        &self,
        ns: &str,
        service_account: &str,
        audiences: Vec<String>,
        expiration_seconds: i64,
        pod_name: &str,
        pod_uid: &str,
    ) -> Result<String, crate::volumes::VolumeError> {
        let key = format!("{ns}/{service_account}/{audiences:?}/{expiration_seconds}/{pod_uid}");
        if let Some((token, issued, ttl)) = lock(self.tokens).get(&key).cloned() {
            let age = issued.elapsed();
            if age < ttl.mul_f64(0.8) && age < Duration::from_secs(24 * 3600) {
                return Ok(token);
            }
        }
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": audiences, "expirationSeconds": expiration_seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid}}
        });
        let req = http::Request::post(format!(
            "/api/v1/namespaces/{ns}/serviceaccounts/{service_account}/token"
        ))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .map_err(|e| crate::volumes::VolumeError::Fetch(e.to_string()))?;
        let v: serde_json::Value = self
            .client
            .request(req)
            .await
            .map_err(|e| crate::volumes::VolumeError::Fetch(e.to_string()))?;
        let token = v
            .pointer("/status/token")
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                crate::volumes::VolumeError::Fetch("token request returned no token".into())
            })?;
        let ttl = Duration::from_secs(expiration_seconds.max(1) as u64);
        let mut cache = lock(self.tokens);
        cache.retain(|_, (_, issued, ttl)| issued.elapsed() < *ttl);
        cache.insert(key, (token.clone(), Instant::now(), ttl));
        Ok(token)
    }
}

const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The node's allocatable and memory capacity, for downward API defaults.
struct NodeResources {
    allocatable: BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    memory_capacity: i64,
}

impl Kubelet {
    fn node_resources(&self) -> NodeResources {
        let facts =
            crate::nodestatus::MachineInfo::facts(&crate::nodestatus::SysMachine, &self.paths.pods);
        let (_, allocatable) = crate::nodestatus::resources(&self.node, &facts);
        NodeResources {
            allocatable,
            memory_capacity: facts.memory_bytes as i64,
        }
    }

    fn context<'a>(
        &'a self,
        pod: &'a Pod,
        pod_ips: &'a [String],
        res: &NodeResources,
    ) -> PodContext<'a> {
        let q = |k: &str, millis: bool| {
            res.allocatable
                .get(k)
                .and_then(|q| crate::nodestatus::parse_quantity(&q.0, millis))
                .unwrap_or(0) as i64
        };
        let mut ctx = PodContext::new(
            pod,
            &self.node.name,
            &self.node.internal_ip,
            pod_ips,
            &self.paths.logs,
        );
        ctx.cluster_domain = &self.dns.cluster_domain;
        ctx.node_allocatable_cpu_millis = q("cpu", true);
        ctx.node_allocatable_memory = q("memory", false);
        ctx.node_allocatable_ephemeral_storage = q("ephemeral-storage", false);
        ctx.node_memory_capacity = res.memory_capacity;
        ctx.swap_controller_available =
            Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
        ctx
    }

    /// The host resolv.conf (`--resolv-conf`), read afresh each time as upstream does;
    /// None when the flag is empty.
    fn host_resolv_conf(
        &self,
    ) -> Result<Option<crate::resolvconf::ResolvConf>, crate::resolvconf::ResolvConfError> {
        let Some(path) = self.dns.resolv_conf.as_ref() else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::resolvconf::ResolvConfError::Open {
                path: path.clone(),
                reason: io_reason(&e),
            }
        })?;
        crate::resolvconf::parse_resolv_conf(&text).map(Some)
    }

    /// The pod's sandbox DNS config (upstream GetPodDNS), recording the warnings forming it
    /// produced; fails when the host resolv.conf cannot be read.
    fn pod_dns(&self, pod: &Pod) -> Result<cri::DnsConfig, crate::resolvconf::ResolvConfError> {
        let host = self.host_resolv_conf()?;
        let node_ips: Vec<std::net::IpAddr> = self.node.internal_ip.parse().into_iter().collect();
        let formed = crate::resolvconf::pod_dns(pod, &self.dns, host.as_ref(), &node_ips);
        for ev in formed.events {
            let subject = match ev.subject {
                crate::resolvconf::EventSubject::Pod => pod_ref(pod, None),
                crate::resolvconf::EventSubject::Node => crate::events::node_ref(&self.node.name),
            };
            self.recorder
                .event(subject, "Warning", ev.reason, ev.message);
        }
        Ok(formed.config)
    }

    /// Warns on the Node when the host resolv.conf cannot be used or exceeds what pods can
    /// take (upstream CheckLimitsForResolvConf, once when the sync loop starts).
    fn check_resolv_conf(&self) {
        let Some(path) = self.dns.resolv_conf.as_ref() else {
            return;
        };
        let message = match self.host_resolv_conf() {
            Ok(Some(host)) => crate::resolvconf::check_resolv_conf_limits(
                &path.to_string_lossy(),
                &host,
                &self.dns.cluster_domain,
            ),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        };
        if let Some(message) = message {
            tracing::warn!(%message, "check limits for resolv.conf");
            self.recorder.event(
                crate::events::node_ref(&self.node.name),
                "Warning",
                crate::resolvconf::REASON_CHECK_LIMITS_FOR_RESOLV_CONF,
                message,
            );
        }
    }

    async fn sync_running(
        self: &Arc<Self>,
        pod: &Pod,
        rt: RuntimePod,
    ) -> Result<SyncOutcome, SyncError> {
        let uid = uid_of(pod);
        let pod_dir = self.paths.pods.join(&uid);
        let res = self.node_resources();
        let node_info = crate::volumes::NodeInfoForVolumes {
            node_name: self.node.name.clone(),
            host_ip: self.node.internal_ip.clone(),
            allocatable: res.allocatable.clone(),
        };
        let source = ApiObjects {
            client: self.client.clone(),
            tokens: &self.tokens,
        };
        let volumes = match crate::volumes::setup_volumes(
            &pod_dir,
            pod,
            &node_info,
            &source,
            self.mounter.as_ref(),
        )
        .await
        {
            Ok(v) => v,
            Err(e) => {
                self.recorder
                    .event(pod_ref(pod, None), "Warning", "FailedMount", e.to_string());
                self.report_status(pod, &rt).await?;
                return Ok(SyncOutcome::Again(Some(Duration::from_secs(2))));
            }
        };
        let probes = lock(&self.state)
            .entry(uid.clone())
            .or_default()
            .probes
            .clone();
        let actions = podsync::compute_pod_actions(pod, &rt, &probes, jiff::Timestamp::now());
        let mut next: Option<Duration> = None;
        let mut soon = |d: Duration| next = Some(next.map_or(d, |n: Duration| n.min(d)));

        // Kills first (all running containers when the pod is killed), then sandboxes.
        for k in &actions.containers_to_kill {
            self.kill_container(
                Some(pod),
                &k.container_id,
                &k.name,
                k.grace_period_seconds,
                "Killing",
                k.message.clone(),
            )
            .await?;
        }
        if actions.kill_pod {
            // Best effort, as before: a failure here shows again on the next sync.
            let _ = self.stop_ready_sandboxes(&rt).await;
        }
        for id in &actions.containers_to_remove {
            let _ = self.runtime.remove_container(id).await;
        }

        // The sandbox.
        let (sandbox_id, attempt) = if actions.create_sandbox {
            let attempt = actions.sandbox_attempt;
            let mut ctx = self.context(pod, &[], &res);
            let config = match self.pod_dns(pod) {
                Ok(dns) => {
                    ctx.dns = Some(dns);
                    podspec::sandbox_config(&ctx, attempt).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            let created = match config {
                Ok(cfg) => {
                    let _ = std::fs::create_dir_all(&ctx.log_dir);
                    self.runtime
                        .run_pod_sandbox(cfg)
                        .await
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e),
            };
            match created {
                Ok(id) => (id, attempt),
                Err(e) => {
                    self.recorder.event(
                        pod_ref(pod, None),
                        "Warning",
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {e}"),
                    );
                    let rt = self.runtime_pod(&uid).await?;
                    self.report_status(pod, &rt).await?;
                    return Ok(SyncOutcome::Again(Some(Duration::from_secs(2))));
                }
            }
        } else {
            match actions.sandbox_id.clone() {
                Some(id) => {
                    let attempt = rt
                        .sandboxes
                        .iter()
                        .find(|s| s.id == id)
                        .and_then(|s| s.metadata.as_ref())
                        .map(|m| m.attempt)
                        .unwrap_or(0);
                    (id, attempt)
                }
                None => {
                    self.report_status(pod, &rt).await?;
                    return Ok(SyncOutcome::Again(None));
                }
            }
        };
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let pod_ips: Vec<String> = if host_network {
            vec![self.node.internal_ip.clone()]
        } else {
            let sandbox = self.runtime.pod_sandbox_status(&sandbox_id).await?;
            sandbox
                .network
                .as_ref()
                .map(|n| {
                    let mut v = vec![n.ip.clone()];
                    v.extend(n.additional_ips.iter().map(|i| i.ip.clone()));
                    v.retain(|x| !x.is_empty());
                    v
                })
                .unwrap_or_default()
        };
        let mut ctx = self.context(pod, &pod_ips, &res);
        let sandbox_cfg = match self
            .pod_dns(pod)
            .map_err(|e| e.to_string())
            .and_then(|dns| {
                ctx.dns = Some(dns);
                podspec::sandbox_config(&ctx, attempt).map_err(|e| e.to_string())
            }) {
            Ok(c) => c,
            Err(e) => {
                self.recorder.event(
                    pod_ref(pod, None),
                    "Warning",
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox config: {e}"),
                );
                return Ok(SyncOutcome::Again(Some(Duration::from_secs(10))));
            }
        };
        let etc_hosts = pod_dir.join("etc-hosts");
        let node_hosts = host_network
            .then(|| std::fs::read_to_string("/etc/hosts").ok())
            .flatten();
        if let Ok(content) = podspec::etc_hosts_content(
            pod,
            &pod_ips,
            &self.dns.cluster_domain,
            node_hosts.as_deref(),
        ) {
            if std::fs::read_to_string(&etc_hosts).ok().as_deref() != Some(content.as_str()) {
                let _ = std::fs::create_dir_all(&pod_dir);
                let _ = std::fs::write(&etc_hosts, content);
            }
        }

        let spec = pod.spec.clone().unwrap_or_default();
        let start = StartCtx {
            ctx: &ctx,
            sandbox_id: &sandbox_id,
            sandbox_cfg: &sandbox_cfg,
            volumes: &volumes,
            etc_hosts: etc_hosts.exists().then_some(etc_hosts.as_path()),
            pod_dir: &pod_dir,
        };
        for a in &actions.init_containers_to_start {
            if let Some(c) = spec.init_containers.as_ref().and_then(|v| v.get(a.index)) {
                if let Some(d) = self.start_container(pod, &start, c, a).await? {
                    soon(d);
                    break;
                }
            }
        }
        for a in &actions.containers_to_start {
            if let Some(c) = spec.containers.get(a.index) {
                if let Some(d) = self.start_container(pod, &start, c, a).await? {
                    soon(d);
                }
            }
        }
        for b in &actions.backoff {
            self.set_waiting(pod, &b.name, "CrashLoopBackOff", b.message.clone());
            soon(b.remaining);
            self.recorder.event(
                pod_ref(pod, Some(field_path(b.kind, &b.name))),
                "Warning",
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {}",
                    b.name,
                    full_name(pod)
                ),
            );
        }
        // Dead containers beyond the newest exited attempt of each, and dead sandboxes.
        let rt = self.runtime_pod(&uid).await?;
        let gc = podsync::containers_to_remove(&rt, 1);
        for id in &gc.containers {
            let _ = self.runtime.remove_container(id).await;
        }
        for id in &gc.sandboxes {
            let _ = self.runtime.remove_pod_sandbox(id).await;
        }
        let rt = if gc.containers.is_empty() && gc.sandboxes.is_empty() {
            rt
        } else {
            self.runtime_pod(&uid).await?
        };
        self.report_status(pod, &rt).await?;
        crate::prober::ensure(self, pod, &rt);
        Ok(SyncOutcome::Again(next))
    }
}

/// An IO error as Go prints it: the OS message, lowercase, without the error number.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

fn field_path(kind: podsync::ContainerKind, name: &str) -> String {
    match kind {
        podsync::ContainerKind::Init => format!("spec.initContainers{{{name}}}"),
        podsync::ContainerKind::App => format!("spec.containers{{{name}}}"),
    }
}

fn grace_of(pod: &Pod) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30)
}

struct StartCtx<'a> {
    ctx: &'a PodContext<'a>,
    sandbox_id: &'a str,
    sandbox_cfg: &'a cri::PodSandboxConfig,
    volumes: &'a BTreeMap<String, crate::volumes::VolumeMountSource>,
    etc_hosts: Option<&'a Path>,
    pod_dir: &'a Path,
}

fn default_pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        "IfNotPresent"
    } else {
        match last.split_once(':') {
            None => "Always",
            Some((_, "latest")) => "Always",
            Some(_) => "IfNotPresent",
        }
    }
}

/// Why a container could not be started yet: the waiting reason, its message, and when
/// to try again.
struct NotStarted {
    reason: String,
    message: String,
    retry: Duration,
}

impl Kubelet {
    fn set_waiting(&self, pod: &Pod, name: &str, reason: &str, message: String) {
        let mut st = lock(&self.state);
        st.entry(uid_of(pod))
            .or_default()
            .waiting
            .insert(name.to_string(), (reason.to_string(), message));
    }

    /// Makes sure the image is present (ImageStatus before PullImage, per pull policy).
    async fn ensure_image(
        &self,
        pod: &Pod,
        c: &Container,
        fp: &str,
        sandbox_cfg: &cri::PodSandboxConfig,
    ) -> Result<cri::Image, NotStarted> {
        let image = c.image.clone().unwrap_or_default();
        let ev = |type_: &str, reason: &str, msg: String| {
            self.recorder
                .event(pod_ref(pod, Some(fp.to_string())), type_, reason, msg)
        };
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image).to_string());
        let present = self
            .runtime
            .image_status(&image)
            .await
            .map_err(|e| NotStarted {
                reason: "ErrImagePull".into(),
                message: format!("Failed to inspect image \"{image}\": {e}"),
                retry: Duration::from_secs(2),
            })?;
        if policy != "Always" {
            if let Some(img) = present {
                ev(
                    "Normal",
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                );
                return Ok(img);
            }
            if policy == "Never" {
                let msg =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                ev("Warning", "ErrImageNeverPull", msg.clone());
                return Err(NotStarted {
                    reason: "ErrImageNeverPull".into(),
                    message: msg,
                    retry: Duration::from_secs(10),
                });
            }
        }
        let uid = uid_of(pod);
        let backoff = lock(&self.state)
            .entry(uid.clone())
            .or_default()
            .image_backoff
            .get(&image)
            .cloned();
        if let Some((until, _)) = backoff {
            let now = Instant::now();
            if now < until {
                let msg = format!("Back-off pulling image \"{image}\"");
                ev("Normal", "BackOff", msg.clone());
                return Err(NotStarted {
                    reason: "ImagePullBackOff".into(),
                    message: msg,
                    retry: until - now,
                });
            }
        }
        ev("Normal", "Pulling", format!("Pulling image \"{image}\""));
        let started = Instant::now();
        let pulled = match self
            .runtime
            .pull_image(&image, Some(sandbox_cfg.clone()))
            .await
        {
            Ok(_) => self.runtime.image_status(&image).await.ok().flatten(),
            Err(e) => {
                let delay = {
                    let mut st = lock(&self.state);
                    let st = st.entry(uid).or_default();
                    let d = st
                        .image_backoff
                        .get(&image)
                        .map(|(_, d)| (*d * 2).min(BACKOFF_MAX))
                        .unwrap_or(BACKOFF_START);
                    st.image_backoff
                        .insert(image.clone(), (Instant::now() + d, d));
                    d
                };
                let msg = format!("Failed to pull image \"{image}\": {e}");
                ev("Warning", "Failed", msg.clone());
                ev("Warning", "Failed", "Error: ErrImagePull".into());
                return Err(NotStarted {
                    reason: "ErrImagePull".into(),
                    message: msg,
                    retry: delay,
                });
            }
        };
        lock(&self.state)
            .entry(uid)
            .or_default()
            .image_backoff
            .remove(&image);
        ev(
            "Normal",
            "Pulled",
            format!(
                "Successfully pulled image \"{image}\" in {:.3}s",
                started.elapsed().as_secs_f64()
            ),
        );
        pulled.ok_or_else(|| NotStarted {
            reason: "ErrImagePull".into(),
            message: format!("image \"{image}\" not found after pulling"),
            retry: Duration::from_secs(2),
        })
    }

    async fn fetch_env(&self, pod: &Pod, c: &Container) -> FetchedEnv {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let mut cms = BTreeSet::new();
        let mut secrets = BTreeSet::new();
        for e in c.env.iter().flatten() {
            if let Some(vf) = &e.value_from {
                if let Some(r) = &vf.config_map_key_ref {
                    cms.insert(r.name.clone());
                }
                if let Some(r) = &vf.secret_key_ref {
                    secrets.insert(r.name.clone());
                }
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(r) = &e.config_map_ref {
                cms.insert(r.name.clone());
            }
            if let Some(r) = &e.secret_ref {
                secrets.insert(r.name.clone());
            }
        }
        let mut out = FetchedEnv::default();
        // The same reads as for volumes.
        use crate::volumes::ObjectSource;
        let source = ApiObjects {
            client: self.client.clone(),
            tokens: &self.tokens,
        };
        for n in cms {
            if let Ok(Some(cm)) = source.config_map(&ns, &n).await {
                let mut m: BTreeMap<String, String> = cm.data.unwrap_or_default();
                for (k, v) in cm.binary_data.unwrap_or_default() {
                    m.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                }
                out.config_maps.insert(n, m);
            }
        }
        for n in secrets {
            if let Ok(Some(s)) = source.secret(&ns, &n).await {
                let mut m: BTreeMap<String, Vec<u8>> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                for (k, v) in s.string_data.unwrap_or_default() {
                    m.insert(k, v.into_bytes());
                }
                out.secrets.insert(n, m);
            }
        }
        out
    }

    /// Builds the CRI container config: environment, mounts, image user.
    async fn container_config(
        &self,
        pod: &Pod,
        s: &StartCtx<'_>,
        c: &Container,
        a: &podsync::StartAction,
        image: &cri::Image,
    ) -> Result<cri::ContainerConfig, String> {
        let fetched = self.fetch_env(pod, c).await;
        let env = podspec::container_env(s.ctx, c, &fetched, &[]).map_err(|e| e.to_string())?;
        let term_log = s
            .pod_dir
            .join("containers")
            .join(&c.name)
            .join(format!("{:08x}", rand::random::<u32>()));
        if let Some(p) = term_log.parent() {
            let _ = std::fs::create_dir_all(p);
        }
        let _ = std::fs::write(&term_log, b"");
        let paths: BTreeMap<String, (PathBuf, bool)> = s
            .volumes
            .iter()
            .map(|(k, v)| (k.clone(), (v.host_path.clone(), v.read_only)))
            .collect();
        let mounts = podspec::volume_mounts(c, &paths, &env, s.etc_hosts, Some(&term_log))
            .map_err(|e| e.to_string())?;
        // subPath directories must exist before the bind mount.
        for m in &mounts {
            if !Path::new(&m.host_path).exists() {
                let _ = std::fs::create_dir_all(&m.host_path);
            }
        }
        let kind = match a.kind {
            podsync::ContainerKind::Init => ContainerKind::Init,
            podsync::ContainerKind::App => ContainerKind::App,
        };
        let resolved = podspec::ResolvedImage {
            image_ref: &image.id,
            uid: image.uid.as_ref().map(|u| u.value),
            username: &image.username,
        };
        let mut cfg =
            podspec::container_config(s.ctx, c, kind, a.restart_count, env, mounts, &resolved)
                .map_err(|e| e.to_string())?;
        cfg.annotations.insert(
            podsync::CONTAINER_BACKOFF_LEVEL.to_string(),
            a.backoff_level.to_string(),
        );
        Ok(cfg)
    }

    /// Pulls, creates and starts one container. `Some(delay)`: it could not start (the
    /// waiting reason is recorded); sync again after `delay`.
    async fn start_container(
        &self,
        pod: &Pod,
        s: &StartCtx<'_>,
        c: &Container,
        a: &podsync::StartAction,
    ) -> Result<Option<Duration>, SyncError> {
        let fp = field_path(a.kind, &c.name);
        let ev = |type_: &str, reason: &str, msg: String| {
            self.recorder
                .event(pod_ref(pod, Some(fp.clone())), type_, reason, msg)
        };
        let image = match self.ensure_image(pod, c, &fp, s.sandbox_cfg).await {
            Ok(i) => i,
            Err(n) => {
                self.set_waiting(pod, &c.name, &n.reason, n.message);
                return Ok(Some(n.retry));
            }
        };
        let cfg = match self.container_config(pod, s, c, a, &image).await {
            Ok(cfg) => cfg,
            Err(e) => {
                ev("Warning", "Failed", format!("Error: {e}"));
                self.set_waiting(pod, &c.name, "CreateContainerConfigError", e);
                return Ok(Some(Duration::from_secs(2)));
            }
        };
        let _ = std::fs::create_dir_all(s.ctx.log_dir.join(&c.name));
        let id = match self
            .runtime
            .create_container(s.sandbox_id, cfg, s.sandbox_cfg.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                let msg = e.to_string();
                ev("Warning", "Failed", format!("Error: {msg}"));
                self.set_waiting(pod, &c.name, "CreateContainerError", msg);
                return Ok(Some(Duration::from_secs(2)));
            }
        };
        ev("Normal", "Created", format!("Created container {}", c.name));
        if let Err(e) = self.runtime.start_container(&id).await {
            let msg = e.to_string();
            ev("Warning", "Failed", format!("Error: {msg}"));
            self.set_waiting(pod, &c.name, "RunContainerError", msg);
            return Ok(Some(Duration::from_secs(2)));
        }
        ev("Normal", "Started", format!("Started container {}", c.name));
        {
            let mut st = lock(&self.state);
            let st = st.entry(uid_of(pod)).or_default();
            st.waiting.remove(&c.name);
            st.probes.liveness_failed.remove(&c.name);
            st.probes.startup_failed.remove(&c.name);
            st.probes.startup_succeeded.remove(&c.name);
            st.started.remove(&c.name);
            st.ready.remove(&c.name);
        }
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let budget = Duration::from_secs(grace_of(pod).max(1) as u64);
            let r = tokio::time::timeout(
                budget,
                crate::hooks::run_handler(self.runtime.as_ref(), &id, pod, h, budget),
            )
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
            if let Err(e) = r {
                ev(
                    "Warning",
                    "FailedPostStartHook",
                    format!("PostStartHook failed: {e}"),
                );
                let _ = self.runtime.stop_container(&id, grace_of(pod)).await;
            }
        }
        Ok(None)
    }

    /// Computes the pod's status and patches it when it changed.
    async fn report_status(&self, pod: &Pod, rt: &RuntimePod) -> Result<(), SyncError> {
        let uid = uid_of(pod);
        let (waiting, ready, started, last) = {
            let mut st = lock(&self.state);
            let st = st.entry(uid.clone()).or_default();
            (
                st.waiting.clone(),
                st.ready.clone(),
                st.started.clone(),
                st.last_status.clone(),
            )
        };
        let term = termination_messages(rt);
        let view = KubeletView {
            waiting: &waiting,
            ready: &ready,
            started: &started,
            host_ip: &self.node.internal_ip,
            termination_messages: &term,
            terminal: false,
        };
        let mut status = podstatus::pod_status(pod, rt, &view, jiff::Timestamp::now());
        // Conditions the kubelet does not own (readiness gates, DisruptionTarget...) stay.
        const OWNED: &[&str] = &[
            "PodReadyToStartContainers",
            "Initialized",
            "ContainersReady",
            "Ready",
            "PodScheduled",
        ];
        if let Some(old) = pod.status.as_ref().and_then(|s| s.conditions.as_ref()) {
            let conds = status.conditions.get_or_insert_with(Vec::new);
            for c in old {
                if !OWNED.contains(&c.type_.as_str()) && !conds.iter().any(|x| x.type_ == c.type_) {
                    conds.push(c.clone());
                }
            }
        }
        let current = pod.status.clone().unwrap_or_default();
        if podstatus::status_equal_ignoring_time(&status, &current)
            || last
                .as_ref()
                .is_some_and(|l| podstatus::status_equal_ignoring_time(&status, l))
        {
            return Ok(());
        }
        match self.patch_status(pod, &json!({"status": status})).await {
            Ok(()) => {
                lock(&self.state).entry(uid).or_default().last_status = Some(status);
                Ok(())
            }
            Err(SyncError::Api(kube::Error::Api(s))) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Termination messages from the files the containers wrote (terminationMessagePath is
/// bind-mounted from the pod dir), by container id.
fn termination_messages(rt: &RuntimePod) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in &rt.containers {
        if c.state != cri::ContainerState::ContainerExited as i32 {
            continue;
        }
        let path = c
            .mounts
            .iter()
            .find(|m| {
                Some(m.container_path.as_str())
                    == c.annotations
                        .get(crate::labels::CONTAINER_TERMINATION_MESSAGE_PATH)
                        .map(String::as_str)
            })
            .map(|m| m.host_path.clone());
        if let Some(p) = path {
            if let Ok(mut s) = std::fs::read_to_string(&p) {
                s.truncate(4096);
                if !s.is_empty() {
                    out.insert(c.id.clone(), s);
                }
            }
        }
    }
    out
}

/// The kubelet API's view of pods and containers (logs, exec, attach, port-forward).
impl Kubelet {
    fn pod_uid(&self, namespace: &str, name: &str) -> Option<String> {
        lock(&self.pods)
            .values()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .map(uid_of)
    }

    /// Instances of a container, newest first.
    async fn instances(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<Vec<cri::ContainerStatus>, crate::server::ServerError> {
        use crate::server::ServerError;
        let uid = self
            .pod_uid(namespace, pod)
            .ok_or_else(|| ServerError::NotFound(format!("pod {namespace}/{pod} not found")))?;
        let rt = self
            .runtime_pod(&uid)
            .await
            .map_err(|e| ServerError::Runtime(e.to_string()))?;
        let mut v: Vec<cri::ContainerStatus> = rt
            .containers
            .into_iter()
            .filter(|c| c.metadata.as_ref().is_some_and(|m| m.name == container))
            .collect();
        v.sort_by_key(|c| {
            std::cmp::Reverse((
                c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
                c.created_at,
            ))
        });
        if v.is_empty() {
            return Err(ServerError::NotFound(format!(
                "container {container} is not valid for pod {pod}"
            )));
        }
        Ok(v)
    }

    async fn running_container(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Result<String, crate::server::ServerError> {
        let v = self.instances(namespace, pod, container).await?;
        v.iter()
            .find(|c| c.state == cri::ContainerState::ContainerRunning as i32)
            .map(|c| c.id.clone())
            .ok_or_else(|| {
                crate::server::ServerError::BadRequest(format!(
                    "container {container} is not running in pod {pod}"
                ))
            })
    }
}

#[async_trait::async_trait]
impl crate::server::KubeletBackend for Kubelet {
    async fn exec_url(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        cmd: Vec<String>,
        o: crate::server::StreamOptions,
    ) -> Result<String, crate::server::ServerError> {
        let id = self.running_container(namespace, pod, container).await?;
        self.runtime
            .exec(cri::ExecRequest {
                container_id: id,
                cmd,
                tty: o.tty,
                stdin: o.stdin,
                stdout: o.stdout,
                stderr: o.stderr,
            })
            .await
            .map_err(|e| crate::server::ServerError::Runtime(e.to_string()))
    }

    async fn attach_url(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        o: crate::server::StreamOptions,
    ) -> Result<String, crate::server::ServerError> {
        let id = self.running_container(namespace, pod, container).await?;
        self.runtime
            .attach(cri::AttachRequest {
                container_id: id,
                stdin: o.stdin,
                tty: o.tty,
                stdout: o.stdout,
                stderr: o.stderr,
            })
            .await
            .map_err(|e| crate::server::ServerError::Runtime(e.to_string()))
    }

    async fn port_forward_url(
        &self,
        namespace: &str,
        pod: &str,
    ) -> Result<String, crate::server::ServerError> {
        use crate::server::ServerError;
        let uid = self
            .pod_uid(namespace, pod)
            .ok_or_else(|| ServerError::NotFound(format!("pod {namespace}/{pod} not found")))?;
        let rt = self
            .runtime_pod(&uid)
            .await
            .map_err(|e| ServerError::Runtime(e.to_string()))?;
        let sandbox = rt
            .sandboxes
            .iter()
            .filter(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
            .max_by_key(|s| s.created_at)
            .ok_or_else(|| ServerError::BadRequest(format!("pod {pod} has no running sandbox")))?;
        self.runtime
            .port_forward(cri::PortForwardRequest {
                pod_sandbox_id: sandbox.id.clone(),
                port: vec![],
            })
            .await
            .map_err(|e| ServerError::Runtime(e.to_string()))
    }

    async fn log_path(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<(PathBuf, bool), crate::server::ServerError> {
        let v = self.instances(namespace, pod, container).await?;
        let c = if previous {
            // Upstream reads `lastState.terminated.containerID` of the reported status.
            let last_id = lock(&self.pods)
                .values()
                .find(|p| {
                    p.metadata.namespace.as_deref() == Some(namespace)
                        && p.metadata.name.as_deref() == Some(pod)
                })
                .and_then(|p| p.status.clone())
                .and_then(|s| {
                    s.container_statuses
                        .into_iter()
                        .flatten()
                        .chain(s.init_container_statuses.into_iter().flatten())
                        .find(|c| c.name == container)
                })
                .and_then(|c| c.last_state?.terminated?.container_id)
                .map(|id| id.rsplit("://").next().unwrap_or_default().to_string());
            last_id
                .and_then(|id| v.iter().find(|c| c.id == id))
                .ok_or_else(|| {
                    crate::server::ServerError::BadRequest(format!(
                        "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                    ))
                })?
        } else {
            &v[0]
        };
        let running = c.state == cri::ContainerState::ContainerRunning as i32;
        Ok((PathBuf::from(&c.log_path), running))
    }

    async fn wait_container_exit(&self, namespace: &str, pod: &str, container: &str) {
        loop {
            match self.instances(namespace, pod, container).await {
                Ok(v) if v[0].state == cri::ContainerState::ContainerRunning as i32 => {}
                _ => return,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cgroups_are_removed_for_that_pod_only() {
        let root = tempfile::tempdir().unwrap();
        for ctrl in ["memory", "cpu"] {
            std::fs::create_dir_all(root.path().join(ctrl).join("kubepods/besteffort/podA/ctr1"))
                .unwrap();
            std::fs::create_dir_all(root.path().join(ctrl).join("kubepods/podB")).unwrap();
        }
        remove_pod_cgroups(root.path(), "A");
        for ctrl in ["memory", "cpu"] {
            assert!(!root
                .path()
                .join(ctrl)
                .join("kubepods/besteffort/podA")
                .exists());
            assert!(root.path().join(ctrl).join("kubepods/besteffort").exists());
            assert!(root.path().join(ctrl).join("kubepods/podB").exists());
        }
    }

    #[test]
    fn io_errors_read_as_go_prints_them() {
        let e = std::fs::read_to_string("/nonexistent/minik8s/resolv.conf").unwrap_err();
        assert_eq!(io_reason(&e), "no such file or directory");
        let e = std::io::Error::other("Custom");
        assert_eq!(io_reason(&e), "custom");
    }
}
