//! Issue 6 acceptance (security) on the netns cluster harness, driven by real kubectl.
//!
//! * `security_on_a_cluster` (a server with its own agent h0, plus agent h1; a static token
//!   file with the users bob and alice) runs independent sections on one cluster and reports
//!   all failing sections at the end:
//!   1. bob, with a namespace `edit` RoleBinding, creates a Deployment there and gets
//!      upstream's exact 403 elsewhere;
//!   2. `kubectl auth whoami`, `auth can-i --list` and a matrix of `auth can-i` answers
//!      (stdout and exit code) follow the bindings;
//!   3. a pod's projected service-account token (copied out with `kubectl exec`, used with
//!      kubectl from the server's namespace) is refused before its RoleBinding exists,
//!      allowed after, and unauthenticated once the pod is deleted;
//!   4. impersonation needs the `impersonate` verb;
//!   5. ResourceQuota and LimitRange refuse and default with upstream's messages;
//!   6. a `restricted` PodSecurity namespace refuses a privileged pod;
//!   7. a node's credentials (the agent's kubelet.kubeconfig) cannot read a Secret of a pod
//!      on another node nor modify another Node;
//!   8. a validating webhook (deny label) and a mutating webhook (adds a label), served over
//!      TLS by the `testwebhook` binary (src/bin/testwebhook.rs) packaged into the image
//!      `localhost/testwebhook:1` and imported into each agent's containerd.
//! * `secrets_encrypted_at_rest` (server only, `--secrets-encryption`): the stored Secret in
//!   the embedded SQLite store is `k8s:enc:aescbc:v1:` ciphertext, a ConfigMap stays plain,
//!   and the Secret still reads back (also after a restart).
//! * `hostile_input_keeps_the_server_healthy` (server only): oversized bodies, deep JSON
//!   nesting, huge label values, invalid names, path traversal and a flood of watches each
//!   get a clean 4xx (or are served), and the server stays ready.
//!
//! Every kubectl and API call runs inside the server's network namespace, as in the other
//! suites; nothing is sent from the root namespace.

use base64::Engine;
use e2e::cluster::{in_netns, netns_prerequisites, AgentOpts, Cluster, ClusterOpts};
use e2e::{ApiClient, Kubectl};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUSYBOX: &str = "localhost/busybox:1.35";
const WEBHOOK_IMAGE: &str = "localhost/testwebhook:1";
const BOB_TOKEN: &str = "bob-e2e-token-7c1f0a9d2b";
const ALICE_TOKEN: &str = "alice-e2e-token-3e8d41c6a0";
/// Parks a pod: no node has this label, so admission runs but nothing is started.
const NOWHERE: &str = "nodeSelector: {e2e-nowhere: \"true\"}";
/// Kept in every agent's command line (as in the other suites): this shared machine's
/// disks are fuller than the kubelet's default eviction thresholds like.
const EVICTION: &str = "memory.available<100Mi,nodefs.available<1%,imagefs.available<1%";

// ---------------------------------------------------------------------------------------
// Helpers

/// Polls `f` every 300 ms until it gives `Some`; panics after `timeout` with `what` and the
/// last note `f` left in `last`.
#[track_caller]
fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut(&mut String) -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        if let Some(v) = f(&mut last) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last: {last}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn json_of(k: &Kubectl, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let out = k.ok(&a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {a:?}: {e}: {out}"))
}

#[track_caller]
fn apply(k: &Kubectl, yaml: &str) {
    let out = k.with_stdin(&["apply", "-f", "-"], yaml);
    assert_eq!(out.code, 0, "apply failed: {}\n{yaml}", out.stderr);
}

/// `kubectl create -f -` that must fail; returns stderr.
#[track_caller]
fn create_fails(k: &Kubectl, yaml: &str) -> String {
    let out = k.with_stdin(&["create", "-f", "-"], yaml);
    assert_ne!(
        out.code, 0,
        "create unexpectedly succeeded: {}\n{yaml}",
        out.stdout
    );
    out.stderr
}

#[track_caller]
fn assert_has(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "expected to find\n  {needle}\nin\n  {haystack}"
    );
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[track_caller]
fn wait_pod_ready(k: &Kubectl, ns: &str, pod: &str, timeout: Duration) -> Value {
    wait_until(&format!("pod {ns}/{pod} Ready"), timeout, |last| {
        let out = k.run(&["get", "pod", pod, "-n", ns, "-o", "json"]);
        let p: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        *last = format!(
            "phase {} conditions {} containers {} {}",
            p["status"]["phase"],
            p["status"]["conditions"],
            p["status"]["containerStatuses"],
            out.stderr.trim()
        );
        is_ready(&p).then_some(p)
    })
}

/// A kubeconfig for the cluster's server with the cluster CA and a bearer token (no client
/// certificate, which would win over the token), and a kubectl using it from the server's
/// namespace.
fn token_kubectl(c: &Cluster, dir: &Path, name: &str, token: &str) -> Kubectl {
    let admin: Value = serde_yaml::from_str(
        &std::fs::read_to_string(c.kubeconfig()).expect("reading the admin kubeconfig"),
    )
    .expect("parsing the admin kubeconfig");
    let cluster = &admin["clusters"][0]["cluster"];
    let kc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {
            "server": cluster["server"],
            "certificate-authority-data": cluster["certificate-authority-data"],
        }}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "e2e", "user": name}}],
        "current-context": name,
    });
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&kc).expect("kubeconfig yaml"))
        .expect("writing a kubeconfig");
    Kubectl::new(&path).in_netns(&c.netns_path(0))
}

/// Runs named sections of one suite, catching their panics so that one failing part does
/// not hide the others; [`Sections::finish`] panics listing every failure.
struct Sections {
    failures: Vec<(String, String)>,
}

impl Sections {
    fn new() -> Self {
        Sections {
            failures: Vec::new(),
        }
    }

    fn run(&mut self, name: &str, f: impl FnOnce()) {
        eprintln!("==== section {name}");
        let t = Instant::now();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(()) => eprintln!("==== section {name}: ok ({:?})", t.elapsed()),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                eprintln!("==== section {name}: FAILED ({:?}): {msg}", t.elapsed());
                self.failures.push((name.to_string(), msg));
            }
        }
    }

    fn finish(self) {
        if !self.failures.is_empty() {
            let list: Vec<String> = self
                .failures
                .iter()
                .map(|(n, m)| format!("--- {n}:\n{m}"))
                .collect();
            panic!(
                "{} section(s) failed:\n{}",
                self.failures.len(),
                list.join("\n")
            );
        }
    }
}

