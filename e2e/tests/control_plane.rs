//! Acceptance for the control-plane issue: real kubectl against `minik8s server`, once
//! over the embedded store and once over etcd. Outputs are compared with what upstream
//! kubectl prints against a real kube-apiserver wherever that is known.

use e2e::{Etcd, Kubectl, Server, ServerOpts};
use std::time::{Duration, Instant};

const POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: p1
  labels:
    app: a
spec:
  containers:
  - name: c
    image: nginx
";

const DEPLOY: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
";

fn pod(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  containers:\n  - name: c\n    image: nginx\n"
    )
}

/// Splits table output into rows of whitespace-separated cells (header included).
fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Checks one table row, ignoring the AGE cell at `age_col` (only that it looks like an age).
#[track_caller]
fn assert_row(row: &[String], want: &[&str], age_col: usize) {
    assert_eq!(row.len(), want.len(), "row {row:?} vs {want:?}");
    for (i, (got, want)) in row.iter().zip(want).enumerate() {
        if i == age_col {
            assert!(
                got.ends_with('s') || got.ends_with('m'),
                "AGE cell {got:?} in {row:?}"
            );
        } else {
            assert_eq!(got, want, "cell {i} of {row:?}");
        }
    }
}

fn jsonpath(k: &Kubectl, what: &[&str], path: &str) -> String {
    let arg = format!("jsonpath={path}");
    let mut args: Vec<&str> = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", &arg]);
    k.ok(&args)
}

