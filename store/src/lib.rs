//! Storage for minik8s: a kine-shaped key/value backend trait with revisions and watches,
//! an embedded SQLite backend, an etcd v3 backend, and a fan-out watch cache.
//!
//! Keys are strings such as `/registry/pods/default/web-1`; values are opaque bytes (the
//! API server stores JSON). Every write bumps one cluster-wide revision; `resourceVersion`
//! in the API is that revision.

use async_trait::async_trait;
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;

pub mod cache;
pub mod conformance;
pub mod etcd;
mod fanout;
pub mod sqlite;

pub use cache::WatchCache;
pub use etcd::EtcdBackend;
pub use sqlite::{SqliteBackend, SqliteOptions};

/// One stored key at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision at which the key was (last) created.
    pub create_revision: i64,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
}

/// A change seen by a watch. `revision` is the revision of the write that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Create {
        kv: KeyValue,
    },
    Update {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// `prev` is the value just before deletion; `revision` the delete's revision.
    Delete {
        prev: KeyValue,
        revision: i64,
    },
}

impl Event {
    pub fn revision(&self) -> i64 {
        match self {
            Event::Create { kv } | Event::Update { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }
    pub fn key(&self) -> &str {
        match self {
            Event::Create { kv } | Event::Update { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        }
    }
}

/// Result of a list: the items in key order, the revision the list was served at, and
/// whether more keys follow the last one returned (for `limit`/`continue`).
#[derive(Debug, Clone, Default)]
pub struct ListResult {
    pub kvs: Vec<KeyValue>,
    pub revision: i64,
    pub more: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only keys starting with this prefix.
    pub prefix: String,
    /// Start at this key (inclusive) within the prefix; empty: from the beginning.
    pub start_key: String,
    /// At most this many items; 0: no limit.
    pub limit: i64,
    /// Serve at this revision; 0: latest. A compacted revision gives `StoreError::Compacted`.
    pub revision: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key already exists")]
    AlreadyExists,
    #[error("key not found")]
    NotFound,
    /// Update or delete precondition failed; carries the current value, if any.
    #[error("revision conflict")]
    Conflict { current: Option<KeyValue> },
    /// The requested revision has been compacted away; `compacted` is the oldest still kept.
    #[error("required revision has been compacted")]
    Compacted { compacted: i64 },
    /// The requested revision is newer than the store's current revision.
    #[error("required revision is a future revision")]
    FutureRevision { current: i64 },
    #[error("datastore unavailable: {0}")]
    Unavailable(String),
    #[error("datastore error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A stream of batches of events in revision order; an `Err` ends the stream
/// (`Compacted` when the watcher fell too far behind).
pub type WatchStream = tokio::sync::mpsc::Receiver<Result<Vec<Event>>>;

/// The storage backend, at the level of kine's: every backend and any cache passes the
/// same conformance suite (`conformance` module).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Current (latest) revision.
    async fn current_revision(&self) -> Result<i64>;
    /// Read one key at `revision` (0: latest). Returns the value and the revision served.
    async fn get(&self, key: &str, revision: i64) -> Result<(Option<KeyValue>, i64)>;
    /// List keys under a prefix.
    async fn list(&self, opts: &ListOptions) -> Result<ListResult>;
    /// Count keys under a prefix at the latest revision.
    async fn count(&self, prefix: &str) -> Result<i64>;
    /// Create a key that must not exist. Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<i64>;
    /// Replace a key whose mod_revision must equal `expected_mod_revision`. Returns the new revision.
    async fn update(&self, key: &str, value: Bytes, expected_mod_revision: i64) -> Result<i64>;
    /// Delete a key; when `expected_mod_revision` is non-zero it must match.
    /// Returns the delete's revision and the deleted value.
    async fn delete(&self, key: &str, expected_mod_revision: i64) -> Result<(i64, KeyValue)>;
    /// Watch keys under a prefix for all events with revision > `after_revision`
    /// (0: from now). Events are delivered in revision order with no gaps.
    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream>;
    /// Forget history at and before `revision`.
    async fn compact(&self, revision: i64) -> Result<()>;
    /// Oldest revision still available for reads and watches.
    async fn compacted_revision(&self) -> Result<i64>;
}

/// Open the configured backend: an empty `endpoint` gives the embedded SQLite store at
/// `data_dir/state.db` (creating `data_dir`); otherwise `endpoint` is a comma-separated
/// list of etcd client URLs such as `http://127.0.0.1:2379,http://10.0.0.2:2379`.
pub async fn open(endpoint: &str, data_dir: &Path) -> Result<Arc<dyn Backend>> {
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Unavailable(format!("create {}: {e}", data_dir.display())))?;
        let path = data_dir.join("state.db");
        let backend = tokio::task::spawn_blocking(move || SqliteBackend::open(&path))
            .await
            .map_err(|e| StoreError::Internal(format!("open task: {e}")))??;
        return Ok(Arc::new(backend));
    }
    let endpoints = etcd::parse_endpoints(endpoint)?;
    Ok(Arc::new(EtcdBackend::connect(&endpoints).await?))
}
