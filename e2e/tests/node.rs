//! Issue 4 acceptance: a server and two agents, each "host" in its own network namespace,
//! each agent with its own containerd, driven by real kubectl: pods run and are reachable
//! across nodes, logs/exec/attach/port-forward work, probes restart containers, failures
//! show upstream's reasons, volumes are readable, deletion honours preStop and the grace
//! period, static pods get mirror pods, drain empties a node, restarting an agent keeps its
//! pods, and losing a node moves its pods.

use e2e::cluster::{netns_prerequisites, AgentOpts, Cluster, ClusterOpts};
use e2e::Kubectl;
use serde_json::Value;
use std::time::{Duration, Instant};

const BUSYBOX: &str = "localhost/busybox:1.35";

/// The test hosts share the machine's disk, which may be fuller than the default 10 %
/// nodefs threshold allows; these thresholds keep host disk use from evicting test pods.
fn test_thresholds() -> Vec<String> {
    vec![
        "--eviction-hard".into(),
        "memory.available<100Mi,nodefs.available<1%,imagefs.available<1%".into(),
    ]
}

fn agent(labels: Vec<(String, String)>, taints: Vec<String>) -> AgentOpts {
    AgentOpts {
        labels,
        taints,
        extra_args: test_thresholds(),
    }
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn json(k: &Kubectl, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&k.ok(&a)).expect("kubectl json")
}

fn pods(k: &Kubectl, selector: &str) -> Vec<Value> {
    json(k, &["get", "pods", "-l", selector])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn running_ready(p: &Value) -> bool {
    p["status"]["phase"] == "Running" && is_ready(p)
}

fn apply(k: &Kubectl, yaml: &str) {
    let out = k.with_stdin(&["apply", "-f", "-"], yaml);
    assert_eq!(out.code, 0, "apply failed: {}\n{yaml}", out.stderr);
}

fn wait_pod(k: &Kubectl, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = Value::Null;
    loop {
        let out = k.run(&["get", "pod", name, "-o", "json"]);
        if out.code == 0 {
            if let Ok(p) = serde_json::from_str::<Value>(&out.stdout) {
                if f(&p) {
                    return p;
                }
                last = p;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for pod {name}: {what}; last status: {:#}",
            last["status"]
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn container_state(p: &Value) -> &Value {
    &p["status"]["containerStatuses"][0]
}

fn three_hosts(agent_opts: Vec<AgentOpts>) -> Cluster {
    Cluster::start(ClusterOpts {
        agents: 2,
        server_agent: false,
        agent_opts,
        ..Default::default()
    })
    .expect("starting a server and two agents")
}

#[test]
fn pods_run_across_nodes_with_upstream_behaviour() {
    if !netns_prerequisites() {
        return;
    }
    let c = three_hosts(vec![
        agent(vec![("zone".into(), "a".into())], vec![]),
        agent(vec![], vec![]),
    ]);
    let k = c.kubectl();
    let (h1, h2) = (c.node_name(1), c.node_name(2));

    // Nodes: Ready, with labels from flags, capacity and nodeInfo from the machine.
    let n1 = json(&k, &["get", "node", &h1]);
    assert_eq!(n1["metadata"]["labels"]["zone"], "a");
    assert_eq!(
        n1["metadata"]["labels"]["kubernetes.io/hostname"],
        h1.as_str()
    );
    assert!(n1["status"]["capacity"]["cpu"].is_string());
    assert!(n1["status"]["nodeInfo"]["containerRuntimeVersion"]
        .as_str()
        .unwrap()
        .starts_with("containerd://"));
    let images = n1["status"]["images"].to_string();
    assert!(images.contains(BUSYBOX), "node images: {images}");

    // A Deployment of 4 lands on both agents; all pods go Running and Ready.
    k.ok(&[
        "create",
        "deployment",
        "web",
        "--image",
        BUSYBOX,
        "--replicas",
        "4",
        "--",
        "httpd",
        "-f",
        "-p",
        "8080",
    ]);
    let web = wait_for(
        "4 web pods Running and Ready",
        Duration::from_secs(90),
        || {
            let ps = pods(&k, "app=web");
            (ps.len() == 4 && ps.iter().all(running_ready)).then_some(ps)
        },
    );
    let nodes: std::collections::BTreeSet<String> = web
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        nodes,
        [h1.clone(), h2.clone()].into_iter().collect(),
        "pods should spread over both agents"
    );
    for p in &web {
        assert!(p["status"]["podIP"].as_str().unwrap().starts_with("10.42."));
        assert_eq!(p["status"]["qosClass"], "BestEffort");
        assert_eq!(container_state(p)["restartCount"], 0);
    }

    // Resource metrics: kubectl top nodes / pods.
    let top = wait_for("kubectl top pods", Duration::from_secs(60), || {
        let out = k.run(&["top", "pods", "-l", "app=web"]);
        (out.code == 0 && out.stdout.lines().count() == 5).then_some(out.stdout)
    });
    assert!(
        top.contains("CPU(cores)") && top.contains("MEMORY(bytes)"),
        "{top}"
    );
    let top_nodes = wait_for("kubectl top nodes", Duration::from_secs(60), || {
        let out = k.run(&["top", "nodes"]);
        (out.code == 0 && out.stdout.contains(&h1) && out.stdout.contains(&h2))
            .then_some(out.stdout)
    });
    assert!(
        top_nodes.contains("CPU") && top_nodes.contains(&h1),
        "{top_nodes}"
    );

    // A pod on h1 fetches a page from a pod on h2 by pod IP.
    let on_h2 = web
        .iter()
        .find(|p| p["spec"]["nodeName"] == h2.as_str())
        .unwrap();
    let ip = on_h2["status"]["podIP"].as_str().unwrap();
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: fetch}}
spec:
  nodeName: {h1}
  restartPolicy: Never
  containers:
  - name: fetch
    image: {BUSYBOX}
    command: ["sh", "-c", "timeout 10 wget -q -O - http://{ip}:8080/etc/passwd"]
"#
        ),
    );
    let p = wait_pod(&k, "fetch", "Succeeded", |p| {
        matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    });
    assert_eq!(p["status"]["phase"], "Succeeded", "{p:#}");
    assert_eq!(
        container_state(&p)["state"]["terminated"]["reason"],
        "Completed"
    );
    let fetched = k.ok(&["logs", "fetch"]);
    assert!(fetched.contains("root:x:0:0"), "fetched: {fetched}");

    // logs (--tail, -f), exec (exit codes, stdin), attach.
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: talker}}
spec:
  containers:
  - name: talker
    image: {BUSYBOX}
    command: ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done"]
