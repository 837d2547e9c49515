//! LimitRanger admission (upstream plugin/pkg/admission/limitranger) as pure logic over JSON
//! objects: defaulting of container requests/limits from `Container`-type LimitRange items
//! (with the `kubernetes.io/limit-ranger` annotation), and validation of min/max/
//! maxLimitRequestRatio for `Container`, `Pod` and `PersistentVolumeClaim` items. The caller lists
//! the namespace's LimitRanges and wraps a violation as 403 `pods "x" is forbidden: <text>`.

use super::quantity::{self, Quantity, ResourceList, MAX_MILLI_VALUE};
use serde_json::{Map, Value};

/// The annotation that records which defaults were applied.
pub const LIMIT_RANGER_ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// Constraint violations of one LimitRange, rendered as upstream's aggregate error: a single
/// message as is, several as `[a, b]` (duplicates dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", aggregate(.messages))]
pub struct LimitRangeViolation {
    pub messages: Vec<String>,
}

fn aggregate(messages: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for m in messages {
        if !seen.contains(&m.as_str()) {
            seen.push(m);
        }
    }
    match seen.len() {
        1 => seen[0].to_string(),
        _ => format!("[{}]", seen.join(", ")),
    }
}

/// The limit items (`spec.limits`) of a LimitRange.
fn items(range: &Value) -> impl Iterator<Item = &Value> {
    range
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn item_type(item: &Value) -> &str {
    item.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Applies each range's `Container` defaults (`defaultRequest` → requests, `default` → limits) to
/// every container and init container that lacks them, and sets the `kubernetes.io/limit-ranger`
/// annotation as upstream (the last range that set anything wins). Returns every annotation entry
/// written, e.g. `cpu, memory request for container c`.
pub fn default_pod(pod: &mut Value, ranges: &[Value]) -> Vec<String> {
    let mut all = Vec::new();
    for range in ranges {
        let mut default_requests = ResourceList::new();
        let mut default_limits = ResourceList::new();
        for item in items(range).filter(|i| item_type(i) == "Container") {
            default_requests.extend(quantity::resource_list(item.get("defaultRequest")));
            default_limits.extend(quantity::resource_list(item.get("default")));
        }
        let mut entries = Vec::new();
        for (field, prefix) in [
            ("containers", "container"),
            ("initContainers", "init container"),
        ] {
            let Some(list) = pod
                .pointer_mut(&format!("/spec/{field}"))
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for container in list.iter_mut() {
                merge_container(
                    container,
                    &default_requests,
                    &default_limits,
                    prefix,
                    &mut entries,
                );
            }
        }
        if entries.is_empty() {
            continue;
        }
        let value = format!("LimitRanger plugin set: {}", entries.join("; "));
        if let Some(meta) = object_field(pod, "metadata") {
            if let Some(annotations) = object_field_in(meta, "annotations") {
                annotations.insert(LIMIT_RANGER_ANNOTATION.to_string(), Value::String(value));
            }
        }
        all.extend(entries);
    }
    all
}

/// `obj[key]` as an object, created when absent or null.
fn object_field<'a>(obj: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    object_field_in(obj.as_object_mut()?, key)
}

fn object_field_in<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let slot = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// Fills one container's missing requests/limits; appends the annotation entries.
fn merge_container(
    container: &mut Value,
    default_requests: &ResourceList,
    default_limits: &ResourceList,
    prefix: &str,
    entries: &mut Vec<String>,
) {
    let name = container
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut set_requests = Vec::new();
    let mut set_limits = Vec::new();
    for (field, defaults, set) in [
        ("limits", default_limits, &mut set_limits),
        ("requests", default_requests, &mut set_requests),
    ] {
        let missing: Vec<(&String, &Quantity)> = defaults
            .iter()
            .filter(|(k, _)| {
                container
                    .get("resources")
                    .and_then(|r| r.get(field))
                    .and_then(|m| m.get(k.as_str()))
                    .is_none()
            })
            .collect();
        if missing.is_empty() {
            continue;
        }
        let Some(list) =
            object_field(container, "resources").and_then(|r| object_field_in(r, field))
        else {
            continue;
        };
        for (k, v) in missing {
            list.insert(k.clone(), Value::String(v.to_string()));
            set.push(k.clone());
        }
    }
    // the defaults are a sorted map, so the names already come out sorted as upstream sorts them
    if !set_requests.is_empty() {
        entries.push(format!(
            "{} request for {prefix} {name}",
            set_requests.join(", ")
        ));
    }
    if !set_limits.is_empty() {
        entries.push(format!(
            "{} limit for {prefix} {name}",
            set_limits.join(", ")
        ));
    }
}

/// Validates a pod against each range's `Container` and `Pod` items; the first range with a
/// violation decides the error, as upstream.
pub fn validate_pod(pod: &Value, ranges: &[Value]) -> Result<(), LimitRangeViolation> {
    for range in ranges {
        let messages = pod_violations(pod, range);
        if !messages.is_empty() {
            return Err(LimitRangeViolation { messages });
        }
    }
    Ok(())
}

fn pod_violations(pod: &Value, range: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    for item in items(range) {
        let kind = item_type(item);
        let min = quantity::resource_list(item.get("min"));
        let max = quantity::resource_list(item.get("max"));
        let ratio = quantity::resource_list(item.get("maxLimitRequestRatio"));
        let mut check = |requests: &ResourceList, limits: &ResourceList| {
            for (k, v) in &min {
                errs.extend(min_constraint(kind, k, v, requests, limits));
            }
            for (k, v) in &max {
                errs.extend(max_constraint(kind, k, v, requests, limits));
            }
            for (k, v) in &ratio {
                errs.extend(ratio_constraint(kind, k, v, requests, limits));
            }
        };
        match kind {
            "Container" => {
                for field in ["containers", "initContainers"] {
                    for c in pod
                        .pointer(&format!("/spec/{field}"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let requests = quantity::resource_list(c.pointer("/resources/requests"));
                        let limits = quantity::resource_list(c.pointer("/resources/limits"));
                        check(&requests, &limits);
                    }
                }
            }
            "Pod" => {
                let requests = super::quota::aggregate_container_resources(pod, &|c| {
                    quantity::resource_list(c.pointer("/resources/requests"))
                });
                let limits = super::quota::aggregate_container_resources(pod, &|c| {
                    quantity::resource_list(c.pointer("/resources/limits"))
                });
                check(&requests, &limits);
            }
            _ => {}
        }
    }
    errs
}

/// Validates a PersistentVolumeClaim's `spec.resources.requests` against each range's
/// `PersistentVolumeClaim` items (min and max apply to the request only).
pub fn validate_pvc(pvc: &Value, ranges: &[Value]) -> Result<(), LimitRangeViolation> {
    let requests = quantity::resource_list(pvc.pointer("/spec/resources/requests"));
    for range in ranges {
        let mut messages = Vec::new();
        for item in items(range).filter(|i| item_type(i) == "PersistentVolumeClaim") {
            let kind = item_type(item);
            for (k, v) in quantity::resource_list(item.get("min")) {
                messages.extend(min_constraint(
                    kind,
                    &k,
                    &v,
                    &requests,
                    &ResourceList::new(),
                ));
            }
            for (k, v) in quantity::resource_list(item.get("max")) {
                messages.extend(max_request_constraint(kind, &k, &v, &requests));
            }
        }
        if !messages.is_empty() {
            return Err(LimitRangeViolation { messages });
        }
    }
    Ok(())
}

/// Request, limit and enforced value at a common precision: milli units unless any would
/// overflow (upstream requestLimitEnforcedValues).
fn comparable(req: Option<&Quantity>, lim: Option<&Quantity>, enforced: &Quantity) -> [i64; 3] {
    let zero = Quantity::zero();
    let qs = [req.unwrap_or(&zero), lim.unwrap_or(&zero), enforced];
    let values = qs.map(Quantity::value);
    if values.iter().all(|v| *v <= MAX_MILLI_VALUE) {
        qs.map(Quantity::milli_value)
    } else {
        values
    }
}

fn min_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let req = requests.get(name);
    let lim = limits.get(name);
    let [r, l, e] = comparable(req, lim, enforced);
    let Some(req) = req else {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    if r < e {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but request is {req}"
        ));
    }
    match lim {
        Some(lim) if l < e => Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but limit is {lim}"
        )),
        _ => None,
    }
}

