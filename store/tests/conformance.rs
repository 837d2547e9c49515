//! Runs the conformance suite against every backend, plus crash-safety, throughput and
//! fan-out checks for the embedded store and the watch cache.

use bytes::Bytes;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{conformance, Backend, EtcdBackend, ListOptions, SqliteBackend, WatchCache};

fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn Backend> {
    Arc::new(SqliteBackend::open(&dir.path().join("state.db")).expect("open sqlite"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(sqlite(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_over_sqlite_conformance() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(WatchCache::new(sqlite(&dir))).await;
}

/// An etcd server on random local ports, killed when dropped (even on panic).
struct Etcd {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn etcd_on_path() -> bool {
    Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

async fn start_etcd() -> Option<Etcd> {
    if !etcd_on_path() {
        if std::env::var_os("CI").is_some() {
            panic!("etcd is not on PATH (required when CI is set)");
        }
        eprintln!("SKIP: etcd is not on PATH");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.path().join("etcd"))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn etcd");
    let etcd = Etcd {
        child,
        endpoint: client_url,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(b) = EtcdBackend::connect(std::slice::from_ref(&etcd.endpoint)).await {
            if b.current_revision().await.is_ok() {
                return Some(etcd);
            }
        }
        assert!(Instant::now() < deadline, "etcd did not become healthy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_conformance() {
    let Some(etcd) = start_etcd().await else {
        return;
    };
    let b = EtcdBackend::connect(std::slice::from_ref(&etcd.endpoint))
        .await
        .expect("connect");
    conformance::run_all(Arc::new(b)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_over_etcd_conformance() {
    let Some(etcd) = start_etcd().await else {
        return;
    };
    let b = store::open(&etcd.endpoint, std::path::Path::new("/nonexistent"))
        .await
        .expect("open etcd");
    conformance::run_all(WatchCache::new(b)).await;
}

/// Child mode for `crash_keeps_acknowledged_writes`: write keys forever, printing each
/// acknowledged one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Some(path) = std::env::var_os("STORE_CRASH_CHILD_DB") else {
        return;
    };
    let b = Arc::new(SqliteBackend::open(std::path::Path::new(&path)).expect("open"));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/crash/{w}/{i}");
                b.create(&key, Bytes::from_static(b"v"))
                    .await
                    .expect("create");
                println!("ACK {key}");
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[test]
fn crash_keeps_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("STORE_CRASH_CHILD_DB", &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(k) = line.strip_prefix("ACK ") {
            acked.push(k.to_string());
            if acked.len() >= 300 {
                break;
            }
        }
    }
    // SIGKILL, no chance to clean up.
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert!(
        acked.len() >= 300,
        "child acknowledged only {}",
        acked.len()
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = SqliteBackend::open(&db).expect("reopen");
        for k in &acked {
            let (kv, _) = b.get(k, 0).await.expect("get");
            assert!(kv.is_some(), "acknowledged key {k} lost");
        }
        // The log is still consistent: revisions continue above everything stored.
        let cur = b.current_revision().await.unwrap();
        let r = b.create("/crash/after", Bytes::new()).await.unwrap();
        assert!(r > cur);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_throughput_and_big_list() {
    let dir = tempfile::tempdir().unwrap();
    let b = sqlite(&dir);
    let value = Bytes::from(vec![b'x'; 1024]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let b = b.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..1250 {
                b.create(&format!("/registry/things/{w}/{i:05}"), value.clone())
                    .await
                    .expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let write = started.elapsed();
    eprintln!("10000 creates by 8 writers: {write:?}");

    let opts = ListOptions {
        prefix: "/registry/things/".into(),
        ..Default::default()
    };
    b.list(&opts).await.unwrap();
    let started = Instant::now();
    let list = b.list(&opts).await.unwrap();
    let took = started.elapsed();
    eprintln!("list of 10000 x 1KiB: {took:?}");
    assert_eq!(list.kvs.len(), 10_000);
    assert!(list.kvs.windows(2).all(|w| w[0].key < w[1].key));
    assert!(took < Duration::from_millis(500), "list too slow: {took:?}");
    assert_eq!(b.count("/registry/things/").await.unwrap(), 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_fans_out_to_a_thousand_watchers() {
    let dir = tempfile::tempdir().unwrap();
    let cache = WatchCache::new(sqlite(&dir));
    let mut streams = Vec::new();
    for _ in 0..1000 {
        streams.push(cache.watch("/registry/pods/", 0).await.unwrap());
    }
    assert_eq!(cache.watcher_count(), 1000);
    for round in 0..3 {
        let started = Instant::now();
        let rev = cache
            .create(
                &format!("/registry/pods/p{round}"),
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        for rx in streams.iter_mut() {
            let batch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("event in time")
                .expect("open")
                .expect("ok");
            assert_eq!(batch[0].revision(), rev);
        }
        let took = started.elapsed();
        eprintln!("write seen by 1000 watchers in {took:?}");
        assert!(took < Duration::from_millis(100), "fan-out took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_is_ended_with_compacted_not_blocking_writers() {
    let dir = tempfile::tempdir().unwrap();
    let opts = store::SqliteOptions {
        watch_capacity: 4,
        ..Default::default()
    };
    let b = SqliteBackend::open_with(&dir.path().join("state.db"), opts).unwrap();
    let mut rx = b.watch("/s/", 0).await.unwrap();
    let started = Instant::now();
    for i in 0..50 {
        b.create(&format!("/s/{i}"), Bytes::new()).await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut got = 0;
    loop {
        match rx.recv().await {
            Some(Ok(batch)) => got += batch.len(),
            Some(Err(store::StoreError::Compacted { .. })) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(got < 50);
    assert!(rx.recv().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_compaction_bounds_history() {
    let dir = tempfile::tempdir().unwrap();
    let opts = store::SqliteOptions {
        compact_interval: Duration::from_millis(200),
        compact_retention: 10,
        ..Default::default()
    };
    let b = SqliteBackend::open_with(&dir.path().join("state.db"), opts).unwrap();
    let mut rev = b.create("/c/k", Bytes::new()).await.unwrap();
    for _ in 0..100 {
        rev = b.update("/c/k", Bytes::new(), rev).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.compacted_revision().await.unwrap() < rev - 10 {
        assert!(
            Instant::now() < deadline,
            "background compaction did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(b.get("/c/k", 1).await.is_err());
    assert_eq!(b.get("/c/k", 0).await.unwrap().0.unwrap().mod_revision, rev);
}
