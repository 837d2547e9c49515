//! Services in the API server, as upstream kube-apiserver does them:
//!
//! * the Service strategy's pure parts (`SetDefaults_Service`, `PrepareForCreate` /
//!   `PrepareForUpdate` with `patchAllocatedValues`, `NormalizeClusterIPs` and
//!   `dropTypeDependentFields`, IP-family initialisation for an IPv4 single-stack cluster,
//!   and `ValidateService` / `ValidateServiceUpdate` with upstream's messages);
//! * ClusterIP and NodePort allocation (`pkg/registry/core/service/{ipallocator,
//!   portallocator}` and `storage/alloc.go`): every allocated IP and port is a store key of
//!   its own, created with create-if-absent, so allocation is atomic and survives kill -9;
//!   a repair pass (upstream's repair controllers) reconciles those keys with the stored
//!   Services at startup and every few minutes;
//! * the system Services the API server keeps itself: `default/kubernetes` and
//!   `kube-system/kube-dns`, selector-less, with their Endpoints and EndpointSlices.
//!
//! Claim keys live under `/registry/minik8s/ranges/`; resource keys are
//! `/registry/<group>/<plural>/...` with group `core` or a dotted API group, so the two
//! never collide.

use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::registry::{DeleteOptions, FieldValidation, Registry, WriteOptions};
use crate::resources::{self, ResourceInfo};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Backend, KeyValue, ListOptions, StoreError};

/// Prefix of the ClusterIP claim keys (`<prefix><ip>`).
pub const IP_CLAIM_PREFIX: &str = "/registry/minik8s/ranges/serviceips/";
/// Prefix of the NodePort claim keys (`<prefix><port>`).
pub const PORT_CLAIM_PREFIX: &str = "/registry/minik8s/ranges/servicenodeports/";
/// Upstream's default `--service-node-port-range`.
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";
/// How often the repair pass runs after startup (upstream: 3 minutes).
pub const REPAIR_INTERVAL: Duration = Duration::from_secs(180);
/// How often the system Services are reconciled (upstream's endpoint reconciler: 10 s).
pub const SYSTEM_SERVICES_INTERVAL: Duration = Duration::from_secs(10);
/// Repair passes a claim must be seen leaked in before it is released (upstream: 3).
const LEAK_PASSES: u32 = 3;
/// `core.MaxClientIPServiceAffinitySeconds` / `DefaultClientIPServiceAffinitySeconds`.
const MAX_AFFINITY_SECONDS: i64 = 86400;
const DEFAULT_AFFINITY_SECONDS: i64 = 10800;

const CLUSTER_IP: &str = "ClusterIP";
const NODE_PORT: &str = "NodePort";
const LOAD_BALANCER: &str = "LoadBalancer";
const EXTERNAL_NAME: &str = "ExternalName";
const NONE: &str = "None";
const IP_INVALID: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const PORT_NUM: &str = "must be between 1 and 65535, inclusive";

#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("parsing service cidr {value:?}: {reason}")]
    CidrParse { value: String, reason: String },
    #[error("parsing node port range {value:?}: {reason}")]
    PortRangeParse { value: String, reason: String },
    #[error("listing for the allocation repair: {0}")]
    RepairList(StoreError),
    #[error("reconciling {what} {namespace}/{name}: {source}")]
    Reconcile {
        what: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<ApiError>,
    },
}

/// Why one IP or port could not be allocated; the texts are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range}")]
    IpNotInRange { ip: String, range: String },
    #[error("provided IP is already allocated")]
    IpAllocated,
    #[error("provided port is not in the valid range. The range of valid ports is {range}")]
    PortNotInRange { range: String },
    #[error("provided port is already allocated")]
    PortAllocated,
    #[error("range is full")]
    Full,
}

/// An allocation step failed: the range said no, or the store did.
enum Fail {
    Alloc(AllocError),
    Store(StoreError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

// ---------------------------------------------------------------------------------------
// Ranges

/// `min(max(min, size/step), max)`, 0 for ranges of at most `min`: the size of the band at
/// the bottom of a range kept for static requests (`calculateRangeOffset`).
pub fn range_offset(size: u64, min: u64, max: u64, step: u64) -> u32 {
    if size <= min {
        return 0;
    }
    (size / step).clamp(min, max) as u32
}

/// An IPv4 service CIDR. Allocatable addresses exclude the network and broadcast addresses;
/// index 0 is the first address after the network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceCidr {
    network: u32,
    bits: u8,
}

impl ServiceCidr {
    pub fn parse(s: &str) -> Result<Self, ServicesError> {
        let err = |reason: &str| ServicesError::CidrParse {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let (ip, bits) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| err("want ADDR/BITS"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| err("not an IPv4 address"))?;
        let bits: u8 = bits.parse().map_err(|_| err("bad prefix length"))?;
        if bits > 32 {
            return Err(err("prefix length above 32"));
        }
        let c = ServiceCidr { network: 0, bits };
        Ok(ServiceCidr {
            network: u32::from(ip) & c.mask(),
            bits,
        })
    }
    fn mask(&self) -> u32 {
        if self.bits == 0 {
            0
        } else {
            u32::MAX << (32 - self.bits)
        }
    }
    /// Addresses in the CIDR, network and broadcast included (`RangeSize`).
    pub fn range_size(&self) -> u64 {
        1u64 << (32 - u32::from(self.bits))
    }
    /// Allocatable addresses.
    pub fn max(&self) -> u32 {
        self.range_size().saturating_sub(2) as u32
    }
    fn base(&self) -> u32 {
        self.network.wrapping_add(1)
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.network
    }
    /// The index of an allocatable address, None outside the allocatable part.
    pub fn index_of(&self, ip: Ipv4Addr) -> Option<u32> {
        if !self.contains(ip) {
            return None;
        }
        let off = u32::from(ip).checked_sub(self.base())?;
        (off < self.max()).then_some(off)
    }
    pub fn ip_at(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base().wrapping_add(index))
    }
    /// The first allocatable address (the `kubernetes` Service's).
    pub fn first(&self) -> Option<Ipv4Addr> {
        (self.max() > 0).then(|| self.ip_at(0))
    }
    /// Size of the static band at the bottom: `min(max(16, size/16), 256)`.
    pub fn static_band(&self) -> u32 {
        range_offset(self.range_size(), 16, 256, 16).min(self.max())
    }
}

impl std::fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.bits)
    }
}

/// A node port range, `base` up to `base + size - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    base: u16,
    size: u32,
}

impl PortRange {
    /// `30000-32767`, `30000+2767` or a single port, as `net.ParsePortRange`.
    pub fn parse(s: &str) -> Result<Self, ServicesError> {
        let err = |reason: &str| ServicesError::PortRangeParse {
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let v = s.trim();
        let num = |x: &str| x.trim().parse::<u32>().map_err(|_| err("not a number"));
        let (low, high) = if let Some((a, b)) = v.split_once('-') {
            (num(a)?, num(b)?)
        } else if let Some((a, n)) = v.split_once('+') {
            let a = num(a)?;
            (a, a + num(n)?)
        } else {
            let a = num(v)?;
            (a, a)
        };
        if low == 0 || low > 65535 || high > 65535 {
            return Err(err("ports must be between 1 and 65535"));
        }
        if high < low {
            return Err(err("end port cannot be less than start port"));
        }
        Ok(PortRange {
            base: low as u16,
            size: high - low + 1,
        })
    }
    pub fn contains(&self, port: i64) -> bool {
        port >= i64::from(self.base) && port < i64::from(self.base) + i64::from(self.size)
    }
    pub fn size(&self) -> u32 {
        self.size
    }
    pub fn port_at(&self, index: u32) -> u16 {
        (u32::from(self.base) + index) as u16
    }
    /// Size of the static band at the bottom: `min(max(16, size/32), 128)`.
    pub fn static_band(&self) -> u32 {
        range_offset(u64::from(self.size), 16, 128, 32)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.base, u32::from(self.base) + self.size - 1)
    }
}

/// The order dynamic allocation probes indices of a range of `max`: the upper band
/// `[offset, max)` from `start_upper`, wrapping, then the static band `[0, offset)` from
/// `start_lower` (upstream's `randomScanStrategyWithOffset`). Each index appears once.
pub fn probe_order(
    max: u32,
    offset: u32,
    start_upper: u32,
    start_lower: u32,
) -> impl Iterator<Item = u32> {
    let offset = offset.min(max);
    let upper = max - offset;
    let lower = offset;
    let su = if upper == 0 { 0 } else { start_upper % upper };
    let sl = if lower == 0 { 0 } else { start_lower % lower };
    (0..upper)
        .map(move |i| offset + (su + i) % upper)
        .chain((0..lower).map(move |i| (sl + i) % lower))
}

fn random_below(n: u32) -> u32 {
    use rand::Rng;
    if n == 0 {
        0
    } else {
        rand::rng().random_range(0..n)
    }
}

// ---------------------------------------------------------------------------------------
// Reading Service objects

fn spec(svc: &Value) -> &Value {
    svc.get("spec").unwrap_or(&Value::Null)
}

fn spec_str<'a>(svc: &'a Value, key: &str) -> &'a str {
    spec(svc).get(key).and_then(Value::as_str).unwrap_or("")
}

fn spec_mut(svc: &mut Value) -> &mut Map<String, Value> {
    if !svc.get("spec").is_some_and(Value::is_object) {
        svc["spec"] = json!({});
    }
    svc["spec"].as_object_mut().expect("spec is an object")
}

fn str_list(v: &Value, key: &str) -> Option<Vec<String>> {
    v.get(key).and_then(Value::as_array).map(|a| {
        a.iter()
            .map(|x| x.as_str().unwrap_or("").to_string())
            .collect()
    })
}

fn cluster_ips(svc: &Value) -> Vec<String> {
    str_list(spec(svc), "clusterIPs").unwrap_or_default()
}

/// The type, `ClusterIP` when unset (defaulting sets it before anything reads it).
fn svc_type(svc: &Value) -> &str {
    match spec_str(svc, "type") {
        "" => CLUSTER_IP,
        t => t,
    }
}

fn ports(svc: &Value) -> &[Value] {
    spec(svc)
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn health_check_node_port(svc: &Value) -> i64 {
    int(spec(svc), "healthCheckNodePort")
}

/// `isHeadlessService`: exactly one cluster IP, `None`.
fn is_headless(svc: &Value) -> bool {
    let ips = cluster_ips(svc);
    ips.len() == 1 && ips[0] == NONE
}

fn has_selector(svc: &Value) -> bool {
    spec(svc)
        .get("selector")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
}

fn needs_cluster_ip(svc: &Value) -> bool {
    svc_type(svc) != EXTERNAL_NAME
}

fn needs_node_port(svc: &Value) -> bool {
    matches!(svc_type(svc), NODE_PORT | LOAD_BALANCER)
}

/// `NeedsHealthCheck`: LoadBalancer with externalTrafficPolicy Local.
fn needs_health_check(svc: &Value) -> bool {
    svc_type(svc) == LOAD_BALANCER && spec_str(svc, "externalTrafficPolicy") == "Local"
}

/// `ExternallyAccessible`.
fn externally_accessible(svc: &Value) -> bool {
    let ty = svc_type(svc);
    ty == LOAD_BALANCER
        || ty == NODE_PORT
        || (ty == CLUSTER_IP
            && spec(svc)
                .get("externalIPs")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty()))
}

fn should_allocate_node_ports(svc: &Value) -> bool {
    match svc_type(svc) {
        NODE_PORT => true,
        LOAD_BALANCER => spec(svc)
            .get("allocateLoadBalancerNodePorts")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        _ => false,
    }
}

/// Non-zero node ports of the Service's ports.
fn node_ports(svc: &Value) -> Vec<i64> {
    ports(svc)
        .iter()
        .map(|p| int(p, "nodePort"))
        .filter(|n| *n != 0)
        .collect()
}

fn is_ipv6(s: &str) -> bool {
    matches!(s.parse::<IpAddr>(), Ok(IpAddr::V6(_)))
}

/// Go's `%#v` of a `[]string` (`[]string{"a", "b"}`; `[]string(nil)` when absent).
pub fn go_strings(list: Option<&[String]>) -> String {
    match list {
        None => "[]string(nil)".to_string(),
        Some(l) => {
            let items: Vec<String> = l.iter().map(|s| format!("{s:?}")).collect();
            format!("[]string{{{}}}", items.join(", "))
        }
    }
}

fn invalid_raw(field: impl Into<String>, rendered: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {rendered}: {detail}"),
        field: field.into(),
    }
}

fn required_detail(field: impl Into<String>, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: format!("Required value: {detail}"),
        field: field.into(),
    }
}

fn duplicate_raw(field: impl Into<String>, rendered: &str) -> Cause {
    Cause {
        reason: "FieldValueDuplicate".into(),
        message: format!("Duplicate value: {rendered}"),
        field: field.into(),
    }
}

