//! The `paths` section of a group-version document: collection, item, status and scale
//! operations of each resource, with the query parameters kubectl probes for.

use super::defs::{list_schema_name, REF_PREFIX, SCALE};
use crate::resources::{ResourceInfo, Subresource};
use serde_json::{json, Map, Value};

const LIST_PARAMS: &[(&str, &str)] = &[
    ("allowWatchBookmarks", "boolean"),
    ("continue", "string"),
    ("fieldSelector", "string"),
    ("labelSelector", "string"),
    ("limit", "integer"),
    ("resourceVersion", "string"),
    ("resourceVersionMatch", "string"),
    ("sendInitialEvents", "boolean"),
    ("timeoutSeconds", "integer"),
    ("watch", "boolean"),
];
const WRITE_PARAMS: &[(&str, &str)] = &[
    ("dryRun", "string"),
    ("fieldManager", "string"),
    ("fieldValidation", "string"),
];
const PATCH_PARAMS: &[(&str, &str)] = &[
    ("dryRun", "string"),
    ("fieldManager", "string"),
    ("fieldValidation", "string"),
    ("force", "boolean"),
];
const DELETE_PARAMS: &[(&str, &str)] = &[
    ("dryRun", "string"),
    ("gracePeriodSeconds", "integer"),
    (
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        "boolean",
    ),
    ("orphanDependents", "boolean"),
    ("propagationPolicy", "string"),
];
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

fn query_param(name: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "description": param_description(name),
           "schema": {"type": ty, "uniqueItems": true}})
}

fn param_description(name: &str) -> &'static str {
    match name {
        "dryRun" => "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
        "fieldManager" => "fieldManager is a name associated with the actor or entity that is making these changes.",
        "fieldValidation" => "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
        "force" => "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people.",
        "labelSelector" => "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        "fieldSelector" => "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
        "limit" => "limit is a maximum number of responses to return for a list call.",
        "continue" => "The continue option should be set when retrieving more results from the server.",
        "watch" => "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        "resourceVersion" => "resourceVersion sets a constraint on what resource versions a request may be served from.",
        "propagationPolicy" => "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background', 'Foreground'.",
        "gracePeriodSeconds" => "The duration in seconds before the object should be deleted.",
        _ => "",
    }
}

fn path_param(name: &str) -> Value {
    let desc = if name == "namespace" {
        "object name and auth scope, such as for teams and projects"
    } else {
        "name of the object"
    };
    json!({"name": name, "in": "path", "description": desc, "required": true,
           "schema": {"type": "string", "uniqueItems": true}})
}

fn ref_schema(name: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{name}")})
}

fn ok_response(code: &str, schema: &str, out: &mut Map<String, Value>) {
    let content = json!({
        "application/json": {"schema": ref_schema(schema)},
        "application/yaml": {"schema": ref_schema(schema)},
        "application/vnd.kubernetes.protobuf": {"schema": ref_schema(schema)}
    });
    let desc = match code {
        "201" => "Created",
        "202" => "Accepted",
        _ => "OK",
    };
    out.insert(
        code.into(),
        json!({"description": desc, "content": content}),
    );
}

struct Op<'a> {
    action: &'a str,
    id: String,
    description: String,
    params: Vec<Value>,
    responses: Vec<(&'a str, &'a str)>,
    body: Option<Value>,
    gvk: (&'a str, &'a str, &'a str),
}

