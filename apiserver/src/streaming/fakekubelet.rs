//! Test support: an in-process fake kubelet (HTTPS with client certificates, on 127.0.0.1:0)
//! whose exec and port-forward endpoints speak SPDY/3.1 the way the kubelet and the CRI
//! streaming server behind it do, plus end-to-end tests of the proxy through an axum server.

use super::spdy::{self, header, Decoder, Encoder, Frame};
use super::translate::ExecOptions;
use super::KubeletClient;
use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame as BodyFrame, Incoming};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// A throwaway CA with a kubelet serving certificate and client certificates.
pub struct TestPki {
    pub ca_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
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
        p.subject_alt_names = vec![
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
            SanType::DnsName("localhost".try_into().unwrap()),
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl TestPki {
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "test-ca");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = p.self_signed(&ca_key).unwrap();
        let ca_pem = ca.pem();
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
        let (serving_cert_pem, serving_key_pem) = issue(&issuer, "node1", None, true);
        let (client_cert_pem, client_key_pem) = issue(
            &issuer,
            "kube-apiserver-kubelet-client",
            Some("system:masters"),
            false,
        );
        TestPki {
            ca_pem,
            serving_cert_pem,
            serving_key_pem,
            client_cert_pem,
            client_key_pem,
        }
    }

    pub fn kubelet_client(&self) -> KubeletClient {
        KubeletClient {
            ca_pem: self.ca_pem.clone(),
            client_cert_pem: self.client_cert_pem.clone(),
            client_key_pem: self.client_key_pem.clone(),
        }
    }
}

fn server_tls(pki: &TestPki) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut pki.serving_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key: PrivateKeyDer<'static> =
        rustls_pemfile::private_key(&mut pki.serving_key_pem.as_bytes())
            .unwrap()
            .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pki.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap()
}

/// Starts the fake kubelet; returns its port.
pub async fn start_fake_kubelet(pki: &TestPki) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_tls(pki)));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(fake_kubelet);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    port
}

type FakeBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn text(code: StatusCode, body: &str) -> Response<FakeBody> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *r.status_mut() = code;
    r.headers_mut()
        .insert("content-type", "text/plain; charset=utf-8".parse().unwrap());
    r
}

async fn fake_kubelet(mut req: Request<Incoming>) -> Result<Response<FakeBody>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let pod = parts.get(2).copied().unwrap_or_default().to_string();
    if pod == "missing" {
        return Ok(text(StatusCode::NOT_FOUND, "pod does not exist"));
    }
    let protocols: Vec<String> = req
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let is_spdy = req
        .headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"));
    match parts.first().copied() {
        Some("containerLogs") => {
            let q = query.clone();
            let chunks = async_stream_chunks(vec![
                format!("query={q}\n"),
                "line1\n".into(),
                "line2\n".into(),
            ]);
            let mut r = Response::new(BodyExt::boxed(StreamBody::new(chunks)));
            r.headers_mut()
                .insert("content-type", "text/plain".parse().unwrap());
            Ok(r)
        }
        Some("exec") | Some("attach") | Some("portForward") if is_spdy => {
            let want = if parts[0] == "portForward" {
                "portforward.k8s.io"
            } else {
                "v4.channel.k8s.io"
            };
            if !protocols.iter().any(|p| p == want) {
                return Ok(text(StatusCode::FORBIDDEN, "no supported protocol"));
            }
            let on = hyper::upgrade::on(&mut req);
            let pf = parts[0] == "portForward";
            tokio::spawn(async move {
                let Ok(up) = on.await else { return };
                let io = TokioIo::new(up);
                if pf {
                    serve_port_forward(io).await;
                } else {
                    serve_exec(io, query).await;
                }
            });
            let mut r = Response::new(Full::new(Bytes::new()).boxed());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut()
                .insert("connection", "Upgrade".parse().unwrap());
            r.headers_mut()
                .insert("upgrade", "SPDY/3.1".parse().unwrap());
            r.headers_mut()
                .insert("x-stream-protocol-version", want.parse().unwrap());
            Ok(r)
        }
        Some("exec") | Some("attach") | Some("portForward") => {
            Ok(text(StatusCode::BAD_REQUEST, "Upgrade request required"))
        }
        _ => Ok(text(StatusCode::NOT_FOUND, "404 page not found")),
    }
}

