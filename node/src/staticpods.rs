//! Static pods: manifests in `DATA/agent/pod-manifests/` become pods bound to this node,
//! named `<name>-<node>`, with the mirror-pod annotations and the Node as owner. The
//! directory is rescanned every few seconds: new or changed manifests (re)create their pod,
//! removed ones delete it.
//!
//! Unlike upstream, where the kubelet runs the file's pod and the API object is only a
//! mirror, here the kubelet runs the API object like any other pod; deleting the mirror
//! pod therefore restarts the static pod (it is recreated from the file).
//!
//! As upstream (and as NodeRestriction requires of a node's pod creations):
//! - a manifest that references API objects (service account, secrets, configmaps, PVCs,
//!   ...) is refused with `static pods may not reference <resource>`
//!   ([`api_object_reference`], upstream `HasAPIObjectReference`);
//! - a mirror pod carries exactly one owner reference, the registered Node with its uid
//!   and `controller: true` ([`node_owner`]); without the Node's uid no mirror pod is
//!   created (`mirror_client.go`). A mirror pod whose owner is not the current Node is
//!   deleted and recreated.

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use serde_json::Value;
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";

/// Why a static pod manifest is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaticPodError {
    #[error("static pods may not reference {resource}")]
    ApiReference { resource: String },
    /// Upstream's text, double space included.
    #[error("unknown volume type for volume  {volume:?}")]
    UnknownVolumeType { volume: String },
    #[error("unknown source for projected volume {volume:?}")]
    UnknownProjectedSource { volume: String },
    #[error("encoding the pod: {0}")]
    Encode(String),
}

/// Volume sources that need nothing from the API (upstream's allow list).
const LOCAL_VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "cephfs",
    "cinder",
    "downwardAPI",
    "emptyDir",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

fn present(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// All containers of a spec (init, regular, ephemeral).
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |k| list(spec, k).iter())
}

/// Whether the spec names a secret anywhere (upstream `VisitPodSecretNames`).
fn references_secrets(spec: &Value) -> bool {
    if !list(spec, "imagePullSecrets").is_empty() {
        return true;
    }
    let in_containers = containers(spec).any(|c| {
        list(c, "envFrom").iter().any(|e| present(e, "secretRef"))
            || list(c, "env").iter().any(|e| {
                e.get("valueFrom")
                    .is_some_and(|f| present(f, "secretKeyRef"))
            })
    });
    in_containers
        || list(spec, "volumes").iter().any(|v| {
            present(v, "secret")
                || present(v, "azureFile")
                || [
                    "cephfs",
                    "cinder",
                    "flexVolume",
                    "rbd",
                    "scaleIO",
                    "iscsi",
                    "storageos",
                ]
                .iter()
                .any(|src| v.get(*src).is_some_and(|s| present(s, "secretRef")))
                || v.get("csi")
                    .is_some_and(|c| present(c, "nodePublishSecretRef"))
                || v.get("projected")
                    .is_some_and(|p| list(p, "sources").iter().any(|s| present(s, "secret")))
        })
}

/// Whether the spec names a configmap anywhere (upstream `VisitPodConfigmapNames`).
fn references_configmaps(spec: &Value) -> bool {
    let in_containers = containers(spec).any(|c| {
        list(c, "envFrom")
            .iter()
            .any(|e| present(e, "configMapRef"))
            || list(c, "env").iter().any(|e| {
                e.get("valueFrom")
                    .is_some_and(|f| present(f, "configMapKeyRef"))
            })
    });
    in_containers
        || list(spec, "volumes").iter().any(|v| {
            present(v, "configMap")
                || v.get("projected")
                    .is_some_and(|p| list(p, "sources").iter().any(|s| present(s, "configMap")))
        })
}

fn reference(resource: &str) -> Result<Option<String>, StaticPodError> {
    Ok(Some(resource.to_string()))
}

