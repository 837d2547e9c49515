//! The IO around the node authorizer: a list-watch of pods and persistent volumes feeding
//! the shared `NodeGraph` (upstream's graph populator), the authorizer that consults the
//! graph and the `system:node` rules and then lets RBAC have its turn (upstream's chain is
//! Node, RBAC), and the NodeRestriction admission call with its store lookups.

use crate::auth::{Attributes, Authorizer, Decision, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::nodeauth::{self, AdmissionAttrs, AdmissionLookups, AdmitError, NodeGraph, Operation};
use crate::rbac::{self, SharedRbacIndex};
use crate::registry::{decode, prefix, Registry};
use crate::resources::{self, ResourceInfo};
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;
use store::{Backend, Event, ListOptions};

/// The graph shared by the feeder (writer) and the authorizer and admission (readers).
#[derive(Clone, Default)]
pub struct SharedGraph(pub Arc<RwLock<NodeGraph>>);

impl SharedGraph {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, NodeGraph> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, NodeGraph> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// `(spec.nodeName, uid)` of a pod the graph knows bound to a node.
    pub fn pod_node(&self, ns: &str, name: &str) -> Option<(String, String)> {
        self.read()
            .pod_binding(ns, name)
            .map(|(n, u)| (n.to_string(), u.to_string()))
    }
}

fn core(plural: &str) -> &'static ResourceInfo {
    resources::find("", "v1", plural).expect("core resource served")
}

/// Starts the list-watch of pods and persistent volumes; it re-lists after a watch error.
pub fn start(store: Arc<dyn Backend>, graph: SharedGraph) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = sync(store.as_ref(), &graph).await {
                tracing::debug!(error = %e, "node graph: re-listing");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// Lists a prefix page by page, handing each decoded object to `each` (a whole pod list
/// decoded at once would peak at ~40 KiB per pod); returns the list's revision.
async fn list_each(
    store: &dyn Backend,
    res: &ResourceInfo,
    mut each: impl FnMut(&Value),
) -> Result<i64, store::StoreError> {
    let mut start = String::new();
    let mut revision = 0;
    loop {
        let page = store
            .list(&ListOptions {
                prefix: prefix(res, None),
                start_key: start.clone(),
                limit: 500,
                revision,
            })
            .await?;
        revision = page.revision;
        for kv in &page.kvs {
            if let Ok(obj) = decode(res, kv) {
                each(&obj);
            }
        }
        match page.kvs.last() {
            Some(last) if page.more => start = format!("{}\0", last.key),
            _ => return Ok(revision),
        }
    }
}

/// Whether a stored pod names a node: pods not yet scheduled (most pod events under load)
/// have no edges, so they are skipped without decoding.
fn names_a_node(value: &[u8]) -> bool {
    value.windows(10).any(|w| w == b"\"nodeName\"")
}

/// `(namespace, name)` from a pod's store key `.../pods/<ns>/<name>`.
fn key_parts(key: &str) -> Option<(&str, &str)> {
    let mut it = key.rsplitn(3, '/');
    let name = it.next()?;
    let ns = it.next()?;
    Some((ns, name))
}

/// Applies one pod (`pods`) or persistent volume event to the graph.
fn apply(graph: &mut NodeGraph, pods: bool, ev: &Event, res: &ResourceInfo) {
    match ev {
        Event::Create { kv } | Event::Update { kv, .. } if pods && !names_a_node(&kv.value) => {}
        Event::Delete { prev, .. } if pods => {
            if let Some((ns, name)) = key_parts(&prev.key) {
                graph.remove_pod(ns, name);
            }
        }
        Event::Create { kv } | Event::Update { kv, .. } => {
            if let Ok(obj) = decode(res, kv) {
                if pods {
                    graph.upsert_pod(&obj);
                } else {
                    graph.upsert_pv_object(&obj);
                }
            }
        }
        Event::Delete { prev, .. } => {
            if let Some(name) = prev.key.rsplit('/').next() {
                graph.remove_pv(name);
            }
        }
    }
}

async fn sync(store: &dyn Backend, graph: &SharedGraph) -> Result<(), store::StoreError> {
    let (pods_res, pvs_res) = (core("pods"), core("persistentvolumes"));
    let mut fresh = NodeGraph::new();
    let pods_rev = list_each(store, pods_res, |p| fresh.upsert_pod(p)).await?;
    let pvs_rev = list_each(store, pvs_res, |pv| fresh.upsert_pv_object(pv)).await?;
    *graph.write() = fresh;
    let mut pod_watch = store.watch(&prefix(pods_res, None), pods_rev).await?;
    let mut pv_watch = store.watch(&prefix(pvs_res, None), pvs_rev).await?;
    loop {
        let (batch, pods) = tokio::select! {
            b = pod_watch.recv() => (b, true),
            b = pv_watch.recv() => (b, false),
        };
        let Some(batch) = batch else {
            return Ok(());
        };
        let batch = batch?;
        let res = if pods { pods_res } else { pvs_res };
        let mut g = graph.write();
        for ev in &batch {
            apply(&mut g, pods, ev, res);
        }
    }
}

/// Upstream's Node authorizer in the chain: node identities are decided by the graph and
/// the `system:node` rules; when those refuse, RBAC still gets its turn (bindings to
/// `system:nodes`), and the refusal's reason ends the 403 text otherwise.
pub struct NodeAuthorizer {
    pub graph: SharedGraph,
    pub rbac: SharedRbacIndex,
    node_rules: Vec<PolicyRule>,
}

impl NodeAuthorizer {
    pub fn new(graph: SharedGraph, rbac: SharedRbacIndex) -> Self {
        NodeAuthorizer {
            graph,
            rbac,
            node_rules: rbac::bootstrap::node_rules(),
        }
    }
}

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        if nodeauth::node_identity(user).is_none() {
            return Decision::NoOpinion;
        }
        let rules_allow = |a: &Attributes| rbac::rules_allow(&self.node_rules, a);
        let (d, reason) = self
            .graph
            .read()
            .evaluate(user, a, &a.field_selector, &rules_allow);
        if d == Decision::Allow || self.rbac.authorize(user, a) == Decision::Allow {
            return Decision::Allow;
        }
        Decision::Deny(reason)
    }
}

