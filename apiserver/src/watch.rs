//! WATCH: a stream of `{"type","object"}` events from a revision, filtered by selectors,
//! with synthetic ADDED events for `resourceVersion` unset or 0, bookmarks, timeouts,
//! and a 410 ERROR event when the revision has been compacted.

use crate::error::ApiError;
use crate::list::{parse_rv, Filter, ListParams};
use crate::meta;
use crate::registry::{decode, prefix, Registry};
use crate::resources::ResourceInfo;
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use store::{Event, StoreError};
use tokio::sync::mpsc;

pub struct WatchParams {
    pub resource_version: Option<String>,
    pub timeout: Duration,
    pub bookmarks: bool,
    /// Events may be written from the stored JSON without decoding (no selectors, the
    /// storage version): the resourceVersion is spliced in, nothing is re-encoded.
    pub raw: Option<RawShape>,
}

/// What an event written from the stored bytes carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RawShape {
    /// The whole object.
    Object,
    /// A `meta.k8s.io/v1` PartialObjectMetadata holding the object's metadata.
    PartialMetadata,
}

/// Renders one event for the wire (JSON, or a Table row), given the event type and object.
pub type Encoder = Arc<dyn Fn(&str, &Value) -> Bytes + Send + Sync>;

fn expired(rv: i64, compacted: i64) -> Value {
    ApiError::gone(format!("too old resource version: {rv} ({compacted})")).status()
}

/// Starts a watch; events are written to the returned channel until the timeout, an
/// error, or the client going away (the receiver being dropped).
pub async fn start(
    reg: Arc<Registry>,
    res: &'static ResourceInfo,
    ns: Option<String>,
    filter: Filter,
    params: WatchParams,
    encode: Encoder,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let base = prefix(res, ns.as_deref());
    let rv = params.resource_version.clone().unwrap_or_default();
    let mut initial = Vec::new();
    let from = if rv.is_empty() || rv == "0" {
        let page = reg
            .list(res, ns.as_deref(), &filter, &ListParams::default())
            .await?;
        initial = page.items;
        page.revision
    } else {
        parse_rv(&rv)?
    };
    let watch = reg.store.watch(&base, from).await;
    let raw = params.raw.filter(|_| filter.is_empty());
    tokio::spawn(async move {
        let mut last_rev = from;
        let mut stream = match watch {
            Ok(s) => s,
            Err(StoreError::Compacted { compacted }) => {
                let _ = tx.send(encode("ERROR", &expired(from, compacted))).await;
                return;
            }
            Err(e) => {
                let _ = tx.send(encode("ERROR", &ApiError::from(e).status())).await;
                return;
            }
        };
        for obj in initial {
            if tx.send(encode("ADDED", &obj)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(params.timeout);
        tokio::pin!(deadline);
        let mut bookmark = tokio::time::interval(Duration::from_secs(60));
        bookmark.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = bookmark.tick(), if params.bookmarks => {
                    let b = json!({"kind": res.kind, "apiVersion": res.api_version(),
                        "metadata": {"resourceVersion": last_rev.to_string()}});
                    if tx.send(encode("BOOKMARK", &b)).await.is_err() { return; }
                }
                batch = stream.recv() => {
                    let batch = match batch {
                        Some(Ok(b)) => b,
                        Some(Err(StoreError::Compacted { compacted })) => {
                            let _ = tx.send(encode("ERROR", &expired(last_rev, compacted))).await;
                            return;
                        }
                        Some(Err(e)) => {
                            let _ = tx.send(encode("ERROR", &ApiError::from(e).status())).await;
                            return;
                        }
                        None => return,
                    };
                    for ev in batch {
                        last_rev = ev.revision();
                        let line = match raw.and_then(|shape| raw_event(&ev, shape)) {
                            Some(line) => line,
                            None => match translate(res, &ev, &filter) {
                                Some((ty, obj)) => encode(ty, &obj),
                                None => continue,
                            },
                        };
                        if tx.send(line).await.is_err() { return; }
                    }
                }
            }
        }
    });
    Ok(rx)
}

/// An unfiltered watch event written straight from the stored bytes (None when the
/// stored layout needs decoding).
fn raw_event(ev: &Event, shape: RawShape) -> Option<Bytes> {
    let (ty, value, rev) = match ev {
        Event::Create { kv } => ("ADDED", &kv.value, kv.mod_revision),
        Event::Update { kv, .. } => ("MODIFIED", &kv.value, kv.mod_revision),
        Event::Delete { prev, revision } => ("DELETED", &prev.value, *revision),
    };
    let mut line = Vec::with_capacity(value.len() + 96);
    line.extend_from_slice(format!("{{\"type\":\"{ty}\",\"object\":").as_bytes());
    match shape {
        RawShape::Object => line.extend(crate::list::splice_resource_version(value, rev)?),
        RawShape::PartialMetadata => {
            let meta = crate::list::stored_metadata(value)?;
            line.extend_from_slice(
                br#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"#,
            );
            line.extend_from_slice(format!("\"resourceVersion\":\"{rev}\"").as_bytes());
            if meta.len() > 2 {
                line.push(b',');
                line.extend_from_slice(&meta[1..]);
            } else {
                line.push(b'}');
            }
            line.push(b'}');
        }
    }
    line.extend_from_slice(b"}\n");
    Some(Bytes::from(line))
}

