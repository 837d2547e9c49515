//! Acceptance for the controller manager: Deployments and their rollouts, cascading
//! deletion, namespaces, node lifecycle, Jobs, CronJobs, DaemonSets and StatefulSets, with
//! a [`FakeKubelet`] playing the nodes.

use e2e::{wait_for, ApiClient, FakeKubelet, FakeNode, Kubectl, Server, ServerOpts};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn deploy(name: &str, replicas: u32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "nginx", "image": image}]}}},
    })
}

fn nodes(prefix: &str, n: usize) -> Vec<FakeNode> {
    (1..=n)
        .map(|i| FakeNode::new(&format!("{prefix}{i}")))
        .collect()
}

/// `kubectl get deploy NAME --no-headers` cells READY, UP-TO-DATE, AVAILABLE.
fn deploy_row(k: &Kubectl, name: &str) -> Vec<String> {
    let out = k.ok(&["get", "deploy", name, "--no-headers"]);
    out.split_whitespace()
        .skip(1)
        .take(3)
        .map(str::to_string)
        .collect()
}

#[track_caller]
fn wait_deploy(k: &Kubectl, name: &str, want: [&str; 3]) {
    wait_for(T, &format!("deploy {name} at {want:?}"), || {
        (deploy_row(k, name) == want).then_some(())
    });
}

fn pod_names(k: &Kubectl, selector: &str) -> Vec<String> {
    let out = k.ok(&["get", "pods", "-l", selector, "-o", "name"]);
    out.lines()
        .map(|l| l.trim_start_matches("pod/").to_string())
        .collect()
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// One sample of a rollout: (sum of RS spec.replicas, live pods, live ready pods).
fn sample(c: &ApiClient, app: &str) -> Option<(i64, usize, usize)> {
    let rs = c
        .get_json(&format!(
            "/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3D{app}"
        ))
        .ok()?;
    let spec: i64 = rs["items"]
        .as_array()?
        .iter()
        .map(|r| r["spec"]["replicas"].as_i64().unwrap_or(0))
        .sum();
    let pods = c
        .get_json(&format!(
            "/api/v1/namespaces/default/pods?labelSelector=app%3D{app}"
        ))
        .ok()?;
    let live: Vec<&Value> = pods["items"]
        .as_array()?
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    Some((spec, live.len(), live.iter().filter(|p| ready(p)).count()))
}

/// Samples a rollout in the background until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<(i64, usize, usize)>>>,
}