fn admit_error(e: AdmitError) -> ApiError {
    match &e {
        AdmitError::Forbidden { .. } => ApiError::forbidden(e.to_string()),
        AdmitError::NotFound { .. } => ApiError::new(404, "NotFound", e.to_string()),
    }
}

/// Runs NodeRestriction for a write by `user` (a no-op for everyone but nodes). For a pod
/// create, the Node uid a mirror pod must name is read from the store first.
#[allow(clippy::too_many_arguments)]
pub async fn admit(
    reg: &Registry,
    graph: &SharedGraph,
    user: &UserInfo,
    op: Operation,
    res: &ResourceInfo,
    subresource: &str,
    ns: &str,
    name: &str,
    object: Option<&Value>,
    old_object: Option<&Value>,
) -> ApiResult<()> {
    let Some(node) = nodeauth::node_identity(user) else {
        return Ok(());
    };
    // Only a mirror pod's creation needs the Node's uid (its owner reference must name it):
    // the status, lease and event writes nodes make all the time read nothing here.
    let mirror_pod_create = op == Operation::Create
        && res.group.is_empty()
        && res.plural == "pods"
        && subresource.is_empty();
    let node_uid = if node.is_empty() || !mirror_pod_create {
        None
    } else {
        match reg.get(core("nodes"), "", node).await {
            Ok(n) => Some(
                n.pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            Err(e) if e.code == 404 => None,
            Err(e) => return Err(e),
        }
    };
    let pod_node = |ns: &str, name: &str| graph.pod_node(ns, name);
    let node_uid_of = |n: &str| (n == node).then(|| node_uid.clone()).flatten();
    let req = AdmissionAttrs {
        operation: op,
        group: res.group,
        resource: res.plural,
        subresource,
        namespace: ns,
        name,
        object,
        old_object,
    };
    nodeauth::admit_user(
        user,
        &req,
        &AdmissionLookups {
            pod_node: &pod_node,
            node_uid: &node_uid_of,
        },
    )
    .map_err(admit_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unscheduled_pods_are_skipped_and_keys_split() {
        assert!(!names_a_node(br#"{"spec":{"containers":[]}}"#));
        assert!(names_a_node(br#"{"spec":{"nodeName":"n1"}}"#));
        assert_eq!(
            key_parts("/registry/core/pods/default/p1"),
            Some(("default", "p1"))
        );
    }
}
