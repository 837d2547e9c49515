//! The resource metrics API, `metrics.k8s.io/v1beta1`, served in-process the way
//! metrics-server serves it through the aggregator: `NodeMetrics` (`nodes`, cluster-scoped)
//! and `PodMetrics` (`pods`, namespaced), verbs get and list, for `kubectl top`.
//!
//! Usage comes from each kubelet's `/stats/summary` (cpu `usageNanoCores`, memory
//! `workingSetBytes`), fetched through [`KubeletClient`] and cached per node for
//! [`DEFAULT_CACHE_TTL`] so repeated `kubectl top` calls do not fan out every time. As
//! metrics-server: only Running pods are served, a pod is served only when every container
//! in the summary has both numbers, a missing Node or Pod answers the lister's NotFound
//! (`node "x" not found`, `pods "x" not found`), an object without metrics answers
//! `nodemetrics.metrics.k8s.io "x" not found` / `podmetrics.metrics.k8s.io "ns/x" not found`,
//! and field selectors may only use `metadata.name` and `metadata.namespace`. Quantities are
//! rendered canonically (cpu as a `DecimalSI` scaled by 1e-9, memory `BinarySI`), windows as
//! Go durations.
//!
//! Also here: the discovery documents of the group ([`api_group`], [`api_group_entry`],
//! [`resource_list`], [`aggregated_entry`]) and URL parsing ([`parse_route`]).

use crate::auth::Attributes;
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::Registry;
use crate::selector::{parse_field_selector, parse_label_selector, FieldSelector, LabelSelector};
use crate::streaming::{KubeletClient, StreamingError};
use async_trait::async_trait;
use http::Method;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
pub const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";
/// The window reported: the kubelet's sampling interval (its `usageNanoCores` is the rate
/// over its last two samples).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);
/// How long a node's summary is reused.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(10);
/// How long one kubelet may take to answer (it serves a cached summary, so this is short:
/// a request is answered within it even when a kubelet hangs).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest summary accepted from a kubelet.
const MAX_SUMMARY_BYTES: usize = 32 << 20;
/// The kubelet path fetched (metrics-server's summary scraper asks for the same subset).
pub const SUMMARY_PATH: &str = "/stats/summary?only_cpu_and_memory=true";

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("no kubelet client configured")]
    NoKubeletClient,
    #[error("node {0} has no internal ip address")]
    NoAddress(String),
    #[error("fetching summary from {addr}: {source}")]
    Fetch {
        addr: String,
        source: StreamingError,
    },
    #[error("kubelet {addr} answered {code}: {body}")]
    Status {
        addr: String,
        code: u16,
        body: String,
    },
    #[error("reading summary from {addr}: {message}")]
    ReadBody { addr: String, message: String },
    #[error("decoding summary from {addr}: {source}")]
    Decode {
        addr: String,
        source: serde_json::Error,
    },
    #[error("timed out fetching summary from {0}")]
    Timeout(String),
}

// ---------------------------------------------------------------- discovery

const VERBS: &[&str] = &["get", "list"];

/// The group's entry in the legacy `/apis` `APIGroupList`.
pub fn api_group_entry() -> Value {
    let v = json!({"groupVersion": GROUP_VERSION, "version": VERSION});
    json!({"name": GROUP, "versions": [v.clone()], "preferredVersion": v})
}

/// Legacy `/apis/metrics.k8s.io` (`APIGroup`).
pub fn api_group() -> Value {
    let mut g = api_group_entry();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    g
}

/// Legacy `/apis/metrics.k8s.io/v1beta1` (`APIResourceList`); singular names are empty, as
/// metrics-server reports them.
pub fn resource_list() -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": VERBS},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": VERBS},
        ]
    })
}

/// The group's item in the aggregated `/apis` `APIGroupDiscoveryList` (v2 and v2beta1 have
/// the same shape).
pub fn aggregated_entry() -> Value {
    let res = |name: &str, kind: &str, scope: &str| {
        json!({
            "resource": name,
            "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
            "scope": scope,
            "singularResource": "",
            "verbs": VERBS,
        })
    };
    json!({
        "metadata": {"name": GROUP, "creationTimestamp": null},
        "versions": [{
            "version": VERSION,
            "resources": [res("nodes", "NodeMetrics", "Cluster"), res("pods", "PodMetrics", "Namespaced")],
            "freshness": "Current",
        }]
    })
}

// ---------------------------------------------------------------- routing

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsResource {
    Nodes,
    Pods,
}

impl MetricsResource {
    pub fn plural(self) -> &'static str {
        match self {
            MetricsResource::Nodes => "nodes",
            MetricsResource::Pods => "pods",
        }
    }
}

/// A request under `/apis/metrics.k8s.io/v1beta1/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsRoute {
    pub resource: MetricsResource,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('%')
}

/// Parses the path segments after `/apis/metrics.k8s.io/v1beta1/`; none for anything that
/// is not a metrics resource URL (answer 404).
pub fn parse_route(rest: &[&str]) -> Option<MetricsRoute> {
    let (resource, namespace, name) = match rest {
        ["nodes"] => (MetricsResource::Nodes, None, None),
        ["nodes", name] => (MetricsResource::Nodes, None, Some(*name)),
        ["pods"] => (MetricsResource::Pods, None, None),
        ["namespaces", ns, "pods"] => (MetricsResource::Pods, Some(*ns), None),
        ["namespaces", ns, "pods", name] => (MetricsResource::Pods, Some(*ns), Some(*name)),
        _ => return None,
    };
    if [namespace, name]
        .into_iter()
        .flatten()
        .any(|s| !valid_segment(s))
    {
        return None;
    }
    Some(MetricsRoute {
        resource,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
    })
}

fn is_watch(q: &HashMap<String, String>) -> bool {
    q.get("watch").is_some_and(|v| v == "true" || v == "1")
}

impl MetricsRoute {
    /// The request verb: get, list or watch for GET/HEAD, otherwise the method's verb.
    pub fn verb(&self, method: &Method, q: &HashMap<String, String>) -> &'static str {
        match *method {
            Method::GET | Method::HEAD if is_watch(q) => "watch",
            Method::GET | Method::HEAD if self.name.is_some() => "get",
            Method::GET | Method::HEAD => "list",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if self.name.is_some() => "delete",
            Method::DELETE => "deletecollection",
            _ => "",
        }
    }

    /// The authorization attributes of the request.
    pub fn attributes(
        &self,
        method: &Method,
        q: &HashMap<String, String>,
        path: &str,
    ) -> Attributes {
        Attributes {
            verb: self.verb(method, q).to_string(),
            resource_request: true,
            api_group: GROUP.to_string(),
            api_version: VERSION.to_string(),
            resource: self.resource.plural().to_string(),
            subresource: String::new(),
            namespace: self.namespace.clone().unwrap_or_default(),
            name: self.name.clone().unwrap_or_default(),
            path: path.to_string(),
            field_selector: q.get("fieldSelector").cloned().unwrap_or_default(),
        }
    }
}

