//! A compact, resident form of the definitions: one node per type (and per inline
//! array/map/object schema), fields sorted by name, field metadata deduplicated.

use super::defs::REF_PREFIX;
use crate::schema::{FieldMeta, ListType, NodeId, NodeKind};
use serde_json::{Map, Value};
use std::collections::HashMap;

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    kind: NodeKind,
    /// Item type (array) or value type (map); `NONE` otherwise.
    elem: u32,
    fields_start: u32,
    fields_len: u32,
}

#[derive(Debug, Clone, Copy)]
struct Field {
    name: u32,
    meta: u32,
    target: u32,
}

#[derive(Debug, Default)]
pub(crate) struct Arena {
    nodes: Vec<Node>,
    fields: Vec<Field>,
    names: Vec<Box<str>>,
    metas: Vec<FieldMeta>,
    roots: HashMap<Box<str>, u32>,
}

struct Builder<'a> {
    arena: Arena,
    defs: &'a Map<String, Value>,
    name_ids: HashMap<&'a str, u32>,
    meta_ids: HashMap<MetaKey, u32>,
    scalar: u32,
    any: u32,
}

type MetaKey = (Vec<String>, Option<String>, Option<u8>, Vec<String>, bool);

impl Arena {
    /// Builds the arena from normalized definitions (with `x-kubernetes-*` extensions).
    pub(crate) fn build(defs: &Map<String, Value>) -> Arena {
        let placeholder = Node {
            kind: NodeKind::Any,
            elem: NONE,
            fields_start: 0,
            fields_len: 0,
        };
        let mut arena = Arena::default();
        for (i, name) in defs.keys().enumerate() {
            arena.nodes.push(placeholder);
            arena.roots.insert(name.as_str().into(), i as u32);
        }
        let scalar = arena.nodes.len() as u32;
        arena.nodes.push(Node {
            kind: NodeKind::Scalar,
            ..placeholder
        });
        let any = arena.nodes.len() as u32;
        arena.nodes.push(placeholder);
        arena.metas.push(FieldMeta::default());
        let mut meta_ids = HashMap::new();
        meta_ids.insert((vec![], None, None, vec![], false), 0);
        let mut b = Builder {
            arena,
            defs,
            name_ids: HashMap::new(),
            meta_ids,
            scalar,
            any,
        };
        for (i, (_, schema)) in defs.iter().enumerate() {
            let node = b.shape(schema);
            b.arena.nodes[i] = node;
        }
        let mut arena = b.arena;
        arena.nodes.shrink_to_fit();
        arena.fields.shrink_to_fit();
        arena.names.shrink_to_fit();
        arena.metas.shrink_to_fit();
        arena
    }

    pub(crate) fn root(&self, name: &str) -> Option<NodeId> {
        self.roots.get(name).map(|&i| i as NodeId)
    }

    pub(crate) fn kind(&self, node: NodeId) -> NodeKind {
        self.nodes.get(node).map_or(NodeKind::Any, |n| n.kind)
    }

    pub(crate) fn elem(&self, node: NodeId) -> Option<NodeId> {
        let n = self.nodes.get(node)?;
        (n.elem != NONE).then_some(n.elem as NodeId)
    }

    fn field_entry(&self, node: NodeId, name: &str) -> Option<&Field> {
        let n = self.nodes.get(node)?;
        if n.kind != NodeKind::Object {
            return None;
        }
        let start = n.fields_start as usize;
        let fs = &self.fields[start..start + n.fields_len as usize];
        let i = fs
            .binary_search_by(|f| (*self.names[f.name as usize]).cmp(name))
            .ok()?;
        Some(&fs[i])
    }

    pub(crate) fn field(&self, node: NodeId, name: &str) -> Option<(FieldMeta, NodeId)> {
        let f = self.field_entry(node, name)?;
        Some((self.metas[f.meta as usize].clone(), f.target as NodeId))
    }

    /// Field type only (no metadata clone), for walking.
    pub(crate) fn field_target(&self, node: NodeId, name: &str) -> Option<NodeId> {
        self.field_entry(node, name).map(|f| f.target as NodeId)
    }

