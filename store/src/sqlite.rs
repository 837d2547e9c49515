//! Embedded SQLite backend, shaped like kine: one append-only log table whose
//! `INTEGER PRIMARY KEY AUTOINCREMENT` id is the cluster-wide revision.
//!
//! * Every write appends one row (`created`/`deleted` flags, `create_revision`,
//!   `prev_revision`, `value`); delete rows carry the deleted value so a delete event
//!   never needs the previous row. The state at revision `R` is, per key, the newest row
//!   with `id <= R` unless that row is a delete.
//! * Writes go through one writer thread that owns the only writing connection and
//!   commits *groups* of queued writes in one transaction (group commit): concurrent
//!   writers share one fsync, while every write still gets its own revision and its own
//!   precondition check against the state left by the writes before it in the group.
//! * Reads use a small pool of read connections on the blocking thread pool; WAL gives
//!   each read a consistent snapshot while the writer keeps writing.
//! * Watches are fanned out in process by the writer right after each commit; a watch from
//!   a past revision first replays rows from the table, buffering live events meanwhile.
//! * Compaction deletes rows superseded at or below the compaction revision; the writer
//!   runs it periodically, keeping the last `compact_retention` revisions.

use crate::fanout::{prefix_end, Offer, Subscriber, DEFAULT_WATCH_CAPACITY};
use crate::{Backend, Event, KeyValue, ListOptions, ListResult, Result, StoreError, WatchStream};
use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;
/// Rows per page when replaying history to a watcher.
const HISTORY_PAGE: i64 = 1000;
/// Live events a catching-up watcher may buffer before it is ended with `Compacted`.
const MAX_PENDING: usize = 100_000;

/// Tuning for [`SqliteBackend`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How often the background compactor runs; `Duration::ZERO` disables it.
    pub compact_interval: Duration,
    /// Revisions kept by the background compactor (like kine's 1000).
    pub compact_retention: i64,
    /// Read connections kept open.
    pub read_pool: usize,
    /// Channel capacity, in batches, of each watch stream.
    pub watch_capacity: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            compact_interval: Duration::from_secs(300),
            compact_retention: 1000,
            read_pool: 4,
            watch_capacity: DEFAULT_WATCH_CAPACITY,
        }
    }
}

/// The embedded backend. Dropping it stops the writer thread (after the batch in flight)
/// and ends every watch stream.
pub struct SqliteBackend {
    shared: Arc<Shared>,
    cmds: Option<std_mpsc::Sender<Cmd>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    path: PathBuf,
    opts: SqliteOptions,
    pool: Mutex<Vec<Connection>>,
    hub: Mutex<Hub>,
    /// Oldest revision still readable (mirrors the `meta` table).
    compacted: AtomicI64,
}

#[derive(Default)]
struct Hub {
    /// Last revision published to watchers (every revision up to it is committed).
    last: i64,
    next_id: u64,
    watchers: Vec<HubWatcher>,
    closed: bool,
}

struct HubWatcher {
    id: u64,
    sub: Subscriber,
    state: WatchState,
}

enum WatchState {
    Live,
    /// Replaying history; live events are buffered here.
    Catching(Vec<Event>),
    /// Buffered too much while catching up; the replay task ends the stream.
    Failed,
}

enum Op {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: i64,
    },
    Delete {
        key: String,
        expected: i64,
    },
}

struct Written {
    revision: i64,
    prev: Option<KeyValue>,
}

