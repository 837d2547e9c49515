//! ResourceQuota admission and usage evaluation as pure logic over JSON objects: the evaluators of
//! upstream pkg/quota/v1/evaluator/core (pods, services, persistentvolumeclaims, the legacy
//! object-count aliases and generic `count/<resource>.<group>`), quota scopes and scope selectors,
//! the admission check of plugin/pkg/admission/resourcequota (`exceeded quota: ...`,
//! `failed quota: ...: must specify ...`), and the usage recalculation the quota controller runs.
//! Resources are named by plural, group-qualified outside the core group ("pods",
//! "deployments.apps"). The caller lists the quotas and objects and persists the results.

use super::quantity::{self, Format, Quantity, ResourceList};
use jiff::Timestamp;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Why a request is refused by quota (upstream's messages; the caller wraps them as 403
/// `<kind> "<name>" is forbidden: <message>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The object does not satisfy the quota's constraints (containers without cpu/memory).
    #[error("failed quota: {quota}: {message}")]
    Constraints { quota: String, message: String },
    /// The quota's status does not yet hold usage for a resource it constrains.
    #[error("status unknown for quota: {quota}, resources: {resources}")]
    StatusUnknown { quota: String, resources: String },
    /// The object asks for a negative amount.
    #[error("quota usage is negative for resource(s): {0}")]
    NegativeUsage(String),
    /// Admitting the object would push usage above the hard limit.
    #[error("exceeded quota: {quota}, requested: {requested}, used: {used}, limited: {limited}")]
    Exceeded {
        quota: String,
        requested: String,
        used: String,
        limited: String,
    },
}

const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";
const REQUESTS_PREFIX: &str = "requests.";
const HUGEPAGES_PREFIX: &str = "hugepages-";
const BETA_STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];
const SERVICE_RESOURCES: &[&str] = &[
    "count/services",
    "services",
    "services.loadbalancers",
    "services.nodeports",
];
const PVC_RESOURCES: &[&str] = &["persistentvolumeclaims", "requests.storage"];
/// Resources a pod's every container must set when a quota constrains them (upstream's
/// backward-compatibility "mistake").
const VALIDATION_SET: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];
/// Core resources whose object count is also tracked under a legacy alias.
const LEGACY_ALIASES: &[&str] = &[
    "configmaps",
    "resourcequotas",
    "replicationcontrollers",
    "secrets",
];
/// The evaluators the quota controller always has (object-count ones are added per quota).
const CORE_RESOURCES: &[&str] = &[
    "pods",
    "services",
    "persistentvolumeclaims",
    "configmaps",
    "resourcequotas",
    "replicationcontrollers",
    "secrets",
];

/// One requirement of a quota's scopes or scope selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ScopeSelector {
    scope_name: String,
    operator: String,
    values: Vec<String>,
}

