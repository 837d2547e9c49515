//! Dynamic admission webhooks, after upstream
//! `staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook` (generic, mutating, validating,
//! predicates/{namespace,object,rules}, request, errors) and `pkg/util/webhook` (the client).
//!
//! This module owns:
//! - parsing `MutatingWebhookConfiguration` / `ValidatingWebhookConfiguration`
//!   (admissionregistration.k8s.io/v1) into a flat [`Webhook`] list, configurations sorted by
//!   name and webhooks kept in the order they are listed inside each configuration (as
//!   upstream's configuration manager does);
//! - deciding whether a webhook is called for a request (rules, namespaceSelector,
//!   objectSelector, the exemption of admission-configuration objects);
//! - building the `AdmissionReview` request and interpreting the response (uid / GVK checks,
//!   denial messages, JSONPatch, warnings, audit annotations);
//! - failurePolicy handling with upstream's messages;
//! - the HTTPS call behind [`WebhookTransport`] ([`HttpsTransport`], [`FakeTransport`]);
//! - dispatching: [`run_mutating`] (sequential, with `reinvocationPolicy: IfNeeded`) and
//!   [`run_validating`] (parallel).
//!
//! Differences from upstream, on purpose:
//! - `matchPolicy: Equivalent` is treated as `Exact` (no equivalent-resource mapping).
//! - `matchConditions` (CEL) are not evaluated: a webhook with match conditions is called as
//!   if they all matched.
//! - When `caBundle` is empty the API server's own CA (given to [`HttpsTransport::new`]) is
//!   trusted instead of the system roots.
//! - Validating webhooks run concurrently; when several reject, the first in webhook order
//!   wins (upstream: the first to finish).
//! - Reinvocation covers webhook-made changes only (in-tree plugins are not re-run here).
//!
//! Resolving a `service` reference to an address is the caller's job: every entry point that
//! needs it takes a [`ServiceResolver`] `(namespace, name, port) -> Option<SocketAddr>`; `None`
//! becomes upstream's `no endpoints available for service "<name>"`.

use crate::auth::UserInfo;
use async_trait::async_trait;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `admission.k8s.io/v1`.
pub const ADMISSION_V1: &str = "admission.k8s.io/v1";
/// `admission.k8s.io/v1beta1`.
pub const ADMISSION_V1BETA1: &str = "admission.k8s.io/v1beta1";
/// Default and bounds of `timeoutSeconds`.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 10;
pub const MAX_TIMEOUT_SECONDS: u32 = 30;
/// Largest webhook response body read.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Audit annotation key prefixes (upstream mutating / validating dispatchers).
pub const MUTATION_ANNOTATION_PREFIX: &str = "mutation.webhook.admission.k8s.io/";
pub const PATCH_ANNOTATION_PREFIX: &str = "patch.webhook.admission.k8s.io/";
pub const MUTATION_FAILED_OPEN_PREFIX: &str = "failed-open.mutation.webhook.admission.k8s.io/";
pub const VALIDATING_FAILED_OPEN_PREFIX: &str = "failed-open.validating.webhook.admission.k8s.io/";

// ---------------------------------------------------------------------------------------------
// Request attributes
// ---------------------------------------------------------------------------------------------

/// Admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupVersionKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupVersionResource {
    pub group: String,
    pub version: String,
    pub resource: String,
}

/// What is being admitted (upstream `admission.Attributes`).
///
/// `namespace` is empty for cluster-scoped objects, except that for requests on an existing
/// Namespace object (`/api/v1/namespaces/<name>`) it is the namespace's own name, as upstream's
/// request info sets it. `object` is `None` for DELETE; `old_object` is set for UPDATE and
/// DELETE. `options` is the CreateOptions / UpdateOptions / DeleteOptions object; when `None`
/// [`default_options`] is sent.
#[derive(Debug, Clone)]
pub struct AdmissionAttributes {
    pub kind: GroupVersionKind,
    pub resource: GroupVersionResource,
    pub subresource: String,
    pub name: String,
    pub namespace: String,
    pub operation: Operation,
    pub user: UserInfo,
    pub object: Option<Value>,
    pub old_object: Option<Value>,
    pub dry_run: bool,
    pub options: Option<Value>,
}

/// Upstream `IsExemptAdmissionConfigurationResource`: webhooks are never called for the
/// objects that configure admission itself.
pub fn is_exempt(req: &AdmissionAttributes) -> bool {
    req.kind.group == "admissionregistration.k8s.io"
        && matches!(
            req.kind.kind.as_str(),
            "ValidatingWebhookConfiguration"
                | "MutatingWebhookConfiguration"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
                | "MutatingAdmissionPolicy"
                | "MutatingAdmissionPolicyBinding"
        )
}

/// The operation options sent when the caller gave none.
pub fn default_options(operation: Operation, dry_run: bool) -> Value {
    let kind = match operation {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
        Operation::Connect => return Value::Null,
    };
    let mut o = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
    if dry_run {
        o["dryRun"] = json!(["All"]);
    }
    o
}

fn object_labels(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: SelectorOp,
    pub values: Vec<String>,
}

/// A parsed `metav1.LabelSelector`. An absent or empty selector matches everything. A
/// selector that does not parse keeps the error, which surfaces when the webhook's rules
/// match (as upstream's `GetParsedNamespaceSelector` error does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
    pub error: Option<String>,
}

impl LabelSelector {
    pub fn parse(v: Option<&Value>) -> LabelSelector {
        let mut sel = LabelSelector::default();
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return sel;
        };
        if let Some(ml) = v.get("matchLabels").and_then(Value::as_object) {
            for (k, val) in ml {
                sel.requirements.push(Requirement {
                    key: k.clone(),
                    op: SelectorOp::In,
                    values: vec![val.as_str().unwrap_or_default().to_string()],
                });
            }
        }
        for e in v
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let op_s = e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let op = match op_s {
                "In" => SelectorOp::In,
                "NotIn" => SelectorOp::NotIn,
                "Exists" => SelectorOp::Exists,
                "DoesNotExist" => SelectorOp::DoesNotExist,
                other => {
                    sel.error = Some(format!("{other:?} is not a valid label selector operator"));
                    continue;
                }
            };
            let set_op = matches!(op, SelectorOp::In | SelectorOp::NotIn);
            if set_op && values.is_empty() {
                sel.error = Some(
                    "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
                        .to_string(),
                );
            } else if !set_op && !values.is_empty() {
                sel.error = Some(format!(
                    "values: Invalid value: {values:?}: values set must be empty for exists and does not exist"
                ));
            }
            sel.requirements.push(Requirement {
                key: key.to_string(),
                op,
                values,
            });
        }
        sel
    }

    /// True when the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty() && self.error.is_none()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> Result<bool, String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        Ok(self.requirements.iter().all(|r| {
            let v = labels.get(&r.key);
            match r.op {
                SelectorOp::In => v.is_some_and(|v| r.values.contains(v)),
                SelectorOp::NotIn => v.is_none_or(|v| !r.values.contains(v)),
                SelectorOp::Exists => v.is_some(),
                SelectorOp::DoesNotExist => v.is_none(),
            }
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookType {
    Mutating,
    Validating,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    Fail,
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchPolicy {
    Exact,
    /// Parsed but matched as `Exact`.
    Equivalent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReinvocationPolicy {
    Never,
    IfNeeded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleScope {
    All,
    Cluster,
    Namespaced,
    /// An unknown value: matches nothing, as upstream.
    Other(String),
}

/// One `RuleWithOperations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub operations: Vec<String>,
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    pub resources: Vec<String>,
    pub scope: RuleScope,
}

fn exact_or_wildcard(items: &[String], requested: &str) -> bool {
    items.iter().any(|i| i == "*" || i == requested)
}

impl Rule {
    /// Upstream `rules.Matcher.Matches`.
    pub fn matches(&self, req: &AdmissionAttributes) -> bool {
        let is_namespace_object = req.resource.group.is_empty()
            && req.resource.version == "v1"
            && req.resource.resource == "namespaces";
        let scope = match &self.scope {
            RuleScope::All => true,
            RuleScope::Namespaced => !is_namespace_object && !req.namespace.is_empty(),
            RuleScope::Cluster => is_namespace_object || req.namespace.is_empty(),
            RuleScope::Other(_) => false,
        };
        let op = req.operation.as_str();
        let operation = self.operations.iter().any(|o| o == "*" || o == op);
        let resource = self.resources.iter().any(|r| {
            let (res, sub) = r.split_once('/').unwrap_or((r.as_str(), ""));
            (res == "*" || res == req.resource.resource) && (sub == "*" || sub == req.subresource)
        });
        scope
            && operation
            && exact_or_wildcard(&self.api_groups, &req.resource.group)
            && exact_or_wildcard(&self.api_versions, &req.resource.version)
            && resource
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceReference {
    pub namespace: String,
    pub name: String,
    pub path: Option<String>,
    /// Defaults to 443.
    pub port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConfig {
    pub url: Option<String>,
    pub service: Option<ServiceReference>,
    /// PEM bytes (base64-decoded `caBundle`).
    pub ca_bundle: Option<Vec<u8>>,
}

/// One webhook of a configuration, with v1 defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub name: String,
    pub configuration_name: String,
    /// `<configuration>/<webhook>/<n>`: unique even when names repeat (upstream accessor UID).
    pub uid: String,
    pub webhook_type: WebhookType,
    pub client_config: ClientConfig,
    pub rules: Vec<Rule>,
    pub failure_policy: FailurePolicy,
    pub match_policy: MatchPolicy,
    pub namespace_selector: LabelSelector,
    pub object_selector: LabelSelector,
    pub side_effects: Option<String>,
    /// Clamped to 1..=30, default 10.
    pub timeout_seconds: u32,
    pub admission_review_versions: Vec<String>,
    pub reinvocation_policy: ReinvocationPolicy,
    /// True when `matchConditions` were given (they are not evaluated).
    pub has_match_conditions: bool,
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_rule(r: &Value) -> Rule {
    let scope = match r.get("scope").and_then(Value::as_str) {
        None | Some("*") => RuleScope::All,
        Some("Cluster") => RuleScope::Cluster,
        Some("Namespaced") => RuleScope::Namespaced,
        Some(other) => RuleScope::Other(other.to_string()),
    };
    Rule {
        operations: str_list(r.get("operations")),
        api_groups: str_list(r.get("apiGroups")),
        api_versions: str_list(r.get("apiVersions")),
        resources: str_list(r.get("resources")),
        scope,
    }
}

fn parse_client_config(cc: Option<&Value>) -> ClientConfig {
    let Some(cc) = cc else {
        return ClientConfig::default();
    };
    let ca_bundle = cc
        .get("caBundle")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
    let service = cc.get("service").filter(|s| s.is_object()).map(|s| {
        let port = s
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .unwrap_or(443);
        ServiceReference {
            namespace: s
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            name: s
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            path: s.get("path").and_then(Value::as_str).map(str::to_string),
            port,
        }
    });
    ClientConfig {
        url: cc.get("url").and_then(Value::as_str).map(str::to_string),
        service,
        ca_bundle,
    }
}

/// Parses one Mutating- or ValidatingWebhookConfiguration (the type comes from `kind`;
/// anything but `MutatingWebhookConfiguration` is treated as validating).
pub fn parse_configuration(config: &Value) -> Vec<Webhook> {
    let webhook_type = match config.get("kind").and_then(Value::as_str) {
        Some("MutatingWebhookConfiguration") => WebhookType::Mutating,
        _ => WebhookType::Validating,
    };
    let configuration_name = config
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for w in config
        .get("webhooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = w
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let n = seen.entry(name.clone()).or_insert(0);
        let uid = format!("{configuration_name}/{name}/{n}");
        *n += 1;
        let timeout_seconds = w
            .get("timeoutSeconds")
            .and_then(Value::as_i64)
            .map(|t| t.clamp(1, i64::from(MAX_TIMEOUT_SECONDS)) as u32)
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS);
        out.push(Webhook {
            name,
            configuration_name: configuration_name.clone(),
            uid,
            webhook_type,
            client_config: parse_client_config(w.get("clientConfig")),
            rules: w
                .get("rules")
                .and_then(Value::as_array)
                .map(|rs| rs.iter().map(parse_rule).collect())
                .unwrap_or_default(),
            failure_policy: match w.get("failurePolicy").and_then(Value::as_str) {
                Some("Ignore") => FailurePolicy::Ignore,
                _ => FailurePolicy::Fail,
            },
            match_policy: match w.get("matchPolicy").and_then(Value::as_str) {
                Some("Exact") => MatchPolicy::Exact,
                _ => MatchPolicy::Equivalent,
            },
            namespace_selector: LabelSelector::parse(w.get("namespaceSelector")),
            object_selector: LabelSelector::parse(w.get("objectSelector")),
            side_effects: w
                .get("sideEffects")
                .and_then(Value::as_str)
                .map(str::to_string),
            timeout_seconds,
            admission_review_versions: str_list(w.get("admissionReviewVersions")),
            reinvocation_policy: match w.get("reinvocationPolicy").and_then(Value::as_str) {
                Some("IfNeeded") => ReinvocationPolicy::IfNeeded,
                _ => ReinvocationPolicy::Never,
            },
            has_match_conditions: w
                .get("matchConditions")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()),
        });
    }
    out
}

/// All webhooks of a set of configurations of one type: configurations sorted by name, each
/// one's webhooks in listed order (upstream `mergeMutatingWebhookConfigurations` /
/// `mergeValidatingWebhookConfigurations`).
pub fn collect_webhooks(configs: &[Value]) -> Vec<Webhook> {
    let mut sorted: Vec<&Value> = configs.iter().collect();
    sorted.sort_by(|a, b| {
        let name = |v: &Value| {
            v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        name(a).cmp(&name(b))
    });
    sorted.into_iter().flat_map(parse_configuration).collect()
}

// ---------------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------------

/// A refusal to admit, with the HTTP code, Status reason (may be empty) and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AdmissionRejection {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

impl AdmissionRejection {
    /// `apierrors.NewInternalError`.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        AdmissionRejection {
            code: 500,
            reason: "InternalError".into(),
            message: format!("Internal error occurred: {err}"),
        }
    }

    /// The `metav1.Status` body for this rejection.
    pub fn to_status(&self) -> Value {
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
        s["code"] = json!(self.code);
        s
    }
}

impl Webhook {
    /// True when the webhook is to be called for this request. `namespace_labels` are the
    /// labels of the namespace `req.namespace` (ignored for cluster-scoped objects and for
    /// CREATE/UPDATE of a Namespace, whose own labels are used). Errors (a bad selector, a
    /// missing namespace) count as "not called" here; [`Webhook::should_call`] reports them.
    pub fn matches(
        &self,
        req: &AdmissionAttributes,
        namespace_labels: Option<&BTreeMap<String, String>>,
    ) -> bool {
        matches!(self.should_call(req, namespace_labels), Ok(true))
    }

    /// Upstream `ShouldCallHook`: selector errors only surface when a rule matches.
    pub fn should_call(
        &self,
        req: &AdmissionAttributes,
        namespace_labels: Option<&BTreeMap<String, String>>,
    ) -> Result<bool, AdmissionRejection> {
        if is_exempt(req) {
            return Ok(false);
        }
        let ns = self.match_namespace(req, namespace_labels);
        if matches!(ns, Ok(false)) {
            return Ok(false);
        }
        let obj = self.match_object(req);
        if matches!(obj, Ok(false)) {
            return Ok(false);
        }
        if !self.rules.iter().any(|r| r.matches(req)) {
            return Ok(false);
        }
        ns?;
        obj?;
        Ok(true)
    }

    fn match_namespace(
        &self,
        req: &AdmissionAttributes,
        namespace_labels: Option<&BTreeMap<String, String>>,
    ) -> Result<bool, AdmissionRejection> {
        if req.namespace.is_empty() && req.resource.resource != "namespaces" {
            // cluster-scoped objects other than namespaces are never exempted
            return Ok(true);
        }
        if self.namespace_selector.is_empty() {
            return Ok(true);
        }
        let own_labels;
        let labels = if req.resource.resource == "namespaces"
            && req.subresource.is_empty()
            && matches!(req.operation, Operation::Create | Operation::Update)
        {
            own_labels = req.object.as_ref().map(object_labels).unwrap_or_default();
            &own_labels
        } else {
            match namespace_labels {
                Some(l) => l,
                None => {
                    return Err(AdmissionRejection {
                        code: 404,
                        reason: "NotFound".into(),
                        message: format!("namespaces {:?} not found", req.namespace),
                    })
                }
            }
        };
        self.namespace_selector
            .matches(labels)
            .map_err(AdmissionRejection::internal)
    }

    fn match_object(&self, req: &AdmissionAttributes) -> Result<bool, AdmissionRejection> {
        if self.object_selector.is_empty() {
            return Ok(true);
        }
        let m = |o: &Option<Value>| -> Result<bool, AdmissionRejection> {
            match o {
                None => Ok(false),
                Some(o) => self
                    .object_selector
                    .matches(&object_labels(o))
                    .map_err(AdmissionRejection::internal),
            }
        };
        Ok(m(&req.object)? || m(&req.old_object)?)
    }

    /// The AdmissionReview version to send: the first of `admissionReviewVersions` known.
    pub fn review_version(&self) -> Result<&'static str, WebhookError> {
        for v in &self.admission_review_versions {
            match v.as_str() {
                "v1" => return Ok(ADMISSION_V1),
                "v1beta1" => return Ok(ADMISSION_V1BETA1),
                _ => {}
            }
        }
        Err(WebhookError::CreateReview {
            webhook: self.name.clone(),
        })
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_seconds))
    }
}

