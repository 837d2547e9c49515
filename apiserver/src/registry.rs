//! The generic registry: create, get, list, update, patch, apply, delete and
//! deletecollection for every resource, over the storage backend, with the per-kind
//! strategy deciding defaults and validation. One code path for all kinds.

use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::resources::{ResourceInfo, Subresource};
use crate::schema::SchemaLookup;
use crate::strategy::{self, Strategy};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use store::{Backend, KeyValue, StoreError};

/// How unknown fields in a write are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// Per-request write options.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: String,
    pub field_validation: FieldValidation,
    pub force: bool,
    /// Who writes (admission plugins such as NodeRestriction and webhooks read it); empty
    /// for the server's own writes.
    pub user: crate::auth::UserInfo,
}

/// The kind of patch document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

/// A storage key for an object.
pub fn key(res: &ResourceInfo, ns: &str, name: &str) -> String {
    format!(
        "{}{}",
        prefix(res, Some(ns).filter(|_| res.namespaced)),
        name
    )
}

/// The storage prefix of a resource, optionally within one namespace (ends with '/').
pub fn prefix(res: &ResourceInfo, ns: Option<&str>) -> String {
    let res = crate::conversion::storage_of(res);
    let group = if res.group.is_empty() {
        "core"
    } else {
        res.group
    };
    match ns {
        Some(ns) if res.namespaced && !ns.is_empty() => {
            format!("/registry/{group}/{}/{ns}/", res.plural)
        }
        _ => format!("/registry/{group}/{}/", res.plural),
    }
}

/// Decodes a stored value into the resource's form and stamps its resourceVersion.
pub fn decode(res: &ResourceInfo, kv: &KeyValue) -> ApiResult<Value> {
    let v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("decoding stored object {}: {e}", kv.key)))?;
    let mut v = crate::conversion::from_storage(res, v);
    meta::meta_mut(&mut v).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
    Ok(v)
}

pub fn encode(res: &ResourceInfo, obj: &Value) -> Bytes {
    let mut o = crate::conversion::to_storage(res, obj.clone());
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    Bytes::from(serde_json::to_vec(&o).unwrap_or_default())
}

/// Lists the fields of an object its schema does not know (for `fieldValidation`).
pub type UnknownFields = Arc<dyn Fn(&str, &Value) -> Vec<String> + Send + Sync>;

pub struct Registry {
    pub store: Arc<dyn Backend>,
    pub schema: Arc<dyn SchemaLookup>,
    pub unknown_fields: UnknownFields,
    /// Namespace phases for NamespaceLifecycle admission.
    pub namespaces: Arc<crate::nscache::NamespaceCache>,
    /// LimitRanges, ResourceQuotas and PriorityClasses for admission (`store` records
    /// writes for them).
    pub caches: Arc<crate::objcache::AdmissionCaches>,
    /// ClusterIP and NodePort allocation for core/v1 Services (unset: none).
    pub services: std::sync::OnceLock<Arc<crate::services::ServiceAllocator>>,
    /// Admission plugins switched off (`--disable-admission-plugins`, upstream names).
    pub disabled_admission: std::sync::OnceLock<Vec<String>>,
    /// The RBAC index, for the privilege-escalation checks on RBAC writes.
    pub rbac: crate::rbac::SharedRbacIndex,
    /// Pods and volumes by node, for NodeRestriction.
    pub nodes: crate::nodegraph::SharedGraph,
    /// Dynamic admission webhooks (unset: none are called).
    pub webhooks: std::sync::OnceLock<Arc<crate::webhooks::Webhooks>>,
}

/// What an update-style operation produced.
pub struct Written {
    pub object: Value,
    pub created: bool,
    pub warnings: Vec<String>,
}

/// Create and update bodies that fail strict decoding are reported the way upstream's
/// `transformDecodeError` does: `Pod in version "v1" cannot be handled as a Pod: ...`.
/// (Patches report the bare decoding error.)
fn body_decode_error(res: &ResourceInfo, e: ApiError) -> ApiError {
    if e.code == 400 && e.message.starts_with("strict decoding error:") {
        ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: {msg}",
            kind = res.kind,
            v = res.version,
            msg = e.message
        ))
    } else {
        e
    }
}

const GENERATE_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn generate_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..5)
        .map(|_| GENERATE_CHARS[rng.random_range(0..GENERATE_CHARS.len())] as char)
        .collect()
}