"#
        ),
    );
    wait_pod(&k, "talker", "Running", running_ready);
    let tail = k.ok(&["logs", "talker", "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    let all = k.ok(&["logs", "talker"]);
    assert!(all.starts_with("line 1\nline 2\n"), "{all}");
    let mut follow = k.spawn(&["logs", "-f", "talker", "--tail=1"], "follow");
    let now_tick = |s: &str| s.matches("tick").count() >= 3;
    assert!(
        follow.wait_for(Duration::from_secs(20), now_tick),
        "logs -f: {}",
        follow.stdout()
    );
    follow.kill();
    let ts = k.ok(&["logs", "talker", "--timestamps", "--tail=1"]);
    assert!(ts.starts_with("20") && ts.contains("T"), "{ts}");

    let out = k.run(&[
        "exec",
        "talker",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.code, 3, "exec exit code: {out:?}");
    assert_eq!(out.stdout.trim(), "out");
    assert!(out.stderr.contains("err"), "{out:?}");
    let out = k.with_stdin(&["exec", "-i", "talker", "--", "cat"], "hello stdin\n");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello stdin\n");
    let mut attach = k.spawn(&["attach", "talker"], "attach");
    assert!(
        attach.wait_for(Duration::from_secs(20), |s| s.contains("tick")),
        "attach: {} / {}",
        attach.stdout(),
        attach.stderr()
    );
    attach.kill();

    // port-forward from the server's host to a web pod.
    let target = web[0]["metadata"]["name"].as_str().unwrap().to_string();
    let mut pf = k.spawn(
        &["port-forward", &format!("pod/{target}"), "18080:8080"],
        "pf",
    );
    assert!(
        pf.wait_for(Duration::from_secs(20), |s| s.contains("Forwarding from")),
        "port-forward: {} / {}",
        pf.stdout(),
        pf.stderr()
    );
    let page = c.exec_ok(
        0,
        &["curl", "-s", "-m", "10", "http://127.0.0.1:18080/etc/group"],
    );
    assert!(page.contains("root:x:0:"), "port-forward page: {page}");
    pf.kill();

    // A crashing container reaches CrashLoopBackOff with growing back-off.
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: crasher}}
spec:
  containers:
  - name: crasher
    image: {BUSYBOX}
    command: ["sh", "-c", "echo dying; exit 1"]
"#
        ),
    );
    let p = wait_pod(&k, "crasher", "CrashLoopBackOff after 2 restarts", |p| {
        let cs = container_state(p);
        cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            && cs["restartCount"].as_i64().unwrap_or(0) >= 2
    });
    let cs = container_state(&p);
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    let msg = cs["state"]["waiting"]["message"].as_str().unwrap();
    assert!(msg.starts_with("back-off "), "{msg}");
    assert_eq!(k.ok(&["logs", "crasher", "--previous"]).trim(), "dying");

    // A missing image: ErrImagePull, then ImagePullBackOff.
    k.ok(&["run", "noimage", "--image", "localhost/does-not-exist:1"]);
    wait_pod(&k, "noimage", "ImagePullBackOff", |p| {
        container_state(p)["state"]["waiting"]["reason"] == "ImagePullBackOff"
    });
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=noimage",
    ]);
    assert!(events.contains("ErrImagePull"), "{events}");

    // An init container runs first; configMap, secret, emptyDir, projected and downward
    // API volumes are readable inside; env from a ConfigMap key.
    k.ok(&["create", "configmap", "cm1", "--from-literal=key=value"]);
    k.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "--from-literal=pass=s3cr3t",
    ]);
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: volpod, labels: {{tier: x}}}}
spec:
  serviceAccountName: default
  initContainers:
  - name: init
    image: {BUSYBOX}
    command: ["sh", "-c", "echo from-init > /work/ready"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: main
    image: {BUSYBOX}
    env:
    - name: FROM_CM
      valueFrom: {{configMapKeyRef: {{name: cm1, key: key}}}}
    - name: MY_POD
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
    command: ["sh", "-c", "set -e; test \"$(cat /work/ready)\" = from-init; test \"$(cat /cm/key)\" = value; test \"$(cat /sec/pass)\" = s3cr3t; test \"$(cat /proj/key)\" = value; test \"$(cat /proj/name)\" = volpod; grep -q tier /info/labels; grep -q '^ey' /sa/token; grep -q 'BEGIN CERTIFICATE' /sa/ca.crt; test \"$(cat /sa/namespace)\" = default; test \"$FROM_CM\" = value; test \"$MY_POD\" = volpod; echo all-volumes-ok; sleep 3600"]
    volumeMounts:
    - {{name: work, mountPath: /work}}
    - {{name: cm, mountPath: /cm}}
    - {{name: sec, mountPath: /sec}}
    - {{name: proj, mountPath: /proj}}
    - {{name: info, mountPath: /info}}
    - {{name: kube-api-access, mountPath: /sa, readOnly: true}}
  volumes:
  - {{name: work, emptyDir: {{}}}}
  - {{name: cm, configMap: {{name: cm1}}}}
  - {{name: sec, secret: {{secretName: s1}}}}
  - name: proj
    projected:
      sources:
      - configMap: {{name: cm1}}
      - downwardAPI: {{items: [{{path: name, fieldRef: {{fieldPath: metadata.name}}}}]}}
  - name: info
    downwardAPI: {{items: [{{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]}}
  - name: kube-api-access
    projected:
      sources:
      - serviceAccountToken: {{expirationSeconds: 3607, path: token}}
      - configMap: {{name: kube-root-ca.crt, items: [{{key: ca.crt, path: ca.crt}}]}}
      - downwardAPI: {{items: [{{path: namespace, fieldRef: {{fieldPath: metadata.namespace}}}}]}}
"#
        ),
    );
    let p = wait_pod(&k, "volpod", "Running", running_ready);
    assert_eq!(container_state(&p)["restartCount"], 0, "{p:#}");
    assert_eq!(
        p["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    assert_eq!(k.ok(&["logs", "volpod"]).trim(), "all-volumes-ok");
    let secret_file = k.ok(&["exec", "volpod", "--", "cat", "/sec/pass"]);
    assert_eq!(secret_file, "s3cr3t");

    // A failing liveness probe restarts the container.
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: live}}
spec:
  containers:
  - name: live
    image: {BUSYBOX}
    command: ["sh", "-c", "touch /tmp/healthy; sleep 4; rm /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec: {{command: ["cat", "/tmp/healthy"]}}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 2
"#
        ),
    );
    wait_pod(&k, "live", "restarted by its liveness probe", |p| {
        container_state(p)["restartCount"].as_i64().unwrap_or(0) >= 1
    });
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=live",
    ]);
    assert!(events.contains("Liveness probe failed"), "{events}");

    // A readiness probe gates Ready.
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: ready}}
spec:
  containers:
  - name: ready
    image: {BUSYBOX}
    command: ["sh", "-c", "sleep 3; touch /tmp/ready; sleep 3600"]
    readinessProbe:
      exec: {{command: ["cat", "/tmp/ready"]}}
      periodSeconds: 1
