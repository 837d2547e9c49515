use serde_json::{json, Value};

use super::*;
use crate::schema::{FieldMeta, ListType, NodeKind};

/// A tiny schema arena with Deployment-like and ConfigMap-like shapes.
enum Node {
    Object(Vec<(&'static str, FieldMeta, NodeId)>),
    Array(NodeId),
    Map(NodeId),
    Scalar,
    Any,
}

struct TestSchema {
    nodes: Vec<Node>,
    deployment: NodeId,
    configmap: NodeId,
}

impl SchemaLookup for TestSchema {
    fn root(&self, name: &str) -> Option<NodeId> {
        match name {
            "Deployment" => Some(self.deployment),
            "ConfigMap" => Some(self.configmap),
            _ => None,
        }
    }
    fn kind(&self, node: NodeId) -> NodeKind {
        match self.nodes[node] {
            Node::Object(_) => NodeKind::Object,
            Node::Array(_) => NodeKind::Array,
            Node::Map(_) => NodeKind::Map,
            Node::Scalar => NodeKind::Scalar,
            Node::Any => NodeKind::Any,
        }
    }
    fn field(&self, node: NodeId, name: &str) -> Option<(FieldMeta, NodeId)> {
        match &self.nodes[node] {
            Node::Object(fs) => fs.iter().find(|f| f.0 == name).map(|f| (f.1.clone(), f.2)),
            _ => None,
        }
    }
    fn elem(&self, node: NodeId) -> Option<NodeId> {
        match self.nodes[node] {
            Node::Array(e) | Node::Map(e) => Some(e),
            _ => None,
        }
    }
}

fn plain() -> FieldMeta {
    FieldMeta::default()
}

fn list_map(keys: &[&str]) -> FieldMeta {
    FieldMeta {
        list_type: Some(ListType::Map),
        list_map_keys: keys.iter().map(|s| s.to_string()).collect(),
        ..FieldMeta::default()
    }
}

fn schema() -> TestSchema {
    let mut nodes = Vec::new();
    let mut add = |n: Node| {
        nodes.push(n);
        nodes.len() - 1
    };
    let scalar = add(Node::Scalar);
    let any = add(Node::Any);
    let str_map = add(Node::Map(scalar));
    let str_list = add(Node::Array(scalar));
    let any_list = add(Node::Array(any));
    let meta = add(Node::Object(vec![
        ("name", plain(), scalar),
        ("namespace", plain(), scalar),
        ("uid", plain(), scalar),
        ("resourceVersion", plain(), scalar),
        ("generation", plain(), scalar),
        ("creationTimestamp", plain(), scalar),
        ("labels", plain(), str_map),
        ("annotations", plain(), str_map),
        (
            "finalizers",
            FieldMeta {
                patch_strategies: vec!["merge".into()],
                ..FieldMeta::default()
            },
            str_list,
        ),
        ("managedFields", plain(), any_list),
    ]));
    let port = add(Node::Object(vec![
        ("containerPort", plain(), scalar),
        ("protocol", plain(), scalar),
        ("name", plain(), scalar),
    ]));
    let ports = add(Node::Array(port));
    let env_var = add(Node::Object(vec![
        ("name", plain(), scalar),
        ("value", plain(), scalar),
    ]));
    let envs = add(Node::Array(env_var));
    let container = add(Node::Object(vec![
        ("name", plain(), scalar),
        ("image", plain(), scalar),
        ("args", plain(), str_list),
        ("ports", list_map(&["containerPort", "protocol"]), ports),
        (
            "env",
            FieldMeta {
                patch_strategies: vec!["merge".into()],
                patch_merge_key: Some("name".into()),
                ..FieldMeta::default()
            },
            envs,
        ),
    ]));
    let containers = add(Node::Array(container));
    let pod_spec = add(Node::Object(vec![
        ("containers", list_map(&["name"]), containers),
        ("restartPolicy", plain(), scalar),
    ]));
    let template = add(Node::Object(vec![
        ("metadata", plain(), meta),
        ("spec", plain(), pod_spec),
    ]));
    let selector = add(Node::Object(vec![("matchLabels", plain(), str_map)]));
    let rolling = add(Node::Object(vec![
        ("maxSurge", plain(), scalar),
        ("maxUnavailable", plain(), scalar),
    ]));
    let strategy = add(Node::Object(vec![
        ("type", plain(), scalar),
        ("rollingUpdate", plain(), rolling),
    ]));
    let dspec = add(Node::Object(vec![
        ("replicas", plain(), scalar),
        (
            "selector",
            FieldMeta {
                map_atomic: true,
                ..FieldMeta::default()
            },
            selector,
        ),
        ("template", plain(), template),
        ("strategy", plain(), strategy),
    ]));
    let deployment = add(Node::Object(vec![
        ("apiVersion", plain(), scalar),
        ("kind", plain(), scalar),
        ("metadata", plain(), meta),
        ("spec", plain(), dspec),
        ("status", plain(), any),
    ]));
    let configmap = add(Node::Object(vec![
        ("apiVersion", plain(), scalar),
        ("kind", plain(), scalar),
        ("metadata", plain(), meta),
        ("data", plain(), str_map),
    ]));
    TestSchema {
        nodes,
        deployment,
        configmap,
    }
}

const T1: &str = "2024-01-01T00:00:01Z";
const T2: &str = "2024-01-01T00:00:02Z";
const T3: &str = "2024-01-01T00:00:03Z";
const T4: &str = "2024-01-01T00:00:04Z";

fn deploy(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [
                    {"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}
                ]}
            }
        }
    })
}