enum Cmd {
    Write(Op, oneshot::Sender<Result<Written>>),
    Compact(i64, oneshot::Sender<Result<()>>),
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name BLOB NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS kine_name_id ON kine (name, id);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// Durability: WAL with `synchronous=FULL`. `NORMAL` would already survive `kill -9`
/// (the WAL is in the OS page cache), but not a power loss or kernel crash, and an
/// acknowledged write to the cluster's source of truth must not vanish. Group commit
/// amortises the extra fsync per transaction over every write queued meanwhile, so FULL
/// costs little throughput under concurrency.
fn open_conn(path: &Path, writer: bool) -> Result<Connection> {
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Unavailable(format!("open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(internal)?;
    // Query plans must not depend on bound values: otherwise SQLite marks a statement
    // whose `LIMIT ?` (or range bound) it inspected as expired on every re-bind and
    // parses and plans it again on each execution (a tenth of the server's CPU under
    // a create load, BENCHMARKS.md figure 6).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(internal)?;
    // Keep SQLite's own page cache small (KiB): the OS page cache already holds the file,
    // and each pooled connection would otherwise keep up to 2 MiB of duplicate pages.
    conn.pragma_update(None, "cache_size", if writer { -1024 } else { -256 })
        .map_err(internal)?;
    if writer {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(internal)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(internal)?;
        conn.execute_batch(SCHEMA).map_err(internal)?;
    } else {
        conn.pragma_update(None, "query_only", true)
            .map_err(internal)?;
    }
    Ok(conn)
}

fn to_string(name: Vec<u8>) -> Result<String> {
    String::from_utf8(name).map_err(|_| internal("stored key is not utf-8"))
}

/// (current revision, compacted revision) as seen by `conn`'s current transaction.
fn revisions(conn: &Connection) -> Result<(i64, i64)> {
    let current: i64 = conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'kine'")
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(internal)?
        .unwrap_or(0);
    let compacted: i64 = conn
        .prepare_cached("SELECT value FROM meta WHERE name = 'compact_rev'")
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(internal)?
        .unwrap_or(0);
    Ok((current, compacted))
}

/// Resolve a requested read revision (0: latest) against the snapshot.
fn read_revision(conn: &Connection, requested: i64) -> Result<i64> {
    let (current, compacted) = revisions(conn)?;
    if requested == 0 {
        return Ok(current);
    }
    if requested > current {
        return Err(StoreError::FutureRevision { current });
    }
    if requested < compacted {
        return Err(StoreError::Compacted { compacted });
    }
    Ok(requested)
}

/// Newest live value of `key` at `rev`.
fn get_at(conn: &Connection, key: &str, rev: i64) -> Result<Option<KeyValue>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, deleted, create_revision, value FROM kine
             WHERE name = ?1 AND id <= ?2 ORDER BY id DESC LIMIT 1",
        )
        .map_err(internal)?;
    let row = stmt
        .query_row(params![key.as_bytes(), rev], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })
        .optional()
        .map_err(internal)?;
    Ok(match row {
        Some((id, false, create_revision, value)) => Some(KeyValue {
            key: key.to_string(),
            value: Bytes::from(value),
            create_revision,
            mod_revision: id,
        }),
        _ => None,
    })
}

fn list_at(conn: &Connection, opts: &ListOptions) -> Result<ListResult> {
    let tx = conn.unchecked_transaction().map_err(internal)?;
    let rev = read_revision(&tx, opts.revision)?;
    let start = if opts.start_key.as_str() > opts.prefix.as_str() {
        opts.start_key.as_bytes().to_vec()
    } else {
        opts.prefix.as_bytes().to_vec()
    };
    // Keys are UTF-8 and can never contain 0xff, so [0xff] bounds the whole keyspace.
    let end = prefix_end(&opts.prefix).unwrap_or_else(|| vec![0xff]);
    let limit = if opts.limit > 0 { opts.limit + 1 } else { -1 };
    let mut stmt = tx
        .prepare_cached(
            "SELECT k.id, k.name, k.create_revision, k.value FROM kine k
             WHERE k.name >= ?1 AND k.name < ?2 AND k.deleted = 0
               AND k.id = (SELECT MAX(l.id) FROM kine l WHERE l.name = k.name AND l.id <= ?3)
             ORDER BY k.name LIMIT ?4",
        )
        .map_err(internal)?;
    let rows = stmt
        .query_map(params![start, end, rev, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })
        .map_err(internal)?;
    let mut kvs = Vec::new();
    for row in rows {
        let (id, name, create_revision, value) = row.map_err(internal)?;
        kvs.push(KeyValue {
            key: to_string(name)?,
            value: Bytes::from(value),
            create_revision,
            mod_revision: id,
        });
    }
    let more = opts.limit > 0 && kvs.len() as i64 > opts.limit;
    if more {
        kvs.truncate(opts.limit as usize);
    }
    Ok(ListResult {
        kvs,
        revision: rev,
        more,
    })
}

