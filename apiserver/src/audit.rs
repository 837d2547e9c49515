//! Audit logging, after upstream's `k8s.io/apiserver/pkg/audit` (policy checker, event
//! helpers), `pkg/apis/audit/v1` (the `Policy` and `Event` types) and
//! `plugin/pkg/audit/log` (the JSON-lines log backend with lumberjack rotation).
//!
//! Owns: parsing and validating the `audit.k8s.io/v1` `Policy`, evaluating it for a request
//! (first matching rule wins, no match = level `None`), the `Event` type serialized exactly like
//! upstream's, helpers that fill an event from a request the way upstream's filters do, the
//! `AuditSink` trait, a file sink that writes on a background thread and rotates like
//! `--audit-log-maxsize/--audit-log-maxbackup/--audit-log-maxage`, and a recording fake sink.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::auth::{Attributes, UserInfo};

pub const API_VERSION: &str = "audit.k8s.io/v1";

/// Annotation keys upstream's authorization filter adds to the event.
pub const DECISION_ANNOTATION: &str = "authorization.k8s.io/decision";
pub const REASON_ANNOTATION: &str = "authorization.k8s.io/reason";
pub const DECISION_ALLOW: &str = "allow";
pub const DECISION_FORBID: &str = "forbid";

/// Upstream truncates longer user agents.
const MAX_USER_AGENT_LENGTH: usize = 1024;
const USER_AGENT_TRUNCATE_SUFFIX: &str = "...TRUNCATED";
/// Upstream's default batch buffer size (`--audit-log-batch-buffer-size`).
pub const DEFAULT_BUFFER_SIZE: usize = 10_000;
/// lumberjack's default when `--audit-log-maxsize` is 0.
const DEFAULT_MAX_SIZE_MIB: u64 = 100;
const MIB: u64 = 1024 * 1024;
/// lumberjack's backup time format, `2006-01-02T15-04-05.000` in UTC.
const BACKUP_TIME_FORMAT: &str = "%Y-%m-%dT%H-%M-%S";
/// Lines the writer thread takes from the channel before flushing.
const MAX_BATCH: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Decoding the policy file (upstream: `failed decoding: ...`).
    #[error("failed decoding: {0}")]
    DecodePolicy(String),
    /// The file's apiVersion is not `audit.k8s.io/v1`.
    #[error("unknown group version field {0} in policy")]
    PolicyGroupVersion(String),
    /// Field validation (aggregated as upstream's `ToAggregate`).
    #[error("{0}")]
    ValidatePolicy(String),
    #[error("loaded illegal policy with 0 rules")]
    EmptyPolicy,
    /// Creating the log file or its directory (upstream's `ensureLogFile`).
    #[error("ensureLogFile: {0}")]
    OpenLog(io::Error),
    /// Starting the writer thread.
    #[error("could not start the audit log writer: {0}")]
    StartWriter(io::Error),
}

// ---------------------------------------------------------------------------------------------
// Levels and stages
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "None" => Level::None,
            "Metadata" => Level::Metadata,
            "Request" => Level::Request,
            "RequestResponse" => Level::RequestResponse,
            _ => return None,
        })
    }
    /// Upstream's `Level.Less`.
    pub fn less(self, other: Level) -> bool {
        self < other
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stage {
    RequestReceived,
    ResponseStarted,
    ResponseComplete,
    Panic,
}

impl Stage {
    pub fn parse(s: &str) -> Option<Stage> {
        Some(match s {
            "RequestReceived" => Stage::RequestReceived,
            "ResponseStarted" => Stage::ResponseStarted,
            "ResponseComplete" => Stage::ResponseComplete,
            "Panic" => Stage::Panic,
            _ => return None,
        })
    }
}

const VALID_LEVELS: &[&str] = &["None", "Metadata", "Request", "RequestResponse"];
const VALID_STAGES: &[&str] = &[
    "RequestReceived",
    "ResponseStarted",
    "ResponseComplete",
    "Panic",
];

// ---------------------------------------------------------------------------------------------
// Policy
// ---------------------------------------------------------------------------------------------

/// `audit.k8s.io/v1` `Policy`. Levels and stages are kept as written and checked by
/// validation so errors read like upstream's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omit_stages: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub omit_managed_fields: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default)]
    pub level: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<GroupResources>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omit_stages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_managed_fields: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupResources {
    #[serde(default)]
    pub group: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
}

/// What the policy says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAuditConfig {
    pub level: Level,
    pub omit_stages: Vec<Stage>,
    pub omit_managed_fields: bool,
}

impl RequestAuditConfig {
    /// Whether an event at `stage` is written: level above None and the stage not omitted.
    pub fn should_emit(&self, stage: Stage) -> bool {
        self.level != Level::None && !self.omit_stages.contains(&stage)
    }
}

fn parse_stages(stages: &[String]) -> Vec<Stage> {
    stages.iter().filter_map(|s| Stage::parse(s)).collect()
}

/// Union of the policy's and the rule's omitted stages (upstream's `unionStages`).
fn union_stages(a: &[Stage], b: &[Stage]) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::with_capacity(a.len() + b.len());
    for s in a.iter().chain(b) {
        if !out.contains(s) {
            out.push(*s);
        }
    }
    out
}

impl Policy {
    /// Decodes (YAML or JSON) and validates a policy file (upstream's `LoadPolicyFromBytes`).
    pub fn parse(data: &[u8]) -> Result<Policy, AuditError> {
        let trimmed = data.trim_ascii_start();
        let policy: Policy = if trimmed.starts_with(b"{") {
            serde_json::from_slice(trimmed).map_err(|e| AuditError::DecodePolicy(e.to_string()))?
        } else {
            serde_yaml::from_slice(data).map_err(|e| AuditError::DecodePolicy(e.to_string()))?
        };
        if policy.kind.is_empty() {
            return Err(AuditError::DecodePolicy(
                "Object 'Kind' is missing in policy".into(),
            ));
        }
        if policy.api_version != API_VERSION {
            let (group, version) = policy
                .api_version
                .split_once('/')
                .unwrap_or(("", policy.api_version.as_str()));
            return Err(AuditError::PolicyGroupVersion(format!(
                "{group}/{version}, Kind={}",
                policy.kind
            )));
        }
        if policy.kind != "Policy" {
            return Err(AuditError::DecodePolicy(format!(
                "no kind {:?} is registered for version {:?}",
                policy.kind, policy.api_version
            )));
        }
        let errs = policy.validate();
        if !errs.is_empty() {
            return Err(AuditError::ValidatePolicy(aggregate(&errs)));
        }
        if policy.rules.is_empty() {
            return Err(AuditError::EmptyPolicy);
        }
        Ok(policy)
    }