/// The kind of API object a static pod references, as upstream's `HasAPIObjectReference`
/// names it (`serviceaccounts`, `secrets`, `configmaps (via projected volumes)`, ...), or
/// `None` when the pod needs nothing from the API. Volume types or projected sources it
/// does not know are errors, as upstream.
pub fn api_object_reference(pod: &Pod) -> Result<Option<String>, StaticPodError> {
    let v = serde_json::to_value(pod).map_err(|e| StaticPodError::Encode(e.to_string()))?;
    let Some(spec) = v.get("spec") else {
        return Ok(None);
    };
    let named = |k: &str| {
        spec.get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    // `serviceAccount` is the deprecated alias upstream converts into serviceAccountName.
    if named("serviceAccountName") || named("serviceAccount") {
        return reference("serviceaccounts");
    }
    if references_secrets(spec) {
        return reference("secrets");
    }
    if references_configmaps(spec) {
        return reference("configmaps");
    }
    if !list(spec, "resourceClaims").is_empty() {
        return reference("resourceclaims");
    }
    for vol in list(spec, "volumes") {
        let name = vol.get("name").and_then(Value::as_str).unwrap_or("");
        let source = vol
            .as_object()
            .and_then(|o| o.iter().find(|(k, x)| k.as_str() != "name" && !x.is_null()))
            .map(|(k, _)| k.as_str());
        let resource = match source {
            Some(k) if LOCAL_VOLUME_SOURCES.contains(&k) => continue,
            Some("configMap") => "configmaps (via configmap volumes)",
            Some("secret") => "secrets (via secret volumes)",
            Some("csi") => "csidrivers (via CSI volumes)",
            Some("glusterfs") => "endpoints (via glusterFS volumes)",
            Some("persistentVolumeClaim") => "persistentvolumeclaims",
            Some("ephemeral") => "persistentvolumeclaims (via ephemeral volumes)",
            Some("azureFile") => "secrets (via azureFile volumes)",
            Some("projected") => {
                let mut found = None;
                for s in list(&vol["projected"], "sources") {
                    let kind = s
                        .as_object()
                        .and_then(|o| o.iter().find(|(_, x)| !x.is_null()))
                        .map(|(k, _)| k.as_str());
                    found = match kind {
                        Some("downwardAPI") => continue,
                        Some("configMap") => Some("configmaps (via projected volumes)"),
                        Some("secret") => Some("secrets (via projected volumes)"),
                        Some("serviceAccountToken") => {
                            Some("serviceaccounts (via projected volumes)")
                        }
                        Some("clusterTrustBundle") => Some("clustertrustbundles"),
                        Some("podCertificate") => Some("podcertificates"),
                        _ => {
                            return Err(StaticPodError::UnknownProjectedSource {
                                volume: name.to_string(),
                            })
                        }
                    };
                    break;
                }
                match found {
                    Some(r) => r,
                    None => continue,
                }
            }
            _ => {
                return Err(StaticPodError::UnknownVolumeType {
                    volume: name.to_string(),
                })
            }
        };
        return reference(resource);
    }
    Ok(None)
}

/// The owner reference of a mirror pod: the node's registered Node object, as controller
/// (NodeRestriction refuses any other, and `blockOwnerDeletion`).
pub fn node_owner(node: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.to_string(),
        uid: uid.to_string(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// Whether the pod's only owner is `owner`.
fn owned_by(p: &Pod, owner: &OwnerReference) -> bool {
    match p.metadata.owner_references.as_deref() {
        Some([o]) => {
            o.api_version == owner.api_version
                && o.kind == owner.kind
                && o.name == owner.name
                && o.uid == owner.uid
                && o.controller == Some(true)
        }
        _ => false,
    }
}

/// Parses the manifests of a directory (YAML or JSON, one pod per file) into the pods to
/// create, keyed by `namespace/name`. Files that do not parse are skipped with a warning.
pub fn read_manifests(dir: &Path, node: &str) -> BTreeMap<String, Pod> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        match serde_yaml::from_str::<Pod>(&text) {
            Ok(pod) => {
                match api_object_reference(&pod) {
                    Ok(None) => {}
                    Ok(Some(resource)) => {
                        let e = StaticPodError::ApiReference { resource };
                        tracing::warn!(file = %p.display(), error = %e, "could not process manifest file");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(file = %p.display(), error = %e, "could not process manifest file");
                        continue;
                    }
                }
                let pod = mirror_pod(pod, node, &text);
                let key = format!(
                    "{}/{}",
                    pod.metadata.namespace.as_deref().unwrap_or("default"),
                    pod.metadata.name.as_deref().unwrap_or("")
                );
                out.insert(key, pod);
            }
            Err(e) => {
                tracing::warn!(file = %p.display(), error = %e, "invalid static pod manifest")
            }
        }
    }
    out
}

/// The API object for a static pod manifest.
pub fn mirror_pod(mut pod: Pod, node: &str, source_text: &str) -> Pod {
    let hash: String = sha2::Sha256::digest(format!("{node}\n{source_text}").as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let name = format!(
        "{}-{node}",
        pod.metadata.name.as_deref().unwrap_or("static")
    );
    pod.metadata.name = Some(name);
    if pod.metadata.namespace.is_none() {
        pod.metadata.namespace = Some("default".into());
    }
    let ann = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    ann.insert(CONFIG_SOURCE.into(), "file".into());
    ann.insert(CONFIG_HASH.into(), hash.clone());
    ann.insert(CONFIG_MIRROR.into(), hash);
    pod.metadata.resource_version = None;
    pod.metadata.uid = None;
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.to_string());
    pod.status = None;
    pod
}

fn hash_of(p: &Pod) -> Option<&str> {
    p.metadata
        .annotations
        .as_ref()?
        .get(CONFIG_HASH)
        .map(String::as_str)
}

/// One change [`plan`] asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorAction {
    /// Create this mirror pod (owner reference already set).
    Create { key: String, pod: Box<Pod> },
    /// Delete a mirror pod (stale, changed, or its manifest is gone), guarded by its uid.
    Delete {
        key: String,
        namespace: String,
        name: String,
        uid: Option<String>,
    },
}

