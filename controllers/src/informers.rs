//! Shared informers: one list-watch and one cache per resource type, shared by every
//! controller that needs it (upstream's SharedInformerFactory), so 10,000 pods are held
//! once however many controllers look at them.
//!
//! Subscribers get every change, deletions included (upstream's `OnDelete`): an applied
//! object as it now is in the cache, a deleted one as it was last seen. kube-runtime's own
//! shared reflector only wakes subscribers on applies, so the fan-out is done here. A
//! subscriber tells a deletion apart by the object being absent from the cache (the cache is
//! updated before subscribers are told), see [`Shared::is_gone`].
//!
//! An informer only runs when some controller uses it (subscribes or reads its cache).

use crate::cachedpod::CachedPod;
use futures::StreamExt;
use k8s_openapi::api::{apps, batch, coordination, core, discovery, policy};
use kube::runtime::reflector::{store::Writer, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Events buffered per informer before it waits for its slowest subscriber.
const BUFFER: usize = 1024;

/// The stream a subscriber reads: changed objects, deleted ones included.
pub type Subscription<K> = async_broadcast::Receiver<Arc<K>>;

/// One shared list-watch with its cache.
pub struct Shared<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store: Store<K>,
    /// The writer until the informer starts.
    writer: Mutex<Option<Writer<K>>>,
    tx: async_broadcast::Sender<Arc<K>>,
    /// Keeps the channel open while nobody subscribes.
    _idle: async_broadcast::InactiveReceiver<Arc<K>>,
    api: Api<K>,
    config: watcher::Config,
    /// Some controller subscribed or read the cache.
    used: AtomicBool,
    /// `Informers::start_all` ran: a late first use starts the informer at once.
    armed: Arc<AtomicBool>,
}

impl<K> Shared<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    pub fn new(api: Api<K>) -> Self {
        Self::with_config(api, watcher::Config::default(), Arc::default())
    }

    fn with_config(api: Api<K>, config: watcher::Config, armed: Arc<AtomicBool>) -> Self {
        let writer = Writer::new(());
        let (mut tx, rx) = async_broadcast::broadcast(BUFFER);
        // With no subscriber, events are dropped rather than buffered.
        tx.set_await_active(false);
        Shared {
            store: writer.as_reader(),
            writer: Mutex::new(Some(writer)),
            tx,
            _idle: rx.deactivate(),
            api,
            config: config.any_semantic(),
            used: AtomicBool::new(false),
            armed,
        }
    }

    fn mark_used(&self) {
        self.used.store(true, Ordering::Relaxed);
        if self.armed.load(Ordering::Relaxed) {
            self.start();
        }
    }

    /// The cache (readable once the first list has arrived; see `Store::wait_until_ready`).
    pub fn store(&self) -> Store<K> {
        self.mark_used();
        self.store.clone()
    }

    /// A stream of changed and deleted objects for a controller (usable with
    /// `Controller::for_shared_stream`, `owns_shared_stream` and `watches_shared_stream`).
    /// Subscribe before the informers start to also see the initial list.
    pub fn subscribe(&self) -> Subscription<K> {
        let rx = self.tx.new_receiver();
        self.mark_used();
        rx
    }

    /// Whether `obj` (from a subscription) is no longer in the cache, i.e. it was deleted.
    pub fn is_gone(&self, obj: &K) -> bool {
        self.store.get(&ObjectRef::from_obj(obj)).is_none()
    }

    /// Starts the list-watch; it runs (with back-off on errors) until the task is dropped.
    /// Only the first call starts anything.
    pub fn start(&self) {
        let Some(writer) = self.writer.lock().expect("informer lock").take() else {
            return;
        };
        // Like upstream's informers, the caches drop managedFields: no controller reads
        // them, and they are often the largest part of an object.
        let events = watcher(self.api.clone(), self.config.clone())
            .default_backoff()
            .modify(|obj| obj.meta_mut().managed_fields = None);
        tokio::spawn(reflect(writer, self.tx.clone(), events));
    }
}

/// Applies watch events to the cache, then tells the subscribers. On a (re)list, objects that
/// were cached but are missing from the new list are announced as deleted.
async fn reflect<K, S>(mut writer: Writer<K>, tx: async_broadcast::Sender<Arc<K>>, events: S)
where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let store = writer.as_reader();
    let mut events = std::pin::pin!(events);
    let mut listed = false;
    while let Some(ev) = events.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(error = %e, kind = %K::kind(&()), "watch error, retrying");
                continue;
            }
        };
        // A relist replaces the cache: remember what was there to report what vanished.
        let before = (listed && matches!(ev, watcher::Event::InitDone)).then(|| store.state());
        writer.apply_watcher_event(&ev);
        match ev {
            watcher::Event::Apply(obj) => {
                if let Some(o) = store.get(&ObjectRef::from_obj(&obj)) {
                    let _ = tx.broadcast_direct(o).await;
                }
            }
            watcher::Event::Delete(obj) => {
                let _ = tx.broadcast_direct(Arc::new(obj)).await;
            }
            watcher::Event::InitDone => {
                listed = true;
                for o in store.state() {
                    let _ = tx.broadcast_direct(o).await;
                }
                for o in before.into_iter().flatten() {
                    if store.get(&ObjectRef::from_obj(o.as_ref())).is_none() {
                        let _ = tx.broadcast_direct(o).await;
                    }
                }
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }
}

