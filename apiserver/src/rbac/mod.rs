//! Role-based access control as pure logic: rule matching (upstream
//! pkg/apis/rbac/v1/evaluation_helpers.go, plugin/pkg/auth/authorizer/rbac/rbac.go), subject
//! matching and the rule resolver (pkg/registry/rbac/validation/rule.go) behind an index of
//! Roles, ClusterRoles and their bindings, the RBAC `Authorizer`, the rules a user holds in a
//! namespace (SelfSubjectRulesReview) and escalation prevention (ConfirmNoEscalation).
//!
//! Submodules: `escalation` (Covers, CompactRules, the exact message strings), `aggregation`
//! (ClusterRole aggregation and label selectors), `bootstrap` (the default policy) and
//! `reconcile` (bootstrap-policy reconciliation at start).
//!
//! The index holds no locks and does no IO: the caller feeds it from watches
//! (`upsert_*`/`remove_*`) and wraps it in an `RwLock`.

pub mod aggregation;
pub mod bootstrap;
pub mod escalation;
pub mod reconcile;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use crate::auth::{Attributes, Authorizer, Decision, UserInfo};

pub use aggregation::{aggregate, selector_matches};
pub use escalation::{breakdown_rule, compact_rules, compact_string, covers};

/// `rbac.authorization.k8s.io`.
pub const GROUP_NAME: &str = "rbac.authorization.k8s.io";
/// Bootstrap objects carrying `"false"` here are never reconciled.
pub const AUTO_UPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// Label every bootstrap object carries (value `rbac-defaults`).
pub const BOOTSTRAP_LABEL_KEY: &str = "kubernetes.io/bootstrapping";
pub const BOOTSTRAP_LABEL_VALUE: &str = "rbac-defaults";
/// Prefix of service account user names: `system:serviceaccount:<ns>:<name>`.
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";
/// The group whose members bypass escalation checks (upstream `user.SystemPrivilegedGroup`).
pub const SYSTEM_PRIVILEGED_GROUP: &str = "system:masters";
/// Message upstream returns (as a Forbidden on clusterroles) when a user without full
/// authority sets or changes an aggregationRule.
pub const AGGREGATION_RULE_FORBIDDEN: &str =
    "must have cluster-admin privileges to use the aggregationRule";

// ---------------------------------------------------------------------------------------------
// Rule matching (evaluation_helpers.go)
// ---------------------------------------------------------------------------------------------

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

/// `VerbMatches`: `*` or the exact verb.
pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

/// `APIGroupMatches`: `*` or the exact group (`""` is the core group).
pub fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    list(&rule.api_groups)
        .iter()
        .any(|g| g == "*" || g == group)
}

/// `ResourceMatches` on `resource[/subresource]`: `*`, the exact combined resource, or
/// `*/<subresource>`. As upstream, `pods/*` is not a wildcard: it only matches a request whose
/// subresource is literally `*`.
pub fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    list(&rule.resources).iter().any(|r| {
        if r == "*" {
            return true;
        }
        if subresource.is_empty() {
            return r == resource;
        }
        // exact match on "<resource>/<subresource>" without allocating
        let combined = r.len() == resource.len() + 1 + subresource.len()
            && r.starts_with(resource)
            && r.as_bytes()[resource.len()] == b'/'
            && r.ends_with(subresource);
        combined
            || (r.len() == subresource.len() + 2 && r.starts_with("*/") && r.ends_with(subresource))
    })
}

/// `ResourceNameMatches`: no names means all; otherwise the request's name must be listed, so a
/// rule with resourceNames never matches a request without a name (create, list, watch,
/// deletecollection).
pub fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    let names = list(&rule.resource_names);
    names.is_empty() || names.iter().any(|n| n == name)
}

/// `NonResourceURLMatches`: `*`, the exact path, or a prefix ending in `*`.
pub fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    list(&rule.non_resource_urls).iter().any(|u| {
        if u == "*" || u == path {
            return true;
        }
        match u.strip_suffix('*') {
            Some(_) => path.starts_with(u.trim_end_matches('*')),
            None => false,
        }
    })
}

/// `RuleAllows`: whether one rule allows a request. Resource rules apply only to resource
/// requests and nonResourceURLs only to non-resource requests.
pub fn rule_allows(rule: &PolicyRule, a: &Attributes) -> bool {
    if a.resource_request {
        verb_matches(rule, &a.verb)
            && api_group_matches(rule, &a.api_group)
            && resource_matches(rule, &a.resource, &a.subresource)
            && resource_name_matches(rule, &a.name)
    } else {
        verb_matches(rule, &a.verb) && non_resource_url_matches(rule, &a.path)
    }
}

/// `RulesAllow`: whether any of the rules allows the request.
pub fn rules_allow(rules: &[PolicyRule], a: &Attributes) -> bool {
    rules.iter().any(|r| rule_allows(r, a))
}

// ---------------------------------------------------------------------------------------------
// Subjects (rule.go appliesToUser)
// ---------------------------------------------------------------------------------------------

/// `serviceaccount.MatchesUsername`: `user == "system:serviceaccount:<ns>:<name>"`.
pub fn service_account_matches_username(namespace: &str, name: &str, user: &str) -> bool {
    user.strip_prefix(SERVICE_ACCOUNT_USER_PREFIX)
        .and_then(|rest| rest.strip_prefix(namespace))
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|rest| rest == name)
}

/// The user name of a service account.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}")
}

/// The namespace a ServiceAccount subject refers to: its own, else the binding's (empty for
/// ClusterRoleBindings, in which case the subject matches nobody).
fn service_account_namespace<'a>(subject: &'a Subject, binding_namespace: &'a str) -> &'a str {
    match subject.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns,
        _ => binding_namespace,
    }
}

/// `appliesToUser`: whether a binding subject names the user. `binding_namespace` is the
/// RoleBinding's namespace (empty for ClusterRoleBindings); it is the default namespace of
/// ServiceAccount subjects.
pub fn subject_matches(subject: &Subject, user: &UserInfo, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let ns = service_account_namespace(subject, binding_namespace);
            !ns.is_empty() && service_account_matches_username(ns, &subject.name, &user.name)
        }
        _ => false,
    }
}

/// `appliesTo`: the index of the first subject naming the user.
fn applies_to(subjects: &[Subject], user: &UserInfo, binding_namespace: &str) -> Option<usize> {
    subjects
        .iter()
        .position(|s| subject_matches(s, user, binding_namespace))
}