    /// Upstream's `ValidatePolicy`, field errors as strings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let p = format!("rules[{i}]");
            let level_path = format!("{p}.level");
            if rule.level.is_empty() {
                errs.push(format!("{level_path}: Required value"));
            } else if Level::parse(&rule.level).is_none() {
                let supported: Vec<String> =
                    VALID_LEVELS.iter().map(|l| format!("{l:?}")).collect();
                errs.push(format!(
                    "{level_path}: Unsupported value: {:?}: supported values: {}",
                    rule.level,
                    supported.join(", ")
                ));
            }
            for (j, url) in rule.non_resource_urls.iter().enumerate() {
                if url == "*" {
                    continue;
                }
                let up = format!("{p}.nonResourceURLs[{j}]");
                if !url.starts_with('/') {
                    errs.push(format!(
                        "{up}: Invalid value: {url:?}: non-resource URL rules must begin with a '/' character"
                    ));
                }
                if !url.is_empty() && url[..url.len() - 1].contains('*') {
                    errs.push(format!(
                        "{up}: Invalid value: {url:?}: non-resource URL wildcards '*' must be the final character of the rule"
                    ));
                }
            }
            for gr in &rule.resources {
                if !gr.group.is_empty() {
                    if let Some(msg) = dns_subdomain_error(&gr.group) {
                        errs.push(format!(
                            "{p}.resources.group: Invalid value: {:?}: {msg}",
                            gr.group
                        ));
                    }
                }
                if !gr.resource_names.is_empty() && gr.resources.is_empty() {
                    errs.push(format!(
                        "{p}.resources.resourceNames: Invalid value: {}: using resourceNames requires at least one resource",
                        go_string_slice(&gr.resource_names)
                    ));
                }
            }
            validate_omit_stages(&rule.omit_stages, &format!("{p}.omitStages"), &mut errs);
            if !rule.non_resource_urls.is_empty()
                && (!rule.resources.is_empty() || !rule.namespaces.is_empty())
            {
                errs.push(format!(
                    "{p}.nonResourceURLs: Invalid value: {}: rules cannot apply to both regular resources and non-resource URLs",
                    go_string_slice(&rule.non_resource_urls)
                ));
            }
        }
        validate_omit_stages(&self.omit_stages, "omitStages", &mut errs);
        errs
    }

    /// Upstream's `EvaluatePolicyRule`: the first matching rule gives the level, its omitted
    /// stages joined with the policy's, and its omitManagedFields (else the policy's); no match
    /// is level None.
    pub fn evaluate(&self, user: &UserInfo, a: &Attributes) -> RequestAuditConfig {
        let policy_stages = parse_stages(&self.omit_stages);
        for rule in &self.rules {
            if rule_matches(rule, user, a) {
                return RequestAuditConfig {
                    level: Level::parse(&rule.level).unwrap_or(Level::None),
                    omit_stages: union_stages(&policy_stages, &parse_stages(&rule.omit_stages)),
                    omit_managed_fields: rule
                        .omit_managed_fields
                        .unwrap_or(self.omit_managed_fields),
                };
            }
        }
        RequestAuditConfig {
            level: Level::None,
            omit_stages: policy_stages,
            omit_managed_fields: self.omit_managed_fields,
        }
    }
}

fn validate_omit_stages(stages: &[String], path: &str, errs: &mut Vec<String>) {
    for (i, s) in stages.iter().enumerate() {
        if Stage::parse(s).is_none() {
            errs.push(format!(
                "{path}[{i}]: Invalid value: {s:?}: allowed stages are {}",
                VALID_STAGES.join(",")
            ));
        }
    }
}

