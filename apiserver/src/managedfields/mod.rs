//! Field management (`metadata.managedFields`) and server-side apply.
//!
//! Pure functions over `serde_json::Value`; the caller does IO, admission, defaulting,
//! validation, status/spec resets and metadata bookkeeping (uid, resourceVersion, ...).
//!
//! Behaviour mirrors upstream:
//! * sigs.k8s.io/structured-merge-diff `merge.Updater` (Apply / Update / prune / conflicts)
//!   and `typed` (ToFieldSet, Compare, Merge, RemoveItems);
//! * k8s.io/apimachinery `pkg/util/managedfields/internal`: the manager chain
//!   (FieldManager decode/reset, skip-non-applied with "before-first-apply",
//!   managed-fields-updater "current-operation" merging and timestamps, strip-meta,
//!   cap-managers "ancient-changes", build-manager-info identifiers), managed-fields
//!   encoding order, and the conflict error text (conflict.go).

pub mod fieldset;
mod typed;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

pub use fieldset::{path_string, FieldSet, Path, PathElement};

use crate::schema::{NodeId, SchemaLookup};
use typed::{strip_nulls, Ty, Walker};

/// Manager that receives the fields of an object applied to for the first time while it has
/// no managed fields (upstream `skipNonAppliedManager`).
pub const BEFORE_FIRST_APPLY_MANAGER: &str = "before-first-apply";
/// Bucket manager for the oldest update entries beyond the cap (upstream
/// `capManagersManager`).
pub const ANCIENT_CHANGES_MANAGER: &str = "ancient-changes";
/// Upstream `DefaultMaxUpdateManagers`.
pub const MAX_UPDATE_MANAGERS: usize = 10;

const OP_APPLY: &str = "Apply";
const OP_UPDATE: &str = "Update";

/// Metadata fields the caller owns; `apply` keeps the live values.
const PROTECTED_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// One conflict of an apply with another manager's field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// Its operation, "Apply" or "Update".
    pub operation: String,
    /// Its API version (as recorded in its entry).
    pub api_version: String,
    /// Its subresource, if any.
    pub subresource: Option<String>,
    /// The field, in upstream path format: `.spec.replicas`,
    /// `.spec.containers[name="nginx"].image`.
    pub field: String,
}

