//! Admission: the plugins that run on writes after defaulting and validation, in upstream's
//! order: LimitRanger, ServiceAccount, Priority, DefaultTolerationSeconds, PodSecurity and
//! ResourceQuota (the pure logic of each lives in a submodule; this file reads what they
//! need from the store and turns their verdicts into API errors and warnings).

pub mod limitranger;
pub mod podsecurity;
pub mod quantity;
pub mod quota;
pub mod webhook;

use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::registry::{decode, encode, key, prefix, Registry, WriteOptions};
use crate::resources::{self, ResourceInfo};
use serde_json::{json, Value};
use store::{ListOptions, StoreError};

/// Where the ServiceAccount plugin mounts the API credentials.
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The token lifetime the plugin asks the kubelet to request (upstream's 3607 s, which the
/// API server extends for pod-bound tokens).
pub const PROJECTED_TOKEN_SECONDS: i64 = 3607;
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

fn core(plural: &str) -> &'static ResourceInfo {
    resources::find("", "v1", plural).expect("core resource served")
}

fn is_core(res: &ResourceInfo, plural: &str) -> bool {
    res.group.is_empty() && res.plural == plural
}

/// `kube-api-access-xxxxx`: the projected volume the ServiceAccount plugin adds.
fn api_access_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": PROJECTED_TOKEN_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

/// Adds the service account's token volume and its mount in every container and init
/// container that does not already mount something at the credentials path.
pub fn mount_service_account_token(pod: &mut Value, suffix: &str) {
    let spec = &mut pod["spec"];
    let containers = ["containers", "initContainers"];
    let already = containers.iter().any(|c| {
        spec.get(*c)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c.get("volumeMounts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|m| {
                        m.get("mountPath").and_then(Value::as_str) == Some(SERVICE_ACCOUNT_MOUNT)
                    })
            })
    });
    if already {
        return;
    }
    let name = format!("kube-api-access-{suffix}");
    match spec.get_mut("volumes").and_then(Value::as_array_mut) {
        Some(v) => v.push(api_access_volume(&name)),
        None => spec["volumes"] = json!([api_access_volume(&name)]),
    }
    for c in containers {
        for ctr in spec
            .get_mut(c)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let mount = json!({"name": name, "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT});
            match ctr.get_mut("volumeMounts").and_then(Value::as_array_mut) {
                Some(m) => m.push(mount),
                None => ctr["volumeMounts"] = json!([mount]),
            }
        }
    }
}

/// Upstream's built-in priority classes.
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64, &str)] = &[
    ("system-node-critical", 2_000_001_000, "Used for system critical pods that must not be moved from their current node."),
    ("system-cluster-critical", 2_000_000_000, "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
];

/// Adds the not-ready and unreachable NoExecute tolerations (300 s) a pod lacks.
pub fn default_toleration_seconds(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tols = spec.entry("tolerations").or_insert(json!([]));
    let Some(list) = tols.as_array_mut() else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = list.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
            let eff = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (k == key || (k.is_empty() && op == "Exists")) && (eff.is_empty() || eff == "NoExecute")
        });
        if !tolerated {
            list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
}

/// The admission plugins `--disable-admission-plugins` may name.
pub const PLUGINS: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "Priority",
    "DefaultTolerationSeconds",
    "PodSecurity",
    "ResourceQuota",
];

impl Registry {
    /// Whether an admission plugin runs (all do unless disabled).
    pub fn plugin_enabled(&self, name: &str) -> bool {
        !self
            .disabled_admission
            .get()
            .is_some_and(|d| d.iter().any(|x| x == name))
    }

