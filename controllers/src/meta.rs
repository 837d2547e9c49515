//! Object-metadata helpers every controller shares: label selectors (upstream's
//! `metav1.LabelSelectorAsSelector`), controller references (`metav1.GetControllerOf`,
//! `metav1.NewControllerRef`, `metav1.IsControlledBy`) and cache keys.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

/// Whether `labels` satisfy `sel` (an empty selector matches everything).
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &sel.match_labels {
        if ml.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return false;
        }
    }
    sel.match_expressions.iter().flatten().all(|req| {
        let values = req.values.as_deref().unwrap_or_default();
        let got = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => got.is_some_and(|v| values.contains(v)),
            "NotIn" => got.is_none_or(|v| !values.contains(v)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        }
    })
}

/// As [`selector_matches`], where a missing selector matches nothing (policy/v1 PDBs, and
/// the workload APIs whose selector is optional).
pub fn selector_matches_opt(
    sel: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    sel.is_some_and(|s| selector_matches(s, labels))
}

/// Whether a selector selects everything (no requirements at all).
pub fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty())
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta` is controlled by the object with this uid.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// A controller reference (controller and blockOwnerDeletion true) pointing at `owner`.
pub fn new_controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `namespace/name` of an object's metadata.
pub fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// `namespace/name` of an object.
pub fn key<K: Resource>(obj: &K) -> String {
    key_of(obj.meta())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_matching() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert!(selector_matches(
            &sel,
            &labels(&[("app", "web"), ("tier", "a")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("app", "web"), ("tier", "c")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("app", "web"), ("tier", "a"), ("canary", "1")])
        ));
        assert!(!selector_matches(&sel, &labels(&[("tier", "a")])));
        assert!(selector_matches(&LabelSelector::default(), &labels(&[])));
        assert!(selector_is_empty(&LabelSelector::default()));
        assert!(!selector_is_empty(&sel));
    }

    #[test]
    fn optional_selectors() {
        let l = labels(&[("app", "web"), ("tier", "fe")]);
        assert!(!selector_matches_opt(None, &l));
        assert!(selector_matches_opt(Some(&LabelSelector::default()), &l));
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "Exists".into(),
                values: None,
            }]),
        };
        assert!(selector_matches_opt(Some(&sel), &l));
        assert!(!selector_matches_opt(
            Some(&sel),
            &labels(&[("app", "web")])
        ));
    }

    #[test]
    fn controller_refs() {
        let mut m = ObjectMeta::default();
        assert!(controller_of(&m).is_none());
        m.owner_references = Some(vec![
            OwnerReference {
                uid: "a".into(),
                ..Default::default()
            },
            OwnerReference {
                uid: "b".into(),
                controller: Some(true),
                ..Default::default()
            },
        ]);
        assert_eq!(controller_of(&m).map(|r| r.uid.as_str()), Some("b"));
        assert!(is_controlled_by(&m, "b"));
        assert!(!is_controlled_by(&m, "a"));
    }
}