/// What to do to bring the mirror pods `have` (static pods on this node, keyed
/// `namespace/name`) in line with the manifests `desired`. `owner` is the Node owner
/// reference ([`node_owner`]); without it (the Node's uid is unknown, or the Node is being
/// deleted) nothing is created, as upstream's mirror client, and nothing is deleted for a
/// wrong owner. A mirror pod being deleted is left to finish.
pub fn plan(
    desired: BTreeMap<String, Pod>,
    mut have: BTreeMap<String, Pod>,
    owner: Option<&OwnerReference>,
) -> Vec<MirrorAction> {
    let delete = |key: &str, p: &Pod| MirrorAction::Delete {
        key: key.to_string(),
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        uid: p.metadata.uid.clone(),
    };
    let mut out = Vec::new();
    for (key, mut pod) in desired {
        match have.remove(&key) {
            Some(cur) if cur.metadata.deletion_timestamp.is_some() => {}
            Some(cur) => {
                let stale_owner = owner.is_some_and(|o| !owned_by(&cur, o));
                if hash_of(&cur) != hash_of(&pod) || stale_owner {
                    out.push(delete(&key, &cur));
                }
            }
            None => {
                if let Some(o) = owner {
                    pod.metadata.owner_references = Some(vec![o.clone()]);
                    out.push(MirrorAction::Create {
                        key,
                        pod: Box::new(pod),
                    });
                }
            }
        }
    }
    for (key, p) in have {
        if p.metadata.deletion_timestamp.is_none() {
            out.push(delete(&key, &p));
        }
    }
    out
}

