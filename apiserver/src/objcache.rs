//! Read-your-writes caches of small kinds that admission reads on every create
//! (LimitRanges, ResourceQuotas, PriorityClasses), kept by one list-watch each, as
//! upstream's admission plugins read informers instead of the store.
//!
//! Upstream's informers are only eventually consistent (a LimitRange created just before
//! a pod may be missed). Here every write goes through this API server's registry, so
//! the registry's store is wrapped in an [`ObservedBackend`] that records the revision
//! of each write under a cached prefix; a read first waits until the cache has applied
//! at least that revision (microseconds: the event is already on its way), and after
//! [`FRESHNESS_WAIT`] reads the store instead.

use crate::error::ApiResult;
use crate::registry::{decode, prefix};
use crate::resources::ResourceInfo;
use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use store::{Backend, Event, KeyValue, ListOptions, ListResult, WatchStream};
use tokio::sync::watch;

/// How long a read waits for the cache to catch up with a write before reading the store.
pub const FRESHNESS_WAIT: Duration = Duration::from_secs(2);

/// One cached prefix: every object under it, decoded, with its mod revision.
pub struct PrefixCache {
    res: &'static ResourceInfo,
    base: String,
    items: RwLock<BTreeMap<String, (Arc<Value>, i64)>>,
    /// Revision the cache reflects for its prefix (-1 until the first list).
    applied: watch::Sender<i64>,
    /// Highest revision of a write under the prefix made through the observed store.
    written: AtomicI64,
}

impl PrefixCache {
    fn new(res: &'static ResourceInfo) -> Arc<Self> {
        Arc::new(Self {
            res,
            base: prefix(res, None),
            items: RwLock::default(),
            applied: watch::Sender::new(-1),
            written: AtomicI64::new(0),
        })
    }

