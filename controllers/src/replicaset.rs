//! The replicaset controller (upstream `pkg/controller/replicaset`): keeps `spec.replicas`
//! active pods matching each ReplicaSet's selector, adopting orphans and releasing pods that
//! stop matching, creating in slow-start batches and deleting in upstream's rank order, with
//! expectations so a slow watch never causes double creation, and writes the status.

#[path = "rs_util.rs"]
pub mod util;

use crate::cachedpod::CachedPod;
use crate::meta;
use crate::recorder::Recorder;
use crate::{Ctx, Error};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::Controller;
use kube::{Api, ResourceExt};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use util::{Backoff, Claim};

/// Most pods created or deleted in one sync (upstream `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// Expectations older than this are considered satisfied (upstream `ExpectationsTimeout`).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Annotation ranking pods for deletion (upstream `PodDeletionCost`).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// Creations and deletions one ReplicaSet is waiting to see in the informer.
#[derive(Debug)]
struct Expect {
    /// Names of pods created but not yet seen.
    creates: HashSet<String>,
    /// UID -> name of pods being deleted and not yet seen gone or terminating.
    deletes: HashMap<String, String>,
    /// Names seen while creations were in flight (the watch may beat the create response).
    observed: HashSet<String>,
    in_flight: bool,
    at: Instant,
}

impl Expect {
    fn new() -> Self {
        Expect {
            creates: HashSet::new(),
            deletes: HashMap::new(),
            observed: HashSet::new(),
            in_flight: false,
            at: Instant::now(),
        }
    }
}

/// Upstream's `UIDTrackingControllerExpectations`, keyed by ReplicaSet `namespace/name`,
/// tracking the individual pods so an observation is never counted twice.
#[derive(Default)]
pub struct Expectations(Mutex<HashMap<String, Expect>>);

impl Expectations {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Expect>) -> R) -> R {
        f(&mut self.0.lock().expect("expectations lock"))
    }

    /// Creations are about to start.
    pub fn begin_creates(&self, key: &str) {
        self.with(|m| {
            let e = m.entry(key.to_string()).or_insert_with(Expect::new);
            e.in_flight = true;
            e.at = Instant::now();
        })
    }

    /// Creations ended; `names` were created.
    pub fn created(&self, key: &str, names: Vec<String>) {
        self.with(|m| {
            if let Some(e) = m.get_mut(key) {
                for n in names {
                    if !e.observed.contains(&n) {
                        e.creates.insert(n);
                    }
                }
                e.in_flight = false;
                e.observed.clear();
            }
        })
    }

    /// Deletions of `(uid, name)` are about to be sent.
    pub fn deleting(&self, key: &str, pods: &[(String, String)]) {
        self.with(|m| {
            let e = m.entry(key.to_string()).or_insert_with(Expect::new);
            e.at = Instant::now();
            e.deletes.extend(pods.iter().cloned());
        })
    }

    /// A deletion failed or was observed.
    pub fn deletion_done(&self, key: &str, uid: &str) {
        self.with(|m| {
            if let Some(e) = m.get_mut(key) {
                e.deletes.remove(uid);
            }
        })
    }

    /// The informer showed this pod (added, updated or deleted).
    pub fn observe(&self, key: &str, name: &str, uid: &str, gone: bool) {
        self.with(|m| {
            if let Some(e) = m.get_mut(key) {
                e.creates.remove(name);
                if e.in_flight {
                    e.observed.insert(name.to_string());
                }
                if gone {
                    e.deletes.remove(uid);
                }
            }
        })
    }

    /// Whether the ReplicaSet may act: nothing in flight, everything seen (checked against
    /// the pod cache too), or the expectations expired.
    pub fn satisfied(&self, key: &str, ns: &str, pods: &Store<CachedPod>) -> bool {
        self.with(|m| {
            let Some(e) = m.get_mut(key) else {
                return true;
            };
            if e.in_flight {
                return false;
            }
            e.creates
                .retain(|n| pods.get(&ObjectRef::new(n).within(ns)).is_none());
            e.deletes.retain(|uid, n| {
                pods.get(&ObjectRef::new(n).within(ns)).is_some_and(|p| {
                    p.metadata.uid.as_deref() == Some(uid.as_str())
                        && p.metadata.deletion_timestamp.is_none()
                })
            });
            if (e.creates.is_empty() && e.deletes.is_empty())
                || e.at.elapsed() > EXPECTATIONS_TIMEOUT
            {
                m.remove(key);
                return true;
            }
            false
        })
    }

    pub fn forget(&self, key: &str) {
        self.with(|m| m.remove(key));
    }
}

