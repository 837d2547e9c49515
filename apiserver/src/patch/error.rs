//! Errors of patch application and the HTTP status upstream answers with for each.

/// Why a patch could not be applied.
///
/// Messages are lowercase and mirror upstream's text where upstream has one; the HTTP status,
/// `Status.reason` and `Status.message` upstream's apiserver would send are given by
/// [`PatchError::status_code`], [`PatchError::reason`] and [`PatchError::status_message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The JSON patch document is not an array of operation objects
    /// (upstream: `jsonpatch.DecodePatch` failed → `NewBadRequest`, 400).
    #[error("{0}")]
    InvalidJsonPatch(String),
    /// More operations than upstream's `maxJSONPatchOperations` (10000) → 413.
    #[error("the allowed maximum operations in a JSON patch is {max}, got {got}")]
    TooManyJsonPatchOperations { max: usize, got: usize },
    /// Applying the JSON patch failed: unknown op, bad path, missing value, failed `test`
    /// (upstream: `NewGenericServerResponse(422, ...)`, reason Invalid).
    #[error("{0}")]
    JsonPatchFailed(String),
    /// The merge patch document is not a JSON object
    /// (upstream with fieldValidation Strict/Warn, kubectl's default: `NewBadRequest`, 400).
    #[error("{0}")]
    InvalidMergePatch(String),
    /// The strategic merge patch document (or the object) is not a JSON object (400).
    #[error("{0}")]
    InvalidStrategicMerge(String),
    /// `mergepatch.ErrBadPatchFormatForPrimitiveList` (400).
    #[error("invalid patch format of primitive list")]
    BadPatchFormatForPrimitiveList,
    /// `mergepatch.ErrBadPatchFormatForRetainKeys` (400).
    #[error("invalid patch format of retainKeys")]
    BadPatchFormatForRetainKeys,
    /// `mergepatch.ErrBadPatchFormatForSetElementOrderList` (400).
    #[error("invalid patch format of setElementOrder list")]
    BadPatchFormatForSetElementOrderList,
    /// `mergepatch.ErrNoListOfLists` (422).
    #[error("lists of lists are not supported")]
    NoListOfLists,
    /// `mergepatch.ErrNoMergeKey`: a list item lacks its merge key (upstream returns the bare
    /// error: 500, reason Unknown, printed by kubectl as `Error from server: map: ...`).
    #[error("map: {item} does not contain declared merge key: {key}")]
    NoMergeKey { item: String, key: String },
    /// Any other strategic merge failure; upstream returns these as plain errors (500, reason
    /// Unknown, message = the error text).
    #[error("{0}")]
    StrategicMergeFailed(String),
}

impl PatchError {
    /// The HTTP status code upstream's apiserver answers with.
    ///
    /// Sources: `handlers/patch.go` `applyJSPatch` (decode → 400, too many ops → 413, apply →
    /// 422), `strategicPatchObject` (unmarshal → 400) and `interpretStrategicMergePatchError`
    /// (bad-format sentinels → 400; `ErrNoListOfLists`/`ErrPatchContentNotMatchRetainKeys` →
    /// 422; anything else passes through as a non-Status error → 500 via `ErrorToAPIStatus`).
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::InvalidJsonPatch(_)
            | PatchError::InvalidMergePatch(_)
            | PatchError::InvalidStrategicMerge(_)
            | PatchError::BadPatchFormatForPrimitiveList
            | PatchError::BadPatchFormatForRetainKeys
            | PatchError::BadPatchFormatForSetElementOrderList => 400,
            PatchError::TooManyJsonPatchOperations { .. } => 413,
            PatchError::JsonPatchFailed(_) | PatchError::NoListOfLists => 422,
            PatchError::NoMergeKey { .. } | PatchError::StrategicMergeFailed(_) => 500,
        }
    }

    /// `metav1.Status.reason` upstream uses; empty for `StatusReasonUnknown`.
    pub fn reason(&self) -> &'static str {
        match self.status_code() {
            400 => "BadRequest",
            413 => "RequestEntityTooLarge",
            422 => "Invalid",
            _ => "",
        }
    }

    /// `metav1.Status.message` upstream sends. For the 422 cases upstream builds the status
    /// with `NewGenericServerResponse`, which drops the error text for a fixed message.
    pub fn status_message(&self) -> String {
        match self {
            PatchError::TooManyJsonPatchOperations { max, got } => format!(
                "Request entity too large: The allowed maximum operations in a JSON patch is {max}, got {got}"
            ),
            PatchError::JsonPatchFailed(_) | PatchError::NoListOfLists => {
                "the server rejected our request due to an error in our request".to_string()
            }
            other => other.to_string(),
        }
    }
}
