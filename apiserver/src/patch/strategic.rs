//! Strategic merge patch, server side (upstream `StrategicMergeMapPatch` with
//! `MergeParallelList` and `IgnoreUnmatchedNulls`), driven by a [`SchemaLookup`].

use serde_json::{Map, Value};

use super::error::PatchError;
use super::gofmt::{go_type, go_value, json_kind};
use crate::schema::{FieldMeta, ListType, NodeId, NodeKind, SchemaLookup};

const DIRECTIVE_MARKER: &str = "$patch";
const DELETE_DIRECTIVE: &str = "delete";
const REPLACE_DIRECTIVE: &str = "replace";
const MERGE_DIRECTIVE: &str = "merge";
const RETAIN_KEYS_STRATEGY: &str = "retainKeys";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

/// Applies a strategic merge patch to `doc`, whose type is `node` in `schema`.
///
/// Semantics are upstream's (`strategicpatch.StrategicMergeMapPatch`):
/// * maps merge recursively, `null` deletes a field; a field whose patch strategy is
///   `replace` is replaced wholesale;
/// * lists with patch strategy `merge` merge by the field's merge key (falling back to a
///   single `x-kubernetes-list-map-keys` entry), lists of primitives with `merge` are a
///   deduplicated union; any other list (and `x-kubernetes-list-type: atomic`) is replaced;
/// * directives `$patch: replace|delete` (maps and list items), `$retainKeys`,
///   `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>` are honoured and never
///   appear in the result;
/// * an unknown type (`node` `None`, a field missing from the schema, `Any`) gets JSON merge
///   semantics for its subtree (maps merge, lists replace); directives there are still
///   honoured or dropped.
///
/// Documented differences from upstream: values taken from the patch where the object has
/// nothing are cleaned (nulls and directives removed) instead of being stored raw and left for
/// typed decoding to drop; `$deleteFromPrimitiveList` never adds items (upstream stores the
/// deletion list when the field is absent or not a merge list); `x-kubernetes-map-type:
/// atomic` is not consulted, exactly like upstream's SMP, which only knows patch strategies.
pub fn strategic_merge_patch(
    doc: &Value,
    patch: &Value,
    schema: &dyn SchemaLookup,
    node: Option<NodeId>,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::InvalidStrategicMerge(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(patch)
        )));
    };
    let original = match doc {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => {
            return Err(PatchError::InvalidStrategicMerge(
                "invalid JSON document".into(),
            ))
        }
    };
    let ctx = Ctx { schema, node };
    merge_map(original, patch.clone(), ctx).map(Value::Object)
}

/// A position in the schema: the type of the value being merged (`None` = unknown).
#[derive(Clone, Copy)]
struct Ctx<'a> {
    schema: &'a dyn SchemaLookup,
    node: Option<NodeId>,
}

impl<'a> Ctx<'a> {
    fn at(self, node: Option<NodeId>) -> Ctx<'a> {
        Ctx {
            schema: self.schema,
            node,
        }
    }

    fn kind(self) -> Option<NodeKind> {
        self.node.map(|n| self.schema.kind(n))
    }

    /// Whether nothing is known about this value's type.
    fn unknown(self) -> bool {
        matches!(self.kind(), None | Some(NodeKind::Any))
    }

    /// Patch metadata and type of member `name` of the map/object at this position.
    fn field(self, name: &str) -> Field<'a> {
        let (meta, node) = match (self.node, self.kind()) {
            (Some(n), Some(NodeKind::Object)) => match self.schema.field(n, name) {
                Some((meta, child)) => (meta, Some(child)),
                None => (FieldMeta::default(), None),
            },
            (Some(n), Some(NodeKind::Map)) => (FieldMeta::default(), self.schema.elem(n)),
            _ => (FieldMeta::default(), None),
        };
        Field {
            meta,
            ctx: self.at(node),
        }
    }

    /// The item type of the array at this position.
    fn elem(self) -> Ctx<'a> {
        let node = match (self.node, self.kind()) {
            (Some(n), Some(NodeKind::Array)) => self.schema.elem(n),
            _ => None,
        };
        self.at(node)
    }
}

