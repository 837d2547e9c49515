//! Decoding of Kubernetes protobuf request bodies into their JSON form.
//!
//! kubectl's typed clientset (`kubectl create deployment|configmap|…`, `auth can-i`,
//! `auth whoami`, `create token`, drain's evictions) sends
//! `Content-Type: application/vnd.kubernetes.protobuf` bodies: the magic `k8s\0` followed by a
//! `runtime.Unknown` envelope `{1: typeMeta{1 apiVersion, 2 kind}, 2: raw, 3: contentEncoding,
//! 4: contentType}` whose `raw` is the object's protobuf encoding.
//!
//! [`decode`] turns such a body into the JSON object the same request would carry as
//! `application/json`. It is schema-driven: the per-message field tables at the bottom of this
//! file were generated from the `k8s-pb` crate's prost structs (field tags and wire types) with
//! JSON names taken from the upstream Go `json` tags. Go's proto2 encoder writes empty strings,
//! zero numbers and `false` explicitly, so scalar zero values are dropped the way Go's
//! `omitempty` would, except for fields that are pointers upstream (`replicas`,
//! `automountServiceAccountToken`, …) where the zero is meaningful. Well-known apimachinery
//! messages get their JSON shapes: `Quantity` and `IntOrString` become strings/numbers, `Time`
//! an RFC 3339 string (`null` when zero), `MicroTime` an RFC 3339 string with microseconds,
//! `Duration` a Go duration string, `RawExtension`/`FieldsV1` embedded JSON, `bytes` base64.

use base64::Engine as _;
use serde_json::{Map, Value};

/// The 4-byte prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Errors from [`decode`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("provided protobuf data is missing the kubernetes magic prefix")]
    MissingMagic,
    /// The bytes are not valid protobuf for the expected message.
    #[error("unable to decode protobuf body: {0}")]
    Malformed(String),
    /// The envelope declares a content encoding this server does not handle.
    #[error("unsupported protobuf content encoding {0:?}")]
    UnsupportedEncoding(String),
    /// The envelope names a kind this decoder has no schema for.
    #[error("no kind \"{kind}\" is registered for version \"{api_version}\"")]
    UnsupportedKind {
        /// `apiVersion` from the envelope.
        api_version: String,
        /// `kind` from the envelope.
        kind: String,
    },
}

fn malformed(what: &str) -> ProtobufError {
    ProtobufError::Malformed(what.to_string())
}

/// Decodes a `k8s\0`-prefixed `runtime.Unknown` body into the object's JSON form, with
/// `apiVersion` and `kind` taken from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtobufError::MissingMagic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut encoding = String::new();
    let mut r = Reader::new(rest);
    while let Some((tag, wire)) = r.key()? {
        match (tag, wire) {
            (1, 2) => {
                let mut tm = Reader::new(r.bytes()?);
                while let Some((t, w)) = tm.key()? {
                    match (t, w) {
                        (1, 2) => api_version = tm.string()?,
                        (2, 2) => kind = tm.string()?,
                        _ => tm.skip(w)?,
                    }
                }
            }
            (2, 2) => raw = r.bytes()?,
            (3, 2) => encoding = r.string()?,
            _ => r.skip(wire)?,
        }
    }
    if !encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEncoding(encoding));
    }
    let unsupported = || ProtobufError::UnsupportedKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    };
    let msg = root_message(&api_version, &kind).ok_or_else(unsupported)?;
    let fields = schema(&msg).ok_or_else(unsupported)?;
    let mut obj = Map::new();
    obj.insert("kind".into(), Value::String(kind.clone()));
    obj.insert("apiVersion".into(), Value::String(api_version.clone()));
    decode_fields(raw, fields, &mut obj)?;
    Ok(Value::Object(obj))
}

/// Kinds accepted at the top level, as `(group, kind)`.
const ROOT_KINDS: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("core", "ConfigMap"),
    ("core", "Secret"),
    ("core", "Namespace"),
    ("core", "ServiceAccount"),
    ("core", "Service"),
    ("core", "ResourceQuota"),
    ("core", "Pod"),
    ("core", "LimitRange"),
    ("core", "Binding"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("rbac", "Role"),
    ("rbac", "RoleBinding"),
    ("rbac", "ClusterRole"),
    ("rbac", "ClusterRoleBinding"),
    ("scheduling", "PriorityClass"),
    ("policy", "PodDisruptionBudget"),
    ("policy", "Eviction"),
    ("authorization", "SelfSubjectAccessReview"),
    ("authorization", "SelfSubjectRulesReview"),
    ("authorization", "SubjectAccessReview"),
    ("authorization", "LocalSubjectAccessReview"),
    ("authentication", "SelfSubjectReview"),
    ("authentication", "TokenRequest"),
    ("authentication", "TokenReview"),
    ("networking", "Ingress"),
];

/// Maps an envelope's apiVersion/kind to the schema name of its message.
fn root_message(api_version: &str, kind: &str) -> Option<String> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    if version != "v1" {
        return None;
    }
    if kind == "DeleteOptions" {
        return Some("meta::v1::DeleteOptions".into());
    }
    let module = match group {
        "" => "core",
        "apps" | "batch" | "policy" => group,
        "rbac.authorization.k8s.io" => "rbac",
        "scheduling.k8s.io" => "scheduling",
        "authorization.k8s.io" => "authorization",
        "authentication.k8s.io" => "authentication",
        "networking.k8s.io" => "networking",
        _ => return None,
    };
    ROOT_KINDS
        .iter()
        .any(|(g, k)| *g == module && *k == kind)
        .then(|| format!("{module}::v1::{kind}"))
}

/// A field of a message schema.
struct F {
    tag: u32,
    name: &'static str,
    ty: Ty,
    /// Keep zero values (the Go field is a pointer or not `omitempty`).
    keep: bool,
    /// The Go field is embedded inline: merge its fields into the parent object.
    inline: bool,
}

/// A message type: a schema name or a well-known apimachinery type.
// Some variants are unused by the current root set but kept for schema regeneration.
#[allow(dead_code)]
#[derive(Clone, Copy)]
enum M {
    S(&'static str),
    IntOrString,
    Quantity,
    Time,
    MicroTime,
    Duration,
    Raw,
}

#[allow(dead_code)]
#[derive(Clone, Copy)]
enum Ty {
    Str,
    I32,
    I64,
    Bool,
    Bytes,
    F64,
    Msg(M),
    MapStr,
    MapBytes,
    MapMsg(M),
    RepStr,
    RepI32,
    RepI64,
    RepMsg(M),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| malformed("unexpected end of data in varint"))?;
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(malformed("varint overflow"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed("varint overflow"))
    }

    /// Reads a field key; `None` at the end of the buffer.
    fn key(&mut self) -> Result<Option<(u32, u8)>, ProtobufError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let k = self.varint()?;
        let tag = u32::try_from(k >> 3).map_err(|_| malformed("field number out of range"))?;
        if tag == 0 {
            return Err(malformed("illegal field number 0"));
        }
        Ok(Some((tag, (k & 7) as u8)))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| malformed("unexpected end of data"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn bytes(&mut self) -> Result<&'a [u8], ProtobufError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| malformed("length out of range"))?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, ProtobufError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| malformed("invalid utf-8 in string field"))
    }

    fn skip(&mut self, wire: u8) -> Result<(), ProtobufError> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.take(8).map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => self.take(4).map(|_| ()),
            w => Err(ProtobufError::Malformed(format!(
                "unsupported wire type {w}"
            ))),
        }
    }
}

fn expect_wire(got: u8, want: u8, field: &str) -> Result<(), ProtobufError> {
    if got == want {
        Ok(())
    } else {
        Err(ProtobufError::Malformed(format!(
            "wrong wire type {got} for field {field}"
        )))
    }
}

