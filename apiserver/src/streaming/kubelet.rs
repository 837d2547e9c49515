//! The API server's client for the kubelet HTTPS API: mutual TLS against the cluster CA (the
//! kubelet's serving certificate carries the node's IPs and name), HTTP/1.1 over hyper, plain
//! requests (logs) and upgrade requests (exec, attach, port-forward).

use super::StreamingError;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// How long dialling plus the TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the kubelet may take to answer an upgrade request.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an error body is kept.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Credentials for talking to kubelets: the cluster CA (to verify the kubelet) and the API
/// server's kubelet client certificate (CN `kube-apiserver-kubelet-client`).
#[derive(Clone, Debug)]
pub struct KubeletClient {
    pub ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

/// The kubelet's answer to an upgrade request.
pub enum UpgradeOutcome {
    /// 101: the raw connection, and the response headers (e.g. `X-Stream-Protocol-Version`).
    Switched {
        headers: HeaderMap,
        io: TokioIo<hyper::upgrade::Upgraded>,
    },
    /// Anything else, with (the start of) its body.
    Refused {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

impl KubeletClient {
    fn tls_config(&self) -> Result<rustls::ClientConfig, StreamingError> {
        let tls = |e: String| StreamingError::TlsConfig(e);
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut self.ca_pem.as_bytes()) {
            roots
                .add(c.map_err(|e| tls(e.to_string()))?)
                .map_err(|e| tls(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(tls("no CA certificate".into()));
        }
        let chain: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut self.client_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| tls(e.to_string()))?;
        let key: PrivateKeyDer<'static> =
            rustls_pemfile::private_key(&mut self.client_key_pem.as_bytes())
                .map_err(|e| tls(e.to_string()))?
                .ok_or_else(|| tls("no client key".into()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls(e.to_string()))
    }

    /// Opens a TLS connection to `host:port` (no ALPN: HTTP/1.1 only).
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, StreamingError> {
        let cfg = Arc::new(self.tls_config()?);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_string())
            .map_err(|_| StreamingError::Host(host.to_string()))?;
        let addr = host_port(host, port);
        let fut = async {
            let tcp =
                TcpStream::connect((bare, port))
                    .await
                    .map_err(|source| StreamingError::Dial {
                        addr: addr.clone(),
                        source,
                    })?;
            let _ = tcp.set_nodelay(true);
            tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(|source| StreamingError::TlsHandshake {
                    addr: addr.clone(),
                    source,
                })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| StreamingError::DialTimeout(addr.clone()))?
    }

    /// Sends one request on a fresh connection and returns the response head and body stream.
    async fn send(
        &self,
        host: &str,
        port: u16,
        req: Request<Empty<Bytes>>,
    ) -> Result<Response<Incoming>, StreamingError> {
        let tls = self.connect(host, port).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(StreamingError::HttpHandshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "kubelet connection ended");
            }
        });
        sender.send_request(req).await.map_err(StreamingError::Send)
    }

    /// `GET path_and_query`, returning the response with its streaming body.
    pub async fn get(
        &self,
        host: &str,
        port: u16,
        path_and_query: &str,
    ) -> Result<Response<Incoming>, StreamingError> {
        let req = request(host, port, Method::GET, path_and_query, &HeaderMap::new())?;
        self.send(host, port, req).await
    }

    /// Sends an upgrade request (the caller supplies `Upgrade`, `Connection` and protocol
    /// headers in `headers`) and returns the switched connection or the refusal.
    pub async fn upgrade(
        &self,
        host: &str,
        port: u16,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Result<UpgradeOutcome, StreamingError> {
        let req = request(host, port, method, path_and_query, headers)?;
        let fut = async {
            let mut resp = self.send(host, port, req).await?;
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                let headers = resp.headers().clone();
                let up = hyper::upgrade::on(&mut resp)
                    .await
                    .map_err(StreamingError::Upgrade)?;
                return Ok(UpgradeOutcome::Switched {
                    headers,
                    io: TokioIo::new(up),
                });
            }
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = read_limited(resp.into_body()).await;
            Ok(UpgradeOutcome::Refused {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(UPGRADE_TIMEOUT, fut)
            .await
            .map_err(|_| StreamingError::UpgradeTimeout)?
    }
}

/// Reads at most [`ERROR_BODY_LIMIT`] bytes of a body; a failed read yields what is known.
pub(crate) async fn read_limited(body: Incoming) -> Bytes {
    match Limited::new(body, ERROR_BODY_LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    }
}

pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn request(
    host: &str,
    port: u16,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Result<Request<Empty<Bytes>>, StreamingError> {
    let mut b = Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(http::header::HOST, host_port(host, port));
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(Empty::new())
        .map_err(|e| StreamingError::Request(e.to_string()))
}