/// The informers controllers share.
pub struct Informers {
    /// Pods as [`CachedPod`]s: only the fields controllers read.
    pub pods: Shared<CachedPod>,
    pub nodes: Shared<core::v1::Node>,
    pub namespaces: Shared<core::v1::Namespace>,
    pub replicasets: Shared<apps::v1::ReplicaSet>,
    pub deployments: Shared<apps::v1::Deployment>,
    pub daemonsets: Shared<apps::v1::DaemonSet>,
    pub statefulsets: Shared<apps::v1::StatefulSet>,
    pub controllerrevisions: Shared<apps::v1::ControllerRevision>,
    pub jobs: Shared<batch::v1::Job>,
    pub cronjobs: Shared<batch::v1::CronJob>,
    /// Node leases (`kube-node-lease` only).
    pub leases: Shared<coordination::v1::Lease>,
    pub pdbs: Shared<policy::v1::PodDisruptionBudget>,
    /// Only the `default` ServiceAccount of each namespace (all the controllers need).
    pub serviceaccounts: Shared<core::v1::ServiceAccount>,
    /// Only the `kube-root-ca.crt` ConfigMap of each namespace: caching every ConfigMap's
    /// data would cost megabytes for one name.
    pub configmaps: Shared<core::v1::ConfigMap>,
    pub services: Shared<core::v1::Service>,
    pub endpointslices: Shared<discovery::v1::EndpointSlice>,
    pub endpoints: Shared<core::v1::Endpoints>,
    armed: Arc<AtomicBool>,
}

/// The ServiceAccount the serviceaccount controller maintains in every namespace.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// The ConfigMap the root-CA publisher maintains in every namespace.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

impl Informers {
    pub fn new(client: &Client) -> Self {
        let armed: Arc<AtomicBool> = Arc::default();
        let all = watcher::Config::default;
        let named = |n: &str| watcher::Config::default().fields(&format!("metadata.name={n}"));
        let c = client.clone();
        macro_rules! shared {
            ($api:expr, $cfg:expr) => {
                Shared::with_config($api, $cfg, armed.clone())
            };
        }
        Informers {
            pods: shared!(Api::all(c.clone()), all()),
            nodes: shared!(Api::all(c.clone()), all()),
            namespaces: shared!(Api::all(c.clone()), all()),
            replicasets: shared!(Api::all(c.clone()), all()),
            deployments: shared!(Api::all(c.clone()), all()),
            daemonsets: shared!(Api::all(c.clone()), all()),
            statefulsets: shared!(Api::all(c.clone()), all()),
            controllerrevisions: shared!(Api::all(c.clone()), all()),
            jobs: shared!(Api::all(c.clone()), all()),
            cronjobs: shared!(Api::all(c.clone()), all()),
            leases: shared!(Api::namespaced(c.clone(), "kube-node-lease"), all()),
            pdbs: shared!(Api::all(c.clone()), all()),
            serviceaccounts: shared!(Api::all(c.clone()), named(DEFAULT_SERVICE_ACCOUNT)),
            configmaps: shared!(Api::all(c.clone()), named(ROOT_CA_CONFIGMAP)),
            services: shared!(Api::all(c.clone()), all()),
            endpointslices: shared!(Api::all(c.clone()), all()),
            endpoints: shared!(Api::all(c), all()),
            armed,
        }
    }

    /// Starts every informer some controller has used so far; an informer first used later
    /// starts on that use.
    pub fn start_all(&self) {
        self.armed.store(true, Ordering::Relaxed);
        macro_rules! start_used {
            ($($f:ident),*) => {$(
                if self.$f.used.load(Ordering::Relaxed) {
                    self.$f.start();
                }
            )*};
        }
        start_used!(
            pods,
            nodes,
            namespaces,
            replicasets,
            deployments,
            daemonsets,
            statefulsets,
            controllerrevisions,
            jobs,
            cronjobs,
            leases,
            pdbs,
            serviceaccounts,
            configmaps,
            services,
            endpointslices,
            endpoints
        );
    }
}

/// Waits until the store has its first list. `Store::wait_until_ready` alone can miss its
/// wake-up when several tasks wait on the same store (its one-shot channel keeps only the
/// last waiter's waker), so the wait is re-polled every 100 ms.
pub async fn wait_ready<K>(store: &Store<K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        let wait = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            store.wait_until_ready(),
        );
        if let Ok(res) = wait.await {
            if res.is_err() {
                tracing::debug!("informer stopped before its first list");
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cm(name: &str, rv: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn subscribers_see_applies_and_deletions() {
        use watcher::Event::*;
        let writer = Writer::<ConfigMap>::new(());
        let store = writer.as_reader();
        let (mut tx, rx) = async_broadcast::broadcast(16);
        tx.set_await_active(false);
        let events = futures::stream::iter(vec![
            Ok(Init),
            Ok(InitApply(cm("a", "1"))),
            Ok(InitApply(cm("b", "1"))),
            Ok(InitDone),
            Ok(Apply(cm("a", "2"))),
            Ok(Delete(cm("a", "3"))),
            // A relist without "b": it was deleted while the watch was down.
            Ok(Init),
            Ok(InitApply(cm("c", "1"))),
            Ok(InitDone),
        ]);
        reflect(writer, tx, events).await;
        let seen: Vec<(String, String, bool)> = rx
            .map(|o: Arc<ConfigMap>| {
                let gone = store.get(&ObjectRef::from_obj(o.as_ref())).is_none();
                (
                    o.metadata.name.clone().unwrap(),
                    o.metadata.resource_version.clone().unwrap(),
                    gone,
                )
            })
            .collect()
            .await;
        let names: Vec<String> = seen.iter().map(|(n, rv, _)| format!("{n}@{rv}")).collect();
        let mut first_list = names[..2].to_vec();
        first_list.sort();
        assert_eq!(first_list, ["a@1", "b@1"]);
        assert_eq!(names[2..], ["a@2", "a@3", "c@1", "b@1"]);
        // b is gone from the cache, c is present.
        assert!(seen[5].2);
        assert!(!seen[4].2);
    }
}
