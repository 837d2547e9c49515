//! Per-kind strategies plugged into the generic registry: defaulting, create/update
//! preparation, validation, name rules and field-selector fields. Kinds without special
//! rules use the default strategy.

use crate::error::Cause;
use crate::validation::NameRule;
use serde_json::{json, Map, Value};

pub trait Strategy: Send + Sync {
    /// Fills defaulted fields, as upstream's `SetDefaults_*`.
    fn default(&self, _obj: &mut Value) {}
    /// Resets fields a create may not set (e.g. status).
    fn prepare_create(&self, _obj: &mut Value) {}
    /// Kind-specific validation of a new or updated object.
    fn validate(&self, _obj: &Value, _causes: &mut Vec<Cause>) {}
    /// Extra checks comparing an update with the stored object (immutability).
    fn validate_update(&self, _new: &Value, _old: &Value, _causes: &mut Vec<Cause>) {}
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }
    /// Field-selector fields supported beyond `metadata.name` and `metadata.namespace`.
    fn field_selectors(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether a delete is graceful (seconds to wait); 0 deletes at once.
    fn grace_period(&self, _obj: &Value, _requested: Option<i64>) -> i64 {
        0
    }
    /// Whether the main resource carries a generation bumped on spec changes.
    fn tracks_generation(&self) -> bool {
        true
    }
}

struct Default_;
impl Strategy for Default_ {}

struct NoGeneration;
impl Strategy for NoGeneration {
    fn tracks_generation(&self) -> bool {
        false
    }
}

/// The strategy for a resource.
pub fn for_resource(group: &str, plural: &str) -> &'static dyn Strategy {
    match (group, plural) {
        ("", "pods") => &Pod,
        ("", "namespaces") => &Namespace,
        ("", "services") => &Service,
        ("", "secrets") => &Secret,
        ("", "configmaps") => &ConfigMap,
        ("", "events") | ("events.k8s.io", "events") => &Event,
        ("", "nodes") => &Node,
        ("", "serviceaccounts") | ("", "endpoints") | ("coordination.k8s.io", "leases") => {
            &NoGeneration
        }
        ("discovery.k8s.io", "endpointslices") | ("scheduling.k8s.io", "priorityclasses") => {
            &NoGeneration
        }
        ("rbac.authorization.k8s.io", _) => &Rbac,
        ("apps", "deployments") => &Workload::Deployment,
        ("apps", "replicasets") => &Workload::ReplicaSet,
        ("apps", "statefulsets") => &Workload::StatefulSet,
        ("apps", "daemonsets") => &Workload::DaemonSet,
        ("batch", "jobs") => &Job,
        ("batch", "cronjobs") => &CronJob,
        ("", "persistentvolumes") => &Pv,
        ("", "persistentvolumeclaims") => &Pvc,
        _ => &Default_,
    }
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("object")
}

fn set_default(m: &mut Map<String, Value>, key: &str, val: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), val);
    }
}

// ---------------------------------------------------------------------------------------
// Pods and pod templates

fn default_image_pull_policy(image: &str) -> &'static str {
    // The tag is after the last ':' that follows the last '/'; a digest pins the image.
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    set_default(m, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(m, "terminationMessagePolicy", json!("File"));
    let image = m
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    set_default(
        m,
        "imagePullPolicy",
        json!(default_image_pull_policy(&image)),
    );
    set_default(m, "resources", json!({}));
    if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if let Some(p) = p.as_object_mut() {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    }
    if let Some(env) = m.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if let Some(fr) = e
                .pointer_mut("/valueFrom/fieldRef")
                .and_then(Value::as_object_mut)
            {
                set_default(fr, "apiVersion", json!("v1"));
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = m.get_mut(probe).and_then(Value::as_object_mut) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                set_default(h, "path", json!("/"));
                set_default(h, "scheme", json!("HTTP"));
            }
        }
    }
}

/// Upstream's pod-spec defaults.
pub fn default_pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    set_default(m, "restartPolicy", json!("Always"));
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "securityContext", json!({}));
    set_default(m, "schedulerName", json!("default-scheduler"));
    set_default(m, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(default_container);
        }
    }
    if let Some(vols) = m.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols {
            for src in ["configMap", "secret"] {
                if let Some(s) = v.get_mut(src).and_then(Value::as_object_mut) {
                    set_default(s, "defaultMode", json!(420));
                }
            }
            if let Some(p) = v.get_mut("projected").and_then(Value::as_object_mut) {
                set_default(p, "defaultMode", json!(420));
            }
        }
    }
}