// ---------------------------------------------------------------- the kubelet summary

/// The part of the kubelet's `/stats/summary` used here.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    #[serde(default)]
    pub node: NodeStats,
    #[serde(default)]
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    #[serde(default)]
    pub node_name: String,
    #[serde(default)]
    pub cpu: Option<CpuStats>,
    #[serde(default)]
    pub memory: Option<MemoryStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub usage_nano_cores: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub working_set_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PodReference {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub uid: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    #[serde(default)]
    pub pod_ref: PodReference,
    #[serde(default)]
    pub containers: Vec<ContainerStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub cpu: Option<CpuStats>,
    #[serde(default)]
    pub memory: Option<MemoryStats>,
}

// ---------------------------------------------------------------- quantities and durations

fn decimal_suffix(exponent: i32) -> Option<&'static str> {
    Some(match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => return None,
    })
}

/// A `DecimalSI` quantity `mantissa * 10^exponent` in canonical form (trailing zeros folded
/// into the exponent, which is then lowered to a multiple of three), as apimachinery prints it.
fn decimal_si(mantissa: u64, exponent: i32) -> String {
    if mantissa == 0 {
        return "0".into();
    }
    let mut m = u128::from(mantissa);
    let mut e = exponent;
    while m.is_multiple_of(10) {
        m /= 10;
        e += 1;
    }
    match e.rem_euclid(3) {
        1 => {
            m *= 10;
            e -= 1;
        }
        2 => {
            m *= 100;
            e -= 2;
        }
        _ => {}
    }
    match decimal_suffix(e) {
        Some(s) => format!("{m}{s}"),
        None => format!("{m}e{e}"),
    }
}

/// Cpu usage as metrics-server renders it: `usageNanoCores` scaled by 1e-9, canonical
/// `DecimalSI` (`12345678n`, `250m`, `1`).
pub fn format_cpu(nano_cores: u64) -> String {
    decimal_si(nano_cores, -9)
}

/// Memory as metrics-server renders it: canonical `BinarySI` (`12Mi`, `4100Ki`), plain bytes
/// when not a multiple of 1024, decimal below 1024.
pub fn format_memory(bytes: u64) -> String {
    if bytes < 1024 {
        return decimal_si(bytes, 0);
    }
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let mut v = bytes;
    let mut i = 0;
    while v.is_multiple_of(1024) && i < SUFFIXES.len() - 1 {
        v /= 1024;
        i += 1;
    }
    format!("{v}{}", SUFFIXES[i])
}

fn fraction(value: u64, digits: usize) -> String {
    let s = format!("{value:0digits$}");
    let t = s.trim_end_matches('0');
    if t.is_empty() {
        String::new()
    } else {
        format!(".{t}")
    }
}

/// Go's `time.Duration.String()` (`10s`, `1.5s`, `1m30s`, `500ms`, `0s`), the form of
/// `metav1.Duration`.
pub fn format_duration(d: Duration) -> String {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}{}µs", ns / 1_000, fraction(ns % 1_000, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}{}ms", ns / 1_000_000, fraction(ns % 1_000_000, 6));
    }
    let secs = ns / 1_000_000_000;
    let sub = ns % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}{}s", fraction(sub, 9)));
    out
}

// ---------------------------------------------------------------- conversion

fn usage(nano_cores: u64, working_set: u64) -> Value {
    json!({"cpu": format_cpu(nano_cores), "memory": format_memory(working_set)})
}

fn object_meta(obj: &Value, namespaced: bool, now: jiff::Timestamp) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(meta::name(obj)));
    if namespaced {
        m.insert("namespace".into(), json!(meta::namespace(obj)));
    }
    m.insert("creationTimestamp".into(), json!(meta::format_time(now)));
    let labels = meta::labels(obj);
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    Value::Object(m)
}

/// `NodeMetrics` for a Node from its kubelet's summary; none without cpu rate or working set.
pub fn node_metrics(
    node: &Value,
    summary: &Summary,
    window: Duration,
    now: jiff::Timestamp,
) -> Option<Value> {
    let cpu = summary.node.cpu.as_ref()?;
    let nano_cores = cpu.usage_nano_cores?;
    let time = cpu.time.clone()?;
    let working_set = summary.node.memory.as_ref()?.working_set_bytes?;
    Some(json!({
        "kind": "NodeMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": object_meta(node, false, now),
        "timestamp": time,
        "window": format_duration(window),
        "usage": usage(nano_cores, working_set),
    }))
}

/// `PodMetrics` for a Pod from its node's summary; none when the pod is not in it or any of
/// its containers lacks a cpu rate or working set. Containers follow the pod spec's order.
pub fn pod_metrics(
    pod: &Value,
    summary: &Summary,
    window: Duration,
    now: jiff::Timestamp,
) -> Option<Value> {
    let (ns, name) = (meta::namespace(pod), meta::name(pod));
    let uid = meta::meta_str(pod, "uid").unwrap_or("");
    let stats = summary.pods.iter().find(|p| {
        p.pod_ref.namespace == ns
            && p.pod_ref.name == name
            && (uid.is_empty() || p.pod_ref.uid.is_empty() || p.pod_ref.uid == uid)
    })?;
    if stats.containers.is_empty() {
        return None;
    }
    let order: Vec<&str> = ["initContainers", "containers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let mut containers: Vec<(usize, &str, Value)> = Vec::new();
    let mut earliest: Option<&str> = None;
    for c in &stats.containers {
        let cpu = c.cpu.as_ref()?;
        let nano_cores = cpu.usage_nano_cores?;
        let time = cpu.time.as_deref()?;
        let working_set = c.memory.as_ref()?.working_set_bytes?;
        // RFC 3339 UTC texts of one layout order as times.
        if earliest.is_none_or(|e| time < e) {
            earliest = Some(time);
        }
        let rank = order
            .iter()
            .position(|n| *n == c.name)
            .unwrap_or(order.len());
        containers.push((
            rank,
            c.name.as_str(),
            json!({"name": c.name, "usage": usage(nano_cores, working_set)}),
        ));
    }
    containers.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    Some(json!({
        "kind": "PodMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": object_meta(pod, true, now),
        "timestamp": earliest?,
        "window": format_duration(window),
        "containers": containers.into_iter().map(|(_, _, v)| v).collect::<Vec<_>>(),
    }))
}

/// Total usage of a metrics object (a pod's containers summed), in nanocores and bytes.
fn total_usage(obj: &Value) -> (u64, u64) {
    let parse = |u: &Value| -> (u64, u64) {
        let cpu = u
            .get("cpu")
            .and_then(Value::as_str)
            .and_then(parse_canonical)
            .map(|(m, e)| scale(m, e + 9))
            .unwrap_or(0);
        let mem = u
            .get("memory")
            .and_then(Value::as_str)
            .and_then(parse_canonical)
            .map(|(m, e)| scale(m, e))
            .unwrap_or(0);
        (cpu, mem)
    };
    if let Some(u) = obj.get("usage") {
        return parse(u);
    }
    obj.get("containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter().fold((0u64, 0u64), |(c, m), x| {
                let (a, b) = x.get("usage").map(parse).unwrap_or((0, 0));
                (c.saturating_add(a), m.saturating_add(b))
            })
        })
        .unwrap_or((0, 0))
}