fn max_request_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
) -> Option<String> {
    let req = requests.get(name);
    let [r, _, e] = comparable(req, None, enforced);
    match req {
        None => Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No request is specified"
        )),
        Some(req) if r > e => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but request is {req}"
        )),
        Some(_) => None,
    }
}

fn max_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let req = requests.get(name);
    let lim = limits.get(name);
    let [r, l, e] = comparable(req, lim, enforced);
    let Some(lim) = lim else {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No limit is specified"
        ));
    };
    if l > e {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but limit is {lim}"
        ));
    }
    match req {
        Some(req) if r > e => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but request is {req}"
        )),
        _ => None,
    }
}

fn ratio_constraint(
    kind: &str,
    name: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let req = requests.get(name);
    let lim = limits.get(name);
    let [r, l, _] = comparable(req, lim, enforced);
    if req.is_none() || r == 0 {
        return Some(format!("{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"));
    }
    if lim.is_none() || l == 0 {
        return Some(format!("{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"));
    }
    let displayed = l as f64 / r as f64;
    let (observed, allowed) = if enforced.value() <= MAX_MILLI_VALUE {
        (displayed * 1000.0, enforced.milli_value() as f64)
    } else {
        (displayed, enforced.value() as f64)
    };
    if observed > allowed {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {displayed:.6}"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn range(items: Value) -> Value {
        json!({"kind": "LimitRange", "metadata": {"name": "lr"}, "spec": {"limits": items}})
    }

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn defaults_requests_and_limits_with_upstream_annotation() {
        let lr = range(json!([{
            "type": "Container",
            "default": {"cpu": "0.5", "memory": "512Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "256Mi"}
        }]));
        let mut p = pod(json!([{"name": "c"}]));
        let entries = default_pod(&mut p, &[lr]);
        assert_eq!(
            entries,
            vec![
                "cpu, memory request for container c".to_string(),
                "cpu, memory limit for container c".to_string()
            ]
        );
        assert_eq!(
            p["metadata"]["annotations"][LIMIT_RANGER_ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"
        );
        assert_eq!(
            p["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}})
        );
    }

    #[test]
    fn defaulting_keeps_explicit_values_and_covers_init_containers() {
        let lr = range(json!([{
            "type": "Container",
            "default": {"cpu": "1"},
            "defaultRequest": {"cpu": "200m"}
        }]));
        let mut p = json!({"metadata": {"name": "p", "annotations": null}, "spec": {
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "1"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "300m"}}}]
        }});
        let entries = default_pod(&mut p, &[lr]);
        assert_eq!(entries, vec!["cpu limit for init container i".to_string()]);
        assert_eq!(
            p["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "2"
        );
        assert_eq!(
            p["spec"]["initContainers"][0]["resources"],
            json!({"requests": {"cpu": "300m"}, "limits": {"cpu": "1"}})
        );
        assert_eq!(
            p["metadata"]["annotations"][LIMIT_RANGER_ANNOTATION],
            "LimitRanger plugin set: cpu limit for init container i"
        );
    }

    #[test]
    fn no_defaults_means_no_annotation() {
        let lr = range(json!([{"type": "Container", "max": {"cpu": "1"}}]));
        let mut p = pod(json!([{"name": "c"}]));
        assert!(default_pod(&mut p, &[lr]).is_empty());
        assert!(p["metadata"].get("annotations").is_none());
        assert!(p["spec"]["containers"][0].get("resources").is_none());
    }

    #[test]
    fn container_min_and_max_messages() {
        let lr =
            range(json!([{"type": "Container", "min": {"cpu": "100m"}, "max": {"memory": "1Gi"}}]));
        let p = pod(json!([{"name": "c", "resources": {
            "requests": {"cpu": "50m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}}]));
        let err = validate_pod(&p, std::slice::from_ref(&lr)).expect_err("violates");
        assert_eq!(
            err.to_string(),
            "[minimum cpu usage per Container is 100m, but request is 50m, maximum memory usage per Container is 1Gi, but limit is 2Gi]"
        );
        let ok = pod(json!([{"name": "c", "resources": {
            "requests": {"cpu": "100m"}, "limits": {"memory": "1024Mi"}}}]));
        assert_eq!(validate_pod(&ok, &[lr]), Ok(()));
    }

    #[test]
    fn single_violation_is_not_bracketed() {
        let lr = range(json!([{"type": "Container", "max": {"memory": "1Gi"}}]));
        let p = pod(json!([{"name": "c", "resources": {"limits": {"memory": "2Gi"}}}]));
        assert_eq!(
            validate_pod(&p, &[lr]).expect_err("violates").to_string(),
            "maximum memory usage per Container is 1Gi, but limit is 2Gi"
        );
        let missing = range(json!([{"type": "Container", "max": {"cpu": "1"}}]));
        let p = pod(json!([{"name": "c"}]));
        assert_eq!(
            validate_pod(&p, &[missing])
                .expect_err("no limit")
                .to_string(),
            "maximum cpu usage per Container is 1.  No limit is specified"
        );
    }

    #[test]
    fn ratio_messages() {
        let lr = range(json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]));
        let p = pod(
            json!([{"name": "c", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}}}]),
        );
        assert_eq!(
            validate_pod(&p, std::slice::from_ref(&lr))
                .expect_err("ratio 4")
                .to_string(),
            "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"
        );
        let no_req = pod(json!([{"name": "c", "resources": {"limits": {"cpu": "1"}}}]));
        assert_eq!(
            validate_pod(&no_req, std::slice::from_ref(&lr)).expect_err("no request").to_string(),
            "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"
        );
        let fine = pod(
            json!([{"name": "c", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}}]),
        );
        assert_eq!(validate_pod(&fine, &[lr]), Ok(()));
    }

    #[test]
    fn pod_type_sums_containers_and_takes_init_max() {
        let lr = range(json!([{"type": "Pod", "max": {"cpu": "2"}}]));
        let p = json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}},
                {"name": "b", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1500m"}}}
            ],
            "initContainers": [{"name": "i", "resources": {"limits": {"cpu": "1"}}}]
        }});
        assert_eq!(
            validate_pod(&p, std::slice::from_ref(&lr))
                .expect_err("2500m")
                .to_string(),
            "maximum cpu usage per Pod is 2, but limit is 2500m"
        );
        let init_heavy = json!({"spec": {
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "1"}}}],
            "initContainers": [{"name": "i", "resources": {"limits": {"cpu": "3"}}}]
        }});
        assert_eq!(
            validate_pod(&init_heavy, &[lr])
                .expect_err("init 3")
                .to_string(),
            "maximum cpu usage per Pod is 2, but limit is 3"
        );
    }

    #[test]
    fn first_violating_range_wins() {
        let ok = range(json!([{"type": "Container", "max": {"cpu": "4"}}]));
        let bad = range(json!([{"type": "Container", "min": {"cpu": "1"}}]));
        let p = pod(
            json!([{"name": "c", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "500m"}}}]),
        );
        assert_eq!(
            validate_pod(&p, &[ok, bad]).expect_err("min").to_string(),
            "minimum cpu usage per Container is 1, but request is 500m"
        );
    }

    #[test]
    fn pvc_min_and_max_storage() {
        let lr = range(
            json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}}]),
        );
        let small = json!({"spec": {"resources": {"requests": {"storage": "500Mi"}}}});
        assert_eq!(
            validate_pvc(&small, std::slice::from_ref(&lr))
                .expect_err("small")
                .to_string(),
            "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
        );
        let big = json!({"spec": {"resources": {"requests": {"storage": "5Gi"}}}});
        assert_eq!(
            validate_pvc(&big, std::slice::from_ref(&lr))
                .expect_err("big")
                .to_string(),
            "maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"
        );
        let fine = json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}});
        assert_eq!(validate_pvc(&fine, &[lr]), Ok(()));
    }
}
