//! The bootstrap RBAC policy: upstream's default ClusterRoles, ClusterRoleBindings, Roles and
//! RoleBindings (plugin/pkg/auth/authorizer/rbac/bootstrappolicy: policy.go,
//! controller_policy.go, namespace_policy.go; feature-gated rules left out), plus the minik8s
//! additions, all labelled `kubernetes.io/bootstrapping: rbac-defaults` and annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "true"`.
//!
//! minik8s additions (ClusterRoleBindings named `minik8s:...`):
//! * `minik8s:kube-controller-manager:<controller>`: one binding per `system:controller:*`
//!   ClusterRole to User `system:kube-controller-manager`, because the minik8s controller
//!   manager runs every controller under that one identity. Separate bindings (rather than
//!   extra subjects on upstream's `system:controller:*` bindings) keep the upstream objects
//!   exactly as upstream ships them.
//! * ClusterRole `system:coredns` bound by `minik8s:coredns` to User `system:kube-dns` (the
//!   built-in cluster DNS).
//! * `minik8s:node-proxier`: `system:node-proxier` to Group `system:nodes` (the service proxy
//!   runs in every agent under the node identity).
//!
//! Reconciliation at start is in [`super::reconcile`], re-exported here.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef,
    Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::{AUTO_UPDATE_ANNOTATION, BOOTSTRAP_LABEL_KEY, BOOTSTRAP_LABEL_VALUE, GROUP_NAME};

pub use super::reconcile::{
    reconcile_cluster_role, reconcile_cluster_role_binding, reconcile_role, reconcile_role_binding,
};

const READ: &[&str] = &["get", "list", "watch"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];
const READ_UPDATE: &[&str] = &["get", "list", "watch", "update", "patch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

const LEGACY: &str = "";
const ADMISSIONREGISTRATION: &str = "admissionregistration.k8s.io";
const APPS: &str = "apps";
const AUTHENTICATION: &str = "authentication.k8s.io";
const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTOSCALING: &str = "autoscaling";
const BATCH: &str = "batch";
const CERTIFICATES: &str = "certificates.k8s.io";
const COORDINATION: &str = "coordination.k8s.io";
const DISCOVERY: &str = "discovery.k8s.io";
const EVENTS: &str = "events.k8s.io";
const EXTENSIONS: &str = "extensions";
const NETWORKING: &str = "networking.k8s.io";
const NODE: &str = "node.k8s.io";
const POLICY: &str = "policy";
const RBAC: &str = GROUP_NAME;
const STORAGE: &str = "storage.k8s.io";

/// Label that makes a ClusterRole part of `admin`.
pub const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
/// Label that makes a ClusterRole part of `edit`.
pub const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
/// Label that makes a ClusterRole part of `view`.
pub const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// The identity the minik8s controller manager runs all controllers under.
pub const KUBE_CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";
/// The identity of the built-in cluster DNS.
pub const KUBE_DNS_USER: &str = "system:kube-dns";
/// Prefix of the controller roles.
pub const CONTROLLER_ROLE_PREFIX: &str = "system:controller:";

/// Upstream's `PolicyRuleBuilder`: lists are deduplicated and sorted, as `RuleOrDie` does.
struct RuleBuilder(PolicyRule);

fn sorted(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v.dedup();
    v
}

fn rule(verbs: &[&str]) -> RuleBuilder {
    RuleBuilder(PolicyRule {
        verbs: sorted(verbs),
        ..Default::default()
    })
}

impl RuleBuilder {
    fn groups(mut self, groups: &[&str]) -> Self {
        self.0.api_groups = Some(sorted(groups));
        self
    }
    fn resources(mut self, resources: &[&str]) -> Self {
        self.0.resources = Some(sorted(resources));
        self
    }
    fn names(mut self, names: &[&str]) -> Self {
        self.0.resource_names = Some(sorted(names));
        self
    }
    fn urls(mut self, urls: &[&str]) -> Self {
        self.0.non_resource_urls = Some(sorted(urls));
        self
    }
    fn rule(self) -> PolicyRule {
        self.0
    }
}

/// `eventsRule()`: create/update/patch events in the core and events.k8s.io groups.
fn events_rule() -> PolicyRule {
    rule(&["create", "update", "patch"])
        .groups(&[LEGACY, EVENTS])
        .resources(&["events"])
        .rule()
}

fn default_meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(BTreeMap::from([(
            BOOTSTRAP_LABEL_KEY.to_string(),
            BOOTSTRAP_LABEL_VALUE.to_string(),
        )])),
        annotations: Some(BTreeMap::from([(
            AUTO_UPDATE_ANNOTATION.to_string(),
            "true".to_string(),
        )])),
        ..Default::default()
    }
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: default_meta(name, None),
        rules: Some(rules),
        aggregation_rule: None,
    }
}

fn with_label(mut role: ClusterRole, key: &str) -> ClusterRole {
    role.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_string(), "true".to_string());
    role
}

/// An aggregated ClusterRole selecting `label: "true"` (its rules are filled by aggregation).
fn aggregated_role(name: &str, label: &str) -> ClusterRole {
    ClusterRole {
        metadata: default_meta(name, None),
        rules: None,
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(BTreeMap::from([(label.to_string(), "true".to_string())])),
                match_expressions: None,
            }]),
        }),
    }
}

fn role(namespace: &str, name: &str, rules: Vec<PolicyRule>) -> Role {
    Role {
        metadata: default_meta(name, Some(namespace)),
        rules: Some(rules),
    }
}

fn user(name: &str) -> Subject {
    Subject {
        api_group: Some(GROUP_NAME.to_string()),
        kind: "User".into(),
        name: name.into(),
        namespace: None,
    }
}

fn group(name: &str) -> Subject {
    Subject {
        api_group: Some(GROUP_NAME.to_string()),
        kind: "Group".into(),
        name: name.into(),
        namespace: None,
    }
}

fn service_account(namespace: &str, name: &str) -> Subject {
    Subject {
        api_group: None,
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(namespace.into()),
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: GROUP_NAME.to_string(),
        kind: kind.into(),
        name: name.into(),
    }
}

/// A ClusterRoleBinding named after the ClusterRole it binds.
fn cluster_binding(role_name: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    named_cluster_binding(role_name, role_name, subjects)
}

fn named_cluster_binding(
    name: &str,
    role_name: &str,
    subjects: Vec<Subject>,
) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: default_meta(name, None),
        role_ref: role_ref("ClusterRole", role_name),
        subjects: Some(subjects),
    }
}

fn role_binding(
    namespace: &str,
    name: &str,
    role_name: &str,
    subjects: Vec<Subject>,
) -> RoleBinding {
    RoleBinding {
        metadata: default_meta(name, Some(namespace)),
        role_ref: role_ref("Role", role_name),
        subjects: Some(subjects),
    }
}

// ---------------------------------------------------------------------------------------------
// policy.go
// ---------------------------------------------------------------------------------------------

