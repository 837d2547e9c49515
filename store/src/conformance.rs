//! The backend contract as executable checks. Every [`Backend`] (and any cache in front
//! of one) must pass [`run_all`]; the store's integration tests run it against SQLite,
//! etcd and the watch cache over each. The checks panic with a message on violation.
//!
//! Each check works under its own key prefix, so the store need not be empty, but
//! [`compaction`] compacts the whole store and therefore runs last.
//!
//! Semantics pinned down here:
//! * update/delete of a missing key: `NotFound`; precondition mismatch: `Conflict` with
//!   the current value; update with expected revision 0 never matches an existing key.
//! * a list/watch prefix is a plain byte prefix (`/a/b` matches `/a/bc`; callers pass
//!   prefixes ending in `/`).
//! * reads at a revision below the compaction revision: `Compacted`; above the current
//!   revision: `FutureRevision`; watches from below the compaction revision: `Compacted`.

use crate::{Backend, Event, ListOptions, StoreError, WatchStream};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// How long a check waits for an expected watch event.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Run every check in order.
pub async fn run_all(b: Arc<dyn Backend>) {
    crud(&*b).await;
    list_prefix_and_paging(&*b).await;
    list_at_revision(&*b).await;
    revisions_increase(&*b).await;
    future_revision(&*b).await;
    watch_from_now(&*b).await;
    watch_from_past(&*b).await;
    watch_many(&*b).await;
    compaction(&*b).await;
}

fn val(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Receive exactly `n` events (panics on timeout, stream end or error).
pub async fn recv_events(rx: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(EVENT_WAIT, rx.recv()).await {
            Ok(Some(Ok(batch))) => {
                assert!(!batch.is_empty(), "empty watch batch");
                out.extend(batch);
            }
            Ok(Some(Err(e))) => panic!("watch failed after {} events: {e:?}", out.len()),
            Ok(None) => panic!("watch ended after {} events", out.len()),
            Err(_) => panic!("timed out waiting for event {} of {n}: {out:?}", out.len()),
        }
    }
    assert_eq!(out.len(), n, "more events than expected: {out:?}");
    out
}

/// Create, get, update, delete and their preconditions.
pub async fn crud(b: &dyn Backend) {
    let k = "/conformance/crud/a";
    let r1 = b.create(k, val("1")).await.expect("create");
    let (kv, rev) = b.get(k, 0).await.expect("get");
    let kv = kv.expect("created key is readable");
    assert!(rev >= r1);
    assert_eq!(
        (kv.value.clone(), kv.create_revision, kv.mod_revision),
        (val("1"), r1, r1)
    );
    assert!(matches!(
        b.create(k, val("x")).await,
        Err(StoreError::AlreadyExists)
    ));

    match b.update(k, val("2"), r1 + 1000).await {
        Err(StoreError::Conflict { current: Some(cur) }) => assert_eq!(cur, kv),
        other => panic!("update with stale revision: {other:?}"),
    }
    match b.update(k, val("2"), 0).await {
        Err(StoreError::Conflict { current: Some(cur) }) => assert_eq!(cur, kv),
        other => panic!("update with revision 0: {other:?}"),
    }
    let r2 = b.update(k, val("2"), r1).await.expect("update");
    assert!(r2 > r1);
    let kv2 = b.get(k, 0).await.expect("get").0.expect("present");
    assert_eq!(
        (kv2.value.clone(), kv2.create_revision, kv2.mod_revision),
        (val("2"), r1, r2)
    );
    assert!(matches!(
        b.update("/conformance/crud/missing", val("x"), r1).await,
        Err(StoreError::NotFound)
    ));

    match b.delete(k, r1).await {
        Err(StoreError::Conflict { current: Some(cur) }) => assert_eq!(cur, kv2),
        other => panic!("delete with stale revision: {other:?}"),
    }
    let (r3, prev) = b.delete(k, r2).await.expect("delete");
    assert!(r3 > r2);
    assert_eq!(prev, kv2);
    assert_eq!(b.get(k, 0).await.expect("get").0, None);
    assert!(matches!(b.delete(k, 0).await, Err(StoreError::NotFound)));
    assert!(matches!(
        b.update(k, val("x"), r2).await,
        Err(StoreError::NotFound)
    ));

    // Re-create gets a fresh create_revision; unconditional delete works.
    let r4 = b.create(k, val("again")).await.expect("re-create");
    assert!(r4 > r3);
    let kv4 = b.get(k, 0).await.expect("get").0.expect("present");
    assert_eq!((kv4.create_revision, kv4.mod_revision), (r4, r4));
    let (r5, prev) = b.delete(k, 0).await.expect("unconditional delete");
    assert!(r5 > r4);
    assert_eq!(prev.value, val("again"));

    // Reading the old revision still sees the old value.
    let old = b.get(k, r2).await.expect("get at r2");
    assert_eq!(old.0.map(|kv| kv.value), Some(val("2")));
    assert_eq!(old.1, r2);
}