    /// Runs the admission plugins for a new object, in upstream's order: mutating (in-tree,
    /// then webhooks), validating (in-tree, then webhooks), then quota; returns warnings.
    pub async fn admit_create(
        &self,
        res: &ResourceInfo,
        ns: &str,
        obj: &mut Value,
        opts: &WriteOptions,
    ) -> ApiResult<Vec<String>> {
        let mut warnings = Vec::new();
        let name = meta::name(obj).to_string();
        // NamespaceLifecycle comes first, as upstream orders the plugins.
        self.namespace_admission(res, ns, &name).await?;
        crate::rbacsync::check_escalation(&self.rbac, &opts.user, res, ns, obj)?;
        crate::nodegraph::admit(
            self,
            &self.nodes,
            &opts.user,
            crate::nodeauth::Operation::Create,
            res,
            "",
            ns,
            &name,
            Some(obj),
            None,
        )
        .await?;
        let pods = is_core(res, "pods");
        let forbidden =
            |msg: String| ApiError::forbidden(format!("pods \"{name}\" is forbidden: {msg}"));
        let ranges = if (pods || is_core(res, "persistentvolumeclaims"))
            && self.plugin_enabled("LimitRanger")
        {
            self.limit_ranges(ns).await?
        } else {
            Vec::new()
        };
        // Mutating.
        if pods {
            if !ranges.is_empty() {
                limitranger::default_pod(obj, &ranges);
            }
            if self.plugin_enabled("ServiceAccount") {
                self.admit_service_account(ns, obj).await?;
            }
            if self.plugin_enabled("DefaultTolerationSeconds") {
                default_toleration_seconds(obj);
            }
            if self.plugin_enabled("Priority") {
                self.admit_priority(obj, "spec").await?;
            }
        }
        let hook_req = crate::webhooks::Request {
            res,
            subresource: "",
            operation: webhook::Operation::Create,
            namespace: ns,
            name: &name,
            user: &opts.user,
            dry_run: opts.dry_run,
        };
        warnings.extend(self.call_webhooks(&hook_req, Some(obj), None, true).await?);
        // Validating.
        if pods {
            if !ranges.is_empty() {
                limitranger::validate_pod(obj, &ranges).map_err(|e| forbidden(e.to_string()))?;
            }
            if self.plugin_enabled("PodSecurity") {
                let labels = self.namespace_labels(ns).await?;
                let ev = podsecurity::validate_pod(&labels, obj);
                if let Some(msg) = ev.denied {
                    return Err(ApiError::forbidden(msg));
                }
                warnings.extend(ev.warnings);
            }
        } else if is_core(res, "persistentvolumeclaims") && !ranges.is_empty() {
            limitranger::validate_pvc(obj, &ranges).map_err(|e| {
                ApiError::forbidden(format!(
                    "persistentvolumeclaims \"{name}\" is forbidden: {e}"
                ))
            })?;
        } else if is_core(res, "namespaces") && self.plugin_enabled("PodSecurity") {
            self.admit_namespace_labels(obj, None, &mut warnings)
                .await?;
        } else if podsecurity::has_pod_spec(res.group, res.plural)
            && self.plugin_enabled("PodSecurity")
        {
            let labels = self.namespace_labels(ns).await?;
            let ev = podsecurity::validate_pod_controller(&labels, res.group, res.plural, obj);
            warnings.extend(ev.warnings);
        }
        warnings.extend(
            self.call_webhooks(&hook_req, Some(obj), None, false)
                .await?,
        );
        if res.namespaced && !opts.dry_run && self.plugin_enabled("ResourceQuota") {
            self.charge_quota(res, ns, obj, None).await?;
        }
        Ok(warnings)
    }

    /// Runs the admission plugins for an update of the main resource; returns warnings.
    pub async fn admit_update(
        &self,
        res: &ResourceInfo,
        ns: &str,
        old: &Value,
        new: &mut Value,
        opts: &WriteOptions,
    ) -> ApiResult<Vec<String>> {
        let mut warnings = Vec::new();
        let deleting = meta::meta_str(new, "deletionTimestamp").is_some();
        if !deleting {
            crate::rbacsync::check_escalation(&self.rbac, &opts.user, res, ns, new)?;
        }
        let name = meta::name(new).to_string();
        let hook_req = crate::webhooks::Request {
            res,
            subresource: "",
            operation: webhook::Operation::Update,
            namespace: ns,
            name: &name,
            user: &opts.user,
            dry_run: opts.dry_run,
        };
        warnings.extend(
            self.call_webhooks(&hook_req, Some(new), Some(old), true)
                .await?,
        );
        let pod_security = self.plugin_enabled("PodSecurity");
        if is_core(res, "pods")
            && pod_security
            && !deleting
            && podsecurity::needs_evaluation(old, new)
        {
            let labels = self.namespace_labels(ns).await?;
            let ev = podsecurity::validate_pod(&labels, new);
            if let Some(msg) = ev.denied {
                return Err(ApiError::forbidden(msg));
            }
            warnings.extend(ev.warnings);
        } else if is_core(res, "namespaces") && pod_security {
            self.admit_namespace_labels(new, Some(old), &mut warnings)
                .await?;
        } else if is_core(res, "persistentvolumeclaims")
            && !deleting
            && self.plugin_enabled("LimitRanger")
        {
            let ranges = self.limit_ranges(ns).await?;
            limitranger::validate_pvc(new, &ranges).map_err(|e| {
                ApiError::forbidden(format!(
                    "persistentvolumeclaims \"{name}\" is forbidden: {e}"
                ))
            })?;
        }
        warnings.extend(
            self.call_webhooks(&hook_req, Some(new), Some(old), false)
                .await?,
        );
        if res.namespaced && !opts.dry_run && !deleting && self.plugin_enabled("ResourceQuota") {
            self.charge_quota(res, ns, new, Some(old)).await?;
        }
        Ok(warnings)
    }

