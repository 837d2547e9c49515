//! The IO around the RBAC authorizer: list-watches of the four RBAC kinds feeding the
//! shared index (as upstream's RBAC authorizer reads informers), the bootstrap policy
//! reconciled into the store at start, the ClusterRole aggregation loop, and the
//! privilege-escalation checks on RBAC writes.

use crate::auth::{Authorizer, Decision, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::rbac::{self, bootstrap, RbacIndex, SharedRbacIndex};
use crate::registry::{decode, prefix, Registry, WriteOptions};
use crate::resources::{self, ResourceInfo};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use store::{Backend, Event, ListOptions};

#[derive(Debug, thiserror::Error)]
pub enum RbacSyncError {
    #[error("reconciling bootstrap {kind} {name}: {message}")]
    Reconcile {
        kind: &'static str,
        name: String,
        message: String,
    },
}

fn res(plural: &str) -> &'static ResourceInfo {
    resources::find("rbac.authorization.k8s.io", "v1", plural).expect("rbac served")
}

#[derive(Clone, Copy)]
enum Kind {
    ClusterRole,
    ClusterRoleBinding,
    Role,
    RoleBinding,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Kind::ClusterRole => "clusterroles",
            Kind::ClusterRoleBinding => "clusterrolebindings",
            Kind::Role => "roles",
            Kind::RoleBinding => "rolebindings",
        }
    }

    /// Applies one object (or its removal) to the index.
    fn apply(self, idx: &mut RbacIndex, obj: &Value, removed: bool) {
        let name = crate::meta::name(obj);
        let ns = crate::meta::namespace(obj);
        if removed {
            match self {
                Kind::ClusterRole => idx.remove_cluster_role(name),
                Kind::ClusterRoleBinding => idx.remove_cluster_role_binding(name),
                Kind::Role => idx.remove_role(ns, name),
                Kind::RoleBinding => idx.remove_role_binding(ns, name),
            }
            return;
        }
        let v = obj.clone();
        let done = match self {
            Kind::ClusterRole => serde_json::from_value::<ClusterRole>(v)
                .map(|o| idx.upsert_cluster_role(o))
                .is_ok(),
            Kind::ClusterRoleBinding => serde_json::from_value::<ClusterRoleBinding>(v)
                .map(|o| idx.upsert_cluster_role_binding(o))
                .is_ok(),
            Kind::Role => serde_json::from_value::<Role>(v)
                .map(|o| idx.upsert_role(o))
                .is_ok(),
            Kind::RoleBinding => serde_json::from_value::<RoleBinding>(v)
                .map(|o| idx.upsert_role_binding(o))
                .is_ok(),
        };
        if !done {
            tracing::warn!(
                kind = self.plural(),
                name,
                "rbac: undecodable object skipped"
            );
        }
    }
}

const KINDS: [Kind; 4] = [
    Kind::ClusterRole,
    Kind::ClusterRoleBinding,
    Kind::Role,
    Kind::RoleBinding,
];