fn acceptance(server: &Server) {
    let mut k = server.kubectl();

    // --- version, discovery, health -------------------------------------------------
    let out = k.ok(&["version"]);
    assert!(
        out.lines().any(|l| l.starts_with("Server Version: v1.33.")),
        "version output: {out}"
    );
    assert!(
        out.contains("Client Version: v1.33."),
        "dispatcher picked 1.33: {out}"
    );

    let out = k.ok(&["api-resources"]);
    let rows = table(&out);
    assert_eq!(
        rows[0],
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    assert!(
        rows.iter()
            .any(|r| r == &["pods", "po", "v1", "true", "Pod"]),
        "{out}"
    );
    assert!(
        rows.iter()
            .any(|r| r == &["deployments", "deploy", "apps/v1", "true", "Deployment"]),
        "{out}"
    );
    assert!(
        rows.iter()
            .any(|r| r == &["namespaces", "ns", "v1", "false", "Namespace"]),
        "{out}"
    );

    let out = k.ok(&["cluster-info"]);
    assert_eq!(
        out.lines().next().unwrap(),
        format!("Kubernetes control plane is running at {}", server.url())
    );

    assert_eq!(k.ok(&["get", "--raw", "/readyz"]), "ok");
    assert_eq!(k.ok(&["get", "--raw", "/healthz"]), "ok");
    assert_eq!(k.ok(&["get", "--raw", "/livez"]), "ok");
    let out = k.ok(&["get", "--raw", "/readyz?verbose"]);
    assert!(out.starts_with("[+]ping ok\n"), "{out}");
    assert!(out.contains("[+]etcd ok\n"), "{out}");
    assert!(out.ends_with("readyz check passed\n"), "{out}");

    // --- namespaces and pods --------------------------------------------------------
    assert_eq!(k.ok(&["create", "ns", "e2e"]), "namespace/e2e created\n");
    assert_eq!(jsonpath(&k, &["ns", "e2e"], "{.status.phase}"), "Active");
    let err = k.fails(&["create", "ns", "e2e"]);
    assert_eq!(
        err,
        "Error from server (AlreadyExists): namespaces \"e2e\" already exists\n"
    );

    k.write_file("pod.yaml", POD);
    assert_eq!(k.ok(&["create", "-f", "pod.yaml"]), "pod/p1 created\n");
    assert_eq!(
        k.fails(&["create", "-f", "pod.yaml"]),
        "Error from server (AlreadyExists): error when creating \"pod.yaml\": pods \"p1\" already exists\n"
    );

    let rows = table(&k.ok(&["get", "pods"]));
    assert_eq!(rows[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(rows.len(), 2);
    assert_row(&rows[1], &["p1", "0/1", "Pending", "0", "AGE"], 4);
    let out = k.ok(&["get", "pods"]);
    assert!(
        out.starts_with(
            "NAME   READY   STATUS    RESTARTS   AGE\np1     0/1     Pending   0          "
        ),
        "column layout: {out:?}"
    );

    let out = k.ok(&["get", "pods", "-o", "wide"]);
    assert!(
        out.starts_with(
            "NAME   READY   STATUS    RESTARTS   AGE   IP       NODE     NOMINATED NODE   READINESS GATES\n"
        ),
        "{out:?}"
    );
    let rows = table(&out);
    assert_row(
        &rows[1],
        &[
            "p1", "0/1", "Pending", "0", "AGE", "<none>", "<none>", "<none>", "<none>",
        ],
        4,
    );

    let y: serde_json::Value =
        serde_yaml::from_str(&k.ok(&["get", "pod", "p1", "-o", "yaml"])).unwrap();
    assert_eq!(y["apiVersion"], "v1");
    assert_eq!(y["kind"], "Pod");
    assert_eq!(y["metadata"]["name"], "p1");
    assert_eq!(y["metadata"]["namespace"], "default");
    assert_eq!(y["metadata"]["labels"]["app"], "a");
    for f in ["uid", "resourceVersion", "creationTimestamp"] {
        assert!(
            y["metadata"][f].as_str().is_some_and(|s| !s.is_empty()),
            "{f}: {y}"
        );
    }
    assert_eq!(y["spec"]["containers"][0]["image"], "nginx");
    assert_eq!(y["spec"]["restartPolicy"], "Always", "defaulted");
    assert_eq!(y["spec"]["dnsPolicy"], "ClusterFirst", "defaulted");
    assert_eq!(y["status"]["phase"], "Pending");

    let y: serde_json::Value = serde_yaml::from_str(&k.ok(&["get", "pods", "-o", "yaml"])).unwrap();
    assert_eq!(y["kind"], "List");
    assert_eq!(y["items"][0]["kind"], "Pod");
    assert_eq!(y["items"][0]["metadata"]["name"], "p1");

    let rows = table(&k.ok(&["get", "pods", "-A"]));
    assert_eq!(
        rows[0],
        ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_row(
        &rows[1],
        &["default", "p1", "0/1", "Pending", "0", "AGE"],
        5,
    );

    let rows = table(&k.ok(&["get", "pods", "--show-labels"]));
    assert_eq!(
        rows[0],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "LABELS"]
    );
    assert_row(&rows[1], &["p1", "0/1", "Pending", "0", "AGE", "app=a"], 4);

    assert_eq!(k.ok(&["get", "pods", "-n", "e2e"]), "");
    assert_eq!(
        k.run(&["get", "pods", "-n", "e2e"]).stderr,
        "No resources found in e2e namespace.\n"
    );

    // --- client-side apply: created, configured, unchanged --------------------------
    k.write_file("deploy.yaml", DEPLOY);
    assert_eq!(
        k.ok(&["apply", "-f", "deploy.yaml"]),
        "deployment.apps/web created\n"
    );
    k.write_file("deploy.yaml", &DEPLOY.replace("replicas: 2", "replicas: 3"));
    assert_eq!(
        k.ok(&["apply", "-f", "deploy.yaml"]),
        "deployment.apps/web configured\n"
    );
    assert_eq!(
        k.ok(&["apply", "-f", "deploy.yaml"]),
        "deployment.apps/web unchanged\n"
    );
    assert_eq!(jsonpath(&k, &["deploy", "web"], "{.spec.replicas}"), "3");
    let last = jsonpath(
        &k,
        &["deploy", "web"],
        "{.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}",
    );
    assert!(last.contains("\"replicas\":3"), "{last}");
    let rows = table(&k.ok(&["get", "deploy"]));
    assert_eq!(rows[0], ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]);
    assert_eq!(rows[1][0], "web");

    // --- server-side apply: conflict, then forced ------------------------------------
    k.write_file("deploy.yaml", &DEPLOY.replace("replicas: 2", "replicas: 4"));
    let out = k.run(&["apply", "--server-side", "-f", "deploy.yaml"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "error: Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas\n\
Please review the fields above--they currently have other managers. Here\n\
are the ways you can resolve this warning:\n\
* If you intend to manage all of these fields, please re-run the apply\n  \
command with the `--force-conflicts` flag.\n\
* If you do not intend to manage all of the fields, please edit your\n  \
manifest to remove references to the fields that should keep their\n  \
current managers.\n\
* You may co-own fields by updating your manifest to match the existing\n  \
value; in this case, you'll become the manager if the other manager(s)\n  \
stop managing the field (remove it from their configuration).\n\
See https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts\n"
    );
    assert_eq!(jsonpath(&k, &["deploy", "web"], "{.spec.replicas}"), "3");
    assert_eq!(
        k.ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "deploy.yaml"
        ]),
        "deployment.apps/web serverside-applied\n"
    );
    assert_eq!(jsonpath(&k, &["deploy", "web"], "{.spec.replicas}"), "4");
    let managers = jsonpath(
        &k,
        &["deploy", "web"],
        "{.metadata.managedFields[*].manager}",
    );
    assert!(managers.split(' ').any(|m| m == "kubectl"), "{managers}");

    // --- diff --------------------------------------------------------------------------
    let out = k.run(&["diff", "-f", "deploy.yaml"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    k.write_file(
        "deploy.yaml",
        &DEPLOY
            .replace("replicas: 2", "replicas: 4")
            .replace("1.25", "1.26"),
    );
    let out = k.run(&["diff", "-f", "deploy.yaml"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("\n-      - image: nginx:1.25\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\n+      - image: nginx:1.26\n"),
        "{}",
        out.stdout
    );
    assert_eq!(
        jsonpath(
            &k,
            &["deploy", "web"],
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.25",
        "diff must not persist (dryRun=All)"
    );

    // --- label, annotate, patch ----------------------------------------------------------
    assert_eq!(
        k.ok(&["label", "pod", "p1", "env=prod"]),
        "pod/p1 labeled\n"
    );
    assert_eq!(
        k.ok(&["annotate", "pod", "p1", "note=hello"]),
        "pod/p1 annotated\n"
    );
    assert_eq!(
        jsonpath(
            &k,
            &["pod", "p1"],
            "{.metadata.labels.env} {.metadata.annotations.note}"
        ),
        "prod hello"
    );
    let err = k.fails(&["label", "pod", "p1", "env=dev"]);
    assert_eq!(
        err,
        "error: 'env' already has a value (prod), and --overwrite is false\n"
    );
    assert_eq!(
        k.ok(&["label", "pod", "p1", "env=dev", "--overwrite"]),
        "pod/p1 labeled\n"
    );
    assert_eq!(k.ok(&["label", "pod", "p1", "env-"]), "pod/p1 unlabeled\n");
    assert_eq!(
        jsonpath(&k, &["pod", "p1"], "{.metadata.labels}"),
        "{\"app\":\"a\"}"
    );

    assert_eq!(
        k.ok(&[
            "patch",
            "deploy",
            "web",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#
        ]),
        "deployment.apps/web patched\n"
    );
    assert_eq!(
        jsonpath(
            &k,
            &["deploy", "web"],
            "{.spec.template.spec.containers[*].name}={.spec.template.spec.containers[*].image}"
        ),
        "nginx=nginx:1.27",
        "strategic merge patch merges containers by name"
    );
    assert_eq!(
        k.ok(&["patch", "deploy", "web", "-p", r#"{"spec":{"replicas":4}}"#]),
        "deployment.apps/web patched (no change)\n"
    );
    assert_eq!(
        k.ok(&[
            "patch",
            "deploy",
            "web",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"labels":{"m":"1"}}}"#
        ]),
        "deployment.apps/web patched\n"
    );
    assert_eq!(
        k.ok(&[
            "patch",
            "deploy",
            "web",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":5},{"op":"add","path":"/metadata/labels/j","value":"2"}]"#
        ]),
        "deployment.apps/web patched\n"
    );
    assert_eq!(
        jsonpath(
            &k,
            &["deploy", "web"],
            "{.metadata.labels.m} {.metadata.labels.j} {.spec.replicas}"
        ),
        "1 2 5"
    );
    let err = k.fails(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
    ]);
    assert!(err.starts_with("The request is invalid"), "{err}");

    // --- edit ----------------------------------------------------------------------------
    k.set_editor("true");
    let out = k.run(&["edit", "pod", "p1"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "Edit cancelled, no changes made.\n");
    k.set_editor_script(r#"sed -i 's/^  labels:$/  labels:\n    edited: "yes"/' "$1""#);
    assert_eq!(k.ok(&["edit", "pod", "p1"]), "pod/p1 edited\n");
    assert_eq!(
        jsonpath(&k, &["pod", "p1"], "{.metadata.labels.edited}"),
        "yes"
    );
    let managers = jsonpath(&k, &["pod", "p1"], "{.metadata.managedFields[*].manager}");
    assert!(
        managers.split(' ').any(|m| m == "kubectl-edit"),
        "{managers}"
    );

    // --- scale ---------------------------------------------------------------------------
    assert_eq!(
        k.ok(&["scale", "deploy", "web", "--replicas=3"]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        k.ok(&[
            "scale",
            "deploy/web",
            "--current-replicas=3",
            "--replicas=4"
        ]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        k.fails(&[
            "scale",
            "deploy/web",
            "--current-replicas=3",
            "--replicas=6"
        ]),
        "error: Expected replicas to be 3, was 4\n"
    );
    assert_eq!(jsonpath(&k, &["deploy", "web"], "{.spec.replicas}"), "4");
    let scale = k.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ]);
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 4);

    // --- watch -----------------------------------------------------------------------------
    {
        // `-l app=a` keeps this independent of pods that controllers may create.
        let mut w = k.spawn(&["get", "pods", "-w", "-l", "app=a"], "watch");
        assert!(
            w.wait_for(Duration::from_secs(20), |o| o.lines().count() >= 2),
            "watch printed no initial row: {:?} {:?}",
            w.stdout(),
            w.stderr()
        );
        assert_eq!(
            k.ok(&["label", "pod", "p1", "watched=yes"]),
            "pod/p1 labeled\n"
        );
        let seen = w.wait_for(Duration::from_secs(20), |o| o.lines().count() >= 3);
        w.kill();
        let out = w.stdout();
        assert!(seen, "watch missed the update: {out:?} {:?}", w.stderr());
        let rows = table(&out);
        assert_eq!(rows[0], ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
        assert_row(&rows[1], &["p1", "0/1", "Pending", "0", "AGE"], 4);
        assert_row(&rows[2], &["p1", "0/1", "Pending", "0", "AGE"], 4);

        // A single object: kubectl GETs it, then watches with a name field selector from
        // resourceVersion 0 and drops the synthetic ADDED.
        let mut w = k.spawn(
            &["get", "pod", "p1", "-w", "--output-watch-events"],
            "watch2",
        );
        assert!(
            w.wait_for(Duration::from_secs(20), |o| o.contains("ADDED")),
            "{:?} {:?}",
            w.stdout(),
            w.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
        k.ok(&["annotate", "pod", "p1", "watched=again"]);
        let seen = w.wait_for(Duration::from_secs(20), |o| o.contains("MODIFIED"));
        std::thread::sleep(Duration::from_millis(300));
        w.kill();
        assert!(seen, "{:?} {:?}", w.stdout(), w.stderr());
        let rows = table(&w.stdout());
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(
            rows[0],
            ["EVENT", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        );
        assert_row(&rows[1], &["ADDED", "p1", "0/1", "Pending", "0", "AGE"], 5);
        assert_row(
            &rows[2],
            &["MODIFIED", "p1", "0/1", "Pending", "0", "AGE"],
            5,
        );
    }

    // --- generators (protobuf request bodies) --------------------------------------------
    assert_eq!(
        k.ok(&[
            "create",
            "configmap",
            "c1",
            "--from-literal=a=b",
            "--from-literal=x=y"
        ]),
        "configmap/c1 created\n"
    );
    assert_eq!(
        jsonpath(&k, &["cm", "c1"], "{.data}"),
        r#"{"a":"b","x":"y"}"#
    );
    assert_eq!(
        k.ok(&[
            "create",
            "secret",
            "generic",
            "s1",
            "--from-literal=pw=hunter2"
        ]),
        "secret/s1 created\n"
    );
    assert_eq!(
        jsonpath(&k, &["secret", "s1"], "{.type} {.data.pw}"),
        "Opaque aHVudGVyMg=="
    );
    assert_eq!(
        k.ok(&[
            "create",
            "deployment",
            "d2",
            "--image=busybox",
            "--replicas=2"
        ]),
        "deployment.apps/d2 created\n"
    );
    assert_eq!(
        jsonpath(
            &k,
            &["deploy", "d2"],
            "{.metadata.labels.app} {.spec.replicas} {.spec.selector.matchLabels.app} {.spec.template.metadata.labels.app} {.spec.template.spec.containers[0].name} {.spec.template.spec.containers[0].image}"
        ),
        "d2 2 d2 d2 busybox busybox"
    );
    assert_eq!(
        k.fails(&["create", "deployment", "d2", "--image=busybox"]),
        "error: failed to create deployment: deployments.apps \"d2\" already exists\n"
    );
    assert_eq!(
        k.ok(&[
            "create",
            "configmap",
            "c2",
            "-n",
            "e2e",
            "--from-literal=k=v"
        ]),
        "configmap/c2 created\n"
    );
    assert_eq!(
        jsonpath(
            &k,
            &["cm", "c2", "-n", "e2e"],
            "{.metadata.namespace} {.data.k}"
        ),
        "e2e v"
    );

    // --- explain ---------------------------------------------------------------------------
    let out = k.ok(&["explain", "pod.spec.containers"]);
    assert!(
        out.starts_with("KIND:       Pod\nVERSION:    v1\n\nFIELD: containers <[]Container>\n"),
        "{out}"
    );
    assert!(out.contains("\nFIELDS:\n"), "{out}");
    assert!(out.contains("\n  image\t<string>\n"), "{out}");
    let out = k.ok(&["explain", "deployment.spec.replicas"]);
    assert!(
        out.starts_with("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n"),
        "{out}"
    );

    // --- errors ----------------------------------------------------------------------------
    k.write_file(
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n",
    );
    assert_eq!(
        k.fails(&["create", "-f", "bad.yaml"]),
        "The Pod \"bad\" is invalid: spec.containers[0].image: Required value\n"
    );
    assert_eq!(
        k.fails(&["get", "pod", "nope"]),
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    assert_eq!(
        k.fails(&["delete", "pod", "nope"]),
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    assert_eq!(k.ok(&["delete", "pod", "nope", "--ignore-not-found"]), "");
    k.write_file(
        "strict.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: strict\nspec:\n  foo: 1\n  containers:\n  - name: c\n    image: nginx\n",
    );
    assert_eq!(
        k.fails(&["create", "-f", "strict.yaml"]),
        "Error from server (BadRequest): error when creating \"strict.yaml\": Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.foo\"\n"
    );
    let out = k.run(&["create", "-f", "strict.yaml", "--validate=false"]);
    assert_eq!(out.stdout, "pod/strict created\n", "{out:?}");
    let spec = jsonpath(&k, &["pod", "strict"], "{.spec}");
    assert!(
        !spec.contains("foo"),
        "--validate=false drops unknown fields: {spec}"
    );

    // Stale update: replace with an outdated resourceVersion.
    let old = k.ok(&["get", "pod", "p1", "-o", "yaml"]);
    k.write_file("old.yaml", &old);
    k.ok(&["label", "pod", "p1", "stale=1"]);
    assert_eq!(
        k.fails(&["replace", "-f", "old.yaml"]),
        "Error from server (Conflict): error when replacing \"old.yaml\": Operation cannot be fulfilled on pods \"p1\": the object has been modified; please apply your changes to the latest version and try again\n"
    );
    assert_eq!(
        jsonpath(&k, &["pod", "p1"], "{.metadata.labels.stale}"),
        "1"
    );

    // --- dry run ---------------------------------------------------------------------------
    k.write_file("dry.yaml", &pod("dry", "app: dry"));
    assert_eq!(
        k.ok(&["create", "-f", "dry.yaml", "--dry-run=server"]),
        "pod/dry created (server dry run)\n"
    );
    assert_eq!(
        k.ok(&[
            "create",
            "configmap",
            "drycm",
            "--from-literal=a=b",
            "--dry-run=server"
        ]),
        "configmap/drycm created (server dry run)\n"
    );
    assert_eq!(
        k.ok(&["label", "pod", "p1", "dry=run", "--dry-run=server"]),
        "pod/p1 labeled (server dry run)\n"
    );
    assert_eq!(
        k.fails(&["get", "pod", "dry"]),
        "Error from server (NotFound): pods \"dry\" not found\n"
    );
    assert_eq!(
        k.fails(&["get", "cm", "drycm"]),
        "Error from server (NotFound): configmaps \"drycm\" not found\n"
    );
    assert_eq!(jsonpath(&k, &["pod", "p1"], "{.metadata.labels.dry}"), "");

    // --- paging and selectors ----------------------------------------------------------------
    let mut many = String::new();
    for (i, app) in ["a", "b", "c", "a", "b"].iter().enumerate() {
        many.push_str("---\n");
        many.push_str(&pod(&format!("q{i}"), &format!("app: {app}, batch: \"1\"")));
    }
    k.write_file("many.yaml", &many);
    k.ok(&["create", "-n", "e2e", "-f", "many.yaml"]);
    let out = k.ok(&["get", "pods", "-n", "e2e", "--chunk-size=2", "-o", "name"]);
    assert_eq!(out, "pod/q0\npod/q1\npod/q2\npod/q3\npod/q4\n");
    let rows = table(&k.ok(&["get", "pods", "-n", "e2e", "--chunk-size=2"]));
    let names: Vec<&str> = rows.iter().skip(1).map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["q0", "q1", "q2", "q3", "q4"]);
    // The server really pages: limit=2 gives 2 items and a continue token, three pages.
    let mut path = "/api/v1/namespaces/e2e/pods?limit=2".to_string();
    let mut pages = Vec::new();
    loop {
        let page: serde_json::Value =
            serde_json::from_str(&k.ok(&["get", "--raw", &path])).unwrap();
        let items: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        pages.push(items);
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => {
                assert!(pages.len() < 5, "paging does not terminate");
                path = format!("/api/v1/namespaces/e2e/pods?limit=2&continue={c}");
            }
            _ => break,
        }
    }
    assert_eq!(pages, [vec!["q0", "q1"], vec!["q2", "q3"], vec!["q4"]]);

    assert_eq!(
        k.ok(&[
            "get",
            "pods",
            "-n",
            "e2e",
            "-l",
            "app in (a,b)",
            "-o",
            "name"
        ]),
        "pod/q0\npod/q1\npod/q3\npod/q4\n"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pods",
            "-n",
            "e2e",
            "-l",
            "app=c,batch=1",
            "-o",
            "name"
        ]),
        "pod/q2\n"
    );
    assert_eq!(
        k.ok(&["get", "pods", "-n", "e2e", "-l", "app!=a", "-o", "name"]),
        "pod/q1\npod/q2\npod/q4\n"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pods",
            "-n",
            "e2e",
            "--field-selector",
            "metadata.name=q3",
            "-o",
            "name"
        ]),
        "pod/q3\n"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "metadata.namespace!=default",
            "-l",
            "batch=1",
            "-o",
            "name"
        ]),
        "pod/q0\npod/q1\npod/q2\npod/q3\npod/q4\n"
    );
    let out = k.run(&["get", "pods", "-n", "e2e", "-l", "app=zzz"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    assert_eq!(out.stderr, "No resources found in e2e namespace.\n");

    // --- delete (default wait: unscheduled pods go at once) ---------------------------------
    let t = Instant::now();
    assert_eq!(k.ok(&["delete", "pod", "p1"]), "pod \"p1\" deleted\n");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "delete waited {:?}",
        t.elapsed()
    );
    assert_eq!(
        k.fails(&["get", "pod", "p1"]),
        "Error from server (NotFound): pods \"p1\" not found\n"
    );
    assert_eq!(
        k.ok(&["delete", "-n", "e2e", "pods", "-l", "app=a"]),
        "pod \"q0\" deleted\npod \"q3\" deleted\n"
    );
    assert_eq!(
        k.ok(&["delete", "-f", "deploy.yaml"]),
        "deployment.apps \"web\" deleted\n"
    );
    assert_eq!(
        k.ok(&["get", "deploy", "-o", "name"]),
        "deployment.apps/d2\n"
    );
}

#[test]
fn control_plane_embedded_store() {
    if !e2e::prerequisites() {
        return;
    }
    let server = Server::start(ServerOpts::embedded()).expect("starting minik8s");
    acceptance(&server);
}

#[test]
fn control_plane_etcd() {
    if !e2e::etcd_prerequisites() {
        return;
    }
    let etcd = Etcd::start().expect("starting etcd");
    let server = Server::start(ServerOpts::etcd(&etcd)).expect("starting minik8s on etcd");
    acceptance(&server);
}