/// `NodeRules()`: the rules of `system:node`, which the node authorizer checks requests that
/// are not part of its graph against.
pub fn node_rules() -> Vec<PolicyRule> {
    vec![
        // Needed to check API access. These creates are non-mutating
        rule(&["create"])
            .groups(&[AUTHENTICATION])
            .resources(&["tokenreviews"])
            .rule(),
        rule(&["create"])
            .groups(&[AUTHORIZATION])
            .resources(&["subjectaccessreviews", "localsubjectaccessreviews"])
            .rule(),
        // Needed to build serviceLister, to populate env vars for services
        rule(READ).groups(&[LEGACY]).resources(&["services"]).rule(),
        // Nodes can register Node API objects and report status.
        // Use the NodeRestriction admission plugin to limit a node to creating/updating its own API object.
        rule(&["create", "get", "list", "watch"])
            .groups(&[LEGACY])
            .resources(&["nodes"])
            .rule(),
        rule(&["update", "patch"])
            .groups(&[LEGACY])
            .resources(&["nodes/status"])
            .rule(),
        rule(&["update", "patch"])
            .groups(&[LEGACY])
            .resources(&["nodes"])
            .rule(),
        // TODO: restrict to the bound node as creator in the NodeRestrictions admission plugin
        rule(&["create", "update", "patch"])
            .groups(&[LEGACY])
            .resources(&["events"])
            .rule(),
        // TODO: restrict to pods scheduled on the bound node once field selectors are supported by list/watch authorization
        rule(READ).groups(&[LEGACY]).resources(&["pods"]).rule(),
        // Needed for the node to create/delete mirror pods.
        rule(&["create", "delete"])
            .groups(&[LEGACY])
            .resources(&["pods"])
            .rule(),
        // Needed for the node to report status of pods it is running.
        rule(&["update", "patch"])
            .groups(&[LEGACY])
            .resources(&["pods/status"])
            .rule(),
        // Needed for the node to create pod evictions.
        rule(&["create"])
            .groups(&[LEGACY])
            .resources(&["pods/eviction"])
            .rule(),
        // Needed for imagepullsecrets, rbd/ceph and secret volumes, and secrets in envs
        // Needed for configmap volume and envs
        rule(READ)
            .groups(&[LEGACY])
            .resources(&["secrets", "configmaps"])
            .rule(),
        // Needed for persistent volumes
        rule(&["get"])
            .groups(&[LEGACY])
            .resources(&["persistentvolumeclaims", "persistentvolumes"])
            .rule(),
        // TODO: add to the Node authorizer and restrict to endpoints referenced by pods or PVs bound to the node
        // Needed for glusterfs volumes
        rule(&["get"])
            .groups(&[LEGACY])
            .resources(&["endpoints"])
            .rule(),
        // Used to create a certificatesigningrequest for a node-specific client certificate, and watch
        // for it to be signed. This allows the kubelet to rotate it's own certificate.
        rule(&["create", "get", "list", "watch"])
            .groups(&[CERTIFICATES])
            .resources(&["certificatesigningrequests"])
            .rule(),
        // Leases
        rule(&["get", "create", "update", "patch", "delete"])
            .groups(&[COORDINATION])
            .resources(&["leases"])
            .rule(),
        // CSI
        rule(&["get"])
            .groups(&[STORAGE])
            .resources(&["volumeattachments"])
            .rule(),
        // Use the Node authorizer to limit requests to tokens for service accounts of pods bound to the node
        rule(&["create"])
            .groups(&[LEGACY])
            .resources(&["serviceaccounts/token"])
            .rule(),
        // Needed for the node to update the status of PVCs it expanded
        rule(&["get", "update", "patch"])
            .groups(&[LEGACY])
            .resources(&["persistentvolumeclaims/status"])
            .rule(),
        rule(READ)
            .groups(&[STORAGE])
            .resources(&["csidrivers"])
            .rule(),
        rule(&["get", "create", "update", "patch", "delete"])
            .groups(&[STORAGE])
            .resources(&["csinodes"])
            .rule(),
        rule(READ)
            .groups(&[NODE])
            .resources(&["runtimeclasses"])
            .rule(),
    ]
}

fn aggregate_to_admin_rules() -> Vec<PolicyRule> {
    vec![
        // additional admin powers
        rule(&["create"])
            .groups(&[AUTHORIZATION])
            .resources(&["localsubjectaccessreviews"])
            .rule(),
        rule(READ_WRITE)
            .groups(&[RBAC])
            .resources(&["roles", "rolebindings"])
            .rule(),
    ]
}

fn aggregate_to_edit_rules() -> Vec<PolicyRule> {
    vec![
        // Allow read on escalating resources
        rule(READ)
            .groups(&[LEGACY])
            .resources(&[
                "pods/attach",
                "pods/proxy",
                "pods/exec",
                "pods/portforward",
                "secrets",
                "services/proxy",
            ])
            .rule(),
        rule(&["impersonate"])
            .groups(&[LEGACY])
            .resources(&["serviceaccounts"])
            .rule(),
        rule(WRITE)
            .groups(&[LEGACY])
            .resources(&[
                "pods",
                "pods/attach",
                "pods/proxy",
                "pods/exec",
                "pods/portforward",
            ])
            .rule(),
        rule(&["create"])
            .groups(&[LEGACY])
            .resources(&["pods/eviction"])
            .rule(),
        rule(WRITE)
            .groups(&[LEGACY])
            .resources(&[
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/proxy",
                "persistentvolumeclaims",
                "configmaps",
                "secrets",
                "events",
            ])
            .rule(),
        rule(&["create"])
            .groups(&[LEGACY])
            .resources(&["serviceaccounts/token"])
            .rule(),
        rule(WRITE)
            .groups(&[APPS])
            .resources(&[
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
            ])
            .rule(),
        rule(WRITE)
            .groups(&[AUTOSCALING])
            .resources(&["horizontalpodautoscalers"])
            .rule(),
        rule(WRITE)
            .groups(&[BATCH])
            .resources(&["jobs", "cronjobs"])
            .rule(),
        rule(WRITE)
            .groups(&[EXTENSIONS])
            .resources(&[
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "ingresses",
                "replicasets",
                "replicasets/scale",
                "replicationcontrollers/scale",
                "networkpolicies",
            ])
            .rule(),
        rule(WRITE)
            .groups(&[POLICY])
            .resources(&["poddisruptionbudgets"])
            .rule(),
        rule(WRITE)
            .groups(&[NETWORKING])
            .resources(&["networkpolicies", "ingresses"])
            .rule(),
        rule(READ_WRITE)
            .groups(&[COORDINATION])
            .resources(&["leases"])
            .rule(),
    ]
}

fn aggregate_to_view_rules() -> Vec<PolicyRule> {
    vec![
        rule(READ)
            .groups(&[LEGACY])
            .resources(&[
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
            ])
            .rule(),
        rule(READ)
            .groups(&[LEGACY])
            .resources(&[
                "limitranges",
                "resourcequotas",
                "bindings",
                "events",
                "pods/status",
                "resourcequotas/status",
                "namespaces/status",
                "replicationcontrollers/status",
                "pods/log",
            ])
            .rule(),
        // read access to namespaces at the namespace scope means you can read *this* namespace.
        rule(READ)
            .groups(&[LEGACY])
            .resources(&["namespaces"])
            .rule(),
        rule(READ)
            .groups(&[DISCOVERY])
            .resources(&["endpointslices"])
            .rule(),
        rule(READ)
            .groups(&[APPS])
            .resources(&[
                "controllerrevisions",
                "statefulsets",
                "statefulsets/status",
                "statefulsets/scale",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/status",
                "deployments/scale",
                "replicasets",
                "replicasets/status",
                "replicasets/scale",
            ])
            .rule(),
        rule(READ)
            .groups(&[AUTOSCALING])
            .resources(&[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ])
            .rule(),
        rule(READ)
            .groups(&[BATCH])
            .resources(&["jobs", "cronjobs", "cronjobs/status", "jobs/status"])
            .rule(),
        rule(READ)
            .groups(&[EXTENSIONS])
            .resources(&[
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "ingresses",
                "ingresses/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "replicationcontrollers/scale",
                "networkpolicies",
            ])
            .rule(),
        rule(READ)
            .groups(&[POLICY])
            .resources(&["poddisruptionbudgets", "poddisruptionbudgets/status"])
            .rule(),
        rule(READ)
            .groups(&[NETWORKING])
            .resources(&["networkpolicies", "ingresses", "ingresses/status"])
            .rule(),
    ]
}