    /// The namespace's LimitRanges, from the admission cache.
    async fn limit_ranges(&self, ns: &str) -> ApiResult<Vec<Value>> {
        let items = self
            .caches
            .limit_ranges
            .list(self.store.as_ref(), Some(ns))
            .await?;
        Ok(items.into_iter().map(|(v, _)| (*v).clone()).collect())
    }

    /// Every object of a resource in one namespace.
    async fn list_in(&self, res: &ResourceInfo, ns: &str) -> ApiResult<Vec<Value>> {
        let page = self
            .store
            .list(&ListOptions {
                prefix: prefix(res, Some(ns)),
                ..Default::default()
            })
            .await?;
        page.kvs.iter().map(|kv| decode(res, kv)).collect()
    }

    /// A namespace's labels, from the namespace cache or the store.
    async fn namespace_labels(&self, ns: &str) -> ApiResult<crate::nscache::Labels> {
        if let Some(l) = self.namespaces.labels(ns) {
            return Ok(l);
        }
        match self.get(core("namespaces"), "", ns).await {
            Ok(obj) => Ok(crate::nscache::labels_of(&obj)),
            Err(e) if e.code == 404 => Ok(Default::default()),
            Err(e) => Err(e),
        }
    }

    /// PodSecurity on Namespaces: invalid policy labels are refused; a stricter enforce
    /// level warns about the existing pods that would violate it.
    async fn admit_namespace_labels(
        &self,
        new: &Value,
        old: Option<&Value>,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        match podsecurity::validate_namespace(new, old) {
            podsecurity::NamespaceDecision::Allowed => Ok(()),
            podsecurity::NamespaceDecision::Invalid { message, errors } => {
                let causes = errors
                    .iter()
                    .map(|e| Cause {
                        reason: "FieldValueInvalid".into(),
                        message: e.body(),
                        field: e.field(),
                    })
                    .collect();
                let mut err = ApiError::invalid("Namespace", "", meta::name(new), causes);
                err.message = message;
                Err(err)
            }
            podsecurity::NamespaceDecision::CheckPods(lv) => {
                let name = meta::name(new).to_string();
                let pods = self.list_in(core("pods"), &name).await?;
                warnings.extend(podsecurity::namespace_warnings(&name, &lv, &pods));
                Ok(())
            }
        }
    }

