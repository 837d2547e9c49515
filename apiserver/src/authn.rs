//! Bearer-token authentication beyond the join token, and impersonation:
//! - the static token file (`--token-auth-file`, upstream's CSV `token,user,uid,"g1,g2"`);
//! - service account JWTs: signature, issuer, audience and lifetime checked here (pure), then
//!   the service account and the bound pod/secret/node looked up in the store (they must still
//!   exist with the same uid), with a short cache of successful lookups as upstream has;
//! - impersonation headers (`Impersonate-User`, `-Group`, `-Uid`, `-Extra-*`), each checked
//!   against the authorizer with verb `impersonate`;
//! - the OpenID discovery document and JWKS for the service account issuer.

use crate::auth::{Attributes, UserInfo};
use crate::registry::Registry;
use crate::tokens::{Claims, ServiceAccountSigner, API_AUDIENCE};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    #[error("reading token file {path}: {source}")]
    ReadTokenFile {
        path: String,
        source: std::io::Error,
    },
    #[error("token file '{path}' must have at least 3 columns (token, user name, user uid), found {found}")]
    TokenFileColumns { path: String, found: usize },
    #[error("parsing token file '{path}': {message}")]
    TokenFileSyntax { path: String, message: String },
}

/// Extra keys upstream puts on service account users.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
pub const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// Users from `--token-auth-file`.
#[derive(Debug, Clone, Default)]
pub struct TokenFile {
    users: HashMap<String, UserInfo>,
}

/// Splits one CSV record (double quotes, `""` escapes) into fields.
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cur.push('"');
                }
                '"' => quoted = false,
                c => cur.push(c),
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            '"' => return Err(format!("bare \" in non-quoted field: {line:?}")),
            ',' => {
                out.push(std::mem::take(&mut cur));
                at_start = true;
            }
            c => {
                cur.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err(format!(
            "extraneous or missing \" in quoted field: {line:?}"
        ));
    }
    out.push(cur);
    Ok(out)
}

impl TokenFile {
    /// Parses upstream's format: `token,user,uid[,"group1,group2"]`, one per line; blank
    /// lines and lines starting with `#` are skipped; a later duplicate token wins.
    pub fn parse(path: &str, text: &str) -> Result<Self, AuthnError> {
        let mut users = HashMap::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let rec = csv_fields(trimmed).map_err(|message| AuthnError::TokenFileSyntax {
                path: path.to_string(),
                message,
            })?;
            if rec.len() < 3 {
                return Err(AuthnError::TokenFileColumns {
                    path: path.to_string(),
                    found: rec.len(),
                });
            }
            let token = rec[0].trim().to_string();
            if token.is_empty() {
                continue;
            }
            let mut groups: Vec<String> = rec
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            groups.push("system:authenticated".into());
            if users.contains_key(&token) {
                tracing::warn!(path, "duplicate token in token file; the later line wins");
            }
            users.insert(
                token,
                UserInfo {
                    name: rec[1].clone(),
                    uid: rec[2].clone(),
                    groups,
                    extra: BTreeMap::new(),
                },
            );
        }
        Ok(TokenFile { users })
    }

    pub fn load(path: &str) -> Result<Self, AuthnError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthnError::ReadTokenFile {
            path: path.to_string(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn authenticate(&self, token: &str) -> Option<UserInfo> {
        self.users.get(token).cloned()
    }
}

/// Why a service account token was refused (logged; the client sees a plain 401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SaTokenError {
    #[error("not a service account token")]
    NotServiceAccount,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token has expired")]
    Expired,
    #[error("token audiences {0:?} are invalid for the target audiences {1:?}")]
    Audience(Vec<String>, Vec<String>),
    #[error("{0}")]
    Stale(String),
}