// ---------------------------------------------------------------------------------------------
// AdmissionReview request
// ---------------------------------------------------------------------------------------------

/// The `admission.k8s.io/v1` AdmissionReview sent to a webhook.
pub fn build_review(req: &AdmissionAttributes, uid: &str) -> Value {
    build_review_version(req, uid, ADMISSION_V1)
}

/// The AdmissionReview in `api_version` (`admission.k8s.io/v1` or `/v1beta1`: same shape).
pub fn build_review_version(req: &AdmissionAttributes, uid: &str, api_version: &str) -> Value {
    let gvk = json!({"group": req.kind.group, "version": req.kind.version, "kind": req.kind.kind});
    let gvr = json!({
        "group": req.resource.group,
        "version": req.resource.version,
        "resource": req.resource.resource,
    });
    let mut user = Map::new();
    if !req.user.name.is_empty() {
        user.insert("username".into(), json!(req.user.name));
    }
    if !req.user.uid.is_empty() {
        user.insert("uid".into(), json!(req.user.uid));
    }
    if !req.user.groups.is_empty() {
        user.insert("groups".into(), json!(req.user.groups));
    }
    if !req.user.extra.is_empty() {
        user.insert("extra".into(), json!(req.user.extra));
    }
    let mut r = Map::new();
    r.insert("uid".into(), json!(uid));
    r.insert("kind".into(), gvk.clone());
    r.insert("resource".into(), gvr.clone());
    if !req.subresource.is_empty() {
        r.insert("subResource".into(), json!(req.subresource));
    }
    r.insert("requestKind".into(), gvk);
    r.insert("requestResource".into(), gvr);
    if !req.subresource.is_empty() {
        r.insert("requestSubResource".into(), json!(req.subresource));
    }
    if !req.name.is_empty() {
        r.insert("name".into(), json!(req.name));
    }
    if !req.namespace.is_empty() {
        r.insert("namespace".into(), json!(req.namespace));
    }
    r.insert("operation".into(), json!(req.operation.as_str()));
    r.insert("userInfo".into(), Value::Object(user));
    r.insert("object".into(), req.object.clone().unwrap_or(Value::Null));
    r.insert(
        "oldObject".into(),
        req.old_object.clone().unwrap_or(Value::Null),
    );
    r.insert("dryRun".into(), json!(req.dry_run));
    r.insert(
        "options".into(),
        req.options
            .clone()
            .unwrap_or_else(|| default_options(req.operation, req.dry_run)),
    );
    json!({"kind": "AdmissionReview", "apiVersion": api_version, "request": Value::Object(r)})
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Failures of the HTTPS exchange, worded like Go's net/http and crypto/tls errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("no endpoints available for service {0:?}")]
    ResolveService(String),
    #[error("dial tcp: lookup {host}: {reason}")]
    ResolveHost { host: String, reason: String },
    #[error("unable to load root certificates: {0}")]
    LoadCa(String),
    #[error("dial tcp {addr}: connect: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Http(String),
    #[error("context deadline exceeded")]
    Timeout,
    /// A non-2xx answer, worded like client-go's `NewGenericServerResponse`.
    #[error("{}", generic_server_response(*.code, .body))]
    Status { code: u16, body: String },
}

fn generic_server_response(code: u16, body: &str) -> String {
    match code {
        409 => "the server reported a conflict".into(),
        404 => "the server could not find the requested resource".into(),
        400 => "the server rejected our request for an unknown reason".into(),
        401 => "the server has asked for the client to provide credentials".into(),
        403 => body.trim().to_string(),
        405 => "the server does not allow this method on the requested resource".into(),
        422 => "the server rejected our request due to an error in our request".into(),
        504 => "the server was unable to return a response in the time allotted, but may still be processing the request".into(),
        429 => "the server has received too many requests and has asked us to try again later".into(),
        c if c >= 500 => format!(
            "an error on the server ({:?}) has prevented the request from succeeding",
            body.trim()
        ),
        c => format!("the server responded with the status code {c} but did not return more information"),
    }
}

/// Go's `url.Error` wrapping (`Post "<url>": <err>`) applies to errors of the round trip,
/// not to HTTP answers nor to building the client.
fn call_reason(url: &str, err: &TransportError) -> String {
    match err {
        TransportError::Status { .. } => format!("failed to call webhook: {err}"),
        TransportError::LoadCa(_) => format!("could not get REST client: {err}"),
        _ => format!("failed to call webhook: Post {url:?}: {err}"),
    }
}

/// Why calling one webhook failed. Variants whose [`WebhookError::is_call_failure`] is true
/// are upstream's `ErrCallingWebhook` and obey failurePolicy; the others always reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("failed calling webhook {webhook:?}: could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)")]
    CreateReview { webhook: String },
    #[error("failed calling webhook {webhook:?}: could not get REST client: webhook configuration must have either service or URL")]
    ClientConfig { webhook: String },
    #[error("failed calling webhook {webhook:?}: {}", call_reason(.url, .source))]
    Call {
        webhook: String,
        url: String,
        source: TransportError,
    },
    #[error("failed calling webhook {webhook:?}: failed to call webhook: {reason}")]
    DecodeResponse { webhook: String, reason: String },
    #[error("failed calling webhook {webhook:?}: received invalid webhook response: {reason}")]
    VerifyResponse { webhook: String, reason: String },
    #[error("failed calling webhook {webhook:?}: received undecodable patch in webhook response: {reason}")]
    DecodePatch { webhook: String, reason: String },
    #[error("failed calling webhook {webhook:?}: unsupported patch type {patch_type:?}")]
    PatchType { webhook: String, patch_type: String },
    #[error("failed calling webhook {webhook:?}: Webhook SideEffects is nil")]
    SideEffects { webhook: String },
    #[error("admission webhook {webhook:?} does not support dry run")]
    DryRun { webhook: String },
    #[error("admission webhook {webhook:?} attempted to modify the object, which is not supported for this operation")]
    PatchWithoutObject { webhook: String },
    #[error("{0}")]
    ApplyPatch(String),
}

