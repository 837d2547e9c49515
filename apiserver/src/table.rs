//! Server-side `meta.k8s.io/v1` `Table` rendering for `kubectl get` (human-readable output).
//!
//! Column sets and cell computations follow upstream `pkg/printers/internalversion/printers.go`
//! for Kubernetes 1.33 as served by the API server (which always prints the "wide" columns;
//! kubectl hides `priority > 0` columns unless `-o wide`). Ages use [`human_duration`], a port
//! of apimachinery's `duration.HumanDuration`. Built-in kinds without a printer (roles,
//! clusterroles, limitranges, …) get upstream's default table (`Name`, `Created At`); resources of
//! non-built-in groups (custom resources) get the CRD default (`Name`, `Age`).

use crate::selector::{format_labels, LabelSelector};
use jiff::Timestamp;
use serde_json::{json, Map, Value};

/// What `rows[].object` carries (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter (missing/unknown → `Metadata`).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Renders `objects` (items of `resource` in `group`) as a full `Table`.
pub fn to_table(
    resource: &str,
    group: &str,
    objects: &[Value],
    now: Timestamp,
    include_object: IncludeObject,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    to_table_opts(
        resource,
        group,
        objects,
        now,
        include_object,
        resource_version,
        continue_token,
        true,
    )
}

/// Like [`to_table`]; with `include_columns == false` the table carries
/// `"columnDefinitions": []` (for watch events after the first).
#[allow(clippy::too_many_arguments)]
pub fn to_table_opts(
    resource: &str,
    group: &str,
    objects: &[Value],
    now: Timestamp,
    include_object: IncludeObject,
    resource_version: &str,
    continue_token: Option<&str>,
    include_columns: bool,
) -> Value {
    let printer = printer_for(resource, group);
    let columns: Vec<Value> = if include_columns {
        printer
            .columns
            .iter()
            .map(|(name, ty, format, prio, desc)| {
                json!({"name": name, "type": ty, "format": format, "description": desc, "priority": prio})
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array((printer.cells)(obj, now)));
            if let Some(c) = row_conditions(resource, group, obj) {
                row.insert("conditions".into(), c);
            }
            match include_object {
                IncludeObject::None => {}
                IncludeObject::Object => {
                    row.insert("object".into(), obj.clone());
                }
                IncludeObject::Metadata => {
                    row.insert(
                        "object".into(),
                        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({}))}),
                    );
                }
            }
            Value::Object(row)
        })
        .collect();
    let mut meta = Map::new();
    meta.insert("resourceVersion".into(), resource_version.into());
    if let Some(c) = continue_token.filter(|c| !c.is_empty()) {
        meta.insert("continue".into(), c.into());
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
           "columnDefinitions": columns, "rows": rows})
}

/// Port of apimachinery `duration.HumanDuration` for a signed number of seconds.
pub fn human_duration_secs(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `duration.HumanDuration` of `to - from`.
pub fn human_duration(from: Timestamp, to: Timestamp) -> String {
    human_duration_secs(to.duration_since(from).as_secs())
}

fn parse_ts(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_str).and_then(|s| s.parse().ok())
}

/// `translateTimestampSince`: `<unknown>` for a missing/zero timestamp.
fn since(v: Option<&Value>, now: Timestamp) -> String {
    match parse_ts(v) {
        Some(t) => human_duration(t, now),
        None => "<unknown>".into(),
    }
}

fn age(obj: &Value, now: Timestamp) -> Value {
    since(obj.pointer("/metadata/creationTimestamp"), now).into()
}

fn s<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn i(obj: &Value, ptr: &str) -> i64 {
    obj.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(obj: &'a Value, ptr: &str) -> &'a [Value] {
    obj.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn len_of(obj: &Value, ptr: &str) -> usize {
    match obj.pointer(ptr) {
        Some(Value::Array(a)) => a.len(),
        Some(Value::Object(o)) => o.len(),
        _ => 0,
    }
}

fn name(obj: &Value) -> Value {
    s(obj, "/metadata/name").into()
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.into()
    }
}

fn int_or_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// `layoutContainerCells`: container names and images, comma-joined.
fn containers(obj: &Value, spec_ptr: &str) -> (Value, Value) {
    let cs = arr(obj, &format!("{spec_ptr}/containers"));
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(",").into(), images.join(",").into())
}

/// `metav1.FormatLabelSelector`.
fn format_selector(sel: Option<&Value>) -> String {
    match LabelSelector::from_json(sel.unwrap_or(&Value::Null)) {
        Ok(s) => s.format(),
        Err(_) => "<error>".into(),
    }
}

fn labels_of<'a>(obj: &'a Value, ptr: &str) -> Option<&'a Map<String, Value>> {
    obj.pointer(ptr).and_then(Value::as_object)
}

type Column = (&'static str, &'static str, &'static str, i64, &'static str);
type Cells = fn(&Value, Timestamp) -> Vec<Value>;

struct Printer {
    columns: Vec<Column>,
    cells: Cells,
}

