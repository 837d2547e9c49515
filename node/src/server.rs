//! The kubelet HTTPS API (port 10250): mutual TLS against the cluster CA, only the API
//! server's kubelet client (CN `kube-apiserver-kubelet-client`) or `system:masters` may call
//! it, `/healthz` is open to any verified client. Routes as upstream's
//! pkg/kubelet/server/server.go: `/containerLogs/{ns}/{pod}/{container}`,
//! `/exec/{ns}/{pod}[/{uid}]/{container}`, `/attach/...`, `/portForward/{ns}/{pod}[/{uid}]`,
//! `/pods`, `/healthz`. Exec, attach and port-forward are proxied, upgrade and all, to the CRI
//! streaming server URL the backend obtains from the runtime. Everything node-specific sits
//! behind [`KubeletBackend`].

use crate::logs::{read_logs, LogOptions};
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// The common name of the API server's kubelet client certificate.
pub const APISERVER_CLIENT_CN: &str = "kube-apiserver-kubelet-client";
/// The group allowed everything.
pub const MASTERS_GROUP: &str = "system:masters";

/// How long the CRI streaming server may take to answer an upgrade.
const STREAMING_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an error body from the streaming server is echoed.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("configuring tls: {0}")]
    TlsConfig(String),
    /// The pod or container is unknown: answered 404 with this text.
    #[error("{0}")]
    NotFound(String),
    /// The request is invalid: answered 400 with this text.
    #[error("{0}")]
    BadRequest(String),
    /// The runtime failed: answered 500 with this text (the CRI error).
    #[error("{0}")]
    Runtime(String),
    #[error("invalid streaming url {0:?}")]
    StreamingUrl(String),
    #[error("dial tcp {addr}: {source}")]
    StreamingDial {
        addr: String,
        source: std::io::Error,
    },
    #[error("http handshake with streaming server: {0}")]
    StreamingHandshake(hyper::Error),
    #[error("sending request to streaming server: {0}")]
    StreamingSend(hyper::Error),
    #[error("upgrading streaming connection: {0}")]
    StreamingUpgrade(hyper::Error),
    #[error("timed out waiting for the streaming server")]
    StreamingTimeout,
}

impl ServerError {
    fn status_code(&self) -> StatusCode {
        match self {
            ServerError::NotFound(_) => StatusCode::NOT_FOUND,
            ServerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        plain(self.status_code(), self.to_string())
    }
}

fn plain(code: StatusCode, text: impl Into<String>) -> Response {
    let mut r = Response::new(Body::from(text.into()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// PEM material of the kubelet's serving certificate and the CA its clients must chain to.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Which streams an exec/attach session carries (the kubelet's `input`, `output`, `error`,
/// `tty` parameters; with a TTY there is no separate stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// What the server needs from the node.
#[async_trait]
pub trait KubeletBackend: Send + Sync {
    /// CRI `Exec`: the streaming URL for running `cmd` in the container.
    async fn exec_url(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        cmd: Vec<String>,
        opts: StreamOptions,
    ) -> Result<String, ServerError>;
    /// CRI `Attach`: the streaming URL for attaching to the container's process.
    async fn attach_url(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        opts: StreamOptions,
    ) -> Result<String, ServerError>;
    /// CRI `PortForward`: the streaming URL for the pod sandbox.
    async fn port_forward_url(&self, namespace: &str, pod: &str) -> Result<String, ServerError>;
    /// The CRI log file of the container (of its previous instance with `previous`), and
    /// whether that instance is still running.
    async fn log_path(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<(PathBuf, bool), ServerError>;
    /// Resolves once the container's current instance is no longer running (ends `-f`).
    async fn wait_container_exit(&self, namespace: &str, pod: &str, container: &str);
    /// The pods bound to this node, as a `v1.PodList` (`GET /pods`).
    async fn pods(&self) -> Result<serde_json::Value, ServerError> {
        Ok(serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []}))
    }
}

/// The authenticated client: certificate CN and organizations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerIdentity {
    pub user: String,
    pub groups: Vec<String>,
}

impl PeerIdentity {
    /// Reads CN and O from a DER certificate.
    pub fn from_der(der: &[u8]) -> Option<PeerIdentity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let user = subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_string();
        let groups = subject
            .iter_organization()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect();
        Some(PeerIdentity { user, groups })
    }
}

/// Upstream's request verb for an HTTP method.
fn verb(method: &Method) -> String {
    match *method {
        Method::GET | Method::HEAD => "get".into(),
        Method::POST => "create".into(),
        Method::PUT => "update".into(),
        Method::PATCH => "patch".into(),
        Method::DELETE => "delete".into(),
        ref m => m.as_str().to_ascii_lowercase(),
    }
}

/// Upstream's `nodes` subresource for a kubelet path.
fn subresource(path: &str) -> &'static str {
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if under("/stats") {
        "stats"
    } else if under("/metrics") {
        "metrics"
    } else if under("/logs") {
        "log"
    } else if under("/checkpoint") {
        "checkpoint"
    } else {
        "proxy"
    }
}