/// `validation.NameIsDNSSubdomain` for API group names.
fn dns_subdomain_error(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if s.split('.').all(label_ok) {
        None
    } else {
        Some("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into())
    }
}

/// Go's `%#v` of a `[]string`.
fn go_string_slice(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// `utilerrors.NewAggregate(...).Error()`.
fn aggregate(msgs: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for m in msgs {
        if !seen.contains(&m.as_str()) {
            seen.push(m);
        }
    }
    if seen.len() == 1 {
        seen[0].to_string()
    } else {
        format!("[{}]", seen.join(", "))
    }
}

fn has(list: &[String], v: &str) -> bool {
    list.iter().any(|s| s == v)
}

fn rule_matches(r: &PolicyRule, user: &UserInfo, a: &Attributes) -> bool {
    if !r.users.is_empty() && !has(&r.users, &user.name) {
        return false;
    }
    if !r.user_groups.is_empty() && !user.groups.iter().any(|g| has(&r.user_groups, g)) {
        return false;
    }
    if !r.verbs.is_empty() && !has(&r.verbs, &a.verb) {
        return false;
    }
    if !r.namespaces.is_empty() || !r.resources.is_empty() {
        return rule_matches_resource(r, a);
    }
    if !r.non_resource_urls.is_empty() {
        return !a.resource_request && r.non_resource_urls.iter().any(|s| path_matches(&a.path, s));
    }
    true
}

fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*"
        || spec == path
        || (spec.ends_with('*') && path.starts_with(spec.trim_end_matches('*')))
}

fn rule_matches_resource(r: &PolicyRule, a: &Attributes) -> bool {
    if !a.resource_request {
        return false;
    }
    // Cluster-scoped resources use the empty namespace.
    if !r.namespaces.is_empty() && !has(&r.namespaces, &a.namespace) {
        return false;
    }
    if r.resources.is_empty() {
        return true;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    for gr in r.resources.iter().filter(|gr| gr.group == a.api_group) {
        if gr.resources.is_empty() {
            return true;
        }
        if !gr.resource_names.is_empty() && !has(&gr.resource_names, &a.name) {
            continue;
        }
        for res in &gr.resources {
            if *res == combined || res == "*" {
                return true;
            }
            if !a.subresource.is_empty() && res.strip_prefix("*/") == Some(a.subresource.as_str()) {
                return true;
            }
            if res.strip_suffix("/*") == Some(a.resource.as_str()) {
                return true;
            }
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------------------------

/// `authentication.k8s.io/v1` `UserInfo` as it appears in events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventUser {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl From<&UserInfo> for EventUser {
    fn from(u: &UserInfo) -> Self {
        EventUser {
            username: u.name.clone(),
            uid: u.uid.clone(),
            groups: u.groups.clone(),
            extra: u.extra.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// `metav1.Status` as the audit event carries it (`metadata` is always `{}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseStatus {
    #[serde(default = "empty_object")]
    pub metadata: Value,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: i32,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

impl Default for ResponseStatus {
    fn default() -> Self {
        ResponseStatus {
            metadata: empty_object(),
            status: String::new(),
            message: String::new(),
            reason: String::new(),
            details: None,
            code: 0,
        }
    }
}

impl ResponseStatus {
    /// A successful response: only the code, as upstream records it.
    pub fn code(code: i32) -> Self {
        ResponseStatus {
            code,
            ..Default::default()
        }
    }

    /// The bounded fields of a `Status` object (upstream's `LogResponseObject`).
    pub fn from_status_object(status: &Value) -> Self {
        let s = |k: &str| {
            status
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        ResponseStatus {
            metadata: empty_object(),
            status: s("status"),
            message: s("message"),
            reason: s("reason"),
            details: status.get("details").filter(|d| !d.is_null()).cloned(),
            code: status
                .get("code")
                .and_then(Value::as_i64)
                .and_then(|c| i32::try_from(c).ok())
                .unwrap_or(0),
        }
    }
}

/// `metav1.MicroTime`: RFC 3339 with microseconds, UTC.
pub fn format_micro_time(ts: jiff::Timestamp) -> String {
    format!(
        "{}.{:06}Z",
        ts.strftime("%Y-%m-%dT%H:%M:%S"),
        ts.subsec_microsecond()
    )
}

fn serialize_micro_time<S: Serializer>(ts: &jiff::Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_micro_time(*ts))
}

fn deserialize_micro_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<jiff::Timestamp, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn event_kind() -> String {
    "Event".into()
}

fn event_api_version() -> String {
    API_VERSION.into()
}

/// `audit.k8s.io/v1` `Event`, fields in upstream's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default = "event_kind")]
    pub kind: String,
    #[serde(default = "event_api_version")]
    pub api_version: String,
    pub level: Level,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: Stage,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub verb: String,
    pub user: EventUser,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<EventUser>,
    #[serde(default, rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Value>,
    #[serde(
        serialize_with = "serialize_micro_time",
        deserialize_with = "deserialize_micro_time"
    )]
    pub request_received_timestamp: jiff::Timestamp,
    #[serde(
        serialize_with = "serialize_micro_time",
        deserialize_with = "deserialize_micro_time"
    )]
    pub stage_timestamp: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A fresh audit ID (upstream uses a random UUID unless the client sent `Audit-ID`).
pub fn new_audit_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Upstream's `maybeTruncateUserAgent`.
pub fn truncate_user_agent(ua: &str) -> String {
    if ua.len() <= MAX_USER_AGENT_LENGTH {
        return ua.to_string();
    }
    let mut end = MAX_USER_AGENT_LENGTH;
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{USER_AGENT_TRUNCATE_SUFFIX}", &ua[..end])
}

/// What the request handler knows when the request arrives.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo<'a> {
    pub audit_id: &'a str,
    /// Path and query, as `req.URL.RequestURI()`.
    pub request_uri: &'a str,
    pub source_ips: &'a [String],
    pub user_agent: &'a str,
}

impl Event {
    /// Upstream's `NewEventFromRequest`: stage RequestReceived, both timestamps `received`,
    /// objectRef from the attributes of a resource request.
    pub fn from_request(
        level: Level,
        req: &RequestInfo<'_>,
        user: &UserInfo,
        a: &Attributes,
        received: jiff::Timestamp,
    ) -> Event {
        let object_ref = a.resource_request.then(|| ObjectReference {
            resource: a.resource.clone(),
            namespace: a.namespace.clone(),
            name: a.name.clone(),
            api_group: a.api_group.clone(),
            api_version: a.api_version.clone(),
            subresource: a.subresource.clone(),
            ..Default::default()
        });
        Event {
            kind: event_kind(),
            api_version: event_api_version(),
            level,
            audit_id: req.audit_id.to_string(),
            stage: Stage::RequestReceived,
            request_uri: req.request_uri.to_string(),
            verb: a.verb.clone(),
            user: user.into(),
            impersonated_user: None,
            source_ips: req.source_ips.to_vec(),
            user_agent: truncate_user_agent(req.user_agent),
            object_ref,
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: received,
            stage_timestamp: received,
            annotations: BTreeMap::new(),
        }
    }

    pub fn add_annotation(&mut self, key: &str, value: &str) {
        self.annotations.insert(key.to_string(), value.to_string());
    }

    /// The annotations upstream's authorization filter records.
    pub fn annotate_authorization(&mut self, allowed: bool, reason: &str) {
        self.add_annotation(
            DECISION_ANNOTATION,
            if allowed {
                DECISION_ALLOW
            } else {
                DECISION_FORBID
            },
        );
        self.add_annotation(REASON_ANNOTATION, reason);
    }

    /// Upstream's `LogRequestObject`: at Metadata and above the object's metadata fills empty
    /// objectRef fields; at Request and above the object itself is recorded.
    pub fn log_request_object(&mut self, obj: &Value, omit_managed_fields: bool) {
        if self.level < Level::Metadata {
            return;
        }
        self.fill_object_ref(obj);
        if self.level < Level::Request {
            return;
        }
        self.request_object = Some(strip_managed_fields(obj, omit_managed_fields));
    }

    /// Upstream's `LogResponseObject`: a `Status` response sets responseStatus; at
    /// RequestResponse the object itself is recorded.
    pub fn log_response_object(&mut self, obj: &Value, omit_managed_fields: bool) {
        if self.level < Level::Metadata {
            return;
        }
        if obj.get("kind").and_then(Value::as_str) == Some("Status") {
            self.response_status = Some(ResponseStatus::from_status_object(obj));
        }
        if self.level < Level::RequestResponse {
            return;
        }
        self.response_object = Some(strip_managed_fields(obj, omit_managed_fields));
    }

    /// Records the HTTP status code (upstream's `processCode`), keeping other status fields.
    pub fn set_response_code(&mut self, code: i32) {
        self.response_status
            .get_or_insert_with(ResponseStatus::default)
            .code = code;
    }

    /// A copy at `stage`, stamped `now` (RequestReceived keeps the receive time), as upstream's
    /// `processAuditEvent`. ResponseStarted is only emitted for long-running requests (watch,
    /// exec, logs -f); Panic carries a 500 status the caller sets.
    pub fn at_stage(&self, stage: Stage, now: jiff::Timestamp) -> Event {
        let mut ev = self.clone();
        ev.stage = stage;
        ev.stage_timestamp = if stage == Stage::RequestReceived {
            ev.request_received_timestamp
        } else {
            now
        };
        ev
    }

    /// The event at Panic stage with upstream's 500 status.
    pub fn panicked(&self, message: &str, now: jiff::Timestamp) -> Event {
        let mut ev = self.at_stage(Stage::Panic, now);
        ev.response_status = Some(ResponseStatus {
            status: "Failure".into(),
            message: format!("APIServer panic'd: {message}"),
            reason: "InternalError".into(),
            code: 500,
            ..Default::default()
        });
        ev
    }

    fn fill_object_ref(&mut self, obj: &Value) {
        let r = self.object_ref.get_or_insert_with(ObjectReference::default);
        let meta = obj.get("metadata");
        let field = |k: &str| {
            meta.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        if r.namespace.is_empty() {
            r.namespace = field("namespace");
        }
        if r.name.is_empty() {
            r.name = field("name");
        }
        if r.uid.is_empty() {
            r.uid = field("uid");
        }
        if r.resource_version.is_empty() {
            r.resource_version = field("resourceVersion");
        }
    }

    /// One JSON line (with the trailing newline), as the log backend writes it.
    pub fn to_json_line(&self) -> Vec<u8> {
        // Serializing strings, maps and JSON values cannot fail.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// The object without `metadata.managedFields` (also inside list items) when asked.
fn strip_managed_fields(obj: &Value, omit: bool) -> Value {
    let mut copy = obj.clone();
    if omit {
        let strip = |v: &mut Value| {
            if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("managedFields");
            }
        };
        strip(&mut copy);
        if let Some(items) = copy.get_mut("items").and_then(Value::as_array_mut) {
            items.iter_mut().for_each(strip);
        }
    }
    copy
}

// ---------------------------------------------------------------------------------------------
// Sinks
// ---------------------------------------------------------------------------------------------

/// Where events go. Implementations must not block the request for long.
pub trait AuditSink: Send + Sync {
    fn write(&self, events: &[Event]);
}

/// Test fake: keeps every event.
#[derive(Debug, Default)]
pub struct RecordingSink {
    events: Mutex<Vec<Event>>,
}

impl RecordingSink {
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl AuditSink for RecordingSink {
    fn write(&self, events: &[Event]) {
        if let Ok(mut e) = self.events.lock() {
            e.extend_from_slice(events);
        }
    }
}

/// `--audit-log-*` options.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// `--audit-log-path`; `-` writes to stdout without rotation.
    pub path: PathBuf,
    /// `--audit-log-maxsize` in MiB; 0 means lumberjack's default of 100.
    pub max_size_mib: u64,
    /// `--audit-log-maxbackup`; 0 keeps all.
    pub max_backups: usize,
    /// `--audit-log-maxage` in days; 0 keeps all.
    pub max_age_days: u64,
    /// Events queued for the writer before new ones are dropped.
    pub buffer_size: usize,
}

impl LogOptions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LogOptions {
            path: path.into(),
            max_size_mib: 0,
            max_backups: 0,
            max_age_days: 0,
            buffer_size: DEFAULT_BUFFER_SIZE,
        }
    }
}

/// A log file rotated the way lumberjack does it: when a write would pass `max_bytes` the
/// file is renamed to `<name>-<UTC 2006-01-02T15-04-05.000><ext>` and a new one opened; then
/// backups beyond `max_backups` or older than `max_age_days` are removed.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_backups: usize,
    max_age_days: u64,
    file: Option<BufWriter<File>>,
    size: u64,
}

fn backup_time(ts: jiff::Timestamp) -> String {
    format!(
        "{}.{:03}",
        ts.strftime(BACKUP_TIME_FORMAT),
        ts.subsec_millisecond()
    )
}

/// Inverse of `backup_time`.
fn parse_backup_time(s: &str) -> Option<jiff::Timestamp> {
    // 2006-01-02T15-04-05.000
    let b = s.as_bytes();
    if b.len() != 23 || b[10] != b'T' || b[13] != b'-' || b[16] != b'-' || b[19] != b'.' {
        return None;
    }
    let rfc = format!("{}T{}:{}:{}Z", &s[..10], &s[11..13], &s[14..16], &s[17..]);
    rfc.parse().ok()
}

fn open_log_file(path: &Path, append: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut o = OpenOptions::new();
    o.create(true).mode(0o600);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    o.open(path)
}

impl RotatingFile {
    pub fn new(path: PathBuf, max_bytes: u64, max_backups: usize, max_age_days: u64) -> Self {
        RotatingFile {
            path,
            max_bytes,
            max_backups,
            max_age_days,
            file: None,
            size: 0,
        }
    }

    fn name_parts(&self) -> (PathBuf, String, String) {
        let dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match name.rfind('.') {
            Some(i) => (dir, name[..i].to_string(), name[i..].to_string()),
            None => (dir, name, String::new()),
        }
    }

    fn backup_path(&self, now: jiff::Timestamp) -> PathBuf {
        let (dir, prefix, ext) = self.name_parts();
        dir.join(format!("{prefix}-{}{ext}", backup_time(now)))
    }

    /// Appends one line, rotating first when it would not fit.
    pub fn write_line(&mut self, line: &[u8], now: jiff::Timestamp) -> io::Result<()> {
        let len = line.len() as u64;
        if len > self.max_bytes {
            return Err(io::Error::other(format!(
                "write length {len} exceeds maximum file size {}",
                self.max_bytes
            )));
        }
        if self.file.is_none() {
            self.open_existing_or_new(len, now)?;
        }
        if self.size + len > self.max_bytes {
            self.rotate(now)?;
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("audit log file is not open"))?;
        file.write_all(line)?;
        self.size += len;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }

    fn open_existing_or_new(&mut self, write_len: u64, now: jiff::Timestamp) -> io::Result<()> {
        self.remove_old_backups(now)?;
        match fs::metadata(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.open_new(now),
            Err(e) => Err(e),
            Ok(meta) if meta.len() + write_len >= self.max_bytes => self.rotate(now),
            Ok(meta) => {
                self.file = Some(BufWriter::new(open_log_file(&self.path, true)?));
                self.size = meta.len();
                Ok(())
            }
        }
    }

    fn open_new(&mut self, now: jiff::Timestamp) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        if self.path.exists() {
            fs::rename(&self.path, self.backup_path(now))?;
        }
        self.file = Some(BufWriter::new(open_log_file(&self.path, false)?));
        self.size = 0;
        Ok(())
    }

    fn rotate(&mut self, now: jiff::Timestamp) -> io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush()?;
        }
        self.open_new(now)?;
        self.remove_old_backups(now)
    }

    /// Backups of this file, newest first.
    pub fn backups(&self) -> io::Result<Vec<(jiff::Timestamp, PathBuf)>> {
        let (dir, prefix, ext) = self.name_parts();
        let head = format!("{prefix}-");
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stamp) = name
                .strip_prefix(&head)
                .and_then(|rest| rest.strip_suffix(ext.as_str()))
            else {
                continue;
            };
            if let Some(ts) = parse_backup_time(stamp) {
                out.push((ts, entry.path()));
            }
        }
        out.sort_by_key(|b| std::cmp::Reverse(b.0));
        Ok(out)
    }

    fn remove_old_backups(&self, now: jiff::Timestamp) -> io::Result<()> {
        if self.max_backups == 0 && self.max_age_days == 0 {
            return Ok(());
        }
        let mut backups = self.backups()?;
        let mut remove = Vec::new();
        if self.max_backups > 0 && backups.len() > self.max_backups {
            remove.extend(backups.split_off(self.max_backups));
        }
        if self.max_age_days > 0 {
            let age = jiff::SignedDuration::from_hours(24 * self.max_age_days as i64);
            if let Ok(cutoff) = now.checked_sub(age) {
                remove.extend(backups.into_iter().filter(|(ts, _)| *ts < cutoff));
            }
        }
        for (_, path) in remove {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

enum Output {
    Stdout,
    File(RotatingFile),
}

impl Output {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout => io::stdout().lock().write_all(line),
            Output::File(f) => f.write_line(line, jiff::Timestamp::now()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout => io::stdout().lock().flush(),
            Output::File(f) => f.flush(),
        }
    }
}

enum Msg {
    Lines(Vec<Vec<u8>>),
    Flush(mpsc::Sender<()>),
}

/// Upstream's log backend: events serialized by the caller, queued on a bounded channel and
/// written in batches by one thread. A full queue drops events (counted) rather than block a
/// request, as upstream's batch mode does.
pub struct FileSink {
    tx: Option<SyncSender<Msg>>,
    worker: Option<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
    write_errors: Arc<AtomicU64>,
}

impl FileSink {
    /// Creates the file (mode 0600, directory 0700) up front so a bad path fails at start-up,
    /// then starts the writer thread.
    pub fn new(opts: LogOptions) -> Result<FileSink, AuditError> {
        let output = if opts.path.as_os_str() == "-" {
            Output::Stdout
        } else {
            ensure_log_file(&opts.path).map_err(AuditError::OpenLog)?;
            let mib = if opts.max_size_mib == 0 {
                DEFAULT_MAX_SIZE_MIB
            } else {
                opts.max_size_mib
            };
            Output::File(RotatingFile::new(
                opts.path.clone(),
                mib.saturating_mul(MIB),
                opts.max_backups,
                opts.max_age_days,
            ))
        };
        Self::start(output, opts.buffer_size.max(1))
    }

    /// A sink over an explicit rotating file (tests use small byte limits).
    pub fn with_file(file: RotatingFile, buffer_size: usize) -> Result<FileSink, AuditError> {
        Self::start(Output::File(file), buffer_size.max(1))
    }

    fn start(mut output: Output, buffer_size: usize) -> Result<FileSink, AuditError> {
        let (tx, rx) = mpsc::sync_channel::<Msg>(buffer_size);
        let write_errors = Arc::new(AtomicU64::new(0));
        let errors = write_errors.clone();
        let worker = std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || writer_loop(&mut output, rx, &errors))
            .map_err(AuditError::StartWriter)?;
        Ok(FileSink {
            tx: Some(tx),
            worker: Some(worker),
            dropped: Arc::new(AtomicU64::new(0)),
            write_errors,
        })
    }

    /// Waits until everything queued so far is written and flushed.
    pub fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done_tx, done_rx) = mpsc::channel();
        if tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines that could not be written.
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }
}