fn count_at(conn: &Connection, prefix: &str) -> Result<i64> {
    let tx = conn.unchecked_transaction().map_err(internal)?;
    let end = prefix_end(prefix).unwrap_or_else(|| vec![0xff]);
    tx.prepare_cached(
        "SELECT COUNT(*) FROM kine k
         WHERE k.name >= ?1 AND k.name < ?2 AND k.deleted = 0
           AND k.id = (SELECT MAX(l.id) FROM kine l WHERE l.name = k.name)",
    )
    .and_then(|mut s| s.query_row(params![prefix.as_bytes(), end], |r| r.get(0)))
    .map_err(internal)
}

/// Up to `HISTORY_PAGE` events under `prefix` with `after < revision <= upto`.
fn history(conn: &Connection, prefix: &str, after: i64, upto: i64) -> Result<Vec<Event>> {
    let tx = conn.unchecked_transaction().map_err(internal)?;
    let (_, compacted) = revisions(&tx)?;
    if after < compacted {
        return Err(StoreError::Compacted { compacted });
    }
    let end = prefix_end(prefix).unwrap_or_else(|| vec![0xff]);
    let mut stmt = tx
        .prepare_cached(
            "SELECT k.id, k.name, k.created, k.deleted, k.create_revision, k.prev_revision,
                    k.value, p.value
             FROM kine k LEFT JOIN kine p ON p.id = k.prev_revision
             WHERE k.id > ?1 AND k.id <= ?2 AND k.name >= ?3 AND k.name < ?4
             ORDER BY k.id LIMIT ?5",
        )
        .map_err(internal)?;
    let rows = stmt
        .query_map(
            params![after, upto, prefix.as_bytes(), end, HISTORY_PAGE],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Vec<u8>>(6)?,
                    r.get::<_, Option<Vec<u8>>>(7)?,
                ))
            },
        )
        .map_err(internal)?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, created, deleted, create_revision, prev_revision, value, prev_value) =
            row.map_err(internal)?;
        let key = to_string(name)?;
        let ev = if deleted {
            Event::Delete {
                prev: KeyValue {
                    key,
                    value: Bytes::from(value),
                    create_revision,
                    mod_revision: prev_revision,
                },
                revision: id,
            }
        } else {
            let kv = KeyValue {
                key,
                value: Bytes::from(value),
                create_revision,
                mod_revision: id,
            };
            if created {
                Event::Create { kv }
            } else {
                let prev = prev_value.map(|v| KeyValue {
                    key: kv.key.clone(),
                    value: Bytes::from(v),
                    create_revision,
                    mod_revision: prev_revision,
                });
                Event::Update { kv, prev }
            }
        };
        out.push(ev);
    }
    Ok(out)
}

impl Shared {
    fn take_conn(&self) -> Result<Connection> {
        if let Some(c) = lock(&self.pool).pop() {
            return Ok(c);
        }
        open_conn(&self.path, false)
    }

    fn put_conn(&self, conn: Connection) {
        let mut pool = lock(&self.pool);
        if pool.len() < self.opts.read_pool.max(1) {
            pool.push(conn);
        }
    }

    /// Deliver committed events (in revision order) to every watcher.
    fn publish(&self, events: &[Event]) {
        let Some(last) = events.last().map(Event::revision) else {
            return;
        };
        let mut hub = lock(&self.hub);
        hub.last = last;
        hub.watchers.retain_mut(|w| match &mut w.state {
            WatchState::Live => w.sub.offer(events) == Offer::Alive,
            WatchState::Catching(buf) => {
                if w.sub.tx.is_closed() {
                    return false;
                }
                buf.extend(events.iter().filter(|e| w.sub.wants(e)).cloned());
                if buf.len() > MAX_PENDING {
                    w.state = WatchState::Failed;
                }
                true
            }
            WatchState::Failed => true,
        });
    }

