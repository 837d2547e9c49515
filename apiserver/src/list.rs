//! LIST: selectors, `limit`/`continue` paging and the `resourceVersion` /
//! `resourceVersionMatch` rules, over the storage backend.

use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::{decode, prefix, Registry};
use crate::resources::ResourceInfo;
use crate::selector::{parse_field_selector, parse_label_selector, FieldSelector, LabelSelector};
use base64::Engine;
use serde_json::{json, Value};
use store::{ListOptions, StoreError};

/// Label and field selectors of a list or watch.
#[derive(Default)]
pub struct Filter {
    pub label: Option<LabelSelector>,
    pub field: Option<FieldSelector>,
}

impl Filter {
    pub fn parse(
        res: &ResourceInfo,
        label: Option<&str>,
        field: Option<&str>,
    ) -> ApiResult<Filter> {
        let label =
            match label.filter(|s| !s.trim().is_empty()) {
                Some(s) => Some(parse_label_selector(s).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?),
                None => None,
            };
        let field = match field.filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let f =
                    parse_field_selector(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
                let allowed =
                    crate::strategy::for_resource(res.group, res.plural).field_selectors();
                for name in f.fields() {
                    if name != "metadata.name"
                        && name != "metadata.namespace"
                        && !allowed.contains(&name)
                    {
                        return Err(ApiError::bad_request(format!(
                            "field label not supported: {name}"
                        )));
                    }
                }
                Some(f)
            }
            None => None,
        };
        Ok(Filter { label, field })
    }

    pub fn is_empty(&self) -> bool {
        self.label.is_none() && self.field.is_none()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(l) = &self.label {
            if !l.matches(&meta::labels(obj)) {
                return false;
            }
        }
        if let Some(f) = &self.field {
            let get = |path: &str| -> Option<String> {
                match path {
                    "metadata.name" => Some(meta::name(obj).to_string()),
                    "metadata.namespace" => Some(meta::namespace(obj).to_string()),
                    // upstream: unset status.phase selects as ""; spec.nodeName likewise
                    other => Some(meta::path_str(obj, other).unwrap_or_default()),
                }
            };
            if !f.matches(&get) {
                return false;
            }
        }
        true
    }
}

/// Query parameters of a list.
#[derive(Default, Clone)]
pub struct ListParams {
    pub limit: i64,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// A page of a list (objects, or raw JSON items when served without decoding).
pub struct ListPage<T = Value> {
    pub items: Vec<T>,
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

const CONTINUE_TOO_OLD: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

fn encode_continue(rev: i64, start: &str) -> String {
    let v = json!({"v": "meta.k8s.io/v1", "rv": rev, "start": start});
    base64::engine::general_purpose::URL_SAFE.encode(v.to_string())
}

fn decode_continue(tok: &str) -> ApiResult<(i64, String)> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(tok)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(tok))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_i64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((rv, start.to_string()))
}

/// Offset of the `{` that opens a stored object's top-level `metadata`, which the registry
/// always encodes right after `apiVersion` and `kind` (and never with a resourceVersion).
/// None when the layout is not the expected one (the caller then decodes).
fn metadata_start(raw: &[u8]) -> Option<usize> {
    const PAT: &[u8] = br#""metadata":{"#;
    let start = raw.windows(PAT.len()).position(|w| w == PAT)? + PAT.len() - 1;
    // Everything before it must be the apiVersion and kind members only.
    (raw[..start].iter().filter(|b| **b == b'{').count() == 1).then_some(start)
}

/// Inserts `"resourceVersion":"N"` into a stored object's top-level `metadata`. None when
/// the layout is not the expected one.
pub fn splice_resource_version(raw: &[u8], rev: i64) -> Option<Vec<u8>> {
    let pos = metadata_start(raw)? + 1;
    let mut out = Vec::with_capacity(raw.len() + 32);
    out.extend_from_slice(&raw[..pos]);
    out.extend_from_slice(format!("\"resourceVersion\":\"{rev}\"").as_bytes());
    if raw.get(pos) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(&raw[pos..]);
    Some(out)
}

/// The stored object's top-level `metadata` object (`{...}`). None when the layout is not
/// the expected one.
pub fn stored_metadata(raw: &[u8]) -> Option<&[u8]> {
    let start = metadata_start(raw)?;
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for (i, &b) in raw[start..].iter().enumerate() {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&raw[start..=start + i]);
                }
            }
            _ => {}
        }
    }
    None
}

pub fn parse_rv(s: &str) -> ApiResult<i64> {
    s.parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))
}

impl Registry {
    /// LIST within a namespace (or all namespaces with `ns = None`).
    pub async fn list(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        filter: &Filter,
        params: &ListParams,
    ) -> ApiResult<ListPage> {
        self.list_with(res, ns, !filter.is_empty(), params, |kv| {
            let obj = decode(res, kv)?;
            Ok(filter.matches(&obj).then_some(obj))
        })
        .await
    }

    /// LIST without selectors, returning each item's stored JSON with its resourceVersion
    /// spliced in: no parse and re-encode of every object.
    pub async fn list_raw(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        params: &ListParams,
    ) -> ApiResult<ListPage<Vec<u8>>> {
        self.list_with(res, ns, false, params, |kv| {
            match splice_resource_version(&kv.value, kv.mod_revision) {
                Some(raw) => Ok(Some(raw)),
                None => Ok(Some(
                    serde_json::to_vec(&decode(res, kv)?).unwrap_or_default(),
                )),
            }
        })
        .await
    }

