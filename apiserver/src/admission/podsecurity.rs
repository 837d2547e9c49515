//! Pod Security Admission (upstream `k8s.io/pod-security-admission`) as pure logic over
//! `serde_json::Value` objects: the levels and versions read from the
//! `pod-security.kubernetes.io/*` namespace labels, every baseline and restricted check of
//! the newest upstream policy (with its per-version revisions), the exact upstream
//! messages (enforce denial, warn warning, audit annotation, namespace label change
//! warnings, invalid label errors) and the decisions upstream takes around them (which
//! updates are re-evaluated, which resources carry a pod template).
//!
//! No store, no HTTP, no global state: the caller looks up the namespace labels and, for a
//! namespace label change, lists the namespace's pods, then hands them in.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

/// Prefix of the namespace labels and of the audit annotations this plugin writes.
pub const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";
pub const ENFORCE_LEVEL_LABEL: &str = "pod-security.kubernetes.io/enforce";
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";
pub const AUDIT_LEVEL_LABEL: &str = "pod-security.kubernetes.io/audit";
pub const AUDIT_VERSION_LABEL: &str = "pod-security.kubernetes.io/audit-version";
pub const WARN_LEVEL_LABEL: &str = "pod-security.kubernetes.io/warn";
pub const WARN_VERSION_LABEL: &str = "pod-security.kubernetes.io/warn-version";

/// Audit annotation holding `would violate PodSecurity "...": ...` for the audit level.
pub const AUDIT_VIOLATIONS_ANNOTATION: &str = "pod-security.kubernetes.io/audit-violations";
/// Audit annotation holding the enforced `level:version` of an evaluated pod.
pub const ENFORCE_POLICY_ANNOTATION: &str = "pod-security.kubernetes.io/enforce-policy";
/// Audit annotation holding `Failed to parse policy: ...` when the namespace labels are bad.
pub const ERROR_ANNOTATION: &str = "pod-security.kubernetes.io/error";

/// Newest policy minor version any check has a revision for; `latest` and any newer
/// `v1.N` evaluate with the checks of this version.
pub const NEWEST_POLICY_MINOR: u64 = 37;

/// Upstream `defaultNamespaceMaxPodsToCheck`.
pub const NAMESPACE_MAX_PODS_TO_CHECK: usize = 3000;

const LEVEL_ERROR: &str = "must be one of privileged, baseline, restricted";
const VERSION_ERROR: &str = r#"must be "latest" or "v1.x""#;
const UNKNOWN_FORBIDDEN_REASON: &str = "unknown forbidden reason";

static NULL: Value = Value::Null;

// ---------------------------------------------------------------------------------------
// Levels, versions, policies
// ---------------------------------------------------------------------------------------

/// A Pod Security Standards level; ordered privileged < baseline < restricted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }

    /// Parses a level label value; the error is upstream's field error detail.
    pub fn parse(s: &str) -> Result<Level, String> {
        match s {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            _ => Err(LEVEL_ERROR.to_string()),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy version: `latest` or `v1.N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Version {
    #[default]
    Latest,
    V1(u64),
}

impl Version {
    /// Parses a version label value (`latest` or `v1.N` without leading zeros); the error is
    /// upstream's field error detail.
    pub fn parse(s: &str) -> Result<Version, String> {
        if s == "latest" {
            return Ok(Version::Latest);
        }
        let minor = s.strip_prefix("v1.").unwrap_or("");
        let digits_ok = !minor.is_empty()
            && minor.bytes().all(|b| b.is_ascii_digit())
            && (minor.len() == 1 || !minor.starts_with('0'));
        if !digits_ok {
            return Err(VERSION_ERROR.to_string());
        }
        // Upstream parses into a signed 64-bit int: anything larger is rejected.
        match minor.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Version::V1(n as u64)),
            _ => Err(VERSION_ERROR.to_string()),
        }
    }

    /// True if `self` is older than `other`; `latest` is newer than every version.
    pub fn older(self, other: Version) -> bool {
        match (self, other) {
            (Version::Latest, _) => false,
            (Version::V1(_), Version::Latest) => true,
            (Version::V1(a), Version::V1(b)) => a < b,
        }
    }

    /// The minor version whose checks are evaluated.
    fn effective_minor(self) -> u64 {
        match self {
            Version::Latest => NEWEST_POLICY_MINOR,
            Version::V1(n) => n.min(NEWEST_POLICY_MINOR),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::V1(n) => write!(f, "v1.{n}"),
        }
    }
}

/// A level at a version, displayed as upstream `restricted:latest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LevelVersion {
    pub level: Level,
    pub version: Version,
}

impl LevelVersion {
    pub fn new(level: Level, version: Version) -> Self {
        LevelVersion { level, version }
    }

    /// Upstream `Equivalent`: equal, or both privileged (whose version does not matter).
    pub fn equivalent(&self, other: &LevelVersion) -> bool {
        (self.level == Level::Privileged && other.level == Level::Privileged) || self == other
    }
}

impl Default for LevelVersion {
    fn default() -> Self {
        LevelVersion::new(Level::Privileged, Version::Latest)
    }
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level, self.version)
    }
}

/// The three modes of a namespace's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub audit: LevelVersion,
    pub warn: LevelVersion,
}

impl Policy {
    /// True if every mode is privileged (nothing to evaluate).
    pub fn fully_privileged(&self) -> bool {
        self.enforce.level == Level::Privileged
            && self.audit.level == Level::Privileged
            && self.warn.level == Level::Privileged
    }
}

/// One invalid `pod-security.kubernetes.io/*` label (upstream `field.Invalid`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelError {
    pub label: &'static str,
    pub value: String,
    pub detail: String,
}

impl LabelError {
    /// The field path, e.g. `metadata.labels[pod-security.kubernetes.io/enforce]`.
    pub fn field(&self) -> String {
        format!("metadata.labels[{}]", self.label)
    }

    /// The error body without the field, e.g. `Invalid value: "foo": must be one of ...`
    /// (the `message` of a Status cause whose reason is `FieldValueInvalid`).
    pub fn body(&self) -> String {
        format!("Invalid value: {}: {}", go_quote(&self.value), self.detail)
    }
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field(), self.body())
    }
}

/// Upstream `PolicyToEvaluate`: the policy to apply for `labels` on top of `defaults`, and
/// the label errors. Invalid values fail closed for enforce (restricted) and open for audit
/// and warn (privileged); invalid versions become `latest`. Without an explicit warn label,
/// warn is raised to a stricter enforce level.
pub fn policy_to_evaluate(
    labels: &BTreeMap<String, String>,
    defaults: &Policy,
) -> (Policy, Vec<LabelError>) {
    let mut p = *defaults;
    let mut errs = Vec::new();
    if labels.is_empty() {
        return (p, errs);
    }
    let mut push_err = |label: &'static str, value: &str, detail: String| {
        errs.push(LabelError {
            label,
            value: value.to_string(),
            detail,
        })
    };
    let mut has_enforce_level = false;
    if let Some(v) = labels.get(ENFORCE_LEVEL_LABEL) {
        match Level::parse(v) {
            Ok(l) => {
                p.enforce.level = l;
                has_enforce_level = true;
            }
            Err(e) => {
                p.enforce.level = Level::Restricted;
                push_err(ENFORCE_LEVEL_LABEL, v, e);
            }
        }
    }
    if let Some(v) = labels.get(ENFORCE_VERSION_LABEL) {
        p.enforce.version = Version::parse(v).unwrap_or_else(|e| {
            push_err(ENFORCE_VERSION_LABEL, v, e);
            Version::Latest
        });
    }
    if let Some(v) = labels.get(AUDIT_LEVEL_LABEL) {
        p.audit.level = Level::parse(v).unwrap_or_else(|e| {
            push_err(AUDIT_LEVEL_LABEL, v, e);
            Level::Privileged
        });
    }
    if let Some(v) = labels.get(AUDIT_VERSION_LABEL) {
        p.audit.version = Version::parse(v).unwrap_or_else(|e| {
            push_err(AUDIT_VERSION_LABEL, v, e);
            Version::Latest
        });
    }
    let has_warn_level = labels.contains_key(WARN_LEVEL_LABEL);
    if let Some(v) = labels.get(WARN_LEVEL_LABEL) {
        p.warn.level = Level::parse(v).unwrap_or_else(|e| {
            push_err(WARN_LEVEL_LABEL, v, e);
            Level::Privileged
        });
    }
    let has_warn_version = labels.contains_key(WARN_VERSION_LABEL);
    if let Some(v) = labels.get(WARN_VERSION_LABEL) {
        p.warn.version = Version::parse(v).unwrap_or_else(|e| {
            push_err(WARN_VERSION_LABEL, v, e);
            Version::Latest
        });
    }
    if !has_warn_level && has_enforce_level && p.enforce.level > p.warn.level {
        p.warn.level = p.enforce.level;
        if !has_warn_version {
            p.warn.version = p.enforce.version;
        }
    }
    (p, errs)
}

/// Reads the namespace labels with the default policy (privileged:latest for every mode);
/// on error returns the full field error texts, e.g.
/// `metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "foo": must be one of privileged, baseline, restricted`.
pub fn parse_policy(labels: &BTreeMap<String, String>) -> Result<Policy, Vec<String>> {
    let (p, errs) = policy_to_evaluate(labels, &Policy::default());
    if errs.is_empty() {
        Ok(p)
    } else {
        Err(errs.iter().map(ToString::to_string).collect())
    }
}

/// Upstream `utilerrors.NewAggregate(...).Error()`: one message as is, several
/// de-duplicated, comma-joined and bracketed.
fn aggregate_error(msgs: &[String]) -> String {
    let mut seen = HashSet::new();
    let unique: Vec<&str> = msgs
        .iter()
        .map(String::as_str)
        .filter(|m| seen.insert(*m))
        .collect();
    match unique.len() {
        0 => String::new(),
        1 => unique[0].to_string(),
        _ => format!("[{}]", unique.join(", ")),
    }
}

/// The 422 message for a Namespace create/update with bad labels:
/// `Namespace "ns" is invalid: metadata.labels[...]: Invalid value: ...`.
pub fn invalid_namespace_message(name: &str, errors: &[String]) -> String {
    format!(
        "Namespace {} is invalid: {}",
        go_quote(name),
        aggregate_error(errors)
    )
}

// ---------------------------------------------------------------------------------------
// Check results and messages
// ---------------------------------------------------------------------------------------

/// The result of one check (upstream `CheckResult`, plus the check's ID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    pub id: &'static str,
    pub allowed: bool,
    pub forbidden_reason: String,
    pub forbidden_detail: String,
}

/// True if no check forbade the pod.
pub fn allowed(results: &[CheckResult]) -> bool {
    results.iter().all(|r| r.allowed)
}