fn apply_d(
    s: &TestSchema,
    live: Option<&Value>,
    cfg: &Value,
    mgr: &str,
    force: bool,
    now: &str,
) -> Result<Value, ApplyError> {
    apply(live, cfg, mgr, force, "apps/v1", s, s.deployment, now)
}

fn mf(obj: &Value) -> &Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
}

fn entry<'a>(obj: &'a Value, manager: &str, op: &str) -> Option<&'a Value> {
    mf(obj)
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == op)
}

fn fields(obj: &Value, manager: &str, op: &str) -> Value {
    entry(obj, manager, op).expect("entry")["fieldsV1"].clone()
}

fn same(a: &Value, b: &Value) {
    assert_eq!(
        serde_json::to_string_pretty(a).unwrap(),
        serde_json::to_string_pretty(b).unwrap()
    );
}

#[test]
fn first_apply_creates_apply_entry() {
    let s = schema();
    let out = apply_d(&s, None, &deploy(3, "nginx:1.14"), "kubectl", false, T1).unwrap();
    assert_eq!(mf(&out).len(), 1);
    let e = &mf(&out)[0];
    assert_eq!(e["manager"], "kubectl");
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], T1);
    assert_eq!(e["fieldsType"], "FieldsV1");
    same(
        &e["fieldsV1"],
        &json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {},
                            "f:containerPort": {}
                        }}
                    }}}
                }
            }
        }),
    );
    // Entry keys in upstream (Go struct) order.
    let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "manager",
            "operation",
            "apiVersion",
            "time",
            "fieldsType",
            "fieldsV1"
        ]
    );
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(out["metadata"]["name"], "nginx");
}

#[test]
fn reapply_without_label_removes_it() {
    let s = schema();
    let mut cfg = deploy(3, "nginx:1.14");
    cfg["metadata"]["labels"]["tier"] = json!("web");
    let live = apply_d(&s, None, &cfg, "kubectl", false, T1).unwrap();
    assert_eq!(live["metadata"]["labels"]["tier"], "web");
    let out = apply_d(
        &s,
        Some(&live),
        &deploy(3, "nginx:1.14"),
        "kubectl",
        false,
        T2,
    )
    .unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"app": "nginx"}));
    assert!(fields(&out, "kubectl", "Apply")["f:metadata"]["f:labels"]
        .get("f:tier")
        .is_none());
    assert_eq!(entry(&out, "kubectl", "Apply").unwrap()["time"], T2);

    // Dropping every label removes the map.
    let mut cfg2 = deploy(3, "nginx:1.14");
    cfg2["metadata"].as_object_mut().unwrap().remove("labels");
    let out2 = apply_d(&s, Some(&out), &cfg2, "kubectl", false, T3).unwrap();
    assert!(out2["metadata"].get("labels").is_none());
    // Unchanged re-apply keeps the time.
    let out3 = apply_d(&s, Some(&out2), &cfg2, "kubectl", false, T4).unwrap();
    assert_eq!(entry(&out3, "kubectl", "Apply").unwrap()["time"], T3);
}

