//! Upstream's Node authorizer (`plugin/pkg/auth/authorizer/node`) and NodeRestriction admission
//! plugin (`plugin/pkg/admission/noderestriction`) as pure logic.
//!
//! - [`node_identity`]: the node name of a kubelet user (`system:node:<name>` in `system:nodes`).
//! - [`NodeGraph`]: which secrets, configmaps, PVCs, PVs, service accounts and pods each node may
//!   reach through the pods bound to it. The lead feeds it from watches (`upsert_pod`,
//!   `remove_pod`, `upsert_pv`, `remove_pv`); every update touches only the edges of the object
//!   that changed (per-node reference counts), never the whole graph.
//! - [`NodeGraph::authorize`] / [`NodeGraph::evaluate`]: the authorizer decision, with upstream's
//!   reason strings.
//! - [`admit`]: the NodeRestriction checks, with upstream's error texts.
//!
//! Upstream returns `DecisionNoOpinion` plus a reason when it refuses a node; the union
//! authorizer then asks RBAC, and when nobody allows, the reason ends up after the colon of the
//! 403 text (`... in the namespace "default": no relationship found between node 'n1' and this
//! object`). [`NodeGraph::evaluate`] returns exactly that pair; [`NodeGraph::authorize`] turns a
//! no-opinion *with* a reason into `Decision::Deny(reason)` (so the chain stops and the lead's
//! `auth::forbidden_message(user, attrs, reason)` carries the text) and keeps a reason-less
//! no-opinion as `Decision::NoOpinion`.
//!
//! Not covered (minik8s does not serve these): ResourceSlices (authorizer and admission),
//! CertificateSigningRequest admission, ResourceClaim / VolumeAttachment edges (a node never
//! reaches one), PodCertificateRequests. The PVC status refusal names the changed fields
//! (`changed metadata.labels`) where upstream prints a go-cmp diff.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::auth::{Attributes, Decision, UserInfo};

/// Prefix of node user names.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// Group every kubelet credential carries.
pub const NODES_GROUP: &str = "system:nodes";
/// Namespace of the node heartbeat leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Annotation that marks a mirror pod.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The node name of a node user: `Some(name)` for `system:node:<name>` in group `system:nodes`.
/// As upstream's `NodeIdentity`, a node user whose name part is empty (`system:node:`) yields
/// `Some("")`: it is a node, but an unidentifiable one, which both the authorizer and
/// [`admit`] refuse with their own messages.
pub fn node_identity(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    if user.groups.iter().any(|g| g == NODES_GROUP) {
        Some(name)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Graph
// ---------------------------------------------------------------------------------------------

/// namespace -> name -> node -> number of pods on that node referencing the object.
#[derive(Debug, Default)]
struct RefCounts(HashMap<String, HashMap<String, HashMap<String, u32>>>);

impl RefCounts {
    fn add(&mut self, ns: &str, name: &str, node: &str) {
        *self
            .0
            .entry(ns.to_string())
            .or_default()
            .entry(name.to_string())
            .or_default()
            .entry(node.to_string())
            .or_insert(0) += 1;
    }

    fn remove(&mut self, ns: &str, name: &str, node: &str) {
        let Some(names) = self.0.get_mut(ns) else {
            return;
        };
        let Some(nodes) = names.get_mut(name) else {
            return;
        };
        if let Some(c) = nodes.get_mut(node) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                nodes.remove(node);
            }
        }
        if nodes.is_empty() {
            names.remove(name);
        }
        if names.is_empty() {
            self.0.remove(ns);
        }
    }

    fn reaches(&self, ns: &str, name: &str, node: &str) -> bool {
        self.0
            .get(ns)
            .and_then(|n| n.get(name))
            .is_some_and(|nodes| nodes.contains_key(node))
    }

    fn known(&self, ns: &str, name: &str) -> bool {
        self.0.get(ns).is_some_and(|n| n.contains_key(name))
    }
}

/// What one bound pod contributes to the graph.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct PodEntry {
    node: String,
    uid: String,
    service_account: Option<String>,
    secrets: BTreeSet<String>,
    configmaps: BTreeSet<String>,
    pvcs: BTreeSet<String>,
}

/// A PersistentVolume: the claim it is bound to and the secrets the kubelet may read for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct PvEntry {
    claim: Option<(String, String)>,
    secrets: BTreeSet<(String, String)>,
}

/// A PV `SecretReference` as (namespace, name), the namespace defaulting to the claim's.
fn pv_secret_ref<'a>(r: &'a Value, claim_ns: &'a str) -> Option<(&'a str, &'a str)> {
    let name = r.get("name").and_then(Value::as_str)?;
    let ns = r
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(claim_ns);
    Some((ns, name))
}

/// What each node may reach, upstream's graph `node <- pod <- {secret, configmap, pvc,
/// serviceaccount}`, `pvc <- pv <- secret`, flattened into per-object node reference counts.
#[derive(Debug, Default)]
pub struct NodeGraph {
    /// ns -> name -> bound pod.
    pods: HashMap<String, HashMap<String, PodEntry>>,
    secrets: RefCounts,
    configmaps: RefCounts,
    pvcs: RefCounts,
    service_accounts: RefCounts,
    /// PV name -> entry.
    pvs: HashMap<String, PvEntry>,
    /// secret ns -> secret name -> PVs granting it.
    pv_secrets: HashMap<String, HashMap<String, BTreeSet<String>>>,
}

/// The secrets, configmaps, PVCs and service account a pod spec references (upstream
/// `VisitPodSecretNames`, `VisitPodConfigmapNames`, PVC and ephemeral volumes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodReferences {
    pub service_account: Option<String>,
    pub secrets: BTreeSet<String>,
    pub configmaps: BTreeSet<String>,
    /// `persistentVolumeClaim.claimName` volumes and ephemeral volumes (`<pod>-<volume>`).
    pub pvcs: BTreeSet<String>,
    /// Only `persistentVolumeClaim` volumes (NodeRestriction's mirror pod check).
    pub pvc_volumes: bool,
    /// A projected `clusterTrustBundle` source.
    pub cluster_trust_bundles: bool,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn insert_name(set: &mut BTreeSet<String>, name: Option<&str>) {
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        set.insert(n.to_string());
    }
}

/// Secret references of a volume source, upstream's list: azureFile, cephfs, cinder,
/// flexVolume, projected secret sources, rbd, secret, scaleIO, iscsi, storageos, csi.
fn volume_secrets(vol: &Value, out: &mut BTreeSet<String>) {
    insert_name(out, str_at(vol, &["azureFile", "secretName"]));
    for src in [
        "cephfs",
        "cinder",
        "flexVolume",
        "rbd",
        "scaleIO",
        "iscsi",
        "storageos",
    ] {
        insert_name(out, str_at(vol, &[src, "secretRef", "name"]));
    }
    if let Some(projected) = vol.get("projected") {
        for s in arr(projected, "sources") {
            insert_name(out, str_at(s, &["secret", "name"]));
        }
    }
    insert_name(out, str_at(vol, &["secret", "secretName"]));
    insert_name(out, str_at(vol, &["csi", "nodePublishSecretRef", "name"]));
}

/// Walks a pod object (JSON) for everything it references.
pub fn pod_references(pod: &Value) -> PodReferences {
    let mut r = PodReferences::default();
    let pod_name = str_at(pod, &["metadata", "name"]).unwrap_or("");
    let Some(spec) = pod.get("spec") else {
        return r;
    };
    r.service_account = str_at(spec, &["serviceAccountName"])
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    for s in arr(spec, "imagePullSecrets") {
        insert_name(&mut r.secrets, str_at(s, &["name"]));
    }
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for c in arr(spec, key) {
            for ef in arr(c, "envFrom") {
                insert_name(&mut r.secrets, str_at(ef, &["secretRef", "name"]));
                insert_name(&mut r.configmaps, str_at(ef, &["configMapRef", "name"]));
            }
            for e in arr(c, "env") {
                insert_name(
                    &mut r.secrets,
                    str_at(e, &["valueFrom", "secretKeyRef", "name"]),
                );
                insert_name(
                    &mut r.configmaps,
                    str_at(e, &["valueFrom", "configMapKeyRef", "name"]),
                );
            }
        }
    }
    for vol in arr(spec, "volumes") {
        volume_secrets(vol, &mut r.secrets);
        insert_name(&mut r.configmaps, str_at(vol, &["configMap", "name"]));
        if let Some(projected) = vol.get("projected") {
            for s in arr(projected, "sources") {
                insert_name(&mut r.configmaps, str_at(s, &["configMap", "name"]));
                if s.get("clusterTrustBundle").is_some_and(|v| !v.is_null()) {
                    r.cluster_trust_bundles = true;
                }
            }
        }
        if let Some(pvc) = vol.get("persistentVolumeClaim").filter(|v| !v.is_null()) {
            r.pvc_volumes = true;
            insert_name(&mut r.pvcs, str_at(pvc, &["claimName"]));
        } else if vol.get("ephemeral").is_some_and(|v| !v.is_null()) {
            let vname = str_at(vol, &["name"]).unwrap_or("");
            r.pvcs.insert(format!("{pod_name}-{vname}"));
        }
    }
    r
}

fn is_mirror_pod(pod: &Value) -> bool {
    pod.get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION))
}

