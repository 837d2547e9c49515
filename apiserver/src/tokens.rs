//! Service account tokens: the `serviceaccounts/<name>/token` subresource (TokenRequest,
//! `authentication.k8s.io/v1`). Owns the ES256 signing key (kept in
//! `<tls dir>/service-account.key`), the upstream claim set (`iss`, `sub`, `aud`, `exp`,
//! `iat`, `nbf`, `jti` and the `kubernetes.io` private claim), TokenRequest validation and
//! defaulting, and the request flow (service account and bound object lookups). Verifying
//! these tokens when they come back as bearer tokens is not done here yet.

use crate::error::{ApiError, ApiResult, Cause};
use crate::registry::Registry;
use crate::resources;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequestSpec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Digest;
use std::path::{Path, PathBuf};

/// The API server's own audience, and the issuer of the tokens it signs.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";
/// The signing key's file name inside the TLS directory.
pub const KEY_FILE: &str = "service-account.key";
/// `spec.expirationSeconds` when the request leaves it out.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 60 * 60;
/// The shortest lifetime a request may ask for (10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 10 * 60;
/// The longest lifetime a request may ask for (2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The lifetime the kubelet asks for in projected `kube-api-access` volumes; such
/// pod-bound tokens for the API server's audiences are issued for a year and carry a
/// `warnafter` claim instead (upstream `--service-account-extend-token-expiration`).
pub const WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS: i64 = 60 * 60 + 7;
/// The extended lifetime of those tokens (one year).
pub const EXPIRATION_EXTENSION_SECONDS: i64 = 24 * 365 * 60 * 60;

const GROUP: &str = "authentication.k8s.io";
const KIND: &str = "TokenRequest";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("reading service account key {path}: {source}")]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing service account key: {0}")]
    ParseKey(rcgen::Error),
    #[error("service account key is not an ecdsa p-256 key")]
    KeyAlgorithm,
    #[error("generating service account key: {0}")]
    GenerateKey(rcgen::Error),
    #[error("writing service account key: {0}")]
    WriteKey(#[from] crate::pki::PkiError),
    #[error("signing token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// Signs service account tokens with an ECDSA P-256 key (ES256).
pub struct ServiceAccountSigner {
    issuer: String,
    key_id: String,
    key: EncodingKey,
    public_key_sec1: Vec<u8>,
    public_key_pem: String,
}

impl std::fmt::Debug for ServiceAccountSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountSigner")
            .field("issuer", &self.issuer)
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// A new P-256 private key, PKCS#8 PEM.
pub fn generate_key_pem() -> Result<String, TokenError> {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map(|k| k.serialize_pem())
        .map_err(TokenError::GenerateKey)
}

/// Upstream's key id: unpadded base64url of the SHA-256 of the DER SubjectPublicKeyInfo.
pub fn key_id(spki_der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(spki_der))
}

impl ServiceAccountSigner {
    /// A signer from a PKCS#8 PEM P-256 private key.
    pub fn from_pem(pem: &str, issuer: &str) -> Result<Self, TokenError> {
        use rcgen::PublicKeyData;
        let kp = rcgen::KeyPair::from_pem(pem).map_err(TokenError::ParseKey)?;
        if !kp.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
            return Err(TokenError::KeyAlgorithm);
        }
        Ok(ServiceAccountSigner {
            issuer: issuer.to_string(),
            key_id: key_id(&kp.subject_public_key_info()),
            key: EncodingKey::from_ec_der(kp.serialized_der()),
            public_key_sec1: kp.public_key_raw().to_vec(),
            public_key_pem: kp.public_key_pem(),
        })
    }

    /// Loads `<dir>/service-account.key`, creating it (mode 0600) on first start.
    pub fn load_or_create(dir: &Path) -> Result<Self, TokenError> {
        let path = dir.join(KEY_FILE);
        if !path.exists() {
            crate::pki::write_file(&path, &generate_key_pem()?, 0o600)?;
        }
        let pem = std::fs::read_to_string(&path)
            .map_err(|source| TokenError::ReadKey { path, source })?;
        Self::from_pem(&pem, API_AUDIENCE)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    /// The public key as an uncompressed SEC1 point (for verifying tokens).
    pub fn public_key_sec1(&self) -> &[u8] {
        &self.public_key_sec1
    }
    /// The public key as a SubjectPublicKeyInfo PEM.
    pub fn public_key_pem(&self) -> &str {
        &self.public_key_pem
    }

    /// Signs the claims as a compact JWS with header `{"alg":"ES256","kid":...}`.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = None;
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(TokenError::Sign)
    }
}

