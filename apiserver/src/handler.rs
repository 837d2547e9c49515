//! The HTTP request path: routing of Kubernetes URLs, authentication, authorization,
//! body decoding and content negotiation, then dispatch to discovery, OpenAPI, health
//! or the generic registry.

use crate::auth::{self, Attributes, Decision, PeerCertificate, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::list::{Filter, ListParams};
use crate::meta;
use crate::registry::{DeleteOptions, FieldValidation, PatchType, WriteOptions};
use crate::resources::{self, ResourceInfo, Subresource};
use crate::server::App;
use crate::watch::{self, WatchParams};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Largest accepted request body, as upstream (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Where a URL points.
#[derive(Debug, PartialEq)]
pub enum Route {
    Version,
    CaCerts,
    NodeCredentials,
    Health(String),
    Api,
    ApiV1,
    Apis,
    ApisGroup(String),
    ApisGroupVersion(String, String),
    OpenApiIndex,
    OpenApiGroupVersion(String),
    Resource(ResourceRoute),
    /// A create-only review (`selfsubjectaccessreviews`, `tokenreviews`, ...).
    Review {
        res: &'static ResourceInfo,
        namespace: Option<String>,
    },
    /// `/.well-known/openid-configuration` and `/openid/v1/jwks`.
    OpenIdConfiguration,
    Jwks,
    /// `metrics.k8s.io/v1beta1` nodes and pods.
    Metrics(crate::metrics::MetricsRoute),
    NotFound,
}

#[derive(Debug, PartialEq)]
pub struct ResourceRoute {
    pub res: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` path prefix.
    pub watch_prefix: bool,
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('%')
}

/// Parses a request path.
pub fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["cacerts"] => Route::CaCerts,
        ["v1-minik8s", "node-credentials"] => Route::NodeCredentials,
        [".well-known", "openid-configuration"] => Route::OpenIdConfiguration,
        ["openid", "v1", "jwks"] => Route::Jwks,
        [h @ ("healthz" | "livez" | "readyz")] => Route::Health(h.to_string()),
        [h @ ("healthz" | "livez" | "readyz"), check] => Route::Health(format!("{h}/{check}")),
        ["api"] => Route::Api,
        ["api", "v1"] => Route::ApiV1,
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["apis"] => Route::Apis,
        ["apis", g] => Route::ApisGroup(g.to_string()),
        ["apis", g, v] => Route::ApisGroupVersion(g.to_string(), v.to_string()),
        ["apis", crate::metrics::GROUP, crate::metrics::VERSION, rest @ ..] => {
            crate::metrics::parse_route(rest).map_or(Route::NotFound, Route::Metrics)
        }
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        ["openapi", "v3"] => Route::OpenApiIndex,
        ["openapi", "v3", rest @ ..] => Route::OpenApiGroupVersion(rest.join("/")),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch_prefix, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let make = |plural: &str, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        let Some(res) = resources::find(group, version, plural) else {
            return match resources::find_review(group, version, plural) {
                Some(res)
                    if name.is_none()
                        && sub.is_none()
                        && !watch_prefix
                        && ns.is_some() == res.namespaced
                        && ns.is_none_or(valid_segment) =>
                {
                    Route::Review {
                        res,
                        namespace: ns.map(str::to_string),
                    }
                }
                _ => Route::NotFound,
            };
        };
        if ns.is_some() && !res.namespaced {
            return Route::NotFound;
        }
        for s in [ns, name, sub].into_iter().flatten() {
            if !valid_segment(s) {
                return Route::NotFound;
            }
        }
        Route::Resource(ResourceRoute {
            res,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
            watch_prefix,
        })
    };
    match rest {
        [plural] => make(plural, None, None, None),
        ["namespaces", ns, sub @ ("status" | "finalize")] if group.is_empty() => {
            make("namespaces", None, Some(ns), Some(sub))
        }
        ["namespaces", ns, plural] => make(plural, Some(ns), None, None),
        ["namespaces", ns, plural, name] => make(plural, Some(ns), Some(name), None),
        ["namespaces", ns, plural, name, sub] => make(plural, Some(ns), Some(name), Some(sub)),
        [plural, name] => make(plural, None, Some(name), None),
        [plural, name, sub] => make(plural, None, Some(name), Some(sub)),
        _ => Route::NotFound,
    }
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn json_response(code: StatusCode, v: &Value, warnings: &[String]) -> Response {
    let mut resp = Response::new(Body::from(serde_json::to_vec(v).unwrap_or_default()));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    add_warnings(resp.headers_mut(), warnings);
    resp
}

fn add_warnings(h: &mut HeaderMap, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            h.append(header::WARNING, v);
        }
    }
}

fn text_response(code: StatusCode, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The user of a verified client certificate, if the connection presented one.
fn cert_user(req: &Request) -> Option<UserInfo> {
    match req.extensions().get::<PeerCertificate>() {
        Some(PeerCertificate(Some(der))) => auth::user_from_cert(der),
        _ => None,
    }
}

/// Authenticates a request without a client certificate by its `Authorization` header
/// (copied out: the request is not `Sync`, so no borrow of it may cross an await).
async fn authenticate_bearer(
    app: &App,
    authorization: Option<String>,
) -> Result<UserInfo, ApiError> {
    if let Some(h) = authorization {
        if let Some(tok) = h.strip_prefix("Bearer ").map(str::trim) {
            return app
                .bearer
                .authenticate(
                    &app.registry,
                    app.sa_signer.get().map(|s| s.as_ref()),
                    tok,
                    &crate::authn::api_audiences(),
                )
                .await
                .ok_or_else(ApiError::unauthorized);
        }
        return Err(ApiError::unauthorized());
    }
    Ok(UserInfo::anonymous())
}

/// Applies the impersonation headers: each requested identity must be allowed the
/// `impersonate` verb, then the request runs as the impersonated user.
fn impersonate(app: &App, user: UserInfo, headers: &HeaderMap) -> ApiResult<UserInfo> {
    let imp = match crate::authn::ImpersonationRequest::from_headers(headers) {
        Ok(None) => return Ok(user),
        Ok(Some(i)) => i,
        Err(msg) => return Err(ApiError::bad_request(msg)),
    };
    for a in imp.checks() {
        if app.authz.authorize(&user, &a) != Decision::Allow {
            return Err(ApiError::forbidden(auth::forbidden_message(&user, &a, "")));
        }
    }
    let next = imp.user();
    tracing::debug!(user = %user.name, as_user = %next.name, "impersonating");
    Ok(next)
}

/// `metadata.name=<x>` (or `==`) as one of a field selector's requirements.
fn name_from_field_selector(sel: &str) -> Option<String> {
    sel.split(',').find_map(|req| {
        let (k, v) = req.split_once("==").or_else(|| req.split_once('='))?;
        (k.trim() == "metadata.name" && !k.ends_with('!') && valid_segment(v.trim()))
            .then(|| v.trim().to_string())
    })
}

const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/cacerts"];

fn is_public(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    PUBLIC_PATHS
        .iter()
        .any(|x| p == *x || p.starts_with(&format!("{x}/")))
}

fn verb_for(method: &Method, r: &ResourceRoute, q: &HashMap<String, String>) -> &'static str {
    let watch = r.watch_prefix || q.get("watch").is_some_and(|v| v == "true" || v == "1");
    match *method {
        Method::GET | Method::HEAD => match (&r.name, watch) {
            (_, true) => "watch",
            (Some(_), false) => "get",
            (None, false) => "list",
        },
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => {
            if r.name.is_some() {
                "delete"
            } else {
                "deletecollection"
            }
        }
        _ => "",
    }
}

/// Entry point for every request.
pub async fn handle(State(app): State<Arc<App>>, mut req: Request) -> Response {
    let start = std::time::Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let audit = app.audit.get().cloned().map(|a| {
        let slot = crate::audit::AuditSlot::default();
        req.extensions_mut().insert(slot.clone());
        let source = req
            .extensions()
            .get::<crate::server::PeerAddr>()
            .map(|p| p.0.ip().to_string());
        let ua = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (a, slot, source, ua, jiff::Timestamp::now())
    });
    let resp = match handle_inner(app, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let resp = match audit {
        Some((a, slot, source, ua, received)) => {
            audit_request(&a, &slot, &uri, source, &ua, received, resp).await
        }
        None => resp,
    };
    tracing::debug!(method = %method, uri = %uri, status = resp.status().as_u16(), elapsed_ms = start.elapsed().as_millis() as u64, "request");
    resp
}

/// Writes the request's audit event (ResponseComplete; ResponseStarted for watches and
/// streams, whose end this handler does not see). At RequestResponse level a non-streamed
/// JSON response is buffered to record it; error Status bodies are read at every level.
async fn audit_request(
    auditor: &crate::audit::Auditor,
    slot: &crate::audit::AuditSlot,
    uri: &http::Uri,
    source: Option<String>,
    user_agent: &str,
    received: jiff::Timestamp,
    resp: Response,
) -> Response {
    use crate::audit::{Event, Level, RequestInfo, Stage};
    let record = match slot.0.lock() {
        Ok(mut r) => std::mem::take(&mut *r),
        Err(_) => return resp,
    };
    let (Some(user), Some(attrs)) = (record.user, record.attrs) else {
        return resp;
    };
    let cfg = auditor
        .policy
        .evaluate(record.impersonator.as_ref().unwrap_or(&user), &attrs);
    if cfg.level == Level::None {
        return resp;
    }
    let audit_id = crate::audit::new_audit_id();
    let sources: Vec<String> = source.into_iter().collect();
    let request_uri = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let info = RequestInfo {
        audit_id: &audit_id,
        request_uri: &request_uri,
        source_ips: &sources,
        user_agent,
    };
    let mut ev = match &record.impersonator {
        Some(real) => {
            let mut ev = Event::from_request(cfg.level, &info, real, &attrs, received);
            ev.impersonated_user = Some((&user).into());
            ev
        }
        None => Event::from_request(cfg.level, &info, &user, &attrs, received),
    };
    if let Some((allowed, reason)) = &record.decision {
        ev.annotate_authorization(*allowed, reason);
    }
    if let Some(body) = &record.body {
        if let Ok(obj) = serde_json::from_slice::<Value>(body) {
            ev.log_request_object(&obj, cfg.omit_managed_fields);
        }
    }
    let code = resp.status().as_u16();
    ev.set_response_code(code as i32);
    let long_running = attrs.verb == "watch"
        || matches!(
            attrs.subresource.as_str(),
            "exec" | "attach" | "portforward" | "log"
        );
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let wants_body = !long_running && json && (code >= 400 || cfg.level >= Level::RequestResponse);
    let resp = if wants_body {
        let (parts, body) = resp.into_parts();
        match axum::body::to_bytes(body, 64 << 20).await {
            Ok(bytes) => {
                if let Ok(obj) = serde_json::from_slice::<Value>(&bytes) {
                    ev.log_response_object(&obj, cfg.omit_managed_fields);
                    ev.set_response_code(code as i32);
                }
                Response::from_parts(parts, Body::from(bytes))
            }
            Err(_) => Response::from_parts(parts, Body::empty()),
        }
    } else {
        resp
    };
    let now = jiff::Timestamp::now();
    let mut events = Vec::new();
    if cfg.should_emit(Stage::RequestReceived) {
        events.push(ev.at_stage(Stage::RequestReceived, now));
    }
    let last = if long_running {
        Stage::ResponseStarted
    } else {
        Stage::ResponseComplete
    };
    if cfg.should_emit(last) {
        events.push(ev.at_stage(last, now));
    }
    auditor.sink.write(&events);
    resp
}

async fn handle_inner(app: Arc<App>, req: Request) -> ApiResult<Response> {
    let path = req.uri().path().to_string();
    let q = query_map(req.uri().query());
    let user = match cert_user(&req) {
        Some(u) => u,
        None => {
            let authorization = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            authenticate_bearer(&app, authorization).await?
        }
    };
    let route = route(&path);
    if user.is_anonymous() && !is_public(&path) {
        return Err(ApiError::unauthorized());
    }
    let slot = req.extensions().get::<crate::audit::AuditSlot>().cloned();
    let authenticated = user.clone();
    let user = impersonate(&app, user, req.headers())?;
    if let Some(slot) = &slot {
        slot.update(|r| {
            if user != authenticated {
                r.impersonator = Some(authenticated.clone());
            }
            r.user = Some(user.clone());
        });
    }
    // Authorization.
    let attrs = match &route {
        Route::Resource(r) => {
            let verb = verb_for(req.method(), r, &q);
            let field_selector = q.get("fieldSelector").cloned().unwrap_or_default();
            // As upstream's request info: a list or watch of one name by field selector
            // is authorized as a request for that name.
            let name = match (&r.name, verb) {
                (None, "list" | "watch") => name_from_field_selector(&field_selector),
                _ => r.name.clone(),
            };
            Attributes {
                verb: verb.to_string(),
                resource_request: true,
                api_group: r.res.group.to_string(),
                api_version: r.res.version.to_string(),
                resource: r.res.plural.to_string(),
                subresource: r.subresource.clone().unwrap_or_default(),
                namespace: r.namespace.clone().unwrap_or_default(),
                name: name.unwrap_or_default(),
                path: path.clone(),
                field_selector,
            }
        }
        Route::Metrics(m) => m.attributes(req.method(), &q, &path),
        Route::Review { res, namespace } => Attributes {
            verb: "create".into(),
            resource_request: true,
            api_group: res.group.to_string(),
            api_version: res.version.to_string(),
            resource: res.plural.to_string(),
            namespace: namespace.clone().unwrap_or_default(),
            path: path.clone(),
            ..Default::default()
        },
        _ => Attributes {
            verb: req.method().as_str().to_ascii_lowercase(),
            path: path.clone(),
            ..Default::default()
        },
    };
    if let Some(slot) = &slot {
        slot.update(|r| r.attrs = Some(attrs.clone()));
    }
    if !user.is_anonymous() {
        let decision = app.authz.authorize(&user, &attrs);
        if let Some(slot) = &slot {
            let allowed = decision == Decision::Allow;
            slot.update(|r| r.decision = Some((allowed, String::new())));
        }
        if let Decision::Deny(reason) = decision {
            return Err(ApiError::forbidden(auth::forbidden_message(
                &user, &attrs, &reason,
            )));
        }
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    match route {
        Route::Version => Ok(json_response(StatusCode::OK, &app.version, &[])),
        Route::CaCerts => match app.pki.get() {
            Some(pki) => Ok(text_response(StatusCode::OK, pki.ca_cert_pem.clone())),
            None => Err(ApiError::path_not_found()),
        },
        Route::NodeCredentials => {
            let Some(pki) = app.pki.get().cloned() else {
                return Err(ApiError::path_not_found());
            };
            if req.method() != Method::POST {
                return Err(ApiError::method_not_allowed());
            }
            let is_admin = user.groups.iter().any(|g| g == "system:masters");
            if user.name != crate::join::JOIN_USER && !is_admin {
                return Err(ApiError::forbidden(format!(
                    "User \"{}\" cannot request node credentials",
                    user.name
                )));
            }
            let (_, body) = read_body(req).await?;
            let creq: crate::join::CredentialsRequest = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("invalid credentials request: {e}")))?;
            let creds = tokio::task::spawn_blocking(move || crate::join::issue(&pki, &creq))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
            let v = serde_json::to_value(&creds).map_err(|e| ApiError::internal(e.to_string()))?;
            tracing::info!(user = %user.name, "issued node credentials");
            Ok(json_response(StatusCode::OK, &v, &[]))
        }
        Route::Health(which) => health(&app, &which, q.contains_key("verbose")).await,
        Route::Api => {
            let v = crate::discovery::negotiate_aggregated(&accept)
                .map(|ver| (crate::discovery::aggregated(true, ver), ver));
            discovery_response(
                &req,
                v,
                crate::discovery::api_versions(&app.advertise_address),
            )
        }
        Route::Apis => {
            let v = crate::discovery::negotiate_aggregated(&accept)
                .map(|ver| (crate::discovery::aggregated(false, ver), ver));
            discovery_response(&req, v, crate::discovery::api_group_list())
        }
        Route::ApiV1 => discovery_response(
            &req,
            None,
            crate::discovery::resource_list("", "v1").unwrap_or_default(),
        ),
        Route::ApisGroup(g) => match crate::discovery::api_group_doc(&g) {
            Some(d) => discovery_response(&req, None, d),
            None => Err(ApiError::path_not_found()),
        },
        Route::ApisGroupVersion(g, v) => match crate::discovery::resource_list(&g, &v) {
            Some(d) => discovery_response(&req, None, d),
            None => Err(ApiError::path_not_found()),
        },
        Route::OpenApiIndex => {
            let v = app.openapi.index();
            discovery_response(&req, None, v)
        }
        Route::OpenApiGroupVersion(gv) => match app.openapi.group_version(&gv) {
            Some((bytes, hash)) => {
                let mut resp = Response::new(Body::from(bytes));
                let h = resp.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("\"{hash}\"")) {
                    h.insert(header::ETAG, v);
                }
                let cc = if q.get("hash").is_some_and(|x| *x == hash) {
                    "public, immutable"
                } else {
                    "no-cache, private"
                };
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cc));
                Ok(resp)
            }
            None => Err(ApiError::path_not_found()),
        },
        Route::NotFound => Err(ApiError::path_not_found()),
        which @ (Route::OpenIdConfiguration | Route::Jwks) => {
            let jwks = which == Route::Jwks;
            let Some(signer) = app.sa_signer.get() else {
                return Err(ApiError::path_not_found());
            };
            let v = if jwks {
                crate::authn::jwks(signer)
            } else {
                crate::authn::openid_configuration(signer)
            };
            let mut resp = json_response(StatusCode::OK, &v, &[]);
            if jwks {
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/jwk-set+json"),
                );
            }
            Ok(resp)
        }
        Route::Review { res, namespace } => {
            if req.method() != Method::POST {
                return Err(ApiError::method_not_allowed());
            }
            let (headers, body) = read_body(req).await?;
            let obj = decode_object(&content_type(&headers), &body)?;
            let v = crate::reviews::review(&app, &user, res, namespace.as_deref(), obj).await?;
            Ok(json_response(StatusCode::CREATED, &v, &[]))
        }
        Route::Metrics(m) => {
            let source = crate::metrics::KubeletMetricsSource::new(
                app.registry.clone(),
                app.kubelet_client.get().cloned(),
            );
            let v = app
                .metrics
                .handle(
                    &source,
                    &m,
                    req.method(),
                    &q,
                    &accept,
                    jiff::Timestamp::now(),
                )
                .await?;
            Ok(json_response(StatusCode::OK, &v, &[]))
        }
        Route::Resource(r) => resource(app, req, r, q, &accept, &user).await,
    }
}

async fn health(app: &App, which: &str, verbose: bool) -> ApiResult<Response> {
    let store_ok = tokio::time::timeout(
        Duration::from_secs(2),
        app.registry.store.current_revision(),
    )
    .await
    .map(|r| r.is_ok())
    .unwrap_or(false);
    let mut checks = vec![("ping", true), ("log", true), ("etcd", store_ok)];
    if which.starts_with("readyz") {
        checks.push(("informer-sync", true));
        checks.push(("shutdown", true));
    }
    let base = which.split('/').next().unwrap_or("healthz");
    if let Some((_, single)) = which.split_once('/') {
        return match checks.iter().find(|(n, _)| *n == single) {
            Some((_, true)) => Ok(text_response(StatusCode::OK, "ok".into())),
            Some((_, false)) => Ok(text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal server error: {single} check failed"),
            )),
            None => Err(ApiError::path_not_found()),
        };
    }
    let all_ok = checks.iter().all(|(_, ok)| *ok);
    let code = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    if verbose || !all_ok {
        let mut out = String::new();
        for (n, ok) in &checks {
            if *ok {
                out.push_str(&format!("[+]{n} ok\n"));
            } else {
                out.push_str(&format!("[-]{n} failed: reason withheld\n"));
            }
        }
        if all_ok {
            out.push_str(&format!("{base} check passed\n"));
        } else {
            out.push_str(&format!("{base} check failed\n"));
        }
        return Ok(text_response(code, out));
    }
    Ok(text_response(code, "ok".into()))
}

/// Serves a discovery-like document with an ETag (304 on a matching If-None-Match).
fn discovery_response(
    req: &Request,
    aggregated: Option<(Value, &str)>,
    legacy: Value,
) -> ApiResult<Response> {
    let (body, ct) = match aggregated {
        Some((v, ver)) => (
            v,
            format!("application/json;g=apidiscovery.k8s.io;v={ver};as=APIGroupDiscoveryList"),
        ),
        None => (legacy, "application/json".to_string()),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let etag = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(&bytes);
        format!(
            "\"{}\"",
            d.iter()
                .take(16)
                .map(|b| format!("{b:02X}"))
                .collect::<String>()
        )
    };
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag)
    {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        if let Ok(v) = HeaderValue::from_str(&etag) {
            resp.headers_mut().insert(header::ETAG, v);
        }
        return Ok(resp);
    }
    let mut resp = Response::new(Body::from(bytes));
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ct) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

/// What the client asked to get back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Object,
    Table,
    PartialMetadata,
}

fn shape(accept: &str) -> Shape {
    for part in accept.split(',') {
        let p = part.trim();
        if p.contains("as=Table") {
            return Shape::Table;
        }
        if p.contains("as=PartialObjectMetadata") {
            return Shape::PartialMetadata;
        }
        if p.starts_with("application/json")
            || p.starts_with("*/*")
            || p.starts_with("application/vnd.kubernetes.protobuf")
            || p.starts_with("application/yaml")
        {
            return Shape::Object;
        }
    }
    Shape::Object
}

fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

fn include_object(q: &HashMap<String, String>) -> crate::table::IncludeObject {
    match q.get("includeObject").map(String::as_str) {
        Some("Object") => crate::table::IncludeObject::Object,
        Some("None") => crate::table::IncludeObject::None,
        _ => crate::table::IncludeObject::Metadata,
    }
}

fn with_type_meta(res: &ResourceInfo, mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(res.api_version()));
        m.insert("kind".into(), json!(res.kind));
    }
    obj
}

/// Reads the request body, enforcing the size limit.
async fn read_body(req: Request) -> ApiResult<(HeaderMap, Bytes)> {
    let (parts, body) = req.into_parts();
    let slot = parts.extensions.get::<crate::audit::AuditSlot>().cloned();
    if parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY)
    {
        return Err(ApiError::too_large());
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())?;
    if let Some(slot) = slot {
        let b = bytes.clone();
        slot.update(|r| r.body = Some(b));
    }
    Ok((parts.headers, bytes))
}

fn content_type(h: &HeaderMap) -> String {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decodes an object body: JSON (also when no Content-Type), YAML or Kubernetes protobuf.
pub fn decode_object(ct: &str, body: &[u8]) -> ApiResult<Value> {
    match ct {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
        "application/yaml" | "application/apply-patch+yaml" => {
            serde_yaml::from_slice::<Value>(body).map_err(|e| {
                ApiError::bad_request(format!("error converting YAML to JSON: yaml: {e}"))
            })
        }
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(body).map_err(|e| match e {
            crate::protobuf::ProtobufError::UnsupportedKind { .. } => ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; {e}"),
            ),
            other => ApiError::bad_request(other.to_string()),
        }),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

fn write_options(
    q: &HashMap<String, String>,
    user_agent: &str,
    default_manager_from_ua: bool,
    user: &UserInfo,
) -> ApiResult<WriteOptions> {
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            )))
        }
    };
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unsupported dry run value: {other}"
            )))
        }
    };
    let mut field_manager = q.get("fieldManager").cloned().unwrap_or_default();
    if field_manager.len() > 128 {
        return Err(ApiError::bad_request(
            "fieldManager: Too long: must have at most 128 bytes",
        ));
    }
    if field_manager.is_empty() && default_manager_from_ua {
        // Upstream names the manager after the user agent's program name.
        field_manager = user_agent.split('/').next().unwrap_or("").to_string();
        if field_manager.is_empty() {
            field_manager = "unknown".into();
        }
    }
    Ok(WriteOptions {
        dry_run,
        field_manager,
        field_validation,
        force: q.get("force").is_some_and(|v| v == "true"),
        user: user.clone(),
    })
}

fn parse_sub(r: &ResourceRoute) -> ApiResult<Option<Subresource>> {
    match r.subresource.as_deref() {
        None => Ok(None),
        Some("status") if r.res.has(Subresource::Status) => Ok(Some(Subresource::Status)),
        Some("scale") if r.res.has(Subresource::Scale) => Ok(Some(Subresource::Scale)),
        Some("binding") if r.res.has(Subresource::Binding) => Ok(Some(Subresource::Binding)),
        Some("eviction") if r.res.has(Subresource::Eviction) => Ok(Some(Subresource::Eviction)),
        Some("finalize") if r.res.has(Subresource::Finalize) => Ok(Some(Subresource::Finalize)),
        Some("log") if r.res.has(Subresource::Log) => Ok(Some(Subresource::Log)),
        Some("exec") if r.res.has(Subresource::Exec) => Ok(Some(Subresource::Exec)),
        Some("attach") if r.res.has(Subresource::Attach) => Ok(Some(Subresource::Attach)),
        Some("portforward") if r.res.has(Subresource::PortForward) => {
            Ok(Some(Subresource::PortForward))
        }
        Some("token") if r.res.has(Subresource::Token) => Ok(Some(Subresource::Token)),
        Some(_) => Err(ApiError::path_not_found()),
    }
}

/// `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: find the pod's node and
/// container, then proxy to that node's kubelet.
async fn pod_stream(
    app: &App,
    req: Request,
    ns: &str,
    name: &str,
    sub: Subresource,
) -> ApiResult<Response> {
    use crate::streaming::{self, StreamKind};
    let kubelet = app
        .kubelet_client
        .get()
        .ok_or_else(|| ApiError::internal("no kubelet client configured"))?;
    let pods = resources::find("", "v1", "pods").ok_or_else(ApiError::path_not_found)?;
    let pod = app.registry.get(pods, ns, name).await?;
    let query = req.uri().query().unwrap_or("").to_string();
    let q = query_map(Some(&query));
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let container = match q.get("container") {
        Some(c) if !c.is_empty() => c.clone(),
        _ if sub == Subresource::PortForward => String::new(),
        _ => {
            let names: Vec<&str> = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.get("name").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            match names.as_slice() {
                [one] => one.to_string(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        names.join(" ")
                    )))
                }
            }
        }
    };
    let nodes = resources::find("", "v1", "nodes").ok_or_else(ApiError::path_not_found)?;
    let node = app.registry.get(nodes, "", node_name).await?;
    let host = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP"))
        })
        .and_then(|x| x.get("address").and_then(Value::as_str))
        .ok_or_else(|| ApiError::internal(format!("node {node_name} has no InternalIP")))?
        .to_string();
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .unwrap_or(10250) as u16;
    let kind = match sub {
        Subresource::Log => {
            let path = streaming::kubelet_log_path(ns, name, &container, &query);
            return streaming::proxy_log(kubelet, &host, port, &path)
                .await
                .or_else(|e| Ok(e.into_response()));
        }
        Subresource::Exec => StreamKind::Exec,
        Subresource::Attach => StreamKind::Attach,
        _ => StreamKind::PortForward,
    };
    let path = streaming::kubelet_stream_path(kind, ns, name, &container, &query);
    Ok(streaming::proxy_stream(kubelet, &host, port, kind, &path, req).await)
}