/// Ordering, prefix isolation, limit/start_key paging and count.
pub async fn list_prefix_and_paging(b: &dyn Backend) {
    let p = "/conformance/list/";
    for k in ["a/b/2", "a/b/0", "a/bc/1", "a/b/1", "a/c", "b"] {
        b.create(&format!("{p}{k}"), val(k)).await.expect("create");
    }
    let list = |prefix: String, start_key: String, limit: i64| ListOptions {
        prefix,
        start_key,
        limit,
        revision: 0,
    };
    let keys = |r: &crate::ListResult| -> Vec<String> {
        r.kvs
            .iter()
            .map(|kv| kv.key.trim_start_matches(p).to_string())
            .collect()
    };

    let all = b
        .list(&list(format!("{p}a/b/"), String::new(), 0))
        .await
        .expect("list");
    assert_eq!(keys(&all), ["a/b/0", "a/b/1", "a/b/2"]);
    assert!(!all.more);
    assert!(all.revision >= all.kvs.iter().map(|kv| kv.mod_revision).max().unwrap_or(0));
    assert_eq!(all.kvs[1].value, val("a/b/1"));

    // A prefix is a byte prefix: without the trailing '/', "/a/b" also matches "/a/bc".
    let loose = b
        .list(&list(format!("{p}a/b"), String::new(), 0))
        .await
        .expect("list");
    assert_eq!(keys(&loose), ["a/b/0", "a/b/1", "a/b/2", "a/bc/1"]);

    let whole = b
        .list(&list(p.to_string(), String::new(), 0))
        .await
        .expect("list");
    assert_eq!(whole.kvs.len(), 6);

    // Paging.
    let page1 = b
        .list(&list(format!("{p}a/"), String::new(), 2))
        .await
        .expect("page 1");
    assert_eq!(keys(&page1), ["a/b/0", "a/b/1"]);
    assert!(page1.more);
    let next = format!("{}\0", page1.kvs[1].key);
    let page2 = b
        .list(&ListOptions {
            revision: page1.revision,
            ..list(format!("{p}a/"), next, 2)
        })
        .await
        .expect("page 2");
    assert_eq!(keys(&page2), ["a/b/2", "a/bc/1"]);
    assert!(page2.more);
    let next = format!("{}\0", page2.kvs[1].key);
    let page3 = b
        .list(&list(format!("{p}a/"), next, 2))
        .await
        .expect("page 3");
    assert_eq!(keys(&page3), ["a/c"]);
    assert!(!page3.more);
    // Exact limit: no more.
    let exact = b
        .list(&list(format!("{p}a/b/"), String::new(), 3))
        .await
        .expect("list");
    assert_eq!(exact.kvs.len(), 3);
    assert!(!exact.more);
    // start_key is inclusive.
    let from = b
        .list(&list(format!("{p}a/b/"), format!("{p}a/b/1"), 0))
        .await
        .expect("list");
    assert_eq!(keys(&from), ["a/b/1", "a/b/2"]);

    assert_eq!(b.count(&format!("{p}a/b/")).await.expect("count"), 3);
    assert_eq!(b.count(&format!("{p}a/")).await.expect("count"), 5);
    assert_eq!(b.count("/conformance/list-none/").await.expect("count"), 0);
    b.delete(&format!("{p}a/b/1"), 0).await.expect("delete");
    assert_eq!(b.count(&format!("{p}a/b/")).await.expect("count"), 2);
    let after = b
        .list(&list(format!("{p}a/b/"), String::new(), 0))
        .await
        .expect("list");
    assert_eq!(keys(&after), ["a/b/0", "a/b/2"]);
}

