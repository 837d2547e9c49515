//! The garbage collector (upstream's `garbagecollector` controller).
//!
//! Metadata-only watches of every served type that carries ownerReferences feed an in-memory
//! uid graph (owner uid → dependents). Work items go through a de-duplicating delay queue
//! (kube-runtime's `scheduler`) with exponential back-off on errors:
//!
//! * `Delete(uid)` — upstream's attemptToDelete: an object whose owners may be gone (dangling
//!   references are verified with a live GET, so a lagging watch never kills anything), or an
//!   owner in foreground deletion waiting for its blocking dependents.
//! * `Orphan(uid)` — an owner with the `orphan` finalizer: strip the ownerReferences to it from
//!   its dependents, then drop the finalizer.
//!
//! The decision logic is pure (`classify`, `decide`) and unit-tested.

use crate::{Ctx, Error};
use futures::{Stream, StreamExt};
use k8s_openapi::api::{apps, batch, coordination, core, discovery, policy, rbac};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, Preconditions,
};
use kube::core::PartialObjectMeta;
use kube::runtime::scheduler::{scheduler, ScheduleRequest};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Finalizer that makes the GC orphan an owner's dependents.
pub const ORPHAN: &str = "orphan";
/// Finalizer that makes the GC delete an owner's dependents first.
pub const FOREGROUND: &str = "foregroundDeletion";

/// Work items processed concurrently (upstream runs 20 workers).
const WORKERS: usize = 8;

/// One served type the GC watches.
struct Kind {
    ar: ApiResource,
    namespaced: bool,
}

fn kind<K>(namespaced: bool) -> Kind
where
    K: kube::Resource<DynamicType = ()>,
{
    Kind {
        ar: ApiResource::erase::<K>(&()),
        namespaced,
    }
}

/// Every type the GC builds its graph from (events are left out: they churn and are
/// never owners).
fn kinds() -> Vec<Kind> {
    vec![
        kind::<core::v1::Pod>(true),
        kind::<core::v1::ConfigMap>(true),
        kind::<core::v1::Secret>(true),
        kind::<core::v1::Service>(true),
        kind::<core::v1::Endpoints>(true),
        kind::<core::v1::ServiceAccount>(true),
        kind::<core::v1::PersistentVolumeClaim>(true),
        kind::<core::v1::PersistentVolume>(false),
        kind::<core::v1::Node>(false),
        kind::<core::v1::LimitRange>(true),
        kind::<core::v1::ResourceQuota>(true),
        kind::<apps::v1::ReplicaSet>(true),
        kind::<apps::v1::Deployment>(true),
        kind::<apps::v1::DaemonSet>(true),
        kind::<apps::v1::StatefulSet>(true),
        kind::<apps::v1::ControllerRevision>(true),
        kind::<batch::v1::Job>(true),
        kind::<batch::v1::CronJob>(true),
        kind::<coordination::v1::Lease>(true),
        kind::<discovery::v1::EndpointSlice>(true),
        kind::<policy::v1::PodDisruptionBudget>(true),
        kind::<rbac::v1::Role>(true),
        kind::<rbac::v1::RoleBinding>(true),
        kind::<rbac::v1::ClusterRole>(false),
        kind::<rbac::v1::ClusterRoleBinding>(false),
    ]
}

/// An ownerReference as the graph keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: Box<str>,
    pub api_version: Box<str>,
    pub kind: Box<str>,
    pub name: Box<str>,
    pub block: bool,
}

impl From<&OwnerReference> for Owner {
    fn from(r: &OwnerReference) -> Self {
        Owner {
            uid: r.uid.as_str().into(),
            api_version: r.api_version.as_str().into(),
            kind: r.kind.as_str().into(),
            name: r.name.as_str().into(),
            block: r.block_owner_deletion == Some(true),
        }
    }
}

/// One observed object.
#[derive(Debug, Clone)]
pub struct Node {
    ty: u16,
    namespace: Option<Box<str>>,
    name: Box<str>,
    owners: Vec<Owner>,
    deleting: bool,
    orphan: bool,
    foreground: bool,
}