/// One member of an object: its patch metadata and the context of its value.
struct Field<'a> {
    meta: FieldMeta,
    ctx: Ctx<'a>,
}

/// How a list field is patched.
enum ListMode {
    Replace,
    /// Merge; the merge key is needed only for lists of maps.
    Merge(Option<String>),
}

impl Field<'_> {
    /// Upstream `extractRetainKeysPatchStrategy`: at most one strategy besides `retainKeys`.
    fn strategy(&self) -> Result<&str, PatchError> {
        let s = &self.meta.patch_strategies;
        let other: Vec<&String> = s.iter().filter(|x| *x != RETAIN_KEYS_STRATEGY).collect();
        if s.len() > 2 || other.len() > 1 {
            return Err(PatchError::StrategicMergeFailed(format!(
                "unexpected patch strategy: [{}]",
                s.join(" ")
            )));
        }
        Ok(other.first().map(|x| x.as_str()).unwrap_or(""))
    }

    fn replaces_map(&self) -> Result<bool, PatchError> {
        Ok(self.strategy()? == REPLACE_DIRECTIVE)
    }

    fn list_mode(&self) -> Result<ListMode, PatchError> {
        if self.strategy()? != MERGE_DIRECTIVE || self.meta.list_type == Some(ListType::Atomic) {
            return Ok(ListMode::Replace);
        }
        let key = self.meta.patch_merge_key.clone().or_else(|| {
            (self.meta.list_map_keys.len() == 1).then(|| self.meta.list_map_keys[0].clone())
        });
        Ok(ListMode::Merge(key))
    }
}

/// Upstream `mergeMap`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    ctx: Ctx,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
        return match directive.as_str() {
            Some(REPLACE_DIRECTIVE) => {
                patch.shift_remove(DIRECTIVE_MARKER);
                merge_map(Map::new(), patch, ctx)
            }
            Some(DELETE_DIRECTIVE) => Ok(Map::new()),
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }

    apply_retain_keys(&mut original, &mut patch)?;
    apply_set_element_order(&mut original, &mut patch, ctx)?;

    for (key, patch_value) in patch {
        let (key, is_delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            let field = extract_key(&key, DELETE_FROM_PRIMITIVE_LIST_PREFIX)
                .ok_or(PatchError::BadPatchFormatForPrimitiveList)?;
            (field.to_string(), true)
        } else {
            (key, false)
        };
        if key.starts_with(SET_ELEMENT_ORDER_PREFIX) || key == RETAIN_KEYS_DIRECTIVE {
            continue;
        }
        if patch_value.is_null() {
            original.shift_remove(&key);
            continue;
        }
        let field = ctx.field(&key);
        if is_delete_list {
            let Value::Array(to_delete) = &patch_value else {
                return Err(PatchError::BadPatchFormatForPrimitiveList);
            };
            if let Some(Value::Array(current)) = original.get_mut(&key) {
                current.retain(|item| !to_delete.iter().any(|d| json_eq(d, item)));
            }
            continue;
        }
        let Some(slot) = original.get_mut(&key) else {
            let value = clean_value(patch_value, &field)?;
            original.insert(key, value);
            continue;
        };
        *slot = match (std::mem::take(slot), patch_value) {
            (Value::Object(o), Value::Object(p)) => {
                if field.replaces_map()? {
                    Value::Object(merge_map(Map::new(), p, field.ctx)?)
                } else {
                    Value::Object(merge_map(o, p, field.ctx)?)
                }
            }
            (Value::Array(o), Value::Array(p)) => match field.list_mode()? {
                ListMode::Merge(key) => {
                    Value::Array(merge_slice(o, p, field.ctx.elem(), key.as_deref())?)
                }
                ListMode::Replace => clean_value(Value::Array(p), &field)?,
            },
            // Scalars, and values whose JSON type changed: the patch value wins.
            (_, p) => clean_value(p, &field)?,
        };
    }
    Ok(original)
}

