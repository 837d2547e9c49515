//! Action subresources: `pods/binding` (the scheduler's write), `pods/eviction` (honouring
//! PodDisruptionBudgets, as `kubectl drain` uses it) and `namespaces/finalize`.

use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::{decode, key, DeleteOptions, Registry};
use crate::resources::{self, ResourceInfo};
use serde_json::{json, Value};
use store::StoreError;

/// A `Status` with `status: Success`, as action subresources answer.
pub fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

impl Registry {
    /// Read-modify-write of one object without strategy rules, for system actions.
    /// `f` returns false to leave the object unchanged.
    pub async fn update_raw<F>(
        &self,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        mut f: F,
    ) -> ApiResult<Value>
    where
        F: FnMut(&mut Value) -> ApiResult<bool>,
    {
        let k = key(res, ns, name);
        for _ in 0..16 {
            let (kv, _) = self.store.get(&k, 0).await?;
            let Some(kv) = kv else {
                return Err(ApiError::not_found(&res.qualified_name(), name));
            };
            let mut obj = decode(res, &kv)?;
            if !f(&mut obj)? {
                return Ok(obj);
            }
            // Serialized without resourceVersion; the object itself is only converted (and
            // so copied) when its storage form differs (events.k8s.io).
            let mut rv_at = None;
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                rv_at = m.keys().position(|k| k == "resourceVersion");
                m.shift_remove("resourceVersion");
            }
            let bytes = if crate::conversion::is_new_event(res) {
                let stored = crate::conversion::to_storage(res, obj.clone());
                serde_json::to_vec(&stored)
            } else {
                serde_json::to_vec(&obj)
            };
            let bytes = bytes::Bytes::from(bytes.unwrap_or_default());
            match self.store.update(&k, bytes, kv.mod_revision).await {
                Ok(rev) => {
                    let m = meta::meta_mut(&mut obj);
                    let rv = json!(rev.to_string());
                    match rv_at {
                        Some(i) if i <= m.len() => {
                            m.shift_insert(i, "resourceVersion".into(), rv);
                        }
                        _ => {
                            m.insert("resourceVersion".into(), rv);
                        }
                    }
                    return Ok(obj);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound) => {
                    return Err(ApiError::not_found(&res.qualified_name(), name))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::conflict(
            &res.qualified_name(),
            name,
            "too many concurrent updates",
        ))
    }

    /// POST pods/NAME/binding: assigns the pod to a node once.
    pub async fn bind(
        &self,
        ns: &str,
        name: &str,
        binding: &Value,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let pods = resources::find("", "v1", "pods").expect("pods served");
        if let Some(n) = binding.pointer("/metadata/name").and_then(Value::as_str) {
            if !n.is_empty() && n != name {
                return Err(ApiError::bad_request(
                    "the name of the binding does not match the name of the pod",
                ));
            }
        }
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if node.is_empty() {
            return Err(ApiError::invalid(
                "Binding",
                "",
                name,
                vec![crate::error::Cause::required("target.name")],
            ));
        }
        let want_uid = binding
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        let conflict = |why: String| ApiError::conflict("pods/binding", name, &why);
        let f = |pod: &mut Value| -> ApiResult<bool> {
            if let Some(uid) = &want_uid {
                if meta::meta_str(pod, "uid") != Some(uid.as_str()) {
                    return Err(conflict(format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::meta_str(pod, "uid").unwrap_or("")
                    )));
                }
            }
            if meta::meta_str(pod, "deletionTimestamp").is_some() {
                return Err(conflict(format!(
                    "pod {name} is being deleted, cannot be assigned to a host"
                )));
            }
            if let Some(cur) = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                return Err(conflict(format!(
                    "pod {name} is already assigned to node \"{cur}\""
                )));
            }
            pod["spec"]["nodeName"] = json!(node);
            set_condition(pod, "PodScheduled", "True", None, None);
            Ok(!dry_run)
        };
        self.update_raw(pods, ns, name, f).await?;
        Ok(success(201))
    }

    /// PUT namespaces/NAME/finalize: replaces spec.finalizers; a terminating namespace with
    /// no finalizers left is removed.
    pub async fn finalize_namespace(&self, name: &str, body: &Value) -> ApiResult<Value> {
        let nsres = resources::find("", "v1", "namespaces").expect("namespaces served");
        let fins = body
            .pointer("/spec/finalizers")
            .cloned()
            .unwrap_or(json!([]));
        let obj = self
            .update_raw(nsres, "", name, |ns| {
                if let Some(rv) = meta::resource_version(body) {
                    if meta::resource_version(ns) != Some(rv) {
                        return Err(ApiError::stale("namespaces", name));
                    }
                }
                if ns.pointer("/spec/finalizers") == Some(&fins) {
                    return Ok(false);
                }
                ns["spec"]["finalizers"] = fins.clone();
                Ok(true)
            })
            .await?;
        let spec_empty = obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if spec_empty
            && meta::meta_str(&obj, "deletionTimestamp").is_some()
            && meta::finalizers(&obj).is_empty()
        {
            let (gone, _) = self
                .delete(nsres, "", name, &DeleteOptions::default())
                .await?;
            return Ok(gone);
        }
        Ok(obj)
    }

    /// POST pods/NAME/eviction: deletes the pod unless a PodDisruptionBudget forbids it
    /// (429 TooManyRequests, as upstream).
    pub async fn evict(&self, ns: &str, name: &str, eviction: &Value) -> ApiResult<Value> {
        let pods = resources::find("", "v1", "pods").expect("pods served");
        let pdbs = resources::find("policy", "v1", "poddisruptionbudgets").expect("pdbs served");
        if let Some(n) = eviction.pointer("/metadata/name").and_then(Value::as_str) {
            if !n.is_empty() && n != name {
                return Err(ApiError::bad_request(
                    "name in URL does not match name in Eviction object",
                ));
            }
        }
        let mut opts = DeleteOptions::default();
        if let Some(d) = eviction.get("deleteOptions").filter(|d| d.is_object()) {
            opts.merge_body(d)?;
        }
        let pod = self.get(pods, ns, name).await?;
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        let deleting = meta::meta_str(&pod, "deletionTimestamp").is_some();
        let ignore_pdb =
            deleting || phase == "Succeeded" || phase == "Failed" || phase == "Pending";
        if !ignore_pdb {
            let page = self
                .list(
                    pdbs,
                    Some(ns),
                    &crate::list::Filter::default(),
                    &crate::list::ListParams::default(),
                )
                .await?;
            let labels = meta::labels(&pod);
            let matching: Vec<&Value> = page
                .items
                .iter()
                .filter(|p| {
                    p.pointer("/spec/selector")
                        .and_then(|s| crate::selector::LabelSelector::from_json(s).ok())
                        .is_some_and(|s| !s.is_empty() && s.matches(&labels))
                })
                .collect();
            if matching.len() > 1 {
                return Err(ApiError::internal("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."));
            }
            if let Some(pdb) = matching.first() {
                let pdb_name = meta::name(pdb).to_string();
                if opts.dry_run {
                    check_budget(pdb)?;
                } else {
                    let now = meta::now();
                    self.update_raw(pdbs, ns, &pdb_name, |p| {
                        check_budget(p)?;
                        let allowed = p
                            .pointer("/status/disruptionsAllowed")
                            .and_then(Value::as_i64)
                            .unwrap_or(0);
                        p["status"]["disruptionsAllowed"] = json!(allowed - 1);
                        if !p["status"]
                            .get("disruptedPods")
                            .is_some_and(Value::is_object)
                        {
                            p["status"]["disruptedPods"] = json!({});
                        }
                        p["status"]["disruptedPods"][name] = json!(now);
                        Ok(true)
                    })
                    .await?;
                }
            }
        }
        self.delete(pods, ns, name, &opts).await?;
        Ok(success(201))
    }
}