struct RsCtx {
    ctx: Arc<Ctx>,
    pods: Store<CachedPod>,
    rss: Store<ReplicaSet>,
    exp: Arc<Expectations>,
    rec: Recorder,
    backoff: Backoff,
}

/// Runs the replicaset controller.
pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let rs_sub = ctx.informers.replicasets.subscribe();
    let pod_sub = ctx.informers.pods.subscribe();
    let pods = ctx.informers.pods.store();
    let rss = ctx.informers.replicasets.store();
    let exp = Arc::new(Expectations::default());
    let rctx = Arc::new(RsCtx {
        pods: pods.clone(),
        rss: rss.clone(),
        exp: exp.clone(),
        rec: Recorder::new(ctx.client.clone(), "replicaset-controller"),
        backoff: Backoff::default(),
        ctx: ctx.clone(),
    });

    let rss_for_map = rss.clone();
    let exp3 = exp.clone();
    let informers = ctx.informers.clone();
    // Deleted pods come through here too (gone from the cache).
    let mapper = move |p: Arc<CachedPod>| -> Vec<ObjectRef<ReplicaSet>> {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        if let Some(r) = meta::controller_of(&p.metadata) {
            if r.kind != "ReplicaSet" {
                return vec![];
            }
            exp3.observe(
                &format!("{ns}/{}", r.name),
                &p.name_any(),
                p.metadata.uid.as_deref().unwrap_or_default(),
                p.metadata.deletion_timestamp.is_some() || informers.pods.is_gone(&p),
            );
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        // An orphan: wake every ReplicaSet that might adopt it.
        let labels = p.metadata.labels.clone().unwrap_or_default();
        rss_for_map
            .state()
            .iter()
            .filter(|rs| rs.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|rs| {
                rs.spec
                    .as_ref()
                    .is_some_and(|s| meta::selector_matches(&s.selector, &labels))
            })
            .map(|rs| ObjectRef::from_obj(rs.as_ref()))
            .collect()
    };

    Controller::for_shared_stream(rs_sub, rss)
        .watches_shared_stream(pod_sub, mapper)
        .run(reconcile, error_policy, rctx)
        .for_each(|_| async {})
        .await;
    Ok(())
}

fn error_policy(rs: Arc<ReplicaSet>, err: &Error, c: Arc<RsCtx>) -> Action {
    let key = meta::key_of(&rs.metadata);
    let d = c.backoff.fail(&key);
    tracing::debug!(replicaset = %key, error = %err, "sync failed, retrying");
    Action::requeue(d)
}

/// Pods that count: neither terminal nor being deleted (upstream `IsPodActive`).
pub fn is_pod_active(p: &CachedPod) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    phase != Some("Succeeded") && phase != Some("Failed") && p.metadata.deletion_timestamp.is_none()
}

/// The Ready condition's transition time when the pod is ready.
pub fn pod_ready_since(p: &CachedPod) -> Option<Option<jiff::Timestamp>> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready" && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_pod_ready(p: &CachedPod) -> bool {
    pod_ready_since(p).is_some()
}