impl Conflict {
    /// Upstream `printManager`: `"m"`, `"m" using apps/v1`,
    /// `"m" with subresource "status" using v1`.
    pub fn manager_display(&self) -> String {
        let mut s = go_quote(&self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {}", go_quote(sub)));
        }
        if self.operation == OP_UPDATE {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// A `metav1.StatusCause` for a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCause {
    /// Always "FieldManagerConflict".
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// Errors of [`apply`].
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// 409 Conflict, reason "Conflict", with one cause per conflict.
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// 400 Bad Request (e.g. "metadata.managedFields must be nil").
    #[error("{0}")]
    BadRequest(String),
    /// The object or applied configuration does not fit the schema (duplicate or missing
    /// list-map keys, ...) or the live managed fields cannot be decoded. Upstream reports
    /// these as 500 Internal Error (`failed to create typed patch object ...`).
    #[error("{0}")]
    InvalidObject(String),
}

impl ApplyError {
    /// The status message.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The status causes (only conflicts have any).
    pub fn causes(&self) -> Vec<StatusCause> {
        match self {
            ApplyError::Conflicts(cs) => cs
                .iter()
                .map(|c| StatusCause {
                    reason: "FieldManagerConflict".to_string(),
                    message: format!("conflict with {}", c.manager_display()),
                    field: c.field.clone(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Upstream `getConflictMessage`.
fn conflicts_message(cs: &[Conflict]) -> String {
    if let [c] = cs {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            c.manager_display(),
            c.field
        );
    }
    // Group by manager, managers ordered like the sorted upstream identifiers.
    let mut groups: Vec<(String, &Conflict, Vec<&str>)> = Vec::new();
    for c in cs {
        let id = identifier(
            &c.manager,
            &c.operation,
            &c.api_version,
            c.subresource.as_deref().unwrap_or(""),
        );
        match groups.iter_mut().find(|g| g.0 == id) {
            Some(g) => g.2.push(&c.field),
            None => groups.push((id, c, vec![&c.field])),
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let mut lines = Vec::new();
    for (_, c, fields) in &groups {
        lines.push(format!("conflicts with {}:", c.manager_display()));
        for f in fields {
            lines.push(format!("- {f}"));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        cs.len(),
        lines.join("\n")
    )
}

fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Upstream `BuildManagerIdentifier`: the JSON of the entry without fieldsType, fieldsV1
/// and time, and without apiVersion for appliers.
fn identifier(manager: &str, operation: &str, api_version: &str, subresource: &str) -> String {
    let mut m = Map::new();
    if !manager.is_empty() {
        m.insert("manager".into(), Value::String(manager.into()));
    }
    if !operation.is_empty() {
        m.insert("operation".into(), Value::String(operation.into()));
    }
    if operation != OP_APPLY && !api_version.is_empty() {
        m.insert("apiVersion".into(), Value::String(api_version.into()));
    }
    if !subresource.is_empty() {
        m.insert("subresource".into(), Value::String(subresource.into()));
    }
    Value::Object(m).to_string()
}

/// A decoded `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: String,
    set: FieldSet,
}

impl Entry {
    fn id(&self) -> String {
        identifier(
            &self.manager,
            &self.operation,
            &self.api_version,
            &self.subresource,
        )
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), Value::String(self.manager.clone()));
        m.insert("operation".into(), Value::String(self.operation.clone()));
        if !self.api_version.is_empty() {
            m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        }
        if let Some(t) = &self.time {
            m.insert("time".into(), Value::String(t.clone()));
        }
        m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert(
                "subresource".into(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(m)
    }
}

/// The managed fields of an object, keyed by manager identifier.
#[derive(Debug, Clone, Default)]
struct Managed {
    entries: Vec<Entry>,
}

impl Managed {
    fn position(&self, id: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.id() == id)
    }

    fn upsert(&mut self, e: Entry) {
        match self.position(&e.id()) {
            Some(i) => self.entries[i] = e,
            None => self.entries.push(e),
        }
    }

    fn union_all(&self) -> FieldSet {
        let mut s = FieldSet::new();
        for e in &self.entries {
            s.union_in_place(&e.set);
        }
        s
    }

    /// Upstream `decodeManagedFields`.
    fn decode(list: &Value) -> Result<Managed, String> {
        let mut out = Managed::default();
        let items = match list {
            Value::Null => return Ok(out),
            Value::Array(a) => a,
            _ => return Err("managedFields is not a list".to_string()),
        };
        for (i, item) in items.iter().enumerate() {
            let Value::Object(m) = item else {
                return Err(format!("managed fields entry {i} is not an object"));
            };
            let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            match s("fieldsType").as_str() {
                "FieldsV1" => {}
                "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
                t => {
                    return Err(format!(
                        "invalid fieldsType {t:?} in managed fields entry {i}"
                    ))
                }
            }
            let set = match m.get("fieldsV1") {
                None | Some(Value::Null) => FieldSet::new(),
                Some(v) => {
                    FieldSet::from_fields_v1(v).map_err(|e| format!("error decoding set: {e}"))?
                }
            };
            out.upsert(Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: m.get("time").and_then(Value::as_str).map(str::to_string),
                subresource: s("subresource"),
                set,
            });
        }
        Ok(out)
    }

    /// Upstream `encodeManagedFields` + `sortEncodedManagedFields`: by operation
    /// ("Apply" first), then time (oldest first), manager, apiVersion, subresource.
    fn encode(mut self) -> Option<Value> {
        if self.entries.is_empty() {
            return None;
        }
        self.entries.sort_by(|a, b| {
            a.operation
                .cmp(&b.operation)
                .then_with(|| time_key(&a.time).cmp(time_key(&b.time)))
                .then_with(|| a.manager.cmp(&b.manager))
                .then_with(|| a.api_version.cmp(&b.api_version))
                .then_with(|| a.subresource.cmp(&b.subresource))
        });
        Some(Value::Array(
            self.entries.iter().map(Entry::to_json).collect(),
        ))
    }

    /// Upstream `capManagersManager.capUpdateManagers`.
    fn cap_update_managers(&mut self, max: usize) {
        let mut updaters: Vec<(String, Option<String>)> = self
            .entries
            .iter()
            .filter(|e| e.operation != OP_APPLY)
            .map(|e| (e.id(), e.time.clone()))
            .collect();
        if updaters.len() <= max {
            return;
        }
        updaters.sort_by(|a, b| {
            time_key(&a.1)
                .cmp(time_key(&b.1))
                .then_with(|| a.0.cmp(&b.0))
        });
        let mut count = updaters.len();
        let mut first_for_version: Vec<(String, String)> = Vec::new();
        for (id, _) in updaters {
            if count <= max {
                break;
            }
            let Some(pos) = self.position(&id) else {
                continue;
            };
            let version = self.entries[pos].api_version.clone();
            let Some(first) = first_for_version
                .iter()
                .find(|(v, _)| *v == version)
                .map(|(_, f)| f.clone())
            else {
                first_for_version.push((version, id));
                continue;
            };
            let bucket = identifier(ANCIENT_CHANGES_MANAGER, OP_UPDATE, &version, "");
            if self.position(&bucket).is_none() {
                if let Some(fp) = self.position(&first) {
                    let e = &mut self.entries[fp];
                    e.manager = ANCIENT_CHANGES_MANAGER.to_string();
                    e.operation = OP_UPDATE.to_string();
                    e.subresource = String::new();
                }
            }
            let merged = self.entries.remove(pos);
            if let Some(bp) = self.position(&bucket) {
                let b = &mut self.entries[bp];
                b.set.union_in_place(&merged.set);
                b.time = merged.time;
            }
            count -= 1;
        }
    }
}

fn time_key(t: &Option<String>) -> &str {
    t.as_deref().unwrap_or("")
}

/// Upstream `stripMetaManager`'s set: never owned by anyone.
fn strip_set() -> FieldSet {
    let f = |s: &str| PathElement::Field(s.to_string());
    let mut s = FieldSet::new();
    s.insert(&[f("apiVersion")]);
    s.insert(&[f("kind")]);
    s.insert(&[f("metadata")]);
    for m in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        s.insert(&[f("metadata"), f(m)]);
    }
    s
}

fn managed_fields_of(obj: &Value) -> Option<&Value> {
    obj.get("metadata").and_then(|m| m.get("managedFields"))
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(Value::Object(m)) = v.get_mut("metadata") {
        m.remove("managedFields");
    }
    v
}

fn set_managed_fields(obj: &mut Value, managed: Managed) {
    let encoded = managed.encode();
    let Value::Object(root) = obj else { return };
    match encoded {
        Some(list) => {
            let meta = root
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(m) = meta {
                m.insert("managedFields".into(), list);
            }
        }
        None => {
            if let Some(Value::Object(m)) = root.get_mut("metadata") {
                m.remove("managedFields");
            }
        }
    }
}

/// Removes from every manager except `skip` the fields the change modified/added (when
/// forced) or removed; returns the conflicts instead when not forced. Upstream
/// `Updater.update`.
fn update_managers(
    managed: &mut Managed,
    cmp: &typed::Comparison,
    skip: Option<&str>,
    force: bool,
) -> Result<(), Vec<Conflict>> {
    let changed = cmp.modified.union(&cmp.added);
    let mut conflicts: Vec<(String, &Entry, FieldSet)> = Vec::new();
    for e in &managed.entries {
        let id = e.id();
        if Some(id.as_str()) == skip {
            continue;
        }
        let c = e.set.intersection(&changed);
        if !c.is_empty() {
            conflicts.push((id, e, c));
        }
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::new();
        for (_, e, set) in &conflicts {
            for p in set.paths() {
                out.push(Conflict {
                    manager: e.manager.clone(),
                    operation: e.operation.clone(),
                    api_version: e.api_version.clone(),
                    subresource: (!e.subresource.is_empty()).then(|| e.subresource.clone()),
                    field: path_string(&p),
                });
            }
        }
        return Err(out);
    }
    for e in managed.entries.iter_mut() {
        if Some(e.id().as_str()) == skip {
            continue;
        }
        e.set = e.set.difference(&changed).difference(&cmp.removed);
    }
    managed.entries.retain(|e| !e.set.is_empty());
    Ok(())
}

/// The set of fields `obj` specifies, computed like upstream `TypedValue.ToFieldSet`: every
/// leaf, every list-map/set item (as a member, `.` in FieldsV1), atomic lists/maps/structs as
/// single leaves, empty or null struct fields as leaves.
pub fn field_set(obj: &Value, schema: &dyn SchemaLookup, root: NodeId) -> Result<FieldSet, String> {
    Walker { schema }.to_field_set(&Ty::root(root), obj)
}

/// Server-side apply of `applied` (the request body) by `manager` onto `live` (None on
/// create). Returns the new object with `metadata.managedFields` updated. The caller keeps
/// doing everything else a write does (status reset, defaulting, validation, uid,
/// resourceVersion, generation).
#[allow(clippy::too_many_arguments)]
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    schema: &dyn SchemaLookup,
    root: NodeId,
    now: &str,
) -> Result<Value, ApplyError> {
    let walker = Walker { schema };
    let ty = Ty::root(root);
    if !applied.is_object() {
        return Err(ApplyError::BadRequest(
            "the applied configuration is not an object".into(),
        ));
    }
    if managed_fields_of(applied).is_some_and(|v| !v.is_null()) {
        return Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let mut managed = match live.and_then(managed_fields_of) {
        Some(list) => Managed::decode(list).map_err(|e| {
            ApplyError::InvalidObject(format!("failed to decode managed fields: {e}"))
        })?,
        None => Managed::default(),
    };
    let live_v = live
        .map(without_managed_fields)
        .unwrap_or_else(|| Value::Object(Map::new()));
    let applied_v = without_managed_fields(applied);
    let invalid = |what: &str, e: String| ApplyError::InvalidObject(format!("{what}: {e}"));

    // Objects that were never tracked: hand their existing fields to "before-first-apply".
    if managed.entries.is_empty() && live.is_some() {
        let cmp = walker
            .compare(&ty, &Value::Object(Map::new()), &live_v)
            .map_err(|e| invalid("failed to create manager for existing fields", e))?;
        let set = cmp.modified.union(&cmp.added).difference(&strip_set());
        if !set.is_empty() {
            managed.entries.push(Entry {
                manager: BEFORE_FIRST_APPLY_MANAGER.into(),
                operation: OP_UPDATE.into(),
                api_version: api_version.into(),
                time: Some(now.into()),
                subresource: String::new(),
                set,
            });
        }
    }

    let config_set = walker
        .to_field_set_strict(&ty, &applied_v)
        .map_err(|e| invalid("failed to create typed patch object", e))?;
    let merged = walker
        .merge(&ty, &live_v, &applied_v)
        .map_err(|e| invalid("failed to merge config", e))?;

    let apply_id = identifier(manager, OP_APPLY, api_version, "");
    let previous = managed
        .position(&apply_id)
        .map(|i| managed.entries[i].clone());
    managed.upsert(Entry {
        manager: manager.into(),
        operation: OP_APPLY.into(),
        api_version: api_version.into(),
        time: previous.as_ref().and_then(|p| p.time.clone()),
        subresource: String::new(),
        set: config_set,
    });

    // Prune what this applier owned last time, no longer applies, and nobody else owns.
    let mut new_obj = merged;
    if let Some(last) = previous.as_ref().map(|p| &p.set).filter(|s| !s.is_empty()) {
        let owned = walker.ensure_named_fields(&ty, &managed.union_all());
        let to_remove = walker.ensure_named_fields(&ty, last).difference(&owned);
        walker.remove_items(&ty, &mut new_obj, &to_remove, &Vec::new());
    }

    let cmp = walker
        .compare(&ty, &live_v, &new_obj)
        .map_err(|e| invalid("failed to compare objects", e))?;
    update_managers(&mut managed, &cmp, Some(&apply_id), force).map_err(ApplyError::Conflicts)?;

    let changed = !fieldset::values_equal(&live_v, &new_obj);
    if let Some(i) = managed.position(&apply_id) {
        let e = &mut managed.entries[i];
        e.set = e.set.difference(&strip_set());
        if e.set.is_empty() {
            managed.entries.remove(i);
        } else if changed || e.time.is_none() {
            e.time = Some(now.into());
        }
    }
    managed.cap_update_managers(MAX_UPDATE_MANAGERS);

    strip_nulls(&mut new_obj);
    restore_protected_metadata(&mut new_obj, &live_v);
    set_managed_fields(&mut new_obj, managed);
    Ok(new_obj)
}

fn restore_protected_metadata(obj: &mut Value, live: &Value) {
    let live_meta = live.get("metadata").and_then(Value::as_object);
    let Value::Object(root) = obj else { return };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(meta) = meta else { return };
    for k in PROTECTED_METADATA {
        match live_meta.and_then(|m| m.get(*k)) {
            Some(v) => {
                meta.insert((*k).to_string(), v.clone());
            }
            None => {
                meta.remove(*k);
            }
        }
    }
}

/// Records a non-apply write (create, update, patch; `subresource` e.g. "status") by
/// `manager`: fields the write added or changed (old → new) move to `manager`'s Update
/// entry for (`api_version`, `subresource`); others lose them. Sets
/// `new.metadata.managedFields`. Upstream `FieldManager.UpdateNoErrors`: on internal error
/// the managed fields are dropped.
///
/// Managed fields sent in `new` are honoured (clients may edit them directly) unless this
/// is a subresource write; `[]` or `[{}]` resets them. An existing object that has no
/// managed fields stays untracked (upstream `skipNonAppliedManager`).
#[allow(clippy::too_many_arguments)]
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    schema: &dyn SchemaLookup,
    root: NodeId,
    now: &str,
) {
    let sent = managed_fields_of(new).cloned();
    if let Value::Object(m) = new {
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            meta.remove("managedFields");
        }
    }
    // Errors (undecodable managed fields, invalid list keys) leave the object untracked.
    if let Ok(Some(managed)) = track_update_inner(
        old,
        new,
        sent,
        manager,
        api_version,
        subresource,
        schema,
        root,
        now,
    ) {
        set_managed_fields(new, managed);
    }
}

fn is_reset(list: &Value) -> bool {
    match list {
        Value::Array(a) if a.is_empty() => true,
        Value::Array(a) if a.len() == 1 => a[0].as_object().is_some_and(|o| o.is_empty()),
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
fn track_update_inner(
    old: Option<&Value>,
    new: &Value,
    sent: Option<Value>,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    schema: &dyn SchemaLookup,
    root: NodeId,
    now: &str,
) -> Result<Option<Managed>, String> {
    let walker = Walker { schema };
    let ty = Ty::root(root);
    let decode_old = || match old.and_then(managed_fields_of) {
        Some(list) => Managed::decode(list),
        None => Ok(Managed::default()),
    };
    let mut managed = match (&sent, subresource) {
        (Some(list), None) if is_reset(list) => Managed::default(),
        (Some(list), None) => match Managed::decode(list) {
            Ok(m) if !m.entries.is_empty() => m,
            _ => decode_old()?,
        },
        _ => decode_old()?,
    };
    if managed.entries.is_empty() && old.is_some() {
        // Existing, untracked object: stay untracked.
        return Ok(None);
    }
    let old_v = old
        .map(without_managed_fields)
        .unwrap_or_else(|| Value::Object(Map::new()));
    let cmp = walker.compare(&ty, &old_v, new)?;
    update_managers(&mut managed, &cmp, None, true).map_err(|_| "unexpected conflicts")?;
    let set = cmp.modified.union(&cmp.added).difference(&strip_set());
    if !set.is_empty() {
        let sub = subresource.unwrap_or("");
        let id = identifier(manager, OP_UPDATE, api_version, sub);
        match managed.position(&id) {
            Some(i) => {
                let e = &mut managed.entries[i];
                e.set.union_in_place(&set);
                e.time = Some(now.into());
            }
            None => managed.entries.push(Entry {
                manager: manager.into(),
                operation: OP_UPDATE.into(),
                api_version: api_version.into(),
                time: Some(now.into()),
                subresource: sub.into(),
                set,
            }),
        }
    }
    managed.cap_update_managers(MAX_UPDATE_MANAGERS);
    Ok(Some(managed))
}