impl NodeGraph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a pod from a watch event. Unbound pods (no `spec.nodeName`) contribute nothing
    /// (a previous entry under the same name is dropped). A bound pod whose node and uid are
    /// unchanged is a no-op, as upstream: a bound pod's references are immutable. Mirror pods
    /// only link the pod to its node (upstream's defence in depth).
    pub fn upsert_pod(&mut self, pod: &Value) {
        let ns = str_at(pod, &["metadata", "namespace"]).unwrap_or("");
        let name = str_at(pod, &["metadata", "name"]).unwrap_or("");
        if name.is_empty() {
            return;
        }
        let node = str_at(pod, &["spec", "nodeName"]).unwrap_or("");
        if node.is_empty() {
            self.remove_pod(ns, name);
            return;
        }
        let uid = str_at(pod, &["metadata", "uid"]).unwrap_or("");
        if let Some(old) = self.pods.get(ns).and_then(|p| p.get(name)) {
            if old.node == node && old.uid == uid {
                return;
            }
        }
        self.remove_pod(ns, name);
        let entry = if is_mirror_pod(pod) {
            PodEntry {
                node: node.to_string(),
                uid: uid.to_string(),
                ..Default::default()
            }
        } else {
            let r = pod_references(pod);
            PodEntry {
                node: node.to_string(),
                uid: uid.to_string(),
                service_account: r.service_account,
                secrets: r.secrets,
                configmaps: r.configmaps,
                pvcs: r.pvcs,
            }
        };
        if let Some(sa) = &entry.service_account {
            self.service_accounts.add(ns, sa, node);
        }
        for s in &entry.secrets {
            self.secrets.add(ns, s, node);
        }
        for c in &entry.configmaps {
            self.configmaps.add(ns, c, node);
        }
        for c in &entry.pvcs {
            self.pvcs.add(ns, c, node);
        }
        self.pods
            .entry(ns.to_string())
            .or_default()
            .insert(name.to_string(), entry);
    }

    /// Forgets a pod (delete event) and drops its edges.
    pub fn remove_pod(&mut self, ns: &str, name: &str) {
        let Some(pods) = self.pods.get_mut(ns) else {
            return;
        };
        let Some(entry) = pods.remove(name) else {
            return;
        };
        if pods.is_empty() {
            self.pods.remove(ns);
        }
        let node = entry.node.as_str();
        if let Some(sa) = &entry.service_account {
            self.service_accounts.remove(ns, sa, node);
        }
        for s in &entry.secrets {
            self.secrets.remove(ns, s, node);
        }
        for c in &entry.configmaps {
            self.configmaps.remove(ns, c, node);
        }
        for c in &entry.pvcs {
            self.pvcs.remove(ns, c, node);
        }
    }

    /// The node and uid of a bound pod the graph knows (`(node_name, uid)`).
    pub fn pod_binding(&self, ns: &str, name: &str) -> Option<(&str, &str)> {
        self.pods
            .get(ns)
            .and_then(|p| p.get(name))
            .map(|e| (e.node.as_str(), e.uid.as_str()))
    }

    /// Records a PersistentVolume: `claim` is its `spec.claimRef` (namespace, name); `secrets`
    /// are the kubelet-visible secrets it names (namespace, name). As upstream, the PV -> PVC
    /// link comes from the PV's claimRef only, never from a PVC's `volumeName` (which the
    /// claim's author controls). A PV without a claim grants nothing.
    pub fn upsert_pv(&mut self, name: &str, claim: Option<(&str, &str)>, secrets: &[(&str, &str)]) {
        self.remove_pv(name);
        let Some((cns, cname)) = claim else {
            return;
        };
        let entry = PvEntry {
            claim: Some((cns.to_string(), cname.to_string())),
            secrets: secrets
                .iter()
                .filter(|(_, n)| !n.is_empty())
                .map(|(ns, n)| (ns.to_string(), n.to_string()))
                .collect(),
        };
        for (sns, sname) in &entry.secrets {
            self.pv_secrets
                .entry(sns.clone())
                .or_default()
                .entry(sname.clone())
                .or_default()
                .insert(name.to_string());
        }
        self.pvs.insert(name.to_string(), entry);
    }

    /// [`NodeGraph::upsert_pv`] from a PV object (JSON): claimRef and the kubelet-visible
    /// secret references (upstream `VisitPVSecretNames` with `kubeletVisible`), a reference
    /// without its own namespace taking the claim's.
    pub fn upsert_pv_object(&mut self, pv: &Value) {
        let Some(name) = str_at(pv, &["metadata", "name"]) else {
            return;
        };
        let spec = pv.get("spec").unwrap_or(&Value::Null);
        let claim_ns = str_at(spec, &["claimRef", "namespace"]).unwrap_or("");
        let claim = str_at(spec, &["claimRef", "name"]).map(|n| (claim_ns, n));
        let csi = spec.get("csi").unwrap_or(&Value::Null);
        let mut refs: Vec<(&str, &str)> = [
            "cephfs",
            "cinder",
            "flexVolume",
            "rbd",
            "scaleIO",
            "iscsi",
            "storageos",
        ]
        .iter()
        .filter_map(|src| spec.get(*src).and_then(|s| s.get("secretRef")))
        .chain(
            [
                "nodePublishSecretRef",
                "nodeStageSecretRef",
                "nodeExpandSecretRef",
            ]
            .iter()
            .filter_map(|k| csi.get(*k)),
        )
        .filter_map(|r| pv_secret_ref(r, claim_ns))
        .collect();
        if let Some(af) = spec.get("azureFile") {
            if let Some(n) = af.get("secretName").and_then(Value::as_str) {
                let ns = af
                    .get("secretNamespace")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .unwrap_or(claim_ns);
                refs.push((ns, n));
            }
        }
        self.upsert_pv(name, claim, &refs);
    }

    /// Forgets a PersistentVolume.
    pub fn remove_pv(&mut self, name: &str) {
        let Some(entry) = self.pvs.remove(name) else {
            return;
        };
        for (sns, sname) in &entry.secrets {
            if let Some(names) = self.pv_secrets.get_mut(sns) {
                if let Some(pvs) = names.get_mut(sname) {
                    pvs.remove(name);
                    if pvs.is_empty() {
                        names.remove(sname);
                    }
                }
                if names.is_empty() {
                    self.pv_secrets.remove(sns);
                }
            }
        }
    }

    fn pv_reaches(&self, pv: &str, node: &str) -> bool {
        self.pvs
            .get(pv)
            .and_then(|e| e.claim.as_ref())
            .is_some_and(|(ns, n)| self.pvcs.reaches(ns, n, node))
    }

    /// Whether `node` has a path to the object (upstream `hasPathFrom`).
    fn has_path(&self, node: &str, ty: VertexType, ns: &str, name: &str) -> bool {
        match ty {
            VertexType::Secret => {
                self.secrets.reaches(ns, name, node)
                    || self
                        .pv_secrets
                        .get(ns)
                        .and_then(|n| n.get(name))
                        .is_some_and(|pvs| pvs.iter().any(|pv| self.pv_reaches(pv, node)))
            }
            VertexType::ConfigMap => self.configmaps.reaches(ns, name, node),
            VertexType::Pvc => self.pvcs.reaches(ns, name, node),
            VertexType::Pv => self.pv_reaches(name, node),
            VertexType::ServiceAccount => self.service_accounts.reaches(ns, name, node),
            VertexType::Pod => self
                .pods
                .get(ns)
                .and_then(|p| p.get(name))
                .is_some_and(|e| e.node == node),
            // Not tracked in minik8s (no DRA, no CSI attach): never reachable.
            VertexType::ResourceClaim | VertexType::VolumeAttachment => false,
        }
    }

    /// Number of objects the graph holds per kind (pods, secrets, configmaps, pvcs,
    /// serviceaccounts, pvs), for metrics and tests.
    pub fn sizes(&self) -> [usize; 6] {
        let count = |r: &RefCounts| r.0.values().map(HashMap::len).sum::<usize>();
        [
            self.pods.values().map(HashMap::len).sum(),
            count(&self.secrets),
            count(&self.configmaps),
            count(&self.pvcs),
            count(&self.service_accounts),
            self.pvs.len(),
        ]
    }

    /// Whether any pod references the secret (ns, name); used by tests and debugging.
    pub fn secret_known(&self, ns: &str, name: &str) -> bool {
        self.secrets.known(ns, name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VertexType {
    Secret,
    ConfigMap,
    Pvc,
    Pv,
    ServiceAccount,
    Pod,
    ResourceClaim,
    VolumeAttachment,
}

// ---------------------------------------------------------------------------------------------
// Authorizer
// ---------------------------------------------------------------------------------------------

/// One requirement of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    /// `=` and `==` parse to `Equals`.
    pub equals: bool,
    pub value: String,
}

/// Parses a `fieldSelector` query value into requirements (upstream `fields.ParseSelector`:
/// terms split on unescaped `,`, operators `!=`, `==`, `=`; `\` escapes). Malformed terms are
/// skipped, which for the authorizer only ever means "no matching requirement".
pub fn parse_field_selector(s: &str) -> Vec<FieldRequirement> {
    let mut terms = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for ch in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(ch);
            escaped = false;
        } else if ch == '\\' {
            escaped = true;
        } else if ch == ',' {
            terms.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    if escaped {
        cur.push('\\');
    }
    terms.push(cur);
    let mut out = Vec::new();
    for t in terms.iter().filter(|t| !t.is_empty()) {
        for (op, equals) in [("!=", false), ("==", true), ("=", true)] {
            if let Some(i) = t.find(op) {
                let field = t[..i].trim().to_string();
                let raw = &t[i + op.len()..];
                let mut value = String::new();
                let mut esc = false;
                for ch in raw.chars() {
                    if esc {
                        value.push(ch);
                        esc = false;
                    } else if ch == '\\' {
                        esc = true;
                    } else {
                        value.push(ch);
                    }
                }
                out.push(FieldRequirement {
                    field,
                    equals,
                    value,
                });
                break;
            }
        }
    }
    out
}

type Verdict = (Decision, String);

fn allow() -> Verdict {
    (Decision::Allow, String::new())
}

fn no_opinion(reason: impl Into<String>) -> Verdict {
    (Decision::NoOpinion, reason.into())
}

impl NodeGraph {
    /// The Node authorizer with upstream's `AuthorizeNodeWithSelectors` behaviour (on by
    /// default since 1.32) and no field selector: nodes may not list/watch pods without
    /// `spec.nodeName=<self>`. Use [`NodeGraph::authorize_with_field_selector`] for list/watch
    /// requests that carry a `fieldSelector`.
    ///
    /// Returns `Allow`; `Deny(reason)` where upstream refuses with a reason (that reason is
    /// the text after the colon of upstream's 403); `NoOpinion` for non-node users and for
    /// requests upstream refuses without a reason (the chain's default deny then applies).
    pub fn authorize(
        &self,
        user: &UserInfo,
        a: &Attributes,
        node_rules_allow: &dyn Fn(&Attributes) -> bool,
    ) -> Decision {
        self.authorize_with_field_selector(user, a, "", node_rules_allow)
    }

    /// [`NodeGraph::authorize`] for a request whose raw `fieldSelector` query value is
    /// `field_selector` ("" when absent). The lead must also, as upstream's RequestInfo does,
    /// put a `metadata.name=<n>` field selector of a list/watch into `Attributes::name`.
    pub fn authorize_with_field_selector(
        &self,
        user: &UserInfo,
        a: &Attributes,
        field_selector: &str,
        node_rules_allow: &dyn Fn(&Attributes) -> bool,
    ) -> Decision {
        match self.evaluate(user, a, field_selector, node_rules_allow) {
            (Decision::NoOpinion, reason) if !reason.is_empty() => Decision::Deny(reason),
            (d, _) => d,
        }
    }

    /// Upstream's `(decision, reason)` pair unchanged: the decision is `Allow` or `NoOpinion`,
    /// the reason is non-empty only for refusals upstream explains. For chains where another
    /// authorizer (RBAC) must still get its turn after a refusal.
    pub fn evaluate(
        &self,
        user: &UserInfo,
        a: &Attributes,
        field_selector: &str,
        node_rules_allow: &dyn Fn(&Attributes) -> bool,
    ) -> (Decision, String) {
        let Some(node) = node_identity(user) else {
            return no_opinion("");
        };
        if node.is_empty() {
            return no_opinion(format!("unknown node for user {:?}", user.name));
        }
        if a.resource_request {
            match (a.api_group.as_str(), a.resource.as_str()) {
                ("", "secrets") => {
                    return self.authorize_read_namespaced(node, VertexType::Secret, a)
                }
                ("", "configmaps") => {
                    return self.authorize_read_namespaced(node, VertexType::ConfigMap, a)
                }
                ("", "persistentvolumeclaims") => {
                    if a.subresource == "status" {
                        return self.authorize_status_update(node, VertexType::Pvc, a);
                    }
                    return self.authorize_get(node, VertexType::Pvc, a);
                }
                ("", "persistentvolumes") => return self.authorize_get(node, VertexType::Pv, a),
                ("resource.k8s.io", "resourceclaims") => {
                    return self.authorize_get(node, VertexType::ResourceClaim, a)
                }
                ("storage.k8s.io", "volumeattachments") => {
                    return self.authorize_get(node, VertexType::VolumeAttachment, a)
                }
                ("", "serviceaccounts") => return self.authorize_create_token(node, a),
                ("coordination.k8s.io", "leases") => return authorize_lease(node, a),
                ("storage.k8s.io", "csinodes") => return authorize_csinode(node, a),
                ("", "nodes") => return authorize_node(node, a),
                ("", "pods") => return self.authorize_pod(node, a, field_selector),
                _ => {}
            }
        }
        if node_rules_allow(a) {
            allow()
        } else {
            no_opinion("")
        }
    }

    fn authorize_status_update(&self, node: &str, ty: VertexType, a: &Attributes) -> Verdict {
        if !matches!(a.verb.as_str(), "update" | "patch") {
            return no_opinion("can only get/update/patch this type");
        }
        if a.subresource != "status" {
            return no_opinion("can only update status subresource");
        }
        self.authorize_path(node, ty, a)
    }

    fn authorize_get(&self, node: &str, ty: VertexType, a: &Attributes) -> Verdict {
        if a.verb != "get" {
            return no_opinion("can only get individual resources of this type");
        }
        if !a.subresource.is_empty() {
            return no_opinion("cannot get subresource");
        }
        self.authorize_path(node, ty, a)
    }

    fn authorize_read_namespaced(&self, node: &str, ty: VertexType, a: &Attributes) -> Verdict {
        if !matches!(a.verb.as_str(), "get" | "list" | "watch") {
            return no_opinion("can only read resources of this type");
        }
        if !a.subresource.is_empty() {
            return no_opinion("cannot read subresource");
        }
        if a.namespace.is_empty() {
            return no_opinion("can only read namespaced object of this type");
        }
        self.authorize_path(node, ty, a)
    }

    fn authorize_path(&self, node: &str, ty: VertexType, a: &Attributes) -> Verdict {
        if a.name.is_empty() {
            return no_opinion("No Object name found");
        }
        if self.has_path(node, ty, &a.namespace, &a.name) {
            allow()
        } else {
            no_opinion(no_relationship(node))
        }
    }

    fn authorize_create_token(&self, node: &str, a: &Attributes) -> Verdict {
        if a.verb != "create" || a.name.is_empty() {
            return no_opinion("can only create tokens for individual service accounts");
        }
        if a.subresource != "token" {
            return no_opinion("can only create token subresource of serviceaccount");
        }
        if self.has_path(node, VertexType::ServiceAccount, &a.namespace, &a.name) {
            allow()
        } else {
            no_opinion(no_relationship(node))
        }
    }

    fn authorize_pod(&self, node: &str, a: &Attributes, field_selector: &str) -> Verdict {
        match (a.subresource.as_str(), a.verb.as_str()) {
            ("", "get") => self.authorize_get(node, VertexType::Pod, a),
            ("", "list" | "watch") => {
                let scoped = parse_field_selector(field_selector)
                    .iter()
                    .any(|r| r.field == "spec.nodeName" && r.equals && r.value == node);
                if scoped {
                    allow()
                } else if !a.name.is_empty() {
                    self.authorize_path(node, VertexType::Pod, a)
                } else {
                    no_opinion("can only list/watch pods with spec.nodeName field selector")
                }
            }
            ("", "create" | "delete") => allow(),
            ("status", "update" | "patch") => allow(),
            ("eviction", "create") => allow(),
            _ => no_opinion(""),
        }
    }
}

fn no_relationship(node: &str) -> String {
    format!("no relationship found between node '{node}' and this object")
}

fn authorize_lease(node: &str, a: &Attributes) -> Verdict {
    if !matches!(
        a.verb.as_str(),
        "get" | "create" | "update" | "patch" | "delete"
    ) {
        return no_opinion("can only get, create, update, patch, or delete a node lease");
    }
    if a.namespace != NODE_LEASE_NAMESPACE {
        return no_opinion(format!(
            "can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"
        ));
    }
    if a.verb != "create" && a.name != node {
        return no_opinion("can only access node lease with the same name as the requesting node");
    }
    allow()
}

fn authorize_csinode(node: &str, a: &Attributes) -> Verdict {
    if !matches!(
        a.verb.as_str(),
        "get" | "create" | "update" | "patch" | "delete"
    ) {
        return no_opinion("can only get, create, update, patch, or delete a CSINode");
    }
    if !a.subresource.is_empty() {
        return no_opinion("cannot authorize CSINode subresources");
    }
    if a.verb != "create" && a.name != node {
        return no_opinion("can only access CSINode with the same name as the requesting node");
    }
    allow()
}

fn authorize_node(node: &str, a: &Attributes) -> Verdict {
    match (a.subresource.as_str(), a.verb.as_str()) {
        // NodeRestriction limits writes to the node's own object.
        ("", "create" | "update" | "patch") => allow(),
        ("", "get" | "list" | "watch") => {
            if a.name == node {
                allow()
            } else if a.name.is_empty() {
                no_opinion(format!(
                    "node '{node}' cannot read all nodes, only its own Node object"
                ))
            } else {
                no_opinion(format!(
                    "node '{node}' cannot read '{}', only its own Node object",
                    a.name
                ))
            }
        }
        ("status", "update" | "patch") => allow(),
        _ => no_opinion(""),
    }
}

// ---------------------------------------------------------------------------------------------
// NodeRestriction admission
// ---------------------------------------------------------------------------------------------

/// Admission operations the plugin handles (upstream `admission.Create|Update|Delete`; a
/// patch is an update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    /// Upstream's spelling (`CREATE`, ...), as it appears in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// One write request as the admission stage sees it.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionAttrs<'a> {
    pub operation: Operation,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    /// The request's object name; on create, as upstream's create handler, the new object's
    /// `metadata.name` (empty only with generateName).
    pub name: &'a str,
    /// The new object (create/update) — for `pods/eviction` the Eviction, for
    /// `serviceaccounts/token` the TokenRequest.
    pub object: Option<&'a Value>,
    /// The stored object (update; delete when the lead has it).
    pub old_object: Option<&'a Value>,
}