/// `describeSubject`, e.g. `Group "system:authenticated"` or `ServiceAccount "sa/ns"`.
fn describe_subject(s: &Subject, binding_namespace: &str) -> String {
    if s.kind == "ServiceAccount" {
        let ns = service_account_namespace(s, binding_namespace);
        format!(
            "{} {}",
            s.kind,
            escalation::go_quote(&format!("{}/{}", s.name, ns))
        )
    } else {
        format!("{} {}", s.kind, escalation::go_quote(&s.name))
    }
}

/// Where a visited rule came from.
#[derive(Debug, Clone, Copy)]
pub enum RuleSource<'a> {
    ClusterRoleBinding(&'a ClusterRoleBinding),
    RoleBinding(&'a RoleBinding),
}

/// A rule source described for a given user, as upstream's describers print it:
/// `ClusterRoleBinding "x" of ClusterRole "y" to Group "g"` or
/// `RoleBinding "x/ns" of Role "y" to User "u"`.
pub struct SourceDescription<'a> {
    pub source: RuleSource<'a>,
    pub user: &'a UserInfo,
}

impl fmt::Display for SourceDescription<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = escalation::go_quote;
        match self.source {
            RuleSource::ClusterRoleBinding(b) => {
                let subjects = b.subjects.as_deref().unwrap_or(&[]);
                let subject = applies_to(subjects, self.user, "")
                    .map(|i| describe_subject(&subjects[i], ""))
                    .unwrap_or_default();
                write!(
                    f,
                    "ClusterRoleBinding {} of {} {} to {}",
                    q(name_of(&b.metadata)),
                    b.role_ref.kind,
                    q(&b.role_ref.name),
                    subject
                )
            }
            RuleSource::RoleBinding(b) => {
                let ns = b.metadata.namespace.as_deref().unwrap_or("");
                let subjects = b.subjects.as_deref().unwrap_or(&[]);
                let subject = applies_to(subjects, self.user, ns)
                    .map(|i| describe_subject(&subjects[i], ns))
                    .unwrap_or_default();
                write!(
                    f,
                    "RoleBinding {} of {} {} to {}",
                    q(&format!("{}/{}", name_of(&b.metadata), ns)),
                    b.role_ref.kind,
                    q(&b.role_ref.name),
                    subject
                )
            }
        }
    }
}

fn name_of(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    m.name.as_deref().unwrap_or("")
}

/// `utilerrors.NewAggregate(errs).Error()`: one distinct message as is, several as
/// `[a, b]` (duplicates dropped, first occurrence order kept).
pub fn aggregate_errors(errors: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    match seen.len() {
        0 => String::new(),
        1 => seen[0].to_string(),
        _ => format!("[{}]", seen.join(", ")),
    }
}

// ---------------------------------------------------------------------------------------------
// The index
// ---------------------------------------------------------------------------------------------

/// Which bindings name a user or a group, by binding name.
#[derive(Debug, Default, Clone)]
struct SubjectIndex {
    users: HashMap<String, BTreeSet<String>>,
    groups: HashMap<String, BTreeSet<String>>,
}

enum SubjectKey {
    User(String),
    Group(String),
}

/// The index key of a subject (None for subjects that match nobody).
fn subject_key(s: &Subject, binding_namespace: &str) -> Option<SubjectKey> {
    match s.kind.as_str() {
        "User" => Some(SubjectKey::User(s.name.clone())),
        "Group" => Some(SubjectKey::Group(s.name.clone())),
        "ServiceAccount" => {
            let ns = service_account_namespace(s, binding_namespace);
            (!ns.is_empty()).then(|| SubjectKey::User(service_account_username(ns, &s.name)))
        }
        _ => None,
    }
}

impl SubjectIndex {
    fn insert(&mut self, subjects: &[Subject], binding_namespace: &str, binding: &str) {
        for s in subjects {
            let (map, key) = match subject_key(s, binding_namespace) {
                Some(SubjectKey::User(k)) => (&mut self.users, k),
                Some(SubjectKey::Group(k)) => (&mut self.groups, k),
                None => continue,
            };
            map.entry(key).or_default().insert(binding.to_string());
        }
    }

