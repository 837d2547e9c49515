//! Schema-directed walks over JSON objects: field sets, comparison, merge and removal.
//!
//! Behaviour follows sigs.k8s.io/structured-merge-diff `typed` (tofieldset.go, compare.go,
//! merge.go, remove.go, helpers.go) and kube-openapi's schema conversion (how list types are
//! derived from `x-kubernetes-list-type` or, failing that, the patch strategy).

use serde_json::{Map, Value};

use super::fieldset::{values_equal, FieldSet, Path, PathElement};
use crate::schema::{FieldMeta, ListType, NodeId, NodeKind, SchemaLookup};

/// How the items of a list are identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListRel {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// A type reference: the schema node plus the relationship metadata of the field that
/// refers to it. `node == None` is the "deduced" type (maps granular, lists atomic).
#[derive(Debug, Clone)]
pub(crate) struct Ty {
    node: Option<NodeId>,
    atomic: bool,
    list: ListRel,
}

impl Ty {
    pub(crate) fn root(node: NodeId) -> Ty {
        Ty {
            node: Some(node),
            atomic: false,
            list: ListRel::Atomic,
        }
    }

    fn plain(node: Option<NodeId>) -> Ty {
        Ty {
            node,
            atomic: false,
            list: ListRel::Atomic,
        }
    }

    fn from_meta(meta: &FieldMeta, node: NodeId) -> Ty {
        let list = match meta.list_type {
            Some(ListType::Atomic) => ListRel::Atomic,
            Some(ListType::Set) => ListRel::Set,
            Some(ListType::Map) if meta.list_map_keys.is_empty() => ListRel::Atomic,
            Some(ListType::Map) => ListRel::Map(meta.list_map_keys.clone()),
            None if meta.has_strategy("merge") => match &meta.patch_merge_key {
                Some(k) => ListRel::Map(vec![k.clone()]),
                None => ListRel::Set,
            },
            None => ListRel::Atomic,
        };
        Ty {
            node: Some(node),
            atomic: meta.map_atomic,
            list,
        }
    }
}

/// The resolved shape of a value at a type.
enum Shape {
    Leaf,
    Struct(NodeId),
    Map(Ty),
    List(ListRel, Ty),
}

pub(crate) struct Walker<'s> {
    pub(crate) schema: &'s dyn SchemaLookup,
}

#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn is_empty_container(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

static EMPTY_MAP: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

fn obj(v: Option<&Value>) -> &Map<String, Value> {
    match v {
        Some(Value::Object(m)) => m,
        _ => &EMPTY_MAP,
    }
}

fn arr(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Array(a)) => a,
        _ => &[],
    }
}

fn with(path: &Path, pe: PathElement) -> Path {
    let mut p = path.clone();
    p.push(pe);
    p
}

impl<'s> Walker<'s> {
    fn kind(&self, ty: &Ty) -> NodeKind {
        ty.node.map_or(NodeKind::Any, |n| self.schema.kind(n))
    }

    fn shape_of(&self, ty: &Ty, v: &Value) -> Shape {
        match (self.kind(ty), v) {
            (_, Value::Object(_)) | (_, Value::Array(_)) if ty.atomic => Shape::Leaf,
            (NodeKind::Object, Value::Object(_)) => Shape::Struct(ty.node.unwrap_or_default()),
            (NodeKind::Map, Value::Object(_)) => {
                Shape::Map(Ty::plain(ty.node.and_then(|n| self.schema.elem(n))))
            }
            (NodeKind::Any, Value::Object(_)) => Shape::Map(Ty::plain(None)),
            (NodeKind::Array, Value::Array(_)) => match &ty.list {
                ListRel::Atomic => Shape::Leaf,
                rel => Shape::List(
                    rel.clone(),
                    Ty::plain(ty.node.and_then(|n| self.schema.elem(n))),
                ),
            },
            _ => Shape::Leaf,
        }
    }

