//! Escalation prevention helpers: upstream `Covers`/`BreakdownRule`
//! (component-helpers/auth/rbac/validation/policy_comparator.go), `CompactRules`
//! (pkg/registry/rbac/validation/policy_compact.go), `CompactString`
//! (pkg/apis/rbac/v1/evaluation_helpers.go) and the ConfirmNoEscalation message, with Go's
//! `%q` quoting so the texts match upstream byte for byte.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::auth::UserInfo;

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

fn one(s: &str) -> Option<Vec<String>> {
    Some(vec![s.to_string()])
}

/// Go's `%q` (strconv.Quote) of a string.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let v = c as u32;
                if v <= 0xffff {
                    out.push_str(&format!("\\u{v:04x}"));
                } else {
                    out.push_str(&format!("\\U{v:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// `CompactString`: `{APIGroups:["apps"], Resources:["pods"], NonResourceURLs:[...],
/// ResourceNames:[...], Verbs:["get"]}`, each part only when non-empty.
pub fn compact_string(r: &PolicyRule) -> String {
    let mut parts = Vec::new();
    for (label, values) in [
        ("APIGroups", list(&r.api_groups)),
        ("Resources", list(&r.resources)),
        ("NonResourceURLs", list(&r.non_resource_urls)),
        ("ResourceNames", list(&r.resource_names)),
        ("Verbs", r.verbs.as_slice()),
    ] {
        if !values.is_empty() {
            parts.push(format!("{label}:{}", go_quote_list(values)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// `BreakdownRule`: the rule as rules of one group, resource, verb and resource name each
/// (and one nonResourceURL and verb each).
pub fn breakdown_rule(rule: &PolicyRule) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for group in list(&rule.api_groups) {
        for resource in list(&rule.resources) {
            for verb in &rule.verbs {
                let names = list(&rule.resource_names);
                if names.is_empty() {
                    out.push(PolicyRule {
                        api_groups: one(group),
                        resources: one(resource),
                        verbs: vec![verb.clone()],
                        ..Default::default()
                    });
                } else {
                    for name in names {
                        out.push(PolicyRule {
                            api_groups: one(group),
                            resources: one(resource),
                            verbs: vec![verb.clone()],
                            resource_names: one(name),
                            ..Default::default()
                        });
                    }
                }
            }
        }
    }
    for url in list(&rule.non_resource_urls) {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                non_resource_urls: one(url),
                verbs: vec![verb.clone()],
                ..Default::default()
            });
        }
    }
    out
}

fn has(set: &[String], s: &str) -> bool {
    set.iter().any(|x| x == s)
}

fn has_all(set: &[String], contains: &[String]) -> bool {
    contains.iter().all(|c| has(set, c))
}

fn resource_covers_all(set: &[String], covers: &[String]) -> bool {
    if has(set, "*") || has_all(set, covers) {
        return true;
    }
    covers.iter().all(|path| {
        if has(set, path) {
            return true;
        }
        match path.split_once('/') {
            Some((_, sub)) => has(set, &format!("*/{sub}")),
            None => false,
        }
    })
}

fn non_resource_url_covers(owner: &str, sub: &str) -> bool {
    owner == sub || (owner.ends_with('*') && sub.starts_with(owner.trim_end_matches('*')))
}

fn non_resource_urls_cover_all(set: &[String], covers: &[String]) -> bool {
    covers
        .iter()
        .all(|p| set.iter().any(|o| non_resource_url_covers(o, p)))
}

/// `ruleCovers`: whether an owner rule covers a broken-down rule.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = has(list(&owner.api_groups), "*")
        || has_all(list(&owner.api_groups), list(&sub.api_groups));
    let resources = resource_covers_all(list(&owner.resources), list(&sub.resources));
    let urls =
        non_resource_urls_cover_all(list(&owner.non_resource_urls), list(&sub.non_resource_urls));
    let owner_names = list(&owner.resource_names);
    let sub_names = list(&sub.resource_names);
    let names = if sub_names.is_empty() {
        owner_names.is_empty()
    } else {
        owner_names.is_empty() || has_all(owner_names, sub_names)
    };
    verbs && groups && resources && names && urls
}

/// `Covers`: whether the owner rules cover the servant rules, and the broken-down servant
/// rules they do not cover.
pub fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let uncovered: Vec<PolicyRule> = servant
        .iter()
        .flat_map(breakdown_rule)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect();
    (uncovered.is_empty(), uncovered)
}

/// `isSimpleResourceRule`: one group, one resource, no names, no URLs.
fn simple_key(r: &PolicyRule) -> Option<(String, String)> {
    if !list(&r.resource_names).is_empty() || !list(&r.non_resource_urls).is_empty() {
        return None;
    }
    match (list(&r.api_groups), list(&r.resources)) {
        ([g], [res]) => Some((g.clone(), res.clone())),
        _ => None,
    }
}

/// `CompactRules`: merges rules of one group and resource that differ only by verb.
pub fn compact_rules(rules: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut compacted = Vec::new();
    let mut simple: HashMap<(String, String), usize> = HashMap::new();
    let mut simple_rules: Vec<PolicyRule> = Vec::new();
    for r in rules {
        match simple_key(r) {
            Some(key) => match simple.get(&key) {
                Some(&i) => simple_rules[i].verbs.extend(r.verbs.iter().cloned()),
                None => {
                    simple.insert(key, simple_rules.len());
                    simple_rules.push(r.clone());
                }
            },
            None => compacted.push(r.clone()),
        }
    }
    compacted.extend(simple_rules);
    compacted
}

/// The ConfirmNoEscalation check against already-resolved owner rules: Ok when they cover
/// `requested`, else upstream's message (missing rules compacted, described with
/// [`compact_string`], sorted and deduplicated, one per line, then the resolution error).
pub fn confirm_covered(
    user: &UserInfo,
    owner_rules: &[PolicyRule],
    resolution_error: Option<&str>,
    requested: &[PolicyRule],
) -> Result<(), String> {
    let (ok, missing) = covers(owner_rules, requested);
    if ok {
        return Ok(());
    }
    let descriptions: BTreeSet<String> =
        compact_rules(&missing).iter().map(compact_string).collect();
    let mut msg = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        go_quote(&user.name),
        go_quote_list(&user.groups),
        descriptions.into_iter().collect::<Vec<_>>().join("\n")
    );
    if let Some(e) = resolution_error {
        msg.push_str(&format!("; resolution errors: [{e}]"));
    }
    Err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
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

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(go_quote("\u{1}"), r#""\x01""#);
        assert_eq!(go_quote("é"), "\"é\"");
        assert_eq!(go_quote_list(&[]), "[]");
        assert_eq!(go_quote_list(&["a".into(), "".into()]), r#"["a" ""]"#);
    }

    #[test]
    fn compact_string_formats() {
        assert_eq!(
            compact_string(&rule(&[""], &["pods"], &["get"])),
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["get"]}"#
        );
        let r = PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["configmaps".into()]),
            resource_names: Some(vec!["x".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        };
        assert_eq!(
            compact_string(&r),
            r#"{APIGroups:[""], Resources:["configmaps"], ResourceNames:["x"], Verbs:["get"]}"#
        );
        let u = PolicyRule {
            non_resource_urls: Some(vec!["/healthz".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        };
        assert_eq!(
            compact_string(&u),
            r#"{NonResourceURLs:["/healthz"], Verbs:["get"]}"#
        );
    }

    #[test]
    fn breakdown_and_covers() {
        let r = rule(&["", "apps"], &["pods"], &["get", "list"]);
        assert_eq!(breakdown_rule(&r).len(), 4);
        // rule with resources but no groups yields nothing, as upstream
        assert!(breakdown_rule(&rule(&[], &["pods"], &["get"])).is_empty());

        let owner = vec![rule(&[""], &["pods", "*/scale"], &["get"])];
        assert!(covers(&owner, &[rule(&[""], &["pods"], &["get"])]).0);
        assert!(covers(&owner, &[rule(&[""], &["deployments/scale"], &["get"])]).0);
        let (ok, missing) = covers(&owner, &[rule(&[""], &["pods"], &["get", "delete"])]);
        assert!(!ok);
        assert_eq!(missing, vec![rule(&[""], &["pods"], &["delete"])]);

        // resourceNames: an owner restricted to names does not cover an unrestricted rule
        let named = PolicyRule {
            resource_names: Some(vec!["a".into()]),
            ..rule(&[""], &["secrets"], &["get"])
        };
        assert!(
            !covers(
                std::slice::from_ref(&named),
                &[rule(&[""], &["secrets"], &["get"])]
            )
            .0
        );
        assert!(
            covers(
                &[rule(&[""], &["secrets"], &["get"])],
                std::slice::from_ref(&named)
            )
            .0
        );
        assert!(covers(std::slice::from_ref(&named), std::slice::from_ref(&named)).0);

        // nonResourceURL prefixes
        let urls = PolicyRule {
            non_resource_urls: Some(vec!["/apis/*".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        };
        let want = PolicyRule {
            non_resource_urls: Some(vec!["/apis/apps".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        };
        assert!(covers(&[urls], &[want]).0);
    }

    #[test]
    fn compaction_merges_verbs() {
        let missing = vec![
            rule(&[""], &["pods"], &["get"]),
            rule(&["apps"], &["deployments"], &["get"]),
            rule(&[""], &["pods"], &["list"]),
        ];
        let c = compact_rules(&missing);
        assert_eq!(c.len(), 2);
        assert!(c.contains(&rule(&[""], &["pods"], &["get", "list"])));
    }

    #[test]
    fn escalation_message_matches_upstream() {
        let bob = user("bob", &["a", "b"]);
        let err = confirm_covered(&bob, &[], None, &[rule(&[""], &["pods"], &["get"])])
            .expect_err("must escalate");
        assert_eq!(
            err,
            "user \"bob\" (groups=[\"a\" \"b\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"get\"]}"
        );
        let err = confirm_covered(
            &user("bob", &[]),
            &[rule(&[""], &["pods"], &["get"])],
            Some("clusterrole.rbac.authorization.k8s.io \"gone\" not found"),
            &[
                rule(&["apps"], &["deployments"], &["get", "list"]),
                rule(&[""], &["pods"], &["get", "delete"]),
            ],
        )
        .expect_err("must escalate");
        assert_eq!(
            err,
            "user \"bob\" (groups=[]) is attempting to grant RBAC permissions not currently held:\n\
             {APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}\n\
             {APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"get\" \"list\"]}\
             ; resolution errors: [clusterrole.rbac.authorization.k8s.io \"gone\" not found]"
        );
        assert!(confirm_covered(
            &bob,
            &[rule(&["*"], &["*"], &["*"])],
            None,
            &[rule(&[""], &["pods"], &["get"])]
        )
        .is_ok());
    }
}
