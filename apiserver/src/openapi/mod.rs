//! OpenAPI v3 for the served resources: the `/openapi/v3` index, per group-version
//! documents (generated on demand, hashed once at startup), a compact resident schema
//! arena implementing [`SchemaLookup`], and strict unknown-field detection.

mod arena;
mod defs;
mod ext;
mod paths;

use crate::resources::{self, ResourceInfo};
use crate::schema::{FieldMeta, NodeId, NodeKind, SchemaLookup};
use arena::Arena;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

/// The served OpenAPI: schema arena plus the hash of each group-version document.
pub struct OpenApi {
    arena: Arena,
    /// (`api/v1` | `apis/apps/v1`, group, version, uppercase hex SHA-512 of the document).
    gvs: Vec<(String, &'static str, &'static str, String)>,
}

impl std::fmt::Debug for OpenApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenApi")
            .field("nodes", &self.arena.node_count())
            .field("group_versions", &self.gvs.len())
            .finish()
    }
}

impl Default for OpenApi {
    fn default() -> Self {
        Self::new()
    }
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn hash_hex(bytes: &[u8]) -> String {
    let digest = Sha512::digest(bytes);
    let mut s = String::with_capacity(digest.len() * 2);
    for b in digest {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

fn gv_resources(group: &str, version: &str) -> Vec<&'static ResourceInfo> {
    resources::all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

/// Builds the OpenAPI 3.0 document of one group version.
fn render_gv(group: &str, version: &str) -> Vec<u8> {
    let rs = gv_resources(group, version);
    let mut paths = Map::new();
    for r in &rs {
        paths::add_resource(r, &mut paths);
    }
    let doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {
            "schemas": defs::generate(&rs),
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header"
                }
            }
        },
        "security": [{"BearerToken": []}]
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

impl OpenApi {
    /// Generates every definition once (for the arena) and every group-version document
    /// once (for its hash); the documents themselves are not kept.
    pub fn new() -> OpenApi {
        let all: Vec<&ResourceInfo> = resources::all().iter().collect();
        let defs = defs::generate(&all);
        let arena = Arena::build(&defs);
        drop(defs);
        let gvs = resources::group_versions()
            .into_iter()
            .map(|(g, v)| (gv_path(g, v), g, v, hash_hex(&render_gv(g, v))))
            .collect();
        OpenApi { arena, gvs }
    }

    /// The `/openapi/v3` index document.
    pub fn index(&self) -> Value {
        let mut paths = Map::new();
        for (path, _, _, hash) in &self.gvs {
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
            );
        }
        json!({ "paths": paths })
    }

    /// The hash of a group-version document (`api/v1`, `apis/apps/v1`), as in the index.
    pub fn hash(&self, path: &str) -> Option<&str> {
        let path = path.trim_start_matches('/');
        self.gvs.iter().find(|e| e.0 == path).map(|e| e.3.as_str())
    }

    /// The JSON document of a group version (`api/v1`, `apis/apps/v1`) and its hash, or
    /// `None` if the group version is not served. Generated on each call (a few ms).
    pub fn group_version(&self, path: &str) -> Option<(Vec<u8>, String)> {
        let path = path.trim_start_matches('/');
        let (_, g, v, hash) = self.gvs.iter().find(|e| e.0 == path)?;
        Some((render_gv(g, v), hash.clone()))
    }

    /// Upstream-style paths (`spec.containers[0].imagePullPolcy`, `metadata.labelz`) of the
    /// fields of `obj` that the schema of `schema_name` does not define, in document order.
    /// `apiVersion`/`kind` at the root and anything below a free-form node are skipped.
    /// Returns nothing for an unknown `schema_name`.
    pub fn unknown_fields(&self, schema_name: &str, obj: &Value) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(root) = self.arena.root(schema_name) {
            let mut path = String::new();
            self.walk(root, obj, &mut path, true, &mut out);
        }
        out
    }

    fn walk(&self, node: NodeId, v: &Value, path: &mut String, root: bool, out: &mut Vec<String>) {
        let len = path.len();
        match (self.arena.kind(node), v) {
            (NodeKind::Object, Value::Object(m)) => {
                for (k, child) in m {
                    if root && (k == "apiVersion" || k == "kind") {
                        continue;
                    }
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    match self.arena.field_target(node, k) {
                        Some(t) => self.walk(t, child, path, false, out),
                        None => out.push(path.clone()),
                    }
                    path.truncate(len);
                }
            }
            (NodeKind::Array, Value::Array(items)) => {
                if let Some(e) = self.arena.elem(node) {
                    for (i, item) in items.iter().enumerate() {
                        path.push_str(&format!("[{i}]"));
                        self.walk(e, item, path, false, out);
                        path.truncate(len);
                    }
                }
            }
            (NodeKind::Map, Value::Object(m)) => {
                if let Some(e) = self.arena.elem(node) {
                    for (k, child) in m {
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(k);
                        self.walk(e, child, path, false, out);
                        path.truncate(len);
                    }
                }
            }
            _ => {}
        }
    }

    /// Rough resident size of the schema arena, in bytes.
    pub fn approx_arena_bytes(&self) -> usize {
        self.arena.approx_bytes()
    }
}

impl SchemaLookup for OpenApi {
    fn root(&self, schema_name: &str) -> Option<NodeId> {
        self.arena.root(schema_name)
    }
    fn kind(&self, node: NodeId) -> NodeKind {
        self.arena.kind(node)
    }
    fn field(&self, node: NodeId, name: &str) -> Option<(FieldMeta, NodeId)> {
        self.arena.field(node, name)
    }
    fn elem(&self, node: NodeId) -> Option<NodeId> {
        self.arena.elem(node)
    }
}

#[cfg(test)]
mod tests;