impl Sampler {
    fn start(c: ApiClient, app: &str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let app = app.to_string();
        let handle = std::thread::spawn(move || {
            let mut out = Vec::new();
            while !s.load(Ordering::Relaxed) {
                if let Some(x) = sample(&c, &app) {
                    out.push(x);
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            out
        });
        Sampler {
            stop,
            handle: Some(handle),
        }
    }
    fn finish(mut self) -> Vec<(i64, usize, usize)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

fn images_of_rs(k: &Kubectl, app: &str) -> Vec<(String, String)> {
    let out = k
        .jsonpath(
            &["rs", "-l", &format!("app={app}")],
            "{range .items[*]}{.spec.template.spec.containers[0].image} {.spec.replicas}{\"\\n\"}{end}",
        )
        .unwrap();
    let mut v: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

#[track_caller]
fn rollout_ok(k: &Kubectl, what: &str) -> String {
    k.ok(&["rollout", "status", what, "--timeout=60s"])
}

#[test]
fn deployment_rollouts() {
    if !e2e::prerequisites() {
        return;
    }
    let server = Server::start(ServerOpts::embedded()).unwrap();
    let k = server.kubectl();
    let _kubelet = FakeKubelet::start(server.client(), nodes("w", 3)).unwrap();

    // --- create, scale up and down ------------------------------------------------------
    k.apply_json("create", &deploy("web", 3, "nginx:1.25"));
    let out = rollout_ok(&k, "deployment/web");
    assert!(
        out.trim_end()
            .ends_with("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    wait_deploy(&k, "web", ["3/3", "3", "3"]);
    assert_eq!(
        k.ok(&["scale", "deploy", "web", "--replicas=5"]).trim(),
        "deployment.apps/web scaled"
    );
    wait_deploy(&k, "web", ["5/5", "5", "5"]);
    k.ok(&["scale", "deploy", "web", "--replicas=3"]);
    wait_deploy(&k, "web", ["3/3", "3", "3"]);
    wait_for(T, "3 pods after scaling down", || {
        (pod_names(&k, "app=web").len() == 3).then_some(())
    });

    // --- a rolling update stays within maxSurge / maxUnavailable -----------------------
    let sampler = Sampler::start(server.client(), "web");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        k.ok(&["set", "image", "deploy/web", "nginx=nginx:1.26"])
            .trim(),
        "deployment.apps/web image updated"
    );
    let out = rollout_ok(&k, "deployment/web");
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    wait_for(T, "old pods gone", || {
        (sample(&server.client(), "web")? == (3, 3, 3)).then_some(())
    });
    let samples = sampler.finish();
    assert!(samples.len() > 5, "{samples:?}");
    for (spec, live, ready) in &samples {
        assert!(
            *spec <= 4,
            "RS replicas above replicas+maxSurge: {samples:?}"
        );
        assert!(*live <= 4, "pods above replicas+maxSurge: {samples:?}");
        assert!(
            *ready >= 2,
            "ready pods below replicas-maxUnavailable: {samples:?}"
        );
    }
    let mut distinct = samples.clone();
    distinct.dedup();
    assert!(
        distinct.len() >= 3,
        "the rollout went step by step: {distinct:?}"
    );
    assert_eq!(
        images_of_rs(&k, "web"),
        [
            ("nginx:1.25".into(), "0".into()),
            ("nginx:1.26".into(), "3".into())
        ]
    );

    // --- history, undo, undo --to-revision ----------------------------------------------
    let out = k.ok(&["rollout", "history", "deploy/web"]);
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert_eq!(
        lines,
        [
            "deployment.apps/web",
            "REVISION  CHANGE-CAUSE",
            "1         <none>",
            "2         <none>",
            ""
        ]
    );
    let out = k.ok(&["rollout", "history", "deploy/web", "--revision=1"]);
    assert!(
        out.contains("deployment.apps/web with revision #1") && out.contains("nginx:1.25"),
        "{out}"
    );
    assert_eq!(
        k.ok(&["rollout", "undo", "deploy/web"]).trim(),
        "deployment.apps/web rolled back"
    );
    rollout_ok(&k, "deployment/web");
    let image = || {
        k.jsonpath(
            &["deploy", "web"],
            "{.spec.template.spec.containers[0].image}",
        )
        .unwrap()
    };
    assert_eq!(image(), "nginx:1.25");
    let out = k.ok(&["rollout", "history", "deploy/web"]);
    let revs: Vec<&str> = out
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revs, ["2", "3"], "{out}");
    assert_eq!(
        k.ok(&["rollout", "undo", "deploy/web", "--to-revision=2"])
            .trim(),
        "deployment.apps/web rolled back"
    );
    rollout_ok(&k, "deployment/web");
    assert_eq!(image(), "nginx:1.26");
    assert_eq!(
        k.jsonpath(
            &["deploy", "web"],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        )
        .as_deref(),
        Some("4")
    );
    let err = k.fails(&["rollout", "undo", "deploy/web", "--to-revision=9"]);
    assert!(
        err.contains("unable to find specified revision 9 in history"),
        "{err}"
    );

    // --- restart ------------------------------------------------------------------------
    let before = pod_names(&k, "app=web");
    assert_eq!(
        k.ok(&["rollout", "restart", "deploy/web"]).trim(),
        "deployment.apps/web restarted"
    );
    let ann = k
        .jsonpath(&["deploy", "web"], "{.spec.template.metadata.annotations}")
        .unwrap();
    assert!(ann.contains("kubectl.kubernetes.io/restartedAt"), "{ann}");
    rollout_ok(&k, "deployment/web");
    wait_for(T, "all pods replaced after restart", || {
        let now = pod_names(&k, "app=web");
        (now.len() == 3 && now.iter().all(|p| !before.contains(p))).then_some(())
    });

    // --- pause / resume -----------------------------------------------------------------
    assert_eq!(
        k.ok(&["rollout", "pause", "deploy/web"]).trim(),
        "deployment.apps/web paused"
    );
    let rs_before = images_of_rs(&k, "web").len();
    k.ok(&["set", "image", "deploy/web", "nginx=nginx:1.27"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        images_of_rs(&k, "web").len(),
        rs_before,
        "no new RS while paused"
    );
    let cond = k
        .jsonpath(
            &["deploy", "web"],
            "{.status.conditions[?(@.type==\"Progressing\")].reason}",
        )
        .unwrap();
    assert_eq!(cond, "DeploymentPaused");
    let err = k.fails(&["rollout", "undo", "deploy/web"]);
    assert!(err.contains("you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume' and try again"), "{err}");
    assert_eq!(
        k.ok(&["rollout", "resume", "deploy/web"]).trim(),
        "deployment.apps/web resumed"
    );
    rollout_ok(&k, "deployment/web");
    assert!(
        images_of_rs(&k, "web").contains(&("nginx:1.27".into(), "3".into())),
        "{:?}",
        images_of_rs(&k, "web")
    );

    // --- a deleted pod is replaced ------------------------------------------------------
    wait_deploy(&k, "web", ["3/3", "3", "3"]);
    let before = pod_names(&k, "app=web");
    k.ok(&["delete", "pod", &before[0]]);
    wait_for(T, "a replacement pod", || {
        let now = pod_names(&k, "app=web");
        (now.len() == 3 && !now.contains(&before[0])).then_some(())
    });
    wait_deploy(&k, "web", ["3/3", "3", "3"]);
}

#[test]
fn cascading_deletes_and_namespaces() {
    if !e2e::prerequisites() {
        return;
    }
    let server = Server::start(ServerOpts::embedded()).unwrap();
    let k = server.kubectl();
    let _kubelet = FakeKubelet::start(server.client(), nodes("c", 2)).unwrap();

    // --- service account and root CA in a new namespace ---------------------------------
    k.ok(&["create", "namespace", "fresh"]);
    wait_for(T, "default service account", || {
        k.jsonpath(&["sa", "default", "-n", "fresh"], "{.metadata.name}")
            .filter(|n| n == "default")
    });
    let ca = wait_for(T, "kube-root-ca.crt", || {
        k.jsonpath(
            &["cm", "kube-root-ca.crt", "-n", "fresh"],
            "{.data.ca\\.crt}",
        )
    });
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let out = k.ok(&["get", "sa", "-n", "fresh", "--no-headers"]);
    assert!(out.starts_with("default "), "{out}");

    // --- cascading deletes --------------------------------------------------------------
    for name in ["bg", "fg", "or"] {
        k.apply_json("create", &deploy(name, 2, "nginx"));
    }
    for name in ["bg", "fg", "or"] {
        wait_deploy(&k, name, ["2/2", "2", "2"]);
    }
    let rs_of = |app: &str| {
        k.ok(&["get", "rs", "-l", &format!("app={app}"), "-o", "name"])
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let blocking = k
        .jsonpath(
            &["rs", "-l", "app=fg"],
            "{.items[0].metadata.ownerReferences[0].blockOwnerDeletion}",
        )
        .unwrap();
    assert_eq!(blocking, "true");

    assert_eq!(
        k.ok(&["delete", "deploy", "bg", "--cascade=background"])
            .trim(),
        "deployment.apps \"bg\" deleted"
    );
    wait_for(T, "background: RS and pods collected", || {
        (rs_of("bg").is_empty() && pod_names(&k, "app=bg").is_empty()).then_some(())
    });

    // Foreground: kubectl waits for the owner, which goes only after its dependents.
    k.ok(&[
        "delete",
        "deploy",
        "fg",
        "--cascade=foreground",
        "--timeout=60s",
    ]);
    assert!(rs_of("fg").is_empty(), "foreground delete left the RS");
    assert!(
        pod_names(&k, "app=fg").is_empty(),
        "foreground delete left pods"
    );

    let rs = rs_of("or");
    let pods = pod_names(&k, "app=or");
    k.ok(&["delete", "deploy", "or", "--cascade=orphan"]);
    assert!(k.fails(&["get", "deploy", "or"]).contains("NotFound"));
    wait_for(T, "orphaned RS without ownerReferences", || {
        let refs = k.jsonpath(
            &["rs", "-l", "app=or"],
            "{.items[*].metadata.ownerReferences}",
        )?;
        refs.is_empty().then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(rs_of("or"), rs, "orphaned RS remains");
    assert_eq!(pod_names(&k, "app=or"), pods, "orphaned pods remain");
    let owner = k
        .jsonpath(
            &["pods", "-l", "app=or"],
            "{.items[*].metadata.ownerReferences[*].kind}",
        )
        .unwrap();
    assert_eq!(
        owner, "ReplicaSet ReplicaSet",
        "pods still belong to the RS"
    );

    // --- namespace deletion -------------------------------------------------------------
    k.ok(&["create", "namespace", "doomed"]);
    k.ok(&[
        "create",
        "deploy",
        "d",
        "--image=nginx",
        "--replicas=2",
        "-n",
        "doomed",
    ]);
    k.ok(&[
        "create",
        "configmap",
        "plain",
        "-n",
        "doomed",
        "--from-literal=a=b",
    ]);
    // A finalizer holds the namespace in Terminating until the test lets go.
    k.apply_json(
        "create",
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "held", "namespace": "doomed", "finalizers": ["e2e.minik8s.io/hold"]}}),
    );
    wait_for(T, "deploy d ready in doomed", || {
        let out = k.jsonpath(&["deploy", "d", "-n", "doomed"], "{.status.readyReplicas}")?;
        (out == "2").then_some(())
    });
    k.ok(&["delete", "namespace", "doomed", "--wait=false"]);
    let out = k.ok(&["get", "ns", "doomed", "--no-headers"]);
    assert!(
        out.split_whitespace().nth(1) == Some("Terminating"),
        "{out}"
    );
    let err = k.fails(&["create", "configmap", "late", "-n", "doomed"]);
    assert_eq!(
        err.trim(),
        "error: failed to create configmap: configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
    );
    let err = k.fails(&["run", "late", "--image=nginx", "-n", "doomed"]);
    assert!(
        err.contains("Error from server (Forbidden): pods \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"),
        "{err}"
    );
    wait_for(T, "namespace contents removed", || {
        let out = k.ok(&["get", "deploy,rs,pods,cm", "-n", "doomed", "-o", "name"]);
        (out.trim() == "configmap/held").then_some(())
    });
    let conds = k
        .jsonpath(
            &["ns", "doomed"],
            "{range .status.conditions[*]}{.type}={.status} {end}",
        )
        .unwrap();
    assert!(
        conds.contains("NamespaceFinalizersRemaining=True"),
        "{conds}"
    );
    k.ok(&[
        "patch",
        "cm",
        "held",
        "-n",
        "doomed",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_for(T, "namespace gone", || {
        k.run(&["get", "ns", "doomed"])
            .stderr
            .contains("NotFound")
            .then_some(())
    });
}

#[test]
fn node_lifecycle_and_ipam() {
    if !e2e::prerequisites() {
        return;
    }
    let server = Server::start(ServerOpts::embedded()).unwrap();
    let k = server.kubectl();
    let kubelet = FakeKubelet::start(server.client(), nodes("l", 2)).unwrap();

    // --- IPAM ---------------------------------------------------------------------------
    let cidrs = wait_for(T, "podCIDRs", || {
        let out = k.jsonpath(&["nodes"], "{.items[*].spec.podCIDR}")?;
        let v: Vec<String> = out.split_whitespace().map(str::to_string).collect();
        (v.len() == 2).then_some(v)
    });
    assert_ne!(cidrs[0], cidrs[1], "{cidrs:?}");
    for c in &cidrs {
        assert!(c.contains('/'), "{c}");
    }
    assert_eq!(
        k.jsonpath(&["node", "l1"], "{.spec.podCIDRs[0]}")
            .as_deref(),
        Some(cidrs[0].as_str())
    );

    // Everything starts on l1: cordon l2 meanwhile.
    k.ok(&["cordon", "l2"]);
    let unreachable = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
        "effect": "NoExecute", "tolerationSeconds": 5}]);
    k.apply_json(
        "create",
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lone"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], "tolerations": unreachable}}),
    );
    let mut d = deploy("keep", 1, "nginx");
    d["spec"]["template"]["spec"]["tolerations"] = unreachable.clone();
    k.apply_json("create", &d);
    wait_deploy(&k, "keep", ["1/1", "1", "1"]);
    let keep_pod = pod_names(&k, "app=keep").remove(0);
    let node_of = |p: &str| k.jsonpath(&["pod", p], "{.spec.nodeName}").unwrap();
    assert_eq!(node_of("lone"), "l1");
    assert_eq!(node_of(&keep_pod), "l1");
    // Defaulted tolerations (DefaultTolerationSeconds) are added for the other taint only.
    let tol = k
        .jsonpath(
            &["pod", "lone"],
            "{range .spec.tolerations[*]}{.key}:{.tolerationSeconds} {end}",
        )
        .unwrap();
    assert_eq!(
        tol.trim(),
        "node.kubernetes.io/unreachable:5 node.kubernetes.io/not-ready:300"
    );
    k.ok(&["uncordon", "l2"]);

    // --- l1's kubelet dies: NotReady after the 40 s grace, then taints and evictions ----
    kubelet.kill_node("l1");
    let started = std::time::Instant::now();
    wait_for(Duration::from_secs(70), "l1 NotReady", || {
        let out = k.ok(&["get", "node", "l1", "--no-headers"]);
        (out.split_whitespace().nth(1) == Some("NotReady")).then_some(())
    });
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(35),
        "NotReady too early: {took:?}"
    );
    let cond = k
        .jsonpath(&["node", "l1"], "{.status.conditions[?(@.type==\"Ready\")].status}/{.status.conditions[?(@.type==\"Ready\")].reason}/{.status.conditions[?(@.type==\"Ready\")].message}")
        .unwrap();
    assert_eq!(
        cond,
        "Unknown/NodeStatusUnknown/Kubelet stopped posting node status."
    );
    let taints = wait_for(T, "unreachable taints", || {
        let t = k.jsonpath(
            &["node", "l1"],
            "{range .spec.taints[*]}{.key}:{.effect} {end}",
        )?;
        t.contains("node.kubernetes.io/unreachable:NoExecute")
            .then_some(t)
    });
    assert!(
        taints.contains("node.kubernetes.io/unreachable:NoSchedule"),
        "{taints}"
    );
    assert_eq!(
        k.ok(&["get", "node", "l2", "--no-headers"])
            .split_whitespace()
            .nth(1),
        Some("Ready")
    );
    // The pods' tolerationSeconds (5) run out: they are deleted (and stay Terminating, as
    // nothing on the dead node confirms).
    wait_for(T, "pods on l1 evicted", || {
        let a = k.jsonpath(&["pod", "lone"], "{.metadata.deletionTimestamp}");
        let b = k.jsonpath(&["pod", &keep_pod], "{.metadata.deletionTimestamp}");
        let gone_or_deleting = |x: Option<String>| x.is_none_or(|s| !s.is_empty());
        (gone_or_deleting(a) && gone_or_deleting(b)).then_some(())
    });
    let ready = k
        .jsonpath(
            &["pod", "lone"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        )
        .unwrap_or_default();
    assert!(
        ready.is_empty() || ready == "False",
        "pods on an unknown node are not ready: {ready}"
    );
    // The Deployment's replacement runs on l2.
    let replacement = wait_for(T, "replacement on l2", || {
        let out = k.jsonpath(
            &[
                "pods",
                "-l",
                "app=keep",
                "--field-selector",
                "spec.nodeName=l2,status.phase=Running",
            ],
            "{.items[*].metadata.name}",
        )?;
        (!out.trim().is_empty()).then(|| out.trim().to_string())
    });
    assert_ne!(replacement, keep_pod);
    wait_deploy(&k, "keep", ["1/1", "1", "1"]);
}

#[test]
fn jobs_daemonsets_statefulsets() {
    if !e2e::prerequisites() {
        return;
    }
    let server = Server::start(ServerOpts::embedded()).unwrap();
    let k = server.kubectl();
    let _kubelet = FakeKubelet::start(
        server.client(),
        vec![
            FakeNode::new("j1"),
            FakeNode::new("j2"),
            FakeNode::new("j3").taint("dedicated", "db", "NoSchedule"),
        ],
    )
    .unwrap();
    let c = server.client();

    // --- Job: completions / parallelism -------------------------------------------------
    k.apply_json(
        "create",
        &json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "calc"},
            "spec": {"completions": 4, "parallelism": 2, "template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}),
    );
    let mut max_active = 0;
    wait_for(Duration::from_secs(60), "job complete", || {
        let pods = c
            .get_json("/api/v1/namespaces/default/pods?labelSelector=job-name%3Dcalc")
            .ok()?;
        let active = pods["items"]
            .as_array()?
            .iter()
            .filter(|p| {
                let ph = p["status"]["phase"].as_str().unwrap_or("");
                ph != "Succeeded" && ph != "Failed" && p["metadata"]["deletionTimestamp"].is_null()
            })
            .count();
        max_active = max_active.max(active);
        let j = c
            .get_json("/apis/batch/v1/namespaces/default/jobs/calc")
            .ok()?;
        j["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True")
            .then_some(())
    });
    assert!(max_active <= 2, "parallelism exceeded: {max_active}");
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/calc",
        "--timeout=10s",
    ]);
    let out = k.ok(&["get", "job", "calc", "--no-headers"]);
    let row: Vec<&str> = out.split_whitespace().collect();
    assert_eq!((row[1], row[2]), ("Complete", "4/4"), "{out}");
    assert_eq!(
        k.jsonpath(&["job", "calc"], "{.status.succeeded}")
            .as_deref(),
        Some("4")
    );

    // --- CronJob: a manual Job from it, and the controller's own schedule ---------------
    k.ok(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=* * * * *",
    ]);
    assert_eq!(
        k.ok(&["create", "job", "tick-manual", "--from=cronjob/tick"])
            .trim(),
        "job.batch/tick-manual created"
    );
    let owner = k
        .jsonpath(&["job", "tick-manual"], "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate}")
        .unwrap();
    assert_eq!(owner, "CronJob/tick manual");
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/tick-manual",
        "--timeout=30s",
    ]);

    // --- DaemonSet: one pod per eligible node -------------------------------------------
    k.apply_json(
        "create",
        &json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
    );
    let out = k.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(
        out.contains("daemon set \"agent\" successfully rolled out"),
        "{out}"
    );
    let mut on = k
        .jsonpath(&["pods", "-l", "app=agent"], "{.items[*].spec.nodeName}")
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect::<Vec<_>>();
    on.sort();
    assert_eq!(on, ["j1", "j2"], "the tainted j3 is not eligible");
    let out = k.ok(&["get", "ds", "agent", "--no-headers"]);
    let row: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(&row[1..6], ["2", "2", "2", "2", "2"], "{out}");
    // Tolerating the taint makes j3 eligible too.
    k.ok(&[
        "patch", "ds", "agent", "--type=merge", "-p",
        r#"{"spec":{"template":{"spec":{"tolerations":[{"key":"dedicated","operator":"Exists"}]}}}}"#,
    ]);
    rollout_ok(&k, "ds/agent");
    wait_for(T, "3 agent pods", || {
        let out = k.ok(&["get", "ds", "agent", "--no-headers"]);
        let row: Vec<String> = out.split_whitespace().map(str::to_string).collect();
        (row[1..6] == ["3", "3", "3", "3", "3"]).then_some(())
    });

    // --- StatefulSet: ordered pods web-0..2 ---------------------------------------------
    let order = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (order, stop, c) = (order.clone(), stop.clone(), c.clone());
        std::thread::spawn(move || {
            let mut violations = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(p) = c.get_json("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
                {
                    let items = p["items"].as_array().cloned().unwrap_or_default();
                    let by_name = |n: &str| items.iter().find(|p| p["metadata"]["name"] == n);
                    for i in 1..3 {
                        if by_name(&format!("web-{i}")).is_some()
                            && !by_name(&format!("web-{}", i - 1)).is_some_and(ready)
                        {
                            violations
                                .push(format!("web-{i} exists before web-{} is ready", i - 1));
                        }
                    }
                    let mut o = order.lock().unwrap();
                    for it in &items {
                        let n = it["metadata"]["name"].as_str().unwrap_or("").to_string();
                        if !o.contains(&n) {
                            o.push(n);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            violations
        })
    };
    k.apply_json(
        "create",
        &json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
            "spec": {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "nginx"}]}}}}),
    );
    let out = k.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert!(
        out.contains("partitioned roll out complete: 3 new pods have been updated..."),
        "{out}"
    );
    stop.store(true, Ordering::Relaxed);
    let violations = watcher.join().unwrap();
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(*order.lock().unwrap(), ["web-0", "web-1", "web-2"]);
    let out = k.ok(&["get", "sts", "web", "--no-headers"]);
    assert_eq!(out.split_whitespace().nth(1), Some("3/3"), "{out}");
    let hostnames = k
        .jsonpath(
            &["pods", "-l", "app=web"],
            "{.items[*].metadata.labels.statefulset\\.kubernetes\\.io/pod-name}",
        )
        .unwrap();
    assert_eq!(hostnames, "web-0 web-1 web-2");
}