impl Node {
    fn from_meta(ty: u16, m: &ObjectMeta) -> Self {
        let fin = m.finalizers.as_deref().unwrap_or_default();
        Node {
            ty,
            namespace: m
                .namespace
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(Into::into),
            name: m.name.as_deref().unwrap_or_default().into(),
            owners: m
                .owner_references
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(Owner::from)
                .collect(),
            deleting: m.deletion_timestamp.is_some(),
            orphan: fin.iter().any(|f| f == ORPHAN),
            foreground: fin.iter().any(|f| f == FOREGROUND),
        }
    }

    /// In foreground deletion: waiting for its blocking dependents.
    fn deleting_dependents(&self) -> bool {
        self.deleting && self.foreground
    }
}

/// A unit of GC work.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Item {
    Delete(Box<str>),
    Orphan(Box<str>),
}

/// The uid graph.
#[derive(Default)]
pub struct Graph {
    nodes: HashMap<Box<str>, Node>,
    /// owner uid → dependent uids (kept while the owner is absent too).
    dependents: HashMap<Box<str>, HashSet<Box<str>>>,
    /// Per type: uids seen in the current relist, when one is in progress.
    relisting: HashMap<u16, HashSet<Box<str>>>,
    /// Types whose first list has completed.
    synced: HashSet<u16>,
}

impl Graph {
    fn link(&mut self, uid: &str, owners: &[Owner]) {
        for o in owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(uid.into());
        }
    }

    fn unlink(&mut self, uid: &str, owners: &[Owner]) {
        for o in owners {
            if let Some(set) = self.dependents.get_mut(&o.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&o.uid);
                }
            }
        }
    }

    /// Dependents of `uid` that block its deletion.
    fn blocking_dependents(&self, uid: &str) -> Vec<Box<str>> {
        self.dependents_of(uid)
            .into_iter()
            .filter(|d| {
                self.nodes
                    .get(d)
                    .is_some_and(|n| n.owners.iter().any(|o| &*o.uid == uid && o.block))
            })
            .collect()
    }

    fn dependents_of(&self, uid: &str) -> Vec<Box<str>> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Applies an add/update; returns the work it makes necessary.
    pub fn upsert(&mut self, uid: &str, node: Node) -> Vec<Item> {
        let old = self.nodes.remove(uid);
        if let Some(old) = &old {
            self.unlink(uid, &old.owners);
        }
        self.link(uid, &node.owners);
        let mut work = Vec::new();
        if node.deleting && node.orphan {
            work.push(Item::Orphan(uid.into()));
        }
        if node.deleting_dependents() {
            work.push(Item::Delete(uid.into()));
            work.extend(self.dependents_of(uid).into_iter().map(Item::Delete));
        }
        if node.owners.iter().any(|o| !self.nodes.contains_key(&o.uid)) {
            work.push(Item::Delete(uid.into()));
        }
        // Owners waiting on this object: re-check them when a reference goes away, stops
        // blocking, or this object starts going away.
        if let Some(old) = &old {
            for o in &old.owners {
                let still_blocks = node.owners.iter().any(|n| n.uid == o.uid && n.block);
                if (!still_blocks || node.deleting) && self.is_deleting_dependents(&o.uid) {
                    work.push(Item::Delete(o.uid.clone()));
                }
            }
        }
        // An owner waiting for dependents may be waiting for this one.
        for o in &node.owners {
            if self.is_deleting_dependents(&o.uid) {
                work.push(Item::Delete(uid.into()));
            }
        }
        self.nodes.insert(uid.into(), node);
        work
    }

    /// Applies a delete; returns the work it makes necessary.
    pub fn remove(&mut self, uid: &str) -> Vec<Item> {
        let Some(old) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        self.unlink(uid, &old.owners);
        let mut work: Vec<Item> = self
            .dependents_of(uid)
            .into_iter()
            .map(Item::Delete)
            .collect();
        for o in &old.owners {
            if self.is_deleting_dependents(&o.uid) {
                work.push(Item::Delete(o.uid.clone()));
            }
        }
        work
    }

    fn is_deleting_dependents(&self, uid: &str) -> bool {
        self.nodes.get(uid).is_some_and(Node::deleting_dependents)
    }

    /// Work to do for every object once every type has been listed.
    fn full_scan(&self) -> Vec<Item> {
        let mut work = Vec::new();
        for (uid, n) in &self.nodes {
            if n.deleting && n.orphan {
                work.push(Item::Orphan(uid.clone()));
            }
            if n.deleting_dependents() {
                work.push(Item::Delete(uid.clone()));
            }
            if n.owners
                .iter()
                .any(|o| !self.nodes.contains_key(&o.uid) || self.is_deleting_dependents(&o.uid))
            {
                work.push(Item::Delete(uid.clone()));
            }
        }
        work
    }
}