#[test]
fn conflict_after_update_by_other_manager_then_force() {
    let s = schema();
    let live = apply_d(&s, None, &deploy(3, "nginx:1.14"), "kubectl", false, T1).unwrap();
    // `kubectl edit` (or scale) sets replicas to 5.
    let mut edited = live.clone();
    edited["spec"]["replicas"] = json!(5);
    track_update(
        Some(&live),
        &mut edited,
        "kubectl-edit",
        "apps/v1",
        None,
        &s,
        s.deployment,
        T2,
    );
    same(
        &fields(&edited, "kubectl-edit", "Update"),
        &json!({"f:spec": {"f:replicas": {}}}),
    );
    assert!(fields(&edited, "kubectl", "Apply")["f:spec"]
        .get("f:replicas")
        .is_none());
    // Apply entries sort before Update entries.
    assert_eq!(mf(&edited)[0]["operation"], "Apply");
    assert_eq!(mf(&edited)[1]["operation"], "Update");

    let err = apply_d(
        &s,
        Some(&edited),
        &deploy(3, "nginx:1.14"),
        "kubectl",
        false,
        T3,
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: .spec.replicas"
    );
    assert_eq!(
        err.causes(),
        vec![StatusCause {
            reason: "FieldManagerConflict".into(),
            message: "conflict with \"kubectl-edit\" using apps/v1".into(),
            field: ".spec.replicas".into(),
        }]
    );

    // Same value: no conflict, shared ownership.
    let ok = apply_d(
        &s,
        Some(&edited),
        &deploy(5, "nginx:1.14"),
        "kubectl",
        false,
        T3,
    )
    .unwrap();
    assert!(fields(&ok, "kubectl-edit", "Update")["f:spec"]
        .get("f:replicas")
        .is_some());
    assert!(fields(&ok, "kubectl", "Apply")["f:spec"]
        .get("f:replicas")
        .is_some());

    // Force takes ownership; the editor's now-empty entry disappears.
    let forced = apply_d(
        &s,
        Some(&edited),
        &deploy(3, "nginx:1.14"),
        "kubectl",
        true,
        T3,
    )
    .unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    assert!(entry(&forced, "kubectl-edit", "Update").is_none());
    assert!(fields(&forced, "kubectl", "Apply")["f:spec"]
        .get("f:replicas")
        .is_some());
}

#[test]
fn several_conflicts_message_and_apply_manager_format() {
    let s = schema();
    let live = apply_d(&s, None, &deploy(3, "nginx:1.14"), "alice", false, T1).unwrap();
    let err = apply_d(&s, Some(&live), &deploy(4, "nginx:1.15"), "bob", false, T2).unwrap_err();
    let ApplyError::Conflicts(cs) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(cs.len(), 2);
    assert_eq!(
        err.message(),
        "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );
    assert_eq!(err.causes()[1].message, "conflict with \"alice\"");
}

#[test]
fn list_map_items_are_merged_by_key() {
    let s = schema();
    let live = apply_d(&s, None, &deploy(3, "nginx:1.14"), "alice", false, T1).unwrap();
    let sidecar = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "nginx"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "image": "busybox", "env": [{"name": "A", "value": "1"}]}
        ]}}}
    });
    let out = apply_d(&s, Some(&live), &sidecar, "bob", false, T2).unwrap();
    let cs = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0]["name"], "nginx");
    assert_eq!(cs[0]["ports"][0]["containerPort"], 80);
    assert_eq!(cs[1]["name"], "sidecar");
    same(
        &fields(&out, "bob", "Apply"),
        &json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"sidecar\"}": {
                ".": {},
                "f:env": {"k:{\"name\":\"A\"}": {".": {}, "f:name": {}, "f:value": {}}},
                "f:image": {},
                "f:name": {}
            }
        }}}}}),
    );
    // Alice updates her image; bob's container is untouched.
    let out2 = apply_d(&s, Some(&out), &deploy(3, "nginx:1.15"), "alice", false, T3).unwrap();
    let cs = out2["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0]["image"], "nginx:1.15");
    assert_eq!(cs[1]["image"], "busybox");
    // Bob stops applying his container: it is removed.
    // (`"spec": {}` would still own `.spec`, as upstream; leave it out entirely.)
    let mut empty = sidecar.clone();
    empty.as_object_mut().unwrap().remove("spec");
    let out3 = apply_d(&s, Some(&out2), &empty, "bob", false, T4).unwrap();
    let cs = out3["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0]["name"], "nginx");
    assert!(entry(&out3, "bob", "Apply").is_none());
}

#[test]
fn field_owned_by_two_appliers_survives_removal_by_one() {
    let s = schema();
    let cm = |labels: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c", "labels": labels}, "data": {"k": "v"}})
    };
    let ap = |live: Option<&Value>, cfg: &Value, m: &str, now: &str| {
        apply(live, cfg, m, false, "v1", &s, s.configmap, now).unwrap()
    };
    let a = ap(None, &cm(json!({"shared": "x", "a": "1"})), "a", T1);
    let b = ap(Some(&a), &cm(json!({"shared": "x"})), "b", T2);
    let a2 = ap(Some(&b), &cm(json!({"a": "1"})), "a", T3);
    assert_eq!(a2["metadata"]["labels"], json!({"shared": "x", "a": "1"}));
    let b2 = ap(Some(&a2), &cm(json!({})), "b", T4);
    assert_eq!(b2["metadata"]["labels"], json!({"a": "1"}));
    // Both still own data.k.
    assert!(fields(&b2, "a", "Apply")["f:data"].get("f:k").is_some());
    assert!(fields(&b2, "b", "Apply")["f:data"].get("f:k").is_some());
}

