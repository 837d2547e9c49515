//! In-process integration tests: the real HTTPS server on 127.0.0.1:0 over the embedded
//! store, driven with a plain HTTP/1.1 client using the admin certificate.

use apiserver::pki::Pki;
use apiserver::server::{self, App};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

struct TestServer {
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    anon: tokio_rustls::TlsConnector,
    store: Arc<dyn store::Backend>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn connector(pki: &Pki, client_cert: bool) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pki.ca_cert_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = if client_cert {
        let certs: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut pki.admin_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key: PrivateKeyDer<'static> =
            rustls_pemfile::private_key(&mut pki.admin_key_pem.as_bytes())
                .unwrap()
                .unwrap();
        b.with_client_auth_cert(certs, key).unwrap()
    } else {
        b.with_no_client_auth()
    };
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

async fn start() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(&dir.path().join("tls"), &["127.0.0.1".to_string()]).unwrap();
    let backend: Arc<dyn store::Backend> =
        Arc::new(store::SqliteBackend::open(&dir.path().join("state.db")).unwrap());
    let cached: Arc<dyn store::Backend> = store::WatchCache::new(backend.clone());
    let app = App::new(cached.clone(), "s3cret", "127.0.0.1:0".into());
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let p2 = pki.clone();
    let task = tokio::spawn(async move {
        let _ = server::serve(listener, app, &p2).await;
    });
    let ts = TestServer {
        addr,
        tls: connector(&pki, true),
        anon: connector(&pki, false),
        store: cached,
        _dir: dir,
        task,
    };
    let (code, _) = ts
        .req_as(
            false,
            "POST",
            "/api/v1/namespaces",
            Some(json!({"metadata":{"name":"default"}})),
            &[],
        )
        .await;
    assert_eq!(code, 401, "anonymous create must be refused");
    let (code, _) = ts
        .req(
            "POST",
            "/api/v1/namespaces",
            Some(json!({"metadata":{"name":"default"}})),
        )
        .await;
    assert_eq!(code, 201);
    ts
}

impl TestServer {
    async fn raw(
        &self,
        admin: bool,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, hyper::body::Incoming) {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let c = if admin { &self.tls } else { &self.anon };
        let tls = c
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = send
            .send_request(b.body(Full::new(bytes::Bytes::from(body))).unwrap())
            .await
            .unwrap();
        (resp.status().as_u16(), resp.into_body())
    }

    /// Posts a body over the 3 MiB limit by hand: the server answers before reading it
    /// all, so write errors are expected and ignored; returns the status code.
    async fn oversized_post(&self, path: &str) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let mut tls = self
            .tls
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let n = 3 * 1024 * 1024 + 10;
        let head = format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {n}\r\n\r\n");
        tls.write_all(head.as_bytes()).await.unwrap();
        let _ = tls.write_all(&vec![b' '; n]).await;
        let mut buf = vec![0u8; 64];
        let got = tls.read(&mut buf).await.unwrap();
        let line = String::from_utf8_lossy(&buf[..got]).to_string();
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    async fn req_as(
        &self,
        admin: bool,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        let (code, body) = self
            .raw(
                admin,
                method,
                path,
                body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
                &h,
            )
            .await;
        let bytes = body.collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (code, v)
    }

    async fn req(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.req_as(true, method, path, body, &[]).await
    }
}

