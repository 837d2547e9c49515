//! Bootstrap-policy reconciliation at start (upstream pkg/registry/rbac/reconciliation, union
//! mode as the apiserver's post-start hook runs it): missing rules, aggregation selectors,
//! labels, annotations and subjects are added to existing objects; nothing is removed except an
//! aggregationRule the wanted role no longer has. Objects annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "false"` are left alone.
//!
//! Each function returns the object to write, or None when nothing needs writing. For
//! bindings whose roleRef differs from the wanted one (roleRef is immutable) the wanted binding
//! is returned as is: the caller must delete the existing binding and create it
//! ([`binding_needs_recreate`] tells which case applies).

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::escalation::covers;
use super::AUTO_UPDATE_ANNOTATION;

fn protected(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(AUTO_UPDATE_ANNOTATION))
        .is_some_and(|v| v == "false")
}

/// `merge(expected, existing)`: union of two maps, the existing values winning; None only if
/// both are None.
fn merge(
    expected: &Option<BTreeMap<String, String>>,
    existing: &Option<BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    if expected.is_none() && existing.is_none() {
        return None;
    }
    let mut out = expected.clone().unwrap_or_default();
    out.extend(existing.clone().unwrap_or_default());
    Some(out)
}

/// Merges the wanted labels and annotations into `result`; true when they changed.
fn merge_meta(result: &mut ObjectMeta, wanted: &ObjectMeta) -> bool {
    let annotations = merge(&wanted.annotations, &result.annotations);
    let labels = merge(&wanted.labels, &result.labels);
    let changed = annotations != result.annotations || labels != result.labels;
    result.annotations = annotations;
    result.labels = labels;
    changed
}

/// Appends the rules of `wanted` the existing ones do not cover (broken down, as upstream);
/// true when some were missing.
fn add_missing_rules(rules: &mut Option<Vec<PolicyRule>>, wanted: &[PolicyRule]) -> bool {
    let (_, missing) = covers(rules.as_deref().unwrap_or(&[]), wanted);
    if missing.is_empty() {
        return false;
    }
    rules.get_or_insert_with(Vec::new).extend(missing);
    true
}

fn opt_list<T>(v: &Option<Vec<T>>) -> &[T] {
    v.as_deref().unwrap_or(&[])
}

/// `equality.Semantic.DeepEqual` on label selectors (absent lists and maps equal empty ones).
fn selectors_equal(a: &LabelSelector, b: &LabelSelector) -> bool {
    let empty = BTreeMap::new();
    a.match_labels.as_ref().unwrap_or(&empty) == b.match_labels.as_ref().unwrap_or(&empty)
        && opt_list(&a.match_expressions).len() == opt_list(&b.match_expressions).len()
        && opt_list(&a.match_expressions)
            .iter()
            .zip(opt_list(&b.match_expressions))
            .all(|(x, y)| {
                x.key == y.key
                    && x.operator == y.operator
                    && opt_list(&x.values) == opt_list(&y.values)
            })
}

/// `aggregationRuleCovers`: the wanted selectors the existing rule lacks.
fn missing_selectors(
    existing: Option<&AggregationRule>,
    wanted: Option<&AggregationRule>,
) -> Vec<LabelSelector> {
    let Some(wanted) = wanted else {
        return Vec::new();
    };
    let have = existing
        .map(|e| opt_list(&e.cluster_role_selectors))
        .unwrap_or(&[]);
    opt_list(&wanted.cluster_role_selectors)
        .iter()
        .filter(|w| !have.iter().any(|h| selectors_equal(h, w)))
        .cloned()
        .collect()
}