    /// Starts the list-watch; it re-lists after any watch error.
    fn start(self: &Arc<Self>, store: Arc<dyn Backend>) {
        let c = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = c.sync(store.as_ref()).await {
                    tracing::debug!(error = %e, prefix = %c.base, "object cache: re-listing");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    /// One list, then the watch from its revision until it fails.
    async fn sync(&self, store: &dyn Backend) -> store::Result<()> {
        let page = list_all(store, &self.base).await?;
        let fresh = page
            .kvs
            .iter()
            .filter_map(|kv| Some((kv.key.clone(), self.entry(kv)?)))
            .collect();
        *self.items.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        self.advance(page.revision);
        let mut watch = store.watch(&self.base, page.revision).await?;
        while let Some(batch) = watch.recv().await {
            let batch = batch?;
            let Some(last) = batch.last().map(Event::revision) else {
                continue;
            };
            {
                let mut items = self.items.write().unwrap_or_else(|p| p.into_inner());
                for ev in &batch {
                    match ev {
                        Event::Create { kv } | Event::Update { kv, .. } => {
                            if let Some(e) = self.entry(kv) {
                                items.insert(kv.key.clone(), e);
                            }
                        }
                        Event::Delete { prev, .. } => {
                            items.remove(&prev.key);
                        }
                    }
                }
            }
            self.advance(last);
        }
        Ok(())
    }

    fn entry(&self, kv: &KeyValue) -> Option<(Arc<Value>, i64)> {
        decode(self.res, kv)
            .ok()
            .map(|v| (Arc::new(v), kv.mod_revision))
    }

    fn advance(&self, rev: i64) {
        self.applied.send_if_modified(|a| {
            let moved = rev > *a;
            *a = (*a).max(rev);
            moved
        });
    }

    fn note_write(&self, rev: i64) {
        self.written.fetch_max(rev, Ordering::AcqRel);
    }

    /// Waits until every write made through the observed store is reflected; false when
    /// that took longer than [`FRESHNESS_WAIT`].
    async fn fresh(&self) -> bool {
        let need = self.written.load(Ordering::Acquire).max(0);
        if *self.applied.borrow() >= need {
            return true;
        }
        let mut rx = self.applied.subscribe();
        let caught_up = tokio::time::timeout(FRESHNESS_WAIT, async {
            rx.wait_for(|a| *a >= need).await.is_ok()
        })
        .await;
        caught_up == Ok(true)
    }

    /// The objects in a namespace (all of them for `None` or a cluster-scoped kind) with
    /// their mod revisions, from the cache once it is fresh, else from `store`.
    pub async fn list(
        &self,
        store: &dyn Backend,
        ns: Option<&str>,
    ) -> ApiResult<Vec<(Arc<Value>, i64)>> {
        let base = prefix(self.res, ns);
        if self.fresh().await {
            let items = self.items.read().unwrap_or_else(|p| p.into_inner());
            return Ok(items
                .range(base.clone()..)
                .take_while(|(k, _)| k.starts_with(&base))
                .map(|(_, (v, rev))| (v.clone(), *rev))
                .collect());
        }
        let page = list_all(store, &base).await?;
        page.kvs
            .iter()
            .map(|kv| Ok((Arc::new(decode(self.res, kv)?), kv.mod_revision)))
            .collect()
    }
}

async fn list_all(store: &dyn Backend, prefix: &str) -> store::Result<ListResult> {
    store
        .list(&ListOptions {
            prefix: prefix.to_string(),
            ..Default::default()
        })
        .await
}

/// The caches admission reads.
pub struct AdmissionCaches {
    pub limit_ranges: Arc<PrefixCache>,
    pub quotas: Arc<PrefixCache>,
    pub priority_classes: Arc<PrefixCache>,
}

impl AdmissionCaches {
    /// Wraps `store` so that writes under the cached prefixes are recorded, and starts
    /// the caches' list-watches on it. Returns the caches and the store to use.
    pub fn start(store: Arc<dyn Backend>) -> (Arc<Self>, Arc<dyn Backend>) {
        let find = |g: &str, v: &str, r: &str| {
            crate::resources::find(g, v, r).expect("cached resource served")
        };
        let caches = Arc::new(Self {
            limit_ranges: PrefixCache::new(find("", "v1", "limitranges")),
            quotas: PrefixCache::new(find("", "v1", "resourcequotas")),
            priority_classes: PrefixCache::new(find("scheduling.k8s.io", "v1", "priorityclasses")),
        });
        let observed: Arc<dyn Backend> = Arc::new(ObservedBackend {
            inner: store,
            caches: caches.all().into_iter().cloned().collect(),
        });
        for c in caches.all() {
            c.start(observed.clone());
        }
        (caches, observed)
    }

    fn all(&self) -> [&Arc<PrefixCache>; 3] {
        [&self.limit_ranges, &self.quotas, &self.priority_classes]
    }
}

/// A store layer that tells the caches about writes under their prefixes.
pub struct ObservedBackend {
    inner: Arc<dyn Backend>,
    caches: Vec<Arc<PrefixCache>>,
}

impl ObservedBackend {
    fn wrote(&self, key: &str, rev: i64) {
        for c in &self.caches {
            if key.starts_with(&c.base) {
                c.note_write(rev);
            }
        }
    }
}

#[async_trait]
impl Backend for ObservedBackend {
    async fn current_revision(&self) -> store::Result<i64> {
        self.inner.current_revision().await
    }

    async fn get(&self, key: &str, revision: i64) -> store::Result<(Option<KeyValue>, i64)> {
        self.inner.get(key, revision).await
    }

    async fn list(&self, opts: &ListOptions) -> store::Result<ListResult> {
        self.inner.list(opts).await
    }

    async fn count(&self, prefix: &str) -> store::Result<i64> {
        self.inner.count(prefix).await
    }

    async fn create(&self, key: &str, value: Bytes) -> store::Result<i64> {
        let rev = self.inner.create(key, value).await?;
        self.wrote(key, rev);
        Ok(rev)
    }

    async fn update(&self, key: &str, value: Bytes, expected: i64) -> store::Result<i64> {
        let rev = self.inner.update(key, value, expected).await?;
        self.wrote(key, rev);
        Ok(rev)
    }

    async fn delete(&self, key: &str, expected: i64) -> store::Result<(i64, KeyValue)> {
        let (rev, kv) = self.inner.delete(key, expected).await?;
        self.wrote(key, rev);
        Ok((rev, kv))
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> store::Result<WatchStream> {
        self.inner.watch(prefix, after_revision).await
    }

    async fn compact(&self, revision: i64) -> store::Result<()> {
        self.inner.compact(revision).await
    }

    async fn compacted_revision(&self) -> store::Result<i64> {
        self.inner.compacted_revision().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn Backend> {
        Arc::new(store::SqliteBackend::open(&dir.path().join("state.db")).expect("open sqlite"))
    }

    fn limit_range(name: &str) -> Bytes {
        Bytes::from(
            json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": name}})
                .to_string(),
        )
    }

    /// A write through the observed store is seen by the very next read.
    #[tokio::test]
    async fn reads_see_every_write_made_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let (caches, store) = AdmissionCaches::start(sqlite(&dir));
        let lr = &caches.limit_ranges;
        assert!(lr.list(store.as_ref(), Some("a")).await.unwrap().is_empty());
        for i in 0..20 {
            let key = format!("/registry/core/limitranges/a/lr{i}");
            let rev = store
                .create(&key, limit_range(&format!("lr{i}")))
                .await
                .unwrap();
            let got = lr.list(store.as_ref(), Some("a")).await.unwrap();
            assert_eq!(got.len(), i + 1);
            assert!(got
                .iter()
                .any(|(v, r)| *r == rev && v["metadata"]["name"] == format!("lr{i}")));
        }
        assert!(lr.list(store.as_ref(), Some("b")).await.unwrap().is_empty());
        let (rev, _) = store
            .delete("/registry/core/limitranges/a/lr0", 0)
            .await
            .unwrap();
        let got = lr.list(store.as_ref(), Some("a")).await.unwrap();
        assert_eq!(got.len(), 19);
        assert!(*lr.applied.borrow() >= rev);
        assert_eq!(lr.list(store.as_ref(), None).await.unwrap().len(), 19);
    }

    /// Writes that bypass the observed store show up once their event arrives.
    #[tokio::test]
    async fn writes_below_the_layer_arrive_by_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let raw = sqlite(&dir);
        let (caches, store) = AdmissionCaches::start(raw.clone());
        let pcs = &caches.priority_classes;
        pcs.list(store.as_ref(), None).await.unwrap();
        raw.create(
            "/registry/scheduling.k8s.io/priorityclasses/high",
            Bytes::from(
                json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                    "metadata": {"name": "high"}, "value": 1000})
                .to_string(),
            ),
        )
        .await
        .unwrap();
        for _ in 0..200 {
            if !pcs.list(store.as_ref(), None).await.unwrap().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the watch never delivered the priority class");
    }

    #[tokio::test]
    async fn observed_store_passes_the_store_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let (_caches, store) = AdmissionCaches::start(sqlite(&dir));
        store::conformance::run_all(store).await;
    }
}