async fn resource(
    app: Arc<App>,
    req: Request,
    r: ResourceRoute,
    q: HashMap<String, String>,
    accept: &str,
    user: &UserInfo,
) -> ApiResult<Response> {
    let res = r.res;
    let reg = app.registry.clone();
    let ns = r.namespace.clone().unwrap_or_default();
    let sub = parse_sub(&r)?;
    let shape = shape(accept);
    let ua = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let verb = verb_for(req.method(), &r, &q);
    let now = jiff::Timestamp::now();
    let render_one = |obj: Value| -> Value {
        let obj = with_type_meta(res, obj);
        match shape {
            Shape::Table => crate::table::to_table(
                res.plural,
                res.group,
                &[obj],
                now,
                include_object(&q),
                "",
                None,
            ),
            Shape::PartialMetadata => partial(&obj),
            Shape::Object => obj,
        }
    };
    if let (
        Some(
            sub @ (Subresource::Log
            | Subresource::Exec
            | Subresource::Attach
            | Subresource::PortForward),
        ),
        Some(name),
    ) = (sub, r.name.clone())
    {
        return pod_stream(&app, req, &ns, &name, sub).await;
    }
    match (verb, sub, r.name.clone()) {
        ("get", None, Some(name)) => {
            let obj = reg.get(res, &ns, &name).await?;
            Ok(json_response(StatusCode::OK, &render_one(obj), &[]))
        }
        ("get", Some(Subresource::Status), Some(name)) => {
            let obj = reg.get(res, &ns, &name).await?;
            Ok(json_response(
                StatusCode::OK,
                &with_type_meta(res, obj),
                &[],
            ))
        }
        ("get", Some(Subresource::Scale), Some(name)) => {
            let obj = reg.get(res, &ns, &name).await?;
            Ok(json_response(
                StatusCode::OK,
                &crate::scale::to_scale(&obj),
                &[],
            ))
        }
        ("list", None, None) => {
            let filter = Filter::parse(
                res,
                q.get("labelSelector").map(String::as_str),
                q.get("fieldSelector").map(String::as_str),
            )?;
            let params = ListParams {
                limit: q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0),
                continue_token: q.get("continue").cloned(),
                resource_version: q.get("resourceVersion").cloned(),
                resource_version_match: q.get("resourceVersionMatch").cloned(),
            };
            let unconverted = std::ptr::eq(crate::conversion::storage_of(res), res);
            if shape == Shape::PartialMetadata
                && filter.is_empty()
                && unconverted
                && params.limit > 0
            {
                let page = reg
                    .list_partial_raw(res, r.namespace.as_deref(), &params)
                    .await?;
                return Ok(raw_items_response(
                    "PartialObjectMetadataList",
                    "meta.k8s.io/v1",
                    page,
                ));
            }
            if shape == Shape::Object && filter.is_empty() && unconverted {
                if params.limit > 0 {
                    let page = reg.list_raw(res, r.namespace.as_deref(), &params).await?;
                    return Ok(raw_list_response(res, page));
                }
                return streamed_list(reg, res, r.namespace.clone(), params).await;
            }
            let page = reg
                .list(res, r.namespace.as_deref(), &filter, &params)
                .await?;
            let rv = page.revision.to_string();
            let body = match shape {
                Shape::Table => crate::table::to_table(
                    res.plural,
                    res.group,
                    &page.items,
                    now,
                    include_object(&q),
                    &rv,
                    page.continue_token.as_deref(),
                ),
                Shape::PartialMetadata => {
                    let items: Vec<Value> = page.items.iter().map(partial).collect();
                    let mut m = json!({"resourceVersion": rv});
                    if let Some(c) = &page.continue_token {
                        m["continue"] = json!(c);
                    }
                    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": m, "items": items})
                }
                Shape::Object => {
                    let mut m = json!({"resourceVersion": rv});
                    if let Some(c) = &page.continue_token {
                        m["continue"] = json!(c);
                    }
                    json!({"kind": res.list_kind(), "apiVersion": res.api_version(), "metadata": m, "items": page.items})
                }
            };
            Ok(json_response(StatusCode::OK, &body, &[]))
        }
        ("watch", None, name) => {
            let permit = app.watches.acquire(user)?;
            let mut field = q.get("fieldSelector").cloned().unwrap_or_default();
            if let Some(n) = name {
                field = if field.is_empty() {
                    format!("metadata.name={n}")
                } else {
                    format!("{field},metadata.name={n}")
                };
            }
            let filter = Filter::parse(
                res,
                q.get("labelSelector").map(String::as_str),
                Some(&field),
            )?;
            let timeout = q
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or_else(|| Duration::from_secs(1800 + rand::random::<u64>() % 1800));
            let params = WatchParams {
                resource_version: q.get("resourceVersion").cloned(),
                timeout,
                bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
                raw: match shape {
                    _ if !std::ptr::eq(crate::conversion::storage_of(res), res) => None,
                    Shape::Object => Some(watch::RawShape::Object),
                    Shape::PartialMetadata => Some(watch::RawShape::PartialMetadata),
                    Shape::Table => None,
                },
            };
            let first = std::sync::atomic::AtomicBool::new(true);
            let inc = include_object(&q);
            let encode: watch::Encoder = Arc::new(move |ty: &str, obj: &Value| {
                let obj = if ty == "ERROR" {
                    obj.clone()
                } else {
                    with_type_meta(res, obj.clone())
                };
                let obj = match shape {
                    Shape::Table if ty != "ERROR" && ty != "BOOKMARK" => {
                        let mut t = crate::table::to_table(
                            res.plural,
                            res.group,
                            &[obj],
                            jiff::Timestamp::now(),
                            inc,
                            "",
                            None,
                        );
                        if !first.swap(false, std::sync::atomic::Ordering::Relaxed) {
                            t["columnDefinitions"] = json!([]);
                        }
                        t
                    }
                    Shape::PartialMetadata if ty != "ERROR" => partial(&obj),
                    _ => obj,
                };
                let mut line =
                    serde_json::to_vec(&json!({"type": ty, "object": obj})).unwrap_or_default();
                line.push(b'\n');
                Bytes::from(line)
            });
            let rx = watch::start(reg, res, r.namespace.clone(), filter, params, encode).await?;
            // The permit lives as long as the response stream.
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |b| {
                let _held = &permit;
                Ok::<Bytes, std::convert::Infallible>(b)
            });
            let mut resp = Response::new(Body::from_stream(stream));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache, private"),
            );
            Ok(resp)
        }
        ("create", None, None) => {
            let opts = write_options(&q, &ua, true, user)?;
            let (h, body) = read_body(req).await?;
            let obj = decode_object(&content_type(&h), &body)?;
            let w = reg.create(res, &ns, obj, &opts).await?;
            Ok(json_response(
                StatusCode::CREATED,
                &render_one(w.object),
                &w.warnings,
            ))
        }
        ("create", Some(Subresource::Binding), Some(name)) => {
            let opts = write_options(&q, &ua, false, user)?;
            let (h, body) = read_body(req).await?;
            let b = decode_object(&content_type(&h), &body)?;
            let st = reg.bind(&ns, &name, &b, opts.dry_run).await?;
            Ok(json_response(StatusCode::CREATED, &st, &[]))
        }
        ("create", Some(Subresource::Eviction), Some(name)) => {
            let (h, body) = read_body(req).await?;
            let b = decode_object(&content_type(&h), &body)?;
            crate::nodegraph::admit(
                &reg,
                &reg.nodes,
                user,
                crate::nodeauth::Operation::Create,
                res,
                "eviction",
                &ns,
                &name,
                Some(&b),
                None,
            )
            .await?;
            let st = reg.evict(&ns, &name, &b).await?;
            Ok(json_response(StatusCode::CREATED, &st, &[]))
        }
        ("create", Some(Subresource::Token), Some(name)) => {
            // Tokens are not stored, so a dry run issues one all the same.
            write_options(&q, &ua, false, user)?;
            let Some(signer) = app.sa_signer.get().cloned() else {
                return Err(ApiError::path_not_found());
            };
            let (h, body) = read_body(req).await?;
            let b = decode_object(&content_type(&h), &body)?;
            crate::nodegraph::admit(
                &reg,
                &reg.nodes,
                user,
                crate::nodeauth::Operation::Create,
                res,
                "token",
                &ns,
                &name,
                Some(&b),
                None,
            )
            .await?;
            let tr =
                crate::tokens::create_token(&reg, &signer, &ns, &name, &b, jiff::Timestamp::now())
                    .await?;
            Ok(json_response(StatusCode::CREATED, &tr, &[]))
        }
        ("update", Some(Subresource::Finalize), Some(name)) => {
            let (h, body) = read_body(req).await?;
            let b = decode_object(&content_type(&h), &body)?;
            let obj = reg.finalize_namespace(&name, &b).await?;
            Ok(json_response(
                StatusCode::OK,
                &with_type_meta(res, obj),
                &[],
            ))
        }
        ("update", sub @ (None | Some(Subresource::Status)), Some(name)) => {
            let opts = write_options(&q, &ua, true, user)?;
            let (h, body) = read_body(req).await?;
            let obj = decode_object(&content_type(&h), &body)?;
            let w = reg.replace(res, &ns, &name, sub, obj, &opts).await?;
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &render_one(w.object), &w.warnings))
        }
        ("update" | "patch", Some(Subresource::Scale), Some(name)) => {
            let opts = write_options(&q, &ua, true, user)?;
            let ptype = if verb == "patch" {
                Some(patch_type(req.headers())?)
            } else {
                None
            };
            let (h, body) = read_body(req).await?;
            let doc = if verb == "patch" {
                decode_object(
                    if ptype == Some(PatchType::Apply) {
                        "application/yaml"
                    } else {
                        "application/json"
                    },
                    &body,
                )?
            } else {
                decode_object(&content_type(&h), &body)?
            };
            let scale = crate::scale::update(&reg, res, &ns, &name, ptype, doc, &opts).await?;
            Ok(json_response(StatusCode::OK, &scale, &[]))
        }
        ("patch", sub @ (None | Some(Subresource::Status)), Some(name)) => {
            let ptype = patch_type(req.headers())?;
            let mut opts = write_options(&q, &ua, ptype != PatchType::Apply, user)?;
            if ptype == PatchType::Apply && opts.field_manager.is_empty() {
                return Err(ApiError::bad_request("PATCH, application/apply-patch+yaml: fieldManager is required for apply requests"));
            }
            if ptype != PatchType::Apply && q.contains_key("force") {
                return Err(ApiError::bad_request(
                    "force: Forbidden: may not be specified for non-apply patch",
                ));
            }
            opts.force = q.get("force").is_some_and(|v| v == "true");
            let (_, body) = read_body(req).await?;
            let doc = match ptype {
                PatchType::Apply => decode_object("application/yaml", &body)?,
                _ => serde_json::from_slice(&body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
            };
            let w = reg.patch(res, &ns, &name, sub, ptype, doc, &opts).await?;
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &render_one(w.object), &w.warnings))
        }
        ("delete", None, Some(name)) => {
            let mut opts = delete_options(&q)?;
            opts.user = user.clone();
            let (h, body) = read_body(req).await?;
            if !body.is_empty() {
                let v = decode_object(&content_type(&h), &body)?;
                opts.merge_body(&v)?;
            }
            let (obj, gone) = reg.delete(res, &ns, &name, &opts).await?;
            let code = if gone {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            Ok(json_response(code, &with_type_meta(res, obj), &[]))
        }
        ("deletecollection", None, None) => {
            let mut opts = delete_options(&q)?;
            opts.user = user.clone();
            let (h, body) = read_body(req).await?;
            if !body.is_empty() {
                let v = decode_object(&content_type(&h), &body)?;
                opts.merge_body(&v)?;
            }
            let filter = Filter::parse(
                res,
                q.get("labelSelector").map(String::as_str),
                q.get("fieldSelector").map(String::as_str),
            )?;
            let page = reg
                .list(res, r.namespace.as_deref(), &filter, &ListParams::default())
                .await?;
            let mut items = Vec::new();
            for obj in page.items {
                let (n, o) = (
                    meta::name(&obj).to_string(),
                    meta::namespace(&obj).to_string(),
                );
                match reg.delete(res, &o, &n, &opts).await {
                    Ok((d, _)) => items.push(d),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            let body = json!({"kind": res.list_kind(), "apiVersion": res.api_version(), "metadata": {"resourceVersion": page.revision.to_string()}, "items": items});
            Ok(json_response(StatusCode::OK, &body, &[]))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Items per store read when a full list is streamed.
const STREAM_PAGE: i64 = 500;

/// A full (unlimited) list streamed in store pages pinned to the first page's revision,
/// so a large list starts leaving before it is all read and is never held whole.
async fn streamed_list(
    reg: Arc<crate::registry::Registry>,
    res: &'static ResourceInfo,
    ns: Option<String>,
    params: ListParams,
) -> ApiResult<Response> {
    let first = reg
        .list_raw(
            res,
            ns.as_deref(),
            &ListParams {
                limit: STREAM_PAGE,
                ..params
            },
        )
        .await?;
    let head = format!(
        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{}\"}},\"items\":[",
        res.list_kind(),
        res.api_version(),
        first.revision
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let mut page = first;
        let mut out = head.into_bytes();
        let mut any = false;
        loop {
            for item in &page.items {
                if any {
                    out.push(b',');
                }
                any = true;
                out.extend_from_slice(item);
            }
            let Some(token) = page.continue_token.take() else {
                break;
            };
            if tx
                .send(Ok(Bytes::from(std::mem::take(&mut out))))
                .await
                .is_err()
            {
                return;
            }
            let next = ListParams {
                limit: STREAM_PAGE,
                continue_token: Some(token),
                ..Default::default()
            };
            page = match reg.list_raw(res, ns.as_deref(), &next).await {
                Ok(p) => p,
                Err(e) => {
                    // Headers are gone: end the body early so the client sees a broken list.
                    let _ = tx.send(Err(std::io::Error::other(e.message))).await;
                    return;
                }
            };
        }
        out.extend_from_slice(b"]}");
        let _ = tx.send(Ok(Bytes::from(out))).await;
    });
    let mut resp = Response::new(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// A list response assembled from raw item JSON (see `Registry::list_raw`).
fn raw_list_response(res: &ResourceInfo, page: crate::list::ListPage<Vec<u8>>) -> Response {
    raw_items_response(&res.list_kind(), &res.api_version(), page)
}

/// A list response around items already encoded as JSON.
fn raw_items_response(
    kind: &str,
    api_version: &str,
    page: crate::list::ListPage<Vec<u8>>,
) -> Response {
    let mut meta = json!({"resourceVersion": page.revision.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    let size: usize = page.items.iter().map(|i| i.len() + 1).sum();
    let mut body = Vec::with_capacity(size + 256);
    body.extend_from_slice(
        format!(
            "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
            kind, api_version, meta
        )
        .as_bytes(),
    );
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn patch_type(h: &HeaderMap) -> ApiResult<PatchType> {
    match content_type(h).as_str() {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {other}"),
        )),
    }
}

fn delete_options(q: &HashMap<String, String>) -> ApiResult<DeleteOptions> {
    let mut o =
        DeleteOptions {
            grace_period: match q.get("gracePeriodSeconds") {
                Some(g) => Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds: {g}"))
                })?),
                None => None,
            },
            propagation: q.get("propagationPolicy").cloned(),
            dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
            ..Default::default()
        };
    if q.get("orphanDependents").is_some_and(|v| v == "true") && o.propagation.is_none() {
        o.propagation = Some("Orphan".into());
    }
    o.merge_body(&json!({}))?;
    Ok(o)
}

use futures::StreamExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/version"), Route::Version);
        assert_eq!(route("/apis/apps"), Route::ApisGroup("apps".into()));
        let Route::Resource(r) = route("/api/v1/namespaces/default/pods/x/status") else {
            panic!()
        };
        assert_eq!(
            (
                r.res.plural,
                r.namespace.as_deref(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            ("pods", Some("default"), Some("x"), Some("status"))
        );
        let Route::Resource(r) = route("/api/v1/namespaces/kube-system") else {
            panic!()
        };
        assert_eq!(
            (r.res.plural, r.name.as_deref()),
            ("namespaces", Some("kube-system"))
        );
        let Route::Resource(r) = route("/api/v1/namespaces/x/status") else {
            panic!()
        };
        assert_eq!(
            (r.res.plural, r.name.as_deref(), r.subresource.as_deref()),
            ("namespaces", Some("x"), Some("status"))
        );
        let Route::Resource(r) = route("/apis/apps/v1/deployments") else {
            panic!()
        };
        assert!(r.namespace.is_none());
        assert_eq!(route("/api/v1/namespaces/default/nodes"), Route::NotFound);
        assert_eq!(route("/api/v1/namespaces/default/pods/.."), Route::NotFound);
        assert_eq!(route("/apis/nope/v1/things"), Route::NotFound);
    }

    #[test]
    fn public_paths() {
        assert!(is_public("/healthz"));
        assert!(is_public("/readyz/etcd"));
        assert!(!is_public("/api"));
    }
}
