//! The table of served resources: group, version, kind, names, scope, subresources, and
//! hooks into the k8s-openapi type (JSON schema, typed decoding). Pure data, no IO.

use k8s_openapi::api::{
    admissionregistration, apps, authentication, authorization, batch, coordination, core,
    discovery, events, policy, rbac, scheduling,
};
use serde_json::Value;
use std::any::TypeId;
use std::sync::OnceLock;

/// A subresource served under `<resource>/<name>/<sub>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Scale,
    /// `pods/binding` (POST a v1 Binding).
    Binding,
    /// `pods/eviction` (POST a policy/v1 Eviction).
    Eviction,
    /// `namespaces/finalize` (PUT the Namespace's spec.finalizers).
    Finalize,
    /// `pods/log`, proxied to the node's kubelet.
    Log,
    /// `pods/exec`, `pods/attach`, `pods/portforward`: streams through the kubelet.
    Exec,
    Attach,
    PortForward,
    /// `serviceaccounts/token` (POST an authentication.k8s.io/v1 TokenRequest).
    Token,
}

#[derive(Clone)]
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Plural resource name, as in the URL (`pods`).
    pub plural: &'static str,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// The OpenAPI definition name, e.g. `io.k8s.api.core.v1.Pod`.
    pub schema_name: String,
    /// Produces the type's JSON schema (k8s-openapi's schemars impl).
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// Decodes JSON into the typed struct and back, surfacing type errors the way a
    /// typed decoder would. Unknown fields are dropped (strict checking is separate).
    pub roundtrip: fn(&Value) -> Result<Value, serde_json::Error>,
}

impl std::fmt::Debug for ResourceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceInfo")
            .field("group", &self.group)
            .field("version", &self.version)
            .field("plural", &self.plural)
            .finish()
    }
}

impl PartialEq for ResourceInfo {
    fn eq(&self, other: &Self) -> bool {
        (self.group, self.version, self.plural) == (other.group, other.version, other.plural)
    }
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// `pods` or `deployments.apps`, as used in error messages.
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }
}

fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(
    v: &Value,
) -> Result<Value, serde_json::Error> {
    let t: T = serde_json::from_value(v.clone())?;
    serde_json::to_value(t)
}

fn info<T>(
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [Subresource],
) -> ResourceInfo
where
    T: k8s_openapi::Resource
        + schemars::JsonSchema
        + serde::de::DeserializeOwned
        + serde::Serialize
        + 'static,
{
    ResourceInfo {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        plural: T::URL_PATH_SEGMENT,
        singular: T::KIND.to_ascii_lowercase(),
        namespaced: TypeId::of::<T::Scope>() == TypeId::of::<k8s_openapi::NamespaceResourceScope>(),
        short_names,
        categories,
        subresources,
        schema_name: T::schema_name().into_owned(),
        schema: T::json_schema,
        roundtrip: roundtrip::<T>,
    }
}

use Subresource::{
    Attach, Binding, Eviction, Exec, Finalize, Log, PortForward, Scale, Status, Token,
};

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

/// Every resource the API server serves, in discovery order.
pub fn all() -> &'static [ResourceInfo] {
    static CELL: OnceLock<Vec<ResourceInfo>> = OnceLock::new();
    CELL.get_or_init(|| {
        vec![
            info::<core::v1::ConfigMap>(&["cm"], NONE, &[]),
            info::<core::v1::Endpoints>(&["ep"], NONE, &[]),
            info::<core::v1::Event>(&["ev"], NONE, &[]),
            info::<core::v1::LimitRange>(&["limits"], NONE, &[]),
            info::<core::v1::Namespace>(&["ns"], NONE, &[Status, Finalize]),
            info::<core::v1::Node>(&["no"], NONE, &[Status]),
            info::<core::v1::PersistentVolumeClaim>(&["pvc"], NONE, &[Status]),
            info::<core::v1::PersistentVolume>(&["pv"], NONE, &[Status]),
            info::<core::v1::Pod>(
                &["po"],
                ALL,
                &[Status, Binding, Eviction, Log, Exec, Attach, PortForward],
            ),
            info::<core::v1::ResourceQuota>(&["quota"], NONE, &[Status]),
            info::<core::v1::Secret>(NONE, NONE, &[]),
            info::<core::v1::ServiceAccount>(&["sa"], NONE, &[Token]),
            info::<core::v1::Service>(&["svc"], ALL, &[Status]),
            info::<apps::v1::ControllerRevision>(NONE, NONE, &[]),
            info::<apps::v1::DaemonSet>(&["ds"], ALL, &[Status]),
            info::<apps::v1::Deployment>(&["deploy"], ALL, &[Status, Scale]),
            info::<apps::v1::ReplicaSet>(&["rs"], ALL, &[Status, Scale]),
            info::<apps::v1::StatefulSet>(&["sts"], ALL, &[Status, Scale]),
            info::<batch::v1::CronJob>(&["cj"], ALL, &[Status]),
            info::<batch::v1::Job>(NONE, ALL, &[Status]),
            info::<coordination::v1::Lease>(NONE, NONE, &[]),
            info::<discovery::v1::EndpointSlice>(NONE, NONE, &[]),
            info::<events::v1::Event>(&["ev"], NONE, &[]),
            info::<policy::v1::PodDisruptionBudget>(&["pdb"], NONE, &[Status]),
            info::<rbac::v1::ClusterRoleBinding>(NONE, NONE, &[]),
            info::<rbac::v1::ClusterRole>(NONE, NONE, &[]),
            info::<rbac::v1::RoleBinding>(NONE, NONE, &[]),
            info::<rbac::v1::Role>(NONE, NONE, &[]),
            info::<scheduling::v1::PriorityClass>(&["pc"], NONE, &[]),
            info::<admissionregistration::v1::MutatingWebhookConfiguration>(
                NONE,
                &["api-extensions"],
                &[],
            ),
            info::<admissionregistration::v1::ValidatingWebhookConfiguration>(
                NONE,
                &["api-extensions"],
                &[],
            ),
        ]
    })
}

/// The create-only review resources (`authentication.k8s.io`, `authorization.k8s.io`):
/// answered from the request, never stored, discovered with the single verb `create`.
pub fn reviews() -> &'static [ResourceInfo] {
    static CELL: OnceLock<Vec<ResourceInfo>> = OnceLock::new();
    CELL.get_or_init(|| {
        vec![
            info::<authentication::v1::SelfSubjectReview>(NONE, NONE, &[]),
            info::<authentication::v1::TokenReview>(NONE, NONE, &[]),
            info::<authorization::v1::LocalSubjectAccessReview>(NONE, NONE, &[]),
            info::<authorization::v1::SelfSubjectAccessReview>(NONE, NONE, &[]),
            info::<authorization::v1::SelfSubjectRulesReview>(NONE, NONE, &[]),
            info::<authorization::v1::SubjectAccessReview>(NONE, NONE, &[]),
        ]
    })
}

/// Finds a review resource by group, version and plural name.
pub fn find_review(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    reviews()
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource by group, version and plural name.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    all()
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource by group, version and kind.
pub fn find_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    all()
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The group versions served, in discovery order (core first).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in all() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}
