//! Per-field merge metadata: the part of the OpenAPI schema that strategic merge patch and
//! server-side apply need (patch strategies, merge keys, list and map types). The OpenAPI
//! module implements `SchemaLookup` over the served types; tests use small hand-built trees.

/// `x-kubernetes-list-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    Atomic,
    Set,
    Map,
}

/// Metadata attached to one field of an object type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMeta {
    /// `x-kubernetes-patch-strategy`, split on ',': "merge", "retainKeys", "replace".
    pub patch_strategies: Vec<String>,
    /// `x-kubernetes-patch-merge-key`.
    pub patch_merge_key: Option<String>,
    /// `x-kubernetes-list-type`.
    pub list_type: Option<ListType>,
    /// `x-kubernetes-list-map-keys`.
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type: atomic` (or a struct marked atomic).
    pub map_atomic: bool,
}

impl FieldMeta {
    pub fn has_strategy(&self, s: &str) -> bool {
        self.patch_strategies.iter().any(|x| x == s)
    }
}

/// Index of a node (a type) in a schema arena.
pub type NodeId = usize;

/// What a node of the schema is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// An object with named properties.
    Object,
    /// An array; `elem` gives the item type.
    Array,
    /// A map (`additionalProperties`); `elem` gives the value type.
    Map,
    /// A scalar (string, integer, number, boolean, int-or-string, quantity, time).
    Scalar,
    /// Anything (`x-kubernetes-preserve-unknown-fields`, RawExtension).
    Any,
}

/// Navigates type schemas by field name.
pub trait SchemaLookup: Send + Sync {
    /// The node of a named definition (`io.k8s.api.core.v1.Pod`).
    fn root(&self, schema_name: &str) -> Option<NodeId>;
    /// What kind of node this is.
    fn kind(&self, node: NodeId) -> NodeKind;
    /// The metadata and type of property `name` of an object node.
    fn field(&self, node: NodeId, name: &str) -> Option<(FieldMeta, NodeId)>;
    /// The item type of an array node or the value type of a map node.
    fn elem(&self, node: NodeId) -> Option<NodeId>;
}