/// Checks a JWT's signature, issuer, lifetime (`now` in unix seconds, 0 s leeway for
/// expiry as upstream's bound tokens) and that one of its audiences is in `audiences`.
pub fn verify_jwt(
    signer: &ServiceAccountSigner,
    token: &str,
    audiences: &[String],
    now: i64,
) -> Result<Claims, SaTokenError> {
    // Cheap pre-check: a JWT with our issuer, so other bearer tokens are not parsed twice.
    let header = jsonwebtoken::decode_header(token).map_err(|_| SaTokenError::NotServiceAccount)?;
    if header.alg != Algorithm::ES256 {
        return Err(SaTokenError::NotServiceAccount);
    }
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[signer.issuer()]);
    v.validate_aud = false;
    v.validate_exp = false;
    v.validate_nbf = false;
    v.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_ec_der(signer.public_key_sec1()),
        &v,
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidIssuer => SaTokenError::NotServiceAccount,
        _ => SaTokenError::Invalid(e.to_string()),
    })?;
    let c = data.claims;
    if now >= c.exp {
        return Err(SaTokenError::Expired);
    }
    // Upstream allows a little clock skew for nbf/iat.
    if c.nbf > now + 60 {
        return Err(SaTokenError::Invalid("token used before issued".into()));
    }
    if !c.aud.iter().any(|a| audiences.contains(a)) {
        return Err(SaTokenError::Audience(c.aud.clone(), audiences.to_vec()));
    }
    Ok(c)
}

/// The user a verified token stands for.
pub fn user_from_claims(c: &Claims) -> UserInfo {
    let k = &c.kubernetes;
    let mut extra = BTreeMap::new();
    if let Some(p) = &k.pod {
        extra.insert(EXTRA_POD_NAME.to_string(), vec![p.name.clone()]);
        extra.insert(EXTRA_POD_UID.to_string(), vec![p.uid.clone()]);
    }
    if let Some(n) = &k.node {
        extra.insert(EXTRA_NODE_NAME.to_string(), vec![n.name.clone()]);
        if !n.uid.is_empty() {
            extra.insert(EXTRA_NODE_UID.to_string(), vec![n.uid.clone()]);
        }
    }
    if !c.jti.is_empty() {
        extra.insert(
            EXTRA_CREDENTIAL_ID.to_string(),
            vec![format!("JTI={}", c.jti)],
        );
    }
    UserInfo {
        name: crate::tokens::username(&k.namespace, &k.serviceaccount.name),
        uid: k.serviceaccount.uid.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", k.namespace),
            "system:authenticated".into(),
        ],
        extra,
    }
}

/// How long a successful service account lookup is trusted.
const CACHE_TTL: Duration = Duration::from_secs(10);
const CACHE_MAX: usize = 4096;

/// All bearer-token authenticators, tried in upstream's order after client certificates:
/// the static token file, the join token, then service account tokens.
pub struct BearerAuthenticator {
    pub join: crate::auth::TokenAuthenticator,
    /// `--token-auth-file`, set once at start.
    pub file: std::sync::OnceLock<TokenFile>,
    cache: Mutex<HashMap<[u8; 32], (UserInfo, Instant, i64)>>,
}

