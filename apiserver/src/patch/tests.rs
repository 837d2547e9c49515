use serde_json::{json, Value};

use super::test_schema::TestSchema;
use super::*;
use crate::schema::SchemaLookup;

const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
const NODE: &str = "io.k8s.api.core.v1.Node";
const SERVICE: &str = "io.k8s.api.core.v1.Service";

fn smp(root: &str, doc: Value, patch: Value) -> Result<Value, PatchError> {
    let schema = TestSchema::kube();
    let node = schema.root(root);
    assert!(node.is_some(), "unknown root {root}");
    strategic_merge_patch(&doc, &patch, &schema, node)
}

fn smp_ok(root: &str, doc: Value, patch: Value) -> Value {
    smp(root, doc, patch).expect("patch applies")
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
            },
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"team": "a"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
                        },
                        {"name": "sidecar", "image": "busybox", "args": ["sleep", "1d"]}
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "web-config"}},
                        {"name": "cache", "emptyDir": {}}
                    ]
                }
            }
        }
    })
}

fn pod_spec(d: &Value) -> &Value {
    &d["spec"]["template"]["spec"]
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| match &v[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

// ---- kubectl's real bodies -------------------------------------------------------------

#[test]
fn kubectl_set_image_with_set_element_order() {
    let patch = json!({"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"nginx"},{"name":"sidecar"}],
        "containers":[{"image":"nginx:1.26","name":"nginx"}]}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    let containers = &pod_spec(&out)["containers"];
    assert_eq!(names(containers, "name"), ["nginx", "sidecar"]);
    assert_eq!(containers[0]["image"], "nginx:1.26");
    // The rest of the container is kept.
    assert_eq!(
        containers[0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(
        containers[1],
        json!({"name": "sidecar", "image": "busybox", "args": ["sleep", "1d"]})
    );
    assert!(!out.to_string().contains('$'), "directive leaked: {out}");
}

#[test]
fn kubectl_brief_body_with_single_container_order() {
    // The exact body from kubectl set image on a one-container deployment.
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .truncate(1);
    let patch = json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"nginx"}],"containers":[{"image":"nginx:1.26","name":"nginx"}]}}}});
    let out = smp_ok(DEPLOYMENT, d, patch);
    assert_eq!(pod_spec(&out)["containers"].as_array().unwrap().len(), 1);
    assert_eq!(pod_spec(&out)["containers"][0]["image"], "nginx:1.26");
    assert_eq!(pod_spec(&out)["containers"][0]["name"], "nginx");
}