fn failed(results: &[CheckResult]) -> impl Iterator<Item = &CheckResult> {
    results.iter().filter(|r| !r.allowed)
}

fn reason_of(r: &CheckResult) -> &str {
    if r.forbidden_reason.is_empty() {
        UNKNOWN_FORBIDDEN_REASON
    } else {
        &r.forbidden_reason
    }
}

/// Upstream `AggregateCheckResult.ForbiddenReason`: `host namespaces, privileged`.
pub fn forbidden_reason(results: &[CheckResult]) -> String {
    failed(results)
        .map(reason_of)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Upstream `AggregateCheckResult.ForbiddenDetail`: `reason (detail), reason (detail)`.
pub fn forbidden_detail(results: &[CheckResult]) -> String {
    failed(results)
        .map(|r| {
            if r.forbidden_detail.is_empty() {
                reason_of(r).to_string()
            } else {
                format!("{} ({})", reason_of(r), r.forbidden_detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The enforce denial: `pods "x" is forbidden: violates PodSecurity "restricted:latest": ...`.
pub fn forbidden_message(
    pod_name: &str,
    enforce: &LevelVersion,
    results: &[CheckResult],
) -> String {
    let cause = format!(
        "violates PodSecurity {}: {}",
        go_quote(&enforce.to_string()),
        forbidden_detail(results)
    );
    if pod_name.is_empty() {
        format!("pods is forbidden: {cause}")
    } else {
        format!("pods {} is forbidden: {cause}", go_quote(pod_name))
    }
}

/// The warn warning and the audit annotation value:
/// `would violate PodSecurity "restricted:latest": ...`.
pub fn warning(lv: &LevelVersion, results: &[CheckResult]) -> String {
    format!(
        "would violate PodSecurity {}: {}",
        go_quote(&lv.to_string()),
        forbidden_detail(results)
    )
}

// ---------------------------------------------------------------------------------------
// JSON helpers
// ---------------------------------------------------------------------------------------

/// A field that is present and not null (Go decodes null as unset).
fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

fn get_str<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn get_bool(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(Value::as_bool)
}

fn get_array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn str_items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    get_array(v, key).iter().map(|x| x.as_str().unwrap_or(""))
}

/// Init containers, then containers, then ephemeral containers (upstream `visitContainers`).
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    get_array(spec, "initContainers")
        .iter()
        .chain(get_array(spec, "containers"))
        .chain(get_array(spec, "ephemeralContainers"))
}

fn name(c: &Value) -> &str {
    get_str(c, "name")
}

fn security_context(v: &Value) -> Option<&Value> {
    get(v, "securityContext")
}

fn is_windows(spec: &Value) -> bool {
    get(spec, "os").is_some_and(|os| get_str(os, "name") == "windows")
}

/// Upstream `relaxPolicyForUserNamespacePod`: `hostUsers: false`.
fn user_namespace_pod(spec: &Value) -> bool {
    get_bool(spec, "hostUsers") == Some(false)
}

fn pluralize<'a>(singular: &'a str, plural: &'a str, count: usize) -> &'a str {
    if count == 1 {
        singular
    } else {
        plural
    }
}

/// Upstream `joinQuote`: `"a", "b"` (no escaping).
fn join_quote<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    if items.is_empty() {
        return String::new();
    }
    format!("\"{}\"", items.join("\", \""))
}

/// `"container \"a\""` / `"containers \"a\", \"b\""`.
fn containers_phrase(names: &[&str]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Go's `%q` for a string.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

/// `(forbiddenReason, forbiddenDetail)` of a failed check.
type Forbidden = (String, String);
type CheckFn = fn(u64, &Value, &Value) -> Option<Forbidden>;

struct CheckDef {
    id: &'static str,
    level: Level,
    /// First policy minor version the check exists at.
    since: u64,
    /// Baseline check replaced by this restricted check when evaluating restricted.
    overrides: Option<&'static str>,
    run: CheckFn,
}

/// All checks, baseline then restricted, each group sorted by ID in byte order: the order
/// upstream reports violations in.
const CHECKS: &[CheckDef] = &[
    CheckDef {
        id: "appArmorProfile",
        level: Level::Baseline,
        since: 0,
        overrides: None,
        run: check_app_armor_profile,
    },
    CheckDef {
        id: "capabilities_baseline",
        level: Level::Baseline,
        since: 0,
        overrides: None,
        run: check_capabilities_baseline,
    },
    CheckDef {
        id: "hostNamespaces",
        level: Level::Baseline,
        since: 0,
        overrides: None,
        run: check_host_namespaces,
    },
    CheckDef {
        id: "hostPathVolumes",
        level: Level::Baseline,
        since: 0,
        overrides: None,
        run: check_host_path_volumes,
    },
    CheckDef {
        id: "hostPorts",
        level: Level::Baseline,
        since: 0,
        overrides: None,
        run: check_host_ports,
    },
    CheckDef {
        id: "hostProbesAndHostLifecycle",
        level: Level::Baseline,
        since: 34,
        overrides: None,
        run: check_host_probes_and_lifecycle,
    },
    CheckDef {
        id: "privileged",
        level: Level::Baseline,
        since: 0,
        overrides: None,
        run: check_privileged,
    },
    CheckDef {
        id: "procMount",
        level: Level::Baseline,
        since: 0,
        overrides: None,
        run: check_proc_mount_baseline,
    },
    CheckDef {
        id: "seLinuxOptions",
        level: Level::Baseline,
        since: 0,
        overrides: None,
        run: check_selinux_options,
    },
    CheckDef {
        id: "seccompProfile_baseline",
        level: Level::Baseline,
        since: 0,
        overrides: None,
        run: check_seccomp_baseline,
    },
    CheckDef {
        id: "sysctls",
        level: Level::Baseline,
        since: 0,
        overrides: None,
        run: check_sysctls,
    },
    CheckDef {
        id: "windowsHostProcess",
        level: Level::Baseline,
        since: 0,
        overrides: None,
        run: check_windows_host_process,
    },
    CheckDef {
        id: "allowPrivilegeEscalation",
        level: Level::Restricted,
        since: 8,
        overrides: None,
        run: check_allow_privilege_escalation,
    },
    CheckDef {
        id: "capabilities_restricted",
        level: Level::Restricted,
        since: 22,
        overrides: Some("capabilities_baseline"),
        run: check_capabilities_restricted,
    },
    CheckDef {
        id: "procMount_restricted",
        level: Level::Restricted,
        since: 35,
        overrides: Some("procMount"),
        run: check_proc_mount_restricted,
    },
    CheckDef {
        id: "restrictedVolumes",
        level: Level::Restricted,
        since: 0,
        overrides: Some("hostPathVolumes"),
        run: check_restricted_volumes,
    },
    CheckDef {
        id: "runAsNonRoot",
        level: Level::Restricted,
        since: 0,
        overrides: None,
        run: check_run_as_non_root,
    },
    CheckDef {
        id: "runAsUser",
        level: Level::Restricted,
        since: 23,
        overrides: None,
        run: check_run_as_user,
    },
    CheckDef {
        id: "seccompProfile_restricted",
        level: Level::Restricted,
        since: 19,
        overrides: Some("seccompProfile_baseline"),
        run: check_seccomp_restricted,
    },
];

/// Runs every check of `level` at `version` against a pod's (or pod template's) metadata
/// and spec, in upstream's order; privileged runs none.
pub fn check_pod(
    level: Level,
    version: Version,
    metadata: &Value,
    spec: &Value,
) -> Vec<CheckResult> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let minor = version.effective_minor();
    let active = |c: &&CheckDef| c.since <= minor && c.level <= level;
    let overridden: HashSet<&str> = CHECKS
        .iter()
        .filter(active)
        .filter_map(|c| c.overrides)
        .collect();
    CHECKS
        .iter()
        .filter(active)
        .filter(|c| !overridden.contains(c.id))
        .map(|c| match (c.run)(minor, metadata, spec) {
            None => CheckResult {
                id: c.id,
                allowed: true,
                forbidden_reason: String::new(),
                forbidden_detail: String::new(),
            },
            Some((reason, detail)) => CheckResult {
                id: c.id,
                allowed: false,
                forbidden_reason: reason,
                forbidden_detail: detail,
            },
        })
        .collect()
}

fn forbid(reason: impl Into<String>, detail: impl Into<String>) -> Option<Forbidden> {
    Some((reason.into(), detail.into()))
}

/// `pod and containers "a", "b"`-style setter list.
fn setters(pod_bad: bool, bad_containers: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    if pod_bad {
        out.push("pod".to_string());
    }
    if !bad_containers.is_empty() {
        out.push(containers_phrase(bad_containers));
    }
    out
}

// --- baseline ---------------------------------------------------------------------------

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

fn check_app_armor_profile(_minor: u64, metadata: &Value, spec: &Value) -> Option<Forbidden> {
    let allowed_type = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    let mut bad_values = BTreeSet::new();
    let mut pod_bad = false;
    if let Some(p) = security_context(spec).and_then(|sc| get(sc, "appArmorProfile")) {
        let t = get_str(p, "type");
        if !allowed_type(t) {
            pod_bad = true;
            bad_values.insert(t.to_string());
        }
    }
    let mut bad_containers = Vec::new();
    for c in containers(spec) {
        if let Some(p) = security_context(c).and_then(|sc| get(sc, "appArmorProfile")) {
            let t = get_str(p, "type");
            if !allowed_type(t) {
                bad_containers.push(name(c));
                bad_values.insert(t.to_string());
            }
        }
    }
    let mut bad_setters = setters(pod_bad, &bad_containers);

    let mut annotations: Vec<String> = metadata
        .get("annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(APPARMOR_ANNOTATION_PREFIX))
        .filter_map(|(k, v)| {
            let v = v.as_str().unwrap_or("");
            let ok = v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
            (!ok).then(|| format!("{k}={}", go_quote(v)))
        })
        .collect();
    let mut bad_value_list: Vec<String> = bad_values.into_iter().collect();
    if !annotations.is_empty() {
        annotations.sort();
        bad_setters.push(pluralize("annotation", "annotations", annotations.len()).to_string());
        bad_value_list.extend(annotations);
    }
    if bad_setters.is_empty() {
        return None;
    }
    forbid(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            bad_value_list.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            bad_setters.join(" and "),
            join_quote(&bad_value_list)
        ),
    )
}

const DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn check_capabilities_baseline(_minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    let mut bad_containers = Vec::new();
    let mut non_default = BTreeSet::new();
    for c in containers(spec) {
        let Some(caps) = security_context(c).and_then(|sc| get(sc, "capabilities")) else {
            continue;
        };
        let mut valid = true;
        for cap in str_items(caps, "add") {
            if !DEFAULT_CAPABILITIES.contains(&cap) {
                valid = false;
                non_default.insert(cap);
            }
        }
        if !valid {
            bad_containers.push(name(c));
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    forbid(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad_containers),
            join_quote(&non_default)
        ),
    )
}

fn check_host_namespaces(_minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    let found: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|f| get_bool(spec, f) == Some(true))
        .map(|f| format!("{f}=true"))
        .collect();
    if found.is_empty() {
        return None;
    }
    forbid("host namespaces", found.join(", "))
}

fn check_host_path_volumes(_minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    let vols: Vec<&str> = get_array(spec, "volumes")
        .iter()
        .filter(|v| get(v, "hostPath").is_some())
        .map(name)
        .collect();
    if vols.is_empty() {
        return None;
    }
    forbid(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", vols.len()),
            join_quote(&vols)
        ),
    )
}

fn check_host_ports(_minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    let mut bad_containers = Vec::new();
    let mut ports = BTreeSet::new();
    for c in containers(spec) {
        let mut valid = true;
        for p in get_array(c, "ports") {
            let hp = p.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
            if hp != 0 {
                valid = false;
                ports.insert(hp.to_string());
            }
        }
        if !valid {
            bad_containers.push(name(c));
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    forbid(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad_containers),
            pluralize("uses", "use", bad_containers.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.into_iter().collect::<Vec<_>>().join(", ")
        ),
    )
}

/// Non-empty `httpGet.host` / `tcpSocket.host` of a probe or lifecycle handler.
fn handler_hosts(handler: Option<&Value>) -> Vec<&str> {
    let Some(h) = handler else {
        return Vec::new();
    };
    ["httpGet", "tcpSocket"]
        .into_iter()
        .filter_map(|k| get(h, k))
        .map(|a| get_str(a, "host"))
        .filter(|host| !host.is_empty())
        .collect()
}

fn check_host_probes_and_lifecycle(
    _minor: u64,
    _metadata: &Value,
    spec: &Value,
) -> Option<Forbidden> {
    let mut bad_containers = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for c in containers(spec) {
        let lifecycle = get(c, "lifecycle");
        let handlers = [
            get(c, "livenessProbe"),
            get(c, "readinessProbe"),
            get(c, "startupProbe"),
            lifecycle.and_then(|l| get(l, "postStart")),
            lifecycle.and_then(|l| get(l, "preStop")),
        ];
        for h in handlers {
            let bad = handler_hosts(h);
            if !bad.is_empty() {
                bad_containers.insert(name(c));
                hosts.extend(bad);
            }
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    forbid(
        "probe or lifecycle host",
        format!(
            "{} {} {} {} {}",
            pluralize("container", "containers", bad_containers.len()),
            join_quote(&bad_containers),
            pluralize("uses", "use", bad_containers.len()),
            pluralize(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                hosts.len()
            ),
            join_quote(&hosts)
        ),
    )
}

fn check_privileged(_minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    let bad: Vec<&str> = containers(spec)
        .filter(|c| security_context(c).and_then(|sc| get_bool(sc, "privileged")) == Some(true))
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    forbid(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
    )
}

fn proc_mount(spec: &Value) -> Option<Forbidden> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for c in containers(spec) {
        let Some(pm) = security_context(c).and_then(|sc| get(sc, "procMount")) else {
            continue;
        };
        let pm = pm.as_str().unwrap_or("");
        if pm != "Default" {
            bad.push(name(c));
            types.insert(pm);
        }
    }
    if bad.is_empty() {
        return None;
    }
    forbid(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad),
            join_quote(&types)
        ),
    )
}

fn check_proc_mount_baseline(minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    if minor >= 35 && user_namespace_pod(spec) {
        return None;
    }
    proc_mount(spec)
}

fn check_selinux_options(minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    let allowed_type = |t: &str| {
        matches!(
            t,
            "" | "container_t" | "container_init_t" | "container_kvm_t"
        ) || (minor >= 31 && t == "container_engine_t")
    };
    let mut bad_types = BTreeSet::new();
    let mut set_user = false;
    let mut set_role = false;
    let mut valid = |opts: &Value| {
        let mut ok = true;
        let t = get_str(opts, "type");
        if !allowed_type(t) {
            ok = false;
            bad_types.insert(t.to_string());
        }
        if !get_str(opts, "user").is_empty() {
            ok = false;
            set_user = true;
        }
        if !get_str(opts, "role").is_empty() {
            ok = false;
            set_role = true;
        }
        ok
    };
    let pod_bad = security_context(spec)
        .and_then(|sc| get(sc, "seLinuxOptions"))
        .is_some_and(|o| !valid(o));
    let mut bad_containers = Vec::new();
    for c in containers(spec) {
        if let Some(o) = security_context(c).and_then(|sc| get(sc, "seLinuxOptions")) {
            if !valid(o) {
                bad_containers.push(name(c));
            }
        }
    }
    let bad_setters = setters(pod_bad, &bad_containers);
    if bad_setters.is_empty() {
        return None;
    }
    let mut bad_data = Vec::new();
    if !bad_types.is_empty() {
        bad_data.push(format!(
            "{} {}",
            pluralize("type", "types", bad_types.len()),
            join_quote(&bad_types)
        ));
    }
    if set_user {
        bad_data.push("user may not be set".to_string());
    }
    if set_role {
        bad_data.push("role may not be set".to_string());
    }
    forbid(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            bad_setters.join(" and "),
            bad_data.join("; ")
        ),
    )
}

