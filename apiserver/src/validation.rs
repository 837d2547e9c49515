//! Generic object-meta validation: names, labels and annotations, with upstream messages.

use crate::error::Cause;
use serde_json::{json, Value};

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// Which name rule a kind uses for `metadata.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Subdomain,
    Label,
    Dns1035,
    /// RBAC and a few others: anything without '/' or '%' and not '.'/'..'.
    Path,
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(is_label_char)
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Problems with a name under a rule, as upstream messages (empty: valid).
pub fn name_problems(name: &str, rule: NameRule) -> Vec<String> {
    let mut out = Vec::new();
    match rule {
        NameRule::Subdomain => {
            if name.len() > 253 {
                out.push("must be no more than 253 characters".to_string());
            }
            if !is_dns1123_subdomain(name) {
                out.push(DNS1123_SUBDOMAIN_MSG.to_string());
            }
        }
        NameRule::Label | NameRule::Dns1035 => {
            if name.len() > 63 {
                out.push("must be no more than 63 characters".to_string());
            }
            let ok = if rule == NameRule::Label {
                is_dns1123_label(&name[..name.len().min(63)])
            } else {
                is_dns1035_label(&name[..name.len().min(63)])
            };
            if !ok {
                out.push(
                    if rule == NameRule::Label {
                        DNS1123_LABEL_MSG
                    } else {
                        DNS1035_LABEL_MSG
                    }
                    .to_string(),
                );
            }
        }
        NameRule::Path => {
            if name == "." || name == ".." {
                out.push(format!("may not be '{name}'"));
            }
            for c in ['/', '%'] {
                if name.contains(c) {
                    out.push(format!("may not contain '{c}'"));
                }
            }
        }
    }
    out
}

/// Validates `metadata`: name (with the kind's rule), namespace presence, labels, annotations.
pub fn validate_object_meta(
    obj: &Value,
    namespaced: bool,
    rule: NameRule,
    causes: &mut Vec<Cause>,
) {
    let name = crate::meta::name(obj);
    let generate = crate::meta::meta_str(obj, "generateName").unwrap_or("");
    if name.is_empty() {
        if generate.is_empty() {
            causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value: name or generateName is required".into(),
                field: "metadata.name".into(),
            });
        }
    } else {
        for p in name_problems(name, rule) {
            causes.push(Cause::invalid("metadata.name", &json!(name), &p));
        }
    }
    let ns = crate::meta::namespace(obj);
    if namespaced && ns.is_empty() {
        causes.push(Cause::required("metadata.namespace"));
    }
    if !namespaced && !ns.is_empty() {
        causes.push(Cause::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    if let Some(labels) = crate::meta::meta(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            if let Err(p) = crate::selector::validate_label_key(k) {
                causes.push(Cause::invalid("metadata.labels", &json!(k), &p));
            }
            let vs = v.as_str().unwrap_or("");
            if let Err(p) = crate::selector::validate_label_value(vs) {
                causes.push(Cause::invalid("metadata.labels", &json!(vs), &p));
            }
        }
    }
    if let Some(ann) = crate::meta::meta(obj)
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let mut total = 0usize;
        for (k, v) in ann {
            if let Err(p) = crate::selector::validate_label_key(&k.to_ascii_lowercase()) {
                causes.push(Cause::invalid("metadata.annotations", &json!(k), &p));
            }
            total += k.len() + v.as_str().map(str::len).unwrap_or(0);
        }
        if total > 256 * 1024 {
            causes.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: "Too long: may not be more than 262144 bytes".into(),
                field: "metadata.annotations".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name_problems("web-1", NameRule::Subdomain).is_empty());
        assert!(name_problems("a.b.c", NameRule::Subdomain).is_empty());
        assert!(!name_problems("Bad_Name", NameRule::Subdomain).is_empty());
        assert!(!name_problems("a.b", NameRule::Label).is_empty());
        assert!(!name_problems("1abc", NameRule::Dns1035).is_empty());
        assert!(name_problems("system:admin", NameRule::Path).is_empty());
        assert!(!name_problems("../x", NameRule::Path).is_empty());
    }

    #[test]
    fn labels_checked() {
        let obj = json!({"metadata":{"name":"x","namespace":"d","labels":{"ok/key":"v","bad key":"v","k":"-bad"}}});
        let mut c = Vec::new();
        validate_object_meta(&obj, true, NameRule::Subdomain, &mut c);
        assert_eq!(c.len(), 2, "{c:?}");
    }
}