impl ScopeSelector {
    /// Label-selector semantics over the single label `scope_name=value`.
    fn matches_label(&self, value: Option<&str>) -> bool {
        let listed = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator.as_str() {
            "In" => value.is_some_and(listed),
            "NotIn" => value.is_none_or(|v| !listed(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    }
}

/// What a quota constrains, by kind of object (upstream quota.Evaluator).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Evaluator {
    Pods,
    Services,
    Pvcs,
    /// Counts objects under these resource names.
    Count(Vec<String>),
}

impl Evaluator {
    fn for_resource(resource: &str) -> Evaluator {
        match resource {
            "pods" => Evaluator::Pods,
            "services" => Evaluator::Services,
            "persistentvolumeclaims" => Evaluator::Pvcs,
            r if LEGACY_ALIASES.contains(&r) => {
                Evaluator::Count(vec![format!("count/{r}"), r.to_string()])
            }
            r => Evaluator::Count(vec![format!("count/{r}")]),
        }
    }

    /// Whether a create (or an update) can change this evaluator's usage.
    fn handles(&self, update: bool) -> bool {
        match self {
            Evaluator::Pods | Evaluator::Count(_) => !update,
            Evaluator::Services | Evaluator::Pvcs => true,
        }
    }

    /// The names among `input` this evaluator tracks.
    fn matching_resources<'a>(
        &self,
        input: impl IntoIterator<Item = &'a String>,
    ) -> BTreeSet<String> {
        input
            .into_iter()
            .filter(|name| self.tracks(name))
            .cloned()
            .collect()
    }

    fn tracks(&self, name: &str) -> bool {
        match self {
            Evaluator::Pods => {
                POD_RESOURCES.contains(&name)
                    || name.starts_with(HUGEPAGES_PREFIX)
                    || name.starts_with("requests.hugepages-")
                    || (!is_native_resource(name) && name.starts_with(REQUESTS_PREFIX))
            }
            Evaluator::Services => SERVICE_RESOURCES.contains(&name),
            Evaluator::Pvcs => {
                name == "count/persistentvolumeclaims"
                    || PVC_RESOURCES.contains(&name)
                    || PVC_RESOURCES
                        .iter()
                        .any(|r| name.ends_with(&format!("{STORAGE_CLASS_SUFFIX}{r}")))
            }
            Evaluator::Count(names) => names.iter().any(|n| n == name),
        }
    }

    fn scope_matches(&self, sel: &ScopeSelector, obj: &Value) -> bool {
        match self {
            Evaluator::Pods => pod_matches_scope(sel, obj),
            Evaluator::Pvcs => pvc_matches_scope(sel, obj),
            Evaluator::Services | Evaluator::Count(_) => false,
        }
    }

    /// Whether the quota applies: it tracks one of our resources and every scope matches.
    fn matches(&self, quota: &Value, obj: &Value) -> bool {
        let hard = status_hard(quota);
        !self.matching_resources(hard.keys()).is_empty()
            && quota_selectors(quota)
                .iter()
                .all(|s| self.scope_matches(s, obj))
    }

    fn usage(&self, obj: &Value, now: Timestamp) -> ResourceList {
        match self {
            Evaluator::Pods => pod_usage(obj, now),
            Evaluator::Services => service_usage(obj),
            Evaluator::Pvcs => pvc_usage(obj),
            Evaluator::Count(names) => names
                .iter()
                .map(|n| (n.clone(), Quantity::new(1, Format::DecimalSI)))
                .collect(),
        }
    }

    /// Pods only: every container must set the cpu/memory resources the quota constrains.
    fn constraints(&self, required: &BTreeSet<String>, obj: &Value) -> Result<(), String> {
        if *self != Evaluator::Pods {
            return Ok(());
        }
        let required: BTreeSet<&str> = required
            .iter()
            .map(String::as_str)
            .filter(|r| VALIDATION_SET.contains(r))
            .collect();
        let mut missing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for c in all_containers(obj) {
            let usage = compute_usage_helper(
                &quantity::resource_list(c.pointer("/resources/requests")),
                &quantity::resource_list(c.pointer("/resources/limits")),
            );
            for r in &required {
                if !usage.contains_key(*r) {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                    missing
                        .entry(r.to_string())
                        .or_default()
                        .insert(name.to_string());
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = missing
            .iter()
            .map(|(r, names)| {
                format!(
                    "{r} for: {}",
                    names.iter().cloned().collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        Err(format!("must specify {}", parts.join("; ")))
    }
}

/// A name without a domain, or in the kubernetes.io domain.
fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_extended_resource(name: &str) -> bool {
    !is_native_resource(name) && !name.starts_with(REQUESTS_PREFIX)
}

fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn status_hard(quota: &Value) -> ResourceList {
    quantity::resource_list(quota.pointer("/status/hard"))
}

fn status_used(quota: &Value) -> ResourceList {
    quantity::resource_list(quota.pointer("/status/used"))
}

/// `spec.scopes` (as Exists requirements) followed by `spec.scopeSelector.matchExpressions`.
fn quota_selectors(quota: &Value) -> Vec<ScopeSelector> {
    let mut out: Vec<ScopeSelector> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| ScopeSelector {
            scope_name: s.to_string(),
            operator: "Exists".to_string(),
            values: Vec::new(),
        })
        .collect();
    for e in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        out.push(ScopeSelector {
            scope_name: text("scopeName"),
            operator: text("operator"),
            values: e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        });
    }
    out
}

/// Whether every scope and scope-selector requirement of `quota` matches `obj`. The kind of
/// object comes from `obj.kind`: pods know Terminating, NotTerminating, BestEffort,
/// NotBestEffort, PriorityClass and CrossNamespacePodAffinity; PersistentVolumeClaims know
/// VolumeAttributesClass; nothing else matches any scope. A quota without scopes matches all.
pub fn matches_scopes(quota: &Value, obj: &Value) -> bool {
    let ev = match obj.get("kind").and_then(Value::as_str) {
        Some("Pod") => Evaluator::Pods,
        Some("PersistentVolumeClaim") => Evaluator::Pvcs,
        _ => Evaluator::Count(Vec::new()),
    };
    quota_selectors(quota)
        .iter()
        .all(|s| ev.scope_matches(s, obj))
}

/// The quota usage of one object of `resource` (upstream Evaluator.Usage), judged now.
pub fn usage(resource: &str, obj: &Value) -> ResourceList {
    usage_at(resource, obj, Timestamp::now())
}

/// As `usage`, with the clock given (decides whether a deleted pod's grace period is over).
pub fn usage_at(resource: &str, obj: &Value, now: Timestamp) -> ResourceList {
    Evaluator::for_resource(resource).usage(obj, now)
}

/// Admission check of a create (`old` = None) or update of `obj` against the namespace's quotas.
/// Returns, for each quota whose usage changes, its name and new `status.used`; an empty list
/// when nothing is charged.
pub fn check(
    quotas: &[Value],
    resource: &str,
    obj: &Value,
    old: Option<&Value>,
) -> Result<Vec<(String, ResourceList)>, QuotaError> {
    check_at(quotas, resource, obj, old, Timestamp::now())
}

/// As `check`, with the clock given.
pub fn check_at(
    quotas: &[Value],
    resource: &str,
    obj: &Value,
    old: Option<&Value>,
    now: Timestamp,
) -> Result<Vec<(String, ResourceList)>, QuotaError> {
    let ev = Evaluator::for_resource(resource);
    if !ev.handles(old.is_some()) {
        return Ok(Vec::new());
    }
    let mut interesting = Vec::new();
    for quota in quotas {
        if !ev.matches(quota, obj) {
            continue;
        }
        let hard = status_hard(quota);
        let restricted = ev.matching_resources(hard.keys());
        ev.constraints(&restricted, obj)
            .map_err(|message| QuotaError::Constraints {
                quota: name_of(quota),
                message,
            })?;
        let used = status_used(quota);
        if restricted.iter().any(|r| !used.contains_key(r)) {
            return Err(QuotaError::StatusUnknown {
                quota: name_of(quota),
                resources: restricted.iter().cloned().collect::<Vec<_>>().join(","),
            });
        }
        interesting.push((quota, hard, used));
    }

    let mut delta = ev.usage(obj, now);
    let negative: Vec<&str> = delta
        .iter()
        .filter(|(_, q)| q.sign() < 0)
        .map(|(k, _)| k.as_str())
        .collect();
    if !negative.is_empty() {
        return Err(QuotaError::NegativeUsage(negative.join(",")));
    }
    if let Some(old) = old {
        // charge only the difference unless this is a create-on-update
        let has_version = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty());
        if has_version {
            delta = subtract_non_negative(&delta, &ev.usage(old, now));
        }
    }
    if delta.values().all(Quantity::is_zero) {
        return Ok(Vec::new());
    }

    let mut out = Vec::new();
    for (quota, hard, used) in interesting {
        let requested = quantity::mask(&delta, hard.keys());
        let new_usage = quantity::add_lists(&used, &requested);
        let exceeded: Vec<String> = hard
            .iter()
            .filter(|(k, h)| requested.contains_key(*k) && new_usage.get(*k).is_some_and(|u| u > h))
            .map(|(k, _)| k.clone())
            .collect();
        if !exceeded.is_empty() {
            return Err(QuotaError::Exceeded {
                quota: name_of(quota),
                requested: pretty(&quantity::mask(&requested, &exceeded)),
                used: pretty(&quantity::mask(&used, &exceeded)),
                limited: pretty(&quantity::mask(&hard, &exceeded)),
            });
        }
        if new_usage != used {
            out.push((name_of(quota), new_usage));
        }
    }
    Ok(out)
}

/// `a=1,b=2` in name order (upstream prettyPrint).
fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// a - b per name, never below zero (upstream SubtractWithNonNegativeResult).
fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    for (k, v) in a {
        let d = b.get(k).map_or(*v, |o| v.sub(o));
        out.insert(k.clone(), if d.sign() > 0 { d } else { Quantity::zero() });
    }
    for k in b.keys() {
        out.entry(k.clone()).or_insert_with(Quantity::zero);
    }
    out
}

/// The evaluators the usage recalculation runs for a quota: the core ones plus an object
/// counter for every `count/<resource>` in `hard` that no core evaluator covers.
fn registry_for(hard: &ResourceList) -> Vec<(String, Evaluator)> {
    let mut out: Vec<(String, Evaluator)> = CORE_RESOURCES
        .iter()
        .map(|r| (r.to_string(), Evaluator::for_resource(r)))
        .collect();
    for name in hard.keys() {
        if let Some(r) = name.strip_prefix("count/") {
            if !out.iter().any(|(k, _)| k == r) {
                out.push((r.to_string(), Evaluator::for_resource(r)));
            }
        }
    }
    out
}

/// The resources (plural, group-qualified outside core) whose objects `recompute` needs for
/// this quota's `spec.hard`.
pub fn resources_for_quota(quota: &Value) -> Vec<String> {
    let hard = quantity::resource_list(quota.pointer("/spec/hard"));
    registry_for(&hard)
        .into_iter()
        .filter(|(_, ev)| !ev.matching_resources(hard.keys()).is_empty())
        .map(|(r, _)| r)
        .collect()
}

/// The quota controller's usage recalculation: `status.used` for everything in `spec.hard`,
/// from the namespace's objects keyed by resource (as `resources_for_quota` names them). Usage of
/// resources whose objects are not given, or that nothing evaluates, keeps its old
/// `status.used` value, if any.
pub fn recompute(
    quota: &Value,
    objects_by_resource: &BTreeMap<String, Vec<Value>>,
) -> ResourceList {
    recompute_at(quota, objects_by_resource, Timestamp::now())
}

/// As `recompute`, with the clock given.
pub fn recompute_at(
    quota: &Value,
    objects_by_resource: &BTreeMap<String, Vec<Value>>,
    now: Timestamp,
) -> ResourceList {
    let hard = quantity::resource_list(quota.pointer("/spec/hard"));
    let registry = registry_for(&hard);
    let selectors = quota_selectors(quota);
    let mut new_usage = ResourceList::new();
    let mut computed = BTreeSet::new();
    for (resource, ev) in &registry {
        let tracked = ev.matching_resources(hard.keys());
        if tracked.is_empty() {
            continue;
        }
        let Some(items) = objects_by_resource.get(resource) else {
            continue;
        };
        let mut stats: ResourceList = tracked
            .iter()
            .map(|n| (n.clone(), Quantity::zero()))
            .collect();
        for item in items {
            if selectors.iter().all(|s| ev.scope_matches(s, item)) {
                stats = quantity::add_lists(&stats, &ev.usage(item, now));
            }
        }
        new_usage = quantity::add_lists(&new_usage, &stats);
        computed.extend(tracked);
    }
    let mut used = status_used(quota);
    used.extend(quantity::mask(&new_usage, &computed));
    quantity::mask(&used, hard.keys())
}

/// A full quota `status` ({hard, used}) as the controller writes it.
pub fn quota_status(quota: &Value, objects_by_resource: &BTreeMap<String, Vec<Value>>) -> Value {
    let hard = quantity::resource_list(quota.pointer("/spec/hard"));
    serde_json::json!({
        "hard": quantity::resource_list_to_json(&hard),
        "used": quantity::resource_list_to_json(&recompute(quota, objects_by_resource)),
    })
}

// ---- pods ----

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod.get("spec")
        .and_then(|s| s.get(field))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn all_containers(pod: &Value) -> impl Iterator<Item = &Value> {
    containers(pod, "containers").chain(containers(pod, "initContainers"))
}

/// Sums a per-container resource list over the pod the way upstream's resource helpers do:
/// app containers and restartable (sidecar) init containers add up, and the result is raised to
/// what the largest init container needs while it runs next to the sidecars started before it.
pub fn aggregate_container_resources(
    pod: &Value,
    get: &dyn Fn(&Value) -> ResourceList,
) -> ResourceList {
    let mut result = ResourceList::new();
    for c in containers(pod, "containers") {
        quantity::add_into(&mut result, &get(c));
    }
    let mut sidecars = ResourceList::new();
    let mut init = ResourceList::new();
    for c in containers(pod, "initContainers") {
        let own = get(c);
        let running = if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            quantity::add_into(&mut result, &own);
            quantity::add_into(&mut sidecars, &own);
            sidecars.clone()
        } else {
            quantity::add_lists(&own, &sidecars)
        };
        quantity::max_into(&mut init, &running);
    }
    quantity::max_into(&mut result, &init);
    result
}

fn container_status<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|f| pod.get("status")?.get(*f)?.as_array())
        .flatten()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(name))
}

