//! Mutating admission steps run on create, after defaulting and before validation:
//! DefaultTolerationSeconds and Priority (PriorityClass).

use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::Registry;
use crate::resources::{self, ResourceInfo};
use serde_json::{json, Value};

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

impl Registry {
    /// Runs the mutating admission steps for a new object.
    pub async fn admit_create(&self, res: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
        if res.group.is_empty() && res.plural == "pods" {
            default_toleration_seconds(obj);
            self.admit_priority(obj, "spec").await?;
        }
        Ok(())
    }

    /// Resolves `priorityClassName` into `priority` and `preemptionPolicy`.
    async fn admit_priority(&self, pod: &mut Value, spec_path: &str) -> ApiResult<()> {
        let name = meta::name(pod).to_string();
        let pcs = resources::find("scheduling.k8s.io", "v1", "priorityclasses")
            .expect("priorityclasses served");
        let class_name = pod[spec_path]
            .get("priorityClassName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let forbidden =
            |msg: String| ApiError::forbidden(format!("pods \"{name}\" is forbidden: {msg}"));
        let (value, policy) = if class_name.is_empty() {
            // The global default class, if any.
            let page = self
                .list(
                    pcs,
                    None,
                    &crate::list::Filter::default(),
                    &crate::list::ListParams::default(),
                )
                .await?;
            match page
                .items
                .iter()
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
            match self.get(pcs, "", &class_name).await {
                Ok(c) => (
                    c.get("value").and_then(Value::as_i64).unwrap_or(0),
                    c.get("preemptionPolicy").cloned(),
                ),
                Err(e) if e.code == 404 => {
                    return Err(forbidden(format!(
                        "no PriorityClass with name {class_name} was found"
                    )))
                }
                Err(e) => return Err(e),
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