fn approver(signer: &str) -> Vec<PolicyRule> {
    vec![rule(&["approve"])
        .groups(&[CERTIFICATES])
        .resources(&["signers"])
        .names(&[signer])
        .rule()]
}

/// Upstream `ClusterRoles()` (feature-gated rules left out), sorted by name.
pub fn upstream_cluster_roles() -> Vec<ClusterRole> {
    let mut roles = vec![
        // a "root" role which can do absolutely anything
        cluster_role(
            "cluster-admin",
            vec![
                rule(&["*"]).groups(&["*"]).resources(&["*"]).rule(),
                rule(&["*"]).urls(&["*"]).rule(),
            ],
        ),
        // a role which provides just enough power to determine if the server is ready and
        // discover API versions for negotiation
        cluster_role(
            "system:discovery",
            vec![rule(&["get"])
                .urls(&[
                    "/healthz",
                    "/livez",
                    "/readyz",
                    "/version",
                    "/version/",
                    "/openapi",
                    "/openapi/*",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                ])
                .rule()],
        ),
        // a role which provides minimal read access to the monitoring endpoints
        cluster_role(
            "system:monitoring",
            vec![rule(&["get"])
                .urls(&[
                    "/metrics",
                    "/metrics/slis",
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/livez/*",
                    "/readyz/*",
                    "/healthz/*",
                ])
                .rule()],
        ),
        // a role which provides minimal resource access to allow a "normal" user to learn
        // information about themselves
        cluster_role(
            "system:basic-user",
            vec![
                rule(&["create"])
                    .groups(&[AUTHORIZATION])
                    .resources(&["selfsubjectaccessreviews", "selfsubjectrulesreviews"])
                    .rule(),
                rule(&["create"])
                    .groups(&[AUTHENTICATION])
                    .resources(&["selfsubjectreviews"])
                    .rule(),
            ],
        ),
        // a role which provides just enough power read insensitive cluster information
        cluster_role(
            "system:public-info-viewer",
            vec![rule(&["get"])
                .urls(&["/healthz", "/livez", "/readyz", "/version", "/version/"])
                .rule()],
        ),
        // a role for a namespace level admin. It is `edit` plus the power to grant permissions
        aggregated_role("admin", AGGREGATE_TO_ADMIN),
        // a role for a namespace level editor: all user level actions in a namespace
        with_label(
            aggregated_role("edit", AGGREGATE_TO_EDIT),
            AGGREGATE_TO_ADMIN,
        ),
        // a role for namespace level viewing: read-only access to non-escalating resources
        with_label(
            aggregated_role("view", AGGREGATE_TO_VIEW),
            AGGREGATE_TO_EDIT,
        ),
        with_label(
            cluster_role("system:aggregate-to-admin", aggregate_to_admin_rules()),
            AGGREGATE_TO_ADMIN,
        ),
        with_label(
            cluster_role("system:aggregate-to-edit", aggregate_to_edit_rules()),
            AGGREGATE_TO_EDIT,
        ),
        with_label(
            cluster_role("system:aggregate-to-view", aggregate_to_view_rules()),
            AGGREGATE_TO_VIEW,
        ),
        // a role to use for setting up a proxy
        cluster_role(
            "system:node-proxier",
            vec![
                // Used to build serviceLister
                rule(&["list", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["services", "endpoints"])
                    .rule(),
                rule(&["get", "list", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["nodes"])
                    .rule(),
                events_rule(),
                rule(&["list", "watch"])
                    .groups(&[DISCOVERY])
                    .resources(&["endpointslices"])
                    .rule(),
            ],
        ),
        // a role to use for full access to the kubelet API
        cluster_role(
            "system:kubelet-api-admin",
            vec![
                // Allow read-only access to the Node API objects
                rule(READ).groups(&[LEGACY]).resources(&["nodes"]).rule(),
                // Allow all API calls to the nodes
                rule(&["proxy"])
                    .groups(&[LEGACY])
                    .resources(&["nodes"])
                    .rule(),
                rule(&["*"])
                    .groups(&[LEGACY])
                    .resources(&["nodes/proxy", "nodes/metrics", "nodes/stats", "nodes/log"])
                    .rule(),
            ],
        ),
        // a role to use for bootstrapping a node's client certificates
        cluster_role(
            "system:node-bootstrapper",
            vec![rule(&["create", "get", "list", "watch"])
                .groups(&[CERTIFICATES])
                .resources(&["certificatesigningrequests"])
                .rule()],
        ),
        // a role to use for allowing authentication and authorization delegation
        cluster_role(
            "system:auth-delegator",
            vec![
                rule(&["create"])
                    .groups(&[AUTHENTICATION])
                    .resources(&["tokenreviews"])
                    .rule(),
                rule(&["create"])
                    .groups(&[AUTHORIZATION])
                    .resources(&["subjectaccessreviews"])
                    .rule(),
            ],
        ),
        // a role to use for the API registry, summarization, and proxy handling
        cluster_role(
            "system:kube-aggregator",
            vec![rule(READ)
                .groups(&[LEGACY])
                .resources(&["services", "endpoints"])
                .rule()],
        ),
        // a role to use for bootstrapping the kube-controller-manager so it can create the
        // shared informers, service accounts, and secrets that we need to create separate
        // identities for other controllers
        cluster_role(
            "system:kube-controller-manager",
            vec![
                events_rule(),
                // Needed for leader election.
                rule(&["create"])
                    .groups(&[COORDINATION])
                    .resources(&["leases"])
                    .rule(),
                rule(&["get", "update"])
                    .groups(&[COORDINATION])
                    .resources(&["leases"])
                    .names(&["kube-controller-manager"])
                    .rule(),
                // Fundamental resources.
                rule(&["create"])
                    .groups(&[LEGACY])
                    .resources(&["secrets", "serviceaccounts"])
                    .rule(),
                rule(&["delete"])
                    .groups(&[LEGACY])
                    .resources(&["secrets"])
                    .rule(),
                rule(&["get"])
                    .groups(&[LEGACY])
                    .resources(&["namespaces", "secrets", "serviceaccounts", "configmaps"])
                    .rule(),
                rule(&["update"])
                    .groups(&[LEGACY])
                    .resources(&["secrets", "serviceaccounts"])
                    .rule(),
                // Needed to check API access. These creates are non-mutating
                rule(&["create"])
                    .groups(&[AUTHENTICATION])
                    .resources(&["tokenreviews"])
                    .rule(),
                rule(&["create"])
                    .groups(&[AUTHORIZATION])
                    .resources(&["subjectaccessreviews"])
                    .rule(),
                // Needed for all shared informers
                rule(&["list", "watch"])
                    .groups(&["*"])
                    .resources(&["*"])
                    .rule(),
                rule(&["create"])
                    .groups(&[LEGACY])
                    .resources(&["serviceaccounts/token"])
                    .rule(),
            ],
        ),
        // a role to use for the kube-dns pod
        cluster_role(
            "system:kube-dns",
            vec![rule(&["list", "watch"])
                .groups(&[LEGACY])
                .resources(&["endpoints", "services"])
                .rule()],
        ),
        // a role for the kube-scheduler
        cluster_role(
            "system:kube-scheduler",
            vec![
                events_rule(),
                // This is for leaderlease access
                rule(&["create"])
                    .groups(&[COORDINATION])
                    .resources(&["leases"])
                    .rule(),
                rule(&["get", "update"])
                    .groups(&[COORDINATION])
                    .resources(&["leases"])
                    .names(&["kube-scheduler"])
                    .rule(),
                // Fundamental resources
                rule(READ).groups(&[LEGACY]).resources(&["nodes"]).rule(),
                rule(&["get", "list", "watch", "delete"])
                    .groups(&[LEGACY])
                    .resources(&["pods"])
                    .rule(),
                rule(&["create"])
                    .groups(&[LEGACY])
                    .resources(&["pods/binding", "bindings"])
                    .rule(),
                rule(&["patch", "update"])
                    .groups(&[LEGACY])
                    .resources(&["pods/status"])
                    .rule(),
                // Things that select pods
                rule(READ)
                    .groups(&[LEGACY])
                    .resources(&["services", "replicationcontrollers"])
                    .rule(),
                rule(READ)
                    .groups(&[APPS, EXTENSIONS])
                    .resources(&["replicasets"])
                    .rule(),
                rule(READ)
                    .groups(&[APPS])
                    .resources(&["statefulsets"])
                    .rule(),
                // Things that pods use or applies to them
                rule(READ)
                    .groups(&[POLICY])
                    .resources(&["poddisruptionbudgets"])
                    .rule(),
                rule(READ)
                    .groups(&[LEGACY])
                    .resources(&["persistentvolumeclaims", "persistentvolumes"])
                    .rule(),
                // Needed to check API access. These creates are non-mutating
                rule(&["create"])
                    .groups(&[AUTHENTICATION])
                    .resources(&["tokenreviews"])
                    .rule(),
                rule(&["create"])
                    .groups(&[AUTHORIZATION])
                    .resources(&["subjectaccessreviews"])
                    .rule(),
                // Needed for volume limits
                rule(READ)
                    .groups(&[STORAGE])
                    .resources(&["csinodes"])
                    .rule(),
                // Needed for namespaceSelector feature in pod affinity
                rule(READ)
                    .groups(&[LEGACY])
                    .resources(&["namespaces"])
                    .rule(),
                rule(READ)
                    .groups(&[STORAGE])
                    .resources(&["csidrivers"])
                    .rule(),
                rule(READ)
                    .groups(&[STORAGE])
                    .resources(&["csistoragecapacities"])
                    .rule(),
            ],
        ),
        // a role to use for the volume scheduler
        cluster_role(
            "system:volume-scheduler",
            vec![
                rule(READ_UPDATE)
                    .groups(&[LEGACY])
                    .resources(&["persistentvolumes"])
                    .rule(),
                rule(READ)
                    .groups(&[STORAGE])
                    .resources(&["storageclasses"])
                    .rule(),
                rule(READ_UPDATE)
                    .groups(&[LEGACY])
                    .resources(&["persistentvolumeclaims"])
                    .rule(),
            ],
        ),
        // a role for nodes to use to have the access they need for running pods
        cluster_role("system:node", node_rules()),
        // a role to use for reading the service account issuer discovery documents
        cluster_role(
            "system:service-account-issuer-discovery",
            vec![rule(&["get"])
                .urls(&["/.well-known/openid-configuration", "/openid/v1/jwks"])
                .rule()],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![rule(&["create"])
                .groups(&[CERTIFICATES])
                .resources(&["certificatesigningrequests/nodeclient"])
                .rule()],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![rule(&["create"])
                .groups(&[CERTIFICATES])
                .resources(&["certificatesigningrequests/selfnodeclient"])
                .rule()],
        ),
        cluster_role(
            "system:certificates.k8s.io:kube-apiserver-client-approver",
            approver("kubernetes.io/kube-apiserver-client"),
        ),
        cluster_role(
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            approver("kubernetes.io/kube-apiserver-client-kubelet"),
        ),
        cluster_role(
            "system:certificates.k8s.io:kubelet-serving-approver",
            approver("kubernetes.io/kubelet-serving"),
        ),
        cluster_role(
            "system:certificates.k8s.io:legacy-unknown-approver",
            approver("kubernetes.io/legacy-unknown"),
        ),
    ];
    roles.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    roles
}

/// Upstream `ClusterRoleBindings()`.
pub fn upstream_cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    vec![
        cluster_binding("cluster-admin", vec![group("system:masters")]),
        cluster_binding("system:monitoring", vec![group("system:monitoring")]),
        cluster_binding("system:discovery", vec![group("system:authenticated")]),
        cluster_binding("system:basic-user", vec![group("system:authenticated")]),
        cluster_binding(
            "system:public-info-viewer",
            vec![
                group("system:authenticated"),
                group("system:unauthenticated"),
            ],
        ),
        cluster_binding("system:node-proxier", vec![user("system:kube-proxy")]),
        cluster_binding(
            "system:kube-controller-manager",
            vec![user(KUBE_CONTROLLER_MANAGER_USER)],
        ),
        cluster_binding(
            "system:kube-dns",
            vec![service_account("kube-system", "kube-dns")],
        ),
        cluster_binding("system:kube-scheduler", vec![user("system:kube-scheduler")]),
        cluster_binding(
            "system:volume-scheduler",
            vec![user("system:kube-scheduler")],
        ),
        // deprecated binding of system:node to system:nodes, kept without subjects: the node
        // authorizer grants nodes their access
        ClusterRoleBinding {
            metadata: default_meta("system:node", None),
            role_ref: role_ref("ClusterRole", "system:node"),
            subjects: None,
        },
        cluster_binding(
            "system:service-account-issuer-discovery",
            vec![group("system:serviceaccounts")],
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// controller_policy.go
// ---------------------------------------------------------------------------------------------

fn controller_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    cluster_role(&format!("{CONTROLLER_ROLE_PREFIX}{name}"), rules)
}

/// The `system:controller:*` ClusterRoles of the controllers minik8s runs (upstream
/// `ControllerRoles()`, subset), sorted by name.
pub fn controller_roles() -> Vec<ClusterRole> {
    let mut roles = vec![
        controller_role(
            "clusterrole-aggregation-controller",
            vec![
                rule(&["escalate", "get", "list", "watch", "update", "patch"])
                    .groups(&[RBAC])
                    .resources(&["clusterroles"])
                    .rule(),
            ],
        ),
        controller_role(
            "cronjob-controller",
            vec![
                rule(&["get", "list", "watch", "update"])
                    .groups(&[BATCH])
                    .resources(&["cronjobs"])
                    .rule(),
                rule(&[
                    "get", "list", "watch", "create", "update", "delete", "patch",
                ])
                .groups(&[BATCH])
                .resources(&["jobs"])
                .rule(),
                rule(&["update"])
                    .groups(&[BATCH])
                    .resources(&["cronjobs/status"])
                    .rule(),
                rule(&["update"])
                    .groups(&[BATCH])
                    .resources(&["cronjobs/finalizers"])
                    .rule(),
                rule(&["list", "watch", "delete"])
                    .groups(&[LEGACY])
                    .resources(&["pods"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "daemon-set-controller",
            vec![
                rule(READ)
                    .groups(&[EXTENSIONS, APPS])
                    .resources(&["daemonsets"])
                    .rule(),
                rule(&["update"])
                    .groups(&[EXTENSIONS, APPS])
                    .resources(&["daemonsets/status"])
                    .rule(),
                rule(&["update"])
                    .groups(&[EXTENSIONS, APPS])
                    .resources(&["daemonsets/finalizers"])
                    .rule(),
                rule(&["list", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["nodes"])
                    .rule(),
                rule(&["list", "watch", "create", "delete", "patch"])
                    .groups(&[LEGACY])
                    .resources(&["pods"])
                    .rule(),
                rule(&["create"])
                    .groups(&[LEGACY])
                    .resources(&["pods/binding"])
                    .rule(),
                rule(&[
                    "get", "list", "watch", "create", "delete", "update", "patch",
                ])
                .groups(&[APPS])
                .resources(&["controllerrevisions"])
                .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "deployment-controller",
            vec![
                rule(&["get", "list", "watch", "update"])
                    .groups(&[EXTENSIONS, APPS])
                    .resources(&["deployments"])
                    .rule(),
                rule(&["update"])
                    .groups(&[EXTENSIONS, APPS])
                    .resources(&["deployments/status"])
                    .rule(),
                rule(&["update"])
                    .groups(&[EXTENSIONS, APPS])
                    .resources(&["deployments/finalizers"])
                    .rule(),
                rule(&[
                    "get", "list", "watch", "create", "update", "patch", "delete",
                ])
                .groups(&[APPS, EXTENSIONS])
                .resources(&["replicasets"])
                .rule(),
                // TODO: remove "update" once
                // https://github.com/kubernetes/kubernetes/issues/36897 is resolved.
                rule(&["get", "list", "watch", "update"])
                    .groups(&[LEGACY])
                    .resources(&["pods"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "disruption-controller",
            vec![
                rule(READ)
                    .groups(&[EXTENSIONS, APPS])
                    .resources(&["deployments"])
                    .rule(),
                rule(READ)
                    .groups(&[APPS, EXTENSIONS])
                    .resources(&["replicasets"])
                    .rule(),
                rule(READ)
                    .groups(&[LEGACY])
                    .resources(&["replicationcontrollers"])
                    .rule(),
                rule(READ)
                    .groups(&[POLICY])
                    .resources(&["poddisruptionbudgets"])
                    .rule(),
                rule(READ)
                    .groups(&[APPS])
                    .resources(&["statefulsets"])
                    .rule(),
                rule(&["update"])
                    .groups(&[POLICY])
                    .resources(&["poddisruptionbudgets/status"])
                    .rule(),
                rule(&["patch", "update"])
                    .groups(&[LEGACY])
                    .resources(&["pods/status"])
                    .rule(),
                rule(&["get"]).groups(&["*"]).resources(&["*/scale"]).rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "endpoint-controller",
            vec![
                rule(READ)
                    .groups(&[LEGACY])
                    .resources(&["services", "pods"])
                    .rule(),
                rule(&["get", "list", "watch", "create", "update", "delete"])
                    .groups(&[LEGACY])
                    .resources(&["endpoints"])
                    .rule(),
                rule(&["create"])
                    .groups(&[LEGACY])
                    .resources(&["endpoints/restricted"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "endpointslice-controller",
            vec![
                rule(READ)
                    .groups(&[LEGACY])
                    .resources(&["services", "pods", "nodes"])
                    .rule(),
                // The controller needs to be able to set a service's finalizers to be able to
                // create an EndpointSlice resource that is owned by the service and sets
                // blockOwnerDeletion=true in its ownerRef.
                rule(&["update"])
                    .groups(&[LEGACY])
                    .resources(&["services/finalizers"])
                    .rule(),
                rule(&["get", "list", "watch", "create", "update", "delete"])
                    .groups(&[DISCOVERY])
                    .resources(&["endpointslices"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "endpointslicemirroring-controller",
            vec![
                rule(READ)
                    .groups(&[LEGACY])
                    .resources(&["services", "endpoints"])
                    .rule(),
                rule(&["update"])
                    .groups(&[LEGACY])
                    .resources(&["services/finalizers"])
                    .rule(),
                rule(&["update"])
                    .groups(&[LEGACY])
                    .resources(&["endpoints/finalizers"])
                    .rule(),
                rule(&["get", "list", "watch", "create", "update", "delete"])
                    .groups(&[DISCOVERY])
                    .resources(&["endpointslices"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "generic-garbage-collector",
            vec![
                // the GC controller needs to run list/watches, selective gets, and updates
                // against any resource
                rule(&["get", "list", "watch", "patch", "update", "delete"])
                    .groups(&["*"])
                    .resources(&["*"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "horizontal-pod-autoscaler",
            vec![
                rule(&["get", "list", "watch"])
                    .groups(&[AUTOSCALING])
                    .resources(&["horizontalpodautoscalers"])
                    .rule(),
                rule(&["update"])
                    .groups(&[AUTOSCALING])
                    .resources(&["horizontalpodautoscalers/status"])
                    .rule(),
                rule(&["get", "update"])
                    .groups(&["*"])
                    .resources(&["*/scale"])
                    .rule(),
                rule(&["list", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["pods"])
                    .rule(),
                // allow listing resource, custom, and external metrics
                rule(&["list", "watch"])
                    .groups(&["metrics.k8s.io"])
                    .resources(&["pods"])
                    .rule(),
                rule(&["get", "list", "watch"])
                    .groups(&["custom.metrics.k8s.io"])
                    .resources(&["*"])
                    .rule(),
                rule(&["get", "list", "watch"])
                    .groups(&["external.metrics.k8s.io"])
                    .resources(&["*"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "job-controller",
            vec![
                rule(&["get", "list", "watch", "update", "patch"])
                    .groups(&[BATCH])
                    .resources(&["jobs"])
                    .rule(),
                rule(&["update"])
                    .groups(&[BATCH])
                    .resources(&["jobs/status"])
                    .rule(),
                rule(&["update"])
                    .groups(&[BATCH])
                    .resources(&["jobs/finalizers"])
                    .rule(),
                rule(&["list", "watch", "create", "delete", "patch"])
                    .groups(&[LEGACY])
                    .resources(&["pods"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "namespace-controller",
            vec![
                rule(&["get", "list", "watch", "delete"])
                    .groups(&[LEGACY])
                    .resources(&["namespaces"])
                    .rule(),
                rule(&["update"])
                    .groups(&[LEGACY])
                    .resources(&["namespaces/finalize", "namespaces/status"])
                    .rule(),
                rule(&["get", "list", "watch", "delete", "deletecollection"])
                    .groups(&["*"])
                    .resources(&["*"])
                    .rule(),
            ],
        ),
        controller_role(
            "node-controller",
            vec![
                rule(&["get", "list", "update", "delete", "patch", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["nodes"])
                    .rule(),
                rule(&["patch", "update"])
                    .groups(&[LEGACY])
                    .resources(&["nodes/status"])
                    .rule(),
                // used for pod deletion
                rule(&["patch", "update"])
                    .groups(&[LEGACY])
                    .resources(&["pods/status"])
                    .rule(),
                rule(&["list", "delete", "get", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["pods"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "pod-garbage-collector",
            vec![
                rule(&["list", "watch", "delete"])
                    .groups(&[LEGACY])
                    .resources(&["pods"])
                    .rule(),
                rule(&["get", "list", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["nodes"])
                    .rule(),
                rule(&["patch"])
                    .groups(&[LEGACY])
                    .resources(&["pods/status"])
                    .rule(),
            ],
        ),
        controller_role(
            "replicaset-controller",
            vec![
                rule(&["get", "list", "watch", "update"])
                    .groups(&[APPS, EXTENSIONS])
                    .resources(&["replicasets"])
                    .rule(),
                rule(&["update"])
                    .groups(&[APPS, EXTENSIONS])
                    .resources(&["replicasets/status"])
                    .rule(),
                rule(&["update"])
                    .groups(&[APPS, EXTENSIONS])
                    .resources(&["replicasets/finalizers"])
                    .rule(),
                rule(&["list", "watch", "patch", "create", "delete"])
                    .groups(&[LEGACY])
                    .resources(&["pods"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "replication-controller",
            vec![
                // 1.0 controllers needed get, update, so without these old controllers break
                // on new servers
                rule(&["get", "list", "watch", "update"])
                    .groups(&[LEGACY])
                    .resources(&["replicationcontrollers"])
                    .rule(),
                rule(&["update"])
                    .groups(&[LEGACY])
                    .resources(&["replicationcontrollers/status"])
                    .rule(),
                rule(&["update"])
                    .groups(&[LEGACY])
                    .resources(&["replicationcontrollers/finalizers"])
                    .rule(),
                rule(&["list", "watch", "patch", "create", "delete"])
                    .groups(&[LEGACY])
                    .resources(&["pods"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "resourcequota-controller",
            vec![
                // quota can count quota on anything for reconciliation, so it needs full viewing
                rule(&["list", "watch"])
                    .groups(&["*"])
                    .resources(&["*"])
                    .rule(),
                rule(&["update"])
                    .groups(&[LEGACY])
                    .resources(&["resourcequotas/status"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "root-ca-cert-publisher",
            vec![
                rule(&["create", "update"])
                    .groups(&[LEGACY])
                    .resources(&["configmaps"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "service-account-controller",
            vec![
                rule(&["create"])
                    .groups(&[LEGACY])
                    .resources(&["serviceaccounts"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "service-cidrs-controller",
            vec![
                rule(&["get", "list", "watch", "patch", "update"])
                    .groups(&[NETWORKING])
                    .resources(&["servicecidrs"])
                    .rule(),
                rule(&["patch", "update"])
                    .groups(&[NETWORKING])
                    .resources(&["servicecidrs/finalizers"])
                    .rule(),
                rule(&["patch", "update"])
                    .groups(&[NETWORKING])
                    .resources(&["servicecidrs/status"])
                    .rule(),
                rule(READ)
                    .groups(&[NETWORKING])
                    .resources(&["ipaddresses"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "statefulset-controller",
            vec![
                rule(&["list", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["pods"])
                    .rule(),
                rule(&["get", "list", "watch"])
                    .groups(&[APPS])
                    .resources(&["statefulsets"])
                    .rule(),
                rule(&["update"])
                    .groups(&[APPS])
                    .resources(&["statefulsets/status"])
                    .rule(),
                rule(&["update"])
                    .groups(&[APPS])
                    .resources(&["statefulsets/finalizers"])
                    .rule(),
                rule(&["get", "create", "delete", "update", "patch"])
                    .groups(&[LEGACY])
                    .resources(&["pods"])
                    .rule(),
                rule(&[
                    "get", "create", "delete", "update", "patch", "list", "watch",
                ])
                .groups(&[APPS])
                .resources(&["controllerrevisions"])
                .rule(),
                rule(&["get", "create", "list", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["persistentvolumeclaims"])
                    .rule(),
                rule(&["update", "delete"])
                    .groups(&[LEGACY])
                    .resources(&["persistentvolumeclaims"])
                    .rule(),
                // statefulsets must be able to set the finalizers of the pods they own
                rule(&["update"])
                    .groups(&[LEGACY])
                    .resources(&["pods/finalizers"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "ttl-after-finished-controller",
            vec![
                rule(&["get", "list", "watch", "delete"])
                    .groups(&[BATCH])
                    .resources(&["jobs"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "ttl-controller",
            vec![
                rule(&["update", "patch", "list", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["nodes"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "certificate-controller",
            vec![
                rule(&["get", "list", "watch", "delete"])
                    .groups(&[CERTIFICATES])
                    .resources(&["certificatesigningrequests"])
                    .rule(),
                rule(&["update"])
                    .groups(&[CERTIFICATES])
                    .resources(&[
                        "certificatesigningrequests/status",
                        "certificatesigningrequests/approval",
                    ])
                    .rule(),
                rule(&["approve"])
                    .groups(&[CERTIFICATES])
                    .resources(&["signers"])
                    .names(&["kubernetes.io/kube-apiserver-client-kubelet"])
                    .rule(),
                rule(&["sign"])
                    .groups(&[CERTIFICATES])
                    .resources(&["signers"])
                    .names(&[
                        "kubernetes.io/kube-apiserver-client",
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/kubelet-serving",
                        "kubernetes.io/legacy-unknown",
                    ])
                    .rule(),
                rule(&["create"])
                    .groups(&[AUTHORIZATION])
                    .resources(&["subjectaccessreviews"])
                    .rule(),
                events_rule(),
            ],
        ),
        controller_role(
            "validatingadmissionpolicy-status-controller",
            vec![
                rule(&["get", "list", "watch"])
                    .groups(&[ADMISSIONREGISTRATION])
                    .resources(&["validatingadmissionpolicies"])
                    .rule(),
                rule(&["get", "patch", "update"])
                    .groups(&[ADMISSIONREGISTRATION])
                    .resources(&["validatingadmissionpolicies/status"])
                    .rule(),
                events_rule(),
            ],
        ),
    ];
    roles.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    roles
}

/// Upstream's controller bindings: `system:controller:<x>` to ServiceAccount
/// `kube-system/<x>`.
pub fn controller_role_bindings() -> Vec<ClusterRoleBinding> {
    controller_roles()
        .iter()
        .filter_map(|r| {
            let name = r.metadata.name.as_deref()?;
            let sa = name.strip_prefix(CONTROLLER_ROLE_PREFIX)?;
            Some(cluster_binding(
                name,
                vec![service_account("kube-system", sa)],
            ))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// namespace_policy.go
// ---------------------------------------------------------------------------------------------

/// Upstream `NamespaceRoles()` (cloud-provider left out), by namespace then name.
pub fn roles() -> Vec<Role> {
    let leader_locking = || {
        vec![
            rule(&["watch", "list", "get", "create", "update"])
                .groups(&[COORDINATION])
                .resources(&["leases"])
                .rule(),
            rule(&["watch", "list", "get", "create", "update"])
                .groups(&[COORDINATION])
                .resources(&["leasecandidates"])
                .rule(),
        ]
    };
    vec![
        role(
            "kube-public",
            "system:controller:bootstrap-signer",
            vec![
                rule(READ)
                    .groups(&[LEGACY])
                    .resources(&["configmaps"])
                    .rule(),
                rule(&["update"])
                    .groups(&[LEGACY])
                    .resources(&["configmaps"])
                    .names(&["cluster-info"])
                    .rule(),
                events_rule(),
            ],
        ),
        // role for the extension apiserver authentication configmap
        role(
            "kube-system",
            "extension-apiserver-authentication-reader",
            vec![rule(READ)
                .groups(&[LEGACY])
                .resources(&["configmaps"])
                .names(&["extension-apiserver-authentication"])
                .rule()],
        ),
        role(
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            leader_locking(),
        ),
        role(
            "kube-system",
            "system::leader-locking-kube-scheduler",
            leader_locking(),
        ),
        role(
            "kube-system",
            "system:controller:bootstrap-signer",
            vec![rule(READ).groups(&[LEGACY]).resources(&["secrets"]).rule()],
        ),
        role(
            "kube-system",
            "system:controller:token-cleaner",
            vec![
                rule(&["delete", "get", "list", "watch"])
                    .groups(&[LEGACY])
                    .resources(&["secrets"])
                    .rule(),
                events_rule(),
            ],
        ),
    ]
}

/// Upstream `NamespaceRoleBindings()` (cloud-provider left out).
pub fn role_bindings() -> Vec<RoleBinding> {
    vec![
        role_binding(
            "kube-public",
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            vec![service_account("kube-system", "bootstrap-signer")],
        ),
        role_binding(
            "kube-system",
            "system::extension-apiserver-authentication-reader",
            "extension-apiserver-authentication-reader",
            vec![
                user(KUBE_CONTROLLER_MANAGER_USER),
                user("system:kube-scheduler"),
            ],
        ),
        role_binding(
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            "system::leader-locking-kube-controller-manager",
            vec![
                user(KUBE_CONTROLLER_MANAGER_USER),
                service_account("kube-system", "kube-controller-manager"),
                service_account("kube-system", "leader-election-controller"),
            ],
        ),
        role_binding(
            "kube-system",
            "system::leader-locking-kube-scheduler",
            "system::leader-locking-kube-scheduler",
            vec![
                user("system:kube-scheduler"),
                service_account("kube-system", "kube-scheduler"),
            ],
        ),
        role_binding(
            "kube-system",
            "system:controller:bootstrap-signer",
            "system:controller:bootstrap-signer",
            vec![service_account("kube-system", "bootstrap-signer")],
        ),
        role_binding(
            "kube-system",
            "system:controller:token-cleaner",
            "system:controller:token-cleaner",
            vec![service_account("kube-system", "token-cleaner")],
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// minik8s
// ---------------------------------------------------------------------------------------------

/// ClusterRoles minik8s adds: `minik8s:node-network` (every node reads all Nodes for the
/// pod-network routes, as flannel's own role allows), `system:coredns` (what CoreDNS's own
/// manifest grants) and
/// `minik8s:servicelb` (the built-in service load balancer, which k3s runs as its own
/// controller: it publishes node addresses in LoadBalancer Services' status).
pub fn minik8s_cluster_roles() -> Vec<ClusterRole> {
    vec![
        cluster_role(
            "minik8s:node-network",
            vec![rule(READ).groups(&[LEGACY]).resources(&["nodes"]).rule()],
        ),
        cluster_role(
            "minik8s:servicelb",
            vec![
                rule(READ)
                    .groups(&[LEGACY])
                    .resources(&["services", "nodes", "pods"])
                    .rule(),
                rule(&["update", "patch"])
                    .groups(&[LEGACY])
                    .resources(&["services/status"])
                    .rule(),
                events_rule(),
            ],
        ),
        cluster_role(
            "system:coredns",
            vec![
                rule(READ)
                    .groups(&[LEGACY])
                    .resources(&["endpoints", "services", "pods", "namespaces"])
                    .rule(),
                rule(&["list", "watch"])
                    .groups(&[DISCOVERY])
                    .resources(&["endpointslices"])
                    .rule(),
            ],
        ),
    ]
}

/// ClusterRoleBindings minik8s adds (see the module doc).
pub fn minik8s_cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    let mut out = vec![
        named_cluster_binding(
            "minik8s:coredns",
            "system:coredns",
            vec![user(KUBE_DNS_USER)],
        ),
        named_cluster_binding(
            "minik8s:servicelb",
            "minik8s:servicelb",
            vec![user(KUBE_CONTROLLER_MANAGER_USER)],
        ),
        named_cluster_binding(
            "minik8s:node-network",
            "minik8s:node-network",
            vec![group("system:nodes")],
        ),
        named_cluster_binding(
            "minik8s:node-proxier",
            "system:node-proxier",
            vec![group("system:nodes")],
        ),
    ];
    for r in controller_roles() {
        let Some(name) = r.metadata.name.as_deref() else {
            continue;
        };
        let Some(controller) = name.strip_prefix(CONTROLLER_ROLE_PREFIX) else {
            continue;
        };
        out.push(named_cluster_binding(
            &format!("minik8s:kube-controller-manager:{controller}"),
            name,
            vec![user(KUBE_CONTROLLER_MANAGER_USER)],
        ));
    }
    out
}

/// Every bootstrap ClusterRole: upstream's, the controllers', then minik8s's.
pub fn cluster_roles() -> Vec<ClusterRole> {
    let mut out = upstream_cluster_roles();
    out.extend(controller_roles());
    out.extend(minik8s_cluster_roles());
    out
}

/// Every bootstrap ClusterRoleBinding: upstream's, the controllers', then minik8s's.
pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    let mut out = upstream_cluster_role_bindings();
    out.extend(controller_role_bindings());
    out.extend(minik8s_cluster_role_bindings());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Attributes, Authorizer, Decision, UserInfo};
    use crate::rbac::{aggregate, covers, RbacIndex};
    use std::collections::HashSet;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            extra: Default::default(),
        }
    }

    fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            ..Default::default()
        }
    }

    fn get_path(p: &str) -> Attributes {
        Attributes {
            verb: "get".into(),
            path: p.into(),
            ..Default::default()
        }
    }

    /// The bootstrap cluster roles with aggregation applied.
    fn aggregated_roles() -> Vec<ClusterRole> {
        let mut roles = cluster_roles();
        let updates = aggregate(&roles);
        for r in &mut roles {
            if let Some((_, rules)) = updates
                .iter()
                .find(|(n, _)| Some(n) == r.metadata.name.as_ref())
            {
                r.rules = Some(rules.clone());
            }
        }
        roles
    }

    fn bootstrap_index() -> RbacIndex {
        let mut extra_bindings = role_bindings();
        for (name, role) in [("v", "view"), ("e", "edit"), ("a", "admin")] {
            extra_bindings.push(RoleBinding {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some("team".into()),
                    ..Default::default()
                },
                role_ref: role_ref("ClusterRole", role),
                subjects: Some(vec![user_subject(&format!("{role}-user"))]),
            });
        }
        RbacIndex::from_objects(
            aggregated_roles(),
            cluster_role_bindings(),
            roles(),
            extra_bindings,
        )
    }

    fn user_subject(name: &str) -> Subject {
        super::user(name)
    }

    fn rules_of<'a>(roles: &'a [ClusterRole], name: &str) -> &'a [PolicyRule] {
        roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .and_then(|r| r.rules.as_deref())
            .unwrap_or(&[])
    }

    #[test]
    fn every_object_is_labelled_and_annotated() {
        let metas: Vec<ObjectMeta> = cluster_roles()
            .into_iter()
            .map(|o| o.metadata)
            .chain(cluster_role_bindings().into_iter().map(|o| o.metadata))
            .chain(roles().into_iter().map(|o| o.metadata))
            .chain(role_bindings().into_iter().map(|o| o.metadata))
            .collect();
        for m in &metas {
            let labels = m.labels.as_ref().expect("labels");
            assert_eq!(
                labels.get(BOOTSTRAP_LABEL_KEY).map(String::as_str),
                Some("rbac-defaults"),
                "{:?}",
                m.name
            );
            let ann = m.annotations.as_ref().expect("annotations");
            assert_eq!(
                ann.get(AUTO_UPDATE_ANNOTATION).map(String::as_str),
                Some("true"),
                "{:?}",
                m.name
            );
        }
        let names: HashSet<_> = cluster_roles()
            .into_iter()
            .map(|r| r.metadata.name)
            .collect();
        assert_eq!(
            names.len(),
            cluster_roles().len(),
            "cluster role names are unique"
        );
        let bnames: HashSet<_> = cluster_role_bindings()
            .into_iter()
            .map(|r| r.metadata.name)
            .collect();
        assert_eq!(
            bnames.len(),
            cluster_role_bindings().len(),
            "binding names are unique"
        );
        // every binding refers to a role that exists
        for b in cluster_role_bindings() {
            assert!(
                names.contains(&Some(b.role_ref.name.clone())),
                "{}",
                b.role_ref.name
            );
        }
        let rnames: HashSet<_> = roles()
            .into_iter()
            .map(|r| (r.metadata.namespace, r.metadata.name))
            .collect();
        for b in role_bindings() {
            assert!(rnames.contains(&(b.metadata.namespace.clone(), Some(b.role_ref.name.clone()))));
        }
        for required in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:basic-user",
            "system:discovery",
            "system:public-info-viewer",
            "system:monitoring",
            "system:node",
            "system:node-proxier",
            "system:kube-scheduler",
            "system:volume-scheduler",
            "system:kube-controller-manager",
            "system:kube-dns",
            "system:coredns",
            "system:controller:deployment-controller",
            "system:controller:replicaset-controller",
            "system:controller:replication-controller",
            "system:controller:daemon-set-controller",
            "system:controller:statefulset-controller",
            "system:controller:job-controller",
            "system:controller:cronjob-controller",
            "system:controller:endpoint-controller",
            "system:controller:endpointslice-controller",
            "system:controller:endpointslicemirroring-controller",
            "system:controller:generic-garbage-collector",
            "system:controller:namespace-controller",
            "system:controller:node-controller",
            "system:controller:pod-garbage-collector",
            "system:controller:resourcequota-controller",
            "system:controller:service-account-controller",
            "system:controller:disruption-controller",
            "system:controller:horizontal-pod-autoscaler",
            "system:controller:ttl-after-finished-controller",
            "system:controller:root-ca-cert-publisher",
            "system:controller:service-cidrs-controller",
        ] {
            assert!(names.contains(&Some(required.to_string())), "{required}");
        }
    }

    #[test]
    fn rules_are_sorted_like_rule_or_die() {
        let r = node_rules();
        let authz = &r[1];
        assert_eq!(
            authz.resources.as_deref(),
            Some(
                &[
                    "localsubjectaccessreviews".to_string(),
                    "subjectaccessreviews".to_string()
                ][..]
            )
        );
        assert_eq!(
            events_rule().api_groups,
            Some(vec!["".to_string(), "events.k8s.io".to_string()])
        );
        assert_eq!(events_rule().verbs, vec!["create", "patch", "update"]);
    }

    #[test]
    fn aggregation_builds_admin_edit_view() {
        let roles = aggregated_roles();
        let view = rules_of(&roles, "view");
        let edit = rules_of(&roles, "edit");
        let admin = rules_of(&roles, "admin");
        assert_eq!(view, rules_of(&roles, "system:aggregate-to-view"));
        assert!(!view.is_empty());
        assert!(covers(edit, view).0, "edit ⊇ view");
        assert!(covers(admin, edit).0, "admin ⊇ edit");
        assert!(!covers(view, edit).0);
        assert!(!covers(edit, admin).0);
        // nothing more to aggregate
        assert!(aggregate(&roles).is_empty());

        let idx = bootstrap_index();
        let viewer = user("view-user", &["system:authenticated"]);
        let editor = user("edit-user", &["system:authenticated"]);
        let admin = user("admin-user", &["system:authenticated"]);
        let allow = |u: &UserInfo, a: Attributes| idx.authorize(u, &a) == Decision::Allow;
        assert!(allow(&viewer, res("get", "", "pods", "", "team")));
        assert!(allow(&viewer, res("get", "", "pods", "log", "team")));
        assert!(allow(
            &viewer,
            res("list", "apps", "deployments", "", "team")
        ));
        assert!(!allow(&viewer, res("get", "", "secrets", "", "team")));
        assert!(!allow(&viewer, res("create", "", "pods", "", "team")));
        assert!(!allow(&viewer, res("get", "", "pods", "", "elsewhere")));
        assert!(allow(
            &editor,
            res("create", "apps", "deployments", "", "team")
        ));
        assert!(allow(
            &editor,
            res("update", "apps", "deployments", "scale", "team")
        ));
        assert!(allow(&editor, res("get", "", "secrets", "", "team")));
        assert!(allow(&editor, res("create", "", "pods", "exec", "team")));
        assert!(!allow(
            &editor,
            res(
                "create",
                "rbac.authorization.k8s.io",
                "rolebindings",
                "",
                "team"
            )
        ));
        assert!(!allow(
            &editor,
            res("update", "", "resourcequotas", "", "team")
        ));
        assert!(allow(
            &admin,
            res(
                "create",
                "rbac.authorization.k8s.io",
                "rolebindings",
                "",
                "team"
            )
        ));
        assert!(allow(&admin, res("delete", "batch", "jobs", "", "team")));
        assert!(!allow(&admin, res("create", "", "namespaces", "", "")));
    }

    #[test]
    fn default_bindings_grant_upstream_access() {
        let idx = bootstrap_index();
        let allow = |u: &UserInfo, a: Attributes| idx.authorize(u, &a) == Decision::Allow;
        let anon = user("system:anonymous", &["system:unauthenticated"]);
        let bob = user("bob", &["system:authenticated"]);
        assert!(allow(&anon, get_path("/healthz")));
        assert!(allow(&anon, get_path("/version")));
        assert!(!allow(&anon, get_path("/apis")));
        assert!(allow(&bob, get_path("/apis/apps/v1")));
        assert!(allow(&bob, get_path("/openapi/v2")));
        assert!(!allow(&bob, get_path("/metrics")));
        assert!(allow(
            &bob,
            res(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                ""
            )
        ));
        assert!(!allow(&bob, res("list", "", "pods", "", "default")));
        let root = user("root", &["system:masters"]);
        assert!(allow(&root, res("delete", "", "nodes", "", "")));
        assert!(allow(&root, get_path("/metrics")));

        let kcm = user(KUBE_CONTROLLER_MANAGER_USER, &["system:authenticated"]);
        assert!(allow(&kcm, res("create", "", "pods", "", "team")));
        assert!(allow(
            &kcm,
            res("update", "apps", "deployments", "status", "team")
        ));
        assert!(allow(&kcm, res("delete", "", "nodes", "", "")));
        assert!(allow(
            &kcm,
            res("deletecollection", "apps", "replicasets", "", "team")
        ));
        assert!(allow(
            &kcm,
            res("create", "discovery.k8s.io", "endpointslices", "", "team")
        ));
        assert!(allow(
            &kcm,
            res("update", "apps", "deployments", "scale", "team")
        ));
        assert!(!allow(
            &kcm,
            res(
                "create",
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                "",
                ""
            )
        ));

        let sched = user("system:kube-scheduler", &["system:authenticated"]);
        assert!(allow(&sched, res("create", "", "pods", "binding", "team")));
        assert!(!allow(&sched, res("create", "", "pods", "", "team")));

        let dns = user(KUBE_DNS_USER, &["system:authenticated"]);
        assert!(allow(
            &dns,
            res("watch", "discovery.k8s.io", "endpointslices", "", "")
        ));
        assert!(allow(&dns, res("get", "", "services", "", "team")));
        assert!(!allow(&dns, res("get", "", "secrets", "", "team")));

        let node = user("system:node:n1", &["system:nodes", "system:authenticated"]);
        assert!(allow(
            &node,
            res("list", "discovery.k8s.io", "endpointslices", "", "")
        ));
        assert!(allow(&node, res("create", "", "events", "", "team")));
        // system:node itself is granted by the node authorizer, not by a binding
        assert!(!allow(&node, res("get", "", "secrets", "", "team")));
        assert!(crate::rbac::rules_allow(
            &node_rules(),
            &res("get", "", "secrets", "", "team")
        ));

        let sa = user(
            "system:serviceaccount:kube-system:token-cleaner",
            &["system:serviceaccounts"],
        );
        assert!(allow(&sa, res("delete", "", "secrets", "", "kube-system")));
        assert!(!allow(&sa, res("delete", "", "secrets", "", "team")));
        assert!(allow(&sa, get_path("/openid/v1/jwks")));
    }

    #[test]
    fn reconciling_bootstrap_against_itself_is_a_no_op() {
        for r in aggregated_roles() {
            assert!(
                reconcile_cluster_role(Some(&r), &r).is_none(),
                "{:?}",
                r.metadata.name
            );
        }
        // the stored aggregated roles against the wanted (rule-less) bootstrap ones
        let stored = aggregated_roles();
        for wanted in cluster_roles() {
            let existing = stored
                .iter()
                .find(|r| r.metadata.name == wanted.metadata.name);
            assert!(
                reconcile_cluster_role(existing, &wanted).is_none(),
                "{:?}",
                wanted.metadata.name
            );
        }
        for b in cluster_role_bindings() {
            assert!(reconcile_cluster_role_binding(Some(&b), &b).is_none());
        }
        for r in roles() {
            assert!(reconcile_role(Some(&r), &r).is_none());
        }
        for b in role_bindings() {
            assert!(reconcile_role_binding(Some(&b), &b).is_none());
        }
        // missing objects are created as wanted
        let admin = aggregated_role("admin", AGGREGATE_TO_ADMIN);
        assert_eq!(reconcile_cluster_role(None, &admin), Some(admin));
    }
}