/// Ready for at least `min_ready` seconds (upstream `IsPodAvailable`).
pub fn is_pod_available(p: &CachedPod, min_ready: i32, now: jiff::Timestamp) -> bool {
    match pod_ready_since(p) {
        None => false,
        Some(_) if min_ready <= 0 => true,
        Some(None) => false,
        Some(Some(t)) => t + jiff::SignedDuration::from_secs(min_ready as i64) < now,
    }
}

/// Seconds until a ready-but-not-yet-available pod becomes available.
fn until_available(p: &CachedPod, min_ready: i32, now: jiff::Timestamp) -> Option<Duration> {
    let t = pod_ready_since(p)??;
    let at = t + jiff::SignedDuration::from_secs(min_ready as i64);
    let d = now.duration_until(at);
    (d.is_positive() || d.is_zero()).then(|| d.unsigned_abs() + Duration::from_millis(100))
}

/// One pod's deletion-ranking facts (upstream `ActivePodsWithRanks`).
#[derive(Debug, Clone)]
pub struct RankInfo {
    pub assigned: bool,
    pub phase_ord: u8,
    pub ready: bool,
    pub ready_time: Option<jiff::Timestamp>,
    pub deletion_cost: i32,
    /// Related active pods on the same node (more = deleted first).
    pub rank: usize,
    pub restarts: i32,
    pub sidecar_restarts: i32,
    pub created: Option<jiff::Timestamp>,
    pub uid: String,
}

impl RankInfo {
    pub fn of(p: &CachedPod, rank: usize) -> Self {
        let st = p.status.as_ref();
        let phase_ord = match st.and_then(|s| s.phase.as_deref()) {
            Some("Unknown") => 1,
            Some("Running") => 2,
            _ => 0,
        };
        let sidecars: HashSet<&str> = p
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten())
            .filter(|c| c.restart_policy.as_deref() == Some("Always"))
            .map(|c| c.name.as_str())
            .collect();
        RankInfo {
            assigned: p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty()),
            phase_ord,
            ready: is_pod_ready(p),
            ready_time: pod_ready_since(p).flatten(),
            deletion_cost: p
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(POD_DELETION_COST))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            rank,
            restarts: st
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.iter().map(|c| c.restart_count).max())
                .unwrap_or(0),
            sidecar_restarts: st
                .and_then(|s| s.init_container_statuses.as_ref())
                .and_then(|cs| {
                    cs.iter()
                        .filter(|c| sidecars.contains(c.name.as_str()))
                        .map(|c| c.restart_count)
                        .max()
                })
                .unwrap_or(0),
            created: p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            uid: p.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

/// `int(log2(now - t))` in nanoseconds, or -1 for a time not in the past.
fn log_bucket(t: jiff::Timestamp, now: jiff::Timestamp) -> i64 {
    let d = now.as_nanosecond() - t.as_nanosecond();
    if d > 0 {
        (d as f64).log2() as i64
    } else {
        -1
    }
}

