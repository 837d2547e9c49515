//! A watch cache in front of any [`Backend`]: one underlying watch on the whole keyspace
//! feeds an in-memory ring of recent events that is fanned out to every watcher, so a
//! thousand watchers cost the backend one watch. Reads and writes pass through.
//!
//! * The ring holds the last `capacity` events; it covers every revision in
//!   `(floor, last]`. A watch from a revision in that window is served from memory; an
//!   older one falls back to the backend's own watch (which answers `Compacted` if the
//!   history is gone).
//! * Watchers whose channel fills up are ended with `Err(Compacted)` (see `fanout`).
//! * If the underlying watch breaks it is resumed from the last revision seen, so
//!   watchers notice nothing; if that revision was compacted meanwhile, the cache has
//!   missed events it can't recover: every watcher is ended with `Compacted` (clients
//!   re-list) and the ring restarts empty.

use crate::fanout::{Offer, Subscriber, DEFAULT_WATCH_CAPACITY};
use crate::{Backend, Event, KeyValue, ListOptions, ListResult, Result, StoreError, WatchStream};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Events kept in memory by default.
pub const DEFAULT_RING: usize = 10_000;

/// See the module docs.
pub struct WatchCache {
    inner: Arc<dyn Backend>,
    state: Arc<Mutex<State>>,
    ready: watch::Receiver<bool>,
    pump: tokio::task::JoinHandle<()>,
}

struct State {
    ring: VecDeque<Event>,
    capacity: usize,
    /// Every event with `floor < revision <= last` is in `ring`.
    floor: i64,
    last: i64,
    /// Highest compaction revision known; watches below it are refused.
    compacted: i64,
    watchers: Vec<Subscriber>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn dispatch(&mut self, batch: Vec<Event>) {
        let Some(last) = batch.last().map(Event::revision) else {
            return;
        };
        self.watchers
            .retain_mut(|w| w.offer(&batch) == Offer::Alive);
        self.last = last;
        self.ring.extend(batch);
        while self.ring.len() > self.capacity {
            if let Some(old) = self.ring.pop_front() {
                self.floor = old.revision();
            }
        }
    }

    /// Forget everything: watchers must re-list from `current`.
    fn reset(&mut self, current: i64) {
        for w in self.watchers.drain(..) {
            w.overflow(self.last);
        }
        self.ring.clear();
        self.floor = current;
        self.last = current;
    }
}

impl WatchCache {
    /// Wrap `inner`, keeping the last [`DEFAULT_RING`] events. Must be called inside a
    /// tokio runtime (it spawns the task that pumps the underlying watch).
    pub fn new(inner: Arc<dyn Backend>) -> Arc<Self> {
        Self::with_capacity(inner, DEFAULT_RING)
    }

    /// Like [`WatchCache::new`] with a ring of `capacity` events.
    pub fn with_capacity(inner: Arc<dyn Backend>, capacity: usize) -> Arc<Self> {
        let state = Arc::new(Mutex::new(State {
            ring: VecDeque::new(),
            capacity: capacity.max(1),
            floor: 0,
            last: 0,
            compacted: 0,
            watchers: Vec::new(),
        }));
        let (ready_tx, ready) = watch::channel(false);
        let pump = tokio::spawn(pump(inner.clone(), state.clone(), ready_tx));
        Arc::new(Self {
            inner,
            state,
            ready,
            pump,
        })
    }

    /// Number of watchers currently served from memory.
    pub fn watcher_count(&self) -> usize {
        lock(&self.state).watchers.len()
    }

    fn note_compacted(&self, rev: i64) {
        let mut st = lock(&self.state);
        st.compacted = st.compacted.max(rev);
    }
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

/// Keep one watch on the whole keyspace open and feed the ring with it.
async fn pump(inner: Arc<dyn Backend>, state: Arc<Mutex<State>>, ready: watch::Sender<bool>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let from = if *ready.borrow() {
            lock(&state).last
        } else {
            match inner.current_revision().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "watch cache: cannot read revision");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
        };
        let mut stream = match inner.watch("", from).await {
            Ok(s) => s,
            Err(StoreError::Compacted { .. }) => {
                resync(&inner, &state).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "watch cache: cannot watch");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if !*ready.borrow() {
            let mut st = lock(&state);
            st.floor = from;
            st.last = from;
            drop(st);
            let _ = ready.send(true);
        }
        backoff = Duration::from_millis(100);
        loop {
            match stream.recv().await {
                Some(Ok(batch)) => lock(&state).dispatch(batch),
                Some(Err(StoreError::Compacted { .. })) => {
                    resync(&inner, &state).await;
                    break;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watch cache: underlying watch failed");
                    break;
                }
                None => break,
            }
        }
        if ready.is_closed() {
            return;
        }
    }
}

/// The underlying watch lost history: end all watchers and restart at the current revision.
async fn resync(inner: &Arc<dyn Backend>, state: &Mutex<State>) {
    loop {
        match inner.current_revision().await {
            Ok(current) => {
                tracing::warn!(current, "watch cache: history compacted, resetting");
                lock(state).reset(current);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "watch cache: cannot read revision");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[async_trait]
impl Backend for WatchCache {
    async fn current_revision(&self) -> Result<i64> {
        self.inner.current_revision().await
    }

    async fn get(&self, key: &str, revision: i64) -> Result<(Option<KeyValue>, i64)> {
        self.inner.get(key, revision).await
    }

    async fn list(&self, opts: &ListOptions) -> Result<ListResult> {
        self.inner.list(opts).await
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        self.inner.count(prefix).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<i64> {
        self.inner.create(key, value).await
    }

    async fn update(&self, key: &str, value: Bytes, expected_mod_revision: i64) -> Result<i64> {
        self.inner.update(key, value, expected_mod_revision).await
    }

    async fn delete(&self, key: &str, expected_mod_revision: i64) -> Result<(i64, KeyValue)> {
        self.inner.delete(key, expected_mod_revision).await
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(|r| *r)
            .await
            .map_err(|_| StoreError::Unavailable("watch cache stopped".into()))?;
        {
            let mut st = lock(&self.state);
            if after_revision != 0 && after_revision < st.compacted {
                return Err(StoreError::Compacted {
                    compacted: st.compacted,
                });
            }
            if after_revision == 0 || after_revision >= st.floor {
                let after = if after_revision == 0 {
                    st.last
                } else {
                    after_revision
                };
                let (tx, rx) = mpsc::channel(DEFAULT_WATCH_CAPACITY);
                let mut sub = Subscriber {
                    prefix: prefix.to_string(),
                    after,
                    tx,
                };
                let backlog: Vec<Event> =
                    st.ring.iter().filter(|e| sub.wants(e)).cloned().collect();
                if sub.offer_owned(backlog) == Offer::Alive {
                    sub.after = sub.after.max(st.last);
                    st.watchers.push(sub);
                }
                return Ok(rx);
            }
        }
        self.inner.watch(prefix, after_revision).await
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.inner.compact(revision).await?;
        self.note_compacted(revision);
        Ok(())
    }

    async fn compacted_revision(&self) -> Result<i64> {
        let rev = self.inner.compacted_revision().await?;
        self.note_compacted(rev);
        Ok(rev)
    }
}