    fn remove(&mut self, subjects: &[Subject], binding_namespace: &str, binding: &str) {
        for s in subjects {
            let (map, key) = match subject_key(s, binding_namespace) {
                Some(SubjectKey::User(k)) => (&mut self.users, k),
                Some(SubjectKey::Group(k)) => (&mut self.groups, k),
                None => continue,
            };
            if let Some(set) = map.get_mut(&key) {
                set.remove(binding);
                if set.is_empty() {
                    map.remove(&key);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }

    /// Names of the bindings naming the user or one of its groups, sorted, deduplicated.
    fn candidates<'a>(&'a self, user: &UserInfo, out: &mut Vec<&'a str>) {
        if let Some(set) = self.users.get(user.name.as_str()) {
            out.extend(set.iter().map(String::as_str));
        }
        for g in &user.groups {
            if let Some(set) = self.groups.get(g.as_str()) {
                out.extend(set.iter().map(String::as_str));
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

/// The rules a user holds in a namespace (upstream `RulesFor`, as SelfSubjectRulesReview
/// reports it): resource rules (verbs, apiGroups, resources, resourceNames) and non-resource
/// rules (verbs, nonResourceURLs); `incomplete` with the aggregated `evaluation_error` when a
/// roleRef could not be resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulesFor {
    pub resource_rules: Vec<PolicyRule>,
    pub non_resource_rules: Vec<PolicyRule>,
    pub incomplete: bool,
    pub evaluation_error: String,
}

/// All Roles, ClusterRoles, RoleBindings and ClusterRoleBindings, with bindings indexed by the
/// users and groups they name, so an authorization looks only at bindings that name the user
/// or one of its groups and resolves roleRefs by hash lookup.
#[derive(Debug, Default, Clone)]
pub struct RbacIndex {
    cluster_roles: HashMap<String, ClusterRole>,
    /// namespace → name → Role
    roles: HashMap<String, HashMap<String, Role>>,
    cluster_role_bindings: HashMap<String, ClusterRoleBinding>,
    /// namespace → name → RoleBinding
    role_bindings: HashMap<String, HashMap<String, RoleBinding>>,
    crb_subjects: SubjectIndex,
    /// namespace → subjects of that namespace's RoleBindings
    rb_subjects: HashMap<String, SubjectIndex>,
}

fn not_found(resource: &str, name: &str) -> String {
    format!(
        "{resource}.{GROUP_NAME} {} not found",
        escalation::go_quote(name)
    )
}

impl RbacIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// An index holding the given objects.
    pub fn from_objects(
        cluster_roles: impl IntoIterator<Item = ClusterRole>,
        cluster_role_bindings: impl IntoIterator<Item = ClusterRoleBinding>,
        roles: impl IntoIterator<Item = Role>,
        role_bindings: impl IntoIterator<Item = RoleBinding>,
    ) -> Self {
        let mut idx = Self::default();
        cluster_roles
            .into_iter()
            .for_each(|o| idx.upsert_cluster_role(o));
        cluster_role_bindings
            .into_iter()
            .for_each(|o| idx.upsert_cluster_role_binding(o));
        roles.into_iter().for_each(|o| idx.upsert_role(o));
        role_bindings
            .into_iter()
            .for_each(|o| idx.upsert_role_binding(o));
        idx
    }

    pub fn upsert_cluster_role(&mut self, role: ClusterRole) {
        let name = name_of(&role.metadata).to_string();
        self.cluster_roles.insert(name, role);
    }

    pub fn remove_cluster_role(&mut self, name: &str) {
        self.cluster_roles.remove(name);
    }

    pub fn upsert_role(&mut self, role: Role) {
        let ns = role.metadata.namespace.clone().unwrap_or_default();
        let name = name_of(&role.metadata).to_string();
        self.roles.entry(ns).or_default().insert(name, role);
    }

    pub fn remove_role(&mut self, namespace: &str, name: &str) {
        if let Some(m) = self.roles.get_mut(namespace) {
            m.remove(name);
            if m.is_empty() {
                self.roles.remove(namespace);
            }
        }
    }

    pub fn upsert_cluster_role_binding(&mut self, binding: ClusterRoleBinding) {
        let name = name_of(&binding.metadata).to_string();
        self.remove_cluster_role_binding(&name);
        self.crb_subjects
            .insert(binding.subjects.as_deref().unwrap_or(&[]), "", &name);
        self.cluster_role_bindings.insert(name, binding);
    }

    pub fn remove_cluster_role_binding(&mut self, name: &str) {
        if let Some(old) = self.cluster_role_bindings.remove(name) {
            self.crb_subjects
                .remove(old.subjects.as_deref().unwrap_or(&[]), "", name);
        }
    }

    pub fn upsert_role_binding(&mut self, binding: RoleBinding) {
        let ns = binding.metadata.namespace.clone().unwrap_or_default();
        let name = name_of(&binding.metadata).to_string();
        self.remove_role_binding(&ns, &name);
        self.rb_subjects.entry(ns.clone()).or_default().insert(
            binding.subjects.as_deref().unwrap_or(&[]),
            &ns,
            &name,
        );
        self.role_bindings
            .entry(ns)
            .or_default()
            .insert(name, binding);
    }

    pub fn remove_role_binding(&mut self, namespace: &str, name: &str) {
        let Some(m) = self.role_bindings.get_mut(namespace) else {
            return;
        };
        let Some(old) = m.remove(name) else {
            return;
        };
        if m.is_empty() {
            self.role_bindings.remove(namespace);
        }
        if let Some(idx) = self.rb_subjects.get_mut(namespace) {
            idx.remove(old.subjects.as_deref().unwrap_or(&[]), namespace, name);
            if idx.is_empty() {
                self.rb_subjects.remove(namespace);
            }
        }
    }

    pub fn cluster_role(&self, name: &str) -> Option<&ClusterRole> {
        self.cluster_roles.get(name)
    }

    pub fn role(&self, namespace: &str, name: &str) -> Option<&Role> {
        self.roles.get(namespace)?.get(name)
    }

    pub fn cluster_roles(&self) -> impl Iterator<Item = &ClusterRole> {
        self.cluster_roles.values()
    }

    /// `GetRoleReferenceRules`: the rules of the role a binding refers to; the binding
    /// namespace is empty for ClusterRoleBindings. Errors carry upstream's texts
    /// (`clusterrole.rbac.authorization.k8s.io "x" not found`,
    /// `role.rbac.authorization.k8s.io "x" not found`,
    /// `unsupported role reference kind: "X"`).
    pub fn get_role_reference_rules(
        &self,
        role_ref: &RoleRef,
        binding_namespace: &str,
    ) -> Result<&[PolicyRule], String> {
        match role_ref.kind.as_str() {
            "Role" => self
                .role(binding_namespace, &role_ref.name)
                .map(|r| r.rules.as_deref().unwrap_or(&[]))
                .ok_or_else(|| not_found("role", &role_ref.name)),
            "ClusterRole" => self
                .cluster_roles
                .get(&role_ref.name)
                .map(|r| r.rules.as_deref().unwrap_or(&[]))
                .ok_or_else(|| not_found("clusterrole", &role_ref.name)),
            kind => Err(format!(
                "unsupported role reference kind: {}",
                escalation::go_quote(kind)
            )),
        }
    }

    /// `VisitRulesFor`: calls `visit` with every rule that applies to the user in the namespace
    /// (ClusterRoleBindings first, then the namespace's RoleBindings, each in binding-name
    /// order) until it returns false; resolution errors are pushed to `errors`.
    pub fn visit_rules_for<'a>(
        &'a self,
        user: &UserInfo,
        namespace: &str,
        errors: &mut Vec<String>,
        mut visit: impl FnMut(RuleSource<'a>, &'a PolicyRule) -> bool,
    ) {
        let mut names: Vec<&'a str> = Vec::with_capacity(8);
        self.crb_subjects.candidates(user, &mut names);
        for name in &names {
            let Some(b) = self.cluster_role_bindings.get(*name) else {
                continue;
            };
            match self.get_role_reference_rules(&b.role_ref, "") {
                Ok(rules) => {
                    for r in rules {
                        if !visit(RuleSource::ClusterRoleBinding(b), r) {
                            return;
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if namespace.is_empty() {
            return;
        }
        let (Some(idx), Some(bindings)) = (
            self.rb_subjects.get(namespace),
            self.role_bindings.get(namespace),
        ) else {
            return;
        };
        names.clear();
        idx.candidates(user, &mut names);
        for name in &names {
            let Some(b) = bindings.get(*name) else {
                continue;
            };
            match self.get_role_reference_rules(&b.role_ref, namespace) {
                Ok(rules) => {
                    for r in rules {
                        if !visit(RuleSource::RoleBinding(b), r) {
                            return;
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }

    /// Upstream `DefaultRuleResolver.RulesFor`: every rule that applies to the user in the
    /// namespace, and the aggregated resolution error if a roleRef could not be resolved.
    pub fn policy_rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
    ) -> (Vec<PolicyRule>, Option<String>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.visit_rules_for(user, namespace, &mut errors, |_, r| {
            rules.push(r.clone());
            true
        });
        let err = (!errors.is_empty()).then(|| aggregate_errors(&errors));
        (rules, err)
    }

    /// The rules a user holds in a namespace, split as SelfSubjectRulesReview reports them.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> RulesFor {
        let (rules, err) = self.policy_rules_for(user, namespace);
        let mut out = RulesFor::default();
        for r in rules {
            if !list(&r.resources).is_empty() {
                out.resource_rules.push(PolicyRule {
                    verbs: r.verbs.clone(),
                    api_groups: r.api_groups.clone(),
                    resources: r.resources.clone(),
                    resource_names: r.resource_names.clone(),
                    non_resource_urls: None,
                });
            }
            if !list(&r.non_resource_urls).is_empty() {
                out.non_resource_rules.push(PolicyRule {
                    verbs: r.verbs,
                    non_resource_urls: r.non_resource_urls,
                    ..Default::default()
                });
            }
        }
        if let Some(e) = err {
            out.incomplete = true;
            out.evaluation_error = e;
        }
        out
    }

    /// The RBAC decision with upstream's reason: `RBAC: allowed by <source>` on Allow;
    /// on NoOpinion empty, or `RBAC: <resolution errors>` when some roleRef was missing.
    pub fn authorize_with_reason(&self, user: &UserInfo, attrs: &Attributes) -> (Decision, String) {
        let mut allowed_by = None;
        let mut errors = Vec::new();
        self.visit_rules_for(user, &attrs.namespace, &mut errors, |source, rule| {
            if rule_allows(rule, attrs) {
                allowed_by = Some(source);
                false
            } else {
                true
            }
        });
        match allowed_by {
            Some(source) => (
                Decision::Allow,
                format!("RBAC: allowed by {}", SourceDescription { source, user }),
            ),
            None if errors.is_empty() => (Decision::NoOpinion, String::new()),
            None => (
                Decision::NoOpinion,
                format!("RBAC: {}", aggregate_errors(&errors)),
            ),
        }
    }

    /// Upstream `ConfirmNoEscalation`: Ok when the rules the user holds in `namespace` (empty
    /// for cluster-scoped objects) cover `requested`, else upstream's message, e.g.
    /// `user "bob" (groups=["a" "b"]) is attempting to grant RBAC permissions not currently
    /// held:\n{APIGroups:[""], Resources:["pods"], Verbs:["get"]}` followed by
    /// `; resolution errors: [...]` when a roleRef of the user's bindings could not be resolved.
    ///
    /// What the caller (the rbac registry) must do around it, as upstream
    /// pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/policybased:
    /// * members of `system:masters` skip every check ([`escalation_allowed`]);
    /// * Role/ClusterRole create/update: skip when the authorizer allows
    ///   [`escalate_attributes`] (verb `escalate` on the `roles`/`clusterroles` being written,
    ///   same group, namespace and name as the request), else confirm the object's rules;
    ///   a ClusterRole whose new or old object has an aggregationRule with selectors also needs
    ///   [`full_authority`] confirmed, failing with [`AGGREGATION_RULE_FORBIDDEN`];
    /// * RoleBinding/ClusterRoleBinding create/update: skip when the authorizer allows
    ///   [`bind_attributes`] (verb `bind` on the referenced `roles`/`clusterroles` with the
    ///   roleRef name as resourceName, in the binding's namespace, empty for cluster
    ///   bindings), else resolve the roleRef with [`RbacIndex::get_role_reference_rules`]
    ///   (its error is returned as is) and confirm those rules in the binding's namespace;
    /// * updates that only change GC fields (finalizers, ownerReferences) are not checked;
    /// * the Err text is wrapped with [`forbidden_message`] into a 403 Forbidden.
    pub fn confirm_no_escalation(
        &self,
        user: &UserInfo,
        namespace: &str,
        requested: &[PolicyRule],
    ) -> Result<(), String> {
        let (owner_rules, err) = self.policy_rules_for(user, namespace);
        escalation::confirm_covered(user, &owner_rules, err.as_deref(), requested)
    }
}

impl Authorizer for RbacIndex {
    /// Allow when some rule of a binding naming the user allows the request, else NoOpinion.
    fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        let mut allowed = false;
        let mut errors = Vec::new();
        self.visit_rules_for(user, &attrs.namespace, &mut errors, |_, rule| {
            allowed = rule_allows(rule, attrs);
            !allowed
        });
        if allowed {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}

/// The index shared between the watch feeders (writers) and the authorizer chain (readers).
#[derive(Debug, Clone, Default)]
pub struct SharedRbacIndex(pub Arc<RwLock<RbacIndex>>);

impl SharedRbacIndex {
    /// Read access; a writer that panicked leaves the last state readable.
    pub fn read(&self) -> RwLockReadGuard<'_, RbacIndex> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Write access for the watch feeders.
    pub fn write(&self) -> RwLockWriteGuard<'_, RbacIndex> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Authorizer for SharedRbacIndex {
    fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        self.read().authorize(user, attrs)
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers for the registry's escalation checks
// ---------------------------------------------------------------------------------------------

/// `EscalationAllowed`: members of `system:masters` may write any role or binding.
pub fn escalation_allowed(user: &UserInfo) -> bool {
    user.groups.iter().any(|g| g == SYSTEM_PRIVILEGED_GROUP)
}

/// `RoleEscalationAuthorized`'s attributes: verb `escalate` on the role being written
/// (`resource` is `roles` or `clusterroles`, `api_group` the request's group).
pub fn escalate_attributes(
    api_group: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> Attributes {
    Attributes {
        verb: "escalate".into(),
        resource_request: true,
        api_group: api_group.into(),
        api_version: "*".into(),
        resource: resource.into(),
        subresource: String::new(),
        namespace: namespace.into(),
        name: name.into(),
        path: String::new(),
        field_selector: String::new(),
    }
}

/// `BindingAuthorized`'s attributes: verb `bind` on the referenced role (resource `roles` or
/// `clusterroles`, name = roleRef name) in the binding's namespace (empty for
/// ClusterRoleBindings). None for an unknown roleRef kind (upstream: not authorized).
pub fn bind_attributes(role_ref: &RoleRef, binding_namespace: &str) -> Option<Attributes> {
    let resource = match role_ref.kind.as_str() {
        "ClusterRole" => "clusterroles",
        "Role" => "roles",
        _ => return None,
    };
    Some(Attributes {
        verb: "bind".into(),
        resource_request: true,
        api_group: role_ref.api_group.clone(),
        api_version: String::new(),
        resource: resource.into(),
        subresource: String::new(),
        namespace: binding_namespace.into(),
        name: role_ref.name.clone(),
        path: String::new(),
        field_selector: String::new(),
    })
}

/// `*` on everything: what setting an aggregationRule requires.
pub fn full_authority() -> Vec<PolicyRule> {
    vec![
        PolicyRule {
            verbs: vec!["*".into()],
            api_groups: Some(vec!["*".into()]),
            resources: Some(vec!["*".into()]),
            ..Default::default()
        },
        PolicyRule {
            verbs: vec!["*".into()],
            non_resource_urls: Some(vec!["*".into()]),
            ..Default::default()
        },
    ]
}

/// `errors.NewForbidden(rbac.Resource(resource), name, err)`'s message, e.g.
/// `rolebindings.rbac.authorization.k8s.io "x" is forbidden: <err>`.
pub fn forbidden_message(resource: &str, name: &str, err: &str) -> String {
    if name.is_empty() {
        format!("{resource}.{GROUP_NAME} is forbidden: {err}")
    } else {
        format!(
            "{resource}.{GROUP_NAME} {} is forbidden: {err}",
            escalation::go_quote(name)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::time::Instant;

    fn strs(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: strs(groups),
            resources: strs(resources),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn url_rule(urls: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            non_resource_urls: strs(urls),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
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

    fn path(verb: &str, p: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            path: p.into(),
            ..Default::default()
        }
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            extra: Default::default(),
        }
    }

    fn meta(ns: Option<&str>, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: ns.map(str::to_string),
            ..Default::default()
        }
    }

    fn subj(kind: &str, name: &str, ns: Option<&str>) -> Subject {
        Subject {
            api_group: None,
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(str::to_string),
        }
    }

    fn rref(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: GROUP_NAME.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    fn crole(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
        ClusterRole {
            metadata: meta(None, name),
            rules: Some(rules),
            aggregation_rule: None,
        }
    }

    fn nsrole(ns: &str, name: &str, rules: Vec<PolicyRule>) -> Role {
        Role {
            metadata: meta(Some(ns), name),
            rules: Some(rules),
        }
    }

    fn crb(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: meta(None, name),
            role_ref: rref("ClusterRole", role),
            subjects: Some(subjects),
        }
    }

    fn rb(ns: &str, name: &str, kind: &str, role: &str, subjects: Vec<Subject>) -> RoleBinding {
        RoleBinding {
            metadata: meta(Some(ns), name),
            role_ref: rref(kind, role),
            subjects: Some(subjects),
        }
    }

    #[test]
    fn verbs_groups_and_resources() {
        let r = rule(&[""], &["pods"], &["get", "list"]);
        assert!(rule_allows(&r, &res("get", "", "pods", "", "ns", "p")));
        assert!(!rule_allows(&r, &res("delete", "", "pods", "", "ns", "p")));
        assert!(!rule_allows(&r, &res("get", "apps", "pods", "", "ns", "p")));
        let any = rule(&["*"], &["*"], &["*"]);
        assert!(rule_allows(
            &any,
            &res("escalate", "rbac.authorization.k8s.io", "roles", "", "", "")
        ));
        assert!(rule_allows(&any, &res("get", "", "pods", "log", "ns", "p")));
        // resource rules never match non-resource requests, and vice versa
        assert!(!rule_allows(&any, &path("get", "/healthz")));
        assert!(!rule_allows(
            &url_rule(&["*"], &["*"]),
            &res("get", "", "pods", "", "", "")
        ));
    }

    #[test]
    fn subresources() {
        let pods = rule(&[""], &["pods"], &["get"]);
        assert!(!rule_allows(
            &pods,
            &res("get", "", "pods", "log", "ns", "p")
        ));
        let log = rule(&[""], &["pods/log"], &["get"]);
        assert!(rule_allows(&log, &res("get", "", "pods", "log", "ns", "p")));
        assert!(!rule_allows(&log, &res("get", "", "pods", "", "ns", "p")));
        assert!(!rule_allows(
            &log,
            &res("get", "", "pods", "exec", "ns", "p")
        ));
        // a resource sharing the prefix is not the subresource
        assert!(!rule_allows(
            &log,
            &res("get", "", "pod", "s/log", "ns", "p")
        ));
        let scale = rule(&["*"], &["*/scale"], &["get"]);
        assert!(rule_allows(
            &scale,
            &res("get", "apps", "deployments", "scale", "ns", "d")
        ));
        assert!(!rule_allows(
            &scale,
            &res("get", "apps", "deployments", "", "ns", "d")
        ));
        assert!(!rule_allows(
            &scale,
            &res("get", "apps", "deployments", "status", "ns", "d")
        ));
        // upstream has no `resource/*` wildcard: `pods/*` is literal
        let pods_star = rule(&[""], &["pods/*"], &["get"]);
        assert!(!rule_allows(
            &pods_star,
            &res("get", "", "pods", "log", "ns", "p")
        ));
    }

    #[test]
    fn resource_names() {
        let named = PolicyRule {
            resource_names: strs(&["cfg"]),
            ..rule(
                &[""],
                &["configmaps"],
                &[
                    "get",
                    "list",
                    "watch",
                    "create",
                    "update",
                    "delete",
                    "deletecollection",
                ],
            )
        };
        assert!(rule_allows(
            &named,
            &res("get", "", "configmaps", "", "ns", "cfg")
        ));
        assert!(rule_allows(
            &named,
            &res("update", "", "configmaps", "", "ns", "cfg")
        ));
        assert!(!rule_allows(
            &named,
            &res("get", "", "configmaps", "", "ns", "other")
        ));
        for verb in ["list", "watch", "create", "deletecollection"] {
            assert!(
                !rule_allows(&named, &res(verb, "", "configmaps", "", "ns", "")),
                "{verb}"
            );
        }
        // a watch on one object by name (fieldSelector metadata.name) carries the name
        assert!(rule_allows(
            &named,
            &res("watch", "", "configmaps", "", "ns", "cfg")
        ));
    }

    #[test]
    fn non_resource_urls() {
        let r = url_rule(&["/healthz", "/apis/*", "/version/"], &["get"]);
        assert!(rule_allows(&r, &path("get", "/healthz")));
        assert!(!rule_allows(&r, &path("get", "/healthz/etcd")));
        assert!(rule_allows(&r, &path("get", "/apis/")));
        assert!(rule_allows(&r, &path("get", "/apis/apps/v1")));
        assert!(!rule_allows(&r, &path("get", "/apis")));
        assert!(!rule_allows(&r, &path("post", "/healthz")));
        assert!(!rule_allows(&r, &path("get", "/version")));
        assert!(rule_allows(
            &url_rule(&["*"], &["get"]),
            &path("get", "/anything")
        ));
        assert!(rule_allows(
            &url_rule(&["/metrics*"], &["get"]),
            &path("get", "/metricsfoo")
        ));
    }

    #[test]
    fn subjects() {
        let bob = user("bob", &["devs", "system:authenticated"]);
        assert!(subject_matches(&subj("User", "bob", None), &bob, ""));
        assert!(!subject_matches(&subj("User", "alice", None), &bob, ""));
        assert!(subject_matches(&subj("Group", "devs", None), &bob, ""));
        assert!(!subject_matches(&subj("Group", "ops", None), &bob, ""));
        assert!(!subject_matches(&subj("Other", "bob", None), &bob, ""));

        let sa = user(
            "system:serviceaccount:team:builder",
            &["system:serviceaccounts"],
        );
        assert!(subject_matches(
            &subj("ServiceAccount", "builder", Some("team")),
            &sa,
            ""
        ));
        assert!(!subject_matches(
            &subj("ServiceAccount", "builder", Some("other")),
            &sa,
            ""
        ));
        // namespace defaults to the binding's
        assert!(subject_matches(
            &subj("ServiceAccount", "builder", None),
            &sa,
            "team"
        ));
        assert!(subject_matches(
            &subj("ServiceAccount", "builder", Some("")),
            &sa,
            "team"
        ));
        assert!(!subject_matches(
            &subj("ServiceAccount", "builder", None),
            &sa,
            "other"
        ));
        // in a ClusterRoleBinding a namespace-less SA matches nobody
        assert!(!subject_matches(
            &subj("ServiceAccount", "builder", None),
            &sa,
            ""
        ));
        assert!(!subject_matches(
            &subj("ServiceAccount", "build", Some("team")),
            &sa,
            ""
        ));
        assert!(!subject_matches(
            &subj("ServiceAccount", "builder", Some("tea")),
            &sa,
            ""
        ));
        // a User subject spelling the SA user name also matches, as upstream
        assert!(subject_matches(
            &subj("User", "system:serviceaccount:team:builder", None),
            &sa,
            ""
        ));
    }

    fn sample_index() -> RbacIndex {
        RbacIndex::from_objects(
            vec![
                crole("pod-reader", vec![rule(&[""], &["pods"], &["get", "list"])]),
                crole("node-reader", vec![rule(&[""], &["nodes"], &["get"])]),
                crole("healthz", vec![url_rule(&["/healthz"], &["get"])]),
            ],
            vec![
                crb(
                    "nodes-for-ops",
                    "node-reader",
                    vec![subj("Group", "ops", None)],
                ),
                crb(
                    "health",
                    "healthz",
                    vec![subj("Group", "system:authenticated", None)],
                ),
                crb("dangling", "gone", vec![subj("User", "carol", None)]),
            ],
            vec![nsrole(
                "team",
                "cm-editor",
                vec![rule(&[""], &["configmaps"], &["*"])],
            )],
            vec![
                rb(
                    "team",
                    "bob-cm",
                    "Role",
                    "cm-editor",
                    vec![subj("User", "bob", None)],
                ),
                rb(
                    "team",
                    "sa-pods",
                    "ClusterRole",
                    "pod-reader",
                    vec![subj("ServiceAccount", "builder", None)],
                ),
                rb(
                    "team",
                    "carol-missing",
                    "Role",
                    "nope",
                    vec![subj("User", "carol", None)],
                ),
            ],
        )
    }

    #[test]
    fn authorize_through_all_binding_kinds() {
        let idx = sample_index();
        let bob = user("bob", &["ops", "system:authenticated"]);
        // RoleBinding → Role, only in its namespace
        assert_eq!(
            idx.authorize(&bob, &res("create", "", "configmaps", "", "team", "")),
            Decision::Allow
        );
        assert_eq!(
            idx.authorize(&bob, &res("create", "", "configmaps", "", "other", "")),
            Decision::NoOpinion
        );
        // ClusterRoleBinding → ClusterRole through a group, any namespace and cluster scope
        assert_eq!(
            idx.authorize(&bob, &res("get", "", "nodes", "", "", "n1")),
            Decision::Allow
        );
        // non-resource rule through system:authenticated
        assert_eq!(
            idx.authorize(&bob, &path("get", "/healthz")),
            Decision::Allow
        );
        assert_eq!(
            idx.authorize(&bob, &path("get", "/metrics")),
            Decision::NoOpinion
        );
        // RoleBinding → ClusterRole grants it in the binding's namespace only; SA defaulting
        let sa = user(
            "system:serviceaccount:team:builder",
            &["system:serviceaccounts"],
        );
        assert_eq!(
            idx.authorize(&sa, &res("list", "", "pods", "", "team", "")),
            Decision::Allow
        );
        assert_eq!(
            idx.authorize(&sa, &res("list", "", "pods", "", "", "")),
            Decision::NoOpinion
        );
        assert_eq!(
            idx.authorize(&sa, &res("list", "", "pods", "", "other", "")),
            Decision::NoOpinion
        );
        let other_sa = user("system:serviceaccount:other:builder", &[]);
        assert_eq!(
            idx.authorize(&other_sa, &res("list", "", "pods", "", "team", "")),
            Decision::NoOpinion
        );
        assert_eq!(
            idx.authorize(&user("nobody", &[]), &res("get", "", "nodes", "", "", "")),
            Decision::NoOpinion
        );
    }

    #[test]
    fn reasons_match_upstream() {
        let idx = sample_index();
        let bob = user("bob", &["ops"]);
        assert_eq!(
            idx.authorize_with_reason(&bob, &res("get", "", "configmaps", "", "team", "x")),
            (
                Decision::Allow,
                "RBAC: allowed by RoleBinding \"bob-cm/team\" of Role \"cm-editor\" to User \"bob\"".into()
            )
        );
        assert_eq!(
            idx.authorize_with_reason(&bob, &res("get", "", "nodes", "", "", "x")).1,
            "RBAC: allowed by ClusterRoleBinding \"nodes-for-ops\" of ClusterRole \"node-reader\" to Group \"ops\""
        );
        let sa = user("system:serviceaccount:team:builder", &[]);
        assert_eq!(
            idx.authorize_with_reason(&sa, &res("get", "", "pods", "", "team", "x")).1,
            "RBAC: allowed by RoleBinding \"sa-pods/team\" of ClusterRole \"pod-reader\" to ServiceAccount \"builder/team\""
        );
        let carol = user("carol", &[]);
        assert_eq!(
            idx.authorize_with_reason(&carol, &res("get", "", "pods", "", "team", "x")),
            (
                Decision::NoOpinion,
                "RBAC: [clusterrole.rbac.authorization.k8s.io \"gone\" not found, role.rbac.authorization.k8s.io \"nope\" not found]".into()
            )
        );
        assert_eq!(
            idx.authorize_with_reason(&carol, &res("get", "", "pods", "", "", "x"))
                .1,
            "RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found"
        );
    }

    #[test]
    fn upserts_and_removals_reindex() {
        let mut idx = sample_index();
        let bob = user("bob", &[]);
        let alice = user("alice", &[]);
        let a = res("get", "", "configmaps", "", "team", "x");
        assert_eq!(idx.authorize(&bob, &a), Decision::Allow);
        // the binding now names alice instead of bob
        idx.upsert_role_binding(rb(
            "team",
            "bob-cm",
            "Role",
            "cm-editor",
            vec![subj("User", "alice", None)],
        ));
        assert_eq!(idx.authorize(&bob, &a), Decision::NoOpinion);
        assert_eq!(idx.authorize(&alice, &a), Decision::Allow);
        // role removal: binding dangles
        idx.remove_role("team", "cm-editor");
        assert_eq!(idx.authorize(&alice, &a), Decision::NoOpinion);
        idx.upsert_role(nsrole(
            "team",
            "cm-editor",
            vec![rule(&[""], &["configmaps"], &["get"])],
        ));
        assert_eq!(idx.authorize(&alice, &a), Decision::Allow);
        idx.remove_role_binding("team", "bob-cm");
        assert_eq!(idx.authorize(&alice, &a), Decision::NoOpinion);
        // cluster binding removal and role replacement
        let ops = user("x", &["ops"]);
        let n = res("get", "", "nodes", "", "", "");
        assert_eq!(idx.authorize(&ops, &n), Decision::Allow);
        idx.upsert_cluster_role(crole(
            "node-reader",
            vec![rule(&[""], &["nodes"], &["list"])],
        ));
        assert_eq!(idx.authorize(&ops, &n), Decision::NoOpinion);
        idx.upsert_cluster_role(crole(
            "node-reader",
            vec![rule(&[""], &["nodes"], &["get"])],
        ));
        idx.remove_cluster_role_binding("nodes-for-ops");
        assert_eq!(idx.authorize(&ops, &n), Decision::NoOpinion);
        idx.remove_cluster_role("node-reader");
        assert!(idx.cluster_role("node-reader").is_none());
        assert!(!idx.crb_subjects.groups.contains_key("ops"));
    }

    #[test]
    fn duplicate_subjects_visit_a_binding_once() {
        let idx = RbacIndex::from_objects(
            vec![crole("r", vec![rule(&[""], &["pods"], &["get"])])],
            vec![crb(
                "b",
                "r",
                vec![subj("User", "bob", None), subj("Group", "g", None)],
            )],
            vec![],
            vec![],
        );
        let (rules, err) = idx.policy_rules_for(&user("bob", &["g"]), "");
        assert_eq!(rules.len(), 1);
        assert!(err.is_none());
    }

    #[test]
    fn rules_for_reports_incomplete() {
        let mut idx = sample_index();
        idx.upsert_cluster_role(crole(
            "mixed",
            vec![PolicyRule {
                non_resource_urls: strs(&["/metrics"]),
                resource_names: strs(&["n"]),
                ..rule(&[""], &["secrets"], &["get"])
            }],
        ));
        idx.upsert_cluster_role_binding(crb(
            "carol-mixed",
            "mixed",
            vec![subj("User", "carol", None)],
        ));
        let carol = user("carol", &[]);
        let got = idx.rules_for(&carol, "team");
        assert!(got.incomplete);
        assert_eq!(
            got.evaluation_error,
            "[clusterrole.rbac.authorization.k8s.io \"gone\" not found, role.rbac.authorization.k8s.io \"nope\" not found]"
        );
        assert_eq!(
            got.resource_rules,
            vec![PolicyRule {
                resource_names: strs(&["n"]),
                ..rule(&[""], &["secrets"], &["get"])
            }]
        );
        assert_eq!(
            got.non_resource_rules,
            vec![url_rule(&["/metrics"], &["get"])]
        );

        let bob = user("bob", &["system:authenticated"]);
        let got = idx.rules_for(&bob, "team");
        assert!(!got.incomplete);
        assert_eq!(got.evaluation_error, "");
        assert_eq!(
            got.resource_rules,
            vec![rule(&[""], &["configmaps"], &["*"])]
        );
        assert_eq!(
            got.non_resource_rules,
            vec![url_rule(&["/healthz"], &["get"])]
        );
        // cluster scope: no role bindings
        assert!(idx.rules_for(&bob, "").resource_rules.is_empty());
    }

    #[test]
    fn escalation_through_the_index() {
        let idx = sample_index();
        let bob = user("bob", &["a", "b"]);
        assert!(idx
            .confirm_no_escalation(
                &bob,
                "team",
                &[rule(&[""], &["configmaps"], &["get", "delete"])]
            )
            .is_ok());
        assert_eq!(
            idx.confirm_no_escalation(&bob, "team", &[rule(&[""], &["pods"], &["get"])]),
            Err("user \"bob\" (groups=[\"a\" \"b\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"get\"]}".into())
        );
        // outside the namespace bob holds nothing
        assert!(idx
            .confirm_no_escalation(&bob, "", &[rule(&[""], &["configmaps"], &["get"])])
            .is_err());
        let carol = user("carol", &[]);
        assert_eq!(
            idx.confirm_no_escalation(&carol, "", &[url_rule(&["/metrics"], &["get"])]),
            Err("user \"carol\" (groups=[]) is attempting to grant RBAC permissions not currently held:\n{NonResourceURLs:[\"/metrics\"], Verbs:[\"get\"]}; resolution errors: [clusterrole.rbac.authorization.k8s.io \"gone\" not found]".into())
        );
    }

    #[test]
    fn role_reference_errors() {
        let idx = sample_index();
        assert_eq!(
            idx.get_role_reference_rules(&rref("Role", "cm-editor"), "team")
                .map(|r| r.len()),
            Ok(1)
        );
        assert_eq!(
            idx.get_role_reference_rules(&rref("Role", "cm-editor"), "other"),
            Err("role.rbac.authorization.k8s.io \"cm-editor\" not found".into())
        );
        assert_eq!(
            idx.get_role_reference_rules(&rref("Thing", "x"), "team"),
            Err("unsupported role reference kind: \"Thing\"".into())
        );
    }

    #[test]
    fn bind_and_escalate_attributes() {
        let binder = RbacIndex::from_objects(
            vec![
                crole(
                    "binder",
                    vec![PolicyRule {
                        resource_names: strs(&["view"]),
                        ..rule(&["rbac.authorization.k8s.io"], &["clusterroles"], &["bind"])
                    }],
                ),
                crole(
                    "escalator",
                    vec![rule(
                        &["rbac.authorization.k8s.io"],
                        &["roles"],
                        &["escalate"],
                    )],
                ),
            ],
            vec![],
            vec![],
            vec![
                rb(
                    "team",
                    "b",
                    "ClusterRole",
                    "binder",
                    vec![subj("User", "dave", None)],
                ),
                rb(
                    "team",
                    "e",
                    "ClusterRole",
                    "escalator",
                    vec![subj("User", "dave", None)],
                ),
            ],
        );
        let dave = user("dave", &[]);
        let view = bind_attributes(&rref("ClusterRole", "view"), "team").expect("known kind");
        assert_eq!(binder.authorize(&dave, &view), Decision::Allow);
        let admin = bind_attributes(&rref("ClusterRole", "admin"), "team").expect("known kind");
        assert_eq!(binder.authorize(&dave, &admin), Decision::NoOpinion);
        let cluster = bind_attributes(&rref("ClusterRole", "view"), "").expect("known kind");
        assert_eq!(binder.authorize(&dave, &cluster), Decision::NoOpinion);
        assert!(bind_attributes(&rref("Thing", "view"), "team").is_none());
        let esc = escalate_attributes(GROUP_NAME, "roles", "team", "r1");
        assert_eq!(binder.authorize(&dave, &esc), Decision::Allow);
        let esc = escalate_attributes(GROUP_NAME, "clusterroles", "", "r1");
        assert_eq!(binder.authorize(&dave, &esc), Decision::NoOpinion);
        assert!(escalation_allowed(&user("root", &["system:masters"])));
        assert!(!escalation_allowed(&dave));
        assert!(binder
            .confirm_no_escalation(&dave, "", &full_authority())
            .is_err());
        assert_eq!(
            forbidden_message("clusterroles", "agg", AGGREGATION_RULE_FORBIDDEN),
            "clusterroles.rbac.authorization.k8s.io \"agg\" is forbidden: must have cluster-admin privileges to use the aggregationRule"
        );
        assert_eq!(
            aggregate_errors(&["a".into(), "b".into(), "a".into()]),
            "[a, b]"
        );
        assert_eq!(aggregate_errors(&["a".into(), "a".into()]), "a");
    }

    #[test]
    fn shared_index_authorizes_after_writes() {
        let shared = SharedRbacIndex::default();
        let bob = user("bob", &[]);
        let a = res("get", "", "configmaps", "", "team", "x");
        assert_eq!(shared.authorize(&bob, &a), Decision::NoOpinion);
        *shared.write() = sample_index();
        assert_eq!(shared.authorize(&bob, &a), Decision::Allow);
        shared.write().remove_role_binding("team", "bob-cm");
        assert_eq!(shared.clone().authorize(&bob, &a), Decision::NoOpinion);
    }

    /// 1,000 RoleBindings and 200 ClusterRoles; the real figure is a benchmark, this only
    /// guards against an accidental scan of every binding.
    #[test]
    fn authorize_is_fast_at_scale() {
        let mut idx = RbacIndex::new();
        for r in super::bootstrap::cluster_roles() {
            idx.upsert_cluster_role(r);
        }
        for b in super::bootstrap::cluster_role_bindings() {
            idx.upsert_cluster_role_binding(b);
        }
        let resources = [
            "pods",
            "services",
            "configmaps",
            "secrets",
            "deployments",
            "jobs",
        ];
        let mut n_roles = idx.cluster_roles.len();
        let mut i = 0;
        while n_roles < 200 {
            let rules = (0..10)
                .map(|j| {
                    rule(
                        &["", "apps"],
                        &[resources[(i + j) % resources.len()]],
                        &["get", "list"],
                    )
                })
                .collect();
            idx.upsert_cluster_role(crole(&format!("role-{i}"), rules));
            n_roles += 1;
            i += 1;
        }
        for k in 0..1000 {
            let ns = format!("ns-{}", k % 50);
            let subject = if k % 2 == 0 {
                subj("User", &format!("user-{}", k % 100), None)
            } else {
                subj("Group", &format!("group-{}", k % 20), None)
            };
            idx.upsert_role_binding(rb(
                &ns,
                &format!("rb-{k}"),
                "ClusterRole",
                &format!("role-{}", k % 150),
                vec![subject],
            ));
        }
        assert_eq!(idx.cluster_roles.len(), 200);
        assert_eq!(
            idx.role_bindings.values().map(HashMap::len).sum::<usize>(),
            1000
        );

        let u = user("user-4", &["group-3", "group-7", "system:authenticated"]);
        let allowed = res("get", "apps", "deployments", "", "ns-4", "d");
        let denied = res("delete", "", "nodes", "", "ns-4", "n");
        assert_eq!(idx.authorize(&u, &denied), Decision::NoOpinion);
        let n = 10_000;
        let start = Instant::now();
        for k in 0..n {
            let a = if k % 2 == 0 { &allowed } else { &denied };
            std::hint::black_box(idx.authorize(&u, a));
        }
        let avg = start.elapsed() / n;
        eprintln!("authorize average: {avg:?}");
        assert!(avg.as_micros() < 1000, "average {avg:?}");
    }
}
