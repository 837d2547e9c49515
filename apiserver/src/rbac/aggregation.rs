//! ClusterRole aggregation (upstream pkg/controller/clusterroleaggregation): a ClusterRole with
//! an aggregationRule gets the union of the rules of the ClusterRoles its
//! clusterRoleSelectors match, plus label selector matching (`LabelSelectorAsSelector`).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

/// `equality.Semantic.DeepEqual` on rules: an absent list equals an empty one.
pub fn rules_equal(a: &PolicyRule, b: &PolicyRule) -> bool {
    a.verbs == b.verbs
        && list(&a.api_groups) == list(&b.api_groups)
        && list(&a.resources) == list(&b.resources)
        && list(&a.resource_names) == list(&b.resource_names)
        && list(&a.non_resource_urls) == list(&b.non_resource_urls)
}

fn rule_lists_equal(a: &[PolicyRule], b: &[PolicyRule]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| rules_equal(x, y))
}

/// Whether a label selector matches a set of labels, with upstream semantics (the API
/// server's own selector parser and matcher, `crate::selector`). Err for an invalid
/// selector (unknown operator, `In`/`NotIn` without values, `Exists`/`DoesNotExist` with
/// values, invalid keys or values).
pub fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    let json = serde_json::to_value(selector).map_err(|e| e.to_string())?;
    let parsed = crate::selector::LabelSelector::from_json(&json).map_err(|e| e.to_string())?;
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    Ok(parsed.matches(&labels))
}

fn name(r: &ClusterRole) -> &str {
    r.metadata.name.as_deref().unwrap_or("")
}

/// The rules one aggregated role should have given the current rules of all roles, or None
/// when it has no aggregationRule or a selector is invalid (upstream leaves it unchanged).
fn aggregated_rules(
    role: &ClusterRole,
    all: &[&ClusterRole],
    current: &HashMap<String, Vec<PolicyRule>>,
) -> Option<Vec<PolicyRule>> {
    let agg = role.aggregation_rule.as_ref()?;
    let empty = BTreeMap::new();
    let mut out: Vec<PolicyRule> = Vec::new();
    for selector in agg.cluster_role_selectors.iter().flatten() {
        // `all` is sorted by name, as the controller sorts each selector's matches
        for other in all {
            if name(other) == name(role) {
                continue;
            }
            let labels = other.metadata.labels.as_ref().unwrap_or(&empty);
            if !selector_matches(selector, labels).ok()? {
                continue;
            }
            for r in current.get(name(other)).into_iter().flatten() {
                if !out.iter().any(|x| rules_equal(x, r)) {
                    out.push(r.clone());
                }
            }
        }
    }
    Some(out)
}

