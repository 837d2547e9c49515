//! Acceptance for the scheduler (and the parts of the controller manager that act on
//! nodes): real kubectl against `minik8s server` with a [`FakeKubelet`] playing the nodes.

use e2e::{wait_for, FakeKubelet, FakeNode, Kubectl, Server, ServerOpts};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn pod(name: &str, spec_extra: Value) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], "terminationGracePeriodSeconds": 5},
    });
    if let Value::Object(m) = spec_extra {
        for (k, v) in m {
            p["spec"][k] = v;
        }
    }
    p
}

fn affinity(key: &str, op: &str, values: &[&str]) -> Value {
    let mut expr = json!({"key": key, "operator": op});
    if !values.is_empty() {
        expr["values"] = json!(values);
    }
    json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [expr]}]}}})
}

fn gpu_toleration(op: &str) -> Value {
    if op == "Exists" {
        json!([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}])
    } else {
        json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}])
    }
}

/// Waits until the pod is bound and Running; returns its node.
#[track_caller]
fn running_on(k: &Kubectl, name: &str) -> String {
    wait_for(T, &format!("pod {name} to run"), || {
        let out = k.jsonpath(&["pod", name], "{.spec.nodeName} {.status.phase}")?;
        let (node, phase) = out.split_once(' ')?;
        (phase == "Running" && !node.is_empty()).then(|| node.to_string())
    })
}

/// The FailedScheduling event message of a pod (waits for it).
#[track_caller]
fn failed_scheduling(k: &Kubectl, pod: &str) -> String {
    let sel = format!("reason=FailedScheduling,involvedObject.name={pod}");
    wait_for(T, &format!("FailedScheduling for {pod}"), || {
        let out = k.jsonpath(
            &["events", "--field-selector", &sel],
            "{range .items[*]}{.message}{\"\\n\"}{end}",
        )?;
        out.lines().last().map(str::to_string)
    })
}

#[track_caller]
fn assert_pending(k: &Kubectl, name: &str) {
    std::thread::sleep(Duration::from_millis(500));
    let out = k.jsonpath(
        &["pod", name],
        "{.spec.nodeName}|{.status.phase}|{.status.conditions[?(@.type==\"PodScheduled\")].reason}",
    );
    assert_eq!(out.as_deref(), Some("|Pending|Unschedulable"), "pod {name}");
}