/// What an owner reference turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists with the same uid and is not being foreground-deleted.
    Solid,
    /// Gone, or replaced by an object with another uid.
    Dangling,
    /// Exists and waits (foreground deletion) for its dependents.
    Waiting,
}

/// What to do with an object given its owners' states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do.
    Keep,
    /// Drop the references to these owner uids (it still has a solid owner).
    RemoveRefs(Vec<String>),
    /// Delete it with this propagation policy; first unblock, on the listed dependents
    /// (which are themselves foreground-deleting), their references to it.
    Delete { policy: &'static str, unblock: bool },
}

/// Upstream's `attemptToDeleteItem` switch, given each owner reference's state.
pub fn decide(
    owners: &[(String, OwnerState)],
    has_dependents: bool,
    orphan_finalizer: bool,
    foreground_finalizer: bool,
) -> Decision {
    if owners.is_empty() {
        return Decision::Keep;
    }
    let of = |s: OwnerState| {
        owners
            .iter()
            .filter(move |(_, st)| *st == s)
            .map(|(u, _)| u.clone())
    };
    let solid = of(OwnerState::Solid).count();
    let waiting = of(OwnerState::Waiting).count();
    if solid > 0 {
        let drop: Vec<String> = of(OwnerState::Dangling)
            .chain(of(OwnerState::Waiting))
            .collect();
        if drop.is_empty() {
            Decision::Keep
        } else {
            Decision::RemoveRefs(drop)
        }
    } else if waiting > 0 && has_dependents {
        Decision::Delete {
            policy: "Foreground",
            unblock: true,
        }
    } else {
        let policy = if orphan_finalizer {
            "Orphan"
        } else if foreground_finalizer {
            "Foreground"
        } else {
            "Background"
        };
        Decision::Delete {
            policy,
            unblock: false,
        }
    }
}

/// A resource and whether it is namespaced.
type Resolved = (ApiResource, bool);

struct Gc {
    client: Client,
    kinds: Vec<Kind>,
    graph: Mutex<Graph>,
    queue: mpsc::UnboundedSender<ScheduleRequest<Item>>,
    inflight: Mutex<HashSet<Item>>,
    failures: Mutex<HashMap<Item, u32>>,
    /// (apiVersion, kind) → (resource, namespaced), for owner kinds outside `kinds`.
    resolved: Mutex<HashMap<(String, String), Option<Resolved>>>,
}

enum GraphEvent {
    Upsert(u16, ObjectMeta),
    Delete(ObjectMeta),
    Init(u16),
    InitDone(u16),
}

type MetaStream = std::pin::Pin<
    Box<dyn Stream<Item = Result<Event<PartialObjectMeta<DynamicObject>>, watcher::Error>> + Send>,
>;

#[allow(deprecated)]
fn meta_stream(client: &Client, k: &Kind) -> MetaStream {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &k.ar);
    kube::runtime::metadata_watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .boxed()
}