"#
        ),
    );
    let p = wait_pod(&k, "ready", "Running", |p| {
        p["status"]["phase"] == "Running"
    });
    if !is_ready(&p) {
        wait_pod(&k, "ready", "Ready", is_ready);
    }

    // A memory hog is OOMKilled.
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: hog}}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: {BUSYBOX}
    command: ["sh", "-c", "head -c 300000000 /dev/zero | tail"]
    resources: {{limits: {{memory: 32Mi}}}}
"#
        ),
    );
    let p = wait_pod(&k, "hog", "Failed", |p| p["status"]["phase"] == "Failed");
    assert_eq!(
        container_state(&p)["state"]["terminated"]["reason"],
        "OOMKilled",
        "{p:#}"
    );
    assert_eq!(p["status"]["qosClass"], "Burstable");

    // delete runs preStop and honours the grace period.
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  terminationGracePeriodSeconds: 4
  containers:
  - name: g
    image: {BUSYBOX}
    command: ["httpd", "-f", "-p", "8080"]
    lifecycle:
      preStop:
        exec: {{command: ["sh", "-c", "sleep 2"]}}
"#
        ),
    );
    wait_pod(&k, "graceful", "Running", running_ready);
    let started = Instant::now();
    k.ok(&["delete", "pod", "graceful", "--wait=true", "--timeout=60s"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "deletion took {took:?}"
    );

    // A static pod from the agent's manifest directory appears as a mirror pod.
    let manifests = c.data_dir(1).join("agent/pod-manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("static-web.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\n  namespace: default\nspec:\n  containers:\n  - name: web\n    image: {BUSYBOX}\n    command: [\"httpd\", \"-f\", \"-p\", \"8081\"]\n"
        ),
    )
    .unwrap();
    let mirror = format!("static-web-{h1}");
    let p = wait_pod(&k, &mirror, "Running", running_ready);
    assert_eq!(
        p["metadata"]["annotations"]["kubernetes.io/config.source"],
        "file"
    );
    assert!(p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string());
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Node");

    // drain empties a node: web pods move to h1.
    k.ok(&[
        "drain",
        &h2,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--force",
        "--timeout=90s",
    ]);
    wait_for("web pods all on h1", Duration::from_secs(90), || {
        let ps = pods(&k, "app=web");
        (ps.len() == 4
            && ps
                .iter()
                .all(|p| p["spec"]["nodeName"] == h1.as_str() && running_ready(p)))
        .then_some(())
    });
    let left = json(
        &k,
        &[
            "get",
            "pods",
            "--field-selector",
            &format!("spec.nodeName={h2}"),
        ],
    );
    assert_eq!(left["items"].as_array().unwrap().len(), 0, "{left:#}");
    k.ok(&["uncordon", &h2]);

    c.shutdown().expect("cluster teardown");
}