impl Registry {
    fn strategy(res: &ResourceInfo) -> &'static dyn Strategy {
        strategy::for_resource(res.group, res.plural)
    }

    /// Type-checks an incoming object against its Go type and applies `fieldValidation`.
    /// Returns the normalized object (unknown fields dropped) and warnings.
    pub fn decode_typed(
        &self,
        res: &ResourceInfo,
        obj: Value,
        validation: FieldValidation,
    ) -> ApiResult<(Value, Vec<String>)> {
        let mut warnings = Vec::new();
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "Object 'Kind' is missing in the request body",
            ));
        }
        if validation != FieldValidation::Ignore {
            let unknown = (self.unknown_fields)(&res.schema_name, &obj);
            if !unknown.is_empty() {
                let msgs: Vec<String> = unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                if validation == FieldValidation::Strict {
                    return Err(ApiError::bad_request(format!(
                        "strict decoding error: {}",
                        msgs.join(", ")
                    )));
                }
                warnings.extend(msgs);
            }
        }
        let typed = (res.roundtrip)(&obj).map_err(|e| {
            ApiError::bad_request(format!("{} in body cannot be decoded: {e}", res.kind))
        })?;
        Ok((typed, warnings))
    }

    fn check_type_meta(res: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
        let want_av = res.api_version();
        let m = obj
            .as_object_mut()
            .ok_or_else(|| ApiError::bad_request("the request body must be an object"))?;
        match m.get("apiVersion").and_then(Value::as_str) {
            Some(av) if av != want_av => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want_av})"
                )))
            }
            _ => {}
        }
        match m.get("kind").and_then(Value::as_str) {
            Some(k) if k != res.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    res.kind
                )))
            }
            _ => {}
        }
        m.insert("apiVersion".into(), json!(want_av));
        m.insert("kind".into(), json!(res.kind));
        Ok(())
    }

    fn check_namespace(res: &ResourceInfo, obj: &mut Value, ns: &str) -> ApiResult<()> {
        if !res.namespaced {
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                if m.get("namespace").and_then(Value::as_str) == Some("") {
                    m.remove("namespace");
                }
            }
            return Ok(());
        }
        let have = meta::namespace(obj).to_string();
        if !have.is_empty() && have != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta::meta_mut(obj).insert("namespace".into(), json!(ns));
        Ok(())
    }

    /// Runs strategy validation plus object-meta validation; 422 on any cause.
    fn validate(res: &ResourceInfo, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
        let s = Self::strategy(res);
        let mut causes: Vec<Cause> = Vec::new();
        crate::validation::validate_object_meta(obj, res.namespaced, s.name_rule(), &mut causes);
        s.validate(obj, &mut causes);
        if let Some(old) = old {
            s.validate_update(obj, old, &mut causes);
        }
        if causes.is_empty() {
            Ok(())
        } else {
            let name = meta::name(obj);
            let name = if name.is_empty() {
                meta::meta_str(obj, "generateName").unwrap_or("")
            } else {
                name
            };
            Err(ApiError::invalid(res.kind, res.group, name, causes))
        }
    }

    /// NamespaceLifecycle: the namespace must exist and not be terminating. Answered from
    /// the namespace cache; a namespace the cache has not seen is read from the store.
    pub(crate) async fn namespace_admission(
        &self,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
    ) -> ApiResult<()> {
        if !res.namespaced || !self.plugin_enabled("NamespaceLifecycle") {
            return Ok(());
        }
        let phase = match self.namespaces.get(ns) {
            Some(p) => p,
            None => {
                let nsres =
                    crate::resources::find("", "v1", "namespaces").expect("namespaces served");
                let (kv, _) = self.store.get(&key(nsres, "", ns), 0).await?;
                let Some(kv) = kv else {
                    return Err(ApiError::not_found("namespaces", ns));
                };
                crate::nscache::phase_of(&decode(nsres, &kv)?)
            }
        };
        if phase == crate::nscache::Phase::Terminating {
            return Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                res.qualified_name(),
            )));
        }
        Ok(())
    }

    fn track(
        &self,
        res: &ResourceInfo,
        old: Option<&Value>,
        new: &mut Value,
        manager: &str,
        sub: Option<&str>,
    ) {
        if let Some(root) = self.schema.root(&res.schema_name) {
            crate::managedfields::track_update(
                old,
                new,
                manager,
                &res.api_version(),
                sub,
                self.schema.as_ref(),
                root,
                &meta::now(),
            );
        }
    }

    /// POST: create a new object.
    pub async fn create(
        &self,
        res: &ResourceInfo,
        ns: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let mut obj = obj;
        Self::check_type_meta(res, &mut obj)?;
        let (mut obj, warnings) = self
            .decode_typed(res, obj, opts.field_validation)
            .map_err(|e| body_decode_error(res, e))?;
        Self::check_namespace(res, &mut obj, ns)?;
        self.prepare_new(res, &mut obj)?;
        let mut warnings = warnings;
        warnings.extend(self.admit_create(res, ns, &mut obj, opts).await?);
        self.track(res, None, &mut obj, &opts.field_manager, None);
        self.persist_new(res, ns, obj, opts, warnings).await
    }

    /// Sets server-owned metadata and defaults on a new object and validates it.
    fn prepare_new(&self, res: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
        let s = Self::strategy(res);
        {
            let m = meta::meta_mut(obj);
            if m.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                if let Some(g) = m
                    .get("generateName")
                    .and_then(Value::as_str)
                    .filter(|g| !g.is_empty())
                {
                    let mut base = g.to_string();
                    base.truncate(58);
                    let name = format!("{base}{}", generate_suffix());
                    m.insert("name".into(), json!(name));
                }
            }
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(meta::now()));
            for k in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                m.remove(k);
            }
        }
        s.prepare_create(obj);
        s.default(obj);
        if s.tracks_generation() {
            meta::meta_mut(obj).insert("generation".into(), json!(1));
        } else {
            meta::meta_mut(obj).remove("generation");
        }
        Self::validate(res, obj, None)
    }

    async fn persist_new(
        &self,
        res: &ResourceInfo,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
        warnings: Vec<String>,
    ) -> ApiResult<Written> {
        let name = meta::name(&obj).to_string();
        let claims = match self.service_allocator(res) {
            Some(a) => Some(a.allocate_create(&mut obj, opts.dry_run).await?),
            None => None,
        };
        let k = key(res, ns, &name);
        if opts.dry_run {
            if self.store.get(&k, 0).await?.0.is_some() {
                return Err(ApiError::already_exists(&res.qualified_name(), &name));
            }
            return Ok(Written {
                object: obj,
                created: true,
                warnings,
            });
        }
        let stored = self.store.create(&k, encode(res, &obj)).await;
        if let (Err(_), Some(c)) = (&stored, claims) {
            c.release().await;
        }
        match stored {
            Ok(rev) => {
                meta::meta_mut(&mut obj).insert("resourceVersion".into(), json!(rev.to_string()));
                Ok(Written {
                    object: obj,
                    created: true,
                    warnings,
                })
            }
            Err(StoreError::AlreadyExists) => {
                Err(ApiError::already_exists(&res.qualified_name(), &name))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// GET one object.
    pub async fn get(&self, res: &ResourceInfo, ns: &str, name: &str) -> ApiResult<Value> {
        let (kv, _) = self.store.get(&key(res, ns, name), 0).await?;
        match kv {
            Some(kv) => decode(res, &kv),
            None => Err(ApiError::not_found(&res.qualified_name(), name)),
        }
    }

    /// Applies main-resource or status update rules: what the client may change.
    fn merge_for_update(
        &self,
        res: &ResourceInfo,
        sub: Option<Subresource>,
        old: &Value,
        new: &mut Value,
    ) {
        let s = Self::strategy(res);
        match sub {
            Some(Subresource::Status) => {
                // Only status changes; metadata that status writers may not touch is reset.
                let status = new.get("status").cloned();
                let mut merged = old.clone();
                match status {
                    Some(st) => merged["status"] = st,
                    None => {
                        if let Some(m) = merged.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                if let Some(mf) = meta::meta(new)
                    .and_then(|m| m.get("managedFields"))
                    .cloned()
                {
                    meta::meta_mut(&mut merged).insert("managedFields".into(), mf);
                }
                *new = merged;
            }
            _ => {
                if res.has(Subresource::Status) {
                    match old.get("status") {
                        Some(st) => new["status"] = st.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
            }
        }
        // Server-owned metadata always comes from the stored object.
        let om = meta::meta(old).cloned().unwrap_or_default();
        let nm = meta::meta_mut(new);
        for k in [
            "uid",
            "creationTimestamp",
            "name",
            "namespace",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generateName",
        ] {
            match om.get(k) {
                Some(v) => {
                    nm.insert(k.into(), v.clone());
                }
                None => {
                    nm.remove(k);
                }
            }
        }
        if s.tracks_generation() {
            let spec_changed = strip_meta_status(old) != strip_meta_status(new);
            let g = om.get("generation").and_then(Value::as_i64).unwrap_or(1);
            meta::meta_mut(new).insert(
                "generation".into(),
                json!(if spec_changed { g + 1 } else { g }),
            );
        } else {
            meta::meta_mut(new).remove("generation");
        }
        s.default(new);
    }

    /// The shared read-modify-write loop behind PUT, PATCH and apply. `mutate` gets the
    /// current object (None if absent) and returns the desired object; `create_ok`
    /// lets an absent object be created (apply, PUT on some kinds).
    #[allow(clippy::too_many_arguments)]
    pub async fn update_with<F>(
        &self,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        sub: Option<Subresource>,
        opts: &WriteOptions,
        create_ok: bool,
        mut mutate: F,
    ) -> ApiResult<Written>
    where
        F: FnMut(Option<&Value>) -> ApiResult<(Value, Vec<String>)>,
    {
        let k = key(res, ns, name);
        for _attempt in 0..16 {
            let (kv, _) = self.store.get(&k, 0).await?;
            let old = match &kv {
                Some(kv) => Some(decode(res, kv)?),
                None => None,
            };
            let Some(old) = old else {
                if !create_ok || sub.is_some() {
                    return Err(ApiError::not_found(&res.qualified_name(), name));
                }
                let (mut obj, warnings) = mutate(None)?;
                Self::check_namespace(res, &mut obj, ns)?;
                if meta::name(&obj) != name {
                    return Err(ApiError::bad_request(
                        "the name of the object does not match the name on the URL",
                    ));
                }
                self.prepare_new(res, &mut obj)?;
                let mut warnings = warnings;
                warnings.extend(self.admit_create(res, ns, &mut obj, opts).await?);
                return self.persist_new(res, ns, obj, opts, warnings).await;
            };
            let (mut new, warnings) = mutate(Some(&old))?;
            Self::check_namespace(res, &mut new, ns)?;
            if meta::name(&new) != name {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            let old_rv = meta::resource_version(&old).unwrap_or("").to_string();
            if let Some(rv) = meta::resource_version(&new) {
                if rv != old_rv {
                    return Err(ApiError::stale(&res.qualified_name(), name));
                }
            }
            self.merge_for_update(res, sub, &old, &mut new);
            if sub.is_none() && crate::services::is_services(res) {
                crate::services::prepare_update(&mut new, &old);
            }
            meta::meta_mut(&mut new).insert("resourceVersion".into(), json!(old_rv));
            Self::validate(res, &new, Some(&old))?;
            if new == old {
                return Ok(Written {
                    object: old,
                    created: false,
                    warnings,
                });
            }
            let mut warnings = warnings;
            crate::nodegraph::admit(
                self,
                &self.nodes,
                &opts.user,
                crate::nodeauth::Operation::Update,
                res,
                if sub == Some(Subresource::Status) {
                    "status"
                } else {
                    ""
                },
                ns,
                name,
                Some(&new),
                Some(&old),
            )
            .await?;
            if sub.is_none() {
                warnings.extend(self.admit_update(res, ns, &old, &mut new, opts).await?);
            }
            if new == old {
                return Ok(Written {
                    object: old,
                    created: false,
                    warnings,
                });
            }
            let completes_delete = meta::meta_str(&new, "deletionTimestamp").is_some()
                && meta::finalizers(&new).is_empty();
            let claims = match self.service_allocator(res) {
                Some(a) if sub.is_none() && !completes_delete => {
                    Some(a.allocate_update(&mut new, &old, opts.dry_run).await?)
                }
                _ => None,
            };
            if opts.dry_run {
                return Ok(Written {
                    object: new,
                    created: false,
                    warnings,
                });
            }
            // Removing the last finalizer of an object being deleted completes the delete.
            let spec_finalizers = res.group.is_empty()
                && res.plural == "namespaces"
                && new
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty());
            if meta::meta_str(&new, "deletionTimestamp").is_some()
                && meta::finalizers(&new).is_empty()
                && !spec_finalizers
            {
                let grace = meta::meta(&new)
                    .and_then(|m| m.get("deletionGracePeriodSeconds"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if grace == 0 {
                    let kvv = kv.as_ref().expect("old exists");
                    match self.store.delete(&k, kvv.mod_revision).await {
                        Ok((rev, _)) => {
                            if let Some(a) = self.service_allocator(res) {
                                a.release_service(&old).await;
                            }
                            meta::meta_mut(&mut new)
                                .insert("resourceVersion".into(), json!(rev.to_string()));
                            return Ok(Written {
                                object: new,
                                created: false,
                                warnings,
                            });
                        }
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(StoreError::NotFound) => {
                            return Err(ApiError::not_found(&res.qualified_name(), name))
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            let rev_expected = kv.as_ref().map(|k| k.mod_revision).unwrap_or(0);
            let stored = self.store.update(&k, encode(res, &new), rev_expected).await;
            if let Some(c) = claims {
                c.finish(stored.is_ok()).await;
            }
            match stored {
                Ok(rev) => {
                    meta::meta_mut(&mut new)
                        .insert("resourceVersion".into(), json!(rev.to_string()));
                    return Ok(Written {
                        object: new,
                        created: false,
                        warnings,
                    });
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound) => {
                    return Err(ApiError::not_found(&res.qualified_name(), name))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::conflict(
            &res.qualified_name(),
            name,
            "too many concurrent updates, please try again",
        ))
    }

    /// PUT of the main resource or the status subresource.
    pub async fn replace(
        &self,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        sub: Option<Subresource>,
        body: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let mut body = body;
        Self::check_type_meta(res, &mut body)?;
        let (body, warnings) = self
            .decode_typed(res, body, opts.field_validation)
            .map_err(|e| body_decode_error(res, e))?;
        let sub_name = sub.map(|_| "status");
        let manager = opts.field_manager.clone();
        self.update_with(res, ns, name, sub, opts, false, |old| {
            let mut new = body.clone();
            if old.is_some() {
                self.track(res, old, &mut new, &manager, sub_name);
            }
            Ok((new, warnings.clone()))
        })
        .await
    }

    /// PATCH of the main resource or the status subresource.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        sub: Option<Subresource>,
        ptype: PatchType,
        patch: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let root = self.schema.root(&res.schema_name);
        let sub_name = sub.map(|_| "status");
        let create_ok = ptype == PatchType::Apply;
        self.update_with(res, ns, name, sub, opts, create_ok, |old| {
            let mut new = match (ptype, old) {
                (PatchType::Apply, _) => {
                    let mut applied = patch.clone();
                    Self::check_type_meta(res, &mut applied)?;
                    let (applied, _) = self.decode_typed(res, applied, opts.field_validation)?;
                    let Some(root) = root else {
                        return Err(ApiError::internal("no schema for apply"));
                    };
                    let mut base = old.cloned();
                    if let Some(b) = base.as_mut() {
                        if let Some(m) = b.get_mut("metadata").and_then(Value::as_object_mut) {
                            m.remove("resourceVersion");
                        }
                    }
                    let mut out = crate::managedfields::apply(
                        base.as_ref(),
                        &applied,
                        &opts.field_manager,
                        opts.force,
                        &res.api_version(),
                        self.schema.as_ref(),
                        root,
                        &meta::now(),
                    )
                    .map_err(|e| apply_error(res, name, e))?;
                    if old.is_none() {
                        let m = meta::meta_mut(&mut out);
                        m.insert("name".into(), json!(name));
                    }
                    if let Some(rv) = meta::resource_version(&applied) {
                        meta::meta_mut(&mut out).insert("resourceVersion".into(), json!(rv));
                    }
                    return Ok((out, Vec::new()));
                }
                (_, None) => return Err(ApiError::not_found(&res.qualified_name(), name)),
                (PatchType::Json, Some(old)) => {
                    crate::patch::json_patch(old, &patch).map_err(patch_error)?
                }
                (PatchType::Merge, Some(old)) => {
                    crate::patch::merge_patch(old, &patch).map_err(patch_error)?
                }
                (PatchType::Strategic, Some(old)) => {
                    crate::patch::strategic_merge_patch(old, &patch, self.schema.as_ref(), root)
                        .map_err(patch_error)?
                }
            };
            let old = old.expect("old exists for non-apply patches");
            Self::check_type_meta(res, &mut new)?;
            let (mut new, warnings) = self.decode_typed(res, new, opts.field_validation)?;
            // A patch that does not mention resourceVersion is unconditional.
            if meta::resource_version(&new) == meta::resource_version(old) {
                meta::meta_mut(&mut new).remove("resourceVersion");
            }
            self.track(res, Some(old), &mut new, &opts.field_manager, sub_name);
            Ok((new, warnings))
        })
        .await
    }

    /// DELETE of one object, honouring grace periods, finalizers, preconditions and the
    /// propagation policy. Returns the object as deleted (or as marked for deletion) and
    /// whether it is gone from storage.
    pub async fn delete(
        &self,
        res: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<(Value, bool)> {
        let k = key(res, ns, name);
        let s = Self::strategy(res);
        for _ in 0..16 {
            let (kv, _) = self.store.get(&k, 0).await?;
            let Some(kv) = kv else {
                return Err(ApiError::not_found(&res.qualified_name(), name));
            };
            let mut obj = decode(res, &kv)?;
            crate::nodegraph::admit(
                self,
                &self.nodes,
                &opts.user,
                crate::nodeauth::Operation::Delete,
                res,
                "",
                ns,
                name,
                None,
                Some(&obj),
            )
            .await?;
            if !opts.user.name.is_empty() {
                let hook_req = crate::webhooks::Request {
                    res,
                    subresource: "",
                    operation: crate::admission::webhook::Operation::Delete,
                    namespace: ns,
                    name,
                    user: &opts.user,
                    dry_run: opts.dry_run,
                };
                self.call_webhooks(&hook_req, None, Some(&obj), false)
                    .await?;
            }
            if let Some(uid) = &opts.precondition_uid {
                let have = meta::meta_str(&obj, "uid").unwrap_or("");
                if have != uid {
                    return Err(ApiError::conflict(
                        &res.qualified_name(),
                        name,
                        &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
                    ));
                }
            }
            if let Some(rv) = &opts.precondition_rv {
                let have = meta::resource_version(&obj).unwrap_or("");
                if have != rv {
                    return Err(ApiError::conflict(
                        &res.qualified_name(),
                        name,
                        &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"),
                    ));
                }
            }
            let mut finalizers = meta::finalizers(&obj);
            let before = finalizers.clone();
            match opts.propagation.as_deref() {
                Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
                    finalizers.push("orphan".into())
                }
                Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                    finalizers.push("foregroundDeletion".into())
                }
                _ => {}
            }
            if res.plural == "namespaces" && res.group.is_empty() {
                // Namespaces always terminate through their spec finalizer.
                let already = meta::meta_str(&obj, "deletionTimestamp").is_some();
                if !already {
                    meta::meta_mut(&mut obj).insert("deletionTimestamp".into(), json!(meta::now()));
                    meta::meta_mut(&mut obj).insert("deletionGracePeriodSeconds".into(), json!(0));
                    obj["status"]["phase"] = json!("Terminating");
                }
                let spec_fin = obj
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                if spec_fin || !finalizers.is_empty() {
                    if finalizers != before {
                        meta::meta_mut(&mut obj).insert("finalizers".into(), json!(finalizers));
                    }
                    if opts.dry_run || already && finalizers == before {
                        return Ok((obj, false));
                    }
                    match self.store_marked(res, &k, obj, kv.mod_revision).await? {
                        Some(marked) => return Ok((marked, false)),
                        None => continue,
                    }
                }
            }
            let grace = s.grace_period(&obj, opts.grace_period);
            let already_deleting = meta::meta_str(&obj, "deletionTimestamp").is_some();
            if grace > 0 || !finalizers.is_empty() {
                let current_grace = meta::meta(&obj)
                    .and_then(|m| m.get("deletionGracePeriodSeconds"))
                    .and_then(Value::as_i64);
                let shorten = current_grace.is_none_or(|g| grace < g);
                if already_deleting && !shorten && finalizers == before {
                    return Ok((obj, false));
                }
                if grace == 0 && finalizers.is_empty() {
                    // fall through to the real delete below
                } else {
                    let m = meta::meta_mut(&mut obj);
                    let when = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                    if !already_deleting || shorten {
                        m.insert("deletionTimestamp".into(), json!(meta::format_time(when)));
                        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                    }
                    if !finalizers.is_empty() {
                        m.insert("finalizers".into(), json!(finalizers));
                    }
                    if opts.dry_run {
                        return Ok((obj, false));
                    }
                    match self.store_marked(res, &k, obj, kv.mod_revision).await? {
                        Some(marked) => return Ok((marked, false)),
                        None => continue,
                    }
                }
            }
            if opts.dry_run {
                return Ok((obj, true));
            }
            match self.store.delete(&k, kv.mod_revision).await {
                Ok((rev, _)) => {
                    if let Some(a) = self.service_allocator(res) {
                        a.release_service(&obj).await;
                    }
                    meta::meta_mut(&mut obj)
                        .insert("resourceVersion".into(), json!(rev.to_string()));
                    return Ok((obj, true));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound) => {
                    return Err(ApiError::not_found(&res.qualified_name(), name))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::conflict(
            &res.qualified_name(),
            name,
            "too many concurrent updates",
        ))
    }
}

impl Registry {
    /// Stores an object marked for deletion (deletionTimestamp, finalizers) if it is still
    /// at `rev`; None on a revision conflict, for the caller to retry.
    async fn store_marked(
        &self,
        res: &ResourceInfo,
        k: &str,
        mut obj: Value,
        rev: i64,
    ) -> ApiResult<Option<Value>> {
        match self.store.update(k, encode(res, &obj), rev).await {
            Ok(new_rev) => {
                meta::meta_mut(&mut obj)
                    .insert("resourceVersion".into(), json!(new_rev.to_string()));
                Ok(Some(obj))
            }
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Options of a DELETE (query parameters or a DeleteOptions body).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
    /// Who deletes (NodeRestriction reads it); empty for the server's own deletes.
    pub user: crate::auth::UserInfo,
}

impl DeleteOptions {
    /// Reads a DeleteOptions JSON body over query-derived defaults.
    pub fn merge_body(&mut self, body: &Value) -> ApiResult<()> {
        if let Some(g) = body.get("gracePeriodSeconds") {
            self.grace_period = g.as_i64();
        }
        if let Some(p) = body.get("propagationPolicy").and_then(Value::as_str) {
            self.propagation = Some(p.to_string());
        }
        if body.get("orphanDependents").and_then(Value::as_bool) == Some(true)
            && self.propagation.is_none()
        {
            self.propagation = Some("Orphan".into());
        }
        if let Some(pre) = body.get("preconditions") {
            self.precondition_uid = pre.get("uid").and_then(Value::as_str).map(str::to_string);
            self.precondition_rv = pre
                .get("resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if let Some(dr) = body.get("dryRun").and_then(Value::as_array) {
            self.dry_run |= dr.iter().any(|v| v == "All");
        }
        if let Some(p) = &self.propagation {
            if !["Orphan", "Background", "Foreground"].contains(&p.as_str()) {
                return Err(ApiError::invalid(
                    "DeleteOptions",
                    "",
                    "",
                    vec![Cause::not_supported(
                        "propagationPolicy",
                        &json!(p),
                        &["Foreground", "Background", "Orphan", "nil"],
                    )],
                ));
            }
        }
        Ok(())
    }
}

fn strip_meta_status(v: &Value) -> Map<String, Value> {
    let mut m = v.as_object().cloned().unwrap_or_default();
    m.remove("metadata");
    m.remove("status");
    m
}

fn patch_error(e: crate::patch::PatchError) -> ApiError {
    let code = e.status_code();
    if code == 422 {
        ApiError::new(422, "Invalid", e.to_string())
    } else {
        ApiError::new(code, "BadRequest", e.to_string())
    }
}

fn apply_error(res: &ResourceInfo, name: &str, e: crate::managedfields::ApplyError) -> ApiError {
    match &e {
        crate::managedfields::ApplyError::Conflicts(_) => {
            let causes: Vec<Value> = e
                .causes()
                .into_iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            let mut err = ApiError::new(409, "Conflict", e.message());
            let mut d = json!({"name": name, "kind": res.plural, "causes": causes});
            if !res.group.is_empty() {
                d["group"] = json!(res.group);
            }
            err = err.with_details(d);
            err
        }
        _ => ApiError::new(422, "Invalid", e.to_string()),
    }
}