/// For each ClusterRole with an aggregationRule, the rules it should have: for each selector
/// in order, the rules of the ClusterRoles it matches (by name, skipping the role itself) not
/// already gathered. Aggregated roles that are themselves aggregated (edit into admin) are
/// resolved to a fixed point, as the controller converges to. Returned only for roles whose
/// rules differ from their current ones, in input order.
pub fn aggregate(cluster_roles: &[ClusterRole]) -> Vec<(String, Vec<PolicyRule>)> {
    let mut sorted: Vec<&ClusterRole> = cluster_roles.iter().collect();
    sorted.sort_by(|a, b| name(a).cmp(name(b)));
    let mut current: HashMap<String, Vec<PolicyRule>> = cluster_roles
        .iter()
        .map(|r| (name(r).to_string(), r.rules.clone().unwrap_or_default()))
        .collect();
    let aggregated: Vec<&ClusterRole> = sorted
        .iter()
        .copied()
        .filter(|r| r.aggregation_rule.is_some())
        .collect();
    // each pass settles at least one more level of nesting; bound for cyclic selections
    for _ in 0..=aggregated.len() {
        let mut changed = false;
        for role in &aggregated {
            let Some(rules) = aggregated_rules(role, &sorted, &current) else {
                continue;
            };
            let slot = current.entry(name(role).to_string()).or_default();
            if !rule_lists_equal(slot, &rules) {
                *slot = rules;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    cluster_roles
        .iter()
        .filter(|r| r.aggregation_rule.is_some())
        .filter_map(|r| {
            let now = current.get(name(r))?;
            let before = r.rules.as_deref().unwrap_or(&[]);
            (!rule_lists_equal(before, now)).then(|| (name(r).to_string(), now.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::AggregationRule;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, ObjectMeta};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn rule(res: &str, verb: &str) -> PolicyRule {
        PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec![res.into()]),
            verbs: vec![verb.into()],
            ..Default::default()
        }
    }

    fn role(
        name: &str,
        l: &[(&str, &str)],
        rules: Vec<PolicyRule>,
        sel: Option<&str>,
    ) -> ClusterRole {
        ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels(l)),
                ..Default::default()
            },
            rules: (!rules.is_empty()).then_some(rules),
            aggregation_rule: sel.map(|s| AggregationRule {
                cluster_role_selectors: Some(vec![LabelSelector {
                    match_labels: Some(labels(&[(s, "true")])),
                    ..Default::default()
                }]),
            }),
        }
    }

    #[test]
    fn selector_semantics() {
        let l = labels(&[("a", "1"), ("b", "2")]);
        let sel = |ml: &[(&str, &str)], ex: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: (!ml.is_empty()).then(|| labels(ml)),
            match_expressions: (!ex.is_empty()).then_some(ex),
        };
        assert_eq!(selector_matches(&sel(&[], vec![]), &l), Ok(true));
        assert_eq!(selector_matches(&sel(&[("a", "1")], vec![]), &l), Ok(true));
        assert_eq!(selector_matches(&sel(&[("a", "2")], vec![]), &l), Ok(false));
        assert_eq!(
            selector_matches(&sel(&[], vec![expr("a", "In", &["1", "3"])]), &l),
            Ok(true)
        );
        assert_eq!(
            selector_matches(&sel(&[], vec![expr("c", "In", &["1"])]), &l),
            Ok(false)
        );
        assert_eq!(
            selector_matches(&sel(&[], vec![expr("c", "NotIn", &["1"])]), &l),
            Ok(true)
        );
        assert_eq!(
            selector_matches(&sel(&[], vec![expr("a", "NotIn", &["1"])]), &l),
            Ok(false)
        );
        assert_eq!(
            selector_matches(&sel(&[], vec![expr("b", "Exists", &[])]), &l),
            Ok(true)
        );
        assert_eq!(
            selector_matches(&sel(&[], vec![expr("b", "DoesNotExist", &[])]), &l),
            Ok(false)
        );
        assert_eq!(
            selector_matches(&sel(&[], vec![expr("z", "DoesNotExist", &[])]), &l),
            Ok(true)
        );
        assert!(selector_matches(&sel(&[], vec![expr("a", "In", &[])]), &l).is_err());
        assert!(selector_matches(&sel(&[], vec![expr("a", "Exists", &["1"])]), &l).is_err());
        assert!(selector_matches(&sel(&[], vec![expr("a", "Gt", &["1"])]), &l).is_err());
    }

    #[test]
    fn aggregates_in_name_order_dedups_and_nests() {
        let roles = vec![
            role("top", &[], vec![], Some("to-top")),
            role("mid", &[("to-top", "true")], vec![], Some("to-mid")),
            role(
                "b-leaf",
                &[("to-mid", "true")],
                vec![rule("pods", "get"), rule("pods", "list")],
                None,
            ),
            role(
                "a-leaf",
                &[("to-mid", "true")],
                vec![rule("pods", "get"), rule("secrets", "get")],
                None,
            ),
            role(
                "c-other",
                &[("to-top", "true")],
                vec![rule("nodes", "get")],
                None,
            ),
            role("unlabelled", &[], vec![rule("x", "get")], None),
        ];
        let out = aggregate(&roles);
        let by: HashMap<_, _> = out.into_iter().collect();
        assert_eq!(
            by["mid"],
            vec![
                rule("pods", "get"),
                rule("secrets", "get"),
                rule("pods", "list")
            ]
        );
        // top: c-other then mid (sorted by name), mid's aggregated rules resolved
        assert_eq!(
            by["top"],
            vec![
                rule("nodes", "get"),
                rule("pods", "get"),
                rule("secrets", "get"),
                rule("pods", "list")
            ]
        );

        // already aggregated → nothing to do
        let mut settled = roles.clone();
        for r in &mut settled {
            if let Some(rules) = by.get(name(r)) {
                r.rules = Some(rules.clone());
            }
        }
        assert!(aggregate(&settled).is_empty());
    }

    #[test]
    fn invalid_selector_leaves_role_alone() {
        let mut bad = role("bad", &[], vec![rule("pods", "get")], Some("x"));
        bad.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_expressions: Some(vec![expr("x", "Bogus", &[])]),
                ..Default::default()
            }]),
        });
        let roles = vec![
            bad,
            role("src", &[("x", "true")], vec![rule("a", "get")], None),
        ];
        assert!(aggregate(&roles).is_empty());
    }
}
