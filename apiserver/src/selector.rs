//! Label and field selectors with upstream (apimachinery `labels` / `fields`) grammar,
//! validation, error texts, matching and string forms.
//!
//! * [`parse_label_selector`] parses `?labelSelector=` strings (`a=b`, `a==b`, `a!=b`,
//!   `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`, comma-joined).
//! * [`LabelSelector::from_json`] converts a `metav1.LabelSelector` object
//!   (`matchLabels` + `matchExpressions`); its [`Display`](std::fmt::Display) is the
//!   canonical string (`metav1.LabelSelectorAsSelector(..).String()`), and
//!   [`LabelSelector::format`] mirrors `metav1.FormatLabelSelector` (`<none>` when empty).
//! * [`parse_field_selector`] parses `?fieldSelector=` strings (`a=b`, `a==b`, `a!=b` with
//!   `\,` `\=` `\\` escapes in values).

use serde_json::{Map, Value};
use std::fmt;

/// Selector parse/validation errors. Messages follow upstream so they can be returned
/// verbatim in a 400 BadRequest Status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector string did not parse.
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// Unexpected token between requirements.
    #[error("{0}")]
    Syntax(String),
    /// A `metav1.LabelSelector` object is invalid.
    #[error("{0}")]
    InvalidLabelSelector(String),
    /// A field selector term without an operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm {
        /// Whole selector.
        selector: String,
        /// Offending term.
        term: String,
    },
    /// Bad escape in a field selector value.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscape(String),
    /// Unescaped `,` or `=` in a field selector value.
    #[error("invalid field selector: unescaped character in value: {0}")]
    Unescaped(char),
}

/// A label requirement operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `=`
    Equals,
    /// `==`
    DoubleEquals,
    /// `!=`
    NotEquals,
    /// `in`
    In,
    /// `notin`
    NotIn,
    /// bare key
    Exists,
    /// `!key`
    DoesNotExist,
    /// `>`
    GreaterThan,
    /// `<`
    LessThan,
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub operator: Operator,
    /// Values, sorted and deduplicated.
    pub values: Vec<String>,
}

impl Requirement {
    /// Builds and validates a requirement like upstream `labels.NewRequirement`.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, String> {
        validate_label_key(key).map_err(|e| format!("key: Invalid value: {key:?}: {e}"))?;
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(
                    "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
                        .into(),
                );
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                return Err(format!(
                    "values: Invalid value: {values:?}: exact-match compatibility requires one single value"
                ));
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(format!(
                    "values: Invalid value: {values:?}: values set must be empty for exists and does not exist"
                ));
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err(format!(
                        "values: Invalid value: {values:?}: for 'Gt', 'Lt' operators, exactly one value is required"
                    ));
                }
                if values[0].parse::<i64>().is_err() {
                    return Err(format!(
                        "values[0]: Invalid value: {:?}: for 'Gt', 'Lt' operators, the value must be an integer",
                        values[0]
                    ));
                }
            }
            _ => {}
        }
        if !matches!(operator, Operator::GreaterThan | Operator::LessThan) {
            for (i, v) in values.iter().enumerate() {
                validate_label_value(v)
                    .map_err(|e| format!("values[{i}][{key}]: Invalid value: {v:?}: {e}"))?;
            }
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let val = labels.get(&self.key).and_then(Value::as_str);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => val.is_some_and(has),
            Operator::NotEquals | Operator::NotIn => !val.is_some_and(has),
            Operator::Exists => labels.contains_key(&self.key),
            Operator::DoesNotExist => !labels.contains_key(&self.key),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(v), Some(want)) = (
                    val.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    v > want
                } else {
                    v < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::Equals => write!(f, "{}={one}", self.key),
            Operator::DoubleEquals => write!(f, "{}=={one}", self.key),
            Operator::NotEquals => write!(f, "{}!={one}", self.key),
            Operator::GreaterThan => write!(f, "{}>{one}", self.key),
            Operator::LessThan => write!(f, "{}<{one}", self.key),
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
        }
    }
}