impl WebhookError {
    /// Upstream `ErrCallingWebhook`: subject to failurePolicy.
    pub fn is_call_failure(&self) -> bool {
        !matches!(
            self,
            WebhookError::DryRun { .. }
                | WebhookError::PatchWithoutObject { .. }
                | WebhookError::ApplyPatch(_)
        )
    }

    /// The rejection returned when this error fails the request.
    pub fn to_rejection(&self) -> AdmissionRejection {
        match self {
            WebhookError::DryRun { .. } => AdmissionRejection {
                code: 400,
                reason: "BadRequest".into(),
                message: self.to_string(),
            },
            _ => AdmissionRejection::internal(self),
        }
    }
}

/// What a failed call amounts to under the webhook's failurePolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureDecision {
    Reject(AdmissionRejection),
    /// failurePolicy Ignore: the request proceeds; the error was logged.
    Ignore,
}

/// Upstream's handling of a webhook error: call failures under `Fail` become
/// `Internal error occurred: failed calling webhook "<name>": ...` (500); under `Ignore` they
/// are logged and skipped; other errors always reject.
pub fn call_error(webhook: &Webhook, err: &WebhookError) -> FailureDecision {
    if !err.is_call_failure() {
        return FailureDecision::Reject(err.to_rejection());
    }
    match webhook.failure_policy {
        FailurePolicy::Ignore => {
            tracing::warn!(
                "Failed calling webhook, failing open {}: {}",
                webhook.name,
                err
            );
            FailureDecision::Ignore
        }
        FailurePolicy::Fail => {
            tracing::warn!(
                "Failed calling webhook, failing closed {}: {}",
                webhook.name,
                err
            );
            FailureDecision::Reject(err.to_rejection())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AdmissionReview response
// ---------------------------------------------------------------------------------------------

/// A verified webhook answer.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookOutcome {
    /// Set when `allowed` was false (upstream `ToStatusErr`).
    pub rejection: Option<AdmissionRejection>,
    /// The decoded JSONPatch (mutating, allowed, non-empty only).
    pub patch: Option<json_patch::Patch>,
    pub patch_type: String,
    /// To send as `Warning: 299 - "<text>"` headers, unprefixed as upstream.
    pub warnings: Vec<String>,
    /// Keys already prefixed with `<webhook name>/`.
    pub audit_annotations: Vec<(String, String)>,
}

fn gvk_string(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    format!("{group}/{version}, Kind={kind}")
}

/// Upstream `webhookerrors.ToStatusErr`: codes below 400 become 400; the reason is kept.
fn denial(webhook_name: &str, status: Option<&Value>) -> AdmissionRejection {
    let denied_by = format!("admission webhook {webhook_name:?} denied the request");
    let get = |k: &str| {
        status
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let code = status
        .and_then(|s| s.get("code"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let code = if code < 400 {
        400
    } else {
        u16::try_from(code).unwrap_or(500)
    };
    let reason = get("reason");
    let message = get("message");
    let message = if !message.is_empty() {
        format!("{denied_by}: {message}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    AdmissionRejection {
        code,
        reason,
        message,
    }
}

/// Verifies and decodes a webhook's AdmissionReview answer (upstream
/// `VerifyAdmissionResponse` plus the dispatchers' handling of it).
pub fn interpret_response(
    webhook: &Webhook,
    uid: &str,
    body: &[u8],
    mutating: bool,
) -> Result<WebhookOutcome, WebhookError> {
    let name = || webhook.name.clone();
    let version = webhook.review_version()?;
    let verify = |reason: String| WebhookError::VerifyResponse {
        webhook: name(),
        reason,
    };
    let review: Value = serde_json::from_slice(body).map_err(|e| WebhookError::DecodeResponse {
        webhook: name(),
        reason: format!("couldn't get version/kind; json parse error: {e}"),
    })?;
    let Some(resp) = review.get("response").filter(|r| r.is_object()) else {
        return Err(verify("webhook response was absent".into()));
    };
    let v1 = version == ADMISSION_V1;
    if v1 {
        let got = resp.get("uid").and_then(Value::as_str).unwrap_or_default();
        if got != uid {
            return Err(verify(format!(
                "expected response.uid={uid:?}, got {got:?}"
            )));
        }
        let api_version = review
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = review
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if api_version != ADMISSION_V1 || kind != "AdmissionReview" {
            return Err(verify(format!(
                "expected webhook response of {}, got {}",
                gvk_string(ADMISSION_V1, "AdmissionReview"),
                gvk_string(api_version, kind)
            )));
        }
    }
    let patch_bytes = match resp.get("patch").and_then(Value::as_str) {
        None => Vec::new(),
        Some(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| WebhookError::DecodeResponse {
                webhook: name(),
                reason: format!("illegal base64 data in response.patch: {e}"),
            })?,
    };
    let patch_type = resp
        .get("patchType")
        .filter(|v| !v.is_null())
        .map(|v| v.as_str().unwrap_or_default().to_string());
    let mut patch_type_out = String::new();
    let mut use_patch = false;
    if v1 {
        if mutating {
            if !patch_bytes.is_empty() && patch_type.is_none() {
                return Err(verify(
                    "webhook returned response.patch but not response.patchType".into(),
                ));
            }
            if patch_bytes.is_empty() && patch_type.is_some() {
                return Err(verify(
                    "webhook returned response.patchType but not response.patch".into(),
                ));
            }
            if let Some(pt) = patch_type {
                if pt.is_empty() {
                    return Err(verify(format!(
                        "webhook returned invalid response.patchType of {pt:?}"
                    )));
                }
                patch_type_out = pt;
            }
            use_patch = true;
        } else {
            if !patch_bytes.is_empty() {
                return Err(verify(
                    "validating webhook may not return response.patch".into(),
                ));
            }
            if patch_type.is_some() {
                return Err(verify(
                    "validating webhook may not return response.patchType".into(),
                ));
            }
        }
    } else if mutating {
        // v1beta1: the patch type was never checked; pin it to the only supported one.
        use_patch = true;
        if !patch_bytes.is_empty() {
            patch_type_out = "JSONPatch".into();
        }
    }
    let warnings = str_list(resp.get("warnings"));
    let audit_annotations = resp
        .get("auditAnnotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        format!("{}/{k}", webhook.name),
                        v.as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let allowed = resp
        .get("allowed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut outcome = WebhookOutcome {
        rejection: None,
        patch: None,
        patch_type: patch_type_out,
        warnings,
        audit_annotations,
    };
    if !allowed {
        outcome.rejection = Some(denial(&webhook.name, resp.get("status")));
        return Ok(outcome);
    }
    if use_patch && !patch_bytes.is_empty() {
        let patch: json_patch::Patch =
            serde_json::from_slice(&patch_bytes).map_err(|e| WebhookError::DecodePatch {
                webhook: name(),
                reason: e.to_string(),
            })?;
        if !patch.0.is_empty() {
            outcome.patch = Some(patch);
        }
    }
    Ok(outcome)
}

/// Applies an outcome's patch to the object; returns whether the object changed.
pub fn apply_patch(
    webhook: &Webhook,
    outcome: &WebhookOutcome,
    object: Option<&mut Value>,
) -> Result<bool, WebhookError> {
    let Some(patch) = &outcome.patch else {
        return Ok(false);
    };
    let Some(obj) = object else {
        return Err(WebhookError::PatchWithoutObject {
            webhook: webhook.name.clone(),
        });
    };
    if outcome.patch_type != "JSONPatch" {
        return Err(WebhookError::PatchType {
            webhook: webhook.name.clone(),
            patch_type: outcome.patch_type.clone(),
        });
    }
    let before = obj.clone();
    json_patch::patch(obj, &patch.0).map_err(|e| WebhookError::ApplyPatch(e.to_string()))?;
    Ok(*obj != before)
}

// ---------------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------------

/// Where and how to POST one review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as upstream prints it, e.g. `https://svc.ns.svc:443/path?timeout=10s`.
    pub url: String,
    pub connect_addr: SocketAddr,
    /// TLS SNI and the name the certificate must carry, e.g. `svc.ns.svc`.
    pub server_name: String,
    /// `Host` header value (`svc.ns.svc:443`, or the URL's host[:port]).
    pub host_header: String,
    pub path_and_query: String,
    /// PEM; `None` means "use the transport's default CA".
    pub ca_bundle: Option<Vec<u8>>,
}

/// Resolves a service reference `(namespace, name, port)` to an address to dial.
pub type ServiceResolver = dyn Fn(&str, &str, u16) -> Option<SocketAddr> + Send + Sync;

/// The HTTPS exchange with a webhook.
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    async fn post(
        &self,
        target: &Target,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, TransportError>;

    /// Resolves the host of a `url` webhook that is not an IP literal.
    async fn lookup_host(&self, host: &str, port: u16) -> Result<SocketAddr, TransportError> {
        let mut addrs = tokio::net::lookup_host((host, port)).await.map_err(|e| {
            TransportError::ResolveHost {
                host: host.to_string(),
                reason: e.to_string(),
            }
        })?;
        addrs.next().ok_or_else(|| TransportError::ResolveHost {
            host: host.to_string(),
            reason: "no such host".into(),
        })
    }
}

/// Go `path.Join("/", p)`: cleaned, absolute, no trailing slash.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

struct ParsedUrl {
    /// host[:port] as written.
    authority: String,
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<ParsedUrl, TransportError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| TransportError::Http(format!("unsupported protocol scheme {:?}", "")))?;
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(TransportError::Http(format!(
            "unsupported protocol scheme {scheme:?}"
        )));
    }
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6
            .split_once(']')
            .ok_or_else(|| TransportError::Http(format!("invalid URL host {authority:?}")))?;
        (h.to_string(), tail.strip_prefix(':').unwrap_or_default())
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (authority.to_string(), ""),
        }
    };
    let port = if port.is_empty() {
        443
    } else {
        port.parse::<u16>()
            .map_err(|_| TransportError::Http(format!("invalid port {port:?} in URL")))?
    };
    Ok(ParsedUrl {
        authority: authority.to_string(),
        host,
        port,
        path: path.to_string(),
    })
}

/// Builds the [`Target`] of a webhook: the printed URL (with `?timeout=<n>s`), the address
/// to dial (service via `resolve`, URL hosts via the transport's lookup), TLS name and CA.
pub async fn resolve_target(
    webhook: &Webhook,
    transport: &dyn WebhookTransport,
    resolve: &ServiceResolver,
) -> Result<Target, WebhookError> {
    let query = format!("?timeout={}s", webhook.timeout_seconds);
    let cc = &webhook.client_config;
    if let Some(svc) = &cc.service {
        let server_name = format!("{}.{}.svc", svc.name, svc.namespace);
        let host_header = format!("{server_name}:{}", svc.port);
        let path_and_query = format!("{}{query}", clean_path(svc.path.as_deref().unwrap_or("")));
        let url = format!("https://{host_header}{path_and_query}");
        let connect_addr =
            resolve(&svc.namespace, &svc.name, svc.port).ok_or_else(|| WebhookError::Call {
                webhook: webhook.name.clone(),
                url: url.clone(),
                source: TransportError::ResolveService(svc.name.clone()),
            })?;
        return Ok(Target {
            url,
            connect_addr,
            server_name,
            host_header,
            path_and_query,
            ca_bundle: cc.ca_bundle.clone(),
        });
    }
    let Some(raw) = cc.url.as_deref().filter(|u| !u.is_empty()) else {
        return Err(WebhookError::ClientConfig {
            webhook: webhook.name.clone(),
        });
    };
    let call_err = |url: &str, source| WebhookError::Call {
        webhook: webhook.name.clone(),
        url: url.to_string(),
        source,
    };
    let u = parse_url(raw).map_err(|e| call_err(raw, e))?;
    let path_and_query = format!("{}{query}", clean_path(&u.path));
    let url = format!("https://{}{path_and_query}", u.authority);
    let connect_addr = match u.host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, u.port),
        Err(_) => transport
            .lookup_host(&u.host, u.port)
            .await
            .map_err(|e| call_err(&url, e))?,
    };
    Ok(Target {
        url,
        connect_addr,
        server_name: u.host,
        host_header: u.authority,
        path_and_query,
        ca_bundle: cc.ca_bundle.clone(),
    })
}