    /// ServiceAccount: defaults `serviceAccountName`, requires the account to exist, and
    /// mounts its API credentials unless automounting is off (mirror pods are left alone).
    async fn admit_service_account(&self, ns: &str, pod: &mut Value) -> ApiResult<()> {
        if pod
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(MIRROR_ANNOTATION))
            .is_some()
        {
            return Ok(());
        }
        let name = meta::name(pod).to_string();
        let spec = &mut pod["spec"];
        let sa_name = match spec.get("serviceAccountName").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match spec.get("serviceAccount").and_then(Value::as_str) {
                Some(n) if !n.is_empty() => n.to_string(),
                _ => "default".to_string(),
            },
        };
        spec["serviceAccountName"] = json!(sa_name);
        // The account of a namespace created a moment ago may still be on its way from
        // the service account controller: look again for up to a second.
        let mut sa = None;
        for attempt in 0..10 {
            match self.get(core("serviceaccounts"), ns, &sa_name).await {
                Ok(v) => {
                    sa = Some(v);
                    break;
                }
                Err(e) if e.code == 404 && attempt < 9 => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await
                }
                Err(e) if e.code == 404 => break,
                Err(e) => return Err(e),
            }
        }
        let Some(sa) = sa else {
            return Err(ApiError::forbidden(format!(
                "pods \"{name}\" is forbidden: error looking up service account {ns}/{sa_name}: serviceaccount \"{sa_name}\" not found"
            )));
        };
        let automount = pod["spec"]
            .get("automountServiceAccountToken")
            .and_then(Value::as_bool)
            .or_else(|| {
                sa.get("automountServiceAccountToken")
                    .and_then(Value::as_bool)
            })
            .unwrap_or(true);
        if automount {
            mount_service_account_token(pod, &crate::registry::generate_suffix());
        }
        Ok(())
    }

    /// ResourceQuota: checks the object's usage against every quota of the namespace and
    /// records the new usage in the quotas' status (compare-and-swap, retried) before the
    /// object is written, as upstream; the recalculation loop corrects a charge whose
    /// write then failed.
    async fn charge_quota(
        &self,
        res: &ResourceInfo,
        ns: &str,
        obj: &Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let qres = core("resourcequotas");
        for _ in 0..8 {
            let quotas = self
                .caches
                .quotas
                .list(self.store.as_ref(), Some(ns))
                .await?;
            if quotas.is_empty() {
                return Ok(());
            }
            let values: Vec<Value> = quotas.iter().map(|(q, _)| (**q).clone()).collect();
            let updates = quota::check(&values, &res.qualified_name(), obj, old).map_err(|e| {
                ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: {e}",
                    res.qualified_name(),
                    meta::name(obj)
                ))
            })?;
            let mut conflicted = false;
            for (qname, used) in updates {
                let Some((q, rev)) = quotas.iter().find(|(q, _)| meta::name(q) == qname) else {
                    continue;
                };
                let mut q = (**q).clone();
                q["status"]["used"] = quantity::resource_list_to_json(&used);
                match self
                    .store
                    .update(&key(qres, ns, &qname), encode(qres, &q), *rev)
                    .await
                {
                    Ok(_) => {}
                    Err(StoreError::Conflict { .. }) => {
                        conflicted = true;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if !conflicted {
                return Ok(());
            }
        }
        Err(ApiError::conflict(
            &res.qualified_name(),
            meta::name(obj),
            "too many concurrent quota updates, please try again",
        ))
    }

    /// Resolves `priorityClassName` into `priority` and `preemptionPolicy`.
    async fn admit_priority(&self, pod: &mut Value, spec_path: &str) -> ApiResult<()> {
        let name = meta::name(pod).to_string();
        let class_name = pod[spec_path]
            .get("priorityClassName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let forbidden =
            |msg: String| ApiError::forbidden(format!("pods \"{name}\" is forbidden: {msg}"));
        let classes = || self.caches.priority_classes.list(self.store.as_ref(), None);
        let (value, policy) = if class_name.is_empty() {
            // The global default class, if any.
            let classes = classes().await?;
            match classes
                .iter()
                .map(|(c, _)| c)
                .find(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
            {
                Some(c) => {
                    pod[spec_path]["priorityClassName"] = json!(meta::name(c));
                    (
                        c.get("value").and_then(Value::as_i64).unwrap_or(0),
                        c.get("preemptionPolicy").cloned(),
                    )
                }
                None => (0, None),
            }
        } else if let Some((_, v, _)) = SYSTEM_PRIORITY_CLASSES
            .iter()
            .find(|(n, _, _)| *n == class_name)
        {
            (*v, None)
        } else {
            let classes = classes().await?;
            match classes.iter().find(|(c, _)| meta::name(c) == class_name) {
                Some((c, _)) => (
                    c.get("value").and_then(Value::as_i64).unwrap_or(0),
                    c.get("preemptionPolicy").cloned(),
                ),
                None => {
                    return Err(forbidden(format!(
                        "no PriorityClass with name {class_name} was found"
                    )))
                }
            }
        };
        if let Some(p) = pod[spec_path].get("priority").and_then(Value::as_i64) {
            if p != value {
                return Err(forbidden(format!(
                    "the integer value of priority ({p}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
                )));
            }
        }
        pod[spec_path]["priority"] = json!(value);
        let policy = policy.unwrap_or(json!("PreemptLowerPriority"));
        if pod[spec_path].get("preemptionPolicy").is_none() {
            pod[spec_path]["preemptionPolicy"] = policy;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerations_added_once() {
        let mut p = json!({"spec": {"containers": []}});
        default_toleration_seconds(&mut p);
        default_toleration_seconds(&mut p);
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
        let mut q = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        default_toleration_seconds(&mut q);
        assert_eq!(q["spec"]["tolerations"].as_array().unwrap().len(), 1);
    }
}