    /// Rough heap size in bytes.
    pub(crate) fn approx_bytes(&self) -> usize {
        let names: usize = self.names.iter().map(|n| n.len() + 16).sum();
        let roots: usize = self.roots.keys().map(|k| k.len() + 16 + 8).sum();
        let metas: usize = self
            .metas
            .iter()
            .map(|m| {
                std::mem::size_of::<FieldMeta>()
                    + m.patch_strategies
                        .iter()
                        .map(|s| s.len() + 24)
                        .sum::<usize>()
                    + m.list_map_keys.iter().map(|s| s.len() + 24).sum::<usize>()
                    + m.patch_merge_key.as_ref().map_or(0, |s| s.len())
            })
            .sum();
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.fields.capacity() * std::mem::size_of::<Field>()
            + names
            + roots
            + metas
    }

    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

fn ref_name(schema: &Value) -> Option<&str> {
    let o = schema.as_object()?;
    if let Some(Value::String(r)) = o.get("$ref") {
        return r.strip_prefix(REF_PREFIX);
    }
    match o.get("allOf") {
        Some(Value::Array(a)) if a.len() == 1 => ref_name(&a[0]),
        _ => None,
    }
}

impl<'a> Builder<'a> {
    /// The node for a schema appearing as a field, item or value type.
    fn resolve(&mut self, schema: &'a Value) -> u32 {
        if let Some(name) = ref_name(schema) {
            return self.arena.roots.get(name).copied().unwrap_or(self.any);
        }
        let node = self.shape(schema);
        match node.kind {
            NodeKind::Scalar => self.scalar,
            NodeKind::Any => self.any,
            _ => {
                self.arena.nodes.push(node);
                (self.arena.nodes.len() - 1) as u32
            }
        }
    }

    /// The node describing a non-ref schema (children are resolved and pushed first).
    fn shape(&mut self, schema: &'a Value) -> Node {
        let mut node = Node {
            kind: NodeKind::Any,
            elem: NONE,
            fields_start: 0,
            fields_len: 0,
        };
        let Some(o) = schema.as_object() else {
            return node;
        };
        if let Some(name) = ref_name(schema) {
            // A definition that is just an alias of another definition.
            if let Some(def) = self.defs.get(name) {
                if ref_name(def).is_none() {
                    return self.shape(def);
                }
            }
            return node;
        }
        if o.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            node.kind = NodeKind::Scalar;
            return node;
        }
        if o.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
            return node;
        }
        let ty = o.get("type").and_then(Value::as_str);
        match ty {
            Some("array") => {
                node.kind = NodeKind::Array;
                node.elem = match o.get("items") {
                    Some(items) => self.resolve(items),
                    None => self.any,
                };
            }
            Some("string" | "integer" | "number" | "boolean") => node.kind = NodeKind::Scalar,
            _ => {
                if let Some(Value::Object(props)) = o.get("properties") {
                    let mut fs: Vec<(u32, &'a str, u32, u32)> = Vec::with_capacity(props.len());
                    for (name, p) in props {
                        let target = self.resolve(p);
                        let meta = self.meta(p);
                        let nid = self.intern(name);
                        fs.push((nid, name.as_str(), meta, target));
                    }
                    fs.sort_by(|a, b| a.1.cmp(b.1));
                    node.kind = NodeKind::Object;
                    node.fields_start = self.arena.fields.len() as u32;
                    node.fields_len = fs.len() as u32;
                    for (name, _, meta, target) in fs {
                        self.arena.fields.push(Field { name, meta, target });
                    }
                } else if let Some(ap) = o.get("additionalProperties") {
                    if ap.is_object() {
                        node.kind = NodeKind::Map;
                        node.elem = self.resolve(ap);
                    }
                }
            }
        }
        node
    }

    fn intern(&mut self, name: &'a str) -> u32 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = self.arena.names.len() as u32;
        self.arena.names.push(name.into());
        self.name_ids.insert(name, id);
        id
    }

    fn meta(&mut self, p: &Value) -> u32 {
        let s = |k: &str| p.get(k).and_then(Value::as_str);
        let strategies: Vec<String> = s("x-kubernetes-patch-strategy")
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        let key = s("x-kubernetes-patch-merge-key").map(str::to_string);
        let list_type = match s("x-kubernetes-list-type") {
            Some("atomic") => Some(0u8),
            Some("set") => Some(1),
            Some("map") => Some(2),
            _ => None,
        };
        let keys: Vec<String> = p
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let atomic = match s("x-kubernetes-map-type") {
            Some(t) => t == "atomic",
            None => {
                ref_name(p)
                    .and_then(|n| self.defs.get(n))
                    .and_then(|d| d.get("x-kubernetes-map-type"))
                    .and_then(Value::as_str)
                    == Some("atomic")
            }
        };
        let k: MetaKey = (strategies, key, list_type, keys, atomic);
        if let Some(&id) = self.meta_ids.get(&k) {
            return id;
        }
        let id = self.arena.metas.len() as u32;
        self.arena.metas.push(FieldMeta {
            patch_strategies: k.0.clone(),
            patch_merge_key: k.1.clone(),
            list_type: k.2.map(|t| match t {
                0 => ListType::Atomic,
                1 => ListType::Set,
                _ => ListType::Map,
            }),
            list_map_keys: k.3.clone(),
            map_atomic: k.4,
        });
        self.meta_ids.insert(k, id);
        id
    }
}