/// Creates namespace `ns` and waits for its `default` ServiceAccount (the ServiceAccount
/// admission plugin refuses pods until the controller has made it, as upstream).
#[track_caller]
fn create_namespace(admin: &Kubectl, ns: &str) {
    admin.ok(&["create", "namespace", ns]);
    wait_until(
        &format!("serviceaccount {ns}/default"),
        Duration::from_secs(30),
        |last| {
            let o = admin.run(&["get", "serviceaccount", "default", "-n", ns, "-o", "name"]);
            *last = o.stderr.trim().to_string();
            (o.code == 0).then_some(())
        },
    );
}

fn eviction_args() -> Vec<String> {
    vec!["--eviction-hard".to_string(), EVICTION.to_string()]
}

/// A pod that never starts (see [`NOWHERE`]); `extra` is appended to the container.
fn parked_pod(name: &str, ns: &str, container_extra: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}}}
spec:
  {NOWHERE}
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sleep", "100000"]
{container_extra}
"#
    )
}

// ---------------------------------------------------------------------------------------
// 1. A namespace `edit` binding.

const FORBIDDEN_DEFAULT_PODS: &str = r#"Error from server (Forbidden): pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "default""#;

fn rbac_user(admin: &Kubectl, bob: &Kubectl) {
    create_namespace(admin, "team-a");
    admin.ok(&[
        "create",
        "rolebinding",
        "bob-edit",
        "--clusterrole=edit",
        "--user=bob",
        "-n",
        "team-a",
    ]);
    wait_until(
        "bob may create deployments in team-a",
        Duration::from_secs(30),
        |last| {
            let o = bob.run(&["auth", "can-i", "create", "deployments", "-n", "team-a"]);
            *last = format!("{} {}", o.stdout.trim(), o.stderr.trim());
            (o.stdout.trim() == "yes").then_some(())
        },
    );
    let deploy = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: team-a}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - {{name: c, image: {BUSYBOX}, command: ["sleep", "100000"]}}
"#
    );
    let out = bob.with_stdin(&["create", "-f", "-"], &deploy);
    assert_eq!(
        out.code, 0,
        "bob creating a Deployment in team-a: {}",
        out.stderr
    );
    assert_has(&out.stdout, "deployment.apps/web created");
    bob.ok(&["get", "deployment", "web", "-n", "team-a"]);
    // The controller (not bob) makes its pods.
    wait_until("web's pod", Duration::from_secs(60), |last| {
        let o = bob.run(&["get", "pods", "-n", "team-a", "-l", "app=web", "-o", "name"]);
        *last = format!("{} {}", o.stdout.trim(), o.stderr.trim());
        (o.code == 0 && o.stdout.contains("pod/web-")).then_some(())
    });

    let err = bob.fails(&["get", "pods", "-n", "default"]);
    assert!(
        err.lines().any(|l| l.trim() == FORBIDDEN_DEFAULT_PODS),
        "want the line\n{FORBIDDEN_DEFAULT_PODS}\ngot\n{err}"
    );
    let err = bob.with_stdin(
        &["create", "-f", "-"],
        &deploy.replace("namespace: team-a", "namespace: default"),
    );
    assert_ne!(err.code, 0);
    assert_has(
        &err.stderr,
        r#"deployments.apps is forbidden: User "bob" cannot create resource "deployments" in API group "apps" in the namespace "default""#,
    );
    // edit does not include RBAC: no self-escalation.
    let err = bob.fails(&[
        "create",
        "rolebinding",
        "bob-admin",
        "--clusterrole=admin",
        "--user=bob",
        "-n",
        "team-a",
    ]);
    assert_has(
        &err,
        r#"rolebindings.rbac.authorization.k8s.io is forbidden: User "bob" cannot create resource "rolebindings" in API group "rbac.authorization.k8s.io" in the namespace "team-a""#,
    );
}

// ---------------------------------------------------------------------------------------
// 2. whoami, can-i, can-i --list.