fn cm(name: &str) -> Value {
    json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name},"data":{"k":"v"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_and_status_codes() {
    let s = start().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let (code, body) = s.req_as(false, "GET", "/healthz", None, &[]).await;
    assert_eq!((code, body), (200, Value::String("ok".into())));
    let (code, body) = s.req_as(false, "GET", "/api", None, &[]).await;
    assert_eq!(code, 401);
    assert_eq!(body["kind"], "Status");

    let (code, created) = s.req("POST", base, Some(cm("a"))).await;
    assert_eq!(code, 201, "{created}");
    assert!(created["metadata"]["uid"].is_string());
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = s.req("POST", base, Some(cm("a"))).await;
    assert_eq!(code, 409);
    assert_eq!(body["reason"], "AlreadyExists");
    assert_eq!(body["message"], "configmaps \"a\" already exists");

    // Update with the right resourceVersion works; the old one is a conflict.
    let mut upd = created.clone();
    upd["data"]["k"] = json!("v2");
    let (code, updated) = s.req("PUT", &format!("{base}/a"), Some(upd.clone())).await;
    assert_eq!(code, 200, "{updated}");
    assert_ne!(updated["metadata"]["resourceVersion"].as_str().unwrap(), rv);
    let (code, body) = s.req("PUT", &format!("{base}/a"), Some(upd)).await;
    assert_eq!(code, 409);
    assert_eq!(body["reason"], "Conflict");

    let (code, body) = s.req("GET", &format!("{base}/missing"), None).await;
    assert_eq!(code, 404);
    assert_eq!(body["message"], "configmaps \"missing\" not found");

    // Malformed JSON is 400 and stores nothing.
    let (code, body) = s
        .raw(
            true,
            "POST",
            base,
            b"{not json".to_vec(),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(code, 400);
    let _ = body.collect().await;

    // Oversized body is 413.
    assert_eq!(s.oversized_post(base).await, 413);

    // Unknown fields: Strict refuses, default warns.
    let mut bad = cm("b");
    bad["spec"] = json!({"x": 1});
    let (code, body) = s
        .req(
            "POST",
            &format!("{base}?fieldValidation=Strict"),
            Some(bad.clone()),
        )
        .await;
    assert_eq!(code, 400);
    assert_eq!(
        body["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"spec\""
    );
    let (code, _) = s.req("GET", &format!("{base}/b"), None).await;
    assert_eq!(code, 404, "nothing stored on error");

    // dryRun stores nothing.
    let (code, _) = s
        .req("POST", &format!("{base}?dryRun=All"), Some(cm("dry")))
        .await;
    assert_eq!(code, 201);
    let (code, _) = s.req("GET", &format!("{base}/dry"), None).await;
    assert_eq!(code, 404);

    // Namespace must exist.
    let (code, body) = s
        .req("POST", "/api/v1/namespaces/nope/configmaps", Some(cm("x")))
        .await;
    assert_eq!(code, 404);
    assert_eq!(body["message"], "namespaces \"nope\" not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_object_has_field_causes() {
    let s = start().await;
    let pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c"}]}});
    let (code, body) = s
        .req("POST", "/api/v1/namespaces/default/pods", Some(pod))
        .await;
    assert_eq!(code, 422);
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(body["details"]["kind"], "Pod");
    assert_eq!(body["details"]["name"], "p");
    assert_eq!(
        body["details"]["causes"][0]["field"],
        "spec.containers[0].image"
    );
    assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueRequired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_with_continue() {
    let s = start().await;
    let base = "/api/v1/namespaces/default/configmaps";
    for i in 0..5 {
        assert_eq!(s.req("POST", base, Some(cm(&format!("c{i}")))).await.0, 201);
    }
    let mut names = Vec::new();
    let mut cont = String::new();
    let mut pages = 0;
    loop {
        let path = if cont.is_empty() {
            format!("{base}?limit=2")
        } else {
            format!("{base}?limit=2&continue={cont}")
        };
        let (code, page) = s.req("GET", &path, None).await;
        assert_eq!(code, 200, "{page}");
        pages += 1;
        for i in page["items"].as_array().unwrap() {
            names.push(i["metadata"]["name"].as_str().unwrap().to_string());
        }
        match page["metadata"]["continue"].as_str() {
            Some(c) => cont = c.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, vec!["c0", "c1", "c2", "c3", "c4"]);
    let (code, page) = s
        .req("GET", &format!("{base}?labelSelector=a%20in%20(b"), None)
        .await;
    assert_eq!(code, 400, "{page}");
}

async fn read_events(body: &mut hyper::body::Incoming, n: usize) -> Vec<Value> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while out.len() < n {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("watch event in time");
        let Some(Ok(frame)) = frame else { break };
        if let Some(d) = frame.data_ref() {
            buf.extend_from_slice(d);
        }
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            out.push(serde_json::from_slice(&line).unwrap());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_revision_and_expired() {
    let s = start().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let (_, a) = s.req("POST", base, Some(cm("w1"))).await;
    let rv: i64 = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (_, _) = s.req("POST", base, Some(cm("w2"))).await;
    let (code, mut body) = s
        .raw(
            true,
            "GET",
            &format!("{base}?watch=true&resourceVersion={rv}"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(code, 200);
    let (_, _) = s.req("DELETE", &format!("{base}/w1"), None).await;
    let evs = read_events(&mut body, 2).await;
    assert_eq!(evs[0]["type"], "ADDED");
    assert_eq!(evs[0]["object"]["metadata"]["name"], "w2");
    assert_eq!(evs[1]["type"], "DELETED");
    assert_eq!(evs[1]["object"]["metadata"]["name"], "w1");

    // After compaction, an old revision is 410 Expired inside the stream.
    let cur = s.store.current_revision().await.unwrap();
    s.store.compact(cur).await.unwrap();
    let (code, mut body) = s
        .raw(
            true,
            "GET",
            &format!("{base}?watch=true&resourceVersion={rv}"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(code, 200);
    let evs = read_events(&mut body, 1).await;
    assert_eq!(evs[0]["type"], "ERROR");
    assert_eq!(evs[0]["object"]["code"], 410);
    assert_eq!(evs[0]["object"]["reason"], "Expired");

    // Label-selected watch: an object that stops matching is DELETED.
    let (code, mut body) = s
        .raw(
            true,
            "GET",
            &format!("{base}?watch=true&labelSelector=keep%3Dyes"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(code, 200);
    let mut c = cm("sel");
    c["metadata"]["labels"] = json!({"keep": "yes"});
    let (_, created) = s.req("POST", base, Some(c)).await;
    let patch_headers = [("content-type", "application/merge-patch+json")];
    let (code, b) = s
        .raw(
            true,
            "PATCH",
            &format!("{base}/sel"),
            br#"{"metadata":{"labels":{"keep":"no"}}}"#.to_vec(),
            &patch_headers,
        )
        .await;
    assert_eq!(code, 200);
    let _ = b.collect().await;
    let evs = read_events(&mut body, 2).await;
    assert_eq!(evs[0]["type"], "ADDED");
    assert_eq!(evs[1]["type"], "DELETED");
    assert_ne!(
        evs[1]["object"]["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
}
