//! Crash durability: `kill -9` the server in the middle of a burst of concurrent creates,
//! restart it on the same data directory, and check that every acknowledged write is
//! there, that resourceVersions did not go backwards, and that a watch from the pre-crash
//! resourceVersion replays every write after it, in order, with no gaps.

use e2e::{ApiClient, Etcd, Server, ServerOpts};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const WRITERS: usize = 6;
/// Acknowledged creates to wait for before pulling the plug.
const ACKED_BEFORE_KILL: usize = 40;

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no numeric resourceVersion in {v}"))
}

/// Parses a watch stream (JSON objects, one per line), ignoring a torn last object.
fn watch_events(stream: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(stream)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .collect()
}

/// (name -> resourceVersion) of the configmaps in `default`.
fn list_configmaps(client: &ApiClient) -> (u64, BTreeMap<String, u64>) {
    let r = client.get(CM).expect("listing configmaps");
    assert_eq!(r.status, 200, "{}", r.body_str());
    let list = r.json().unwrap();
    let items = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["metadata"]["name"].as_str().unwrap().to_string(), rv(i)))
        .collect();
    (rv(&list), items)
}

fn crash_during_burst(server: &mut Server) {
    let k = server.kubectl();
    let client = server.client();
    k.ok(&["create", "configmap", "before", "--from-literal=k=v"]);
    let (rv0, before) = list_configmaps(&client);
    assert!(before.contains_key("before"));

    // A watch from the known resourceVersion, open across the crash.
    let watch_path = format!("{CM}?watch=true&resourceVersion={rv0}");
    let mut pre_watch = k.spawn(&["get", "--raw", &watch_path], "prewatch");
    // Make sure it is streaming before the burst starts.
    k.ok(&["create", "configmap", "marker"]);
    assert!(
        pre_watch.wait_for(Duration::from_secs(20), |o| o.contains("\"marker\"")),
        "pre-crash watch saw nothing: {:?}",
        pre_watch.stderr()
    );

    // The burst: concurrent creates, recording every acknowledged (201) name and RV.
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut errors = 0;
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let name = format!("burst-{t}-{i}");
                    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name}, "data": {"writer": t.to_string(), "seq": i.to_string()}});
                    match client.post_json(&format!("{CM}?fieldManager=e2e"), &body) {
                        Ok(r) if r.status == 201 => {
                            let v = r.json().unwrap();
                            assert_eq!(v["metadata"]["name"], name.as_str());
                            acked.lock().unwrap().push((name, rv(&v)));
                        }
                        Ok(r) => panic!("create {name}: unexpected {} {}", r.status, r.body_str()),
                        // The server died under us: this write is unacknowledged.
                        Err(_) => {
                            errors += 1;
                            if errors > 3 {
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < ACKED_BEFORE_KILL {
        assert!(Instant::now() < deadline, "burst too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = server.pid().unwrap();
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer thread panicked");
    }
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "killed server pid {pid} after {} acknowledged creates",
        acked.len()
    );
    pre_watch.finish(Duration::from_secs(10));
    let pre_events = watch_events(&pre_watch.stdout());

    server.restart().expect("restarting on the same data dir");
    let client = server.client();

    // Every acknowledged object is there, unchanged.
    let (list_rv, after) = list_configmaps(&client);
    let names = k.ok(&["get", "cm", "-o", "name"]);
    let names: BTreeSet<&str> = names.lines().collect();
    let max_acked = acked.iter().map(|(_, rv)| *rv).max().unwrap();
    for (name, want_rv) in &acked {
        assert!(
            names.contains(format!("configmap/{name}").as_str()),
            "acknowledged {name} lost"
        );
        assert_eq!(
            after.get(name),
            Some(want_rv),
            "{name} changed resourceVersion"
        );
    }
    assert!(after.contains_key("before") && after.contains_key("marker"));

    // resourceVersions did not go backwards.
    let max_seen = pre_events
        .iter()
        .map(|e| rv(&e["object"]))
        .max()
        .unwrap_or(0)
        .max(max_acked);
    assert!(
        list_rv >= max_seen,
        "list RV {list_rv} < pre-crash RV {max_seen}"
    );
    let r = client
        .post_json(CM, &json!({"metadata": {"name": "after-restart"}}))
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body_str());
    let new_rv = rv(&r.json().unwrap());
    assert!(
        new_rv > max_seen,
        "new write got RV {new_rv} <= pre-crash {max_seen}"
    );

    // A watch from the pre-crash RV replays every write after it: no gaps, in order.
    let replay = k.ok(&["get", "--raw", &format!("{watch_path}&timeoutSeconds=3")]);
    let events = watch_events(&replay);
    let mut last = rv0;
    let mut replayed = BTreeMap::new();
    for e in &events {
        assert_eq!(e["type"], "ADDED", "{e}");
        let obj = &e["object"];
        assert_eq!(obj["kind"], "ConfigMap");
        let r = rv(obj);
        assert!(r > last, "replay out of order: {r} after {last}");
        last = r;
        replayed.insert(obj["metadata"]["name"].as_str().unwrap().to_string(), r);
    }
    let mut expected: BTreeMap<String, u64> = after.into_iter().filter(|(_, r)| *r > rv0).collect();
    expected.insert("after-restart".into(), new_rv);
    assert_eq!(
        replayed, expected,
        "replay differs from the stored writes after RV {rv0}"
    );
    for (name, r) in &acked {
        assert_eq!(
            replayed.get(name),
            Some(r),
            "replay misses acknowledged {name}"
        );
    }
    // What the pre-crash watch saw was durable: the replay has the same events.
    assert!(pre_events.len() > 1, "pre-crash watch saw no burst events");
    for e in &pre_events {
        let name = e["object"]["metadata"]["name"].as_str().unwrap();
        assert_eq!(
            replayed.get(name),
            Some(&rv(&e["object"])),
            "pre-crash event {e} not durable"
        );
    }
    eprintln!(
        "{} acknowledged, {} replayed, {} seen by the pre-crash watch",
        acked.len(),
        events.len(),
        pre_events.len()
    );
}

#[test]
fn crash_durability_embedded_store() {
    if !e2e::prerequisites() {
        return;
    }
    let mut server = Server::start(ServerOpts::embedded()).expect("starting minik8s");
    crash_during_burst(&mut server);
}

#[test]
fn crash_durability_etcd() {
    if !e2e::etcd_prerequisites() {
        return;
    }
    let etcd = Etcd::start().expect("starting etcd");
    let mut server = Server::start(ServerOpts::etcd(&etcd)).expect("starting minik8s on etcd");
    crash_during_burst(&mut server);
}