/// Decides whether `who` may call `method path`; the error is the status and body to answer.
pub fn authorize(
    who: Option<&PeerIdentity>,
    method: &Method,
    path: &str,
) -> Result<(), (StatusCode, String)> {
    if path == "/healthz" || path.starts_with("/healthz/") {
        return Ok(());
    }
    let Some(who) = who else {
        return Err((StatusCode::UNAUTHORIZED, "Unauthorized".into()));
    };
    if who.user == APISERVER_CLIENT_CN || who.groups.iter().any(|g| g == MASTERS_GROUP) {
        return Ok(());
    }
    Err((
        StatusCode::FORBIDDEN,
        format!(
            "Forbidden (user={}, verb={}, resource=nodes, subresource(s)=[{}])\n",
            who.user,
            verb(method),
            subresource(path)
        ),
    ))
}

fn tls_config(tls: &ServerTls) -> Result<rustls::ServerConfig, ServerError> {
    let err = |e: String| ServerError::TlsConfig(e);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut tls.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no serving certificate".into()));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut tls.key_pem.as_bytes())
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("no serving key".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut tls.ca_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| err(e.to_string()))?)
            .map_err(|e| err(e.to_string()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| err(e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| err(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The kubelet API routes (without TLS and authorization, which [`serve`] adds).
pub fn router(backend: Arc<dyn KubeletBackend>) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/pods", get(get_pods))
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/exec/{ns}/{pod}/{container}", get(exec).post(exec))
        .route(
            "/exec/{ns}/{pod}/{uid}/{container}",
            get(exec_uid).post(exec_uid),
        )
        .route("/attach/{ns}/{pod}/{container}", get(attach).post(attach))
        .route(
            "/attach/{ns}/{pod}/{uid}/{container}",
            get(attach_uid).post(attach_uid),
        )
        .route(
            "/portForward/{ns}/{pod}",
            get(port_forward).post(port_forward),
        )
        .route(
            "/portForward/{ns}/{pod}/{uid}",
            get(port_forward_uid).post(port_forward_uid),
        )
        .with_state(backend)
}

/// Serves the kubelet API over HTTPS on `listener` until the task is dropped. Only fails if
/// the TLS material is unusable.
pub async fn serve(
    listener: TcpListener,
    tls: ServerTls,
    backend: Arc<dyn KubeletBackend>,
) -> Result<(), ServerError> {
    serve_router(listener, tls, router(backend)).await
}

/// Serves `app` (the [`router`] routes, possibly merged with others such as
/// `crate::stats::routes`) over HTTPS with the same client-certificate authorization.
pub async fn serve_router(
    listener: TcpListener,
    tls: ServerTls,
    app: axum::Router,
) -> Result<(), ServerError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&tls)?));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "kubelet server accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "kubelet tls handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| PeerIdentity::from_der(c.as_ref()));
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    let identity = identity.clone();
                    async move {
                        if let Err((code, text)) =
                            authorize(identity.as_ref(), req.method(), req.uri().path())
                        {
                            return Ok(plain(code, text));
                        }
                        app.oneshot(req.map(Body::new)).await
                    }
                });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "kubelet connection ended");
            }
        });
    }
}

type Backend = State<Arc<dyn KubeletBackend>>;

async fn get_pods(State(b): Backend) -> Response {
    match b.pods().await {
        Ok(v) => {
            let mut r = Response::new(Body::from(serde_json::to_vec(&v).unwrap_or_default()));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => e.into_response(),
    }
}

/// Query parameters as (key, value) pairs, repeated keys kept.
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Upstream's query-to-bool conversion: present and not `0`/`false` means true.
fn flag(q: &[(String, String)], name: &str) -> bool {
    q.iter()
        .find(|(k, _)| k == name)
        .is_some_and(|(_, v)| v != "0" && !v.eq_ignore_ascii_case("false"))
}

fn last<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `PodLogOptions` from the kubelet query; the error is the status and body to answer.
pub fn parse_log_query(
    q: &[(String, String)],
    now: jiff::Timestamp,
) -> Result<(LogOptions, bool), (StatusCode, String)> {
    let decode = || {
        (
            StatusCode::BAD_REQUEST,
            r#"{"message": "Unable to decode query."}"#.to_string(),
        )
    };
    let invalid = || {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"message": "Invalid request."}"#.to_string(),
        )
    };
    let int = |name: &str| -> Result<Option<i64>, (StatusCode, String)> {
        match last(q, name) {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| decode()),
        }
    };
    // Backwards compatibility: `tail` stands for `tailLines`, `all` meaning no limit.
    let tail_lines = match last(q, "tail") {
        Some("all") => None,
        Some(t) => Some(t.parse::<i64>().map_err(|_| decode())?),
        None => int("tailLines")?,
    };
    let since_seconds = int("sinceSeconds")?;
    let since_time = match last(q, "sinceTime") {
        None => None,
        Some(t) => Some(t.parse::<jiff::Timestamp>().map_err(|_| decode())?),
    };
    let limit_bytes = int("limitBytes")?;
    if tail_lines.is_some_and(|n| n < 0)
        || limit_bytes.is_some_and(|n| n < 1)
        || since_seconds.is_some_and(|n| n < 1)
        || (since_seconds.is_some() && since_time.is_some())
    {
        return Err(invalid());
    }
    let since = match (since_seconds, since_time) {
        (Some(s), _) => now
            .checked_sub(jiff::SignedDuration::from_secs(s))
            .ok()
            .or(Some(jiff::Timestamp::MIN)),
        (None, t) => t,
    };
    Ok((
        LogOptions {
            follow: flag(q, "follow"),
            tail_lines,
            since,
            timestamps: flag(q, "timestamps"),
            limit_bytes,
        },
        flag(q, "previous"),
    ))
}