    /// LIST as `PartialObjectMetadata` items (metadata-only clients such as the garbage
    /// collector) without selectors, for resources stored as served: only each stored
    /// object's `metadata` is parsed (serde skips spec and status without building them),
    /// rather than the whole object.
    pub async fn list_partial_raw(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        params: &ListParams,
    ) -> ApiResult<ListPage<Vec<u8>>> {
        #[derive(serde::Deserialize)]
        struct OnlyMeta {
            #[serde(default)]
            metadata: Option<serde_json::Map<String, Value>>,
        }
        self.list_with(res, ns, false, params, |kv| {
            let mut meta = match serde_json::from_slice::<OnlyMeta>(&kv.value) {
                Ok(m) => m.metadata.unwrap_or_default(),
                Err(_) => match decode(res, kv)? {
                    Value::Object(mut o) => match o.remove("metadata") {
                        Some(Value::Object(m)) => m,
                        _ => Default::default(),
                    },
                    _ => Default::default(),
                },
            };
            meta.insert(
                "resourceVersion".into(),
                Value::String(kv.mod_revision.to_string()),
            );
            let item = serde_json::json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
            });
            Ok(Some(serde_json::to_vec(&item).unwrap_or_default()))
        })
        .await
    }

    /// The paging and resourceVersion rules of LIST; `item` turns a stored key into a list
    /// item, or None when it is filtered out.
    async fn list_with<T, F>(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        filtered: bool,
        params: &ListParams,
        mut item: F,
    ) -> ApiResult<ListPage<T>>
    where
        F: FnMut(&store::KeyValue) -> ApiResult<Option<T>>,
    {
        let base = prefix(res, ns);
        let (mut revision, mut start) = (0i64, String::new());
        if let Some(tok) = params.continue_token.as_deref().filter(|t| !t.is_empty()) {
            let (rv, s) = decode_continue(tok)?;
            revision = rv;
            start = format!("{base}{s}");
        } else {
            match (
                params.resource_version.as_deref(),
                params.resource_version_match.as_deref(),
            ) {
                (None | Some(""), Some(m)) if !m.is_empty() => {
                    return Err(ApiError::bad_request(
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ))
                }
                (Some(rv), Some("Exact")) => {
                    let rv = parse_rv(rv)?;
                    if rv == 0 {
                        return Err(ApiError::bad_request(
                            "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
                        ));
                    }
                    revision = rv;
                }
                (Some(rv), _) if !rv.is_empty() && rv != "0" => {
                    let want = parse_rv(rv)?;
                    let current = self.store.current_revision().await?;
                    if want > current {
                        return Err(ApiError::timeout(format!(
                            "Too large resource version: {want}, current: {current}"
                        )));
                    }
                }
                _ => {}
            }
        }
        let mut items = Vec::new();
        let limit = params.limit.max(0);
        let chunk = match limit {
            0 => 0,
            l if !filtered => l + 1,
            l => (l + 1).max(500),
        };
        let mut cursor = start;
        let mut served_rev = revision;
        loop {
            let page = self
                .store
                .list(&ListOptions {
                    prefix: base.clone(),
                    start_key: cursor.clone(),
                    limit: chunk,
                    revision: served_rev,
                })
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } if params.continue_token.is_some() => {
                        ApiError::gone(CONTINUE_TOO_OLD)
                    }
                    StoreError::Compacted { compacted } => ApiError::gone(format!(
                        "The resourceVersion for the provided list is too old. (requested {revision}, compacted {compacted})"
                    )),
                    StoreError::FutureRevision { current } => ApiError::timeout(format!(
                        "Too large resource version: {revision}, current: {current}"
                    )),
                    other => other.into(),
                })?;
            served_rev = page.revision;
            for kv in &page.kvs {
                if limit > 0 && items.len() as i64 == limit {
                    let rel = kv.key.strip_prefix(&base).unwrap_or(&kv.key).to_string();
                    return Ok(ListPage {
                        items,
                        revision: served_rev,
                        continue_token: Some(encode_continue(served_rev, &rel)),
                        remaining: None,
                    });
                }
                if let Some(it) = item(kv)? {
                    items.push(it);
                }
            }
            match page.kvs.last() {
                Some(last) if page.more => cursor = format!("{}\0", last.key),
                _ => break,
            }
        }
        Ok(ListPage {
            items,
            revision: served_rev,
            continue_token: None,
            remaining: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_matches_decode() {
        let raw = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","uid":"u"},"data":{"metadata":{"x":"y"}}}"#;
        let spliced = splice_resource_version(raw, 42).unwrap();
        let v: Value = serde_json::from_slice(&spliced).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "42");
        assert_eq!(v["data"]["metadata"]["x"], "y");
        let empty = br#"{"apiVersion":"v1","kind":"X","metadata":{}}"#;
        let v: Value = serde_json::from_slice(&splice_resource_version(empty, 7).unwrap()).unwrap();
        assert_eq!(v["metadata"], json!({"resourceVersion": "7"}));
        assert!(splice_resource_version(br#"{"a":{"metadata":{}}}"#, 1).is_none());
    }

    #[test]
    fn stored_metadata_spans_the_object() {
        let raw = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","annotations":{"x":"}{\"]"},"ownerReferences":[{"uid":"u"}]},"spec":{"metadata":{}}}"#;
        let m = stored_metadata(raw).unwrap();
        let v: Value = serde_json::from_slice(m).unwrap();
        assert_eq!(v["annotations"]["x"], "}{\"]");
        assert_eq!(v["ownerReferences"][0]["uid"], "u");
        assert_eq!(
            stored_metadata(br#"{"apiVersion":"v1","kind":"X","metadata":{}}"#),
            Some(&b"{}"[..])
        );
        assert!(stored_metadata(br#"{"a":{"metadata":{}}}"#).is_none());
        assert!(stored_metadata(br#"{"metadata":{"name":"unterminated""#).is_none());
    }
}
