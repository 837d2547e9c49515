//! Unit tests of the pure filter, score, scheduling and preemption functions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use crate::algorithm::{preempt, schedule, Nominated};
use crate::filters::{filter_node, prefilter};
use crate::scores;
use crate::snapshot::{PodInfo, SchedPod, Snapshot};

fn node(name: &str, cpu: &str, mem: &str, extra: Value) -> Node {
    let mut v = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": "110"}},
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn pod(name: &str, cpu: &str, extra: Value) -> Pod {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {}},
        "spec": {"containers": [{"name": "c", "image": "nginx",
            "resources": {"requests": {"cpu": cpu}}}]},
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn snap(nodes: &[Node], pods: &[(&str, Pod)]) -> Snapshot {
    let mut s = Snapshot::default();
    for n in nodes {
        s.upsert_node(n);
    }
    for (n, p) in pods {
        s.add_pod(n, Arc::new(PodInfo::from_pod(p)));
    }
    s
}

fn fails(s: &Snapshot, p: &Pod) -> Result<usize, String> {
    let sp = SchedPod::from_pod(p);
    let mut start = 0;
    schedule(s, &sp, &Nominated::new(), &mut start).map_err(|f| f.message())
}

#[test]
fn fit_error_message_sorted_like_upstream() {
    let s = snap(
        &[
            node("a", "1", "1Gi", json!({})),
            node(
                "b",
                "4",
                "1Gi",
                json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
            ),
            node(
                "c",
                "4",
                "1Gi",
                json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
            ),
        ],
        &[],
    );
    let p = pod("p", "2", json!({}));
    assert_eq!(
        fails(&s, &p).unwrap_err(),
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }."
    );
    let sp = SchedPod::from_pod(&p);
    let mut start = 0;
    let fit = schedule(&s, &sp, &Nominated::new(), &mut start).unwrap_err();
    // Only lower-priority pods can be victims; there are none.
    assert_eq!(
        preempt(&s, &sp, &fit, &Nominated::new()).unwrap_err(),
        "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
    );
}

#[test]
fn unschedulable_and_toleration() {
    let s = snap(
        &[node(
            "a",
            "4",
            "4Gi",
            json!({"spec": {"unschedulable": true}}),
        )],
        &[],
    );
    assert_eq!(
        fails(&s, &pod("p", "1", json!({}))).unwrap_err(),
        "0/1 nodes are available: 1 node(s) were unschedulable."
    );
    let tolerant = pod(
        "p",
        "1",
        json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}),
    );
    assert_eq!(fails(&s, &tolerant), Ok(0));
    let all = pod(
        "p",
        "1",
        json!({"spec": {"tolerations": [{"operator": "Exists"}]}}),
    );
    assert_eq!(fails(&s, &all), Ok(0));
}

#[test]
fn taints_equal_and_noexecute() {
    let s = snap(
        &[node(
            "a",
            "4",
            "4Gi",
            json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoExecute"}]}}),
        )],
        &[],
    );
    assert_eq!(
        fails(&s, &pod("p", "1", json!({}))).unwrap_err(),
        "0/1 nodes are available: 1 node(s) had untolerated taint {k: v}."
    );
    let wrong = pod(
        "p",
        "1",
        json!({"spec": {"tolerations": [{"key": "k", "value": "x"}]}}),
    );
    assert!(fails(&s, &wrong).is_err());
    let right = pod(
        "p",
        "1",
        json!({"spec": {"tolerations": [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute"}]}}),
    );
    assert_eq!(fails(&s, &right), Ok(0));
}

#[test]
fn resources_init_containers_overhead_and_pod_count() {
    let s = snap(
        &[node(
            "a",
            "2",
            "1Gi",
            json!({"status": {"allocatable": {"pods": "1"}}}),
        )],
        &[],
    );
    // Init container needs 3 cpu (max rule).
    let p = pod(
        "p",
        "1",
        json!({"spec": {"initContainers": [{"name": "i", "image": "busybox", "resources": {"requests": {"cpu": "3"}}}]}}),
    );
    assert_eq!(
        fails(&s, &p).unwrap_err(),
        "0/1 nodes are available: 1 Insufficient cpu."
    );
    let p = pod("p", "1500m", json!({"spec": {"overhead": {"cpu": "600m"}}}));
    assert!(fails(&s, &p).is_err());
    let mut s2 = s;
    s2.add_pod("a", Arc::new(PodInfo::from_pod(&pod("x", "0", json!({})))));
    let p = pod(
        "p",
        "100m",
        json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "100m", "memory": "2Gi"}}}]}}),
    );
    assert_eq!(
        fails(&s2, &p).unwrap_err(),
        "0/1 nodes are available: 1 Insufficient memory, 1 Too many pods."
    );
}