const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

fn valid_seccomp_type(t: &str) -> bool {
    t == "Localhost" || t == "RuntimeDefault"
}

/// v1.0-v1.18: the alpha seccomp annotations.
fn seccomp_annotations(metadata: &Value, spec: &Value) -> Option<Forbidden> {
    let annotations = metadata.get("annotations").and_then(Value::as_object);
    let lookup = |k: &str| {
        annotations
            .and_then(|a| a.get(k))
            .map(|v| v.as_str().unwrap_or(""))
    };
    let valid =
        |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
    let mut forbidden = BTreeSet::new();
    if let Some(v) = lookup(SECCOMP_POD_ANNOTATION) {
        if !valid(v) {
            forbidden.insert(format!("{SECCOMP_POD_ANNOTATION}={}", go_quote(v)));
        }
    }
    for c in containers(spec) {
        let key = format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{}", name(c));
        if let Some(v) = lookup(&key) {
            if !valid(v) {
                forbidden.insert(format!("{key}={}", go_quote(v)));
            }
        }
    }
    if forbidden.is_empty() {
        return None;
    }
    forbid(
        "seccompProfile",
        format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", forbidden.len()),
            forbidden.into_iter().collect::<Vec<_>>().join(", ")
        ),
    )
}

fn seccomp_type(v: &Value) -> Option<&str> {
    security_context(v)
        .and_then(|sc| get(sc, "seccompProfile"))
        .map(|p| get_str(p, "type"))
}

fn check_seccomp_baseline(minor: u64, metadata: &Value, spec: &Value) -> Option<Forbidden> {
    if minor < 19 {
        return seccomp_annotations(metadata, spec);
    }
    let mut bad_values = BTreeSet::new();
    let mut pod_bad = false;
    if let Some(t) = seccomp_type(spec) {
        if !valid_seccomp_type(t) {
            pod_bad = true;
            bad_values.insert(t);
        }
    }
    let mut bad_containers = Vec::new();
    for c in containers(spec) {
        if let Some(t) = seccomp_type(c) {
            if !valid_seccomp_type(t) {
                bad_containers.push(name(c));
                bad_values.insert(t);
            }
        }
    }
    let bad_setters = setters(pod_bad, &bad_containers);
    if bad_setters.is_empty() {
        return None;
    }
    forbid(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            bad_setters.join(" and "),
            join_quote(&bad_values)
        ),
    )
}

/// Safe sysctls by the policy minor version that allowed them.
const SAFE_SYSCTLS: &[(u64, &str)] = &[
    (0, "kernel.shm_rmid_forced"),
    (0, "net.ipv4.ip_local_port_range"),
    (0, "net.ipv4.tcp_syncookies"),
    (0, "net.ipv4.ping_group_range"),
    (0, "net.ipv4.ip_unprivileged_port_start"),
    (27, "net.ipv4.ip_local_reserved_ports"),
    (29, "net.ipv4.tcp_keepalive_time"),
    (29, "net.ipv4.tcp_fin_timeout"),
    (29, "net.ipv4.tcp_keepalive_intvl"),
    (29, "net.ipv4.tcp_keepalive_probes"),
    (32, "net.ipv4.tcp_rmem"),
    (32, "net.ipv4.tcp_wmem"),
    (37, "net.ipv4.tcp_slow_start_after_idle"),
    (37, "net.ipv4.tcp_notsent_lowat"),
];

fn check_sysctls(minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    let safe = |n: &str| {
        SAFE_SYSCTLS
            .iter()
            .any(|(since, s)| *since <= minor && *s == n)
    };
    let forbidden: Vec<&str> = security_context(spec)
        .map(|sc| get_array(sc, "sysctls"))
        .unwrap_or(&[])
        .iter()
        .map(name)
        .filter(|n| !safe(n))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    forbid("forbidden sysctls", forbidden.join(", "))
}

fn host_process(v: &Value) -> bool {
    security_context(v)
        .and_then(|sc| get(sc, "windowsOptions"))
        .and_then(|w| get_bool(w, "hostProcess"))
        == Some(true)
}

fn check_windows_host_process(_minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    let bad_containers: Vec<&str> = containers(spec)
        .filter(|c| host_process(c))
        .map(name)
        .collect();
    let bad_setters = setters(host_process(spec), &bad_containers);
    if bad_setters.is_empty() {
        return None;
    }
    forbid(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            bad_setters.join(" and ")
        ),
    )
}

// --- restricted -------------------------------------------------------------------------

fn check_allow_privilege_escalation(
    minor: u64,
    _metadata: &Value,
    spec: &Value,
) -> Option<Forbidden> {
    if minor >= 25 && is_windows(spec) {
        return None;
    }
    let bad: Vec<&str> = containers(spec)
        .filter(|c| {
            security_context(c).and_then(|sc| get_bool(sc, "allowPrivilegeEscalation"))
                != Some(false)
        })
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    forbid(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        ),
    )
}

fn check_capabilities_restricted(minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    if minor >= 25 && is_windows(spec) {
        return None;
    }
    let mut missing_drop_all = Vec::new();
    let mut adding_forbidden = Vec::new();
    let mut forbidden_caps = BTreeSet::new();
    for c in containers(spec) {
        let Some(caps) = security_context(c).and_then(|sc| get(sc, "capabilities")) else {
            missing_drop_all.push(name(c));
            continue;
        };
        if !str_items(caps, "drop").any(|d| d == "ALL") {
            missing_drop_all.push(name(c));
        }
        let mut added_forbidden = false;
        for cap in str_items(caps, "add") {
            if cap != "NET_BIND_SERVICE" {
                added_forbidden = true;
                forbidden_caps.insert(cap);
            }
        }
        if added_forbidden {
            adding_forbidden.push(name(c));
        }
    }
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            r#"{} must set securityContext.capabilities.drop=["ALL"]"#,
            containers_phrase(&missing_drop_all)
        ));
    }
    if !adding_forbidden.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding_forbidden),
            join_quote(&forbidden_caps)
        ));
    }
    if details.is_empty() {
        return None;
    }
    forbid("unrestricted capabilities", details.join("; "))
}