/// Upstream's `afterOrZero`: a zero time sorts first, then the later time first.
fn after_or_zero(a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => a.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// Compares two times with upstream's `LogarithmicScaleDown` (on by default).
fn time_less(
    a: Option<jiff::Timestamp>,
    b: Option<jiff::Timestamp>,
    ua: &str,
    ub: &str,
    now: jiff::Timestamp,
) -> bool {
    match (a, b) {
        (Some(ta), Some(tb)) => {
            let diff = log_bucket(ta, now) - log_bucket(tb, now);
            if diff == 0 {
                ua < ub
            } else {
                diff < 0
            }
        }
        _ => after_or_zero(a, b),
    }
}

/// Whether pod `a` should be deleted before pod `b` (upstream `ActivePodsWithRanks.Less`).
pub fn delete_before(a: &RankInfo, b: &RankInfo, now: jiff::Timestamp) -> bool {
    if a.assigned != b.assigned {
        return !a.assigned;
    }
    if a.phase_ord != b.phase_ord {
        return a.phase_ord < b.phase_ord;
    }
    if a.ready != b.ready {
        return !a.ready;
    }
    if a.deletion_cost != b.deletion_cost {
        return a.deletion_cost < b.deletion_cost;
    }
    if a.rank != b.rank {
        return a.rank > b.rank;
    }
    if a.ready && b.ready && a.ready_time != b.ready_time {
        return time_less(a.ready_time, b.ready_time, &a.uid, &b.uid, now);
    }
    if a.restarts != b.restarts {
        return a.restarts > b.restarts;
    }
    if a.sidecar_restarts != b.sidecar_restarts {
        return a.sidecar_restarts > b.sidecar_restarts;
    }
    if a.created != b.created {
        return time_less(a.created, b.created, &a.uid, &b.uid, now);
    }
    false
}

/// The `n` pods to delete first, ranking by related pods on the same node as upstream's
/// `getPodsToDelete` (`related` are the active pods of this ReplicaSet and its siblings).
pub fn pods_to_delete(
    owned: &[Arc<CachedPod>],
    related: &[Arc<CachedPod>],
    n: usize,
    now: jiff::Timestamp,
) -> Vec<Arc<CachedPod>> {
    if n >= owned.len() {
        return owned.to_vec();
    }
    let node = |p: &CachedPod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    let mut on_node: HashMap<String, usize> = HashMap::new();
    for p in related {
        let n = node(p);
        if !n.is_empty() {
            *on_node.entry(n).or_default() += 1;
        }
    }
    let mut ranked: Vec<(RankInfo, Arc<CachedPod>)> = owned
        .iter()
        .map(|p| {
            let rank = on_node.get(&node(p)).copied().unwrap_or(0);
            (RankInfo::of(p, rank), p.clone())
        })
        .collect();
    ranked.sort_by(|a, b| {
        if delete_before(&a.0, &b.0, now) {
            Ordering::Less
        } else if delete_before(&b.0, &a.0, now) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    });
    ranked.into_iter().take(n).map(|(_, p)| p).collect()
}

/// The status a ReplicaSet should have (upstream `calculateStatus`). `failure` is the
/// manage error, with whether it happened while creating.
pub fn calculate_status(
    rs: &ReplicaSet,
    owned: &[Arc<CachedPod>],
    failure: Option<(bool, String)>,
    now: jiff::Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let tmpl_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut fully = 0;
    let mut ready = 0;
    let mut available = 0;
    for p in owned {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        if tmpl_labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            fully += 1;
        }
        if is_pod_ready(p) {
            ready += 1;
            if is_pod_available(p, min_ready, now) {
                available += 1;
            }
        }
    }
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match failure {
        Some((creating, msg)) if !has_failure => conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(
                if creating {
                    "FailedCreate"
                } else {
                    "FailedDelete"
                }
                .into(),
            ),
            message: Some(msg),
            last_transition_time: Some(Time(now)),
        }),
        None if has_failure => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    ReplicaSetStatus {
        replicas: owned.len() as i32,
        // Zero counts are omitted on the wire, as upstream's `omitempty`.
        fully_labeled_replicas: (fully != 0).then_some(fully),
        ready_replicas: (ready != 0).then_some(ready),
        available_replicas: (available != 0).then_some(available),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: old.terminating_replicas,
    }
}

/// Status equality that ignores the zero-versus-absent distinction of the wire form.
pub fn status_eq(a: &ReplicaSetStatus, b: &ReplicaSetStatus) -> bool {
    let n = |s: &ReplicaSetStatus| {
        (
            s.replicas,
            s.fully_labeled_replicas.unwrap_or(0),
            s.ready_replicas.unwrap_or(0),
            s.available_replicas.unwrap_or(0),
            s.observed_generation.unwrap_or(0),
            s.conditions.clone().unwrap_or_default(),
        )
    };
    n(a) == n(b)
}

