use super::*;
use crate::schema::ListType;
use std::sync::OnceLock;
use std::time::Instant;

fn api() -> &'static OpenApi {
    static CELL: OnceLock<OpenApi> = OnceLock::new();
    CELL.get_or_init(OpenApi::new)
}

fn doc(path: &str) -> Value {
    let (bytes, _) = api().group_version(path).expect("served gv");
    serde_json::from_slice(&bytes).expect("valid json")
}

fn field(api: &OpenApi, def: &str, path: &[&str]) -> (FieldMeta, NodeId) {
    let mut node = api.root(def).unwrap_or_else(|| panic!("no root {def}"));
    let mut meta = FieldMeta::default();
    for (i, name) in path.iter().enumerate() {
        if i > 0 {
            while matches!(api.kind(node), NodeKind::Array | NodeKind::Map) {
                node = api.elem(node).unwrap();
            }
        }
        let (m, n) = api
            .field(node, name)
            .unwrap_or_else(|| panic!("no field {name} in {def}"));
        meta = m;
        node = n;
    }
    (meta, node)
}

#[test]
fn index_lists_all_group_versions_with_stable_hashes() {
    let idx = api().index();
    let paths = idx["paths"].as_object().unwrap();
    let gvs = resources::group_versions();
    assert_eq!(paths.len(), gvs.len());
    for (g, v) in gvs {
        let p = gv_path(g, v);
        let url = paths[&p]["serverRelativeURL"].as_str().unwrap();
        let (bytes, hash) = api().group_version(&p).unwrap();
        assert_eq!(url, format!("/openapi/v3/{p}?hash={hash}"));
        assert_eq!(hash.len(), 128);
        assert!(hash
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        // Regeneration is deterministic, so the hash matches the bytes served.
        assert_eq!(hash_hex(&bytes), hash, "{p}");
    }
    assert!(paths.contains_key("api/v1"));
    assert!(paths.contains_key("apis/apps/v1"));
    assert!(api().group_version("apis/nope/v1").is_none());
}

#[test]
fn core_v1_document_has_pod_patch_with_field_validation() {
    let d = doc("api/v1");
    assert_eq!(d["openapi"], "3.0.0");
    let patch = &d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(patch["x-kubernetes-action"], "patch");
    let names: Vec<&str> = patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for n in ["fieldValidation", "fieldManager", "dryRun", "force"] {
        assert!(names.contains(&n), "{n} missing");
    }
    let content = patch["requestBody"]["content"].as_object().unwrap();
    for t in [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ] {
        assert!(content.contains_key(t));
    }
    let schemas = d["components"]["schemas"].as_object().unwrap();
    let pod = &schemas["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["x-kubernetes-group-version-kind"],
        json!([{"group": "", "version": "v1", "kind": "Pod"}])
    );
    assert_eq!(
        pod["properties"]["spec"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.PodSpec"
    );
    assert!(pod["properties"]["spec"]["description"].is_string());
    let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    assert_eq!(
        schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["x-kubernetes-int-or-string"],
        true
    );
    assert_eq!(
        schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["format"],
        "date-time"
    );
    assert_eq!(
        schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"],
        "atomic"
    );
    assert!(schemas.contains_key("io.k8s.api.core.v1.PodList"));
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"));
    assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.Status"));
    // Apps kinds are not in the core document.
    assert!(!schemas.contains_key("io.k8s.api.apps.v1.Deployment"));
    // Every $ref resolves inside the document.
    let mut refs = Vec::new();
    defs::refs(&d, &mut refs);
    for r in refs {
        assert!(schemas.contains_key(r), "dangling ref {r}");
    }
}

#[test]
fn apps_v1_document_has_scale_and_deployment_schema() {
    let d = doc("apis/apps/v1");
    let scale = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["get"]["x-kubernetes-group-version-kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    let schemas = d["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("io.k8s.api.autoscaling.v1.Scale"));
    let dep = &schemas["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        dep["x-kubernetes-group-version-kind"][0]["kind"],
        "Deployment"
    );
    assert_eq!(
        schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
            ["x-kubernetes-patch-strategy"],
        "retainKeys"
    );
    assert!(d["paths"]["/apis/apps/v1/deployments"]["get"].is_object());
    let mut refs = Vec::new();
    defs::refs(&d, &mut refs);
    for r in refs {
        assert!(schemas.contains_key(r), "dangling ref {r}");
    }
}

#[test]
fn lookup_merge_metadata() {
    let a = api();
    let (m, n) = field(a, "io.k8s.api.core.v1.PodSpec", &["containers"]);
    assert_eq!(m.patch_merge_key.as_deref(), Some("name"));
    assert!(m.has_strategy("merge"));
    assert_eq!(m.list_type, Some(ListType::Map));
    assert_eq!(a.kind(n), NodeKind::Array);
    let c = a.elem(n).unwrap();
    assert_eq!(Some(c), a.root("io.k8s.api.core.v1.Container"));
    assert_eq!(a.kind(c), NodeKind::Object);

    let (m, _) = field(a, "io.k8s.api.core.v1.PodSpec", &["volumes"]);
    assert!(m.has_strategy("merge") && m.has_strategy("retainKeys"));

    let (m, _) = field(a, "io.k8s.api.core.v1.ServiceSpec", &["ports"]);
    assert_eq!(m.list_map_keys, vec!["port", "protocol"]);
    assert_eq!(m.patch_merge_key.as_deref(), Some("port"));

    let (m, _) = field(a, "io.k8s.api.core.v1.Container", &["ports"]);
    assert_eq!(m.list_map_keys, vec!["containerPort", "protocol"]);

    let (m, _) = field(
        a,
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        &["ownerReferences"],
    );
    assert_eq!(m.patch_merge_key.as_deref(), Some("uid"));
    let (m, _) = field(
        a,
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        &["finalizers"],
    );
    assert!(m.has_strategy("merge"));
    assert_eq!(m.list_type, Some(ListType::Set));

    let (m, n) = field(a, "io.k8s.api.apps.v1.DeploymentSpec", &["selector"]);
    assert!(m.map_atomic, "LabelSelector is a struct marked atomic");
    assert_eq!(a.kind(n), NodeKind::Object);

    let (m, n) = field(a, "io.k8s.api.core.v1.PodSpec", &["nodeSelector"]);
    assert!(m.map_atomic);
    assert_eq!(a.kind(n), NodeKind::Map);
    assert_eq!(a.kind(a.elem(n).unwrap()), NodeKind::Scalar);

    let (m, _) = field(a, "io.k8s.api.apps.v1.DeploymentStatus", &["conditions"]);
    assert_eq!(m.patch_merge_key.as_deref(), Some("type"));

    // Scalars and free-form nodes.
    let (_, n) = field(a, "io.k8s.api.core.v1.Container", &["resources", "limits"]);
    assert_eq!(a.kind(n), NodeKind::Map);
    assert_eq!(a.kind(a.elem(n).unwrap()), NodeKind::Scalar);
    let (_, n) = field(a, "io.k8s.api.core.v1.ServicePort", &["targetPort"]);
    assert_eq!(a.kind(n), NodeKind::Scalar);
    let (_, n) = field(
        a,
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        &["creationTimestamp"],
    );
    assert_eq!(a.kind(n), NodeKind::Scalar);
    let (_, n) = field(a, "io.k8s.api.apps.v1.ControllerRevision", &["data"]);
    assert_eq!(a.kind(n), NodeKind::Any);
    let (_, n) = field(
        a,
        "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry",
        &["fieldsV1"],
    );
    assert_eq!(a.kind(n), NodeKind::Any);
    assert!(a
        .field(a.root("io.k8s.api.core.v1.Pod").unwrap(), "nope")
        .is_none());
    assert!(a.root("io.k8s.api.core.v1.Nope").is_none());
}

#[test]
fn unknown_fields_paths() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labelz": {"a": "b"}, "labels": {"x": "y"}},
        "spec": {
            "foo": 1,
            "containers": [
                {"name": "a", "image": "i"},
                {"name": "b", "image": "i", "imagePullPolcy": "Always",
                 "resources": {"limits": {"cpu": "1"}},
                 "ports": [{"containerPort": 80, "bogus": true}]}
            ]
        }
    });
    assert_eq!(
        api().unknown_fields("io.k8s.api.core.v1.Pod", &pod),
        vec![
            "metadata.labelz",
            "spec.foo",
            "spec.containers[1].imagePullPolcy",
            "spec.containers[1].ports[0].bogus",
        ]
    );
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                     "annotations": {"a": "b"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"},
                         "matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "nginx", "image": "nginx:1.27",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                        "volumeMounts": [{"name": "v", "mountPath": "/data"}]
                    }],
                    "volumes": [{"name": "v", "emptyDir": {}}],
                    "tolerations": [{"key": "k", "operator": "Exists"}]
                }
            }
        },
        "status": {"replicas": 1, "conditions": [{"type": "Available", "status": "True",
                   "lastUpdateTime": "2024-01-01T00:00:00Z"}]}
    });
    assert!(api()
        .unknown_fields("io.k8s.api.apps.v1.Deployment", &deploy)
        .is_empty());
    let mut bad = deploy.clone();
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["prot"] =
        json!(1);
    assert_eq!(
        api().unknown_fields("io.k8s.api.apps.v1.Deployment", &bad),
        vec!["spec.template.spec.containers[0].readinessProbe.httpGet.prot"]
    );
    // Free-form content is not checked.
    let cr = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": 1,
                    "data": {"anything": {"goes": 1}}});
    assert!(api()
        .unknown_fields("io.k8s.api.apps.v1.ControllerRevision", &cr)
        .is_empty());
}

#[test]
fn sizes_and_timings() {
    let t = Instant::now();
    let fresh = OpenApi::new();
    let built = t.elapsed();
    let mut total = 0;
    for (path, ..) in &fresh.gvs {
        let t = Instant::now();
        let (bytes, _) = fresh.group_version(path).unwrap();
        println!("{path}: {} bytes in {:?}", bytes.len(), t.elapsed());
        total += bytes.len();
    }
    println!(
        "OpenApi::new() {:?}; arena ~{} KiB, {} nodes; all documents {} KiB",
        built,
        fresh.approx_arena_bytes() / 1024,
        fresh.arena.node_count(),
        total / 1024
    );
    assert!(fresh.approx_arena_bytes() < 2 * 1024 * 1024);
}