fn check_proc_mount_restricted(_minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    proc_mount(spec)
}

/// Inline volume sources the restricted level allows.
const ALLOWED_VOLUME_SOURCES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Restricted inline volume sources, in upstream's matching order.
const RESTRICTED_VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

fn check_restricted_volumes(_minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    let mut bad_volumes = Vec::new();
    let mut bad_types = BTreeSet::new();
    for v in get_array(spec, "volumes") {
        if ALLOWED_VOLUME_SOURCES.iter().any(|s| get(v, s).is_some()) {
            continue;
        }
        bad_volumes.push(name(v));
        let t = RESTRICTED_VOLUME_SOURCES
            .iter()
            .find(|s| get(v, s).is_some())
            .copied()
            .unwrap_or("unknown");
        bad_types.insert(t);
    }
    if bad_volumes.is_empty() {
        return None;
    }
    forbid(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad_volumes.len()),
            join_quote(&bad_volumes),
            pluralize("uses", "use", bad_volumes.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                bad_types.len()
            ),
            join_quote(&bad_types)
        ),
    )
}

fn check_run_as_non_root(minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    if minor >= 35 && user_namespace_pod(spec) {
        return None;
    }
    let pod_value = security_context(spec).and_then(|sc| get_bool(sc, "runAsNonRoot"));
    let pod_non_root = pod_value == Some(true);
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    for c in containers(spec) {
        match security_context(c).and_then(|sc| get_bool(sc, "runAsNonRoot")) {
            Some(false) => explicitly_bad.push(name(c)),
            Some(true) => {}
            None if !pod_non_root => implicitly_bad.push(name(c)),
            None => {}
        }
    }
    let bad_setters = setters(pod_value == Some(false), &explicitly_bad);
    if !bad_setters.is_empty() {
        return forbid(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                bad_setters.join(" and ")
            ),
        );
    }
    if !implicitly_bad.is_empty() {
        return forbid(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&implicitly_bad)
            ),
        );
    }
    None
}

fn check_run_as_user(minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    if minor >= 35 && user_namespace_pod(spec) {
        return None;
    }
    let root = |v: &Value| {
        security_context(v)
            .and_then(|sc| sc.get("runAsUser"))
            .and_then(Value::as_i64)
            == Some(0)
    };
    let bad_containers: Vec<&str> = containers(spec).filter(|c| root(c)).map(name).collect();
    let bad_setters = setters(root(spec), &bad_containers);
    if bad_setters.is_empty() {
        return None;
    }
    forbid(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", bad_setters.join(" and ")),
    )
}

fn check_seccomp_restricted(minor: u64, _metadata: &Value, spec: &Value) -> Option<Forbidden> {
    if minor >= 25 && is_windows(spec) {
        return None;
    }
    let mut bad_values = BTreeSet::new();
    let mut pod_bad = false;
    let mut pod_set = false;
    if let Some(t) = seccomp_type(spec) {
        if valid_seccomp_type(t) {
            pod_set = true;
        } else {
            pod_bad = true;
            bad_values.insert(t);
        }
    }
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    for c in containers(spec) {
        match seccomp_type(c) {
            Some(t) if !valid_seccomp_type(t) => {
                explicitly_bad.push(name(c));
                bad_values.insert(t);
            }
            Some(_) => {}
            None if !pod_set => implicitly_bad.push(name(c)),
            None => {}
        }
    }
    let bad_setters = setters(pod_bad, &explicitly_bad);
    if !bad_setters.is_empty() {
        return forbid(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                bad_setters.join(" and "),
                join_quote(&bad_values)
            ),
        );
    }
    if !implicitly_bad.is_empty() {
        return forbid(
            "seccompProfile",
            format!(
                r#"pod or {} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#,
                containers_phrase(&implicitly_bad)
            ),
        );
    }
    None
}

// ---------------------------------------------------------------------------------------
// Admission decisions
// ---------------------------------------------------------------------------------------

/// Pod subresources upstream never evaluates (`ephemeralcontainers` and `resize` are).
pub fn pod_subresource_ignored(subresource: &str) -> bool {
    matches!(
        subresource,
        "exec" | "attach" | "binding" | "eviction" | "log" | "portforward" | "proxy" | "status"
    )
}

/// True for the resources upstream extracts a pod spec from (pods and the workload kinds).
pub fn has_pod_spec(group: &str, resource: &str) -> bool {
    matches!(
        (group, resource),
        ("", "pods" | "replicationcontrollers" | "podtemplates")
            | (
                "apps",
                "replicasets" | "deployments" | "statefulsets" | "daemonsets"
            )
            | ("batch", "jobs" | "cronjobs")
    )
}

/// The `(metadata, spec)` to evaluate for an object of `group`/`resource`: a pod's own, or
/// the pod template of a workload (CronJob: `spec.jobTemplate.spec.template`). `None` for
/// other resources and for a ReplicationController without a template (upstream allows
/// those without evaluation). Missing parts of a present template read as empty.
pub fn pod_template<'a>(
    group: &str,
    resource: &str,
    obj: &'a Value,
) -> Option<(&'a Value, &'a Value)> {
    let meta_spec = |v: &'a Value| {
        (
            v.get("metadata").unwrap_or(&NULL),
            v.get("spec").unwrap_or(&NULL),
        )
    };
    let spec = obj.get("spec").unwrap_or(&NULL);
    match (group, resource) {
        ("", "pods") => Some(meta_spec(obj)),
        ("", "podtemplates") => Some(meta_spec(obj.get("template").unwrap_or(&NULL))),
        ("", "replicationcontrollers") => get(spec, "template").map(meta_spec),
        ("apps", "replicasets" | "deployments" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => Some(meta_spec(spec.get("template").unwrap_or(&NULL))),
        ("batch", "cronjobs") => {
            let template = spec
                .get("jobTemplate")
                .and_then(|j| j.get("spec"))
                .and_then(|s| s.get("template"))
                .unwrap_or(&NULL);
            Some(meta_spec(template))
        }
        _ => None,
    }
}

/// Upstream `isSignificantPodUpdate` for a pod update: only a change in the number of
/// containers / init containers, a changed container image, or an added or re-imaged
/// ephemeral container re-evaluates the pod; everything else (metadata, labels,
/// annotations, status, tolerations, ...) is not evaluated.
pub fn needs_evaluation(old: &Value, new: &Value) -> bool {
    let old_spec = old.get("spec").unwrap_or(&NULL);
    let new_spec = new.get("spec").unwrap_or(&NULL);
    for key in ["containers", "initContainers"] {
        let (o, n) = (get_array(old_spec, key), get_array(new_spec, key));
        if o.len() != n.len() {
            return true;
        }
        if o.iter()
            .zip(n)
            .any(|(a, b)| get_str(a, "image") != get_str(b, "image"))
        {
            return true;
        }
    }
    let old_eph = get_array(old_spec, "ephemeralContainers");
    get_array(new_spec, "ephemeralContainers").iter().any(|c| {
        match old_eph.iter().find(|o| name(o) == name(c)) {
            None => true,
            Some(o) => get_str(o, "image") != get_str(c, "image"),
        }
    })
}

/// What PodSecurity answers for one request.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Evaluation {
    /// `Some(message)` if enforce denies (403 Forbidden with this message).
    pub denied: Option<String>,
    /// Warnings for the `Warning` response header.
    pub warnings: Vec<String>,
    /// Audit annotations, keys already prefixed with `pod-security.kubernetes.io/`.
    pub audit_annotations: BTreeMap<String, String>,
}

impl Evaluation {
    pub fn allowed(&self) -> bool {
        self.denied.is_none()
    }
}

/// Upstream `EvaluatePod` (no exemptions configured): enforce (only if `enforce`), then
/// audit, then warn if still allowed, reusing results for equal level/versions.
pub fn evaluate_pod(
    policy: &Policy,
    policy_errors: &[String],
    pod_name: &str,
    metadata: &Value,
    spec: &Value,
    enforce: bool,
) -> Evaluation {
    let mut out = Evaluation::default();
    if !policy_errors.is_empty() {
        out.audit_annotations.insert(
            ERROR_ANNOTATION.to_string(),
            format!("Failed to parse policy: {}", aggregate_error(policy_errors)),
        );
    }
    let mut cache: HashMap<LevelVersion, Vec<CheckResult>> = HashMap::new();
    let mut results = |lv: LevelVersion| -> Vec<CheckResult> {
        cache
            .entry(lv)
            .or_insert_with(|| check_pod(lv.level, lv.version, metadata, spec))
            .clone()
    };
    if enforce {
        out.audit_annotations.insert(
            ENFORCE_POLICY_ANNOTATION.to_string(),
            policy.enforce.to_string(),
        );
        let r = results(policy.enforce);
        if !allowed(&r) {
            out.denied = Some(forbidden_message(pod_name, &policy.enforce, &r));
        }
    }
    let r = results(policy.audit);
    if !allowed(&r) {
        out.audit_annotations.insert(
            AUDIT_VIOLATIONS_ANNOTATION.to_string(),
            warning(&policy.audit, &r),
        );
    }
    if out.denied.is_none() {
        let r = results(policy.warn);
        if !allowed(&r) {
            out.warnings.push(warning(&policy.warn, &r));
        }
    }
    out
}

fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect()
}

/// Upstream `ValidatePod` for a pod create/update (the caller skips ignored subresources and
/// updates for which [`needs_evaluation`] is false): `ns_labels` are the pod namespace's labels.
pub fn validate_pod(ns_labels: &BTreeMap<String, String>, pod: &Value) -> Evaluation {
    let (policy, errs) = policy_to_evaluate(ns_labels, &Policy::default());
    if errs.is_empty() && policy.fully_privileged() {
        let mut out = Evaluation::default();
        out.audit_annotations.insert(
            ENFORCE_POLICY_ANNOTATION.to_string(),
            LevelVersion::default().to_string(),
        );
        return out;
    }
    let errs: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let meta = pod.get("metadata").unwrap_or(&NULL);
    let spec = pod.get("spec").unwrap_or(&NULL);
    evaluate_pod(&policy, &errs, get_str(meta, "name"), meta, spec, true)
}