/// A parsed label selector. `Nothing` (from a null `metav1.LabelSelector`) matches no object;
/// an empty requirement list matches every object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: false,
        }
    }

    /// The selector that matches nothing.
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True for the match-everything selector.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Converts a `metav1.LabelSelector` JSON value (`null` → nothing, `{}` → everything).
    pub fn from_json(sel: &Value) -> Result<Self, SelectorError> {
        let obj = match sel {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(o) => o,
            _ => {
                return Err(SelectorError::InvalidLabelSelector(
                    "label selector must be an object".into(),
                ))
            }
        };
        let mut reqs = Vec::new();
        let bad = SelectorError::InvalidLabelSelector;
        if let Some(ml) = obj.get("matchLabels").filter(|v| !v.is_null()) {
            let ml = ml
                .as_object()
                .ok_or_else(|| bad("matchLabels must be an object".into()))?;
            for (k, v) in ml {
                let v = v
                    .as_str()
                    .ok_or_else(|| bad(format!("matchLabels[{k}] must be a string")))?;
                reqs.push(Requirement::new(k, Operator::Equals, vec![v.to_string()]).map_err(bad)?);
            }
        }
        if let Some(me) = obj.get("matchExpressions").filter(|v| !v.is_null()) {
            let me = me
                .as_array()
                .ok_or_else(|| bad("matchExpressions must be a list".into()))?;
            for expr in me {
                let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
                let op_str = expr.get("operator").and_then(Value::as_str).unwrap_or("");
                let op = match op_str {
                    "In" => Operator::In,
                    "NotIn" => Operator::NotIn,
                    "Exists" => Operator::Exists,
                    "DoesNotExist" => Operator::DoesNotExist,
                    other => {
                        return Err(bad(format!(
                            "{other:?} is not a valid label selector operator"
                        )))
                    }
                };
                let values: Vec<String> = expr
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                reqs.push(Requirement::new(key, op, values).map_err(bad)?);
            }
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements: reqs,
            nothing: false,
        })
    }

    /// `metav1.FormatLabelSelector`: the string form, or `<none>` when it is empty.
    pub fn format(&self) -> String {
        let s = self.to_string();
        if s.is_empty() {
            "<none>".into()
        } else {
            s
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// `labels.FormatLabels`: `k=v,…` sorted by key, or `<none>`.
pub fn format_labels(labels: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<(&String, &str)> = labels
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------- label lexer / parser

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Not,
    NotEq,
    Eq,
    DoubleEq,
    Gt,
    Lt,
    In,
    NotIn,
    Open,
    Close,
    Comma,
    End,
}

impl Tok {
    fn lit(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::Not => "!".into(),
            Tok::NotEq => "!=".into(),
            Tok::Eq => "=".into(),
            Tok::DoubleEq => "==".into(),
            Tok::Gt => ">".into(),
            Tok::Lt => "<".into(),
            Tok::In => "in".into(),
            Tok::NotIn => "notin".into(),
            Tok::Open => "(".into(),
            Tok::Close => ")".into(),
            Tok::Comma => ",".into(),
            Tok::End => String::new(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '(' | ')' | ',' | '=' | '<' | '>')
}

fn lex(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (tok, n) = match (c, next) {
                ('!', Some('=')) => (Tok::NotEq, 2),
                ('=', Some('=')) => (Tok::DoubleEq, 2),
                ('!', _) => (Tok::Not, 1),
                ('=', _) => (Tok::Eq, 1),
                ('>', _) => (Tok::Gt, 1),
                ('<', _) => (Tok::Lt, 1),
                ('(', _) => (Tok::Open, 1),
                (')', _) => (Tok::Close, 1),
                _ => (Tok::Comma, 1),
            };
            out.push(tok);
            i += n;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        out.push(match word.as_str() {
            "in" => Tok::In,
            "notin" => Tok::NotIn,
            _ => Tok::Ident(word),
        });
    }
    out.push(Tok::End);
    out
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }
    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }
    /// In value position, keywords are plain identifiers.
    fn next_value(&mut self) -> Tok {
        match self.next() {
            Tok::In => Tok::Ident("in".into()),
            Tok::NotIn => Tok::Ident("notin".into()),
            t => t,
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let negated = if *self.peek() == Tok::Not {
            self.next();
            true
        } else {
            false
        };
        let key = match self.next() {
            Tok::Ident(k) => k,
            t => return Err(format!("found '{}', expected: identifier", t.lit())),
        };
        if let Err(e) = validate_label_key(&key) {
            return Err(format!("key: Invalid value: {key:?}: {e}"));
        }
        if matches!(self.peek(), Tok::End | Tok::Comma) {
            let op = if negated {
                Operator::DoesNotExist
            } else {
                Operator::Exists
            };
            return Requirement::new(&key, op, Vec::new());
        }
        if negated {
            return Err(format!(
                "found '{}', expected: ',' or 'end of string'",
                self.peek().lit()
            ));
        }
        let op = match self.next() {
            Tok::Eq => Operator::Equals,
            Tok::DoubleEq => Operator::DoubleEquals,
            Tok::NotEq => Operator::NotEquals,
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            Tok::Gt => Operator::GreaterThan,
            Tok::Lt => Operator::LessThan,
            t => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    t.lit()
                ))
            }
        };
        let values = match op {
            Operator::In | Operator::NotIn => self.value_list()?,
            _ => {
                if matches!(self.peek(), Tok::End | Tok::Comma) {
                    vec![String::new()]
                } else {
                    match self.next_value() {
                        Tok::Ident(v) => vec![v],
                        t => return Err(format!("found '{}', expected: identifier", t.lit())),
                    }
                }
            }
        };
        Requirement::new(&key, op, values)
    }

    fn value_list(&mut self) -> Result<Vec<String>, String> {
        let t = self.next();
        if t != Tok::Open {
            return Err(format!("found '{}' expected: '('", t.lit()));
        }
        let mut vals = Vec::new();
        if *self.peek() == Tok::Close {
            self.next();
            return Ok(vec![String::new()]);
        }
        loop {
            // An empty value between commas ("(a,,b)" or "(a,)") is the empty string.
            match self.peek().clone() {
                Tok::Comma | Tok::Close => vals.push(String::new()),
                _ => match self.next_value() {
                    Tok::Ident(v) => vals.push(v),
                    t => {
                        return Err(format!(
                            "found '{}', expected: ',', ')' or identifier",
                            t.lit()
                        ))
                    }
                },
            }
            match self.next() {
                Tok::Comma => continue,
                Tok::Close => return Ok(vals),
                t => return Err(format!("found '{}', expected: ',' or ')'", t.lit())),
            }
        }
    }
}