impl BearerAuthenticator {
    pub fn new(join: crate::auth::TokenAuthenticator) -> Self {
        BearerAuthenticator {
            join,
            file: std::sync::OnceLock::new(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The user for a bearer token, `None` when no authenticator accepts it.
    pub async fn authenticate(
        &self,
        reg: &Registry,
        signer: Option<&ServiceAccountSigner>,
        token: &str,
        audiences: &[String],
    ) -> Option<UserInfo> {
        if let Some(u) = self.file.get().and_then(|f| f.authenticate(token)) {
            return Some(u);
        }
        if let Some(u) = self.join.authenticate(token) {
            return Some(u);
        }
        let signer = signer?;
        match self.service_account(reg, signer, token, audiences).await {
            Ok(u) => Some(u),
            Err(SaTokenError::NotServiceAccount) => None,
            Err(e) => {
                tracing::debug!(error = %e, "service account token refused");
                None
            }
        }
    }

    /// Verifies a service account token and checks that what it names still exists.
    pub async fn service_account(
        &self,
        reg: &Registry,
        signer: &ServiceAccountSigner,
        token: &str,
        audiences: &[String],
    ) -> Result<UserInfo, SaTokenError> {
        use sha2::Digest;
        let now = jiff::Timestamp::now().as_second();
        let mut h = sha2::Sha256::new();
        for a in audiences {
            h.update(a.as_bytes());
            h.update([0]);
        }
        h.update([0]);
        h.update(token.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        if let Some((u, at, exp)) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            if at.elapsed() < CACHE_TTL && now < exp {
                return Ok(u);
            }
        }
        let claims = verify_jwt(signer, token, audiences, now)?;
        validate_bound(reg, &claims).await?;
        let user = user_from_claims(&claims);
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_MAX {
                c.clear();
            }
            c.insert(key, (user.clone(), Instant::now(), claims.exp));
        }
        Ok(user)
    }
}

/// The object, or None when it cannot be read (a token naming it is then refused).
async fn lookup(reg: &Registry, plural: &str, ns: &str, name: &str) -> Option<Value> {
    crate::tokens::get(reg, plural, ns, name).await.ok()
}

fn uid_of(v: &Value) -> &str {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Upstream's legacy-free validator: the service account, and the bound pod or secret,
/// must exist with the token's uids; a pod being deleted for over a minute no longer
/// authenticates.
async fn validate_bound(reg: &Registry, c: &Claims) -> Result<(), SaTokenError> {
    let k = &c.kubernetes;
    let ns = &k.namespace;
    let sa = lookup(reg, "serviceaccounts", ns, &k.serviceaccount.name)
        .await
        .ok_or_else(|| {
            SaTokenError::Stale(format!(
                "service account {}/{} has been deleted",
                ns, k.serviceaccount.name
            ))
        })?;
    if uid_of(&sa) != k.serviceaccount.uid {
        return Err(SaTokenError::Stale(format!(
            "service account UID ({}) does not match claim ({})",
            uid_of(&sa),
            k.serviceaccount.uid
        )));
    }
    if let Some(p) = &k.pod {
        let pod = lookup(reg, "pods", ns, &p.name).await.ok_or_else(|| {
            SaTokenError::Stale(format!("pod {}/{} has been deleted", ns, p.name))
        })?;
        if uid_of(&pod) != p.uid {
            return Err(SaTokenError::Stale(format!(
                "pod UID ({}) does not match claim ({})",
                uid_of(&pod),
                p.uid
            )));
        }
        if let Some(ts) = pod
            .pointer("/metadata/deletionTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        {
            if jiff::Timestamp::now().as_second() > ts.as_second() + 60 {
                return Err(SaTokenError::Stale(format!(
                    "pod {}/{} is being deleted",
                    ns, p.name
                )));
            }
        }
    }
    if let Some(s) = &k.secret {
        let secret = lookup(reg, "secrets", ns, &s.name).await.ok_or_else(|| {
            SaTokenError::Stale(format!("secret {}/{} has been deleted", ns, s.name))
        })?;
        if uid_of(&secret) != s.uid {
            return Err(SaTokenError::Stale(format!(
                "secret UID ({}) does not match claim ({})",
                uid_of(&secret),
                s.uid
            )));
        }
    }
    // A node named on its own (node-bound tokens) must still exist.
    if let (Some(n), None) = (&k.node, &k.pod) {
        let node = lookup(reg, "nodes", "", &n.name)
            .await
            .ok_or_else(|| SaTokenError::Stale(format!("node {} has been deleted", n.name)))?;
        if !n.uid.is_empty() && uid_of(&node) != n.uid {
            return Err(SaTokenError::Stale(format!(
                "node UID ({}) does not match claim ({})",
                uid_of(&node),
                n.uid
            )));
        }
    }
    Ok(())
}

/// The API server's own audiences.
pub fn api_audiences() -> Vec<String> {
    vec![API_AUDIENCE.to_string()]
}

/// `/.well-known/openid-configuration` for the service account issuer.
pub fn openid_configuration(signer: &ServiceAccountSigner) -> Value {
    json!({
        "issuer": signer.issuer(),
        "jwks_uri": format!("{}/openid/v1/jwks", signer.issuer()),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    })
}

/// `/openid/v1/jwks`: the public key as a JWK set.
pub fn jwks(signer: &ServiceAccountSigner) -> Value {
    let sec1 = signer.public_key_sec1();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // Uncompressed point: 0x04 || X (32) || Y (32).
    let (x, y) = if sec1.len() == 65 {
        (b64.encode(&sec1[1..33]), b64.encode(&sec1[33..65]))
    } else {
        (String::new(), String::new())
    };
    json!({"keys": [{
        "use": "sig",
        "kty": "EC",
        "kid": signer.key_id(),
        "crv": "P-256",
        "alg": "ES256",
        "x": x,
        "y": y,
    }]})
}

/// What the impersonation headers ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImpersonationRequest {
    pub user: Option<String>,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl ImpersonationRequest {
    /// Reads the headers; `None` when there are none. Header names are case-insensitive,
    /// extra keys are percent-decoded and lower-cased as upstream.
    pub fn from_headers(h: &http::HeaderMap) -> Result<Option<Self>, String> {
        let mut r = ImpersonationRequest::default();
        let mut any = false;
        for (name, value) in h {
            let n = name.as_str();
            let Ok(v) = value.to_str() else {
                continue;
            };
            if n == "impersonate-user" {
                r.user = Some(v.to_string());
                any = true;
            } else if n == "impersonate-uid" {
                r.uid = Some(v.to_string());
                any = true;
            } else if n == "impersonate-group" {
                r.groups.push(v.to_string());
                any = true;
            } else if let Some(key) = n.strip_prefix("impersonate-extra-") {
                let key = percent_decode(key).to_ascii_lowercase();
                r.extra.entry(key).or_default().push(v.to_string());
                any = true;
            }
        }
        if !any {
            return Ok(None);
        }
        if r.user.is_none() {
            let mut what = Vec::new();
            for g in &r.groups {
                what.push(format!("{{\"\" \"groups\" \"\" \"{g}\"}}"));
            }
            if r.uid.is_some() {
                what.push("uid".to_string());
            }
            if !r.extra.is_empty() {
                what.push("extra".to_string());
            }
            return Err(format!(
                "requested [{}] without impersonating a user",
                what.join(" ")
            ));
        }
        Ok(Some(r))
    }

    /// The authorization checks, in upstream's order: the user (or service account), each
    /// group, each extra value, the uid.
    pub fn checks(&self) -> Vec<Attributes> {
        let imp =
            |group: &str, resource: &str, subresource: &str, ns: &str, name: &str| Attributes {
                verb: "impersonate".into(),
                resource_request: true,
                api_group: group.into(),
                resource: resource.into(),
                subresource: subresource.into(),
                namespace: ns.into(),
                name: name.into(),
                ..Default::default()
            };
        let mut out = Vec::new();
        if let Some(u) = &self.user {
            match u
                .strip_prefix("system:serviceaccount:")
                .and_then(|r| r.split_once(':'))
            {
                Some((ns, name)) => out.push(imp("", "serviceaccounts", "", ns, name)),
                None => out.push(imp("", "users", "", "", u)),
            }
        }
        for g in &self.groups {
            out.push(imp("", "groups", "", "", g));
        }
        for (k, vs) in &self.extra {
            for v in vs {
                out.push(imp("authentication.k8s.io", "userextras", k, "", v));
            }
        }
        if let Some(uid) = &self.uid {
            out.push(imp("authentication.k8s.io", "uids", "", "", uid));
        }
        out
    }

    /// The user the request then runs as.
    pub fn user(&self) -> UserInfo {
        let name = self.user.clone().unwrap_or_default();
        let mut groups = self.groups.clone();
        if let Some(ns) = name
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split_once(':'))
            .map(|(ns, _)| ns)
        {
            if self.groups.is_empty() {
                groups.push("system:serviceaccounts".into());
                groups.push(format!("system:serviceaccounts:{ns}"));
            }
        }
        if name == "system:anonymous" {
            if !groups.iter().any(|g| g == "system:unauthenticated") {
                groups.push("system:unauthenticated".into());
            }
        } else if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        UserInfo {
            name,
            uid: self.uid.clone().unwrap_or_default(),
            groups,
            extra: self.extra.clone(),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{claims, generate_key_pem, Bound, ClaimInputs, ClaimRef};

    #[test]
    fn token_file_format() {
        let f = TokenFile::parse(
            "t.csv",
            "# comment\nabc,alice,1001,\"dev,ops\"\n\nxyz,bob,1002\n",
        )
        .unwrap();
        let a = f.authenticate("abc").unwrap();
        assert_eq!(a.name, "alice");
        assert_eq!(a.uid, "1001");
        assert_eq!(a.groups, ["dev", "ops", "system:authenticated"]);
        assert_eq!(
            f.authenticate("xyz").unwrap().groups,
            ["system:authenticated"]
        );
        assert!(f.authenticate("nope").is_none());
        let e = TokenFile::parse("t.csv", "abc,alice\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "token file 't.csv' must have at least 3 columns (token, user name, user uid), found 2"
        );
        assert!(TokenFile::parse("t.csv", "a,\"b,c\n").is_err());
    }

    fn signer() -> ServiceAccountSigner {
        ServiceAccountSigner::from_pem(&generate_key_pem().unwrap(), API_AUDIENCE).unwrap()
    }

    fn token(s: &ServiceAccountSigner, aud: &str, now: i64, secs: i64) -> String {
        let c = claims(ClaimInputs {
            issuer: API_AUDIENCE,
            namespace: "ns1",
            service_account: ClaimRef {
                name: "sa".into(),
                uid: "sa-uid".into(),
            },
            bound: Some(Bound::Pod {
                pod: ClaimRef {
                    name: "p".into(),
                    uid: "p-uid".into(),
                },
                node: Some(ClaimRef {
                    name: "n1".into(),
                    uid: "n-uid".into(),
                }),
            }),
            audiences: vec![aud.into()],
            expiration_seconds: secs,
            warn_after_seconds: 0,
            now,
            jti: "j1".into(),
        });
        s.sign(&c).unwrap()
    }

    #[test]
    fn jwt_checks() {
        let s = signer();
        let now = 1_800_000_000;
        let aud = api_audiences();
        let t = token(&s, API_AUDIENCE, now, 600);
        let c = verify_jwt(&s, &t, &aud, now + 10).unwrap();
        let u = user_from_claims(&c);
        assert_eq!(u.name, "system:serviceaccount:ns1:sa");
        assert_eq!(u.uid, "sa-uid");
        assert_eq!(
            u.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns1",
                "system:authenticated"
            ]
        );
        assert_eq!(u.extra[EXTRA_POD_NAME], ["p"]);
        assert_eq!(u.extra[EXTRA_NODE_NAME], ["n1"]);
        assert_eq!(u.extra[EXTRA_CREDENTIAL_ID], ["JTI=j1"]);
        // Expired.
        assert_eq!(
            verify_jwt(&s, &t, &aud, now + 600),
            Err(SaTokenError::Expired)
        );
        // Other audience.
        let other = token(&s, "vault", now, 600);
        assert!(matches!(
            verify_jwt(&s, &other, &aud, now),
            Err(SaTokenError::Audience(..))
        ));
        // Another key's signature.
        let s2 = signer();
        assert!(matches!(
            verify_jwt(&s2, &t, &aud, now),
            Err(SaTokenError::Invalid(_))
        ));
        // Not a JWT at all.
        assert_eq!(
            verify_jwt(&s, "abc", &aud, now),
            Err(SaTokenError::NotServiceAccount)
        );
    }

    #[test]
    fn jwks_has_the_point() {
        let s = signer();
        let j = jwks(&s);
        let k = &j["keys"][0];
        assert_eq!(k["kid"], s.key_id());
        assert_eq!(k["x"].as_str().unwrap().len(), 43);
        assert_eq!(k["y"].as_str().unwrap().len(), 43);
        let oc = openid_configuration(&s);
        assert_eq!(
            oc["jwks_uri"],
            "https://kubernetes.default.svc.cluster.local/openid/v1/jwks"
        );
    }

    #[test]
    fn impersonation_headers() {
        let mut h = http::HeaderMap::new();
        assert_eq!(ImpersonationRequest::from_headers(&h), Ok(None));
        h.append("Impersonate-Group", "devs".parse().unwrap());
        assert_eq!(
            ImpersonationRequest::from_headers(&h).unwrap_err(),
            "requested [{\"\" \"groups\" \"\" \"devs\"}] without impersonating a user"
        );
        h.append("Impersonate-User", "bob".parse().unwrap());
        h.append("Impersonate-Extra-Team%2fName", "x".parse().unwrap());
        let r = ImpersonationRequest::from_headers(&h).unwrap().unwrap();
        let checks = r.checks();
        assert_eq!(checks.len(), 3);
        assert_eq!(
            (checks[0].resource.as_str(), checks[0].name.as_str()),
            ("users", "bob")
        );
        assert_eq!(checks[1].resource, "groups");
        assert_eq!(
            (checks[2].resource.as_str(), checks[2].subresource.as_str()),
            ("userextras", "team/name")
        );
        let u = r.user();
        assert_eq!(u.groups, ["devs", "system:authenticated"]);
        let sa = ImpersonationRequest {
            user: Some("system:serviceaccount:ns:x".into()),
            ..Default::default()
        };
        let c = &sa.checks()[0];
        assert_eq!(
            (c.resource.as_str(), c.namespace.as_str(), c.name.as_str()),
            ("serviceaccounts", "ns", "x")
        );
        assert_eq!(
            sa.user().groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ]
        );
    }
}