/// Upstream `ValidatePodController` for a workload create/update (no subresource): only
/// warn and audit apply, to the pod template. Always allowed.
pub fn validate_pod_controller(
    ns_labels: &BTreeMap<String, String>,
    group: &str,
    resource: &str,
    obj: &Value,
) -> Evaluation {
    let (policy, errs) = policy_to_evaluate(ns_labels, &Policy::default());
    if errs.is_empty()
        && policy.warn.level == Level::Privileged
        && policy.audit.level == Level::Privileged
    {
        return Evaluation::default();
    }
    let Some((meta, spec)) = pod_template(group, resource, obj) else {
        return Evaluation::default();
    };
    let errs: Vec<String> = errs.iter().map(ToString::to_string).collect();
    evaluate_pod(&policy, &errs, "", meta, spec, false)
}

/// What a Namespace create/update needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamespaceDecision {
    Allowed,
    /// Reject with 422 Invalid; `message` is the full Status message, `errors` its causes.
    Invalid {
        message: String,
        errors: Vec<LabelError>,
    },
    /// Allowed, but the enforce level got stricter: list the namespace's pods and return
    /// [`namespace_warnings`] for this level as warnings.
    CheckPods(LevelVersion),
}

/// Upstream `ValidateNamespace` (no exemptions configured): `old` is `None` on create.
pub fn validate_namespace(new: &Value, old: Option<&Value>) -> NamespaceDecision {
    let name = new
        .get("metadata")
        .map(|m| get_str(m, "name"))
        .unwrap_or("");
    let (new_policy, new_errs) = policy_to_evaluate(&labels_of(new), &Policy::default());
    let invalid = |errors: Vec<LabelError>| NamespaceDecision::Invalid {
        message: invalid_namespace_message(
            name,
            &errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ),
        errors,
    };
    let Some(old) = old else {
        if !new_errs.is_empty() {
            return invalid(new_errs);
        }
        return NamespaceDecision::Allowed;
    };
    let (old_policy, old_errs) = policy_to_evaluate(&labels_of(old), &Policy::default());
    if !new_errs.is_empty() && (old_errs.is_empty() || new_errs != old_errs) {
        return invalid(new_errs);
    }
    if new_policy.enforce == old_policy.enforce
        || new_policy.enforce.level == Level::Privileged
        || (new_policy.enforce.version == old_policy.enforce.version
            && new_policy.enforce.level <= old_policy.enforce.level)
    {
        return NamespaceDecision::Allowed;
    }
    NamespaceDecision::CheckPods(new_policy.enforce)
}

fn controller_uid(pod: &Value) -> Option<&str> {
    pod.get("metadata")
        .map(|m| get_array(m, "ownerReferences"))
        .unwrap_or(&[])
        .iter()
        .find(|r| get_bool(r, "controller") == Some(true))
        .map(|r| get_str(r, "uid"))
}