    fn remove_watcher(&self, id: u64) {
        lock(&self.hub).watchers.retain(|w| w.id != id);
    }
}

impl SqliteBackend {
    /// Open (creating if needed) the database at `path` with default options.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Open (creating if needed) the database at `path`.
    pub fn open_with(path: &Path, opts: SqliteOptions) -> Result<Self> {
        let conn = open_conn(path, true)?;
        let (current, compacted) = revisions(&conn)?;
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            opts,
            pool: Mutex::new(Vec::new()),
            hub: Mutex::new(Hub {
                last: current,
                ..Hub::default()
            }),
            compacted: AtomicI64::new(compacted),
        });
        let (tx, rx) = std_mpsc::channel();
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || Writer::new(conn, shared, current).run(rx))
                .map_err(|e| internal(format!("spawn writer: {e}")))?
        };
        Ok(Self {
            shared,
            cmds: Some(tx),
            writer: Some(writer),
        })
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let conn = shared.take_conn()?;
            let out = f(&conn);
            shared.put_conn(conn);
            out
        })
        .await
        .map_err(|e| internal(format!("read task: {e}")))?
    }

    async fn write(&self, op: Op) -> Result<Written> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("store is closed".into()))?
            .send(Cmd::Write(op, tx))
            .map_err(|_| StoreError::Unavailable("store is closed".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        self.cmds.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The single writer: owns the write connection and the revision counter.
struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    /// Last revision handed out (committed or in the open transaction).
    rev: i64,
}

impl Writer {
    fn new(conn: Connection, shared: Arc<Shared>, rev: i64) -> Self {
        Self { conn, shared, rev }
    }

    fn run(mut self, rx: std_mpsc::Receiver<Cmd>) {
        let interval = self.shared.opts.compact_interval;
        let mut next_compact = Instant::now() + interval;
        loop {
            let cmd = if interval.is_zero() {
                match rx.recv() {
                    Ok(c) => c,
                    Err(_) => break,
                }
            } else {
                match rx.recv_timeout(next_compact.saturating_duration_since(Instant::now())) {
                    Ok(c) => c,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {
                        next_compact = Instant::now() + interval;
                        let target = self.rev - self.shared.opts.compact_retention;
                        if target > self.shared.compacted.load(Ordering::Acquire) {
                            if let Err(e) = self.compact(target) {
                                tracing::warn!(error = %e, "background compaction failed");
                            }
                        }
                        continue;
                    }
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                }
            };
            let mut batch = Vec::new();
            let mut compacts = Vec::new();
            let mut next = Some(cmd);
            while let Some(c) = next.take() {
                match c {
                    Cmd::Write(op, reply) => batch.push((op, reply)),
                    Cmd::Compact(rev, reply) => compacts.push((rev, reply)),
                }
                if batch.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit_batch(batch);
            }
            for (rev, reply) in compacts {
                let _ = reply.send(self.compact(rev));
            }
        }
        let mut hub = lock(&self.shared.hub);
        hub.closed = true;
        hub.watchers.clear();
    }

    fn commit_batch(&mut self, batch: Vec<(Op, oneshot::Sender<Result<Written>>)>) {
        let start_rev = self.rev;
        let mut results = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let outcome = (|| -> Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(internal)?;
            for (op, _) in &batch {
                let r = apply(&tx, op, &mut self.rev);
                results.push(r.map(|(w, ev)| {
                    events.push(ev);
                    w
                }));
            }
            tx.commit().map_err(internal)
        })();
        if let Err(e) = outcome {
            tracing::error!(error = %e, "commit failed");
            self.rev = start_rev;
            for (_, reply) in batch {
                let _ = reply.send(Err(StoreError::Unavailable(format!("commit failed: {e}"))));
            }
            return;
        }
        // Publish before acknowledging: a client that saw revision R and then watches
        // "from now" must not miss anything after R.
        self.shared.publish(&events);
        for ((_, reply), r) in batch.into_iter().zip(results) {
            let _ = reply.send(r);
        }
    }

    fn compact(&mut self, rev: i64) -> Result<()> {
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        if rev > self.rev {
            return Err(StoreError::FutureRevision { current: self.rev });
        }
        if rev <= compacted {
            return Ok(());
        }
        let started = Instant::now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(internal)?;
        let removed = tx
            .execute(
                "DELETE FROM kine WHERE id <= ?1 AND (deleted = 1 OR EXISTS (
                     SELECT 1 FROM kine n WHERE n.name = kine.name AND n.id > kine.id
                     AND n.id <= ?1))",
                [rev],
            )
            .map_err(internal)?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('compact_rev', ?1)",
            [rev],
        )
        .map_err(internal)?;
        tx.commit().map_err(internal)?;
        self.shared.compacted.store(rev, Ordering::Release);
        tracing::debug!(rev, removed, elapsed = ?started.elapsed(), "compacted");
        Ok(())
    }
}