/// The real client: HTTP/1.1 over rustls (ring), trusting the webhook's `caBundle`, or the
/// API server's CA when the bundle is empty. No client certificate is presented.
pub struct HttpsTransport {
    default_ca_pem: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl HttpsTransport {
    pub fn new(default_ca_pem: &[u8]) -> Self {
        HttpsTransport {
            default_ca_pem: default_ca_pem.to_vec(),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    fn client_config(&self, ca_pem: &[u8]) -> Result<rustls::ClientConfig, TransportError> {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem).flatten() {
            roots
                .add(cert)
                .map_err(|e| TransportError::LoadCa(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(TransportError::LoadCa(
                "unable to parse bytes as PEM block".into(),
            ));
        }
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TransportError::Tls(format!("tls: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // upstream pins http/1.1 so requests spread over webhook backends
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

fn connect_error(addr: SocketAddr, e: &std::io::Error) -> TransportError {
    let reason = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        _ => e.to_string().to_lowercase(),
    };
    TransportError::Connect { addr, reason }
}

/// Go crypto/tls wording for handshake failures.
fn tls_error(server_name: &str, e: &std::io::Error) -> TransportError {
    use rustls::CertificateError as C;
    let verify = |s: String| TransportError::Tls(format!("tls: failed to verify certificate: {s}"));
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            // a CA with the issuer's name but another key reads the same in Go
            C::UnknownIssuer | C::BadSignature => {
                verify("x509: certificate signed by unknown authority".into())
            }
            C::NotValidForName => {
                verify(format!("x509: certificate is not valid for {server_name}"))
            }
            C::NotValidForNameContext { presented, .. } => {
                let names: Vec<String> = presented
                    .iter()
                    .map(|p| {
                        p.strip_prefix("DnsName(\"")
                            .and_then(|s| s.strip_suffix("\")"))
                            .unwrap_or(p)
                            .to_string()
                    })
                    .collect();
                verify(format!(
                    "x509: certificate is valid for {}, not {server_name}",
                    names.join(", ")
                ))
            }
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => {
                verify("x509: certificate has expired or is not yet valid".into())
            }
            other => verify(format!("x509: {other:?}").to_lowercase()),
        },
        Some(other) => TransportError::Tls(format!("tls: {other}")),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => TransportError::Tls("EOF".into()),
        None => TransportError::Tls(e.to_string().to_lowercase()),
    }
}

#[async_trait]
impl WebhookTransport for HttpsTransport {
    async fn post(
        &self,
        target: &Target,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, TransportError> {
        use http_body_util::BodyExt;
        let exchange = async {
            let ca = target
                .ca_bundle
                .as_deref()
                .filter(|b| !b.is_empty())
                .unwrap_or(&self.default_ca_pem);
            let config = self.client_config(ca)?;
            let server_name =
                rustls::pki_types::ServerName::try_from(target.server_name.clone())
                    .map_err(|e| TransportError::Tls(format!("tls: invalid server name: {e}")))?;
            let tcp = tokio::net::TcpStream::connect(target.connect_addr)
                .await
                .map_err(|e| connect_error(target.connect_addr, &e))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(server_name, tcp)
                .await
                .map_err(|e| tls_error(&target.server_name, &e))?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                    .await
                    .map_err(|e| TransportError::Http(e.to_string()))?;
            let request = http::Request::post(target.path_and_query.as_str())
                .header(http::header::HOST, target.host_header.as_str())
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::ACCEPT, "application/json, */*")
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .map_err(|e| TransportError::Http(e.to_string()))?;
            let response = async {
                let resp = sender
                    .send_request(request)
                    .await
                    .map_err(|e| TransportError::Http(e.to_string()))?;
                let status = resp.status();
                let bytes = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map_err(|e| TransportError::Http(e.to_string()))?
                    .to_bytes();
                Ok::<_, TransportError>((status, bytes))
            };
            tokio::pin!(conn);
            tokio::pin!(response);
            // drive the connection while the response is read; a connection that ends first
            // still lets the response future report its own outcome
            let (status, bytes) = tokio::select! {
                biased;
                r = &mut response => r?,
                _ = &mut conn => response.await?,
            };
            if !status.is_success() {
                return Err(TransportError::Status {
                    code: status.as_u16(),
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                });
            }
            Ok(bytes.to_vec())
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout),
        }
    }
}

/// One call recorded by [`FakeTransport`].
#[derive(Debug, Clone)]
pub struct FakeCall {
    pub target: Target,
    pub review: Value,
    pub timeout: Duration,
}

type Responder = dyn Fn(&Target, &Value) -> Result<Vec<u8>, TransportError> + Send + Sync;

/// Records calls and answers with a responder `(target, review) -> body | error`. Host
/// lookups resolve every name to 127.0.0.1.
pub struct FakeTransport {
    calls: Mutex<Vec<FakeCall>>,
    responder: Box<Responder>,
}

impl FakeTransport {
    pub fn new(
        responder: impl Fn(&Target, &Value) -> Result<Vec<u8>, TransportError> + Send + Sync + 'static,
    ) -> Self {
        FakeTransport {
            calls: Mutex::new(Vec::new()),
            responder: Box::new(responder),
        }
    }

    /// Allows everything.
    pub fn allowing() -> Self {
        FakeTransport::new(|_, review| Ok(review_response(review, json!({"allowed": true}))))
    }

    pub fn calls(&self) -> Vec<FakeCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// A v1 AdmissionReview answer to `review` with `response` fields (uid filled in).
pub fn review_response(review: &Value, response: Value) -> Vec<u8> {
    let mut r = json!({"uid": review.pointer("/request/uid").cloned().unwrap_or(Value::Null)});
    if let (Some(dst), Value::Object(src)) = (r.as_object_mut(), response) {
        dst.extend(src);
    }
    serde_json::to_vec(&json!({
        "apiVersion": ADMISSION_V1,
        "kind": "AdmissionReview",
        "response": r,
    }))
    .unwrap_or_default()
}

#[async_trait]
impl WebhookTransport for FakeTransport {
    async fn post(
        &self,
        target: &Target,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, TransportError> {
        let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(FakeCall {
                target: target.clone(),
                review: review.clone(),
                timeout,
            });
        }
        (self.responder)(target, &review)
    }

    async fn lookup_host(&self, _host: &str, port: u16) -> Result<SocketAddr, TransportError> {
        Ok(SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------

/// Calls one webhook: dry-run check, review, target, POST, verification.
pub async fn call_webhook(
    webhook: &Webhook,
    req: &AdmissionAttributes,
    mutating: bool,
    transport: &dyn WebhookTransport,
    resolve: &ServiceResolver,
) -> Result<WebhookOutcome, WebhookError> {
    if req.dry_run {
        match webhook.side_effects.as_deref() {
            None => {
                return Err(WebhookError::SideEffects {
                    webhook: webhook.name.clone(),
                })
            }
            Some("None") | Some("NoneOnDryRun") => {}
            Some(_) => {
                return Err(WebhookError::DryRun {
                    webhook: webhook.name.clone(),
                })
            }
        }
    }
    let version = webhook.review_version()?;
    let uid = uuid::Uuid::new_v4().to_string();
    let review = build_review_version(req, &uid, version);
    let target = resolve_target(webhook, transport, resolve).await?;
    let body = serde_json::to_vec(&review).unwrap_or_default();
    let answer = transport
        .post(&target, body, webhook.timeout())
        .await
        .map_err(|source| WebhookError::Call {
            webhook: webhook.name.clone(),
            url: target.url.clone(),
            source,
        })?;
    interpret_response(webhook, &uid, &answer, mutating)
}

/// Everything a dispatch produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOutput {
    /// Deduplicated, in the order received.
    pub warnings: Vec<String>,
    pub audit_annotations: Vec<(String, String)>,
    /// Whether any patch changed the object (mutating only).
    pub mutated: bool,
    pub rejection: Option<AdmissionRejection>,
}

impl RunOutput {
    fn warn(&mut self, ws: &[String]) {
        for w in ws {
            if !self.warnings.contains(w) {
                self.warnings.push(w.clone());
            }
        }
    }
}

/// Why one mutating call did not go through.
enum Failure {
    Denied(AdmissionRejection),
    Error(WebhookError),
}

/// Calls one mutating webhook and applies its patch; returns whether the object changed.
/// Warnings and audit annotations go to `out` whatever the result.
async fn mutate_once(
    hook: &Webhook,
    req: &mut AdmissionAttributes,
    (round, idx): (usize, usize),
    transport: &dyn WebhookTransport,
    resolve: &ServiceResolver,
    out: &mut RunOutput,
) -> Result<bool, Failure> {
    let outcome = call_webhook(hook, req, true, transport, resolve)
        .await
        .map_err(Failure::Error)?;
    out.warn(&outcome.warnings);
    out.audit_annotations
        .extend(outcome.audit_annotations.iter().cloned());
    if let Some(r) = &outcome.rejection {
        return Err(Failure::Denied(r.clone()));
    }
    let changed = apply_patch(hook, &outcome, req.object.as_mut()).map_err(Failure::Error)?;
    if let Some(p) = outcome.patch.as_ref().filter(|_| changed) {
        let value = json!({
            "configuration": hook.configuration_name,
            "webhook": hook.name,
            "patch": p,
            "patchType": "JSONPatch",
        });
        out.audit_annotations.push((
            format!("{PATCH_ANNOTATION_PREFIX}round_{round}_index_{idx}"),
            value.to_string(),
        ));
    }
    Ok(changed)
}

/// Mutating webhooks, sequentially in `hooks` order (use [`collect_webhooks`]); the object is
/// patched in place and later webhooks see the patched object. Webhooks with
/// `reinvocationPolicy: IfNeeded` are called once more when a later webhook changed the
/// object. Returns the warnings, or the first rejection.
pub async fn run_mutating(
    hooks: &[Webhook],
    req: &mut AdmissionAttributes,
    ns_labels: Option<&BTreeMap<String, String>>,
    transport: &dyn WebhookTransport,
    resolve: &ServiceResolver,
) -> Result<Vec<String>, AdmissionRejection> {
    let out = run_mutating_detailed(hooks, req, ns_labels, transport, resolve).await;
    match out.rejection {
        Some(r) => Err(r),
        None => Ok(out.warnings),
    }
}

/// [`run_mutating`] with audit annotations and warnings also on rejection.
pub async fn run_mutating_detailed(
    hooks: &[Webhook],
    req: &mut AdmissionAttributes,
    ns_labels: Option<&BTreeMap<String, String>>,
    transport: &dyn WebhookTransport,
    resolve: &ServiceResolver,
) -> RunOutput {
    let mut out = RunOutput::default();
    if is_exempt(req) {
        return out;
    }
    // upstream webhookReinvokeContext
    let mut previously_invoked: BTreeSet<String> = BTreeSet::new();
    let mut reinvoke: BTreeSet<String> = BTreeSet::new();
    let mut should_reinvoke = false;
    for round in 0..2 {
        if round == 1 && !should_reinvoke {
            break;
        }
        for (idx, hook) in hooks.iter().enumerate() {
            match hook.should_call(req, ns_labels) {
                Err(r) => {
                    out.rejection = Some(r);
                    return out;
                }
                Ok(false) => continue,
                Ok(true) => {}
            }
            if round == 1 && !reinvoke.contains(&hook.uid) {
                continue;
            }
            let result = mutate_once(hook, req, (round, idx), transport, resolve, &mut out).await;
            let changed = matches!(result, Ok(true));
            out.audit_annotations.push((
                format!("{MUTATION_ANNOTATION_PREFIX}round_{round}_index_{idx}"),
                json!({
                    "configuration": hook.configuration_name,
                    "webhook": hook.name,
                    "mutated": changed,
                })
                .to_string(),
            ));
            if changed {
                out.mutated = true;
                reinvoke.append(&mut previously_invoked);
                should_reinvoke = true;
            }
            if hook.reinvocation_policy == ReinvocationPolicy::IfNeeded {
                previously_invoked.insert(hook.uid.clone());
            }
            match result {
                Ok(_) => {}
                Err(Failure::Denied(rejection)) => {
                    out.rejection = Some(rejection);
                    return out;
                }
                Err(Failure::Error(err)) => match call_error(hook, &err) {
                    FailureDecision::Ignore => out.audit_annotations.push((
                        format!("{MUTATION_FAILED_OPEN_PREFIX}round_{round}_index_{idx}"),
                        hook.name.clone(),
                    )),
                    FailureDecision::Reject(r) => {
                        out.rejection = Some(r);
                        return out;
                    }
                },
            }
        }
    }
    out
}

/// Validating webhooks, all matching ones called concurrently. Returns the warnings, or the
/// rejection of the first rejecting webhook in `hooks` order.
pub async fn run_validating(
    hooks: &[Webhook],
    req: &AdmissionAttributes,
    ns_labels: Option<&BTreeMap<String, String>>,
    transport: &dyn WebhookTransport,
    resolve: &ServiceResolver,
) -> Result<Vec<String>, AdmissionRejection> {
    let out = run_validating_detailed(hooks, req, ns_labels, transport, resolve).await;
    match out.rejection {
        Some(r) => Err(r),
        None => Ok(out.warnings),
    }
}

/// [`run_validating`] with audit annotations and warnings also on rejection.
pub async fn run_validating_detailed(
    hooks: &[Webhook],
    req: &AdmissionAttributes,
    ns_labels: Option<&BTreeMap<String, String>>,
    transport: &dyn WebhookTransport,
    resolve: &ServiceResolver,
) -> RunOutput {
    let mut out = RunOutput::default();
    if is_exempt(req) {
        return out;
    }
    let mut relevant = Vec::new();
    for hook in hooks {
        match hook.should_call(req, ns_labels) {
            Err(r) => {
                out.rejection = Some(r);
                return out;
            }
            Ok(true) => relevant.push(hook),
            Ok(false) => {}
        }
    }
    let results = futures::future::join_all(
        relevant
            .iter()
            .map(|h| call_webhook(h, req, false, transport, resolve)),
    )
    .await;
    for (idx, (hook, result)) in relevant.iter().zip(results).enumerate() {
        let rejection = match result {
            Ok(outcome) => {
                out.warn(&outcome.warnings);
                out.audit_annotations.extend(outcome.audit_annotations);
                outcome.rejection
            }
            Err(err) => match call_error(hook, &err) {
                FailureDecision::Ignore => {
                    out.audit_annotations.push((
                        format!("{VALIDATING_FAILED_OPEN_PREFIX}round_0_index_{idx}"),
                        hook.name.clone(),
                    ));
                    None
                }
                FailureDecision::Reject(r) => Some(r),
            },
        };
        if let Some(r) = rejection {
            if out.rejection.is_none() {
                out.rejection = Some(r);
            } else {
                tracing::warn!("rejected by webhook {:?}: {}", hook.name, r.message);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserInfo {
        UserInfo {
            name: "alice".into(),
            uid: "u-1".into(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            extra: BTreeMap::new(),
        }
    }

    fn pod_req(op: Operation) -> AdmissionAttributes {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        });
        let (object, old_object) = match op {
            Operation::Create => (Some(pod), None),
            Operation::Update => (Some(pod.clone()), Some(pod)),
            Operation::Delete => (None, Some(pod)),
            Operation::Connect => (None, None),
        };
        AdmissionAttributes {
            kind: GroupVersionKind {
                group: String::new(),
                version: "v1".into(),
                kind: "Pod".into(),
            },
            resource: GroupVersionResource {
                group: String::new(),
                version: "v1".into(),
                resource: "pods".into(),
            },
            subresource: String::new(),
            name: "p".into(),
            namespace: "default".into(),
            operation: op,
            user: user(),
            object,
            old_object,
            dry_run: false,
            options: None,
        }
    }

    fn config(kind: &str, name: &str, webhooks: Value) -> Value {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": name},
            "webhooks": webhooks,
        })
    }

    fn pod_rule() -> Value {
        json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}])
    }

    /// A webhook from JSON fields merged over a service-backed default.
    fn hook(kind: &str, extra: Value) -> Webhook {
        let mut w = json!({
            "name": "pods.example.com",
            "clientConfig": {"service": {"namespace": "default", "name": "webhook", "path": "/mutate"}},
            "rules": pod_rule(),
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        });
        if let (Some(dst), Value::Object(src)) = (w.as_object_mut(), extra) {
            dst.extend(src);
        }
        parse_configuration(&config(kind, "cfg", json!([w])))
            .pop()
            .unwrap()
    }

    fn mutating(extra: Value) -> Webhook {
        hook("MutatingWebhookConfiguration", extra)
    }

    fn validating(extra: Value) -> Webhook {
        hook("ValidatingWebhookConfiguration", extra)
    }

    fn local(_: &str, _: &str, port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_defaults_order_and_bounds() {
        let ca = base64::engine::general_purpose::STANDARD.encode("PEM");
        let configs = vec![
            config(
                "MutatingWebhookConfiguration",
                "b-config",
                json!([{"name": "x", "clientConfig": {"url": "https://x"}, "timeoutSeconds": 45}]),
            ),
            config(
                "MutatingWebhookConfiguration",
                "a-config",
                json!([
                    {"name": "z", "clientConfig": {"service": {"namespace": "ns", "name": "s"}, "caBundle": ca},
                     "failurePolicy": "Ignore", "matchPolicy": "Exact", "reinvocationPolicy": "IfNeeded",
                     "timeoutSeconds": 0},
                    {"name": "y", "clientConfig": {"service": {"namespace": "ns", "name": "s", "port": 8443}}},
                    {"name": "y", "clientConfig": {"url": "https://y"}, "timeoutSeconds": 7},
                ]),
            ),
        ];
        let hooks = collect_webhooks(&configs);
        let names: Vec<&str> = hooks.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["z", "y", "y", "x"]);
        let uids: Vec<&str> = hooks.iter().map(|h| h.uid.as_str()).collect();
        assert_eq!(
            uids,
            [
                "a-config/z/0",
                "a-config/y/0",
                "a-config/y/1",
                "b-config/x/0"
            ]
        );
        let z = &hooks[0];
        assert_eq!(z.webhook_type, WebhookType::Mutating);
        assert_eq!(z.failure_policy, FailurePolicy::Ignore);
        assert_eq!(z.match_policy, MatchPolicy::Exact);
        assert_eq!(z.reinvocation_policy, ReinvocationPolicy::IfNeeded);
        assert_eq!(z.client_config.ca_bundle.as_deref(), Some(&b"PEM"[..]));
        assert_eq!(z.client_config.service.as_ref().unwrap().port, 443);
        assert_eq!(z.timeout_seconds, 1, "0 is raised to the minimum");
        let y = &hooks[1];
        assert_eq!(y.failure_policy, FailurePolicy::Fail);
        assert_eq!(y.match_policy, MatchPolicy::Equivalent);
        assert_eq!(y.reinvocation_policy, ReinvocationPolicy::Never);
        assert_eq!(y.timeout_seconds, DEFAULT_TIMEOUT_SECONDS);
        assert_eq!(y.client_config.service.as_ref().unwrap().port, 8443);
        assert_eq!(hooks[2].timeout_seconds, 7);
        assert_eq!(
            hooks[3].timeout_seconds, MAX_TIMEOUT_SECONDS,
            "45 is capped"
        );
        assert!(y.namespace_selector.is_empty() && y.object_selector.is_empty());
        let v = parse_configuration(&config(
            "ValidatingWebhookConfiguration",
            "v",
            json!([{"name": "a"}]),
        ));
        assert_eq!(v[0].webhook_type, WebhookType::Validating);
    }

    #[test]
    fn rules_operations_resources_and_scope() {
        let rule = |ops: &[&str], res: &[&str], scope: Option<&str>| {
            let mut r = json!({"operations": ops, "apiGroups": ["*"], "apiVersions": ["*"], "resources": res});
            if let Some(s) = scope {
                r["scope"] = json!(s);
            }
            parse_rule(&r)
        };
        let create = pod_req(Operation::Create);
        let mut status = pod_req(Operation::Update);
        status.subresource = "status".into();

        assert!(rule(&["CREATE"], &["pods"], None).matches(&create));
        assert!(!rule(&["UPDATE", "DELETE"], &["pods"], None).matches(&create));
        assert!(rule(&["*"], &["pods"], None).matches(&create));
        assert!(!rule(&["*"], &["services"], None).matches(&create));
        // subresources
        assert!(!rule(&["*"], &["pods"], None).matches(&status));
        assert!(!rule(&["*"], &["*"], None).matches(&status));
        assert!(rule(&["*"], &["pods/status"], None).matches(&status));
        assert!(!rule(&["*"], &["pods/status"], None).matches(&create));
        assert!(rule(&["*"], &["pods/*"], None).matches(&status));
        assert!(rule(&["*"], &["pods/*"], None).matches(&create));
        assert!(rule(&["*"], &["*/*"], None).matches(&status));
        assert!(rule(&["*"], &["*/status"], None).matches(&status));
        // groups and versions
        let apps = parse_rule(
            &json!({"operations": ["*"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["*"]}),
        );
        assert!(!apps.matches(&create));
        let core_v2 = parse_rule(
            &json!({"operations": ["*"], "apiGroups": [""], "apiVersions": ["v2"], "resources": ["*"]}),
        );
        assert!(!core_v2.matches(&create));
        // scope
        assert!(rule(&["*"], &["*"], Some("Namespaced")).matches(&create));
        assert!(!rule(&["*"], &["*"], Some("Cluster")).matches(&create));
        assert!(!rule(&["*"], &["*"], Some("Bogus")).matches(&create));
        let mut node = pod_req(Operation::Create);
        node.namespace.clear();
        node.resource.resource = "nodes".into();
        assert!(rule(&["*"], &["*"], Some("Cluster")).matches(&node));
        assert!(!rule(&["*"], &["*"], Some("Namespaced")).matches(&node));
        // a namespace object is cluster-scoped even though its namespace is its own name
        let mut ns = pod_req(Operation::Update);
        ns.resource.resource = "namespaces".into();
        ns.namespace = "team-a".into();
        assert!(rule(&["*"], &["*"], Some("Cluster")).matches(&ns));
        assert!(!rule(&["*"], &["*"], Some("Namespaced")).matches(&ns));
    }

    #[test]
    fn namespace_selector() {
        let h = validating(json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}}));
        let req = pod_req(Operation::Create);
        assert!(h.matches(&req, Some(&labels(&[("env", "prod")]))));
        assert!(!h.matches(&req, Some(&labels(&[("env", "dev")]))));
        // namespace unknown: upstream answers 404, only when a rule matches
        assert_eq!(
            h.should_call(&req, None),
            Err(AdmissionRejection {
                code: 404,
                reason: "NotFound".into(),
                message: "namespaces \"default\" not found".into()
            })
        );
        let mut svc = pod_req(Operation::Create);
        svc.resource.resource = "services".into();
        assert_eq!(h.should_call(&svc, None), Ok(false));

        // cluster-scoped objects other than namespaces ignore the selector
        let all = validating(json!({
            "namespaceSelector": {"matchLabels": {"env": "prod"}},
            "rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}],
        }));
        let mut node = pod_req(Operation::Create);
        node.namespace.clear();
        node.resource.resource = "nodes".into();
        assert!(all.matches(&node, None));

        // creating / updating a namespace uses its own labels
        let mut ns = pod_req(Operation::Create);
        ns.resource.resource = "namespaces".into();
        ns.namespace.clear();
        ns.object = Some(json!({"metadata": {"name": "n", "labels": {"env": "prod"}}}));
        assert!(all.matches(&ns, Some(&labels(&[("env", "dev")]))));
        ns.object = Some(json!({"metadata": {"name": "n"}}));
        assert!(!all.matches(&ns, Some(&labels(&[("env", "prod")]))));
        // deleting one uses the stored namespace's labels (given by the caller)
        let mut del = ns.clone();
        del.operation = Operation::Delete;
        del.namespace = "n".into();
        del.old_object = del.object.take();
        assert!(all.matches(&del, Some(&labels(&[("env", "prod")]))));
        assert!(!all.matches(&del, Some(&labels(&[]))));
    }

    #[test]
    fn object_selector_and_expressions() {
        let h = validating(json!({
            "objectSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]},
            "rules": [{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        }));
        let ns = labels(&[]);
        assert!(h.matches(&pod_req(Operation::Create), Some(&ns)));
        // DELETE has only the old object
        assert!(h.matches(&pod_req(Operation::Delete), Some(&ns)));
        // UPDATE: either object or old object
        let mut upd = pod_req(Operation::Update);
        upd.object.as_mut().unwrap()["metadata"]["labels"] = json!({"app": "db"});
        assert!(h.matches(&upd, Some(&ns)));
        upd.old_object.as_mut().unwrap()["metadata"]["labels"] = json!({});
        assert!(!h.matches(&upd, Some(&ns)));

        let sel = |e: Value| LabelSelector::parse(Some(&json!({"matchExpressions": [e]})));
        let l = labels(&[("a", "1")]);
        assert_eq!(
            sel(json!({"key": "a", "operator": "NotIn", "values": ["1"]})).matches(&l),
            Ok(false)
        );
        assert_eq!(
            sel(json!({"key": "b", "operator": "NotIn", "values": ["1"]})).matches(&l),
            Ok(true)
        );
        assert_eq!(
            sel(json!({"key": "a", "operator": "Exists"})).matches(&l),
            Ok(true)
        );
        assert_eq!(
            sel(json!({"key": "b", "operator": "Exists"})).matches(&l),
            Ok(false)
        );
        assert_eq!(
            sel(json!({"key": "a", "operator": "DoesNotExist"})).matches(&l),
            Ok(false)
        );
        assert_eq!(
            sel(json!({"key": "b", "operator": "DoesNotExist"})).matches(&l),
            Ok(true)
        );
        let both = LabelSelector::parse(Some(&json!({
            "matchLabels": {"a": "1"},
            "matchExpressions": [{"key": "b", "operator": "DoesNotExist"}],
        })));
        assert_eq!(both.matches(&l), Ok(true));
        assert_eq!(both.matches(&labels(&[("a", "1"), ("b", "x")])), Ok(false));
        assert!(LabelSelector::parse(Some(&json!({}))).is_empty());

        // an invalid selector is an internal error when the rules match
        let bad = validating(
            json!({"objectSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}),
        );
        let err = bad
            .should_call(&pod_req(Operation::Create), Some(&ns))
            .unwrap_err();
        assert_eq!(err.code, 500);
        assert_eq!(
            err.message,
            "Internal error occurred: \"Near\" is not a valid label selector operator"
        );
        let mut svc = pod_req(Operation::Create);
        svc.resource.resource = "services".into();
        assert_eq!(bad.should_call(&svc, Some(&ns)), Ok(false));
    }

    #[test]
    fn admission_configuration_objects_are_exempt() {
        let all = validating(json!({
            "rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}],
        }));
        let mut req = pod_req(Operation::Create);
        req.namespace.clear();
        req.kind = GroupVersionKind {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            kind: "ValidatingWebhookConfiguration".into(),
        };
        req.resource = GroupVersionResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            resource: "validatingwebhookconfigurations".into(),
        };
        assert!(is_exempt(&req));
        assert!(!all.matches(&req, None));
        req.kind.kind = "MutatingAdmissionPolicyBinding".into();
        assert!(!all.matches(&req, None));
        req.kind.kind = "SomethingElse".into();
        assert!(all.matches(&req, None));
    }

    #[test]
    fn review_shape() {
        let mut req = pod_req(Operation::Create);
        req.user
            .extra
            .insert("scopes".into(), vec!["a".into(), "b".into()]);
        let r = build_review(&req, "uid-1");
        assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(r["kind"], "AdmissionReview");
        let q = &r["request"];
        assert_eq!(q["uid"], "uid-1");
        assert_eq!(
            q["kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(
            q["resource"],
            json!({"group": "", "version": "v1", "resource": "pods"})
        );
        assert_eq!(q["requestKind"], q["kind"]);
        assert_eq!(q["requestResource"], q["resource"]);
        assert!(q.get("subResource").is_none() && q.get("requestSubResource").is_none());
        assert_eq!(q["name"], "p");
        assert_eq!(q["namespace"], "default");
        assert_eq!(q["operation"], "CREATE");
        assert_eq!(
            q["userInfo"],
            json!({"username": "alice", "uid": "u-1", "groups": ["dev", "system:authenticated"],
                   "extra": {"scopes": ["a", "b"]}})
        );
        assert_eq!(q["object"]["metadata"]["name"], "p");
        assert_eq!(q["oldObject"], Value::Null);
        assert_eq!(q["dryRun"], false);
        assert_eq!(
            q["options"],
            json!({"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"})
        );
        let keys: Vec<&str> = q.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "uid",
                "kind",
                "resource",
                "requestKind",
                "requestResource",
                "name",
                "namespace",
                "operation",
                "userInfo",
                "object",
                "oldObject",
                "dryRun",
                "options"
            ]
        );

        let mut del = pod_req(Operation::Delete);
        del.subresource = "eviction".into();
        del.dry_run = true;
        del.options = Some(
            json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "propagationPolicy": "Background"}),
        );
        let q = build_review(&del, "u")["request"].clone();
        assert_eq!(q["subResource"], "eviction");
        assert_eq!(q["requestSubResource"], "eviction");
        assert_eq!(q["object"], Value::Null);
        assert_eq!(q["oldObject"]["metadata"]["name"], "p");
        assert_eq!(q["dryRun"], true);
        assert_eq!(q["options"]["propagationPolicy"], "Background");
        assert_eq!(
            default_options(Operation::Update, true),
            json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"]})
        );
        assert_eq!(default_options(Operation::Connect, false), Value::Null);
        let b = build_review_version(&del, "u", ADMISSION_V1BETA1);
        assert_eq!(b["apiVersion"], "admission.k8s.io/v1beta1");
    }

    fn answer(uid: &str, response: Value) -> Vec<u8> {
        review_response(&json!({"request": {"uid": uid}}), response)
    }

    #[test]
    fn deny_message_text() {
        let h = validating(json!({}));
        let deny = |status: Value| {
            let mut resp = json!({"allowed": false});
            if !status.is_null() {
                resp["status"] = status;
            }
            interpret_response(&h, "u", &answer("u", resp), false)
                .unwrap()
                .rejection
                .unwrap()
        };
        assert_eq!(
            deny(json!({"code": 403, "reason": "Forbidden", "message": "no privileged pods"})),
            AdmissionRejection {
                code: 403,
                reason: "Forbidden".into(),
                message:
                    "admission webhook \"pods.example.com\" denied the request: no privileged pods"
                        .into(),
            }
        );
        assert_eq!(
            deny(Value::Null),
            AdmissionRejection {
                code: 400,
                reason: String::new(),
                message:
                    "admission webhook \"pods.example.com\" denied the request without explanation"
                        .into(),
            }
        );
        let r = deny(json!({"code": 200, "reason": "PolicyViolation"}));
        assert_eq!(r.code, 400, "codes below 400 become 400");
        assert_eq!(
            r.message,
            "admission webhook \"pods.example.com\" denied the request: PolicyViolation"
        );
        assert_eq!(deny(json!({"code": 422, "message": "bad"})).code, 422);
    }

    #[test]
    fn response_verification_messages() {
        let v = validating(json!({}));
        let m = mutating(json!({}));
        let err = |h: &Webhook, body: Vec<u8>, mutating: bool| {
            interpret_response(h, "u", &body, mutating)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(&v, answer("other", json!({"allowed": true})), false),
            "failed calling webhook \"pods.example.com\": received invalid webhook response: expected response.uid=\"u\", got \"other\""
        );
        let wrong_gvk = serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "response": {"uid": "u", "allowed": true}})).unwrap();
        assert_eq!(
            err(&v, wrong_gvk, false),
            "failed calling webhook \"pods.example.com\": received invalid webhook response: expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1beta1, Kind=AdmissionReview"
        );
        let absent =
            serde_json::to_vec(&json!({"apiVersion": ADMISSION_V1, "kind": "AdmissionReview"}))
                .unwrap();
        assert!(err(&v, absent, false)
            .ends_with("received invalid webhook response: webhook response was absent"));
        let patch = base64::engine::general_purpose::STANDARD.encode("[]");
        assert!(err(
            &v,
            answer(
                "u",
                json!({"allowed": true, "patch": patch, "patchType": "JSONPatch"})
            ),
            false
        )
        .ends_with("validating webhook may not return response.patch"));
        assert!(err(
            &m,
            answer("u", json!({"allowed": true, "patch": patch})),
            true
        )
        .ends_with("webhook returned response.patch but not response.patchType"));
        assert!(err(
            &m,
            answer("u", json!({"allowed": true, "patchType": "JSONPatch"})),
            true
        )
        .ends_with("webhook returned response.patchType but not response.patch"));
        let garbage = base64::engine::general_purpose::STANDARD.encode("{not a patch");
        assert!(err(&m, answer("u", json!({"allowed": true, "patch": garbage, "patchType": "JSONPatch"})), true)
            .starts_with("failed calling webhook \"pods.example.com\": received undecodable patch in webhook response: "));
        assert!(err(&m, b"<html>".to_vec(), true).starts_with(
            "failed calling webhook \"pods.example.com\": failed to call webhook: couldn't get version/kind; json parse error: "
        ));
        let none = validating(json!({"admissionReviewVersions": ["v2"]}));
        assert_eq!(
            err(&none, answer("u", json!({"allowed": true})), false),
            "failed calling webhook \"pods.example.com\": could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)"
        );
        // v1beta1 answers are not checked for uid or GVK
        let beta = validating(json!({"admissionReviewVersions": ["v1beta1", "v1"]}));
        let body = serde_json::to_vec(&json!({"response": {"allowed": true, "warnings": ["w"], "auditAnnotations": {"k": "v"}}})).unwrap();
        let out = interpret_response(&beta, "u", &body, false).unwrap();
        assert_eq!(out.rejection, None);
        assert_eq!(out.warnings, ["w"]);
        assert_eq!(
            out.audit_annotations,
            [("pods.example.com/k".to_string(), "v".to_string())]
        );
    }

    fn label_patch(key: &str, value: &str) -> String {
        let p = json!([{"op": "add", "path": format!("/metadata/labels/{key}"), "value": value}]);
        base64::engine::general_purpose::STANDARD.encode(p.to_string())
    }

    #[tokio::test]
    async fn mutating_patch_adds_label() {
        let hooks = vec![mutating(json!({}))];
        let t = FakeTransport::new(|_, review| {
            Ok(review_response(
                review,
                json!({"allowed": true, "patchType": "JSONPatch", "patch": label_patch("injected", "yes"),
                       "warnings": ["deprecated field"], "auditAnnotations": {"decision": "patched"}}),
            ))
        });
        let mut req = pod_req(Operation::Create);
        let out = run_mutating_detailed(&hooks, &mut req, Some(&labels(&[])), &t, &local).await;
        assert_eq!(out.rejection, None);
        assert!(out.mutated);
        assert_eq!(out.warnings, ["deprecated field"]);
        assert_eq!(
            req.object.as_ref().unwrap()["metadata"]["labels"],
            json!({"app": "web", "injected": "yes"})
        );
        let keys: Vec<&str> = out
            .audit_annotations
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "pods.example.com/decision",
                "patch.webhook.admission.k8s.io/round_0_index_0",
                "mutation.webhook.admission.k8s.io/round_0_index_0"
            ]
        );
        assert_eq!(
            out.audit_annotations[2].1,
            r#"{"configuration":"cfg","webhook":"pods.example.com","mutated":true}"#
        );
        let calls = t.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(
            calls[0].target.url,
            "https://webhook.default.svc:443/mutate?timeout=10s"
        );
        assert_eq!(calls[0].target.server_name, "webhook.default.svc");
        assert_eq!(calls[0].target.host_header, "webhook.default.svc:443");
        assert_eq!(calls[0].target.path_and_query, "/mutate?timeout=10s");
        assert_eq!(
            calls[0].target.connect_addr,
            SocketAddr::from(([127, 0, 0, 1], 443))
        );
        assert_eq!(calls[0].review["request"]["operation"], "CREATE");

        // a patch on DELETE (no object) is an internal error, whatever the failurePolicy
        let ignore = vec![mutating(
            json!({"failurePolicy": "Ignore", "rules": [{"operations": ["DELETE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}),
        )];
        let mut del = pod_req(Operation::Delete);
        let r = run_mutating(&ignore, &mut del, Some(&labels(&[])), &t, &local)
            .await
            .unwrap_err();
        assert_eq!(r.code, 500);
        assert_eq!(
            r.message,
            "Internal error occurred: admission webhook \"pods.example.com\" attempted to modify the object, which is not supported for this operation"
        );
    }

    #[tokio::test]
    async fn mutating_denial_stops_the_chain() {
        let hooks = collect_webhooks(&[config(
            "MutatingWebhookConfiguration",
            "cfg",
            json!([
                {"name": "first", "clientConfig": {"url": "https://10.0.0.1/first"}, "rules": pod_rule(), "sideEffects": "None", "admissionReviewVersions": ["v1"]},
                {"name": "second", "clientConfig": {"url": "https://10.0.0.1/second"}, "rules": pod_rule(), "sideEffects": "None", "admissionReviewVersions": ["v1"]},
            ]),
        )]);
        let t = FakeTransport::new(|_, review| {
            Ok(review_response(
                review,
                json!({"allowed": false, "status": {"code": 403, "reason": "Forbidden", "message": "nope"}, "warnings": ["w1"]}),
            ))
        });
        let mut req = pod_req(Operation::Create);
        let out = run_mutating_detailed(&hooks, &mut req, Some(&labels(&[])), &t, &local).await;
        assert_eq!(
            out.rejection.unwrap().message,
            "admission webhook \"first\" denied the request: nope"
        );
        assert_eq!(out.warnings, ["w1"], "warnings are kept on rejection");
        assert_eq!(t.calls().len(), 1);
    }

    #[tokio::test]
    async fn failure_policy_fail_and_ignore() {
        let refused = |_: &Target, _: &Value| {
            Err(TransportError::Connect {
                addr: SocketAddr::from(([127, 0, 0, 1], 9443)),
                reason: "connection refused".into(),
            })
        };
        let fail = vec![validating(json!({}))];
        let t = FakeTransport::new(refused);
        let req = pod_req(Operation::Create);
        let r = run_validating(&fail, &req, Some(&labels(&[])), &t, &local)
            .await
            .unwrap_err();
        assert_eq!(
            r,
            AdmissionRejection {
                code: 500,
                reason: "InternalError".into(),
                message: "Internal error occurred: failed calling webhook \"pods.example.com\": failed to call webhook: Post \"https://webhook.default.svc:443/mutate?timeout=10s\": dial tcp 127.0.0.1:9443: connect: connection refused".into(),
            }
        );
        let ignore = vec![validating(json!({"failurePolicy": "Ignore"}))];
        let out = run_validating_detailed(&ignore, &req, Some(&labels(&[])), &t, &local).await;
        assert_eq!(out.rejection, None);
        assert_eq!(
            out.audit_annotations,
            [(
                "failed-open.validating.webhook.admission.k8s.io/round_0_index_0".to_string(),
                "pods.example.com".to_string()
            )]
        );
        let mut mreq = pod_req(Operation::Create);
        let m_ignore = vec![mutating(json!({"failurePolicy": "Ignore"}))];
        let out = run_mutating_detailed(&m_ignore, &mut mreq, Some(&labels(&[])), &t, &local).await;
        assert_eq!(out.rejection, None);
        assert!(out.audit_annotations.iter().any(|(k, v)| k
            == "failed-open.mutation.webhook.admission.k8s.io/round_0_index_0"
            && v == "pods.example.com"));

        // call_error directly, with other transport errors
        let h = &fail[0];
        let err = |source| WebhookError::Call {
            webhook: h.name.clone(),
            url: "https://webhook.default.svc:443/mutate?timeout=10s".into(),
            source,
        };
        let msg = |e: WebhookError| match call_error(h, &e) {
            FailureDecision::Reject(r) => r.message,
            FailureDecision::Ignore => String::new(),
        };
        assert_eq!(
            msg(err(TransportError::Timeout)),
            "Internal error occurred: failed calling webhook \"pods.example.com\": failed to call webhook: Post \"https://webhook.default.svc:443/mutate?timeout=10s\": context deadline exceeded"
        );
        assert_eq!(
            msg(err(TransportError::Status { code: 500, body: "boom".into() })),
            "Internal error occurred: failed calling webhook \"pods.example.com\": failed to call webhook: an error on the server (\"boom\") has prevented the request from succeeding"
        );
        assert_eq!(
            msg(err(TransportError::Status { code: 404, body: String::new() })),
            "Internal error occurred: failed calling webhook \"pods.example.com\": failed to call webhook: the server could not find the requested resource"
        );
        assert_eq!(
            call_error(&ignore[0], &err(TransportError::Timeout)),
            FailureDecision::Ignore
        );
        // a denial-like error is never ignored
        assert_eq!(
            call_error(
                &ignore[0],
                &WebhookError::DryRun {
                    webhook: "x".into()
                }
            ),
            FailureDecision::Reject(AdmissionRejection {
                code: 400,
                reason: "BadRequest".into(),
                message: "admission webhook \"x\" does not support dry run".into()
            })
        );
    }

    #[tokio::test]
    async fn no_endpoints_and_dry_run() {
        let t = FakeTransport::allowing();
        let none = |_: &str, _: &str, _: u16| None;
        let hooks = vec![validating(json!({}))];
        let req = pod_req(Operation::Create);
        let r = run_validating(&hooks, &req, Some(&labels(&[])), &t, &none)
            .await
            .unwrap_err();
        assert_eq!(
            r.message,
            "Internal error occurred: failed calling webhook \"pods.example.com\": failed to call webhook: Post \"https://webhook.default.svc:443/mutate?timeout=10s\": no endpoints available for service \"webhook\""
        );
        assert!(t.calls().is_empty());

        let mut dry = pod_req(Operation::Create);
        dry.dry_run = true;
        let side = vec![validating(
            json!({"sideEffects": "Some", "failurePolicy": "Ignore"}),
        )];
        let r = run_validating(&side, &dry, Some(&labels(&[])), &t, &local)
            .await
            .unwrap_err();
        assert_eq!(
            (r.code, r.message.as_str()),
            (
                400,
                "admission webhook \"pods.example.com\" does not support dry run"
            )
        );
        let ok = vec![validating(json!({"sideEffects": "NoneOnDryRun"}))];
        assert!(run_validating(&ok, &dry, Some(&labels(&[])), &t, &local)
            .await
            .is_ok());
        assert_eq!(t.calls()[0].review["request"]["dryRun"], true);
    }

    #[tokio::test]
    async fn timeout_and_url_targets() {
        let t = FakeTransport::allowing();
        let req = pod_req(Operation::Create);
        let hooks = vec![
            validating(
                json!({"name": "a", "timeoutSeconds": 5, "clientConfig": {"url": "https://10.1.2.3:8443/validate/"}}),
            ),
            validating(
                json!({"name": "b", "timeoutSeconds": 99, "clientConfig": {"url": "https://hooks.example.com"}}),
            ),
            validating(json!({"name": "c", "clientConfig": {"url": "https://[::1]:9443/v"}})),
            validating(
                json!({"name": "d", "clientConfig": {"service": {"namespace": "ns", "name": "svc", "port": 8443}}}),
            ),
        ];
        run_validating(&hooks, &req, Some(&labels(&[])), &t, &local)
            .await
            .unwrap();
        let calls = t.calls();
        let by_url: Vec<(&str, u64, SocketAddr, &str)> = calls
            .iter()
            .map(|c| {
                (
                    c.target.url.as_str(),
                    c.timeout.as_secs(),
                    c.target.connect_addr,
                    c.target.server_name.as_str(),
                )
            })
            .collect();
        assert_eq!(
            by_url,
            [
                (
                    "https://10.1.2.3:8443/validate?timeout=5s",
                    5,
                    "10.1.2.3:8443".parse().unwrap(),
                    "10.1.2.3"
                ),
                (
                    "https://hooks.example.com/?timeout=30s",
                    30,
                    "127.0.0.1:443".parse().unwrap(),
                    "hooks.example.com"
                ),
                (
                    "https://[::1]:9443/v?timeout=10s",
                    10,
                    "[::1]:9443".parse().unwrap(),
                    "::1"
                ),
                (
                    "https://svc.ns.svc:8443/?timeout=10s",
                    10,
                    "127.0.0.1:8443".parse().unwrap(),
                    "svc.ns.svc"
                ),
            ]
        );
        let http = vec![validating(
            json!({"clientConfig": {"url": "http://insecure/"}}),
        )];
        let r = run_validating(&http, &req, Some(&labels(&[])), &t, &local)
            .await
            .unwrap_err();
        assert_eq!(
            r.message,
            "Internal error occurred: failed calling webhook \"pods.example.com\": failed to call webhook: Post \"http://insecure/\": unsupported protocol scheme \"http\""
        );
        let neither = vec![validating(json!({"clientConfig": {}}))];
        let r = run_validating(&neither, &req, Some(&labels(&[])), &t, &local)
            .await
            .unwrap_err();
        assert_eq!(
            r.message,
            "Internal error occurred: failed calling webhook \"pods.example.com\": could not get REST client: webhook configuration must have either service or URL"
        );
    }

    #[tokio::test]
    async fn validating_runs_all_and_first_rejection_wins() {
        let hooks: Vec<Webhook> = ["a", "b", "c"]
            .iter()
            .map(|n| {
                validating(
                    json!({"name": n, "clientConfig": {"url": format!("https://10.0.0.1/{n}")}}),
                )
            })
            .collect();
        let t = FakeTransport::new(|target, review| {
            let allowed = target.path_and_query.starts_with("/a");
            Ok(review_response(
                review,
                json!({"allowed": allowed, "status": {"message": target.path_and_query}, "warnings": [target.path_and_query]}),
            ))
        });
        let req = pod_req(Operation::Update);
        let out = run_validating_detailed(&hooks, &req, Some(&labels(&[])), &t, &local).await;
        assert_eq!(t.calls().len(), 3);
        assert_eq!(
            out.rejection.unwrap().message,
            "admission webhook \"b\" denied the request: /b?timeout=10s"
        );
        assert_eq!(out.warnings.len(), 3);
        // patches from a validating webhook are an invalid response
        let patcher = FakeTransport::new(|_, review| {
            Ok(review_response(
                review,
                json!({"allowed": true, "patchType": "JSONPatch", "patch": label_patch("x", "y")}),
            ))
        });
        let r = run_validating(&hooks[..1], &req, Some(&labels(&[])), &patcher, &local)
            .await
            .unwrap_err();
        assert!(r.message.ends_with(
            "received invalid webhook response: validating webhook may not return response.patch"
        ));
    }

    #[tokio::test]
    async fn reinvocation_if_needed() {
        let hooks = collect_webhooks(&[config(
            "MutatingWebhookConfiguration",
            "cfg",
            json!([
                {"name": "a", "reinvocationPolicy": "IfNeeded", "clientConfig": {"url": "https://10.0.0.1/a"}, "rules": pod_rule(), "sideEffects": "None", "admissionReviewVersions": ["v1"]},
                {"name": "b", "clientConfig": {"url": "https://10.0.0.1/b"}, "rules": pod_rule(), "sideEffects": "None", "admissionReviewVersions": ["v1"]},
            ]),
        )]);
        // a sets labels.a to the number of labels it sees; b adds labels.b once
        let t = FakeTransport::new(|target, review| {
            let obj = &review["request"]["object"];
            let n = obj["metadata"]["labels"]
                .as_object()
                .map(|m| m.len())
                .unwrap_or(0);
            let patch = if target.path_and_query.starts_with("/a") {
                Some(label_patch("a", &n.to_string()))
            } else if obj["metadata"]["labels"].get("b").is_none() {
                Some(label_patch("b", "1"))
            } else {
                None
            };
            let mut resp = json!({"allowed": true});
            if let Some(p) = patch {
                resp["patch"] = json!(p);
                resp["patchType"] = json!("JSONPatch");
            }
            Ok(review_response(review, resp))
        });
        let mut req = pod_req(Operation::Create);
        let out = run_mutating_detailed(&hooks, &mut req, Some(&labels(&[])), &t, &local).await;
        assert_eq!(out.rejection, None);
        let paths: Vec<String> = t
            .calls()
            .iter()
            .map(|c| c.target.path_and_query.clone())
            .collect();
        assert_eq!(
            paths,
            ["/a?timeout=10s", "/b?timeout=10s", "/a?timeout=10s"]
        );
        // first round a saw {app}, second round {app, a, b}
        assert_eq!(
            req.object.as_ref().unwrap()["metadata"]["labels"],
            json!({"app": "web", "a": "3", "b": "1"})
        );
        assert!(out
            .audit_annotations
            .iter()
            .any(|(k, _)| k == "mutation.webhook.admission.k8s.io/round_1_index_0"));

        // without IfNeeded nobody is called twice
        let never = collect_webhooks(&[config(
            "MutatingWebhookConfiguration",
            "cfg",
            json!([
                {"name": "a", "clientConfig": {"url": "https://10.0.0.1/a"}, "rules": pod_rule(), "sideEffects": "None", "admissionReviewVersions": ["v1"]},
                {"name": "b", "clientConfig": {"url": "https://10.0.0.1/b"}, "rules": pod_rule(), "sideEffects": "None", "admissionReviewVersions": ["v1"]},
            ]),
        )]);
        let t2 = FakeTransport::new(|_, review| {
            Ok(review_response(
                review,
                json!({"allowed": true, "patchType": "JSONPatch", "patch": label_patch("z", "1")}),
            ))
        });
        let mut req = pod_req(Operation::Create);
        run_mutating(&never, &mut req, Some(&labels(&[])), &t2, &local)
            .await
            .unwrap();
        assert_eq!(t2.calls().len(), 2);
    }

    #[test]
    fn dispatch_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let t = FakeTransport::allowing();
        let hooks: Vec<Webhook> = Vec::new();
        let req = pod_req(Operation::Create);
        let f = run_validating(&hooks, &req, None, &t, &local);
        assert_send(&f);
        let mut req2 = pod_req(Operation::Create);
        let g = run_mutating(&hooks, &mut req2, None, &t, &local);
        assert_send(&g);
    }

    mod tls {
        use super::*;
        use http_body_util::BodyExt;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

        struct Pki {
            ca_pem: String,
            cert: CertificateDer<'static>,
            key: Vec<u8>,
        }

        fn pki(server_name: &str) -> Pki {
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            ca_params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "webhook-test-ca");
            let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
            let leaf_key = rcgen::KeyPair::generate().unwrap();
            let leaf = rcgen::CertificateParams::new(vec![server_name.to_string()])
                .unwrap()
                .signed_by(&leaf_key, &ca)
                .unwrap();
            Pki {
                ca_pem: ca.pem(),
                cert: leaf.der().clone(),
                key: leaf_key.serialize_der(),
            }
        }

        #[derive(Debug, Default, Clone)]
        struct Seen {
            path: String,
            host: String,
            content_type: String,
        }

        /// Serves TLS on 127.0.0.1:0; answers each review with a label patch unless `hang`.
        async fn serve(p: &Pki, hang: bool) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![p.cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(p.key.clone())),
            )
            .unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let seen2 = seen.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    if hang {
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            drop(tcp);
                        });
                        continue;
                    }
                    let acceptor = acceptor.clone();
                    let seen = seen2.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let svc = hyper::service::service_fn(
                            move |req: http::Request<hyper::body::Incoming>| {
                                let seen = seen.clone();
                                async move {
                                    let hdr = |n: http::header::HeaderName| {
                                        req.headers()
                                            .get(n)
                                            .and_then(|v| v.to_str().ok())
                                            .unwrap_or_default()
                                            .to_string()
                                    };
                                    let s = Seen {
                                        path: req.uri().to_string(),
                                        host: hdr(http::header::HOST),
                                        content_type: hdr(http::header::CONTENT_TYPE),
                                    };
                                    seen.lock().unwrap().push(s);
                                    let body = req.into_body().collect().await.unwrap().to_bytes();
                                    let review: Value = serde_json::from_slice(&body).unwrap();
                                    let out = review_response(
                                        &review,
                                        json!({"allowed": true, "patchType": "JSONPatch", "patch": label_patch("tls", "ok")}),
                                    );
                                    Ok::<_, std::convert::Infallible>(http::Response::new(
                                        http_body_util::Full::new(bytes::Bytes::from(out)),
                                    ))
                                }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                            .await;
                    });
                }
            });
            (addr, seen)
        }

        fn tls_hook(ca_pem: Option<&str>, timeout: u32) -> Webhook {
            let mut cc =
                json!({"service": {"namespace": "default", "name": "webhook", "path": "/mutate"}});
            if let Some(ca) = ca_pem {
                cc["caBundle"] = json!(base64::engine::general_purpose::STANDARD.encode(ca));
            }
            mutating(json!({"clientConfig": cc, "timeoutSeconds": timeout}))
        }

        #[tokio::test]
        async fn https_transport_calls_a_tls_webhook() {
            let p = pki("webhook.default.svc");
            let (addr, seen) = serve(&p, false).await;
            let resolve = move |ns: &str, name: &str, port: u16| {
                (ns == "default" && name == "webhook" && port == 443).then_some(addr)
            };
            let transport = HttpsTransport::new(b"");
            let hooks = vec![tls_hook(Some(&p.ca_pem), 10)];
            let mut req = pod_req(Operation::Create);
            run_mutating(&hooks, &mut req, Some(&labels(&[])), &transport, &resolve)
                .await
                .unwrap();
            assert_eq!(
                req.object.as_ref().unwrap()["metadata"]["labels"]["tls"],
                "ok"
            );
            let s = seen.lock().unwrap().clone();
            assert_eq!(s.len(), 1);
            assert_eq!(s[0].path, "/mutate?timeout=10s");
            assert_eq!(s[0].host, "webhook.default.svc:443");
            assert_eq!(s[0].content_type, "application/json");

            // an empty caBundle falls back to the API server's CA
            let transport = HttpsTransport::new(p.ca_pem.as_bytes());
            let mut req = pod_req(Operation::Create);
            run_mutating(
                &[tls_hook(None, 10)],
                &mut req,
                Some(&labels(&[])),
                &transport,
                &resolve,
            )
            .await
            .unwrap();
            assert_eq!(
                req.object.as_ref().unwrap()["metadata"]["labels"]["tls"],
                "ok"
            );
        }

        #[tokio::test]
        async fn https_transport_rejects_unknown_ca_and_wrong_name() {
            let p = pki("webhook.default.svc");
            let other = pki("webhook.default.svc");
            let (addr, _) = serve(&p, false).await;
            let resolve = move |_: &str, _: &str, _: u16| Some(addr);
            let transport = HttpsTransport::new(other.ca_pem.as_bytes());
            let mut req = pod_req(Operation::Create);
            let r = run_mutating(
                &[tls_hook(None, 10)],
                &mut req,
                Some(&labels(&[])),
                &transport,
                &resolve,
            )
            .await
            .unwrap_err();
            assert_eq!(
                r.message,
                "Internal error occurred: failed calling webhook \"pods.example.com\": failed to call webhook: Post \"https://webhook.default.svc:443/mutate?timeout=10s\": tls: failed to verify certificate: x509: certificate signed by unknown authority"
            );

            let wrong = pki("other.default.svc");
            let (addr, _) = serve(&wrong, false).await;
            let resolve = move |_: &str, _: &str, _: u16| Some(addr);
            let transport = HttpsTransport::new(wrong.ca_pem.as_bytes());
            let r = run_mutating(
                &[tls_hook(None, 10)],
                &mut req,
                Some(&labels(&[])),
                &transport,
                &resolve,
            )
            .await
            .unwrap_err();
            assert!(
                r.message.ends_with("tls: failed to verify certificate: x509: certificate is valid for other.default.svc, not webhook.default.svc"),
                "{}",
                r.message
            );

            let bad_ca = HttpsTransport::new(b"not pem");
            let r = run_mutating(
                &[tls_hook(None, 10)],
                &mut req,
                Some(&labels(&[])),
                &bad_ca,
                &resolve,
            )
            .await
            .unwrap_err();
            assert_eq!(
                r.message,
                "Internal error occurred: failed calling webhook \"pods.example.com\": could not get REST client: unable to load root certificates: unable to parse bytes as PEM block"
            );
        }

        #[tokio::test]
        async fn https_transport_times_out_and_reports_refused() {
            let p = pki("webhook.default.svc");
            let (addr, _) = serve(&p, true).await;
            let resolve = move |_: &str, _: &str, _: u16| Some(addr);
            let transport = HttpsTransport::new(p.ca_pem.as_bytes());
            let mut req = pod_req(Operation::Create);
            let started = std::time::Instant::now();
            let r = run_mutating(
                &[tls_hook(None, 1)],
                &mut req,
                Some(&labels(&[])),
                &transport,
                &resolve,
            )
            .await
            .unwrap_err();
            let took = started.elapsed();
            assert!(
                took >= Duration::from_secs(1) && took < Duration::from_secs(5),
                "{took:?}"
            );
            assert_eq!(
                r.message,
                "Internal error occurred: failed calling webhook \"pods.example.com\": failed to call webhook: Post \"https://webhook.default.svc:443/mutate?timeout=1s\": context deadline exceeded"
            );

            // a port nobody listens on
            let closed = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            let resolve = move |_: &str, _: &str, _: u16| Some(closed);
            let r = run_mutating(
                &[tls_hook(None, 5)],
                &mut req,
                Some(&labels(&[])),
                &transport,
                &resolve,
            )
            .await
            .unwrap_err();
            assert_eq!(
                r.message,
                format!("Internal error occurred: failed calling webhook \"pods.example.com\": failed to call webhook: Post \"https://webhook.default.svc:443/mutate?timeout=5s\": dial tcp {closed}: connect: connection refused")
            );
        }
    }
}