fn too_many(message: &str, cause: String) -> ApiError {
    let e = ApiError::new(429, "TooManyRequests", message);
    // Upstream passes retryAfterSeconds 0: no Retry-After header, which client-go would
    // otherwise honour by silently retrying the POST (kubectl drain would hang).
    e.with_details(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]}))
}

fn check_budget(pdb: &Value) -> ApiResult<()> {
    let name = meta::name(pdb);
    let gen = meta::meta(pdb)
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let observed = pdb
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    const MSG: &str = "Cannot evict pod as it would violate the pod's disruption budget.";
    if observed < gen {
        return Err(too_many(
            MSG,
            format!("The disruption budget {name} is still being processed by the server."),
        ));
    }
    let allowed = pdb
        .pointer("/status/disruptionsAllowed")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if allowed <= 0 {
        let desired = pdb
            .pointer("/status/desiredHealthy")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let current = pdb
            .pointer("/status/currentHealthy")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        return Err(too_many(
            MSG,
            format!("The disruption budget {name} needs {desired} healthy pods and has {current} currently"),
        ));
    }
    Ok(())
}

/// Sets (or adds) a pod condition, keeping lastTransitionTime when the status is unchanged.
pub fn set_condition(
    pod: &mut Value,
    ty: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    if !pod["status"].get("conditions").is_some_and(Value::is_array) {
        pod["status"]["conditions"] = json!([]);
    }
    let now = meta::now();
    let conds = pod["status"]["conditions"].as_array_mut().expect("array");
    let mut c =
        json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    match conds
        .iter_mut()
        .find(|x| x.get("type").and_then(Value::as_str) == Some(ty))
    {
        Some(existing) => {
            if existing.get("status").and_then(Value::as_str) == Some(status) {
                c["lastTransitionTime"] = existing
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or(json!(now));
            }
            *existing = c;
        }
        None => conds.push(c),
    }
}