/// Upstream `applyRetainKeysDirective` (server side): clear fields missing from the list.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadPatchFormatForRetainKeys);
    };
    let listed = |k: &str| retain.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || k.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !listed(k) {
            return Err(PatchError::BadPatchFormatForRetainKeys);
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// Upstream `mergePatchIntoOriginal`: merge each list that has a `$setElementOrder/<field>`
/// directive and order the result by it (precedence: directive, then patch order, then the
/// live order). Processed lists are removed from `patch`.
fn apply_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    ctx: Ctx,
) -> Result<(), PatchError> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for directive in directives {
        let order = patch.shift_remove(&directive).unwrap_or(Value::Null);
        let field_name = extract_key(&directive, SET_ELEMENT_ORDER_PREFIX)
            .ok_or(PatchError::BadPatchFormatForSetElementOrderList)?
            .to_string();
        let Value::Array(order) = order else {
            return Err(bad_arg_type("[]interface {}", &order));
        };
        let field = ctx.field(&field_name);
        let merge_key = match field.list_mode()? {
            ListMode::Merge(key) => key,
            // Not a merge list (or unknown): nothing to order; the field is patched normally.
            ListMode::Replace => continue,
        };
        let original_list = match original.get(&field_name) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let patch_list = match patch.get(&field_name) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        validate_patch_with_set_order_list(patch_list.as_deref(), &order, merge_key.as_deref())?;

        let elem = field.ctx.elem();
        let merged = match (&original_list, patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => merge_slice(Vec::new(), p, elem, merge_key.as_deref())?,
            (Some(o), Some(p)) => merge_slice(o.clone(), p, elem, merge_key.as_deref())?,
            (None, None) => continue,
        };
        let live = original_list.unwrap_or_default();
        let is_map = merged.iter().chain(live.iter()).any(Value::is_object);
        let (patch_items, server_only) = partition(merged, &order, merge_key.as_deref(), is_map)?;
        let both = normalize_element_order(
            patch_items,
            server_only,
            &order,
            &live,
            merge_key.as_deref(),
            is_map,
        )?;
        original.insert(field_name.clone(), Value::Array(both));
        patch.shift_remove(&field_name);
    }
    Ok(())
}