#[test]
fn agent_restart_keeps_pods_and_node_loss_moves_them() {
    if !netns_prerequisites() {
        return;
    }
    // h3 is always under memory pressure (a hard threshold above its memory) and tainted
    // so the scheduler leaves it alone.
    let mut c = Cluster::start(ClusterOpts {
        agents: 3,
        server_agent: false,
        agent_opts: vec![
            agent(vec![], vec![]),
            agent(vec![], vec![]),
            AgentOpts {
                taints: vec!["dedicated=pressure:NoSchedule".into()],
                extra_args: vec![
                    "--eviction-hard".into(),
                    "memory.available<100Ti,nodefs.available<1%,imagefs.available<1%".into(),
                ],
                ..Default::default()
            },
        ],
        ..Default::default()
    })
    .expect("starting a server and three agents");
    let k = c.kubectl();
    let (h1, h2, h3) = (c.node_name(1), c.node_name(2), c.node_name(3));

    // Node pressure: MemoryPressure is reported and new pods are refused with Evicted.
    wait_for(
        &format!("{h3} MemoryPressure"),
        Duration::from_secs(60),
        || {
            let n = json(&k, &["get", "node", &h3]);
            n["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "MemoryPressure" && c["status"] == "True")
                .then_some(())
        },
    );
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: squeezed}}
spec:
  nodeName: {h3}
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sleep", "3600"]
"#
        ),
    );
    let p = wait_pod(&k, "squeezed", "Failed", |p| {
        p["status"]["phase"] == "Failed"
    });
    assert_eq!(p["status"]["reason"], "Evicted", "{p:#}");
    let msg = p["status"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("MemoryPressure"), "{msg}");
    // Short tolerations so a lost node's pods move within the test.
    apply(
        &k,
        &format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: app}}