fn can_i(bob: &Kubectl) {
    let who = json_of(bob, &["auth", "whoami"]);
    let info = &who["status"]["userInfo"];
    assert_eq!(info["username"], "bob", "{who}");
    assert_eq!(info["uid"], "uid-bob", "{who}");
    let groups: Vec<&str> = info["groups"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for g in ["devs", "qa", "system:authenticated"] {
        assert!(groups.contains(&g), "group {g} missing: {who}");
    }
    let table = bob.ok(&["auth", "whoami"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("Username") && l.trim_end().ends_with("bob")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("Groups") && l.contains("[devs qa system:authenticated]")),
        "{table}"
    );

    let matrix: &[(&[&str], bool)] = &[
        (&["create", "deployments", "-n", "team-a"], true),
        (&["delete", "pods", "-n", "team-a"], true),
        (&["get", "secrets", "-n", "team-a"], true),
        (
            &["create", "pods", "--subresource=exec", "-n", "team-a"],
            true,
        ),
        (&["list", "resourcequotas", "-n", "team-a"], true),
        (&["update", "resourcequotas", "-n", "team-a"], false),
        (&["create", "rolebindings", "-n", "team-a"], false),
        (&["list", "pods", "-n", "default"], false),
        (&["create", "deployments", "-n", "default"], false),
        (&["get", "secrets", "-n", "kube-system"], false),
        (&["list", "nodes"], false),
        (&["impersonate", "users"], false),
        (&["create", "selfsubjectaccessreviews"], true),
    ];
    let mut wrong = Vec::new();
    for (args, allowed) in matrix {
        let mut a = vec!["auth", "can-i"];
        a.extend_from_slice(args);
        let out = bob.run(&a);
        let (want, code) = if *allowed { ("yes", 0) } else { ("no", 1) };
        if out.stdout.trim() != want || out.code != code {
            wrong.push(format!(
                "can-i {}: want {want}/{code}, got {:?}/{} (stderr {:?})",
                args.join(" "),
                out.stdout.trim(),
                out.code,
                out.stderr.trim()
            ));
        }
    }
    assert!(wrong.is_empty(), "can-i matrix:\n{}", wrong.join("\n"));

    // --list: a table of resource rules for the namespace.
    let rows = |ns: &str| -> Vec<(String, String)> {
        let out = bob.ok(&["auth", "can-i", "--list", "-n", ns]);
        out.lines()
            .skip(1)
            .filter_map(|l| {
                let mut cols = l.split_whitespace();
                let res = cols.next()?.to_string();
                let verbs = l.rsplit_once('[').map(|(_, v)| v).unwrap_or("").to_string();
                Some((res, verbs))
            })
            .collect()
    };
    let team = rows("team-a");
    let verbs_of = |rows: &[(String, String)], res: &str| -> String {
        rows.iter()
            .filter(|(r, _)| r == res)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (res, verb) in [
        ("deployments.apps", "create"),
        ("deployments.apps", "list"),
        ("pods", "delete"),
        ("secrets", "get"),
        ("selfsubjectreviews.authentication.k8s.io", "create"),
    ] {
        let v = verbs_of(&team, res);
        assert!(
            v.contains(verb),
            "can-i --list -n team-a: no {verb} on {res}: {team:?}"
        );
    }
    let default = rows("default");
    assert!(
        verbs_of(&default, "deployments.apps").is_empty() && verbs_of(&default, "pods").is_empty(),
        "can-i --list -n default shows team-a's rules: {default:?}"
    );
    assert!(
        !verbs_of(&default, "selfsubjectreviews.authentication.k8s.io").is_empty(),
        "{default:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Projected service account tokens.

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn service_account_tokens(c: &Cluster, admin: &Kubectl, dir: &Path) {
    create_namespace(admin, "sa-ns");
    admin.ok(&["create", "serviceaccount", "reader", "-n", "sa-ns"]);
    apply(
        admin,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: sa-pod, namespace: sa-ns}}
spec:
  serviceAccountName: reader
  terminationGracePeriodSeconds: 0
  containers:
  - {{name: c, image: {BUSYBOX}, command: ["sleep", "100000"]}}
"#
        ),
    );
    let pod = wait_pod_ready(admin, "sa-ns", "sa-pod", Duration::from_secs(120));
    // The ServiceAccount admission plugin's projected volume and mount.
    let vol = pod["spec"]["volumes"]
        .as_array()
        .and_then(|v| {
            v.iter().find(|v| {
                v["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("kube-api-access-"))
            })
        })
        .cloned()
        .unwrap_or_else(|| panic!("no kube-api-access volume: {}", pod["spec"]));
    assert!(!vol["projected"]["sources"].is_null(), "{vol}");
    let mounted = pod["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["name"] == vol["name"] && m["mountPath"] == SA_DIR);
    assert!(mounted, "{}", pod["spec"]["containers"][0]);

    let token = admin.ok(&[
        "exec",
        "sa-pod",
        "-n",
        "sa-ns",
        "--",
        "cat",
        &format!("{SA_DIR}/token"),
    ]);
    let token = token.trim().to_string();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    let ns = admin.ok(&[
        "exec",
        "sa-pod",
        "-n",
        "sa-ns",
        "--",
        "cat",
        &format!("{SA_DIR}/namespace"),
    ]);
    assert_eq!(ns.trim(), "sa-ns");
    let ca = admin.ok(&[
        "exec",
        "sa-pod",
        "-n",
        "sa-ns",
        "--",
        "cat",
        &format!("{SA_DIR}/ca.crt"),
    ]);
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");

    let sa = token_kubectl(c, dir, "sa-pod-token", &token);
    let who = json_of(&sa, &["auth", "whoami"]);
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:serviceaccount:sa-ns:reader"
    );
    let err = sa.fails(&["get", "pods", "-n", "sa-ns"]);
    assert_has(
        &err,
        r#"Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:sa-ns:reader" cannot list resource "pods" in API group "" in the namespace "sa-ns""#,
    );

    admin.ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list,watch",
        "--resource=pods",
        "-n",
        "sa-ns",
    ]);
    admin.ok(&[
        "create",
        "rolebinding",
        "reader-pods",
        "--role=pod-reader",
        "--serviceaccount=sa-ns:reader",
        "-n",
        "sa-ns",
    ]);
    wait_until(
        "the pod's token lists pods once bound",
        Duration::from_secs(30),
        |last| {
            let o = sa.run(&["get", "pods", "-n", "sa-ns", "-o", "name"]);
            *last = format!("{} {}", o.stdout.trim(), o.stderr.trim());
            (o.code == 0 && o.stdout.contains("pod/sa-pod")).then_some(())
        },
    );
    // Only what the Role grants.
    let err = sa.fails(&["get", "secrets", "-n", "sa-ns"]);
    assert_has(
        &err,
        r#"User "system:serviceaccount:sa-ns:reader" cannot list resource "secrets""#,
    );
    let err = sa.fails(&["get", "pods", "-n", "default"]);
    assert_has(&err, "forbidden");

    // A TokenRequest token (not bound to the pod) works too. Its expiry cannot be shown
    // here: --duration has a 10-minute minimum, so expiry is covered by the in-process
    // tests; what is shown below is that a pod-bound token dies with its pod.
    let requested = admin.ok(&["create", "token", "reader", "-n", "sa-ns", "--duration=10m"]);
    let requested = token_kubectl(c, dir, "requested-token", requested.trim());
    requested.ok(&["get", "pods", "-n", "sa-ns"]);

    admin.ok(&[
        "delete",
        "pod",
        "sa-pod",
        "-n",
        "sa-ns",
        "--wait=true",
        "--timeout=90s",
    ]);
    wait_until(
        "the deleted pod's token to be refused (401)",
        Duration::from_secs(60),
        |last| {
            let o = sa.run(&["get", "pods", "-n", "sa-ns"]);
            *last = format!("code {} {} {}", o.code, o.stdout.trim(), o.stderr.trim());
            (o.code != 0 && o.stderr.contains("You must be logged in to the server")).then_some(())
        },
    );
    requested.ok(&["get", "pods", "-n", "sa-ns"]);
}

// ---------------------------------------------------------------------------------------
// 4. Impersonation.