fn op(o: Op<'_>) -> Value {
    let mut responses = Map::new();
    for (code, schema) in &o.responses {
        ok_response(code, schema, &mut responses);
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut m = Map::new();
    m.insert("description".into(), o.description.into());
    m.insert("operationId".into(), o.id.into());
    if !o.params.is_empty() {
        m.insert("parameters".into(), Value::Array(o.params));
    }
    if let Some(b) = o.body {
        m.insert("requestBody".into(), b);
    }
    m.insert("responses".into(), Value::Object(responses));
    m.insert("x-kubernetes-action".into(), o.action.into());
    let (group, version, kind) = o.gvk;
    m.insert(
        "x-kubernetes-group-version-kind".into(),
        json!({"group": group, "version": version, "kind": kind}),
    );
    Value::Object(m)
}

fn params(list: &[&[(&str, &str)]]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for l in list {
        for (n, t) in l.iter() {
            if !seen.contains(n) {
                seen.push(n);
                out.push(query_param(n, t));
            }
        }
    }
    out
}

fn body(schema: &str) -> Value {
    json!({"content": {"*/*": {"schema": ref_schema(schema)}}, "required": true})
}

fn patch_body() -> Value {
    let mut c = Map::new();
    for t in PATCH_TYPES {
        c.insert((*t).into(), json!({"schema": {"type": "object"}}));
    }
    json!({"content": c, "required": true})
}

/// `apps` -> `Apps`, `rbac.authorization.k8s.io` -> `RbacAuthorization`, `` -> `Core`.
fn group_ident(group: &str, version: &str) -> String {
    let g = if group.is_empty() {
        "core"
    } else {
        group.strip_suffix(".k8s.io").unwrap_or(group)
    };
    let mut s = String::new();
    for part in g.split('.').chain(std::iter::once(version)) {
        let mut c = part.chars();
        if let Some(f) = c.next() {
            s.extend(f.to_uppercase());
            s.push_str(c.as_str());
        }
    }
    s
}

/// Inserts the paths of resource `r` into `paths`.
pub(crate) fn add_resource(r: &ResourceInfo, paths: &mut Map<String, Value>) {
    let root = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let scope = if r.namespaced {
        format!("{root}/namespaces/{{namespace}}")
    } else {
        root.clone()
    };
    let ns = if r.namespaced { "Namespaced" } else { "" };
    let gi = group_ident(r.group, r.version);
    let gvk = (r.group, r.version, r.kind);
    let kind = r.kind;
    let list = list_schema_name(r);
    let obj = r.schema_name.as_str();
    let status = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
    let scope_params: Vec<Value> = if r.namespaced {
        vec![path_param("namespace")]
    } else {
        vec![]
    };
    let with_name = |mut v: Vec<Value>| {
        v.push(path_param("name"));
        v
    };

    // Collection.
    let mut coll = Map::new();
    coll.insert(
        "get".into(),
        op(Op {
            action: "list",
            id: format!("list{gi}{ns}{kind}"),
            description: format!("list or watch objects of kind {kind}"),
            params: params(&[LIST_PARAMS]),
            responses: vec![("200", &list)],
            body: None,
            gvk,
        }),
    );
    coll.insert(
        "post".into(),
        op(Op {
            action: "post",
            id: format!("create{gi}{ns}{kind}"),
            description: format!("create a {kind}"),
            params: params(&[WRITE_PARAMS]),
            responses: vec![("200", obj), ("201", obj), ("202", obj)],
            body: Some(body(obj)),
            gvk,
        }),
    );
    coll.insert(
        "delete".into(),
        op(Op {
            action: "deletecollection",
            id: format!("deletecollection{gi}{ns}{kind}"),
            description: format!("delete collection of {kind}"),
            params: params(&[LIST_PARAMS, DELETE_PARAMS]),
            responses: vec![("200", status)],
            body: Some(body("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")),
            gvk,
        }),
    );
    coll.insert("parameters".into(), Value::Array(scope_params.clone()));
    paths.insert(format!("{scope}/{}", r.plural), Value::Object(coll));

    // Item.
    let mut item = Map::new();
    item.insert(
        "get".into(),
        op(Op {
            action: "get",
            id: format!("read{gi}{ns}{kind}"),
            description: format!("read the specified {kind}"),
            params: vec![],
            responses: vec![("200", obj)],
            body: None,
            gvk,
        }),
    );
    item.insert(
        "put".into(),
        op(Op {
            action: "put",
            id: format!("replace{gi}{ns}{kind}"),
            description: format!("replace the specified {kind}"),
            params: params(&[WRITE_PARAMS]),
            responses: vec![("200", obj), ("201", obj)],
            body: Some(body(obj)),
            gvk,
        }),
    );
    item.insert(
        "delete".into(),
        op(Op {
            action: "delete",
            id: format!("delete{gi}{ns}{kind}"),
            description: format!("delete a {kind}"),
            params: params(&[DELETE_PARAMS]),
            responses: vec![("200", obj), ("202", obj)],
            body: Some(body("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")),
            gvk,
        }),
    );
    item.insert(
        "patch".into(),
        op(Op {
            action: "patch",
            id: format!("patch{gi}{ns}{kind}"),
            description: format!("partially update the specified {kind}"),
            params: params(&[PATCH_PARAMS]),
            responses: vec![("200", obj), ("201", obj)],
            body: Some(patch_body()),
            gvk,
        }),
    );
    item.insert(
        "parameters".into(),
        Value::Array(with_name(scope_params.clone())),
    );
    paths.insert(
        format!("{scope}/{}/{{name}}", r.plural),
        Value::Object(item),
    );

    // Subresources.
    for sub in r.subresources {
        let (suffix, schema, sgvk, label) = match sub {
            Subresource::Status => ("status", obj, gvk, "Status"),
            Subresource::Scale => ("scale", SCALE, ("autoscaling", "v1", "Scale"), "Scale"),
            // Action subresources are not described in the OpenAPI documents.
            Subresource::Binding
            | Subresource::Eviction
            | Subresource::Finalize
            | Subresource::Log
            | Subresource::Exec
            | Subresource::Attach
            | Subresource::PortForward
            | Subresource::Token => continue,
        };
        let mut m = Map::new();
        m.insert(
            "get".into(),
            op(Op {
                action: "get",
                id: format!("read{gi}{ns}{kind}{label}"),
                description: format!("read {suffix} of the specified {kind}"),
                params: vec![],
                responses: vec![("200", schema)],
                body: None,
                gvk: sgvk,
            }),
        );
        m.insert(
            "put".into(),
            op(Op {
                action: "put",
                id: format!("replace{gi}{ns}{kind}{label}"),
                description: format!("replace {suffix} of the specified {kind}"),
                params: params(&[WRITE_PARAMS]),
                responses: vec![("200", schema), ("201", schema)],
                body: Some(body(schema)),
                gvk: sgvk,
            }),
        );
        m.insert(
            "patch".into(),
            op(Op {
                action: "patch",
                id: format!("patch{gi}{ns}{kind}{label}"),
                description: format!("partially update {suffix} of the specified {kind}"),
                params: params(&[PATCH_PARAMS]),
                responses: vec![("200", schema), ("201", schema)],
                body: Some(patch_body()),
                gvk: sgvk,
            }),
        );
        m.insert(
            "parameters".into(),
            Value::Array(with_name(scope_params.clone())),
        );
        paths.insert(
            format!("{scope}/{}/{{name}}/{suffix}", r.plural),
            Value::Object(m),
        );
    }

    // Cluster-wide list of a namespaced resource.
    if r.namespaced {
        let mut m = Map::new();
        m.insert(
            "get".into(),
            op(Op {
                action: "list",
                id: format!("list{gi}{kind}ForAllNamespaces"),
                description: format!("list or watch objects of kind {kind}"),
                params: params(&[LIST_PARAMS]),
                responses: vec![("200", &list)],
                body: None,
                gvk,
            }),
        );
        paths.insert(format!("{root}/{}", r.plural), Value::Object(m));
    }
}
