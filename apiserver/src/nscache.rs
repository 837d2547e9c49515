//! The namespace lifecycle cache: which namespaces exist and which are terminating, kept by
//! one list-watch of the namespaces prefix so that admission does not read the store on
//! every create (upstream's NamespaceLifecycle uses an informer the same way). A name the
//! cache has not seen yet is looked up in the store by the caller.

use crate::registry::{decode, prefix};
use crate::resources::{self, ResourceInfo};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use store::{Backend, Event, ListOptions};

/// What the cache knows about a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Active,
    Terminating,
}

#[derive(Default)]
pub struct NamespaceCache {
    phases: RwLock<HashMap<String, (Phase, Labels)>>,
}

/// A namespace's labels (PodSecurity and webhook namespace selectors read them).
pub type Labels = Arc<BTreeMap<String, String>>;

/// A namespace object's labels.
pub fn labels_of(ns: &Value) -> Labels {
    Arc::new(
        ns.pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
            .collect(),
    )
}

fn entry(ns: &Value) -> (Phase, Labels) {
    (phase_of(ns), labels_of(ns))
}

fn namespaces() -> &'static ResourceInfo {
    resources::find("", "v1", "namespaces").expect("namespaces served")
}

/// The phase of a namespace object.
pub fn phase_of(ns: &Value) -> Phase {
    let terminating = ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
        || crate::meta::meta_str(ns, "deletionTimestamp").is_some();
    if terminating {
        Phase::Terminating
    } else {
        Phase::Active
    }
}

impl NamespaceCache {
    /// Starts the list-watch; it re-lists after any watch error.
    pub fn start(store: Arc<dyn Backend>) -> Arc<NamespaceCache> {
        let cache = Arc::new(NamespaceCache::default());
        let c = cache.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = c.sync(store.as_ref()).await {
                    tracing::debug!(error = %e, "namespace cache: re-listing");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        cache
    }

    pub fn get(&self, name: &str) -> Option<Phase> {
        self.phases.read().ok()?.get(name).map(|(p, _)| *p)
    }

    /// The namespace's labels, when the cache has seen it.
    pub fn labels(&self, name: &str) -> Option<Labels> {
        self.phases.read().ok()?.get(name).map(|(_, l)| l.clone())
    }

    /// One list, then the watch from its revision until it fails.
    async fn sync(&self, store: &dyn Backend) -> Result<(), store::StoreError> {
        let res = namespaces();
        let base = prefix(res, None);
        let page = store
            .list(&ListOptions {
                prefix: base.clone(),
                ..Default::default()
            })
            .await?;
        let mut fresh = HashMap::new();
        for kv in &page.kvs {
            if let Ok(obj) = decode(res, kv) {
                fresh.insert(crate::meta::name(&obj).to_string(), entry(&obj));
            }
        }
        if let Ok(mut m) = self.phases.write() {
            *m = fresh;
        }
        let mut watch = store.watch(&base, page.revision).await?;
        while let Some(batch) = watch.recv().await {
            for ev in batch? {
                let mut m = match self.phases.write() {
                    Ok(m) => m,
                    Err(_) => return Ok(()),
                };
                match &ev {
                    Event::Create { kv } | Event::Update { kv, .. } => {
                        if let Ok(obj) = decode(res, kv) {
                            m.insert(crate::meta::name(&obj).to_string(), entry(&obj));
                        }
                    }
                    Event::Delete { prev, .. } => {
                        if let Some(name) = prev.key.strip_prefix(&base) {
                            m.remove(name);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
