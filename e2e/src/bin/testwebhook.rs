//! `testwebhook CERT KEY [ADDR]`: a tiny HTTPS admission webhook for the security e2e tests
//! (`tests/security.rs`), packaged into the image `localhost/testwebhook:1` and run as a pod.
//!
//! It speaks `admission.k8s.io/v1` AdmissionReview over HTTP/1.1 with TLS (the serving
//! certificate and key are PEM files given as arguments; ADDR defaults to `0.0.0.0:8443`):
//!
//! * `POST /validate` denies objects labelled `deny: "true"` with the message
//!   [`DENY_MESSAGE`] (code 403) and allows everything else;
//! * `POST /mutate` allows everything and adds the label `mutated: "yes"` with a JSONPatch;
//! * `GET /healthz` answers `ok`.
//!
//! One thread per connection, one request per connection (`Connection: close`).

use base64::Engine;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// The message `/validate` denies with.
const DENY_MESSAGE: &str = "denied by testwebhook";
/// The label `/mutate` adds.
const MUTATED_LABEL: (&str, &str) = ("mutated", "yes");
/// Largest request body read.
const MAX_BODY: usize = 8 << 20;

/// Why the server could not start (the e2e crate has no thiserror, so Display is by hand).
#[derive(Debug)]
enum WebhookError {
    Usage,
    ReadPem(String, std::io::Error),
    ParsePem(String),
    Tls(rustls::Error),
    Bind(String, std::io::Error),
}

impl std::fmt::Display for WebhookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebhookError::Usage => write!(f, "usage: testwebhook CERT KEY [ADDR]"),
            WebhookError::ReadPem(p, e) => write!(f, "reading {p}: {e}"),
            WebhookError::ParsePem(m) => write!(f, "parsing pem: {m}"),
            WebhookError::Tls(e) => write!(f, "configuring tls: {e}"),
            WebhookError::Bind(a, e) => write!(f, "listening on {a}: {e}"),
        }
    }
}

/// What one HTTP request asked for (pure view of the parsed request).
#[derive(Debug, PartialEq)]
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain",
            body: body.as_bytes().to_vec(),
        }
    }
}

/// The AdmissionReview response for a review sent to `path` (pure).
fn review_response(path: &str, review: &Value) -> Result<Value, String> {
    let request = review
        .get("request")
        .filter(|r| r.is_object())
        .ok_or("AdmissionReview has no request")?;
    let uid = request["uid"].as_str().ok_or("request has no uid")?;
    let object = &request["object"];
    let labels = &object["metadata"]["labels"];
    let mut response = json!({"uid": uid, "allowed": true});
    match path {
        "/validate" => {
            if labels["deny"].as_str() == Some("true") {
                response["allowed"] = json!(false);
                response["status"] = json!({"code": 403, "message": DENY_MESSAGE});
            }
        }
        "/mutate" => {
            if object.is_object() {
                let (k, v) = MUTATED_LABEL;
                let patch = if labels.is_object() {
                    json!([{"op": "add", "path": format!("/metadata/labels/{k}"), "value": v}])
                } else {
                    json!([{"op": "add", "path": "/metadata/labels", "value": {k: v}}])
                };
                let bytes = serde_json::to_vec(&patch).map_err(|e| e.to_string())?;
                response["patchType"] = json!("JSONPatch");
                response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
        }
        other => return Err(format!("no webhook at {other}")),
    }
    Ok(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }))
}

/// Answers one parsed request (pure).
fn answer(method: &str, path: &str, body: &[u8]) -> Reply {
    let path = path.split('?').next().unwrap_or(path);
    match (method, path) {
        ("GET", "/healthz") => Reply::text(200, "ok"),
        ("POST", "/validate" | "/mutate") => {
            let review: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return Reply::text(400, &format!("invalid AdmissionReview: {e}")),
            };
            match review_response(path, &review) {
                Ok(v) => Reply {
                    status: 200,
                    content_type: "application/json",
                    body: serde_json::to_vec(&v).unwrap_or_default(),
                },
                Err(e) => Reply::text(400, &e),
            }
        }
        _ => Reply::text(404, "not found"),
    }
}

/// Splits an HTTP/1.1 request head into (method, path, content length).
fn parse_head(head: &str) -> Option<(String, String, usize)> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let mut len = 0;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    Some((method, path, len))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Error",
    }
}