/// A `{name, uid}` reference inside the `kubernetes.io` claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// The `kubernetes.io` private claim (keys in the order upstream's tokens show them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ClaimRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ClaimRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ClaimRef>,
    pub serviceaccount: ClaimRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// The full claim set of a service account token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
    pub nbf: i64,
    pub sub: String,
}

/// `system:serviceaccount:<namespace>:<name>`.
pub fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The object a token is bound to, as found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// A pod, with the node it runs on when known (the node's uid may be empty when the
    /// Node object is gone).
    Pod {
        pod: ClaimRef,
        node: Option<ClaimRef>,
    },
    Secret(ClaimRef),
    Node(ClaimRef),
}

/// Everything a token's claims are made from.
#[derive(Debug, Clone)]
pub struct ClaimInputs<'a> {
    pub issuer: &'a str,
    pub namespace: &'a str,
    pub service_account: ClaimRef,
    pub bound: Option<Bound>,
    pub audiences: Vec<String>,
    /// The token's real lifetime (after any extension).
    pub expiration_seconds: i64,
    /// Seconds after which use of the token is reported as stale; 0 for none.
    pub warn_after_seconds: i64,
    /// Unix seconds.
    pub now: i64,
    pub jti: String,
}

/// The claims upstream puts in a service account token.
pub fn claims(i: ClaimInputs<'_>) -> Claims {
    let mut k = KubernetesClaims {
        namespace: i.namespace.to_string(),
        serviceaccount: i.service_account.clone(),
        ..Default::default()
    };
    match i.bound {
        Some(Bound::Pod { pod, node }) => {
            k.pod = Some(pod);
            k.node = node;
        }
        Some(Bound::Secret(s)) => k.secret = Some(s),
        Some(Bound::Node(n)) => k.node = Some(n),
        None => {}
    }
    if i.warn_after_seconds != 0 {
        k.warnafter = Some(i.now + i.warn_after_seconds);
    }
    Claims {
        aud: i.audiences,
        exp: i.now + i.expiration_seconds,
        iat: i.now,
        iss: i.issuer.to_string(),
        jti: i.jti,
        kubernetes: k,
        nbf: i.now,
        sub: username(i.namespace, &i.service_account.name),
    }
}

/// The request after decoding and defaulting.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRequest {
    /// The body's metadata (name and namespace filled in from the URL).
    pub metadata: Value,
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    pub bound_object_ref: Option<BoundObjectReference>,
}

fn invalid(name: &str, causes: Vec<Cause>) -> ApiError {
    let mut e = ApiError::invalid(KIND, GROUP, name, causes);
    // Upstream names the group kind in the message: `TokenRequest.authentication.k8s.io`.
    e.message = e.message.replacen(KIND, &format!("{KIND}.{GROUP}"), 1);
    e
}

