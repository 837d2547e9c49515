//! The client-facing halves of the streaming proxy: the WebSocket `v5.channel.k8s.io` →
//! SPDY translation entry point, the `SPDY/3.1+portforward.k8s.io` WebSocket tunnel (SPDY bytes
//! shuttled between binary messages and the kubelet's raw SPDY connection), and the plain
//! upgrade pass-through for SPDY clients (and WebSocket protocols the kubelet speaks itself).

use super::channel;
use super::kubelet::{KubeletClient, UpgradeOutcome};
use super::status::Status;
use super::translate::{self, ExecOptions};
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::header::{HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use http::{HeaderMap, Method, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// `X-Stream-Protocol-Version`.
pub const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";
/// The remotecommand protocol the translator speaks toward the kubelet.
pub const REMOTECOMMAND_V4: &str = "v4.channel.k8s.io";
/// The SPDY port-forward protocol.
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
/// How long the tunnel waits for the other direction after one ends.
const TUNNEL_GRACE: Duration = Duration::from_secs(5);

/// Request headers never forwarded to the kubelet: hop-by-hop ones, and the client's
/// credentials (the API server authenticates to the kubelet with its own certificate).
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

/// The lowercased tokens of the `Upgrade` header.
pub fn upgrade_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The `Sec-WebSocket-Protocol` values the client offered.
pub fn offered_subprotocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

fn query_of(path_and_query: &str) -> &str {
    path_and_query
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default()
}

fn spdy_upgrade_headers(protocol: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    if let Ok(v) = HeaderValue::from_str(protocol) {
        h.insert(HeaderName::from_static(STREAM_PROTOCOL_HEADER), v);
    }
    h
}

async fn websocket_upgrade(req: Request) -> Result<WebSocketUpgrade, Response> {
    let (mut parts, _body) = req.into_parts();
    WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|rej| Status::bad_request(rej.body_text()).into_response())
}

/// (a) exec/attach over WebSocket v5/v4: upgrade the client first, then translate to SPDY.
pub async fn translate_exec(
    kubelet: &KubeletClient,
    host: &str,
    port: u16,
    path_and_query: &str,
    protocol: &'static str,
    req: Request,
) -> Response {
    let ws = match websocket_upgrade(req).await {
        Ok(ws) => ws,
        Err(resp) => return resp,
    };
    let opts = ExecOptions::from_query(query_of(path_and_query));
    let kubelet = kubelet.clone();
    let host = host.to_string();
    let path = path_and_query.to_string();
    let v5 = protocol == channel::V5;
    ws.protocols([protocol])
        .on_upgrade(move |socket| async move {
            let headers = spdy_upgrade_headers(REMOTECOMMAND_V4);
            match kubelet
                .upgrade(&host, port, Method::POST, &path, &headers)
                .await
            {
                Ok(UpgradeOutcome::Switched { io, .. }) => {
                    translate::run(socket, v5, io, opts).await
                }
                Ok(UpgradeOutcome::Refused { body, .. }) => {
                    translate::finish_with_status(socket, translate::refusal_payload(&body)).await
                }
                Err(e) => {
                    let payload = translate::status_payload(&Status::internal(e.to_string()));
                    translate::finish_with_status(socket, payload).await
                }
            }
        })
        .into_response()
}

/// (b) port-forward over WebSocket `SPDY/3.1+portforward.k8s.io`: upgrade the kubelet to SPDY
/// first; only if it switches, upgrade the client and shuttle bytes.
pub async fn tunnel_port_forward(
    kubelet: &KubeletClient,
    host: &str,
    port: u16,
    path_and_query: &str,
    req: Request,
) -> Response {
    let method = req.method().clone();
    let ws = match websocket_upgrade(req).await {
        Ok(ws) => ws,
        Err(resp) => return resp,
    };
    let headers = spdy_upgrade_headers(PORT_FORWARD_PROTOCOL);
    match kubelet
        .upgrade(host, port, method, path_and_query, &headers)
        .await
    {
        Ok(UpgradeOutcome::Switched { io, .. }) => ws
            .protocols([channel::PORT_FORWARD_TUNNEL])
            .on_upgrade(move |socket| tunnel(socket, io))
            .into_response(),
        Ok(UpgradeOutcome::Refused {
            status,
            headers,
            body,
        }) => refused_response(status, &headers, body),
        Err(e) => e.into_response(),
    }
}

/// Shuttles SPDY bytes between WebSocket binary messages and the kubelet connection.
pub async fn tunnel<IO>(ws: WebSocket, io: IO)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(io);
    let up = async move {
        while let Some(Ok(m)) = stream.next().await {
            let keep_going = match m {
                // kubectl sometimes sends empty messages: skip them, they are not EOF.
                Message::Binary(b) if b.is_empty() => true,
                Message::Binary(b) => wr.write_all(&b).await.is_ok() && wr.flush().await.is_ok(),
                Message::Close(_) => false,
                _ => true,
            };
            if !keep_going {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let m = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if sink.send(m).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "".into(),
            })))
            .await;
    };
    tokio::pin!(up, down);
    tokio::select! {
        _ = &mut down => { let _ = tokio::time::timeout(TUNNEL_GRACE, up).await; }
        _ = &mut up => { let _ = tokio::time::timeout(TUNNEL_GRACE, down).await; }
    }
}

/// (c) any other upgrade (SPDY/3.1 from kubectl ≤1.29 or its fallback, WebSocket protocols the
/// kubelet serves itself): forward the upgrade, answer with the kubelet's 101, copy bytes.
pub async fn pass_through(
    kubelet: &KubeletClient,
    host: &str,
    port: u16,
    path_and_query: &str,
    mut req: Request,
) -> Response {
    let client_upgrade = hyper::upgrade::on(&mut req);
    let mut headers = HeaderMap::new();
    for (k, v) in req.headers() {
        if !DROPPED_REQUEST_HEADERS.contains(&k.as_str()) {
            headers.append(k.clone(), v.clone());
        }
    }
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if req.method() == Method::POST {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    let method = req.method().clone();
    match kubelet
        .upgrade(host, port, method, path_and_query, &headers)
        .await
    {
        Ok(UpgradeOutcome::Switched { headers, io }) => {
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
                        let mut kubelet = io;
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "client upgrade failed"),
                }
            });
            resp
        }
        Ok(UpgradeOutcome::Refused {
            status,
            headers,
            body,
        }) => refused_response(status, &headers, body),
        Err(e) => e.into_response(),
    }
}

/// The kubelet's non-101 answer, echoed to the client as upstream's proxy does.
fn refused_response(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        resp.headers_mut().insert(CONTENT_TYPE, ct.clone());
    }
    resp
}