/// Upstream's `ensureLogFile`.
fn ensure_log_file(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    open_log_file(path, true)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

fn writer_loop(output: &mut Output, rx: Receiver<Msg>, errors: &AtomicU64) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut waiting = Vec::new();
        for msg in batch {
            match msg {
                Msg::Lines(lines) => {
                    for line in lines {
                        if let Err(e) = output.write_line(&line) {
                            errors.fetch_add(1, Ordering::Relaxed);
                            tracing::error!("error in audit plugin 'log': {e}");
                        }
                    }
                }
                Msg::Flush(done) => waiting.push(done),
            }
        }
        if let Err(e) = output.flush() {
            errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!("error in audit plugin 'log': {e}");
        }
        for done in waiting {
            let _ = done.send(());
        }
    }
    let _ = output.flush();
}

impl AuditSink for FileSink {
    fn write(&self, events: &[Event]) {
        let Some(tx) = &self.tx else { return };
        if events.is_empty() {
            return;
        }
        let lines = events.iter().map(Event::to_json_line).collect();
        match tx.try_send(Msg::Lines(lines)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it has written everything queued.
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            api_version: "v1".into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            path: String::new(),
            field_selector: String::new(),
        }
    }

    fn non_res(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
  - level: None
    userGroups: ["system:nodes"]
    verbs: ["get"]
    resources:
      - group: ""
        resources: ["nodes", "nodes/status"]
  - level: RequestResponse
    resources:
      - group: ""
        resources: ["pods/log", "*/exec"]
  - level: Request
    resources:
      - group: "apps"
        resources: ["deployments/*"]
  - level: Metadata
    resources:
      - group: ""
        resources: ["configmaps"]
        resourceNames: ["controller-leader"]
    omitStages: ["ResponseStarted"]
    omitManagedFields: false
  - level: Request
    namespaces: ["kube-system"]
  - level: Metadata
    nonResourceURLs: ["/healthz*", "/version"]
  - level: None
    nonResourceURLs: ["*"]
  - level: Metadata
    resources:
      - group: "rbac.authorization.k8s.io"
  - level: RequestResponse
    verbs: ["delete"]
omitManagedFields: true
"#;

    fn policy() -> Policy {
        Policy::parse(POLICY.as_bytes()).expect("policy parses")
    }

    #[test]
    fn rule_matching() {
        let p = policy();
        let level = |u: &UserInfo, a: &Attributes| p.evaluate(u, a).level;
        let alice = user("alice", &["dev", "system:authenticated"]);
        let proxy = user("system:kube-proxy", &["system:authenticated"]);
        let node = user("system:node:n1", &["system:nodes", "system:authenticated"]);

        // users + verbs
        assert_eq!(
            level(&proxy, &res("watch", "", "endpoints", "", "", "")),
            Level::None
        );
        // userGroups + resources with subresource
        assert_eq!(
            level(&node, &res("get", "", "nodes", "status", "", "n1")),
            Level::None
        );
        assert_eq!(
            level(&node, &res("get", "", "nodes", "", "", "n1")),
            Level::None
        );
        // a different verb falls through to the catch-alls: delete rule
        assert_eq!(
            level(&node, &res("delete", "", "nodes", "", "", "n1")),
            Level::RequestResponse
        );
        // "pods/log" exact, "*/exec" any resource's exec, not the pod itself
        assert_eq!(
            level(&alice, &res("get", "", "pods", "log", "default", "p")),
            Level::RequestResponse
        );
        assert_eq!(
            level(&alice, &res("create", "", "pods", "exec", "default", "p")),
            Level::RequestResponse
        );
        assert_eq!(
            level(&alice, &res("get", "", "pods", "", "default", "p")),
            Level::None
        );
        // "deployments/*" matches subresources (and the resource itself as upstream) of apps
        assert_eq!(
            level(
                &alice,
                &res("update", "apps", "deployments", "scale", "default", "d")
            ),
            Level::Request
        );
        assert_eq!(
            level(
                &alice,
                &res("get", "", "deployments", "scale", "default", "d")
            ),
            Level::None
        );
        // resourceNames
        assert_eq!(
            level(
                &alice,
                &res(
                    "update",
                    "",
                    "configmaps",
                    "",
                    "default",
                    "controller-leader"
                )
            ),
            Level::Metadata
        );
        assert_eq!(
            level(
                &alice,
                &res("update", "", "configmaps", "", "default", "other")
            ),
            Level::None
        );
        // namespaces
        assert_eq!(
            level(
                &alice,
                &res("update", "", "configmaps", "", "kube-system", "other")
            ),
            Level::Request
        );
        // namespaced rule never matches a non-resource request
        assert_eq!(level(&alice, &non_res("get", "/api")), Level::None);
        // nonResourceURLs with trailing *
        assert_eq!(
            level(&alice, &non_res("get", "/healthz/etcd")),
            Level::Metadata
        );
        assert_eq!(level(&alice, &non_res("get", "/version")), Level::Metadata);
        assert_eq!(level(&alice, &non_res("get", "/version/x")), Level::None);
        // group with no resources = every resource of the group
        assert_eq!(
            level(
                &alice,
                &res("list", "rbac.authorization.k8s.io", "roles", "", "x", "")
            ),
            Level::Metadata
        );
        // nonResourceURLs rules never match resource requests
        assert_eq!(
            level(&alice, &res("get", "", "secrets", "", "x", "s")),
            Level::None
        );
        // no rule matches
        let empty = Policy::parse(
            br#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[{"level":"Metadata","users":["bob"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            empty.evaluate(&alice, &res("get", "", "pods", "", "x", "")),
            RequestAuditConfig {
                level: Level::None,
                omit_stages: vec![],
                omit_managed_fields: false
            }
        );
    }

    #[test]
    fn omit_stages_and_managed_fields() {
        let p = policy();
        let alice = user("alice", &["system:authenticated"]);
        let cfg = p.evaluate(
            &alice,
            &res(
                "update",
                "",
                "configmaps",
                "",
                "default",
                "controller-leader",
            ),
        );
        assert_eq!(cfg.level, Level::Metadata);
        assert_eq!(
            cfg.omit_stages,
            vec![Stage::RequestReceived, Stage::ResponseStarted]
        );
        assert!(
            !cfg.omit_managed_fields,
            "rule's false overrides the policy's true"
        );
        assert!(!cfg.should_emit(Stage::RequestReceived));
        assert!(!cfg.should_emit(Stage::ResponseStarted));
        assert!(cfg.should_emit(Stage::ResponseComplete));

        let cfg = p.evaluate(&alice, &res("delete", "", "pods", "", "default", "p"));
        assert_eq!(cfg.omit_stages, vec![Stage::RequestReceived]);
        assert!(cfg.omit_managed_fields);
        let none = p.evaluate(&alice, &res("get", "", "pods", "", "default", "p"));
        assert!(!none.should_emit(Stage::ResponseComplete));
    }

    #[test]
    fn policy_errors() {
        let err = |s: &str| Policy::parse(s.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            err(r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[]}"#),
            "loaded illegal policy with 0 rules"
        );
        assert_eq!(
            err(r#"{"apiVersion":"audit.k8s.io/v1beta1","kind":"Policy","rules":[]}"#),
            "unknown group version field audit.k8s.io/v1beta1, Kind=Policy in policy"
        );
        assert_eq!(
            err(r#"{"apiVersion":"audit.k8s.io/v1","rules":[]}"#),
            "failed decoding: Object 'Kind' is missing in policy"
        );
        assert_eq!(
            err(r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[{"level":"Loud"},{}]}"#),
            "[rules[0].level: Unsupported value: \"Loud\": supported values: \"None\", \"Metadata\", \"Request\", \"RequestResponse\", rules[1].level: Required value]"
        );
        assert_eq!(
            err(r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","rules":[{"level":"None","nonResourceURLs":["healthz","/a*b"],"namespaces":["x"]}]}"#),
            "[rules[0].nonResourceURLs[0]: Invalid value: \"healthz\": non-resource URL rules must begin with a '/' character, rules[0].nonResourceURLs[1]: Invalid value: \"/a*b\": non-resource URL wildcards '*' must be the final character of the rule, rules[0].nonResourceURLs: Invalid value: []string{\"healthz\", \"/a*b\"}: rules cannot apply to both regular resources and non-resource URLs]"
        );
        assert_eq!(
            err(r#"{"apiVersion":"audit.k8s.io/v1","kind":"Policy","omitStages":["Never"],"rules":[{"level":"None","omitStages":["Done"],"resources":[{"group":"rbac.authorization.k8s.io/v1","resourceNames":["a"]}]}]}"#),
            "[rules[0].resources.group: Invalid value: \"rbac.authorization.k8s.io/v1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'), rules[0].resources.resourceNames: Invalid value: []string{\"a\"}: using resourceNames requires at least one resource, rules[0].omitStages[0]: Invalid value: \"Done\": allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic, omitStages[0]: Invalid value: \"Never\": allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic]"
        );
        assert!(err("rules: [").starts_with("failed decoding: "));
    }

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn sample_event(level: Level) -> Event {
        let u = UserInfo {
            name: "alice".into(),
            uid: String::new(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            ..Default::default()
        };
        let ips = vec!["127.0.0.1".to_string()];
        Event::from_request(
            level,
            &RequestInfo {
                audit_id: "a1b2",
                request_uri: "/api/v1/namespaces/default/pods?fieldManager=kubectl",
                source_ips: &ips,
                user_agent: "kubectl/v1.33.0",
            },
            &u,
            &res("create", "", "pods", "", "default", ""),
            ts("2024-01-15T10:30:00.123456789Z"),
        )
    }

    #[test]
    fn serialization_matches_upstream_shape() {
        let mut ev = sample_event(Level::Metadata);
        let received = ev.at_stage(Stage::RequestReceived, ts("2024-01-15T10:31:00Z"));
        assert_eq!(
            String::from_utf8(received.to_json_line()).unwrap(),
            concat!(
                r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1b2","stage":"RequestReceived","#,
                r#""requestURI":"/api/v1/namespaces/default/pods?fieldManager=kubectl","verb":"create","#,
                r#""user":{"username":"alice","groups":["dev","system:authenticated"]},"sourceIPs":["127.0.0.1"],"#,
                r#""userAgent":"kubectl/v1.33.0","objectRef":{"resource":"pods","namespace":"default","apiVersion":"v1"},"#,
                r#""requestReceivedTimestamp":"2024-01-15T10:30:00.123456Z","stageTimestamp":"2024-01-15T10:30:00.123456Z"}"#,
                "\n"
            )
        );
        ev.annotate_authorization(true, "RBAC: allowed by ClusterRoleBinding \"admin\"");
        let pod = serde_json::json!({"kind":"Pod","apiVersion":"v1","metadata":{"name":"p1","namespace":"default","uid":"u1","resourceVersion":"7","managedFields":[{"manager":"kubectl"}]}});
        ev.log_request_object(&pod, true);
        ev.log_response_object(&pod, true);
        ev.set_response_code(201);
        let done = ev.at_stage(Stage::ResponseComplete, ts("2024-01-15T10:30:00.200001Z"));
        assert_eq!(
            serde_json::to_string(&done).unwrap(),
            concat!(
                r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1b2","stage":"ResponseComplete","#,
                r#""requestURI":"/api/v1/namespaces/default/pods?fieldManager=kubectl","verb":"create","#,
                r#""user":{"username":"alice","groups":["dev","system:authenticated"]},"sourceIPs":["127.0.0.1"],"#,
                r#""userAgent":"kubectl/v1.33.0","objectRef":{"resource":"pods","namespace":"default","name":"p1","uid":"u1","apiVersion":"v1","resourceVersion":"7"},"#,
                r#""responseStatus":{"metadata":{},"code":201},"#,
                r#""requestReceivedTimestamp":"2024-01-15T10:30:00.123456Z","stageTimestamp":"2024-01-15T10:30:00.200001Z","#,
                r#""annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by ClusterRoleBinding \"admin\""}}"#
            )
        );
        // Round trip.
        let back: Event = serde_json::from_str(&serde_json::to_string(&done).unwrap()).unwrap();
        assert_eq!(back.stage_timestamp, ts("2024-01-15T10:30:00.200001Z"));
        assert_eq!(back.object_ref, done.object_ref);
    }

    #[test]
    fn objects_only_at_their_levels() {
        let pod = serde_json::json!({"kind":"Pod","metadata":{"name":"p1","managedFields":[{"manager":"m"}]}});
        let status = serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"p1\" already exists","reason":"AlreadyExists","details":{"name":"p1","kind":"pods"},"code":409});

        let mut req = sample_event(Level::Request);
        req.log_request_object(&pod, false);
        req.log_response_object(&status, false);
        assert_eq!(req.request_object.as_ref(), Some(&pod));
        assert!(req.response_object.is_none());
        let rs = req.response_status.clone().unwrap();
        assert_eq!((rs.code, rs.reason.as_str()), (409, "AlreadyExists"));
        assert_eq!(
            serde_json::to_value(&rs).unwrap(),
            serde_json::json!({"metadata":{},"status":"Failure","message":"pods \"p1\" already exists","reason":"AlreadyExists","details":{"name":"p1","kind":"pods"},"code":409})
        );

        let mut rr = sample_event(Level::RequestResponse);
        rr.log_request_object(&pod, true);
        rr.log_response_object(&pod, true);
        let stripped = serde_json::json!({"kind":"Pod","metadata":{"name":"p1"}});
        assert_eq!(rr.request_object.as_ref(), Some(&stripped));
        assert_eq!(rr.response_object.as_ref(), Some(&stripped));

        let mut none = sample_event(Level::None);
        none.log_request_object(&pod, false);
        assert!(none.request_object.is_none());
        assert_eq!(none.object_ref.as_ref().unwrap().name, "");

        let p = sample_event(Level::Metadata).panicked("boom", ts("2024-01-15T10:30:01Z"));
        assert_eq!(p.stage, Stage::Panic);
        assert_eq!(p.response_status.unwrap().code, 500);
    }

    #[test]
    fn user_agent_truncated() {
        let long = "a".repeat(2000);
        let t = truncate_user_agent(&long);
        assert_eq!(t.len(), 1024 + "...TRUNCATED".len());
        assert!(t.ends_with("...TRUNCATED"));
        assert_eq!(truncate_user_agent("kubectl"), "kubectl");
    }

    #[test]
    fn recording_sink_records() {
        let sink = RecordingSink::default();
        let ev = sample_event(Level::Metadata);
        sink.write(&[
            ev.clone(),
            ev.at_stage(Stage::ResponseComplete, jiff::Timestamp::now()),
        ]);
        let got = sink.events();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].stage, Stage::ResponseComplete);
    }

    #[test]
    fn file_sink_writes_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/audit.log");
        let sink = FileSink::new(LogOptions::new(&path)).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let ev = sample_event(Level::Metadata);
        for i in 0..50 {
            let mut e = ev.clone();
            e.audit_id = format!("id-{i}");
            sink.write(&[
                e.clone(),
                e.at_stage(Stage::ResponseComplete, jiff::Timestamp::now()),
            ]);
        }
        sink.flush();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 100);
        for (i, line) in lines.iter().enumerate() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["kind"], "Event");
            assert_eq!(v["auditID"], format!("id-{}", i / 2));
        }
        assert!(text.ends_with('\n'));
        drop(sink);
        // Reopening appends.
        let sink = FileSink::new(LogOptions::new(&path)).unwrap();
        sink.write(&[ev]);
        drop(sink);
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 101);
    }

    #[test]
    fn rotation_by_size_and_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut f = RotatingFile::new(path.clone(), 100, 2, 0);
        let line = [b'x'; 39]
            .iter()
            .copied()
            .chain([b'\n'])
            .collect::<Vec<u8>>(); // 40 bytes
        let t0 = ts("2024-01-15T10:30:00.001Z");
        f.write_line(&line, t0).unwrap();
        f.write_line(&line, t0).unwrap();
        // 80 + 40 > 100: rotate.
        f.write_line(&line, ts("2024-01-15T10:30:01.002Z")).unwrap();
        f.flush().unwrap();
        let first_backup = dir.path().join("audit-2024-01-15T10-30-01.002.log");
        assert_eq!(fs::read(&first_backup).unwrap().len(), 80);
        assert_eq!(fs::read(&path).unwrap().len(), 40);

        f.write_line(&line, ts("2024-01-15T10:30:02Z")).unwrap();
        f.write_line(&line, ts("2024-01-15T10:30:03.003Z")).unwrap();
        f.write_line(&line, ts("2024-01-15T10:30:04Z")).unwrap();
        f.write_line(&line, ts("2024-01-15T10:30:05.005Z")).unwrap();
        f.flush().unwrap();
        let names: Vec<String> = f
            .backups()
            .unwrap()
            .iter()
            .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        // Only the 2 newest backups are kept.
        assert_eq!(
            names,
            [
                "audit-2024-01-15T10-30-05.005.log",
                "audit-2024-01-15T10-30-03.003.log"
            ]
        );
        assert!(!first_backup.exists());

        let err = f.write_line(&[b'y'; 101], t0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "write length 101 exceeds maximum file size 100"
        );
    }

    #[test]
    fn rotation_on_open_and_max_age() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        fs::write(&path, vec![b'z'; 90]).unwrap();
        fs::write(dir.path().join("audit-2024-01-01T00-00-00.000.log"), b"old").unwrap();
        fs::write(
            dir.path().join("audit-2024-01-14T00-00-00.000.log"),
            b"recent",
        )
        .unwrap();
        fs::write(dir.path().join("unrelated.log"), b"keep").unwrap();
        let mut f = RotatingFile::new(path.clone(), 100, 0, 7);
        // 90 + 20 >= 100: the existing file is rotated before writing.
        f.write_line(&[b'a'; 20], ts("2024-01-15T00:00:00Z"))
            .unwrap();
        f.flush().unwrap();
        assert_eq!(fs::read(&path).unwrap(), vec![b'a'; 20]);
        assert_eq!(
            fs::read(dir.path().join("audit-2024-01-15T00-00-00.000.log")).unwrap(),
            vec![b'z'; 90]
        );
        assert!(!dir
            .path()
            .join("audit-2024-01-01T00-00-00.000.log")
            .exists());
        assert!(dir
            .path()
            .join("audit-2024-01-14T00-00-00.000.log")
            .exists());
        assert!(dir.path().join("unrelated.log").exists());
    }

    #[test]
    fn file_sink_rotates_through_the_writer_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let line_len = sample_event(Level::Metadata).to_json_line().len() as u64;
        let sink =
            FileSink::with_file(RotatingFile::new(path.clone(), line_len * 3, 5, 0), 100).unwrap();
        for _ in 0..4 {
            sink.write(&[sample_event(Level::Metadata)]);
            // Distinct backup names need distinct milliseconds.
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        sink.flush();
        let rotated = RotatingFile::new(path.clone(), 1, 5, 0).backups().unwrap();
        assert_eq!(rotated.len(), 1);
        assert_eq!(
            fs::read_to_string(&rotated[0].1).unwrap().lines().count(),
            3
        );
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
        assert_eq!(sink.dropped(), 0);
        assert_eq!(sink.write_errors(), 0);
    }
}

/// The audit policy and the sink the API server writes to (`--audit-policy-file`,
/// `--audit-log-path`).
pub struct Auditor {
    pub policy: Policy,
    pub sink: Box<dyn AuditSink>,
}

/// What one request's handling learned for its audit event; shared with the handler
/// through a request extension.
#[derive(Debug, Default)]
pub struct AuditRecord {
    pub user: Option<UserInfo>,
    /// The authenticated user when the request impersonated someone.
    pub impersonator: Option<UserInfo>,
    pub attrs: Option<Attributes>,
    /// The authorization decision and its reason.
    pub decision: Option<(bool, String)>,
    /// The request body, when the handler read one.
    pub body: Option<bytes::Bytes>,
}

/// The request extension carrying the record.
#[derive(Clone, Default)]
pub struct AuditSlot(pub std::sync::Arc<std::sync::Mutex<AuditRecord>>);

impl AuditSlot {
    pub fn update(&self, f: impl FnOnce(&mut AuditRecord)) {
        if let Ok(mut r) = self.0.lock() {
            f(&mut r);
        }
    }
}
