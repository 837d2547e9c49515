//! Authentication (x509 client certificates, bearer tokens) and authorization, as separate
//! pipeline stages. Authorization is an ordered chain of `Authorizer`s (masters, the node
//! authorizer, RBAC, the join token) in front of the default deny.

use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Who made a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// Upstream's `extra` (e.g. a service account token's pod name).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn anonymous() -> Self {
        UserInfo {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
            extra: BTreeMap::new(),
        }
    }
    pub fn is_anonymous(&self) -> bool {
        self.name == "system:anonymous"
    }
    /// The `userInfo` shape of reviews and audit events (empty fields left out).
    pub fn to_json(&self) -> Value {
        let mut v = json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

/// Identity from the TLS handshake, attached to each request of the connection.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificate(pub Option<Vec<u8>>);

/// Reads user and groups (CN and O) from a DER client certificate already verified
/// against the cluster CA by the TLS layer.
pub fn user_from_cert(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())?
        .to_string();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    groups.push("system:authenticated".into());
    Some(UserInfo {
        name,
        uid: String::new(),
        groups,
        extra: BTreeMap::new(),
    })
}

/// Static bearer tokens (the cluster join token for now).
#[derive(Debug, Clone, Default)]
pub struct TokenAuthenticator {
    tokens: Vec<(String, UserInfo)>,
}

impl TokenAuthenticator {
    /// The join token: in its full k3s form `K10<ca-hash>::server:<secret>` only the
    /// secret part is checked; the short form is the secret itself.
    pub fn with_join_token(secret: &str) -> Self {
        TokenAuthenticator {
            tokens: vec![(
                secret.to_string(),
                UserInfo {
                    name: "system:bootstrap:minik8s".into(),
                    uid: String::new(),
                    groups: vec!["system:bootstrappers".into(), "system:authenticated".into()],
                    extra: BTreeMap::new(),
                },
            )],
        }
    }
    pub fn authenticate(&self, bearer: &str) -> Option<UserInfo> {
        let secret = join_token_secret(bearer);
        self.tokens
            .iter()
            .find(|(t, _)| constant_time_eq(t.as_bytes(), secret.as_bytes()))
            .map(|(_, u)| u.clone())
    }
}

/// Extracts the secret from `K10<hash>::<user>:<secret>` or returns the token unchanged.
pub fn join_token_secret(token: &str) -> &str {
    match token
        .strip_prefix("K10")
        .and_then(|rest| rest.split_once("::"))
    {
        Some((_, creds)) => creds.split_once(':').map(|(_, s)| s).unwrap_or(creds),
        None => token,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a request wants to do, in authorizer terms.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub verb: String,
    pub resource_request: bool,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// For non-resource requests.
    pub path: String,
    /// The request's `fieldSelector` (the node authorizer lets a node list and watch pods
    /// only with `spec.nodeName=<itself>`).
    pub field_selector: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
    NoOpinion,
}

pub trait Authorizer: Send + Sync {
    fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision;
}

/// Members of `system:masters` may do anything.
pub struct MastersAuthorizer;

impl Authorizer for MastersAuthorizer {
    fn authorize(&self, user: &UserInfo, _: &Attributes) -> Decision {
        if user.groups.iter().any(|g| g == "system:masters") {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}

/// The built-in cluster DNS's identity (bound to `system:coredns` by the bootstrap policy).
pub const DNS_USER: &str = crate::rbac::bootstrap::KUBE_DNS_USER;

/// The join token's identity may ask for node credentials, and nothing else beyond the
/// discovery paths.
pub struct JoinAuthorizer;

impl Authorizer for JoinAuthorizer {
    fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        if user.name == crate::join::JOIN_USER
            && !attrs.resource_request
            && attrs.verb == "post"
            && attrs.path == "/v1-minik8s/node-credentials"
        {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}

/// Runs authorizers in order; the first Allow or Deny wins; no opinion denies.
pub struct AuthorizerChain(pub Vec<Box<dyn Authorizer>>);

impl AuthorizerChain {
    /// The first opinion in the chain, or `NoOpinion` when no authorizer has one (access
    /// reviews report that as not allowed, without `denied`).
    pub fn decide(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        self.0
            .iter()
            .map(|a| a.authorize(user, attrs))
            .find(|d| *d != Decision::NoOpinion)
            .unwrap_or(Decision::NoOpinion)
    }

    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        for a in &self.0 {
            match a.authorize(user, attrs) {
                Decision::NoOpinion => continue,
                d => return d,
            }
        }
        Decision::Deny(String::new())
    }
}

/// The upstream 403 text, e.g. `pods "x" is forbidden: User "bob" cannot get resource
/// "pods" in API group "" in the namespace "default"`.
pub fn forbidden_message(user: &UserInfo, a: &Attributes, reason: &str) -> String {
    let suffix = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    if !a.resource_request {
        return format!(
            "forbidden: User \"{}\" cannot {} path \"{}\"{}",
            user.name, a.verb, a.path, suffix
        );
    }
    let res = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let qualified = if a.api_group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    let subject = if a.name.is_empty() {
        qualified
    } else {
        format!("{qualified} \"{}\"", a.name)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    format!(
        "{subject} is forbidden: User \"{}\" cannot {} resource \"{res}\" in API group \"{}\" {scope}{suffix}",
        user.name, a.verb, a.api_group
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_token_forms() {
        assert_eq!(join_token_secret("K10abc::server:s3cret"), "s3cret");
        assert_eq!(join_token_secret("s3cret"), "s3cret");
        let t = TokenAuthenticator::with_join_token("s3cret");
        assert!(t.authenticate("K10abc::server:s3cret").is_some());
        assert!(t.authenticate("nope").is_none());
    }

    #[test]
    fn forbidden_text_matches_upstream() {
        let u = UserInfo {
            name: "bob".into(),
            uid: String::new(),
            groups: vec![],
            extra: BTreeMap::new(),
        };
        let a = Attributes {
            verb: "list".into(),
            resource_request: true,
            resource: "pods".into(),
            namespace: "team-a".into(),
            ..Default::default()
        };
        assert_eq!(
            forbidden_message(&u, &a, ""),
            "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"team-a\""
        );
    }

    #[test]
    fn masters_allowed_others_denied() {
        let chain = AuthorizerChain(vec![Box::new(MastersAuthorizer)]);
        let admin = UserInfo {
            name: "a".into(),
            uid: String::new(),
            groups: vec!["system:masters".into()],
            extra: BTreeMap::new(),
        };
        let bob = UserInfo {
            name: "bob".into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
            extra: BTreeMap::new(),
        };
        let res = Attributes {
            verb: "get".into(),
            resource_request: true,
            resource: "pods".into(),
            ..Default::default()
        };
        assert_eq!(chain.authorize(&admin, &res), Decision::Allow);
        assert!(matches!(chain.authorize(&bob, &res), Decision::Deny(_)));
    }
}
