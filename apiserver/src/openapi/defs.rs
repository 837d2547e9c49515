//! Generation of the `components.schemas` definitions from k8s-openapi's schemars impls,
//! normalized to the shape the upstream API server serves (refs with siblings wrapped in
//! `allOf`, merge/list extensions, group-version-kind on top-level kinds, list kinds).

use super::ext;
use crate::resources::{ResourceInfo, Subresource};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ListMeta, Status};
use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

pub(crate) const REF_PREFIX: &str = "#/components/schemas/";
pub(crate) const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub(crate) const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";

/// The definition name of the list kind of `r` (`io.k8s.api.core.v1.PodList`).
pub(crate) fn list_schema_name(r: &ResourceInfo) -> String {
    format!("{}List", r.schema_name)
}

/// Generates the normalized definitions needed by `resources` (transitively), plus the
/// common meta types (`DeleteOptions`, `Status`, `ListMeta`), the list kinds, and
/// autoscaling/v1 `Scale` when any resource has the scale subresource.
pub(crate) fn generate(resources: &[&ResourceInfo]) -> Map<String, Value> {
    let mut g = SchemaSettings::openapi3().into_generator();
    let mut roots: Vec<(String, Value)> = Vec::new();
    for r in resources {
        let s = (r.schema)(&mut g);
        roots.push((r.schema_name.clone(), s.to_value()));
    }
    g.subschema_for::<DeleteOptions>();
    g.subschema_for::<Status>();
    g.subschema_for::<ListMeta>();
    if resources.iter().any(|r| r.has(Subresource::Scale)) {
        g.subschema_for::<Scale>();
    }
    let mut all: Map<String, Value> = Map::new();
    for (name, mut v) in roots {
        drop_required_metadata(&mut v);
        all.insert(name, v);
    }
    for r in resources {
        all.insert(list_schema_name(r), list_schema(r));
    }
    for (name, v) in g.take_definitions(true) {
        all.entry(name).or_insert(v);
    }
    // Stable order: sorted by name, like upstream.
    let mut names: Vec<String> = all.keys().cloned().collect();
    names.sort();
    let mut out = Map::new();
    for name in names {
        let mut v = all.remove(&name).unwrap_or(Value::Null);
        normalize(&mut v);
        apply_extensions(&name, &mut v);
        out.insert(name, v);
    }
    for r in resources {
        set_gvk(&mut out, &r.schema_name, r.group, r.version, r.kind);
        set_gvk(
            &mut out,
            &list_schema_name(r),
            r.group,
            r.version,
            &r.list_kind(),
        );
    }
    set_gvk(&mut out, SCALE, "autoscaling", "v1", "Scale");
    set_gvk(
        &mut out,
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "",
        "v1",
        "Status",
    );
    out
}

/// k8s-openapi marks `metadata` of top-level kinds as required; upstream does not.
fn drop_required_metadata(v: &mut Value) {
    let Some(o) = v.as_object_mut() else { return };
    if let Some(Value::Array(req)) = o.get_mut("required") {
        req.retain(|f| f != "metadata");
        if req.is_empty() {
            o.shift_remove("required");
        }
    }
}

fn set_gvk(defs: &mut Map<String, Value>, name: &str, group: &str, version: &str, kind: &str) {
    if let Some(Value::Object(o)) = defs.get_mut(name) {
        o.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": group, "version": version, "kind": kind}]),
        );
    }
}

fn list_schema(r: &ResourceInfo) -> Value {
    json!({
        "description": format!("{} is a list of {} objects.", r.list_kind(), r.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                "type": "string"
            },
            "items": {
                "description": format!("List of {}.", r.plural),
                "type": "array",
                "items": {"allOf": [{"$ref": format!("{REF_PREFIX}{}", r.schema_name)}], "default": {}}
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "type": "string"
            },
            "metadata": {
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "allOf": [{"$ref": format!("{REF_PREFIX}{LIST_META}")}],
                "default": {}
            }
        }
    })
}

/// Rewrites `{"$ref": X, <siblings>}` into `{"allOf": [{"$ref": X}], <siblings>}` (what
/// upstream serves and kubectl explain expects), recursively.
fn normalize(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.len() > 1 {
                if let Some(r) = o.shift_remove("$ref") {
                    let mut n = Map::new();
                    n.insert("allOf".into(), json!([{"$ref": r}]));
                    for (k, val) in std::mem::take(o) {
                        n.insert(k, val);
                    }
                    *o = n;
                }
            }
            for (_, c) in o.iter_mut() {
                normalize(c);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// Adds the `x-kubernetes-*` merge extensions of the upstream types to definition `name`.
fn apply_extensions(name: &str, v: &mut Value) {
    let Value::Object(def) = v else { return };
    if ext::ATOMIC_TYPES.contains(&name) {
        def.insert("x-kubernetes-map-type".into(), "atomic".into());
    }
    let rows = ext::FIELDS.iter().filter(|r| r.0 == name);
    for &(_, field, strategy, key, list_type, map_keys, map_type) in rows {
        let Some(Value::Object(p)) = def.get_mut("properties").and_then(|p| p.get_mut(field))
        else {
            continue;
        };
        if !strategy.is_empty() {
            p.insert("x-kubernetes-patch-strategy".into(), strategy.into());
        }
        if !key.is_empty() {
            p.insert("x-kubernetes-patch-merge-key".into(), key.into());
        }
        if !list_type.is_empty() {
            p.insert("x-kubernetes-list-type".into(), list_type.into());
        }
        if !map_keys.is_empty() {
            let keys: Vec<Value> = map_keys.split(',').map(Value::from).collect();
            p.insert("x-kubernetes-list-map-keys".into(), Value::Array(keys));
        }
        if !map_type.is_empty() {
            p.insert("x-kubernetes-map-type".into(), map_type.into());
        }
    }
}

/// The definitions referenced (directly) from `v`.
#[cfg(test)]
pub(crate) fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                if let Some(n) = r.strip_prefix(REF_PREFIX) {
                    out.push(n);
                }
            }
            o.values().for_each(|c| refs(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
        _ => {}
    }
}