/// Decodes a TokenRequest body for `namespaces/<namespace>/serviceaccounts/<name>/token`,
/// checks metadata against the URL and applies the v1 defaults (audiences, 3600 s).
pub fn parse_request(
    body: &Value,
    namespace: &str,
    name: &str,
    default_audiences: &[String],
) -> ApiResult<TokenRequest> {
    let bad =
        |e: serde_json::Error| ApiError::bad_request(format!("error decoding TokenRequest: {e}"));
    let mut metadata = match body.get("metadata") {
        None | Some(Value::Null) => json!({}),
        Some(m @ Value::Object(_)) => m.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "error decoding TokenRequest: metadata must be an object",
            ))
        }
    };
    let spec: TokenRequestSpec = match body.get("spec") {
        None | Some(Value::Null) => TokenRequestSpec::default(),
        Some(s) => serde_json::from_value(s.clone()).map_err(bad)?,
    };
    let field = |f: &str| metadata.get(f).and_then(Value::as_str).unwrap_or("");
    let (body_name, body_ns) = (field("name").to_string(), field("namespace").to_string());
    if !body_name.is_empty() && body_name != name {
        return Err(invalid(
            name,
            vec![Cause::invalid(
                "metadata.name",
                &json!(body_name),
                "must match the service account name if specified",
            )],
        ));
    }
    if !body_ns.is_empty() && body_ns != namespace {
        return Err(invalid(
            name,
            vec![Cause::invalid(
                "metadata.namespace",
                &json!(body_ns),
                "must match the service account namespace if specified",
            )],
        ));
    }
    metadata["name"] = json!(name);
    metadata["namespace"] = json!(namespace);
    let audiences = if spec.audiences.is_empty() {
        default_audiences.to_vec()
    } else {
        spec.audiences
    };
    Ok(TokenRequest {
        metadata,
        audiences,
        expiration_seconds: spec
            .expiration_seconds
            .unwrap_or(DEFAULT_EXPIRATION_SECONDS),
        bound_object_ref: spec.bound_object_ref,
    })
}