#[test]
fn track_update_on_create_assigns_all_fields() {
    let s = schema();
    let mut obj = deploy(3, "nginx:1.14");
    obj["metadata"]["uid"] = json!("u1");
    track_update(
        None,
        &mut obj,
        "kubectl-create",
        "apps/v1",
        None,
        &s,
        s.deployment,
        T1,
    );
    assert_eq!(mf(&obj).len(), 1);
    let e = &mf(&obj)[0];
    assert_eq!(e["operation"], "Update");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["time"], T1);
    same(
        &e["fieldsV1"],
        &json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                ".": {},
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    ".": {},
                    "f:metadata": {".": {}, "f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {".": {}, "f:containers": {
                        ".": {},
                        "k:{\"name\":\"nginx\"}": {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                ".": {},
                                "f:containerPort": {}
                            }}
                        }
                    }}
                }
            }
        }),
    );
    // No-op update by another manager adds no entry; a change moves ownership.
    let mut same_obj = obj.clone();
    track_update(
        Some(&obj),
        &mut same_obj,
        "other",
        "apps/v1",
        None,
        &s,
        s.deployment,
        T2,
    );
    assert_eq!(mf(&same_obj).len(), 1);
    let mut changed = same_obj.clone();
    changed["metadata"]["labels"]["app"] = json!("web");
    changed["metadata"]["resourceVersion"] = json!("7");
    track_update(
        Some(&same_obj),
        &mut changed,
        "other",
        "apps/v1",
        None,
        &s,
        s.deployment,
        T2,
    );
    same(
        &fields(&changed, "other", "Update"),
        &json!({"f:metadata": {"f:labels": {"f:app": {}}}}),
    );
    assert!(
        fields(&changed, "kubectl-create", "Update")["f:metadata"]["f:labels"]
            .get("f:app")
            .is_none()
    );
}

#[test]
fn track_update_untracked_reset_and_subresource() {
    let s = schema();
    let old = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let mut new = old.clone();
    new["data"]["a"] = json!("2");
    track_update(Some(&old), &mut new, "m", "v1", None, &s, s.configmap, T1);
    assert!(new["metadata"].get("managedFields").is_none());

    let mut created = old.clone();
    track_update(None, &mut created, "m", "v1", None, &s, s.configmap, T1);
    assert_eq!(mf(&created).len(), 1);
    // `[{}]` resets; the object then stays untracked.
    let mut reset = created.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    track_update(
        Some(&created),
        &mut reset,
        "m",
        "v1",
        None,
        &s,
        s.configmap,
        T2,
    );
    assert!(reset["metadata"].get("managedFields").is_none());
    // Managed fields sent by a client are kept when valid; ignored on subresources.
    let mut sent = created.clone();
    sent["metadata"]["managedFields"][0]["manager"] = json!("renamed");
    track_update(
        Some(&created),
        &mut sent,
        "x",
        "v1",
        None,
        &s,
        s.configmap,
        T2,
    );
    assert!(entry(&sent, "renamed", "Update").is_some());
    let mut sub = sent.clone();
    sub["data"]["a"] = json!("3");
    track_update(
        Some(&created),
        &mut sub,
        "x",
        "v1",
        Some("status"),
        &s,
        s.configmap,
        T3,
    );
    let e = entry(&sub, "x", "Update").unwrap();
    assert_eq!(e["subresource"], "status");
    // Ownership of data.a moved to x; m keeps only the map itself.
    same(&fields(&sub, "m", "Update"), &json!({"f:data": {}}));
}