/// A pod built from the template (upstream `GetPodFromTemplate`).
pub fn pod_from_template(rs: &ReplicaSet, tmpl: &PodTemplateSpec) -> Pod {
    let m = tmpl.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.metadata.namespace.clone(),
            labels: m.labels,
            annotations: m.annotations,
            finalizers: m.finalizers,
            owner_references: Some(vec![meta::new_controller_ref(rs)]),
            ..Default::default()
        },
        spec: tmpl.spec.clone(),
        status: None,
    }
}

/// Batch sizes of a slow start: 1, 2, 4, ... summing to `n`.
pub fn slow_start_batches(n: usize, initial: usize) -> Vec<usize> {
    let mut out = vec![];
    let mut remaining = n;
    let mut batch = initial.min(remaining);
    while batch > 0 {
        out.push(batch);
        remaining -= batch;
        batch = (2 * batch).min(remaining);
    }
    out
}

async fn reconcile(rs: Arc<ReplicaSet>, c: Arc<RsCtx>) -> Result<Action, Error> {
    let key = meta::key_of(&rs.metadata);
    let res = sync(&rs, &c).await;
    if res.is_ok() {
        c.backoff.reset(&key);
    }
    res
}

async fn sync(rs: &ReplicaSet, c: &RsCtx) -> Result<Action, Error> {
    let key = meta::key_of(&rs.metadata);
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let Some(spec) = rs.spec.clone() else {
        return Ok(Action::await_change());
    };
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let need_sync = c.exp.satisfied(&key, &ns, &c.pods);
    let pods_api: Api<Pod> = Api::namespaced(c.ctx.client.clone(), &ns);

    let mut owned: Vec<Arc<CachedPod>> = vec![];
    for p in c.pods.state() {
        if p.metadata.namespace.as_deref() != Some(ns.as_str()) || !is_pod_active(&p) {
            continue;
        }
        match util::claim_decision(&uid, deleting, &spec.selector, &p.metadata) {
            Claim::Keep => owned.push(p),
            Claim::Adopt => match util::adopt(&pods_api, rs, p.as_ref()).await {
                Ok(np) => owned.push(Arc::new(np.into())),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            },
            Claim::Release => util::release(&pods_api, &uid, p.as_ref()).await?,
            Claim::Ignore => {}
        }
    }

    let mut failure = None;
    if need_sync && !deleting {
        failure = manage(rs, &spec, &owned, c, &key, &pods_api).await;
    }

    let now = jiff::Timestamp::now();
    let new_status = calculate_status(rs, &owned, failure.clone(), now);
    let old_status = rs.status.clone().unwrap_or_default();
    if !status_eq(&old_status, &new_status) {
        let mut upd = rs.clone();
        upd.status = Some(new_status.clone());
        upd.metadata.managed_fields = None;
        let api: Api<ReplicaSet> = Api::namespaced(c.ctx.client.clone(), &ns);
        match api
            .replace_status(&rs.name_any(), &PostParams::default(), &upd)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some((_, msg)) = failure {
        return Err(Error::Invalid(msg));
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    if min_ready > 0 {
        let next = owned
            .iter()
            .filter(|p| !is_pod_available(p, min_ready, now))
            .filter_map(|p| until_available(p, min_ready, now))
            .min();
        if let Some(d) = next {
            return Ok(Action::requeue(d));
        }
    }
    if !need_sync {
        return Ok(Action::requeue(EXPECTATIONS_TIMEOUT));
    }
    Ok(Action::await_change())
}

/// Creates or deletes pods toward `spec.replicas`; returns the failure for the status.
async fn manage(
    rs: &ReplicaSet,
    spec: &k8s_openapi::api::apps::v1::ReplicaSetSpec,
    owned: &[Arc<CachedPod>],
    c: &RsCtx,
    key: &str,
    pods_api: &Api<Pod>,
) -> Option<(bool, String)> {
    let want = spec.replicas.unwrap_or(1).max(0) as usize;
    let have = owned.len();
    if have < want {
        let n = (want - have).min(BURST_REPLICAS);
        let Some(tmpl) = spec.template.as_ref() else {
            return Some((true, "replica set has no pod template".into()));
        };
        let pod = pod_from_template(rs, tmpl);
        c.exp.begin_creates(key);
        let pp = PostParams::default();
        let mut names = vec![];
        let mut err = None;
        for batch in slow_start_batches(n, 1) {
            let results =
                futures::future::join_all((0..batch).map(|_| pods_api.create(&pp, &pod))).await;
            for r in results {
                match r {
                    Ok(p) => {
                        let name = p.name_any();
                        c.rec.event(
                            rs,
                            "Normal",
                            "SuccessfulCreate",
                            format!("Created pod: {name}"),
                        );
                        names.push(name);
                    }
                    Err(e) => {
                        let msg = match &e {
                            kube::Error::Api(s) => s.message.clone(),
                            e => e.to_string(),
                        };
                        c.rec.event(
                            rs,
                            "Warning",
                            "FailedCreate",
                            format!("Error creating: {msg}"),
                        );
                        err = Some(msg);
                    }
                }
            }
            if err.is_some() {
                break;
            }
        }
        c.exp.created(key, names);
        return err.map(|m| (true, m));
    }
    if have > want {
        let n = (have - want).min(BURST_REPLICAS);
        // Related pods: those of this ReplicaSet and of its siblings under the same owner.
        let mut family: HashSet<String> = HashSet::new();
        family.insert(rs.metadata.uid.clone().unwrap_or_default());
        if let Some(owner) = meta::controller_of(&rs.metadata) {
            for other in c.rss.state() {
                if other.metadata.namespace == rs.metadata.namespace
                    && meta::controller_of(&other.metadata).is_some_and(|r| r.uid == owner.uid)
                {
                    family.insert(other.metadata.uid.clone().unwrap_or_default());
                }
            }
        }
        let related: Vec<Arc<CachedPod>> = c
            .pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace == rs.metadata.namespace && is_pod_active(p))
            .filter(|p| meta::controller_of(&p.metadata).is_some_and(|r| family.contains(&r.uid)))
            .collect();
        let victims = pods_to_delete(owned, &related, n, jiff::Timestamp::now());
        let ids: Vec<(String, String)> = victims
            .iter()
            .map(|p| (p.metadata.uid.clone().unwrap_or_default(), p.name_any()))
            .collect();
        c.exp.deleting(key, &ids);
        let dp = DeleteParams::default();
        let results =
            futures::future::join_all(ids.iter().map(|(_, name)| pods_api.delete(name, &dp))).await;
        let mut err = None;
        for ((uid, name), r) in ids.iter().zip(results) {
            match r {
                Ok(_) => c.rec.event(
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(kube::Error::Api(s)) if s.code == 404 => c.exp.deletion_done(key, uid),
                Err(e) => {
                    c.exp.deletion_done(key, uid);
                    let msg = match &e {
                        kube::Error::Api(s) => s.message.clone(),
                        e => e.to_string(),
                    };
                    c.rec.event(
                        rs,
                        "Warning",
                        "FailedDelete",
                        format!("Error deleting: {msg}"),
                    );
                    err = Some(msg);
                }
            }
        }
        return err.map(|m| (false, m));
    }
    None
}

#[allow(dead_code)]
fn labels_map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn pod(
        name: &str,
        node: &str,
        phase: &str,
        ready_at: Option<i64>,
        created: i64,
    ) -> Arc<CachedPod> {
        Arc::new(CachedPod::from_pod(&Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(ts(created))),
                labels: Some(labels_map(&[("app", "web")])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_string()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready_at.map(|t| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(ts(t))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }))
    }

    fn names(v: &[Arc<CachedPod>]) -> Vec<String> {
        v.iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn deletion_order_follows_upstream_ranks() {
        let now = ts(100_000);
        let pods = vec![
            pod("ready-old", "n1", "Running", Some(0), 0),
            pod("unscheduled", "", "Pending", None, 0),
            pod("pending", "n1", "Pending", None, 0),
            pod("running-notready", "n1", "Running", None, 0),
            pod("ready-new", "n1", "Running", Some(99_990), 0),
        ];
        let order = pods_to_delete(&pods, &pods, 4, now);
        assert_eq!(
            names(&order),
            vec!["unscheduled", "pending", "running-notready", "ready-new"]
        );
    }

    #[test]
    fn doubled_up_pods_go_first() {
        let now = ts(100_000);
        let a = pod("a", "n1", "Running", Some(10), 0);
        let b = pod("b", "n2", "Running", Some(10), 0);
        let c = pod("c", "n2", "Running", Some(10), 0);
        let order = pods_to_delete(&[a.clone(), b, c], &[a], 1, now);
        // Ranks count related pods per node: n1 has one ("a"), n2 none.
        assert_eq!(names(&order), vec!["a"]);
    }

    #[test]
    fn newer_pods_go_first_when_equal() {
        let now = ts(100_000);
        let old = pod("old", "n1", "Running", None, 0);
        let new = pod("new", "n1", "Running", None, 99_000);
        let order = pods_to_delete(&[old, new], &[], 1, now);
        assert_eq!(names(&order), vec!["new"]);
    }

    #[test]
    fn slow_start() {
        assert_eq!(slow_start_batches(10, 1), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(1, 1), vec![1]);
        assert!(slow_start_batches(0, 1).is_empty());
    }

    #[test]
    fn availability_respects_min_ready() {
        let p = pod("p", "n1", "Running", Some(0), 0);
        assert!(is_pod_available(&p, 0, ts(1)));
        assert!(!is_pod_available(&p, 10, ts(5)));
        assert!(is_pod_available(&p, 10, ts(11)));
    }

    #[test]
    fn status_counts_and_failure_condition() {
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
                replicas: Some(3),
                min_ready_seconds: Some(10),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels_map(&[("app", "web"), ("x", "y")])),
                        ..Default::default()
                    }),
                    spec: None,
                }),
                ..Default::default()
            }),
            status: None,
        };
        let pods = vec![
            pod("a", "n1", "Running", Some(0), 0),
            pod("b", "n1", "Running", Some(95), 0),
            pod("c", "n1", "Pending", None, 0),
        ];
        let s = calculate_status(&rs, &pods, Some((true, "quota".into())), ts(100));
        assert_eq!(s.replicas, 3);
        assert_eq!(s.fully_labeled_replicas, None);
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(3));
        let conds = s.conditions.clone().unwrap();
        assert_eq!(conds[0].reason.as_deref(), Some("FailedCreate"));
        let mut rs2 = rs.clone();
        rs2.status = Some(s);
        let s2 = calculate_status(&rs2, &pods, None, ts(100));
        assert!(s2.conditions.is_none());
    }

    #[test]
    fn expectations_track_creates_and_deletes() {
        let (store, _w) = kube::runtime::reflector::store::<CachedPod>();
        let e = Expectations::default();
        e.begin_creates("ns/rs");
        assert!(!e.satisfied("ns/rs", "ns", &store));
        // The watch beats the create response.
        e.observe("ns/rs", "rs-aaaaa", "u1", false);
        e.created("ns/rs", vec!["rs-aaaaa".into(), "rs-bbbbb".into()]);
        assert!(!e.satisfied("ns/rs", "ns", &store));
        e.observe("ns/rs", "rs-bbbbb", "u2", false);
        assert!(e.satisfied("ns/rs", "ns", &store));
        e.deleting("ns/rs", &[("u1".into(), "rs-aaaaa".into())]);
        // Not in the store: the deletion counts as seen.
        assert!(e.satisfied("ns/rs", "ns", &store));
    }
}