/// Parses a label selector string (`?labelSelector=`). The empty string selects everything.
pub fn parse_label_selector(s: &str) -> Result<LabelSelector, SelectorError> {
    let mut p = Parser {
        toks: lex(s),
        pos: 0,
    };
    let mut reqs = Vec::new();
    loop {
        match p.peek().clone() {
            Tok::End => break,
            Tok::Ident(_) | Tok::Not => {
                reqs.push(p.requirement().map_err(SelectorError::Requirement)?);
                match p.next() {
                    Tok::End => break,
                    Tok::Comma => {
                        if !matches!(p.peek(), Tok::Ident(_) | Tok::Not) {
                            return Err(SelectorError::Syntax(format!(
                                "found '{}', expected: identifier after ','",
                                p.peek().lit()
                            )));
                        }
                    }
                    t => {
                        return Err(SelectorError::Syntax(format!(
                            "found '{}', expected: ',' or 'end of string'",
                            t.lit()
                        )))
                    }
                }
            }
            t => {
                return Err(SelectorError::Syntax(format!(
                    "found '{}', expected: !, identifier, or 'end of string'",
                    t.lit()
                )))
            }
        }
    }
    reqs.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(LabelSelector {
        requirements: reqs,
        nothing: false,
    })
}

// ---------------------------------------------------------------- validation