#[test]
fn node_affinity_and_selector() {
    let s = snap(
        &[
            node(
                "a",
                "4",
                "4Gi",
                json!({"metadata": {"labels": {"zone": "z1", "gen": "3"}}}),
            ),
            node(
                "b",
                "4",
                "4Gi",
                json!({"metadata": {"labels": {"zone": "z2", "gen": "5"}}}),
            ),
        ],
        &[],
    );
    let p = pod("p", "1", json!({"spec": {"nodeSelector": {"zone": "z2"}}}));
    assert_eq!(fails(&s, &p), Ok(1));
    let aff = |op: &str, vals: Value| {
        pod(
            "p",
            "1",
            json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "gen", "operator": op, "values": vals}]}]}}}}}),
        )
    };
    assert_eq!(fails(&s, &aff("Gt", json!(["4"]))), Ok(1));
    assert_eq!(fails(&s, &aff("Lt", json!(["4"]))), Ok(0));
    assert_eq!(fails(&s, &aff("NotIn", json!(["3"]))), Ok(1));
    assert_eq!(
        fails(&s, &aff("In", json!(["9"]))).unwrap_err(),
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    );
    let fields = pod(
        "p",
        "1",
        json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}]}}}}}),
    );
    assert_eq!(fails(&s, &fields), Ok(0));
}