/// A resource map present on the object (upstream's non-nil ResourceList).
fn present_list(v: Option<&Value>) -> Option<ResourceList> {
    v.filter(|v| v.is_object())
        .map(|v| quantity::resource_list(Some(v)))
}

fn resize_infeasible(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("PodResizePending"))
        .is_some_and(|c| c.get("reason").and_then(Value::as_str) == Some("Infeasible"))
}

fn max_of(lists: &[ResourceList]) -> ResourceList {
    let mut out = ResourceList::new();
    for l in lists {
        quantity::max_into(&mut out, l);
    }
    out
}

fn is_pod_level_resource(name: &str) -> bool {
    name == "cpu" || name == "memory" || name.starts_with(HUGEPAGES_PREFIX)
}

fn pod_level(pod: &Value, field: &str) -> ResourceList {
    quantity::resource_list(pod.pointer(&format!("/spec/resources/{field}")))
        .into_iter()
        .filter(|(k, _)| is_pod_level_resource(k))
        .collect()
}

/// Effective pod requests (upstream resourcehelper.PodRequests with status resources).
fn pod_requests(pod: &Value) -> ResourceList {
    let infeasible = resize_infeasible(pod);
    let spec = |c: &Value| quantity::resource_list(c.pointer("/resources/requests"));
    let status =
        |c: &Value| container_status(pod, c.get("name").and_then(Value::as_str).unwrap_or(""));
    let spec_reqs = aggregate_container_resources(pod, &spec);
    let allocated = aggregate_container_resources(pod, &|c| {
        status(c)
            .and_then(|cs| present_list(cs.get("allocatedResources")))
            .unwrap_or_else(|| {
                if infeasible {
                    ResourceList::new()
                } else {
                    spec(c)
                }
            })
    });
    let actuated = aggregate_container_resources(pod, &|c| {
        status(c)
            .and_then(|cs| {
                present_list(cs.pointer("/resources/requests"))
                    .or_else(|| present_list(cs.get("allocatedResources")))
            })
            .unwrap_or_else(|| {
                if infeasible {
                    ResourceList::new()
                } else {
                    spec(c)
                }
            })
    });
    let mut reqs = if infeasible {
        max_of(&[actuated, allocated])
    } else {
        max_of(&[spec_reqs, actuated, allocated])
    };
    reqs.extend(pod_level(pod, "requests"));
    quantity::add_into(
        &mut reqs,
        &quantity::resource_list(pod.pointer("/spec/overhead")),
    );
    reqs
}

