//! Compiled label and node selectors plus resource quantity parsing: the small pure
//! helpers that filters and scores share.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Operator of a selector requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" => Op::Gt,
            "Lt" => Op::Lt,
            _ => return None,
        })
    }
}

/// One requirement: `key op values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Req {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Req {
    /// Whether a label set (or a value looked up by key) satisfies this requirement.
    pub fn matches(&self, value: Option<&str>) -> bool {
        match self.op {
            Op::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Gt | Op::Lt => {
                let (Some(v), Some(bound)) = (value, self.values.first()) else {
                    return false;
                };
                let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                    return false;
                };
                if self.op == Op::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

/// A compiled `metav1.LabelSelector`. `None` requirements means the selector was invalid
/// and matches nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    reqs: Option<Vec<Req>>,
}

impl Selector {
    /// A selector that matches nothing (a nil selector in affinity terms).
    pub fn nothing() -> Selector {
        Selector { reqs: None }
    }

    /// Compiles a label selector; `None` matches nothing, an empty one everything.
    pub fn compile(sel: Option<&LabelSelector>) -> Selector {
        let Some(sel) = sel else {
            return Selector::nothing();
        };
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Req {
                key: k.clone(),
                op: Op::In,
                values: vec![v.clone()],
            });
        }
        for e in sel.match_expressions.iter().flatten() {
            match Op::parse(&e.operator) {
                Some(op @ (Op::In | Op::NotIn | Op::Exists | Op::DoesNotExist)) => reqs.push(Req {
                    key: e.key.clone(),
                    op,
                    values: e.values.clone().unwrap_or_default(),
                }),
                _ => return Selector::nothing(),
            }
        }
        Selector { reqs: Some(reqs) }
    }

    /// Adds `key In (value)` (used for matchLabelKeys).
    pub fn and_equals(&mut self, key: &str, value: &str) {
        if let Some(r) = &mut self.reqs {
            r.push(Req {
                key: key.into(),
                op: Op::In,
                values: vec![value.into()],
            });
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match &self.reqs {
            None => false,
            Some(reqs) => reqs
                .iter()
                .all(|r| r.matches(labels.get(&r.key).map(String::as_str))),
        }
    }
}

/// A compiled node selector term: expressions over labels, fields over `metadata.name`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTerm {
    exprs: Vec<Req>,
    fields: Vec<Req>,
    valid: bool,
}

fn compile_node_reqs(reqs: Option<&Vec<NodeSelectorRequirement>>, valid: &mut bool) -> Vec<Req> {
    let mut out = Vec::new();
    for r in reqs.into_iter().flatten() {
        match Op::parse(&r.operator) {
            Some(op) => out.push(Req {
                key: r.key.clone(),
                op,
                values: r.values.clone().unwrap_or_default(),
            }),
            None => *valid = false,
        }
    }
    out
}

impl NodeTerm {
    pub fn compile(t: &NodeSelectorTerm) -> NodeTerm {
        let mut valid = true;
        let exprs = compile_node_reqs(t.match_expressions.as_ref(), &mut valid);
        let fields = compile_node_reqs(t.match_fields.as_ref(), &mut valid);
        if fields.iter().any(|f| f.key != "metadata.name") {
            valid = false;
        }
        NodeTerm {
            exprs,
            fields,
            valid,
        }
    }

    /// Upstream: a term with no requirements matches no objects.
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        if !self.valid || (self.exprs.is_empty() && self.fields.is_empty()) {
            return false;
        }
        self.exprs
            .iter()
            .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
            && self.fields.iter().all(|r| r.matches(Some(name)))
    }
}

/// Parses a Kubernetes quantity into a float of base units (`100m` → 0.1, `1Ki` → 1024).
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with('e') || e.starts_with('E') => 10f64.powi(e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    Some(num * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1Gi"), Some(1073741824.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("1.5k"), Some(1500.0));
        assert_eq!(parse_quantity("x"), None);
    }

    #[test]
    fn gt_lt() {
        let r = Req {
            key: "n".into(),
            op: Op::Gt,
            values: vec!["5".into()],
        };
        assert!(r.matches(Some("6")));
        assert!(!r.matches(Some("5")));
        assert!(!r.matches(None));
    }
}
