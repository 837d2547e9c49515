//! The scheduler: watches pods and nodes (one list-watch each), keeps a compact snapshot of
//! nodes and assigned pods, takes unscheduled pods of its `schedulerName` from a priority
//! queue, filters and scores nodes with pure functions over the snapshot, assumes the pod
//! onto the chosen node and binds through the `pods/binding` subresource in spawned tasks
//! (bounded concurrency). Pods that fit nowhere get PodScheduled=False/Unschedulable, a
//! `FailedScheduling` event and, when allowed, preemption of lower-priority pods.

pub mod algorithm;
pub mod binder;
pub mod filters;
pub mod labels;
pub mod queue;
pub mod scores;
pub mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::algorithm::Nominated;
use crate::binder::PodRef;
use crate::queue::Queue;
use crate::snapshot::{PodInfo, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    #[error("watch stream ended")]
    WatchEnded,
}

/// Settings of the scheduler.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pods with this `spec.schedulerName` are ours.
    pub scheduler_name: String,
    /// Bindings (and other API side effects) in flight at once.
    pub parallelism: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            scheduler_name: "default-scheduler".into(),
            parallelism: 64,
        }
    }
}

/// Outcome of a binding task.
struct BindDone {
    uid: String,
    result: Result<(), kube::Error>,
}

struct Scheduler {
    client: kube::Client,
    config: Config,
    snap: Snapshot,
    queue: Queue,
    /// Pods assumed onto a node whose binding is in flight or not yet observed.
    assumed: HashMap<String, Arc<Pod>>,
    nominated: Nominated,
    nominated_by_uid: HashMap<String, String>,
    start: usize,
    sem: Arc<Semaphore>,
    bind_tx: mpsc::UnboundedSender<BindDone>,
    events: binder::EventQueue,
    pods_synced: bool,
    nodes_synced: bool,
    pod_init: Option<HashSet<String>>,
    node_init: Option<HashSet<String>>,
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl Scheduler {
    fn set_nominated(&mut self, uid: &str, node: Option<String>, info: Option<&PodInfo>) {
        if let Some(old) = self.nominated_by_uid.remove(uid) {
            if let Some(list) = self.nominated.get_mut(&old) {
                list.retain(|(u, _, _)| u != uid);
                if list.is_empty() {
                    self.nominated.remove(&old);
                }
            }
        }
        if let (Some(node), Some(info)) = (node, info) {
            self.nominated.entry(node.clone()).or_default().push((
                uid.to_string(),
                info.priority,
                info.requests.clone(),
            ));
            self.nominated_by_uid.insert(uid.to_string(), node);
        }
    }

    fn on_pod(&mut self, pod: Pod) {
        let now = Instant::now();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        if is_terminal(&pod) {
            self.on_pod_gone(&uid);
            return;
        }
        if let Some(node) = node {
            self.queue.remove(&uid);
            self.set_nominated(&uid, None, None);
            self.assumed.remove(&uid);
            let was = self.snap.pod_nodes.get(&uid).cloned();
            let info = Arc::new(PodInfo::from_pod(&pod));
            let unchanged = was.as_deref() == Some(node.as_str())
                && self.snap.pod(&uid).is_some_and(|p| **p == *info);
            if !unchanged {
                self.snap.add_pod(&node, info);
            }
            if was.is_none() {
                self.queue.move_all(now, true);
            }
            return;
        }
        let spec = pod.spec.as_ref();
        let ours = spec
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler")
            == self.config.scheduler_name;
        let gated = spec
            .and_then(|s| s.scheduling_gates.as_ref())
            .is_some_and(|g| !g.is_empty());
        if !ours || gated || pod.metadata.deletion_timestamp.is_some() {
            self.queue.remove(&uid);
            return;
        }
        if self.assumed.contains_key(&uid) {
            return;
        }
        let nom = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone())
            .filter(|n| !n.is_empty());
        self.queue.add_or_update(Arc::new(pod), now);
        if nom.is_some() || self.nominated_by_uid.contains_key(&uid) {
            let info = PodInfo::from_pod_uid_only(&self.queue, &uid);
            self.set_nominated(&uid, nom, info.as_deref());
        }
    }

    fn on_pod_gone(&mut self, uid: &str) {
        self.queue.remove(uid);
        self.assumed.remove(uid);
        self.set_nominated(uid, None, None);
        if self.snap.remove_pod(uid).is_some() {
            self.queue.move_all(Instant::now(), false);
        }
    }

    fn on_node(&mut self, node: Node) {
        if self.snap.upsert_node(&node) {
            self.queue.move_all(Instant::now(), false);
        }
    }