/// Reads a varint-encoded scalar, or a packed run of them (for repeated fields).
fn read_ints(r: &mut Reader<'_>, wire: u8, out: &mut Vec<u64>) -> Result<(), ProtobufError> {
    match wire {
        0 => out.push(r.varint()?),
        2 => {
            let mut p = Reader::new(r.bytes()?);
            while p.pos < p.buf.len() {
                out.push(p.varint()?);
            }
        }
        w => {
            return Err(ProtobufError::Malformed(format!(
                "wrong wire type {w} for integer field"
            )))
        }
    }
    Ok(())
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn b64(b: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

fn decode_fields(
    buf: &[u8],
    fields: &[F],
    obj: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    let mut r = Reader::new(buf);
    while let Some((tag, wire)) = r.key()? {
        let Some(f) = fields.iter().find(|f| f.tag == tag) else {
            r.skip(wire)?;
            continue;
        };
        let v = match f.ty {
            Ty::Str => {
                expect_wire(wire, 2, f.name)?;
                Value::String(r.string()?)
            }
            Ty::I32 | Ty::I64 | Ty::Bool => {
                let mut vals = Vec::new();
                read_ints(&mut r, wire, &mut vals)?;
                let raw = *vals
                    .last()
                    .ok_or_else(|| malformed("empty packed scalar"))?;
                match f.ty {
                    Ty::I32 => Value::from(raw as i32),
                    Ty::I64 => Value::from(raw as i64),
                    _ => Value::Bool(raw != 0),
                }
            }
            Ty::F64 => {
                expect_wire(wire, 1, f.name)?;
                let b = r.take(8)?;
                let x = f64::from_le_bytes(b.try_into().map_err(|_| malformed("double"))?);
                serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
            }
            Ty::Bytes => {
                expect_wire(wire, 2, f.name)?;
                b64(r.bytes()?)
            }
            Ty::Msg(m) => {
                expect_wire(wire, 2, f.name)?;
                let v = decode_msg(r.bytes()?, m)?;
                if f.inline {
                    if let Value::Object(inner) = v {
                        obj.extend(inner);
                    }
                    continue;
                }
                v
            }
            Ty::MapStr | Ty::MapBytes | Ty::MapMsg(_) => {
                expect_wire(wire, 2, f.name)?;
                let (k, v) = decode_map_entry(r.bytes()?, f.ty)?;
                let entry = obj
                    .entry(f.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = entry {
                    m.insert(k, v);
                }
                continue;
            }
            Ty::RepStr | Ty::RepI32 | Ty::RepI64 | Ty::RepMsg(_) => {
                let mut items = Vec::new();
                match f.ty {
                    Ty::RepStr => {
                        expect_wire(wire, 2, f.name)?;
                        items.push(Value::String(r.string()?));
                    }
                    Ty::RepMsg(m) => {
                        expect_wire(wire, 2, f.name)?;
                        items.push(decode_msg(r.bytes()?, m)?);
                    }
                    Ty::RepI32 | Ty::RepI64 => {
                        let mut vals = Vec::new();
                        read_ints(&mut r, wire, &mut vals)?;
                        for raw in vals {
                            items.push(if matches!(f.ty, Ty::RepI32) {
                                Value::from(raw as i32)
                            } else {
                                Value::from(raw as i64)
                            });
                        }
                    }
                    _ => unreachable!("repeated types handled above"),
                }
                let entry = obj
                    .entry(f.name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(a) = entry {
                    a.extend(items);
                }
                continue;
            }
        };
        if !f.keep && is_zero(&v) {
            obj.remove(f.name);
            continue;
        }
        obj.insert(f.name.to_string(), v);
    }
    Ok(())
}

fn decode_map_entry(buf: &[u8], ty: Ty) -> Result<(String, Value), ProtobufError> {
    let mut r = Reader::new(buf);
    let mut key = String::new();
    let mut val = None;
    while let Some((tag, wire)) = r.key()? {
        match tag {
            1 => {
                expect_wire(wire, 2, "map key")?;
                key = r.string()?;
            }
            2 => {
                expect_wire(wire, 2, "map value")?;
                val = Some(match ty {
                    Ty::MapStr => Value::String(r.string()?),
                    Ty::MapBytes => b64(r.bytes()?),
                    Ty::MapMsg(m) => decode_msg(r.bytes()?, m)?,
                    _ => unreachable!("only map types reach here"),
                });
            }
            _ => r.skip(wire)?,
        }
    }
    let val = val.unwrap_or_else(|| match ty {
        Ty::MapMsg(m) => empty_msg(m),
        _ => Value::String(String::new()),
    });
    Ok((key, val))
}

/// The JSON of a message present on the wire with no fields set.
fn empty_msg(m: M) -> Value {
    match m {
        M::Quantity => Value::String("0".into()),
        M::IntOrString => Value::from(0),
        M::Time | M::MicroTime | M::Raw => Value::Null,
        M::Duration => Value::String("0s".into()),
        M::S(_) => Value::Object(Map::new()),
    }
}

fn decode_msg(buf: &[u8], m: M) -> Result<Value, ProtobufError> {
    match m {
        M::S(name) => {
            let fields = schema(name)
                .ok_or_else(|| ProtobufError::Malformed(format!("no schema for {name}")))?;
            let mut obj = Map::new();
            decode_fields(buf, fields, &mut obj)?;
            Ok(Value::Object(obj))
        }
        M::Quantity => {
            let mut r = Reader::new(buf);
            let mut s = None;
            while let Some((tag, wire)) = r.key()? {
                if tag == 1 && wire == 2 {
                    s = Some(r.string()?);
                } else {
                    r.skip(wire)?;
                }
            }
            Ok(s.map_or_else(|| empty_msg(m), Value::String))
        }
        M::IntOrString => {
            let mut r = Reader::new(buf);
            let (mut ty, mut int_val, mut str_val) = (0u64, 0i32, String::new());
            while let Some((tag, wire)) = r.key()? {
                match (tag, wire) {
                    (1, 0) => ty = r.varint()?,
                    (2, 0) => int_val = r.varint()? as i32,
                    (3, 2) => str_val = r.string()?,
                    _ => r.skip(wire)?,
                }
            }
            Ok(if ty == 1 {
                Value::String(str_val)
            } else {
                Value::from(int_val)
            })
        }
        M::Time | M::MicroTime => {
            let mut r = Reader::new(buf);
            let (mut secs, mut nanos) = (0i64, 0i32);
            while let Some((tag, wire)) = r.key()? {
                match (tag, wire) {
                    (1, 0) => secs = r.varint()? as i64,
                    (2, 0) => nanos = r.varint()? as i32,
                    _ => r.skip(wire)?,
                }
            }
            if secs == 0 && nanos == 0 {
                return Ok(Value::Null);
            }
            let ts = jiff::Timestamp::new(secs, if matches!(m, M::Time) { 0 } else { nanos })
                .map_err(|_| malformed("timestamp out of range"))?;
            Ok(Value::String(if matches!(m, M::Time) {
                ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
            } else {
                ts.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
            }))
        }
        M::Duration => {
            let mut r = Reader::new(buf);
            let mut d = 0i64;
            while let Some((tag, wire)) = r.key()? {
                if tag == 1 && wire == 0 {
                    d = r.varint()? as i64;
                } else {
                    r.skip(wire)?;
                }
            }
            Ok(Value::String(go_duration(d)))
        }
        M::Raw => {
            let mut r = Reader::new(buf);
            let mut raw: &[u8] = &[];
            while let Some((tag, wire)) = r.key()? {
                if tag == 1 && wire == 2 {
                    raw = r.bytes()?;
                } else {
                    r.skip(wire)?;
                }
            }
            if raw.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_slice(raw).map_err(|_| malformed("embedded object is not JSON"))
        }
    }
}

/// Formats nanoseconds as Go's `time.Duration.String` does (`1h2m3s`, `1.5s`, `300ms`).
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    let frac = |v: u64, unit: u64, suffix: &str| {
        let whole = v / unit;
        let rem = v % unit;
        if rem == 0 {
            format!("{sign}{whole}{suffix}")
        } else {
            let digits = unit.ilog10() as usize;
            let s = format!("{rem:0digits$}");
            format!("{sign}{whole}.{}{suffix}", s.trim_end_matches('0'))
        }
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return frac(u, 1_000, "µs");
    }
    if u < 1_000_000_000 {
        return frac(u, 1_000_000, "ms");
    }
    let h = u / 3_600_000_000_000;
    let m = (u / 60_000_000_000) % 60;
    let s_part = u % 60_000_000_000;
    let secs = frac(s_part, 1_000_000_000, "s");
    let secs = secs.trim_start_matches('-');
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{sign}{m}m{secs}")
    } else {
        format!("{sign}{secs}")
    }
}

// ---- generated schema tables (from k8s-pb 0.9 prost structs) ----
#[rustfmt::skip]
fn schema(msg: &str) -> Option<&'static [F]> {
    Some(match msg {
        "apps::v1::Deployment" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("apps::v1::DeploymentSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("apps::v1::DeploymentStatus")), keep: false, inline: false },
        ],
        "apps::v1::StatefulSet" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("apps::v1::StatefulSetSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("apps::v1::StatefulSetStatus")), keep: false, inline: false },
        ],
        "apps::v1::DaemonSet" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("apps::v1::DaemonSetSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("apps::v1::DaemonSetStatus")), keep: false, inline: false },
        ],
        "apps::v1::ReplicaSet" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("apps::v1::ReplicaSetSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("apps::v1::ReplicaSetStatus")), keep: false, inline: false },
        ],
        "core::v1::ConfigMap" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 4, name: "immutable", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 2, name: "data", ty: Ty::MapStr, keep: false, inline: false },
            F { tag: 3, name: "binaryData", ty: Ty::MapBytes, keep: false, inline: false },
        ],
        "core::v1::Secret" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 5, name: "immutable", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 2, name: "data", ty: Ty::MapBytes, keep: false, inline: false },
            F { tag: 4, name: "stringData", ty: Ty::MapStr, keep: false, inline: false },
            F { tag: 3, name: "type", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::Namespace" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("core::v1::NamespaceSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("core::v1::NamespaceStatus")), keep: false, inline: false },
        ],
        "core::v1::ServiceAccount" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "secrets", ty: Ty::RepMsg(M::S("core::v1::ObjectReference")), keep: false, inline: false },
            F { tag: 3, name: "imagePullSecrets", ty: Ty::RepMsg(M::S("core::v1::LocalObjectReference")), keep: false, inline: false },
            F { tag: 4, name: "automountServiceAccountToken", ty: Ty::Bool, keep: true, inline: false },
        ],
        "core::v1::Service" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("core::v1::ServiceSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("core::v1::ServiceStatus")), keep: false, inline: false },
        ],
        "core::v1::ResourceQuota" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("core::v1::ResourceQuotaSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("core::v1::ResourceQuotaStatus")), keep: false, inline: false },
        ],
        "core::v1::Pod" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("core::v1::PodSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("core::v1::PodStatus")), keep: false, inline: false },
        ],
        "core::v1::LimitRange" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("core::v1::LimitRangeSpec")), keep: false, inline: false },
        ],
        "batch::v1::Job" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("batch::v1::JobSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("batch::v1::JobStatus")), keep: false, inline: false },
        ],
        "batch::v1::CronJob" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("batch::v1::CronJobSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("batch::v1::CronJobStatus")), keep: false, inline: false },
        ],
        "rbac::v1::Role" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "rules", ty: Ty::RepMsg(M::S("rbac::v1::PolicyRule")), keep: false, inline: false },
        ],
        "rbac::v1::RoleBinding" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "subjects", ty: Ty::RepMsg(M::S("rbac::v1::Subject")), keep: false, inline: false },
            F { tag: 3, name: "roleRef", ty: Ty::Msg(M::S("rbac::v1::RoleRef")), keep: false, inline: false },
        ],
        "rbac::v1::ClusterRole" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "rules", ty: Ty::RepMsg(M::S("rbac::v1::PolicyRule")), keep: false, inline: false },
            F { tag: 3, name: "aggregationRule", ty: Ty::Msg(M::S("rbac::v1::AggregationRule")), keep: false, inline: false },
        ],
        "rbac::v1::ClusterRoleBinding" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "subjects", ty: Ty::RepMsg(M::S("rbac::v1::Subject")), keep: false, inline: false },
            F { tag: 3, name: "roleRef", ty: Ty::Msg(M::S("rbac::v1::RoleRef")), keep: false, inline: false },
        ],
        "scheduling::v1::PriorityClass" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "value", ty: Ty::I32, keep: true, inline: false },
            F { tag: 3, name: "globalDefault", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 4, name: "description", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "preemptionPolicy", ty: Ty::Str, keep: true, inline: false },
        ],
        "policy::v1::PodDisruptionBudget" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("policy::v1::PodDisruptionBudgetSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("policy::v1::PodDisruptionBudgetStatus")), keep: false, inline: false },
        ],
        "policy::v1::Eviction" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "deleteOptions", ty: Ty::Msg(M::S("meta::v1::DeleteOptions")), keep: false, inline: false },
        ],
        "authorization::v1::SelfSubjectAccessReview" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("authorization::v1::SelfSubjectAccessReviewSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("authorization::v1::SubjectAccessReviewStatus")), keep: false, inline: false },
        ],
        "authorization::v1::SelfSubjectRulesReview" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("authorization::v1::SelfSubjectRulesReviewSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("authorization::v1::SubjectRulesReviewStatus")), keep: false, inline: false },
        ],
        "authorization::v1::SubjectAccessReview" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("authorization::v1::SubjectAccessReviewSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("authorization::v1::SubjectAccessReviewStatus")), keep: false, inline: false },
        ],
        "authorization::v1::LocalSubjectAccessReview" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("authorization::v1::SubjectAccessReviewSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("authorization::v1::SubjectAccessReviewStatus")), keep: false, inline: false },
        ],
        "authentication::v1::SelfSubjectReview" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "status", ty: Ty::Msg(M::S("authentication::v1::SelfSubjectReviewStatus")), keep: false, inline: false },
        ],
        "authentication::v1::TokenRequest" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("authentication::v1::TokenRequestSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("authentication::v1::TokenRequestStatus")), keep: false, inline: false },
        ],
        "authentication::v1::TokenReview" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("authentication::v1::TokenReviewSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("authentication::v1::TokenReviewStatus")), keep: false, inline: false },
        ],
        "meta::v1::DeleteOptions" => &[
            F { tag: 1, name: "gracePeriodSeconds", ty: Ty::I64, keep: true, inline: false },
            F { tag: 2, name: "preconditions", ty: Ty::Msg(M::S("meta::v1::Preconditions")), keep: false, inline: false },
            F { tag: 3, name: "orphanDependents", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 4, name: "propagationPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "dryRun", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 6, name: "ignoreStoreReadErrorWithClusterBreakingPotential", ty: Ty::Bool, keep: false, inline: false },
        ],
        "networking::v1::Ingress" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("networking::v1::IngressSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("networking::v1::IngressStatus")), keep: false, inline: false },
        ],
        "core::v1::Binding" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "target", ty: Ty::Msg(M::S("core::v1::ObjectReference")), keep: false, inline: false },
        ],
        "meta::v1::ObjectMeta" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "generateName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "namespace", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "selfLink", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "uid", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "resourceVersion", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "generation", ty: Ty::I64, keep: false, inline: false },
            F { tag: 8, name: "creationTimestamp", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 9, name: "deletionTimestamp", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 10, name: "deletionGracePeriodSeconds", ty: Ty::I64, keep: false, inline: false },
            F { tag: 11, name: "labels", ty: Ty::MapStr, keep: false, inline: false },
            F { tag: 12, name: "annotations", ty: Ty::MapStr, keep: false, inline: false },
            F { tag: 13, name: "ownerReferences", ty: Ty::RepMsg(M::S("meta::v1::OwnerReference")), keep: false, inline: false },
            F { tag: 14, name: "finalizers", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 17, name: "managedFields", ty: Ty::RepMsg(M::S("meta::v1::ManagedFieldsEntry")), keep: false, inline: false },
        ],
        "apps::v1::DeploymentSpec" => &[
            F { tag: 1, name: "replicas", ty: Ty::I32, keep: true, inline: false },
            F { tag: 2, name: "selector", ty: Ty::Msg(M::S("meta::v1::LabelSelector")), keep: false, inline: false },
            F { tag: 3, name: "template", ty: Ty::Msg(M::S("core::v1::PodTemplateSpec")), keep: false, inline: false },
            F { tag: 4, name: "strategy", ty: Ty::Msg(M::S("apps::v1::DeploymentStrategy")), keep: false, inline: false },
            F { tag: 5, name: "minReadySeconds", ty: Ty::I32, keep: false, inline: false },
            F { tag: 6, name: "revisionHistoryLimit", ty: Ty::I32, keep: true, inline: false },
            F { tag: 7, name: "paused", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 9, name: "progressDeadlineSeconds", ty: Ty::I32, keep: true, inline: false },
        ],
        "apps::v1::DeploymentStatus" => &[
            F { tag: 1, name: "observedGeneration", ty: Ty::I64, keep: false, inline: false },
            F { tag: 2, name: "replicas", ty: Ty::I32, keep: true, inline: false },
            F { tag: 3, name: "updatedReplicas", ty: Ty::I32, keep: false, inline: false },
            F { tag: 7, name: "readyReplicas", ty: Ty::I32, keep: false, inline: false },
            F { tag: 4, name: "availableReplicas", ty: Ty::I32, keep: false, inline: false },
            F { tag: 5, name: "unavailableReplicas", ty: Ty::I32, keep: false, inline: false },
            F { tag: 9, name: "terminatingReplicas", ty: Ty::I32, keep: false, inline: false },
            F { tag: 6, name: "conditions", ty: Ty::RepMsg(M::S("apps::v1::DeploymentCondition")), keep: false, inline: false },
            F { tag: 8, name: "collisionCount", ty: Ty::I32, keep: false, inline: false },
        ],
        "apps::v1::StatefulSetSpec" => &[
            F { tag: 1, name: "replicas", ty: Ty::I32, keep: true, inline: false },
            F { tag: 2, name: "selector", ty: Ty::Msg(M::S("meta::v1::LabelSelector")), keep: false, inline: false },
            F { tag: 3, name: "template", ty: Ty::Msg(M::S("core::v1::PodTemplateSpec")), keep: false, inline: false },
            F { tag: 4, name: "volumeClaimTemplates", ty: Ty::RepMsg(M::S("core::v1::PersistentVolumeClaim")), keep: false, inline: false },
            F { tag: 5, name: "serviceName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "podManagementPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "updateStrategy", ty: Ty::Msg(M::S("apps::v1::StatefulSetUpdateStrategy")), keep: false, inline: false },
            F { tag: 8, name: "revisionHistoryLimit", ty: Ty::I32, keep: true, inline: false },
            F { tag: 9, name: "minReadySeconds", ty: Ty::I32, keep: false, inline: false },
            F { tag: 10, name: "persistentVolumeClaimRetentionPolicy", ty: Ty::Msg(M::S("apps::v1::StatefulSetPersistentVolumeClaimRetentionPolicy")), keep: false, inline: false },
            F { tag: 11, name: "ordinals", ty: Ty::Msg(M::S("apps::v1::StatefulSetOrdinals")), keep: false, inline: false },
        ],
        "apps::v1::StatefulSetStatus" => &[
            F { tag: 1, name: "observedGeneration", ty: Ty::I64, keep: false, inline: false },
            F { tag: 2, name: "replicas", ty: Ty::I32, keep: true, inline: false },
            F { tag: 3, name: "readyReplicas", ty: Ty::I32, keep: false, inline: false },
            F { tag: 4, name: "currentReplicas", ty: Ty::I32, keep: false, inline: false },
            F { tag: 5, name: "updatedReplicas", ty: Ty::I32, keep: false, inline: false },
            F { tag: 6, name: "currentRevision", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "updateRevision", ty: Ty::Str, keep: false, inline: false },
            F { tag: 9, name: "collisionCount", ty: Ty::I32, keep: false, inline: false },
            F { tag: 10, name: "conditions", ty: Ty::RepMsg(M::S("apps::v1::StatefulSetCondition")), keep: false, inline: false },
            F { tag: 11, name: "availableReplicas", ty: Ty::I32, keep: false, inline: false },
        ],
        "apps::v1::DaemonSetSpec" => &[
            F { tag: 1, name: "selector", ty: Ty::Msg(M::S("meta::v1::LabelSelector")), keep: false, inline: false },
            F { tag: 2, name: "template", ty: Ty::Msg(M::S("core::v1::PodTemplateSpec")), keep: false, inline: false },
            F { tag: 3, name: "updateStrategy", ty: Ty::Msg(M::S("apps::v1::DaemonSetUpdateStrategy")), keep: false, inline: false },
            F { tag: 4, name: "minReadySeconds", ty: Ty::I32, keep: false, inline: false },
            F { tag: 6, name: "revisionHistoryLimit", ty: Ty::I32, keep: true, inline: false },
        ],
        "apps::v1::DaemonSetStatus" => &[
            F { tag: 1, name: "currentNumberScheduled", ty: Ty::I32, keep: false, inline: false },
            F { tag: 2, name: "numberMisscheduled", ty: Ty::I32, keep: false, inline: false },
            F { tag: 3, name: "desiredNumberScheduled", ty: Ty::I32, keep: false, inline: false },
            F { tag: 4, name: "numberReady", ty: Ty::I32, keep: false, inline: false },
            F { tag: 5, name: "observedGeneration", ty: Ty::I64, keep: false, inline: false },
            F { tag: 6, name: "updatedNumberScheduled", ty: Ty::I32, keep: false, inline: false },
            F { tag: 7, name: "numberAvailable", ty: Ty::I32, keep: false, inline: false },
            F { tag: 8, name: "numberUnavailable", ty: Ty::I32, keep: false, inline: false },
            F { tag: 9, name: "collisionCount", ty: Ty::I32, keep: false, inline: false },
            F { tag: 10, name: "conditions", ty: Ty::RepMsg(M::S("apps::v1::DaemonSetCondition")), keep: false, inline: false },
        ],
        "apps::v1::ReplicaSetSpec" => &[
            F { tag: 1, name: "replicas", ty: Ty::I32, keep: true, inline: false },
            F { tag: 4, name: "minReadySeconds", ty: Ty::I32, keep: false, inline: false },
            F { tag: 2, name: "selector", ty: Ty::Msg(M::S("meta::v1::LabelSelector")), keep: false, inline: false },
            F { tag: 3, name: "template", ty: Ty::Msg(M::S("core::v1::PodTemplateSpec")), keep: false, inline: false },
        ],
        "apps::v1::ReplicaSetStatus" => &[
            F { tag: 1, name: "replicas", ty: Ty::I32, keep: true, inline: false },
            F { tag: 2, name: "fullyLabeledReplicas", ty: Ty::I32, keep: false, inline: false },
            F { tag: 4, name: "readyReplicas", ty: Ty::I32, keep: false, inline: false },
            F { tag: 5, name: "availableReplicas", ty: Ty::I32, keep: false, inline: false },
            F { tag: 7, name: "terminatingReplicas", ty: Ty::I32, keep: false, inline: false },
            F { tag: 3, name: "observedGeneration", ty: Ty::I64, keep: false, inline: false },
            F { tag: 6, name: "conditions", ty: Ty::RepMsg(M::S("apps::v1::ReplicaSetCondition")), keep: false, inline: false },
        ],
        "core::v1::NamespaceSpec" => &[
            F { tag: 1, name: "finalizers", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "core::v1::NamespaceStatus" => &[
            F { tag: 1, name: "phase", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "conditions", ty: Ty::RepMsg(M::S("core::v1::NamespaceCondition")), keep: false, inline: false },
        ],
        "core::v1::ObjectReference" => &[
            F { tag: 1, name: "kind", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "namespace", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "uid", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "apiVersion", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "resourceVersion", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "fieldPath", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::LocalObjectReference" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ServiceSpec" => &[
            F { tag: 1, name: "ports", ty: Ty::RepMsg(M::S("core::v1::ServicePort")), keep: false, inline: false },
            F { tag: 2, name: "selector", ty: Ty::MapStr, keep: false, inline: false },
            F { tag: 3, name: "clusterIP", ty: Ty::Str, keep: false, inline: false },
            F { tag: 18, name: "clusterIPs", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 4, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "externalIPs", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 7, name: "sessionAffinity", ty: Ty::Str, keep: false, inline: false },
            F { tag: 8, name: "loadBalancerIP", ty: Ty::Str, keep: false, inline: false },
            F { tag: 9, name: "loadBalancerSourceRanges", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 10, name: "externalName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 11, name: "externalTrafficPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 12, name: "healthCheckNodePort", ty: Ty::I32, keep: false, inline: false },
            F { tag: 13, name: "publishNotReadyAddresses", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 14, name: "sessionAffinityConfig", ty: Ty::Msg(M::S("core::v1::SessionAffinityConfig")), keep: false, inline: false },
            F { tag: 19, name: "ipFamilies", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 17, name: "ipFamilyPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 20, name: "allocateLoadBalancerNodePorts", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 21, name: "loadBalancerClass", ty: Ty::Str, keep: false, inline: false },
            F { tag: 22, name: "internalTrafficPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 23, name: "trafficDistribution", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ServiceStatus" => &[
            F { tag: 1, name: "loadBalancer", ty: Ty::Msg(M::S("core::v1::LoadBalancerStatus")), keep: false, inline: false },
            F { tag: 2, name: "conditions", ty: Ty::RepMsg(M::S("meta::v1::Condition")), keep: false, inline: false },
        ],
        "core::v1::ResourceQuotaSpec" => &[
            F { tag: 1, name: "hard", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 2, name: "scopes", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 3, name: "scopeSelector", ty: Ty::Msg(M::S("core::v1::ScopeSelector")), keep: false, inline: false },
        ],
        "core::v1::ResourceQuotaStatus" => &[
            F { tag: 1, name: "hard", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 2, name: "used", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
        ],
        "core::v1::PodSpec" => &[
            F { tag: 1, name: "volumes", ty: Ty::RepMsg(M::S("core::v1::Volume")), keep: false, inline: false },
            F { tag: 20, name: "initContainers", ty: Ty::RepMsg(M::S("core::v1::Container")), keep: false, inline: false },
            F { tag: 2, name: "containers", ty: Ty::RepMsg(M::S("core::v1::Container")), keep: false, inline: false },
            F { tag: 34, name: "ephemeralContainers", ty: Ty::RepMsg(M::S("core::v1::EphemeralContainer")), keep: false, inline: false },
            F { tag: 3, name: "restartPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "terminationGracePeriodSeconds", ty: Ty::I64, keep: true, inline: false },
            F { tag: 5, name: "activeDeadlineSeconds", ty: Ty::I64, keep: true, inline: false },
            F { tag: 6, name: "dnsPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "nodeSelector", ty: Ty::MapStr, keep: false, inline: false },
            F { tag: 8, name: "serviceAccountName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 9, name: "serviceAccount", ty: Ty::Str, keep: false, inline: false },
            F { tag: 21, name: "automountServiceAccountToken", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 10, name: "nodeName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 11, name: "hostNetwork", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 12, name: "hostPID", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 13, name: "hostIPC", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 27, name: "shareProcessNamespace", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 14, name: "securityContext", ty: Ty::Msg(M::S("core::v1::PodSecurityContext")), keep: false, inline: false },
            F { tag: 15, name: "imagePullSecrets", ty: Ty::RepMsg(M::S("core::v1::LocalObjectReference")), keep: false, inline: false },
            F { tag: 16, name: "hostname", ty: Ty::Str, keep: false, inline: false },
            F { tag: 17, name: "subdomain", ty: Ty::Str, keep: false, inline: false },
            F { tag: 18, name: "affinity", ty: Ty::Msg(M::S("core::v1::Affinity")), keep: false, inline: false },
            F { tag: 19, name: "schedulerName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 22, name: "tolerations", ty: Ty::RepMsg(M::S("core::v1::Toleration")), keep: false, inline: false },
            F { tag: 23, name: "hostAliases", ty: Ty::RepMsg(M::S("core::v1::HostAlias")), keep: false, inline: false },
            F { tag: 24, name: "priorityClassName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 25, name: "priority", ty: Ty::I32, keep: true, inline: false },
            F { tag: 26, name: "dnsConfig", ty: Ty::Msg(M::S("core::v1::PodDnsConfig")), keep: false, inline: false },
            F { tag: 28, name: "readinessGates", ty: Ty::RepMsg(M::S("core::v1::PodReadinessGate")), keep: false, inline: false },
            F { tag: 29, name: "runtimeClassName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 30, name: "enableServiceLinks", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 31, name: "preemptionPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 32, name: "overhead", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 33, name: "topologySpreadConstraints", ty: Ty::RepMsg(M::S("core::v1::TopologySpreadConstraint")), keep: false, inline: false },
            F { tag: 35, name: "setHostnameAsFQDN", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 36, name: "os", ty: Ty::Msg(M::S("core::v1::PodOs")), keep: false, inline: false },
            F { tag: 37, name: "hostUsers", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 38, name: "schedulingGates", ty: Ty::RepMsg(M::S("core::v1::PodSchedulingGate")), keep: false, inline: false },
            F { tag: 39, name: "resourceClaims", ty: Ty::RepMsg(M::S("core::v1::PodResourceClaim")), keep: false, inline: false },
            F { tag: 40, name: "resources", ty: Ty::Msg(M::S("core::v1::ResourceRequirements")), keep: false, inline: false },
            F { tag: 41, name: "hostnameOverride", ty: Ty::Str, keep: false, inline: false },
            F { tag: 42, name: "workloadRef", ty: Ty::Msg(M::S("core::v1::WorkloadReference")), keep: false, inline: false },
        ],
        "core::v1::PodStatus" => &[
            F { tag: 17, name: "observedGeneration", ty: Ty::I64, keep: false, inline: false },
            F { tag: 1, name: "phase", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "conditions", ty: Ty::RepMsg(M::S("core::v1::PodCondition")), keep: false, inline: false },
            F { tag: 3, name: "message", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "reason", ty: Ty::Str, keep: false, inline: false },
            F { tag: 11, name: "nominatedNodeName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "hostIP", ty: Ty::Str, keep: false, inline: false },
            F { tag: 16, name: "hostIPs", ty: Ty::RepMsg(M::S("core::v1::HostIp")), keep: false, inline: false },
            F { tag: 6, name: "podIP", ty: Ty::Str, keep: false, inline: false },
            F { tag: 12, name: "podIPs", ty: Ty::RepMsg(M::S("core::v1::PodIp")), keep: false, inline: false },
            F { tag: 7, name: "startTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 10, name: "initContainerStatuses", ty: Ty::RepMsg(M::S("core::v1::ContainerStatus")), keep: false, inline: false },
            F { tag: 8, name: "containerStatuses", ty: Ty::RepMsg(M::S("core::v1::ContainerStatus")), keep: false, inline: false },
            F { tag: 9, name: "qosClass", ty: Ty::Str, keep: false, inline: false },
            F { tag: 13, name: "ephemeralContainerStatuses", ty: Ty::RepMsg(M::S("core::v1::ContainerStatus")), keep: false, inline: false },
            F { tag: 14, name: "resize", ty: Ty::Str, keep: false, inline: false },
            F { tag: 15, name: "resourceClaimStatuses", ty: Ty::RepMsg(M::S("core::v1::PodResourceClaimStatus")), keep: false, inline: false },
            F { tag: 18, name: "extendedResourceClaimStatus", ty: Ty::Msg(M::S("core::v1::PodExtendedResourceClaimStatus")), keep: false, inline: false },
            F { tag: 19, name: "allocatedResources", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 20, name: "resources", ty: Ty::Msg(M::S("core::v1::ResourceRequirements")), keep: false, inline: false },
        ],
        "core::v1::LimitRangeSpec" => &[
            F { tag: 1, name: "limits", ty: Ty::RepMsg(M::S("core::v1::LimitRangeItem")), keep: false, inline: false },
        ],
        "batch::v1::JobSpec" => &[
            F { tag: 1, name: "parallelism", ty: Ty::I32, keep: true, inline: false },
            F { tag: 2, name: "completions", ty: Ty::I32, keep: true, inline: false },
            F { tag: 3, name: "activeDeadlineSeconds", ty: Ty::I64, keep: true, inline: false },
            F { tag: 11, name: "podFailurePolicy", ty: Ty::Msg(M::S("batch::v1::PodFailurePolicy")), keep: false, inline: false },
            F { tag: 16, name: "successPolicy", ty: Ty::Msg(M::S("batch::v1::SuccessPolicy")), keep: false, inline: false },
            F { tag: 7, name: "backoffLimit", ty: Ty::I32, keep: true, inline: false },
            F { tag: 12, name: "backoffLimitPerIndex", ty: Ty::I32, keep: true, inline: false },
            F { tag: 13, name: "maxFailedIndexes", ty: Ty::I32, keep: true, inline: false },
            F { tag: 4, name: "selector", ty: Ty::Msg(M::S("meta::v1::LabelSelector")), keep: false, inline: false },
            F { tag: 5, name: "manualSelector", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 6, name: "template", ty: Ty::Msg(M::S("core::v1::PodTemplateSpec")), keep: false, inline: false },
            F { tag: 8, name: "ttlSecondsAfterFinished", ty: Ty::I32, keep: true, inline: false },
            F { tag: 9, name: "completionMode", ty: Ty::Str, keep: false, inline: false },
            F { tag: 10, name: "suspend", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 14, name: "podReplacementPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 15, name: "managedBy", ty: Ty::Str, keep: false, inline: false },
        ],
        "batch::v1::JobStatus" => &[
            F { tag: 1, name: "conditions", ty: Ty::RepMsg(M::S("batch::v1::JobCondition")), keep: false, inline: false },
            F { tag: 2, name: "startTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 3, name: "completionTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 4, name: "active", ty: Ty::I32, keep: false, inline: false },
            F { tag: 5, name: "succeeded", ty: Ty::I32, keep: false, inline: false },
            F { tag: 6, name: "failed", ty: Ty::I32, keep: false, inline: false },
            F { tag: 11, name: "terminating", ty: Ty::I32, keep: false, inline: false },
            F { tag: 7, name: "completedIndexes", ty: Ty::Str, keep: false, inline: false },
            F { tag: 10, name: "failedIndexes", ty: Ty::Str, keep: false, inline: false },
            F { tag: 8, name: "uncountedTerminatedPods", ty: Ty::Msg(M::S("batch::v1::UncountedTerminatedPods")), keep: false, inline: false },
            F { tag: 9, name: "ready", ty: Ty::I32, keep: false, inline: false },
        ],
        "batch::v1::CronJobSpec" => &[
            F { tag: 1, name: "schedule", ty: Ty::Str, keep: false, inline: false },
            F { tag: 8, name: "timeZone", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "startingDeadlineSeconds", ty: Ty::I64, keep: true, inline: false },
            F { tag: 3, name: "concurrencyPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "suspend", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 5, name: "jobTemplate", ty: Ty::Msg(M::S("batch::v1::JobTemplateSpec")), keep: false, inline: false },
            F { tag: 6, name: "successfulJobsHistoryLimit", ty: Ty::I32, keep: true, inline: false },
            F { tag: 7, name: "failedJobsHistoryLimit", ty: Ty::I32, keep: true, inline: false },
        ],
        "batch::v1::CronJobStatus" => &[
            F { tag: 1, name: "active", ty: Ty::RepMsg(M::S("core::v1::ObjectReference")), keep: false, inline: false },
            F { tag: 4, name: "lastScheduleTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 5, name: "lastSuccessfulTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
        ],
        "rbac::v1::PolicyRule" => &[
            F { tag: 1, name: "verbs", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 2, name: "apiGroups", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 3, name: "resources", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 4, name: "resourceNames", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 5, name: "nonResourceURLs", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "rbac::v1::Subject" => &[
            F { tag: 1, name: "kind", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "apiGroup", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "namespace", ty: Ty::Str, keep: false, inline: false },
        ],
        "rbac::v1::RoleRef" => &[
            F { tag: 1, name: "apiGroup", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "kind", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "name", ty: Ty::Str, keep: false, inline: false },
        ],
        "rbac::v1::AggregationRule" => &[
            F { tag: 1, name: "clusterRoleSelectors", ty: Ty::RepMsg(M::S("meta::v1::LabelSelector")), keep: false, inline: false },
        ],
        "policy::v1::PodDisruptionBudgetSpec" => &[
            F { tag: 1, name: "minAvailable", ty: Ty::Msg(M::IntOrString), keep: false, inline: false },
            F { tag: 2, name: "selector", ty: Ty::Msg(M::S("meta::v1::LabelSelector")), keep: false, inline: false },
            F { tag: 3, name: "maxUnavailable", ty: Ty::Msg(M::IntOrString), keep: false, inline: false },
            F { tag: 4, name: "unhealthyPodEvictionPolicy", ty: Ty::Str, keep: false, inline: false },
        ],
        "policy::v1::PodDisruptionBudgetStatus" => &[
            F { tag: 1, name: "observedGeneration", ty: Ty::I64, keep: false, inline: false },
            F { tag: 2, name: "disruptedPods", ty: Ty::MapMsg(M::Time), keep: false, inline: false },
            F { tag: 3, name: "disruptionsAllowed", ty: Ty::I32, keep: false, inline: false },
            F { tag: 4, name: "currentHealthy", ty: Ty::I32, keep: false, inline: false },
            F { tag: 5, name: "desiredHealthy", ty: Ty::I32, keep: false, inline: false },
            F { tag: 6, name: "expectedPods", ty: Ty::I32, keep: false, inline: false },
            F { tag: 7, name: "conditions", ty: Ty::RepMsg(M::S("meta::v1::Condition")), keep: false, inline: false },
        ],
        "authorization::v1::SelfSubjectAccessReviewSpec" => &[
            F { tag: 1, name: "resourceAttributes", ty: Ty::Msg(M::S("authorization::v1::ResourceAttributes")), keep: false, inline: false },
            F { tag: 2, name: "nonResourceAttributes", ty: Ty::Msg(M::S("authorization::v1::NonResourceAttributes")), keep: false, inline: false },
        ],
        "authorization::v1::SubjectAccessReviewStatus" => &[
            F { tag: 1, name: "allowed", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 4, name: "denied", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 2, name: "reason", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "evaluationError", ty: Ty::Str, keep: false, inline: false },
        ],
        "authorization::v1::SelfSubjectRulesReviewSpec" => &[
            F { tag: 1, name: "namespace", ty: Ty::Str, keep: false, inline: false },
        ],
        "authorization::v1::SubjectRulesReviewStatus" => &[
            F { tag: 1, name: "resourceRules", ty: Ty::RepMsg(M::S("authorization::v1::ResourceRule")), keep: false, inline: false },
            F { tag: 2, name: "nonResourceRules", ty: Ty::RepMsg(M::S("authorization::v1::NonResourceRule")), keep: false, inline: false },
            F { tag: 3, name: "incomplete", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 4, name: "evaluationError", ty: Ty::Str, keep: false, inline: false },
        ],
        "authorization::v1::SubjectAccessReviewSpec" => &[
            F { tag: 1, name: "resourceAttributes", ty: Ty::Msg(M::S("authorization::v1::ResourceAttributes")), keep: false, inline: false },
            F { tag: 2, name: "nonResourceAttributes", ty: Ty::Msg(M::S("authorization::v1::NonResourceAttributes")), keep: false, inline: false },
            F { tag: 3, name: "user", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "groups", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 5, name: "extra", ty: Ty::MapMsg(M::S("authorization::v1::ExtraValue")), keep: false, inline: false },
            F { tag: 6, name: "uid", ty: Ty::Str, keep: false, inline: false },
        ],
        "authentication::v1::SelfSubjectReviewStatus" => &[
            F { tag: 1, name: "userInfo", ty: Ty::Msg(M::S("authentication::v1::UserInfo")), keep: false, inline: false },
        ],
        "authentication::v1::TokenRequestSpec" => &[
            F { tag: 1, name: "audiences", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 4, name: "expirationSeconds", ty: Ty::I64, keep: true, inline: false },
            F { tag: 3, name: "boundObjectRef", ty: Ty::Msg(M::S("authentication::v1::BoundObjectReference")), keep: false, inline: false },
        ],
        "authentication::v1::TokenRequestStatus" => &[
            F { tag: 1, name: "token", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "expirationTimestamp", ty: Ty::Msg(M::Time), keep: false, inline: false },
        ],
        "authentication::v1::TokenReviewSpec" => &[
            F { tag: 1, name: "token", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "audiences", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "authentication::v1::TokenReviewStatus" => &[
            F { tag: 1, name: "authenticated", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 2, name: "user", ty: Ty::Msg(M::S("authentication::v1::UserInfo")), keep: false, inline: false },
            F { tag: 4, name: "audiences", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 3, name: "error", ty: Ty::Str, keep: false, inline: false },
        ],
        "meta::v1::Preconditions" => &[
            F { tag: 1, name: "uid", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "resourceVersion", ty: Ty::Str, keep: false, inline: false },
        ],
        "networking::v1::IngressSpec" => &[
            F { tag: 4, name: "ingressClassName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 1, name: "defaultBackend", ty: Ty::Msg(M::S("networking::v1::IngressBackend")), keep: false, inline: false },
            F { tag: 2, name: "tls", ty: Ty::RepMsg(M::S("networking::v1::IngressTls")), keep: false, inline: false },
            F { tag: 3, name: "rules", ty: Ty::RepMsg(M::S("networking::v1::IngressRule")), keep: false, inline: false },
        ],
        "networking::v1::IngressStatus" => &[
            F { tag: 1, name: "loadBalancer", ty: Ty::Msg(M::S("networking::v1::IngressLoadBalancerStatus")), keep: false, inline: false },
        ],
        "meta::v1::OwnerReference" => &[
            F { tag: 5, name: "apiVersion", ty: Ty::Str, keep: false, inline: false },
            F { tag: 1, name: "kind", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "uid", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "controller", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 7, name: "blockOwnerDeletion", ty: Ty::Bool, keep: true, inline: false },
        ],
        "meta::v1::ManagedFieldsEntry" => &[
            F { tag: 1, name: "manager", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "operation", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "apiVersion", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "time", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 6, name: "fieldsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "fieldsV1", ty: Ty::Msg(M::Raw), keep: false, inline: false },
            F { tag: 8, name: "subresource", ty: Ty::Str, keep: false, inline: false },
        ],
        "meta::v1::LabelSelector" => &[
            F { tag: 1, name: "matchLabels", ty: Ty::MapStr, keep: false, inline: false },
            F { tag: 2, name: "matchExpressions", ty: Ty::RepMsg(M::S("meta::v1::LabelSelectorRequirement")), keep: false, inline: false },
        ],
        "core::v1::PodTemplateSpec" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("core::v1::PodSpec")), keep: false, inline: false },
        ],
        "apps::v1::DeploymentStrategy" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "rollingUpdate", ty: Ty::Msg(M::S("apps::v1::RollingUpdateDeployment")), keep: false, inline: false },
        ],
        "apps::v1::DeploymentCondition" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "status", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "lastUpdateTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 7, name: "lastTransitionTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 4, name: "reason", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "message", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::PersistentVolumeClaim" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("core::v1::PersistentVolumeClaimSpec")), keep: false, inline: false },
            F { tag: 3, name: "status", ty: Ty::Msg(M::S("core::v1::PersistentVolumeClaimStatus")), keep: false, inline: false },
        ],
        "apps::v1::StatefulSetUpdateStrategy" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "rollingUpdate", ty: Ty::Msg(M::S("apps::v1::RollingUpdateStatefulSetStrategy")), keep: false, inline: false },
        ],
        "apps::v1::StatefulSetPersistentVolumeClaimRetentionPolicy" => &[
            F { tag: 1, name: "whenDeleted", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "whenScaled", ty: Ty::Str, keep: false, inline: false },
        ],
        "apps::v1::StatefulSetOrdinals" => &[
            F { tag: 1, name: "start", ty: Ty::I32, keep: false, inline: false },
        ],
        "apps::v1::StatefulSetCondition" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "status", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "lastTransitionTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 4, name: "reason", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "message", ty: Ty::Str, keep: false, inline: false },
        ],
        "apps::v1::DaemonSetUpdateStrategy" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "rollingUpdate", ty: Ty::Msg(M::S("apps::v1::RollingUpdateDaemonSet")), keep: false, inline: false },
        ],
        "apps::v1::DaemonSetCondition" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "status", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "lastTransitionTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 4, name: "reason", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "message", ty: Ty::Str, keep: false, inline: false },
        ],
        "apps::v1::ReplicaSetCondition" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "status", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "lastTransitionTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 4, name: "reason", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "message", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::NamespaceCondition" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "status", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "lastTransitionTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 5, name: "reason", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "message", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ServicePort" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "protocol", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "appProtocol", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "port", ty: Ty::I32, keep: true, inline: false },
            F { tag: 4, name: "targetPort", ty: Ty::Msg(M::IntOrString), keep: false, inline: false },
            F { tag: 5, name: "nodePort", ty: Ty::I32, keep: false, inline: false },
        ],
        "core::v1::SessionAffinityConfig" => &[
            F { tag: 1, name: "clientIP", ty: Ty::Msg(M::S("core::v1::ClientIpConfig")), keep: false, inline: false },
        ],
        "core::v1::LoadBalancerStatus" => &[
            F { tag: 1, name: "ingress", ty: Ty::RepMsg(M::S("core::v1::LoadBalancerIngress")), keep: false, inline: false },
        ],
        "meta::v1::Condition" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "status", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "observedGeneration", ty: Ty::I64, keep: false, inline: false },
            F { tag: 4, name: "lastTransitionTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 5, name: "reason", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "message", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ScopeSelector" => &[
            F { tag: 1, name: "matchExpressions", ty: Ty::RepMsg(M::S("core::v1::ScopedResourceSelectorRequirement")), keep: false, inline: false },
        ],
        "core::v1::Volume" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "volumeSource", ty: Ty::Msg(M::S("core::v1::VolumeSource")), keep: false, inline: true },
        ],
        "core::v1::Container" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "image", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "command", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 4, name: "args", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 5, name: "workingDir", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "ports", ty: Ty::RepMsg(M::S("core::v1::ContainerPort")), keep: false, inline: false },
            F { tag: 19, name: "envFrom", ty: Ty::RepMsg(M::S("core::v1::EnvFromSource")), keep: false, inline: false },
            F { tag: 7, name: "env", ty: Ty::RepMsg(M::S("core::v1::EnvVar")), keep: false, inline: false },
            F { tag: 8, name: "resources", ty: Ty::Msg(M::S("core::v1::ResourceRequirements")), keep: false, inline: false },
            F { tag: 23, name: "resizePolicy", ty: Ty::RepMsg(M::S("core::v1::ContainerResizePolicy")), keep: false, inline: false },
            F { tag: 24, name: "restartPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 25, name: "restartPolicyRules", ty: Ty::RepMsg(M::S("core::v1::ContainerRestartRule")), keep: false, inline: false },
            F { tag: 9, name: "volumeMounts", ty: Ty::RepMsg(M::S("core::v1::VolumeMount")), keep: false, inline: false },
            F { tag: 21, name: "volumeDevices", ty: Ty::RepMsg(M::S("core::v1::VolumeDevice")), keep: false, inline: false },
            F { tag: 10, name: "livenessProbe", ty: Ty::Msg(M::S("core::v1::Probe")), keep: false, inline: false },
            F { tag: 11, name: "readinessProbe", ty: Ty::Msg(M::S("core::v1::Probe")), keep: false, inline: false },
            F { tag: 22, name: "startupProbe", ty: Ty::Msg(M::S("core::v1::Probe")), keep: false, inline: false },
            F { tag: 12, name: "lifecycle", ty: Ty::Msg(M::S("core::v1::Lifecycle")), keep: false, inline: false },
            F { tag: 13, name: "terminationMessagePath", ty: Ty::Str, keep: false, inline: false },
            F { tag: 20, name: "terminationMessagePolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 14, name: "imagePullPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 15, name: "securityContext", ty: Ty::Msg(M::S("core::v1::SecurityContext")), keep: false, inline: false },
            F { tag: 16, name: "stdin", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 17, name: "stdinOnce", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 18, name: "tty", ty: Ty::Bool, keep: false, inline: false },
        ],
        "core::v1::EphemeralContainer" => &[
            F { tag: 1, name: "ephemeralContainerCommon", ty: Ty::Msg(M::S("core::v1::EphemeralContainerCommon")), keep: false, inline: true },
            F { tag: 2, name: "targetContainerName", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::PodSecurityContext" => &[
            F { tag: 1, name: "seLinuxOptions", ty: Ty::Msg(M::S("core::v1::SeLinuxOptions")), keep: false, inline: false },
            F { tag: 8, name: "windowsOptions", ty: Ty::Msg(M::S("core::v1::WindowsSecurityContextOptions")), keep: false, inline: false },
            F { tag: 2, name: "runAsUser", ty: Ty::I64, keep: true, inline: false },
            F { tag: 6, name: "runAsGroup", ty: Ty::I64, keep: true, inline: false },
            F { tag: 3, name: "runAsNonRoot", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 4, name: "supplementalGroups", ty: Ty::RepI64, keep: false, inline: false },
            F { tag: 12, name: "supplementalGroupsPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "fsGroup", ty: Ty::I64, keep: true, inline: false },
            F { tag: 7, name: "sysctls", ty: Ty::RepMsg(M::S("core::v1::Sysctl")), keep: false, inline: false },
            F { tag: 9, name: "fsGroupChangePolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 10, name: "seccompProfile", ty: Ty::Msg(M::S("core::v1::SeccompProfile")), keep: false, inline: false },
            F { tag: 11, name: "appArmorProfile", ty: Ty::Msg(M::S("core::v1::AppArmorProfile")), keep: false, inline: false },
            F { tag: 13, name: "seLinuxChangePolicy", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::Affinity" => &[
            F { tag: 1, name: "nodeAffinity", ty: Ty::Msg(M::S("core::v1::NodeAffinity")), keep: false, inline: false },
            F { tag: 2, name: "podAffinity", ty: Ty::Msg(M::S("core::v1::PodAffinity")), keep: false, inline: false },
            F { tag: 3, name: "podAntiAffinity", ty: Ty::Msg(M::S("core::v1::PodAntiAffinity")), keep: false, inline: false },
        ],
        "core::v1::Toleration" => &[
            F { tag: 1, name: "key", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "operator", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "value", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "effect", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "tolerationSeconds", ty: Ty::I64, keep: false, inline: false },
        ],
        "core::v1::HostAlias" => &[
            F { tag: 1, name: "ip", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "hostnames", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "core::v1::PodDnsConfig" => &[
            F { tag: 1, name: "nameservers", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 2, name: "searches", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 3, name: "options", ty: Ty::RepMsg(M::S("core::v1::PodDnsConfigOption")), keep: false, inline: false },
        ],
        "core::v1::PodReadinessGate" => &[
            F { tag: 1, name: "conditionType", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::TopologySpreadConstraint" => &[
            F { tag: 1, name: "maxSkew", ty: Ty::I32, keep: false, inline: false },
            F { tag: 2, name: "topologyKey", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "whenUnsatisfiable", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "labelSelector", ty: Ty::Msg(M::S("meta::v1::LabelSelector")), keep: false, inline: false },
            F { tag: 5, name: "minDomains", ty: Ty::I32, keep: false, inline: false },
            F { tag: 6, name: "nodeAffinityPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "nodeTaintsPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 8, name: "matchLabelKeys", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "core::v1::PodOs" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::PodSchedulingGate" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::PodResourceClaim" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "resourceClaimName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "resourceClaimTemplateName", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ResourceRequirements" => &[
            F { tag: 1, name: "limits", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 2, name: "requests", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 3, name: "claims", ty: Ty::RepMsg(M::S("core::v1::ResourceClaim")), keep: false, inline: false },
        ],
        "core::v1::WorkloadReference" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "podGroup", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "podGroupReplicaKey", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::PodCondition" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "observedGeneration", ty: Ty::I64, keep: false, inline: false },
            F { tag: 2, name: "status", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "lastProbeTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 4, name: "lastTransitionTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 5, name: "reason", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "message", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::HostIp" => &[
            F { tag: 1, name: "ip", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::PodIp" => &[
            F { tag: 1, name: "ip", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ContainerStatus" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "state", ty: Ty::Msg(M::S("core::v1::ContainerState")), keep: false, inline: false },
            F { tag: 3, name: "lastState", ty: Ty::Msg(M::S("core::v1::ContainerState")), keep: false, inline: false },
            F { tag: 4, name: "ready", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 5, name: "restartCount", ty: Ty::I32, keep: false, inline: false },
            F { tag: 6, name: "image", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "imageID", ty: Ty::Str, keep: false, inline: false },
            F { tag: 8, name: "containerID", ty: Ty::Str, keep: false, inline: false },
            F { tag: 9, name: "started", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 10, name: "allocatedResources", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 11, name: "resources", ty: Ty::Msg(M::S("core::v1::ResourceRequirements")), keep: false, inline: false },
            F { tag: 12, name: "volumeMounts", ty: Ty::RepMsg(M::S("core::v1::VolumeMountStatus")), keep: false, inline: false },
            F { tag: 13, name: "user", ty: Ty::Msg(M::S("core::v1::ContainerUser")), keep: false, inline: false },
            F { tag: 14, name: "allocatedResourcesStatus", ty: Ty::RepMsg(M::S("core::v1::ResourceStatus")), keep: false, inline: false },
            F { tag: 15, name: "stopSignal", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::PodResourceClaimStatus" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "resourceClaimName", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::PodExtendedResourceClaimStatus" => &[
            F { tag: 1, name: "requestMappings", ty: Ty::RepMsg(M::S("core::v1::ContainerExtendedResourceRequest")), keep: false, inline: false },
            F { tag: 2, name: "resourceClaimName", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::LimitRangeItem" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "max", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 3, name: "min", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 4, name: "default", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 5, name: "defaultRequest", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 6, name: "maxLimitRequestRatio", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
        ],
        "batch::v1::PodFailurePolicy" => &[
            F { tag: 1, name: "rules", ty: Ty::RepMsg(M::S("batch::v1::PodFailurePolicyRule")), keep: false, inline: false },
        ],
        "batch::v1::SuccessPolicy" => &[
            F { tag: 1, name: "rules", ty: Ty::RepMsg(M::S("batch::v1::SuccessPolicyRule")), keep: false, inline: false },
        ],
        "batch::v1::JobCondition" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "status", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "lastProbeTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 4, name: "lastTransitionTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 5, name: "reason", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "message", ty: Ty::Str, keep: false, inline: false },
        ],
        "batch::v1::UncountedTerminatedPods" => &[
            F { tag: 1, name: "succeeded", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 2, name: "failed", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "batch::v1::JobTemplateSpec" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("batch::v1::JobSpec")), keep: false, inline: false },
        ],
        "authorization::v1::ResourceAttributes" => &[
            F { tag: 1, name: "namespace", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "verb", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "group", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "version", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "resource", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "subresource", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 8, name: "fieldSelector", ty: Ty::Msg(M::S("authorization::v1::FieldSelectorAttributes")), keep: false, inline: false },
            F { tag: 9, name: "labelSelector", ty: Ty::Msg(M::S("authorization::v1::LabelSelectorAttributes")), keep: false, inline: false },
        ],
        "authorization::v1::NonResourceAttributes" => &[
            F { tag: 1, name: "path", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "verb", ty: Ty::Str, keep: false, inline: false },
        ],
        "authorization::v1::ResourceRule" => &[
            F { tag: 1, name: "verbs", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 2, name: "apiGroups", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 3, name: "resources", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 4, name: "resourceNames", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "authorization::v1::NonResourceRule" => &[
            F { tag: 1, name: "verbs", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 2, name: "nonResourceURLs", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "authorization::v1::ExtraValue" => &[
            F { tag: 1, name: "items", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "authentication::v1::UserInfo" => &[
            F { tag: 1, name: "username", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "uid", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "groups", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 4, name: "extra", ty: Ty::MapMsg(M::S("authentication::v1::ExtraValue")), keep: false, inline: false },
        ],
        "authentication::v1::BoundObjectReference" => &[
            F { tag: 1, name: "kind", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "apiVersion", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "uid", ty: Ty::Str, keep: false, inline: false },
        ],
        "networking::v1::IngressBackend" => &[
            F { tag: 4, name: "service", ty: Ty::Msg(M::S("networking::v1::IngressServiceBackend")), keep: false, inline: false },
            F { tag: 3, name: "resource", ty: Ty::Msg(M::S("core::v1::TypedLocalObjectReference")), keep: false, inline: false },
        ],
        "networking::v1::IngressTls" => &[
            F { tag: 1, name: "hosts", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 2, name: "secretName", ty: Ty::Str, keep: false, inline: false },
        ],
        "networking::v1::IngressRule" => &[
            F { tag: 1, name: "host", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "ingressRuleValue", ty: Ty::Msg(M::S("networking::v1::IngressRuleValue")), keep: false, inline: true },
        ],
        "networking::v1::IngressLoadBalancerStatus" => &[
            F { tag: 1, name: "ingress", ty: Ty::RepMsg(M::S("networking::v1::IngressLoadBalancerIngress")), keep: false, inline: false },
        ],
        "meta::v1::LabelSelectorRequirement" => &[
            F { tag: 1, name: "key", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "operator", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "values", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "apps::v1::RollingUpdateDeployment" => &[
            F { tag: 1, name: "maxUnavailable", ty: Ty::Msg(M::IntOrString), keep: false, inline: false },
            F { tag: 2, name: "maxSurge", ty: Ty::Msg(M::IntOrString), keep: false, inline: false },
        ],
        "core::v1::PersistentVolumeClaimSpec" => &[
            F { tag: 1, name: "accessModes", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 4, name: "selector", ty: Ty::Msg(M::S("meta::v1::LabelSelector")), keep: false, inline: false },
            F { tag: 2, name: "resources", ty: Ty::Msg(M::S("core::v1::VolumeResourceRequirements")), keep: false, inline: false },
            F { tag: 3, name: "volumeName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "storageClassName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "volumeMode", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "dataSource", ty: Ty::Msg(M::S("core::v1::TypedLocalObjectReference")), keep: false, inline: false },
            F { tag: 8, name: "dataSourceRef", ty: Ty::Msg(M::S("core::v1::TypedObjectReference")), keep: false, inline: false },
            F { tag: 9, name: "volumeAttributesClassName", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::PersistentVolumeClaimStatus" => &[
            F { tag: 1, name: "phase", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "accessModes", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 3, name: "capacity", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 4, name: "conditions", ty: Ty::RepMsg(M::S("core::v1::PersistentVolumeClaimCondition")), keep: false, inline: false },
            F { tag: 5, name: "allocatedResources", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 7, name: "allocatedResourceStatuses", ty: Ty::MapStr, keep: false, inline: false },
            F { tag: 8, name: "currentVolumeAttributesClassName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 9, name: "modifyVolumeStatus", ty: Ty::Msg(M::S("core::v1::ModifyVolumeStatus")), keep: false, inline: false },
        ],
        "apps::v1::RollingUpdateStatefulSetStrategy" => &[
            F { tag: 1, name: "partition", ty: Ty::I32, keep: false, inline: false },
            F { tag: 2, name: "maxUnavailable", ty: Ty::Msg(M::IntOrString), keep: false, inline: false },
        ],
        "apps::v1::RollingUpdateDaemonSet" => &[
            F { tag: 1, name: "maxUnavailable", ty: Ty::Msg(M::IntOrString), keep: false, inline: false },
            F { tag: 2, name: "maxSurge", ty: Ty::Msg(M::IntOrString), keep: false, inline: false },
        ],
        "core::v1::ClientIpConfig" => &[
            F { tag: 1, name: "timeoutSeconds", ty: Ty::I32, keep: false, inline: false },
        ],
        "core::v1::LoadBalancerIngress" => &[
            F { tag: 1, name: "ip", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "hostname", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "ipMode", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "ports", ty: Ty::RepMsg(M::S("core::v1::PortStatus")), keep: false, inline: false },
        ],
        "core::v1::ScopedResourceSelectorRequirement" => &[
            F { tag: 1, name: "scopeName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "operator", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "values", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "core::v1::VolumeSource" => &[
            F { tag: 1, name: "hostPath", ty: Ty::Msg(M::S("core::v1::HostPathVolumeSource")), keep: false, inline: false },
            F { tag: 2, name: "emptyDir", ty: Ty::Msg(M::S("core::v1::EmptyDirVolumeSource")), keep: false, inline: false },
            F { tag: 3, name: "gcePersistentDisk", ty: Ty::Msg(M::S("core::v1::GcePersistentDiskVolumeSource")), keep: false, inline: false },
            F { tag: 4, name: "awsElasticBlockStore", ty: Ty::Msg(M::S("core::v1::AwsElasticBlockStoreVolumeSource")), keep: false, inline: false },
            F { tag: 5, name: "gitRepo", ty: Ty::Msg(M::S("core::v1::GitRepoVolumeSource")), keep: false, inline: false },
            F { tag: 6, name: "secret", ty: Ty::Msg(M::S("core::v1::SecretVolumeSource")), keep: false, inline: false },
            F { tag: 7, name: "nfs", ty: Ty::Msg(M::S("core::v1::NfsVolumeSource")), keep: false, inline: false },
            F { tag: 8, name: "iscsi", ty: Ty::Msg(M::S("core::v1::IscsiVolumeSource")), keep: false, inline: false },
            F { tag: 9, name: "glusterfs", ty: Ty::Msg(M::S("core::v1::GlusterfsVolumeSource")), keep: false, inline: false },
            F { tag: 10, name: "persistentVolumeClaim", ty: Ty::Msg(M::S("core::v1::PersistentVolumeClaimVolumeSource")), keep: false, inline: false },
            F { tag: 11, name: "rbd", ty: Ty::Msg(M::S("core::v1::RbdVolumeSource")), keep: false, inline: false },
            F { tag: 12, name: "flexVolume", ty: Ty::Msg(M::S("core::v1::FlexVolumeSource")), keep: false, inline: false },
            F { tag: 13, name: "cinder", ty: Ty::Msg(M::S("core::v1::CinderVolumeSource")), keep: false, inline: false },
            F { tag: 14, name: "cephfs", ty: Ty::Msg(M::S("core::v1::CephFsVolumeSource")), keep: false, inline: false },
            F { tag: 15, name: "flocker", ty: Ty::Msg(M::S("core::v1::FlockerVolumeSource")), keep: false, inline: false },
            F { tag: 16, name: "downwardAPI", ty: Ty::Msg(M::S("core::v1::DownwardAPIVolumeSource")), keep: false, inline: false },
            F { tag: 17, name: "fc", ty: Ty::Msg(M::S("core::v1::FcVolumeSource")), keep: false, inline: false },
            F { tag: 18, name: "azureFile", ty: Ty::Msg(M::S("core::v1::AzureFileVolumeSource")), keep: false, inline: false },
            F { tag: 19, name: "configMap", ty: Ty::Msg(M::S("core::v1::ConfigMapVolumeSource")), keep: false, inline: false },
            F { tag: 20, name: "vsphereVolume", ty: Ty::Msg(M::S("core::v1::VsphereVirtualDiskVolumeSource")), keep: false, inline: false },
            F { tag: 21, name: "quobyte", ty: Ty::Msg(M::S("core::v1::QuobyteVolumeSource")), keep: false, inline: false },
            F { tag: 22, name: "azureDisk", ty: Ty::Msg(M::S("core::v1::AzureDiskVolumeSource")), keep: false, inline: false },
            F { tag: 23, name: "photonPersistentDisk", ty: Ty::Msg(M::S("core::v1::PhotonPersistentDiskVolumeSource")), keep: false, inline: false },
            F { tag: 26, name: "projected", ty: Ty::Msg(M::S("core::v1::ProjectedVolumeSource")), keep: false, inline: false },
            F { tag: 24, name: "portworxVolume", ty: Ty::Msg(M::S("core::v1::PortworxVolumeSource")), keep: false, inline: false },
            F { tag: 25, name: "scaleIO", ty: Ty::Msg(M::S("core::v1::ScaleIoVolumeSource")), keep: false, inline: false },
            F { tag: 27, name: "storageos", ty: Ty::Msg(M::S("core::v1::StorageOsVolumeSource")), keep: false, inline: false },
            F { tag: 28, name: "csi", ty: Ty::Msg(M::S("core::v1::CSIVolumeSource")), keep: false, inline: false },
            F { tag: 29, name: "ephemeral", ty: Ty::Msg(M::S("core::v1::EphemeralVolumeSource")), keep: false, inline: false },
            F { tag: 30, name: "image", ty: Ty::Msg(M::S("core::v1::ImageVolumeSource")), keep: false, inline: false },
        ],
        "core::v1::ContainerPort" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "hostPort", ty: Ty::I32, keep: false, inline: false },
            F { tag: 3, name: "containerPort", ty: Ty::I32, keep: true, inline: false },
            F { tag: 4, name: "protocol", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "hostIP", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::EnvFromSource" => &[
            F { tag: 1, name: "prefix", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "configMapRef", ty: Ty::Msg(M::S("core::v1::ConfigMapEnvSource")), keep: false, inline: false },
            F { tag: 3, name: "secretRef", ty: Ty::Msg(M::S("core::v1::SecretEnvSource")), keep: false, inline: false },
        ],
        "core::v1::EnvVar" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "value", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "valueFrom", ty: Ty::Msg(M::S("core::v1::EnvVarSource")), keep: false, inline: false },
        ],
        "core::v1::ContainerResizePolicy" => &[
            F { tag: 1, name: "resourceName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "restartPolicy", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ContainerRestartRule" => &[
            F { tag: 1, name: "action", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "exitCodes", ty: Ty::Msg(M::S("core::v1::ContainerRestartRuleOnExitCodes")), keep: false, inline: false },
        ],
        "core::v1::VolumeMount" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 7, name: "recursiveReadOnly", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "mountPath", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "subPath", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "mountPropagation", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "subPathExpr", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::VolumeDevice" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "devicePath", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::Probe" => &[
            F { tag: 1, name: "handler", ty: Ty::Msg(M::S("core::v1::ProbeHandler")), keep: false, inline: false },
            F { tag: 2, name: "initialDelaySeconds", ty: Ty::I32, keep: false, inline: false },
            F { tag: 3, name: "timeoutSeconds", ty: Ty::I32, keep: false, inline: false },
            F { tag: 4, name: "periodSeconds", ty: Ty::I32, keep: false, inline: false },
            F { tag: 5, name: "successThreshold", ty: Ty::I32, keep: false, inline: false },
            F { tag: 6, name: "failureThreshold", ty: Ty::I32, keep: false, inline: false },
            F { tag: 7, name: "terminationGracePeriodSeconds", ty: Ty::I64, keep: true, inline: false },
        ],
        "core::v1::Lifecycle" => &[
            F { tag: 1, name: "postStart", ty: Ty::Msg(M::S("core::v1::LifecycleHandler")), keep: false, inline: false },
            F { tag: 2, name: "preStop", ty: Ty::Msg(M::S("core::v1::LifecycleHandler")), keep: false, inline: false },
            F { tag: 3, name: "stopSignal", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::SecurityContext" => &[
            F { tag: 1, name: "capabilities", ty: Ty::Msg(M::S("core::v1::Capabilities")), keep: false, inline: false },
            F { tag: 2, name: "privileged", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 3, name: "seLinuxOptions", ty: Ty::Msg(M::S("core::v1::SeLinuxOptions")), keep: false, inline: false },
            F { tag: 10, name: "windowsOptions", ty: Ty::Msg(M::S("core::v1::WindowsSecurityContextOptions")), keep: false, inline: false },
            F { tag: 4, name: "runAsUser", ty: Ty::I64, keep: true, inline: false },
            F { tag: 8, name: "runAsGroup", ty: Ty::I64, keep: true, inline: false },
            F { tag: 5, name: "runAsNonRoot", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 6, name: "readOnlyRootFilesystem", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 7, name: "allowPrivilegeEscalation", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 9, name: "procMount", ty: Ty::Str, keep: false, inline: false },
            F { tag: 11, name: "seccompProfile", ty: Ty::Msg(M::S("core::v1::SeccompProfile")), keep: false, inline: false },
            F { tag: 12, name: "appArmorProfile", ty: Ty::Msg(M::S("core::v1::AppArmorProfile")), keep: false, inline: false },
        ],
        "core::v1::EphemeralContainerCommon" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "image", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "command", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 4, name: "args", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 5, name: "workingDir", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "ports", ty: Ty::RepMsg(M::S("core::v1::ContainerPort")), keep: false, inline: false },
            F { tag: 19, name: "envFrom", ty: Ty::RepMsg(M::S("core::v1::EnvFromSource")), keep: false, inline: false },
            F { tag: 7, name: "env", ty: Ty::RepMsg(M::S("core::v1::EnvVar")), keep: false, inline: false },
            F { tag: 8, name: "resources", ty: Ty::Msg(M::S("core::v1::ResourceRequirements")), keep: false, inline: false },
            F { tag: 23, name: "resizePolicy", ty: Ty::RepMsg(M::S("core::v1::ContainerResizePolicy")), keep: false, inline: false },
            F { tag: 24, name: "restartPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 25, name: "restartPolicyRules", ty: Ty::RepMsg(M::S("core::v1::ContainerRestartRule")), keep: false, inline: false },
            F { tag: 9, name: "volumeMounts", ty: Ty::RepMsg(M::S("core::v1::VolumeMount")), keep: false, inline: false },
            F { tag: 21, name: "volumeDevices", ty: Ty::RepMsg(M::S("core::v1::VolumeDevice")), keep: false, inline: false },
            F { tag: 10, name: "livenessProbe", ty: Ty::Msg(M::S("core::v1::Probe")), keep: false, inline: false },
            F { tag: 11, name: "readinessProbe", ty: Ty::Msg(M::S("core::v1::Probe")), keep: false, inline: false },
            F { tag: 22, name: "startupProbe", ty: Ty::Msg(M::S("core::v1::Probe")), keep: false, inline: false },
            F { tag: 12, name: "lifecycle", ty: Ty::Msg(M::S("core::v1::Lifecycle")), keep: false, inline: false },
            F { tag: 13, name: "terminationMessagePath", ty: Ty::Str, keep: false, inline: false },
            F { tag: 20, name: "terminationMessagePolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 14, name: "imagePullPolicy", ty: Ty::Str, keep: false, inline: false },
            F { tag: 15, name: "securityContext", ty: Ty::Msg(M::S("core::v1::SecurityContext")), keep: false, inline: false },
            F { tag: 16, name: "stdin", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 17, name: "stdinOnce", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 18, name: "tty", ty: Ty::Bool, keep: false, inline: false },
        ],
        "core::v1::SeLinuxOptions" => &[
            F { tag: 1, name: "user", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "role", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "level", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::WindowsSecurityContextOptions" => &[
            F { tag: 1, name: "gmsaCredentialSpecName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "gmsaCredentialSpec", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "runAsUserName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "hostProcess", ty: Ty::Bool, keep: false, inline: false },
        ],
        "core::v1::Sysctl" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "value", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::SeccompProfile" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "localhostProfile", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::AppArmorProfile" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "localhostProfile", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::NodeAffinity" => &[
            F { tag: 1, name: "requiredDuringSchedulingIgnoredDuringExecution", ty: Ty::Msg(M::S("core::v1::NodeSelector")), keep: false, inline: false },
            F { tag: 2, name: "preferredDuringSchedulingIgnoredDuringExecution", ty: Ty::RepMsg(M::S("core::v1::PreferredSchedulingTerm")), keep: false, inline: false },
        ],
        "core::v1::PodAffinity" => &[
            F { tag: 1, name: "requiredDuringSchedulingIgnoredDuringExecution", ty: Ty::RepMsg(M::S("core::v1::PodAffinityTerm")), keep: false, inline: false },
            F { tag: 2, name: "preferredDuringSchedulingIgnoredDuringExecution", ty: Ty::RepMsg(M::S("core::v1::WeightedPodAffinityTerm")), keep: false, inline: false },
        ],
        "core::v1::PodAntiAffinity" => &[
            F { tag: 1, name: "requiredDuringSchedulingIgnoredDuringExecution", ty: Ty::RepMsg(M::S("core::v1::PodAffinityTerm")), keep: false, inline: false },
            F { tag: 2, name: "preferredDuringSchedulingIgnoredDuringExecution", ty: Ty::RepMsg(M::S("core::v1::WeightedPodAffinityTerm")), keep: false, inline: false },
        ],
        "core::v1::PodDnsConfigOption" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "value", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ResourceClaim" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "request", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ContainerState" => &[
            F { tag: 1, name: "waiting", ty: Ty::Msg(M::S("core::v1::ContainerStateWaiting")), keep: false, inline: false },
            F { tag: 2, name: "running", ty: Ty::Msg(M::S("core::v1::ContainerStateRunning")), keep: false, inline: false },
            F { tag: 3, name: "terminated", ty: Ty::Msg(M::S("core::v1::ContainerStateTerminated")), keep: false, inline: false },
        ],
        "core::v1::VolumeMountStatus" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "mountPath", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 4, name: "recursiveReadOnly", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ContainerUser" => &[
            F { tag: 1, name: "linux", ty: Ty::Msg(M::S("core::v1::LinuxContainerUser")), keep: false, inline: false },
        ],
        "core::v1::ResourceStatus" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "resources", ty: Ty::RepMsg(M::S("core::v1::ResourceHealth")), keep: false, inline: false },
        ],
        "core::v1::ContainerExtendedResourceRequest" => &[
            F { tag: 1, name: "containerName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "resourceName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "requestName", ty: Ty::Str, keep: false, inline: false },
        ],
        "batch::v1::PodFailurePolicyRule" => &[
            F { tag: 1, name: "action", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "onExitCodes", ty: Ty::Msg(M::S("batch::v1::PodFailurePolicyOnExitCodesRequirement")), keep: false, inline: false },
            F { tag: 3, name: "onPodConditions", ty: Ty::RepMsg(M::S("batch::v1::PodFailurePolicyOnPodConditionsPattern")), keep: false, inline: false },
        ],
        "batch::v1::SuccessPolicyRule" => &[
            F { tag: 1, name: "succeededIndexes", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "succeededCount", ty: Ty::I32, keep: false, inline: false },
        ],
        "authorization::v1::FieldSelectorAttributes" => &[
            F { tag: 1, name: "rawSelector", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "requirements", ty: Ty::RepMsg(M::S("meta::v1::FieldSelectorRequirement")), keep: false, inline: false },
        ],
        "authorization::v1::LabelSelectorAttributes" => &[
            F { tag: 1, name: "rawSelector", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "requirements", ty: Ty::RepMsg(M::S("meta::v1::LabelSelectorRequirement")), keep: false, inline: false },
        ],
        "authentication::v1::ExtraValue" => &[
            F { tag: 1, name: "items", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "networking::v1::IngressServiceBackend" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "port", ty: Ty::Msg(M::S("networking::v1::ServiceBackendPort")), keep: true, inline: false },
        ],
        "core::v1::TypedLocalObjectReference" => &[
            F { tag: 1, name: "apiGroup", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "kind", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "name", ty: Ty::Str, keep: false, inline: false },
        ],
        "networking::v1::IngressRuleValue" => &[
            F { tag: 1, name: "http", ty: Ty::Msg(M::S("networking::v1::HttpIngressRuleValue")), keep: false, inline: false },
        ],
        "networking::v1::IngressLoadBalancerIngress" => &[
            F { tag: 1, name: "ip", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "hostname", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "ports", ty: Ty::RepMsg(M::S("networking::v1::IngressPortStatus")), keep: false, inline: false },
        ],
        "core::v1::VolumeResourceRequirements" => &[
            F { tag: 1, name: "limits", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
            F { tag: 2, name: "requests", ty: Ty::MapMsg(M::Quantity), keep: false, inline: false },
        ],
        "core::v1::TypedObjectReference" => &[
            F { tag: 1, name: "apiGroup", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "kind", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "namespace", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::PersistentVolumeClaimCondition" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "status", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "lastProbeTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 4, name: "lastTransitionTime", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 5, name: "reason", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "message", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ModifyVolumeStatus" => &[
            F { tag: 1, name: "targetVolumeAttributesClassName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "status", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::PortStatus" => &[
            F { tag: 1, name: "port", ty: Ty::I32, keep: true, inline: false },
            F { tag: 2, name: "protocol", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "error", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::HostPathVolumeSource" => &[
            F { tag: 1, name: "path", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "type", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::EmptyDirVolumeSource" => &[
            F { tag: 1, name: "medium", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "sizeLimit", ty: Ty::Msg(M::Quantity), keep: false, inline: false },
        ],
        "core::v1::GcePersistentDiskVolumeSource" => &[
            F { tag: 1, name: "pdName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "fsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "partition", ty: Ty::I32, keep: false, inline: false },
            F { tag: 4, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
        ],
        "core::v1::AwsElasticBlockStoreVolumeSource" => &[
            F { tag: 1, name: "volumeID", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "fsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "partition", ty: Ty::I32, keep: false, inline: false },
            F { tag: 4, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
        ],
        "core::v1::GitRepoVolumeSource" => &[
            F { tag: 1, name: "repository", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "revision", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "directory", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::SecretVolumeSource" => &[
            F { tag: 1, name: "secretName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "items", ty: Ty::RepMsg(M::S("core::v1::KeyToPath")), keep: false, inline: false },
            F { tag: 3, name: "defaultMode", ty: Ty::I32, keep: true, inline: false },
            F { tag: 4, name: "optional", ty: Ty::Bool, keep: true, inline: false },
        ],
        "core::v1::NfsVolumeSource" => &[
            F { tag: 1, name: "server", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "path", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
        ],
        "core::v1::IscsiVolumeSource" => &[
            F { tag: 1, name: "targetPortal", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "iqn", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "lun", ty: Ty::I32, keep: false, inline: false },
            F { tag: 4, name: "iscsiInterface", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "fsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 7, name: "portals", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 8, name: "chapAuthDiscovery", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 11, name: "chapAuthSession", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 10, name: "secretRef", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: false },
            F { tag: 12, name: "initiatorName", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::GlusterfsVolumeSource" => &[
            F { tag: 1, name: "endpoints", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "path", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
        ],
        "core::v1::PersistentVolumeClaimVolumeSource" => &[
            F { tag: 1, name: "claimName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
        ],
        "core::v1::RbdVolumeSource" => &[
            F { tag: 1, name: "monitors", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 2, name: "image", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "fsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "pool", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "user", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "keyring", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "secretRef", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: false },
            F { tag: 8, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
        ],
        "core::v1::FlexVolumeSource" => &[
            F { tag: 1, name: "driver", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "fsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "secretRef", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: false },
            F { tag: 4, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 5, name: "options", ty: Ty::MapStr, keep: false, inline: false },
        ],
        "core::v1::CinderVolumeSource" => &[
            F { tag: 1, name: "volumeID", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "fsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 4, name: "secretRef", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: false },
        ],
        "core::v1::CephFsVolumeSource" => &[
            F { tag: 1, name: "monitors", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 2, name: "path", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "user", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "secretFile", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "secretRef", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: false },
            F { tag: 6, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
        ],
        "core::v1::FlockerVolumeSource" => &[
            F { tag: 1, name: "datasetName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "datasetUUID", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::DownwardAPIVolumeSource" => &[
            F { tag: 1, name: "items", ty: Ty::RepMsg(M::S("core::v1::DownwardAPIVolumeFile")), keep: false, inline: false },
            F { tag: 2, name: "defaultMode", ty: Ty::I32, keep: true, inline: false },
        ],
        "core::v1::FcVolumeSource" => &[
            F { tag: 1, name: "targetWWNs", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 2, name: "lun", ty: Ty::I32, keep: false, inline: false },
            F { tag: 3, name: "fsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 5, name: "wwids", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "core::v1::AzureFileVolumeSource" => &[
            F { tag: 1, name: "secretName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "shareName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
        ],
        "core::v1::ConfigMapVolumeSource" => &[
            F { tag: 1, name: "localObjectReference", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: true },
            F { tag: 2, name: "items", ty: Ty::RepMsg(M::S("core::v1::KeyToPath")), keep: false, inline: false },
            F { tag: 3, name: "defaultMode", ty: Ty::I32, keep: true, inline: false },
            F { tag: 4, name: "optional", ty: Ty::Bool, keep: true, inline: false },
        ],
        "core::v1::VsphereVirtualDiskVolumeSource" => &[
            F { tag: 1, name: "volumePath", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "fsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "storagePolicyName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "storagePolicyID", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::QuobyteVolumeSource" => &[
            F { tag: 1, name: "registry", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "volume", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 4, name: "user", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "group", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "tenant", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::AzureDiskVolumeSource" => &[
            F { tag: 1, name: "diskName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "diskURI", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "cachingMode", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "fsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 6, name: "kind", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::PhotonPersistentDiskVolumeSource" => &[
            F { tag: 1, name: "pdID", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "fsType", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ProjectedVolumeSource" => &[
            F { tag: 1, name: "sources", ty: Ty::RepMsg(M::S("core::v1::VolumeProjection")), keep: false, inline: false },
            F { tag: 2, name: "defaultMode", ty: Ty::I32, keep: true, inline: false },
        ],
        "core::v1::PortworxVolumeSource" => &[
            F { tag: 1, name: "volumeID", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "fsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
        ],
        "core::v1::ScaleIoVolumeSource" => &[
            F { tag: 1, name: "gateway", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "system", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "secretRef", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: false },
            F { tag: 4, name: "sslEnabled", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 5, name: "protectionDomain", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "storagePool", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "storageMode", ty: Ty::Str, keep: false, inline: false },
            F { tag: 8, name: "volumeName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 9, name: "fsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 10, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
        ],
        "core::v1::StorageOsVolumeSource" => &[
            F { tag: 1, name: "volumeName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "volumeNamespace", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "fsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 5, name: "secretRef", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: false },
        ],
        "core::v1::CSIVolumeSource" => &[
            F { tag: 1, name: "driver", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "readOnly", ty: Ty::Bool, keep: false, inline: false },
            F { tag: 3, name: "fsType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "volumeAttributes", ty: Ty::MapStr, keep: false, inline: false },
            F { tag: 5, name: "nodePublishSecretRef", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: false },
        ],
        "core::v1::EphemeralVolumeSource" => &[
            F { tag: 1, name: "volumeClaimTemplate", ty: Ty::Msg(M::S("core::v1::PersistentVolumeClaimTemplate")), keep: false, inline: false },
        ],
        "core::v1::ImageVolumeSource" => &[
            F { tag: 1, name: "reference", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "pullPolicy", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ConfigMapEnvSource" => &[
            F { tag: 1, name: "localObjectReference", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: true },
            F { tag: 2, name: "optional", ty: Ty::Bool, keep: true, inline: false },
        ],
        "core::v1::SecretEnvSource" => &[
            F { tag: 1, name: "localObjectReference", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: true },
            F { tag: 2, name: "optional", ty: Ty::Bool, keep: true, inline: false },
        ],
        "core::v1::EnvVarSource" => &[
            F { tag: 1, name: "fieldRef", ty: Ty::Msg(M::S("core::v1::ObjectFieldSelector")), keep: false, inline: false },
            F { tag: 2, name: "resourceFieldRef", ty: Ty::Msg(M::S("core::v1::ResourceFieldSelector")), keep: false, inline: false },
            F { tag: 3, name: "configMapKeyRef", ty: Ty::Msg(M::S("core::v1::ConfigMapKeySelector")), keep: false, inline: false },
            F { tag: 4, name: "secretKeyRef", ty: Ty::Msg(M::S("core::v1::SecretKeySelector")), keep: false, inline: false },
            F { tag: 5, name: "fileKeyRef", ty: Ty::Msg(M::S("core::v1::FileKeySelector")), keep: false, inline: false },
        ],
        "core::v1::ContainerRestartRuleOnExitCodes" => &[
            F { tag: 1, name: "operator", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "values", ty: Ty::RepI32, keep: false, inline: false },
        ],
        "core::v1::ProbeHandler" => &[
            F { tag: 1, name: "exec", ty: Ty::Msg(M::S("core::v1::ExecAction")), keep: false, inline: false },
            F { tag: 2, name: "httpGet", ty: Ty::Msg(M::S("core::v1::HttpGetAction")), keep: false, inline: false },
            F { tag: 3, name: "tcpSocket", ty: Ty::Msg(M::S("core::v1::TcpSocketAction")), keep: false, inline: false },
            F { tag: 4, name: "grpc", ty: Ty::Msg(M::S("core::v1::GrpcAction")), keep: false, inline: false },
        ],
        "core::v1::LifecycleHandler" => &[
            F { tag: 1, name: "exec", ty: Ty::Msg(M::S("core::v1::ExecAction")), keep: false, inline: false },
            F { tag: 2, name: "httpGet", ty: Ty::Msg(M::S("core::v1::HttpGetAction")), keep: false, inline: false },
            F { tag: 3, name: "tcpSocket", ty: Ty::Msg(M::S("core::v1::TcpSocketAction")), keep: false, inline: false },
            F { tag: 4, name: "sleep", ty: Ty::Msg(M::S("core::v1::SleepAction")), keep: false, inline: false },
        ],
        "core::v1::Capabilities" => &[
            F { tag: 1, name: "add", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 2, name: "drop", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "core::v1::NodeSelector" => &[
            F { tag: 1, name: "nodeSelectorTerms", ty: Ty::RepMsg(M::S("core::v1::NodeSelectorTerm")), keep: false, inline: false },
        ],
        "core::v1::PreferredSchedulingTerm" => &[
            F { tag: 1, name: "weight", ty: Ty::I32, keep: false, inline: false },
            F { tag: 2, name: "preference", ty: Ty::Msg(M::S("core::v1::NodeSelectorTerm")), keep: false, inline: false },
        ],
        "core::v1::PodAffinityTerm" => &[
            F { tag: 1, name: "labelSelector", ty: Ty::Msg(M::S("meta::v1::LabelSelector")), keep: false, inline: false },
            F { tag: 2, name: "namespaces", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 3, name: "topologyKey", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "namespaceSelector", ty: Ty::Msg(M::S("meta::v1::LabelSelector")), keep: false, inline: false },
            F { tag: 5, name: "matchLabelKeys", ty: Ty::RepStr, keep: false, inline: false },
            F { tag: 6, name: "mismatchLabelKeys", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "core::v1::WeightedPodAffinityTerm" => &[
            F { tag: 1, name: "weight", ty: Ty::I32, keep: false, inline: false },
            F { tag: 2, name: "podAffinityTerm", ty: Ty::Msg(M::S("core::v1::PodAffinityTerm")), keep: false, inline: false },
        ],
        "core::v1::ContainerStateWaiting" => &[
            F { tag: 1, name: "reason", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "message", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ContainerStateRunning" => &[
            F { tag: 1, name: "startedAt", ty: Ty::Msg(M::Time), keep: false, inline: false },
        ],
        "core::v1::ContainerStateTerminated" => &[
            F { tag: 1, name: "exitCode", ty: Ty::I32, keep: false, inline: false },
            F { tag: 2, name: "signal", ty: Ty::I32, keep: false, inline: false },
            F { tag: 3, name: "reason", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "message", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "startedAt", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 6, name: "finishedAt", ty: Ty::Msg(M::Time), keep: false, inline: false },
            F { tag: 7, name: "containerID", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::LinuxContainerUser" => &[
            F { tag: 1, name: "uid", ty: Ty::I64, keep: false, inline: false },
            F { tag: 2, name: "gid", ty: Ty::I64, keep: false, inline: false },
            F { tag: 3, name: "supplementalGroups", ty: Ty::RepI64, keep: false, inline: false },
        ],
        "core::v1::ResourceHealth" => &[
            F { tag: 1, name: "resourceID", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "health", ty: Ty::Str, keep: false, inline: false },
        ],
        "batch::v1::PodFailurePolicyOnExitCodesRequirement" => &[
            F { tag: 1, name: "containerName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "operator", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "values", ty: Ty::RepI32, keep: false, inline: false },
        ],
        "batch::v1::PodFailurePolicyOnPodConditionsPattern" => &[
            F { tag: 1, name: "type", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "status", ty: Ty::Str, keep: false, inline: false },
        ],
        "meta::v1::FieldSelectorRequirement" => &[
            F { tag: 1, name: "key", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "operator", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "values", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "networking::v1::ServiceBackendPort" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "number", ty: Ty::I32, keep: false, inline: false },
        ],
        "networking::v1::HttpIngressRuleValue" => &[
            F { tag: 1, name: "paths", ty: Ty::RepMsg(M::S("networking::v1::HttpIngressPath")), keep: false, inline: false },
        ],
        "networking::v1::IngressPortStatus" => &[
            F { tag: 1, name: "port", ty: Ty::I32, keep: true, inline: false },
            F { tag: 2, name: "protocol", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "error", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::KeyToPath" => &[
            F { tag: 1, name: "key", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "path", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "mode", ty: Ty::I32, keep: true, inline: false },
        ],
        "core::v1::DownwardAPIVolumeFile" => &[
            F { tag: 1, name: "path", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "fieldRef", ty: Ty::Msg(M::S("core::v1::ObjectFieldSelector")), keep: false, inline: false },
            F { tag: 3, name: "resourceFieldRef", ty: Ty::Msg(M::S("core::v1::ResourceFieldSelector")), keep: false, inline: false },
            F { tag: 4, name: "mode", ty: Ty::I32, keep: true, inline: false },
        ],
        "core::v1::VolumeProjection" => &[
            F { tag: 1, name: "secret", ty: Ty::Msg(M::S("core::v1::SecretProjection")), keep: false, inline: false },
            F { tag: 2, name: "downwardAPI", ty: Ty::Msg(M::S("core::v1::DownwardAPIProjection")), keep: false, inline: false },
            F { tag: 3, name: "configMap", ty: Ty::Msg(M::S("core::v1::ConfigMapProjection")), keep: false, inline: false },
            F { tag: 4, name: "serviceAccountToken", ty: Ty::Msg(M::S("core::v1::ServiceAccountTokenProjection")), keep: false, inline: false },
            F { tag: 5, name: "clusterTrustBundle", ty: Ty::Msg(M::S("core::v1::ClusterTrustBundleProjection")), keep: false, inline: false },
            F { tag: 6, name: "podCertificate", ty: Ty::Msg(M::S("core::v1::PodCertificateProjection")), keep: false, inline: false },
        ],
        "core::v1::PersistentVolumeClaimTemplate" => &[
            F { tag: 1, name: "metadata", ty: Ty::Msg(M::S("meta::v1::ObjectMeta")), keep: false, inline: false },
            F { tag: 2, name: "spec", ty: Ty::Msg(M::S("core::v1::PersistentVolumeClaimSpec")), keep: false, inline: false },
        ],
        "core::v1::ObjectFieldSelector" => &[
            F { tag: 1, name: "apiVersion", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "fieldPath", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ResourceFieldSelector" => &[
            F { tag: 1, name: "containerName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "resource", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "divisor", ty: Ty::Msg(M::Quantity), keep: false, inline: false },
        ],
        "core::v1::ConfigMapKeySelector" => &[
            F { tag: 1, name: "localObjectReference", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: true },
            F { tag: 2, name: "key", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "optional", ty: Ty::Bool, keep: true, inline: false },
        ],
        "core::v1::SecretKeySelector" => &[
            F { tag: 1, name: "localObjectReference", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: true },
            F { tag: 2, name: "key", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "optional", ty: Ty::Bool, keep: true, inline: false },
        ],
        "core::v1::FileKeySelector" => &[
            F { tag: 1, name: "volumeName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "path", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "key", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "optional", ty: Ty::Bool, keep: true, inline: false },
        ],
        "core::v1::ExecAction" => &[
            F { tag: 1, name: "command", ty: Ty::RepStr, keep: false, inline: false },
        ],
        "core::v1::HttpGetAction" => &[
            F { tag: 1, name: "path", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "port", ty: Ty::Msg(M::IntOrString), keep: true, inline: false },
            F { tag: 3, name: "host", ty: Ty::Str, keep: false, inline: false },
            F { tag: 4, name: "scheme", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "httpHeaders", ty: Ty::RepMsg(M::S("core::v1::HttpHeader")), keep: false, inline: false },
        ],
        "core::v1::TcpSocketAction" => &[
            F { tag: 1, name: "port", ty: Ty::Msg(M::IntOrString), keep: true, inline: false },
            F { tag: 2, name: "host", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::GrpcAction" => &[
            F { tag: 1, name: "port", ty: Ty::I32, keep: true, inline: false },
            F { tag: 2, name: "service", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::SleepAction" => &[
            F { tag: 1, name: "seconds", ty: Ty::I64, keep: true, inline: false },
        ],
        "core::v1::NodeSelectorTerm" => &[
            F { tag: 1, name: "matchExpressions", ty: Ty::RepMsg(M::S("core::v1::NodeSelectorRequirement")), keep: false, inline: false },
            F { tag: 2, name: "matchFields", ty: Ty::RepMsg(M::S("core::v1::NodeSelectorRequirement")), keep: false, inline: false },
        ],
        "networking::v1::HttpIngressPath" => &[
            F { tag: 1, name: "path", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "pathType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "backend", ty: Ty::Msg(M::S("networking::v1::IngressBackend")), keep: false, inline: false },
        ],
        "core::v1::SecretProjection" => &[
            F { tag: 1, name: "localObjectReference", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: true },
            F { tag: 2, name: "items", ty: Ty::RepMsg(M::S("core::v1::KeyToPath")), keep: false, inline: false },
            F { tag: 4, name: "optional", ty: Ty::Bool, keep: true, inline: false },
        ],
        "core::v1::DownwardAPIProjection" => &[
            F { tag: 1, name: "items", ty: Ty::RepMsg(M::S("core::v1::DownwardAPIVolumeFile")), keep: false, inline: false },
        ],
        "core::v1::ConfigMapProjection" => &[
            F { tag: 1, name: "localObjectReference", ty: Ty::Msg(M::S("core::v1::LocalObjectReference")), keep: false, inline: true },
            F { tag: 2, name: "items", ty: Ty::RepMsg(M::S("core::v1::KeyToPath")), keep: false, inline: false },
            F { tag: 4, name: "optional", ty: Ty::Bool, keep: true, inline: false },
        ],
        "core::v1::ServiceAccountTokenProjection" => &[
            F { tag: 1, name: "audience", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "expirationSeconds", ty: Ty::I64, keep: true, inline: false },
            F { tag: 3, name: "path", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::ClusterTrustBundleProjection" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "signerName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "labelSelector", ty: Ty::Msg(M::S("meta::v1::LabelSelector")), keep: false, inline: false },
            F { tag: 5, name: "optional", ty: Ty::Bool, keep: true, inline: false },
            F { tag: 4, name: "path", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::PodCertificateProjection" => &[
            F { tag: 1, name: "signerName", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "keyType", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "maxExpirationSeconds", ty: Ty::I32, keep: false, inline: false },
            F { tag: 4, name: "credentialBundlePath", ty: Ty::Str, keep: false, inline: false },
            F { tag: 5, name: "keyPath", ty: Ty::Str, keep: false, inline: false },
            F { tag: 6, name: "certificateChainPath", ty: Ty::Str, keep: false, inline: false },
            F { tag: 7, name: "userAnnotations", ty: Ty::MapStr, keep: false, inline: false },
        ],
        "core::v1::HttpHeader" => &[
            F { tag: 1, name: "name", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "value", ty: Ty::Str, keep: false, inline: false },
        ],
        "core::v1::NodeSelectorRequirement" => &[
            F { tag: 1, name: "key", ty: Ty::Str, keep: false, inline: false },
            F { tag: 2, name: "operator", ty: Ty::Str, keep: false, inline: false },
            F { tag: 3, name: "values", ty: Ty::RepStr, keep: false, inline: false },
        ],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::api::apps::v1 as apps;
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    use prost::Message;
    use serde_json::json;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let u = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(u.encode_to_vec());
        out
    }

    fn meta(name: &str, labels: &[(&str, &str)]) -> meta::ObjectMeta {
        meta::ObjectMeta {
            name: Some(name.into()),
            generate_name: Some(String::new()),
            namespace: Some(String::new()),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        }
    }

    #[test]
    fn deployment_like_kubectl_create() {
        let d = apps::Deployment {
            metadata: Some(meta("x", &[("app", "x")])),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                selector: Some(meta::LabelSelector {
                    match_labels: [("app".to_string(), "x".to_string())].into(),
                    ..Default::default()
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(meta("", &[("app", "x")])),
                    spec: Some(core::PodSpec {
                        containers: vec![core::Container {
                            name: Some("busybox".into()),
                            image: Some("busybox".into()),
                            command: vec!["sleep".into(), "3600".into()],
                            ports: vec![core::ContainerPort {
                                container_port: Some(80),
                                protocol: Some("TCP".into()),
                                ..Default::default()
                            }],
                            resources: Some(core::ResourceRequirements {
                                limits: [(
                                    "cpu".to_string(),
                                    k8s_pb::apimachinery::pkg::api::resource::Quantity {
                                        string: Some("500m".into()),
                                    },
                                )]
                                .into(),
                                ..Default::default()
                            }),
                            termination_message_path: Some(String::new()),
                            stdin: Some(false),
                            ..Default::default()
                        }],
                        restart_policy: Some(String::new()),
                        automount_service_account_token: Some(false),
                        ..Default::default()
                    }),
                }),
                strategy: Some(apps::DeploymentStrategy::default()),
                min_ready_seconds: Some(0),
                paused: Some(false),
                ..Default::default()
            }),
            status: Some(apps::DeploymentStatus::default()),
        };
        let body = envelope("apps/v1", "Deployment", d.encode_to_vec());
        let got = decode(&body).unwrap();
        let want = json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "x", "creationTimestamp": null, "labels": {"app": "x"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "x"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "x"}},
                    "spec": {
                        "containers": [{
                            "name": "busybox", "image": "busybox", "command": ["sleep", "3600"],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {"limits": {"cpu": "500m"}}
                        }],
                        "automountServiceAccountToken": false
                    }
                },
                "strategy": {}
            },
            "status": {}
        });
        assert_eq!(got, want, "{}", serde_json::to_string_pretty(&got).unwrap());
    }

    #[test]
    fn secret_service_and_ssar() {
        let s = core::Secret {
            metadata: Some(meta("s", &[])),
            data: [("k".to_string(), b"hi".to_vec())].into(),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let got = decode(&envelope("v1", "Secret", s.encode_to_vec())).unwrap();
        assert_eq!(got["data"], json!({"k": "aGk="}));
        assert_eq!(got["type"], "Opaque");

        let svc = core::Service {
            metadata: Some(meta("svc", &[])),
            spec: Some(core::ServiceSpec {
                ports: vec![core::ServicePort {
                    name: Some("80-8080".into()),
                    protocol: Some("TCP".into()),
                    port: Some(80),
                    target_port: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: Some(String::new()),
                    }),
                    node_port: Some(0),
                    ..Default::default()
                }],
                cluster_ip: Some("None".into()),
                r#type: Some("ClusterIP".into()),
                ..Default::default()
            }),
            status: None,
        };
        let got = decode(&envelope("v1", "Service", svc.encode_to_vec())).unwrap();
        assert_eq!(
            got["spec"],
            json!({"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                   "clusterIP": "None", "type": "ClusterIP"})
        );

        use k8s_pb::api::authorization::v1 as authz;
        let ssar = authz::SelfSubjectAccessReview {
            metadata: Some(meta("", &[])),
            spec: Some(authz::SelfSubjectAccessReviewSpec {
                resource_attributes: Some(authz::ResourceAttributes {
                    namespace: Some("default".into()),
                    verb: Some("create".into()),
                    resource: Some("pods".into()),
                    group: Some(String::new()),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            }),
            status: Some(Default::default()),
        };
        let got = decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            ssar.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            got["spec"],
            json!({"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}})
        );
        assert_eq!(got["status"], json!({}));
    }

    #[test]
    fn token_request_and_cronjob() {
        use k8s_pb::api::authentication::v1 as authn;
        let tr = authn::TokenRequest {
            metadata: Some(meta("default", &[])),
            spec: Some(authn::TokenRequestSpec {
                audiences: vec!["foo".into()],
                expiration_seconds: Some(600),
                bound_object_ref: None,
            }),
            status: None,
        };
        let got = decode(&envelope(
            "authentication.k8s.io/v1",
            "TokenRequest",
            tr.encode_to_vec(),
        ))
        .unwrap();
        assert_eq!(
            got["spec"],
            json!({"audiences": ["foo"], "expirationSeconds": 600})
        );
    }

    #[test]
    fn errors() {
        assert_eq!(decode(b"{}"), Err(ProtobufError::MissingMagic));
        let cm = core::ConfigMap {
            metadata: Some(meta("c", &[])),
            data: [("a".to_string(), "b".to_string())].into(),
            ..Default::default()
        };
        let body = envelope("v1", "ConfigMap", cm.encode_to_vec());
        assert_eq!(decode(&body).unwrap()["data"], json!({"a": "b"}));
        assert!(matches!(
            decode(&body[..body.len() - 3]),
            Err(ProtobufError::Malformed(_))
        ));
        let mut garbage = MAGIC.to_vec();
        garbage.extend([0xff, 0xff, 0xff]);
        assert!(decode(&garbage).is_err());
        let e = decode(&envelope("example.com/v1", "Widget", vec![])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no kind \"Widget\" is registered for version \"example.com/v1\""
        );
    }

    #[test]
    fn durations() {
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(300_000_000), "300ms");
        assert_eq!(go_duration(61_000_000_000), "1m1s");
    }
}