/// The QoS class upstream computes from requests and limits.
pub fn qos_class(spec: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten();
    for c in containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        let nonzero = |m: Option<&Map<String, Value>>, k: &str| {
            m.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .is_some_and(|q| q != "0")
        };
        for r in ["cpu", "memory"] {
            if nonzero(req, r) || nonzero(lim, r) {
                any = true;
            }
            let l = lim.and_then(|m| m.get(r)).and_then(Value::as_str);
            let q = req.and_then(|m| m.get(r)).and_then(Value::as_str).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn validate_containers(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let mut names: Vec<&str> = Vec::new();
    match spec.get("containers").and_then(Value::as_array) {
        Some(cs) if !cs.is_empty() => {}
        _ => causes.push(Cause::required(format!("{path}.containers"))),
    }
    for list in ["initContainers", "containers"] {
        let Some(cs) = spec.get(list).and_then(Value::as_array) else {
            continue;
        };
        for (i, c) in cs.iter().enumerate() {
            let p = format!("{path}.{list}[{i}]");
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                causes.push(Cause::required(format!("{p}.name")));
            } else {
                for problem in crate::validation::name_problems(name, NameRule::Label) {
                    causes.push(Cause::invalid(format!("{p}.name"), &json!(name), &problem));
                }
                if names.contains(&name) {
                    causes.push(Cause::duplicate(format!("{p}.name"), &json!(name)));
                }
                names.push(name);
            }
            if c.get("image")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim()
                .is_empty()
            {
                causes.push(Cause::required(format!("{p}.image")));
            }
            if let Some(ports) = c.get("ports").and_then(Value::as_array) {
                for (j, port) in ports.iter().enumerate() {
                    let n = port
                        .get("containerPort")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    if !(1..=65535).contains(&n) {
                        causes.push(Cause::invalid(
                            format!("{p}.ports[{j}].containerPort"),
                            &json!(n),
                            "must be between 1 and 65535, inclusive",
                        ));
                    }
                }
            }
            if let Some(pol) = c.get("imagePullPolicy").and_then(Value::as_str) {
                let ok = ["Always", "IfNotPresent", "Never"];
                if !ok.contains(&pol) {
                    causes.push(Cause::not_supported(
                        format!("{p}.imagePullPolicy"),
                        &json!(pol),
                        &ok,
                    ));
                }
            }
        }
    }
}

fn validate_pod_spec(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    validate_containers(spec, path, causes);
    if let Some(rp) = spec.get("restartPolicy").and_then(Value::as_str) {
        let ok = ["Always", "OnFailure", "Never"];
        if !ok.contains(&rp) {
            causes.push(Cause::not_supported(
                format!("{path}.restartPolicy"),
                &json!(rp),
                &ok,
            ));
        }
    }
    if let Some(dp) = spec.get("dnsPolicy").and_then(Value::as_str) {
        let ok = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
        if !ok.contains(&dp) {
            causes.push(Cause::not_supported(
                format!("{path}.dnsPolicy"),
                &json!(dp),
                &ok,
            ));
        }
    }
    if let Some(vols) = spec.get("volumes").and_then(Value::as_array) {
        let mut seen: Vec<&str> = Vec::new();
        for (i, v) in vols.iter().enumerate() {
            let n = v.get("name").and_then(Value::as_str).unwrap_or("");
            if n.is_empty() {
                causes.push(Cause::required(format!("{path}.volumes[{i}].name")));
            } else if seen.contains(&n) {
                causes.push(Cause::duplicate(
                    format!("{path}.volumes[{i}].name"),
                    &json!(n),
                ));
            }
            seen.push(n);
        }
    }
}

struct Pod;
impl Strategy for Pod {
    fn default(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            default_pod_spec(spec);
        }
    }
    fn prepare_create(&self, obj: &mut Value) {
        let qos = qos_class(obj.get("spec").unwrap_or(&Value::Null));
        obj["status"] = json!({"phase": "Pending", "qosClass": qos});
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_pod_spec(obj.get("spec").unwrap_or(&Value::Null), "spec", causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        // Pod updates may only change images, activeDeadlineSeconds, tolerations
        // (additions) and terminationGracePeriodSeconds; compare the rest.
        let strip = |v: &Value| {
            let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
            for list in ["containers", "initContainers"] {
                if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
                    for c in cs {
                        if let Some(c) = c.as_object_mut() {
                            c.remove("image");
                        }
                    }
                }
            }
            if let Some(m) = s.as_object_mut() {
                for k in [
                    "activeDeadlineSeconds",
                    "tolerations",
                    "terminationGracePeriodSeconds",
                    "nodeName",
                ] {
                    m.remove(k);
                }
            }
            s
        };
        if strip(new) != strip(old) {
            causes.push(Cause::forbidden(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            ));
        }
    }
    fn field_selectors(&self) -> &'static [&'static str] {
        &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]
    }
    fn grace_period(&self, obj: &Value, requested: Option<i64>) -> i64 {
        // Unscheduled or finished pods go at once; others wait for the kubelet.
        let scheduled = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        let phase = obj
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !scheduled || phase == "Succeeded" || phase == "Failed" {
            return 0;
        }
        requested
            .or_else(|| {
                obj.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30)
            .max(0)
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------------
// Workloads with a pod template

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
}

fn template_labels(obj: &Value) -> Map<String, Value> {
    obj.pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Whether a metav1.LabelSelector matches a label set (matchLabels and matchExpressions).
pub fn selector_matches(sel: &Value, labels: &Map<String, Value>) -> bool {
    crate::selector::LabelSelector::from_json(sel).is_ok_and(|s| s.matches(labels))
}

fn go_map(m: &Map<String, Value>) -> String {
    let inner: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{:?}:{:?}", k, v.as_str().unwrap_or("")))
        .collect();
    format!("map[string]string{{{}}}", inner.join(", "))
}

impl Strategy for Workload {
    fn default(&self, obj: &mut Value) {
        let kind = *self;
        let spec = obj_mut(obj, "spec");
        if kind != Workload::DaemonSet {
            set_default(spec, "replicas", json!(1));
        }
        match kind {
            Workload::Deployment => {
                set_default(spec, "strategy", json!({"type": "RollingUpdate"}));
                if let Some(s) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
                    if s.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                        let ru = s.entry("rollingUpdate").or_insert(json!({}));
                        if let Some(ru) = ru.as_object_mut() {
                            set_default(ru, "maxUnavailable", json!("25%"));
                            set_default(ru, "maxSurge", json!("25%"));
                        }
                    }
                }
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
            }
            Workload::StatefulSet => {
                set_default(spec, "podManagementPolicy", json!("OrderedReady"));
                set_default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
            }
            Workload::DaemonSet => {
                set_default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                );
                set_default(spec, "revisionHistoryLimit", json!(10));
            }
            Workload::ReplicaSet => {}
        }
        if let Some(ps) = obj.pointer_mut("/spec/template/spec") {
            default_pod_spec(ps);
        }
    }
    fn prepare_create(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.insert("status".into(), json!({}));
        }
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        match obj.pointer("/spec/selector") {
            Some(sel) if sel.is_object() => {
                let empty = sel
                    .get("matchLabels")
                    .and_then(Value::as_object)
                    .is_none_or(Map::is_empty)
                    && sel
                        .get("matchExpressions")
                        .and_then(Value::as_array)
                        .is_none_or(Vec::is_empty);
                if empty {
                    causes.push(Cause::invalid(
                        "spec.selector",
                        &json!("null"),
                        "empty selector is invalid for deployment",
                    ));
                } else {
                    let labels = template_labels(obj);
                    if !selector_matches(sel, &labels) {
                        causes.push(Cause {
                            reason: "FieldValueInvalid".into(),
                            message: format!(
                                "Invalid value: {}: `selector` does not match template `labels`",
                                go_map(&labels)
                            ),
                            field: "spec.template.metadata.labels".into(),
                        });
                    }
                }
            }
            _ => causes.push(Cause::required("spec.selector")),
        }
        if let Some(r) = obj.pointer("/spec/replicas").and_then(Value::as_i64) {
            if r < 0 {
                causes.push(Cause::invalid(
                    "spec.replicas",
                    &json!(r),
                    "must be greater than or equal to 0",
                ));
            }
        }
        let tspec = obj.pointer("/spec/template/spec").unwrap_or(&Value::Null);
        validate_pod_spec(tspec, "spec.template.spec", causes);
        if let Some(rp) = tspec.get("restartPolicy").and_then(Value::as_str) {
            if rp != "Always" {
                causes.push(Cause::not_supported(
                    "spec.template.spec.restartPolicy",
                    &json!(rp),
                    &["Always"],
                ));
            }
        }
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        let ns = new.pointer("/spec/selector");
        if ns != old.pointer("/spec/selector") {
            causes.push(Cause::invalid(
                "spec.selector",
                ns.unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
}

struct Job;
impl Strategy for Job {
    fn default(&self, obj: &mut Value) {
        let uid = crate::meta::meta_str(obj, "uid").unwrap_or("").to_string();
        let name = crate::meta::name(obj).to_string();
        let spec = obj_mut(obj, "spec");
        let (p, c) = (
            spec.get("parallelism").cloned(),
            spec.get("completions").cloned(),
        );
        if p.is_none() && c.is_none() {
            spec.insert("parallelism".into(), json!(1));
            spec.insert("completions".into(), json!(1));
        } else {
            set_default(spec, "parallelism", json!(1));
        }
        set_default(spec, "backoffLimit", json!(6));
        set_default(spec, "completionMode", json!("NonIndexed"));
        set_default(spec, "suspend", json!(false));
        set_default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
        // Generated selector (manualSelector unset), as the job strategy does on create.
        let manual = spec
            .get("manualSelector")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !manual && !uid.is_empty() && spec.get("selector").is_none() {
            spec.insert(
                "selector".into(),
                json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
            );
            let tm = spec
                .entry("template")
                .or_insert(json!({}))
                .as_object_mut()
                .map(|t| t.entry("metadata").or_insert(json!({})));
            if let Some(Value::Object(tm)) = tm {
                let labels = tm.entry("labels").or_insert(json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
                    l.insert("controller-uid".into(), json!(uid));
                    l.insert("batch.kubernetes.io/job-name".into(), json!(name));
                    l.insert("job-name".into(), json!(name));
                }
            }
        }
        if let Some(ps) = obj.pointer_mut("/spec/template/spec") {
            default_pod_spec(ps);
        }
    }
    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        let tspec = obj.pointer("/spec/template/spec").unwrap_or(&Value::Null);
        validate_pod_spec(tspec, "spec.template.spec", causes);
        let rp = tspec
            .get("restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or("");
        if rp != "OnFailure" && rp != "Never" {
            causes.push(Cause::not_supported(
                "spec.template.spec.restartPolicy",
                &json!(rp),
                &["OnFailure", "Never"],
            ));
        }
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        if new.pointer("/spec/selector") != old.pointer("/spec/selector") {
            causes.push(Cause::invalid(
                "spec.selector",
                new.pointer("/spec/selector").unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
    fn field_selectors(&self) -> &'static [&'static str] {
        &["status.successful"]
    }
}

struct CronJob;
impl Strategy for CronJob {
    fn default(&self, obj: &mut Value) {
        let spec = obj_mut(obj, "spec");
        set_default(spec, "concurrencyPolicy", json!("Allow"));
        set_default(spec, "suspend", json!(false));
        set_default(spec, "successfulJobsHistoryLimit", json!(3));
        set_default(spec, "failedJobsHistoryLimit", json!(1));
        if let Some(ps) = obj.pointer_mut("/spec/jobTemplate/spec/template/spec") {
            default_pod_spec(ps);
        }
    }
    fn prepare_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        if obj
            .pointer("/spec/schedule")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            causes.push(Cause::required("spec.schedule"));
        }
        let tspec = obj
            .pointer("/spec/jobTemplate/spec/template/spec")
            .unwrap_or(&Value::Null);
        validate_pod_spec(tspec, "spec.jobTemplate.spec.template.spec", causes);
    }
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }
}

// ---------------------------------------------------------------------------------------
// Core kinds

struct Namespace;
impl Strategy for Namespace {
    fn default(&self, obj: &mut Value) {
        let name = crate::meta::name(obj).to_string();
        if !name.is_empty() {
            let m = crate::meta::meta_mut(obj);
            let labels = m.entry("labels").or_insert(json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
    }
    fn prepare_create(&self, obj: &mut Value) {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
    }
    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }
    fn field_selectors(&self) -> &'static [&'static str] {
        &["status.phase"]
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

/// Services: defaulting, preparation and validation live in `crate::services`, next to
/// the allocation they go with.
struct Service;
impl Strategy for Service {
    fn default(&self, obj: &mut Value) {
        crate::services::set_defaults(obj);
    }
    fn prepare_create(&self, obj: &mut Value) {
        crate::services::prepare_create(obj);
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        crate::services::validate_service(obj, causes);
    }
    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        crate::services::validate_service_update(new, old, causes);
    }
    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

fn validate_data_keys(obj: &Value, fields: &[&str], causes: &mut Vec<Cause>) {
    for f in fields {
        if let Some(m) = obj.get(*f).and_then(Value::as_object) {
            for k in m.keys() {
                let ok = !k.is_empty()
                    && k.len() <= 253
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
                if !ok {
                    causes.push(Cause::invalid(
                        f.to_string(),
                        &json!(k),
                        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                    ));
                }
            }
        }
    }
}

struct ConfigMap;
impl Strategy for ConfigMap {
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_data_keys(obj, &["data", "binaryData"], causes);
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

struct Secret;
impl Strategy for Secret {
    fn default(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            set_default(m, "type", json!("Opaque"));
            // stringData is write-only: merged into data, then dropped.
            if let Some(Value::Object(sd)) = m.remove("stringData") {
                use base64::Engine;
                let data = m.entry("data").or_insert(json!({}));
                if let Some(d) = data.as_object_mut() {
                    for (k, v) in sd {
                        let s = v.as_str().unwrap_or("").as_bytes().to_vec();
                        d.insert(
                            k,
                            json!(base64::engine::general_purpose::STANDARD.encode(s)),
                        );
                    }
                }
            }
        }
    }
    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        validate_data_keys(obj, &["data"], causes);
    }
    fn field_selectors(&self) -> &'static [&'static str] {
        &["type"]
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

struct Event;
impl Strategy for Event {
    fn field_selectors(&self) -> &'static [&'static str] {
        &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "regarding.kind",
            "regarding.name",
            "regarding.namespace",
            "regarding.uid",
        ]
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

struct Node;
impl Strategy for Node {
    fn field_selectors(&self) -> &'static [&'static str] {
        &["spec.unschedulable"]
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

struct Rbac;
impl Strategy for Rbac {
    fn name_rule(&self) -> NameRule {
        NameRule::Path
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

struct Pv;
impl Strategy for Pv {
    fn default(&self, obj: &mut Value) {
        let spec = obj_mut(obj, "spec");
        set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        set_default(spec, "volumeMode", json!("Filesystem"));
        if obj.get("status").is_none() {
            obj["status"] = json!({"phase": "Pending"});
        }
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

struct Pvc;
impl Strategy for Pvc {
    fn default(&self, obj: &mut Value) {
        let spec = obj_mut(obj, "spec");
        set_default(spec, "volumeMode", json!("Filesystem"));
        if obj.get("status").is_none() {
            obj["status"] = json!({"phase": "Pending"});
        }
    }
    fn tracks_generation(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(default_image_pull_policy("busybox"), "Always");
        assert_eq!(default_image_pull_policy("busybox:latest"), "Always");
        assert_eq!(
            default_image_pull_policy("localhost:5000/busybox"),
            "Always"
        );
        assert_eq!(
            default_image_pull_policy("localhost/busybox:1.36"),
            "IfNotPresent"
        );
    }

    #[test]
    fn qos() {
        assert_eq!(
            qos_class(&json!({"containers":[{"name":"a"}]})),
            "BestEffort"
        );
        assert_eq!(
            qos_class(&json!({"containers":[{"resources":{"limits":{"cpu":"1","memory":"1Gi"}}}]})),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&json!({"containers":[{"resources":{"requests":{"cpu":"1"}}}]})),
            "Burstable"
        );
    }

    #[test]
    fn deployment_selector_must_match() {
        let d = json!({"metadata":{"name":"x"},"spec":{"selector":{"matchLabels":{"app":"x"}},
            "template":{"metadata":{"labels":{"app":"y"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}});
        let mut c = Vec::new();
        Workload::Deployment.validate(&d, &mut c);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn pod_requires_image() {
        let p = json!({"spec":{"containers":[{"name":"c"}]}});
        let mut c = Vec::new();
        Pod.validate(&p, &mut c);
        assert_eq!(c, vec![Cause::required("spec.containers[0].image")]);
    }
}