/// Why NodeRestriction refused a request. `Display` is upstream's full Status message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// 403, reason `Forbidden`, details `{name, group, kind: resource}`: `<resource>[.<group>]
    /// "<name>" is forbidden: <reason>`.
    #[error("{} {name:?} is forbidden: {reason}", qualified(.group, .resource))]
    Forbidden {
        group: String,
        resource: String,
        name: String,
        reason: String,
    },
    /// 404, reason `NotFound`, details `{name, kind: resource}`, from upstream's listers which
    /// use the singular resource: `pod "x" not found`, `node "n1" not found`.
    #[error("{resource} {name:?} not found")]
    NotFound {
        resource: &'static str,
        name: String,
    },
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl AdmitError {
    /// The part after `is forbidden: ` (Forbidden) or the whole message (NotFound).
    pub fn reason(&self) -> String {
        match self {
            AdmitError::Forbidden { reason, .. } => reason.clone(),
            e => e.to_string(),
        }
    }
}

/// Upstream's `extractResourceName`: the request name, else the object's name or
/// generateName, else `Unknown`.
fn resource_name(req: &AdmissionAttrs) -> String {
    if !req.name.is_empty() {
        return req.name.to_string();
    }
    let meta = req.object.and_then(|o| o.get("metadata"));
    let pick = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    pick("name")
        .or_else(|| pick("generateName"))
        .unwrap_or("Unknown")
        .to_string()
}