/// Upstream's static TokenRequest validation.
pub fn validate(req: &TokenRequest) -> Vec<Cause> {
    let mut out = Vec::new();
    let secs = req.expiration_seconds;
    if secs < MIN_EXPIRATION_SECONDS {
        out.push(Cause::invalid(
            "spec.expirationSeconds",
            &json!(secs),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if secs > MAX_EXPIRATION_SECONDS {
        out.push(Cause::invalid(
            "spec.expirationSeconds",
            &json!(secs),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    out
}

/// The validation error for a request, rendered as upstream (`TokenRequest.authentication.k8s.io
/// "" is invalid: ...`).
pub fn validation_error(causes: Vec<Cause>) -> ApiError {
    invalid("", causes)
}

/// Which kind of object a `boundObjectRef` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundKind {
    Pod,
    Secret,
    Node,
}

/// Resolves a `boundObjectRef`'s apiVersion/kind; only core Pod, Secret and Node.
pub fn bound_kind(r: &BoundObjectReference) -> ApiResult<BoundKind> {
    let api_version = r.api_version.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or("");
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    match (group, kind) {
        ("", "Pod") => Ok(BoundKind::Pod),
        ("", "Secret") => Ok(BoundKind::Secret),
        ("", "Node") => Ok(BoundKind::Node),
        _ => Err(ApiError::bad_request(format!(
            "cannot bind token to object of type {group}/{version}, Kind={kind}"
        ))),
    }
}

/// The 409 upstream returns when a `boundObjectRef.uid` names an older object.
pub fn uid_mismatch(kind: &str, name: &str, uid: &str) -> ApiError {
    ApiError::conflict(
        kind,
        name,
        &format!(
            "the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"
        ),
    )
}

/// The lifetime actually put in the token and the `warnafter` offset: pod-bound tokens
/// asking for exactly 3607 s for the API server's own audiences last a year instead.
pub fn effective_expiration(
    requested: i64,
    pod_bound: bool,
    audiences: &[String],
    api_audiences: &[String],
) -> (i64, i64) {
    if pod_bound
        && requested == WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS
        && audiences.iter().all(|a| api_audiences.contains(a))
    {
        (EXPIRATION_EXTENSION_SECONDS, requested)
    } else {
        (requested, 0)
    }
}

fn obj_ref(obj: &Value) -> ClaimRef {
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    ClaimRef {
        name: s("/metadata/name"),
        uid: s("/metadata/uid"),
    }
}

/// A core/v1 object by plural, namespace and name.
pub(crate) async fn get(reg: &Registry, plural: &str, ns: &str, name: &str) -> ApiResult<Value> {
    let res = resources::find("", "v1", plural).ok_or_else(ApiError::path_not_found)?;
    reg.get(res, ns, name).await
}

/// Looks up the bound object and checks it against the reference and the service account.
async fn resolve_bound(
    reg: &Registry,
    namespace: &str,
    sa_name: &str,
    r: &BoundObjectReference,
) -> ApiResult<Bound> {
    let kind = bound_kind(r)?;
    let name = r.name.as_deref().unwrap_or("");
    let (bound, uid) = match kind {
        BoundKind::Pod => {
            let pod = get(reg, "pods", namespace, name).await?;
            let pod_sa = pod
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if pod_sa != sa_name {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
                )));
            }
            let node_name = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            let node = if node_name.is_empty() {
                None
            } else {
                match get(reg, "nodes", "", node_name).await {
                    Ok(n) => Some(obj_ref(&n)),
                    // A missing Node still leaves its name in the claims.
                    Err(e) if e.code == 404 => Some(ClaimRef {
                        name: node_name.to_string(),
                        uid: String::new(),
                    }),
                    Err(e) => return Err(ApiError::internal(e.message)),
                }
            };
            let p = obj_ref(&pod);
            let uid = p.uid.clone();
            (Bound::Pod { pod: p, node }, uid)
        }
        BoundKind::Secret => {
            let s = obj_ref(&get(reg, "secrets", namespace, name).await?);
            let uid = s.uid.clone();
            (Bound::Secret(s), uid)
        }
        BoundKind::Node => {
            let n = obj_ref(&get(reg, "nodes", "", name).await?);
            let uid = n.uid.clone();
            (Bound::Node(n), uid)
        }
    };
    let want = r.uid.as_deref().unwrap_or("");
    if !want.is_empty() && want != uid {
        return Err(uid_mismatch(r.kind.as_deref().unwrap_or(""), name, want));
    }
    Ok(bound)
}

/// The response: the request with `metadata.creationTimestamp` and the issued token.
pub fn response(req: &TokenRequest, token: &str, created: jiff::Timestamp) -> Value {
    let mut metadata = req.metadata.clone();
    metadata["creationTimestamp"] = json!(crate::meta::format_time(created));
    let mut spec = json!({
        "audiences": req.audiences,
        "expirationSeconds": req.expiration_seconds,
    });
    if let Some(b) = &req.bound_object_ref {
        spec["boundObjectRef"] = serde_json::to_value(b).unwrap_or(Value::Null);
    }
    let expires = created
        .checked_add(jiff::SignedDuration::from_secs(req.expiration_seconds))
        .unwrap_or(jiff::Timestamp::MAX);
    json!({
        "kind": KIND,
        "apiVersion": format!("{GROUP}/v1"),
        "metadata": metadata,
        "spec": spec,
        "status": {
            "token": token,
            "expirationTimestamp": crate::meta::format_time(expires),
        },
    })
}

/// Serves `POST namespaces/<namespace>/serviceaccounts/<name>/token`: the service account
/// must exist, the request must be valid, and a bound object must exist with the given
/// uid. Nothing is stored, so a dry run is the same request.
pub async fn create_token(
    reg: &Registry,
    signer: &ServiceAccountSigner,
    namespace: &str,
    name: &str,
    body: &Value,
    now: jiff::Timestamp,
) -> ApiResult<Value> {
    let api_audiences = vec![API_AUDIENCE.to_string()];
    let req = parse_request(body, namespace, name, &api_audiences)?;
    let sa = get(reg, "serviceaccounts", namespace, name).await?;
    let causes = validate(&req);
    if !causes.is_empty() {
        return Err(validation_error(causes));
    }
    let bound = match &req.bound_object_ref {
        Some(r) => Some(resolve_bound(reg, namespace, name, r).await?),
        None => None,
    };
    let pod_bound = matches!(bound, Some(Bound::Pod { .. }));
    let (exp, warn) = effective_expiration(
        req.expiration_seconds,
        pod_bound,
        &req.audiences,
        &api_audiences,
    );
    let c = claims(ClaimInputs {
        issuer: signer.issuer(),
        namespace,
        service_account: obj_ref(&sa),
        bound,
        audiences: req.audiences.clone(),
        expiration_seconds: exp,
        warn_after_seconds: warn,
        now: now.as_second(),
        jti: uuid::Uuid::new_v4().to_string(),
    });
    let token = signer
        .sign(&c)
        .map_err(|e| ApiError::internal(format!("failed to generate token: {e}")))?;
    Ok(response(&req, &token, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn signer() -> ServiceAccountSigner {
        ServiceAccountSigner::from_pem(&generate_key_pem().unwrap(), API_AUDIENCE).unwrap()
    }

    fn sa() -> ClaimRef {
        ClaimRef {
            name: "default".into(),
            uid: "sa-uid".into(),
        }
    }

    fn inputs(bound: Option<Bound>) -> ClaimInputs<'static> {
        ClaimInputs {
            issuer: API_AUDIENCE,
            namespace: "ns1",
            service_account: sa(),
            bound,
            audiences: vec!["a".into(), "b".into()],
            expiration_seconds: 3600,
            warn_after_seconds: 0,
            now: 1_700_000_000,
            jti: "j-1".into(),
        }
    }

    fn decode(s: &ServiceAccountSigner, token: &str, aud: &str) -> Claims {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[aud]);
        v.set_issuer(&[API_AUDIENCE]);
        v.validate_exp = false;
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_ec_der(s.public_key_sec1()), &v)
            .unwrap()
            .claims
    }

    #[test]
    fn claims_for_pod_bound_token() {
        let c = claims(ClaimInputs {
            warn_after_seconds: 3607,
            bound: Some(Bound::Pod {
                pod: ClaimRef {
                    name: "p".into(),
                    uid: "p-uid".into(),
                },
                node: Some(ClaimRef {
                    name: "n".into(),
                    uid: "n-uid".into(),
                }),
            }),
            ..inputs(None)
        });
        assert_eq!(c.sub, "system:serviceaccount:ns1:default");
        assert_eq!(
            (c.iat, c.nbf, c.exp),
            (1_700_000_000, 1_700_000_000, 1_700_003_600)
        );
        assert_eq!(c.kubernetes.warnafter, Some(1_700_003_607));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["kubernetes.io"],
            json!({
                "namespace": "ns1",
                "node": {"name": "n", "uid": "n-uid"},
                "pod": {"name": "p", "uid": "p-uid"},
                "serviceaccount": {"name": "default", "uid": "sa-uid"},
                "warnafter": 1_700_003_607i64,
            })
        );
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "aud",
                "exp",
                "iat",
                "iss",
                "jti",
                "kubernetes.io",
                "nbf",
                "sub"
            ]
        );
    }

    #[test]
    fn claims_for_secret_and_node_and_unbound() {
        let s = claims(inputs(Some(Bound::Secret(ClaimRef {
            name: "s".into(),
            uid: "s-uid".into(),
        }))));
        assert!(s.kubernetes.pod.is_none() && s.kubernetes.node.is_none());
        assert_eq!(s.kubernetes.secret.unwrap().uid, "s-uid");
        let n = claims(inputs(Some(Bound::Node(ClaimRef {
            name: "n".into(),
            uid: "n-uid".into(),
        }))));
        assert_eq!(n.kubernetes.node.unwrap().name, "n");
        let u = serde_json::to_value(claims(inputs(None))).unwrap();
        assert_eq!(
            u["kubernetes.io"],
            json!({"namespace": "ns1", "serviceaccount": {"name": "default", "uid": "sa-uid"}})
        );
        assert_eq!(u["aud"], json!(["a", "b"]));
    }

    #[test]
    fn signs_es256_with_kid_and_round_trips() {
        let s = signer();
        let c = claims(inputs(None));
        let tok = s.sign(&c).unwrap();
        let header = jsonwebtoken::decode_header(&tok).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(s.key_id()));
        assert!(header.typ.is_none());
        let raw_header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(tok.split('.').next().unwrap())
            .unwrap();
        let hv: Value = serde_json::from_slice(&raw_header).unwrap();
        assert_eq!(hv, json!({"alg": "ES256", "kid": s.key_id()}));
        assert_eq!(decode(&s, &tok, "b"), c);
        // Another key does not verify it.
        let other = signer();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["a"]);
        v.validate_exp = false;
        assert!(jsonwebtoken::decode::<Claims>(
            &tok,
            &DecodingKey::from_ec_der(other.public_key_sec1()),
            &v
        )
        .is_err());
    }

    #[test]
    fn key_id_is_sha256_of_spki() {
        let s = signer();
        // The PEM body is the SPKI DER.
        let b64: String = s
            .public_key_pem()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(key_id(&der), s.key_id());
        assert_eq!(s.key_id().len(), 43);
        assert_eq!(s.public_key_sec1().len(), 65);
    }

    #[test]
    fn rejects_non_p256_keys() {
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert!(matches!(
            ServiceAccountSigner::from_pem(&ed.serialize_pem(), API_AUDIENCE),
            Err(TokenError::KeyAlgorithm)
        ));
        assert!(matches!(
            ServiceAccountSigner::from_pem("nope", API_AUDIENCE),
            Err(TokenError::ParseKey(_))
        ));
    }

    #[test]
    fn load_or_create_keeps_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServiceAccountSigner::load_or_create(dir.path()).unwrap();
        let b = ServiceAccountSigner::load_or_create(dir.path()).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn parse_defaults_and_metadata_checks() {
        let aud = vec![API_AUDIENCE.to_string()];
        let r = parse_request(&json!({}), "ns", "sa", &aud).unwrap();
        assert_eq!(r.audiences, aud);
        assert_eq!(r.expiration_seconds, 3600);
        assert_eq!(r.metadata, json!({"name": "sa", "namespace": "ns"}));
        let r = parse_request(
            &json!({"spec": {"audiences": ["x"], "expirationSeconds": 1200,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u"}}}),
            "ns",
            "sa",
            &aud,
        )
        .unwrap();
        assert_eq!(
            (r.audiences.clone(), r.expiration_seconds),
            (vec!["x".to_string()], 1200)
        );
        assert_eq!(
            bound_kind(r.bound_object_ref.as_ref().unwrap()).unwrap(),
            BoundKind::Pod
        );
        let e =
            parse_request(&json!({"metadata": {"name": "other"}}), "ns", "sa", &aud).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "TokenRequest.authentication.k8s.io \"sa\" is invalid: metadata.name: Invalid value: \"other\": must match the service account name if specified"
        );
        let e =
            parse_request(&json!({"metadata": {"namespace": "x"}}), "ns", "sa", &aud).unwrap_err();
        assert_eq!(e.code, 422);
        let e = parse_request(
            &json!({"spec": {"expirationSeconds": "x"}}),
            "ns",
            "sa",
            &aud,
        )
        .unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn validation_bounds() {
        let aud = vec![API_AUDIENCE.to_string()];
        let with = |secs: i64| {
            let mut r = parse_request(&json!({}), "ns", "sa", &aud).unwrap();
            r.expiration_seconds = secs;
            validate(&r)
        };
        assert!(with(600).is_empty());
        assert!(with(1 << 32).is_empty());
        let c = with(599);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec.expirationSeconds");
        assert_eq!(
            c[0].message,
            "Invalid value: 599: may not specify a duration less than 10 minutes"
        );
        assert_eq!(
            with((1 << 32) + 1)[0].message,
            "Invalid value: 4294967297: may not specify a duration larger than 2^32 seconds"
        );
        let e = validation_error(with(60));
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
        );
        let d = e.details.unwrap();
        assert_eq!(
            (d["kind"].as_str(), d["group"].as_str()),
            (Some("TokenRequest"), Some(GROUP))
        );
    }

    #[test]
    fn bound_kinds_and_errors() {
        let r = |v: &str, k: &str| BoundObjectReference {
            api_version: Some(v.into()),
            kind: Some(k.into()),
            name: Some("x".into()),
            uid: None,
        };
        assert_eq!(bound_kind(&r("v1", "Secret")).unwrap(), BoundKind::Secret);
        assert_eq!(bound_kind(&r("v1", "Node")).unwrap(), BoundKind::Node);
        let e = bound_kind(&r("apps/v1", "Deployment")).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "cannot bind token to object of type apps/v1, Kind=Deployment"
            )
        );
        let e = uid_mismatch("Pod", "p", "u1");
        assert_eq!(e.code, 409);
        assert_eq!(e.message, "Operation cannot be fulfilled on Pod \"p\": the UID in the bound object reference (u1) does not match the UID in record. The object might have been deleted and then recreated");
    }

    #[test]
    fn extension_only_for_pod_bound_kube_audience_3607() {
        let api = vec![API_AUDIENCE.to_string()];
        assert_eq!(
            effective_expiration(3607, true, &api, &api),
            (EXPIRATION_EXTENSION_SECONDS, 3607)
        );
        assert_eq!(effective_expiration(3607, false, &api, &api), (3607, 0));
        assert_eq!(effective_expiration(3600, true, &api, &api), (3600, 0));
        assert_eq!(
            effective_expiration(3607, true, &["x".to_string()], &api),
            (3607, 0)
        );
    }

    #[test]
    fn response_shape() {
        let aud = vec![API_AUDIENCE.to_string()];
        let r = parse_request(
            &json!({"spec": {"expirationSeconds": 1200}}),
            "ns",
            "sa",
            &aud,
        )
        .unwrap();
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let v = response(&r, "tok", now);
        assert_eq!(v["kind"], "TokenRequest");
        assert_eq!(v["apiVersion"], "authentication.k8s.io/v1");
        assert_eq!(v["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(v["status"]["expirationTimestamp"], "2023-11-14T22:33:20Z");
        assert_eq!(v["status"]["token"], "tok");
        assert_eq!(
            v["spec"],
            json!({"audiences": aud, "expirationSeconds": 1200})
        );
    }

    /// The whole flow through the router over a real (SQLite) store, as the admin.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn token_subresource_in_process() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::Pki::load_or_create(&dir.path().join("tls"), &[]).unwrap();
        let backend: std::sync::Arc<dyn store::Backend> =
            std::sync::Arc::new(store::SqliteBackend::open(&dir.path().join("state.db")).unwrap());
        let app = crate::server::App::new(backend, "s3cret", "127.0.0.1:0".into());
        let s = ServiceAccountSigner::load_or_create(&dir.path().join("tls")).unwrap();
        let sec1 = s.public_key_sec1().to_vec();
        let _ = app.sa_signer.set(std::sync::Arc::new(s));
        let admin_der = {
            let c = rustls_pemfile::certs(&mut pki.admin_cert_pem.as_bytes())
                .next()
                .unwrap()
                .unwrap();
            c.as_ref().to_vec()
        };
        let router = app.router();
        let call = |method: &str, path: &str, body: Value| {
            let mut req = http::Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string()))
                .unwrap();
            req.extensions_mut()
                .insert(crate::auth::PeerCertificate(Some(admin_der.clone())));
            let router = router.clone();
            async move {
                let resp = router.oneshot(req).await.unwrap();
                let code = resp.status().as_u16();
                let b = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .unwrap();
                (
                    code,
                    serde_json::from_slice::<Value>(&b).unwrap_or(Value::Null),
                )
            }
        };
        let (c, _) = call(
            "POST",
            "/api/v1/namespaces",
            json!({"metadata": {"name": "ns1"}}),
        )
        .await;
        assert_eq!(c, 201);
        let url = "/api/v1/namespaces/ns1/serviceaccounts/robot/token";
        let (c, b) = call("POST", url, json!({"spec": {}})).await;
        assert_eq!(
            (c, b["message"].as_str()),
            (404, Some("serviceaccounts \"robot\" not found"))
        );
        let (c, sa) = call(
            "POST",
            "/api/v1/namespaces/ns1/serviceaccounts",
            json!({"metadata": {"name": "robot"}}),
        )
        .await;
        assert_eq!(c, 201);
        let (c, b) = call(
            "POST",
            url,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
        )
        .await;
        assert_eq!(c, 201, "{b}");
        assert_eq!(b["spec"]["expirationSeconds"], 3600);
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[API_AUDIENCE]);
        let claims = jsonwebtoken::decode::<Claims>(
            b["status"]["token"].as_str().unwrap(),
            &DecodingKey::from_ec_der(&sec1),
            &v,
        )
        .unwrap()
        .claims;
        assert_eq!(claims.sub, "system:serviceaccount:ns1:robot");
        assert_eq!(
            claims.kubernetes.serviceaccount.uid,
            sa["metadata"]["uid"].as_str().unwrap()
        );
        assert_eq!(claims.exp - claims.iat, 3600);

        let (c, b) = call("POST", url, json!({"spec": {"expirationSeconds": 60}})).await;
        assert_eq!(c, 422);
        assert_eq!(b["details"]["causes"][0]["field"], "spec.expirationSeconds");

        // Pod binding: missing pod, other service account, uid mismatch, success.
        let bound = |uid: &str| json!({"spec": {"expirationSeconds": 3607, "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": uid}}});
        let (c, b) = call("POST", url, bound("")).await;
        assert_eq!(
            (c, b["message"].as_str()),
            (404, Some("pods \"p\" not found"))
        );
        let (c, pod) = call(
            "POST",
            "/api/v1/namespaces/ns1/pods",
            json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "robot", "nodeName": "gone",
                "containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await;
        assert_eq!(c, 201, "{pod}");
        let (c, b) = call("POST", url, bound("nope")).await;
        assert_eq!(c, 409, "{b}");
        let (c, b) = call(
            "POST",
            &format!("{url}?dryRun=All"),
            bound(pod["metadata"]["uid"].as_str().unwrap()),
        )
        .await;
        assert_eq!(c, 201, "{b}");
        assert_eq!(b["spec"]["expirationSeconds"], 3607);
        let claims = jsonwebtoken::decode::<Claims>(
            b["status"]["token"].as_str().unwrap(),
            &DecodingKey::from_ec_der(&sec1),
            &v,
        )
        .unwrap()
        .claims;
        assert_eq!(claims.exp - claims.iat, EXPIRATION_EXTENSION_SECONDS);
        assert_eq!(claims.kubernetes.warnafter, Some(claims.iat + 3607));
        assert_eq!(claims.kubernetes.pod.unwrap().name, "p");
        assert_eq!(
            claims.kubernetes.node,
            Some(ClaimRef {
                name: "gone".into(),
                uid: String::new()
            })
        );
        let (c, _) = call(
            "POST",
            "/api/v1/namespaces/ns1/serviceaccounts",
            json!({"metadata": {"name": "other"}}),
        )
        .await;
        assert_eq!(c, 201);
        let (c, b) = call(
            "POST",
            "/api/v1/namespaces/ns1/serviceaccounts/other/token",
            bound(""),
        )
        .await;
        assert_eq!(
            (c, b["message"].as_str()),
            (400, Some("cannot bind token for serviceaccount \"other\" to pod running with different serviceaccount name."))
        );
    }
}