#[test]
fn scheduling_filters_taints_cordon_and_fit() {
    if !e2e::prerequisites() {
        return;
    }
    let server = Server::start(ServerOpts::embedded()).unwrap();
    let k = server.kubectl();
    let _kubelet = FakeKubelet::start(
        server.client(),
        vec![
            FakeNode::new("n1")
                .label("disk", "ssd")
                .label("zone", "a")
                .label("size", "10"),
            FakeNode::new("n2").label("disk", "hdd").label("size", "5"),
            FakeNode::new("n3")
                .label("size", "1")
                .taint("dedicated", "gpu", "NoSchedule"),
        ],
    )
    .unwrap();
    let nodes = k.ok(&["get", "nodes"]);
    assert_eq!(nodes.matches(" Ready ").count(), 3, "{nodes}");

    // --- placement by name, selector and every node-affinity operator -------------------
    let cases: Vec<(&str, Value, &str)> = vec![
        ("by-name", json!({"nodeName": "n2"}), "n2"),
        ("selector", json!({"nodeSelector": {"disk": "ssd"}}), "n1"),
        (
            "op-in",
            json!({"affinity": affinity("disk", "In", &["hdd"])}),
            "n2",
        ),
        (
            "op-notin",
            json!({"affinity": affinity("disk", "NotIn", &["ssd", "hdd"]), "tolerations": gpu_toleration("Equal")}),
            "n3",
        ),
        (
            "op-exists",
            json!({"affinity": affinity("zone", "Exists", &[])}),
            "n1",
        ),
        (
            "op-dne",
            json!({"affinity": affinity("disk", "DoesNotExist", &[]), "tolerations": gpu_toleration("Exists")}),
            "n3",
        ),
        (
            "op-gt",
            json!({"affinity": affinity("size", "Gt", &["7"])}),
            "n1",
        ),
        (
            "op-lt",
            json!({"affinity": affinity("size", "Lt", &["3"]), "tolerations": gpu_toleration("Equal")}),
            "n3",
        ),
    ];
    for (name, spec, _) in &cases {
        k.apply_json("create", &pod(name, spec.clone()));
    }
    for (name, _, want) in &cases {
        assert_eq!(running_on(&k, name), *want, "pod {name}");
    }
    let wide = k.ok(&["get", "pod", "op-gt", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    let row: Vec<&str> = wide.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!((row[1], row[2], row[6]), ("1/1", "Running", "n1"), "{wide}");

    // --- an untolerated NoSchedule taint: Pending with the upstream message --------------
    k.apply_json(
        "create",
        &pod(
            "untolerated",
            json!({"affinity": affinity("size", "Lt", &["3"])}),
        ),
    );
    assert_eq!(
        failed_scheduling(&k, "untolerated"),
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    assert_pending(&k, "untolerated");
    // Tolerating it afterwards is not possible (tolerations may only be added) ... so the
    // pod is replaced by one with an Exists toleration.
    k.ok(&["delete", "pod", "untolerated", "--wait=false"]);

    // --- PreferNoSchedule: the scheduler prefers the untainted node ----------------------
    k.ok(&["taint", "nodes", "n2", "soft=yes:PreferNoSchedule"]);
    let both = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1", "n2"]}]}]}}});
    for i in 0..3 {
        let name = format!("prefer-{i}");
        k.apply_json("create", &pod(&name, json!({"affinity": both})));
        assert_eq!(running_on(&k, &name), "n1", "PreferNoSchedule on n2");
    }
    // Tolerating the soft taint makes n2 (less loaded) the better node again.
    k.apply_json(
        "create",
        &pod(
            "prefer-tolerant",
            json!({"affinity": both, "tolerations": [{"key": "soft", "operator": "Equal", "value": "yes", "effect": "PreferNoSchedule"}]}),
        ),
    );
    assert_eq!(running_on(&k, "prefer-tolerant"), "n2");
    k.ok(&["taint", "nodes", "n2", "soft-"]);

    // --- NoExecute: untolerating pods on the node are evicted, tolerating ones stay ------
    k.apply_json(
        "create",
        &pod(
            "noexec-tolerant",
            json!({"nodeName": "n2", "tolerations": [{"key": "evict", "operator": "Exists", "effect": "NoExecute"}]}),
        ),
    );
    running_on(&k, "noexec-tolerant");
    k.ok(&["taint", "nodes", "n2", "evict=now:NoExecute"]);
    wait_for(T, "pods on n2 without a toleration to be evicted", || {
        let out = k.ok(&[
            "get",
            "pods",
            "--field-selector",
            "spec.nodeName=n2",
            "-o",
            "name",
        ]);
        (out.trim() == "pod/noexec-tolerant").then_some(())
    });
    let ev = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=by-name",
    ]);
    assert!(ev.contains("TaintManagerEviction"), "{ev}");
    // A NoExecute taint also keeps new pods away.
    k.apply_json(
        "create",
        &pod(
            "noexec-new",
            json!({"affinity": affinity("disk", "In", &["hdd"])}),
        ),
    );
    let msg = failed_scheduling(&k, "noexec-new");
    assert!(
        msg.starts_with("0/3 nodes are available: ")
            && msg.contains("1 node(s) had untolerated taint {evict: now}"),
        "{msg}"
    );
    k.ok(&["taint", "nodes", "n2", "evict-"]);
    assert_eq!(running_on(&k, "noexec-new"), "n2");

    // --- cordon / uncordon --------------------------------------------------------------
    let out = k.ok(&["cordon", "n1"]);
    assert_eq!(out.trim(), "node/n1 cordoned");
    let out = k.ok(&["get", "node", "n1", "--no-headers"]);
    assert!(out.contains(" Ready,SchedulingDisabled "), "{out}");
    wait_for(T, "the unschedulable taint", || {
        let t = k.jsonpath(&["node", "n1"], "{.spec.taints[*].key}")?;
        t.contains("node.kubernetes.io/unschedulable").then_some(())
    });
    k.apply_json(
        "create",
        &pod("on-ssd", json!({"nodeSelector": {"disk": "ssd"}})),
    );
    assert_eq!(
        failed_scheduling(&k, "on-ssd"),
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    assert_pending(&k, "on-ssd");
    assert_eq!(k.ok(&["uncordon", "n1"]).trim(), "node/n1 uncordoned");
    assert_eq!(running_on(&k, "on-ssd"), "n1");

    // --- resource fit -------------------------------------------------------------------
    let mut big = pod("big", json!({}));
    big["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "100", "memory": "1Gi"}});
    k.apply_json("create", &big);
    assert_eq!(
        failed_scheduling(&k, "big"),
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
    );
    assert_pending(&k, "big");
    let out = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=FailedScheduling",
    ]);
    let line = out
        .lines()
        .find(|l| l.contains("pod/big"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("Warning   FailedScheduling   pod/big"),
        "{out}"
    );
    let desc = k.ok(&["describe", "pod", "big"]);
    assert!(desc.contains("Insufficient cpu"), "{desc}");
    assert!(desc.contains("default-scheduler"), "{desc}");
}

fn spread_deploy(replicas: u32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "spread"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "spread"}},
            "template": {"metadata": {"labels": {"app": "spread"}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": "nginx"}],
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "spread"}}, "topologyKey": "kubernetes.io/hostname"}]}}}}},
    })
}