#[test]
fn apply_to_untracked_object_creates_before_first_apply() {
    let s = schema();
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "uid": "u", "resourceVersion": "5"}, "data": {"a": "1", "b": "2"}});
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "resourceVersion": "999"}, "data": {"a": "1"}});
    let out = apply(Some(&live), &cfg, "m", false, "v1", &s, s.configmap, T1).unwrap();
    same(
        &fields(&out, BEFORE_FIRST_APPLY_MANAGER, "Update"),
        &json!({"f:data": {".": {}, "f:a": {}, "f:b": {}}}),
    );
    same(&fields(&out, "m", "Apply"), &json!({"f:data": {"f:a": {}}}));
    assert_eq!(out["metadata"]["resourceVersion"], "5");
    assert_eq!(out["metadata"]["uid"], "u");
    let mut bad = cfg.clone();
    bad["metadata"]["managedFields"] = json!([]);
    let err = apply(Some(&live), &bad, "m", false, "v1", &s, s.configmap, T1).unwrap_err();
    assert_eq!(err.message(), "metadata.managedFields must be nil");
}

#[test]
fn invalid_list_items_are_rejected() {
    let s = schema();
    let mut cfg = deploy(1, "x");
    cfg["spec"]["template"]["spec"]["containers"] = json!([{"image": "x"}]);
    let err = apply_d(&s, None, &cfg, "m", false, T1).unwrap_err();
    assert!(matches!(err, ApplyError::InvalidObject(_)), "{err:?}");
    assert!(
        err.message().contains("omits all key fields"),
        "{}",
        err.message()
    );
    let mut dup = deploy(1, "x");
    dup["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]);
    let err = apply_d(&s, None, &dup, "m", false, T1).unwrap_err();
    assert!(
        err.message()
            .contains("duplicate entries for key [name=\"a\"]"),
        "{}",
        err.message()
    );
}

#[test]
fn sets_union_and_atomic_lists_replace() {
    let s = schema();
    let cm = |fin: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": fin}});
    let a = apply(
        None,
        &cm(json!(["x"])),
        "a",
        false,
        "v1",
        &s,
        s.configmap,
        T1,
    )
    .unwrap();
    let b = apply(
        Some(&a),
        &cm(json!(["y"])),
        "b",
        false,
        "v1",
        &s,
        s.configmap,
        T2,
    )
    .unwrap();
    assert_eq!(b["metadata"]["finalizers"], json!(["x", "y"]));
    same(
        &fields(&b, "b", "Apply"),
        &json!({"f:metadata": {"f:finalizers": {"v:\"y\"": {}}}}),
    );
    let mut d = deploy(1, "x");
    d["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["1", "2"]);
    let live = apply_d(&s, None, &d, "a", false, T1).unwrap();
    d["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["3"]);
    let out = apply_d(&s, Some(&live), &d, "a", false, T2).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["3"])
    );
}

#[test]
fn update_managers_are_capped() {
    let s = schema();
    let mut obj =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    track_update(
        None,
        &mut obj,
        "m0",
        "v1",
        None,
        &s,
        s.configmap,
        "2024-01-01T00:00:00Z",
    );
    for i in 1..=11 {
        let mut next = obj.clone();
        next["data"][format!("k{i}")] = json!("v");
        let now = format!("2024-01-01T00:00:{i:02}Z");
        track_update(
            Some(&obj),
            &mut next,
            &format!("m{i}"),
            "v1",
            None,
            &s,
            s.configmap,
            &now,
        );
        obj = next;
    }
    let entries = mf(&obj);
    assert_eq!(entries.len(), MAX_UPDATE_MANAGERS);
    assert!(entry(&obj, ANCIENT_CHANGES_MANAGER, "Update").is_some());
}

#[test]
fn merged_list_order_follows_upstream() {
    let s = schema();
    let cm = |fin: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": fin}});
    let live = apply(
        None,
        &cm(json!(["a", "x", "b"])),
        "a",
        false,
        "v1",
        &s,
        s.configmap,
        T1,
    )
    .unwrap();
    let out = apply(
        Some(&live),
        &cm(json!(["b", "a", "n"])),
        "b",
        false,
        "v1",
        &s,
        s.configmap,
        T2,
    )
    .unwrap();
    // Live-only items keep their place, shared items follow the applied order, applied-only
    // items come after the shared item preceding them.
    assert_eq!(out["metadata"]["finalizers"], json!(["x", "b", "a", "n"]));
}

#[test]
fn track_update_removal_drops_ownership() {
    let s = schema();
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    track_update(None, &mut obj, "m", "v1", None, &s, s.configmap, T1);
    let mut next = obj.clone();
    next["data"].as_object_mut().unwrap().remove("b");
    track_update(Some(&obj), &mut next, "n", "v1", None, &s, s.configmap, T2);
    // Removal gives nothing to "n" and takes data.b from "m".
    same(
        &fields(&next, "m", "Update"),
        &json!({"f:data": {".": {}, "f:a": {}}}),
    );
    assert!(entry(&next, "n", "Update").is_none());
}
