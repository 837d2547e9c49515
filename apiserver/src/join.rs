//! Joining nodes: the public `/cacerts` endpoint (the CA an agent pins against the hash in
//! its join token) and `/v1-minik8s/node-credentials`, where a holder of the join token
//! gets a client certificate for `system:node:<name>` (group `system:nodes`) and a serving
//! certificate for its kubelet, both signed by the cluster CA (k3s serves the same pair
//! under `/v1-k3s/`).

use crate::error::{ApiError, ApiResult};
use crate::pki::Pki;
use serde::{Deserialize, Serialize};

/// Who may ask for node credentials: the join token's identity, or an admin.
pub const JOIN_USER: &str = "system:bootstrap:minik8s";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRequest {
    pub node_name: String,
    /// Addresses (IPs or DNS names) the kubelet serves on.
    #[serde(default)]
    pub addresses: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub ca_cert: String,
    pub client_cert: String,
    pub client_key: String,
    pub serving_cert: String,
    pub serving_key: String,
}

fn valid_node_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Issues a node's certificates.
pub fn issue(pki: &Pki, req: &CredentialsRequest) -> ApiResult<Credentials> {
    if !valid_node_name(&req.node_name) {
        return Err(ApiError::bad_request(format!(
            "invalid node name {:?}: must be a lowercase RFC 1123 subdomain",
            req.node_name
        )));
    }
    let user = format!("system:node:{}", req.node_name);
    let (client_cert, client_key) = pki
        .issue_client_cert(&user, &["system:nodes"])
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut sans = vec![req.node_name.clone()];
    sans.extend(req.addresses.iter().cloned());
    let (serving_cert, serving_key) = pki
        .issue_serving_cert(&req.node_name, &sans)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Credentials {
        ca_cert: pki.ca_cert_pem.clone(),
        client_cert,
        client_key,
        serving_cert,
        serving_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        assert!(valid_node_name("node-1"));
        assert!(valid_node_name("a.b.c"));
        assert!(!valid_node_name("Node"));
        assert!(!valid_node_name("-x"));
        assert!(!valid_node_name(""));
        assert!(!valid_node_name("a..b"));
    }

    #[test]
    fn issues_node_identity() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &["127.0.0.1".into()]).unwrap();
        let c = issue(
            &pki,
            &CredentialsRequest {
                node_name: "n1".into(),
                addresses: vec!["10.0.0.5".into()],
            },
        )
        .unwrap();
        let der = rustls_pemfile::certs(&mut c.client_cert.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let u = crate::auth::user_from_cert(&der).unwrap();
        assert_eq!(u.name, "system:node:n1");
        assert!(u.groups.contains(&"system:nodes".to_string()));
        assert!(c.serving_cert.contains("BEGIN CERTIFICATE"));
        let bad = issue(
            &pki,
            &CredentialsRequest {
                node_name: "Bad_Name".into(),
                addresses: vec![],
            },
        );
        assert_eq!(bad.err().unwrap().code, 400);
    }
}