/// The ClusterRole to write so `existing` holds at least what `wanted` grants: missing rules
/// added (an aggregated role keeps its aggregated rules), missing aggregation selectors added,
/// an aggregationRule removed when `wanted` has none, labels and annotations merged. None when
/// nothing changes or the existing role opted out with autoupdate `"false"`.
pub fn reconcile_cluster_role(
    existing: Option<&ClusterRole>,
    wanted: &ClusterRole,
) -> Option<ClusterRole> {
    let Some(existing) = existing else {
        return Some(wanted.clone());
    };
    if protected(&existing.metadata) {
        return None;
    }
    let mut result = existing.clone();
    let mut changed = merge_meta(&mut result.metadata, &wanted.metadata);
    changed |= add_missing_rules(&mut result.rules, opt_list(&wanted.rules));

    let missing = missing_selectors(
        existing.aggregation_rule.as_ref(),
        wanted.aggregation_rule.as_ref(),
    );
    if wanted.aggregation_rule.is_none() && existing.aggregation_rule.is_some() {
        // not expected to be aggregated at all: drop the existing aggregation
        result.aggregation_rule = None;
        changed = true;
    } else if !missing.is_empty() {
        result
            .aggregation_rule
            .get_or_insert_with(AggregationRule::default)
            .cluster_role_selectors
            .get_or_insert_with(Vec::new)
            .extend(missing);
        changed = true;
    }
    changed.then_some(result)
}

/// The Role to write (missing rules, labels and annotations added), as
/// [`reconcile_cluster_role`].
pub fn reconcile_role(existing: Option<&Role>, wanted: &Role) -> Option<Role> {
    let Some(existing) = existing else {
        return Some(wanted.clone());
    };
    if protected(&existing.metadata) {
        return None;
    }
    let mut result = existing.clone();
    let mut changed = merge_meta(&mut result.metadata, &wanted.metadata);
    changed |= add_missing_rules(&mut result.rules, opt_list(&wanted.rules));
    changed.then_some(result)
}

/// Subject equality with absent apiGroup/namespace equal to empty ones.
fn subjects_equal(a: &Subject, b: &Subject) -> bool {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    a.kind == b.kind
        && a.name == b.name
        && s(&a.api_group) == s(&b.api_group)
        && s(&a.namespace) == s(&b.namespace)
}

/// Appends the wanted subjects the existing list lacks (each once); true when some did.
fn add_missing_subjects(subjects: &mut Option<Vec<Subject>>, wanted: &[Subject]) -> bool {
    let mut missing: Vec<Subject> = Vec::new();
    for w in wanted {
        let present = opt_list(subjects).iter().any(|e| subjects_equal(e, w));
        if !present && !missing.iter().any(|m| subjects_equal(m, w)) {
            missing.push(w.clone());
        }
    }
    if missing.is_empty() {
        return false;
    }
    subjects.get_or_insert_with(Vec::new).extend(missing);
    true
}

/// Whether reconciling `existing` towards `wanted` means delete-and-create (roleRef differs).
pub fn binding_needs_recreate(
    existing: &k8s_openapi::api::rbac::v1::RoleRef,
    wanted: &k8s_openapi::api::rbac::v1::RoleRef,
) -> bool {
    existing != wanted
}

/// The ClusterRoleBinding to write: the wanted one when missing or when its roleRef differs
/// (delete the existing one first), else the existing one with missing subjects, labels and
/// annotations added. None when nothing changes or autoupdate is `"false"`.
pub fn reconcile_cluster_role_binding(
    existing: Option<&ClusterRoleBinding>,
    wanted: &ClusterRoleBinding,
) -> Option<ClusterRoleBinding> {
    let Some(existing) = existing else {
        return Some(wanted.clone());
    };
    if protected(&existing.metadata) {
        return None;
    }
    if binding_needs_recreate(&existing.role_ref, &wanted.role_ref) {
        return Some(wanted.clone());
    }
    let mut result = existing.clone();
    let mut changed = merge_meta(&mut result.metadata, &wanted.metadata);
    changed |= add_missing_subjects(&mut result.subjects, opt_list(&wanted.subjects));
    changed.then_some(result)
}