async fn container_logs(
    State(b): Backend,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    uri: Uri,
) -> Response {
    let q = query_pairs(&uri);
    let (opts, previous) = match parse_log_query(&q, jiff::Timestamp::now()) {
        Ok(x) => x,
        Err((code, text)) => return plain(code, text),
    };
    let (path, running) = match b.log_path(&ns, &pod, &container, previous).await {
        Ok(x) => x,
        Err(e) => return e.into_response(),
    };
    let (writer, mut reader) = tokio::io::duplex(64 * 1024);
    let stop = {
        let b = b.clone();
        async move {
            if running && !previous {
                b.wait_container_exit(&ns, &pod, &container).await;
            }
        }
    };
    let task = tokio::spawn(async move { read_logs(&path, &opts, writer, stop).await });
    // Wait for the first bytes (or the end) so that an early failure can still be a 400.
    let mut first = BytesMut::with_capacity(16 * 1024);
    let n = match reader.read_buf(&mut first).await {
        Ok(n) => n,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if n == 0 {
        return match task.await {
            Ok(Err(e)) => plain(StatusCode::BAD_REQUEST, e.to_string()),
            _ => log_response(Body::empty()),
        };
    }
    let chunks = futures::stream::unfold(
        (Some(first.freeze()), reader),
        |(first, mut reader)| async move {
            if let Some(b) = first {
                return Some((Ok::<Bytes, std::io::Error>(b), (None, reader)));
            }
            let mut buf = BytesMut::with_capacity(16 * 1024);
            match reader.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(buf.freeze()), (None, reader))),
                Err(e) => Some((Err(e), (None, reader))),
            }
        },
    );
    log_response(Body::from_stream(chunks))
}

fn log_response(body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// `remotecommand.NewOptions`: which streams the client asked for.
pub fn stream_options(q: &[(String, String)]) -> Result<StreamOptions, ServerError> {
    let on = |a: &str, b: &str| {
        q.iter()
            .any(|(k, v)| (k == a || k == b) && (v == "1" || v.eq_ignore_ascii_case("true")))
    };
    let mut o = StreamOptions {
        stdin: on("input", "stdin"),
        stdout: on("output", "stdout"),
        stderr: on("error", "stderr"),
        tty: on("tty", "tty"),
    };
    if o.tty && o.stderr {
        o.stderr = false;
    }
    if !o.stdin && !o.stdout && !o.stderr {
        return Err(ServerError::BadRequest(
            "you must specify at least 1 of stdin, stdout, stderr".into(),
        ));
    }
    Ok(o)
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

fn upgrade_required() -> Response {
    plain(StatusCode::BAD_REQUEST, "Upgrade request required")
}

async fn exec(
    State(b): Backend,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    req: Request,
) -> Response {
    do_exec(b, ns, pod, container, req).await
}

async fn exec_uid(
    State(b): Backend,
    UrlPath((ns, pod, _uid, container)): UrlPath<(String, String, String, String)>,
    req: Request,
) -> Response {
    do_exec(b, ns, pod, container, req).await
}

async fn do_exec(
    b: Arc<dyn KubeletBackend>,
    ns: String,
    pod: String,
    container: String,
    req: Request,
) -> Response {
    let q = query_pairs(req.uri());
    let opts = match stream_options(&q) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    if !is_upgrade(req.headers()) {
        return upgrade_required();
    }
    let cmd: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    match b.exec_url(&ns, &pod, &container, cmd, opts).await {
        Ok(url) => proxy_upgrade(&url, req).await,
        Err(e) => e.into_response(),
    }
}

async fn attach(
    State(b): Backend,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    req: Request,
) -> Response {
    do_attach(b, ns, pod, container, req).await
}

async fn attach_uid(
    State(b): Backend,
    UrlPath((ns, pod, _uid, container)): UrlPath<(String, String, String, String)>,
    req: Request,
) -> Response {
    do_attach(b, ns, pod, container, req).await
}

async fn do_attach(
    b: Arc<dyn KubeletBackend>,
    ns: String,
    pod: String,
    container: String,
    req: Request,
) -> Response {
    let opts = match stream_options(&query_pairs(req.uri())) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    if !is_upgrade(req.headers()) {
        return upgrade_required();
    }
    match b.attach_url(&ns, &pod, &container, opts).await {
        Ok(url) => proxy_upgrade(&url, req).await,
        Err(e) => e.into_response(),
    }
}

async fn port_forward(
    State(b): Backend,
    UrlPath((ns, pod)): UrlPath<(String, String)>,
    req: Request,
) -> Response {
    do_port_forward(b, ns, pod, req).await
}

async fn port_forward_uid(
    State(b): Backend,
    UrlPath((ns, pod, _uid)): UrlPath<(String, String, String)>,
    req: Request,
) -> Response {
    do_port_forward(b, ns, pod, req).await
}

async fn do_port_forward(
    b: Arc<dyn KubeletBackend>,
    ns: String,
    pod: String,
    req: Request,
) -> Response {
    if !is_upgrade(req.headers()) {
        return upgrade_required();
    }
    match b.port_forward_url(&ns, &pod).await {
        Ok(url) => proxy_upgrade(&url, req).await,
        Err(e) => e.into_response(),
    }
}

/// Request headers never forwarded to the streaming server.
const DROPPED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "content-length",
];

/// Forwards the client's upgrade request to the CRI streaming `url` (plain HTTP), answers
/// with its 101 and copies bytes both ways; any other answer is echoed.
pub async fn proxy_upgrade(url: &str, mut req: Request) -> Response {
    let client_upgrade = hyper::upgrade::on(&mut req);
    let method = req.method().clone();
    let headers = req.headers().clone();
    match tokio::time::timeout(STREAMING_TIMEOUT, upgrade_upstream(url, method, &headers)).await {
        Ok(Ok(Upstream::Switched { headers, io })) => {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            for (k, v) in &headers {
                if k != http::header::CONTENT_LENGTH && k != http::header::TRANSFER_ENCODING {
                    resp.headers_mut().append(k.clone(), v.clone());
                }
            }
            tokio::spawn(async move {
                match client_upgrade.await {
                    Ok(up) => {
                        let mut client = TokioIo::new(up);
                        let mut upstream = io;
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "client upgrade failed"),
                }
            });
            resp
        }
        Ok(Ok(Upstream::Refused {
            status,
            headers,
            body,
        })) => {
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = status;
            if let Some(ct) = headers.get(CONTENT_TYPE) {
                r.headers_mut().insert(CONTENT_TYPE, ct.clone());
            }
            r
        }
        Ok(Err(e)) => plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            ServerError::StreamingTimeout.to_string(),
        ),
    }
}