/// Effective pod limits (upstream resourcehelper.PodLimits with status resources).
fn pod_limits(pod: &Value) -> ResourceList {
    let infeasible = resize_infeasible(pod);
    let spec = |c: &Value| quantity::resource_list(c.pointer("/resources/limits"));
    let spec_limits = aggregate_container_resources(pod, &spec);
    let actuated = aggregate_container_resources(pod, &|c| {
        container_status(pod, c.get("name").and_then(Value::as_str).unwrap_or(""))
            .and_then(|cs| present_list(cs.pointer("/resources/limits")))
            .unwrap_or_else(|| {
                if infeasible {
                    ResourceList::new()
                } else {
                    spec(c)
                }
            })
    });
    let mut limits = if infeasible {
        actuated
    } else {
        max_of(&[spec_limits, actuated])
    };
    if !pod_level(pod, "requests").is_empty() || !pod_level(pod, "limits").is_empty() {
        limits.extend(pod_level(pod, "limits"));
    }
    for (k, v) in quantity::resource_list(pod.pointer("/spec/overhead")) {
        if let Some(cur) = limits.get_mut(&k) {
            if !cur.is_zero() {
                *cur = cur.add(&v);
            }
        }
    }
    limits
}

/// The compute usage of a set of requests and limits (upstream podComputeUsageHelper).
fn compute_usage_helper(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".to_string(), Quantity::new(1, Format::DecimalSI));
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(r) {
            out.insert(r.to_string(), *q);
            out.insert(format!("{REQUESTS_PREFIX}{r}"), *q);
        }
        if let Some(q) = limits.get(r) {
            out.insert(format!("limits.{r}"), *q);
        }
    }
    for (name, q) in requests {
        if name.starts_with(HUGEPAGES_PREFIX) {
            out.insert(name.clone(), *q);
            out.insert(format!("{REQUESTS_PREFIX}{name}"), *q);
        }
        if is_extended_resource(name) {
            out.insert(format!("{REQUESTS_PREFIX}{name}"), *q);
        }
    }
    out
}

/// Whether a pod still counts against compute quota: not terminal, and not deleted with its
/// grace period over (upstream QuotaV1Pod).
fn pod_counts(pod: &Value, now: Timestamp) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    if matches!(phase, Some("Failed") | Some("Succeeded")) {
        return false;
    }
    let deleted = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok());
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    if let (Some(deleted), Some(grace)) = (deleted, grace) {
        let deadline = deleted
            .checked_add(jiff::SignedDuration::from_secs(grace))
            .unwrap_or(deleted);
        if now > deadline {
            return false;
        }
    }
    true
}

fn pod_usage(pod: &Value, now: Timestamp) -> ResourceList {
    // the object count is charged for every stored pod, terminal or not
    let mut out = ResourceList::new();
    out.insert(
        "count/pods".to_string(),
        Quantity::new(1, Format::DecimalSI),
    );
    if !pod_counts(pod, now) {
        return out;
    }
    quantity::add_lists(
        &out,
        &compute_usage_helper(&pod_requests(pod), &pod_limits(pod)),
    )
}