fn impersonation(admin: &Kubectl, bob: &Kubectl) {
    // bob's kubectl has a warm discovery cache from the sections before, so the refusal
    // comes from the request itself (on a cold cache kubectl prints only "unknown" for a
    // 403 on discovery).
    bob.ok(&["get", "deployments", "-n", "team-a"]);
    let err = bob.fails(&["--as=alice", "get", "pods", "-n", "team-a"]);
    let want = r#"Error from server (Forbidden): users "alice" is forbidden: User "bob" cannot impersonate resource "users" in API group "" at the cluster scope"#;
    assert!(
        err.lines().any(|l| l.trim() == want),
        "want the line\n{want}\ngot\n{err}"
    );

    admin.ok(&[
        "create",
        "clusterrole",
        "impersonate-users",
        "--verb=impersonate",
        "--resource=users",
    ]);
    admin.ok(&[
        "create",
        "clusterrolebinding",
        "bob-impersonates",
        "--clusterrole=impersonate-users",
        "--user=bob",
    ]);
    admin.ok(&[
        "create",
        "rolebinding",
        "alice-view",
        "--clusterrole=view",
        "--user=alice",
        "-n",
        "team-a",
    ]);
    wait_until(
        "bob impersonating alice lists pods in team-a",
        Duration::from_secs(30),
        |last| {
            let o = bob.run(&["--as=alice", "get", "pods", "-n", "team-a"]);
            *last = format!("{} {}", o.code, o.stderr.trim());
            (o.code == 0).then_some(())
        },
    );
    let who = json_of(bob, &["--as=alice", "auth", "whoami"]);
    assert_eq!(who["status"]["userInfo"]["username"], "alice", "{who}");
    // As alice, only alice's rights (view): no writes.
    let err = bob.fails(&[
        "--as=alice",
        "create",
        "configmap",
        "from-alice",
        "-n",
        "team-a",
    ]);
    assert_has(
        &err,
        r#"configmaps is forbidden: User "alice" cannot create resource "configmaps" in API group "" in the namespace "team-a""#,
    );
    // Groups are a separate permission: no way into system:masters.
    let err = bob.fails(&[
        "--as=alice",
        "--as-group=system:masters",
        "get",
        "secrets",
        "-n",
        "kube-system",
    ]);
    assert_has(
        &err,
        r#"groups "system:masters" is forbidden: User "bob" cannot impersonate resource "groups" in API group "" at the cluster scope"#,
    );
}

// ---------------------------------------------------------------------------------------
// 5. ResourceQuota and LimitRange.

fn quota_and_limits(admin: &Kubectl) {
    create_namespace(admin, "quota-ns");
    apply(
        admin,
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q, namespace: quota-ns}\nspec:\n  hard: {pods: \"2\"}\n",
    );
    wait_until(
        "the quota controller to fill status.hard",
        Duration::from_secs(30),
        |last| {
            let q = json_of(admin, &["get", "resourcequota", "q", "-n", "quota-ns"]);
            *last = q["status"].to_string();
            (q["status"]["hard"]["pods"] == "2").then_some(())
        },
    );
    for p in ["p1", "p2"] {
        let out = admin.with_stdin(&["create", "-f", "-"], &parked_pod(p, "quota-ns", ""));
        assert_eq!(out.code, 0, "creating {p}: {}", out.stderr);
    }
    let err = create_fails(admin, &parked_pod("p3", "quota-ns", ""));
    assert_has(
        &err,
        r#"Error from server (Forbidden): error when creating "STDIN": pods "p3" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"#,
    );

    create_namespace(admin, "limits-ns");
    apply(
        admin,
        r#"
apiVersion: v1
kind: LimitRange
metadata: {name: lr, namespace: limits-ns}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 128Mi}
    defaultRequest: {cpu: 100m, memory: 64Mi}
    max: {cpu: "1"}
    min: {cpu: 50m}
"#,
    );
    std::thread::sleep(Duration::from_secs(2));
    let out = admin.with_stdin(
        &["create", "-f", "-"],
        &parked_pod("plain", "limits-ns", ""),
    );
    assert_eq!(out.code, 0, "creating plain: {}", out.stderr);
    let pod = json_of(admin, &["get", "pod", "plain", "-n", "limits-ns"]);
    let res = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(
        res,
        &json!({"limits": {"cpu": "500m", "memory": "128Mi"},
                "requests": {"cpu": "100m", "memory": "64Mi"}}),
        "defaults not applied"
    );
    assert_eq!(
        pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c",
        "{}",
        pod["metadata"]
    );
    let err = create_fails(
        admin,
        &parked_pod("big", "limits-ns", "    resources: {limits: {cpu: \"2\"}}"),
    );
    assert_has(
        &err,
        r#"Error from server (Forbidden): error when creating "STDIN": pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2"#,
    );
    let err = create_fails(
        admin,
        &parked_pod(
            "small",
            "limits-ns",
            "    resources: {requests: {cpu: 10m}, limits: {cpu: 10m}}",
        ),
    );
    assert_has(
        &err,
        r#"Error from server (Forbidden): error when creating "STDIN": pods "small" is forbidden: minimum cpu usage per Container is 50m, but request is 10m"#,
    );
}

// ---------------------------------------------------------------------------------------
// 6. Pod Security admission.