/// Upstream `EvaluatePodsInNamespace`: warnings for the namespace's existing pods under a new
/// enforce level. Pods are prioritized (pods without a controller and the first pod of each
/// controller first), at most [`NAMESPACE_MAX_PODS_TO_CHECK`] are checked, and pods with the
/// same violation are collapsed into `name (and N other pods): reason`.
pub fn namespace_warnings(namespace: &str, enforce: &LevelVersion, pods: &[Value]) -> Vec<String> {
    let mut prioritized = Vec::with_capacity(pods.len());
    let mut duplicates = Vec::new();
    let mut seen_controllers = HashSet::new();
    for pod in pods {
        match controller_uid(pod) {
            Some(uid) if !seen_controllers.insert(uid) => duplicates.push(pod),
            _ => prioritized.push(pod),
        }
    }
    prioritized.extend(duplicates);
    let total = prioritized.len();
    prioritized.truncate(NAMESPACE_MAX_PODS_TO_CHECK);
    let checked = prioritized.len();

    // (reason, lowest pod name, count), in first-seen order.
    let mut groups: Vec<(String, String, usize)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for pod in prioritized {
        let meta = pod.get("metadata").unwrap_or(&NULL);
        let spec = pod.get("spec").unwrap_or(&NULL);
        let r = check_pod(enforce.level, enforce.version, meta, spec);
        if allowed(&r) {
            continue;
        }
        let reason = forbidden_reason(&r);
        let pod_name = get_str(meta, "name");
        match index.get(&reason).and_then(|i| groups.get_mut(*i)) {
            Some((_, lowest, n)) => {
                if pod_name < lowest.as_str() {
                    *lowest = pod_name.to_string();
                }
                *n += 1;
            }
            None => {
                index.insert(reason.clone(), groups.len());
                groups.push((reason, pod_name.to_string(), 1));
            }
        }
    }

    let mut warnings = Vec::new();
    if checked < total {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {checked} of {total} existing pods"
        ));
    }
    if !groups.is_empty() {
        warnings.push(format!(
            "existing pods in namespace {} violate the new PodSecurity enforce level {}",
            go_quote(namespace),
            go_quote(&enforce.to_string())
        ));
    }
    let mut pod_warnings: Vec<String> = groups
        .into_iter()
        .map(|(reason, pod_name, n)| match n {
            1 => format!("{pod_name}: {reason}"),
            2 => format!("{pod_name} (and 1 other pod): {reason}"),
            n => format!("{pod_name} (and {} other pods): {reason}", n - 1),
        })
        .collect();
    pod_warnings.sort();
    warnings.extend(pod_warnings);
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LATEST: Version = Version::Latest;

    /// A container that passes every restricted check.
    fn good(name: &str) -> Value {
        json!({
            "name": name,
            "image": "busybox",
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": true,
                "seccompProfile": {"type": "RuntimeDefault"}
            }
        })
    }

    /// `good(name)` with `patch` merged into its securityContext.
    fn sc(name: &str, patch: Value) -> Value {
        let mut c = good(name);
        if let (Some(dst), Some(src)) = (
            c["securityContext"].as_object_mut(),
            patch.as_object().cloned(),
        ) {
            dst.extend(src);
        }
        c
    }

    fn spec_with(containers: Vec<Value>) -> Value {
        json!({ "containers": containers })
    }

    fn find<'a>(results: &'a [CheckResult], id: &str) -> Option<&'a CheckResult> {
        results.iter().find(|r| r.id == id)
    }

    /// `Ok(())` if check `id` ran and allowed, `Err((reason, detail))` if it forbade;
    /// panics if the check did not run at all.
    fn run(
        level: Level,
        version: Version,
        meta: &Value,
        spec: &Value,
        id: &str,
    ) -> Result<(), (String, String)> {
        let results = check_pod(level, version, meta, spec);
        let r = find(&results, id).unwrap_or_else(|| panic!("check {id} did not run"));
        if r.allowed {
            Ok(())
        } else {
            Err((r.forbidden_reason.clone(), r.forbidden_detail.clone()))
        }
    }

    fn fail(reason: &str, detail: &str) -> Result<(), (String, String)> {
        Err((reason.to_string(), detail.to_string()))
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn check_table_is_in_upstream_order() {
        for level in [Level::Baseline, Level::Restricted] {
            let ids: Vec<&str> = CHECKS
                .iter()
                .filter(|c| c.level == level)
                .map(|c| c.id)
                .collect();
            let mut sorted = ids.clone();
            sorted.sort();
            assert_eq!(ids, sorted);
        }
        let first_restricted = CHECKS
            .iter()
            .position(|c| c.level == Level::Restricted)
            .unwrap();
        assert!(CHECKS[first_restricted..]
            .iter()
            .all(|c| c.level == Level::Restricted));
    }

    #[test]
    fn fully_restricted_pod_passes_every_level() {
        let spec = json!({
            "initContainers": [good("i")],
            "containers": [good("c")],
            "ephemeralContainers": [good("e")],
            "volumes": [{"name": "v", "emptyDir": {}}]
        });
        for level in [Level::Baseline, Level::Restricted] {
            let r = check_pod(level, LATEST, &json!({}), &spec);
            assert!(allowed(&r), "{level}: {}", forbidden_detail(&r));
        }
        assert!(check_pod(
            Level::Privileged,
            LATEST,
            &json!({}),
            &json!({"hostPID": true})
        )
        .is_empty());
    }

    #[test]
    fn latest_check_sets() {
        let ids = |level| -> Vec<&str> {
            check_pod(level, LATEST, &Value::Null, &Value::Null)
                .iter()
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(
            ids(Level::Baseline),
            vec![
                "appArmorProfile",
                "capabilities_baseline",
                "hostNamespaces",
                "hostPathVolumes",
                "hostPorts",
                "hostProbesAndHostLifecycle",
                "privileged",
                "procMount",
                "seLinuxOptions",
                "seccompProfile_baseline",
                "sysctls",
                "windowsHostProcess"
            ]
        );
        assert_eq!(
            ids(Level::Restricted),
            vec![
                "appArmorProfile",
                "hostNamespaces",
                "hostPorts",
                "hostProbesAndHostLifecycle",
                "privileged",
                "seLinuxOptions",
                "sysctls",
                "windowsHostProcess",
                "allowPrivilegeEscalation",
                "capabilities_restricted",
                "procMount_restricted",
                "restrictedVolumes",
                "runAsNonRoot",
                "runAsUser",
                "seccompProfile_restricted"
            ]
        );
        // v1.21: no capabilities_restricted, so capabilities_baseline is not overridden;
        // no runAsUser before v1.23; seccomp annotations before v1.19.
        let old: Vec<&str> = check_pod(
            Level::Restricted,
            Version::V1(21),
            &Value::Null,
            &Value::Null,
        )
        .iter()
        .map(|r| r.id)
        .collect();
        assert!(old.contains(&"capabilities_baseline"));
        assert!(!old.contains(&"capabilities_restricted"));
        assert!(!old.contains(&"runAsUser"));
        assert!(old.contains(&"procMount"));
        assert!(!old.contains(&"hostProbesAndHostLifecycle"));
        let v118: Vec<&str> = check_pod(
            Level::Restricted,
            Version::V1(18),
            &Value::Null,
            &Value::Null,
        )
        .iter()
        .map(|r| r.id)
        .collect();
        assert!(v118.contains(&"seccompProfile_baseline"));
        assert!(!v118.contains(&"seccompProfile_restricted"));
    }

    #[test]
    fn host_namespaces() {
        let m = json!({});
        assert_eq!(
            run(
                Level::Baseline,
                LATEST,
                &m,
                &json!({"hostNetwork": true, "hostIPC": true}),
                "hostNamespaces"
            ),
            fail("host namespaces", "hostNetwork=true, hostIPC=true")
        );
        assert_eq!(
            run(
                Level::Baseline,
                LATEST,
                &m,
                &json!({"hostPID": true}),
                "hostNamespaces"
            ),
            fail("host namespaces", "hostPID=true")
        );
        assert_eq!(
            run(
                Level::Baseline,
                LATEST,
                &m,
                &json!({"hostNetwork": false, "hostPID": null}),
                "hostNamespaces"
            ),
            Ok(())
        );
    }

    #[test]
    fn privileged() {
        let m = json!({});
        let bad = spec_with(vec![
            sc("a", json!({"privileged": true})),
            sc("b", json!({"privileged": true})),
            sc("c", json!({"privileged": false})),
        ]);
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &bad, "privileged"),
            fail(
                "privileged",
                r#"containers "a", "b" must not set securityContext.privileged=true"#
            )
        );
        let ok = spec_with(vec![sc("c", json!({"privileged": false})), good("d")]);
        assert_eq!(run(Level::Baseline, LATEST, &m, &ok, "privileged"), Ok(()));
    }

    #[test]
    fn capabilities_baseline() {
        let m = json!({});
        let bad = spec_with(vec![
            json!({"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_ADMIN"]}}}),
        ]);
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &bad, "capabilities_baseline"),
            fail(
                "non-default capabilities",
                r#"container "c" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add"#
            )
        );
        let ok = spec_with(vec![
            json!({"name": "c", "securityContext": {"capabilities": {"add": ["CHOWN", "NET_BIND_SERVICE"]}}}),
        ]);
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &ok, "capabilities_baseline"),
            Ok(())
        );
    }

    #[test]
    fn capabilities_restricted() {
        let m = json!({});
        let missing = spec_with(vec![
            json!({"name": "a"}),
            sc("b", json!({"capabilities": {"drop": ["NET_RAW"]}})),
        ]);
        assert_eq!(
            run(
                Level::Restricted,
                LATEST,
                &m,
                &missing,
                "capabilities_restricted"
            ),
            fail(
                "unrestricted capabilities",
                r#"containers "a", "b" must set securityContext.capabilities.drop=["ALL"]"#
            )
        );
        let both = spec_with(vec![sc(
            "c",
            json!({"capabilities": {"add": ["CHOWN", "NET_BIND_SERVICE"]}}),
        )]);
        assert_eq!(
            run(
                Level::Restricted,
                LATEST,
                &m,
                &both,
                "capabilities_restricted"
            ),
            fail(
                "unrestricted capabilities",
                r#"container "c" must set securityContext.capabilities.drop=["ALL"]; container "c" must not include "CHOWN" in securityContext.capabilities.add"#
            )
        );
        let ok = spec_with(vec![sc(
            "c",
            json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}),
        )]);
        assert_eq!(
            run(
                Level::Restricted,
                LATEST,
                &m,
                &ok,
                "capabilities_restricted"
            ),
            Ok(())
        );
        // Windows pods are exempt from v1.25 on.
        let windows = json!({"os": {"name": "windows"}, "containers": [{"name": "c"}]});
        assert_eq!(
            run(
                Level::Restricted,
                LATEST,
                &m,
                &windows,
                "capabilities_restricted"
            ),
            Ok(())
        );
        assert!(run(
            Level::Restricted,
            Version::V1(24),
            &m,
            &windows,
            "capabilities_restricted"
        )
        .is_err());
    }

    #[test]
    fn host_path_and_restricted_volumes() {
        let m = json!({});
        let spec = json!({"containers": [good("c")], "volumes": [
            {"name": "h", "hostPath": {"path": "/"}},
            {"name": "n", "nfs": {"server": "x", "path": "/"}},
            {"name": "e", "emptyDir": {}},
            {"name": "u"}
        ]});
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &spec, "hostPathVolumes"),
            fail("hostPath volumes", r#"volume "h""#)
        );
        assert_eq!(
            run(Level::Restricted, LATEST, &m, &spec, "restrictedVolumes"),
            fail(
                "restricted volume types",
                r#"volumes "h", "n", "u" use restricted volume types "hostPath", "nfs", "unknown""#
            )
        );
        let one = json!({"volumes": [{"name": "g", "gitRepo": {"repository": "x"}}]});
        assert_eq!(
            run(Level::Restricted, LATEST, &m, &one, "restrictedVolumes"),
            fail(
                "restricted volume types",
                r#"volume "g" uses restricted volume type "gitRepo""#
            )
        );
        let ok = json!({"volumes": [
            {"name": "a", "configMap": {"name": "x"}}, {"name": "b", "secret": {}},
            {"name": "c", "projected": {}}, {"name": "d", "persistentVolumeClaim": {"claimName": "x"}},
            {"name": "e", "downwardAPI": {}}, {"name": "f", "csi": {}}, {"name": "g", "ephemeral": {}},
            {"name": "h", "image": {"reference": "x"}}
        ]});
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &ok, "hostPathVolumes"),
            Ok(())
        );
        assert_eq!(
            run(Level::Restricted, LATEST, &m, &ok, "restrictedVolumes"),
            Ok(())
        );
        // Under restricted the baseline hostPath check is replaced.
        assert!(find(
            &check_pod(Level::Restricted, LATEST, &m, &spec),
            "hostPathVolumes"
        )
        .is_none());
    }

    #[test]
    fn host_ports() {
        let m = json!({});
        let one = spec_with(vec![
            json!({"name": "c", "ports": [{"containerPort": 80, "hostPort": 9090}, {"containerPort": 81, "hostPort": 8080}, {"containerPort": 82}]}),
        ]);
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &one, "hostPorts"),
            fail("hostPort", r#"container "c" uses hostPorts 8080, 9090"#)
        );
        let two = spec_with(vec![
            json!({"name": "a", "ports": [{"hostPort": 80}]}),
            json!({"name": "b", "ports": [{"hostPort": 80}]}),
        ]);
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &two, "hostPorts"),
            fail("hostPort", r#"containers "a", "b" use hostPort 80"#)
        );
        let ok = spec_with(vec![
            json!({"name": "c", "ports": [{"containerPort": 80, "hostPort": 0}]}),
        ]);
        assert_eq!(run(Level::Baseline, LATEST, &m, &ok, "hostPorts"), Ok(()));
    }

    #[test]
    fn host_probes_and_lifecycle() {
        let m = json!({});
        let bad = spec_with(vec![json!({
            "name": "c",
            "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}},
            "lifecycle": {"preStop": {"tcpSocket": {"host": "evil", "port": 1}}}
        })]);
        assert_eq!(
            run(
                Level::Baseline,
                LATEST,
                &m,
                &bad,
                "hostProbesAndHostLifecycle"
            ),
            fail(
                "probe or lifecycle host",
                r#"container "c" uses probe or lifecycle hosts "10.0.0.1", "evil""#
            )
        );
        let ok = spec_with(vec![
            json!({"name": "c", "readinessProbe": {"httpGet": {"host": "", "port": 80}}}),
        ]);
        assert_eq!(
            run(
                Level::Baseline,
                LATEST,
                &m,
                &ok,
                "hostProbesAndHostLifecycle"
            ),
            Ok(())
        );
        assert!(find(
            &check_pod(Level::Baseline, Version::V1(33), &m, &bad),
            "hostProbesAndHostLifecycle"
        )
        .is_none());
    }

    #[test]
    fn app_armor() {
        let none = json!({});
        let pod_bad = json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}, "containers": [{"name": "c"}]});
        assert_eq!(
            run(Level::Baseline, LATEST, &none, &pod_bad, "appArmorProfile"),
            fail(
                "forbidden AppArmor profile",
                r#"pod must not set AppArmor profile type to "Unconfined""#
            )
        );
        let ann = json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}});
        assert_eq!(
            run(
                Level::Baseline,
                LATEST,
                &ann,
                &spec_with(vec![
                    json!({"name": "c", "securityContext": {"appArmorProfile": {"type": "Unconfined"}}})
                ]),
                "appArmorProfile"
            ),
            fail(
                "forbidden AppArmor profiles",
                r#"container "c" and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/c="unconfined"""#
            )
        );
        let ok_meta = json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "localhost/prof", "other": "unconfined"}});
        let ok = json!({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}, "containers": [{"name": "c", "securityContext": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}}}]});
        assert_eq!(
            run(Level::Baseline, LATEST, &ok_meta, &ok, "appArmorProfile"),
            Ok(())
        );
    }

    #[test]
    fn selinux() {
        let m = json!({});
        let bad = json!({
            "securityContext": {"seLinuxOptions": {"role": "r"}},
            "containers": [{"name": "c", "securityContext": {"seLinuxOptions": {"type": "spc_t", "user": "u"}}}]
        });
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &bad, "seLinuxOptions"),
            fail(
                "seLinuxOptions",
                r#"pod and container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set; role may not be set"#
            )
        );
        let engine = spec_with(vec![
            json!({"name": "c", "securityContext": {"seLinuxOptions": {"type": "container_engine_t", "level": "s0"}}}),
        ]);
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &engine, "seLinuxOptions"),
            Ok(())
        );
        assert_eq!(
            run(
                Level::Baseline,
                Version::V1(30),
                &m,
                &engine,
                "seLinuxOptions"
            ),
            fail(
                "seLinuxOptions",
                r#"container "c" set forbidden securityContext.seLinuxOptions: type "container_engine_t""#
            )
        );
    }

    #[test]
    fn proc_mount() {
        let m = json!({});
        let bad = spec_with(vec![
            sc("c", json!({"procMount": "Unmasked"})),
            sc("d", json!({"procMount": "Default"})),
        ]);
        let expect = fail(
            "procMount",
            r#"container "c" must not set securityContext.procMount to "Unmasked""#,
        );
        assert_eq!(run(Level::Baseline, LATEST, &m, &bad, "procMount"), expect);
        assert_eq!(
            run(Level::Restricted, LATEST, &m, &bad, "procMount_restricted"),
            expect
        );
        // User-namespaced pods may unmask /proc under baseline from v1.35, never under restricted.
        let mut userns = bad.clone();
        userns["hostUsers"] = json!(false);
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &userns, "procMount"),
            Ok(())
        );
        assert_eq!(
            run(Level::Baseline, Version::V1(34), &m, &userns, "procMount"),
            expect
        );
        assert_eq!(
            run(
                Level::Restricted,
                LATEST,
                &m,
                &userns,
                "procMount_restricted"
            ),
            expect
        );
        let ok = spec_with(vec![sc("c", json!({"procMount": "Default"}))]);
        assert_eq!(run(Level::Baseline, LATEST, &m, &ok, "procMount"), Ok(()));
    }

    #[test]
    fn seccomp_baseline() {
        let m = json!({});
        let bad = json!({
            "securityContext": {"seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}, {"name": "d"}]
        });
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &bad, "seccompProfile_baseline"),
            fail(
                "seccompProfile",
                r#"pod and container "c" must not set securityContext.seccompProfile.type to "Unconfined""#
            )
        );
        let ok = spec_with(vec![
            json!({"name": "c"}),
            json!({"name": "d", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "x"}}}),
        ]);
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &ok, "seccompProfile_baseline"),
            Ok(())
        );
        // Before v1.19 the alpha annotations are checked.
        let ann = json!({"annotations": {
            "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/c": "docker/default"
        }});
        assert_eq!(
            run(
                Level::Baseline,
                Version::V1(18),
                &ann,
                &ok,
                "seccompProfile_baseline"
            ),
            fail(
                "seccompProfile",
                r#"forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined""#
            )
        );
    }

    #[test]
    fn seccomp_restricted() {
        let m = json!({});
        let unset = spec_with(vec![json!({"name": "a"}), json!({"name": "b"})]);
        assert_eq!(
            run(
                Level::Restricted,
                LATEST,
                &m,
                &unset,
                "seccompProfile_restricted"
            ),
            fail(
                "seccompProfile",
                r#"pod or containers "a", "b" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#
            )
        );
        let explicit = json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}, "containers": [{"name": "a", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]});
        assert_eq!(
            run(
                Level::Restricted,
                LATEST,
                &m,
                &explicit,
                "seccompProfile_restricted"
            ),
            fail(
                "seccompProfile",
                r#"container "a" must not set securityContext.seccompProfile.type to "Unconfined""#
            )
        );
        let pod_level = json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}, "containers": [{"name": "a"}]});
        assert_eq!(
            run(
                Level::Restricted,
                LATEST,
                &m,
                &pod_level,
                "seccompProfile_restricted"
            ),
            Ok(())
        );
        let windows = json!({"os": {"name": "windows"}, "containers": [{"name": "a"}]});
        assert_eq!(
            run(
                Level::Restricted,
                LATEST,
                &m,
                &windows,
                "seccompProfile_restricted"
            ),
            Ok(())
        );
    }

    #[test]
    fn sysctls() {
        let m = json!({});
        let spec = json!({"securityContext": {"sysctls": [
            {"name": "kernel.msgmax", "value": "1"},
            {"name": "net.ipv4.tcp_rmem", "value": "1 2 3"},
            {"name": "kernel.shm_rmid_forced", "value": "1"}
        ]}});
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &spec, "sysctls"),
            fail("forbidden sysctls", "kernel.msgmax")
        );
        assert_eq!(
            run(Level::Baseline, Version::V1(31), &m, &spec, "sysctls"),
            fail("forbidden sysctls", "kernel.msgmax, net.ipv4.tcp_rmem")
        );
        let ok = json!({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_notsent_lowat", "value": "1"}]}});
        assert_eq!(run(Level::Baseline, LATEST, &m, &ok, "sysctls"), Ok(()));
        assert!(run(Level::Baseline, Version::V1(36), &m, &ok, "sysctls").is_err());
    }

    #[test]
    fn windows_host_process() {
        let m = json!({});
        let bad = json!({
            "securityContext": {"windowsOptions": {"hostProcess": true}},
            "containers": [{"name": "c", "securityContext": {"windowsOptions": {"hostProcess": true}}}, {"name": "d"}]
        });
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &bad, "windowsHostProcess"),
            fail(
                "hostProcess",
                r#"pod and container "c" must not set securityContext.windowsOptions.hostProcess=true"#
            )
        );
        let ok = json!({"securityContext": {"windowsOptions": {"hostProcess": false}}, "containers": [{"name": "c"}]});
        assert_eq!(
            run(Level::Baseline, LATEST, &m, &ok, "windowsHostProcess"),
            Ok(())
        );
    }

    #[test]
    fn allow_privilege_escalation() {
        let m = json!({});
        let spec = json!({
            "initContainers": [{"name": "i"}],
            "containers": [sc("c", json!({"allowPrivilegeEscalation": true})), good("ok")],
            "ephemeralContainers": [{"name": "e", "securityContext": {}}]
        });
        assert_eq!(
            run(
                Level::Restricted,
                LATEST,
                &m,
                &spec,
                "allowPrivilegeEscalation"
            ),
            fail(
                "allowPrivilegeEscalation != false",
                r#"containers "i", "c", "e" must set securityContext.allowPrivilegeEscalation=false"#
            )
        );
        assert_eq!(
            run(
                Level::Restricted,
                LATEST,
                &m,
                &spec_with(vec![good("c")]),
                "allowPrivilegeEscalation"
            ),
            Ok(())
        );
    }

    #[test]
    fn run_as_non_root() {
        let m = json!({});
        assert_eq!(
            run(
                Level::Restricted,
                LATEST,
                &m,
                &spec_with(vec![json!({"name": "c"})]),
                "runAsNonRoot"
            ),
            fail(
                "runAsNonRoot != true",
                r#"pod or container "c" must set securityContext.runAsNonRoot=true"#
            )
        );
        let explicit = json!({"securityContext": {"runAsNonRoot": false}, "containers": [{"name": "c", "securityContext": {"runAsNonRoot": false}}, {"name": "d"}]});
        assert_eq!(
            run(Level::Restricted, LATEST, &m, &explicit, "runAsNonRoot"),
            fail(
                "runAsNonRoot != true",
                r#"pod and container "c" must not set securityContext.runAsNonRoot=false"#
            )
        );
        let pod_level =
            json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]});
        assert_eq!(
            run(Level::Restricted, LATEST, &m, &pod_level, "runAsNonRoot"),
            Ok(())
        );
        let userns = json!({"hostUsers": false, "containers": [{"name": "c"}]});
        assert_eq!(
            run(Level::Restricted, LATEST, &m, &userns, "runAsNonRoot"),
            Ok(())
        );
        assert!(run(
            Level::Restricted,
            Version::V1(34),
            &m,
            &userns,
            "runAsNonRoot"
        )
        .is_err());
    }

    #[test]
    fn run_as_user() {
        let m = json!({});
        let bad = json!({"securityContext": {"runAsUser": 0}, "containers": [sc("c", json!({"runAsUser": 0})), sc("d", json!({"runAsUser": 1000}))]});
        assert_eq!(
            run(Level::Restricted, LATEST, &m, &bad, "runAsUser"),
            fail(
                "runAsUser=0",
                r#"pod and container "c" must not set runAsUser=0"#
            )
        );
        let ok = json!({"securityContext": {"runAsUser": 1000}, "containers": [good("c")]});
        assert_eq!(run(Level::Restricted, LATEST, &m, &ok, "runAsUser"), Ok(()));
        let mut userns = bad.clone();
        userns["hostUsers"] = json!(false);
        assert_eq!(
            run(Level::Restricted, LATEST, &m, &userns, "runAsUser"),
            Ok(())
        );
    }

    fn privileged_pod() -> Value {
        json!({
            "metadata": {"name": "priv", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]}
        })
    }

    #[test]
    fn privileged_pod_full_messages() {
        let pod = privileged_pod();
        let restricted = LevelVersion::new(Level::Restricted, LATEST);
        let r = check_pod(
            restricted.level,
            restricted.version,
            &pod["metadata"],
            &pod["spec"],
        );
        assert_eq!(
            forbidden_message("priv", &restricted, &r),
            concat!(
                r#"pods "priv" is forbidden: violates PodSecurity "restricted:latest": "#,
                r#"privileged (container "c" must not set securityContext.privileged=true), "#,
                r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), "#,
                r#"unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), "#,
                r#"runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), "#,
                r#"seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
            )
        );
        assert_eq!(
            forbidden_reason(&r),
            "privileged, allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"
        );
        let baseline = LevelVersion::new(Level::Baseline, LATEST);
        let r = check_pod(
            baseline.level,
            baseline.version,
            &pod["metadata"],
            &pod["spec"],
        );
        assert_eq!(
            forbidden_message("priv", &baseline, &r),
            r#"pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#
        );
        assert_eq!(
            warning(&LevelVersion::new(Level::Baseline, Version::V1(30)), &r),
            r#"would violate PodSecurity "baseline:v1.30": privileged (container "c" must not set securityContext.privileged=true)"#
        );
    }

    #[test]
    fn version_parsing() {
        assert_eq!(Version::parse("latest"), Ok(Version::Latest));
        assert_eq!(Version::parse("v1.0"), Ok(Version::V1(0)));
        assert_eq!(Version::parse("v1.25"), Ok(Version::V1(25)));
        assert_eq!(Version::parse("v1.999"), Ok(Version::V1(999)));
        for bad in [
            "",
            "Latest",
            "v1.",
            "v1.05",
            "v2.0",
            "1.25",
            "v1.x",
            "v1.2.3",
            "v1.-1",
            "v1.99999999999999999999",
        ] {
            assert_eq!(
                Version::parse(bad),
                Err(r#"must be "latest" or "v1.x""#.to_string()),
                "{bad}"
            );
        }
        assert_eq!(Version::V1(25).to_string(), "v1.25");
        assert_eq!(Version::Latest.to_string(), "latest");
        assert!(Version::V1(24).older(Version::V1(25)));
        assert!(Version::V1(99).older(Version::Latest));
        assert!(!Version::Latest.older(Version::V1(99)));
        assert_eq!(Level::parse("baseline"), Ok(Level::Baseline));
        assert_eq!(
            Level::parse("Baseline"),
            Err("must be one of privileged, baseline, restricted".to_string())
        );
        // Versions newer than the newest policy evaluate like latest.
        let spec =
            json!({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_notsent_lowat"}]}});
        assert!(allowed(&check_pod(
            Level::Baseline,
            Version::V1(99),
            &Value::Null,
            &spec
        )));
    }

    #[test]
    fn policy_labels() {
        assert_eq!(parse_policy(&BTreeMap::new()), Ok(Policy::default()));
        let p = parse_policy(&labels(&[
            (ENFORCE_LEVEL_LABEL, "restricted"),
            (ENFORCE_VERSION_LABEL, "v1.30"),
            (AUDIT_LEVEL_LABEL, "baseline"),
        ]))
        .unwrap();
        assert_eq!(
            p.enforce,
            LevelVersion::new(Level::Restricted, Version::V1(30))
        );
        assert_eq!(p.audit, LevelVersion::new(Level::Baseline, Version::Latest));
        // Without a warn label, warn follows a stricter enforce level and its version.
        assert_eq!(
            p.warn,
            LevelVersion::new(Level::Restricted, Version::V1(30))
        );
        let p = parse_policy(&labels(&[
            (ENFORCE_LEVEL_LABEL, "baseline"),
            (WARN_VERSION_LABEL, "v1.29"),
        ]))
        .unwrap();
        assert_eq!(p.warn, LevelVersion::new(Level::Baseline, Version::V1(29)));
        let p = parse_policy(&labels(&[
            (ENFORCE_LEVEL_LABEL, "baseline"),
            (WARN_LEVEL_LABEL, "privileged"),
        ]))
        .unwrap();
        assert_eq!(p.warn.level, Level::Privileged);
    }

    #[test]
    fn policy_label_errors() {
        let l = labels(&[
            (ENFORCE_LEVEL_LABEL, "foo"),
            (ENFORCE_VERSION_LABEL, "v2.0"),
            (WARN_LEVEL_LABEL, "bar"),
            ("other", "x"),
        ]);
        let errs = parse_policy(&l).unwrap_err();
        assert_eq!(
            errs,
            vec![
                r#"metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "foo": must be one of privileged, baseline, restricted"#,
                r#"metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: "v2.0": must be "latest" or "v1.x""#,
                r#"metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "bar": must be one of privileged, baseline, restricted"#,
            ]
        );
        // Enforce fails closed, warn fails open.
        let (p, _) = policy_to_evaluate(&l, &Policy::default());
        assert_eq!(
            p.enforce,
            LevelVersion::new(Level::Restricted, Version::Latest)
        );
        assert_eq!(p.warn.level, Level::Privileged);
        assert_eq!(
            invalid_namespace_message("ns", &errs[..1]),
            r#"Namespace "ns" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "foo": must be one of privileged, baseline, restricted"#
        );
        assert_eq!(
            invalid_namespace_message("ns", &errs[..2]),
            format!(r#"Namespace "ns" is invalid: [{}, {}]"#, errs[0], errs[1])
        );
    }

    #[test]
    fn validate_namespace_create_and_update() {
        let ns = |l: Value| json!({"metadata": {"name": "ns", "labels": l}});
        match validate_namespace(&ns(json!({ENFORCE_LEVEL_LABEL: "bogus"})), None) {
            NamespaceDecision::Invalid { message, errors } => {
                assert_eq!(
                    message,
                    r#"Namespace "ns" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "bogus": must be one of privileged, baseline, restricted"#
                );
                assert_eq!(
                    errors[0].field(),
                    "metadata.labels[pod-security.kubernetes.io/enforce]"
                );
                assert_eq!(
                    errors[0].body(),
                    r#"Invalid value: "bogus": must be one of privileged, baseline, restricted"#
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            validate_namespace(&ns(json!({ENFORCE_LEVEL_LABEL: "restricted"})), None),
            NamespaceDecision::Allowed
        );
        let old = ns(json!({ENFORCE_LEVEL_LABEL: "baseline"}));
        assert_eq!(
            validate_namespace(&ns(json!({ENFORCE_LEVEL_LABEL: "restricted"})), Some(&old)),
            NamespaceDecision::CheckPods(LevelVersion::new(Level::Restricted, Version::Latest))
        );
        assert_eq!(
            validate_namespace(&ns(json!({ENFORCE_LEVEL_LABEL: "privileged"})), Some(&old)),
            NamespaceDecision::Allowed
        );
        assert_eq!(
            validate_namespace(
                &ns(json!({ENFORCE_LEVEL_LABEL: "baseline", "x": "y"})),
                Some(&old)
            ),
            NamespaceDecision::Allowed
        );
        // A version change re-checks pods even at the same level.
        assert_eq!(
            validate_namespace(
                &ns(json!({ENFORCE_LEVEL_LABEL: "baseline", ENFORCE_VERSION_LABEL: "v1.20"})),
                Some(&old)
            ),
            NamespaceDecision::CheckPods(LevelVersion::new(Level::Baseline, Version::V1(20)))
        );
        // Unchanged bad labels do not block unrelated updates.
        let bad_old = ns(json!({AUDIT_LEVEL_LABEL: "bogus"}));
        let bad_new = ns(json!({AUDIT_LEVEL_LABEL: "bogus", "team": "a"}));
        assert_eq!(
            validate_namespace(&bad_new, Some(&bad_old)),
            NamespaceDecision::Allowed
        );
        assert!(matches!(
            validate_namespace(&bad_new, Some(&old)),
            NamespaceDecision::Invalid { .. }
        ));
    }

    #[test]
    fn namespace_warnings_collapse_and_sort() {
        let pod = |name: &str, owner: Option<&str>, spec: Value| {
            let refs = owner.map(
                |uid| json!([{"uid": uid, "controller": true, "kind": "ReplicaSet", "name": "rs"}]),
            );
            json!({"metadata": {"name": name, "ownerReferences": refs}, "spec": spec})
        };
        let host = json!({"hostNetwork": true, "containers": [{"name": "c"}]});
        let privileged = spec_with(vec![
            json!({"name": "c", "securityContext": {"privileged": true}}),
        ]);
        let pods = vec![
            pod("zeta", Some("u1"), host.clone()),
            pod("alpha", Some("u1"), host.clone()),
            pod("mid", None, host.clone()),
            pod("solo", None, privileged),
            pod("fine", None, spec_with(vec![json!({"name": "c"})])),
        ];
        let lv = LevelVersion::new(Level::Baseline, Version::Latest);
        assert_eq!(
            namespace_warnings("ns", &lv, &pods),
            vec![
                r#"existing pods in namespace "ns" violate the new PodSecurity enforce level "baseline:latest""#.to_string(),
                "alpha (and 2 other pods): host namespaces".to_string(),
                "solo: privileged".to_string(),
            ]
        );
        assert!(namespace_warnings("ns", &lv, &pods[4..]).is_empty());
        let two = namespace_warnings("ns", &lv, &pods[..2]);
        assert_eq!(two[1], "alpha (and 1 other pod): host namespaces");
    }

    #[test]
    fn namespace_warnings_limit() {
        let pods: Vec<Value> = (0..NAMESPACE_MAX_PODS_TO_CHECK + 2)
            .map(|i| json!({"metadata": {"name": format!("p{i}")}, "spec": {"hostPID": true}}))
            .collect();
        let w = namespace_warnings(
            "ns",
            &LevelVersion::new(Level::Baseline, Version::Latest),
            &pods,
        );
        assert_eq!(w[0], "new PodSecurity enforce level only checked against the first 3000 of 3002 existing pods");
        assert_eq!(w[2], "p0 (and 2999 other pods): host namespaces");
    }

    #[test]
    fn updates_needing_evaluation() {
        let pod = |image: &str, eph: Value| json!({"metadata": {"labels": {}}, "spec": {"containers": [{"name": "c", "image": image}], "ephemeralContainers": eph}});
        let old = pod("a", json!([]));
        let mut relabeled = old.clone();
        relabeled["metadata"]["labels"]["x"] = json!("y");
        relabeled["spec"]["activeDeadlineSeconds"] = json!(5);
        relabeled["spec"]["tolerations"] = json!([{"key": "k"}]);
        assert!(!needs_evaluation(&old, &relabeled));
        assert!(needs_evaluation(&old, &pod("b", json!([]))));
        let with_eph = pod("a", json!([{"name": "dbg", "image": "busybox"}]));
        assert!(needs_evaluation(&old, &with_eph));
        assert!(!needs_evaluation(&with_eph, &with_eph.clone()));
        let mut more = old.clone();
        more["spec"]["initContainers"] = json!([{"name": "i", "image": "x"}]);
        assert!(needs_evaluation(&old, &more));
    }

    #[test]
    fn pod_templates() {
        let tmpl = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"hostPID": true}});
        let dep = json!({"spec": {"template": tmpl}});
        let (m, s) = pod_template("apps", "deployments", &dep).unwrap();
        assert_eq!(m["labels"]["a"], "b");
        assert_eq!(s["hostPID"], true);
        let cj = json!({"spec": {"jobTemplate": {"spec": {"template": tmpl}}}});
        assert_eq!(
            pod_template("batch", "cronjobs", &cj).unwrap().1["hostPID"],
            true
        );
        let pt = json!({"template": tmpl});
        assert_eq!(
            pod_template("", "podtemplates", &pt).unwrap().1["hostPID"],
            true
        );
        assert!(pod_template("", "replicationcontrollers", &json!({"spec": {}})).is_none());
        assert!(pod_template("", "configmaps", &dep).is_none());
        assert!(pod_template("extensions", "deployments", &dep).is_none());
        assert!(has_pod_spec("batch", "jobs") && !has_pod_spec("", "secrets"));
        assert!(
            pod_subresource_ignored("status") && !pod_subresource_ignored("ephemeralcontainers")
        );
    }

    #[test]
    fn validate_pod_modes() {
        let pod = privileged_pod();
        // Unlabeled namespace: fully privileged.
        let e = validate_pod(&BTreeMap::new(), &pod);
        assert!(e.allowed() && e.warnings.is_empty());
        assert_eq!(
            e.audit_annotations
                .get(ENFORCE_POLICY_ANNOTATION)
                .map(String::as_str),
            Some("privileged:latest")
        );

        let e = validate_pod(&labels(&[(ENFORCE_LEVEL_LABEL, "baseline")]), &pod);
        assert_eq!(
            e.denied.as_deref(),
            Some(
                r#"pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#
            )
        );
        assert!(e.warnings.is_empty(), "no warnings once denied");

        let e = validate_pod(
            &labels(&[
                (WARN_LEVEL_LABEL, "baseline"),
                (AUDIT_LEVEL_LABEL, "baseline"),
                (AUDIT_VERSION_LABEL, "v1.30"),
            ]),
            &pod,
        );
        assert!(e.allowed());
        assert_eq!(
            e.warnings,
            vec![
                r#"would violate PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#
            ]
        );
        assert_eq!(
            e.audit_annotations
                .get(AUDIT_VIOLATIONS_ANNOTATION)
                .map(String::as_str),
            Some(
                r#"would violate PodSecurity "baseline:v1.30": privileged (container "c" must not set securityContext.privileged=true)"#
            )
        );
        assert_eq!(
            e.audit_annotations
                .get(ENFORCE_POLICY_ANNOTATION)
                .map(String::as_str),
            Some("privileged:latest")
        );

        let e = validate_pod(&labels(&[(AUDIT_LEVEL_LABEL, "nope")]), &pod);
        assert!(e.allowed());
        assert_eq!(
            e.audit_annotations
                .get(ERROR_ANNOTATION)
                .map(String::as_str),
            Some(
                r#"Failed to parse policy: metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "nope": must be one of privileged, baseline, restricted"#
            )
        );
    }

    #[test]
    fn validate_workloads_only_warn() {
        let dep = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "securityContext": {"privileged": true}}]}}}});
        let e = validate_pod_controller(
            &labels(&[(ENFORCE_LEVEL_LABEL, "baseline")]),
            "apps",
            "deployments",
            &dep,
        );
        assert!(e.allowed());
        assert_eq!(
            e.warnings,
            vec![
                r#"would violate PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#
            ]
        );
        assert!(!e.audit_annotations.contains_key(ENFORCE_POLICY_ANNOTATION));
        let e = validate_pod_controller(
            &labels(&[
                (ENFORCE_LEVEL_LABEL, "baseline"),
                (WARN_LEVEL_LABEL, "privileged"),
            ]),
            "apps",
            "deployments",
            &dep,
        );
        assert_eq!(e, Evaluation::default());
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\x01""#);
        assert_eq!(join_quote(["a", "b"]), r#""a", "b""#);
        assert_eq!(join_quote(Vec::<&str>::new()), "");
    }
}