    fn pod_event(&mut self, ev: Event<Pod>) {
        match ev {
            Event::Apply(p) => self.on_pod(p),
            Event::Delete(p) => self.on_pod_gone(&p.metadata.uid.clone().unwrap_or_default()),
            Event::Init => self.pod_init = Some(HashSet::new()),
            Event::InitApply(p) => {
                if let Some(seen) = &mut self.pod_init {
                    seen.insert(p.metadata.uid.clone().unwrap_or_default());
                }
                self.on_pod(p);
            }
            Event::InitDone => {
                if let Some(seen) = self.pod_init.take() {
                    let gone: Vec<String> = self
                        .snap
                        .pod_nodes
                        .keys()
                        .filter(|u| !seen.contains(*u) && !self.assumed.contains_key(*u))
                        .cloned()
                        .collect();
                    for u in gone {
                        self.on_pod_gone(&u);
                    }
                    self.queue.retain(|u| seen.contains(u));
                }
                self.pods_synced = true;
            }
        }
    }

    fn node_event(&mut self, ev: Event<Node>) {
        match ev {
            Event::Apply(n) => self.on_node(n),
            Event::Delete(n) => self
                .snap
                .remove_node(n.metadata.name.as_deref().unwrap_or("")),
            Event::Init => self.node_init = Some(HashSet::new()),
            Event::InitApply(n) => {
                if let Some(seen) = &mut self.node_init {
                    seen.insert(n.metadata.name.clone().unwrap_or_default());
                }
                self.on_node(n);
            }
            Event::InitDone => {
                if let Some(seen) = self.node_init.take() {
                    let gone: Vec<String> = self
                        .snap
                        .index
                        .keys()
                        .filter(|n| !seen.contains(*n))
                        .cloned()
                        .collect();
                    for n in gone {
                        self.snap.remove_node(&n);
                    }
                }
                self.nodes_synced = true;
                self.queue.move_all(Instant::now(), false);
            }
        }
    }

    fn bind_done(&mut self, done: BindDone) {
        let Err(err) = done.result else { return };
        let Some(pod) = self.assumed.remove(&done.uid) else {
            return;
        };
        // Still assumed (the watch has not confirmed a binding): forget the assumption.
        self.snap.remove_pod(&done.uid);
        let status = match &err {
            kube::Error::Api(s) => s.code,
            _ => 0,
        };
        if status == 404 || status == 409 {
            // Deleted, or already bound (the watch will tell us where).
            return;
        }
        tracing::info!(pod = ?pod.metadata.name, error = %err, "binding failed");
        self.queue.add_or_update(pod.clone(), Instant::now());
        self.queue.backoff(&done.uid, Instant::now());
        self.events.post(
            PodRef::of(&pod),
            "Warning",
            "FailedScheduling",
            "Scheduling",
            format!("Binding rejected: {err}"),
        );
    }

    /// One scheduling attempt for the next active pod.
    fn schedule_one(&mut self, permit: OwnedSemaphorePermit) {
        let Some(popped) = self.queue.pop() else {
            return;
        };
        let pod = popped.pod;
        let sched = popped.sched;
        let uid = sched.info.uid.clone();
        let client = self.client.clone();
        if self.snap.nodes.is_empty() {
            self.queue.backoff(&uid, Instant::now());
            tokio::spawn(async move {
                let _permit = permit;
                binder::record_failure(
                    client,
                    pod,
                    "SchedulerError",
                    "no nodes available to schedule pods".into(),
                    None,
                )
                .await;
            });
            return;
        }
        match algorithm::schedule(&self.snap, &sched, &self.nominated, &mut self.start) {
            Ok(i) => {
                let node = self.snap.nodes[i].name.clone();
                self.queue.done(&uid);
                self.set_nominated(&uid, None, None);
                self.snap.add_pod(&node, sched.info.clone());
                self.assumed.insert(uid.clone(), pod.clone());
                let tx = self.bind_tx.clone();
                let events = self.events.clone();
                tokio::spawn(async move {
                    let pr = PodRef::of(&pod);
                    let result =
                        binder::bind(&client, &pr.namespace, &pr.name, &pr.uid, &node).await;
                    let ok = result.is_ok();
                    let _ = tx.send(BindDone { uid, result });
                    // The event does not hold a binding slot.
                    drop(permit);
                    if ok {
                        let msg = format!(
                            "Successfully assigned {}/{} to {}",
                            pr.namespace, pr.name, node
                        );
                        events.post(pr, "Normal", "Scheduled", "Binding", msg);
                    }
                });
            }
            Err(fit) => {
                let mut message = fit.message();
                let mut nominate = None;
                let mut victims = Vec::new();
                match algorithm::preempt(&self.snap, &sched, &fit, &self.nominated) {
                    Ok(c) => {
                        let node = self.snap.nodes[c.node].name.clone();
                        self.set_nominated(&uid, Some(node.clone()), Some(&sched.info));
                        nominate = Some(node);
                        victims = c.victims;
                    }
                    Err(post) => {
                        message.push(' ');
                        message.push_str(&post);
                    }
                }
                self.queue
                    .unschedulable(&uid, fit.pod_dependent(), Instant::now());
                let scheduler = self.config.scheduler_name.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Some(node) = &nominate {
                        let evictions = victims.into_iter().map(|v| {
                            binder::evict(
                                client.clone(),
                                v,
                                uid.clone(),
                                node.clone(),
                                scheduler.clone(),
                            )
                        });
                        futures::future::join_all(evictions).await;
                    }
                    binder::record_failure(client, pod, "Unschedulable", message, nominate).await;
                });
            }
        }
    }
}