fn async_stream_chunks(
    chunks: Vec<String>,
) -> impl futures::Stream<Item = Result<BodyFrame<Bytes>, Infallible>> {
    futures::stream::unfold(chunks.into_iter(), |mut it| async move {
        let c = it.next()?;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Some((Ok(BodyFrame::data(Bytes::from(c))), it))
    })
}

/// A minimal SPDY peer over any byte stream.
pub struct Peer<IO> {
    pub io: IO,
    pub enc: Encoder,
    pub dec: Decoder,
    pub buf: BytesMut,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Peer<IO> {
    pub fn new(io: IO) -> Self {
        Peer {
            io,
            enc: Encoder::new(),
            dec: Decoder::new(),
            buf: BytesMut::new(),
        }
    }
    pub async fn send(&mut self, f: Frame) {
        let mut out = BytesMut::new();
        self.enc.encode(&f, &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
        self.io.flush().await.unwrap();
    }
    pub async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                return Some(f);
            }
            let n = self.io.read_buf(&mut self.buf).await.ok()?;
            if n == 0 {
                return None;
            }
        }
    }
}

/// The exec side of the CRI streaming server, with scripted commands:
/// `echo ARGS...`, `cat` (stdin to stdout), `fail` (stderr, exit 3), `resize` (first resize
/// message to stdout), `pong` (whether our PING was answered).
async fn serve_exec<IO: AsyncRead + AsyncWrite + Unpin>(io: IO, query: String) {
    let opts = ExecOptions::from_query(&query);
    let cmd: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.into_owned())
        .collect();
    let mut p = Peer::new(io);
    p.send(Frame::Ping { id: 2 }).await;
    let expected = 1
        + opts.stdin as usize
        + opts.stdout as usize
        + (opts.stderr && !opts.tty) as usize
        + opts.tty as usize;
    let mut ids: Vec<(String, u32)> = vec![];
    let mut pong = false;
    while ids.len() < expected {
        match p.recv().await {
            Some(Frame::SynStream {
                stream_id, headers, ..
            }) => {
                let kind = header(&headers, "streamtype")
                    .unwrap_or_default()
                    .to_string();
                ids.push((kind, stream_id));
                p.send(Frame::SynReply {
                    stream_id,
                    fin: false,
                    headers: vec![],
                })
                .await;
            }
            Some(Frame::Ping { id: 2 }) => pong = true,
            Some(_) => {}
            None => return,
        }
    }
    let id = |k: &str| ids.iter().find(|(n, _)| n == k).map(|(_, i)| *i);
    let data = |id: Option<u32>, d: &[u8], fin: bool| Frame::Data {
        stream_id: id.unwrap_or(0),
        fin,
        data: Bytes::copy_from_slice(d),
    };
    let mut status = br#"{"metadata":{},"status":"Success"}"#.to_vec();
    match cmd.first().map(String::as_str) {
        Some("echo") => {
            let line = format!("{}\n", cmd[1..].join(" "));
            p.send(data(id("stdout"), line.as_bytes(), false)).await;
            p.send(data(id("stdout"), b"", true)).await;
        }
        Some("cat") => loop {
            match p.recv().await {
                Some(Frame::Data {
                    stream_id,
                    fin,
                    data: d,
                }) if Some(stream_id) == id("stdin") => {
                    if !d.is_empty() {
                        p.send(data(id("stdout"), &d, false)).await;
                    }
                    if fin {
                        p.send(data(id("stdout"), b"", true)).await;
                        break;
                    }
                }
                Some(_) => {}
                None => return,
            }
        },
        Some("fail") => {
            p.send(data(id("stderr"), b"oops\n", true)).await;
            status = br#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [fail], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#.to_vec();
        }
        Some("resize") => loop {
            match p.recv().await {
                Some(Frame::Data {
                    stream_id, data: d, ..
                }) if Some(stream_id) == id("resize") => {
                    p.send(data(id("stdout"), &d, true)).await;
                    break;
                }
                Some(_) => {}
                None => return,
            }
        },
        Some("pong") => {
            while !pong {
                match p.recv().await {
                    Some(Frame::Ping { id: 2 }) => pong = true,
                    Some(_) => {}
                    None => return,
                }
            }
            p.send(data(id("stdout"), b"pong\n", true)).await;
        }
        _ => {}
    }
    // As the kubelet does: status on the error stream, reset everything, GOAWAY.
    p.send(data(id("error"), &status, false)).await;
    for (_, sid) in &ids {
        p.send(Frame::RstStream {
            stream_id: *sid,
            status: spdy::RST_CANCEL,
        })
        .await;
    }
    p.send(Frame::GoAway {
        last_good_stream_id: 0,
        status: spdy::GOAWAY_OK,
    })
    .await;
    let _ = p.io.shutdown().await;
}