/// Listing at an old revision shows the state at that revision.
pub async fn list_at_revision(b: &dyn Backend) {
    let p = "/conformance/listrev/";
    let r1 = b.create(&format!("{p}x"), val("x1")).await.expect("create");
    let r2 = b.create(&format!("{p}y"), val("y1")).await.expect("create");
    b.update(&format!("{p}x"), val("x2"), r1)
        .await
        .expect("update");
    b.delete(&format!("{p}y"), r2).await.expect("delete");
    b.create(&format!("{p}z"), val("z1")).await.expect("create");

    let at = |revision| ListOptions {
        prefix: p.to_string(),
        revision,
        ..Default::default()
    };
    let old = b.list(&at(r2)).await.expect("list at r2");
    assert_eq!(old.revision, r2);
    let got: Vec<(String, Bytes)> = old.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(
        got,
        [(format!("{p}x"), val("x1")), (format!("{p}y"), val("y1"))]
    );
    let now = b.list(&at(0)).await.expect("list now");
    let got: Vec<(String, Bytes)> = now.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(
        got,
        [(format!("{p}x"), val("x2")), (format!("{p}z"), val("z1"))]
    );
    let r1_list = b.list(&at(r1)).await.expect("list at r1");
    assert_eq!(r1_list.kvs.len(), 1);
    assert_eq!(r1_list.kvs[0].mod_revision, r1);
}

/// Every write gets a new, strictly larger revision; current_revision follows.
pub async fn revisions_increase(b: &dyn Backend) {
    let p = "/conformance/revs/";
    let mut last = b.current_revision().await.expect("current");
    for i in 0..10 {
        let k = format!("{p}{i}");
        let r = b.create(&k, val("v")).await.expect("create");
        assert!(r > last, "revision {r} not above {last}");
        let r2 = b.update(&k, val("w"), r).await.expect("update");
        assert!(r2 > r);
        last = r2;
        assert!(b.current_revision().await.expect("current") >= last);
    }
}