const NAME: Column = ("Name", "string", "name", 0, "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names");
const AGE: Column = ("Age", "string", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata");
const CONTAINERS: Column = (
    "Containers",
    "string",
    "",
    1,
    "Names of each container in the template.",
);
const IMAGES: Column = (
    "Images",
    "string",
    "",
    1,
    "Images referenced by each container in the template.",
);
const SELECTOR_W: Column = (
    "Selector",
    "string",
    "",
    1,
    "A label query over pods that should match the replica count.",
);

const fn col(name: &'static str, ty: &'static str, prio: i64, desc: &'static str) -> Column {
    (name, ty, "", prio, desc)
}

fn printer_for(resource: &str, group: &str) -> Printer {
    let p = |columns: &[Column], cells: Cells| Printer {
        columns: columns.to_vec(),
        cells,
    };
    match (group, resource) {
        ("", "pods") => p(POD_COLUMNS, pod_cells),
        ("", "namespaces") => p(
            &[NAME, col("Status", "string", 0, "The status of the namespace"), AGE],
            |o, now| vec![name(o), s(o, "/status/phase").into(), age(o, now)],
        ),
        ("", "nodes") => p(NODE_COLUMNS, node_cells),
        ("", "services") => p(SERVICE_COLUMNS, service_cells),
        ("", "endpoints") => p(
            &[NAME, col("Endpoints", "string", 0, "The set of all endpoints is the union of all subsets."), AGE],
            |o, now| vec![name(o), format_endpoints(o).into(), age(o, now)],
        ),
        ("", "configmaps") => p(
            &[NAME, col("Data", "string", 0, "Data contains the configuration data."), AGE],
            |o, now| {
                let n = len_of(o, "/data") + len_of(o, "/binaryData");
                vec![name(o), (n as i64).into(), age(o, now)]
            },
        ),
        ("", "secrets") => p(
            &[NAME, col("Type", "string", 0, "Used to facilitate programmatic handling of secret data."), col("Data", "string", 0, "Data contains the secret data."), AGE],
            |o, now| vec![name(o), s(o, "/type").into(), (len_of(o, "/data") as i64).into(), age(o, now)],
        ),
        ("", "serviceaccounts") => p(
            &[NAME, col("Secrets", "string", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."), AGE],
            |o, now| vec![name(o), (len_of(o, "/secrets") as i64).into(), age(o, now)],
        ),
        ("", "events") => p(EVENT_COLUMNS, event_cells),
        ("events.k8s.io", "events") => p(EVENT_COLUMNS, |o, now| event_cells(&events_v1_to_core(o), now)),
        ("", "resourcequotas") => p(
            &[NAME, col("Request", "string", 0, "Request represents a minimum amount of cpu/memory that a container may consume."), col("Limit", "string", 0, "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."), AGE],
            resource_quota_cells,
        ),
        ("", "persistentvolumes") => p(PV_COLUMNS, pv_cells),
        ("", "persistentvolumeclaims") => p(PVC_COLUMNS, pvc_cells),
        ("", "replicationcontrollers") => p(
            &[NAME, col("Desired", "integer", 0, "Replicas is the number of desired replicas."), col("Current", "integer", 0, "Replicas is the most recently observed number of replicas."), col("Ready", "integer", 0, "The number of ready replicas for this replication controller."), AGE, CONTAINERS, IMAGES, SELECTOR_W],
            |o, now| {
                let (c, im) = containers(o, "/spec/template/spec");
                vec![name(o), o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1).into(), i(o, "/status/replicas").into(), i(o, "/status/readyReplicas").into(), age(o, now), c, im, format_labels(labels_of(o, "/spec/selector")).into()]
            },
        ),
        ("apps", "deployments") => p(DEPLOYMENT_COLUMNS, deployment_cells),
        ("apps", "replicasets") => p(
            &[NAME, col("Desired", "integer", 0, "Replicas is the number of desired replicas."), col("Current", "integer", 0, "Replicas is the most recently observed number of replicas."), col("Ready", "integer", 0, "The number of ready replicas for this replica set."), AGE, CONTAINERS, IMAGES, SELECTOR_W],
            |o, now| {
                let (c, im) = containers(o, "/spec/template/spec");
                vec![name(o), o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1).into(), i(o, "/status/replicas").into(), i(o, "/status/readyReplicas").into(), age(o, now), c, im, format_selector(o.pointer("/spec/selector")).into()]
            },
        ),
        ("apps", "statefulsets") => p(
            &[NAME, col("Ready", "string", 0, "Number of the pod with ready state"), AGE, CONTAINERS, IMAGES],
            |o, now| {
                let (c, im) = containers(o, "/spec/template/spec");
                let desired = o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
                vec![name(o), format!("{}/{}", i(o, "/status/readyReplicas"), desired).into(), age(o, now), c, im]
            },
        ),
        ("apps", "daemonsets") => p(
            &[NAME, col("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod."), col("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."), col("Ready", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."), col("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"), col("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."), col("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node."), AGE, CONTAINERS, IMAGES, SELECTOR_W],
            |o, now| {
                let (c, im) = containers(o, "/spec/template/spec");
                vec![name(o), i(o, "/status/desiredNumberScheduled").into(), i(o, "/status/currentNumberScheduled").into(), i(o, "/status/numberReady").into(), i(o, "/status/updatedNumberScheduled").into(), i(o, "/status/numberAvailable").into(), format_labels(labels_of(o, "/spec/template/spec/nodeSelector")).into(), age(o, now), c, im, format_selector(o.pointer("/spec/selector")).into()]
            },
        ),
        ("apps", "controllerrevisions") => p(
            &[NAME, col("Controller", "string", 0, "Controller of the object"), col("Revision", "string", 0, "Revision indicates the revision of the state represented by Data."), AGE],
            |o, now| {
                let ctrl = arr(o, "/metadata/ownerReferences")
                    .iter()
                    .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
                    .map(|r| {
                        let api = s(r, "/apiVersion");
                        let grp = api.split_once('/').map(|(g, _)| g).unwrap_or("");
                        let kind = s(r, "/kind");
                        let gk = if grp.is_empty() { kind.to_string() } else { format!("{kind}.{grp}") };
                        if kind.is_empty() { s(r, "/name").to_string() } else { format!("{}/{}", gk.to_lowercase(), s(r, "/name")) }
                    })
                    .unwrap_or_else(|| "<none>".into());
                vec![name(o), ctrl.into(), i(o, "/revision").into(), age(o, now)]
            },
        ),
        ("batch", "jobs") => p(JOB_COLUMNS, job_cells),
        ("batch", "cronjobs") => p(CRONJOB_COLUMNS, cronjob_cells),
        ("coordination.k8s.io", "leases") => p(
            &[NAME, col("Holder", "string", 0, "holderIdentity contains the identity of the holder of a current lease."), AGE],
            |o, now| vec![name(o), s(o, "/spec/holderIdentity").into(), age(o, now)],
        ),
        ("discovery.k8s.io", "endpointslices") => p(
            &[NAME, col("AddressType", "string", 0, "addressType specifies the type of address carried by this EndpointSlice."), col("Ports", "string", 0, "ports specifies the list of network ports exposed by each endpoint in this slice."), col("Endpoints", "string", 0, "endpoints is a list of unique endpoints in this slice."), AGE],
            |o, now| {
                let ports: Vec<String> = arr(o, "/ports").iter().map(|p| match (p.get("port").and_then(Value::as_i64), p.get("name").and_then(Value::as_str)) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(nm)) => nm.to_string(),
                    _ => "*".to_string(),
                }).collect();
                let addrs: Vec<String> = arr(o, "/endpoints").iter().flat_map(|e| arr(e, "/addresses").iter().filter_map(|a| a.as_str().map(String::from))).collect();
                vec![name(o), s(o, "/addressType").into(), list_with_more(&ports).into(), list_with_more(&addrs).into(), age(o, now)]
            },
        ),
        ("policy", "poddisruptionbudgets") => p(
            &[NAME, col("Min Available", "string", 0, "The minimum number of pods that must be available."), col("Max Unavailable", "string", 0, "The maximum number of pods that may be unavailable."), col("Allowed Disruptions", "integer", 0, "Calculated number of pods that may be disrupted at this time."), AGE],
            |o, now| vec![
                name(o),
                int_or_string(o.pointer("/spec/minAvailable")).unwrap_or_else(|| "N/A".into()).into(),
                int_or_string(o.pointer("/spec/maxUnavailable")).unwrap_or_else(|| "N/A".into()).into(),
                i(o, "/status/disruptionsAllowed").into(),
                age(o, now),
            ],
        ),
        ("rbac.authorization.k8s.io", "rolebindings") => p(
            &[NAME, col("Role", "string", 0, "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."), AGE, col("Users", "string", 1, "Users in the roleBinding"), col("Groups", "string", 1, "Groups in the roleBinding"), col("ServiceAccounts", "string", 1, "ServiceAccounts in the roleBinding")],
            binding_cells,
        ),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => p(
            &[NAME, col("Role", "string", 0, "RoleRef can only reference a ClusterRole in the global namespace."), AGE, col("Users", "string", 1, "Users in the clusterRoleBinding"), col("Groups", "string", 1, "Groups in the clusterRoleBinding"), col("ServiceAccounts", "string", 1, "ServiceAccounts in the clusterRoleBinding")],
            binding_cells,
        ),
        ("scheduling.k8s.io", "priorityclasses") => p(
            &[NAME, col("Value", "integer", 0, "value represents the integer value of this priority class."), col("Global-Default", "boolean", 0, "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class."), AGE, col("PreemptionPolicy", "string", 1, "preemptionPolicy is the Policy for preempting pods with lower priority.")],
            |o, now| vec![name(o), i(o, "/value").into(), o.pointer("/globalDefault").and_then(Value::as_bool).unwrap_or(false).into(), age(o, now), s(o, "/preemptionPolicy").into()],
        ),
        ("storage.k8s.io", "storageclasses") => p(
            &[NAME, col("Provisioner", "string", 0, "provisioner indicates the type of the provisioner."), col("ReclaimPolicy", "string", 0, "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class."), col("VolumeBindingMode", "string", 0, "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."), col("AllowVolumeExpansion", "string", 0, "allowVolumeExpansion shows whether the storage class allow volume expand."), AGE],
            |o, now| {
                let default = ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"].iter().any(|a| o.pointer("/metadata/annotations").and_then(|m| m.get(*a)).and_then(Value::as_str) == Some("true"));
                let mut n = s(o, "/metadata/name").to_string();
                if default { n.push_str(" (default)"); }
                let rp = o.pointer("/reclaimPolicy").and_then(Value::as_str).unwrap_or("Delete");
                let vb = o.pointer("/volumeBindingMode").and_then(Value::as_str).unwrap_or("Immediate");
                vec![n.into(), s(o, "/provisioner").into(), rp.into(), vb.into(), o.pointer("/allowVolumeExpansion").and_then(Value::as_bool).unwrap_or(false).into(), age(o, now)]
            },
        ),
        ("networking.k8s.io", "ingresses") => p(
            &[NAME, col("Class", "string", 0, "The name of the IngressClass resource that should be used for additional configuration"), col("Hosts", "string", 0, "Hosts that incoming requests are matched against before the ingress rule"), col("Address", "string", 0, "Address is a list containing ingress points for the load-balancer"), col("Ports", "string", 0, "Ports of TLS configurations that open"), AGE],
            |o, now| {
                let rules = arr(o, "/spec/rules");
                let hosts: Vec<&str> = rules.iter().map(|r| s(r, "/host")).filter(|h| !h.is_empty()).take(3).collect();
                let hosts = if hosts.is_empty() { "*".to_string() } else if rules.len() > 3 { format!("{} + {} more...", hosts.join(","), rules.len() - 3) } else { hosts.join(",") };
                let ports = if arr(o, "/spec/tls").is_empty() { "80" } else { "80, 443" };
                vec![name(o), or_none(s(o, "/spec/ingressClassName")).into(), hosts.into(), lb_status(o, true).into(), ports.into(), age(o, now)]
            },
        ),
        ("autoscaling", "horizontalpodautoscalers") => p(
            &[NAME, col("Reference", "string", 0, "reference to scaled resource"), col("Targets", "string", 0, "metrics"), col("MinPods", "string", 0, "minReplicas"), col("MaxPods", "string", 0, "maxReplicas"), col("Replicas", "string", 0, "currentReplicas"), AGE],
            |o, now| {
                let r = format!("{}/{}", s(o, "/spec/scaleTargetRef/kind"), s(o, "/spec/scaleTargetRef/name"));
                let min = o.pointer("/spec/minReplicas").and_then(Value::as_i64).map(|m| m.to_string()).unwrap_or_else(|| "<unset>".into());
                let targets = if arr(o, "/spec/metrics").is_empty() { "<none>" } else { "<unknown>" };
                vec![name(o), r.into(), targets.into(), min.into(), i(o, "/spec/maxReplicas").into(), i(o, "/status/currentReplicas").into(), age(o, now)]
            },
        ),
        _ if is_builtin_group(group) => p(
            &[NAME, ("Created At", "date", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.")],
            |o, _| vec![name(o), o.pointer("/metadata/creationTimestamp").cloned().unwrap_or(Value::Null)],
        ),
        _ => p(&[NAME, ("Age", "date", "", 0, "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp")], |o, now| vec![name(o), age(o, now)]),
    }
}

fn is_builtin_group(group: &str) -> bool {
    group.is_empty()
        || matches!(
            group,
            "apps"
                | "batch"
                | "policy"
                | "autoscaling"
                | "apiextensions.k8s.io"
                | "apiregistration.k8s.io"
        )
        || (group.ends_with(".k8s.io") && !group.contains("x-k8s.io"))
}

fn row_conditions(resource: &str, group: &str, obj: &Value) -> Option<Value> {
    if !group.is_empty() || resource != "pods" {
        return None;
    }
    match s(obj, "/status/phase") {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    }
}

fn list_with_more(list: &[String]) -> String {
    if list.is_empty() {
        return "<unset>".into();
    }
    if list.len() > 3 {
        return format!("{} + {} more...", list[..3].join(","), list.len() - 3);
    }
    list.join(",")
}

// ------------------------------------------------------------------ pods

const POD_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", 0, "The aggregate status of the containers in this pod."),
    col("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    col("IP", "string", 1, "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    col("Node", "string", 1, "NodeName indicates in which node this pod is scheduled."),
    col("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
    col("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
];

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut ready = 0i64;
    let mut total = arr(pod, "/spec/containers").len() as i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;
    let phase = s(pod, "/status/phase");
    let mut reason = phase.to_string();
    if !s(pod, "/status/reason").is_empty() {
        reason = s(pod, "/status/reason").to_string();
    }
    let conditions = arr(pod, "/status/conditions");
    if conditions
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let init_specs = arr(pod, "/spec/initContainers");
    let is_sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| s(c, "/name") == name && s(c, "/restartPolicy") == "Always")
    };
    total += init_specs
        .iter()
        .filter(|c| s(c, "/restartPolicy") == "Always")
        .count() as i64;
    let later = |cur: Option<Timestamp>, c: &Value| {
        let t = parse_ts(c.pointer("/lastState/terminated/finishedAt"));
        match (cur, t) {
            (Some(a), Some(b)) if b > a => Some(b),
            (None, Some(b)) => Some(b),
            (a, _) => a,
        }
    };
    let mut initializing = false;
    for (idx, c) in arr(pod, "/status/initContainerStatuses").iter().enumerate() {
        restarts += i(c, "/restartCount");
        last_restart = later(last_restart, c);
        let sidecar = is_sidecar(s(c, "/name"));
        if sidecar {
            sidecar_restarts += i(c, "/restartCount");
            last_sidecar_restart = later(last_sidecar_restart, c);
        }
        let term = c.pointer("/state/terminated");
        let waiting_reason = s(c, "/state/waiting/reason");
        if term.is_some() && i(c, "/state/terminated/exitCode") == 0 {
            continue;
        }
        if sidecar && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if term.is_some() {
            let r = s(c, "/state/terminated/reason");
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if i(c, "/state/terminated/signal") != 0 {
                format!("Init:Signal:{}", i(c, "/state/terminated/signal"))
            } else {
                format!("Init:ExitCode:{}", i(c, "/state/terminated/exitCode"))
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{idx}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    let initialized = conditions
        .iter()
        .any(|c| s(c, "/type") == "Initialized" && s(c, "/status") == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        let mut error_reason = String::new();
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += i(c, "/restartCount");
            last_restart = later(last_restart, c);
            let waiting_reason = s(c, "/state/waiting/reason");
            if c.pointer("/state/waiting").is_some() && !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if c.pointer("/state/terminated").is_some() {
                let r = s(c, "/state/terminated/reason");
                reason = if !r.is_empty() {
                    r.to_string()
                } else if i(c, "/state/terminated/signal") != 0 {
                    format!("Signal:{}", i(c, "/state/terminated/signal"))
                } else {
                    format!("ExitCode:{}", i(c, "/state/terminated/exitCode"))
                };
                if i(c, "/state/terminated/exitCode") != 0 {
                    error_reason = reason.clone();
                }
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" {
            let pod_ready = conditions
                .iter()
                .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True");
            if has_running && pod_ready {
                reason = "Running".into();
            } else if !error_reason.is_empty() {
                reason = error_reason;
            } else if has_running {
                reason = "NotReady".into();
            }
        }
    }
    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if deleting && s(pod, "/status/reason") == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }
    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(t, now)),
        _ => restarts.to_string(),
    };
    let ip = arr(pod, "/status/podIPs")
        .first()
        .map(|p| s(p, "/ip"))
        .unwrap_or("");
    let gates = arr(pod, "/spec/readinessGates");
    let gates_str = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ok = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| s(c, "/type") == s(g, "/conditionType"))
                    .is_some_and(|c| s(c, "/status") == "True")
            })
            .count();
        format!("{ok}/{}", gates.len())
    };
    vec![
        name(pod),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_str.into(),
        age(pod, now),
        or_none(ip).into(),
        or_none(s(pod, "/spec/nodeName")).into(),
        or_none(s(pod, "/status/nominatedNodeName")).into(),
        gates_str.into(),
    ]
}