pub async fn run(ctx: Arc<Ctx>) -> Result<(), Error> {
    let client = ctx.client.clone();
    let (qtx, qrx) = mpsc::unbounded_channel::<ScheduleRequest<Item>>();
    let gc = Arc::new(Gc {
        client: client.clone(),
        kinds: kinds(),
        graph: Mutex::new(Graph::default()),
        queue: qtx,
        inflight: Mutex::new(HashSet::new()),
        failures: Mutex::new(HashMap::new()),
        resolved: Mutex::new(HashMap::new()),
    });

    // Graph builder: all watches funnel into one channel, applied in order.
    let (etx, mut erx) = mpsc::channel::<GraphEvent>(4096);
    for (i, k) in gc.kinds.iter().enumerate() {
        let ty = i as u16;
        let mut stream = meta_stream(&client, k);
        let etx = etx.clone();
        tokio::spawn(async move {
            while let Some(ev) = stream.next().await {
                let ge = match ev {
                    Ok(Event::Apply(o)) | Ok(Event::InitApply(o)) => {
                        GraphEvent::Upsert(ty, o.metadata)
                    }
                    Ok(Event::Delete(o)) => GraphEvent::Delete(o.metadata),
                    Ok(Event::Init) => GraphEvent::Init(ty),
                    Ok(Event::InitDone) => GraphEvent::InitDone(ty),
                    Err(e) => {
                        tracing::debug!(error = %e, "gc watch error, retrying");
                        continue;
                    }
                };
                if etx.send(ge).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(etx);

    let builder = {
        let gc = gc.clone();
        let total = gc.kinds.len();
        async move {
            let mut all_synced = false;
            while let Some(ev) = erx.recv().await {
                let work = {
                    let mut g = gc.graph.lock().expect("gc graph");
                    let mut work = match ev {
                        GraphEvent::Upsert(ty, m) => {
                            let Some(uid) = m.uid.clone() else { continue };
                            if let Some(seen) = g.relisting.get_mut(&ty) {
                                seen.insert(uid.as_str().into());
                            }
                            g.upsert(&uid, Node::from_meta(ty, &m))
                        }
                        GraphEvent::Delete(m) => {
                            let Some(uid) = m.uid.clone() else { continue };
                            g.remove(&uid)
                        }
                        GraphEvent::Init(ty) => {
                            g.relisting.insert(ty, HashSet::new());
                            Vec::new()
                        }
                        GraphEvent::InitDone(ty) => {
                            let seen = g.relisting.remove(&ty).unwrap_or_default();
                            let gone: Vec<Box<str>> = g
                                .nodes
                                .iter()
                                .filter(|(u, n)| n.ty == ty && !seen.contains(*u))
                                .map(|(u, _)| u.clone())
                                .collect();
                            let mut w = Vec::new();
                            for u in gone {
                                w.extend(g.remove(&u));
                            }
                            g.synced.insert(ty);
                            w
                        }
                    };
                    if !all_synced && g.synced.len() == total {
                        all_synced = true;
                        tracing::info!(objects = g.nodes.len(), "garbage collector graph synced");
                        work = g.full_scan();
                    }
                    if all_synced {
                        work
                    } else {
                        Vec::new()
                    }
                };
                for w in work {
                    gc.enqueue(w, Duration::ZERO);
                }
            }
        }
    };

    let workers = {
        let gc = gc.clone();
        scheduler(tokio_stream_from(qrx)).for_each_concurrent(WORKERS, move |item| {
            let gc = gc.clone();
            async move { gc.process(item).await }
        })
    };
    tokio::join!(builder, workers);
    Ok(())
}

/// An `UnboundedReceiver` as a `Stream`.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Back-off after `n` consecutive failures: 5 ms doubling up to 1000 s, as upstream's
/// default controller rate limiter.
pub fn backoff(n: u32) -> Duration {
    let ms = 5u64.saturating_mul(1u64 << n.min(20));
    Duration::from_millis(ms.min(1_000_000))
}

impl Gc {
    fn enqueue(&self, item: Item, after: Duration) {
        let _ = self.queue.send(ScheduleRequest {
            message: item,
            run_at: Instant::now() + after,
        });
    }

    async fn process(&self, item: Item) {
        if !self
            .inflight
            .lock()
            .expect("gc inflight")
            .insert(item.clone())
        {
            // Being worked on: look again shortly (de-duplicated meanwhile).
            self.enqueue(item, Duration::from_millis(200));
            return;
        }
        let result = match &item {
            Item::Delete(uid) => self.attempt_to_delete(uid).await,
            Item::Orphan(uid) => self.attempt_to_orphan(uid).await,
        };
        self.inflight.lock().expect("gc inflight").remove(&item);
        match result {
            Ok(None) => {
                self.failures.lock().expect("gc failures").remove(&item);
            }
            Ok(Some(after)) => {
                self.failures.lock().expect("gc failures").remove(&item);
                self.enqueue(item, after);
            }
            Err(e) => {
                let n = {
                    let mut f = self.failures.lock().expect("gc failures");
                    let n = f.entry(item.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                tracing::debug!(error = %e, ?item, "gc item failed, retrying");
                self.enqueue(item, backoff(n));
            }
        }
    }

    fn node(&self, uid: &str) -> Option<Node> {
        self.graph.lock().expect("gc graph").nodes.get(uid).cloned()
    }

    fn api_for(&self, ar: &ApiResource, namespaced: bool, ns: Option<&str>) -> Api<DynamicObject> {
        match (namespaced, ns) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, ar),
            _ => Api::all_with(self.client.clone(), ar),
        }
    }

    fn node_api(&self, n: &Node) -> Api<DynamicObject> {
        let k = &self.kinds[n.ty as usize];
        self.api_for(&k.ar, k.namespaced, n.namespace.as_deref())
    }

    /// The resource for an owner reference's apiVersion/kind (None when unknown).
    async fn resolve(&self, api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
        if let Some(k) = self
            .kinds
            .iter()
            .find(|k| k.ar.api_version == api_version && k.ar.kind == kind)
        {
            return Some((k.ar.clone(), k.namespaced));
        }
        let key = (api_version.to_string(), kind.to_string());
        if let Some(r) = self.resolved.lock().expect("gc resolved").get(&key) {
            return r.clone();
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let r = match kube::discovery::pinned_kind(&self.client, &gvk).await {
            Ok((ar, caps)) => Some((ar, caps.scope == kube::discovery::Scope::Namespaced)),
            Err(_) => None,
        };
        self.resolved
            .lock()
            .expect("gc resolved")
            .insert(key, r.clone());
        r
    }

    /// Upstream's attemptToDeleteItem. Returns a requeue delay when it must look again.
    async fn attempt_to_delete(&self, uid: &str) -> Result<Option<Duration>, Error> {
        let Some(node) = self.node(uid) else {
            return Ok(None);
        };
        let api = self.node_api(&node);
        let Some(live) = api.get_metadata_opt(&node.name).await? else {
            return Ok(None);
        };
        let m = live.metadata;
        if m.uid.as_deref() != Some(uid) {
            return Ok(None);
        }
        let fin = m.finalizers.clone().unwrap_or_default();
        let foreground = fin.iter().any(|f| f == FOREGROUND);
        let orphan = fin.iter().any(|f| f == ORPHAN);
        if m.deletion_timestamp.is_some() {
            if !foreground {
                return Ok(None);
            }
            return self.process_deleting_dependents(uid, &api, &node).await;
        }
        let refs = m.owner_references.clone().unwrap_or_default();
        if refs.is_empty() {
            return Ok(None);
        }
        let mut states = Vec::new();
        for r in &refs {
            states.push((
                r.uid.clone(),
                self.owner_state(r, node.namespace.as_deref()).await?,
            ));
        }
        let has_dependents = !self
            .graph
            .lock()
            .expect("gc graph")
            .dependents_of(uid)
            .is_empty();
        match decide(&states, has_dependents, orphan, foreground) {
            Decision::Keep => Ok(None),
            Decision::RemoveRefs(uids) => {
                let keep: Vec<&OwnerReference> =
                    refs.iter().filter(|r| !uids.contains(&r.uid)).collect();
                tracing::info!(object = %node.name, "removing dangling owner references");
                patch_refs(&api, &node.name, m.resource_version.as_deref(), &keep).await?;
                Ok(None)
            }
            Decision::Delete { policy, unblock } => {
                if unblock {
                    let deps = self.graph.lock().expect("gc graph").dependents_of(uid);
                    for dep in deps {
                        if let Some(dn) = self.node(&dep) {
                            if dn.deleting_dependents() {
                                self.unblock(&dn, uid).await?;
                            }
                        }
                    }
                }
                tracing::info!(object = %node.name, policy, "garbage collecting dependent");
                let dp = DeleteParams {
                    propagation_policy: Some(match policy {
                        "Orphan" => kube::api::PropagationPolicy::Orphan,
                        "Foreground" => kube::api::PropagationPolicy::Foreground,
                        _ => kube::api::PropagationPolicy::Background,
                    }),
                    preconditions: Some(Preconditions {
                        uid: Some(uid.to_string()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(&node.name, &dp).await {
                    Ok(_) => Ok(None),
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// An owner in foreground deletion: delete its blocking dependents, and drop the
    /// finalizer once none remain.
    async fn process_deleting_dependents(
        &self,
        uid: &str,
        api: &Api<DynamicObject>,
        node: &Node,
    ) -> Result<Option<Duration>, Error> {
        let blocking = self
            .graph
            .lock()
            .expect("gc graph")
            .blocking_dependents(uid);
        if blocking.is_empty() {
            tracing::info!(object = %node.name, "all blocking dependents gone, finishing foreground deletion");
            remove_finalizer(api, &node.name, uid, FOREGROUND).await?;
            return Ok(None);
        }
        for dep in blocking {
            if self.node(&dep).is_some_and(|d| !d.deleting_dependents()) {
                self.enqueue(Item::Delete(dep), Duration::ZERO);
            }
        }
        Ok(None)
    }

    /// Whether the referenced owner exists (graph first, then a live GET).
    async fn owner_state(&self, r: &OwnerReference, ns: Option<&str>) -> Result<OwnerState, Error> {
        if let Some(n) = self.node(&r.uid) {
            return Ok(if n.deleting_dependents() {
                OwnerState::Waiting
            } else {
                OwnerState::Solid
            });
        }
        let Some((ar, namespaced)) = self.resolve(&r.api_version, &r.kind).await else {
            // Unknown kind: never collect on a reference we cannot check.
            return Ok(OwnerState::Solid);
        };
        if namespaced && ns.is_none() {
            // A cluster-scoped object cannot be owned by a namespaced one.
            return Ok(OwnerState::Dangling);
        }
        let api = self.api_for(&ar, namespaced, ns);
        Ok(match api.get_metadata_opt(&r.name).await? {
            None => OwnerState::Dangling,
            Some(o) if o.metadata.uid.as_deref() != Some(r.uid.as_str()) => OwnerState::Dangling,
            Some(o) => {
                let fg = o
                    .metadata
                    .finalizers
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|f| f == FOREGROUND);
                if o.metadata.deletion_timestamp.is_some() && fg {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                }
            }
        })
    }

    /// Sets blockOwnerDeletion=false on `dep`'s references to `owner`.
    async fn unblock(&self, dep: &Node, owner: &str) -> Result<(), Error> {
        let api = self.node_api(dep);
        let Some(live) = api.get_metadata_opt(&dep.name).await? else {
            return Ok(());
        };
        let mut refs = live.metadata.owner_references.unwrap_or_default();
        let mut changed = false;
        for r in refs.iter_mut().filter(|r| r.uid == owner) {
            if r.block_owner_deletion == Some(true) {
                r.block_owner_deletion = Some(false);
                changed = true;
            }
        }
        if changed {
            let keep: Vec<&OwnerReference> = refs.iter().collect();
            patch_refs(
                &api,
                &dep.name,
                live.metadata.resource_version.as_deref(),
                &keep,
            )
            .await?;
        }
        Ok(())
    }

    /// Upstream's attemptToOrphan.
    async fn attempt_to_orphan(&self, uid: &str) -> Result<Option<Duration>, Error> {
        let Some(node) = self.node(uid) else {
            return Ok(None);
        };
        let api = self.node_api(&node);
        let Some(live) = api.get_metadata_opt(&node.name).await? else {
            return Ok(None);
        };
        let m = live.metadata;
        let orphan = m
            .finalizers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|f| f == ORPHAN);
        if m.uid.as_deref() != Some(uid) || m.deletion_timestamp.is_none() || !orphan {
            return Ok(None);
        }
        let deps = self.graph.lock().expect("gc graph").dependents_of(uid);
        for dep in deps {
            let Some(dn) = self.node(&dep) else { continue };
            let dapi = self.node_api(&dn);
            let Some(dlive) = dapi.get_metadata_opt(&dn.name).await? else {
                continue;
            };
            if dlive.metadata.uid.as_deref() != Some(&*dep) {
                continue;
            }
            let refs = dlive.metadata.owner_references.unwrap_or_default();
            if !refs.iter().any(|r| r.uid == uid) {
                continue;
            }
            let keep: Vec<&OwnerReference> = refs.iter().filter(|r| r.uid != uid).collect();
            match patch_refs(
                &dapi,
                &dn.name,
                dlive.metadata.resource_version.as_deref(),
                &keep,
            )
            .await
            {
                Ok(()) => {}
                Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        tracing::info!(object = %node.name, "dependents orphaned");
        remove_finalizer(&api, &node.name, uid, ORPHAN).await?;
        Ok(None)
    }
}

/// Replaces the ownerReferences (merge patch guarded by resourceVersion).
async fn patch_refs(
    api: &Api<DynamicObject>,
    name: &str,
    rv: Option<&str>,
    refs: &[&OwnerReference],
) -> Result<(), Error> {
    let refs = if refs.is_empty() {
        Value::Null
    } else {
        json!(refs)
    };
    let patch = json!({"metadata": {"resourceVersion": rv, "ownerReferences": refs}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Removes one finalizer from the live object (merge patch guarded by resourceVersion).
async fn remove_finalizer(
    api: &Api<DynamicObject>,
    name: &str,
    uid: &str,
    finalizer: &str,
) -> Result<(), Error> {
    let Some(live) = api.get_metadata_opt(name).await? else {
        return Ok(());
    };
    if live.metadata.uid.as_deref() != Some(uid) {
        return Ok(());
    }
    let fin = live.metadata.finalizers.unwrap_or_default();
    if !fin.iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let keep: Vec<&String> = fin.iter().filter(|f| *f != finalizer).collect();
    let keep = if keep.is_empty() {
        Value::Null
    } else {
        json!(keep)
    };
    let patch = json!({"metadata": {"resourceVersion": live.metadata.resource_version, "finalizers": keep}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str, block: bool) -> Owner {
        Owner {
            uid: uid.into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: uid.into(),
            block,
        }
    }

    fn node(owners: Vec<Owner>) -> Node {
        Node {
            ty: 0,
            namespace: Some("default".into()),
            name: "x".into(),
            owners,
            deleting: false,
            orphan: false,
            foreground: false,
        }
    }

    #[test]
    fn decisions_follow_upstream() {
        use OwnerState::*;
        let s = |v: &[(&str, OwnerState)]| -> Vec<(String, OwnerState)> {
            v.iter().map(|(u, s)| (u.to_string(), *s)).collect()
        };
        assert_eq!(decide(&[], false, false, false), Decision::Keep);
        assert_eq!(
            decide(&s(&[("a", Solid)]), false, false, false),
            Decision::Keep
        );
        assert_eq!(
            decide(&s(&[("a", Solid), ("b", Dangling)]), false, false, false),
            Decision::RemoveRefs(vec!["b".into()])
        );
        assert_eq!(
            decide(&s(&[("a", Dangling)]), true, false, false),
            Decision::Delete {
                policy: "Background",
                unblock: false
            }
        );
        assert_eq!(
            decide(&s(&[("a", Dangling)]), true, true, false),
            Decision::Delete {
                policy: "Orphan",
                unblock: false
            }
        );
        assert_eq!(
            decide(&s(&[("a", Waiting)]), true, false, false),
            Decision::Delete {
                policy: "Foreground",
                unblock: true
            }
        );
        assert_eq!(
            decide(&s(&[("a", Waiting)]), false, false, false),
            Decision::Delete {
                policy: "Background",
                unblock: false
            }
        );
    }

    #[test]
    fn graph_tracks_dependents_and_work() {
        let mut g = Graph::default();
        // Dependent seen before its owner: verify it.
        let w = g.upsert("dep", node(vec![owner("own", true)]));
        assert_eq!(w, vec![Item::Delete("dep".into())]);
        assert!(g.upsert("own", node(vec![])).is_empty());
        assert_eq!(g.blocking_dependents("own"), vec![Box::<str>::from("dep")]);
        // Owner goes foreground: owner and its dependents get work.
        let mut fg = node(vec![]);
        fg.deleting = true;
        fg.foreground = true;
        let w = g.upsert("own", fg);
        assert!(w.contains(&Item::Delete("own".into())));
        assert!(w.contains(&Item::Delete("dep".into())));
        // Dependent gone: the waiting owner is re-checked.
        let w = g.remove("dep");
        assert_eq!(w, vec![Item::Delete("own".into())]);
        assert!(g.blocking_dependents("own").is_empty());
        // Orphan finalizer yields an orphan item.
        let mut o = node(vec![]);
        o.deleting = true;
        o.orphan = true;
        assert_eq!(g.upsert("o", o), vec![Item::Orphan("o".into())]);
        // Owner deleted: dependents are checked.
        g.upsert("d2", node(vec![owner("o", false)]));
        assert_eq!(g.remove("o"), vec![Item::Delete("d2".into())]);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(5));
        assert_eq!(backoff(1), Duration::from_millis(10));
        assert_eq!(backoff(40), Duration::from_secs(1000));
    }
}