/// `mantissa * 10^exponent` or `* 1024^k` of a quantity this module printed.
fn parse_canonical(s: &str) -> Option<(u64, i32)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let m: u64 = s[..digits].parse().ok()?;
    let e = match &s[digits..] {
        "n" => -9,
        "u" => -6,
        "m" => -3,
        "" => 0,
        "k" => 3,
        "M" => 6,
        "G" => 9,
        "T" => 12,
        "P" => 15,
        "E" => 18,
        bin => {
            let k = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                .iter()
                .position(|x| *x == bin)?;
            let f = 1024u64.checked_pow(u32::try_from(k + 1).ok()?)?;
            return Some((m.saturating_mul(f), 0));
        }
    };
    Some((m, e))
}

fn scale(m: u64, e: i32) -> u64 {
    if e >= 0 {
        10u64
            .checked_pow(e.unsigned_abs())
            .map_or(u64::MAX, |f| m.saturating_mul(f))
    } else {
        10u64.checked_pow(e.unsigned_abs()).map_or(0, |f| m / f)
    }
}

/// metrics-server's table: Name, cpu, memory, Window.
fn to_table(items: &[Value], include: &str) -> Value {
    let col = |name: &str, format: &str, desc: &str| json!({"name": name, "type": "string", "format": format, "description": desc, "priority": 0});
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let (cpu, mem) = total_usage(obj);
            let mut row = json!({"cells": [
                meta::name(obj),
                format_cpu(cpu),
                format_memory(mem),
                obj.get("window").cloned().unwrap_or(json!("")),
            ]});
            match include {
                "None" => {}
                "Object" => row["object"] = obj.clone(),
                _ => {
                    row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({}))})
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [
            col("Name", "name", "Name of the resource"),
            col("cpu", "quantity", ""),
            col("memory", "quantity", ""),
            col("Window", "duration", ""),
        ],
        "rows": rows,
    })
}

// ---------------------------------------------------------------- selectors

/// Label and field selectors of a metrics list.
#[derive(Debug, Default)]
pub struct Selectors {
    pub label: Option<LabelSelector>,
    pub field: Option<FieldSelector>,
}

impl Selectors {
    /// Parses `labelSelector` and `fieldSelector`; field selectors are limited to
    /// `metadata.name` and `metadata.namespace` (upstream's default field label conversion).
    pub fn parse(q: &HashMap<String, String>) -> ApiResult<Selectors> {
        let label = match q.get("labelSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                Some(parse_label_selector(s).map_err(|e| ApiError::bad_request(e.to_string()))?)
            }
            None => None,
        };
        let field = match q.get("fieldSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => {
                let f =
                    parse_field_selector(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
                if let Some(bad) = f
                    .fields()
                    .find(|n| *n != "metadata.name" && *n != "metadata.namespace")
                {
                    return Err(ApiError::bad_request(format!(
                        "\"{bad}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                    )));
                }
                Some(f)
            }
            None => None,
        };
        Ok(Selectors { label, field })
    }

    /// Whether a Node or Pod is selected (a Node has no `metadata.namespace` field).
    pub fn matches(&self, obj: &Value, namespaced: bool) -> bool {
        if let Some(l) = &self.label {
            if !l.matches(&meta::labels(obj)) {
                return false;
            }
        }
        if let Some(f) = &self.field {
            let get = |field: &str| -> Option<String> {
                match field {
                    "metadata.name" => Some(meta::name(obj).to_string()),
                    "metadata.namespace" if namespaced => Some(meta::namespace(obj).to_string()),
                    _ => None,
                }
            };
            if !f.matches(&get) {
                return false;
            }
        }
        true
    }
}

// ---------------------------------------------------------------- sources

/// Where Nodes, Pods and kubelet summaries come from.
#[async_trait]
pub trait MetricsSource: Send + Sync {
    async fn list_nodes(&self) -> ApiResult<Vec<Value>>;
    /// NotFound as the API answers it for a missing Node.
    async fn get_node(&self, name: &str) -> ApiResult<Value>;
    /// All namespaces when `namespace` is none.
    async fn list_pods(&self, namespace: Option<&str>) -> ApiResult<Vec<Value>>;
    async fn get_pod(&self, namespace: &str, name: &str) -> ApiResult<Value>;
    /// The node's kubelet summary.
    async fn summary(&self, node: &Value) -> Result<Summary, MetricsError>;
}

/// The kubelet's address from a Node: its InternalIP and `daemonEndpoints` port (10250 by
/// default), as the API server's other kubelet calls use.
pub fn kubelet_address(node: &Value) -> Result<(String, u16), MetricsError> {
    let host = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP"))
        })
        .and_then(|x| x.get("address").and_then(Value::as_str))
        .filter(|a| !a.is_empty())
        .ok_or_else(|| MetricsError::NoAddress(meta::name(node).to_string()))?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(10250);
    Ok((host.to_string(), port))
}