// ------------------------------------------------------------------ nodes / services

const NODE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", 0, "The status of the node"),
    col("Roles", "string", 0, "The roles of the node"),
    AGE,
    col("Version", "string", 0, "Kubelet Version reported by the node."),
    col("Internal-IP", "string", 1, "List of addresses reachable to the node."),
    col("External-IP", "string", 1, "List of addresses reachable to the node."),
    col("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    col("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    col("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];

fn node_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let mut status: Vec<String> = Vec::new();
    if let Some(c) = arr(o, "/status/conditions")
        .iter()
        .rev()
        .find(|c| s(c, "/type") == "Ready")
    {
        status.push(if s(c, "/status") == "True" {
            "Ready".into()
        } else {
            "NotReady".into()
        });
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = labels_of(o, "/metadata/labels") {
        for (k, v) in labels {
            if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                if !r.is_empty() {
                    roles.push(r.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.push(v.to_string());
                }
            }
        }
    }
    roles.sort();
    roles.dedup();
    let addr = |t: &str| {
        arr(o, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == t)
            .map(|a| s(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let unknown = |p: &str| {
        let v = s(o, p);
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        name(o),
        status.join(",").into(),
        or_none(&roles.join(",")).into(),
        age(o, now),
        s(o, "/status/nodeInfo/kubeletVersion").into(),
        addr("InternalIP").into(),
        addr("ExternalIP").into(),
        unknown("/status/nodeInfo/osImage").into(),
        unknown("/status/nodeInfo/kernelVersion").into(),
        unknown("/status/nodeInfo/containerRuntimeVersion").into(),
    ]
}

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col("Type", "string", 0, "type determines how the Service is exposed."),
    col("Cluster-IP", "string", 0, "clusterIP is the IP address of the service and is usually assigned randomly."),
    col("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    col("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
    AGE,
    col("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),
];

fn lb_status(o: &Value, _wide: bool) -> String {
    let mut ips: Vec<String> = arr(o, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| {
            if !s(i, "/ip").is_empty() {
                s(i, "/ip")
            } else {
                s(i, "/hostname")
            }
        })
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect();
    ips.sort();
    ips.dedup();
    ips.join(",")
}

fn service_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let ty = s(o, "/spec/type");
    let cluster_ip = arr(o, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let ext: Vec<String> = arr(o, "/spec/externalIPs")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let external = match ty {
        "ClusterIP" | "NodePort" => or_none(&ext.join(",")),
        "LoadBalancer" => {
            let lb = lb_status(o, true);
            if !ext.is_empty() {
                let mut all: Vec<String> = if lb.is_empty() {
                    Vec::new()
                } else {
                    lb.split(',').map(String::from).collect()
                };
                all.extend(ext);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".into()
            }
        }
        "ExternalName" => s(o, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    };
    let ports: Vec<String> = arr(o, "/spec/ports")
        .iter()
        .map(|p| {
            let np = i(p, "/nodePort");
            if np > 0 {
                format!("{}:{np}/{}", i(p, "/port"), s(p, "/protocol"))
            } else {
                format!("{}/{}", i(p, "/port"), s(p, "/protocol"))
            }
        })
        .collect();
    vec![
        name(o),
        ty.into(),
        cluster_ip.into(),
        external.into(),
        or_none(&ports.join(",")).into(),
        age(o, now),
        format_labels(labels_of(o, "/spec/selector")).into(),
    ]
}

fn format_endpoints(o: &Value) -> String {
    let subsets = arr(o, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list: Vec<String> = Vec::new();
    let mut count = 0usize;
    for ss in subsets {
        let addrs = arr(ss, "/addresses");
        let ports = arr(ss, "/ports");
        if ports.is_empty() {
            count += addrs.len();
            for a in addrs {
                if list.len() < 3 {
                    list.push(s(a, "/ip").to_string());
                }
            }
            continue;
        }
        for p in ports {
            count += addrs.len();
            for a in addrs {
                if list.len() < 3 {
                    let ip = s(a, "/ip");
                    let host = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.to_string()
                    };
                    list.push(format!("{host}:{}", i(p, "/port")));
                }
            }
        }
    }
    if count > 3 {
        format!("{} + {} more...", list.join(","), count - 3)
    } else {
        list.join(",")
    }
}

// ------------------------------------------------------------------ events

const EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "string", 0, "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", 0, "The object that this event is about."),
    col("Subobject", "string", 1, "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
    col("Source", "string", 1, "The component reporting this event. Should be a short machine understandable string."),
    col("Message", "string", 0, "A human-readable description of the status of this operation."),
    col("First Seen", "string", 1, "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    col("Count", "string", 1, "The number of times this event has occurred."),
    ("Name", "string", "name", 1, "Name must be unique within a namespace."),
];

/// Maps an `events.k8s.io/v1` Event onto the core/v1 field names the printer reads.
fn events_v1_to_core(o: &Value) -> Value {
    let mut out = Map::new();
    let g = |k: &str| o.get(k).cloned();
    let pairs = [
        ("metadata", "metadata"),
        ("regarding", "involvedObject"),
        ("note", "message"),
        ("reason", "reason"),
        ("type", "type"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
        ("deprecatedSource", "source"),
        ("reportingController", "reportingComponent"),
        ("reportingInstance", "reportingInstance"),
        ("eventTime", "eventTime"),
        ("series", "series"),
    ];
    for (from, to) in pairs {
        if let Some(v) = g(from) {
            out.insert(to.into(), v);
        }
    }
    if let Some(s) = out.get_mut("series") {
        if let Some(m) = s.as_object_mut() {
            if let Some(c) = m.remove("count") {
                m.insert("count".into(), c);
            }
        }
    }
    Value::Object(out)
}

fn event_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let first_ts = o.get("firstTimestamp").filter(|v| !v.is_null());
    let first = if first_ts.is_some() {
        since(first_ts, now)
    } else {
        since(o.get("eventTime"), now)
    };
    let last_ts = o.get("lastTimestamp").filter(|v| !v.is_null());
    let mut last = if last_ts.is_some() {
        since(last_ts, now)
    } else {
        first.clone()
    };
    let mut count = i(o, "/count");
    if let Some(series) = o.get("series").filter(|v| !v.is_null()) {
        last = since(series.get("lastObservedTime"), now);
        count = i(series, "/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = s(o, "/involvedObject/kind").to_lowercase();
    let target = if s(o, "/involvedObject/name").is_empty() {
        kind
    } else {
        format!("{kind}/{}", s(o, "/involvedObject/name"))
    };
    let component = if s(o, "/source/component").is_empty() {
        s(o, "/reportingComponent")
    } else {
        s(o, "/source/component")
    };
    let host = if s(o, "/source/host").is_empty() {
        s(o, "/reportingInstance")
    } else {
        s(o, "/source/host")
    };
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        last.into(),
        s(o, "/type").into(),
        s(o, "/reason").into(),
        target.into(),
        s(o, "/involvedObject/fieldPath").into(),
        source.into(),
        s(o, "/message").trim().into(),
        first.into(),
        count.into(),
        name(o),
    ]
}

// ------------------------------------------------------------------ storage / quota

const PV_COLUMNS: &[Column] = &[
    NAME,
    col("Capacity", "string", 0, "capacity is the description of the persistent volume's resources and capacity."),
    col("Access Modes", "string", 0, "accessModes contains all ways the volume can be mounted."),
    col("Reclaim Policy", "string", 0, "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
    col("Status", "string", 0, "phase indicates if a volume is available, bound to a claim, or released by a claim."),
    col("Claim", "string", 0, "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
    col("StorageClass", "string", 0, "StorageClass of the pv"),
    col("VolumeAttributesClass", "string", 0, "VolumeAttributesClass of the pv"),
    col("Reason", "string", 0, "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
    AGE,
    col("VolumeMode", "string", 1, "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
];

fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, a)| *a)
    .collect::<Vec<_>>()
    .join(",")
}

fn storage_class(o: &Value) -> String {
    o.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
        .unwrap_or_else(|| s(o, "/spec/storageClassName"))
        .to_string()
}

fn deleting(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

fn unset(o: &Value, p: &str) -> String {
    o.pointer(p)
        .and_then(Value::as_str)
        .unwrap_or("<unset>")
        .to_string()
}

fn pv_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let claim = if o.pointer("/spec/claimRef").is_some_and(|v| !v.is_null()) {
        format!(
            "{}/{}",
            s(o, "/spec/claimRef/namespace"),
            s(o, "/spec/claimRef/name")
        )
    } else {
        String::new()
    };
    let phase = if deleting(o) {
        "Terminating"
    } else {
        s(o, "/status/phase")
    };
    vec![
        name(o),
        o.pointer("/spec/capacity/storage")
            .and_then(Value::as_str)
            .unwrap_or("0")
            .into(),
        access_modes(arr(o, "/spec/accessModes")).into(),
        s(o, "/spec/persistentVolumeReclaimPolicy").into(),
        phase.into(),
        claim.into(),
        storage_class(o).into(),
        unset(o, "/spec/volumeAttributesClassName").into(),
        s(o, "/status/reason").into(),
        age(o, now),
        unset(o, "/spec/volumeMode").into(),
    ]
}

const PVC_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Status",
        "string",
        0,
        "phase represents the current phase of PersistentVolumeClaim.",
    ),
    col(
        "Volume",
        "string",
        0,
        "volumeName is the binding reference to the PersistentVolume backing this claim.",
    ),
    col(
        "Capacity",
        "string",
        0,
        "capacity represents the actual resources of the underlying volume.",
    ),
    col(
        "Access Modes",
        "string",
        0,
        "accessModes contains the actual access modes the volume backing the PVC has.",
    ),
    col("StorageClass", "string", 0, "StorageClass of the pvc"),
    col(
        "VolumeAttributesClass",
        "string",
        0,
        "VolumeAttributesClass of the pvc",
    ),
    AGE,
    col(
        "VolumeMode",
        "string",
        1,
        "volumeMode defines what type of volume is required by the claim.",
    ),
];

fn pvc_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let phase = if deleting(o) {
        "Terminating"
    } else {
        s(o, "/status/phase")
    };
    let bound = !s(o, "/spec/volumeName").is_empty();
    let (cap, modes) = if bound {
        (
            o.pointer("/status/capacity/storage")
                .and_then(Value::as_str)
                .unwrap_or("0")
                .to_string(),
            access_modes(arr(o, "/status/accessModes")),
        )
    } else {
        (String::new(), String::new())
    };
    vec![
        name(o),
        phase.into(),
        s(o, "/spec/volumeName").into(),
        cap.into(),
        modes.into(),
        storage_class(o).into(),
        unset(o, "/spec/volumeAttributesClassName").into(),
        age(o, now),
        unset(o, "/spec/volumeMode").into(),
    ]
}

fn resource_quota_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let mut keys: Vec<&String> = labels_of(o, "/status/hard")
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    keys.sort();
    let (mut req, mut lim) = (Vec::new(), Vec::new());
    for k in keys {
        let used = o
            .pointer("/status/used")
            .and_then(|m| m.get(k.as_str()))
            .and_then(Value::as_str)
            .unwrap_or("0");
        let hard = o
            .pointer("/status/hard")
            .and_then(|m| m.get(k.as_str()))
            .and_then(Value::as_str)
            .unwrap_or("0");
        let entry = format!("{k}: {used}/{hard}");
        let pieces: Vec<&str> = k.split('.').collect();
        if pieces.len() > 1 && pieces[0] == "limits" {
            lim.push(entry);
        } else {
            req.push(entry);
        }
    }
    vec![
        name(o),
        req.join(", ").into(),
        lim.join(", ").into(),
        age(o, now),
    ]
}

// ------------------------------------------------------------------ workloads

const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", 0, "Number of the pod with ready state"),
    col("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    col("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    CONTAINERS,
    IMAGES,
    ("Selector", "string", "", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
];

fn deployment_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let desired = o
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (c, im) = containers(o, "/spec/template/spec");
    let sel = match LabelSelector::from_json(o.pointer("/spec/selector").unwrap_or(&Value::Null)) {
        Ok(sel) => sel.to_string(),
        Err(_) => "<invalid>".into(),
    };
    vec![
        name(o),
        format!("{}/{desired}", i(o, "/status/readyReplicas")).into(),
        i(o, "/status/updatedReplicas").into(),
        i(o, "/status/availableReplicas").into(),
        age(o, now),
        c,
        im,
        sel.into(),
    ]
}

const JOB_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", 0, "Status of the job."),
    col(
        "Completions",
        "string",
        0,
        "The number of pods which reached phase Succeeded.",
    ),
    col(
        "Duration",
        "string",
        0,
        "Time required to complete the job.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    (
        "Selector",
        "string",
        "",
        1,
        "A label query over pods that should match the pod count.",
    ),
];

fn has_condition(o: &Value, ty: &str) -> bool {
    arr(o, "/status/conditions")
        .iter()
        .find(|c| s(c, "/type") == ty)
        .is_some_and(|c| s(c, "/status") == "True")
}

fn job_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = i(o, "/status/succeeded");
    let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let par = o
                .pointer("/spec/parallelism")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if par > 1 {
                format!("{succeeded}/1 of {par}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let duration = match (
        parse_ts(o.pointer("/status/startTime")),
        parse_ts(o.pointer("/status/completionTime")),
    ) {
        (None, _) => String::new(),
        (Some(st), None) => human_duration(st, now),
        (Some(st), Some(ct)) => human_duration(st, ct),
    };
    let status = if has_condition(o, "Complete") {
        "Complete"
    } else if has_condition(o, "Failed") {
        "Failed"
    } else if deleting(o) {
        "Terminating"
    } else if has_condition(o, "Suspended") {
        "Suspended"
    } else if has_condition(o, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(o, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let (c, im) = containers(o, "/spec/template/spec");
    vec![
        name(o),
        status.into(),
        completions.into(),
        duration.into(),
        age(o, now),
        c,
        im,
        format_selector(o.pointer("/spec/selector")).into(),
    ]
}

const CRONJOB_COLUMNS: &[Column] = &[
    NAME,
    col("Schedule", "string", 0, "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    col("Timezone", "string", 0, "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
    col("Suspend", "boolean", 0, "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions."),
    col("Active", "integer", 0, "A list of pointers to currently running jobs."),
    col("Last Schedule", "string", 0, "Information when was the last time the job was successfully scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    ("Selector", "string", "", 1, "A label query over pods that should match the pod count."),
];

fn cronjob_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let last = match o
        .pointer("/status/lastScheduleTime")
        .filter(|v| !v.is_null())
    {
        Some(v) => since(Some(v), now),
        None => "<none>".into(),
    };
    let suspend = match o.pointer("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let (c, im) = containers(o, "/spec/jobTemplate/spec/template/spec");
    vec![
        name(o),
        s(o, "/spec/schedule").into(),
        o.pointer("/spec/timeZone")
            .and_then(Value::as_str)
            .unwrap_or("<none>")
            .into(),
        suspend.into(),
        (arr(o, "/status/active").len() as i64).into(),
        last.into(),
        age(o, now),
        c,
        im,
        format_selector(o.pointer("/spec/jobTemplate/spec/selector")).into(),
    ]
}

fn binding_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let role = format!("{}/{}", s(o, "/roleRef/kind"), s(o, "/roleRef/name"));
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for sub in arr(o, "/subjects") {
        match s(sub, "/kind") {
            "User" => users.push(s(sub, "/name").to_string()),
            "Group" => groups.push(s(sub, "/name").to_string()),
            "ServiceAccount" => sas.push(format!("{}/{}", s(sub, "/namespace"), s(sub, "/name"))),
            _ => {}
        }
    }
    vec![
        name(o),
        role.into(),
        age(o, now),
        users.join(", ").into(),
        groups.join(", ").into(),
        sas.join(", ").into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-22T14:21:17Z".parse().unwrap()
    }

    #[test]
    fn human_durations() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 5, "3h5m"),
            (47 * 3600, "47h"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (9 * 86400, "9d"),
            (3 * 365 * 86400, "3y"),
            (3 * 365 * 86400 + 86400 * 4, "3y4d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration_secs(secs), want, "{secs}");
        }
    }

    #[test]
    fn pods_table_matches_sample() {
        let pod = json!({"metadata": {"name": "x", "namespace": "default", "creationTimestamp": "2026-11-22T14:16:17Z", "labels": {"run": "x"}},
            "spec": {"containers": [{"name": "x", "image": "nginx"}], "nodeName": "node1"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.244.0.5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "x", "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
        let t = to_table(
            "pods",
            "",
            &[pod],
            now(),
            IncludeObject::Metadata,
            "1116",
            None,
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "x",
                "1/1",
                "Running",
                "0",
                "5m",
                "10.244.0.5",
                "node1",
                "<none>",
                "<none>"
            ])
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["labels"]["run"], "x");
        let t2 = to_table_opts(
            "pods",
            "",
            &[],
            now(),
            IncludeObject::None,
            "1",
            Some("c"),
            false,
        );
        assert_eq!(t2["columnDefinitions"], json!([]));
        assert_eq!(t2["metadata"]["continue"], "c");
    }

    #[test]
    fn pod_statuses() {
        let base = |status: Value, spec: Value| json!({"metadata": {"name": "p", "creationTimestamp": "2026-11-22T14:21:07Z"}, "spec": spec, "status": status});
        let one = json!({"containers": [{"name": "c"}]});
        let crash = base(
            json!({"phase": "Running", "containerStatuses": [{"name": "c", "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-11-22T14:16:17Z"}}}]}),
            one.clone(),
        );
        let c = pod_cells(&crash, now());
        assert_eq!(c[1], "0/1");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert_eq!(c[3], "5 (5m ago)");
        let init = base(
            json!({"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"waiting": {"reason": "PodInitializing"}}}]}),
            json!({"initContainers": [{"name": "i"}, {"name": "j"}], "containers": [{"name": "c"}]}),
        );
        assert_eq!(pod_cells(&init, now())[2], "Init:0/2");
        let creating = base(
            json!({"phase": "Pending", "containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
            one.clone(),
        );
        assert_eq!(pod_cells(&creating, now())[2], "ContainerCreating");
        let done = base(
            json!({"phase": "Succeeded", "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            one.clone(),
        );
        assert_eq!(pod_cells(&done, now())[2], "Completed");
        let mut term = base(
            json!({"phase": "Running", "containerStatuses": [{"name": "c", "ready": true, "state": {"running": {}}}]}),
            one,
        );
        term["metadata"]["deletionTimestamp"] = json!("2026-11-22T14:21:10Z");
        assert_eq!(pod_cells(&term, now())[2], "Terminating");
        assert_eq!(pod_cells(&term, now())[4], "10s");
    }

    #[test]
    fn other_printers() {
        let node = json!({"metadata": {"name": "n1", "creationTimestamp": "2026-11-20T11:21:17Z", "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Ubuntu", "kernelVersion": "6.1", "containerRuntimeVersion": "containerd://2.0"}}});
        let t = to_table(
            "nodes",
            "",
            &[node],
            now(),
            IncludeObject::Metadata,
            "1",
            None,
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane,master",
                "2d3h",
                "v1.33.0",
                "10.0.0.1",
                "<none>",
                "Ubuntu",
                "6.1",
                "containerd://2.0"
            ])
        );

        let d = json!({"metadata": {"name": "web", "creationTimestamp": "2026-11-22T14:21:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = to_table(
            "deployments",
            "apps",
            &[d],
            now(),
            IncludeObject::Object,
            "1",
            None,
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web", "2/3", 3, 2, "17s", "nginx", "nginx:1.27", "app=web"])
        );
        assert_eq!(t["rows"][0]["object"]["spec"]["replicas"], 3);

        let svc = json!({"metadata": {"name": "s", "creationTimestamp": "2026-11-22T14:21:00Z"},
            "spec": {"type": "NodePort", "clusterIPs": ["10.43.0.10"], "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}], "selector": {"app": "x"}}});
        let t = to_table(
            "services",
            "",
            &[svc],
            now(),
            IncludeObject::Metadata,
            "1",
            None,
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "s",
                "NodePort",
                "10.43.0.10",
                "<none>",
                "80:30080/TCP",
                "17s",
                "app=x"
            ])
        );

        let job = json!({"metadata": {"name": "j", "creationTimestamp": "2026-11-22T14:21:00Z"}, "spec": {"completions": 1, "template": {"spec": {"containers": []}}},
            "status": {"succeeded": 1, "startTime": "2026-11-22T14:21:00Z", "completionTime": "2026-11-22T14:21:05Z", "conditions": [{"type": "Complete", "status": "True"}]}});
        let c = job_cells(&job, now());
        assert_eq!(
            &c[..4],
            &[json!("j"), json!("Complete"), json!("1/1"), json!("5s")]
        );

        let role = json!({"metadata": {"name": "r", "creationTimestamp": "2026-11-22T14:21:00Z"}});
        let t = to_table(
            "roles",
            "rbac.authorization.k8s.io",
            std::slice::from_ref(&role),
            now(),
            IncludeObject::Metadata,
            "1",
            None,
        );
        assert_eq!(t["columnDefinitions"][1]["name"], "Created At");
        assert_eq!(t["rows"][0]["cells"], json!(["r", "2026-11-22T14:21:00Z"]));
        let t = to_table(
            "widgets",
            "example.com",
            &[role],
            now(),
            IncludeObject::Metadata,
            "1",
            None,
        );
        assert_eq!(t["rows"][0]["cells"], json!(["r", "17s"]));

        let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "x"}, "type": "Normal", "reason": "Pulled",
            "message": "ok ", "firstTimestamp": "2026-11-22T14:20:17Z", "lastTimestamp": "2026-11-22T14:21:07Z", "count": 2, "source": {"component": "kubelet", "host": "n1"}});
        assert_eq!(
            event_cells(&ev, now()),
            vec![
                json!("10s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/x"),
                json!(""),
                json!("kubelet, n1"),
                json!("ok"),
                json!("60s"),
                json!(2),
                json!("e")
            ]
        );
        let ev1 = json!({"metadata": {"name": "e"}, "regarding": {"kind": "Pod", "name": "x"}, "type": "Normal", "reason": "R", "note": "n",
            "eventTime": "2026-11-22T14:21:07.000000Z", "reportingController": "c"});
        let t = to_table(
            "events",
            "events.k8s.io",
            &[ev1],
            now(),
            IncludeObject::Metadata,
            "1",
            None,
        );
        assert_eq!(t["rows"][0]["cells"][0], "10s");
        assert_eq!(t["rows"][0]["cells"][3], "pod/x");

        let cm = json!({"metadata": {"name": "c", "creationTimestamp": "2026-11-22T14:21:00Z"}, "data": {"a": "1"}, "binaryData": {"b": ""}});
        assert_eq!(
            to_table(
                "configmaps",
                "",
                &[cm],
                now(),
                IncludeObject::None,
                "1",
                None
            )["rows"][0],
            json!({"cells": ["c", 2, "17s"]})
        );
    }
}