/// Upstream `validatePatchWithSetOrderList`: the patch list must follow the directive's order.
fn validate_patch_with_set_order_list(
    patch_list: Option<&[Value]>,
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), PatchError> {
    let Some(patch_list) = patch_list else {
        return Ok(());
    };
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = match merge_key {
        Some(_) => patch_list.iter().filter(|v| !is_delete_item(v)).collect(),
        None => patch_list.iter().collect(),
    };
    let (mut pi, mut oi) = (0, 0);
    while pi < non_delete.len() && oi < order.len() {
        if has_directive_marker(non_delete[pi]) {
            pi += 1;
            continue;
        }
        if merge_key_value_equal(non_delete[pi], &order[oi], merge_key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() && oi >= order.len() {
        return Err(PatchError::StrategicMergeFailed(format!(
            "The order in patch list:\n{}\n doesn't match {} list:\n{}\n",
            go_value(&Value::Array(patch_list.to_vec())),
            SET_ELEMENT_ORDER_PREFIX,
            go_value(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

/// Upstream `mergeSlice` (a list with patch strategy `merge`).
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    elem: Ctx,
    merge_key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let is_map = slice_element_kind(&original, &patch)? == Kind::Object;
    if !is_map {
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.iter().any(|m| json_eq(m, v)) {
                merged.push(v.clone());
            }
        }
        let (patch_items, server_only) = partition(merged, &patch, None, false)?;
        return normalize_element_order(patch_items, server_only, &patch, &original, None, false);
    }

    let key = merge_key.ok_or_else(|| {
        PatchError::StrategicMergeFailed(
            "cannot merge lists without merge key for type struct".into(),
        )
    })?;
    let (original, patch) = merge_slice_with_special_elements(original, patch, key, elem)?;
    let mut merged = original.clone();
    for item in &patch {
        let Value::Object(item) = item else {
            unreachable!("checked by slice_element_kind")
        };
        let value = item.get(key).ok_or_else(|| no_merge_key(item, key))?;
        let found = merged.iter().position(|o| {
            o.as_object()
                .and_then(|o| o.get(key))
                .is_some_and(|v| json_eq(v, value))
        });
        match found {
            Some(pos) => {
                let Value::Object(o) = std::mem::take(&mut merged[pos]) else {
                    unreachable!()
                };
                merged[pos] = Value::Object(merge_map(o, item.clone(), elem)?);
            }
            None => merged.push(Value::Object(merge_map(Map::new(), item.clone(), elem)?)),
        }
    }
    let (patch_items, server_only) = partition(merged, &patch, Some(key), true)?;
    normalize_element_order(patch_items, server_only, &patch, &original, Some(key), true)
}

/// Upstream `mergeSliceWithSpecialElements`: apply `$patch: delete|replace` list items.
/// Returns the (possibly replaced) original and the patch without directive items.
fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    elem: Ctx,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(m) = &item else {
            unreachable!("checked by slice_element_kind")
        };
        let Some(directive) = m.get(DIRECTIVE_MARKER) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some(DELETE_DIRECTIVE) => {
                let value = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                original.retain(|o| {
                    !o.as_object()
                        .and_then(|o| o.get(key))
                        .is_some_and(|v| json_eq(v, value))
                });
            }
            Some(REPLACE_DIRECTIVE) => replace = true,
            Some(MERGE_DIRECTIVE) => {
                return Err(PatchError::StrategicMergeFailed(
                    "merging lists cannot yet be specified in the patch".into(),
                ))
            }
            _ => return Err(bad_patch_type(directive, m)),
        }
    }
    if replace {
        let mut replaced = Vec::with_capacity(plain.len());
        for item in plain {
            let Value::Object(m) = item else {
                unreachable!()
            };
            replaced.push(Value::Object(merge_map(Map::new(), m, elem)?));
        }
        return Ok((replaced, Vec::new()));
    }
    Ok((original, plain))
}

/// Upstream `partitionMapsByPresentInList` / `partitionPrimitivesByPresentInList`: items of
/// `list` present in `by`, and the others.
fn partition(
    list: Vec<Value>,
    by: &[Value],
    merge_key: Option<&str>,
    is_map: bool,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let (mut present, mut absent) = (Vec::new(), Vec::new());
    for item in list {
        let found = match (merge_key, is_map) {
            (Some(key), true) => {
                let Value::Object(m) = &item else {
                    return Err(bad_arg_type("map[string]interface {}", &item));
                };
                let value = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                by.iter().any(|b| {
                    b.as_object()
                        .and_then(|b| b.get(key))
                        .is_some_and(|v| json_eq(v, value))
                })
            }
            _ => by.iter().any(|b| json_eq(b, &item)),
        };
        if found {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Upstream `normalizeElementOrder`: sort patch items by the patch order and server-only
/// items by the live order, then interleave them, keeping both relative orders.
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    is_map: bool,
) -> Result<Vec<Value>, PatchError> {
    let key = if is_map { merge_key } else { None };
    let patch_items = normalize_slice_order(patch_items, patch_order, key)?;
    let server_only = normalize_slice_order(server_only, server_order, key)?;
    Ok(merge_sorted_slices(
        server_only,
        patch_items,
        server_order,
        key,
    ))
}

/// Upstream `normalizeSliceOrder`: stable sort by position in `order` (unknown items last);
/// `$patch: delete` items go to the end.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    let (mut keep, delete): (Vec<Value>, Vec<Value>) = match merge_key {
        Some(key) => {
            for v in to_sort.iter().chain(order.iter()) {
                let Value::Object(m) = v else {
                    return Err(bad_arg_type("map[string]interface {}", v));
                };
                if !m.contains_key(key) {
                    return Err(no_merge_key(m, key));
                }
            }
            to_sort.into_iter().partition(|v| !is_delete_item(v))
        }
        None => (to_sort, Vec::new()),
    };
    keep.sort_by_key(|v| index_of(order, v, merge_key).unwrap_or(usize::MAX));
    keep.extend(delete);
    Ok(keep)
}

/// Upstream `mergeSortedSlice`: interleave server-only items (`left`) with patch items
/// (`right`); a left item goes first only when both are in the live list and it precedes.
fn merge_sorted_slices(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (index_of(server_order, l, merge_key), index_of(server_order, r, merge_key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// Upstream `index`: position of `item` in `list`, by merge key value for maps.
fn index_of(list: &[Value], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    match merge_key {
        Some(key) => {
            let value = item.get(key);
            list.iter().position(|v| match (v.get(key), value) {
                (Some(a), Some(b)) => json_eq(a, b),
                (None, None) => true,
                _ => false,
            })
        }
        None => list.iter().position(|v| json_eq(v, item)),
    }
}

/// Upstream `mergeKeyValueEqual`.
fn merge_key_value_equal(
    left: &Value,
    right: &Value,
    merge_key: Option<&str>,
) -> Result<bool, PatchError> {
    let Some(key) = merge_key else {
        return Ok(json_eq(left, right));
    };
    let Value::Object(l) = left else {
        return Err(bad_arg_type("map[string]interface {}", left));
    };
    let Value::Object(r) = right else {
        return Err(bad_arg_type("map[string]interface {}", right));
    };
    let lv = l.get(key).ok_or_else(|| no_merge_key(l, key))?;
    let rv = r.get(key).ok_or_else(|| no_merge_key(r, key))?;
    Ok(json_eq(lv, rv))
}

/// Turns a patch value with no counterpart in the object into a stored value: nested maps are
/// merged into nothing (dropping nulls and directives), merge lists are merged into an empty
/// list, other lists keep their items (maps among them cleaned the same way).
fn clean_value(value: Value, field: &Field) -> Result<Value, PatchError> {
    match value {
        Value::Object(m) => Ok(Value::Object(merge_map(Map::new(), m, field.ctx)?)),
        Value::Array(items) => match field.list_mode()? {
            ListMode::Merge(key) if !items.is_empty() => Ok(Value::Array(merge_slice(
                Vec::new(),
                items,
                field.ctx.elem(),
                key.as_deref(),
            )?)),
            _ if field.ctx.unknown() => Ok(Value::Array(items)),
            _ => {
                let elem = field.ctx.elem();
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(match item {
                        Value::Object(m) => Value::Object(merge_map(Map::new(), m, elem)?),
                        other => other,
                    });
                }
                Ok(Value::Array(out))
            }
        },
        other => Ok(other),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

fn kind_of(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

/// Upstream `sliceElementType`: all items of both lists share one type, which is not a list.
fn slice_element_kind(original: &[Value], patch: &[Value]) -> Result<Kind, PatchError> {
    let mut prev: Option<Kind> = None;
    for v in original.iter().chain(patch.iter()) {
        let k = kind_of(v);
        match prev {
            None if k == Kind::Array => return Err(PatchError::NoListOfLists),
            None => prev = Some(k),
            Some(p) if p != k => {
                return Err(PatchError::StrategicMergeFailed(format!(
                    "list element types are not identical: [{} {}]",
                    go_value(&Value::Array(original.to_vec())),
                    go_value(&Value::Array(patch.to_vec()))
                )))
            }
            Some(_) => {}
        }
    }
    prev.ok_or_else(|| {
        PatchError::StrategicMergeFailed("no elements in any of the given slices".into())
    })
}

/// JSON equality with numbers compared by value (Go decodes all numbers to float64).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn is_delete_item(v: &Value) -> bool {
    v.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some(DELETE_DIRECTIVE)
}

fn has_directive_marker(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.contains_key(DIRECTIVE_MARKER))
}

/// Upstream `extractKey`: `<prefix>/<field>` → `<field>`.
fn extract_key<'k>(s: &'k str, prefix: &str) -> Option<&'k str> {
    match s.split_once('/') {
        Some((p, rest)) if p == prefix => Some(rest),
        _ => None,
    }
}

fn no_merge_key(item: &Map<String, Value>, key: &str) -> PatchError {
    PatchError::NoMergeKey {
        item: go_value(&Value::Object(item.clone())),
        key: key.to_string(),
    }
}

/// `mergepatch.ErrBadPatchType`.
fn bad_patch_type(directive: &Value, m: &Map<String, Value>) -> PatchError {
    PatchError::StrategicMergeFailed(format!(
        "unknown patch type: {} in map: {}",
        go_value(directive),
        go_value(&Value::Object(m.clone()))
    ))
}

/// `mergepatch.ErrBadArgType`.
fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    PatchError::StrategicMergeFailed(format!(
        "expected a {expected}, but received a {}",
        go_type(actual)
    ))
}