/// Apply one write inside the open transaction; returns the result and its event.
fn apply(tx: &Connection, op: &Op, rev: &mut i64) -> Result<(Written, Event)> {
    let key = match op {
        Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => key,
    };
    let current = get_at(tx, key, i64::MAX)?;
    let next = *rev + 1;
    let mut insert = |created: bool,
                      deleted: bool,
                      create_revision: i64,
                      prev_revision: i64,
                      value: &[u8]|
     -> Result<()> {
        tx.prepare_cached(
            "INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, value)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut s| {
            s.execute(params![
                next,
                key.as_bytes(),
                created,
                deleted,
                create_revision,
                prev_revision,
                value
            ])
        })
        .map_err(internal)?;
        *rev = next;
        Ok(())
    };
    match op {
        Op::Create { value, .. } => {
            if current.is_some() {
                return Err(StoreError::AlreadyExists);
            }
            insert(true, false, next, 0, value)?;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: next,
                mod_revision: next,
            };
            Ok((
                Written {
                    revision: next,
                    prev: None,
                },
                Event::Create { kv },
            ))
        }
        Op::Update {
            value, expected, ..
        } => {
            let Some(cur) = current else {
                return Err(StoreError::NotFound);
            };
            if cur.mod_revision != *expected {
                return Err(StoreError::Conflict { current: Some(cur) });
            }
            insert(false, false, cur.create_revision, cur.mod_revision, value)?;
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: cur.create_revision,
                mod_revision: next,
            };
            Ok((
                Written {
                    revision: next,
                    prev: None,
                },
                Event::Update {
                    kv,
                    prev: Some(cur),
                },
            ))
        }
        Op::Delete { expected, .. } => {
            let Some(cur) = current else {
                return Err(StoreError::NotFound);
            };
            if *expected != 0 && cur.mod_revision != *expected {
                return Err(StoreError::Conflict { current: Some(cur) });
            }
            insert(
                false,
                true,
                cur.create_revision,
                cur.mod_revision,
                &cur.value,
            )?;
            Ok((
                Written {
                    revision: next,
                    prev: Some(cur.clone()),
                },
                Event::Delete {
                    prev: cur,
                    revision: next,
                },
            ))
        }
    }
}