#[test]
fn cronjob_schedules_a_job() {
    if !e2e::prerequisites() {
        return;
    }
    let server = Server::start(ServerOpts::embedded()).unwrap();
    let k = server.kubectl();
    let _kubelet = FakeKubelet::start(server.client(), nodes("cj", 1)).unwrap();
    k.ok(&[
        "create",
        "cronjob",
        "every",
        "--image=busybox",
        "--schedule=* * * * *",
    ]);
    let out = k.ok(&["get", "cronjob", "every", "--no-headers"]);
    let row: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        &row[1..8],
        ["*", "*", "*", "*", "*", "<none>", "False"],
        "{out}"
    );
    // The next minute boundary is at most 60 s away.
    let job = wait_for(Duration::from_secs(75), "a scheduled job", || {
        let out = k.jsonpath(&["jobs"], "{.items[*].metadata.name}")?;
        out.split_whitespace().next().map(str::to_string)
    });
    let suffix = job
        .strip_prefix("every-")
        .expect("job named after the cronjob");
    assert!(
        suffix.parse::<u64>().is_ok(),
        "scheduled-time suffix: {job}"
    );
    assert_eq!(
        k.jsonpath(
            &["job", &job],
            "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}"
        )
        .as_deref(),
        Some("CronJob/every")
    );
    let scheduled = k
        .jsonpath(
            &["job", &job],
            "{.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
        )
        .unwrap();
    assert!(scheduled.ends_with(":00Z"), "{scheduled}");
    wait_for(T, "lastScheduleTime and lastSuccessfulTime", || {
        let out = k.jsonpath(
            &["cronjob", "every"],
            "{.status.lastScheduleTime} {.status.lastSuccessfulTime}",
        )?;
        let (a, b) = out.split_once(' ')?;
        (!a.is_empty() && !b.is_empty()).then_some(())
    });
}