#[test]
fn host_ports_conflict() {
    let hp = |name: &str, ip: &str| {
        pod(
            name,
            "1",
            json!({"spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080, "hostIP": ip}]}]}}),
        )
    };
    let s = snap(
        &[node("a", "4", "4Gi", json!({}))],
        &[("a", hp("x", "127.0.0.1"))],
    );
    assert_eq!(
        fails(&s, &hp("p", "")).unwrap_err(),
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
    );
    assert_eq!(fails(&s, &hp("p", "10.0.0.1")), Ok(0));
}

#[test]
fn inter_pod_affinity_and_anti_affinity() {
    let nodes = [
        node(
            "a",
            "4",
            "4Gi",
            json!({"metadata": {"labels": {"zone": "z1"}}}),
        ),
        node(
            "b",
            "4",
            "4Gi",
            json!({"metadata": {"labels": {"zone": "z2"}}}),
        ),
    ];
    let db = pod("db", "1", json!({"metadata": {"labels": {"app": "db"}}}));
    let s = snap(&nodes, &[("a", db)]);
    let term = json!([{"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}]);
    let with_db = pod(
        "p",
        "1",
        json!({"spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}}}}),
    );
    assert_eq!(fails(&s, &with_db), Ok(0));
    let away = pod(
        "p",
        "1",
        json!({"spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}}}}),
    );
    assert_eq!(fails(&s, &away), Ok(1));
    // Existing pod's anti-affinity against the incoming pod.
    let lonely = pod(
        "l",
        "1",
        json!({"metadata": {"labels": {"app": "l"}}, "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            [{"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}]}}}}),
    );
    let s = snap(&nodes, &[("a", lonely)]);
    let web = pod("w", "1", json!({"metadata": {"labels": {"app": "web"}}}));
    assert_eq!(fails(&s, &web), Ok(1));
    // No pod matches the affinity anywhere: fails unless self-matching.
    let s = snap(&nodes, &[]);
    assert_eq!(
        fails(&s, &with_db).unwrap_err(),
        "0/2 nodes are available: 2 node(s) didn't match pod affinity rules."
    );
    let first_db = pod(
        "p",
        "1",
        json!({"metadata": {"labels": {"app": "db"}}, "spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}}}}),
    );
    assert!(fails(&s, &first_db).is_ok());
}

#[test]
fn topology_spread_do_not_schedule() {
    let nodes = [
        node(
            "a",
            "4",
            "4Gi",
            json!({"metadata": {"labels": {"zone": "z1"}}}),
        ),
        node(
            "b",
            "4",
            "4Gi",
            json!({"metadata": {"labels": {"zone": "z2"}}}),
        ),
        node("c", "4", "4Gi", json!({})),
    ];
    let web = |n: &str| pod(n, "0", json!({"metadata": {"labels": {"app": "web"}}}));
    let s = snap(&nodes, &[("a", web("w1"))]);
    let p = pod(
        "p",
        "0",
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [{"maxSkew": 1,
            "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
    );
    let sp = SchedPod::from_pod(&p);
    let pre = prefilter(&s, &sp);
    assert!(filter_node(&sp, &pre, &s.nodes[1], None).is_ok());
    assert_eq!(
        filter_node(&sp, &pre, &s.nodes[0], None)
            .unwrap_err()
            .reasons,
        vec![crate::filters::ERR_SPREAD.to_string()]
    );
    assert_eq!(
        filter_node(&sp, &pre, &s.nodes[2], None)
            .unwrap_err()
            .reasons,
        vec![crate::filters::ERR_SPREAD_LABEL.to_string()]
    );
}

#[test]
fn scores_prefer_least_allocated_and_images() {
    let s = snap(
        &[
            node("a", "4", "8Gi", json!({})),
            node(
                "b",
                "4",
                "8Gi",
                json!({"status": {"images": [{"names": ["docker.io/library/big:1"], "sizeBytes": 900_000_000}]}}),
            ),
        ],
        &[("a", pod("x", "3", json!({})))],
    );
    let p = pod("p", "100m", json!({}));
    let sp = SchedPod::from_pod(&p);
    let sc = scores::score_nodes(&s, &sp, &[0, 1]);
    assert!(sc[1] > sc[0], "{sc:?}");
    let img = pod(
        "p",
        "100m",
        json!({"spec": {"containers": [{"name": "c", "image": "docker.io/library/big:1"}]}}),
    );
    let n = &s.nodes[1];
    assert!(scores::image_locality(&s, &SchedPod::from_pod(&img), n) > 0);
}

#[test]
fn score_prefer_no_schedule_and_preferred_affinity() {
    let s = snap(
        &[
            node(
                "a",
                "4",
                "8Gi",
                json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}),
            ),
            node(
                "b",
                "4",
                "8Gi",
                json!({"metadata": {"labels": {"disk": "ssd"}}}),
            ),
            node("c", "4", "8Gi", json!({})),
        ],
        &[],
    );
    let p = pod(
        "p",
        "100m",
        json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}}}),
    );
    let sc = scores::score_nodes(&s, &SchedPod::from_pod(&p), &[0, 1, 2]);
    assert!(sc[1] > sc[2] && sc[2] > sc[0], "{sc:?}");
}

#[test]
fn normalize_like_upstream() {
    let mut v = vec![0, 2, 4];
    scores::normalize(&mut v, false);
    assert_eq!(v, [0, 50, 100]);
    let mut v = vec![0, 1];
    scores::normalize(&mut v, true);
    assert_eq!(v, [100, 0]);
    let mut v = vec![0, 0];
    scores::normalize(&mut v, true);
    assert_eq!(v, [100, 100]);
}

#[test]
fn preemption_picks_fewest_lowest_victims() {
    let prio = |n: &str, cpu: &str, p: i32| pod(n, cpu, json!({"spec": {"priority": p}}));
    let s = snap(
        &[
            node("a", "2", "4Gi", json!({})),
            node("b", "2", "4Gi", json!({})),
        ],
        &[
            ("a", prio("a1", "1", 5)),
            ("a", prio("a2", "1", 5)),
            ("b", prio("b1", "1", 1)),
            ("b", prio("b2", "1", 100)),
        ],
    );
    let hi = prio("hi", "1", 50);
    let sp = SchedPod::from_pod(&hi);
    let mut start = 0;
    let fit = schedule(&s, &sp, &HashMap::new(), &mut start).unwrap_err();
    let c = preempt(&s, &sp, &fit, &HashMap::new()).unwrap();
    assert_eq!(s.nodes[c.node].name, "b");
    assert_eq!(c.victims.len(), 1);
    assert_eq!(c.victims[0].name, "b1");

    let never = pod(
        "n",
        "1",
        json!({"spec": {"priority": 50, "preemptionPolicy": "Never"}}),
    );
    let sp = SchedPod::from_pod(&never);
    let fit = schedule(&s, &sp, &HashMap::new(), &mut start).unwrap_err();
    assert_eq!(
        preempt(&s, &sp, &fit, &HashMap::new()).unwrap_err(),
        "preemption: not eligible due to preemptionPolicy=Never."
    );
}

#[test]
fn nominated_pods_reserve_resources() {
    let s = snap(&[node("a", "2", "4Gi", json!({}))], &[]);
    let mut nom = Nominated::new();
    let big = PodInfo::from_pod(&pod("big", "2", json!({"spec": {"priority": 10}})));
    nom.insert(
        "a".into(),
        vec![(big.uid.clone(), 10, big.requests.clone())],
    );
    let low = SchedPod::from_pod(&pod("low", "1", json!({})));
    let mut start = 0;
    assert!(schedule(&s, &low, &nom, &mut start).is_err());
    let higher = SchedPod::from_pod(&pod("h", "1", json!({"spec": {"priority": 20}})));
    assert!(schedule(&s, &higher, &nom, &mut start).is_ok());
}

#[test]
fn percentage_of_nodes_to_score() {
    assert_eq!(crate::algorithm::num_feasible_to_find(50), 50);
    assert_eq!(crate::algorithm::num_feasible_to_find(1000), 420);
    assert_eq!(crate::algorithm::num_feasible_to_find(5000), 500);
}

#[test]
fn snapshot_removal_restores_aggregates() {
    let mut s = snap(&[node("a", "4", "4Gi", json!({}))], &[]);
    let p = Arc::new(PodInfo::from_pod(&pod("x", "1", json!({}))));
    s.add_pod("a", p.clone());
    assert_eq!(s.nodes[0].requested.milli_cpu, 1000);
    assert_eq!(s.nodes[0].non_zero_mem, crate::snapshot::DEFAULT_MEMORY);
    s.remove_pod(&p.uid);
    assert_eq!(s.nodes[0].requested.milli_cpu, 0);
    assert_eq!(s.nodes[0].requested.pods, 0);
    // Pods on unknown nodes attach when the node appears.
    s.add_pod("z", p.clone());
    s.upsert_node(&node("z", "1", "1Gi", json!({})));
    assert_eq!(s.node("z").unwrap().pods.len(), 1);
}

/// Throughput of the pure scheduling path: `cargo test -p scheduler --release -- --ignored
/// bench --nocapture`.
#[test]
#[ignore]
fn bench_schedule_1000_nodes_10000_pods() {
    let nodes: Vec<Node> = (0..1000)
        .map(|i| {
            node(
                &format!("n{i}"),
                "32",
                "128Gi",
                json!({"metadata": {"labels": {"zone": format!("z{}", i % 3)}}}),
            )
        })
        .collect();
    let mut s = snap(&nodes, &[]);
    let pods: Vec<SchedPod> = (0..10000)
        .map(|i| {
            SchedPod::from_pod(&pod(
                &format!("p{i}"),
                "100m",
                json!({"metadata": {"labels": {"app": "x"}}}),
            ))
        })
        .collect();
    let t = std::time::Instant::now();
    let mut start = 0;
    for p in &pods {
        let i = schedule(&s, p, &Nominated::new(), &mut start).unwrap();
        let name = s.nodes[i].name.clone();
        s.add_pod(&name, p.info.clone());
    }
    let el = t.elapsed();
    eprintln!(
        "scheduled 10000 pods on 1000 nodes in {el:?} ({:.0} pods/s)",
        10000.0 / el.as_secs_f64()
    );
}

#[test]
fn equal_label_sets_are_shared() {
    use crate::snapshot::intern_labels;
    let a: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
    let b = a.clone();
    let (la, lb) = (intern_labels(Some(&a)), intern_labels(Some(&b)));
    assert!(Arc::ptr_eq(&la, &lb));
    assert_eq!(*la, a);
    let c: BTreeMap<String, String> = [("app".to_string(), "db".to_string())].into();
    assert!(!Arc::ptr_eq(&la, &intern_labels(Some(&c))));
    assert!(intern_labels(None).is_empty());
}