enum Upstream {
    Switched {
        headers: HeaderMap,
        io: TokioIo<hyper::upgrade::Upgraded>,
    },
    Refused {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

async fn upgrade_upstream(
    url: &str,
    method: Method,
    client_headers: &HeaderMap,
) -> Result<Upstream, ServerError> {
    let uri: Uri = url
        .parse()
        .map_err(|_| ServerError::StreamingUrl(url.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(ServerError::StreamingUrl(url.to_string()));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| ServerError::StreamingUrl(url.to_string()))?
        .clone();
    let addr = match authority.port_u16() {
        Some(_) => authority.as_str().to_string(),
        None => format!("{}:80", authority.host()),
    };
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|source| ServerError::StreamingDial {
            addr: addr.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(ServerError::StreamingHandshake)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "streaming server connection ended");
        }
    });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut b = http::Request::builder()
        .method(method.clone())
        .uri(path)
        .header(HOST, authority.as_str());
    for (k, v) in client_headers {
        if !DROPPED_REQUEST_HEADERS.contains(&k.as_str()) {
            b = b.header(k, v);
        }
    }
    b = b.header(CONNECTION, "Upgrade");
    if method == Method::POST {
        b = b.header(http::header::CONTENT_LENGTH, "0");
    }
    let out = b
        .body(Empty::<Bytes>::new())
        .map_err(|_| ServerError::StreamingUrl(url.to_string()))?;
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(ServerError::StreamingSend)?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let headers = resp.headers().clone();
        let up = hyper::upgrade::on(&mut resp)
            .await
            .map_err(ServerError::StreamingUpgrade)?;
        return Ok(Upstream::Switched {
            headers,
            io: TokioIo::new(up),
        });
    }
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = match Limited::new(resp.into_body(), ERROR_BODY_LIMIT)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    Ok(Upstream::Refused {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, SanType,
    };
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
    use tokio::sync::Notify;

    struct Pki {
        ca: String,
        serving: (String, String),
        apiserver: (String, String),
        node: (String, String),
        foreign: (String, String),
    }

    fn issue(
        issuer: &Issuer<'_, KeyPair>,
        cn: &str,
        org: Option<&str>,
        server: bool,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        if let Some(o) = org {
            p.distinguished_name.push(DnType::OrganizationName, o);
        }
        if server {
            p.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        } else {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        (
            p.signed_by(&key, issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    }

    fn ca() -> (String, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "ca");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = p.self_signed(&key).unwrap().pem();
        let issuer = Issuer::from_ca_cert_pem(&pem, key).unwrap();
        (pem, issuer)
    }

    fn pki() -> Pki {
        let (ca_pem, issuer) = ca();
        let (_, other) = ca();
        Pki {
            serving: issue(&issuer, "node1", None, true),
            apiserver: issue(&issuer, APISERVER_CLIENT_CN, Some(MASTERS_GROUP), false),
            node: issue(&issuer, "system:node:node2", Some("system:nodes"), false),
            foreign: issue(&other, APISERVER_CLIENT_CN, Some(MASTERS_GROUP), false),
            ca: ca_pem,
        }
    }

    #[derive(Default)]
    struct FakeBackend {
        calls: Mutex<Vec<String>>,
        stream_url: Mutex<String>,
        log: Mutex<Option<PathBuf>>,
        running: bool,
        exited: Notify,
    }

    #[async_trait]
    impl KubeletBackend for FakeBackend {
        async fn exec_url(
            &self,
            namespace: &str,
            pod: &str,
            container: &str,
            cmd: Vec<String>,
            opts: StreamOptions,
        ) -> Result<String, ServerError> {
            self.calls.lock().unwrap().push(format!(
                "exec {namespace}/{pod}/{container} {cmd:?} {opts:?}"
            ));
            if pod == "missing" {
                return Err(ServerError::NotFound("pod does not exist".into()));
            }
            Ok(format!("{}/exec/tok123", self.stream_url.lock().unwrap()))
        }
        async fn attach_url(
            &self,
            namespace: &str,
            pod: &str,
            container: &str,
            opts: StreamOptions,
        ) -> Result<String, ServerError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("attach {namespace}/{pod}/{container} {opts:?}"));
            Ok(format!("{}/attach/tok456", self.stream_url.lock().unwrap()))
        }
        async fn port_forward_url(
            &self,
            namespace: &str,
            pod: &str,
        ) -> Result<String, ServerError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("portforward {namespace}/{pod}"));
            if pod == "refuse" {
                return Ok(format!("{}/refuse", self.stream_url.lock().unwrap()));
            }
            Ok(format!(
                "{}/portforward/tok789",
                self.stream_url.lock().unwrap()
            ))
        }
        async fn log_path(
            &self,
            namespace: &str,
            pod: &str,
            container: &str,
            previous: bool,
        ) -> Result<(PathBuf, bool), ServerError> {
            self.calls.lock().unwrap().push(format!(
                "logs {namespace}/{pod}/{container} previous={previous}"
            ));
            match self.log.lock().unwrap().clone() {
                Some(p) if pod != "missing" => Ok((p, self.running)),
                _ => Err(ServerError::NotFound(format!(
                    "container {container:?} not found in pod {pod:?}"
                ))),
            }
        }
        async fn wait_container_exit(&self, _namespace: &str, _pod: &str, _container: &str) {
            self.exited.notified().await;
        }
    }

    /// A CRI streaming server stand-in: records each request head, answers upgrades with 101
    /// and echoes bytes; `/refuse` gets a 404.
    async fn fake_streaming_server(seen: Arc<Mutex<Vec<String>>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = BytesMut::new();
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                            return;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    seen.lock().unwrap().push(head.clone());
                    if head.starts_with("GET /refuse") || head.starts_with("POST /refuse") {
                        let _ = s
                            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n\r\nno such forwarding")
                            .await;
                        return;
                    }
                    let _ = s
                        .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
                        .await;
                    let mut rest = buf.split_off(end);
                    loop {
                        if !rest.is_empty() {
                            if s.write_all(&rest).await.is_err() {
                                return;
                            }
                            rest.clear();
                        }
                        match s.read_buf(&mut rest).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    struct Env {
        addr: SocketAddr,
        pki: Pki,
        backend: Arc<FakeBackend>,
        seen: Arc<Mutex<Vec<String>>>,
        _dir: tempfile::TempDir,
    }

    async fn env(running: bool) -> Env {
        let pki = pki();
        let seen = Arc::new(Mutex::new(vec![]));
        let url = fake_streaming_server(seen.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(
            &log,
            "2024-01-01T00:00:00.000000000Z stdout F hello\n\
             2024-01-01T00:00:01.000000000Z stderr F world\n",
        )
        .unwrap();
        let backend = Arc::new(FakeBackend {
            stream_url: Mutex::new(url),
            log: Mutex::new(Some(log)),
            running,
            ..Default::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = ServerTls {
            ca_pem: pki.ca.clone(),
            cert_pem: pki.serving.0.clone(),
            key_pem: pki.serving.1.clone(),
        };
        let b: Arc<dyn KubeletBackend> = backend.clone();
        tokio::spawn(async move {
            let _ = serve(listener, tls, b).await;
        });
        Env {
            addr,
            pki,
            backend,
            seen,
            _dir: dir,
        }
    }

    async fn connect(
        env: &Env,
        client: Option<&(String, String)>,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut env.pki.ca.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let cfg = match client {
            Some((cert, key)) => b
                .with_client_auth_cert(
                    rustls_pemfile::certs(&mut cert.as_bytes())
                        .collect::<Result<_, _>>()
                        .unwrap(),
                    rustls_pemfile::private_key(&mut key.as_bytes())
                        .unwrap()
                        .unwrap(),
                )
                .unwrap(),
            None => b.with_no_client_auth(),
        };
        let tcp = TcpStream::connect(env.addr).await?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect("127.0.0.1".try_into().unwrap(), tcp)
            .await?;
        // TLS 1.3 reports a rejected client certificate on the first read; probe with a
        // request to make the failure visible here.
        let _ = tls.flush().await;
        Ok(tls)
    }

    /// Sends a request head; returns the response head and any bytes after it.
    async fn request<S: AsyncRead + AsyncWrite + Unpin>(
        s: &mut S,
        head: &str,
    ) -> std::io::Result<(String, BytesMut)> {
        s.write_all(head.as_bytes()).await?;
        let mut buf = BytesMut::new();
        loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let h = String::from_utf8_lossy(&buf[..i]).into_owned();
                return Ok((h, buf.split_off(i + 4)));
            }
            if s.read_buf(&mut buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// GET with `Connection: close`, returning head and full body.
    async fn get_all(env: &Env, who: &(String, String), path: &str) -> (String, String) {
        let mut s = connect(env, Some(who)).await.unwrap();
        let (head, mut rest) = request(
            &mut s,
            &format!("GET {path} HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n"),
        )
        .await
        .unwrap();
        let mut more = vec![];
        let _ = s.read_to_end(&mut more).await;
        rest.extend_from_slice(&more);
        (head, String::from_utf8_lossy(&rest).into_owned())
    }

    fn dechunk(body: &str) -> String {
        // Enough for tests: drop chunk-size lines.
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    }

    #[tokio::test]
    async fn healthz_is_open_to_any_verified_client() {
        let env = env(false).await;
        let (head, body) = get_all(&env, &env.pki.node, "/healthz").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body.contains("ok"));
    }

    #[tokio::test]
    async fn other_clients_are_forbidden_like_upstream() {
        let env = env(false).await;
        let (head, body) = get_all(&env, &env.pki.node, "/containerLogs/default/web/c").await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert_eq!(
            body,
            "Forbidden (user=system:node:node2, verb=get, resource=nodes, subresource(s)=[proxy])\n"
        );
        assert!(env.backend.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn clients_without_a_cluster_certificate_are_refused() {
        let env = env(false).await;
        for who in [None, Some(&env.pki.foreign)] {
            let res = async {
                let mut s = connect(&env, who).await?;
                request(&mut s, "GET /healthz HTTP/1.1\r\nHost: k\r\n\r\n").await
            }
            .await;
            assert!(res.is_err(), "{who:?} got through");
        }
    }

    #[tokio::test]
    async fn logs_are_served_from_the_cri_file() {
        let env = env(false).await;
        let (head, body) = get_all(
            &env,
            &env.pki.apiserver,
            "/containerLogs/default/web/c?tailLines=1&timestamps=true",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head
            .to_ascii_lowercase()
            .contains("content-type: text/plain"));
        assert_eq!(dechunk(&body), "2024-01-01T00:00:01.000000000Z world\n");
        assert_eq!(
            env.backend.calls.lock().unwrap().as_slice(),
            ["logs default/web/c previous=false"]
        );
    }

    #[tokio::test]
    async fn log_errors_are_plain_text_with_upstream_codes() {
        let env = env(false).await;
        let (head, body) =
            get_all(&env, &env.pki.apiserver, "/containerLogs/default/missing/c").await;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        assert_eq!(body, "container \"c\" not found in pod \"missing\"");
        let (head, body) = get_all(
            &env,
            &env.pki.apiserver,
            "/containerLogs/default/web/c?tailLines=-1",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 422"), "{head}");
        assert_eq!(body, r#"{"message": "Invalid request."}"#);
        let (head, _) = get_all(
            &env,
            &env.pki.apiserver,
            "/containerLogs/default/web/c?sinceTime=yesterday",
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    }

    async fn read_until<S: AsyncRead + Unpin>(s: &mut S, rest: &mut BytesMut, want: &str) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !String::from_utf8_lossy(rest).contains(want) {
                assert!(s.read_buf(rest).await.unwrap() > 0, "stream ended early");
            }
        })
        .await
        .expect("timed out");
    }

    #[tokio::test]
    async fn follow_streams_appended_lines_until_the_container_exits() {
        let env = env(true).await;
        let log = env.backend.log.lock().unwrap().clone().unwrap();
        let mut s = connect(&env, Some(&env.pki.apiserver)).await.unwrap();
        let (head, mut rest) = request(
            &mut s,
            "GET /containerLogs/default/web/c?follow=true HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        read_until(&mut s, &mut rest, "world\n").await;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, b"2024-01-01T00:00:02.000000000Z stdout F again\n")
            .unwrap();
        read_until(&mut s, &mut rest, "again\n").await;
        env.backend.exited.notify_one();
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            let mut tail = vec![];
            let _ = s.read_to_end(&mut tail).await;
            tail
        })
        .await
        .expect("stream did not end after exit");
        rest.extend_from_slice(&end);
        assert!(String::from_utf8_lossy(&rest).ends_with("0\r\n\r\n"));
    }

    #[tokio::test]
    async fn exec_upgrade_is_proxied_to_the_streaming_url() {
        let env = env(false).await;
        let mut s = connect(&env, Some(&env.pki.apiserver)).await.unwrap();
        let (head, _) = request(
            &mut s,
            "POST /exec/default/web/c?command=echo&command=hi&output=1&error=1&tty=1 HTTP/1.1\r\n\
             Host: k\r\nAuthorization: Bearer t\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
             X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\
             X-Stream-Protocol-Version: v3.channel.k8s.io\r\nContent-Length: 0\r\n\r\n",
        )
        .await
        .unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head
            .to_ascii_lowercase()
            .contains("x-stream-protocol-version: v4.channel.k8s.io"));
        s.write_all(b"spdy bytes").await.unwrap();
        let mut got = vec![0u8; 10];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"spdy bytes");
        assert_eq!(
            env.backend.calls.lock().unwrap().as_slice(),
            [
                r#"exec default/web/c ["echo", "hi"] StreamOptions { stdin: false, stdout: true, stderr: false, tty: true }"#
            ]
        );
        let seen = env.seen.lock().unwrap().clone();
        let up = seen[0].to_ascii_lowercase();
        assert!(up.starts_with("post /exec/tok123 http/1.1"), "{up}");
        assert!(up.contains("upgrade: spdy/3.1"));
        assert!(up.contains("x-stream-protocol-version: v4.channel.k8s.io"));
        assert!(up.contains("x-stream-protocol-version: v3.channel.k8s.io"));
        assert!(!up.contains("authorization"));
    }

    #[tokio::test]
    async fn attach_and_port_forward_use_their_urls() {
        let env = env(false).await;
        for (path, call, upstream) in [
            (
                "/attach/default/web/uid-1/c?input=1&output=1",
                "attach default/web/c StreamOptions { stdin: true, stdout: true, stderr: false, tty: false }",
                "get /attach/tok456",
            ),
            ("/portForward/default/web", "portforward default/web", "get /portforward/tok789"),
        ] {
            env.backend.calls.lock().unwrap().clear();
            env.seen.lock().unwrap().clear();
            let mut s = connect(&env, Some(&env.pki.apiserver)).await.unwrap();
            let (head, _) = request(
                &mut s,
                &format!("GET {path} HTTP/1.1\r\nHost: k\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n"),
            )
            .await
            .unwrap();
            assert!(head.starts_with("HTTP/1.1 101"), "{path}: {head}");
            assert_eq!(env.backend.calls.lock().unwrap().as_slice(), [call]);
            let seen = env.seen.lock().unwrap()[0].to_ascii_lowercase();
            assert!(seen.starts_with(upstream), "{seen}");
        }
    }

    #[tokio::test]
    async fn streaming_errors_keep_upstream_codes() {
        let env = env(false).await;
        let cases = [
            (
                "POST /exec/default/web/c?command=ls HTTP/1.1",
                true,
                "400",
                "you must specify at least 1 of stdin, stdout, stderr",
            ),
            (
                "POST /exec/default/web/c?command=ls&output=1 HTTP/1.1",
                false,
                "400",
                "Upgrade request required",
            ),
            (
                "POST /exec/default/missing/c?command=ls&output=1 HTTP/1.1",
                true,
                "404",
                "pod does not exist",
            ),
            (
                "GET /portForward/default/refuse HTTP/1.1",
                true,
                "404",
                "no such forwarding",
            ),
        ];
        for (line, upgrade, code, text) in cases {
            let mut s = connect(&env, Some(&env.pki.apiserver)).await.unwrap();
            let up = if upgrade {
                "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            } else {
                "Connection: close\r\n"
            };
            let (head, rest) = request(&mut s, &format!("{line}\r\nHost: k\r\n{up}\r\n"))
                .await
                .unwrap();
            let mut body = rest.to_vec();
            let want = text.as_bytes();
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while !body.windows(want.len()).any(|w| w == want) {
                    if s.read_buf(&mut body).await.unwrap_or(0) == 0 {
                        break;
                    }
                }
            })
            .await;
            assert!(
                head.starts_with(&format!("HTTP/1.1 {code}")),
                "{line}: {head}"
            );
            assert!(String::from_utf8_lossy(&body).contains(text), "{line}");
        }
    }

    #[test]
    fn authorization_matches_upstream_attributes() {
        let api = PeerIdentity {
            user: APISERVER_CLIENT_CN.into(),
            groups: vec![],
        };
        let admin = PeerIdentity {
            user: "system:admin".into(),
            groups: vec![MASTERS_GROUP.into()],
        };
        let node = PeerIdentity {
            user: "system:node:n".into(),
            groups: vec!["system:nodes".into()],
        };
        assert!(authorize(Some(&api), &Method::POST, "/exec/a/b/c").is_ok());
        assert!(authorize(Some(&admin), &Method::GET, "/pods").is_ok());
        assert!(authorize(None, &Method::GET, "/healthz").is_ok());
        assert_eq!(
            authorize(None, &Method::GET, "/pods").unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        let (code, text) = authorize(Some(&node), &Method::POST, "/exec/a/b/c").unwrap_err();
        assert_eq!(code, StatusCode::FORBIDDEN);
        assert_eq!(
            text,
            "Forbidden (user=system:node:n, verb=create, resource=nodes, subresource(s)=[proxy])\n"
        );
        let (_, text) = authorize(Some(&node), &Method::GET, "/stats/summary").unwrap_err();
        assert!(text.contains("subresource(s)=[stats]"));
    }

    #[test]
    fn peer_identity_reads_cn_and_organizations() {
        let p = pki();
        let der = rustls_pemfile::certs(&mut p.apiserver.0.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            PeerIdentity::from_der(der.as_ref()),
            Some(PeerIdentity {
                user: APISERVER_CLIENT_CN.into(),
                groups: vec![MASTERS_GROUP.into()]
            })
        );
        assert_eq!(PeerIdentity::from_der(b"junk"), None);
    }

    fn q(s: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(s.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn log_query_follows_pod_log_options() {
        let now: jiff::Timestamp = "2024-01-01T01:00:00Z".parse().unwrap();
        let (o, prev) = parse_log_query(
            &q("follow=true&previous&timestamps=false&tailLines=3&limitBytes=10&sinceSeconds=60"),
            now,
        )
        .unwrap();
        assert!(o.follow && prev && !o.timestamps);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(3), Some(10)));
        assert_eq!(o.since, Some("2024-01-01T00:59:00Z".parse().unwrap()));
        let (o, _) = parse_log_query(&q("tail=all&sinceTime=2024-01-01T00:00:00Z"), now).unwrap();
        assert_eq!(o.tail_lines, None);
        assert_eq!(o.since, Some("2024-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(
            parse_log_query(&q("tail=5"), now).unwrap().0.tail_lines,
            Some(5)
        );
        for bad in [
            "tailLines=-1",
            "limitBytes=0",
            "sinceSeconds=0",
            "sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z",
        ] {
            assert_eq!(
                parse_log_query(&q(bad), now).unwrap_err().0,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{bad}"
            );
        }
        for bad in ["tailLines=x", "sinceTime=nope", "limitBytes=1.5"] {
            assert_eq!(
                parse_log_query(&q(bad), now).unwrap_err().0,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }

    #[test]
    fn stream_options_follow_remotecommand() {
        assert_eq!(
            stream_options(&q("input=1&output=1&error=1&tty=1")).unwrap(),
            StreamOptions {
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true
            }
        );
        assert_eq!(
            stream_options(&q("stdout=true")).unwrap(),
            StreamOptions {
                stdout: true,
                ..Default::default()
            }
        );
        assert!(matches!(
            stream_options(&q("tty=1&error=1")),
            Err(ServerError::BadRequest(_))
        ));
    }

    #[tokio::test]
    async fn stats_summary_is_served_behind_authorization() {
        use crate::stats::{HostPaths, StatsCollector, StatsConfig};
        let pki = pki();
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths {
            proc_stat: dir.path().join("stat"),
            meminfo: dir.path().join("meminfo"),
            cpuacct_usage: None,
            memory_cgroup: None,
        };
        std::fs::write(&paths.proc_stat, "cpu 1 2 3 4\n").unwrap();
        std::fs::write(
            &paths.meminfo,
            "MemTotal: 100 kB\nMemFree: 10 kB\nMemAvailable: 50 kB\n",
        )
        .unwrap();
        let collector = Arc::new(StatsCollector::new(
            Arc::new(crate::cri::FakeRuntime::new()),
            "node1",
            paths,
            StatsConfig::default(),
        ));
        let backend = Arc::new(FakeBackend::default());
        let b: Arc<dyn KubeletBackend> = backend.clone();
        let app = router(b).merge(crate::stats::routes(collector));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = ServerTls {
            ca_pem: pki.ca.clone(),
            cert_pem: pki.serving.0.clone(),
            key_pem: pki.serving.1.clone(),
        };
        tokio::spawn(async move {
            let _ = serve_router(listener, tls, app).await;
        });
        let env = Env {
            addr,
            pki,
            backend,
            seen: Arc::new(Mutex::new(vec![])),
            _dir: dir,
        };
        let (head, body) = get_all(&env, &env.pki.apiserver, "/stats/summary").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body.contains(r#""nodeName":"node1""#), "{body}");
        let (head, body) = get_all(&env, &env.pki.node, "/stats/summary").await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert_eq!(
            body,
            "Forbidden (user=system:node:node2, verb=get, resource=nodes, subresource(s)=[stats])\n"
        );
        // The kubelet routes are still there.
        let (head, _) = get_all(&env, &env.pki.apiserver, "/healthz").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
}