#[test]
fn set_element_order_reorders_containers() {
    let patch = json!({"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"sidecar"},{"name":"nginx"}]}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(
        names(&pod_spec(&out)["containers"], "name"),
        ["sidecar", "nginx"]
    );
}

#[test]
fn node_uncordon_null_deletes_field() {
    let node =
        json!({"metadata":{"name":"n1"},"spec":{"podCIDR":"10.0.0.0/24","unschedulable":true}});
    let out = smp_ok(NODE, node, json!({"spec":{"unschedulable":null}}));
    assert_eq!(
        out,
        json!({"metadata":{"name":"n1"},"spec":{"podCIDR":"10.0.0.0/24"}})
    );
}

#[test]
fn node_cordon_sets_field() {
    let node = json!({"metadata":{"name":"n1"},"spec":{}});
    let out = smp_ok(NODE, node, json!({"spec":{"unschedulable":true}}));
    assert_eq!(out["spec"], json!({"unschedulable": true}));
}

#[test]
fn taints_have_no_strategy_and_are_replaced() {
    let node = json!({"spec":{"taints":[
        {"key":"a","effect":"NoSchedule"},
        {"key":"b","value":"x","effect":"NoExecute"}]}});
    let patch = json!({"spec":{"taints":[{"key":"c","effect":"NoSchedule"}]}});
    let out = smp_ok(NODE, node, patch);
    assert_eq!(
        out["spec"]["taints"],
        json!([{"key":"c","effect":"NoSchedule"}])
    );
}

#[test]
fn rollout_restart_annotation_merges() {
    let patch = json!({"spec":{"template":{"metadata":{"annotations":{
        "kubectl.kubernetes.io/restartedAt":"2025-01-02T03:04:05Z"}}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(
        out["spec"]["template"]["metadata"]["annotations"],
        json!({"team":"a","kubectl.kubernetes.io/restartedAt":"2025-01-02T03:04:05Z"})
    );
    // Nothing else changes.
    let mut expected = deployment();
    expected["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] =
        json!("2025-01-02T03:04:05Z");
    assert_eq!(out, expected);
}

#[test]
fn rollout_restart_creates_annotations_map() {
    let mut d = deployment();
    d["spec"]["template"]["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    let patch = json!({"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"now"}}}}});
    let out = smp_ok(DEPLOYMENT, d, patch);
    assert_eq!(
        out["spec"]["template"]["metadata"]["annotations"],
        json!({"kubectl.kubernetes.io/restartedAt":"now"})
    );
}

#[test]
fn env_merges_by_name() {
    let patch = json!({"spec":{"template":{"spec":{"containers":[
        {"name":"nginx","env":[{"name":"B","value":"two"},{"name":"C","value":"3"}]}]}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    let env = &pod_spec(&out)["containers"][0]["env"];
    assert_eq!(
        *env,
        json!([{"name":"A","value":"1"},{"name":"B","value":"two"},{"name":"C","value":"3"}])
    );
    // The sidecar is untouched and stays second.
    assert_eq!(
        names(&pod_spec(&out)["containers"], "name"),
        ["nginx", "sidecar"]
    );
}

#[test]
fn env_value_from_replaces_value_via_null() {
    let patch = json!({"spec":{"template":{"spec":{"containers":[
        {"name":"nginx","env":[{"name":"A","value":null,"valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]}]}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(
        pod_spec(&out)["containers"][0]["env"][0],
        json!({"name":"A","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}})
    );
}

#[test]
fn patch_delete_removes_container() {
    let patch =
        json!({"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(names(&pod_spec(&out)["containers"], "name"), ["nginx"]);
}

#[test]
fn patch_delete_of_missing_item_is_noop() {
    let patch =
        json!({"spec":{"template":{"spec":{"containers":[{"name":"ghost","$patch":"delete"}]}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(out, deployment());
}

#[test]
fn retain_keys_switches_rolling_update_to_recreate() {
    // What kubectl apply sends when the manifest switches to Recreate.
    let patch = json!({"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":null,"type":"Recreate"}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(out["spec"]["strategy"], json!({"type":"Recreate"}));
    // Without the null, $retainKeys alone clears rollingUpdate.
    let patch = json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(out["spec"]["strategy"], json!({"type":"Recreate"}));
}

#[test]
fn plain_merge_keeps_rolling_update_without_retain_keys() {
    // The classic kubectl patch surprise: without $retainKeys the old rollingUpdate stays.
    let patch = json!({"spec":{"strategy":{"type":"Recreate"}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(out["spec"]["strategy"]["type"], "Recreate");
    assert!(out["spec"]["strategy"]["rollingUpdate"].is_object());
}

#[test]
fn retain_keys_rejects_unlisted_patch_field() {
    let patch = json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"RollingUpdate","rollingUpdate":{"maxSurge":"1"}}}});
    let err = smp(DEPLOYMENT, deployment(), patch).unwrap_err();
    assert_eq!(err, PatchError::BadPatchFormatForRetainKeys);
    assert_eq!(err.status_code(), 400);
    let err = smp(
        DEPLOYMENT,
        deployment(),
        json!({"spec":{"strategy":{"$retainKeys":"type"}}}),
    )
    .unwrap_err();
    assert_eq!(err, PatchError::BadPatchFormatForRetainKeys);
}

#[test]
fn delete_from_primitive_list_finalizers() {
    let mut d = deployment();
    d["metadata"]["finalizers"] = json!(["a.example.com/x", "b.example.com/y", "c.example.com/z"]);
    let patch = json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["b.example.com/y"]}});
    let out = smp_ok(DEPLOYMENT, d, patch);
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["a.example.com/x", "c.example.com/z"])
    );
    assert!(!out["metadata"]
        .as_object()
        .unwrap()
        .keys()
        .any(|k| k.starts_with('$')));
}

#[test]
fn delete_from_primitive_list_with_order_and_additions() {
    // kubectl apply: remove b, add d, keep order a, c, d.
    let mut d = deployment();
    d["metadata"]["finalizers"] = json!(["a", "b", "c"]);
    let patch = json!({"metadata":{
        "$setElementOrder/finalizers":["a","c","d"],
        "$deleteFromPrimitiveList/finalizers":["b"],
        "finalizers":["d"]}});
    let out = smp_ok(DEPLOYMENT, d, patch);
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "c", "d"]));
}

#[test]
fn delete_from_primitive_list_on_absent_field_adds_nothing() {
    let patch = json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["x"]}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(out, deployment());
}

#[test]
fn bad_delete_from_primitive_list_key() {
    let patch = json!({"metadata":{"$deleteFromPrimitiveListfinalizers":["x"]}});
    let err = smp(DEPLOYMENT, deployment(), patch).unwrap_err();
    assert_eq!(err, PatchError::BadPatchFormatForPrimitiveList);
    assert_eq!(err.status_code(), 400);
}

#[test]
fn finalizers_merge_as_union() {
    let mut d = deployment();
    d["metadata"]["finalizers"] = json!(["a", "b"]);
    let out = smp_ok(DEPLOYMENT, d, json!({"metadata":{"finalizers":["b","c"]}}));
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
}

#[test]
fn ports_merge_by_container_port() {
    let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"nginx","ports":[
        {"containerPort":80,"name":"http"},
        {"containerPort":443,"protocol":"TCP"}]}]}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(
        pod_spec(&out)["containers"][0]["ports"],
        json!([{"containerPort":80,"protocol":"TCP","name":"http"},{"containerPort":443,"protocol":"TCP"}])
    );
}

#[test]
fn merge_key_numbers_compare_by_value() {
    let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"nginx","ports":[
        {"containerPort":80.0,"name":"http"}]}]}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(
        pod_spec(&out)["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn service_ports_merge_by_port() {
    let svc =
        json!({"spec":{"ports":[{"port":80,"targetPort":8080},{"port":443,"targetPort":8443}]}});
    let out = smp_ok(
        SERVICE,
        svc,
        json!({"spec":{"ports":[{"port":443,"targetPort":9443}]}}),
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port":80,"targetPort":8080},{"port":443,"targetPort":9443}])
    );
}

#[test]
fn volumes_merge_by_name_with_retain_keys() {
    // kubectl apply switching volume "config" from a configMap to a secret.
    let patch = json!({"spec":{"template":{"spec":{
        "$setElementOrder/volumes":[{"name":"config"},{"name":"cache"},{"name":"data"}],
        "volumes":[
            {"$retainKeys":["name","secret"],"name":"config","secret":{"secretName":"s"},"configMap":null},
            {"name":"data","emptyDir":{"medium":"Memory"}}]}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(
        pod_spec(&out)["volumes"],
        json!([
            {"name":"config","secret":{"secretName":"s"}},
            {"name":"cache","emptyDir":{}},
            {"name":"data","emptyDir":{"medium":"Memory"}}
        ])
    );
}

#[test]
fn new_merge_list_item_goes_first_without_order_directive() {
    // Upstream's mergeSortedSlice puts patch items that are not on the server before the
    // server-only items when no $setElementOrder is given.
    let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"new","image":"x"}]}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(
        names(&pod_spec(&out)["containers"], "name"),
        ["new", "nginx", "sidecar"]
    );
    // With the directive kubectl sends, the order is the directive's.
    let patch = json!({"spec":{"template":{"spec":{
        "$setElementOrder/containers":[{"name":"nginx"},{"name":"sidecar"},{"name":"new"}],
        "containers":[{"name":"new","image":"x"}]}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(
        names(&pod_spec(&out)["containers"], "name"),
        ["nginx", "sidecar", "new"]
    );
}

#[test]
fn patch_replace_on_map() {
    let patch = json!({"spec":{"template":{"metadata":{"annotations":{"$patch":"replace","only":"this"}}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(
        out["spec"]["template"]["metadata"]["annotations"],
        json!({"only":"this"})
    );
}

#[test]
fn patch_delete_on_map_empties_it() {
    let patch = json!({"spec":{"template":{"metadata":{"annotations":{"$patch":"delete"}}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(
        out["spec"]["template"]["metadata"]["annotations"],
        json!({})
    );
}

#[test]
fn patch_replace_item_replaces_merge_list() {
    let patch = json!({"spec":{"template":{"spec":{"containers":[
        {"$patch":"replace"},{"name":"only","image":"x"}]}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(
        pod_spec(&out)["containers"],
        json!([{"name":"only","image":"x"}])
    );
}

#[test]
fn patch_merge_directive_is_rejected_like_upstream() {
    let err = smp(
        DEPLOYMENT,
        deployment(),
        json!({"spec":{"template":{"metadata":{"annotations":{"$patch":"merge"}}}}}),
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 500);
    assert!(
        err.to_string()
            .starts_with("unknown patch type: merge in map: map["),
        "{err}"
    );
    let patch =
        json!({"spec":{"template":{"spec":{"containers":[{"$patch":"merge","name":"nginx"}]}}}});
    let err = smp(DEPLOYMENT, deployment(), patch).unwrap_err();
    assert_eq!(
        err.to_string(),
        "merging lists cannot yet be specified in the patch"
    );
}

#[test]
fn missing_merge_key_errors_like_upstream() {
    let patch = json!({"spec":{"template":{"spec":{"volumes":[{"hostPath":{"path":"/var/lib/kubelet/pods"}}]}}}});
    let err = smp(DEPLOYMENT, deployment(), patch).unwrap_err();
    assert_eq!(
        err.to_string(),
        "map: map[hostPath:map[path:/var/lib/kubelet/pods]] does not contain declared merge key: name"
    );
    assert_eq!(err.status_code(), 500);
    assert_eq!(err.reason(), "");
}

#[test]
fn args_without_strategy_are_replaced() {
    let patch = json!({"spec":{"template":{"spec":{"containers":[{"name":"sidecar","args":["sleep","2d"]}]}}}});
    let out = smp_ok(DEPLOYMENT, deployment(), patch);
    assert_eq!(
        pod_spec(&out)["containers"][1]["args"],
        json!(["sleep", "2d"])
    );
}

#[test]
fn scale_replicas_and_labels() {
    let out = smp_ok(
        DEPLOYMENT,
        deployment(),
        json!({"spec":{"replicas":5},"metadata":{"labels":{"tier":"fe","app":null}}}),
    );
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(out["metadata"]["labels"], json!({"tier":"fe"}));
}

#[test]
fn directives_never_leak_into_new_subtrees() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("volumes");
    d["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("env");
    let patch = json!({"spec":{"template":{"spec":{
        "$setElementOrder/volumes":[{"name":"v"}],
        "volumes":[{"name":"v","emptyDir":{},"$retainKeys":["name","emptyDir"]},{"name":"gone","$patch":"delete"}],
        "containers":[{"name":"nginx","env":[{"name":"X","value":"1","valueFrom":null}]}]}}}});
    let out = smp_ok(DEPLOYMENT, d, patch);
    assert_eq!(
        pod_spec(&out)["volumes"],
        json!([{"name":"v","emptyDir":{}}])
    );
    assert_eq!(
        pod_spec(&out)["containers"][0]["env"],
        json!([{"name":"X","value":"1"}])
    );
    assert!(!out.to_string().contains('$'), "directive leaked: {out}");
}

#[test]
fn unknown_node_uses_json_merge_semantics() {
    let schema = TestSchema::kube();
    let doc = json!({"a":{"b":1,"c":[1,2]},"list":[{"name":"x","v":1}]});
    let patch = json!({"a":{"b":null,"c":[3]},"list":[{"name":"y"}]});
    let out = strategic_merge_patch(&doc, &patch, &schema, None).unwrap();
    assert_eq!(out, json!({"a":{"c":[3]},"list":[{"name":"y"}]}));
}

#[test]
fn unknown_field_uses_json_merge_semantics() {
    let mut d = deployment();
    d["status"] = json!({"conditions":[{"type":"Available"}],"replicas":2});
    let out = smp_ok(
        DEPLOYMENT,
        d,
        json!({"status":{"conditions":[{"type":"Progressing"}]},"spec":{"unknownField":{"x":null,"y":1}}}),
    );
    assert_eq!(
        out["status"],
        json!({"conditions":[{"type":"Progressing"}],"replicas":2})
    );
    assert_eq!(out["spec"]["unknownField"], json!({"y":1}));
}

#[test]
fn map_atomic_selector_merges_like_upstream_smp() {
    // Upstream SMP only knows patch strategies, so an atomic struct still merges.
    let out = smp_ok(
        DEPLOYMENT,
        deployment(),
        json!({"spec":{"selector":{"matchLabels":{"tier":"fe"}}}}),
    );
    assert_eq!(
        out["spec"]["selector"]["matchLabels"],
        json!({"app":"web","tier":"fe"})
    );
}

#[test]
fn type_change_replaces() {
    let out = smp_ok(
        DEPLOYMENT,
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":{"not":"a list"}}}}}),
    );
    assert_eq!(pod_spec(&out)["containers"], json!({"not":"a list"}));
}

#[test]
fn non_object_patch_is_bad_request() {
    let err = smp(DEPLOYMENT, deployment(), json!([1])).unwrap_err();
    assert_eq!(
        err,
        PatchError::InvalidStrategicMerge(
            "json: cannot unmarshal array into Go value of type map[string]interface {}".into()
        )
    );
    assert_eq!(err.status_code(), 400);
    assert_eq!(err.reason(), "BadRequest");
}

#[test]
fn unexpected_patch_strategy() {
    let mut s = TestSchema::default();
    let scalar = s.scalar();
    let list = s.array(scalar);
    let root = s.object(vec![(
        "l",
        super::test_schema::strategies(&["merge", "replace"]),
        list,
    )]);
    let err =
        strategic_merge_patch(&json!({"l":[1]}), &json!({"l":[2]}), &s, Some(root)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected patch strategy: [merge replace]"
    );
}

#[test]
fn list_of_lists_is_unprocessable() {
    let mut s = TestSchema::default();
    let scalar = s.scalar();
    let inner = s.array(scalar);
    let outer = s.array(inner);
    let root = s.object(vec![(
        "l",
        super::test_schema::strategies(&["merge"]),
        outer,
    )]);
    let err = strategic_merge_patch(&json!({"l":[[1]]}), &json!({"l":[[2]]}), &s, Some(root))
        .unwrap_err();
    assert_eq!(err, PatchError::NoListOfLists);
    assert_eq!(err.status_code(), 422);
    assert_eq!(err.reason(), "Invalid");
}

#[test]
fn merge_key_from_single_list_map_key() {
    let mut s = TestSchema::default();
    let scalar = s.scalar();
    let item = s.object(vec![
        ("id", super::test_schema::plain(), scalar),
        ("v", super::test_schema::plain(), scalar),
    ]);
    let list = s.array(item);
    let meta = crate::schema::FieldMeta {
        patch_strategies: vec!["merge".into()],
        list_type: Some(crate::schema::ListType::Map),
        list_map_keys: vec!["id".into()],
        ..Default::default()
    };
    let root = s.object(vec![("l", meta, list)]);
    let out = strategic_merge_patch(
        &json!({"l":[{"id":"a","v":1},{"id":"b","v":2}]}),
        &json!({"l":[{"id":"b","v":3}]}),
        &s,
        Some(root),
    )
    .unwrap();
    assert_eq!(out, json!({"l":[{"id":"a","v":1},{"id":"b","v":3}]}));
}

#[test]
fn preserves_field_order_of_the_object() {
    let out = smp_ok(
        DEPLOYMENT,
        deployment(),
        json!({"metadata":{"labels":null},"spec":{"replicas":3}}),
    );
    let keys: Vec<&String> = out["metadata"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "namespace"]);
    let keys: Vec<&String> = out["spec"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["replicas", "selector", "strategy", "template"]);
}

// ---- ported from upstream patch_test.go (MergeItem) ------------------------------------

fn merge_item(doc: Value, patch: Value) -> Result<Value, PatchError> {
    let schema = TestSchema::kube();
    let node = schema.root("mergeItem");
    strategic_merge_patch(&doc, &patch, &schema, node)
}

#[test]
fn upstream_custom_cases() {
    let cases = [
        (
            "unique scalars when merging lists",
            json!({"mergingIntList":[1,2]}),
            json!({"mergingIntList":[2,3]}),
            json!({"mergingIntList":[1,2,3]}),
        ),
        (
            "delete map from nested map",
            json!({"simpleMap":{"key1":1,"key2":1}}),
            json!({"simpleMap":{"$patch":"delete"}}),
            json!({"simpleMap":{}}),
        ),
        (
            "delete all items from merging list",
            json!({"mergingList":[{"name":1},{"name":2}]}),
            json!({"mergingList":[{"$patch":"replace"}]}),
            json!({"mergingList":[]}),
        ),
        (
            "merge empty merging lists",
            json!({"mergingList":[]}),
            json!({"mergingList":[]}),
            json!({"mergingList":[]}),
        ),
        (
            "delete all keys from map",
            json!({"name":1,"value":1}),
            json!({"$patch":"replace"}),
            json!({}),
        ),
        (
            "add key and delete all keys from map",
            json!({"name":1,"value":1}),
            json!({"other":"a","$patch":"replace"}),
            json!({"other":"a"}),
        ),
        (
            "retainKeys map can add a field when no retainKeys directive present",
            json!({"retainKeysMap":{"name":"foo"}}),
            json!({"retainKeysMap":{"value":"bar"}}),
            json!({"retainKeysMap":{"name":"foo","value":"bar"}}),
        ),
        (
            "retainKeys map can delete a field when no retainKeys directive present",
            json!({"retainKeysMap":{"name":"foo","value":"a"}}),
            json!({"retainKeysMap":{"value":null}}),
            json!({"retainKeysMap":{"name":"foo"}}),
        ),
        (
            "retainKeys map merge an empty map",
            json!({"retainKeysMap":{"name":"foo","value":"a"}}),
            json!({"retainKeysMap":{}}),
            json!({"retainKeysMap":{"name":"foo","value":"a"}}),
        ),
        (
            "retainKeys list can change a field",
            json!({"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"a"}]}),
            json!({"retainKeysMergingList":[{"name":"foo","value":"b"}]}),
            json!({"retainKeysMergingList":[{"name":"bar"},{"name":"foo","value":"b"}]}),
        ),
        (
            "preserve the order from the patch in a merging list",
            json!({"mergingList":[{"name":1},{"name":2,"value":"b"},{"name":3}]}),
            json!({"mergingList":[{"name":3,"value":"c"},{"name":1,"value":"a"},{"name":2,"other":"x"}]}),
            json!({"mergingList":[{"name":3,"value":"c"},{"name":1,"value":"a"},{"name":2,"value":"b","other":"x"}]}),
        ),
        (
            "preserve the order from the patch in a merging list 2",
            json!({"mergingList":[{"name":1},{"name":2,"value":"b"},{"name":3}]}),
            json!({"mergingList":[{"name":3,"value":"c"},{"name":1,"value":"a"}]}),
            json!({"mergingList":[{"name":2,"value":"b"},{"name":3,"value":"c"},{"name":1,"value":"a"}]}),
        ),
        (
            "preserve the order from the patch in a merging int list",
            json!({"mergingIntList":[1,2,3]}),
            json!({"mergingIntList":[3,1,2]}),
            json!({"mergingIntList":[3,1,2]}),
        ),
        (
            "preserve the order from the patch in a merging int list 2",
            json!({"mergingIntList":[1,2,3]}),
            json!({"mergingIntList":[3,1]}),
            json!({"mergingIntList":[2,3,1]}),
        ),
        (
            "$setElementOrder contains item that is not present in the list to be merged",
            json!({"mergingList":[{"name":1},{"name":3}]}),
            json!({"$setElementOrder/mergingList":[{"name":3},{"name":2},{"name":1}],"mergingList":[{"name":3,"value":3},{"name":1,"value":1}]}),
            json!({"mergingList":[{"name":3,"value":3},{"name":1,"value":1}]}),
        ),
        (
            "$setElementOrder contains item that is not present in the int list to be merged",
            json!({"mergingIntList":[1,3]}),
            json!({"$setElementOrder/mergingIntList":[3,2,1]}),
            json!({"mergingIntList":[3,1]}),
        ),
        (
            "delete items in lists of scalars (three-way result)",
            json!({"mergingIntList":[1,2,3,4]}),
            json!({"$setElementOrder/mergingIntList":[1,2],"$deleteFromPrimitiveList/mergingIntList":[3]}),
            json!({"mergingIntList":[1,2,4]}),
        ),
        (
            "merge lists of maps (three-way result)",
            json!({"mergingList":[{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"}]}),
            json!({"$setElementOrder/mergingList":[{"name":4},{"name":1},{"name":2},{"name":3}],"mergingList":[{"name":4,"value":4},{"name":3,"value":3}]}),
            json!({"mergingList":[{"name":4,"value":4},{"name":1,"other":"a"},{"name":2,"value":2,"other":"b"},{"name":3,"value":3}]}),
        ),
        (
            "replace list of scalars",
            json!({"nonMergingIntList":[1,2]}),
            json!({"nonMergingIntList":[2,3]}),
            json!({"nonMergingIntList":[2,3]}),
        ),
        (
            "defined null values should propagate removing original fields",
            json!({"name":"original-name","value":"original-value","other":"current-other"}),
            json!({"name":"modified-name","value":null}),
            json!({"name":"modified-name","other":"current-other"}),
        ),
        (
            "replacing item is replaced",
            json!({"replacingItem":{"a":1,"b":2}}),
            json!({"replacingItem":{"c":3}}),
            json!({"replacingItem":{"c":3}}),
        ),
    ];
    for (name, original, patch, expected) in cases {
        let got = merge_item(original, patch).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn upstream_error_cases() {
    let cases = [
        (
            "should check if order in $setElementOrder and patch list match",
            json!({"mergingList":[{"name":1},{"name":3},{"name":2}]}),
            json!({"$setElementOrder/mergingList":[{"name":1},{"name":2},{"name":3}],"mergingList":[{"name":3,"value":3},{"name":1,"value":1}]}),
            "doesn't match",
        ),
        (
            "int list order mismatch",
            json!({"mergingIntList":[1,3,2]}),
            json!({"$setElementOrder/mergingIntList":[1,2,3],"mergingIntList":[3,1]}),
            "doesn't match",
        ),
        (
            "missing merge key should error out",
            json!({"mergingList":[{"name":1,"value":"a"}]}),
            json!({"mergingList":[{"value":"b"}]}),
            "does not contain declared merge key",
        ),
    ];
    for (name, original, patch, expected) in cases {
        let err = merge_item(original, patch).expect_err(name);
        assert!(err.to_string().contains(expected), "{name}: {err}");
        assert_eq!(err.status_code(), 500, "{name}");
    }
    let err = merge_item(json!({}), json!({"$setElementOrdermergingList":[]})).unwrap_err();
    assert_eq!(err, PatchError::BadPatchFormatForSetElementOrderList);
}

// ---- JSON patch ----------------------------------------------------------------------------

#[test]
fn json_patch_add_replace_remove() {
    let doc = json!({"metadata":{"name":"web","labels":{"a":"1"}},"spec":{"replicas":1}});
    let patch = json!([
        {"op":"add","path":"/metadata/labels/b","value":"2"},
        {"op":"replace","path":"/spec/replicas","value":3},
        {"op":"remove","path":"/metadata/labels/a"},
        {"op":"test","path":"/metadata/name","value":"web"}
    ]);
    let out = json_patch(&doc, &patch).unwrap();
    assert_eq!(
        out,
        json!({"metadata":{"name":"web","labels":{"b":"2"}},"spec":{"replicas":3}})
    );
}

#[test]
fn json_patch_test_failure_is_unprocessable() {
    let doc = json!({"metadata":{"name":"web"}});
    let patch = json!([{"op":"test","path":"/metadata/name","value":"other"}]);
    let err = json_patch(&doc, &patch).unwrap_err();
    assert!(matches!(err, PatchError::JsonPatchFailed(_)), "{err:?}");
    assert_eq!(err.status_code(), 422);
    assert_eq!(err.reason(), "Invalid");
    assert_eq!(
        err.status_message(),
        "the server rejected our request due to an error in our request"
    );
}

#[test]
fn json_patch_apply_errors_are_unprocessable() {
    let doc = json!({"metadata":{"name":"web"}});
    for patch in [
        json!([{"op":"remove","path":"/metadata/labels"}]),
        json!([{"op":"replace","path":"/spec/replicas","value":1}]),
        json!([{"op":"add","path":"/spec/replicas","value":1}]),
        json!([{"op":"frobnicate","path":"/metadata/name"}]),
        json!([{"op":"add","path":"/metadata/x"}]),
    ] {
        let err = json_patch(&doc, &patch).unwrap_err();
        assert_eq!(err.status_code(), 422, "{patch}: {err}");
    }
}

#[test]
fn json_patch_is_atomic() {
    let doc = json!({"a":1});
    let patch = json!([{"op":"add","path":"/b","value":2},{"op":"remove","path":"/zzz"}]);
    assert!(json_patch(&doc, &patch).is_err());
    assert_eq!(doc, json!({"a":1}));
}

#[test]
fn json_patch_malformed_document_is_bad_request() {
    let err = json_patch(&json!({}), &json!({"op":"add"})).unwrap_err();
    assert_eq!(
        err,
        PatchError::InvalidJsonPatch(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch".into()
        )
    );
    assert_eq!(err.status_code(), 400);
    let err = json_patch(&json!({}), &json!(["add"])).unwrap_err();
    assert_eq!(err.status_code(), 400);
}

#[test]
fn json_patch_too_many_operations() {
    let ops: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
        .map(|_| json!({"op":"test","path":"","value":{}}))
        .collect();
    let err = json_patch(&json!({}), &Value::Array(ops)).unwrap_err();
    assert_eq!(err.status_code(), 413);
    assert_eq!(
        err.status_message(),
        "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
    );
}

// ---- merge patch ---------------------------------------------------------------------------

#[test]
fn merge_patch_null_removes_and_objects_merge() {
    let doc = json!({"metadata":{"labels":{"a":"1","b":"2"},"name":"x"},"spec":{"list":[1,2]}});
    let patch = json!({"metadata":{"labels":{"a":null,"c":"3"}},"spec":{"list":[3],"new":{"k":null,"v":1}}});
    let out = merge_patch(&doc, &patch).unwrap();
    assert_eq!(
        out,
        json!({"metadata":{"labels":{"b":"2","c":"3"},"name":"x"},"spec":{"list":[3],"new":{"v":1}}})
    );
}

#[test]
fn merge_patch_non_object_replaces() {
    assert_eq!(
        merge_patch(&json!({"a":1}), &json!([1, 2])).unwrap(),
        json!([1, 2])
    );
    assert_eq!(
        merge_patch(&json!({"a":1}), &json!({"a":{"b":1}})).unwrap(),
        json!({"a":{"b":1}})
    );
    assert_eq!(
        merge_patch(&json!("x"), &json!({"a":1})).unwrap(),
        json!({"a":1})
    );
}

#[test]
fn merge_patch_document_check() {
    assert!(check_merge_patch_document(&json!({})).is_ok());
    let err = check_merge_patch_document(&json!(null)).unwrap_err();
    assert_eq!(err.status_code(), 400);
    assert_eq!(
        err.to_string(),
        "error decoding patch: json: cannot unmarshal null into Go value of type map[string]interface {}"
    );
}
