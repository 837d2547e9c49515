//! Shared informers: one list-watch and one cache per resource type, shared by every
//! controller that needs it (upstream's SharedInformerFactory), so 10,000 pods are held
//! once however many controllers look at them.

use futures::StreamExt;
use k8s_openapi::api::{apps, batch, coordination, core, policy};
use kube::runtime::reflector::{self, store::Writer, ReflectHandle, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Mutex;

/// Events buffered per subscriber before the informer waits for slow consumers.
const BUFFER: usize = 1024;

/// One shared list-watch with its cache.
pub struct Shared<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    writer: Mutex<Option<Writer<K>>>,
    api: Api<K>,
}

impl<K> Shared<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    pub fn new(api: Api<K>) -> Self {
        let (store, writer) = reflector::store_shared(BUFFER);
        Shared {
            store,
            writer: Mutex::new(Some(writer)),
            api,
        }
    }

    /// The cache (readable once the first list has arrived; see `Store::wait_until_ready`).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// A stream of changed objects for a controller. Must be called before `start`.
    pub fn subscribe(&self) -> ReflectHandle<K> {
        self.writer
            .lock()
            .expect("informer lock")
            .as_ref()
            .and_then(Writer::subscribe)
            .expect("subscribe before the informer starts")
    }

    /// Starts the list-watch; it runs (with back-off on errors) until the task is dropped.
    /// Only the first call starts anything.
    pub fn start(&self) {
        let Some(writer) = self.writer.lock().expect("informer lock").take() else {
            return;
        };
        let stream = watcher(self.api.clone(), watcher::Config::default().any_semantic())
            .default_backoff()
            .reflect_shared(writer);
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                if let Err(e) = ev {
                    tracing::debug!(error = %e, kind = %K::kind(&()), "watch error, retrying");
                }
            }
        });
    }
}

/// The informers controllers share.
pub struct Informers {
    pub pods: Shared<core::v1::Pod>,
    pub nodes: Shared<core::v1::Node>,
    pub namespaces: Shared<core::v1::Namespace>,
    pub replicasets: Shared<apps::v1::ReplicaSet>,
    pub deployments: Shared<apps::v1::Deployment>,
    pub daemonsets: Shared<apps::v1::DaemonSet>,
    pub statefulsets: Shared<apps::v1::StatefulSet>,
    pub controllerrevisions: Shared<apps::v1::ControllerRevision>,
    pub jobs: Shared<batch::v1::Job>,
    pub cronjobs: Shared<batch::v1::CronJob>,
    pub leases: Shared<coordination::v1::Lease>,
    pub pdbs: Shared<policy::v1::PodDisruptionBudget>,
    pub serviceaccounts: Shared<core::v1::ServiceAccount>,
    pub configmaps: Shared<core::v1::ConfigMap>,
}

impl Informers {
    pub fn new(client: &Client) -> Self {
        let c = client.clone();
        Informers {
            pods: Shared::new(Api::all(c.clone())),
            nodes: Shared::new(Api::all(c.clone())),
            namespaces: Shared::new(Api::all(c.clone())),
            replicasets: Shared::new(Api::all(c.clone())),
            deployments: Shared::new(Api::all(c.clone())),
            daemonsets: Shared::new(Api::all(c.clone())),
            statefulsets: Shared::new(Api::all(c.clone())),
            controllerrevisions: Shared::new(Api::all(c.clone())),
            jobs: Shared::new(Api::all(c.clone())),
            cronjobs: Shared::new(Api::all(c.clone())),
            leases: Shared::new(Api::namespaced(c.clone(), "kube-node-lease")),
            pdbs: Shared::new(Api::all(c.clone())),
            serviceaccounts: Shared::new(Api::all(c.clone())),
            configmaps: Shared::new(Api::all(c)),
        }
    }

    /// Starts every informer that has subscribers or whose cache is used.
    pub fn start_all(&self) {
        self.pods.start();
        self.nodes.start();
        self.namespaces.start();
        self.replicasets.start();
        self.deployments.start();
        self.daemonsets.start();
        self.statefulsets.start();
        self.controllerrevisions.start();
        self.jobs.start();
        self.cronjobs.start();
        self.leases.start();
        self.pdbs.start();
        self.serviceaccounts.start();
        self.configmaps.start();
    }
}
