//! RFC 6902 JSON patch and RFC 7386 JSON merge patch.

use serde_json::{Map, Value};

use super::error::PatchError;
use super::gofmt::json_kind;

/// Upstream's `maxJSONPatchOperations` (`handlers/patch.go`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10000;

/// Applies an RFC 6902 JSON patch to `doc`, atomically (on error `doc` is untouched).
///
/// Like upstream, a patch that is not an array of objects is a malformed document (400),
/// more than [`MAX_JSON_PATCH_OPERATIONS`] operations is 413, and everything that fails while
/// applying (unknown `op`, missing `path`/`value`, nonexistent path, failed `test`) is 422.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch.as_array().ok_or_else(|| {
        PatchError::InvalidJsonPatch(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
            json_kind(patch)
        ))
    })?;
    if let Some(bad) = ops.iter().find(|op| !op.is_object()) {
        return Err(PatchError::InvalidJsonPatch(format!(
            "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
            json_kind(bad)
        )));
    }
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyJsonPatchOperations {
            max: MAX_JSON_PATCH_OPERATIONS,
            got: ops.len(),
        });
    }
    // Upstream decodes operations lazily and reports malformed ones while applying (422).
    let parsed: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::JsonPatchFailed(e.to_string()))?;
    let mut out = doc.clone();
    json_patch::patch(&mut out, &parsed.0)
        .map_err(|e| PatchError::JsonPatchFailed(e.to_string()))?;
    Ok(out)
}

/// Applies an RFC 7386 JSON merge patch: objects merge recursively, `null` removes a member,
/// anything else (arrays included) replaces; a non-object patch replaces the whole document.
///
/// Upstream's handler rejects a non-object merge patch body with 400 before merging (it
/// decodes the body into a map under kubectl's default `fieldValidation=Strict`); call
/// [`check_merge_patch_document`] first to get that behaviour.
pub fn merge_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    Ok(merge_value(Some(doc), patch))
}

/// The 400 upstream answers for a merge patch body that is not a JSON object.
pub fn check_merge_patch_document(patch: &Value) -> Result<(), PatchError> {
    if patch.is_object() {
        Ok(())
    } else {
        Err(PatchError::InvalidMergePatch(format!(
            "error decoding patch: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(patch)
        )))
    }
}

fn merge_value(target: Option<&Value>, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out: Map<String, Value> = match target {
        Some(Value::Object(t)) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.shift_remove(k);
        } else {
            let merged = merge_value(out.get(k), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}