fn forbidden(req: &AdmissionAttrs, reason: impl Into<String>) -> AdmitError {
    AdmitError::Forbidden {
        group: req.group.to_string(),
        resource: req.resource.to_string(),
        name: resource_name(req),
        reason: reason.into(),
    }
}

/// Go's `%T` of a missing object.
fn unexpected_type(req: &AdmissionAttrs) -> AdmitError {
    forbidden(req, "unexpected type <nil>")
}

/// `(namespace, name)` -> `(spec.nodeName, metadata.uid)` of a stored pod.
pub type PodNodeLookup<'a> = dyn Fn(&str, &str) -> Option<(String, String)> + 'a;

/// Lookups NodeRestriction makes in the informer caches.
pub struct AdmissionLookups<'a> {
    /// `(spec.nodeName, metadata.uid)` of a stored pod (namespace, name); `None` = not found.
    pub pod_node: &'a PodNodeLookup<'a>,
    /// `metadata.uid` of a stored Node; `None` = not found.
    pub node_uid: &'a (dyn Fn(&str) -> Option<String> + 'a),
}

/// NodeRestriction for a request by any user: `Ok` for non-node users, else [`admit`].
pub fn admit_user(
    user: &UserInfo,
    req: &AdmissionAttrs,
    lookups: &AdmissionLookups,
) -> Result<(), AdmitError> {
    match node_identity(user) {
        None => Ok(()),
        Some("") => Err(forbidden(
            req,
            format!("could not determine node from user {:?}", user.name),
        )),
        Some(node) => admit(node, req, lookups),
    }
}

/// NodeRestriction for a request by node `node` (non-empty; see [`admit_user`]).
pub fn admit(
    node: &str,
    req: &AdmissionAttrs,
    lookups: &AdmissionLookups,
) -> Result<(), AdmitError> {
    if node.is_empty() {
        return Err(forbidden(req, "could not determine node from user \"\""));
    }
    match (req.group, req.resource) {
        ("", "pods") => match req.subresource {
            "" => admit_pod(node, req, lookups),
            "status" => admit_pod_status(node, req),
            "eviction" => admit_pod_eviction(node, req, lookups),
            sub => Err(forbidden(
                req,
                format!(
                    "unexpected pod subresource {sub:?}, only 'status' and 'eviction' are allowed"
                ),
            )),
        },
        ("", "nodes") => admit_node(node, req),
        ("", "persistentvolumeclaims") => match req.subresource {
            "status" => admit_pvc_status(node, req),
            _ => Err(forbidden(req, "may only update PVC status")),
        },
        ("", "serviceaccounts") => admit_service_account(node, req, lookups),
        ("coordination.k8s.io", "leases") => admit_lease(node, req),
        ("storage.k8s.io", "csinodes") => admit_csinode(node, req),
        _ => Ok(()),
    }
}

fn admit_pod(
    node: &str,
    req: &AdmissionAttrs,
    lookups: &AdmissionLookups,
) -> Result<(), AdmitError> {
    match req.operation {
        Operation::Create => admit_pod_create(node, req, lookups),
        Operation::Delete => {
            let Some((pod_node, _)) = (lookups.pod_node)(req.namespace, req.name) else {
                return Err(AdmitError::NotFound {
                    resource: "pod",
                    name: req.name.to_string(),
                });
            };
            if pod_node != node {
                return Err(forbidden(
                    req,
                    format!("node {node:?} can only delete pods with spec.nodeName set to itself"),
                ));
            }
            Ok(())
        }
        op => Err(forbidden(
            req,
            format!(
                "unexpected operation {:?}, node {node:?} can only create and delete mirror pods",
                op.as_str()
            ),
        )),
    }
}

fn admit_pod_create(
    node: &str,
    req: &AdmissionAttrs,
    lookups: &AdmissionLookups,
) -> Result<(), AdmitError> {
    let Some(pod) = req.object else {
        return Err(unexpected_type(req));
    };
    if !is_mirror_pod(pod) {
        return Err(forbidden(
            req,
            format!(
                "pod does not have {MIRROR_POD_ANNOTATION:?} annotation, node {node:?} can only create mirror pods"
            ),
        ));
    }
    if str_at(pod, &["spec", "nodeName"]).unwrap_or("") != node {
        return Err(forbidden(
            req,
            format!("node {node:?} can only create pods with spec.nodeName set to itself"),
        ));
    }
    let owners = pod
        .get("metadata")
        .map(|m| arr(m, "ownerReferences"))
        .unwrap_or(&[]);
    if owners.len() > 1 {
        return Err(forbidden(
            req,
            format!(
                "node {node:?} can only create pods with a single owner reference set to itself"
            ),
        ));
    }
    let Some(owner) = owners.first() else {
        return Err(forbidden(
            req,
            format!("node {node:?} can only create pods with an owner reference set to itself"),
        ));
    };
    let field = |k: &str| owner.get(k).and_then(Value::as_str).unwrap_or("");
    if field("apiVersion") != "v1" || field("kind") != "Node" || field("name") != node {
        return Err(forbidden(
            req,
            format!("node {node:?} can only create pods with an owner reference set to itself"),
        ));
    }
    if owner.get("controller").and_then(Value::as_bool) != Some(true) {
        return Err(forbidden(
            req,
            format!(
                "node {node:?} can only create pods with a controller owner reference set to itself"
            ),
        ));
    }
    if owner.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
        return Err(forbidden(
            req,
            format!("node {node:?} must not set blockOwnerDeletion on an owner reference"),
        ));
    }
    let Some(node_uid) = (lookups.node_uid)(node) else {
        return Err(AdmitError::NotFound {
            resource: "node",
            name: node.to_string(),
        });
    };
    let owner_uid = field("uid");
    if owner_uid != node_uid {
        return Err(forbidden(
            req,
            format!("node {node} UID mismatch: expected {owner_uid} got {node_uid}"),
        ));
    }
    let refs = pod_references(pod);
    if refs.service_account.is_some() {
        return Err(forbidden(
            req,
            format!("node {node:?} can not create pods that reference a service account"),
        ));
    }
    if !refs.secrets.is_empty() {
        return Err(forbidden(
            req,
            format!("node {node:?} can not create pods that reference secrets"),
        ));
    }
    if !refs.configmaps.is_empty() {
        return Err(forbidden(
            req,
            format!("node {node:?} can not create pods that reference configmaps"),
        ));
    }
    if refs.cluster_trust_bundles {
        return Err(forbidden(
            req,
            format!("node {node:?} can not create pods that reference clustertrustbundles"),
        ));
    }
    if refs.pvc_volumes {
        return Err(forbidden(
            req,
            format!("node {node:?} can not create pods that reference persistentvolumeclaims"),
        ));
    }
    Ok(())
}

fn labels_of(obj: &Value) -> serde_json::Map<String, Value> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn admit_pod_status(node: &str, req: &AdmissionAttrs) -> Result<(), AdmitError> {
    if req.operation != Operation::Update {
        return Err(forbidden(
            req,
            format!("unexpected operation {:?}", req.operation.as_str()),
        ));
    }
    let Some(old) = req.old_object else {
        return Err(unexpected_type(req));
    };
    if str_at(old, &["spec", "nodeName"]).unwrap_or("") != node {
        return Err(forbidden(
            req,
            format!(
                "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
            ),
        ));
    }
    let Some(new) = req.object else {
        return Err(unexpected_type(req));
    };
    if labels_of(old) != labels_of(new) {
        return Err(forbidden(
            req,
            format!("node {node:?} cannot update labels through pod status"),
        ));
    }
    let claims = |p: &Value| -> Vec<(String, Option<String>)> {
        p.get("status")
            .map(|s| arr(s, "resourceClaimStatuses"))
            .unwrap_or(&[])
            .iter()
            .map(|c| {
                (
                    str_at(c, &["name"]).unwrap_or("").to_string(),
                    str_at(c, &["resourceClaimName"]).map(str::to_string),
                )
            })
            .collect()
    };
    if claims(old) != claims(new) {
        return Err(forbidden(
            req,
            format!("node {node:?} cannot update resource claim statues"),
        ));
    }
    Ok(())
}

fn admit_pod_eviction(
    node: &str,
    req: &AdmissionAttrs,
    lookups: &AdmissionLookups,
) -> Result<(), AdmitError> {
    if req.operation != Operation::Create {
        return Err(forbidden(
            req,
            format!("unexpected operation {}", req.operation.as_str()),
        ));
    }
    let Some(eviction) = req.object else {
        return Err(unexpected_type(req));
    };
    let pod_name = if req.name.is_empty() {
        match str_at(eviction, &["metadata", "name"]).filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => {
                return Err(forbidden(req, "could not determine pod from request data"));
            }
        }
    } else {
        req.name
    };
    let Some((pod_node, _)) = (lookups.pod_node)(req.namespace, pod_name) else {
        return Err(AdmitError::NotFound {
            resource: "pod",
            name: pod_name.to_string(),
        });
    };
    if pod_node != node {
        return Err(forbidden(
            req,
            format!("node {node} can only evict pods with spec.nodeName set to itself"),
        ));
    }
    Ok(())
}

/// Drops the fields a node may change in a PVC status update (plus resourceVersion and
/// managedFields, which upstream ignores too).
fn pvc_without_node_fields(pvc: &Value) -> Value {
    let mut v = pvc.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("managedFields");
    }
    if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
        for k in [
            "capacity",
            "conditions",
            "allocatedResourceStatuses",
            "allocatedResources",
        ] {
            status.remove(k);
        }
    }
    strip_empty(&mut v);
    v
}