/// `GET /stats/summary` from the kubelet at `host:port`.
pub async fn fetch_summary(
    client: &KubeletClient,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Summary, MetricsError> {
    let addr = crate::streaming::kubelet::host_port(host, port);
    let fut = async {
        let resp = client
            .get(host, port, SUMMARY_PATH)
            .await
            .map_err(|source| MetricsError::Fetch {
                addr: addr.clone(),
                source,
            })?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_SUMMARY_BYTES)
            .collect()
            .await
            .map_err(|e| MetricsError::ReadBody {
                addr: addr.clone(),
                message: e.to_string(),
            })?
            .to_bytes();
        if !status.is_success() {
            return Err(MetricsError::Status {
                addr: addr.clone(),
                code: status.as_u16(),
                body: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        serde_json::from_slice(&body).map_err(|source| MetricsError::Decode {
            addr: addr.clone(),
            source,
        })
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| MetricsError::Timeout(addr.clone()))?
}

/// The cluster's own source: Nodes and Pods from the registry, summaries from kubelets.
pub struct KubeletMetricsSource {
    pub registry: Arc<Registry>,
    pub kubelet: Option<KubeletClient>,
    pub timeout: Duration,
}

impl KubeletMetricsSource {
    pub fn new(registry: Arc<Registry>, kubelet: Option<KubeletClient>) -> KubeletMetricsSource {
        KubeletMetricsSource {
            registry,
            kubelet,
            timeout: DEFAULT_FETCH_TIMEOUT,
        }
    }

    fn res(plural: &str) -> ApiResult<&'static crate::resources::ResourceInfo> {
        crate::resources::find("", "v1", plural).ok_or_else(ApiError::path_not_found)
    }

    async fn list(&self, plural: &str, ns: Option<&str>) -> ApiResult<Vec<Value>> {
        let page = self
            .registry
            .list(
                Self::res(plural)?,
                ns,
                &crate::list::Filter::default(),
                &crate::list::ListParams::default(),
            )
            .await?;
        Ok(page.items)
    }
}

#[async_trait]
impl MetricsSource for KubeletMetricsSource {
    async fn list_nodes(&self) -> ApiResult<Vec<Value>> {
        self.list("nodes", None).await
    }

    async fn get_node(&self, name: &str) -> ApiResult<Value> {
        self.registry.get(Self::res("nodes")?, "", name).await
    }

    async fn list_pods(&self, namespace: Option<&str>) -> ApiResult<Vec<Value>> {
        self.list("pods", namespace).await
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> ApiResult<Value> {
        self.registry.get(Self::res("pods")?, namespace, name).await
    }

    async fn summary(&self, node: &Value) -> Result<Summary, MetricsError> {
        let client = self.kubelet.as_ref().ok_or(MetricsError::NoKubeletClient)?;
        let (host, port) = kubelet_address(node)?;
        fetch_summary(client, &host, port, self.timeout).await
    }
}

// ---------------------------------------------------------------- cache

struct Cached {
    fetched: tokio::time::Instant,
    result: Result<Arc<Summary>, String>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Per-node summaries, reused for a while; concurrent requests for one node share a fetch.
/// Failures are cached too, so an unreachable kubelet costs one timeout per period.
pub struct SummaryCache {
    ttl: Duration,
    slots: std::sync::Mutex<HashMap<String, Slot>>,
}

impl SummaryCache {
    pub fn new(ttl: Duration) -> SummaryCache {
        SummaryCache {
            ttl,
            slots: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, name: &str) -> Slot {
        let mut m = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(name.to_string()).or_default().clone()
    }

    /// Drops the entries of nodes that no longer exist.
    pub fn retain(&self, names: &BTreeSet<&str>) {
        let mut m = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|k, _| names.contains(k.as_str()));
    }

    /// The node's summary, fetched through `source` when missing or older than the ttl.
    pub async fn get(
        &self,
        source: &dyn MetricsSource,
        node: &Value,
    ) -> Result<Arc<Summary>, String> {
        let slot = self.slot(meta::name(node));
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.fetched.elapsed() < self.ttl {
                return c.result.clone();
            }
        }
        let result = source
            .summary(node)
            .await
            .map(Arc::new)
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::debug!(node = %meta::name(node), error = %e, "fetching node summary");
        }
        *cached = Some(Cached {
            fetched: tokio::time::Instant::now(),
            result: result.clone(),
        });
        result
    }
}

// ---------------------------------------------------------------- serving

/// The metrics API's state: the summary cache and the window reported.
pub struct MetricsApi {
    pub cache: SummaryCache,
    pub window: Duration,
}

impl Default for MetricsApi {
    fn default() -> Self {
        MetricsApi {
            cache: SummaryCache::new(DEFAULT_CACHE_TTL),
            window: DEFAULT_WINDOW,
        }
    }
}

fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|p| p.contains("as=Table"))
}

fn is_running(pod: &Value) -> bool {
    pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
}

/// A node whose Ready condition is Unknown: its kubelet stopped reporting, so it is not
/// asked (a request would only wait for the timeout).
fn kubelet_lost(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        })
        .and_then(|c| c.get("status").and_then(Value::as_str))
        == Some("Unknown")
}

impl MetricsApi {
    async fn summary(&self, source: &dyn MetricsSource, node: &Value) -> Option<Arc<Summary>> {
        if kubelet_lost(node) {
            return None;
        }
        self.cache.get(source, node).await.ok()
    }

    /// Answers a request for `route` (method, query and Accept as received): the object,
    /// the list, or its `Table`.
    pub async fn handle(
        &self,
        source: &dyn MetricsSource,
        route: &MetricsRoute,
        method: &Method,
        q: &HashMap<String, String>,
        accept: &str,
        now: jiff::Timestamp,
    ) -> ApiResult<Value> {
        if !matches!(route.verb(method, q), "get" | "list") {
            return Err(ApiError::method_not_allowed());
        }
        let include = q.get("includeObject").map(String::as_str).unwrap_or("");
        let table = wants_table(accept);
        match (&route.resource, &route.name) {
            (MetricsResource::Nodes, Some(name)) => {
                let obj = self.node(source, name, now).await?;
                Ok(if table {
                    to_table(&[obj], include)
                } else {
                    obj
                })
            }
            (MetricsResource::Nodes, None) => {
                let items = self.nodes(source, &Selectors::parse(q)?, now).await?;
                Ok(if table {
                    to_table(&items, include)
                } else {
                    json!({"kind": "NodeMetricsList", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items})
                })
            }
            (MetricsResource::Pods, Some(name)) => {
                let ns = route.namespace.as_deref().unwrap_or("");
                let obj = self.pod(source, ns, name, now).await?;
                Ok(if table {
                    to_table(&[obj], include)
                } else {
                    obj
                })
            }
            (MetricsResource::Pods, None) => {
                let items = self
                    .pods(
                        source,
                        route.namespace.as_deref(),
                        &Selectors::parse(q)?,
                        now,
                    )
                    .await?;
                Ok(if table {
                    to_table(&items, include)
                } else {
                    json!({"kind": "PodMetricsList", "apiVersion": GROUP_VERSION, "metadata": {}, "items": items})
                })
            }
        }
    }