/// The RoleBinding to write, as [`reconcile_cluster_role_binding`].
pub fn reconcile_role_binding(
    existing: Option<&RoleBinding>,
    wanted: &RoleBinding,
) -> Option<RoleBinding> {
    let Some(existing) = existing else {
        return Some(wanted.clone());
    };
    if protected(&existing.metadata) {
        return None;
    }
    if binding_needs_recreate(&existing.role_ref, &wanted.role_ref) {
        return Some(wanted.clone());
    }
    let mut result = existing.clone();
    let mut changed = merge_meta(&mut result.metadata, &wanted.metadata);
    changed |= add_missing_subjects(&mut result.subjects, opt_list(&wanted.subjects));
    changed.then_some(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::RoleRef;

    fn map(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn rule(res: &str, verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec![res.into()]),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn meta(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some("r".into()),
            labels: map(labels),
            annotations: map(annotations),
            resource_version: Some("7".into()),
            ..Default::default()
        }
    }

    fn selector(key: &str) -> LabelSelector {
        LabelSelector {
            match_labels: map(&[(key, "true")]),
            match_expressions: None,
        }
    }

    fn crole(
        m: ObjectMeta,
        rules: Vec<PolicyRule>,
        selectors: Option<Vec<LabelSelector>>,
    ) -> ClusterRole {
        ClusterRole {
            metadata: m,
            rules: Some(rules),
            aggregation_rule: selectors.map(|s| AggregationRule {
                cluster_role_selectors: Some(s),
            }),
        }
    }

    const AUTO: (&str, &str) = (AUTO_UPDATE_ANNOTATION, "true");

    #[test]
    fn roles_gain_missing_rules_and_metadata() {
        let wanted = crole(
            meta(&[("a", "1")], &[AUTO]),
            vec![rule("pods", &["get", "list"])],
            None,
        );
        let existing = crole(
            meta(&[("a", "mine"), ("b", "2")], &[]),
            vec![rule("pods", &["get"]), rule("x", &["*"])],
            None,
        );
        let got = reconcile_cluster_role(Some(&existing), &wanted).expect("update needed");
        // existing label values win, missing ones are added
        assert_eq!(got.metadata.labels, map(&[("a", "mine"), ("b", "2")]));
        assert_eq!(got.metadata.annotations, map(&[AUTO]));
        assert_eq!(got.metadata.resource_version.as_deref(), Some("7"));
        // union: extra rules kept, missing ones appended broken down
        assert_eq!(
            got.rules,
            Some(vec![
                rule("pods", &["get"]),
                rule("x", &["*"]),
                rule("pods", &["list"])
            ])
        );
        assert!(reconcile_cluster_role(Some(&got), &wanted).is_none());

        // only metadata missing
        let existing = crole(meta(&[("a", "1")], &[]), vec![rule("pods", &["*"])], None);
        let got = reconcile_cluster_role(Some(&existing), &wanted).expect("annotation missing");
        assert_eq!(got.rules, existing.rules);
    }

    #[test]
    fn autoupdate_false_is_left_alone() {
        let wanted = crole(meta(&[], &[AUTO]), vec![rule("pods", &["get"])], None);
        let existing = crole(
            meta(&[], &[(AUTO_UPDATE_ANNOTATION, "false")]),
            vec![],
            None,
        );
        assert!(reconcile_cluster_role(Some(&existing), &wanted).is_none());
        let role = Role {
            metadata: existing.metadata.clone(),
            rules: None,
        };
        let wanted_role = Role {
            metadata: wanted.metadata.clone(),
            rules: wanted.rules.clone(),
        };
        assert!(reconcile_role(Some(&role), &wanted_role).is_none());
        let role = Role {
            metadata: meta(&[], &[AUTO]),
            rules: None,
        };
        assert_eq!(
            reconcile_role(Some(&role), &wanted_role).and_then(|r| r.rules),
            Some(vec![rule("pods", &["get"])])
        );
    }

    #[test]
    fn aggregation_rules_merge() {
        let wanted = crole(
            meta(&[], &[AUTO]),
            vec![],
            Some(vec![selector("a"), selector("b")]),
        );
        // aggregated rules of the existing role are kept; the missing selector is added
        let existing = crole(
            meta(&[], &[AUTO]),
            vec![rule("pods", &["get"])],
            Some(vec![selector("a"), selector("mine")]),
        );
        let got = reconcile_cluster_role(Some(&existing), &wanted).expect("selector missing");
        assert_eq!(got.rules, existing.rules);
        assert_eq!(
            got.aggregation_rule.and_then(|a| a.cluster_role_selectors),
            Some(vec![selector("a"), selector("mine"), selector("b")])
        );
        // existing not aggregated yet
        let plain = crole(meta(&[], &[AUTO]), vec![], None);
        let got = reconcile_cluster_role(Some(&plain), &wanted).expect("aggregation missing");
        assert_eq!(
            got.aggregation_rule.and_then(|a| a.cluster_role_selectors),
            Some(vec![selector("a"), selector("b")])
        );
        // aggregation no longer wanted
        let unwanted = crole(meta(&[], &[AUTO]), vec![rule("pods", &["get"])], None);
        let got = reconcile_cluster_role(Some(&existing), &unwanted).expect("aggregation dropped");
        assert!(got.aggregation_rule.is_none());
        // absent vs empty matchExpressions are equal
        let mut same = existing.clone();
        for s in same
            .aggregation_rule
            .iter_mut()
            .flat_map(|a| a.cluster_role_selectors.iter_mut().flatten())
        {
            s.match_expressions = Some(vec![]);
        }
        assert!(reconcile_cluster_role(Some(&same), &existing).is_none());
    }

    fn subject(kind: &str, name: &str) -> Subject {
        Subject {
            api_group: (kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".into()),
            kind: kind.into(),
            name: name.into(),
            namespace: (kind == "ServiceAccount").then(|| "kube-system".into()),
        }
    }

    fn binding(
        role: &str,
        subjects: Vec<Subject>,
        annotations: &[(&str, &str)],
    ) -> ClusterRoleBinding {
        ClusterRoleBinding {
            metadata: meta(&[], annotations),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: role.into(),
            },
            subjects: Some(subjects),
        }
    }

    #[test]
    fn bindings_gain_subjects_or_are_recreated() {
        let wanted = binding(
            "r",
            vec![subject("User", "u"), subject("ServiceAccount", "sa")],
            &[AUTO],
        );
        let existing = binding(
            "r",
            vec![subject("Group", "g"), subject("User", "u")],
            &[AUTO],
        );
        let got =
            reconcile_cluster_role_binding(Some(&existing), &wanted).expect("subject missing");
        assert_eq!(
            got.subjects,
            Some(vec![
                subject("Group", "g"),
                subject("User", "u"),
                subject("ServiceAccount", "sa")
            ])
        );
        assert_eq!(got.metadata.resource_version.as_deref(), Some("7"));
        assert!(reconcile_cluster_role_binding(Some(&got), &wanted).is_none());
        // an SA subject stored with an explicit empty apiGroup is the same subject
        let mut stored = got.clone();
        for s in stored.subjects.iter_mut().flatten() {
            if s.kind == "ServiceAccount" {
                s.api_group = Some(String::new());
            }
        }
        assert!(reconcile_cluster_role_binding(Some(&stored), &wanted).is_none());

        let other_role = binding("other", vec![subject("User", "u")], &[AUTO]);
        assert!(binding_needs_recreate(
            &other_role.role_ref,
            &wanted.role_ref
        ));
        assert_eq!(
            reconcile_cluster_role_binding(Some(&other_role), &wanted),
            Some(wanted.clone())
        );
        let protected = binding("other", vec![], &[(AUTO_UPDATE_ANNOTATION, "false")]);
        assert!(reconcile_cluster_role_binding(Some(&protected), &wanted).is_none());
        assert_eq!(
            reconcile_cluster_role_binding(None, &wanted),
            Some(wanted.clone())
        );

        let rb = |b: &ClusterRoleBinding| RoleBinding {
            metadata: b.metadata.clone(),
            role_ref: b.role_ref.clone(),
            subjects: b.subjects.clone(),
        };
        assert_eq!(
            reconcile_role_binding(Some(&rb(&existing)), &rb(&wanted)).and_then(|b| b.subjects),
            Some(vec![
                subject("Group", "g"),
                subject("User", "u"),
                subject("ServiceAccount", "sa")
            ])
        );
        assert!(reconcile_role_binding(Some(&rb(&wanted)), &rb(&wanted)).is_none());
    }
}