/// The port-forward side: replies to every stream, echoes data streams back with a prefix.
async fn serve_port_forward<IO: AsyncRead + AsyncWrite + Unpin>(io: IO) {
    let mut p = Peer::new(io);
    let mut data_streams: Vec<u32> = vec![];
    while let Some(f) = p.recv().await {
        match f {
            Frame::SynStream {
                stream_id, headers, ..
            } => {
                if header(&headers, "streamtype") == Some("data") {
                    data_streams.push(stream_id);
                }
                p.send(Frame::SynReply {
                    stream_id,
                    fin: false,
                    headers: vec![],
                })
                .await;
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } if data_streams.contains(&stream_id) => {
                if !data.is_empty() {
                    let mut echo = b"echo:".to_vec();
                    echo.extend_from_slice(&data);
                    p.send(Frame::Data {
                        stream_id,
                        fin: false,
                        data: echo.into(),
                    })
                    .await;
                }
                if fin {
                    p.send(Frame::Data {
                        stream_id,
                        fin: true,
                        data: Bytes::new(),
                    })
                    .await;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{
        kubelet_log_path, kubelet_stream_path, proxy_log, proxy_stream, StreamKind,
    };
    use super::*;
    use axum::extract::Request as AxumRequest;
    use axum::response::IntoResponse;
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    struct Harness {
        api: SocketAddr,
    }

    /// An axum server standing in for the API server's pod subresource handlers.
    async fn harness(client: KubeletClient, kubelet_port: u16) -> Harness {
        let client = Arc::new(client);
        let app = axum::Router::new().fallback(move |req: AxumRequest| {
            let client = client.clone();
            async move {
                let path = req.uri().path().to_string();
                let query = req.uri().query().unwrap_or_default().to_string();
                let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                // /api/v1/namespaces/{ns}/pods/{pod}/{sub}
                let (ns, pod, sub) = (seg[3], seg[5], seg[6]);
                let kind = match sub {
                    "exec" => StreamKind::Exec,
                    "attach" => StreamKind::Attach,
                    "portforward" => StreamKind::PortForward,
                    "log" => {
                        let p = kubelet_log_path(ns, pod, "c", &query);
                        return match proxy_log(&client, "127.0.0.1", kubelet_port, &p).await {
                            Ok(r) => r,
                            Err(e) => e.into_response(),
                        };
                    }
                    _ => return StatusCode::NOT_FOUND.into_response(),
                };
                let p = kubelet_stream_path(kind, ns, pod, "c", &query);
                proxy_stream(&client, "127.0.0.1", kubelet_port, kind, &p, req).await
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Harness { api }
    }

    async fn setup() -> Harness {
        let pki = TestPki::new();
        let port = start_fake_kubelet(&pki).await;
        harness(pki.kubelet_client(), port).await
    }

    type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

    async fn ws_connect(h: &Harness, path: &str, protocol: &str) -> Ws {
        let mut req = format!("ws://{}{}", h.api, path)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", protocol.parse().unwrap());
        let tcp = tokio::net::TcpStream::connect(h.api).await.unwrap();
        let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
        assert_eq!(
            resp.headers().get("sec-websocket-protocol").unwrap(),
            protocol
        );
        ws
    }

    /// Reads until the server closes: (channel, payload) messages and the close code.
    async fn drain(ws: &mut Ws) -> (Vec<(u8, Vec<u8>)>, Option<CloseCode>) {
        let mut msgs = vec![];
        let fut = async {
            while let Some(m) = ws.next().await {
                match m.unwrap() {
                    WsMessage::Binary(b) => msgs.push((b[0], b[1..].to_vec())),
                    WsMessage::Close(c) => return c.map(|c| c.code),
                    _ => {}
                }
            }
            None
        };
        let code = tokio::time::timeout(std::time::Duration::from_secs(10), fut)
            .await
            .expect("session did not end");
        (msgs, code)
    }

    fn channel_bytes(msgs: &[(u8, Vec<u8>)], ch: u8) -> Vec<u8> {
        msgs.iter()
            .filter(|(c, _)| *c == ch)
            .flat_map(|(_, d)| d.clone())
            .collect()
    }

    fn status_of(msgs: &[(u8, Vec<u8>)]) -> serde_json::Value {
        serde_json::from_slice(&channel_bytes(msgs, 3)).unwrap()
    }

    const EXEC: &str = "/api/v1/namespaces/default/pods/web/exec";

    #[tokio::test]
    async fn websocket_exec_echo_gets_stdout_then_success_then_close_1000() {
        let h = setup().await;
        let mut ws = ws_connect(
            &h,
            &format!("{EXEC}?command=echo&command=hi&container=c&stderr=true&stdout=true"),
            "v5.channel.k8s.io",
        )
        .await;
        let (msgs, code) = drain(&mut ws).await;
        assert_eq!(channel_bytes(&msgs, 1), b"hi\n");
        assert_eq!(status_of(&msgs)["status"], "Success");
        // The status is the last data message.
        assert_eq!(msgs.last().unwrap().0, 3);
        assert_eq!(code, Some(CloseCode::Normal));
    }

    #[tokio::test]
    async fn websocket_exec_stdin_flows_and_close_channel_ends_it() {
        let h = setup().await;
        let mut ws = ws_connect(
            &h,
            &format!("{EXEC}?command=cat&container=c&stdin=true&stdout=true&stderr=true"),
            "v5.channel.k8s.io",
        )
        .await;
        ws.send(WsMessage::Binary(b"\x00abc".to_vec().into()))
            .await
            .unwrap();
        ws.send(WsMessage::Binary(vec![0, 0].into())).await.unwrap();
        ws.send(WsMessage::Binary(b"\x00def".to_vec().into()))
            .await
            .unwrap();
        ws.send(WsMessage::Binary(vec![255, 0].into()))
            .await
            .unwrap();
        let (msgs, code) = drain(&mut ws).await;
        assert_eq!(channel_bytes(&msgs, 1), b"abc\0def");
        assert_eq!(status_of(&msgs)["status"], "Success");
        assert_eq!(code, Some(CloseCode::Normal));
    }

    #[tokio::test]
    async fn websocket_exec_passes_exit_codes_through() {
        let h = setup().await;
        let mut ws = ws_connect(
            &h,
            &format!("{EXEC}?command=fail&container=c&stderr=true&stdout=true"),
            "v5.channel.k8s.io",
        )
        .await;
        let (msgs, code) = drain(&mut ws).await;
        assert_eq!(channel_bytes(&msgs, 2), b"oops\n");
        let st = status_of(&msgs);
        assert_eq!(st["reason"], "NonZeroExitCode");
        assert_eq!(st["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(st["details"]["causes"][0]["message"], "3");
        assert_eq!(code, Some(CloseCode::Normal));
    }

    #[tokio::test]
    async fn websocket_exec_tty_forwards_resize() {
        let h = setup().await;
        let mut ws = ws_connect(
            &h,
            &format!("{EXEC}?command=resize&container=c&stdin=true&stdout=true&tty=true"),
            "v5.channel.k8s.io",
        )
        .await;
        ws.send(WsMessage::Binary(
            b"\x04{\"Width\":80,\"Height\":24}\n".to_vec().into(),
        ))
        .await
        .unwrap();
        let (msgs, _) = drain(&mut ws).await;
        assert_eq!(channel_bytes(&msgs, 1), b"{\"Width\":80,\"Height\":24}\n");
        assert_eq!(status_of(&msgs)["status"], "Success");
    }

    #[tokio::test]
    async fn websocket_exec_answers_kubelet_pings_and_client_pings() {
        let h = setup().await;
        let mut ws = ws_connect(
            &h,
            &format!("{EXEC}?command=pong&container=c&stdout=true"),
            "v5.channel.k8s.io",
        )
        .await;
        ws.send(WsMessage::Ping(b"p1".to_vec().into()))
            .await
            .unwrap();
        let mut got_pong = false;
        let mut msgs = vec![];
        while let Some(m) = ws.next().await {
            match m.unwrap() {
                WsMessage::Pong(p) => {
                    assert_eq!(&p[..], b"p1");
                    got_pong = true;
                }
                WsMessage::Binary(b) => msgs.push((b[0], b[1..].to_vec())),
                WsMessage::Close(_) => break,
                _ => {}
            }
        }
        assert!(got_pong);
        assert_eq!(channel_bytes(&msgs, 1), b"pong\n");
    }

    #[tokio::test]
    async fn websocket_v4_clients_are_translated_too() {
        let h = setup().await;
        let mut ws = ws_connect(
            &h,
            &format!("{EXEC}?command=echo&command=v4&container=c&stdout=true"),
            "v4.channel.k8s.io",
        )
        .await;
        let (msgs, code) = drain(&mut ws).await;
        assert_eq!(channel_bytes(&msgs, 1), b"v4\n");
        assert_eq!(code, Some(CloseCode::Normal));
    }

    #[tokio::test]
    async fn websocket_exec_kubelet_refusal_becomes_internal_error_status() {
        let h = setup().await;
        let mut ws = ws_connect(
            &h,
            "/api/v1/namespaces/default/pods/missing/exec?command=true&container=c&stdout=true",
            "v5.channel.k8s.io",
        )
        .await;
        let (msgs, code) = drain(&mut ws).await;
        let st = status_of(&msgs);
        assert_eq!(st["reason"], "InternalError");
        assert_eq!(
            st["message"],
            "Internal error occurred: unable to upgrade connection: pod does not exist"
        );
        assert_eq!(code, Some(CloseCode::Normal));
    }

    #[tokio::test]
    async fn websocket_exec_unreachable_kubelet_reports_on_error_channel() {
        let pki = TestPki::new();
        // Nothing listens on this port.
        let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = dead.local_addr().unwrap().port();
        drop(dead);
        let h = harness(pki.kubelet_client(), port).await;
        let mut ws = ws_connect(
            &h,
            &format!("{EXEC}?command=true&container=c&stdout=true"),
            "v5.channel.k8s.io",
        )
        .await;
        let (msgs, _) = drain(&mut ws).await;
        let st = status_of(&msgs);
        assert_eq!(st["code"], 500);
        assert!(st["message"].as_str().unwrap().contains("dial tcp"));
    }

    #[tokio::test]
    async fn kubelet_with_a_foreign_certificate_is_rejected() {
        let kubelet_pki = TestPki::new();
        let port = start_fake_kubelet(&kubelet_pki).await;
        // Client trusts a different CA.
        let other = TestPki::new();
        let h = harness(other.kubelet_client(), port).await;
        let resp = raw_get(h.api, "/api/v1/namespaces/default/pods/web/log").await;
        assert!(resp.starts_with("HTTP/1.1 500"), "{resp}");
        assert!(resp.contains("tls handshake"), "{resp}");
    }

    async fn raw_get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = vec![];
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn logs_stream_and_query_is_translated() {
        let h = setup().await;
        let resp = raw_get(
            h.api,
            "/api/v1/namespaces/default/pods/web/log?container=c&follow=true&tailLines=5&pretty=1",
        )
        .await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp
            .to_ascii_lowercase()
            .contains("content-type: text/plain"));
        assert!(resp.contains("query=follow=true&tailLines=5\n"), "{resp}");
        assert!(resp.contains("line1\n") && resp.contains("line2\n"));
    }

    #[tokio::test]
    async fn log_errors_map_to_status() {
        let h = setup().await;
        let resp = raw_get(h.api, "/api/v1/namespaces/default/pods/missing/log").await;
        assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
        let body = resp.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["reason"], "NotFound");
        assert_eq!(
            v["message"],
            "the server could not find the requested resource ( pods/log missing)"
        );
    }

    #[tokio::test]
    async fn non_upgrade_exec_gets_400_status() {
        let h = setup().await;
        let resp = raw_get(h.api, &format!("{EXEC}?command=ls&stdout=true")).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
        assert!(
            resp.contains("\"message\":\"Upgrade request required\""),
            "{resp}"
        );
    }

    /// Opens an upgrade on a raw socket; returns the socket, response head and leftover bytes.
    async fn raw_upgrade(
        addr: SocketAddr,
        head: String,
    ) -> (tokio::net::TcpStream, String, BytesMut) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let mut buf = BytesMut::new();
        loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).into_owned();
                let rest = buf.split_off(i + 4);
                return (s, head, rest);
            }
            let n = s.read_buf(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before response head");
        }
    }

    #[tokio::test]
    async fn spdy_exec_is_passed_through() {
        let h = setup().await;
        let head = format!(
            "POST {EXEC}?command=echo&command=spdy&container=c&stdout=true HTTP/1.1\r\n\
             Host: x\r\nAuthorization: Bearer secret\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
             X-Stream-Protocol-Version: v5.channel.k8s.io\r\n\
             X-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n"
        );
        let (s, head, rest) = raw_upgrade(h.api, head).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head
            .to_ascii_lowercase()
            .contains("x-stream-protocol-version: v4.channel.k8s.io"));
        let mut p = Peer::new(s);
        p.buf = rest;
        for (id, t) in [(1, "error"), (3, "stdout")] {
            p.send(Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers: vec![("streamtype".into(), t.into())],
            })
            .await;
        }
        let mut stdout = vec![];
        let mut error = vec![];
        let mut replies = 0;
        while let Some(f) = p.recv().await {
            match f {
                Frame::SynReply { .. } => replies += 1,
                Frame::Data {
                    stream_id: 3, data, ..
                } => stdout.extend_from_slice(&data),
                Frame::Data {
                    stream_id: 1, data, ..
                } => error.extend_from_slice(&data),
                Frame::Ping { id } => p.send(Frame::Ping { id }).await,
                Frame::GoAway { .. } => break,
                _ => {}
            }
        }
        assert_eq!(replies, 2);
        assert_eq!(stdout, b"spdy\n");
        let st: serde_json::Value = serde_json::from_slice(&error).unwrap();
        assert_eq!(st["status"], "Success");
    }

    #[tokio::test]
    async fn spdy_refusal_is_echoed() {
        let h = setup().await;
        let head =
            "POST /api/v1/namespaces/default/pods/missing/exec?command=ls&stdout=true HTTP/1.1\r\n\
             Host: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
             X-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n"
                .to_string();
        let (mut s, head, mut rest) = raw_upgrade(h.api, head).await;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        let want = b"pod does not exist";
        while !rest.windows(want.len()).any(|w| w == want) {
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_buf(&mut rest))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "body never came");
        }
    }

    #[tokio::test]
    async fn port_forward_websocket_tunnels_spdy() {
        let h = setup().await;
        let mut ws = ws_connect(
            &h,
            "/api/v1/namespaces/default/pods/web/portforward",
            "SPDY/3.1+portforward.k8s.io",
        )
        .await;
        let mut enc = Encoder::new();
        let mut out = BytesMut::new();
        let syn = |id: u32, t: &str| Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: vec![
                ("streamtype".into(), t.into()),
                ("port".into(), "80".into()),
                ("requestid".into(), "0".into()),
            ],
        };
        enc.encode(&syn(1, "error"), &mut out).unwrap();
        enc.encode_data(1, b"", true, &mut out);
        enc.encode(&syn(3, "data"), &mut out).unwrap();
        enc.encode_data(3, b"GET / HTTP/1.0\r\n\r\n", false, &mut out);
        // Split the SPDY byte stream across messages, with an empty message in between.
        let cut = out.len() / 2;
        ws.send(WsMessage::Binary(out[..cut].to_vec().into()))
            .await
            .unwrap();
        ws.send(WsMessage::Binary(Vec::new().into())).await.unwrap();
        ws.send(WsMessage::Binary(out[cut..].to_vec().into()))
            .await
            .unwrap();
        let mut dec = Decoder::new();
        let mut buf = BytesMut::new();
        let mut replies = vec![];
        let mut echoed = vec![];
        let fut = async {
            while let Some(m) = ws.next().await {
                if let WsMessage::Binary(b) = m.unwrap() {
                    buf.extend_from_slice(&b);
                    while let Some(f) = dec.decode(&mut buf).unwrap() {
                        match f {
                            Frame::SynReply { stream_id, .. } => replies.push(stream_id),
                            Frame::Data {
                                stream_id: 3, data, ..
                            } => echoed.extend_from_slice(&data),
                            _ => {}
                        }
                    }
                }
                if replies.len() == 2 && echoed.len() >= 23 {
                    return;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), fut)
            .await
            .unwrap();
        assert_eq!(replies, vec![1, 3]);
        assert_eq!(echoed, b"echo:GET / HTTP/1.0\r\n\r\n");
        ws.close(None).await.unwrap();
    }

    #[tokio::test]
    async fn port_forward_websocket_refusal_is_not_upgraded() {
        let h = setup().await;
        let mut req = format!(
            "ws://{}/api/v1/namespaces/default/pods/missing/portforward",
            h.api
        )
        .into_client_request()
        .unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            "SPDY/3.1+portforward.k8s.io".parse().unwrap(),
        );
        let tcp = tokio::net::TcpStream::connect(h.api).await.unwrap();
        let err = tokio_tungstenite::client_async(req, tcp).await.unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                assert_eq!(resp.status(), 404)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn kubelet_paths_follow_upstream() {
        assert_eq!(
            kubelet_stream_path(
                StreamKind::Exec,
                "default",
                "web",
                "c",
                "command=echo&command=hi+there&container=c&stderr=true&stdout=true&stdin=false"
            ),
            "/exec/default/web/c?command=echo&command=hi+there&error=1&output=1"
        );
        assert_eq!(
            kubelet_stream_path(StreamKind::Attach, "ns", "p", "c", "stdin=true&tty=true"),
            "/attach/ns/p/c?input=1&tty=1"
        );
        assert_eq!(
            kubelet_stream_path(StreamKind::PortForward, "ns", "p", "", ""),
            "/portForward/ns/p"
        );
        assert_eq!(
            kubelet_log_path(
                "ns",
                "p",
                "c",
                "container=c&follow=true&previous=false&sinceTime=2024-01-01T00:00:00Z&limitBytes=100"
            ),
            "/containerLogs/ns/p/c?follow=true&limitBytes=100&sinceTime=2024-01-01T00%3A00%3A00Z"
        );
    }
}