/// Starts one list-watch per RBAC kind feeding `index`; each re-lists after a watch error.
/// `on_cluster_roles` runs after every change to ClusterRoles (the aggregation loop).
pub fn start(
    store: Arc<dyn Backend>,
    index: SharedRbacIndex,
    on_cluster_roles: Arc<dyn Fn() + Send + Sync>,
) {
    for kind in KINDS {
        let store = store.clone();
        let index = index.clone();
        let notify = on_cluster_roles.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = sync(store.as_ref(), &index, kind, notify.as_ref()).await {
                    tracing::debug!(error = %e, kind = kind.plural(), "rbac: re-listing");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
}

async fn sync(
    store: &dyn Backend,
    index: &SharedRbacIndex,
    kind: Kind,
    notify: &(dyn Fn() + Send + Sync),
) -> Result<(), store::StoreError> {
    let r = res(kind.plural());
    let base = prefix(r, None);
    let page = store
        .list(&ListOptions {
            prefix: base.clone(),
            ..Default::default()
        })
        .await?;
    {
        let mut idx = index.write();
        // Drop what the index holds of this kind, then load the list.
        let stale: Vec<(String, String)> = match kind {
            Kind::ClusterRole => idx
                .cluster_roles()
                .filter_map(|c| c.metadata.name.clone())
                .map(|n| (String::new(), n))
                .collect(),
            _ => Vec::new(),
        };
        for (_, n) in stale {
            idx.remove_cluster_role(&n);
        }
        for kv in &page.kvs {
            if let Ok(obj) = decode(r, kv) {
                kind.apply(&mut idx, &obj, false);
            }
        }
    }
    if matches!(kind, Kind::ClusterRole) {
        notify();
    }
    let mut watch = store.watch(&base, page.revision).await?;
    while let Some(batch) = watch.recv().await {
        let batch = batch?;
        {
            let mut idx = index.write();
            for ev in &batch {
                match ev {
                    Event::Create { kv } | Event::Update { kv, .. } => {
                        if let Ok(obj) = decode(r, kv) {
                            kind.apply(&mut idx, &obj, false);
                        }
                    }
                    Event::Delete { prev, .. } => {
                        if let Ok(obj) = decode(r, prev) {
                            kind.apply(&mut idx, &obj, true);
                        }
                    }
                }
            }
        }
        if matches!(kind, Kind::ClusterRole) {
            notify();
        }
    }
    Ok(())
}

fn system_opts() -> WriteOptions {
    WriteOptions {
        dry_run: false,
        field_manager: "kube-apiserver".into(),
        field_validation: crate::registry::FieldValidation::Ignore,
        force: false,
        user: UserInfo::default(),
    }
}

/// Creates or updates one bootstrap object from its reconciled form.
async fn write(
    reg: &Registry,
    r: &ResourceInfo,
    ns: &str,
    name: &str,
    existing: bool,
    obj: Value,
) -> ApiResult<()> {
    let opts = system_opts();
    if existing {
        // The reconciled object carries the stored resourceVersion: a concurrent change
        // makes this a conflict, retried at the next start.
        reg.replace(r, ns, name, None, obj, &opts).await?;
    } else {
        match reg.create(r, ns, obj, &opts).await {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn existing<T: serde::de::DeserializeOwned>(
    reg: &Registry,
    r: &ResourceInfo,
    ns: &str,
    name: &str,
) -> ApiResult<Option<T>> {
    match reg.get(r, ns, name).await {
        Ok(v) => Ok(serde_json::from_value(v).ok()),
        Err(e) if e.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

fn to_value<T: serde::Serialize>(o: &T, kind: &str) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    v["apiVersion"] = "rbac.authorization.k8s.io/v1".into();
    v["kind"] = kind.into();
    v
}

/// Upstream's start-up reconciliation of the bootstrap policy: missing objects are
/// created, objects with `autoupdate: "true"` get the missing rules/subjects added,
/// bindings whose roleRef changed are recreated.
pub async fn reconcile_bootstrap(reg: &Registry) -> Result<(), RbacSyncError> {
    let fail = |kind: &'static str, name: &str, e: ApiError| RbacSyncError::Reconcile {
        kind,
        name: name.to_string(),
        message: e.message,
    };
    let r = res("clusterroles");
    for want in bootstrap::cluster_roles() {
        let name = want.metadata.name.clone().unwrap_or_default();
        let have: Option<ClusterRole> = existing(reg, r, "", &name)
            .await
            .map_err(|e| fail("clusterrole", &name, e))?;
        if let Some(next) = bootstrap::reconcile_cluster_role(have.as_ref(), &want) {
            write(
                reg,
                r,
                "",
                &name,
                have.is_some(),
                to_value(&next, "ClusterRole"),
            )
            .await
            .map_err(|e| fail("clusterrole", &name, e))?;
        }
    }
    let r = res("clusterrolebindings");
    for want in bootstrap::cluster_role_bindings() {
        let name = want.metadata.name.clone().unwrap_or_default();
        let have: Option<ClusterRoleBinding> = existing(reg, r, "", &name)
            .await
            .map_err(|e| fail("clusterrolebinding", &name, e))?;
        if let Some(h) = &have {
            if rbac::reconcile::binding_needs_recreate(&h.role_ref, &want.role_ref) {
                let _ = reg
                    .delete(r, "", &name, &crate::registry::DeleteOptions::default())
                    .await;
                write(
                    reg,
                    r,
                    "",
                    &name,
                    false,
                    to_value(&want, "ClusterRoleBinding"),
                )
                .await
                .map_err(|e| fail("clusterrolebinding", &name, e))?;
                continue;
            }
        }
        if let Some(next) = bootstrap::reconcile_cluster_role_binding(have.as_ref(), &want) {
            write(
                reg,
                r,
                "",
                &name,
                have.is_some(),
                to_value(&next, "ClusterRoleBinding"),
            )
            .await
            .map_err(|e| fail("clusterrolebinding", &name, e))?;
        }
    }
    let r = res("roles");
    for want in bootstrap::roles() {
        let name = want.metadata.name.clone().unwrap_or_default();
        let ns = want.metadata.namespace.clone().unwrap_or_default();
        let have: Option<Role> = existing(reg, r, &ns, &name)
            .await
            .map_err(|e| fail("role", &name, e))?;
        if let Some(next) = bootstrap::reconcile_role(have.as_ref(), &want) {
            write(reg, r, &ns, &name, have.is_some(), to_value(&next, "Role"))
                .await
                .map_err(|e| fail("role", &name, e))?;
        }
    }
    let r = res("rolebindings");
    for want in bootstrap::role_bindings() {
        let name = want.metadata.name.clone().unwrap_or_default();
        let ns = want.metadata.namespace.clone().unwrap_or_default();
        let have: Option<RoleBinding> = existing(reg, r, &ns, &name)
            .await
            .map_err(|e| fail("rolebinding", &name, e))?;
        if let Some(next) = bootstrap::reconcile_role_binding(have.as_ref(), &want) {
            write(
                reg,
                r,
                &ns,
                &name,
                have.is_some(),
                to_value(&next, "RoleBinding"),
            )
            .await
            .map_err(|e| fail("rolebinding", &name, e))?;
        }
    }
    Ok(())
}

/// The ClusterRole aggregation controller: writes the rules of every aggregated
/// ClusterRole that differ from the union of the roles its selectors match.
pub async fn aggregate_once(reg: &Registry, index: &SharedRbacIndex) {
    let roles: Vec<ClusterRole> = index.read().cluster_roles().cloned().collect();
    let r = res("clusterroles");
    for (name, rules) in rbac::aggregate(&roles) {
        let Some(mut role) = roles
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name.as_str()))
            .cloned()
        else {
            continue;
        };
        role.rules = Some(rules);
        let v = to_value(&role, "ClusterRole");
        if let Err(e) = reg.replace(r, "", &name, None, v, &system_opts()).await {
            tracing::debug!(error = %e.message, role = %name, "rbac: aggregation write failed");
        }
    }
}

/// Runs the aggregation whenever ClusterRoles change (coalesced).
pub fn start_aggregation(
    reg: Arc<Registry>,
    index: SharedRbacIndex,
) -> Arc<dyn Fn() + Send + Sync> {
    let notify = Arc::new(tokio::sync::Notify::new());
    let n = notify.clone();
    tokio::spawn(async move {
        loop {
            n.notified().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            aggregate_once(&reg, &index).await;
        }
    });
    Arc::new(move || notify.notify_one())
}

/// Upstream's RBAC storage checks: writing a Role/ClusterRole needs the rules it grants
/// (or `escalate`); writing a binding needs the referenced role's rules (or `bind`).
/// Server-internal writes (no user) and `system:masters` pass.
pub fn check_escalation(
    index: &SharedRbacIndex,
    user: &UserInfo,
    res: &ResourceInfo,
    ns: &str,
    obj: &Value,
) -> ApiResult<()> {
    if user.name.is_empty() || rbac::escalation_allowed(user) {
        return Ok(());
    }
    if res.group != rbac::GROUP_NAME {
        return Ok(());
    }
    let name = crate::meta::name(obj);
    let idx = index.read();
    let forbid = |e: String| ApiError::forbidden(rbac::forbidden_message(res.plural, name, &e));
    match res.plural {
        "roles" | "clusterroles" => {
            let esc = rbac::escalate_attributes(res.group, res.plural, ns, name);
            if idx.authorize(user, &esc) == Decision::Allow {
                return Ok(());
            }
            let rules: Vec<PolicyRule> = obj
                .get("rules")
                .cloned()
                .and_then(|r| serde_json::from_value(r).ok())
                .unwrap_or_default();
            if obj.get("aggregationRule").is_some_and(|a| !a.is_null()) {
                idx.confirm_no_escalation(user, "", &rbac::full_authority())
                    .map_err(|_| forbid(rbac::AGGREGATION_RULE_FORBIDDEN.to_string()))?;
            }
            idx.confirm_no_escalation(user, ns, &rules).map_err(forbid)
        }
        "rolebindings" | "clusterrolebindings" => {
            let Ok(role_ref) = serde_json::from_value::<k8s_openapi::api::rbac::v1::RoleRef>(
                obj.get("roleRef").cloned().unwrap_or(Value::Null),
            ) else {
                return Ok(()); // validation reports the missing roleRef
            };
            if let Some(a) = rbac::bind_attributes(&role_ref, ns) {
                if idx.authorize(user, &a) == Decision::Allow {
                    return Ok(());
                }
            }
            let rules = idx
                .get_role_reference_rules(&role_ref, ns)
                .map_err(|e| ApiError::new(404, "NotFound", e))?
                .to_vec();
            idx.confirm_no_escalation(user, ns, &rules).map_err(forbid)
        }
        _ => Ok(()),
    }
}