/// Keeps the API in step with the manifest directory until cancelled.
pub async fn run(client: kube::Client, node: String, dir: std::path::PathBuf) {
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        let desired = read_manifests(&dir, &node);
        if let Err(e) = sync_once(&client, &nodes, &node, desired).await {
            tracing::debug!(error = %e, "static pods");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The owner reference for this node's mirror pods, from its registered Node: `None` when
/// the Node cannot be read, has no uid, or is being deleted (upstream does not create
/// mirror pods then).
async fn current_owner(nodes: &Api<Node>, node: &str) -> Option<OwnerReference> {
    match nodes.get(node).await {
        Ok(n) if n.metadata.deletion_timestamp.is_some() => {
            tracing::debug!(%node, "no mirror pods: the node is being removed from the cluster");
            None
        }
        Ok(n) => match n.metadata.uid.as_deref() {
            Some(uid) if !uid.is_empty() => Some(node_owner(node, uid)),
            _ => {
                tracing::warn!(%node, "failed to get node UID: UID unset for node");
                None
            }
        },
        Err(e) => {
            tracing::warn!(%node, error = %e, "failed to get node UID");
            None
        }
    }
}

async fn sync_once(
    client: &kube::Client,
    nodes: &Api<Node>,
    node: &str,
    desired: BTreeMap<String, Pod>,
) -> Result<(), kube::Error> {
    let all: Api<Pod> = Api::all(client.clone());
    let existing = all
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    let mut have: BTreeMap<String, Pod> = BTreeMap::new();
    for p in existing.items {
        let is_static = p
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.get(CONFIG_SOURCE).map(String::as_str) == Some("file"));
        if is_static {
            let key = format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or(""),
                p.metadata.name.as_deref().unwrap_or("")
            );
            have.insert(key, p);
        }
    }
    let owner = if desired.is_empty() && have.is_empty() {
        None
    } else {
        current_owner(nodes, node).await
    };
    for action in plan(desired, have, owner.as_ref()) {
        match action {
            MirrorAction::Create { key, pod } => {
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                match api.create(&PostParams::default(), &pod).await {
                    Ok(_) => tracing::info!(pod = %key, "created mirror pod"),
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => tracing::warn!(pod = %key, error = %e, "creating mirror pod"),
                }
            }
            MirrorAction::Delete {
                key,
                namespace,
                name,
                uid,
            } => {
                let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid,
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(&name, &dp).await {
                    Ok(_) => tracing::info!(pod = %key, "deleted mirror pod"),
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => tracing::warn!(pod = %key, error = %e, "deleting mirror pod"),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_become_mirror_pods() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("web.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: c, image: x}]\n",
        )
        .unwrap();
        std::fs::write(d.path().join("notes.txt"), "ignored").unwrap();
        std::fs::write(d.path().join("bad.yaml"), ": : :").unwrap();
        let m = read_manifests(d.path(), "n1");
        assert_eq!(m.len(), 1);
        let p = &m["default/web-n1"];
        assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        let a = p.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[CONFIG_SOURCE], "file");
        assert_eq!(a[CONFIG_MIRROR], a[CONFIG_HASH]);
        // The hash follows the content.
        std::fs::write(
            d.path().join("web.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: c, image: y}]\n",
        )
        .unwrap();
        let m2 = read_manifests(d.path(), "n1");
        assert_ne!(hash_of(&m2["default/web-n1"]), hash_of(p));
    }

    fn pod_json(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn reference_of(spec: serde_json::Value) -> Result<Option<String>, StaticPodError> {
        api_object_reference(&pod_json(spec))
    }

    #[test]
    fn api_object_references_are_named_as_upstream() {
        let c = |extra: serde_json::Value| {
            let mut c = serde_json::json!({"name": "c", "image": "x"});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        let cases = [
            (
                serde_json::json!({"containers": [c(serde_json::json!({}))],
                    "volumes": [{"name": "h", "hostPath": {"path": "/x"}},
                        {"name": "e", "emptyDir": {}},
                        {"name": "d", "projected": {"sources": [{"downwardAPI": {"items": []}}]}}]}),
                None,
            ),
            (
                serde_json::json!({"serviceAccountName": "sa", "containers": [c(serde_json::json!({}))]}),
                Some("serviceaccounts"),
            ),
            (
                serde_json::json!({"serviceAccount": "sa", "containers": [c(serde_json::json!({}))]}),
                Some("serviceaccounts"),
            ),
            (
                serde_json::json!({"imagePullSecrets": [{"name": "reg"}], "containers": [c(serde_json::json!({}))]}),
                Some("secrets"),
            ),
            (
                serde_json::json!({"initContainers": [c(serde_json::json!({"env": [{"name": "A",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}))],
                    "containers": [c(serde_json::json!({}))]}),
                Some("secrets"),
            ),
            (
                serde_json::json!({"containers": [c(serde_json::json!({"envFrom": [{"configMapRef": {"name": "cm"}}]}))]}),
                Some("configmaps"),
            ),
            (
                serde_json::json!({"containers": [c(serde_json::json!({}))],
                    "volumes": [{"name": "v", "configMap": {"name": "cm"}}]}),
                Some("configmaps"),
            ),
            (
                serde_json::json!({"containers": [c(serde_json::json!({}))],
                    "volumes": [{"name": "v", "secret": {"secretName": "s"}}]}),
                Some("secrets"),
            ),
            (
                serde_json::json!({"containers": [c(serde_json::json!({}))],
                    "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]}),
                Some("persistentvolumeclaims"),
            ),
            (
                serde_json::json!({"containers": [c(serde_json::json!({}))],
                    "volumes": [{"name": "v", "ephemeral": {}}]}),
                Some("persistentvolumeclaims (via ephemeral volumes)"),
            ),
            (
                serde_json::json!({"containers": [c(serde_json::json!({}))],
                    "volumes": [{"name": "v", "csi": {"driver": "d"}}]}),
                Some("csidrivers (via CSI volumes)"),
            ),
            (
                serde_json::json!({"containers": [c(serde_json::json!({}))],
                    "volumes": [{"name": "v", "projected": {"sources": [
                        {"downwardAPI": {"items": []}},
                        {"serviceAccountToken": {"path": "token"}}]}}]}),
                Some("serviceaccounts (via projected volumes)"),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                reference_of(spec.clone()).unwrap().as_deref(),
                want,
                "{spec}"
            );
        }
        let e = reference_of(serde_json::json!({"containers": [c(serde_json::json!({}))],
            "volumes": [{"name": "v"}]}))
        .unwrap_err();
        assert_eq!(e.to_string(), "unknown volume type for volume  \"v\"");
        assert_eq!(
            StaticPodError::ApiReference {
                resource: "secrets".into()
            }
            .to_string(),
            "static pods may not reference secrets"
        );
    }

    #[test]
    fn manifests_referencing_api_objects_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("ok.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec:\n  containers: [{name: c, image: x}]\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("cm.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: cm}\nspec:\n  containers: [{name: c, image: x}]\n  volumes: [{name: v, configMap: {name: x}}]\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("sa.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: sa}\nspec:\n  serviceAccountName: default\n  containers: [{name: c, image: x}]\n",
        )
        .unwrap();
        let m = read_manifests(d.path(), "n1");
        assert_eq!(m.keys().collect::<Vec<_>>(), ["default/ok-n1"]);
    }

    fn mirror(name: &str, hash: &str, owner: Option<OwnerReference>) -> Pod {
        let mut p = pod_json(serde_json::json!({"containers": [{"name": "c", "image": "x"}]}));
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.metadata.uid = Some(format!("uid-{name}"));
        p.metadata.annotations = Some(BTreeMap::from([
            (CONFIG_SOURCE.to_string(), "file".to_string()),
            (CONFIG_HASH.to_string(), hash.to_string()),
            (CONFIG_MIRROR.to_string(), hash.to_string()),
        ]));
        p.metadata.owner_references = owner.map(|o| vec![o]);
        p
    }

    #[test]
    fn mirror_pods_are_owned_by_the_node() {
        let owner = node_owner("n1", "node-uid");
        assert_eq!(owner.api_version, "v1");
        assert_eq!(owner.kind, "Node");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, None);
        let desired = BTreeMap::from([
            ("default/a-n1".to_string(), mirror("a-n1", "h1", None)),
            ("default/b-n1".to_string(), mirror("b-n1", "h2", None)),
            ("default/c-n1".to_string(), mirror("c-n1", "h3", None)),
            ("default/d-n1".to_string(), mirror("d-n1", "h4", None)),
        ]);
        let mut deleting = mirror("d-n1", "old", Some(owner.clone()));
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let have = BTreeMap::from([
            // Up to date.
            (
                "default/b-n1".to_string(),
                mirror("b-n1", "h2", Some(owner.clone())),
            ),
            // Created before mirror pods had an owner: replaced.
            ("default/c-n1".to_string(), mirror("c-n1", "h3", None)),
            ("default/d-n1".to_string(), deleting),
            // Manifest removed.
            (
                "default/e-n1".to_string(),
                mirror("e-n1", "h5", Some(owner.clone())),
            ),
        ]);
        let actions = plan(desired.clone(), have.clone(), Some(&owner));
        let del = |n: &str| MirrorAction::Delete {
            key: format!("default/{n}"),
            namespace: "default".into(),
            name: n.into(),
            uid: Some(format!("uid-{n}")),
        };
        assert_eq!(actions.len(), 3, "{actions:?}");
        match &actions[0] {
            MirrorAction::Create { key, pod } => {
                assert_eq!(key, "default/a-n1");
                assert_eq!(pod.metadata.owner_references, Some(vec![owner.clone()]));
            }
            a => panic!("unexpected {a:?}"),
        }
        assert_eq!(actions[1], del("c-n1"));
        assert_eq!(actions[2], del("e-n1"));
        // Without the Node's uid: nothing is created and owners are not judged.
        let actions = plan(desired, have, None);
        assert_eq!(actions, vec![del("e-n1")]);
    }
}