    /// One `NodeMetrics`.
    pub async fn node(
        &self,
        source: &dyn MetricsSource,
        name: &str,
        now: jiff::Timestamp,
    ) -> ApiResult<Value> {
        let node = source.get_node(name).await.map_err(|e| {
            if e.code == 404 {
                ApiError::not_found("node", name)
            } else {
                e
            }
        })?;
        let summary = self.summary(source, &node).await;
        summary
            .and_then(|s| node_metrics(&node, &s, self.window, now))
            .ok_or_else(|| ApiError::not_found("nodemetrics.metrics.k8s.io", name))
    }

    /// `NodeMetrics` of the selected nodes that have metrics, by name.
    pub async fn nodes(
        &self,
        source: &dyn MetricsSource,
        sel: &Selectors,
        now: jiff::Timestamp,
    ) -> ApiResult<Vec<Value>> {
        let all = source.list_nodes().await?;
        self.cache
            .retain(&all.iter().map(meta::name).collect::<BTreeSet<_>>());
        let mut nodes: Vec<&Value> = all.iter().filter(|n| sel.matches(n, false)).collect();
        nodes.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
        let summaries =
            futures::future::join_all(nodes.iter().map(|n| self.summary(source, n))).await;
        Ok(nodes
            .iter()
            .zip(summaries)
            .filter_map(|(n, s)| {
                let s = s?;
                node_metrics(n, &s, self.window, now)
            })
            .collect())
    }

    /// One `PodMetrics`.
    pub async fn pod(
        &self,
        source: &dyn MetricsSource,
        ns: &str,
        name: &str,
        now: jiff::Timestamp,
    ) -> ApiResult<Value> {
        let pod = source.get_pod(ns, name).await?;
        if !is_running(&pod) {
            return Err(ApiError::not_found("pods", name));
        }
        let no_metrics =
            || ApiError::not_found("podmetrics.metrics.k8s.io", &format!("{ns}/{name}"));
        let node_name = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(no_metrics)?;
        let node = match source.get_node(node_name).await {
            Ok(n) => n,
            Err(e) if e.code == 404 => return Err(no_metrics()),
            Err(e) => return Err(e),
        };
        let summary = self.summary(source, &node).await;
        summary
            .and_then(|s| pod_metrics(&pod, &s, self.window, now))
            .ok_or_else(no_metrics)
    }

