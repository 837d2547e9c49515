//! The create-only review resources, answered from the request and never stored:
//! `SelfSubjectReview` (`kubectl auth whoami`), `TokenReview`, `SelfSubjectAccessReview`
//! (`kubectl auth can-i`), `SubjectAccessReview`, `LocalSubjectAccessReview` and
//! `SelfSubjectRulesReview` (`kubectl auth can-i --list`).

use crate::auth::{Attributes, Decision, UserInfo};
use crate::error::{ApiError, ApiResult, Cause};
use crate::resources::ResourceInfo;
use crate::server::App;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `Kind.group "" is invalid: ...`, as upstream names these kinds.
fn invalid(res: &ResourceInfo, causes: Vec<Cause>) -> ApiError {
    let mut e = ApiError::invalid(res.kind, res.group, "", causes);
    e.message = e
        .message
        .replacen(res.kind, &format!("{}.{}", res.kind, res.group), 1);
    e
}

/// The response: the request's metadata and spec with the computed status.
fn respond(res: &ResourceInfo, body: &Value, status: Value) -> Value {
    let mut metadata = body.get("metadata").cloned().unwrap_or_else(|| json!({}));
    if metadata.get("creationTimestamp").is_none() {
        metadata["creationTimestamp"] = Value::Null;
    }
    let mut out = json!({
        "kind": res.kind,
        "apiVersion": res.api_version(),
        "metadata": metadata,
        "status": status,
    });
    if let Some(spec) = body.get("spec") {
        out["spec"] = spec.clone();
    }
    out
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Authorizer attributes from a review's `spec` (resourceAttributes or
/// nonResourceAttributes, exactly one).
pub fn attributes_from_spec(res: &ResourceInfo, spec: &Value) -> ApiResult<Attributes> {
    let ra = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let na = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    match (ra, na) {
        (Some(_), Some(n)) => Err(invalid(
            res,
            vec![Cause::invalid(
                "spec.nonResourceAttributes",
                n,
                "cannot be specified in combination with resourceAttributes",
            )],
        )),
        (None, None) => Err(invalid(
            res,
            vec![Cause::invalid(
                "spec.resourceAttributes",
                &Value::Null,
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        )),
        (Some(r), None) => Ok(Attributes {
            verb: str_of(r, "verb").to_string(),
            resource_request: true,
            api_group: str_of(r, "group").to_string(),
            api_version: str_of(r, "version").to_string(),
            resource: str_of(r, "resource").to_string(),
            subresource: str_of(r, "subresource").to_string(),
            namespace: str_of(r, "namespace").to_string(),
            name: str_of(r, "name").to_string(),
            path: String::new(),
            field_selector: String::new(),
        }),
        (None, Some(n)) => Ok(Attributes {
            verb: str_of(n, "verb").to_string(),
            path: str_of(n, "path").to_string(),
            ..Default::default()
        }),
    }
}

/// The `SubjectAccessReviewStatus` of a decision.
fn access_status(d: Decision) -> Value {
    match d {
        Decision::Allow => json!({"allowed": true}),
        Decision::Deny(reason) if !reason.is_empty() => {
            json!({"allowed": false, "denied": true, "reason": reason})
        }
        Decision::Deny(_) => json!({"allowed": false, "denied": true}),
        Decision::NoOpinion => json!({"allowed": false}),
    }
}

/// The subject of a SubjectAccessReview's spec.
fn subject_of(spec: &Value) -> UserInfo {
    let strings = |key: &str| -> Vec<String> {
        spec.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let extra: BTreeMap<String, Vec<String>> = spec
        .get("extra")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let vals = v
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default();
                    (k.clone(), vals)
                })
                .collect()
        })
        .unwrap_or_default();
    UserInfo {
        name: str_of(spec, "user").to_string(),
        uid: str_of(spec, "uid").to_string(),
        groups: strings("groups"),
        extra,
    }
}

/// Answers one review request (already authorized for `create` on its resource).
pub async fn review(
    app: &App,
    user: &UserInfo,
    res: &ResourceInfo,
    namespace: Option<&str>,
    body: Value,
) -> ApiResult<Value> {
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    match res.plural {
        "selfsubjectreviews" => Ok(respond(res, &body, json!({"userInfo": user.to_json()}))),
        "tokenreviews" => {
            let token = str_of(&spec, "token");
            if token.is_empty() {
                return Err(invalid(res, vec![Cause::required("spec.token")]));
            }
            let audiences: Vec<String> = match spec.get("audiences").and_then(Value::as_array) {
                Some(a) if !a.is_empty() => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                _ => crate::authn::api_audiences(),
            };
            let found = app
                .bearer
                .authenticate(
                    &app.registry,
                    app.sa_signer.get().map(|s| s.as_ref()),
                    token,
                    &audiences,
                )
                .await;
            let status = match found {
                Some(u) => json!({
                    "authenticated": true,
                    "user": u.to_json(),
                    "audiences": audiences,
                }),
                None => json!({"user": {}, "error": "invalid bearer token"}),
            };
            let mut out = respond(res, &body, status);
            // The token is not echoed back.
            if let Some(s) = out.get_mut("spec").and_then(Value::as_object_mut) {
                s.remove("token");
            }
            Ok(out)
        }
        "selfsubjectaccessreviews" => {
            let attrs = attributes_from_spec(res, &spec)?;
            Ok(respond(
                res,
                &body,
                access_status(app.authz.decide(user, &attrs)),
            ))
        }
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            let subject = subject_of(&spec);
            if subject.name.is_empty() && subject.groups.is_empty() {
                return Err(invalid(
                    res,
                    vec![Cause::invalid(
                        "spec.user",
                        &json!(""),
                        "at least one of user or group must be specified",
                    )],
                ));
            }
            let attrs = attributes_from_spec(res, &spec)?;
            if let Some(ns) = namespace {
                if !attrs.resource_request {
                    return Err(invalid(
                        res,
                        vec![Cause::invalid(
                            "spec.nonResourceAttributes",
                            &spec["nonResourceAttributes"],
                            "disallowed on this kind of request",
                        )],
                    ));
                }
                if attrs.namespace != ns {
                    return Err(ApiError::bad_request(format!(
                        "spec.resourceAttributes.namespace must match namespace: {ns}"
                    )));
                }
            }
            Ok(respond(
                res,
                &body,
                access_status(app.authz.decide(&subject, &attrs)),
            ))
        }
        "selfsubjectrulesreviews" => {
            let ns = str_of(&spec, "namespace");
            Ok(respond(res, &body, app.rules_review(user, ns)))
        }
        _ => Err(ApiError::path_not_found()),
    }
}