/// Semantic equality treats null, missing, empty maps and empty lists alike.
fn strip_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for x in m.values_mut() {
                strip_empty(x);
            }
            m.retain(|_, x| match x {
                Value::Null => false,
                Value::Object(o) => !o.is_empty(),
                Value::Array(a) => !a.is_empty(),
                _ => true,
            });
        }
        Value::Array(a) => a.iter_mut().for_each(strip_empty),
        _ => {}
    }
}

/// Top-level paths (`metadata.labels`, `spec`, `status.phase`) whose values differ.
fn differing_paths(a: &Value, b: &Value, prefix: &str, depth: usize, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if depth > 0 => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if va != vb {
                    differing_paths(va, vb, &p, depth - 1, out);
                }
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

fn admit_pvc_status(node: &str, req: &AdmissionAttrs) -> Result<(), AdmitError> {
    if req.operation != Operation::Update {
        return Err(forbidden(
            req,
            format!("unexpected operation {:?}", req.operation.as_str()),
        ));
    }
    let Some(old) = req.old_object else {
        return Err(unexpected_type(req));
    };
    let Some(new) = req.object else {
        return Err(unexpected_type(req));
    };
    let (o, n) = (pvc_without_node_fields(old), pvc_without_node_fields(new));
    if o != n {
        let mut paths = Vec::new();
        differing_paths(&o, &n, "", 2, &mut paths);
        return Err(forbidden(
            req,
            format!(
                "node {node:?} is not allowed to update fields other than status.quantity and status.conditions: changed {}",
                paths.join(", ")
            ),
        ));
    }
    Ok(())
}

const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];
const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];
const NODE_RESTRICTION_LABEL_NAMESPACE: &str = "node-restriction.kubernetes.io";

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map(|(ns, _)| ns).unwrap_or("")
}

fn in_namespace(ns: &str, base: &str) -> bool {
    ns == base || ns.strip_suffix(base).is_some_and(|p| p.ends_with('.'))
}

/// Labels a kubelet may set on its own Node (upstream `kubeletapis.IsKubeletLabel`).
pub fn is_kubelet_label(key: &str) -> bool {
    if KUBELET_LABELS.contains(&key) {
        return true;
    }
    let ns = label_namespace(key);
    KUBELET_LABEL_NAMESPACES
        .iter()
        .any(|allowed| in_namespace(ns, allowed))
}

fn is_kubernetes_label(key: &str) -> bool {
    let ns = label_namespace(key);
    in_namespace(ns, "kubernetes.io") || in_namespace(ns, "k8s.io")
}

/// Of the label keys a node changes, those it may not (sorted, as upstream's `sets.List`).
fn forbidden_labels(
    new: &serde_json::Map<String, Value>,
    old: &serde_json::Map<String, Value>,
) -> Vec<String> {
    let modified: BTreeSet<&String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, _)| k)
        .chain(
            old.iter()
                .filter(|(k, v)| new.get(*k) != Some(v))
                .map(|(k, _)| k),
        )
        .collect();
    modified
        .into_iter()
        .filter(|k| {
            in_namespace(label_namespace(k), NODE_RESTRICTION_LABEL_NAMESPACE)
                || (is_kubernetes_label(k) && !is_kubelet_label(k))
        })
        .cloned()
        .collect()
}

fn spec_field<'a>(obj: &'a Value, key: &str) -> &'a Value {
    obj.get("spec")
        .and_then(|s| s.get(key))
        .unwrap_or(&Value::Null)
}

fn taints(obj: &Value) -> Value {
    let mut t = spec_field(obj, "taints").clone();
    strip_empty(&mut t);
    match t {
        Value::Array(a) if !a.is_empty() => Value::Array(a),
        _ => Value::Null,
    }
}

fn admit_node(node: &str, req: &AdmissionAttrs) -> Result<(), AdmitError> {
    if req.name != node {
        return Err(forbidden(
            req,
            format!("node {node:?} is not allowed to modify node {:?}", req.name),
        ));
    }
    match req.operation {
        Operation::Create => {
            let Some(obj) = req.object else {
                return Err(unexpected_type(req));
            };
            if !spec_field(obj, "configSource").is_null() {
                return Err(forbidden(
                    req,
                    format!(
                        "node {node:?} is not allowed to create pods with a non-nil configSource"
                    ),
                ));
            }
            let bad = forbidden_labels(&labels_of(obj), &serde_json::Map::new());
            if !bad.is_empty() {
                return Err(forbidden(
                    req,
                    format!(
                        "node {node:?} is not allowed to set the following labels: {}",
                        bad.join(", ")
                    ),
                ));
            }
        }
        Operation::Update => {
            let (Some(obj), Some(old)) = (req.object, req.old_object) else {
                return Err(unexpected_type(req));
            };
            let source = spec_field(obj, "configSource");
            if !source.is_null() && source != spec_field(old, "configSource") {
                return Err(forbidden(
                    req,
                    format!(
                        "node {node:?} is not allowed to update configSource to a new non-nil configSource"
                    ),
                ));
            }
            if taints(obj) != taints(old) {
                return Err(forbidden(
                    req,
                    format!("node {node:?} is not allowed to modify taints"),
                ));
            }
            let bad = forbidden_labels(&labels_of(obj), &labels_of(old));
            if !bad.is_empty() {
                // Upstream's text has no subject here.
                return Err(forbidden(
                    req,
                    format!("is not allowed to modify labels: {}", bad.join(", ")),
                ));
            }
        }
        Operation::Delete => {}
    }
    Ok(())
}