    /// `PodMetrics` of the selected Running pods that have metrics, by namespace and name.
    pub async fn pods(
        &self,
        source: &dyn MetricsSource,
        namespace: Option<&str>,
        sel: &Selectors,
        now: jiff::Timestamp,
    ) -> ApiResult<Vec<Value>> {
        let all = source.list_pods(namespace).await?;
        let mut pods: Vec<&Value> = all
            .iter()
            .filter(|p| is_running(p) && sel.matches(p, true))
            .collect();
        pods.sort_by(|a, b| {
            (meta::namespace(a), meta::name(a)).cmp(&(meta::namespace(b), meta::name(b)))
        });
        let wanted: BTreeSet<&str> = pods
            .iter()
            .filter_map(|p| p.pointer("/spec/nodeName").and_then(Value::as_str))
            .filter(|n| !n.is_empty())
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let nodes: Vec<Value> = source
            .list_nodes()
            .await?
            .into_iter()
            .filter(|n| wanted.contains(meta::name(n)))
            .collect();
        let summaries =
            futures::future::join_all(nodes.iter().map(|n| self.summary(source, n))).await;
        let by_node: HashMap<&str, Arc<Summary>> = nodes
            .iter()
            .zip(summaries)
            .filter_map(|(n, s)| Some((meta::name(n), s?)))
            .collect();
        Ok(pods
            .iter()
            .filter_map(|p| {
                let node = p.pointer("/spec/nodeName").and_then(Value::as_str)?;
                pod_metrics(p, by_node.get(node)?, self.window, now)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    const NOW: &str = "2024-05-01T12:00:00Z";

    fn now() -> jiff::Timestamp {
        NOW.parse().unwrap()
    }

    fn node(name: &str, labels: Value) -> Value {
        json!({"metadata": {"name": name, "uid": format!("uid-{name}"), "labels": labels},
               "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": "127.0.0.1"}],
                          "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}})
    }

    fn pod(ns: &str, name: &str, node: &str, phase: &str, labels: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "labels": labels},
               "spec": {"nodeName": node, "containers": [{"name": "sidecar"}, {"name": "app"}]},
               "status": {"phase": phase}})
    }

    fn summary_json(node: &str, pods: &[(&str, &str)]) -> Value {
        let pods: Vec<Value> = pods
            .iter()
            .map(|(ns, name)| {
                json!({"podRef": {"name": name, "namespace": ns, "uid": format!("uid-{name}")},
                       "startTime": "2024-05-01T11:00:00Z",
                       "containers": [
                         {"name": "app", "startTime": null,
                          "cpu": {"time": "2024-05-01T11:59:58Z", "usageNanoCores": 250_000_000u64, "usageCoreNanoSeconds": 9},
                          "memory": {"time": "2024-05-01T11:59:58Z", "workingSetBytes": 12u64 << 20}},
                         {"name": "sidecar",
                          "cpu": {"time": "2024-05-01T11:59:57Z", "usageNanoCores": 1_234_567u64},
                          "memory": {"time": "2024-05-01T11:59:57Z", "workingSetBytes": 4_100u64 * 1024}}],
                       "cpu": {"time": "2024-05-01T11:59:58Z", "usageNanoCores": 251_234_567u64}})
            })
            .collect();
        json!({"node": {"nodeName": node, "startTime": "2024-01-01T00:00:00Z",
                        "cpu": {"time": "2024-05-01T11:59:59Z", "usageNanoCores": 1_500_000_000u64, "usageCoreNanoSeconds": 77},
                        "memory": {"time": "2024-05-01T11:59:59Z", "workingSetBytes": 3u64 << 30, "usageBytes": 4u64 << 30}},
               "pods": pods})
    }

    #[derive(Default)]
    struct Fake {
        nodes: Vec<Value>,
        pods: Vec<Value>,
        summaries: HashMap<String, Value>,
        fetches: AtomicUsize,
        calls: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl MetricsSource for Fake {
        async fn list_nodes(&self) -> ApiResult<Vec<Value>> {
            Ok(self.nodes.clone())
        }
        async fn get_node(&self, name: &str) -> ApiResult<Value> {
            self.nodes
                .iter()
                .find(|n| meta::name(n) == name)
                .cloned()
                .ok_or_else(|| ApiError::not_found("nodes", name))
        }
        async fn list_pods(&self, ns: Option<&str>) -> ApiResult<Vec<Value>> {
            Ok(self
                .pods
                .iter()
                .filter(|p| ns.is_none_or(|ns| meta::namespace(p) == ns))
                .cloned()
                .collect())
        }
        async fn get_pod(&self, ns: &str, name: &str) -> ApiResult<Value> {
            self.pods
                .iter()
                .find(|p| meta::namespace(p) == ns && meta::name(p) == name)
                .cloned()
                .ok_or_else(|| ApiError::not_found("pods", name))
        }
        async fn summary(&self, node: &Value) -> Result<Summary, MetricsError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let name = meta::name(node).to_string();
            self.calls.lock().unwrap().push(name.clone());
            match self.summaries.get(&name) {
                Some(v) => Ok(serde_json::from_value(v.clone()).unwrap()),
                None => Err(MetricsError::NoAddress(name)),
            }
        }
    }

    fn fake() -> Fake {
        let mut f = Fake {
            nodes: vec![
                node("n2", json!({"zone": "b"})),
                node("n1", json!({"zone": "a"})),
                node("down", json!({"zone": "a"})),
            ],
            pods: vec![
                pod("default", "web", "n1", "Running", json!({"app": "web"})),
                pod("default", "api", "n2", "Running", json!({"app": "api"})),
                pod("default", "done", "n1", "Succeeded", json!({"app": "web"})),
                pod("default", "lost", "down", "Running", json!({"app": "web"})),
                pod("kube-system", "dns", "n1", "Running", json!({"app": "dns"})),
                pod("default", "new", "n2", "Running", json!({})),
                pod("default", "pending", "", "Pending", json!({})),
            ],
            ..Default::default()
        };
        f.summaries.insert(
            "n1".into(),
            summary_json("n1", &[("default", "web"), ("kube-system", "dns")]),
        );
        let mut n2 = summary_json("n2", &[("default", "api"), ("default", "new")]);
        // A container that has no rate yet keeps the whole pod out.
        n2["pods"][1]["containers"][0]["cpu"]
            .as_object_mut()
            .unwrap()
            .remove("usageNanoCores");
        f.summaries.insert("n2".into(), n2);
        f
    }

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn route(path: &str) -> MetricsRoute {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        parse_route(&segs).unwrap()
    }

    #[test]
    fn quantities_are_canonical() {
        assert_eq!(format_cpu(0), "0");
        assert_eq!(format_cpu(123_456_789), "123456789n");
        assert_eq!(format_cpu(250_000_000), "250m");
        assert_eq!(format_cpu(12_340_000), "12340u");
        assert_eq!(format_cpu(1_500_000_000), "1500m");
        assert_eq!(format_cpu(2_000_000_000), "2");
        assert_eq!(format_cpu(1_000), "1u");
        assert_eq!(format_memory(0), "0");
        assert_eq!(format_memory(1000), "1k");
        assert_eq!(format_memory(999), "999");
        assert_eq!(format_memory(12 << 20), "12Mi");
        assert_eq!(format_memory(4_100 * 1024), "4100Ki");
        assert_eq!(format_memory(3 << 30), "3Gi");
        assert_eq!(format_memory(12_345_678), "12345678");
        assert_eq!(parse_canonical("4100Ki"), Some((4_100 * 1024, 0)));
        assert_eq!(parse_canonical("250m"), Some((250, -3)));
        assert_eq!(parse_canonical("x"), None);
    }

    #[test]
    fn durations_print_like_go() {
        let d = |ns: u64| format_duration(Duration::from_nanos(ns));
        assert_eq!(d(0), "0s");
        assert_eq!(d(10_000_000_000), "10s");
        assert_eq!(d(1_500_000_000), "1.5s");
        assert_eq!(d(10_012_345_678), "10.012345678s");
        assert_eq!(d(90_000_000_000), "1m30s");
        assert_eq!(d(3_600_000_000_000), "1h0m0s");
        assert_eq!(d(500_000_000), "500ms");
        assert_eq!(d(1_500_000), "1.5ms");
        assert_eq!(d(2_000), "2µs");
        assert_eq!(d(7), "7ns");
    }

    #[test]
    fn routes_and_attributes() {
        assert_eq!(
            route("nodes/n1"),
            MetricsRoute {
                resource: MetricsResource::Nodes,
                namespace: None,
                name: Some("n1".into())
            }
        );
        let r = route("namespaces/ns/pods/p");
        assert_eq!(
            (r.namespace.as_deref(), r.name.as_deref()),
            (Some("ns"), Some("p"))
        );
        assert_eq!(route("pods").namespace, None);
        for bad in [
            &["pods", "p"][..],
            &["namespaces", "ns", "nodes"],
            &["namespaces", "..", "pods"],
            &["things"],
            &[],
        ] {
            assert_eq!(parse_route(bad), None, "{bad:?}");
        }
        let a = r.attributes(
            &Method::GET,
            &HashMap::new(),
            "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/p",
        );
        assert_eq!(
            (
                a.verb.as_str(),
                a.api_group.as_str(),
                a.resource.as_str(),
                a.namespace.as_str(),
                a.name.as_str()
            ),
            ("get", GROUP, "pods", "ns", "p")
        );
        assert!(a.resource_request);
        assert_eq!(
            route("nodes").verb(&Method::GET, &q(&[("watch", "true")])),
            "watch"
        );
        assert_eq!(
            route("nodes").verb(&Method::DELETE, &HashMap::new()),
            "deletecollection"
        );
    }

    #[test]
    fn discovery_documents() {
        let g = api_group();
        assert_eq!(g["kind"], "APIGroup");
        assert_eq!(g["preferredVersion"]["groupVersion"], GROUP_VERSION);
        assert_eq!(api_group_entry()["versions"][0]["version"], "v1beta1");
        let l = resource_list();
        assert_eq!(l["groupVersion"], GROUP_VERSION);
        assert_eq!(l["resources"][0]["kind"], "NodeMetrics");
        assert_eq!(l["resources"][0]["namespaced"], false);
        assert_eq!(l["resources"][1]["name"], "pods");
        assert_eq!(l["resources"][1]["verbs"], json!(["get", "list"]));
        let a = aggregated_entry();
        assert_eq!(a["metadata"]["name"], GROUP);
        assert_eq!(a["versions"][0]["resources"][1]["scope"], "Namespaced");
        assert_eq!(
            a["versions"][0]["resources"][0]["responseKind"]["kind"],
            "NodeMetrics"
        );
    }

    #[test]
    fn node_and_pod_conversion() {
        let s: Summary = serde_json::from_value(summary_json("n1", &[("default", "web")])).unwrap();
        let n = node_metrics(&node("n1", json!({"zone": "a"})), &s, DEFAULT_WINDOW, now()).unwrap();
        assert_eq!(
            n,
            json!({"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                   "metadata": {"name": "n1", "creationTimestamp": NOW, "labels": {"zone": "a"}},
                   "timestamp": "2024-05-01T11:59:59Z", "window": "10s",
                   "usage": {"cpu": "1500m", "memory": "3Gi"}})
        );
        let p = pod_metrics(
            &pod("default", "web", "n1", "Running", json!({"app": "web"})),
            &s,
            DEFAULT_WINDOW,
            now(),
        )
        .unwrap();
        assert_eq!(
            p,
            json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                   "metadata": {"name": "web", "namespace": "default", "creationTimestamp": NOW, "labels": {"app": "web"}},
                   "timestamp": "2024-05-01T11:59:57Z", "window": "10s",
                   "containers": [
                       {"name": "sidecar", "usage": {"cpu": "1234567n", "memory": "4100Ki"}},
                       {"name": "app", "usage": {"cpu": "250m", "memory": "12Mi"}}]})
        );
        // A recreated pod (same name, other uid) has no metrics yet.
        let mut other = pod("default", "web", "n1", "Running", json!({}));
        other["metadata"]["uid"] = json!("uid-new");
        assert!(pod_metrics(&other, &s, DEFAULT_WINDOW, now()).is_none());
        // No node cpu rate: no metrics.
        let mut s2 = s.clone();
        s2.node.cpu.as_mut().unwrap().usage_nano_cores = None;
        assert!(node_metrics(&node("n1", json!({})), &s2, DEFAULT_WINDOW, now()).is_none());
    }

    #[tokio::test]
    async fn lists_filter_sort_and_skip_what_has_no_metrics() {
        let f = fake();
        let api = MetricsApi::default();
        let get = |path: &str, query: &[(&str, &str)]| {
            let r = route(path);
            let q = q(query);
            let api = &api;
            let f = &f;
            async move {
                api.handle(f, &r, &Method::GET, &q, "application/json", now())
                    .await
            }
        };
        let nodes = get("nodes", &[]).await.unwrap();
        assert_eq!(nodes["kind"], "NodeMetricsList");
        let names: Vec<&str> = nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["n1", "n2"],
            "sorted; the unreachable node is left out"
        );

        let zone_a = get("nodes", &[("labelSelector", "zone=a")]).await.unwrap();
        assert_eq!(zone_a["items"].as_array().unwrap().len(), 1);
        let by_name = get("nodes", &[("fieldSelector", "metadata.name=n2")])
            .await
            .unwrap();
        assert_eq!(by_name["items"][0]["metadata"]["name"], "n2");

        let pods = get("namespaces/default/pods", &[]).await.unwrap();
        assert_eq!(pods["kind"], "PodMetricsList");
        let names: Vec<&str> = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        // done: not Running; lost: node down; new: a container without rate; pending: no node.
        assert_eq!(names, ["api", "web"]);
        let all = get("pods", &[]).await.unwrap();
        let keys: Vec<String> = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                format!(
                    "{}/{}",
                    i["metadata"]["namespace"].as_str().unwrap(),
                    i["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(keys, ["default/api", "default/web", "kube-system/dns"]);
        let sel = get(
            "pods",
            &[
                ("labelSelector", "app in (web,dns)"),
                ("fieldSelector", "metadata.namespace!=kube-system"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(sel["items"].as_array().unwrap().len(), 1);
        assert_eq!(sel["items"][0]["metadata"]["name"], "web");

        // Every node was fetched once: lists within the ttl reuse the summaries.
        assert_eq!(f.fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn single_objects_and_not_found_texts() {
        let f = fake();
        let api = MetricsApi::default();
        let get = |path: &str| {
            let r = route(path);
            let api = &api;
            let f = &f;
            async move {
                api.handle(
                    f,
                    &r,
                    &Method::GET,
                    &HashMap::new(),
                    "application/vnd.kubernetes.protobuf, */*",
                    now(),
                )
                .await
            }
        };
        let n = get("nodes/n1").await.unwrap();
        assert_eq!(n["usage"]["cpu"], "1500m");
        let p = get("namespaces/kube-system/pods/dns").await.unwrap();
        assert_eq!(p["metadata"]["namespace"], "kube-system");

        let cases = [
            ("nodes/nope", "node \"nope\" not found"),
            (
                "nodes/down",
                "nodemetrics.metrics.k8s.io \"down\" not found",
            ),
            ("namespaces/default/pods/nope", "pods \"nope\" not found"),
            ("namespaces/default/pods/done", "pods \"done\" not found"),
            (
                "namespaces/default/pods/new",
                "podmetrics.metrics.k8s.io \"default/new\" not found",
            ),
            (
                "namespaces/default/pods/lost",
                "podmetrics.metrics.k8s.io \"default/lost\" not found",
            ),
        ];
        for (path, msg) in cases {
            let e = get(path).await.unwrap_err();
            assert_eq!((e.code, e.message.as_str()), (404, msg), "{path}");
        }
        let e = get("namespaces/default/pods/new").await.unwrap_err();
        assert_eq!(
            e.status()["details"],
            json!({"name": "default/new", "group": "metrics.k8s.io", "kind": "podmetrics"})
        );
    }

    #[tokio::test]
    async fn bad_requests_and_methods() {
        let f = fake();
        let api = MetricsApi::default();
        let r = route("pods");
        let e = api
            .handle(
                &f,
                &r,
                &Method::GET,
                &q(&[("fieldSelector", "spec.nodeName=n1")]),
                "",
                now(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "\"spec.nodeName\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        let e = api
            .handle(
                &f,
                &r,
                &Method::GET,
                &q(&[("labelSelector", "a in (")]),
                "",
                now(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, 400);
        for (m, query) in [
            (Method::DELETE, vec![]),
            (Method::GET, vec![("watch", "true")]),
            (Method::POST, vec![]),
        ] {
            let e = api
                .handle(&f, &r, &m, &q(&query), "", now())
                .await
                .unwrap_err();
            assert_eq!(e.code, 405, "{m} {query:?}");
        }
        assert_eq!(f.fetches.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn tables_sum_pod_containers() {
        let f = fake();
        let api = MetricsApi::default();
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
        let t = api
            .handle(
                &f,
                &route("namespaces/default/pods"),
                &Method::GET,
                &HashMap::new(),
                accept,
                now(),
            )
            .await
            .unwrap();
        assert_eq!(t["kind"], "Table");
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "cpu", "memory", "Window"]);
        assert_eq!(
            t["rows"][1]["cells"],
            json!(["web", "251234567n", "16388Ki", "10s"])
        );
        assert_eq!(t["rows"][1]["object"]["kind"], "PartialObjectMetadata");
        let t = api
            .handle(
                &f,
                &route("nodes/n2"),
                &Method::GET,
                &q(&[("includeObject", "None")]),
                accept,
                now(),
            )
            .await
            .unwrap();
        assert_eq!(t["rows"][0]["cells"], json!(["n2", "1500m", "3Gi", "10s"]));
        assert!(t["rows"][0].get("object").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn cache_expires_and_shares_concurrent_fetches() {
        let f = fake();
        let cache = SummaryCache::new(Duration::from_secs(10));
        let n1 = node("n1", json!({}));
        let (a, b) = tokio::join!(cache.get(&f, &n1), cache.get(&f, &n1));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(f.fetches.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(5)).await;
        cache.get(&f, &n1).await.unwrap();
        assert_eq!(f.fetches.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(6)).await;
        cache.get(&f, &n1).await.unwrap();
        assert_eq!(f.fetches.load(Ordering::SeqCst), 2);
        // Failures are cached too.
        let down = node("down", json!({}));
        assert!(cache.get(&f, &down).await.is_err());
        assert!(cache.get(&f, &down).await.is_err());
        assert_eq!(f.fetches.load(Ordering::SeqCst), 3);
        // Forgotten nodes are dropped.
        cache.retain(&BTreeSet::from(["n1"]));
        assert_eq!(cache.slots.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn nodes_whose_kubelet_is_lost_are_not_asked() {
        let mut f = fake();
        f.nodes[1]["status"]["conditions"] = json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "Unknown"}]);
        let api = MetricsApi::default();
        let nodes = api
            .handle(
                &f,
                &route("nodes"),
                &Method::GET,
                &HashMap::new(),
                "",
                now(),
            )
            .await
            .unwrap();
        assert_eq!(nodes["items"].as_array().unwrap().len(), 1);
        assert_eq!(nodes["items"][0]["metadata"]["name"], "n2");
        let mut asked = f.calls.lock().unwrap().clone();
        asked.sort();
        assert_eq!(asked, ["down", "n2"], "n1 is lost: not asked");
        f.nodes[1]["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
        assert!(
            api.node(&f, "n1", now()).await.is_ok(),
            "NotReady is still asked"
        );
    }

    #[test]
    fn kubelet_address_from_node() {
        assert_eq!(
            kubelet_address(&node("n1", json!({}))).unwrap(),
            ("127.0.0.1".to_string(), 10250)
        );
        let mut n = node("n1", json!({}));
        n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] = json!(10251);
        assert_eq!(kubelet_address(&n).unwrap().1, 10251);
        let e = kubelet_address(&json!({"metadata": {"name": "x"}})).unwrap_err();
        assert_eq!(e.to_string(), "node x has no internal ip address");
    }

    // ------------------------------------------------ over TLS, against a stub kubelet

    mod tls {
        use super::*;
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, SanType,
        };
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        pub struct Pki {
            pub ca: String,
            pub server: (String, String),
            pub client: (String, String),
        }

        fn leaf(issuer: &Issuer<'_, KeyPair>, cn: &str, server: bool) -> (String, String) {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            if server {
                p.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            } else {
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            (
                p.signed_by(&key, issuer).unwrap().pem(),
                key.serialize_pem(),
            )
        }

        pub fn pki() -> Pki {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, "ca");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca = p.self_signed(&key).unwrap().pem();
            let issuer = Issuer::from_ca_cert_pem(&ca, key).unwrap();
            Pki {
                server: leaf(&issuer, "node1", true),
                client: leaf(&issuer, "kube-apiserver-kubelet-client", false),
                ca,
            }
        }

        /// Serves one canned HTTP/1.1 response per connection; records request lines.
        pub async fn stub_kubelet(
            pki: &Pki,
            response: String,
            seen: Arc<Mutex<Vec<String>>>,
        ) -> u16 {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let certs: Vec<CertificateDer<'static>> =
                rustls_pemfile::certs(&mut pki.server.0.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap();
            let key: PrivateKeyDer<'static> =
                rustls_pemfile::private_key(&mut pki.server.1.as_bytes())
                    .unwrap()
                    .unwrap();
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut pki.ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .unwrap();
            let cfg = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(certs, key)
                .unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        continue;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    seen.lock()
                        .unwrap()
                        .push(head.lines().next().unwrap_or("").to_string());
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
            port
        }
    }

    fn http_response(code: &str, ct: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {code}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn fetches_the_summary_from_the_kubelet_over_tls() {
        let pki = tls::pki();
        let client = KubeletClient {
            ca_pem: pki.ca.clone(),
            client_cert_pem: pki.client.0.clone(),
            client_key_pem: pki.client.1.clone(),
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let body = summary_json("node1", &[("default", "web")]).to_string();
        let port = tls::stub_kubelet(
            &pki,
            http_response("200 OK", "application/json", &body),
            seen.clone(),
        )
        .await;
        let s = fetch_summary(&client, "127.0.0.1", port, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(s.node.node_name, "node1");
        assert_eq!(s.pods[0].containers.len(), 2);
        assert_eq!(
            seen.lock().unwrap()[0],
            "GET /stats/summary?only_cpu_and_memory=true HTTP/1.1"
        );

        let port = tls::stub_kubelet(
            &pki,
            http_response("403 Forbidden", "text/plain", "Forbidden (user=x)"),
            seen.clone(),
        )
        .await;
        let e = fetch_summary(&client, "127.0.0.1", port, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("kubelet 127.0.0.1:{port} answered 403: Forbidden (user=x)")
        );

        // A body that is not a summary, reached through a Node's address.
        let port = tls::stub_kubelet(
            &pki,
            http_response("200 OK", "application/json", "{not json"),
            seen.clone(),
        )
        .await;
        let mut n = node("node1", json!({}));
        n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] = json!(port);
        let (host, p) = kubelet_address(&n).unwrap();
        let e = fetch_summary(&client, &host, p, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("decoding summary from 127.0.0.1:"),
            "{e}"
        );
    }
}