fn cluster_ips_value(svc: &Value) -> String {
    go_strings(str_list(spec(svc), "clusterIPs").as_deref())
}

// ---------------------------------------------------------------------------------------
// Defaulting and preparation (pure)

fn set_default(m: &mut Map<String, Value>, key: &str, val: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), val);
    }
}

/// `SetDefaults_Service`.
pub fn set_defaults(svc: &mut Value) {
    let ty;
    {
        let spec = spec_mut(svc);
        set_default(spec, "sessionAffinity", json!("None"));
        match spec.get("sessionAffinity").and_then(Value::as_str) {
            Some("None") => {
                spec.remove("sessionAffinityConfig");
            }
            Some("ClientIP") => {
                let has_timeout = spec
                    .get("sessionAffinityConfig")
                    .and_then(|c| c.pointer("/clientIP/timeoutSeconds"))
                    .is_some_and(|t| !t.is_null());
                if !has_timeout {
                    spec.insert(
                        "sessionAffinityConfig".into(),
                        json!({"clientIP": {"timeoutSeconds": DEFAULT_AFFINITY_SECONDS}}),
                    );
                }
            }
            _ => {}
        }
        match spec.get("type").and_then(Value::as_str) {
            None | Some("") => {
                spec.insert("type".into(), json!(CLUSTER_IP));
            }
            _ => {}
        }
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports {
                let Some(p) = p.as_object_mut() else { continue };
                match p.get("protocol").and_then(Value::as_str) {
                    None | Some("") => {
                        p.insert("protocol".into(), json!("TCP"));
                    }
                    _ => {}
                }
                let unset = match p.get("targetPort") {
                    None | Some(Value::Null) => true,
                    Some(Value::Number(n)) => n.as_i64() == Some(0),
                    Some(Value::String(s)) => s.is_empty(),
                    _ => false,
                };
                if unset {
                    if let Some(port) = p.get("port").cloned() {
                        p.insert("targetPort".into(), port);
                    }
                }
            }
        }
        ty = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(CLUSTER_IP)
            .to_string();
    }
    let accessible = externally_accessible(svc);
    let spec = spec_mut(svc);
    if accessible
        && spec
            .get("externalTrafficPolicy")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        spec.insert("externalTrafficPolicy".into(), json!("Cluster"));
    }
    if matches!(ty.as_str(), CLUSTER_IP | NODE_PORT | LOAD_BALANCER) {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == LOAD_BALANCER {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if svc.get("status").is_none_or(Value::is_null) {
        svc["status"] = json!({"loadBalancer": {}});
    }
    if ty == LOAD_BALANCER {
        if let Some(ings) = svc
            .pointer_mut("/status/loadBalancer/ingress")
            .and_then(Value::as_array_mut)
        {
            for ing in ings {
                let Some(ing) = ing.as_object_mut() else {
                    continue;
                };
                let has_ip = ing
                    .get("ip")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty());
                if has_ip {
                    set_default(ing, "ipMode", json!("VIP"));
                }
            }
        }
    }
}

/// `PrepareForCreate`: status reset, `clusterIPs` initialised from `clusterIP`, IP family
/// fields initialised.
pub fn prepare_create(svc: &mut Value) {
    svc["status"] = json!({"loadBalancer": {}});
    let ip = spec_str(svc, "clusterIP").to_string();
    if !ip.is_empty() && cluster_ips(svc).is_empty() {
        spec_mut(svc).insert("clusterIPs".into(), json!([ip]));
    }
    init_ip_family_fields(svc, None);
}

/// `PrepareForUpdate`'s Service parts, in upstream's order: `patchAllocatedValues`,
/// `NormalizeClusterIPs`, `dropTypeDependentFields`; then the IP family fields.
pub fn prepare_update(new: &mut Value, old: &Value) {
    patch_allocated_values(new, old);
    normalize_cluster_ips_update(new, old);
    drop_type_dependent_fields(new, old);
    init_ip_family_fields(new, Some(old));
}

/// Fills in allocated values a client left out of an update (idempotent PUTs).
fn patch_allocated_values(new: &mut Value, old: &Value) {
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        let old_ip = spec_str(old, "clusterIP").to_string();
        let old_ips = str_list(spec(old), "clusterIPs").unwrap_or_default();
        let new_ips_empty = cluster_ips(new).is_empty();
        let spec = spec_mut(new);
        if spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
            && !old_ip.is_empty()
        {
            spec.insert("clusterIP".into(), json!(old_ip));
        }
        if new_ips_empty && !old_ips.is_empty() {
            spec.insert("clusterIPs".into(), json!(old_ips));
        }
    }
    if needs_node_port(old) && needs_node_port(new) {
        let old_set: HashSet<i64> = node_ports(old).into_iter().collect();
        let used: HashSet<i64> = node_ports(new)
            .into_iter()
            .filter(|n| old_set.contains(n))
            .collect();
        let by_name: HashMap<String, i64> = ports(old)
            .iter()
            .map(|p| {
                (
                    p.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    int(p, "nodePort"),
                )
            })
            .collect();
        if let Some(ps) = spec_mut(new).get_mut("ports").and_then(Value::as_array_mut) {
            for p in ps {
                if int(p, "nodePort") != 0 {
                    continue;
                }
                let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                let old_val = by_name.get(name).copied().unwrap_or(0);
                if old_val != 0 && !used.contains(&old_val) {
                    p["nodePort"] = json!(old_val);
                }
            }
        }
    }
    if needs_health_check(old) && needs_health_check(new) && health_check_node_port(new) == 0 {
        let hc = health_check_node_port(old);
        if hc != 0 {
            spec_mut(new).insert("healthCheckNodePort".into(), json!(hc));
        }
    }
}

fn same_list(a: &Value, b: &Value, key: &str) -> bool {
    str_list(spec(a), key).unwrap_or_default() == str_list(spec(b), key).unwrap_or_default()
}

/// `NormalizeClusterIPs` for an update: keeps `clusterIP` and `clusterIPs` in step.
fn normalize_cluster_ips_update(new: &mut Value, old: &Value) {
    let old_ip = spec_str(old, "clusterIP").to_string();
    let old_ips = cluster_ips(old);
    let new_ip = spec_str(new, "clusterIP").to_string();
    if !old_ips.is_empty() && cluster_ips(new).is_empty() && old_ip == new_ip {
        spec_mut(new).insert("clusterIPs".into(), json!(old_ips));
    }
    if old_ip != new_ip {
        let same = same_list(old, new, "clusterIPs");
        if !old_ip.is_empty() && new_ip.is_empty() {
            if same {
                spec_mut(new).remove("clusterIPs");
            }
        } else if same {
            spec_mut(new).insert("clusterIPs".into(), json!([new_ip]));
        }
    }
}

/// `dropTypeDependentFields`: wipes fields the new type does not use when the client left
/// them as they were.
fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        let same_ips = same_list(old, new, "clusterIPs");
        let same_fam = same_list(old, new, "ipFamilies");
        let same_pol = spec(old).get("ipFamilyPolicy") == spec(new).get("ipFamilyPolicy");
        let s = spec_mut(new);
        if same_ips {
            s.remove("clusterIP");
            s.remove("clusterIPs");
        }
        if same_fam {
            s.remove("ipFamilies");
        }
        if same_pol {
            s.remove("ipFamilyPolicy");
        }
    }
    if needs_node_port(old) && !needs_node_port(new) {
        let old_set: HashSet<i64> = node_ports(old).into_iter().collect();
        if node_ports(new).iter().all(|n| old_set.contains(n)) {
            if let Some(ps) = spec_mut(new).get_mut("ports").and_then(Value::as_array_mut) {
                for p in ps.iter_mut().filter_map(Value::as_object_mut) {
                    p.remove("nodePort");
                }
            }
        }
    }
    if needs_health_check(old)
        && !needs_health_check(new)
        && health_check_node_port(old) == health_check_node_port(new)
    {
        spec_mut(new).remove("healthCheckNodePort");
    }
    let old_lb = svc_type(old) == LOAD_BALANCER;
    let new_lb = svc_type(new) == LOAD_BALANCER;
    if old_lb && !new_lb {
        let o = spec(old).get("allocateLoadBalancerNodePorts").cloned();
        let n = spec(new).get("allocateLoadBalancerNodePorts").cloned();
        if o.is_some() && o == n {
            spec_mut(new).remove("allocateLoadBalancerNodePorts");
        }
        if spec(old).get("loadBalancerClass") == spec(new).get("loadBalancerClass") {
            spec_mut(new).remove("loadBalancerClass");
        }
    }
    if externally_accessible(old)
        && !externally_accessible(new)
        && spec_str(old, "externalTrafficPolicy") == spec_str(new, "externalTrafficPolicy")
    {
        spec_mut(new).remove("externalTrafficPolicy");
    }
    if !new_lb {
        if !new.get("status").is_some_and(Value::is_object) {
            new["status"] = json!({});
        }
        new["status"]["loadBalancer"] = json!({});
    }
}

/// `initIPFamilyFields` for an IPv4 single-stack cluster: `ipFamilyPolicy` (the old
/// policy on updates, RequireDualStack for headless selector-less Services, else
/// SingleStack) and `ipFamilies`. Inputs this cluster cannot serve are left for
/// validation to report.
pub fn init_ip_family_fields(svc: &mut Value, old: Option<&Value>) {
    if svc_type(svc) == EXTERNAL_NAME {
        return;
    }
    let headless_selectorless = spec_str(svc, "clusterIP") == NONE && !has_selector(svc);
    if spec(svc).get("ipFamilyPolicy").is_none_or(Value::is_null) {
        let policy = match old
            .and_then(|o| spec(o).get("ipFamilyPolicy"))
            .filter(|p| !p.is_null())
        {
            Some(p) => p.clone(),
            None if headless_selectorless => json!("RequireDualStack"),
            None => json!("SingleStack"),
        };
        spec_mut(svc).insert("ipFamilyPolicy".into(), policy);
    }
    let policy = spec_str(svc, "ipFamilyPolicy").to_string();
    let mut families = str_list(spec(svc), "ipFamilies").unwrap_or_default();
    for (i, ip) in cluster_ips(svc).iter().enumerate() {
        if ip == NONE {
            break;
        }
        if i >= families.len() {
            match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => families.push("IPv4".into()),
                // IPv6 is not configured here; validation says so.
                _ => return,
            }
        }
    }
    if headless_selectorless {
        if families.is_empty() {
            families.push("IPv4".into());
        }
        if families.len() < 2 && policy != "SingleStack" {
            let alt = if families[0] == "IPv4" {
                "IPv6"
            } else {
                "IPv4"
            };
            families.push(alt.into());
        }
        spec_mut(svc).insert("ipFamilies".into(), json!(families));
        return;
    }
    if families.is_empty() {
        families.push("IPv4".into());
    }
    spec_mut(svc).insert("ipFamilies".into(), json!(families));
}

// ---------------------------------------------------------------------------------------
// Validation (pure)

/// `IsValidPortName` messages.
fn port_name_problems(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if name.len() > 15 {
        out.push("must be no more than 15 characters".to_string());
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".into());
    }
    if name.contains("--") {
        out.push("must not contain consecutive hyphens".into());
    }
    if name.starts_with('-') || name.ends_with('-') {
        out.push("must not begin or end with a hyphen".into());
    }
    out
}

fn valid_port(n: i64) -> bool {
    (1..=65535).contains(&n)
}

fn validate_service_port(
    p: &Value,
    require_name: bool,
    names: &mut HashSet<String>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let name = p.get("name").and_then(Value::as_str).unwrap_or("");
    if require_name && name.is_empty() {
        causes.push(Cause::required(format!("{path}.name")));
    } else if !name.is_empty() {
        for msg in crate::validation::name_problems(name, crate::validation::NameRule::Label) {
            causes.push(Cause::invalid(format!("{path}.name"), &json!(name), &msg));
        }
        if !names.insert(name.to_string()) {
            causes.push(Cause::duplicate(format!("{path}.name"), &json!(name)));
        }
    }
    let port = int(p, "port");
    if !valid_port(port) {
        causes.push(Cause::invalid(
            format!("{path}.port"),
            &json!(port),
            PORT_NUM,
        ));
    }
    match p.get("protocol").and_then(Value::as_str).unwrap_or("") {
        "" => causes.push(Cause::required(format!("{path}.protocol"))),
        "TCP" | "UDP" | "SCTP" => {}
        other => causes.push(Cause::not_supported(
            format!("{path}.protocol"),
            &json!(other),
            &["SCTP", "TCP", "UDP"],
        )),
    }
    match p.get("targetPort") {
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            if !valid_port(n) {
                causes.push(Cause::invalid(
                    format!("{path}.targetPort"),
                    &json!(n),
                    PORT_NUM,
                ));
            }
        }
        Some(Value::String(s)) => {
            for msg in port_name_problems(s) {
                causes.push(Cause::invalid(
                    format!("{path}.targetPort"),
                    &json!(s),
                    &msg,
                ));
            }
        }
        _ => {}
    }
    if let Some(ap) = p.get("appProtocol").and_then(Value::as_str) {
        if let Err(msg) = crate::selector::validate_label_key(ap) {
            causes.push(Cause::invalid(
                format!("{path}.appProtocol"),
                &json!(ap),
                &msg,
            ));
        }
    }
}

