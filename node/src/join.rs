//! Joining a cluster: parsing the join token, fetching and pinning the server's CA, and
//! getting node credentials (a `system:node:<name>` client certificate and a kubelet
//! serving certificate) that are kept under `DATA/agent/` for later starts.

use serde::Deserialize;
use sha2::Digest;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("invalid join token: {0}")]
    Token(String),
    #[error("fetching the cluster ca from {server}: {message}")]
    FetchCa { server: String, message: String },
    #[error("the cluster ca from {server} has hash {got}, but the join token pins {want}: refusing to join")]
    CaMismatch {
        server: String,
        got: String,
        want: String,
    },
    #[error("requesting node credentials from {server}: {message}")]
    Credentials { server: String, message: String },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A join token: `K10<sha256 of the CA PEM>::<user>:<secret>` (pins the CA) or the bare
/// secret (trusts the CA the server presents on first contact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_hash: Option<String>,
    pub secret: String,
}

pub fn parse_token(token: &str) -> Result<JoinToken, JoinError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(JoinError::Token("empty".into()));
    }
    if let Some(rest) = token.strip_prefix("K10") {
        let (hash, creds) = rest
            .split_once("::")
            .ok_or_else(|| JoinError::Token("expected K10<ca-hash>::<user>:<secret>".into()))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(JoinError::Token(
                "the ca hash must be 64 hexadecimal digits".into(),
            ));
        }
        let secret = creds.split_once(':').map(|(_, s)| s).unwrap_or(creds);
        if secret.is_empty() {
            return Err(JoinError::Token("empty secret".into()));
        }
        return Ok(JoinToken {
            ca_hash: Some(hash.to_ascii_lowercase()),
            secret: secret.to_string(),
        });
    }
    Ok(JoinToken {
        ca_hash: None,
        secret: token.to_string(),
    })
}

/// The hash a full token pins: sha256 of the CA certificate PEM, in hex.
pub fn ca_hash(ca_pem: &str) -> String {
    sha2::Sha256::digest(ca_pem.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub ca_cert: String,
    pub client_cert: String,
    pub client_key: String,
    pub serving_cert: String,
    pub serving_key: String,
}

/// Where an agent keeps what joining produced.
#[derive(Debug, Clone)]
pub struct JoinPaths {
    pub kubeconfig: PathBuf,
    pub ca: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
}

impl JoinPaths {
    pub fn under(agent_dir: &Path) -> JoinPaths {
        JoinPaths {
            kubeconfig: agent_dir.join("kubelet.kubeconfig"),
            ca: agent_dir.join("tls/server-ca.crt"),
            serving_cert: agent_dir.join("tls/serving-kubelet.crt"),
            serving_key: agent_dir.join("tls/serving-kubelet.key"),
        }
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// A kubeconfig for `server` with either a client certificate or a bearer token.
pub fn kubeconfig(
    server: &str,
    ca_pem: Option<&str>,
    cert: Option<(&str, &str)>,
    token: Option<&str>,
) -> String {
    let cluster = match ca_pem {
        Some(ca) => format!("    certificate-authority-data: {}\n", b64(ca)),
        None => "    insecure-skip-tls-verify: true\n".to_string(),
    };
    let mut user = String::new();
    if let Some((c, k)) = cert {
        user.push_str(&format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(c),
            b64(k)
        ));
    }
    if let Some(t) = token {
        user.push_str(&format!("    token: {t}\n"));
    }
    if user.is_empty() {
        user.push_str("    {}\n");
    }
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n{cluster}    server: {server}\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\nusers:\n- name: default\n  user:\n{user}"
    )
}

/// A kube client from kubeconfig text.
pub async fn client_from_kubeconfig(yaml: &str) -> Result<kube::Client, String> {
    let kc = kube::config::Kubeconfig::from_yaml(yaml).map_err(|e| e.to_string())?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    http2_client(cfg)
}

/// A kube client that speaks HTTP/2 over a single TLS connection. An agent keeps several
/// watches open (its pods, its Node, the service proxy's Services and EndpointSlices, the
/// cluster DNS's); over HTTP/1.1 each would hold a connection of its own, with read and
/// TLS buffers on both ends, plus the pool's idle connections left from bursts of writes.
/// Streams multiplexed on one connection cost a few KiB each (BENCHMARKS.md, figures 8 and
/// 10).
pub fn http2_client(cfg: kube::Config) -> Result<kube::Client, String> {
    use kube::client::ConfigExt;
    // Without TCP_NODELAY, HTTP/2's small frames written back to back (HEADERS, then DATA
    // or WINDOW_UPDATE) wait on delayed ACKs: ~40 ms per request.
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let tls = cfg.rustls_client_config().map_err(|e| e.to_string())?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http2()
        .wrap_connector(tcp);
    let http: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build(https);
    let auth = cfg.auth_layer().map_err(|e| e.to_string())?;
    let service = tower::ServiceBuilder::new()
        .layer(cfg.base_uri_layer())
        .option_layer(auth)
        .map_err(|e: hyper_util::client::legacy::Error| Box::new(e) as tower::BoxError)
        .service(http);
    Ok(kube::Client::new(service, cfg.default_namespace))
}

async fn get_text(client: &kube::Client, path: &str) -> Result<String, String> {
    let req = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    client.request_text(req).await.map_err(|e| e.to_string())
}

/// Fetches the CA (without verifying the server, as k3s does) and checks it against the
/// token's pin.
pub async fn fetch_ca(server: &str, token: &JoinToken) -> Result<String, JoinError> {
    let fetch_err = |message: String| JoinError::FetchCa {
        server: server.to_string(),
        message,
    };
    let client = client_from_kubeconfig(&kubeconfig(server, None, None, None))
        .await
        .map_err(fetch_err)?;
    let pem = get_text(&client, "/cacerts").await.map_err(fetch_err)?;
    if !pem.contains("BEGIN CERTIFICATE") {
        return Err(fetch_err("the response is not a pem certificate".into()));
    }
    if let Some(want) = &token.ca_hash {
        let got = ca_hash(&pem);
        if &got != want {
            return Err(JoinError::CaMismatch {
                server: server.to_string(),
                got,
                want: want.clone(),
            });
        }
    } else {
        tracing::warn!(%server, "join token does not pin the cluster ca; trusting the ca the server presents");
    }
    Ok(pem)
}

/// Asks the server for this node's certificates, authenticating with the token.
pub async fn request_credentials(
    server: &str,
    ca_pem: &str,
    token: &JoinToken,
    node_name: &str,
    addresses: &[String],
) -> Result<Credentials, JoinError> {
    let err = |message: String| JoinError::Credentials {
        server: server.to_string(),
        message,
    };
    let client =
        client_from_kubeconfig(&kubeconfig(server, Some(ca_pem), None, Some(&token.secret)))
            .await
            .map_err(err)?;
    let body = serde_json::json!({"nodeName": node_name, "addresses": addresses});
    let req = http::Request::post("/v1-minik8s/node-credentials")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .map_err(|e| err(e.to_string()))?;
    let text = client.request_text(req).await.map_err(|e| {
        let msg = e.to_string();
        if msg.contains("401") || msg.to_ascii_lowercase().contains("unauthorized") {
            err(format!("the join token was refused ({msg})"))
        } else {
            err(msg)
        }
    })?;
    serde_json::from_str(&text).map_err(|e| err(format!("decoding the response: {e}")))
}

fn write(path: &Path, data: &str, mode: u32) -> Result<(), JoinError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let werr = |source| JoinError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(werr)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(werr)?;
    f.write_all(data.as_bytes()).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    std::fs::rename(&tmp, path).map_err(werr)
}