const QUALIFIED_NAME_FMT: &str = "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]'";

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]` (non-empty).
fn is_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(is_alnum)
        && s.ends_with(is_alnum)
        && s.chars()
            .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'))
}

/// Upstream `validation.IsQualifiedName`: the error details joined with `; `.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > 253 {
                    errs.push("prefix part must be no more than 253 characters".to_string());
                }
                if !crate::validation::is_dns1123_subdomain(prefix) {
                    errs.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
                }
            }
            *name
        }
        _ => {
            return Err(format!("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is {QUALIFIED_NAME_FMT}) with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            errs.push("name part must be no more than 63 characters".to_string());
        }
        if !is_name_part(name) {
            errs.push(format!("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is {QUALIFIED_NAME_FMT})"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// Upstream `validation.IsValidLabelValue`.
pub fn validate_label_value(v: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !v.is_empty() && !is_name_part(v) {
        errs.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string());
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

// ---------------------------------------------------------------- field selectors

/// One `field<op>value` term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// Field path, e.g. `metadata.name`.
    pub field: String,
    /// True for `!=`.
    pub negated: bool,
    /// Unescaped value.
    pub value: String,
}

/// A parsed field selector (conjunction of terms).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// The terms, sorted as upstream sorts them.
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// True when the selector has no terms (selects everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Field names used, so callers can reject unsupported ones
    /// (upstream: `field label not supported: foo`).
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| t.field.as_str())
    }

    /// The value of a `metadata.name=x` / `==` term, if any.
    pub fn exact_name(&self) -> Option<&str> {
        self.exact("metadata.name")
    }

    /// The value of a `field=x` / `==` term, if any.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }

    /// Whether an object whose field values are produced by `get` matches. Missing fields
    /// count as the empty string, like upstream `fields.Set`.
    pub fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| {
            let v = get(&t.field).unwrap_or_default();
            (v == t.value) != t.negated
        })
    }
}

fn escape_field_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if t.negated { "!=" } else { "=" };
            write!(f, "{}{op}{}", t.field, escape_field_value(&t.value))?;
        }
        Ok(())
    }
}

fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn unescape_field_value(v: &str) -> Result<String, SelectorError> {
    let mut out = String::new();
    let mut escaped = false;
    for c in v.chars() {
        if escaped {
            if matches!(c, '\\' | ',' | '=') {
                out.push(c);
                escaped = false;
            } else {
                return Err(SelectorError::InvalidEscape(format!("\\{c}")));
            }
        } else if c == '\\' {
            escaped = true;
        } else if matches!(c, ',' | '=') {
            return Err(SelectorError::Unescaped(c));
        } else {
            out.push(c);
        }
    }
    if escaped {
        return Err(SelectorError::InvalidEscape("\\".into()));
    }
    Ok(out)
}

/// Parses a field selector string (`?fieldSelector=`). The empty string selects everything.
pub fn parse_field_selector(s: &str) -> Result<FieldSelector, SelectorError> {
    let mut parts = split_terms(s);
    parts.sort();
    let mut terms = Vec::new();
    for part in parts {
        if part.is_empty() {
            continue;
        }
        let split = (0..part.len())
            .filter(|i| part.is_char_boundary(*i))
            .find_map(|i| {
                let rest = &part[i..];
                ["!=", "==", "="]
                    .iter()
                    .find(|op| rest.starts_with(**op))
                    .map(|op| (&part[..i], *op, &rest[op.len()..]))
            });
        let Some((lhs, op, rhs)) = split else {
            return Err(SelectorError::FieldTerm {
                selector: s.to_string(),
                term: part.clone(),
            });
        };
        terms.push(FieldTerm {
            field: lhs.to_string(),
            negated: op == "!=",
            value: unescape_field_value(rhs)?,
        });
    }
    Ok(FieldSelector { terms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parse_and_match_labels() {
        let s = parse_label_selector("app=x, tier in (a,b),!gone,env!=prod,has").unwrap();
        assert_eq!(s.to_string(), "app=x,env!=prod,!gone,has,tier in (a,b)");
        let l = labels(json!({"app":"x","tier":"b","has":""}));
        assert!(s.matches(&l));
        assert!(!s.matches(&labels(json!({"app":"x","tier":"c","has":""}))));
        assert!(!s.matches(&labels(json!({"app":"x","tier":"a","has":"","gone":"1"}))));
        let s = parse_label_selector("a==b,c notin (d),n>3").unwrap();
        assert!(s.matches(&labels(json!({"a":"b","n":"4"}))));
        assert!(!s.matches(&labels(json!({"a":"b","c":"d","n":"4"}))));
        assert!(!s.matches(&labels(json!({"a":"b","n":"2"}))));
        assert!(parse_label_selector("").unwrap().matches(&Map::new()));
        assert_eq!(
            parse_label_selector("kubernetes.io/cluster-service=true")
                .unwrap()
                .to_string(),
            "kubernetes.io/cluster-service=true"
        );
        assert!(parse_label_selector("a=")
            .unwrap()
            .matches(&labels(json!({"a":""}))));
    }

    #[test]
    fn label_errors() {
        let e = parse_label_selector("a b").unwrap_err().to_string();
        assert_eq!(
            e,
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        let e = parse_label_selector("a in b").unwrap_err().to_string();
        assert_eq!(e, "unable to parse requirement: found 'b' expected: '('");
        let e = parse_label_selector("=x").unwrap_err().to_string();
        assert_eq!(e, "found '=', expected: !, identifier, or 'end of string'");
        let e = parse_label_selector("a=b,").unwrap_err().to_string();
        assert_eq!(e, "found '', expected: identifier after ','");
        let e = parse_label_selector("-a=b").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "unable to parse requirement: key: Invalid value: \"-a\": name part must consist"
            ),
            "{e}"
        );
        let e = parse_label_selector("a=-b").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label"
            ),
            "{e}"
        );
        let e = parse_label_selector("Foo.com/a=b").unwrap_err().to_string();
        assert!(
            e.contains("prefix part a lowercase RFC 1123 subdomain"),
            "{e}"
        );
        let long = "a".repeat(64);
        assert!(parse_label_selector(&long).is_err());
        assert!(parse_label_selector("a=b=c").is_err());
    }

    #[test]
    fn from_json_and_format() {
        let s = LabelSelector::from_json(&json!({"matchLabels":{"b":"1","a":"2"},
            "matchExpressions":[{"key":"c","operator":"In","values":["y","x"]},
                                {"key":"d","operator":"DoesNotExist"}]}))
        .unwrap();
        assert_eq!(s.to_string(), "a=2,b=1,c in (x,y),!d");
        assert!(s.matches(&labels(json!({"a":"2","b":"1","c":"x"}))));
        let all = LabelSelector::from_json(&json!({})).unwrap();
        assert!(all.matches(&Map::new()));
        assert_eq!(all.format(), "<none>");
        let none = LabelSelector::from_json(&Value::Null).unwrap();
        assert!(!none.matches(&Map::new()));
        let e =
            LabelSelector::from_json(&json!({"matchExpressions":[{"key":"a","operator":"Foo"}]}))
                .unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"Foo\" is not a valid label selector operator"
        );
        assert!(LabelSelector::from_json(
            &json!({"matchExpressions":[{"key":"a","operator":"In","values":[]}]})
        )
        .is_err());
        assert_eq!(
            format_labels(Some(&labels(json!({"b":"1","a":"2"})))),
            "a=2,b=1"
        );
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn field_selectors() {
        let s = parse_field_selector("spec.nodeName=node1,status.phase!=Failed").unwrap();
        let get = |f: &str| match f {
            "spec.nodeName" => Some("node1".to_string()),
            "status.phase" => Some("Running".to_string()),
            _ => None,
        };
        assert!(s.matches(&get));
        assert_eq!(
            s.fields().collect::<Vec<_>>(),
            ["spec.nodeName", "status.phase"]
        );
        assert_eq!(s.exact_name(), None);
        let s = parse_field_selector("metadata.name==x").unwrap();
        assert_eq!(s.exact_name(), Some("x"));
        let s = parse_field_selector(r"metadata.name=a\,b\=c\\d").unwrap();
        assert_eq!(s.exact_name(), Some(r"a,b=c\d"));
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d");
        assert_eq!(
            parse_field_selector("foo").unwrap_err().to_string(),
            "invalid selector: 'foo'; can't understand 'foo'"
        );
        assert_eq!(
            parse_field_selector(r"a=b\x").unwrap_err().to_string(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert!(parse_field_selector("a=b=c").is_err());
        assert!(parse_field_selector("").unwrap().is_empty());
    }
}
