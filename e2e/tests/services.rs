//! Issue 5 acceptance: Services on the three-host netns cluster (a server and two agents),
//! driven by real kubectl, once with the default nftables proxy and once with
//! `--proxy-mode iptables`: a Deployment of three busybox httpd pods spread over both
//! agents behind a Service answers by name and ClusterIP from a pod on each agent, every
//! backend answers, the NodePort answers from another host, scaling to zero refuses at
//! once, readiness takes a pod out of rotation and back, a headless Service resolves to all
//! pod IPs, SRV works for named ports, hairpin works, ClientIP affinity sticks, deleting the
//! Service removes its rules and name, and an agent restart keeps Services working without
//! duplicate rules.

use e2e::cluster::{netns_prerequisites, AgentOpts, Cluster, ClusterOpts};
use e2e::Kubectl;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const BUSYBOX: &str = "localhost/busybox:1.35";

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

fn apply(k: &Kubectl, yaml: &str) {
    let out = k.with_stdin(&["apply", "-f", "-"], yaml);
    assert_eq!(out.code, 0, "apply failed: {}\n{yaml}", out.stderr);
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Names and IPs of the ready pods with `app=<app>`.
fn ready_pods(k: &Kubectl, app: &str) -> Vec<(String, String, String)> {
    json(k, &["get", "pods", "-l", &format!("app={app}")])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| is_ready(p) && p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["status"]["podIP"].as_str().unwrap_or("").to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Runs `sh -c script` in a pod; (exit code, stdout + stderr).
fn sh(k: &Kubectl, pod: &str, script: &str) -> (i32, String) {
    let out = k.run(&["exec", pod, "--", "sh", "-c", script]);
    (out.code, format!("{}{}", out.stdout, out.stderr))
}

#[track_caller]
fn sh_ok(k: &Kubectl, pod: &str, script: &str) -> String {
    let (code, out) = sh(k, pod, script);
    assert_eq!(code, 0, "in {pod}: {script}\n{out}");
    out
}

/// `n` GETs of `url` from `pod`; the distinct bodies (each backend serves its hostname).
fn backends_seen(k: &Kubectl, pod: &str, url: &str, n: usize) -> BTreeSet<String> {
    let script =
        format!("for i in $(seq {n}); do timeout 5 wget -q -O - {url} || echo FAILED; done");
    let out = sh_ok(k, pod, &script);
    let seen: BTreeSet<String> = out.lines().map(|l| l.trim().to_string()).collect();
    assert!(!seen.contains("FAILED"), "from {pod} to {url}: {out}");
    seen
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: httpd
        image: localhost/busybox:1.35
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /www"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          exec: {command: ["test", "-f", "/tmp/ready"]}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080, targetPort: http}]
"#;

fn client_pod(name: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{role: client}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  containers:
  - {{name: c, image: {BUSYBOX}, command: ["sleep", "100000"]}}
"#
    )
}

/// The proxy's rules on host `i` as text (`nft list table` or `iptables-save`).
fn rules(c: &Cluster, i: usize, mode: &str) -> String {
    if mode == "iptables" {
        c.exec_ok(i, &["iptables-save"])
    } else {
        c.exec_ok(i, &["nft", "list", "ruleset"])
    }
}

fn nslookup_ips(k: &Kubectl, pod: &str, name: &str) -> BTreeSet<String> {
    let out = sh_ok(k, pod, &format!("nslookup {name}"));
    // busybox prints the server first ("Server:", "Address: 10.43.0.10:53"), then answers.
    out.split("Name:")
        .skip(1)
        .flat_map(|block| {
            block
                .lines()
                .filter_map(|l| l.trim().strip_prefix("Address:"))
                .map(|a| a.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn service_suite(mode: &str) {
    if !netns_prerequisites() {
        return;
    }
    let mut extra = vec![
        "--eviction-hard".to_string(),
        "memory.available<100Mi,nodefs.available<1%,imagefs.available<1%".to_string(),
    ];
    if mode == "iptables" {
        extra.extend(["--proxy-mode".to_string(), "iptables".to_string()]);
    }
    let opts = AgentOpts {
        extra_args: extra,
        ..Default::default()
    };
    let mut c = Cluster::start(ClusterOpts {
        agents: 2,
        server_agent: false,
        agent_opts: vec![opts.clone(), opts],
        ..Default::default()
    })
    .expect("starting a server and two agents");
    let k = c.kubectl();
    let (h1, h2) = (c.node_name(1), c.node_name(2));

    // The built-in Services.
    let kubernetes = json(&k, &["get", "service", "kubernetes"]);
    assert_eq!(kubernetes["spec"]["clusterIP"], "10.43.0.1");
    let dns = json(&k, &["-n", "kube-system", "get", "service", "kube-dns"]);
    assert_eq!(dns["spec"]["clusterIP"], "10.43.0.10");

    apply(&k, WEB);
    apply(&k, &client_pod("client-1", &h1));
    apply(&k, &client_pod("client-2", &h2));
    let backends = wait_for(
        "3 ready web pods on both agents",
        Duration::from_secs(120),
        || {
            let p = ready_pods(&k, "web");
            let nodes: BTreeSet<&str> = p.iter().map(|(_, _, n)| n.as_str()).collect();
            (p.len() == 3 && nodes.len() == 2).then_some(p)
        },
    );
    let names: BTreeSet<String> = backends.iter().map(|(n, _, _)| n.clone()).collect();
    for client in ["client-1", "client-2"] {
        wait_for(client, Duration::from_secs(60), || {
            is_ready(&json(&k, &["get", "pod", client])).then_some(())
        });
    }
    let svc = json(&k, &["get", "service", "web"]);
    let cluster_ip = svc["spec"]["clusterIP"]
        .as_str()
        .expect("clusterIP")
        .to_string();
    let node_port = svc["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .expect("nodePort");
    assert!((30000..=32767).contains(&node_port));

    // EndpointSlice and Endpoints follow the pods.
    wait_for(
        "endpointslice with 3 ready endpoints",
        Duration::from_secs(30),
        || {
            let s = json(
                &k,
                &[
                    "get",
                    "endpointslices",
                    "-l",
                    "kubernetes.io/service-name=web",
                ],
            );
            let n = s["items"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|i| i["endpoints"].as_array().cloned().unwrap_or_default())
                .filter(|e| e["conditions"]["ready"] == true)
                .count();
            (n == 3).then_some(())
        },
    );
    let ep = json(&k, &["get", "endpoints", "web"]);
    assert_eq!(
        ep["subsets"][0]["addresses"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], 8080);

    // By name, short name and ClusterIP, from a pod on each agent; every backend answers.
    for client in ["client-1", "client-2"] {
        let seen = backends_seen(&k, client, "http://web.default.svc.cluster.local", 30);
        assert_eq!(seen, names, "backends seen from {client}");
        let seen = backends_seen(&k, client, "http://web", 10);
        assert!(seen.is_subset(&names) && !seen.is_empty());
        let seen = backends_seen(&k, client, &format!("http://{cluster_ip}"), 10);
        assert!(seen.is_subset(&names) && !seen.is_empty());
        // The API server through the `kubernetes` Service.
        sh_ok(
            &k,
            client,
            "nc -w 3 kubernetes.default.svc.cluster.local 443 </dev/null",
        );
    }

    // NodePort from another host's namespace (the server's), to each agent's address.
    for i in [1, 2] {
        let url = format!("http://{}:{node_port}/", c.host_ip(i));
        let mut seen = BTreeSet::new();
        for _ in 0..12 {
            let out = c.exec_in(0, &["curl", "-s", "-m", "5", &url]);
            assert_eq!(
                out.code,
                0,
                "NodePort {url} from the server's host: {}\nrules on h{i}:\n{}\nconntrack:\n{}",
                out.stderr,
                rules(&c, i, mode),
                c.exec_in(i, &["conntrack", "-L"]).stdout
            );
            seen.insert(out.stdout.trim().to_string());
        }
        assert!(seen.is_subset(&names) && !seen.is_empty(), "{seen:?}");
    }

    // Headless: all pod IPs. SRV for the named port.
    let pod_ips: BTreeSet<String> = backends.iter().map(|(_, ip, _)| ip.clone()).collect();
    let got = wait_for(
        "headless name resolves to the pod IPs",
        Duration::from_secs(20),
        || {
            let got = nslookup_ips(&k, "client-1", "web-headless.default.svc.cluster.local");
            (got == pod_ips).then_some(got)
        },
    );
    assert_eq!(got, pod_ips);
    let srv = sh_ok(
        &k,
        "client-1",
        "nslookup -type=srv _http._tcp.web.default.svc.cluster.local",
    );
    assert!(
        srv.contains("web.default.svc.cluster.local") && srv.contains("80"),
        "SRV answer: {srv}"
    );

    // Hairpin: a backend reaches its own Service, and sometimes itself through it.
    let (me, _, _) = &backends[0];
    let seen = backends_seen(&k, me, "http://web", 30);
    assert!(
        seen.contains(me),
        "{me} never reached itself through web: {seen:?}"
    );

    // Readiness: a pod failing its probe leaves the rotation, and comes back.
    let (sick, _, _) = &backends[1];
    sh_ok(&k, sick, "rm /tmp/ready");
    wait_for("pod out of the endpoints", Duration::from_secs(30), || {
        (ready_pods(&k, "web").len() == 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let seen = backends_seen(&k, "client-1", "http://web", 30);
    assert!(!seen.contains(sick), "{sick} still served while not ready");
    sh_ok(&k, sick, "touch /tmp/ready");
    wait_for("pod back in rotation", Duration::from_secs(30), || {
        let seen = backends_seen(&k, "client-2", "http://web", 15);
        seen.contains(sick).then_some(())
    });

    // ClientIP affinity keeps one backend.
    k.ok(&[
        "patch",
        "service",
        "web",
        "-p",
        r#"{"spec":{"sessionAffinity":"ClientIP"}}"#,
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let seen = backends_seen(&k, "client-1", "http://web", 20);
    assert_eq!(seen.len(), 1, "ClientIP affinity: {seen:?}");
    k.ok(&[
        "patch",
        "service",
        "web",
        "-p",
        r#"{"spec":{"sessionAffinity":"None"}}"#,
    ]);

    // Agent restart: Services keep working, no duplicate rules.
    // The rules once the proxy has caught up with the affinity change above.
    let before = wait_for("stable rules", Duration::from_secs(20), || {
        let a = rules(&c, 1, mode);
        std::thread::sleep(Duration::from_secs(1));
        let b = rules(&c, 1, mode);
        (a.lines().count() == b.lines().count()
            && !b.contains("recent")
            && !b.contains("affinity-"))
        .then_some(b)
    });
    c.stop_agent(1).expect("stop agent 1");
    c.start_agent(1).expect("start agent 1");
    c.wait_nodes_ready(&[1], Duration::from_secs(60))
        .expect("agent 1 ready again");
    wait_for("services after restart", Duration::from_secs(30), || {
        let (code, _) = sh(&k, "client-1", "timeout 3 wget -q -O - http://web");
        (code == 0).then_some(())
    });
    // The restarted kubelet re-probes readiness (a pod on it is NotReady until its first
    // probe passes, as upstream); then every backend answers again.
    wait_for(
        "every backend after restart",
        Duration::from_secs(30),
        || {
            let seen = backends_seen(&k, "client-1", "http://web.default.svc.cluster.local", 30);
            (ready_pods(&k, "web").len() == 3 && seen == names).then_some(())
        },
    );
    let after = rules(&c, 1, mode);
    let count = |t: &str| t.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(
        count(&before),
        count(&after),
        "rule count changed across a restart\nbefore:\n{before}\nafter:\n{after}"
    );
    if mode == "iptables" {
        let jumps: Vec<&str> = after
            .lines()
            .filter(|l| l.starts_with("-A ") && l.contains("-j KUBE-"))
            .collect();
        let unique: BTreeSet<&str> = jumps.iter().copied().collect();
        assert_eq!(jumps.len(), unique.len(), "duplicate rules: {after}");
    } else {
        assert_eq!(after.matches("table ip kube-proxy").count(), 1);
    }

    // Scale to zero: refused at once.
    k.ok(&["scale", "deployment", "web", "--replicas", "0"]);
    wait_for("no web pods", Duration::from_secs(60), || {
        json(&k, &["get", "pods", "-l", "app=web"])["items"]
            .as_array()
            .is_some_and(|a| a.is_empty())
            .then_some(())
    });
    wait_for("connection refused", Duration::from_secs(20), || {
        let t = Instant::now();
        let (code, out) = sh(&k, "client-2", "timeout 5 wget -q -O - http://web");
        (code != 0 && out.contains("refused") && t.elapsed() < Duration::from_secs(2)).then_some(())
    });

    // Deleting the Service removes its rules and its DNS name.
    k.ok(&["delete", "service", "web"]);
    wait_for("rules gone", Duration::from_secs(20), || {
        [1, 2]
            .iter()
            .all(|&i| !rules(&c, i, mode).contains(&cluster_ip))
            .then_some(())
    });
    wait_for("name gone", Duration::from_secs(20), || {
        let (code, out) = sh(&k, "client-1", "nslookup web.default.svc.cluster.local");
        (code != 0 || out.contains("NXDOMAIN")).then_some(())
    });

    c.shutdown().expect("teardown");
}

#[test]
fn services_with_nftables_proxy() {
    service_suite("nftables");
}

#[test]
fn services_with_iptables_proxy() {
    service_suite("iptables");
}