fn pod_security(admin: &Kubectl) {
    create_namespace(admin, "psa-ns");
    admin.ok(&[
        "label",
        "namespace",
        "psa-ns",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    let want = concat!(
        r#"Error from server (Forbidden): error when creating "STDIN": pods "priv" is forbidden: violates PodSecurity "restricted:latest": "#,
        r#"privileged (container "c" must not set securityContext.privileged=true), "#,
        r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), "#,
        r#"unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), "#,
        r#"runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), "#,
        r#"seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
    );
    // The namespace labels reach admission through a cache: retry briefly.
    let err = wait_until(
        "the privileged pod to be refused",
        Duration::from_secs(20),
        |last| {
            let out = admin.with_stdin(
                &["create", "-f", "-"],
                &parked_pod("priv", "psa-ns", "    securityContext: {privileged: true}"),
            );
            if out.code == 0 {
                *last = "created".into();
                let _ = admin.run(&["delete", "pod", "priv", "-n", "psa-ns", "--wait=false"]);
                return None;
            }
            Some(out.stderr)
        },
    );
    assert!(
        err.lines().any(|l| l.trim() == want),
        "want the line\n{want}\ngot\n{err}"
    );
    let restricted = r#"    securityContext:
      runAsNonRoot: true
      runAsUser: 65534
      allowPrivilegeEscalation: false
      capabilities: {drop: ["ALL"]}
      seccompProfile: {type: RuntimeDefault}"#;
    let out = admin.with_stdin(
        &["create", "-f", "-"],
        &parked_pod("ok", "psa-ns", restricted),
    );
    assert_eq!(out.code, 0, "a restricted-compliant pod: {}", out.stderr);
}

// ---------------------------------------------------------------------------------------
// 7. Node credentials.

fn node_credentials(c: &Cluster, admin: &Kubectl) {
    let kc = c.data_dir(1).join("agent/kubelet.kubeconfig");
    assert!(kc.is_file(), "no node kubeconfig at {}", kc.display());
    let node = Kubectl::new(&kc).in_netns(&c.netns_path(1));
    let who = json_of(&node, &["auth", "whoami"]);
    assert_eq!(
        who["status"]["userInfo"]["username"], "system:node:h1",
        "{who}"
    );

    create_namespace(admin, "node-ns");
    for h in ["h0", "h1"] {
        admin.ok(&[
            "create",
            "secret",
            "generic",
            &format!("s-{h}"),
            "--from-literal=k=v",
            "-n",
            "node-ns",
        ]);
        apply(
            admin,
            &format!(
                r#"
apiVersion: v1
kind: Pod
metadata: {{name: uses-s-{h}, namespace: node-ns}}
spec:
  nodeName: {h}
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sleep", "100000"]
    volumeMounts: [{{name: s, mountPath: /s}}]
  volumes: [{{name: s, secret: {{secretName: s-{h}}}}}]
"#
            ),
        );
    }
    // Its own pod's Secret: allowed (also shows the credentials work at all).
    wait_until(
        "h1 reads the Secret of its own pod",
        Duration::from_secs(30),
        |last| {
            let o = node.run(&["get", "secret", "s-h1", "-n", "node-ns", "-o", "name"]);
            *last = format!("{} {}", o.code, o.stderr.trim());
            (o.code == 0).then_some(())
        },
    );
    let err = node.fails(&["get", "secret", "s-h0", "-n", "node-ns"]);
    assert_has(
        &err,
        r#"Error from server (Forbidden): secrets "s-h0" is forbidden: User "system:node:h1" cannot get resource "secrets" in API group "" in the namespace "node-ns""#,
    );
    let err = node.fails(&["get", "secrets", "-n", "node-ns"]);
    assert_has(
        &err,
        r#"User "system:node:h1" cannot list resource "secrets""#,
    );
    // Reading another Node is fine; changing it is not (NodeRestriction).
    node.ok(&["get", "node", "h0"]);
    let out = node.run(&["label", "node", "h0", "e2e-hijacked=yes"]);
    if out.code == 0 {
        admin.ok(&["label", "node", "h0", "e2e-hijacked-"]);
    }
    assert_ne!(out.code, 0, "h1 labelled node h0: {}", out.stdout);
    assert_has(&out.stderr, "Error from server (Forbidden)");
    assert_has(
        &out.stderr,
        r#"node "h1" is not allowed to modify node "h0""#,
    );
}

// ---------------------------------------------------------------------------------------
// 8. Admission webhooks.

/// A CA and a serving certificate for `dns` signed by it: (ca pem, cert pem, key pem).
fn webhook_pki(dns: &str) -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.distinguished_name
        .push(DnType::CommonName, "testwebhook-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("serving key");
    let mut leaf = CertificateParams::new(vec![dns.to_string()]).expect("serving params");
    leaf.distinguished_name.push(DnType::CommonName, dns);
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).expect("serving cert");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// `path` plus every shared library `ldd` lists for it: (path in the image, bytes).
fn binary_with_libraries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        "testwebhook".to_string(),
        std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
    )];
    let out = Command::new("ldd").arg(path).output().expect("running ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
        let lib = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(lib) = lib.filter(|l| l.starts_with('/')) else {
            continue;
        };
        let bytes = std::fs::read(lib).unwrap_or_else(|e| panic!("reading {lib}: {e}"));
        files.push((lib.trim_start_matches('/').to_string(), bytes));
    }
    files
}

/// Writes the OCI archive of `localhost/testwebhook:1` to `out`.
fn build_webhook_image(out: &Path) {
    use node::images::{write_oci_archive, ImageConfig, ImageFile};
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_testwebhook"));
    let mut entries = vec![ImageFile::dir("tmp", 0o1777)];
    let mut dirs = std::collections::BTreeSet::new();
    for (path, bytes) in binary_with_libraries(&bin) {
        let mut p = Path::new(&path).parent();
        let mut chain = Vec::new();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            chain.push(d.to_string_lossy().into_owned());
            p = d.parent();
        }
        for d in chain.into_iter().rev() {
            if dirs.insert(d.clone()) {
                entries.push(ImageFile::dir(&d, 0o755));
            }
        }
        entries.push(ImageFile::file(&path, bytes, 0o755));
    }
    let config = ImageConfig {
        entrypoint: vec!["/testwebhook".to_string()],
        ..ImageConfig::default()
    };
    write_oci_archive(out, WEBHOOK_IMAGE, &entries, &config).expect("writing the webhook image");
}

/// Imports `tar` into the containerd of every host that runs a node agent (over its unix
/// socket; no network involved).
fn import_image(c: &Cluster, hosts: &[usize], tar: &Path) {
    for &i in hosts {
        let sock = c.data_dir(i).join("agent/containerd/containerd.sock");
        assert!(sock.exists(), "no containerd socket at {}", sock.display());
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&sock)
            .args([
                "--namespace",
                "k8s.io",
                "images",
                "import",
                "--snapshotter",
                "overlayfs",
            ])
            .arg(tar)
            .output()
            .expect("running ctr");
        assert!(
            out.status.success(),
            "ctr import on h{i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn webhook_config(
    kind: &str,
    name: &str,
    webhook: &str,
    path: &str,
    ops: &str,
    ca: &str,
) -> String {
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(ca);
    format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: {kind}
metadata: {{name: {name}}}
webhooks:
- name: {webhook}
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 10
  namespaceSelector: {{matchLabels: {{webhook-test: "yes"}}}}
  rules:
  - {{apiGroups: [""], apiVersions: [v1], operations: {ops}, resources: [configmaps]}}
  clientConfig:
    service: {{namespace: wh-sys, name: testwebhook, path: {path}, port: 443}}
    caBundle: {ca_b64}
"#
    )
}

