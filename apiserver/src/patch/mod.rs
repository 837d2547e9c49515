//! Patch application for PATCH requests: RFC 6902 JSON patch, RFC 7386 JSON merge patch and
//! Kubernetes strategic merge patch, as pure functions over `serde_json::Value`.
//!
//! Behaviour follows upstream `k8s.io/apimachinery/pkg/util/strategicpatch` (server side,
//! `StrategicMergeMapPatch`) and the error-to-status mapping of
//! `k8s.io/apiserver/pkg/endpoints/handlers/patch.go`. See [`PatchError::status_code`].

mod error;
mod gofmt;
mod json;
mod strategic;

#[cfg(test)]
mod test_schema;
#[cfg(test)]
mod tests;

pub use error::PatchError;
pub use json::{check_merge_patch_document, json_patch, merge_patch, MAX_JSON_PATCH_OPERATIONS};
pub use strategic::strategic_merge_patch;