/// Node certificates this close to expiry are renewed at start (k3s: 90 days).
pub const RENEW_BEFORE_DAYS: i64 = 90;

/// Whether a PEM certificate expires within `days` (or cannot be read).
pub fn expires_within(cert_pem: &str, days: i64) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) else {
        return true;
    };
    let Ok(cert) = pem.parse_x509() else {
        return true;
    };
    let now = jiff::Timestamp::now().as_second();
    cert.validity().not_after.timestamp() - now < days * 86_400
}

/// Joins (or reuses the credentials of an earlier join to the same server and CA) and
/// returns the kubeconfig text for the node identity.
pub async fn join(
    server: &str,
    token: &str,
    paths: &JoinPaths,
    node_name: &str,
    addresses: &[String],
) -> Result<String, JoinError> {
    let token = parse_token(token)?;
    if let (Ok(kc), Ok(ca)) = (
        std::fs::read_to_string(&paths.kubeconfig),
        std::fs::read_to_string(&paths.ca),
    ) {
        let same_server = kc.contains(&format!("server: {server}\n"));
        let same_ca = token.ca_hash.as_ref().is_none_or(|h| *h == ca_hash(&ca));
        let same_node = std::fs::read_to_string(paths.kubeconfig.with_extension("node"))
            .is_ok_and(|n| n.trim() == node_name);
        // Certificates close to expiry are renewed on start, as k3s does.
        let fresh = std::fs::read_to_string(&paths.serving_cert)
            .is_ok_and(|c| !expires_within(&c, RENEW_BEFORE_DAYS));
        if same_server && same_ca && same_node && fresh {
            return Ok(kc);
        }
    }
    let ca = fetch_ca(server, &token).await?;
    let creds = request_credentials(server, &ca, &token, node_name, addresses).await?;
    let kc = kubeconfig(
        server,
        Some(&creds.ca_cert),
        Some((&creds.client_cert, &creds.client_key)),
        None,
    );
    write(&paths.ca, &creds.ca_cert, 0o644)?;
    write(&paths.serving_cert, &creds.serving_cert, 0o644)?;
    write(&paths.serving_key, &creds.serving_key, 0o600)?;
    write(&paths.kubeconfig, &kc, 0o600)?;
    write(
        &paths.kubeconfig.with_extension("node"),
        &format!("{node_name}\n"),
        0o644,
    )?;
    Ok(kc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens() {
        let h = "a".repeat(64);
        let t = parse_token(&format!("K10{h}::server:s3cret")).unwrap();
        assert_eq!(t.ca_hash.as_deref(), Some(h.as_str()));
        assert_eq!(t.secret, "s3cret");
        let t = parse_token("s3cret").unwrap();
        assert_eq!(t.ca_hash, None);
        assert_eq!(t.secret, "s3cret");
        assert!(parse_token("K10abc::server:x").is_err());
        assert!(parse_token("").is_err());
        assert!(parse_token(&format!("K10{h}::server:")).is_err());
    }

    #[test]
    fn kubeconfig_parses() {
        let kc = kubeconfig(
            "https://10.0.0.1:6443",
            Some("-----BEGIN CERTIFICATE-----\n"),
            None,
            Some("tok"),
        );
        let parsed = kube::config::Kubeconfig::from_yaml(&kc).unwrap();
        assert_eq!(
            parsed.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .server
                .as_deref(),
            Some("https://10.0.0.1:6443")
        );
        let kc = kubeconfig("https://x:6443", None, None, None);
        let parsed = kube::config::Kubeconfig::from_yaml(&kc).unwrap();
        assert_eq!(
            parsed.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .insecure_skip_tls_verify,
            Some(true)
        );
    }

    #[test]
    fn ca_hash_is_sha256_hex() {
        assert_eq!(
            ca_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