fn admit_service_account(
    node: &str,
    req: &AdmissionAttrs,
    lookups: &AdmissionLookups,
) -> Result<(), AdmitError> {
    if req.operation != Operation::Create || req.subresource != "token" {
        return Ok(());
    }
    let Some(tr) = req.object else {
        return Err(unexpected_type(req));
    };
    let r = tr
        .get("spec")
        .and_then(|s| s.get("boundObjectRef"))
        .filter(|v| !v.is_null());
    let field = |k: &str| {
        r.and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    if r.is_none()
        || field("apiVersion") != "v1"
        || field("kind") != "Pod"
        || field("name").is_empty()
    {
        return Err(forbidden(req, "node requested token not bound to a pod"));
    }
    let uid = field("uid");
    if uid.is_empty() {
        return Err(forbidden(
            req,
            "node requested token with a pod binding without a uid",
        ));
    }
    let pod_name = field("name");
    let Some((pod_node, pod_uid)) = (lookups.pod_node)(req.namespace, pod_name) else {
        return Err(AdmitError::NotFound {
            resource: "pod",
            name: pod_name.to_string(),
        });
    };
    if uid != pod_uid {
        return Err(forbidden(
            req,
            format!(
                "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    if pod_node != node {
        return Err(forbidden(
            req,
            "node requested token bound to a pod scheduled on a different node",
        ));
    }
    Ok(())
}

fn admit_lease(node: &str, req: &AdmissionAttrs) -> Result<(), AdmitError> {
    if req.namespace != NODE_LEASE_NAMESPACE {
        return Err(forbidden(
            req,
            format!("can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"),
        ));
    }
    let name = if req.operation == Operation::Create {
        let Some(obj) = req.object else {
            return Err(unexpected_type(req));
        };
        str_at(obj, &["metadata", "name"]).unwrap_or("")
    } else {
        req.name
    };
    if name != node {
        return Err(forbidden(
            req,
            "can only access node lease with the same name as the requesting node",
        ));
    }
    Ok(())
}

fn admit_csinode(node: &str, req: &AdmissionAttrs) -> Result<(), AdmitError> {
    let name = if req.operation == Operation::Create {
        let Some(obj) = req.object else {
            return Err(forbidden(req, "unable to access the object name"));
        };
        str_at(obj, &["metadata", "name"]).unwrap_or("")
    } else {
        req.name
    };
    if name != node {
        return Err(forbidden(
            req,
            "can only access CSINode with the same name as the requesting node",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::forbidden_message;
    use serde_json::json;

    fn node_user(n: &str) -> UserInfo {
        UserInfo {
            name: format!("system:node:{n}"),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
            ..Default::default()
        }
    }

    fn attrs(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            api_version: "v1".into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            path: String::new(),
            field_selector: String::new(),
        }
    }

    fn no_rules(_: &Attributes) -> bool {
        false
    }

    fn events_only(a: &Attributes) -> bool {
        a.resource == "events" && a.verb == "create"
    }

    fn pod(name: &str, node: &str, spec: Value) -> Value {
        let mut spec = spec;
        if !node.is_empty() {
            spec["nodeName"] = json!(node);
        }
        json!({
            "metadata": {"namespace": "default", "name": name, "uid": format!("uid-{name}")},
            "spec": spec,
        })
    }

    fn web_pod(node: &str) -> Value {
        pod(
            "web",
            node,
            json!({
                "serviceAccountName": "web-sa",
                "imagePullSecrets": [{"name": "regcred"}],
                "initContainers": [{"name": "i", "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "init-secret", "key": "k"}}}]}],
                "containers": [{
                    "name": "c",
                    "envFrom": [{"configMapRef": {"name": "app-config"}}, {"secretRef": {"name": "env-secret"}}],
                    "env": [{"name": "B", "valueFrom": {"configMapKeyRef": {"name": "key-config", "key": "k"}}}],
                }],
                "ephemeralContainers": [{"name": "dbg", "envFrom": [{"secretRef": {"name": "debug-secret"}}]}],
                "volumes": [
                    {"name": "s", "secret": {"secretName": "vol-secret"}},
                    {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "proj-config"}}]}},
                    {"name": "cm", "configMap": {"name": "vol-config"}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-claim"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                ],
            }),
        )
    }

    fn decide(g: &NodeGraph, n: &str, a: &Attributes) -> Decision {
        g.authorize(&node_user(n), a, &no_rules)
    }

    #[test]
    fn identity_requires_prefix_and_group() {
        assert_eq!(node_identity(&node_user("n1")), Some("n1"));
        let mut u = node_user("n1");
        u.groups.clear();
        assert_eq!(node_identity(&u), None);
        let bob = UserInfo {
            name: "bob".into(),
            groups: vec!["system:nodes".into()],
            ..Default::default()
        };
        assert_eq!(node_identity(&bob), None);
        assert_eq!(node_identity(&node_user("")), Some(""));
    }

    #[test]
    fn pod_references_cover_every_place() {
        let r = pod_references(&web_pod("n1"));
        let s: Vec<&str> = r.secrets.iter().map(String::as_str).collect();
        assert_eq!(
            s,
            [
                "debug-secret",
                "env-secret",
                "init-secret",
                "proj-secret",
                "regcred",
                "vol-secret"
            ]
        );
        let c: Vec<&str> = r.configmaps.iter().map(String::as_str).collect();
        assert_eq!(c, ["app-config", "key-config", "proj-config", "vol-config"]);
        let p: Vec<&str> = r.pvcs.iter().map(String::as_str).collect();
        assert_eq!(p, ["data-claim", "web-scratch"]);
        assert_eq!(r.service_account.as_deref(), Some("web-sa"));
        assert!(r.pvc_volumes);
    }

    #[test]
    fn secret_reachable_only_from_its_node() {
        let mut g = NodeGraph::new();
        g.upsert_pod(&web_pod("n1"));
        let get = attrs("get", "", "secrets", "", "default", "vol-secret");
        assert_eq!(decide(&g, "n1", &get), Decision::Allow);
        let d = decide(&g, "n2", &get);
        assert_eq!(
            d,
            Decision::Deny("no relationship found between node 'n2' and this object".into())
        );
        let Decision::Deny(reason) = d else {
            unreachable!()
        };
        assert_eq!(
            forbidden_message(&node_user("n2"), &get, &reason),
            "secrets \"vol-secret\" is forbidden: User \"system:node:n2\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'n2' and this object"
        );
        // Same name in another namespace is a different object.
        let other_ns = attrs("get", "", "secrets", "", "kube-system", "vol-secret");
        assert!(matches!(decide(&g, "n1", &other_ns), Decision::Deny(_)));
    }

    #[test]
    fn configmap_via_envfrom_and_single_object_watch() {
        let mut g = NodeGraph::new();
        g.upsert_pod(&web_pod("n1"));
        for verb in ["get", "list", "watch"] {
            let a = attrs(verb, "", "configmaps", "", "default", "app-config");
            assert_eq!(decide(&g, "n1", &a), Decision::Allow, "{verb}");
        }
        let all = attrs("list", "", "configmaps", "", "default", "");
        assert_eq!(
            decide(&g, "n1", &all),
            Decision::Deny("No Object name found".into())
        );
        let write = attrs("update", "", "configmaps", "", "default", "app-config");
        assert_eq!(
            decide(&g, "n1", &write),
            Decision::Deny("can only read resources of this type".into())
        );
        let cluster = attrs("list", "", "secrets", "", "", "x");
        assert_eq!(
            decide(&g, "n1", &cluster),
            Decision::Deny("can only read namespaced object of this type".into())
        );
    }

    #[test]
    fn deleted_pod_removes_edges_and_refcounts_survive_other_pods() {
        let mut g = NodeGraph::new();
        g.upsert_pod(&web_pod("n1"));
        let other = pod(
            "other",
            "n1",
            json!({"containers": [{"name": "c"}], "volumes": [{"name": "s", "secret": {"secretName": "vol-secret"}}]}),
        );
        g.upsert_pod(&other);
        let get = attrs("get", "", "secrets", "", "default", "vol-secret");
        g.remove_pod("default", "web");
        assert_eq!(decide(&g, "n1", &get), Decision::Allow);
        let env = attrs("get", "", "secrets", "", "default", "env-secret");
        assert!(matches!(decide(&g, "n1", &env), Decision::Deny(_)));
        g.remove_pod("default", "other");
        assert!(matches!(decide(&g, "n1", &get), Decision::Deny(_)));
        assert_eq!(g.sizes(), [0; 6]);
    }

    #[test]
    fn pod_update_same_binding_is_noop_and_recreate_rebinds() {
        let mut g = NodeGraph::new();
        g.upsert_pod(&web_pod("n1"));
        let before = g.sizes();
        g.upsert_pod(&web_pod("n1"));
        assert_eq!(g.sizes(), before);
        // Recreated under the same name on another node with a new uid.
        let mut moved = web_pod("n2");
        moved["metadata"]["uid"] = json!("uid-2");
        g.upsert_pod(&moved);
        let get = attrs("get", "", "secrets", "", "default", "regcred");
        assert!(matches!(decide(&g, "n1", &get), Decision::Deny(_)));
        assert_eq!(decide(&g, "n2", &get), Decision::Allow);
        // An unbound pod under that name drops the old edges.
        g.upsert_pod(&pod("web", "", json!({"containers": []})));
        assert!(matches!(decide(&g, "n2", &get), Decision::Deny(_)));
        assert_eq!(g.sizes(), [0; 6]);
    }

    #[test]
    fn mirror_pod_links_only_the_pod() {
        let mut g = NodeGraph::new();
        let mut p = web_pod("n1");
        p["metadata"]["annotations"] = json!({MIRROR_POD_ANNOTATION: "h"});
        g.upsert_pod(&p);
        let get = attrs("get", "", "secrets", "", "default", "vol-secret");
        assert!(matches!(decide(&g, "n1", &get), Decision::Deny(_)));
        let getpod = attrs("get", "", "pods", "", "default", "web");
        assert_eq!(decide(&g, "n1", &getpod), Decision::Allow);
    }

    #[test]
    fn pvcs_pvs_and_pv_secrets() {
        let mut g = NodeGraph::new();
        g.upsert_pod(&web_pod("n1"));
        let pvc = attrs(
            "get",
            "",
            "persistentvolumeclaims",
            "",
            "default",
            "data-claim",
        );
        assert_eq!(decide(&g, "n1", &pvc), Decision::Allow);
        let eph = attrs(
            "get",
            "",
            "persistentvolumeclaims",
            "",
            "default",
            "web-scratch",
        );
        assert_eq!(decide(&g, "n1", &eph), Decision::Allow);
        let list = attrs("list", "", "persistentvolumeclaims", "", "default", "");
        assert_eq!(
            decide(&g, "n1", &list),
            Decision::Deny("can only get individual resources of this type".into())
        );
        let status = attrs(
            "update",
            "",
            "persistentvolumeclaims",
            "status",
            "default",
            "data-claim",
        );
        assert_eq!(decide(&g, "n1", &status), Decision::Allow);
        let get_status = attrs(
            "get",
            "",
            "persistentvolumeclaims",
            "status",
            "default",
            "data-claim",
        );
        assert_eq!(
            decide(&g, "n1", &get_status),
            Decision::Deny("can only get/update/patch this type".into())
        );

        g.upsert_pv_object(&json!({
            "metadata": {"name": "pv1"},
            "spec": {"claimRef": {"namespace": "default", "name": "data-claim"},
                     "csi": {"driver": "d", "volumeHandle": "h",
                             "nodePublishSecretRef": {"name": "csi-secret", "namespace": "storage"},
                             "controllerPublishSecretRef": {"name": "ctrl-secret", "namespace": "storage"}}},
        }));
        let pv = attrs("get", "", "persistentvolumes", "", "", "pv1");
        assert_eq!(decide(&g, "n1", &pv), Decision::Allow);
        assert!(matches!(decide(&g, "n2", &pv), Decision::Deny(_)));
        let csi = attrs("get", "", "secrets", "", "storage", "csi-secret");
        assert_eq!(decide(&g, "n1", &csi), Decision::Allow);
        let ctrl = attrs("get", "", "secrets", "", "storage", "ctrl-secret");
        assert!(matches!(decide(&g, "n1", &ctrl), Decision::Deny(_)));
        g.remove_pv("pv1");
        assert!(matches!(decide(&g, "n1", &pv), Decision::Deny(_)));
        assert!(matches!(decide(&g, "n1", &csi), Decision::Deny(_)));
    }

    #[test]
    fn service_account_tokens() {
        let mut g = NodeGraph::new();
        g.upsert_pod(&web_pod("n1"));
        let tok = attrs(
            "create",
            "",
            "serviceaccounts",
            "token",
            "default",
            "web-sa",
        );
        assert_eq!(decide(&g, "n1", &tok), Decision::Allow);
        assert_eq!(
            decide(&g, "n2", &tok),
            Decision::Deny("no relationship found between node 'n2' and this object".into())
        );
        let get = attrs("get", "", "serviceaccounts", "", "default", "web-sa");
        assert_eq!(
            decide(&g, "n1", &get),
            Decision::Deny("can only create tokens for individual service accounts".into())
        );
        let other_sub = attrs("create", "", "serviceaccounts", "x", "default", "web-sa");
        assert_eq!(
            decide(&g, "n1", &other_sub),
            Decision::Deny("can only create token subresource of serviceaccount".into())
        );
    }

    #[test]
    fn nodes_own_object_only() {
        let g = NodeGraph::new();
        assert_eq!(
            decide(&g, "n1", &attrs("get", "", "nodes", "", "", "n1")),
            Decision::Allow
        );
        assert_eq!(
            decide(&g, "n1", &attrs("get", "", "nodes", "", "", "n2")),
            Decision::Deny("node 'n1' cannot read 'n2', only its own Node object".into())
        );
        assert_eq!(
            decide(&g, "n1", &attrs("list", "", "nodes", "", "", "")),
            Decision::Deny("node 'n1' cannot read all nodes, only its own Node object".into())
        );
        for (verb, sub) in [
            ("update", ""),
            ("patch", ""),
            ("create", ""),
            ("patch", "status"),
        ] {
            assert_eq!(
                decide(&g, "n1", &attrs(verb, "", "nodes", sub, "", "n1")),
                Decision::Allow
            );
        }
        // delete and other subresources: no opinion without reason; node rules not consulted.
        let del = attrs("delete", "", "nodes", "", "", "n1");
        assert_eq!(
            g.authorize(&node_user("n1"), &del, &|_| true),
            Decision::NoOpinion
        );
    }

    #[test]
    fn pods_need_node_field_selector() {
        let mut g = NodeGraph::new();
        g.upsert_pod(&web_pod("n1"));
        let u = node_user("n1");
        let watch = attrs("watch", "", "pods", "", "", "");
        assert_eq!(
            g.authorize_with_field_selector(&u, &watch, "spec.nodeName=n1", &no_rules),
            Decision::Allow
        );
        assert_eq!(
            g.authorize_with_field_selector(&u, &watch, "spec.nodeName=n2", &no_rules),
            Decision::Deny("can only list/watch pods with spec.nodeName field selector".into())
        );
        assert!(matches!(
            g.authorize_with_field_selector(&u, &watch, "spec.nodeName!=n1", &no_rules),
            Decision::Deny(_)
        ));
        let named = attrs("watch", "", "pods", "", "default", "web");
        assert_eq!(g.authorize(&u, &named, &no_rules), Decision::Allow);
        assert!(matches!(decide(&g, "n2", &named), Decision::Deny(_)));
        assert_eq!(
            decide(&g, "n2", &attrs("create", "", "pods", "", "default", "")),
            Decision::Allow
        );
        assert_eq!(
            decide(
                &g,
                "n2",
                &attrs("patch", "", "pods", "status", "default", "web")
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(
                &g,
                "n2",
                &attrs("create", "", "pods", "eviction", "default", "web")
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(&g, "n1", &attrs("update", "", "pods", "", "default", "web")),
            Decision::NoOpinion
        );
    }

    #[test]
    fn field_selector_parsing() {
        let r = parse_field_selector("metadata.name==a\\,b,spec.nodeName!=x");
        assert_eq!(
            r,
            vec![
                FieldRequirement {
                    field: "metadata.name".into(),
                    equals: true,
                    value: "a,b".into()
                },
                FieldRequirement {
                    field: "spec.nodeName".into(),
                    equals: false,
                    value: "x".into()
                },
            ]
        );
        assert!(parse_field_selector("").is_empty());
    }

    #[test]
    fn leases_and_csinodes() {
        let g = NodeGraph::new();
        let lease = |verb: &str, ns: &str, name: &str| {
            attrs(verb, "coordination.k8s.io", "leases", "", ns, name)
        };
        assert_eq!(
            decide(&g, "n1", &lease("update", "kube-node-lease", "n1")),
            Decision::Allow
        );
        assert_eq!(
            decide(&g, "n1", &lease("create", "kube-node-lease", "")),
            Decision::Allow
        );
        assert_eq!(
            decide(&g, "n1", &lease("update", "kube-node-lease", "n2")),
            Decision::Deny(
                "can only access node lease with the same name as the requesting node".into()
            )
        );
        assert_eq!(
            decide(&g, "n1", &lease("get", "default", "n1")),
            Decision::Deny(
                "can only access leases in the \"kube-node-lease\" system namespace".into()
            )
        );
        assert_eq!(
            decide(&g, "n1", &lease("list", "kube-node-lease", "")),
            Decision::Deny("can only get, create, update, patch, or delete a node lease".into())
        );
        let csi = attrs("get", "storage.k8s.io", "csinodes", "", "", "n2");
        assert_eq!(
            decide(&g, "n1", &csi),
            Decision::Deny(
                "can only access CSINode with the same name as the requesting node".into()
            )
        );
    }

    #[test]
    fn other_resources_use_node_rules_and_non_nodes_get_no_opinion() {
        let g = NodeGraph::new();
        let ev = attrs("create", "", "events", "", "default", "");
        let u = node_user("n1");
        assert_eq!(g.authorize(&u, &ev, &events_only), Decision::Allow);
        let svc = attrs("list", "", "services", "", "", "");
        assert_eq!(g.authorize(&u, &svc, &events_only), Decision::NoOpinion);
        let bob = UserInfo {
            name: "bob".into(),
            ..Default::default()
        };
        let sec = attrs("get", "", "secrets", "", "default", "x");
        assert_eq!(g.authorize(&bob, &sec, &|_| true), Decision::NoOpinion);
        assert_eq!(
            g.authorize(&node_user(""), &sec, &|_| true),
            Decision::Deny("unknown node for user \"system:node:\"".into())
        );
        // evaluate keeps upstream's pair.
        assert_eq!(
            g.evaluate(&u, &sec, "", &no_rules),
            (
                Decision::NoOpinion,
                "no relationship found between node 'n1' and this object".into()
            )
        );
    }

    // ------------------------------------------------------------------ admission

    struct World {
        pods: Vec<(&'static str, &'static str, &'static str, &'static str)>,
        nodes: Vec<(&'static str, &'static str)>,
    }

    impl World {
        fn new() -> Self {
            World {
                pods: vec![
                    ("default", "web", "n1", "uid-web"),
                    ("default", "db", "n2", "uid-db"),
                ],
                nodes: vec![("n1", "node-uid-1"), ("n2", "node-uid-2")],
            }
        }
        fn run(&self, node: &str, req: &AdmissionAttrs) -> Result<(), AdmitError> {
            let pod_node = |ns: &str, name: &str| {
                self.pods
                    .iter()
                    .find(|p| p.0 == ns && p.1 == name)
                    .map(|p| (p.2.to_string(), p.3.to_string()))
            };
            let node_uid = |n: &str| {
                self.nodes
                    .iter()
                    .find(|x| x.0 == n)
                    .map(|x| x.1.to_string())
            };
            admit(
                node,
                req,
                &AdmissionLookups {
                    pod_node: &pod_node,
                    node_uid: &node_uid,
                },
            )
        }
    }

    fn req<'a>(
        op: Operation,
        group: &'a str,
        resource: &'a str,
        sub: &'a str,
        ns: &'a str,
        name: &'a str,
    ) -> AdmissionAttrs<'a> {
        AdmissionAttrs {
            operation: op,
            group,
            resource,
            subresource: sub,
            namespace: ns,
            name,
            object: None,
            old_object: None,
        }
    }

    fn mirror(node: &str, owner_uid: &str) -> Value {
        json!({
            "metadata": {"namespace": "default", "name": format!("etcd-{node}"),
                "annotations": {MIRROR_POD_ANNOTATION: "abc"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": owner_uid, "controller": true}]},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        })
    }

    fn reason(r: Result<(), AdmitError>) -> String {
        r.expect_err("expected refusal").reason()
    }

    #[test]
    fn mirror_pod_creation_rules() {
        let w = World::new();
        let ok = mirror("n1", "node-uid-1");
        let mut r = req(Operation::Create, "", "pods", "", "default", "etcd-n1");
        r.object = Some(&ok);
        assert_eq!(w.run("n1", &r), Ok(()));

        let mut plain = ok.clone();
        plain["metadata"]["annotations"] = json!({});
        r.object = Some(&plain);
        let e = w.run("n1", &r).expect_err("not a mirror pod");
        assert_eq!(
            e.to_string(),
            "pods \"etcd-n1\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods"
        );

        r.object = Some(&ok);
        assert_eq!(
            reason(w.run("n2", &r)),
            "node \"n2\" can only create pods with spec.nodeName set to itself"
        );

        let bad_uid = mirror("n1", "stale");
        r.object = Some(&bad_uid);
        assert_eq!(
            reason(w.run("n1", &r)),
            "node n1 UID mismatch: expected stale got node-uid-1"
        );

        let mut no_owner = ok.clone();
        no_owner["metadata"]["ownerReferences"] = json!([]);
        r.object = Some(&no_owner);
        assert_eq!(
            reason(w.run("n1", &r)),
            "node \"n1\" can only create pods with an owner reference set to itself"
        );

        let mut not_ctrl = ok.clone();
        not_ctrl["metadata"]["ownerReferences"][0]["controller"] = json!(false);
        r.object = Some(&not_ctrl);
        assert_eq!(
            reason(w.run("n1", &r)),
            "node \"n1\" can only create pods with a controller owner reference set to itself"
        );

        let mut block = ok.clone();
        block["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = json!(true);
        r.object = Some(&block);
        assert_eq!(
            reason(w.run("n1", &r)),
            "node \"n1\" must not set blockOwnerDeletion on an owner reference"
        );

        let cases = [
            (
                json!({"serviceAccountName": "default"}),
                "a service account",
            ),
            (
                json!({"volumes": [{"name": "v", "secret": {"secretName": "s"}}]}),
                "secrets",
            ),
            (
                json!({"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "m"}}]}]}),
                "configmaps",
            ),
            (
                json!({"volumes": [{"name": "v", "projected": {"sources": [{"clusterTrustBundle": {"name": "b", "path": "p"}}]}}]}),
                "clustertrustbundles",
            ),
            (
                json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]}),
                "persistentvolumeclaims",
            ),
        ];
        for (extra, what) in cases {
            let mut p = ok.clone();
            for (k, v) in extra.as_object().into_iter().flatten() {
                p["spec"][k] = v.clone();
            }
            let mut rp = r;
            rp.object = Some(&p);
            assert_eq!(
                reason(w.run("n1", &rp)),
                format!("node \"n1\" can not create pods that reference {what}")
            );
        }

        let unknown = World {
            pods: vec![],
            nodes: vec![],
        };
        r.object = Some(&ok);
        assert_eq!(
            unknown.run("n1", &r),
            Err(AdmitError::NotFound {
                resource: "node",
                name: "n1".into()
            })
        );
    }

    #[test]
    fn pod_delete_update_status_eviction() {
        let w = World::new();
        assert_eq!(
            w.run(
                "n1",
                &req(Operation::Delete, "", "pods", "", "default", "web")
            ),
            Ok(())
        );
        assert_eq!(
            reason(w.run(
                "n1",
                &req(Operation::Delete, "", "pods", "", "default", "db")
            )),
            "node \"n1\" can only delete pods with spec.nodeName set to itself"
        );
        assert_eq!(
            w.run(
                "n1",
                &req(Operation::Delete, "", "pods", "", "default", "gone")
            )
            .expect_err("missing")
            .to_string(),
            "pod \"gone\" not found"
        );
        assert_eq!(
            reason(w.run(
                "n1",
                &req(Operation::Update, "", "pods", "", "default", "web")
            )),
            "unexpected operation \"UPDATE\", node \"n1\" can only create and delete mirror pods"
        );

        let old = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "n1"}});
        let new_ok = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let relabel = json!({"metadata": {"labels": {"app": "evil"}}, "spec": {"nodeName": "n1"}});
        let mut st = req(Operation::Update, "", "pods", "status", "default", "web");
        st.old_object = Some(&old);
        st.object = Some(&new_ok);
        assert_eq!(w.run("n1", &st), Ok(()));
        assert_eq!(
            reason(w.run("n2", &st)),
            "node \"n2\" can only update pod status for pods with spec.nodeName set to itself"
        );
        st.object = Some(&relabel);
        assert_eq!(
            reason(w.run("n1", &st)),
            "node \"n1\" cannot update labels through pod status"
        );

        let ev = json!({"metadata": {"name": "db", "namespace": "default"}});
        let mut e = req(Operation::Create, "", "pods", "eviction", "default", "db");
        e.object = Some(&ev);
        assert_eq!(w.run("n2", &e), Ok(()));
        assert_eq!(
            reason(w.run("n1", &e)),
            "node n1 can only evict pods with spec.nodeName set to itself"
        );
        assert_eq!(
            reason(w.run(
                "n1",
                &req(Operation::Create, "", "pods", "exec", "default", "db")
            )),
            "unexpected pod subresource \"exec\", only 'status' and 'eviction' are allowed"
        );
    }

    #[test]
    fn node_objects() {
        let w = World::new();
        let mut other = req(Operation::Update, "", "nodes", "status", "", "n2");
        let n = json!({"metadata": {"name": "n2"}});
        other.object = Some(&n);
        other.old_object = Some(&n);
        let e = w.run("n1", &other).expect_err("other node");
        assert_eq!(
            e.to_string(),
            "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
        );

        let create = json!({"metadata": {"name": "n1", "labels": {
            "kubernetes.io/hostname": "n1", "node.kubernetes.io/exclude-from-external-load-balancers": "",
            "example.com/rack": "r1",
            "node-restriction.kubernetes.io/trusted": "yes", "node-role.kubernetes.io/control-plane": "true"}}});
        let mut c = req(Operation::Create, "", "nodes", "", "", "n1");
        c.object = Some(&create);
        assert_eq!(
            reason(w.run("n1", &c)),
            "node \"n1\" is not allowed to set the following labels: node-restriction.kubernetes.io/trusted, node-role.kubernetes.io/control-plane"
        );

        let old = json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}});
        let status_only = json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}, "status": {"capacity": {"cpu": "2"}}});
        let untaint = json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}, "spec": {}});
        let relabel = json!({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1", "k8s.io/x": "y"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}});
        let mut u = req(Operation::Update, "", "nodes", "", "", "n1");
        u.old_object = Some(&old);
        u.object = Some(&status_only);
        assert_eq!(w.run("n1", &u), Ok(()));
        u.object = Some(&untaint);
        assert_eq!(
            reason(w.run("n1", &u)),
            "node \"n1\" is not allowed to modify taints"
        );
        u.object = Some(&relabel);
        assert_eq!(
            reason(w.run("n1", &u)),
            "is not allowed to modify labels: k8s.io/x"
        );
        let cs = json!({"metadata": {"name": "n1"}, "spec": {"configSource": {"configMap": {}}}});
        c.object = Some(&cs);
        assert_eq!(
            reason(w.run("n1", &c)),
            "node \"n1\" is not allowed to create pods with a non-nil configSource"
        );
    }

    #[test]
    fn token_requests_must_bind_a_pod_on_this_node() {
        let w = World::new();
        let tr = |name: &str, uid: &str| json!({"spec": {"audiences": ["a"], "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}}});
        let mut r = req(
            Operation::Create,
            "",
            "serviceaccounts",
            "token",
            "default",
            "web-sa",
        );
        let good = tr("web", "uid-web");
        r.object = Some(&good);
        assert_eq!(w.run("n1", &r), Ok(()));
        let other = tr("db", "uid-db");
        r.object = Some(&other);
        let e = w.run("n1", &r).expect_err("pod elsewhere");
        assert_eq!(
            e.to_string(),
            "serviceaccounts \"web-sa\" is forbidden: node requested token bound to a pod scheduled on a different node"
        );
        let stale = tr("web", "old");
        r.object = Some(&stale);
        assert_eq!(
            reason(w.run("n1", &r)),
            "the UID in the bound object reference (old) does not match the UID in record. The object might have been deleted and then recreated"
        );
        let unbound = json!({"spec": {"audiences": ["a"]}});
        r.object = Some(&unbound);
        assert_eq!(
            reason(w.run("n1", &r)),
            "node requested token not bound to a pod"
        );
        let no_uid = tr("web", "");
        r.object = Some(&no_uid);
        assert_eq!(
            reason(w.run("n1", &r)),
            "node requested token with a pod binding without a uid"
        );
        let gone = tr("gone", "u");
        r.object = Some(&gone);
        assert_eq!(
            w.run("n1", &r),
            Err(AdmitError::NotFound {
                resource: "pod",
                name: "gone".into()
            })
        );
        // Other serviceaccount writes are not NodeRestriction's business.
        assert_eq!(
            w.run(
                "n1",
                &req(Operation::Update, "", "serviceaccounts", "", "default", "x")
            ),
            Ok(())
        );
    }

    #[test]
    fn lease_names() {
        let w = World::new();
        let own = json!({"metadata": {"name": "n1", "namespace": "kube-node-lease"}});
        let theirs = json!({"metadata": {"name": "n2", "namespace": "kube-node-lease"}});
        let mut c = req(
            Operation::Create,
            "coordination.k8s.io",
            "leases",
            "",
            "kube-node-lease",
            "n1",
        );
        c.object = Some(&own);
        assert_eq!(w.run("n1", &c), Ok(()));
        c.object = Some(&theirs);
        c.name = "n2";
        let e = w.run("n1", &c).expect_err("other lease");
        assert_eq!(
            e.to_string(),
            "leases.coordination.k8s.io \"n2\" is forbidden: can only access node lease with the same name as the requesting node"
        );
        assert_eq!(
            reason(w.run(
                "n1",
                &req(
                    Operation::Update,
                    "coordination.k8s.io",
                    "leases",
                    "",
                    "kube-node-lease",
                    "n2"
                )
            )),
            "can only access node lease with the same name as the requesting node"
        );
        assert_eq!(
            reason(w.run(
                "n1",
                &req(
                    Operation::Update,
                    "coordination.k8s.io",
                    "leases",
                    "",
                    "default",
                    "n1"
                )
            )),
            "can only access leases in the \"kube-node-lease\" system namespace"
        );
        assert_eq!(
            w.run(
                "n1",
                &req(
                    Operation::Delete,
                    "coordination.k8s.io",
                    "leases",
                    "",
                    "kube-node-lease",
                    "n1"
                )
            ),
            Ok(())
        );
    }

    #[test]
    fn pvc_status_and_other_resources() {
        let w = World::new();
        let old = json!({"metadata": {"name": "c", "resourceVersion": "1", "labels": {"a": "b"}},
            "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}});
        let grow = json!({"metadata": {"name": "c", "resourceVersion": "2", "labels": {"a": "b"}},
            "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound", "capacity": {"storage": "2Gi"},
            "conditions": [{"type": "Resizing", "status": "True"}]}});
        let relabel = json!({"metadata": {"name": "c", "labels": {"a": "c"}},
            "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound"}});
        let mut r = req(
            Operation::Update,
            "",
            "persistentvolumeclaims",
            "status",
            "default",
            "c",
        );
        r.old_object = Some(&old);
        r.object = Some(&grow);
        assert_eq!(w.run("n1", &r), Ok(()));
        r.object = Some(&relabel);
        let msg = reason(w.run("n1", &r));
        assert!(
            msg.starts_with("node \"n1\" is not allowed to update fields other than status.quantity and status.conditions: "),
            "{msg}"
        );
        assert!(msg.contains("metadata.labels"), "{msg}");
        assert_eq!(
            reason(w.run(
                "n1",
                &req(
                    Operation::Update,
                    "",
                    "persistentvolumeclaims",
                    "",
                    "default",
                    "c"
                )
            )),
            "may only update PVC status"
        );
        // Events and other kinds pass through.
        assert_eq!(
            w.run(
                "n1",
                &req(Operation::Create, "", "events", "", "default", "e")
            ),
            Ok(())
        );
        let bob = UserInfo {
            name: "bob".into(),
            ..Default::default()
        };
        let none = |_: &str, _: &str| None;
        let no_uid = |_: &str| None;
        let l = AdmissionLookups {
            pod_node: &none,
            node_uid: &no_uid,
        };
        assert_eq!(
            admit_user(
                &bob,
                &req(Operation::Delete, "", "pods", "", "default", "db"),
                &l
            ),
            Ok(())
        );
        assert_eq!(
            reason(admit_user(
                &node_user(""),
                &req(Operation::Delete, "", "pods", "", "default", "db"),
                &l
            )),
            "could not determine node from user \"system:node:\""
        );
    }
}
