//! Static pods: manifests in `DATA/agent/pod-manifests/` become pods bound to this node,
//! named `<name>-<node>`, with the mirror-pod annotations and the Node as owner. The
//! directory is rescanned every few seconds: new or changed manifests (re)create their pod,
//! removed ones delete it.
//!
//! Unlike upstream, where the kubelet runs the file's pod and the API object is only a
//! mirror, here the kubelet runs the API object like any other pod; deleting the mirror
//! pod therefore restarts the static pod (it is recreated from the file).

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";

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
    let owner = if desired.is_empty() {
        None
    } else {
        nodes.get(node).await.ok().map(|n| OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node.to_string(),
            uid: n.metadata.uid.unwrap_or_default(),
            controller: Some(true),
            ..Default::default()
        })
    };
    for (key, mut pod) in desired {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let name = pod.metadata.name.clone().unwrap_or_default();
        match have.remove(&key) {
            Some(cur)
                if hash_of(&cur) == hash_of(&pod) && cur.metadata.deletion_timestamp.is_none() => {}
            Some(cur) if cur.metadata.deletion_timestamp.is_some() => {}
            Some(_) => {
                let _ = api.delete(&name, &DeleteParams::default()).await;
            }
            None => {
                pod.metadata.owner_references = owner.clone().map(|o| vec![o]);
                match api.create(&PostParams::default(), &pod).await {
                    Ok(_) => tracing::info!(pod = %key, "created mirror pod"),
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => tracing::warn!(pod = %key, error = %e, "creating mirror pod"),
                }
            }
        }
    }
    for (key, p) in have {
        if p.metadata.deletion_timestamp.is_none() {
            let api: Api<Pod> = Api::namespaced(
                client.clone(),
                p.metadata.namespace.as_deref().unwrap_or(""),
            );
            let _ = api
                .delete(
                    p.metadata.name.as_deref().unwrap_or(""),
                    &DeleteParams::default(),
                )
                .await;
            tracing::info!(pod = %key, "deleted mirror pod of a removed manifest");
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
}