/// BestEffort QoS: no positive cpu or memory request or limit anywhere (upstream GetPodQOS).
fn is_best_effort(pod: &Value) -> bool {
    if let Some(class) = pod
        .pointer("/status/qosClass")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
    {
        return class == "BestEffort";
    }
    let positive_compute = |list: ResourceList| {
        list.iter()
            .any(|(k, q)| (k == "cpu" || k == "memory") && q.sign() > 0)
    };
    let pod_requests = pod_level(pod, "requests");
    let pod_limits = pod_level(pod, "limits");
    if !pod_requests.is_empty() || !pod_limits.is_empty() {
        return !positive_compute(pod_requests) && !positive_compute(pod_limits);
    }
    !all_containers(pod).any(|c| {
        positive_compute(quantity::resource_list(c.pointer("/resources/requests")))
            || positive_compute(quantity::resource_list(c.pointer("/resources/limits")))
    })
}

fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0)
}

fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    let cross = |t: &Value| {
        t.get("namespaces")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
            || t.get("namespaceSelector").is_some_and(|s| !s.is_null())
    };
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let Some(a) = pod.pointer(&format!("/spec/affinity/{kind}")) else {
            return false;
        };
        let terms = |field: &str| {
            a.get(field)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        terms("requiredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .any(cross)
            || terms("preferredDuringSchedulingIgnoredDuringExecution")
                .iter()
                .any(|w| w.get("podAffinityTerm").is_some_and(cross))
    })
}

fn pod_matches_scope(sel: &ScopeSelector, pod: &Value) -> bool {
    match sel.scope_name.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "PriorityClass" => {
            let class = pod
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            sel.matches_label(class)
        }
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        _ => false,
    }
}

// ---- services ----

fn service_usage(svc: &Value) -> ResourceList {
    let one = Quantity::new(1, Format::DecimalSI);
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let count = |n: usize| Quantity::new(i64::try_from(n).unwrap_or(i64::MAX), Format::DecimalSI);
    let mut out = ResourceList::new();
    out.insert("count/services".to_string(), one);
    out.insert("services".to_string(), one);
    out.insert("services.loadbalancers".to_string(), Quantity::zero());
    out.insert("services.nodeports".to_string(), Quantity::zero());
    match svc.pointer("/spec/type").and_then(Value::as_str) {
        Some("NodePort") => {
            out.insert("services.nodeports".to_string(), count(ports.len()));
        }
        Some("LoadBalancer") => {
            let allocate = svc
                .pointer("/spec/allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool);
            let node_ports = if allocate == Some(false) {
                ports
                    .iter()
                    .filter(|p| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0)
                    .count()
            } else {
                ports.len()
            };
            out.insert("services.nodeports".to_string(), count(node_ports));
            out.insert("services.loadbalancers".to_string(), one);
        }
        _ => {}
    }
    out
}

// ---- persistent volume claims ----

fn pvc_storage_class(pvc: &Value) -> String {
    if let Some(class) = pvc
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(BETA_STORAGE_CLASS_ANNOTATION))
        .and_then(Value::as_str)
    {
        return class.to_string();
    }
    pvc.pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The larger of the requested and allocated storage, rounded up to whole bytes.
fn pvc_storage(pvc: &Value) -> Option<Quantity> {
    let rounded = |mut q: Quantity| {
        q.round_up_to_units();
        q
    };
    let requested = quantity::resource_list(pvc.pointer("/spec/resources/requests"))
        .get("storage")
        .copied()
        .map(rounded)?;
    let allocated = quantity::resource_list(pvc.pointer("/status/allocatedResources"))
        .get("storage")
        .copied();
    match allocated {
        Some(a) if a > requested => Some(rounded(a)),
        _ => Some(requested),
    }
}

fn pvc_usage(pvc: &Value) -> ResourceList {
    let one = Quantity::new(1, Format::DecimalSI);
    let mut out = ResourceList::new();
    out.insert("persistentvolumeclaims".to_string(), one);
    out.insert("count/persistentvolumeclaims".to_string(), one);
    let class = pvc_storage_class(pvc);
    if !class.is_empty() {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            one,
        );
    }
    if let Some(storage) = pvc_storage(pvc) {
        out.insert("requests.storage".to_string(), storage);
        if !class.is_empty() {
            out.insert(
                format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
                storage,
            );
        }
    }
    out
}