fn webhooks(c: &Cluster, admin: &Kubectl, dir: &Path) {
    let tar = dir.join("testwebhook.tar");
    build_webhook_image(&tar);
    import_image(c, &[0, 1], &tar);

    let (ca, cert, key) = webhook_pki("testwebhook.wh-sys.svc");
    let cert_path = dir.join("tls.crt");
    let key_path = dir.join("tls.key");
    std::fs::write(&cert_path, &cert).expect("writing tls.crt");
    std::fs::write(&key_path, &key).expect("writing tls.key");
    create_namespace(admin, "wh-sys");
    admin.ok(&[
        "create",
        "secret",
        "tls",
        "testwebhook-tls",
        &format!("--cert={}", cert_path.display()),
        &format!("--key={}", key_path.display()),
        "-n",
        "wh-sys",
    ]);
    apply(
        admin,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: testwebhook, namespace: wh-sys, labels: {{app: testwebhook}}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: webhook
    image: {WEBHOOK_IMAGE}
    imagePullPolicy: Never
    args: ["/certs/tls.crt", "/certs/tls.key", "0.0.0.0:8443"]
    ports: [{{containerPort: 8443}}]
    readinessProbe:
      tcpSocket: {{port: 8443}}
      periodSeconds: 1
    volumeMounts: [{{name: certs, mountPath: /certs, readOnly: true}}]
  volumes: [{{name: certs, secret: {{secretName: testwebhook-tls}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: testwebhook, namespace: wh-sys}}
spec:
  selector: {{app: testwebhook}}
  ports: [{{port: 443, targetPort: 8443}}]
"#
        ),
    );
    wait_pod_ready(admin, "wh-sys", "testwebhook", Duration::from_secs(120));
    wait_until(
        "endpoints of the webhook Service",
        Duration::from_secs(30),
        |last| {
            let ep = json_of(admin, &["get", "endpoints", "testwebhook", "-n", "wh-sys"]);
            *last = ep["subsets"].to_string();
            ep["subsets"][0]["addresses"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
                .then_some(())
        },
    );

    create_namespace(admin, "wh-target");
    admin.ok(&["label", "namespace", "wh-target", "webhook-test=yes"]);
    apply(
        admin,
        &webhook_config(
            "MutatingWebhookConfiguration",
            "testwebhook-mutate",
            "mutate.testwebhook.e2e.minik8s.io",
            "/mutate",
            "[CREATE]",
            &ca,
        ),
    );
    apply(
        admin,
        &webhook_config(
            "ValidatingWebhookConfiguration",
            "testwebhook-validate",
            "deny.testwebhook.e2e.minik8s.io",
            "/validate",
            "[CREATE, UPDATE]",
            &ca,
        ),
    );
    let logs = || admin.run(&["logs", "testwebhook", "-n", "wh-sys"]).stdout;
    // The configurations reach the server through its cache: probe until mutated.
    let mut n = 0;
    let probe = wait_until(
        "a ConfigMap mutated by the webhook",
        Duration::from_secs(60),
        |last| {
            n += 1;
            let name = format!("probe-{n}");
            let o = admin.run(&["create", "configmap", &name, "-n", "wh-target"]);
            if o.code != 0 {
                *last = format!("creating {name}: {}\nwebhook log:\n{}", o.stderr, logs());
                return None;
            }
            let cm = json_of(admin, &["get", "configmap", &name, "-n", "wh-target"]);
            *last = format!("{name}: {}\nwebhook log:\n{}", cm["metadata"], logs());
            (cm["metadata"]["labels"]["mutated"] == "yes").then_some(name)
        },
    );
    let denied = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: denied, namespace: wh-target, labels: {deny: "true"}}
data: {a: b}
"#;
    let err = create_fails(admin, denied);
    assert_has(
        &err,
        r#"admission webhook "deny.testwebhook.e2e.minik8s.io" denied the request: denied by testwebhook"#,
    );
    // UPDATE is covered too.
    let err = admin.fails(&["label", "configmap", &probe, "-n", "wh-target", "deny=true"]);
    assert_has(
        &err,
        r#"admission webhook "deny.testwebhook.e2e.minik8s.io" denied the request: denied by testwebhook"#,
    );
    // Outside the selected namespaces nothing is called.
    apply(
        admin,
        &denied.replace("namespace: wh-target", "namespace: default"),
    );
    let cm = json_of(admin, &["get", "configmap", "denied", "-n", "default"]);
    assert!(cm["metadata"]["labels"]["mutated"].is_null(), "{cm}");
    let log = logs();
    assert_has(&log, "POST /mutate");
    assert_has(&log, "POST /validate");
    // Leave no Fail-policy webhooks behind.
    admin.ok(&[
        "delete",
        "mutatingwebhookconfiguration",
        "testwebhook-mutate",
    ]);
    admin.ok(&[
        "delete",
        "validatingwebhookconfiguration",
        "testwebhook-validate",
    ]);
}

// ---------------------------------------------------------------------------------------
// The cluster suite.

#[test]
fn security_on_a_cluster() {
    if !netns_prerequisites() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("e2e-security-")
        .tempdir()
        .expect("temp dir");
    let token_file = tmp.path().join("tokens.csv");
    std::fs::write(
        &token_file,
        format!("{BOB_TOKEN},bob,uid-bob,\"devs,qa\"\n{ALICE_TOKEN},alice,uid-alice\n"),
    )
    .expect("writing the token file");
    let mut server_args = vec![
        "--token-auth-file".to_string(),
        token_file.display().to_string(),
    ];
    server_args.extend(eviction_args());
    let c = Cluster::start(ClusterOpts {
        agents: 1,
        server_agent: true,
        extra_server_args: server_args,
        agent_opts: vec![AgentOpts {
            extra_args: eviction_args(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .expect("starting a server with its agent and one more agent");
    let admin = c.kubectl();
    let bob = token_kubectl(&c, tmp.path(), "bob", BOB_TOKEN);
    let dir = tmp.path();

    let mut s = Sections::new();
    s.run("1 rbac user", || rbac_user(&admin, &bob));
    s.run("2 can-i and whoami", || can_i(&bob));
    s.run("3 service account tokens", || {
        service_account_tokens(&c, &admin, dir)
    });
    s.run("4 impersonation", || impersonation(&admin, &bob));
    s.run("5 quota and limits", || quota_and_limits(&admin));
    s.run("6 pod security", || pod_security(&admin));
    s.run("7 node credentials", || node_credentials(&c, &admin));
    s.run("8 webhooks", || webhooks(&c, &admin, dir));
    s.finish();
    c.shutdown().expect("teardown");
}

// ---------------------------------------------------------------------------------------
// 9. Encryption at rest.

fn server_has_flag(flag: &str) -> bool {
    let out = Command::new(e2e::minik8s_bin())
        .args(["server", "--help"])
        .output()
        .expect("running minik8s server --help");
    String::from_utf8_lossy(&out.stdout).contains(flag)
}

/// The newest stored value of the key matching the SQL LIKE pattern `key`, through the
/// sqlite3 CLI (read only), as bytes.
fn sqlite_value(db: &Path, key: &str) -> Option<Vec<u8>> {
    let q = format!(
        "SELECT hex(value) FROM kine WHERE CAST(name AS TEXT) LIKE '{key}' ORDER BY id DESC LIMIT 1;"
    );
    let out = Command::new("sqlite3")
        .arg("-readonly")
        .arg(db)
        .arg(q)
        .output()
        .ok()?;
    let hex = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || hex.is_empty() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn secrets_encrypted_at_rest() {
    if !netns_prerequisites() {
        return;
    }
    assert!(
        server_has_flag("--secrets-encryption"),
        "`minik8s server` has no --secrets-encryption flag (not wired yet)"
    );
    let mut c = Cluster::start(ClusterOpts {
        extra_server_args: vec!["--secrets-encryption".to_string()],
        ..Default::default()
    })
    .expect("starting a server with --secrets-encryption");
    let k = c.kubectl();
    let secret_value = "e2e-plaintext-5f3a9c-secret";
    let control_value = "e2e-plaintext-7b2d4e-config";
    k.ok(&[
        "create",
        "secret",
        "generic",
        "enc-secret",
        &format!("--from-literal=password={secret_value}"),
    ]);
    k.ok(&[
        "create",
        "configmap",
        "enc-control",
        &format!("--from-literal=value={control_value}"),
    ]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret_value);
    let read_back = || {
        k.jsonpath(&["secret", "enc-secret"], "{.data.password}")
            .unwrap_or_default()
    };
    assert_eq!(read_back(), b64, "the secret reads back through the API");

    let db_dir = c.data_dir(0).join("server/db");
    let db = db_dir.join("state.db");
    assert!(db.is_file(), "no store at {}", db.display());
    // Keys are `/registry/<group>/<resource>/<namespace>/<name>` (group `core` for v1).
    let sqlite = Command::new("sqlite3").arg("-version").output().is_ok();
    let stored = sqlite_value(&db, "/registry/%secrets/default/enc-secret");
    assert!(
        stored.is_some() || !sqlite,
        "sqlite3 found no row for the secret in {}",
        db.display()
    );
    if let Some(stored) = stored {
        assert!(
            stored.starts_with(b"k8s:enc:aescbc:v1:"),
            "stored secret is not aescbc ciphertext: {}",
            String::from_utf8_lossy(&stored[..stored.len().min(200)])
        );
        let cm = sqlite_value(&db, "/registry/%configmaps/default/enc-control")
            .expect("the configmap row");
        assert!(
            find(&cm, control_value.as_bytes()),
            "control: configmap is stored in plain text"
        );
    } else {
        eprintln!("no sqlite3 CLI: checking the raw files only");
    }
    // Every byte of the store (database, WAL, shared memory).
    let mut raw = Vec::new();
    for e in std::fs::read_dir(&db_dir)
        .expect("listing the db dir")
        .flatten()
    {
        raw.extend(std::fs::read(e.path()).unwrap_or_default());
    }
    assert!(
        find(&raw, control_value.as_bytes()),
        "control value not found in the raw store"
    );
    assert!(
        !find(&raw, secret_value.as_bytes()) && !find(&raw, b64.as_bytes()),
        "the secret's value is in the store in plain text"
    );
    assert!(
        find(&raw, b"k8s:enc:aescbc:v1:"),
        "no aescbc ciphertext in the store"
    );

    // The keys survive a restart.
    c.kill_server();
    c.start_server().expect("restarting the server");
    let k = c.kubectl();
    assert_eq!(
        k.jsonpath(&["secret", "enc-secret"], "{.data.password}")
            .unwrap_or_default(),
        b64,
        "the secret reads back after a restart"
    );
    c.shutdown().expect("teardown");
}

// ---------------------------------------------------------------------------------------
// 10. Hostile input.

/// A TLS client config with the admin client certificate, and the server's host and port.
fn admin_tls(kubeconfig: &Path) -> (String, u16, Arc<rustls::ClientConfig>) {
    let kc: Value = serde_yaml::from_str(&std::fs::read_to_string(kubeconfig).expect("kubeconfig"))
        .expect("kubeconfig yaml");
    let b64 = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("kubeconfig field").trim())
            .expect("base64")
    };
    let server = kc["clusters"][0]["cluster"]["server"]
        .as_str()
        .expect("server")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let (host, port) = server.rsplit_once(':').expect("host:port");
    let ca = b64(&kc["clusters"][0]["cluster"]["certificate-authority-data"]);
    let cert = b64(&kc["users"][0]["user"]["client-certificate-data"]);
    let key = b64(&kc["users"][0]["user"]["client-key-data"]);
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.as_slice()) {
        roots.add(c.expect("ca pem")).expect("ca cert");
    }
    let certs = rustls_pemfile::certs(&mut cert.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .expect("client cert");
    let key = rustls_pemfile::private_key(&mut key.as_slice())
        .expect("client key")
        .expect("client key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .expect("client auth");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (
        host.to_string(),
        port.parse().expect("port"),
        Arc::new(config),
    )
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// Opens a TLS connection, sends `GET path` (HTTP/1.1, kept open) and reads the response
/// head; returns the stream and the status code.
fn open_watch(
    host: &str,
    port: u16,
    config: &Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<(Tls, u16), String> {
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let sock = std::net::TcpStream::connect((host, port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\nUser-Agent: minik8s-e2e-flood\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    tls.flush().map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tls
            .read(&mut byte)
            .map_err(|e| format!("reading head: {e}"))?;
        if n == 0 {
            return Err("connection closed before the head".into());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {text}"))?;
    Ok((tls, status))
}

#[track_caller]
fn assert_ready(c: &Cluster) {
    let r = c.api(|a| a.get("/readyz")).expect("GET /readyz");
    assert_eq!((r.status, r.body_str()), (200, "ok".to_string()), "/readyz");
}

/// Nested JSON `depth` levels deep: `open`...`close` around `inner`.
fn nested(open: &str, close: &str, inner: &str, depth: usize) -> String {
    let mut s = String::with_capacity(depth * (open.len() + close.len()) + inner.len());
    for _ in 0..depth {
        s.push_str(open);
    }
    s.push_str(inner);
    for _ in 0..depth {
        s.push_str(close);
    }
    s
}

#[test]
fn hostile_input_keeps_the_server_healthy() {
    if !netns_prerequisites() {
        return;
    }
    let mut c = Cluster::start(ClusterOpts::default()).expect("starting a server");
    let k = c.kubectl();
    let cms = "/api/v1/namespaces/default/configmaps";
    k.ok(&[
        "create",
        "secret",
        "generic",
        "hidden",
        "--from-literal=k=v",
    ]);
    let mut s = Sections::new();

    s.run("oversized body", || {
        let big = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "big"}, "data": {"big": "x".repeat((3 << 20) + (512 << 10))}});
        let path = k.write_file("big.json", &big.to_string());
        let out = k.run(&["create", "-f", &path.display().to_string()]);
        assert_ne!(out.code, 0, "a 3.5 MiB object was created");
        assert!(
            out.stderr.contains("RequestEntityTooLarge")
                || out.stderr.contains("Request entity too large"),
            "{}",
            out.stderr
        );
        let r = c
            .api(|a| a.post_json(cms, &big))
            .map(|r| (r.status, r.body_str()))
            .map_err(|e| format!("{e:#}"));
        // The server answers from Content-Length before reading the body, so the raw
        // client may see its write cut short (EPIPE) instead of the 413.
        eprintln!("raw 3.5 MiB POST: {r:?}");
        if let Ok((status, _)) = &r {
            assert_eq!(*status, 413, "{r:?}");
        }
        assert_ready(&c);
    });

    s.run("deep nesting", || {
        let bodies = [
            (
                "arrays in a data value",
                format!(
                    r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"deep1"}},"data":{{"a":{}}}}}"#,
                    nested("[", "]", "", 10_000)
                ),
            ),
            (
                "objects in metadata",
                format!(
                    r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"deep2","annotations":{}}}}}"#,
                    nested(r#"{"a":"#, "}", "1", 10_000)
                ),
            ),
            (
                "arrays in an unknown field",
                format!(
                    r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"deep3"}},"x":{}}}"#,
                    nested("[", "]", "", 10_000)
                ),
            ),
        ];
        for (what, body) in bodies {
            let r = c
                .api(|a| a.request("POST", cms, None, Some(body.as_bytes())))
                .unwrap_or_else(|e| panic!("{what}: no answer: {e:#}"));
            assert!(
                r.status == 400 || r.status == 422,
                "{what}: {} {}",
                r.status,
                r.body_str()
            );
            assert_ready(&c);
        }
    });

    s.run("huge label value", || {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "huge-label", "labels": {"k": "v".repeat(100_000)}}});
        let r = c.api(|a| a.post_json(cms, &body)).expect("POST");
        assert_eq!(r.status, 422, "{}", r.body_str());
        assert_has(&r.body_str(), "must be no more than 63 characters");
        assert_ready(&c);
    });

    s.run("invalid names", || {
        let err = k.fails(&["create", "configmap", "a_b"]);
        assert_has(
            &err,
            r#"ConfigMap "a_b" is invalid: metadata.name: Invalid value: "a_b": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#,
        );
        for name in ["a_b", "..", "a/b", "A"] {
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
            let r = c.api(|a| a.post_json(cms, &body)).expect("POST");
            assert!(
                r.status == 422 || r.status == 400,
                "name {name:?}: {} {}",
                r.status,
                r.body_str()
            );
        }
        assert_ready(&c);
    });

    s.run("path traversal", || {
        for path in [
            "/api/v1/namespaces/default/pods/..%2f..%2fsecrets",
            "/api/v1/namespaces/default/pods/..%2F..%2Fsecrets",
            "/api/v1/namespaces/default/configmaps/x/../../secrets",
            "/api/v1/namespaces/default/configmaps/x/..%2f..%2fsecrets",
            "/api/v1/namespaces/default/configmaps/%2e%2e/%2e%2e/secrets",
            "/api/v1/namespaces/..%2fdefault/secrets",
        ] {
            let r = c.api(|a| a.get(path)).expect("GET");
            let body = r.body_str();
            assert!(
                r.status == 404 || r.status == 400,
                "{path}: {} {body}",
                r.status
            );
            assert!(
                !body.contains("SecretList") && !body.contains("\"hidden\""),
                "{path} leaked secrets: {body}"
            );
        }
        assert_ready(&c);
    });

    s.run("watch flood", || {
        let (host, port, config) = admin_tls(&c.kubeconfig());
        let kubeconfig = c.kubeconfig();
        let (statuses, during, created, saw) = in_netns(&c.netns_path(0), move || {
            let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
            let mut open = Vec::new();
            for i in 0..200 {
                let path = format!("/api/v1/namespaces/default/configmaps?watch=true&e2e={i}");
                match open_watch(&host, port, &config, &path) {
                    Ok((tls, status)) => {
                        *statuses.entry(status.to_string()).or_default() += 1;
                        if status == 200 {
                            open.push(tls);
                        }
                    }
                    Err(e) => *statuses.entry(format!("error: {e}")).or_default() += 1,
                }
            }
            let api = ApiClient::from_kubeconfig(&kubeconfig).expect("admin client");
            let during = api
                .get("/readyz")
                .map(|r| r.status)
                .map_err(|e| e.to_string());
            let created = api
                .post_json(
                    "/api/v1/namespaces/default/configmaps",
                    &json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "flood-probe"}}),
                )
                .map(|r| r.status)
                .map_err(|e| e.to_string());
            // The last watch opened sees the new object.
            let mut saw = false;
            if let Some(w) = open.last_mut() {
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while Instant::now() < deadline {
                    match w.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if find(&buf, b"flood-probe") {
                        saw = true;
                        break;
                    }
                }
            }
            drop(open);
            (statuses, during, created, saw)
        })
        .expect("entering the server's namespace");
        eprintln!("watch flood: {statuses:?}, readyz during {during:?}, create {created:?}");
        assert!(
            statuses.keys().all(|k| k == "200" || k == "429"),
            "watches got {statuses:?}"
        );
        assert!(
            statuses.get("200").copied().unwrap_or(0) > 0,
            "{statuses:?}"
        );
        assert_eq!(during, Ok(200), "/readyz while 200 watches are open");
        assert_eq!(created, Ok(201), "a create while 200 watches are open");
        assert!(saw, "an open watch did not see the new ConfigMap");
        assert_ready(&c);
    });

    assert!(c.is_running(0), "the server died");
    s.finish();
    c.shutdown().expect("teardown");
}