/// Replay history to a watcher, then switch it to live delivery.
async fn catch_up(shared: Arc<Shared>, id: u64, prefix: String, after: i64, upto: i64) {
    let tx = {
        let hub = lock(&shared.hub);
        match hub.watchers.iter().find(|w| w.id == id) {
            Some(w) => w.sub.tx.clone(),
            None => return,
        }
    };
    let mut from = after;
    while from < upto {
        let page = {
            let shared = shared.clone();
            let prefix = prefix.clone();
            tokio::task::spawn_blocking(move || {
                let conn = shared.take_conn()?;
                let out = history(&conn, &prefix, from, upto);
                shared.put_conn(conn);
                out
            })
            .await
            .unwrap_or_else(|e| Err(internal(format!("history task: {e}"))))
        };
        match page {
            Ok(events) => {
                let full = events.len() as i64 >= HISTORY_PAGE;
                match events.last() {
                    Some(last) => from = last.revision(),
                    None => break,
                }
                if tx.send(Ok(events)).await.is_err() {
                    shared.remove_watcher(id);
                    return;
                }
                if !full {
                    break;
                }
            }
            Err(e) => {
                shared.remove_watcher(id);
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
    let mut hub = lock(&shared.hub);
    let Some(pos) = hub.watchers.iter().position(|w| w.id == id) else {
        return;
    };
    let w = &mut hub.watchers[pos];
    w.sub.after = w.sub.after.max(upto);
    let keep = match std::mem::replace(&mut w.state, WatchState::Live) {
        WatchState::Catching(buf) => w.sub.offer_owned(buf) == Offer::Alive,
        WatchState::Failed => {
            w.sub.overflow(upto);
            false
        }
        WatchState::Live => true,
    };
    if !keep {
        hub.watchers.remove(pos);
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn current_revision(&self) -> Result<i64> {
        Ok(lock(&self.shared.hub).last)
    }

    async fn get(&self, key: &str, revision: i64) -> Result<(Option<KeyValue>, i64)> {
        let key = key.to_string();
        self.read(move |conn| {
            let tx = conn.unchecked_transaction().map_err(internal)?;
            let rev = read_revision(&tx, revision)?;
            Ok((get_at(&tx, &key, rev)?, rev))
        })
        .await
    }

    async fn list(&self, opts: &ListOptions) -> Result<ListResult> {
        let opts = opts.clone();
        self.read(move |conn| list_at(conn, &opts)).await
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let prefix = prefix.to_string();
        self.read(move |conn| count_at(conn, &prefix)).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<i64> {
        let op = Op::Create {
            key: key.to_string(),
            value,
        };
        Ok(self.write(op).await?.revision)
    }

    async fn update(&self, key: &str, value: Bytes, expected_mod_revision: i64) -> Result<i64> {
        let op = Op::Update {
            key: key.to_string(),
            value,
            expected: expected_mod_revision,
        };
        Ok(self.write(op).await?.revision)
    }

    async fn delete(&self, key: &str, expected_mod_revision: i64) -> Result<(i64, KeyValue)> {
        let op = Op::Delete {
            key: key.to_string(),
            expected: expected_mod_revision,
        };
        let w = self.write(op).await?;
        let prev = w
            .prev
            .ok_or_else(|| internal("delete returned no previous value"))?;
        Ok((w.revision, prev))
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        if after_revision != 0 && after_revision < compacted {
            return Err(StoreError::Compacted { compacted });
        }
        let (tx, rx) = mpsc::channel(self.shared.opts.watch_capacity.max(2));
        let mut hub = lock(&self.shared.hub);
        if hub.closed {
            return Err(StoreError::Unavailable("store is closed".into()));
        }
        let id = hub.next_id;
        hub.next_id += 1;
        let upto = hub.last;
        let after = if after_revision == 0 {
            upto
        } else {
            after_revision
        };
        let catching = after < upto;
        hub.watchers.push(HubWatcher {
            id,
            sub: Subscriber {
                prefix: prefix.to_string(),
                after,
                tx,
            },
            state: if catching {
                WatchState::Catching(Vec::new())
            } else {
                WatchState::Live
            },
        });
        drop(hub);
        if catching {
            tokio::spawn(catch_up(
                self.shared.clone(),
                id,
                prefix.to_string(),
                after,
                upto,
            ));
        }
        Ok(rx)
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("store is closed".into()))?
            .send(Cmd::Compact(revision, tx))
            .map_err(|_| StoreError::Unavailable("store is closed".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }

    async fn compacted_revision(&self) -> Result<i64> {
        Ok(self.shared.compacted.load(Ordering::Acquire))
    }
}
