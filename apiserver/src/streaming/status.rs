//! `metav1.Status` bodies for streaming failures, built the way upstream builds them
//! (`NewInternalError`, `NewBadRequest`, `NewGenericServerResponse`).

use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// A failure answered with a `Status` body.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub code: u16,
    /// Empty for upstream's `StatusReasonUnknown`.
    pub reason: String,
    pub message: String,
    pub details: Option<Value>,
}

impl Status {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Status {
            code,
            reason: reason.into(),
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// `apierrors.NewInternalError(err)`.
    pub fn internal(err: impl Into<String>) -> Self {
        let err = err.into();
        let mut s = Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {err}"),
        );
        s.details = Some(json!({"causes": [{"message": err}]}));
        s
    }

    /// What the API server answers when the kubelet answered `code` with `body` for a request on
    /// `resource` (e.g. `pods/log`) of object `name`: upstream's `GenericHttpResponseChecker`.
    pub fn from_kubelet(code: u16, body: &str, resource: &str, name: &str) -> Self {
        let body = body.trim_end_matches('\n');
        match code {
            500 => Self::internal(body),
            400 => Self::bad_request(body),
            _ => Self::generic_server_response(code, resource, name, body),
        }
    }

    /// `apierrors.NewGenericServerResponse(code, "", resource, name, serverMessage, 0, false)`.
    fn generic_server_response(
        code: u16,
        resource: &str,
        name: &str,
        server_message: &str,
    ) -> Self {
        let (reason, base) = match code {
            409 => ("Conflict", "the server reported a conflict".to_string()),
            404 => (
                "NotFound",
                "the server could not find the requested resource".to_string(),
            ),
            400 => (
                "BadRequest",
                "the server rejected our request for an unknown reason".to_string(),
            ),
            401 => (
                "Unauthorized",
                "the server has asked for the client to provide credentials".to_string(),
            ),
            403 => ("Forbidden", server_message.to_string()),
            405 => (
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource".to_string(),
            ),
            422 => (
                "Invalid",
                "the server rejected our request due to an error in our request".to_string(),
            ),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request".to_string(),
            ),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted, but may still be processing the request".to_string(),
            ),
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later"
                    .to_string(),
            ),
            c if c >= 500 => (
                "InternalError",
                format!("an error on the server ({server_message:?}) has prevented the request from succeeding"),
            ),
            c => (
                "",
                format!("the server responded with the status code {c} but did not return more information"),
            ),
        };
        let message = match (resource.is_empty(), name.is_empty()) {
            (false, false) => format!("{base} ( {resource} {name})"),
            (false, true) => format!("{base} ( {resource})"),
            _ => base,
        };
        let (group, kind) = match resource.split_once('.') {
            Some((r, g)) => (g, r),
            None => ("", resource),
        };
        let mut details = json!({});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        if !kind.is_empty() {
            details["kind"] = json!(kind);
        }
        if !name.is_empty() {
            details["name"] = json!(name);
        }
        let mut s = Self::new(code, reason, message);
        s.details = Some(details);
        s
    }

    /// The `Status` object as JSON.
    pub fn to_json(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        });
        if !self.reason.is_empty() {
            s["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s["code"] = json!(self.code);
        s
    }
}

impl IntoResponse for Status {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.to_json()).unwrap_or_default();
        let mut resp = Response::new(axum::body::Body::from(body));
        *resp.status_mut() = http::StatusCode::from_u16(self.code)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// The v4/v5 error-channel payload for a successful command.
pub fn success_json() -> Vec<u8> {
    br#"{"metadata":{},"status":"Success"}"#.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_carry_the_cause() {
        let s = Status::internal("boom").to_json();
        assert_eq!(s["message"], "Internal error occurred: boom");
        assert_eq!(s["reason"], "InternalError");
        assert_eq!(s["code"], 500);
        assert_eq!(s["details"]["causes"][0]["message"], "boom");
    }

    #[test]
    fn kubelet_errors_map_like_upstream() {
        let nf = Status::from_kubelet(404, "pod \"x\" does not exist\n", "pods/log", "x");
        assert_eq!(nf.reason, "NotFound");
        assert_eq!(
            nf.message,
            "the server could not find the requested resource ( pods/log x)"
        );
        assert_eq!(nf.to_json()["details"]["kind"], "pods/log");
        let br = Status::from_kubelet(400, "container is waiting", "pods/log", "x");
        assert_eq!(
            (br.code, br.message.as_str()),
            (400, "container is waiting")
        );
        let ie = Status::from_kubelet(500, "disk on fire", "pods/log", "x");
        assert_eq!(ie.message, "Internal error occurred: disk on fire");
        let fb = Status::from_kubelet(403, "Forbidden (user=x)", "pods/log", "x");
        assert_eq!(fb.message, "Forbidden (user=x) ( pods/log x)");
        let other = Status::from_kubelet(418, "teapot", "pods/log", "x");
        assert_eq!(other.reason, "");
        assert!(other.to_json().get("reason").is_none());
    }

    #[test]
    fn success_payload_matches_kubelet_output() {
        let v: Value = serde_json::from_slice(&success_json()).unwrap();
        assert_eq!(v["status"], "Success");
    }
}