spec:
  replicas: 4
  selector: {{matchLabels: {{app: app}}}}
  template:
    metadata: {{labels: {{app: app}}}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}}
      - {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}}
      containers:
      - name: app
        image: {BUSYBOX}
        command: ["httpd", "-f", "-p", "8080"]
"#
        ),
    );
    let before = wait_for("4 app pods Ready", Duration::from_secs(90), || {
        let ps = pods(&k, "app=app");
        (ps.len() == 4 && ps.iter().all(running_ready)).then_some(ps)
    });
    let ids = |ps: &[Value], node: &str| -> Vec<String> {
        let mut v: Vec<String> = ps
            .iter()
            .filter(|p| p["spec"]["nodeName"] == node)
            .map(|p| {
                container_state(p)["containerID"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    };
    let h1_before = ids(&before, &h1);
    assert!(!h1_before.is_empty(), "no pods on {h1}");

    // Restarting an agent does not restart its healthy pods.
    c.stop_agent(1).unwrap();
    c.start_agent(1).unwrap();
    c.wait_nodes_ready(&[1], Duration::from_secs(60)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let after = pods(&k, "app=app");
    assert_eq!(ids(&after, &h1), h1_before, "containers changed on restart");
    for p in after
        .iter()
        .filter(|p| p["spec"]["nodeName"] == h1.as_str())
    {
        assert_eq!(container_state(p)["restartCount"], 0);
        assert!(running_ready(p), "{p:#}");
    }

    // Stopping an agent makes its node NotReady, and its Deployment pods are recreated on
    // the other node.
    c.kill_agent(2).unwrap();
    wait_for(&format!("{h2} NotReady"), Duration::from_secs(90), || {
        let n = json(&k, &["get", "node", &h2]);
        n["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "Unknown")
            .then_some(())
    });
    wait_for("4 app pods Ready on h1", Duration::from_secs(90), || {
        let ps = pods(&k, "app=app");
        let live: Vec<&Value> = ps
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        (live.len() == 4
            && live
                .iter()
                .all(|p| p["spec"]["nodeName"] == h1.as_str() && running_ready(p)))
        .then_some(())
    });
    c.shutdown().expect("cluster teardown");
}