fn pvc_matches_scope(sel: &ScopeSelector, pvc: &Value) -> bool {
    if sel.scope_name != "VolumeAttributesClass" {
        return false;
    }
    let names: BTreeSet<&str> = [
        "/spec/volumeAttributesClassName",
        "/status/currentVolumeAttributesClassName",
        "/status/modifyVolumeStatus/targetVolumeAttributesClassName",
    ]
    .iter()
    .filter_map(|p| pvc.pointer(p).and_then(Value::as_str))
    .filter(|n| !n.is_empty())
    .collect();
    if sel.operator == "Exists" {
        return !names.is_empty();
    }
    if names.is_empty() {
        return sel.matches_label(None);
    }
    names.iter().any(|n| sel.matches_label(Some(n)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).expect("quantity")
    }

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        pairs.iter().map(|(k, v)| (k.to_string(), q(v))).collect()
    }

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().expect("timestamp")
    }

    fn quota(name: &str, hard: Value, used: Value) -> Value {
        json!({"kind": "ResourceQuota", "metadata": {"name": name, "namespace": "ns"},
               "spec": {"hard": hard.clone()}, "status": {"hard": hard, "used": used}})
    }

    fn container(name: &str, requests: Value, limits: Value) -> Value {
        json!({"name": name, "image": "busybox", "resources": {"requests": requests, "limits": limits}})
    }

    fn pod(containers: Vec<Value>, init: Vec<Value>) -> Value {
        json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
               "spec": {"containers": containers, "initContainers": init}})
    }

    #[test]
    fn pod_usage_sums_containers_and_counts_pod() {
        let p = pod(
            vec![
                container(
                    "a",
                    json!({"cpu": "100m", "memory": "64Mi"}),
                    json!({"cpu": "200m", "memory": "128Mi"}),
                ),
                container(
                    "b",
                    json!({"cpu": "250m", "memory": "1Gi", "nvidia.com/gpu": "1"}),
                    json!({"cpu": "1"}),
                ),
            ],
            vec![],
        );
        let u = usage_at("pods", &p, now());
        assert_eq!(
            u,
            list(&[
                ("count/pods", "1"),
                ("pods", "1"),
                ("cpu", "350m"),
                ("requests.cpu", "350m"),
                ("limits.cpu", "1200m"),
                ("memory", "1088Mi"),
                ("requests.memory", "1088Mi"),
                ("limits.memory", "128Mi"),
                ("requests.nvidia.com/gpu", "1"),
            ])
        );
        assert_eq!(u["requests.cpu"].to_string(), "350m");
        assert_eq!(u["memory"].to_string(), "1088Mi");
        assert_eq!(u["limits.cpu"].to_string(), "1200m");
    }

    #[test]
    fn init_containers_use_the_max_rule_and_overhead_is_added() {
        let mut p = pod(
            vec![
                container("a", json!({"cpu": "100m"}), json!({"cpu": "200m"})),
                container("b", json!({"cpu": "100m"}), json!({"cpu": "200m"})),
            ],
            vec![
                container("i1", json!({"cpu": "500m"}), json!({"cpu": "300m"})),
                container("i2", json!({"cpu": "50m"}), json!({"cpu": "1"})),
            ],
        );
        let u = usage_at("pods", &p, now());
        // max(sum(containers), max(initContainers))
        assert_eq!(u["requests.cpu"], q("500m"));
        assert_eq!(u["limits.cpu"], q("1"));
        p["spec"]["overhead"] = json!({"cpu": "10m", "memory": "5Mi"});
        let u = usage_at("pods", &p, now());
        assert_eq!(u["requests.cpu"], q("510m"));
        assert_eq!(u["limits.cpu"], q("1010m"));
        assert_eq!(u["requests.memory"], q("5Mi"));
        // overhead is only added to limits that are set
        assert!(!u.contains_key("limits.memory"));
    }

    #[test]
    fn sidecar_init_containers_add_to_the_pod() {
        let mut sidecar = container("s", json!({"cpu": "100m"}), json!({}));
        sidecar["restartPolicy"] = json!("Always");
        let p = pod(
            vec![container("a", json!({"cpu": "200m"}), json!({}))],
            vec![sidecar, container("i", json!({"cpu": "250m"}), json!({}))],
        );
        // containers 200m + sidecar 100m = 300m; init i runs next to the sidecar: 350m
        assert_eq!(usage_at("pods", &p, now())["requests.cpu"], q("350m"));
    }

    #[test]
    fn terminal_and_expired_deleted_pods_count_only_as_objects() {
        let mut p = pod(vec![container("a", json!({"cpu": "1"}), json!({}))], vec![]);
        p["status"] = json!({"phase": "Succeeded"});
        assert_eq!(usage_at("pods", &p, now()), list(&[("count/pods", "1")]));

        let mut d = pod(vec![container("a", json!({"cpu": "1"}), json!({}))], vec![]);
        d["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        d["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        assert_eq!(usage_at("pods", &d, now()), list(&[("count/pods", "1")]));
        d["metadata"]["deletionGracePeriodSeconds"] = json!(120);
        assert_eq!(usage_at("pods", &d, now())["pods"], q("1"));
    }

    #[test]
    fn exceeded_message_matches_upstream() {
        let quotas = [quota("q1", json!({"pods": "2"}), json!({"pods": "2"}))];
        let p = pod(vec![container("a", json!({}), json!({}))], vec![]);
        let err = check_at(&quotas, "pods", &p, None, now()).expect_err("full");
        assert_eq!(
            err.to_string(),
            "exceeded quota: q1, requested: pods=1, used: pods=2, limited: pods=2"
        );
    }

    #[test]
    fn exceeded_lists_every_exceeded_resource_sorted() {
        let quotas = [quota(
            "compute",
            json!({"pods": "1", "requests.cpu": "1", "requests.memory": "1Gi", "limits.cpu": "2", "limits.memory": "2Gi"}),
            json!({"pods": "1", "requests.cpu": "800m", "requests.memory": "0", "limits.cpu": "0", "limits.memory": "0"}),
        )];
        let p = pod(
            vec![container(
                "a",
                json!({"cpu": "500m", "memory": "512Mi"}),
                json!({"cpu": "1", "memory": "1Gi"}),
            )],
            vec![],
        );
        let err = check_at(&quotas, "pods", &p, None, now()).expect_err("full");
        assert_eq!(
            err.to_string(),
            "exceeded quota: compute, requested: pods=1,requests.cpu=500m, used: pods=1,requests.cpu=800m, limited: pods=1,requests.cpu=1"
        );
    }

    #[test]
    fn admitted_create_returns_new_usage() {
        let quotas = [
            quota(
                "q1",
                json!({"pods": "5", "requests.memory": "2Gi", "count/pods": "10"}),
                json!({"pods": "1", "requests.memory": "0", "count/pods": "1"}),
            ),
            quota("other", json!({"services": "3"}), json!({"services": "0"})),
        ];
        let p = pod(
            vec![container(
                "a",
                json!({"memory": "1Gi"}),
                json!({"memory": "1Gi"}),
            )],
            vec![],
        );
        let out = check_at(&quotas, "pods", &p, None, now()).expect("fits");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "q1");
        assert_eq!(
            out[0].1,
            list(&[
                ("pods", "2"),
                ("requests.memory", "1Gi"),
                ("count/pods", "2")
            ])
        );
        assert_eq!(out[0].1["requests.memory"].to_string(), "1Gi");
    }

    #[test]
    fn must_specify_message_lists_resources_and_containers() {
        let quotas = [quota(
            "q1",
            json!({"requests.cpu": "1", "limits.cpu": "2", "pods": "10"}),
            json!({"requests.cpu": "0", "limits.cpu": "0", "pods": "0"}),
        )];
        let p = pod(
            vec![
                container("c1", json!({}), json!({})),
                container("c2", json!({"cpu": "100m"}), json!({})),
            ],
            vec![],
        );
        let err = check_at(&quotas, "pods", &p, None, now()).expect_err("constraints");
        assert_eq!(
            err.to_string(),
            "failed quota: q1: must specify limits.cpu for: c1,c2; requests.cpu for: c1"
        );
    }

    #[test]
    fn status_unknown_when_used_is_missing() {
        let quotas = [quota(
            "q1",
            json!({"pods": "2", "services": "1"}),
            json!({}),
        )];
        let p = pod(vec![container("a", json!({}), json!({}))], vec![]);
        assert_eq!(
            check_at(&quotas, "pods", &p, None, now())
                .expect_err("unknown")
                .to_string(),
            "status unknown for quota: q1, resources: pods"
        );
        // a quota without status.hard does not apply yet
        let fresh = [json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "0"}}})];
        assert_eq!(check_at(&fresh, "pods", &p, None, now()), Ok(vec![]));
    }

    #[test]
    fn negative_usage_is_refused() {
        let quotas = [quota(
            "q1",
            json!({"requests.cpu": "1"}),
            json!({"requests.cpu": "0"}),
        )];
        let p = pod(
            vec![container("a", json!({"cpu": "-1"}), json!({}))],
            vec![],
        );
        assert_eq!(
            check_at(&quotas, "pods", &p, None, now())
                .expect_err("negative")
                .to_string(),
            "quota usage is negative for resource(s): cpu,requests.cpu"
        );
    }

    #[test]
    fn pod_updates_are_not_charged_but_service_updates_charge_the_delta() {
        let quotas = [quota(
            "q1",
            json!({"pods": "1", "services.nodeports": "1", "services": "5"}),
            json!({"pods": "1", "services.nodeports": "0", "services": "1"}),
        )];
        let p = pod(vec![container("a", json!({}), json!({}))], vec![]);
        assert_eq!(check_at(&quotas, "pods", &p, Some(&p), now()), Ok(vec![]));

        let old = json!({"metadata": {"name": "s", "resourceVersion": "7"},
                         "spec": {"type": "ClusterIP", "ports": [{"port": 80}, {"port": 81}]}});
        let mut new = old.clone();
        new["spec"]["type"] = json!("NodePort");
        assert_eq!(
            check_at(&quotas, "services", &new, Some(&old), now())
                .expect_err("two node ports")
                .to_string(),
            "exceeded quota: q1, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1"
        );
        // an unchanged service changes nothing
        assert_eq!(
            check_at(&quotas, "services", &old, Some(&old), now()),
            Ok(vec![])
        );
    }

    #[test]
    fn scopes_select_pods() {
        let best_effort = pod(vec![container("a", json!({}), json!({}))], vec![]);
        let mut burstable = pod(
            vec![container("a", json!({"cpu": "100m"}), json!({}))],
            vec![],
        );
        burstable["spec"]["priorityClassName"] = json!("high");
        burstable["spec"]["activeDeadlineSeconds"] = json!(60);

        let scoped = |scopes: Value| json!({"spec": {"scopes": scopes}});
        assert!(matches_scopes(&scoped(json!(["BestEffort"])), &best_effort));
        assert!(!matches_scopes(&scoped(json!(["BestEffort"])), &burstable));
        assert!(matches_scopes(
            &scoped(json!(["NotBestEffort", "Terminating"])),
            &burstable
        ));
        assert!(matches_scopes(
            &scoped(json!(["NotTerminating"])),
            &best_effort
        ));
        assert!(!matches_scopes(
            &scoped(json!(["Terminating"])),
            &best_effort
        ));

        let selector = |op: &str, values: Value| {
            json!({"spec": {"scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": op, "values": values}]}}})
        };
        assert!(matches_scopes(
            &selector("In", json!(["high", "mid"])),
            &burstable
        ));
        assert!(!matches_scopes(
            &selector("In", json!(["high"])),
            &best_effort
        ));
        assert!(matches_scopes(
            &selector("NotIn", json!(["low"])),
            &burstable
        ));
        assert!(matches_scopes(
            &selector("NotIn", json!(["low"])),
            &best_effort
        ));
        assert!(!matches_scopes(
            &selector("NotIn", json!(["high"])),
            &burstable
        ));
        assert!(matches_scopes(&selector("Exists", json!([])), &burstable));
        assert!(!matches_scopes(
            &selector("Exists", json!([])),
            &best_effort
        ));
        assert!(matches_scopes(
            &selector("DoesNotExist", json!([])),
            &best_effort
        ));

        let mut affinity = best_effort.clone();
        affinity["spec"]["affinity"] = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "podAffinityTerm": {"topologyKey": "k", "namespaceSelector": {}}}]}});
        assert!(matches_scopes(
            &scoped(json!(["CrossNamespacePodAffinity"])),
            &affinity
        ));
        assert!(!matches_scopes(
            &scoped(json!(["CrossNamespacePodAffinity"])),
            &best_effort
        ));

        // a status qosClass wins over the computed class
        let mut reported = burstable.clone();
        reported["status"] = json!({"qosClass": "BestEffort"});
        assert!(matches_scopes(&scoped(json!(["BestEffort"])), &reported));
        // only pods (and claims) have scopes
        let cm = json!({"kind": "ConfigMap", "metadata": {"name": "c"}});
        assert!(!matches_scopes(&scoped(json!(["BestEffort"])), &cm));
        assert!(matches_scopes(&json!({"spec": {}}), &cm));
    }

    #[test]
    fn scoped_quota_only_charges_matching_pods() {
        let mut q1 = quota("be", json!({"pods": "1"}), json!({"pods": "1"}));
        q1["spec"]["scopes"] = json!(["BestEffort"]);
        let burstable = pod(
            vec![container("a", json!({"memory": "1Mi"}), json!({}))],
            vec![],
        );
        assert_eq!(
            check_at(&[q1.clone()], "pods", &burstable, None, now()),
            Ok(vec![])
        );
        let best_effort = pod(vec![container("a", json!({}), json!({}))], vec![]);
        assert!(check_at(&[q1], "pods", &best_effort, None, now()).is_err());
    }

    #[test]
    fn service_usage_counts_node_ports_and_load_balancers() {
        let lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            usage("services", &lb),
            list(&[
                ("count/services", "1"),
                ("services", "1"),
                ("services.loadbalancers", "1"),
                ("services.nodeports", "2")
            ])
        );
        let lb_no_alloc = json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 443}]}});
        assert_eq!(
            usage("services", &lb_no_alloc)["services.nodeports"],
            q("1")
        );
        let cip = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        let u = usage("services", &cip);
        assert!(u["services.nodeports"].is_zero());
        assert_eq!(u["services.nodeports"].to_string(), "0");
    }

    #[test]
    fn pvc_usage_is_charged_per_storage_class() {
        let pvc = json!({"metadata": {"name": "c"}, "spec": {"storageClassName": "gold",
            "resources": {"requests": {"storage": "1500m"}}}});
        assert_eq!(
            usage("persistentvolumeclaims", &pvc),
            list(&[
                ("persistentvolumeclaims", "1"),
                ("count/persistentvolumeclaims", "1"),
                (
                    "gold.storageclass.storage.k8s.io/persistentvolumeclaims",
                    "1"
                ),
                ("requests.storage", "2"),
                ("gold.storageclass.storage.k8s.io/requests.storage", "2"),
            ])
        );
        let quotas = [quota(
            "storage",
            json!({"gold.storageclass.storage.k8s.io/requests.storage": "1Gi"}),
            json!({"gold.storageclass.storage.k8s.io/requests.storage": "512Mi"}),
        )];
        let big = json!({"metadata": {"name": "c"}, "spec": {"storageClassName": "gold",
            "resources": {"requests": {"storage": "1Gi"}}}});
        assert_eq!(
            check_at(&quotas, "persistentvolumeclaims", &big, None, now())
                .expect_err("too big")
                .to_string(),
            "exceeded quota: storage, requested: gold.storageclass.storage.k8s.io/requests.storage=1Gi, used: gold.storageclass.storage.k8s.io/requests.storage=512Mi, limited: gold.storageclass.storage.k8s.io/requests.storage=1Gi"
        );
    }

    #[test]
    fn object_counts_use_legacy_aliases_and_group_names() {
        let cm = json!({"metadata": {"name": "c"}});
        assert_eq!(
            usage("configmaps", &cm),
            list(&[("configmaps", "1"), ("count/configmaps", "1")])
        );
        assert_eq!(
            usage("deployments.apps", &cm),
            list(&[("count/deployments.apps", "1")])
        );
        let quotas = [quota(
            "q",
            json!({"count/deployments.apps": "1"}),
            json!({"count/deployments.apps": "1"}),
        )];
        assert_eq!(
            check_at(&quotas, "deployments.apps", &cm, None, now())
                .expect_err("full")
                .to_string(),
            "exceeded quota: q, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"
        );
        // updates never charge object counts
        assert_eq!(
            check_at(&quotas, "deployments.apps", &cm, Some(&cm), now()),
            Ok(vec![])
        );
        // scoped quotas never match non-pod objects
        let mut scoped = quotas[0].clone();
        scoped["spec"]["scopes"] = json!(["BestEffort"]);
        assert_eq!(
            check_at(&[scoped], "deployments.apps", &cm, None, now()),
            Ok(vec![])
        );
    }

    #[test]
    fn recompute_sums_matching_objects_for_every_hard_resource() {
        let mut qt = quota(
            "q",
            json!({"pods": "10", "requests.memory": "4Gi", "services": "2", "count/deployments.apps": "3", "count/widgets.example.com": "1"}),
            json!({"pods": "7", "count/widgets.example.com": "1"}),
        );
        qt["spec"]["scopes"] = json!(["NotTerminating"]);
        let running = pod(
            vec![container("a", json!({"memory": "1Gi"}), json!({}))],
            vec![],
        );
        let mut done = running.clone();
        done["status"] = json!({"phase": "Failed"});
        let mut terminating = running.clone();
        terminating["spec"]["activeDeadlineSeconds"] = json!(10);
        let objects: BTreeMap<String, Vec<Value>> = [
            (
                "pods".to_string(),
                vec![running.clone(), running, done, terminating],
            ),
            (
                "services".to_string(),
                vec![json!({"spec": {"type": "ClusterIP"}})],
            ),
            ("deployments.apps".to_string(), vec![json!({}), json!({})]),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            resources_for_quota(&qt),
            vec![
                "pods",
                "services",
                "deployments.apps",
                "widgets.example.com"
            ]
        );
        let used = recompute_at(&qt, &objects, now());
        assert_eq!(
            used,
            list(&[
                ("pods", "2"),
                ("requests.memory", "2Gi"),
                // services and deployments never match a scoped quota
                ("services", "0"),
                ("count/deployments.apps", "0"),
                // no objects given: the old value stays
                ("count/widgets.example.com", "1"),
            ])
        );
        assert_eq!(used["requests.memory"].to_string(), "2Gi");
        qt["spec"]["scopes"] = json!([]);
        let used = recompute_at(&qt, &objects, now());
        assert_eq!(used["pods"], q("3"));
        assert_eq!(used["services"], q("1"));
        assert_eq!(used["count/deployments.apps"], q("2"));
        let status = quota_status(&qt, &objects);
        assert_eq!(status["hard"]["requests.memory"], "4Gi");
        assert_eq!(status["used"]["services"], "1");
    }
}
