//! Streaming subresources of pods (`log`, `exec`, `attach`, `portforward`): the API server's
//! side of the path kubectl → API server → kubelet (HTTPS, mutual TLS) → CRI streaming server.
//!
//! * [`proxy_log`] streams `GET /containerLogs/...` from the kubelet.
//! * [`proxy_stream`] handles the client's upgrade: WebSocket `v5.channel.k8s.io` exec/attach
//!   is translated to SPDY/3.1 remotecommand v4 (the CRI server does not speak v5); WebSocket
//!   `SPDY/3.1+portforward.k8s.io` is tunnelled to a SPDY upgrade of the kubelet; SPDY/3.1
//!   (and any other upgrade) is passed through.
//! * [`kubelet_stream_path`] / [`kubelet_log_path`] build the kubelet URLs from the API query.
//!
//! Independent of the rest of the API server: callers resolve the pod, container and node.

pub mod channel;
pub mod kubelet;
pub mod proxy;
pub mod spdy;
pub mod status;
pub mod translate;

pub use kubelet::KubeletClient;
pub use status::Status;
pub use translate::ExecOptions;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::HeaderValue;

/// Which streaming subresource a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Exec,
    Attach,
    PortForward,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamingError {
    #[error("configuring kubelet client tls: {0}")]
    TlsConfig(String),
    #[error("invalid kubelet host {0:?}")]
    Host(String),
    #[error("dial tcp {addr}: {source}")]
    Dial {
        addr: String,
        source: std::io::Error,
    },
    #[error("tls handshake with {addr}: {source}")]
    TlsHandshake {
        addr: String,
        source: std::io::Error,
    },
    #[error("dial tcp {0}: i/o timeout")]
    DialTimeout(String),
    #[error("http handshake with kubelet: {0}")]
    HttpHandshake(hyper::Error),
    #[error("building kubelet request: {0}")]
    Request(String),
    #[error("sending request to kubelet: {0}")]
    Send(hyper::Error),
    #[error("upgrading kubelet connection: {0}")]
    Upgrade(hyper::Error),
    #[error("timed out waiting for the kubelet to upgrade the connection")]
    UpgradeTimeout,
    #[error("kubelet answered {code}: {body}")]
    Kubelet {
        code: u16,
        body: String,
        resource: &'static str,
        name: String,
    },
    #[error("spdy: {0}")]
    Spdy(#[from] spdy::SpdyError),
    #[error("kubelet refused stream {stream_id} (status {status})")]
    StreamRefused { stream_id: u32, status: u32 },
    #[error("timed out waiting for the kubelet to reply to stream creation")]
    StreamReplyTimeout,
    #[error("kubelet connection: {0}")]
    Io(std::io::Error),
}

impl StreamingError {
    /// The `Status` the API server answers with.
    pub fn status(&self) -> Status {
        match self {
            StreamingError::Kubelet {
                code,
                body,
                resource,
                name,
            } => Status::from_kubelet(*code, body, resource, name),
            // Upstream reports transport failures as a bare 500 (reason unknown).
            other => Status::new(500, "", other.to_string()),
        }
    }
}

impl IntoResponse for StreamingError {
    fn into_response(self) -> Response {
        self.status().into_response()
    }
}

/// `GET path_and_query` (a `/containerLogs/{ns}/{pod}/{container}?...` path) from the kubelet
/// at `host:port`, streamed back as `text/plain`. A non-2xx kubelet answer becomes
/// [`StreamingError::Kubelet`], whose [`StreamingError::status`] maps it as upstream does.
pub async fn proxy_log(
    kubelet: &KubeletClient,
    host: &str,
    port: u16,
    path_and_query: &str,
) -> Result<Response, StreamingError> {
    let resp = kubelet.get(host, port, path_and_query).await?;
    let code = resp.status().as_u16();
    if !(200..=206).contains(&code) {
        let body = kubelet::read_limited(resp.into_body()).await;
        let path = path_and_query.split('?').next().unwrap_or_default();
        let name = path.split('/').nth(3).unwrap_or_default().to_string();
        return Err(StreamingError::Kubelet {
            code,
            body: String::from_utf8_lossy(&body).into_owned(),
            resource: "pods/log",
            name,
        });
    }
    let mut out = Response::new(Body::new(resp.into_body()));
    out.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(out)
}

/// Proxies an exec/attach/port-forward upgrade request `req` to the kubelet at `host:port`,
/// `path_and_query` being the kubelet path (see [`kubelet_stream_path`]). The request must come
/// from a hyper server with upgrades enabled. Non-upgrade requests get a 400 Status.
pub async fn proxy_stream(
    kubelet: &KubeletClient,
    host: &str,
    port: u16,
    kind: StreamKind,
    path_and_query: &str,
    req: Request,
) -> Response {
    let upgrade = proxy::upgrade_tokens(req.headers());
    if upgrade.iter().any(|t| t == "websocket") {
        let offered = proxy::offered_subprotocols(req.headers());
        match kind {
            StreamKind::Exec | StreamKind::Attach => {
                if let Some(p) = channel::negotiate(&offered, channel::SUPPORTED) {
                    return proxy::translate_exec(kubelet, host, port, path_and_query, p, req)
                        .await;
                }
            }
            StreamKind::PortForward => {
                if channel::negotiate(&offered, &[channel::PORT_FORWARD_TUNNEL]).is_some() {
                    return proxy::tunnel_port_forward(kubelet, host, port, path_and_query, req)
                        .await;
                }
            }
        }
        return proxy::pass_through(kubelet, host, port, path_and_query, req).await;
    }
    if upgrade.iter().any(|t| t.starts_with("spdy/")) {
        return proxy::pass_through(kubelet, host, port, path_and_query, req).await;
    }
    Status::bad_request("Upgrade request required").into_response()
}

fn truthy(v: &str) -> bool {
    v != "0" && !v.eq_ignore_ascii_case("false")
}

/// The kubelet path for a streaming request, from the API request's query (`command`,
/// `stdin`, `stdout`, `stderr`, `tty`; `ports` for port-forward), as upstream's
/// `ExecLocation`/`AttachLocation`/`PortForwardLocation` build it. `container` is ignored for
/// port-forward.
pub fn kubelet_stream_path(
    kind: StreamKind,
    namespace: &str,
    pod: &str,
    container: &str,
    api_query: &str,
) -> String {
    let mut params: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(api_query.as_bytes()) {
        let flag = |name: &str| (name.to_string(), "1".to_string());
        match (kind, k.as_ref()) {
            (StreamKind::PortForward, "ports") => params.push(("port".into(), v.into_owned())),
            (StreamKind::PortForward, _) => {}
            (_, "stdin") if truthy(&v) => params.push(flag("input")),
            (_, "stdout") if truthy(&v) => params.push(flag("output")),
            (_, "stderr") if truthy(&v) => params.push(flag("error")),
            (_, "tty") if truthy(&v) => params.push(flag("tty")),
            (StreamKind::Exec, "command") => params.push(("command".into(), v.into_owned())),
            _ => {}
        }
    }
    // url.Values.Encode sorts by key (stable within a key).
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let path = match kind {
        StreamKind::Exec => format!("/exec/{namespace}/{pod}/{container}"),
        StreamKind::Attach => format!("/attach/{namespace}/{pod}/{container}"),
        StreamKind::PortForward => format!("/portForward/{namespace}/{pod}"),
    };
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// The kubelet path for `pods/log`, from the API request's query (`follow`, `previous`,
/// `timestamps`, `sinceSeconds`, `sinceTime`, `tailLines`, `limitBytes`), as `LogLocation`.
pub fn kubelet_log_path(namespace: &str, pod: &str, container: &str, api_query: &str) -> String {
    let mut params: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(api_query.as_bytes()) {
        match k.as_ref() {
            "follow" | "previous" | "timestamps" if truthy(&v) => {
                params.push((k.into_owned(), "true".into()))
            }
            "sinceSeconds" | "sinceTime" | "tailLines" | "limitBytes" => {
                params.push((k.into_owned(), v.into_owned()))
            }
            _ => {}
        }
    }
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let path = format!("/containerLogs/{namespace}/{pod}/{container}");
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

#[cfg(test)]
mod fakekubelet;
