//! The `scale` subresource (autoscaling/v1 Scale) of Deployments, ReplicaSets and
//! StatefulSets: a view of `spec.replicas`, `status.replicas` and the selector.

use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::registry::{PatchType, Registry, WriteOptions};
use crate::resources::ResourceInfo;
use serde_json::{json, Value};

/// The Scale view of an object.
pub fn to_scale(obj: &Value) -> Value {
    let m = meta::meta(obj).cloned().unwrap_or_default();
    let mut md = serde_json::Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(k) {
            md.insert(k.into(), v.clone());
        }
    }
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| crate::selector::LabelSelector::from_json(s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": md,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        }
    })
}

/// PUT or PATCH of a Scale; returns the resulting Scale.
pub async fn update(
    reg: &Registry,
    res: &ResourceInfo,
    ns: &str,
    name: &str,
    ptype: Option<PatchType>,
    doc: Value,
    opts: &WriteOptions,
) -> ApiResult<Value> {
    let w = reg
        .update_with(res, ns, name, None, opts, false, |old| {
            let old = old.ok_or_else(|| ApiError::not_found(&res.qualified_name(), name))?;
            let current = to_scale(old);
            let wanted = match ptype {
                None => doc.clone(),
                Some(PatchType::Json) => crate::patch::json_patch(&current, &doc)
                    .map_err(|e| ApiError::new(e.status_code(), "BadRequest", e.to_string()))?,
                Some(PatchType::Merge | PatchType::Strategic) => {
                    crate::patch::merge_patch(&current, &doc)
                        .map_err(|e| ApiError::new(e.status_code(), "BadRequest", e.to_string()))?
                }
                Some(PatchType::Apply) => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "apply is not supported on the scale subresource",
                    ))
                }
            };
            let replicas = match wanted.pointer("/spec/replicas") {
                Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or(0),
                Some(Value::Null) | None => 0,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "Scale in body cannot be decoded: invalid replicas {other}"
                    )))
                }
            };
            if replicas < 0 {
                return Err(ApiError::invalid(
                    "Scale",
                    "autoscaling",
                    name,
                    vec![Cause::invalid(
                        "spec.replicas",
                        &json!(replicas),
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let mut new = old.clone();
            if let Some(rv) = meta::resource_version(&wanted) {
                meta::meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
            } else if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            new["spec"]["replicas"] = json!(replicas);
            Ok((new, Vec::new()))
        })
        .await?;
    Ok(to_scale(&w.object))
}