#[test]
fn anti_affinity_and_preemption() {
    if !e2e::prerequisites() {
        return;
    }
    let server = Server::start(ServerOpts::embedded()).unwrap();
    let k = server.kubectl();
    let _kubelet = FakeKubelet::start(
        server.client(),
        (1..=3)
            .map(|i| FakeNode::new(&format!("a{i}")).cpu("2"))
            .collect(),
    )
    .unwrap();

    // --- required pod anti-affinity spreads replicas one per node -----------------------
    k.apply_json("create", &spread_deploy(3));
    let nodes = wait_for(T, "3 spread pods running", || {
        let out = k.jsonpath(
            &[
                "pods",
                "-l",
                "app=spread",
                "--field-selector",
                "status.phase=Running",
            ],
            "{.items[*].spec.nodeName}",
        )?;
        let mut n: Vec<String> = out.split_whitespace().map(str::to_string).collect();
        n.sort();
        (n.len() == 3).then_some(n)
    });
    assert_eq!(nodes, ["a1", "a2", "a3"]);
    k.ok(&["scale", "deploy", "spread", "--replicas=4"]);
    let pending = wait_for(T, "a pending 4th replica", || {
        let out = k.jsonpath(
            &[
                "pods",
                "-l",
                "app=spread",
                "--field-selector",
                "status.phase=Pending",
            ],
            "{.items[*].metadata.name}",
        )?;
        (!out.trim().is_empty()).then(|| out.trim().to_string())
    });
    let msg = failed_scheduling(&k, &pending);
    assert!(
        msg.starts_with("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."),
        "{msg}"
    );
    k.ok(&["delete", "deploy", "spread"]);
    wait_for(T, "spread pods gone", || {
        k.ok(&["get", "pods", "-l", "app=spread", "-o", "name"])
            .trim()
            .is_empty()
            .then_some(())
    });

    // --- preemption ---------------------------------------------------------------------
    let pc = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "high"}, "value": 1000000, "description": "vip"});
    k.apply_json("create", &pc);
    let out = k.ok(&["get", "priorityclass", "high", "--no-headers"]);
    assert!(
        out.starts_with("high ") && out.contains("1000000") && out.contains("false"),
        "{out}"
    );
    for i in 1..=3 {
        let mut p = pod(&format!("filler-{i}"), json!({}));
        p["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "1500m"}});
        k.apply_json("create", &p);
    }
    let mut filler_nodes: Vec<String> = (1..=3)
        .map(|i| running_on(&k, &format!("filler-{i}")))
        .collect();
    filler_nodes.sort();
    assert_eq!(filler_nodes, ["a1", "a2", "a3"]);

    let mut vip = pod("vip", json!({"priorityClassName": "high"}));
    vip["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "1"}});
    k.apply_json("create", &vip);
    assert_eq!(
        k.jsonpath(&["pod", "vip"], "{.spec.priority}").as_deref(),
        Some("1000000")
    );
    let node = running_on(&k, "vip");
    let nominated = k
        .jsonpath(&["pod", "vip"], "{.status.nominatedNodeName}")
        .unwrap();
    assert_eq!(nominated, node, "nominatedNodeName");
    let wide = k.ok(&["get", "pod", "vip", "-o", "wide", "--no-headers"]);
    let row: Vec<&str> = wide.split_whitespace().collect();
    assert_eq!(
        (row[6], row[7]),
        (node.as_str(), node.as_str()),
        "NODE / NOMINATED NODE: {wide}"
    );
    // Exactly the filler on that node was the victim, and it is gone.
    let out = k.ok(&["get", "pods", "-o", "name"]);
    let left: Vec<&str> = out.lines().filter(|l| l.contains("filler")).collect();
    assert_eq!(left.len(), 2, "{out}");
    let ev = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Preempted",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(ev.contains("Preempted by pod"), "{ev}");
}

#[test]
fn drain_respects_pod_disruption_budgets() {
    if !e2e::prerequisites() {
        return;
    }
    let server = Server::start(ServerOpts::embedded()).unwrap();
    let k = server.kubectl();
    let _kubelet = FakeKubelet::start(
        server.client(),
        vec![FakeNode::new("d1"), FakeNode::new("d2")],
    )
    .unwrap();
    // Two replicas, one per node, each with an emptyDir; plus a DaemonSet.
    let mut app = spread_deploy(2);
    app["metadata"]["name"] = json!("app");
    app["spec"]["selector"]["matchLabels"]["app"] = json!("app");
    let tpl = &mut app["spec"]["template"];
    tpl["metadata"]["labels"]["app"] = json!("app");
    tpl["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        [0]["labelSelector"]["matchLabels"]["app"] = json!("app");
    tpl["spec"]["volumes"] = json!([{"name": "scratch", "emptyDir": {}}]);
    tpl["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "scratch", "mountPath": "/s"}]);
    k.apply_json("create", &app);
    k.apply_json(
        "create",
        &json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
    );
    k.ok(&[
        "create",
        "pdb",
        "app-pdb",
        "--selector=app=app",
        "--min-available=2",
    ]);
    wait_for(T, "app and agent pods running", || {
        let out = k.jsonpath(
            &["pods", "--field-selector", "status.phase=Running"],
            "{.items[*].metadata.name}",
        )?;
        (out.split_whitespace().count() == 4).then_some(())
    });
    wait_for(T, "PDB status", || {
        let out = k.ok(&["get", "pdb", "app-pdb", "--no-headers"]);
        let row: Vec<&str> = out.split_whitespace().collect();
        (row[1..4] == ["2", "N/A", "0"]).then_some(())
    });
    let on_d1 = k
        .jsonpath(
            &[
                "pods",
                "-l",
                "app=app",
                "--field-selector",
                "spec.nodeName=d1",
            ],
            "{.items[0].metadata.name}",
        )
        .unwrap();

    // Without the flags drain refuses (DaemonSet pods, emptyDir data).
    let err = k.fails(&["drain", "d1", "--timeout=5s"]);
    assert!(
        err.contains("cannot delete DaemonSet-managed Pods")
            && err.contains("cannot delete Pods with local storage"),
        "{err}"
    );

    // The PDB blocks the eviction; drain retries until its timeout.
    let out = k.run(&[
        "drain",
        "d1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=8s",
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(&format!(
            "error when evicting pods/\"{on_d1}\" -n \"default\""
        )),
        "{out:?}"
    );
    assert!(out.stdout.contains("node/d1 already cordoned"), "{out:?}");
    assert!(
        out.stderr
            .contains("Warning: ignoring DaemonSet-managed Pods: default/agent-"),
        "{out:?}"
    );
    assert_eq!(
        k.jsonpath(&["pod", &on_d1], "{.metadata.deletionTimestamp}")
            .as_deref(),
        Some(""),
        "the protected pod is untouched"
    );

    // Relaxing the PDB lets the drain finish.
    k.ok(&[
        "patch",
        "pdb",
        "app-pdb",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ]);
    wait_for(T, "1 disruption allowed", || {
        let out = k.jsonpath(&["pdb", "app-pdb"], "{.status.disruptionsAllowed}")?;
        (out == "1").then_some(())
    });
    let out = k.run(&[
        "drain",
        "d1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=30s",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("evicting pod default/{on_d1}"))
            || out
                .stderr
                .contains(&format!("evicting pod default/{on_d1}")),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&format!("pod/{on_d1} evicted")),
        "{out:?}"
    );
    assert!(
        out.stdout.trim_end().ends_with("node/d1 drained"),
        "{out:?}"
    );
    // Only the DaemonSet pod is left on d1; the replacement replica cannot go anywhere.
    let out = k.ok(&[
        "get",
        "pods",
        "--field-selector",
        "spec.nodeName=d1",
        "-o",
        "name",
    ]);
    assert!(
        out.trim().starts_with("pod/agent-") && out.lines().count() == 1,
        "{out}"
    );
    let out = k.ok(&["get", "deploy", "app", "--no-headers"]);
    assert!(out.split_whitespace().nth(1) == Some("1/2"), "{out}");
    k.ok(&["uncordon", "d1"]);
    wait_for(T, "app back to 2/2", || {
        let out = k.ok(&["get", "deploy", "app", "--no-headers"]);
        (out.split_whitespace().nth(1) == Some("2/2")).then_some(())
    });
}