/// `ValidateEndpointIP` (after the address parsed).
fn special_ip_problems(ip: IpAddr, raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    if ip.is_unspecified() {
        out.push(format!("may not be unspecified ({raw})"));
    }
    if ip.is_loopback() {
        out.push("may not be in the loopback range (127.0.0.0/8, ::1/128)".into());
    }
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local {
        out.push("may not be in the link-local range (169.254.0.0/16, fe80::/10)".into());
    }
    let ll_multicast = match ip {
        IpAddr::V4(v4) => u32::from(v4) & 0xffff_ff00 == 0xe000_0000,
        IpAddr::V6(v6) => (v6.segments()[0] & 0xff0f) == 0xff02,
    };
    if ll_multicast {
        out.push("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)".into());
    }
    out
}

/// Go's `%#v` of the `core.ServicePort` key used for duplicate (protocol, port) pairs.
fn go_service_port_key(protocol: &str, port: i64) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{protocol:?}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}"
    )
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn validate_cluster_ips_related(svc: &Value, causes: &mut Vec<Cause>) {
    if svc_type(svc) == EXTERNAL_NAME {
        return;
    }
    let s = spec(svc);
    let ip = spec_str(svc, "clusterIP");
    let ips_opt = str_list(s, "clusterIPs");
    let ips = ips_opt.clone().unwrap_or_default();
    let rendered = go_strings(ips_opt.as_deref());
    if !ip.is_empty() {
        if ips.is_empty() {
            causes.push(Cause::required("spec.clusterIPs"));
        } else if ips[0] != ip {
            causes.push(invalid_raw(
                "spec.clusterIPs",
                &rendered,
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        causes.push(invalid_raw(
            "spec.clusterIPs",
            &rendered,
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let families = str_list(s, "ipFamilies").unwrap_or_default();
    let mut seen = HashSet::new();
    for (i, f) in families.iter().enumerate() {
        if f != "IPv4" && f != "IPv6" {
            causes.push(Cause::not_supported(
                format!("spec.ipFamilies[{i}]"),
                &json!(f),
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(f.clone()) {
            causes.push(Cause::duplicate(format!("spec.ipFamilies[{i}]"), &json!(f)));
        }
    }
    if let Some(p) = s.get("ipFamilyPolicy").filter(|p| !p.is_null()) {
        let ok = ["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !p.as_str().is_some_and(|p| ok.contains(&p)) {
            causes.push(Cause::not_supported("spec.ipFamilyPolicy", p, &ok));
        }
    }
    let mut bad = false;
    for (i, cip) in ips.iter().enumerate() {
        if i == 0 && cip == NONE {
            if ips.len() > 1 {
                bad = true;
                causes.push(invalid_raw(
                    "spec.clusterIPs",
                    &rendered,
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if cip.is_empty() {
            bad = true;
            causes.push(Cause::required(format!("spec.clusterIPs[{i}]")));
        } else if cip.parse::<IpAddr>().is_err() {
            bad = true;
            causes.push(Cause::invalid(
                format!("spec.clusterIPs[{i}]"),
                &json!(cip),
                IP_INVALID,
            ));
        }
    }
    if ips.len() > 2 {
        causes.push(invalid_raw(
            "spec.clusterIPs",
            &rendered,
            "may only hold up to 2 values",
        ));
    }
    if bad {
        return;
    }
    if ips.len() > 1 && is_ipv6(&ips[0]) == is_ipv6(&ips[1]) {
        causes.push(invalid_raw(
            "spec.clusterIPs",
            &rendered,
            "may specify no more than one IP for each IP family",
        ));
    }
    if !is_headless(svc) {
        for (i, cip) in ips.iter().enumerate().take(families.len()) {
            if families[i] == "IPv4" && is_ipv6(cip) {
                causes.push(Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    &json!(cip),
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if families[i] == "IPv6" && !is_ipv6(cip) {
                causes.push(Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    &json!(cip),
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
}

/// What `initIPFamilyFields` refuses on an IPv4 single-stack cluster.
fn validate_single_stack(svc: &Value, causes: &mut Vec<Cause>) {
    if svc_type(svc) == EXTERNAL_NAME {
        return;
    }
    let families = str_list(spec(svc), "ipFamilies").unwrap_or_default();
    let ips = cluster_ips(svc);
    for (i, ip) in ips.iter().enumerate() {
        if ip == NONE {
            break;
        }
        if i >= families.len() && is_ipv6(ip) {
            causes.push(invalid_raw(
                format!("spec.clusterIPs[{i}]"),
                &cluster_ips_value(svc),
                "IPv6 is not configured on this cluster",
            ));
        }
    }
    if spec_str(svc, "clusterIP") == NONE && !has_selector(svc) {
        return;
    }
    if spec_str(svc, "ipFamilyPolicy") == "RequireDualStack" {
        causes.push(Cause::invalid(
            "spec.ipFamilyPolicy",
            &json!("RequireDualStack"),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, f) in families.iter().enumerate() {
        if f == "IPv6" {
            causes.push(Cause::invalid(
                format!("spec.ipFamilies[{i}]"),
                &json!(f),
                "not configured on this cluster",
            ));
        }
    }
}

/// `ValidateService` (the spec part; object meta is validated by the registry).
pub fn validate_service(svc: &Value, causes: &mut Vec<Cause>) {
    let s = spec(svc);
    let ty = spec_str(svc, "type");
    let headless = is_headless(svc);
    let ports = ports(svc);
    if ports.is_empty() && !headless && ty != EXTERNAL_NAME {
        causes.push(Cause::required("spec.ports"));
    }
    match ty {
        LOAD_BALANCER | NODE_PORT if headless => {
            causes.push(Cause::invalid(
                "spec.clusterIPs[0]",
                &json!(NONE),
                &format!("may not be set to 'None' for {ty} services"),
            ));
        }
        EXTERNAL_NAME => {
            if !cluster_ips(svc).is_empty() {
                causes.push(Cause::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            if s.get("ipFamilies")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                causes.push(Cause::forbidden(
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                ));
            }
            if s.get("ipFamilyPolicy").is_some_and(|p| !p.is_null()) {
                causes.push(Cause::forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
            let cname = spec_str(svc, "externalName");
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                causes.push(Cause::required("spec.externalName"));
            } else {
                for msg in
                    crate::validation::name_problems(cname, crate::validation::NameRule::Subdomain)
                {
                    causes.push(Cause::invalid("spec.externalName", &json!(cname), &msg));
                }
            }
        }
        _ => {}
    }
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        validate_service_port(
            p,
            ports.len() > 1,
            &mut names,
            &format!("spec.ports[{i}]"),
            causes,
        );
    }
    if let Some(sel) = s.get("selector").and_then(Value::as_object) {
        for (k, v) in sel {
            if let Err(msg) = crate::selector::validate_label_key(k) {
                causes.push(Cause::invalid("spec.selector", &json!(k), &msg));
            }
            let v = v.as_str().unwrap_or("");
            if let Err(msg) = crate::selector::validate_label_value(v) {
                causes.push(Cause::invalid("spec.selector", &json!(v), &msg));
            }
        }
    }
    let affinity = spec_str(svc, "sessionAffinity");
    match affinity {
        "" => causes.push(Cause::required("spec.sessionAffinity")),
        "ClientIP" => validate_client_ip_affinity(s, causes),
        NONE => {
            if s.get("sessionAffinityConfig").is_some_and(|c| !c.is_null()) {
                causes.push(Cause::forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => causes.push(Cause::not_supported(
            "spec.sessionAffinity",
            &json!(other),
            &["ClientIP", "None"],
        )),
    }
    validate_cluster_ips_related(svc, causes);
    for (i, ip) in str_list(s, "externalIPs")
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let path = format!("spec.externalIPs[{i}]");
        match ip.parse::<IpAddr>() {
            Err(_) => causes.push(Cause::invalid(path, &json!(ip), IP_INVALID)),
            Ok(parsed) => {
                for msg in special_ip_problems(parsed, ip) {
                    causes.push(Cause::invalid(path.clone(), &json!(ip), &msg));
                }
            }
        }
    }
    match ty {
        "" => causes.push(Cause::required("spec.type")),
        CLUSTER_IP | NODE_PORT | LOAD_BALANCER | EXTERNAL_NAME => {}
        other => causes.push(Cause::not_supported(
            "spec.type",
            &json!(other),
            &[CLUSTER_IP, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT],
        )),
    }
    if ty == CLUSTER_IP {
        for (i, p) in ports.iter().enumerate() {
            if int(p, "nodePort") != 0 {
                causes.push(Cause::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut seen_np = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let np = int(p, "nodePort");
        if np == 0 {
            continue;
        }
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("");
        if !seen_np.insert((proto.to_string(), np)) {
            causes.push(Cause::duplicate(
                format!("spec.ports[{i}].nodePort"),
                &json!(np),
            ));
        }
    }
    let mut seen_port = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("");
        let port = int(p, "port");
        if !seen_port.insert((proto.to_string(), port)) {
            causes.push(duplicate_raw(
                format!("spec.ports[{i}]"),
                &go_service_port_key(proto, port),
            ));
        }
    }
    validate_source_ranges(svc, causes);
    validate_external_traffic_policy(svc, causes);
    match s.get("internalTrafficPolicy").and_then(Value::as_str) {
        None => {
            if matches!(ty, CLUSTER_IP | NODE_PORT | LOAD_BALANCER) {
                causes.push(Cause::required("spec.internalTrafficPolicy"));
            }
        }
        Some("Cluster" | "Local") => {}
        Some(other) => causes.push(Cause::not_supported(
            "spec.internalTrafficPolicy",
            &json!(other),
            &["Cluster", "Local"],
        )),
    }
    let alloc_lb = s
        .get("allocateLoadBalancerNodePorts")
        .filter(|v| !v.is_null());
    if ty == LOAD_BALANCER {
        if alloc_lb.is_none() {
            causes.push(Cause::required("spec.allocateLoadBalancerNodePorts"));
        }
    } else if alloc_lb.is_some() {
        causes.push(Cause::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    validate_single_stack(svc, causes);
}

fn validate_client_ip_affinity(s: &Value, causes: &mut Vec<Cause>) {
    const WHEN: &str = "when session affinity type is ClientIP";
    let Some(cfg) = s.get("sessionAffinityConfig").filter(|c| !c.is_null()) else {
        causes.push(required_detail("spec.sessionAffinityConfig", WHEN));
        return;
    };
    let Some(cip) = cfg.get("clientIP").filter(|c| !c.is_null()) else {
        causes.push(required_detail("spec.sessionAffinityConfig.clientIP", WHEN));
        return;
    };
    let path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds";
    match cip.get("timeoutSeconds").and_then(Value::as_i64) {
        None => causes.push(required_detail(path, WHEN)),
        Some(t) if t <= 0 || t > MAX_AFFINITY_SECONDS => causes.push(Cause::invalid(
            path,
            &json!(t),
            &format!("must be greater than 0 and less than {MAX_AFFINITY_SECONDS}"),
        )),
        Some(_) => {}
    }
}

const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";

fn validate_source_ranges(svc: &Value, causes: &mut Vec<Cause>) {
    let ranges = str_list(spec(svc), "loadBalancerSourceRanges").unwrap_or_default();
    let ann = meta::meta(svc)
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(SOURCE_RANGES_ANNOTATION))
        .and_then(Value::as_str);
    if ranges.is_empty() && ann.is_none() {
        return;
    }
    let (path, val, items): (String, String, Vec<String>) = if !ranges.is_empty() {
        (
            "spec.LoadBalancerSourceRanges".into(),
            format!("[{}]", ranges.join(" ")),
            ranges.clone(),
        )
    } else {
        let a = ann.unwrap_or("");
        (
            format!("metadata.annotations[{SOURCE_RANGES_ANNOTATION}]"),
            a.to_string(),
            a.split(',').map(|x| x.trim().to_string()).collect(),
        )
    };
    if svc_type(svc) != LOAD_BALANCER {
        causes.push(Cause::forbidden(
            path.clone(),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    let valid_cidr = |c: &str| {
        let c = c.trim();
        c.split_once('/').is_some_and(|(ip, bits)| {
            match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
                (Ok(IpAddr::V4(_)), Ok(b)) => b <= 32,
                (Ok(IpAddr::V6(_)), Ok(b)) => b <= 128,
                _ => false,
            }
        })
    };
    if !items
        .iter()
        .filter(|c| !c.is_empty())
        .all(|c| valid_cidr(c))
    {
        causes.push(Cause::invalid(
            path,
            &json!(val),
            "must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 ",
        ));
    }
}

/// `validateServiceExternalTrafficPolicy`. A missing `healthCheckNodePort` is not an
/// error here: allocation fills it in after validation.
fn validate_external_traffic_policy(svc: &Value, causes: &mut Vec<Cause>) {
    let etp = spec_str(svc, "externalTrafficPolicy");
    if !externally_accessible(svc) {
        if !etp.is_empty() {
            causes.push(Cause::invalid(
                "spec.externalTrafficPolicy",
                &json!(etp),
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        causes.push(Cause::required("spec.externalTrafficPolicy"));
    } else if etp != "Cluster" && etp != "Local" {
        causes.push(Cause::not_supported(
            "spec.externalTrafficPolicy",
            &json!(etp),
            &["Cluster", "Local"],
        ));
    }
    let hc = health_check_node_port(svc);
    if !needs_health_check(svc) {
        if hc != 0 {
            causes.push(Cause::invalid(
                "spec.healthCheckNodePort",
                &json!(hc),
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc != 0 && !valid_port(hc) {
        causes.push(Cause::invalid(
            "spec.healthCheckNodePort",
            &json!(hc),
            PORT_NUM,
        ));
    }
}

/// `ValidateServiceUpdate`'s comparisons with the stored Service: the primary cluster IP
/// and IP family may not change (except to or from ExternalName).
pub fn validate_service_update(new: &Value, old: &Value, causes: &mut Vec<Cause>) {
    if svc_type(new) == EXTERNAL_NAME || svc_type(old) == EXTERNAL_NAME {
        return;
    }
    if !(is_headless(old) && is_headless(new)) {
        let old_ips = cluster_ips(old);
        let new_opt = str_list(spec(new), "clusterIPs");
        let new_ips = new_opt.clone().unwrap_or_default();
        let rendered = go_strings(new_opt.as_deref());
        if old_ips.len() == new_ips.len() {
            for (i, ip) in old_ips.iter().enumerate() {
                if *ip != new_ips[i] {
                    causes.push(invalid_raw(
                        format!("spec.clusterIPs[{i}]"),
                        &rendered,
                        "may not change once set",
                    ));
                }
            }
        } else if old_ips.len() > new_ips.len() {
            if new_ips.is_empty() {
                causes.push(invalid_raw(
                    "spec.clusterIPs[0]",
                    &rendered,
                    "primary clusterIP can not be unset",
                ));
            }
            if !old_ips.is_empty() && !new_ips.is_empty() && new_ips[0] != old_ips[0] {
                causes.push(invalid_raw(
                    "spec.clusterIPs[0]",
                    &rendered,
                    "may not change once set",
                ));
            }
            if new_ips.len() == 1 && spec_str(new, "ipFamilyPolicy") != "SingleStack" {
                causes.push(invalid_raw(
                    "spec.clusterIPs[0]",
                    &rendered,
                    "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP",
                ));
            }
        } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
            causes.push(invalid_raw(
                "spec.clusterIPs[0]",
                &rendered,
                "may not change once set",
            ));
        }
    }
    let old_f = str_list(spec(old), "ipFamilies").unwrap_or_default();
    let new_opt = str_list(spec(new), "ipFamilies");
    let new_f = new_opt.clone().unwrap_or_default();
    let rendered = go_strings(new_opt.as_deref()).replace("[]string", "[]core.IPFamily");
    let primary_changed = !old_f.is_empty() && !new_f.is_empty() && old_f[0] != new_f[0];
    if old_f.len() == new_f.len() {
        if old_f != new_f {
            causes.push(invalid_raw(
                "spec.ipFamilies[0]",
                &rendered,
                "may not change once set",
            ));
        }
    } else if primary_changed {
        causes.push(invalid_raw(
            "spec.ipFamilies[0]",
            &rendered,
            "may not change once set",
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Claims and allocation

/// Who holds a claim: the value of a claim key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Claim {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Claim {
    pub fn of(svc: &Value) -> Claim {
        Claim {
            namespace: meta::namespace(svc).to_string(),
            name: meta::name(svc).to_string(),
            uid: meta::meta_str(svc, "uid").unwrap_or("").to_string(),
        }
    }
    fn bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
    fn parse(kv: &KeyValue) -> Option<Claim> {
        serde_json::from_slice(&kv.value).ok()
    }
}

pub fn ip_claim_key(ip: Ipv4Addr) -> String {
    format!("{IP_CLAIM_PREFIX}{ip}")
}

pub fn port_claim_key(port: u16) -> String {
    format!("{PORT_CLAIM_PREFIX}{port}")
}

/// An IP the allocator never hands out dynamically and gives only to its Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub ip: Ipv4Addr,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct ServiceAllocatorConfig {
    /// `--service-cidr`.
    pub service_cidr: String,
    /// `--service-node-port-range`.
    pub node_port_range: String,
    /// IPs kept for the system Services.
    pub reserved: Vec<Reservation>,
}

/// A claim key one operation created.
#[derive(Debug, Clone)]
struct Held {
    key: String,
    rev: i64,
}

/// One allocation operation: who allocates, whether it is a dry run, what it took.
struct Op {
    owner: Claim,
    dry_run: bool,
    held: Vec<Held>,
    taken: HashSet<String>,
}

impl Op {
    fn new(owner: Claim, dry_run: bool) -> Op {
        Op {
            owner,
            dry_run,
            held: Vec::new(),
            taken: HashSet::new(),
        }
    }
}

async fn release_held(store: &Arc<dyn Backend>, held: Vec<Held>) {
    for h in held {
        match store.delete(&h.key, h.rev).await {
            Ok(_) | Err(StoreError::NotFound) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => tracing::warn!(key = %h.key, error = %e, "releasing a service allocation"),
        }
    }
}

/// Deletes a claim key if `owner` holds it.
async fn release_owned(store: &Arc<dyn Backend>, key: &str, owner: &Claim) {
    let kv = match store.get(key, 0).await {
        Ok((Some(kv), _)) => kv,
        Ok((None, _)) => return,
        Err(e) => {
            tracing::warn!(%key, error = %e, "reading a service allocation to release");
            return;
        }
    };
    if Claim::parse(&kv).as_ref() != Some(owner) {
        return;
    }
    match store.delete(key, kv.mod_revision).await {
        Ok(_) | Err(StoreError::NotFound) | Err(StoreError::Conflict { .. }) => {}
        Err(e) => tracing::warn!(%key, error = %e, "releasing a service allocation"),
    }
}

/// The claims a create took: released again if the Service is not stored.
#[must_use]
pub struct Claims {
    store: Arc<dyn Backend>,
    held: Vec<Held>,
}

impl Claims {
    pub async fn release(self) {
        release_held(&self.store, self.held).await;
    }
}

/// What an update took and would give back: on success the old allocations are released,
/// on failure the new ones.
#[must_use]
pub struct UpdateClaims {
    store: Arc<dyn Backend>,
    owner: Claim,
    dry_run: bool,
    held: Vec<Held>,
    release: Vec<String>,
}

impl UpdateClaims {
    pub async fn finish(self, committed: bool) {
        if self.dry_run {
            return;
        }
        if committed {
            for key in &self.release {
                release_owned(&self.store, key, &self.owner).await;
            }
        } else {
            release_held(&self.store, self.held).await;
        }
    }
}

/// What a repair pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// Claim keys created or taken over for stored Services.
    pub claimed: usize,
    /// Leaked claim keys deleted.
    pub released: usize,
    /// Keys wanted by more than one Service.
    pub conflicts: Vec<String>,
}

/// ClusterIP and NodePort allocation over the store.
pub struct ServiceAllocator {
    store: Arc<dyn Backend>,
    cidr: ServiceCidr,
    ports: PortRange,
    reserved: Vec<Reservation>,
    /// Claim key -> repair passes it has been seen leaked in.
    leaks: Mutex<HashMap<String, u32>>,
}

fn services_res() -> &'static ResourceInfo {
    resources::find("", "v1", "services").expect("services served")
}

fn alloc_invalid(name: &str, cause: Cause) -> ApiError {
    ApiError::invalid("Service", "", name, vec![cause])
}

fn store_error(e: StoreError) -> ApiError {
    e.into()
}

impl ServiceAllocator {
    pub fn new(
        store: Arc<dyn Backend>,
        cfg: ServiceAllocatorConfig,
    ) -> Result<ServiceAllocator, ServicesError> {
        Ok(ServiceAllocator {
            store,
            cidr: ServiceCidr::parse(&cfg.service_cidr)?,
            ports: PortRange::parse(&cfg.node_port_range)?,
            reserved: cfg.reserved,
            leaks: Mutex::new(HashMap::new()),
        })
    }

    pub fn cidr(&self) -> ServiceCidr {
        self.cidr
    }

    pub fn node_port_range(&self) -> PortRange {
        self.ports
    }

    fn reserved_for_other(&self, ip: Ipv4Addr, owner: &Claim) -> bool {
        self.reserved
            .iter()
            .any(|r| r.ip == ip && (r.namespace != owner.namespace || r.name != owner.name))
    }

    fn is_reserved(&self, ip: Ipv4Addr) -> bool {
        self.reserved.iter().any(|r| r.ip == ip)
    }

    /// Takes `key` for the operation; false if someone has it.
    async fn try_claim(&self, key: String, op: &mut Op) -> Result<bool, StoreError> {
        if op.taken.contains(&key) {
            return Ok(false);
        }
        if op.dry_run {
            if self.store.get(&key, 0).await?.0.is_some() {
                return Ok(false);
            }
            op.taken.insert(key);
            return Ok(true);
        }
        match self.store.create(&key, op.owner.bytes()).await {
            Ok(rev) => {
                op.taken.insert(key.clone());
                op.held.push(Held { key, rev });
                Ok(true)
            }
            Err(StoreError::AlreadyExists) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The suffixes of the claim keys under `prefix`.
    async fn claimed(&self, prefix: &str) -> Result<HashSet<String>, StoreError> {
        let list = self
            .store
            .list(&ListOptions {
                prefix: prefix.to_string(),
                ..Default::default()
            })
            .await?;
        Ok(list
            .kvs
            .iter()
            .filter_map(|kv| kv.key.strip_prefix(prefix).map(str::to_string))
            .collect())
    }

    async fn claim_ip(&self, ip: &str, op: &mut Op) -> Result<(), Fail> {
        let not_in_range = || {
            Fail::Alloc(AllocError::IpNotInRange {
                ip: ip.to_string(),
                range: self.cidr.to_string(),
            })
        };
        let parsed: Ipv4Addr = ip.parse().map_err(|_| not_in_range())?;
        if self.cidr.index_of(parsed).is_none() {
            return Err(not_in_range());
        }
        if self.reserved_for_other(parsed, &op.owner) {
            return Err(Fail::Alloc(AllocError::IpAllocated));
        }
        if self.try_claim(ip_claim_key(parsed), op).await? {
            Ok(())
        } else {
            Err(Fail::Alloc(AllocError::IpAllocated))
        }
    }

    async fn claim_next_ip(&self, op: &mut Op) -> Result<Ipv4Addr, Fail> {
        let used = self.claimed(IP_CLAIM_PREFIX).await?;
        let max = self.cidr.max();
        let offset = self.cidr.static_band();
        let order = probe_order(
            max,
            offset,
            random_below(max - offset),
            random_below(offset),
        );
        for i in order {
            let ip = self.cidr.ip_at(i);
            if used.contains(&ip.to_string()) || self.is_reserved(ip) {
                continue;
            }
            if self.try_claim(ip_claim_key(ip), op).await? {
                return Ok(ip);
            }
        }
        Err(Fail::Alloc(AllocError::Full))
    }

    async fn claim_port(&self, port: i64, op: &mut Op) -> Result<(), Fail> {
        if !self.ports.contains(port) {
            return Err(Fail::Alloc(AllocError::PortNotInRange {
                range: self.ports.to_string(),
            }));
        }
        if self.try_claim(port_claim_key(port as u16), op).await? {
            Ok(())
        } else {
            Err(Fail::Alloc(AllocError::PortAllocated))
        }
    }

    async fn claim_next_port(&self, op: &mut Op) -> Result<i64, Fail> {
        let used = self.claimed(PORT_CLAIM_PREFIX).await?;
        let size = self.ports.size();
        let offset = self.ports.static_band();
        for i in probe_order(
            size,
            offset,
            random_below(size - offset.min(size)),
            random_below(offset),
        ) {
            let port = self.ports.port_at(i);
            if used.contains(&port.to_string()) {
                continue;
            }
            if self.try_claim(port_claim_key(port), op).await? {
                return Ok(i64::from(port));
            }
        }
        Err(Fail::Alloc(AllocError::Full))
    }

    /// Allocates the cluster IP of a Service that needs one: the requested one, or one
    /// from above the static band.
    async fn alloc_cluster_ips(&self, svc: &mut Value, op: &mut Op) -> ApiResult<()> {
        let name = meta::name(svc).to_string();
        let ips = cluster_ips(svc);
        match ips.first().map(String::as_str) {
            Some(NONE) => Ok(()),
            None | Some("") => match self.claim_next_ip(op).await {
                Ok(ip) => {
                    let s = spec_mut(svc);
                    s.insert("clusterIP".into(), json!(ip.to_string()));
                    s.insert("clusterIPs".into(), json!([ip.to_string()]));
                    Ok(())
                }
                Err(Fail::Alloc(e)) => Err(ApiError::internal(format!(
                    "failed to allocate a serviceIP: {e}"
                ))),
                Err(Fail::Store(e)) => Err(store_error(e)),
            },
            Some(ip) => match self.claim_ip(ip, op).await {
                Ok(()) => Ok(()),
                Err(Fail::Alloc(e)) => Err(alloc_invalid(
                    &name,
                    invalid_raw(
                        "spec.clusterIPs",
                        &cluster_ips_value(svc),
                        &format!("failed to allocate IP {ip}: {e}"),
                    ),
                )),
                Err(Fail::Store(e)) => Err(store_error(e)),
            },
        }
    }

    /// `initNodePorts`: ports with the same port number share one node port.
    async fn init_node_ports(&self, svc: &mut Value, op: &mut Op) -> ApiResult<()> {
        let name = meta::name(svc).to_string();
        let should = should_allocate_node_ports(svc);
        let mut list = ports(svc).to_vec();
        let mut by_port: HashMap<i64, i64> = HashMap::new();
        for i in 0..list.len() {
            let port = int(&list[i], "port");
            let np = int(&list[i], "nodePort");
            if np == 0 && !should {
                continue;
            }
            let field = format!("spec.ports[{i}].nodePort");
            match by_port.get(&port).copied() {
                None => {
                    let requested = list
                        .iter()
                        .find(|p| int(p, "port") == port && int(p, "nodePort") != 0)
                        .map(|p| int(p, "nodePort"))
                        .unwrap_or(0);
                    let got = if requested != 0 {
                        match self.claim_port(requested, op).await {
                            Ok(()) => requested,
                            Err(Fail::Alloc(e)) => {
                                return Err(alloc_invalid(
                                    &name,
                                    Cause::invalid(field, &json!(requested), &e.to_string()),
                                ))
                            }
                            Err(Fail::Store(e)) => return Err(store_error(e)),
                        }
                    } else {
                        match self.claim_next_port(op).await {
                            Ok(p) => p,
                            Err(Fail::Alloc(e)) => {
                                return Err(ApiError::internal(format!(
                                    "failed to allocate a nodePort: {e}"
                                )))
                            }
                            Err(Fail::Store(e)) => return Err(store_error(e)),
                        }
                    };
                    list[i]["nodePort"] = json!(got);
                    by_port.insert(port, got);
                }
                Some(a) if a != np => {
                    if np == 0 {
                        list[i]["nodePort"] = json!(a);
                    } else {
                        match self.claim_port(np, op).await {
                            Ok(()) => {}
                            Err(Fail::Alloc(e)) => {
                                return Err(alloc_invalid(
                                    &name,
                                    Cause::invalid(field, &json!(np), &e.to_string()),
                                ))
                            }
                            Err(Fail::Store(e)) => return Err(store_error(e)),
                        }
                    }
                }
                Some(_) => {}
            }
        }
        spec_mut(svc).insert("ports".into(), Value::Array(list));
        Ok(())
    }

    /// `updateNodePorts`: claims new requested ports, allocates missing ones, and lists the
    /// old ones no longer used.
    async fn update_node_ports(
        &self,
        new: &mut Value,
        old: &Value,
        op: &mut Op,
        release: &mut Vec<String>,
    ) -> ApiResult<()> {
        let name = meta::name(new).to_string();
        let should = should_allocate_node_ports(new);
        let old_nps = node_ports(old);
        let mut list = ports(new).to_vec();
        let mut allocated_here: HashSet<i64> = HashSet::new();
        let mut seen: Vec<(String, i64)> = Vec::new();
        for (i, p) in list.iter_mut().enumerate() {
            let mut np = int(p, "nodePort");
            if np == 0 && !should {
                continue;
            }
            if np != 0 {
                if !old_nps.contains(&np) && !allocated_here.contains(&np) {
                    match self.claim_port(np, op).await {
                        Ok(()) => {}
                        Err(Fail::Alloc(e)) => {
                            return Err(alloc_invalid(
                                &name,
                                Cause::invalid(
                                    format!("spec.ports[{i}].nodePort"),
                                    &json!(np),
                                    &e.to_string(),
                                ),
                            ))
                        }
                        Err(Fail::Store(e)) => return Err(store_error(e)),
                    }
                    allocated_here.insert(np);
                }
            } else {
                np = match self.claim_next_port(op).await {
                    Ok(n) => n,
                    Err(Fail::Alloc(e)) => {
                        return Err(ApiError::internal(format!(
                            "failed to allocate a nodePort: {e}"
                        )))
                    }
                    Err(Fail::Store(e)) => return Err(store_error(e)),
                };
                p["nodePort"] = json!(np);
            }
            let proto = p
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_string();
            if seen.contains(&(proto.clone(), np)) {
                return Err(ApiError::internal(format!(
                    "duplicate nodePort: {{{proto} {np}}}"
                )));
            }
            seen.push((proto, np));
        }
        spec_mut(new).insert("ports".into(), Value::Array(list));
        let new_nps = node_ports(new);
        for np in old_nps {
            if !new_nps.contains(&np) {
                if let Ok(p) = u16::try_from(np) {
                    release.push(port_claim_key(p));
                }
            }
        }
        Ok(())
    }

    /// `allocHealthCheckNodePort`.
    async fn alloc_health_check(&self, svc: &mut Value, op: &mut Op) -> ApiResult<()> {
        let hc = health_check_node_port(svc);
        if hc != 0 {
            return match self.claim_port(hc, op).await {
                Ok(()) => Ok(()),
                Err(Fail::Alloc(e)) => Err(ApiError::internal(format!(
                    "failed to allocate requested HealthCheck NodePort {hc}: {e}"
                ))),
                Err(Fail::Store(e)) => Err(store_error(e)),
            };
        }
        match self.claim_next_port(op).await {
            Ok(p) => {
                spec_mut(svc).insert("healthCheckNodePort".into(), json!(p));
                Ok(())
            }
            Err(Fail::Alloc(e)) => Err(ApiError::internal(format!(
                "failed to allocate a HealthCheck NodePort 0: {e}"
            ))),
            Err(Fail::Store(e)) => Err(store_error(e)),
        }
    }

    /// Allocates the cluster IP, node ports and health check node port of a new Service,
    /// filling them in. On error nothing stays claimed. A dry run claims nothing.
    pub async fn allocate_create(&self, svc: &mut Value, dry_run: bool) -> ApiResult<Claims> {
        let mut op = Op::new(Claim::of(svc), dry_run);
        let r = self.create_steps(svc, &mut op).await;
        match r {
            Ok(()) => Ok(Claims {
                store: self.store.clone(),
                held: op.held,
            }),
            Err(e) => {
                release_held(&self.store, op.held).await;
                Err(e)
            }
        }
    }

    async fn create_steps(&self, svc: &mut Value, op: &mut Op) -> ApiResult<()> {
        if needs_cluster_ip(svc) {
            self.alloc_cluster_ips(svc, op).await?;
        }
        if needs_node_port(svc) {
            self.init_node_ports(svc, op).await?;
        }
        if needs_health_check(svc) {
            self.alloc_health_check(svc, op).await?;
        }
        Ok(())
    }

    /// Allocates what an update needs (type changes, new node ports, the health check
    /// port) and lists what it frees. The caller finishes the result with whether the
    /// update was stored.
    pub async fn allocate_update(
        &self,
        new: &mut Value,
        old: &Value,
        dry_run: bool,
    ) -> ApiResult<UpdateClaims> {
        let mut op = Op::new(Claim::of(old), dry_run);
        let mut release = Vec::new();
        let r = self.update_steps(new, old, &mut op, &mut release).await;
        match r {
            Ok(()) => Ok(UpdateClaims {
                store: self.store.clone(),
                owner: op.owner,
                dry_run,
                held: op.held,
                release,
            }),
            Err(e) => {
                release_held(&self.store, op.held).await;
                Err(e)
            }
        }
    }

    async fn update_steps(
        &self,
        new: &mut Value,
        old: &Value,
        op: &mut Op,
        release: &mut Vec<String>,
    ) -> ApiResult<()> {
        let (old_ty, new_ty) = (svc_type(old).to_string(), svc_type(new).to_string());
        if old_ty == EXTERNAL_NAME && new_ty != EXTERNAL_NAME {
            self.alloc_cluster_ips(new, op).await?;
        } else if is_headless(old) {
            // headless Services hold no cluster IP
        } else if old_ty != EXTERNAL_NAME && new_ty == EXTERNAL_NAME {
            release.extend(self.ip_keys(old));
        } else if new_ty != EXTERNAL_NAME && cluster_ips(old).is_empty() {
            // Stored without a cluster IP (written before allocation existed): give it one.
            self.alloc_cluster_ips(new, op).await?;
        }
        let (old_np, new_np) = (needs_node_port(old), needs_node_port(new));
        if old_np && !new_np {
            release.extend(
                node_ports(old)
                    .into_iter()
                    .filter_map(|n| u16::try_from(n).ok().map(port_claim_key)),
            );
        }
        if new_np {
            self.update_node_ports(new, old, op, release).await?;
        }
        let (needed, needs) = (needs_health_check(old), needs_health_check(new));
        let (old_hc, new_hc) = (health_check_node_port(old), health_check_node_port(new));
        if !needed && needs {
            self.alloc_health_check(new, op).await?;
        } else if needed && !needs {
            if let Ok(p) = u16::try_from(old_hc) {
                release.push(port_claim_key(p));
            }
        } else if needed && needs && new_hc != 0 && new_hc != old_hc {
            self.alloc_health_check(new, op).await?;
            if let Ok(p) = u16::try_from(old_hc) {
                release.push(port_claim_key(p));
            }
        }
        // A key both kept and freed (a port moved between fields) stays.
        let keep: HashSet<String> = self.claim_keys(new).into_iter().collect();
        release.retain(|k| !keep.contains(k));
        Ok(())
    }

    fn ip_keys(&self, svc: &Value) -> Vec<String> {
        if svc_type(svc) == EXTERNAL_NAME {
            return Vec::new();
        }
        let mut ips = cluster_ips(svc);
        if ips.is_empty() {
            ips.push(spec_str(svc, "clusterIP").to_string());
        }
        ips.iter()
            .filter_map(|ip| ip.parse::<Ipv4Addr>().ok())
            .map(ip_claim_key)
            .collect()
    }

    /// Every claim key a stored Service holds.
    pub fn claim_keys(&self, svc: &Value) -> Vec<String> {
        let mut keys = self.ip_keys(svc);
        let mut nps = node_ports(svc);
        let hc = health_check_node_port(svc);
        if hc != 0 {
            nps.push(hc);
        }
        for np in nps {
            if let Ok(p) = u16::try_from(np) {
                let k = port_claim_key(p);
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        keys
    }

    /// Releases what a deleted Service held.
    pub async fn release_service(&self, svc: &Value) {
        let owner = Claim::of(svc);
        for key in self.claim_keys(svc) {
            release_owned(&self.store, &key, &owner).await;
        }
    }

    /// Whether a claim key is inside the configured ranges.
    fn key_in_range(&self, key: &str) -> bool {
        if let Some(ip) = key.strip_prefix(IP_CLAIM_PREFIX) {
            return ip
                .parse::<Ipv4Addr>()
                .is_ok_and(|ip| self.cidr.index_of(ip).is_some());
        }
        if let Some(p) = key.strip_prefix(PORT_CLAIM_PREFIX) {
            return p.parse::<i64>().is_ok_and(|p| self.ports.contains(p));
        }
        false
    }

    async fn list_all(&self, prefix: &str) -> Result<Vec<KeyValue>, ServicesError> {
        self.store
            .list(&ListOptions {
                prefix: prefix.to_string(),
                ..Default::default()
            })
            .await
            .map(|l| l.kvs)
            .map_err(ServicesError::RepairList)
    }

    /// Reconciles the claim keys with the stored Services (upstream's repair
    /// controllers): claims what stored Services use but lack, takes over claims whose
    /// holder is gone, and releases claims no Service uses once they have been seen
    /// leaked in [`LEAK_PASSES`] passes (at `startup`, before the server serves, at once).
    pub async fn repair(&self, startup: bool) -> Result<RepairReport, ServicesError> {
        let mut report = RepairReport::default();
        let mut existing: HashMap<String, (Option<Claim>, i64)> = HashMap::new();
        for prefix in [IP_CLAIM_PREFIX, PORT_CLAIM_PREFIX] {
            for kv in self.list_all(prefix).await? {
                existing.insert(kv.key.clone(), (Claim::parse(&kv), kv.mod_revision));
            }
        }
        let res = services_res();
        let mut live: HashSet<Claim> = HashSet::new();
        let mut wanted: BTreeMap<String, Vec<Claim>> = BTreeMap::new();
        for kv in self.list_all(&crate::registry::prefix(res, None)).await? {
            let Ok(svc) = crate::registry::decode(res, &kv) else {
                continue;
            };
            let owner = Claim::of(&svc);
            live.insert(owner.clone());
            for key in self.claim_keys(&svc) {
                if !self.key_in_range(&key) {
                    tracing::warn!(
                        service = %format!("{}/{}", owner.namespace, owner.name),
                        %key,
                        "service allocation is outside the configured range; please recreate the service"
                    );
                    continue;
                }
                wanted.entry(key).or_default().push(owner.clone());
            }
        }
        for (key, owners) in &wanted {
            let holder = existing.get(key);
            let keeper = match holder {
                Some((Some(c), _)) if owners.contains(c) => c.clone(),
                Some((c, rev)) => {
                    let holder_live = c.as_ref().is_some_and(|c| live.contains(c));
                    if holder_live {
                        // Held by a live Service that does not use it (an update cut
                        // short): hand it to the Service that does.
                        tracing::warn!(%key, "service allocation held by a service that no longer uses it");
                    }
                    match self.store.update(key, owners[0].bytes(), *rev).await {
                        Ok(_) => report.claimed += 1,
                        Err(e) => {
                            tracing::warn!(%key, error = %e, "taking over a service allocation")
                        }
                    }
                    owners[0].clone()
                }
                None => {
                    match self.store.create(key, owners[0].bytes()).await {
                        Ok(_) => report.claimed += 1,
                        Err(StoreError::AlreadyExists) => {}
                        Err(e) => tracing::warn!(%key, error = %e, "claiming a service allocation"),
                    }
                    owners[0].clone()
                }
            };
            for o in owners.iter().filter(|o| **o != keeper) {
                tracing::warn!(
                    %key,
                    service = %format!("{}/{}", o.namespace, o.name),
                    "allocation was assigned to multiple services; please recreate the service"
                );
                report.conflicts.push(key.clone());
            }
        }
        let to_release: Vec<(String, i64)> = {
            let mut leaks = self.leaks.lock().unwrap_or_else(|p| p.into_inner());
            let mut next = HashMap::new();
            let mut out = Vec::new();
            for (key, (_, rev)) in &existing {
                if wanted.contains_key(key) {
                    continue;
                }
                let seen = leaks.get(key).copied().unwrap_or(0) + 1;
                if startup || seen >= LEAK_PASSES {
                    out.push((key.clone(), *rev));
                } else {
                    next.insert(key.clone(), seen);
                }
            }
            *leaks = next;
            out
        };
        for (key, rev) in to_release {
            match self.store.delete(&key, rev).await {
                Ok(_) => {
                    tracing::info!(%key, "released a leaked service allocation");
                    report.released += 1;
                }
                Err(StoreError::NotFound) | Err(StoreError::Conflict { .. }) => {}
                Err(e) => tracing::warn!(%key, error = %e, "releasing a leaked service allocation"),
            }
        }
        Ok(report)
    }

    /// Runs [`ServiceAllocator::repair`] every `every`, forever.
    pub async fn run_repair(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            match self.repair(false).await {
                Ok(r) if r.claimed > 0 || r.released > 0 => {
                    tracing::info!(
                        claimed = r.claimed,
                        released = r.released,
                        "repaired service allocations"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "repairing service allocations"),
            }
        }
    }
}

/// Whether a resource is core/v1 services.
pub fn is_services(res: &ResourceInfo) -> bool {
    res.group.is_empty() && res.plural == "services"
}

impl Registry {
    /// The allocator, when `res` is core/v1 services and one is configured.
    pub fn service_allocator(&self, res: &ResourceInfo) -> Option<&ServiceAllocator> {
        if is_services(res) {
            self.services.get().map(Arc::as_ref)
        } else {
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// System Services

/// One port of a system Service: the Service port and the endpoint port behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPort {
    pub name: String,
    pub protocol: String,
    pub port: u16,
    pub target_port: u16,
}

/// A selector-less Service the API server keeps, with its fixed endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemService {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub cluster_ip: Ipv4Addr,
    pub ports: Vec<SystemPort>,
    pub endpoint_ip: Ipv4Addr,
}

#[derive(Debug, Clone)]
pub struct SystemServicesConfig {
    /// The `kubernetes` Service's IP: the first address of the service CIDR.
    pub kubernetes_ip: Ipv4Addr,
    /// Where the API server is reached (the advertise address) and its port.
    pub apiserver_ip: Ipv4Addr,
    pub apiserver_port: u16,
    /// `--cluster-dns`; None: no `kube-dns` Service.
    pub cluster_dns: Option<Ipv4Addr>,
    /// Where the cluster DNS server answers (port 53).
    pub dns_ip: Ipv4Addr,
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `default/kubernetes` and `kube-system/kube-dns`.
pub fn system_services(cfg: &SystemServicesConfig) -> Vec<SystemService> {
    let mut out = vec![SystemService {
        namespace: "default".into(),
        name: "kubernetes".into(),
        labels: labels(&[("component", "apiserver"), ("provider", "kubernetes")]),
        cluster_ip: cfg.kubernetes_ip,
        ports: vec![SystemPort {
            name: "https".into(),
            protocol: "TCP".into(),
            port: 443,
            target_port: cfg.apiserver_port,
        }],
        endpoint_ip: cfg.apiserver_ip,
    }];
    if let Some(dns) = cfg.cluster_dns {
        out.push(SystemService {
            namespace: "kube-system".into(),
            name: "kube-dns".into(),
            labels: labels(&[
                ("k8s-app", "kube-dns"),
                ("kubernetes.io/cluster-service", "true"),
                ("kubernetes.io/name", "CoreDNS"),
            ]),
            cluster_ip: dns,
            ports: vec![
                SystemPort {
                    name: "dns".into(),
                    protocol: "UDP".into(),
                    port: 53,
                    target_port: 53,
                },
                SystemPort {
                    name: "dns-tcp".into(),
                    protocol: "TCP".into(),
                    port: 53,
                    target_port: 53,
                },
            ],
            endpoint_ip: cfg.dns_ip,
        });
    }
    out
}

/// The IPs the system Services keep for themselves.
pub fn reservations(services: &[SystemService]) -> Vec<Reservation> {
    services
        .iter()
        .map(|s| Reservation {
            ip: s.cluster_ip,
            namespace: s.namespace.clone(),
            name: s.name.clone(),
        })
        .collect()
}

impl SystemService {
    fn label_value(&self) -> Value {
        json!(self.labels)
    }

    fn service_ports(&self) -> Value {
        Value::Array(
            self.ports
                .iter()
                .map(|p| json!({"name": p.name, "protocol": p.protocol, "port": p.port, "targetPort": p.target_port}))
                .collect(),
        )
    }

    fn endpoint_ports(&self) -> Value {
        Value::Array(
            self.ports
                .iter()
                .map(|p| json!({"name": p.name, "port": p.target_port, "protocol": p.protocol}))
                .collect(),
        )
    }

    /// The Service object.
    pub fn service(&self) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": self.label_value()},
            "spec": {
                "type": CLUSTER_IP,
                "clusterIP": self.cluster_ip.to_string(),
                "clusterIPs": [self.cluster_ip.to_string()],
                "sessionAffinity": "None",
                "ports": self.service_ports(),
            },
        })
    }

    /// The Endpoints object (skip-mirror, as upstream's endpoint reconciler labels it).
    pub fn endpoints(&self) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": self.name, "namespace": self.namespace,
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{
                "addresses": [{"ip": self.endpoint_ip.to_string()}],
                "ports": self.endpoint_ports(),
            }],
        })
    }

    /// The EndpointSlice object (only the service-name label, as upstream's adapter).
    pub fn endpoint_slice(&self) -> Value {
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": self.name, "namespace": self.namespace,
                "labels": {"kubernetes.io/service-name": self.name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [self.endpoint_ip.to_string()], "conditions": {"ready": true}}],
            "ports": self.endpoint_ports(),
        })
    }

    /// Whether a stored Service differs from this one in what is kept: type, selector,
    /// ports and the labels.
    fn service_drifted(&self, cur: &Value) -> bool {
        if svc_type(cur) != CLUSTER_IP || has_selector(cur) {
            return true;
        }
        let have = meta::labels(cur);
        if self
            .labels
            .iter()
            .any(|(k, v)| have.get(k).and_then(Value::as_str) != Some(v.as_str()))
        {
            return true;
        }
        let cur_ports = ports(cur);
        cur_ports.len() != self.ports.len()
            || cur_ports.iter().zip(&self.ports).any(|(c, d)| {
                c.get("name").and_then(Value::as_str).unwrap_or("") != d.name
                    || c.get("protocol").and_then(Value::as_str).unwrap_or("") != d.protocol
                    || int(c, "port") != i64::from(d.port)
                    || c.get("targetPort").and_then(Value::as_i64) != Some(i64::from(d.target_port))
            })
    }

    fn fix_service(&self, svc: &mut Value) {
        {
            let s = spec_mut(svc);
            s.insert("type".into(), json!(CLUSTER_IP));
            s.remove("selector");
            s.insert("ports".into(), self.service_ports());
        }
        let m = meta::meta_mut(svc);
        let labels = m.entry("labels").or_insert(json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        if let Some(l) = labels.as_object_mut() {
            for (k, v) in &self.labels {
                l.insert(k.clone(), json!(v));
            }
        }
    }
}

fn system_write_options() -> WriteOptions {
    WriteOptions {
        dry_run: false,
        field_manager: "kube-apiserver".into(),
        field_validation: FieldValidation::Strict,
        force: false,
        user: Default::default(),
    }
}

fn reconcile_error(what: &'static str, s: &SystemService, source: ApiError) -> ServicesError {
    ServicesError::Reconcile {
        what,
        namespace: s.namespace.clone(),
        name: s.name.clone(),
        source: Box::new(source),
    }
}

async fn create_ignoring_exists(
    registry: &Registry,
    res: &ResourceInfo,
    obj: Value,
    ns: &str,
) -> ApiResult<()> {
    match registry.create(res, ns, obj, &system_write_options()).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes the object at `res/ns/name` carry `desired`'s labels and top-level `fields`:
/// creates it when missing, updates it when it drifted. `immutable` fields that differ
/// make it be deleted and created again.
async fn ensure_object(
    registry: &Registry,
    res: &ResourceInfo,
    desired: Value,
    fields: &[&str],
    immutable: &[&str],
) -> ApiResult<()> {
    let ns = meta::namespace(&desired).to_string();
    let name = meta::name(&desired).to_string();
    let cur = match registry.get(res, &ns, &name).await {
        Ok(c) => c,
        Err(e) if e.code == 404 => {
            return create_ignoring_exists(registry, res, desired, &ns).await
        }
        Err(e) => return Err(e),
    };
    if immutable.iter().any(|f| cur.get(*f) != desired.get(*f)) {
        match registry
            .delete(res, &ns, &name, &DeleteOptions::default())
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
        return create_ignoring_exists(registry, res, desired, &ns).await;
    }
    let want_labels = desired
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    let drifted = cur
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(json!({}))
        != want_labels
        || fields.iter().any(|f| cur.get(*f) != desired.get(*f));
    if !drifted {
        return Ok(());
    }
    registry
        .update_with(
            res,
            &ns,
            &name,
            None,
            &system_write_options(),
            false,
            |old| {
                let mut new = old.cloned().unwrap_or_else(|| desired.clone());
                meta::meta_mut(&mut new).insert("labels".into(), want_labels.clone());
                for f in fields {
                    match desired.get(*f) {
                        Some(v) => new[*f] = v.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove(*f);
                            }
                        }
                    }
                }
                Ok((new, Vec::new()))
            },
        )
        .await
        .map(|_| ())
}

async fn reconcile_service(registry: &Registry, s: &SystemService) -> ApiResult<()> {
    let res = services_res();
    let cur = match registry.get(res, &s.namespace, &s.name).await {
        Ok(c) => c,
        Err(e) if e.code == 404 => {
            return create_ignoring_exists(registry, res, s.service(), &s.namespace).await
        }
        Err(e) => return Err(e),
    };
    if spec_str(&cur, "clusterIP") != s.cluster_ip.to_string() {
        // The cluster IP is immutable: replace the Service.
        match registry
            .delete(res, &s.namespace, &s.name, &DeleteOptions::default())
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
        return create_ignoring_exists(registry, res, s.service(), &s.namespace).await;
    }
    if !s.service_drifted(&cur) {
        return Ok(());
    }
    registry
        .update_with(
            res,
            &s.namespace,
            &s.name,
            None,
            &system_write_options(),
            false,
            |old| {
                let mut new = old.cloned().unwrap_or_else(|| s.service());
                s.fix_service(&mut new);
                Ok((new, Vec::new()))
            },
        )
        .await
        .map(|_| ())
}

/// One pass over the system Services: each Service, Endpoints and EndpointSlice is
/// created when missing and put back when it drifted. Written through the registry, so
/// the cluster IPs are claimed like any other.
pub async fn reconcile_system_services(
    registry: &Registry,
    desired: &[SystemService],
) -> Result<(), ServicesError> {
    let eps = resources::find("", "v1", "endpoints").expect("endpoints served");
    let slices =
        resources::find("discovery.k8s.io", "v1", "endpointslices").expect("endpointslices served");
    let mut first_err = None;
    for s in desired {
        let steps = [
            reconcile_service(registry, s)
                .await
                .map_err(|e| reconcile_error("service", s, e)),
            ensure_object(registry, eps, s.endpoints(), &["subsets"], &[])
                .await
                .map_err(|e| reconcile_error("endpoints", s, e)),
            ensure_object(
                registry,
                slices,
                s.endpoint_slice(),
                &["endpoints", "ports"],
                &["addressType"],
            )
            .await
            .map_err(|e| reconcile_error("endpointslice", s, e)),
        ];
        for r in steps {
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Reconciles the system Services now and every `every`, forever.
pub async fn run_system_services(
    registry: Arc<Registry>,
    desired: Vec<SystemService>,
    every: Duration,
) {
    loop {
        if let Err(e) = reconcile_system_services(&registry, &desired).await {
            tracing::warn!(error = %e, "reconciling system services");
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn causes_of(svc: &Value) -> Vec<Cause> {
        let mut c = Vec::new();
        validate_service(svc, &mut c);
        c
    }

    /// A Service as a create would have it after preparation and defaulting.
    fn prepared(mut svc: Value) -> Value {
        meta::meta_mut(&mut svc).insert("namespace".into(), json!("default"));
        meta::meta_mut(&mut svc).insert("uid".into(), json!("u1"));
        prepare_create(&mut svc);
        set_defaults(&mut svc);
        svc
    }

    fn svc(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": spec})
    }

    #[test]
    fn cidr_parse_and_bands() {
        let c = ServiceCidr::parse("10.43.7.9/16").unwrap();
        assert_eq!(c.to_string(), "10.43.0.0/16");
        assert_eq!(c.max(), 65534);
        assert_eq!(c.static_band(), 256);
        assert_eq!(c.first(), Some(Ipv4Addr::new(10, 43, 0, 1)));
        assert_eq!(
            c.index_of(Ipv4Addr::new(10, 43, 0, 0)),
            None,
            "network address"
        );
        assert_eq!(
            c.index_of(Ipv4Addr::new(10, 43, 255, 255)),
            None,
            "broadcast"
        );
        assert_eq!(c.index_of(Ipv4Addr::new(10, 43, 255, 254)), Some(65533));
        assert_eq!(c.index_of(Ipv4Addr::new(10, 44, 0, 1)), None);
        assert_eq!(c.ip_at(256), Ipv4Addr::new(10, 43, 1, 1));
        assert_eq!(ServiceCidr::parse("10.0.0.0/24").unwrap().static_band(), 16);
        assert_eq!(
            ServiceCidr::parse("10.0.0.0/20").unwrap().static_band(),
            256
        );
        assert_eq!(
            ServiceCidr::parse("10.0.0.0/21").unwrap().static_band(),
            128
        );
        assert_eq!(ServiceCidr::parse("10.0.0.0/28").unwrap().static_band(), 0);
        assert_eq!(ServiceCidr::parse("10.0.0.0/27").unwrap().static_band(), 16);
        assert_eq!(ServiceCidr::parse("10.0.0.0/32").unwrap().max(), 0);
        assert!(ServiceCidr::parse("10.0.0.0").is_err());
        assert!(ServiceCidr::parse("10.0.0.0/33").is_err());
        assert!(ServiceCidr::parse("fd00::/64").is_err());
    }

    #[test]
    fn port_range_parse_and_bands() {
        let r = PortRange::parse("30000-32767").unwrap();
        assert_eq!(r.to_string(), "30000-32767");
        assert_eq!(r.size(), 2768);
        assert_eq!(r.static_band(), 86);
        assert!(r.contains(30000) && r.contains(32767));
        assert!(!r.contains(29999) && !r.contains(32768));
        assert_eq!(
            PortRange::parse("30000+99").unwrap().to_string(),
            "30000-30099"
        );
        assert_eq!(PortRange::parse("30000-30099").unwrap().static_band(), 16);
        assert_eq!(PortRange::parse("30000-30009").unwrap().static_band(), 0);
        assert_eq!(PortRange::parse("20000-29999").unwrap().static_band(), 128);
        assert_eq!(PortRange::parse("8080").unwrap().size(), 1);
        assert!(PortRange::parse("32767-30000").is_err());
        assert!(PortRange::parse("30000-70000").is_err());
        assert!(PortRange::parse("abc").is_err());
    }

    #[test]
    fn probing_visits_upper_band_first_then_all() {
        let order: Vec<u32> = probe_order(10, 4, 3, 1).collect();
        assert_eq!(order, vec![7, 8, 9, 4, 5, 6, 1, 2, 3, 0]);
        let mut all: Vec<u32> = probe_order(300, 16, 123, 7).collect();
        assert!(all[..284].iter().all(|i| *i >= 16));
        all.sort_unstable();
        assert_eq!(all, (0..300).collect::<Vec<_>>());
        assert_eq!(
            probe_order(5, 0, 2, 9).collect::<Vec<_>>(),
            vec![2, 3, 4, 0, 1]
        );
        assert_eq!(probe_order(0, 0, 0, 0).count(), 0);
    }

    #[test]
    fn allocation_messages_are_upstreams() {
        let e = AllocError::IpNotInRange {
            ip: "1.1.1.1".into(),
            range: "10.43.0.0/16".into(),
        };
        assert_eq!(
            e.to_string(),
            "the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
        );
        assert_eq!(
            AllocError::IpAllocated.to_string(),
            "provided IP is already allocated"
        );
        assert_eq!(
            AllocError::PortNotInRange {
                range: "30000-32767".into()
            }
            .to_string(),
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        assert_eq!(
            AllocError::PortAllocated.to_string(),
            "provided port is already allocated"
        );
        assert_eq!(AllocError::Full.to_string(), "range is full");
        assert_eq!(
            go_strings(Some(&["10.0.0.1".to_string()])),
            "[]string{\"10.0.0.1\"}"
        );
        assert_eq!(go_strings(None), "[]string(nil)");
        assert_eq!(
            go_service_port_key("TCP", 443),
            "core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:443, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}"
        );
    }

    #[test]
    fn defaults_and_ip_families() {
        let s = prepared(svc(
            "a",
            json!({"ports": [{"port": 80, "targetPort": 0}], "selector": {"app": "a"}}),
        ));
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["internalTrafficPolicy"], "Cluster");
        assert_eq!(s["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
        assert!(s["spec"].get("externalTrafficPolicy").is_none());
        assert_eq!(s["status"], json!({"loadBalancer": {}}));
        assert!(causes_of(&s).is_empty(), "{:?}", causes_of(&s));

        let lb = prepared(svc(
            "b",
            json!({"type": "LoadBalancer", "ports": [{"port": 80}],
            "sessionAffinity": "ClientIP"}),
        ));
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(
            lb["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );

        let headless = prepared(svc("h", json!({"clusterIP": "None"})));
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        assert!(
            causes_of(&headless).is_empty(),
            "{:?}",
            causes_of(&headless)
        );

        let ext = prepared(svc(
            "e",
            json!({"type": "ExternalName", "externalName": "example.com."}),
        ));
        assert!(ext["spec"].get("ipFamilies").is_none());
        assert!(ext["spec"].get("internalTrafficPolicy").is_none());
        assert!(causes_of(&ext).is_empty(), "{:?}", causes_of(&ext));
    }

    #[test]
    fn validation_messages() {
        let s = prepared(svc(
            "v",
            json!({"type": "ClusterIP", "ports": [
                {"port": 80, "nodePort": 30080},
                {"name": "b", "port": 80},
                {"name": "b", "port": 0, "targetPort": "Bad_Name"},
            ]}),
        ));
        let c = causes_of(&s);
        let rendered: Vec<String> = c.iter().map(Cause::render).collect();
        for want in [
            "spec.ports[0].name: Required value",
            "spec.ports[2].name: Duplicate value: \"b\"",
            "spec.ports[2].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[2].targetPort: Invalid value: \"Bad_Name\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            "spec.ports[1]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
        ] {
            assert!(rendered.iter().any(|r| r == want), "missing {want:?} in {rendered:#?}");
        }

        let mut s = prepared(svc(
            "w",
            json!({"ports": [{"port": 80}], "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}},
            "externalIPs": ["1.2.3", "127.0.0.1"]}),
        ));
        s["spec"]["clusterIP"] = json!("10.43.0.5");
        s["spec"]["clusterIPs"] = json!(["10.43.0.6"]);
        let rendered: Vec<String> = causes_of(&s).iter().map(Cause::render).collect();
        for want in [
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than 86400",
            "spec.externalIPs[0]: Invalid value: \"1.2.3\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            "spec.externalIPs[1]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            "spec.clusterIPs: Invalid value: []string{\"10.43.0.6\"}: first value must match `clusterIP`",
        ] {
            assert!(rendered.iter().any(|r| r == want), "missing {want:?} in {rendered:#?}");
        }

        let v6 = prepared(svc(
            "x",
            json!({"ports": [{"port": 80}], "clusterIP": "fd00::1"}),
        ));
        let rendered: Vec<String> = causes_of(&v6).iter().map(Cause::render).collect();
        assert_eq!(
            rendered,
            vec!["spec.clusterIPs[0]: Invalid value: []string{\"fd00::1\"}: IPv6 is not configured on this cluster"]
        );

        let bad_type = prepared(svc("y", json!({"type": "Foo", "ports": [{"port": 80}]})));
        let rendered: Vec<String> = causes_of(&bad_type).iter().map(Cause::render).collect();
        assert!(rendered.contains(&"spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"".to_string()), "{rendered:?}");
    }

    #[test]
    fn update_preparation_follows_upstream() {
        let mut old = prepared(svc(
            "u",
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}),
        ));
        old["spec"]["clusterIP"] = json!("10.43.1.5");
        old["spec"]["clusterIPs"] = json!(["10.43.1.5"]);
        old["spec"]["ports"][0]["nodePort"] = json!(30080);

        // A PUT without the allocated values gets them back.
        let mut put = svc(
            "u",
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}),
        );
        set_defaults(&mut put);
        prepare_update(&mut put, &old);
        assert_eq!(put["spec"]["clusterIP"], "10.43.1.5");
        assert_eq!(put["spec"]["clusterIPs"], json!(["10.43.1.5"]));
        assert_eq!(put["spec"]["ports"][0]["nodePort"], 30080);
        let mut c = Vec::new();
        validate_service_update(&put, &old, &mut c);
        assert!(c.is_empty(), "{c:?}");

        // NodePort -> ClusterIP wipes the node ports and externalTrafficPolicy.
        let mut to_cip = old.clone();
        to_cip["spec"]["type"] = json!("ClusterIP");
        set_defaults(&mut to_cip);
        prepare_update(&mut to_cip, &old);
        assert!(to_cip["spec"]["ports"][0].get("nodePort").is_none());
        assert!(to_cip["spec"].get("externalTrafficPolicy").is_none());
        assert!(causes_of(&to_cip).is_empty(), "{:?}", causes_of(&to_cip));

        // ClusterIP -> ExternalName clears the IP fields.
        let mut to_ext = to_cip.clone();
        to_ext["spec"]["type"] = json!("ExternalName");
        to_ext["spec"]["externalName"] = json!("example.com");
        prepare_update(&mut to_ext, &to_cip);
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            assert!(to_ext["spec"].get(f).is_none(), "{f} kept");
        }

        // Changing the cluster IP is refused.
        let mut moved = old.clone();
        moved["spec"]["clusterIP"] = json!("10.43.1.6");
        prepare_update(&mut moved, &old);
        let mut c = Vec::new();
        validate_service_update(&moved, &old, &mut c);
        assert_eq!(
            c.iter().map(Cause::render).collect::<Vec<_>>(),
            vec!["spec.clusterIPs[0]: Invalid value: []string{\"10.43.1.6\"}: may not change once set"]
        );
    }

    fn test_store() -> (tempfile::TempDir, Arc<dyn Backend>) {
        let dir = tempfile::tempdir().unwrap();
        let b: Arc<dyn Backend> =
            Arc::new(store::SqliteBackend::open(&dir.path().join("state.db")).unwrap());
        (dir, b)
    }

    fn allocator(store: Arc<dyn Backend>, cidr: &str, ports: &str) -> ServiceAllocator {
        ServiceAllocator::new(
            store,
            ServiceAllocatorConfig {
                service_cidr: cidr.into(),
                node_port_range: ports.into(),
                reserved: vec![Reservation {
                    ip: ServiceCidr::parse(cidr).unwrap().first().unwrap(),
                    namespace: "default".into(),
                    name: "kubernetes".into(),
                }],
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn allocates_dynamically_above_the_static_band_and_never_twice() {
        let (_d, store) = test_store();
        // /27: 30 addresses, static band 16, so 14 dynamic ones before the band is used.
        let a = allocator(store.clone(), "10.96.0.0/27", "30000-30015");
        let cidr = a.cidr();
        let mut seen = HashSet::new();
        for i in 0..29 {
            let mut s = prepared(svc(&format!("s{i}"), json!({"ports": [{"port": 80}]})));
            meta::meta_mut(&mut s).insert("uid".into(), json!(format!("u{i}")));
            let _claims = a.allocate_create(&mut s, false).await.unwrap();
            let ip: Ipv4Addr = s["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
            assert_eq!(s["spec"]["clusterIPs"], json!([ip.to_string()]));
            let idx = cidr.index_of(ip).unwrap();
            if i < 14 {
                assert!(idx >= 16, "dynamic IP {ip} from the static band too early");
            }
            assert_ne!(idx, 0, "the first address is kept for kubernetes");
            assert!(seen.insert(ip), "{ip} given twice");
        }
        let mut full = prepared(svc("full", json!({"ports": [{"port": 80}]})));
        let err = a.allocate_create(&mut full, false).await.err().unwrap();
        assert_eq!(err.code, 500);
        assert_eq!(
            err.message,
            "Internal error occurred: failed to allocate a serviceIP: range is full"
        );
    }

    #[tokio::test]
    async fn static_requests_conflicts_and_release() {
        let (_d, store) = test_store();
        let a = allocator(store.clone(), "10.43.0.0/16", "30000-32767");
        let mut s1 = prepared(svc(
            "one",
            json!({"ports": [{"port": 80}], "clusterIP": "10.43.0.20"}),
        ));
        let c1 = a.allocate_create(&mut s1, false).await.unwrap();
        drop(c1);
        let mut s2 = prepared(svc(
            "two",
            json!({"ports": [{"port": 80}], "clusterIP": "10.43.0.20"}),
        ));
        meta::meta_mut(&mut s2).insert("uid".into(), json!("u2"));
        let err = a.allocate_create(&mut s2, false).await.err().unwrap();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "Service \"two\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.43.0.20\"}: failed to allocate IP 10.43.0.20: provided IP is already allocated"
        );
        let mut out = prepared(svc(
            "out",
            json!({"ports": [{"port": 80}], "clusterIP": "10.44.0.1"}),
        ));
        let err = a.allocate_create(&mut out, false).await.err().unwrap();
        assert!(err.message.ends_with("failed to allocate IP 10.44.0.1: the provided IP (10.44.0.1) is not in the valid range. The range of valid IPs is 10.43.0.0/16"), "{}", err.message);
        let mut k = prepared(svc(
            "other",
            json!({"ports": [{"port": 80}], "clusterIP": "10.43.0.1"}),
        ));
        let err = a.allocate_create(&mut k, false).await.err().unwrap();
        assert!(
            err.message.ends_with("provided IP is already allocated"),
            "{}",
            err.message
        );

        // A failed node port request leaves nothing claimed.
        let mut np = prepared(svc(
            "np",
            json!({"type": "NodePort", "clusterIP": "10.43.0.30",
            "ports": [{"name": "a", "port": 80, "nodePort": 80}]}),
        ));
        meta::meta_mut(&mut np).insert("uid".into(), json!("u3"));
        let err = a.allocate_create(&mut np, false).await.err().unwrap();
        assert_eq!(
            err.message,
            "Service \"np\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        assert!(store
            .get(&ip_claim_key(Ipv4Addr::new(10, 43, 0, 30)), 0)
            .await
            .unwrap()
            .0
            .is_none());

        // Ports sharing a number share a node port; release frees everything.
        let mut dns = prepared(svc(
            "dns",
            json!({"type": "NodePort", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}]}),
        ));
        meta::meta_mut(&mut dns).insert("uid".into(), json!("u4"));
        let _ = a.allocate_create(&mut dns, false).await.unwrap();
        let p0 = dns["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
        assert_eq!(dns["spec"]["ports"][1]["nodePort"].as_i64().unwrap(), p0);
        assert!(
            p0 >= 30000 + 86,
            "dynamic node port {p0} from the static band"
        );
        let keys = a.claim_keys(&dns);
        assert_eq!(keys.len(), 2);
        a.release_service(&dns).await;
        for k in keys {
            assert!(
                store.get(&k, 0).await.unwrap().0.is_none(),
                "{k} still claimed"
            );
        }
        // Releasing checks the holder: another Service's claim stays.
        let mut not_owner = s1.clone();
        meta::meta_mut(&mut not_owner).insert("uid".into(), json!("someone-else"));
        a.release_service(&not_owner).await;
        assert!(store
            .get(&ip_claim_key(Ipv4Addr::new(10, 43, 0, 20)), 0)
            .await
            .unwrap()
            .0
            .is_some());
    }

    #[tokio::test]
    async fn update_type_changes_claim_and_release() {
        let (_d, store) = test_store();
        let a = allocator(store.clone(), "10.43.0.0/16", "30000-32767");
        let mut old = prepared(svc("t", json!({"ports": [{"name": "http", "port": 80}]})));
        let _ = a.allocate_create(&mut old, false).await.unwrap();
        let ip = old["spec"]["clusterIP"].as_str().unwrap().to_string();

        let mut new = old.clone();
        new["spec"]["type"] = json!("NodePort");
        set_defaults(&mut new);
        prepare_update(&mut new, &old);
        let claims = a.allocate_update(&mut new, &old, false).await.unwrap();
        claims.finish(true).await;
        let np = new["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
        assert!(store
            .get(&port_claim_key(np as u16), 0)
            .await
            .unwrap()
            .0
            .is_some());

        let mut back = new.clone();
        back["spec"]["type"] = json!("ClusterIP");
        set_defaults(&mut back);
        prepare_update(&mut back, &new);
        let claims = a.allocate_update(&mut back, &new, false).await.unwrap();
        // Not stored: the old port stays claimed.
        claims.finish(false).await;
        assert!(store
            .get(&port_claim_key(np as u16), 0)
            .await
            .unwrap()
            .0
            .is_some());
        let claims = a.allocate_update(&mut back, &new, false).await.unwrap();
        claims.finish(true).await;
        assert!(store
            .get(&port_claim_key(np as u16), 0)
            .await
            .unwrap()
            .0
            .is_none());
        assert!(back["spec"]["ports"][0].get("nodePort").is_none());

        let mut ext = back.clone();
        ext["spec"]["type"] = json!("ExternalName");
        ext["spec"]["externalName"] = json!("example.com");
        prepare_update(&mut ext, &back);
        let claims = a.allocate_update(&mut ext, &back, false).await.unwrap();
        claims.finish(true).await;
        let ipk = ip_claim_key(ip.parse().unwrap());
        assert!(
            store.get(&ipk, 0).await.unwrap().0.is_none(),
            "IP kept after ExternalName"
        );

        let mut again = ext.clone();
        again["spec"]["type"] = json!("ClusterIP");
        set_defaults(&mut again);
        prepare_update(&mut again, &ext);
        let claims = a.allocate_update(&mut again, &ext, false).await.unwrap();
        claims.finish(true).await;
        assert!(again["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|s| !s.is_empty()));
        assert_eq!(again["spec"]["ipFamilies"], json!(["IPv4"]));
    }

    #[tokio::test]
    async fn health_check_node_port_for_local_load_balancers() {
        let (_d, store) = test_store();
        let a = allocator(store.clone(), "10.43.0.0/16", "30000-32767");
        let mut lb = prepared(svc(
            "lb",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80}]}),
        ));
        let _ = a.allocate_create(&mut lb, false).await.unwrap();
        let hc = lb["spec"]["healthCheckNodePort"].as_i64().unwrap();
        assert!((30000..=32767).contains(&hc));
        assert_ne!(hc, lb["spec"]["ports"][0]["nodePort"].as_i64().unwrap());
        assert_eq!(a.claim_keys(&lb).len(), 3);

        let mut no_alloc = prepared(svc(
            "lb2",
            json!({"type": "LoadBalancer",
            "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}),
        ));
        let _ = a.allocate_create(&mut no_alloc, true).await.unwrap();
        assert!(no_alloc["spec"]["ports"][0].get("nodePort").is_none());
    }

    #[tokio::test]
    async fn repair_claims_missing_and_releases_leaks() {
        let (_d, store) = test_store();
        let a = allocator(store.clone(), "10.43.0.0/16", "30000-32767");
        let res = services_res();
        // A stored Service without claims (as if written before allocation existed).
        let mut s = prepared(svc(
            "old",
            json!({"type": "NodePort", "clusterIP": "10.43.5.5",
            "ports": [{"port": 80, "nodePort": 30500}]}),
        ));
        s["spec"]["clusterIPs"] = json!(["10.43.5.5"]);
        store
            .create(
                &crate::registry::key(res, "default", "old"),
                Bytes::from(serde_json::to_vec(&s).unwrap()),
            )
            .await
            .unwrap();
        // A leaked claim.
        let leak = Claim {
            namespace: "default".into(),
            name: "gone".into(),
            uid: "x".into(),
        };
        store
            .create(&ip_claim_key(Ipv4Addr::new(10, 43, 9, 9)), leak.bytes())
            .await
            .unwrap();

        let r = a.repair(false).await.unwrap();
        assert_eq!(r.claimed, 2);
        assert_eq!(
            r.released, 0,
            "a leak is kept until seen in {LEAK_PASSES} passes"
        );
        let r = a.repair(false).await.unwrap();
        assert_eq!((r.claimed, r.released), (0, 0));
        let r = a.repair(false).await.unwrap();
        assert_eq!((r.claimed, r.released), (0, 1));
        assert!(store
            .get(&ip_claim_key(Ipv4Addr::new(10, 43, 9, 9)), 0)
            .await
            .unwrap()
            .0
            .is_none());
        let kv = store
            .get(&ip_claim_key(Ipv4Addr::new(10, 43, 5, 5)), 0)
            .await
            .unwrap()
            .0
            .unwrap();
        assert_eq!(Claim::parse(&kv), Some(Claim::of(&s)));

        store
            .create(&port_claim_key(31000), leak.bytes())
            .await
            .unwrap();
        let r = a.repair(true).await.unwrap();
        assert_eq!(r.released, 1, "at startup leaks go at once");
    }

    #[test]
    fn system_services_objects() {
        let cfg = SystemServicesConfig {
            kubernetes_ip: Ipv4Addr::new(10, 43, 0, 1),
            apiserver_ip: Ipv4Addr::new(192, 168, 1, 10),
            apiserver_port: 6443,
            cluster_dns: Some(Ipv4Addr::new(10, 43, 0, 10)),
            dns_ip: Ipv4Addr::new(192, 168, 1, 10),
        };
        let all = system_services(&cfg);
        assert_eq!(all.len(), 2);
        let k = &all[0];
        assert_eq!(
            k.service()["spec"]["ports"],
            json!([{"name": "https", "protocol": "TCP", "port": 443, "targetPort": 6443}])
        );
        assert_eq!(
            k.service()["metadata"]["labels"],
            json!({"component": "apiserver", "provider": "kubernetes"})
        );
        assert_eq!(
            k.endpoint_slice(),
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["192.168.1.10"], "conditions": {"ready": true}}],
                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]})
        );
        assert_eq!(
            k.endpoints()["subsets"][0]["addresses"],
            json!([{"ip": "192.168.1.10"}])
        );
        let dns = &all[1];
        assert_eq!(dns.service()["spec"]["clusterIP"], "10.43.0.10");
        assert_eq!(
            dns.endpoints()["subsets"][0]["ports"],
            json!([
            {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])
        );
        assert_eq!(reservations(&all)[1].ip, Ipv4Addr::new(10, 43, 0, 10));

        let mut drifted = prepared(k.service());
        assert!(!k.service_drifted(&drifted));
        drifted["spec"]["ports"][0]["targetPort"] = json!(8443);
        assert!(k.service_drifted(&drifted));
        k.fix_service(&mut drifted);
        assert!(!k.service_drifted(&drifted));
    }
}