    /// The shape of a pair of values (either may be absent or null).
    fn shape2(&self, ty: &Ty, l: Option<&Value>, r: Option<&Value>) -> Shape {
        match (present(l), present(r)) {
            (None, None) => Shape::Leaf,
            (Some(v), None) | (None, Some(v)) => self.shape_of(ty, v),
            (Some(a), Some(b)) => {
                let same = matches!(
                    (a, b),
                    (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_))
                );
                if same {
                    self.shape_of(ty, b)
                } else {
                    Shape::Leaf
                }
            }
        }
    }

    /// The type of struct field or map value `name`.
    fn field_ty(&self, shape: &Shape, name: &str) -> (Ty, bool) {
        match shape {
            Shape::Struct(n) => match self.schema.field(*n, name) {
                Some((meta, child)) => (Ty::from_meta(&meta, child), true),
                // Unknown field: treat it like preserve-unknown-fields (deduced).
                None => (Ty::plain(None), false),
            },
            Shape::Map(elem) => (elem.clone(), false),
            _ => (Ty::plain(None), false),
        }
    }

    /// Path element of a list item (upstream `listItemToPathElement`).
    pub(crate) fn item_pe(
        &self,
        rel: &ListRel,
        item: &Value,
        path: &Path,
        index: usize,
    ) -> Result<PathElement, String> {
        let err = |msg: String| {
            format!(
                "{}: element {index}: {msg}",
                super::fieldset::path_string(path)
            )
        };
        match rel {
            ListRel::Atomic => Ok(PathElement::Index(index)),
            ListRel::Set => match item {
                Value::Object(_) => Err(err(
                    "associative list without keys has an element that's a map type".into(),
                )),
                Value::Array(_) => Err(err(
                    "associative list without keys has an element that's a list type".into(),
                )),
                v => Ok(PathElement::Value(v.clone())),
            },
            ListRel::Map(keys) => {
                let Value::Object(m) = item else {
                    return Err(err(if item.is_null() {
                        "associative list with keys may not have a null element".into()
                    } else {
                        "associative list with keys may not have non-map elements".into()
                    }));
                };
                let mut fields = Vec::new();
                for k in keys {
                    if let Some(v) = m.get(k) {
                        fields.push((k.clone(), v.clone()));
                    } else if let Some(d) = key_default(k) {
                        fields.push((k.clone(), d));
                    }
                }
                if fields.is_empty() {
                    return Err(err(format!(
                        "associative list with keys has an element that omits all key fields {keys:?} (and doesn't have default values for any key fields)"
                    )));
                }
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(PathElement::Key(fields))
            }
        }
    }

    // ---------------------------------------------------------------- field sets

    /// The set of fields specified by `v` (upstream `TypedValue.ToFieldSet`).
    pub(crate) fn to_field_set(&self, ty: &Ty, v: &Value) -> Result<FieldSet, String> {
        let mut out = FieldSet::new();
        self.fs_walk(ty, v, &Vec::new(), &mut out, false)?;
        Ok(out)
    }

    /// `strict` rejects duplicate list keys (used for applied configurations).
    pub(crate) fn to_field_set_strict(&self, ty: &Ty, v: &Value) -> Result<FieldSet, String> {
        let mut out = FieldSet::new();
        self.fs_walk(ty, v, &Vec::new(), &mut out, true)?;
        Ok(out)
    }

    fn fs_walk(
        &self,
        ty: &Ty,
        v: &Value,
        path: &Path,
        out: &mut FieldSet,
        strict: bool,
    ) -> Result<(), String> {
        if v.is_null() {
            out.insert(path);
            return Ok(());
        }
        let shape = self.shape_of(ty, v);
        match &shape {
            Shape::Leaf => out.insert(path),
            Shape::Struct(_) | Shape::Map(_) => {
                for (k, child) in obj(Some(v)) {
                    let (cty, declared) = self.field_ty(&shape, k);
                    let p = with(path, PathElement::Field(k.clone()));
                    self.fs_walk(&cty, child, &p, out, strict)?;
                    let empty_obj = matches!(child, Value::Object(m) if m.is_empty());
                    if child.is_null() || empty_obj || !declared {
                        out.insert(&p);
                    }
                }
            }
            Shape::List(rel, elem) => {
                let items = arr(Some(v));
                let mut pes = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    pes.push(self.item_pe(rel, item, path, i)?);
                }
                let mut seen = std::collections::BTreeSet::new();
                let mut dups = std::collections::BTreeSet::new();
                for pe in &pes {
                    if !seen.insert(pe.clone()) {
                        if strict {
                            return Err(format!(
                                "{}: duplicate entries for key {pe}",
                                super::fieldset::path_string(path)
                            ));
                        }
                        dups.insert(pe.clone());
                    }
                }
                for (item, pe) in items.iter().zip(pes) {
                    let p = with(path, pe.clone());
                    if !dups.contains(&pe) {
                        self.fs_walk(elem, item, &p, out, strict)?;
                    }
                    out.insert(&p);
                }
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- compare

    /// Compares two objects (upstream `TypedValue.Compare`).
    pub(crate) fn compare(&self, ty: &Ty, l: &Value, r: &Value) -> Result<Comparison, String> {
        let mut c = Comparison::default();
        self.cmp_walk(ty, Some(l), Some(r), &Vec::new(), &mut c)?;
        Ok(c)
    }

    fn cmp_walk(
        &self,
        ty: &Ty,
        l: Option<&Value>,
        r: Option<&Value>,
        path: &Path,
        c: &mut Comparison,
    ) -> Result<(), String> {
        let mut shape = self.shape2(ty, l, r);
        if !matches!(shape, Shape::Leaf) && is_empty_container(l) && is_empty_container(r) {
            shape = Shape::Leaf;
        }
        match &shape {
            Shape::Leaf => {
                match (l, r) {
                    (None, Some(_)) => c.added.insert(path),
                    (Some(_), None) => c.removed.insert(path),
                    (Some(a), Some(b)) if !values_equal(a, b) => c.modified.insert(path),
                    _ => {}
                }
                return Ok(());
            }
            Shape::Struct(_) | Shape::Map(_) => {
                let (lm, rm) = (obj(l), obj(r));
                for (k, lv) in lm {
                    let (cty, _) = self.field_ty(&shape, k);
                    let p = with(path, PathElement::Field(k.clone()));
                    self.cmp_walk(&cty, Some(lv), rm.get(k), &p, c)?;
                }
                for (k, rv) in rm {
                    if lm.contains_key(k) {
                        continue;
                    }
                    let (cty, _) = self.field_ty(&shape, k);
                    let p = with(path, PathElement::Field(k.clone()));
                    self.cmp_walk(&cty, None, Some(rv), &p, c)?;
                }
            }
            Shape::List(rel, elem) => {
                let li = self.index_items(rel, arr(l), path)?;
                let ri = self.index_items(rel, arr(r), path)?;
                for (pe, lv) in &li {
                    let rv = ri.iter().find(|(q, _)| q == pe).map(|(_, v)| *v);
                    self.cmp_walk(elem, Some(lv), rv, &with(path, pe.clone()), c)?;
                }
                for (pe, rv) in &ri {
                    if li.iter().any(|(q, _)| q == pe) {
                        continue;
                    }
                    self.cmp_walk(elem, None, Some(rv), &with(path, pe.clone()), c)?;
                }
            }
        }
        if l.is_none() {
            c.added.insert(path);
        } else if r.is_none() {
            c.removed.insert(path);
        }
        Ok(())
    }

    /// Items of a list with their path elements; later duplicates are dropped.
    fn index_items<'v>(
        &self,
        rel: &ListRel,
        items: &'v [Value],
        path: &Path,
    ) -> Result<Vec<(PathElement, &'v Value)>, String> {
        let mut out: Vec<(PathElement, &Value)> = Vec::with_capacity(items.len());
        let mut seen = std::collections::BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let pe = self.item_pe(rel, item, path, i)?;
            if seen.insert(pe.clone()) {
                out.push((pe, item));
            }
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- merge

    /// Merges `r` (an applied configuration) into `l` (upstream `TypedValue.Merge`).
    pub(crate) fn merge(&self, ty: &Ty, l: &Value, r: &Value) -> Result<Value, String> {
        Ok(self
            .merge_walk(ty, Some(l), Some(r), &Vec::new())?
            .unwrap_or(Value::Object(Map::new())))
    }

    fn merge_walk(
        &self,
        ty: &Ty,
        l: Option<&Value>,
        r: Option<&Value>,
        path: &Path,
    ) -> Result<Option<Value>, String> {
        let (l, r) = match (l, r) {
            (None, None) => return Ok(None),
            (Some(v), None) => return Ok(Some(v.clone())),
            (None, Some(v)) => return Ok(Some(v.clone())),
            (Some(l), Some(r)) => (l, r),
        };
        let mut shape = self.shape2(ty, Some(l), Some(r));
        if !matches!(shape, Shape::Leaf)
            && is_empty_container(Some(l))
            && is_empty_container(Some(r))
        {
            shape = Shape::Leaf;
        }
        match &shape {
            Shape::Leaf => Ok(Some(r.clone())),
            Shape::Struct(_) | Shape::Map(_) => {
                let (lm, rm) = (obj(Some(l)), obj(Some(r)));
                let mut out = Map::new();
                for (k, lv) in lm {
                    let (cty, _) = self.field_ty(&shape, k);
                    let p = with(path, PathElement::Field(k.clone()));
                    if let Some(v) = self.merge_walk(&cty, Some(lv), rm.get(k), &p)? {
                        out.insert(k.clone(), v);
                    }
                }
                for (k, rv) in rm {
                    if lm.contains_key(k) {
                        continue;
                    }
                    out.insert(k.clone(), rv.clone());
                }
                Ok((!out.is_empty()).then_some(Value::Object(out)))
            }
            Shape::List(rel, elem) => {
                let litems = arr(Some(l));
                let ritems = arr(Some(r));
                let mut lpes = Vec::with_capacity(litems.len());
                for (i, item) in litems.iter().enumerate() {
                    lpes.push(self.item_pe(rel, item, path, i)?);
                }
                let rindexed = self.index_items(rel, ritems, path)?;
                if rindexed.len() != ritems.len() {
                    // Reported precisely by the strict field-set walk of the applied config.
                    return Err(format!(
                        "{}: duplicate entries in applied list",
                        super::fieldset::path_string(path)
                    ));
                }
                let out = self.merge_list(elem, litems, &lpes, &rindexed, path)?;
                Ok((!out.is_empty()).then_some(Value::Array(out)))
            }
        }
    }

    /// Orders the merged list like upstream `visitListItems`: items only in the live list
    /// keep their place relative to their neighbours, items of the applied list come in the
    /// applied order, and shared items are taken in the applied order.
    fn merge_list(
        &self,
        elem: &Ty,
        litems: &[Value],
        lpes: &[PathElement],
        rindexed: &[(PathElement, &Value)],
        path: &Path,
    ) -> Result<Vec<Value>, String> {
        let in_r = |pe: &PathElement| rindexed.iter().any(|(q, _)| q == pe);
        // Shared items, in applied order.
        let shared: Vec<&PathElement> = rindexed
            .iter()
            .map(|(pe, _)| pe)
            .filter(|pe| lpes.contains(pe))
            .collect();
        let mut next_shared = 0usize;
        let mut merged: Vec<&PathElement> = Vec::new();
        let mut out = Vec::new();
        let (mut li, mut ri) = (0usize, 0usize);
        while li < lpes.len() || ri < rindexed.len() {
            if li < lpes.len() && ri < rindexed.len() {
                let lpe = &lpes[li];
                if *lpe == rindexed[ri].0 {
                    self.merge_item(elem, litems, lpes, &rindexed[ri], path, &mut out)?;
                    merged.push(lpe);
                    li += 1;
                    ri += 1;
                    next_shared += 1;
                    continue;
                }
                let wanted = shared.get(next_shared).is_some_and(|s| *s == lpe);
                if in_r(lpe) && !wanted && shared.get(next_shared).is_some() {
                    // A shared item whose turn (in applied order) has not come yet.
                    li += 1;
                    continue;
                }
            }
            if li < lpes.len() {
                let lpe = &lpes[li];
                if !in_r(lpe) {
                    out.push(litems[li].clone());
                    li += 1;
                    continue;
                }
                if merged.contains(&lpe) {
                    li += 1;
                    continue;
                }
            }
            if ri < rindexed.len() {
                let rpe = &rindexed[ri].0;
                self.merge_item(elem, litems, lpes, &rindexed[ri], path, &mut out)?;
                merged.push(rpe);
                if shared.get(next_shared).is_some_and(|s| *s == rpe) {
                    next_shared += 1;
                }
                ri += 1;
            }
        }
        Ok(out)
    }

    fn merge_item(
        &self,
        elem: &Ty,
        litems: &[Value],
        lpes: &[PathElement],
        r: &(PathElement, &Value),
        path: &Path,
        out: &mut Vec<Value>,
    ) -> Result<(), String> {
        let lv = lpes.iter().position(|q| *q == r.0).map(|i| &litems[i]);
        if let Some(v) = self.merge_walk(elem, lv, Some(r.1), &with(path, r.0.clone()))? {
            out.push(v);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- removal

    /// Removes the paths of `set` (with their subtrees) from `v` (upstream `RemoveItems`).
    /// Containers emptied by the removal become null.
    pub(crate) fn remove_items(&self, ty: &Ty, v: &mut Value, set: &FieldSet, path: &Path) {
        if set.is_empty() || v.is_null() {
            return;
        }
        let shape = self.shape_of(ty, v);
        match &shape {
            Shape::Leaf => {}
            Shape::Struct(_) | Shape::Map(_) => {
                let Value::Object(m) = v else { return };
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    let pe = PathElement::Field(k.clone());
                    if set.has_member(&pe) {
                        m.remove(&k);
                    } else if let Some(sub) = set.child(&pe) {
                        let (cty, _) = self.field_ty(&shape, &k);
                        if let Some(child) = m.get_mut(&k) {
                            self.remove_items(&cty, child, sub, &with(path, pe));
                        }
                    }
                }
                if m.is_empty() {
                    *v = Value::Null;
                }
            }
            Shape::List(rel, elem) => {
                let Value::Array(items) = v else { return };
                let old = std::mem::take(items);
                for (i, mut item) in old.into_iter().enumerate() {
                    let Ok(pe) = self.item_pe(rel, &item, path, i) else {
                        items.push(item);
                        continue;
                    };
                    if set.has_member(&pe) {
                        continue;
                    }
                    if let Some(sub) = set.child(&pe) {
                        self.remove_items(elem, &mut item, sub, &with(path, pe));
                    }
                    items.push(item);
                }
                if items.is_empty() {
                    *v = Value::Null;
                }
            }
        }
    }

    /// Adds, as members, the struct fields that only appear as parents of other paths
    /// (upstream `Set.EnsureNamedFieldsAreMembers`).
    pub(crate) fn ensure_named_fields(&self, ty: &Ty, set: &FieldSet) -> FieldSet {
        let mut members = set.members().clone();
        let mut children = std::collections::BTreeMap::new();
        let kind = self.kind(ty);
        for (pe, sub) in set.children_iter() {
            let child_ty = match (kind, pe) {
                (NodeKind::Object, PathElement::Field(name)) => {
                    match ty.node.and_then(|n| self.schema.field(n, name)) {
                        Some((meta, node)) => {
                            members.insert(pe.clone());
                            Ty::from_meta(&meta, node)
                        }
                        None => Ty::plain(None),
                    }
                }
                (NodeKind::Map, PathElement::Field(_))
                | (NodeKind::Array, PathElement::Key(_))
                | (NodeKind::Array, PathElement::Value(_))
                | (NodeKind::Array, PathElement::Index(_)) => {
                    Ty::plain(ty.node.and_then(|n| self.schema.elem(n)))
                }
                _ => Ty::plain(None),
            };
            children.insert(pe.clone(), self.ensure_named_fields(&child_ty, sub));
        }
        FieldSet::from_parts(members, children)
    }
}

/// Defaults of list-map key fields. Upstream reads them from the OpenAPI `default`; the
/// schema lookup here carries no defaults, and the only defaulted key field among the
/// built-in types is `protocol` (container ports, service ports), which defaults to TCP.
fn key_default(key: &str) -> Option<Value> {
    (key == "protocol").then(|| Value::String("TCP".to_string()))
}

/// Drops object members whose value is null, recursively (what the round trip through the
/// typed Go structs does upstream after a merge).
pub(crate) fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            for x in m.values_mut() {
                strip_nulls(x);
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                strip_nulls(x);
            }
        }
        _ => {}
    }
}