/// Reads beyond the current revision fail with FutureRevision.
pub async fn future_revision(b: &dyn Backend) {
    let current = b.current_revision().await.expect("current");
    match b.get("/conformance/future", current + 1000).await {
        Err(StoreError::FutureRevision { current: c }) => assert!(c >= current),
        other => panic!("get at a future revision: {other:?}"),
    }
    let opts = ListOptions {
        prefix: "/conformance/".into(),
        revision: current + 1000,
        ..Default::default()
    };
    assert!(matches!(
        b.list(&opts).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

/// A watch from now sees later writes under its prefix only, with previous values.
pub async fn watch_from_now(b: &dyn Backend) {
    let p = "/conformance/watchnow/";
    let mut rx = b.watch(p, 0).await.expect("watch");
    let k = format!("{p}k");
    let r1 = b.create(&k, val("1")).await.expect("create");
    b.create("/conformance/watchnow-other/k", val("x"))
        .await
        .expect("create outside");
    let r2 = b.update(&k, val("2"), r1).await.expect("update");
    let (r3, _) = b.delete(&k, 0).await.expect("delete");
    let evs = recv_events(&mut rx, 3).await;
    match &evs[0] {
        Event::Create { kv } => assert_eq!((kv.key.as_str(), kv.mod_revision), (k.as_str(), r1)),
        e => panic!("expected create, got {e:?}"),
    }
    match &evs[1] {
        Event::Update { kv, prev } => {
            assert_eq!(
                (kv.value.clone(), kv.mod_revision, kv.create_revision),
                (val("2"), r2, r1)
            );
            let prev = prev.as_ref().expect("update carries prev");
            assert_eq!((prev.value.clone(), prev.mod_revision), (val("1"), r1));
        }
        e => panic!("expected update, got {e:?}"),
    }
    match &evs[2] {
        Event::Delete { prev, revision } => {
            assert_eq!(*revision, r3);
            assert_eq!((prev.value.clone(), prev.mod_revision), (val("2"), r2));
        }
        e => panic!("expected delete, got {e:?}"),
    }
    // Nothing else is pending: the next event is the next write.
    let r4 = b.create(&k, val("4")).await.expect("create");
    let evs = recv_events(&mut rx, 1).await;
    assert_eq!(evs[0].revision(), r4);
}

/// A watch from a past revision replays history then continues live, without gaps or
/// duplicates.
pub async fn watch_from_past(b: &dyn Backend) {
    let p = "/conformance/watchpast/";
    let start = b.current_revision().await.expect("current");
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(
            b.create(&format!("{p}{i}"), val("v"))
                .await
                .expect("create"),
        );
    }
    let r = b
        .update(&format!("{p}0"), val("w"), revs[0])
        .await
        .expect("update");
    revs.push(r);
    let mut rx = b.watch(p, start).await.expect("watch from past");
    for i in 5..8 {
        revs.push(
            b.create(&format!("{p}{i}"), val("v"))
                .await
                .expect("create"),
        );
    }
    let evs = recv_events(&mut rx, revs.len()).await;
    let got: Vec<i64> = evs.iter().map(Event::revision).collect();
    assert_eq!(got, revs, "events out of order, missing or duplicated");
    match &evs[5] {
        Event::Update {
            prev: Some(prev), ..
        } => assert_eq!(prev.mod_revision, revs[0]),
        e => panic!("expected update with prev, got {e:?}"),
    }

    // From the middle of history.
    let mut rx = b.watch(p, revs[2]).await.expect("watch from middle");
    let evs = recv_events(&mut rx, revs.len() - 3).await;
    let got: Vec<i64> = evs.iter().map(Event::revision).collect();
    assert_eq!(got, revs[3..]);

    // From exactly the current revision: only new writes.
    let now = *revs.last().unwrap_or(&start);
    let mut rx = b.watch(p, now).await.expect("watch from current");
    let r = b
        .create(&format!("{p}new"), val("v"))
        .await
        .expect("create");
    let evs = recv_events(&mut rx, 1).await;
    assert_eq!(evs[0].revision(), r);
}

/// Several watchers on different prefixes each see only their own keys.
pub async fn watch_many(b: &dyn Backend) {
    let p = "/conformance/watchmany/";
    let mut streams = Vec::new();
    for i in 0..20 {
        streams.push(b.watch(&format!("{p}{i}/"), 0).await.expect("watch"));
    }
    for i in 0..20 {
        b.create(&format!("{p}{i}/k"), val("v"))
            .await
            .expect("create");
    }
    for (i, rx) in streams.iter_mut().enumerate() {
        let evs = recv_events(rx, 1).await;
        assert_eq!(evs[0].key(), format!("{p}{i}/k"));
    }
}

/// Compaction keeps the latest state but refuses reads and watches below it.
pub async fn compaction(b: &dyn Backend) {
    let p = "/conformance/compact/";
    let k = format!("{p}k");
    let r1 = b.create(&k, val("1")).await.expect("create");
    let r2 = b.update(&k, val("2"), r1).await.expect("update");
    let gone = b
        .create(&format!("{p}gone"), val("g"))
        .await
        .expect("create");
    let (_, _) = b.delete(&format!("{p}gone"), gone).await.expect("delete");
    let r3 = b.update(&k, val("3"), r2).await.expect("update");
    let live = b
        .create(&format!("{p}live"), val("l"))
        .await
        .expect("create");

    b.compact(r3).await.expect("compact");
    b.compact(r3).await.expect("compacting twice is fine");
    assert!(b.compacted_revision().await.expect("compacted") >= r3);

    match b.get(&k, r2).await {
        Err(StoreError::Compacted { compacted }) => assert!(compacted >= r3),
        other => panic!("get below compaction: {other:?}"),
    }
    let opts = ListOptions {
        prefix: p.to_string(),
        revision: r1,
        ..Default::default()
    };
    assert!(matches!(
        b.list(&opts).await,
        Err(StoreError::Compacted { .. })
    ));
    match b.watch(p, r2).await {
        Err(StoreError::Compacted { .. }) => {}
        Ok(_) => panic!("watch below compaction succeeded"),
        Err(e) => panic!("watch below compaction: {e:?}"),
    }

    // State at and after the compaction revision is intact.
    let at = b
        .list(&ListOptions {
            prefix: p.to_string(),
            revision: r3,
            ..Default::default()
        })
        .await
        .expect("list at compaction revision");
    let got: Vec<(String, Bytes)> = at.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(got, [(k.clone(), val("3"))]);
    assert_eq!(b.count(p).await.expect("count"), 2);
    let mut rx = b
        .watch(p, r3)
        .await
        .expect("watch from compaction revision");
    let evs = recv_events(&mut rx, 1).await;
    assert_eq!(evs[0].revision(), live);
    let r4 = b
        .update(&k, val("4"), r3)
        .await
        .expect("update after compaction");
    let evs = recv_events(&mut rx, 1).await;
    match &evs[0] {
        Event::Update { kv, prev } => {
            assert_eq!(kv.mod_revision, r4);
            assert_eq!(prev.as_ref().map(|p| p.mod_revision), Some(r3));
        }
        e => panic!("expected update, got {e:?}"),
    }
    // Compacting the future is refused.
    let current = b.current_revision().await.expect("current");
    assert!(matches!(
        b.compact(current + 1000).await,
        Err(StoreError::FutureRevision { .. })
    ));
}