/// Maps a store event to a watch event, honouring selectors: an object that starts
/// matching is ADDED, one that stops matching is DELETED.
fn translate(res: &ResourceInfo, ev: &Event, filter: &Filter) -> Option<(&'static str, Value)> {
    match ev {
        Event::Create { kv } => {
            let obj = decode(res, kv).ok()?;
            filter.matches(&obj).then_some(("ADDED", obj))
        }
        Event::Update { kv, prev } => {
            let obj = decode(res, kv).ok()?;
            let now = filter.matches(&obj);
            let before = match prev {
                Some(p) if !filter.is_empty() => {
                    decode(res, p).map(|o| filter.matches(&o)).unwrap_or(false)
                }
                Some(_) => true,
                None => now,
            };
            match (before, now) {
                (true, true) => Some(("MODIFIED", obj)),
                (false, true) => Some(("ADDED", obj)),
                (true, false) => Some(("DELETED", obj)),
                (false, false) => None,
            }
        }
        Event::Delete { prev, revision } => {
            let mut obj = decode(res, prev).ok()?;
            meta::meta_mut(&mut obj).insert("resourceVersion".into(), json!(revision.to_string()));
            filter.matches(&obj).then_some(("DELETED", obj))
        }
    }
}

/// Concurrent watches per user: one client opening watches without bound gets 429
/// `TooManyRequests` instead of starving the others (upstream bounds this with API
/// priority and fairness, which also exempts `system:masters`).
pub struct WatchLimiter {
    max: usize,
    counts: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// Held by an open watch; dropping it frees the slot.
pub struct WatchPermit {
    limiter: Arc<WatchLimiter>,
    user: String,
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        if let Ok(mut c) = self.limiter.counts.lock() {
            if let Some(n) = c.get_mut(&self.user) {
                *n -= 1;
                if *n == 0 {
                    c.remove(&self.user);
                }
            }
        }
    }
}

/// The default per-user limit on open watches.
pub const DEFAULT_MAX_WATCHES_PER_USER: usize = 250;

impl WatchLimiter {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(WatchLimiter {
            max,
            counts: Default::default(),
        })
    }

    /// A slot for one more watch of `user`, or the 429 to answer.
    pub fn acquire(
        self: &Arc<Self>,
        user: &crate::auth::UserInfo,
    ) -> Result<Option<WatchPermit>, ApiError> {
        if user.groups.iter().any(|g| g == "system:masters") {
            return Ok(None);
        }
        let mut c = self
            .counts
            .lock()
            .map_err(|_| ApiError::internal("watch limiter poisoned"))?;
        let n = c.entry(user.name.clone()).or_insert(0);
        if *n >= self.max {
            let mut e = ApiError::new(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
            );
            e.retry_after = Some(1);
            return Err(e);
        }
        *n += 1;
        Ok(Some(WatchPermit {
            limiter: self.clone(),
            user: user.name.clone(),
        }))
    }

    /// Open watches of a user (tests).
    pub fn open(&self, user: &str) -> usize {
        self.counts
            .lock()
            .map(|c| c.get(user).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod raw_tests {
    use super::*;
    use store::KeyValue;

    fn kv(value: &str, rev: i64) -> KeyValue {
        KeyValue {
            key: "/registry/pods/default/a".into(),
            value: Bytes::from(value.to_string()),
            create_revision: 3,
            mod_revision: rev,
        }
    }

    /// Events written from the stored bytes equal the decoded-and-encoded ones.
    #[test]
    fn raw_events_match_decoded_ones() {
        let stored = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","labels":{"k":"v"}},"spec":{"nodeName":"n1"}}"#;
        let ev = Event::Update {
            kv: kv(stored, 9),
            prev: None,
        };
        let line = raw_event(&ev, RawShape::Object).unwrap();
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["type"], "MODIFIED");
        assert_eq!(v["object"]["metadata"]["resourceVersion"], "9");
        assert_eq!(v["object"]["spec"]["nodeName"], "n1");
        let line = raw_event(&ev, RawShape::PartialMetadata).unwrap();
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v,
            json!({"type": "MODIFIED", "object": {"kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "a", "labels": {"k": "v"}, "resourceVersion": "9"}}})
        );
        let gone = Event::Delete {
            prev: kv(r#"{"apiVersion":"v1","kind":"Pod","metadata":{}}"#, 9),
            revision: 12,
        };
        let v: Value =
            serde_json::from_slice(&raw_event(&gone, RawShape::PartialMetadata).unwrap()).unwrap();
        assert_eq!(v["type"], "DELETED");
        assert_eq!(v["object"]["metadata"], json!({"resourceVersion": "12"}));
    }
}

#[cfg(test)]
mod limiter_tests {
    use super::*;

    #[test]
    fn per_user_limit_and_release() {
        let l = WatchLimiter::new(2);
        let bob = crate::auth::UserInfo {
            name: "bob".into(),
            ..Default::default()
        };
        let a = l.acquire(&bob).unwrap();
        let _b = l.acquire(&bob).unwrap();
        let e = l.acquire(&bob).err().unwrap();
        assert_eq!((e.code, e.reason.as_str()), (429, "TooManyRequests"));
        drop(a);
        assert_eq!(l.open("bob"), 1);
        assert!(l.acquire(&bob).is_ok());
        let admin = crate::auth::UserInfo {
            name: "admin".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        };
        for _ in 0..5 {
            assert!(l.acquire(&admin).unwrap().is_none());
        }
    }
}