/// Reads one request from `s` and writes the reply.
fn serve<S: Read + Write>(s: &mut S) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 || buf.len() > 64 << 10 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let reply = match parse_head(&head) {
        Some((_, _, len)) if len > MAX_BODY => Reply::text(400, "body too large"),
        Some((method, path, len)) => {
            let mut body = buf[head_end + 4..].to_vec();
            while body.len() < len {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
            let r = answer(&method, &path, &body);
            eprintln!("testwebhook: {method} {path} -> {}", r.status);
            r
        }
        None => Reply::text(400, "bad request"),
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len()
    )
    .into_bytes();
    out.extend_from_slice(&reply.body);
    s.write_all(&out)?;
    s.flush()
}

fn tls_config(cert: &str, key: &str) -> Result<Arc<rustls::ServerConfig>, WebhookError> {
    let read = |p: &str| std::fs::read(p).map_err(|e| WebhookError::ReadPem(p.to_string(), e));
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WebhookError::ParsePem(e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| WebhookError::ParsePem(e.to_string()))?
        .ok_or_else(|| WebhookError::ParsePem(format!("no private key in {key}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(WebhookError::Tls)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(WebhookError::Tls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn handle(config: Arc<rustls::ServerConfig>, tcp: TcpStream) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    if let Err(e) = serve(&mut tls) {
        eprintln!("testwebhook: connection: {e}");
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn run() -> Result<(), WebhookError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cert, key) = match (args.first(), args.get(1)) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => return Err(WebhookError::Usage),
    };
    let addr = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "0.0.0.0:8443".to_string());
    let config = tls_config(&cert, &key)?;
    let listener = TcpListener::bind(&addr).map_err(|e| WebhookError::Bind(addr.clone(), e))?;
    eprintln!("testwebhook: listening on {addr}");
    for tcp in listener.incoming().flatten() {
        let config = config.clone();
        std::thread::spawn(move || handle(config, tcp));
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("testwebhook: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(labels: Option<Value>) -> Value {
        let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
        if let Some(l) = labels {
            obj["metadata"]["labels"] = l;
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u-1", "operation": "CREATE", "object": obj}})
    }

    fn patch_of(v: &Value) -> Value {
        let b = base64::engine::general_purpose::STANDARD
            .decode(v["response"]["patch"].as_str().expect("patch"))
            .expect("base64");
        serde_json::from_slice(&b).expect("json patch")
    }

    #[test]
    fn validate_denies_only_the_deny_label() {
        let r = review_response("/validate", &review(Some(json!({"deny": "true"})))).unwrap();
        assert_eq!(r["kind"], "AdmissionReview");
        assert_eq!(r["response"]["uid"], "u-1");
        assert_eq!(r["response"]["allowed"], false);
        assert_eq!(r["response"]["status"]["message"], DENY_MESSAGE);
        let r = review_response("/validate", &review(Some(json!({"deny": "no"})))).unwrap();
        assert_eq!(r["response"]["allowed"], true);
        assert!(r["response"].get("status").is_none());
    }

    #[test]
    fn mutate_adds_the_label_with_or_without_labels() {
        let r = review_response("/mutate", &review(None)).unwrap();
        assert_eq!(r["response"]["patchType"], "JSONPatch");
        assert_eq!(
            patch_of(&r),
            json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}])
        );
        let r = review_response("/mutate", &review(Some(json!({"a": "b"})))).unwrap();
        assert_eq!(
            patch_of(&r),
            json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}])
        );
    }

    #[test]
    fn bad_requests() {
        assert!(review_response("/validate", &json!({})).is_err());
        assert!(review_response("/other", &review(None)).is_err());
        assert_eq!(answer("POST", "/validate", b"{").status, 400);
        assert_eq!(answer("GET", "/nope", b"").status, 404);
        assert_eq!(answer("GET", "/healthz", b"").body, b"ok");
    }

    #[test]
    fn serves_one_request() {
        struct Pipe {
            input: std::io::Cursor<Vec<u8>>,
            output: Vec<u8>,
        }
        impl Read for Pipe {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                self.input.read(b)
            }
        }
        impl Write for Pipe {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.output.write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let body = serde_json::to_vec(&review(Some(json!({"deny": "true"})))).unwrap();
        let mut req = format!(
            "POST /validate?timeout=10s HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        let mut p = Pipe {
            input: std::io::Cursor::new(req),
            output: Vec::new(),
        };
        serve(&mut p).unwrap();
        let out = String::from_utf8(p.output).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        let json_body: Value = serde_json::from_str(out.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(json_body["response"]["allowed"], false);
    }
}