impl PodInfo {
    /// The summary of a queued pod, if queued.
    fn from_pod_uid_only(queue: &Queue, uid: &str) -> Option<Arc<PodInfo>> {
        queue.sched(uid).map(|s| s.info.clone())
    }
}

/// A pod as the scheduler's watch decodes it: without `metadata.managedFields`, which
/// nothing here reads (serde skips it rather than building it, a large share of the
/// allocations of decoding a pod).
#[derive(Clone, Debug, serde::Deserialize)]
struct LeanPod {
    #[serde(
        default,
        deserialize_with = "controllers::cachedpod::lean_meta::deserialize"
    )]
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    #[serde(default)]
    spec: Option<k8s_openapi::api::core::v1::PodSpec>,
    #[serde(default)]
    status: Option<k8s_openapi::api::core::v1::PodStatus>,
}

impl kube::Resource for LeanPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        Pod::kind(&())
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        Pod::group(&())
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        Pod::version(&())
    }
    fn api_version(_: &()) -> std::borrow::Cow<'_, str> {
        Pod::api_version(&())
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        Pod::plural(&())
    }
    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &mut self.metadata
    }
}

impl From<LeanPod> for Pod {
    fn from(p: LeanPod) -> Pod {
        Pod {
            metadata: p.metadata,
            spec: p.spec,
            status: p.status,
        }
    }
}

fn pod_event_of(ev: Event<LeanPod>) -> Event<Pod> {
    match ev {
        Event::Apply(p) => Event::Apply(p.into()),
        Event::Delete(p) => Event::Delete(p.into()),
        Event::Init => Event::Init,
        Event::InitApply(p) => Event::InitApply(p.into()),
        Event::InitDone => Event::InitDone,
    }
}

/// Runs the scheduler until a fatal error.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let pods: Api<LeanPod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let pod_stream = watcher::watcher(pods, watcher::Config::default()).default_backoff();
    let node_stream = watcher::watcher(nodes, watcher::Config::default()).default_backoff();
    futures::pin_mut!(pod_stream);
    futures::pin_mut!(node_stream);
    let (bind_tx, mut bind_rx) = mpsc::unbounded_channel();
    let events = binder::EventQueue::start(client.clone(), 1000, 4);
    let mut s = Scheduler {
        events,
        client,
        sem: Arc::new(Semaphore::new(config.parallelism.max(1))),
        config,
        snap: Snapshot::default(),
        queue: Queue::default(),
        assumed: HashMap::new(),
        nominated: HashMap::new(),
        nominated_by_uid: HashMap::new(),
        start: 0,
        bind_tx,
        pods_synced: false,
        nodes_synced: false,
        pod_init: None,
        node_init: None,
    };
    let mut next_stale_flush = Instant::now() + Duration::from_secs(30);
    loop {
        let synced = s.pods_synced && s.nodes_synced;
        if synced {
            let mut n = 0;
            while n < 128 && s.queue.has_active() {
                let Ok(permit) = s.sem.clone().try_acquire_owned() else {
                    break;
                };
                s.schedule_one(permit);
                n += 1;
            }
        }
        let wake = s
            .queue
            .next_backoff()
            .map_or(next_stale_flush, |b| b.min(next_stale_flush));
        let want_permit = synced && s.queue.has_active();
        let sem = s.sem.clone();
        tokio::select! {
            biased;
            Some(done) = bind_rx.recv() => s.bind_done(done),
            ev = pod_stream.next() => match ev {
                Some(Ok(ev)) => s.pod_event(pod_event_of(ev)),
                Some(Err(e)) => tracing::warn!(error = %e, "pod watch"),
                None => return Err(Error::WatchEnded),
            },
            ev = node_stream.next() => match ev {
                Some(Ok(ev)) => s.node_event(ev),
                Some(Err(e)) => tracing::warn!(error = %e, "node watch"),
                None => return Err(Error::WatchEnded),
            },
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if now >= next_stale_flush {
                    next_stale_flush = now + Duration::from_secs(30);
                    s.queue.flush_stale(now);
                }
                s.queue.flush(now);
            }
            permit = sem.acquire_owned(), if want_permit => {
                if let Ok(permit) = permit {
                    s.schedule_one(permit);
                }
            }
        }
    }
}
