//! `cargo run --release -p e2e --bin bench -- [--quick] [--keep] [--only 1,3]`
//!
//! Control-plane and node benchmarks (see BENCHMARKS.md). Starts its own `minik8s server`
//! processes and an etcd (temp dirs, free ports on 127.0.0.1), measures, prints a markdown
//! table and exits. Every child is killed by pid when the run ends, also on error.
//! Figures 9-11 (the node agent) run in a multi-host cluster of network namespaces
//! (`e2e::cluster`): all their traffic stays inside the namespaces that harness created.
//!
//! Environment: `MINIK8S_BIN` (default: target/release/minik8s, built first with cargo),
//! `ETCD_BIN` (default: /usr/bin/etcd).

#[path = "../benchnet.rs"]
mod net;

#[path = "../benchauth.rs"]
mod auth;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use e2e::cluster::{Cluster, ClusterOpts};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Configuration

struct Cfg {
    quick: bool,
    /// Keep the temporary directory (data dirs and logs) instead of removing it.
    keep: bool,
    only: Option<Vec<u32>>,
    minik8s: PathBuf,
    etcd: PathBuf,
    creates: usize,
    pods: usize,
    watchers: usize,
    watch_writes: usize,
    sched_nodes: usize,
    sched_pods: usize,
    deploy_nodes: usize,
    deploy_replicas: usize,
    /// Figure 9-10: pods started on one node (per phase).
    node_pods: usize,
    /// Figure 11: starts per case (fresh data dir, existing data dir).
    agent_starts: usize,
    /// Figures 12-13: Services (each with an EndpointSlice of 10 endpoints).
    net_services: usize,
    /// Flags that turn off the in-process controller manager and scheduler, when the
    /// binary has them (figures 3-5 measure the API server and store alone).
    api_only_flags: Vec<String>,
}

impl Cfg {
    fn wants(&self, n: u32) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(&n))
    }
}

// ---------------------------------------------------------------------------------------
// Child processes: killed by pid on drop (normal exit, `?` errors, panics, Ctrl-C).

struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(st) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: String = log
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            bail!("{} exited early ({st}); log tail:\n{tail}", self.name);
        }
        Ok(())
    }

    /// SIGTERM (by pid), then SIGKILL after 5 s.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Drop kills.
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn spawn(name: &str, bin: &Path, args: &[String], log: &Path) -> Result<Proc> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    Ok(Proc {
        name: name.to_string(),
        child,
        log: log.to_path_buf(),
    })
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = s
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| anyhow!("no {name}"))?;
        Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU seconds (user + system) used so far by `pid` ("self" for this process).
fn cpu_secs(pid: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(") ").map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// CPU used by a set of processes across a phase.
struct CpuMeter {
    pids: Vec<(String, String)>,
    start: Vec<f64>,
    t0: Instant,
}

impl CpuMeter {
    fn start(pids: &[(&str, String)]) -> CpuMeter {
        let pids: Vec<(String, String)> = pids
            .iter()
            .map(|(n, p)| (n.to_string(), p.clone()))
            .collect();
        let start = pids.iter().map(|(_, p)| cpu_secs(p)).collect();
        CpuMeter {
            pids,
            start,
            t0: Instant::now(),
        }
    }
    /// "name X µs/op, …; Y% of 2 cores busy".
    fn finish(&self, ops: usize) -> String {
        let el = self.t0.elapsed().as_secs_f64();
        let mut total = 0.0;
        let mut parts = Vec::new();
        for ((n, p), s) in self.pids.iter().zip(&self.start) {
            let used = cpu_secs(p) - s;
            total += used;
            parts.push(format!("{n} {:.0} µs", used * 1e6 / ops.max(1) as f64));
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1) as f64;
        format!(
            "CPU per op: {}; machine {:.0}% busy",
            parts.join(", "),
            100.0 * total / el / cores
        )
    }
}

// ---------------------------------------------------------------------------------------
// TLS + HTTP/2 client

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Anonymous client that does not check the server certificate (for `/readyz` before the
/// kubeconfig exists).
fn insecure_tls() -> Result<Arc<rustls::ClientConfig>> {
    let p = provider();
    let mut cfg = rustls::ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(p)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// Admin client from the server's kubeconfig (CA + client certificate).
fn admin_tls(kubeconfig: &Path) -> Result<Arc<rustls::ClientConfig>> {
    use base64::Engine;
    let text = std::fs::read_to_string(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let get = |path: &[&str]| -> Result<Vec<u8>> {
        let mut v = &doc;
        for p in path {
            v = match p.parse::<usize>() {
                Ok(i) => &v[i],
                Err(_) => &v[*p],
            };
        }
        let s = v
            .as_str()
            .ok_or_else(|| anyhow!("kubeconfig: no {}", path.join(".")))?;
        Ok(base64::engine::general_purpose::STANDARD.decode(s.trim())?)
    };
    let ca = get(&["clusters", "0", "cluster", "certificate-authority-data"])?;
    let cert = get(&["users", "0", "user", "client-certificate-data"])?;
    let key = get(&["users", "0", "user", "client-key-data"])?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca.as_slice()) {
        roots.add(c?)?;
    }
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut cert.as_slice()).collect::<Result<_, _>>()?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key.as_slice())?
        .ok_or_else(|| anyhow!("no client key"))?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// One HTTP/2 connection; clones multiplex streams over it.
#[derive(Clone)]
struct H2 {
    send: SendRequest<Full<Bytes>>,
    base: String,
}

impl H2 {
    async fn connect(port: u16, tls: Arc<rustls::ClientConfig>) -> Result<H2> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        H2::handshake(tcp, "127.0.0.1", port, tls).await
    }

    /// A connection to `ip:port` whose socket is created inside the network namespace
    /// `netns` (a cluster host of figures 9-11); the bench's own threads stay where they are.
    async fn connect_in(
        netns: &Path,
        ip: std::net::Ipv4Addr,
        port: u16,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<H2> {
        let netns = netns.to_path_buf();
        let addr = std::net::SocketAddr::from((ip, port));
        let std_tcp = tokio::task::spawn_blocking(move || {
            e2e::cluster::in_netns(&netns, move || {
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            })
        })
        .await???;
        std_tcp.set_nonblocking(true)?;
        let tcp = tokio::net::TcpStream::from_std(std_tcp)?;
        H2::handshake(tcp, &ip.to_string(), port, tls).await
    }

    async fn handshake(
        tcp: tokio::net::TcpStream,
        host: &str,
        port: u16,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<H2> {
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(host.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await?;
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(16 << 20)
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(H2 {
            send,
            base: format!("https://{host}:{port}"),
        })
    }

    async fn start(
        &self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(Full::new(body))?;
        let mut s = self.send.clone();
        s.ready().await?;
        Ok(s.send_request(req).await?)
    }

    async fn req(&self, method: &str, path: &str, body: Bytes) -> Result<(u16, Bytes)> {
        let resp = self.start(method, path, body).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        let (st, b) = self.req("GET", path, Bytes::new()).await?;
        if st != 200 {
            bail!("GET {path}: {st}: {}", String::from_utf8_lossy(&b));
        }
        Ok(b)
    }
}

// ---------------------------------------------------------------------------------------
// Servers

struct Server {
    proc: Proc,
    port: u16,
    kubeconfig: PathBuf,
}

fn server_args(data: &Path, port: u16, etcd: Option<&str>) -> Vec<String> {
    let mut a = vec![
        "server".to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--bind-address".into(),
        "127.0.0.1".into(),
        "--https-listen-port".into(),
        port.to_string(),
        "--disable-agent".into(),
    ];
    if let Some(e) = etcd {
        a.push("--datastore-endpoint".into());
        a.push(e.to_string());
    }
    a
}

/// Polls `/readyz` (new connection per attempt, every ~5 ms) until 200; returns the time
/// since `t0`.
async fn wait_ready(proc: &mut Proc, port: u16, t0: Instant, limit: Duration) -> Result<Duration> {
    let tls = insecure_tls()?;
    loop {
        if t0.elapsed() > limit {
            bail!("{} not ready after {limit:?}", proc.name);
        }
        proc.check_alive()?;
        let attempt = async {
            let c = H2::connect(port, tls.clone()).await?;
            let (st, _) = c.req("GET", "/readyz", Bytes::new()).await?;
            Ok::<_, anyhow::Error>(st)
        };
        if let Ok(Ok(200)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
            return Ok(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn start_server(
    cfg: &Cfg,
    name: &str,
    data: &Path,
    etcd: Option<&str>,
) -> Result<(Server, Duration)> {
    start_server_with(cfg, name, data, etcd, false).await
}

/// `api_only`: also pass `cfg.api_only_flags` (no controllers, no scheduler).
async fn start_server_with(
    cfg: &Cfg,
    name: &str,
    data: &Path,
    etcd: Option<&str>,
    api_only: bool,
) -> Result<(Server, Duration)> {
    std::fs::create_dir_all(data)?;
    let port = free_port()?;
    let log = data.with_extension(format!("{port}.log"));
    let mut args = server_args(data, port, etcd);
    if api_only {
        args.extend(cfg.api_only_flags.iter().cloned());
    }
    let t0 = Instant::now();
    let mut proc = spawn(name, &cfg.minik8s, &args, &log)?;
    let took = wait_ready(&mut proc, port, t0, Duration::from_secs(30)).await?;
    let kubeconfig = data.join("kubeconfig.yaml");
    Ok((
        Server {
            proc,
            port,
            kubeconfig,
        },
        took,
    ))
}

impl Server {
    async fn client(&self) -> Result<H2> {
        H2::connect(self.port, admin_tls(&self.kubeconfig)?).await
    }
}

async fn start_etcd(cfg: &Cfg, dir: &Path) -> Result<(Proc, String)> {
    std::fs::create_dir_all(dir)?;
    let cport = free_port()?;
    let pport = free_port()?;
    let client = format!("http://127.0.0.1:{cport}");
    let peer = format!("http://127.0.0.1:{pport}");
    let args: Vec<String> = [
        "--name",
        "bench",
        "--data-dir",
        &dir.join("data").display().to_string(),
        "--listen-client-urls",
        &client,
        "--advertise-client-urls",
        &client,
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
        "--initial-cluster",
        &format!("bench={peer}"),
        "--log-level",
        "warn",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut proc = spawn("etcd", &cfg.etcd, &args, &dir.join("etcd.log"))?;
    let t0 = Instant::now();
    loop {
        proc.check_alive()?;
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("etcd not ready after 30 s");
        }
        let ok = tokio::time::timeout(Duration::from_secs(2), async {
            let mut c = etcd_client::Client::connect([client.clone()], None).await?;
            c.get("health-probe", None).await?;
            Ok::<_, anyhow::Error>(())
        })
        .await;
        if let Ok(Ok(())) = ok {
            return Ok((proc, client));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Payloads and statistics

/// A ConfigMap whose JSON body is exactly 1,024 bytes.
fn configmap_1k(name: &str) -> Bytes {
    let mk = |pad: usize| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "labels": {"app": "bench"}},
               "data": {"payload": "x".repeat(pad)}})
        .to_string()
    };
    let base = mk(0).len();
    let s = mk(1024usize.saturating_sub(base));
    Bytes::from(s)
}

/// A small but realistic pod (~1.5 KiB of JSON as sent).
fn pod(i: usize) -> Bytes {
    let name = format!("web-{i:05}-7d9f8c6b5d-x{:04x}", i % 65536);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": "web", "tier": "frontend", "pod-template-hash": "7d9f8c6b5d", "shard": format!("s{}", i % 16)},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
                            "kubectl.kubernetes.io/restartedAt": "2026-01-15T10:24:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c6b5d",
                                 "uid": "6f1c1c1e-6a8e-4f43-9d2b-2f5e3c0a9b11", "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "registry.example.com/team/web-frontend:v1.27.3",
                "args": ["--port=8080", "--metrics-port=9090", "--log-level=info"],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "CACHE_SIZE", "value": "256"},
                        {"name": "UPSTREAM_URL", "value": "http://api.backend.svc.cluster.local:8080/v2"},
                        {"name": "FEATURE_FLAGS", "value": "search,recommendations,checkout-v2"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "500m", "memory": "256Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
                "livenessProbe": {"httpGet": {"path": "/livez", "port": 8080}, "initialDelaySeconds": 15},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/web", "readOnly": true}]
            }],
            "volumes": [{"name": "config", "configMap": {"name": "web-config"}}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "serviceAccountName": "default"
        }
    })
    .to_string()
    .into()
}

#[derive(Clone, Copy, Default)]
struct Lat {
    p50: f64,
    p99: f64,
    max: f64,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

fn lat(mut ms: Vec<f64>) -> Lat {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Lat {
        p50: pct(&ms, 0.50),
        p99: pct(&ms, 0.99),
        max: ms.last().copied().unwrap_or(f64::NAN),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        f64::NAN
    } else {
        v[(v.len() - 1) / 2]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Throughput {
    n: usize,
    per_sec: f64,
    lat: Lat,
}

/// Runs `n` operations over `workers` concurrent workers; `op(worker, i)` performs one.
async fn run_load<F, Fut>(n: usize, workers: usize, limit: Duration, op: F) -> Result<Throughput>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lats = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let s = Instant::now();
                op(w, i).await?;
                lats.push(ms(s.elapsed()));
            }
            Ok::<_, anyhow::Error>(lats)
        }));
    }
    let all = tokio::time::timeout(limit, async {
        let mut all = Vec::with_capacity(n);
        for t in tasks {
            all.extend(t.await??);
        }
        Ok::<_, anyhow::Error>(all)
    })
    .await
    .map_err(|_| anyhow!("load of {n} ops did not finish within {limit:?}"))??;
    let el = t0.elapsed().as_secs_f64();
    Ok(Throughput {
        n: all.len(),
        per_sec: all.len() as f64 / el,
        lat: lat(all),
    })
}

async fn create_configmaps(
    clients: &[H2],
    n: usize,
    prefix: &str,
    limit: Duration,
) -> Result<Throughput> {
    let clients = clients.to_vec();
    let prefix = prefix.to_string();
    run_load(n, clients.len(), limit, move |w, i| {
        let c = clients[w].clone();
        let body = configmap_1k(&format!("{prefix}-{i:06}"));
        async move {
            let (st, b) = c
                .req("POST", "/api/v1/namespaces/default/configmaps", body)
                .await?;
            if st != 201 {
                bail!("create configmap: {st}: {}", String::from_utf8_lossy(&b));
            }
            Ok(())
        }
    })
    .await
}

async fn clients(s: &Server, n: usize) -> Result<Vec<H2>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(s.client().await?);
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------
// Results

struct Row {
    figure: String,
    measured: String,
    target: String,
    ratio: String,
    pass: Option<bool>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    fn row(
        &mut self,
        figure: impl Into<String>,
        measured: impl Into<String>,
        target: impl Into<String>,
        ratio: impl Into<String>,
        pass: Option<bool>,
    ) {
        let r = Row {
            figure: figure.into(),
            measured: measured.into(),
            target: target.into(),
            ratio: ratio.into(),
            pass,
        };
        eprintln!(
            "  -> {} | {} | {} | {} | {}",
            r.figure,
            r.measured,
            r.target,
            r.ratio,
            match r.pass {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "-",
            }
        );
        self.rows.push(r);
    }
    fn note(&mut self, s: impl Into<String>) {
        let s = s.into();
        eprintln!("  note: {s}");
        self.notes.push(s);
    }
    fn print(&self, cfg: &Cfg) {
        println!();
        println!(
            "### minik8s control-plane benchmarks{}",
            if cfg.quick { " (--quick)" } else { "" }
        );
        println!();
        if !cfg.api_only_flags.is_empty() {
            println!(
                "Figures 1-2 and 6-8 run the full server (`server --disable-agent`); figures 3-5 add `{}`.",
                cfg.api_only_flags.join(" ")
            );
        }
        if cfg.wants(9) || cfg.wants(10) || cfg.wants(11) {
            println!(
                "Figures 9-11 run a server (`--disable-agent`) and two `minik8s agent`s, each host in its own network namespace (e2e::cluster)."
            );
        }
        println!();
        println!("| Figure | Measured | Target | Ratio | Result |");
        println!("|---|---|---|---|---|");
        for r in &self.rows {
            let res = match r.pass {
                Some(true) => "pass",
                Some(false) => "**FAIL**",
                None => "info",
            };
            println!(
                "| {} | {} | {} | {} | {} |",
                r.figure, r.measured, r.target, r.ratio, res
            );
        }
        if !self.notes.is_empty() {
            println!();
            for n in &self.notes {
                println!("- {n}");
            }
        }
    }
}

fn fmt_lat(l: &Lat) -> String {
    format!("p50 {:.1} ms, p99 {:.1} ms", l.p50, l.p99)
}

// ---------------------------------------------------------------------------------------
// Figures

/// 1 (idle RSS with 1,000 ConfigMaps, warm and after restart) and 2 (start to /readyz).
async fn fig_rss_and_startup(cfg: &Cfg, tmp: &Path, rep: &mut Report) -> Result<()> {
    let data = tmp.join("rss");
    if cfg.wants(1) {
        eprintln!("[1] idle RSS with 1,000 ConfigMaps (embedded store)");
        let (srv, _) = start_server(cfg, "server-rss", &data, None).await?;
        {
            let cs = clients(&srv, 8).await?;
            create_configmaps(&cs, 1000, "rss", Duration::from_secs(120)).await?;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (rss, hwm) = rss_kib(srv.proc.pid())?;
        let mib = rss as f64 / 1024.0;
        rep.row(
            "1a. Idle RSS, embedded store, 1,000 ConfigMaps (after creating them)",
            format!("{mib:.1} MiB (peak {:.1} MiB)", hwm as f64 / 1024.0),
            "≤ 40 MiB",
            format!("{:.2}× target", mib / 40.0),
            Some(mib <= 40.0),
        );
        srv.proc.stop();

        let (mut srv, _) = start_server(cfg, "server-rss-restart", &data, None).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        srv.proc.check_alive()?;
        let (rss, hwm) = rss_kib(srv.proc.pid())?;
        let mib = rss as f64 / 1024.0;
        rep.row(
            "1b. Idle RSS after restart, 1,000 ConfigMaps stored (cold idle)",
            format!("{mib:.1} MiB (peak {:.1} MiB)", hwm as f64 / 1024.0),
            "≤ 40 MiB",
            format!("{:.2}× target", mib / 40.0),
            Some(mib <= 40.0),
        );
        srv.proc.stop();
        if !cfg.api_only_flags.is_empty() {
            let (mut srv, _) =
                start_server_with(cfg, "server-rss-api-only", &data, None, true).await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            srv.proc.check_alive()?;
            let (rss, _) = rss_kib(srv.proc.pid())?;
            rep.row(
                format!(
                    "1c. … same, cold idle, with `{}`",
                    cfg.api_only_flags.join(" ")
                ),
                format!("{:.1} MiB", rss as f64 / 1024.0),
                "(info)",
                "",
                None,
            );
            srv.proc.stop();
        }
    }
    if cfg.wants(2) {
        eprintln!("[2] start to /readyz (embedded store)");
        if !data.join("kubeconfig.yaml").exists() {
            // Figure 1 skipped: make an existing data dir with a few objects.
            let (srv, _) = start_server(cfg, "server-prep", &data, None).await?;
            let cs = clients(&srv, 2).await?;
            create_configmaps(&cs, 100, "prep", Duration::from_secs(60)).await?;
            drop(cs);
            srv.proc.stop();
        }
        let mut existing = Vec::new();
        for i in 0..5 {
            let (srv, took) = start_server(cfg, &format!("server-start-{i}"), &data, None).await?;
            existing.push(ms(took));
            srv.proc.stop();
        }
        let mut fresh = Vec::new();
        for i in 0..5 {
            let d = tmp.join(format!("fresh-{i}"));
            let (srv, took) = start_server(cfg, &format!("server-fresh-{i}"), &d, None).await?;
            fresh.push(ms(took));
            srv.proc.stop();
        }
        let fmt = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (me, mf) = (median(existing.clone()), median(fresh.clone()));
        rep.row(
            "2a. Start → /readyz 200, existing data dir (median of 5)",
            format!("{me:.0} ms"),
            "< 1 s",
            format!("{:.2}× target", me / 1000.0),
            Some(me < 1000.0),
        );
        rep.row(
            "2b. Start → /readyz 200, fresh data dir (median of 5)",
            format!("{mf:.0} ms"),
            "< 1 s",
            format!("{:.2}× target", mf / 1000.0),
            Some(mf < 1000.0),
        );
        rep.note(format!(
            "start → /readyz samples (ms): existing dir [{}], fresh dir [{}]",
            fmt(&existing),
            fmt(&fresh)
        ));
    }
    Ok(())
}

/// 3: creates over HTTPS (etcd backend, embedded store) against raw etcd puts.
async fn fig_creates(cfg: &Cfg, tmp: &Path, rep: &mut Report) -> Result<()> {
    eprintln!(
        "[3] creates, 8 concurrent clients, 1 KiB ConfigMaps, n = {}",
        cfg.creates
    );
    let n = cfg.creates;
    let limit = Duration::from_secs(300);
    let (etcd, endpoint) = start_etcd(cfg, &tmp.join("etcd")).await?;

    // (c) the floor: raw etcd puts, 8 clients.
    let mut ecs = Vec::new();
    for _ in 0..8 {
        ecs.push(etcd_client::Client::connect([endpoint.clone()], None).await?);
    }
    let value = configmap_1k("raw-000000").to_vec();
    // Warm-up.
    {
        let mut c = ecs[0].clone();
        for i in 0..50 {
            c.put(format!("/bench/warm/{i}"), value.clone(), None)
                .await?;
        }
    }
    let ecs2 = ecs.clone();
    let cpu = CpuMeter::start(&[("etcd", etcd.pid().to_string()), ("bench", "self".into())]);
    let raw = run_load(n, 8, limit, move |w, i| {
        let mut c = ecs2[w].clone();
        let v = value.clone();
        async move {
            c.put(format!("/bench/raw/{i:06}"), v, None).await?;
            Ok(())
        }
    })
    .await?;
    let raw_cpu = cpu.finish(n);

    // (d) diagnostic: the etcd traffic of one API create, done directly: a linearizable
    // GET of the namespace key (namespace admission), then the create txn.
    {
        let mut c = ecs[0].clone();
        c.put("/registry/namespaces/default", b"{}".to_vec(), None)
            .await?;
    }
    let mut patterns = Vec::new();
    for mode in 0..3u8 {
        let ecs3 = ecs.clone();
        let value = configmap_1k("raw-000000").to_vec();
        let t = run_load(n, 8, limit, move |w, i| {
            let mut c = ecs3[w].clone();
            let v = value.clone();
            async move {
                match mode {
                    0 => drop(c.get("/registry/namespaces/default", None).await?),
                    2 => drop(
                        c.get(
                            "/registry/namespaces/default",
                            Some(etcd_client::GetOptions::new().with_serializable()),
                        )
                        .await?,
                    ),
                    _ => {}
                }
                let key = format!("/bench/txn{mode}/{i:06}");
                let txn = etcd_client::Txn::new()
                    .when([etcd_client::Compare::create_revision(
                        key.clone(),
                        etcd_client::CompareOp::Equal,
                        0,
                    )])
                    .and_then([etcd_client::TxnOp::put(key, v, None)]);
                c.txn(txn).await?;
                Ok(())
            }
        })
        .await?;
        patterns.push(t);
    }
    let pattern = patterns.remove(0);
    drop(ecs);

    // (a) the etcd backend.
    let (srv_e, _) = start_server_with(
        cfg,
        "server-etcd",
        &tmp.join("srv-etcd"),
        Some(&endpoint),
        true,
    )
    .await?;
    let cs = clients(&srv_e, 8).await?;
    create_configmaps(&cs, 50, "warm", limit).await?;
    let cpu = CpuMeter::start(&[
        ("server", srv_e.proc.pid().to_string()),
        ("etcd", etcd.pid().to_string()),
        ("bench", "self".into()),
    ]);
    let via_etcd = create_configmaps(&cs, n, "cm", limit).await?;
    let etcd_cpu = cpu.finish(n);
    drop(cs);
    srv_e.proc.stop();
    etcd.stop();

    // (b) the embedded store.
    let (srv_s, _) = start_server_with(
        cfg,
        "server-embedded",
        &tmp.join("srv-embedded"),
        None,
        true,
    )
    .await?;
    let cs = clients(&srv_s, 8).await?;
    create_configmaps(&cs, 50, "warm", limit).await?;
    let cpu = CpuMeter::start(&[
        ("server", srv_s.proc.pid().to_string()),
        ("bench", "self".into()),
    ]);
    let embedded = create_configmaps(&cs, n, "cm", limit).await?;
    let emb_cpu = cpu.finish(n);
    drop(cs);
    srv_s.proc.stop();

    rep.row(
        format!(
            "3c. Raw etcd-client put, 1 KiB, concurrency 8 (floor), n={}",
            raw.n
        ),
        format!("{:.0} puts/s; {}", raw.per_sec, fmt_lat(&raw.lat)),
        "(floor)",
        "1.00× floor",
        None,
    );
    rep.row(
        format!("3d. Raw etcd-client GET namespace + create txn (the server's etcd traffic per create), n={}", pattern.n),
        format!("{:.0} ops/s; {}", pattern.per_sec, fmt_lat(&pattern.lat)),
        "(diagnostic)",
        format!("{:.2}× floor", pattern.per_sec / raw.per_sec),
        None,
    );
    rep.note(format!(
        "etcd access-pattern variants (raw etcd-client, concurrency 8): create txn alone {:.0}/s ({:.2}× floor, {}); \
         serializable GET + txn {:.0}/s ({:.2}× floor, {})",
        patterns[0].per_sec,
        patterns[0].per_sec / raw.per_sec,
        fmt_lat(&patterns[0].lat),
        patterns[1].per_sec,
        patterns[1].per_sec / raw.per_sec,
        fmt_lat(&patterns[1].lat)
    ));
    let r = via_etcd.per_sec / raw.per_sec;
    rep.row(
        format!(
            "3a. Creates over HTTPS, etcd backend, 8 clients, n={}",
            via_etcd.n
        ),
        format!("{:.0} creates/s", via_etcd.per_sec),
        "≥ 0.5× raw etcd puts/s",
        format!("{r:.2}× floor"),
        Some(r >= 0.5),
    );
    rep.row(
        "3a. … latency (etcd backend)",
        fmt_lat(&via_etcd.lat),
        "p99 < 50 ms",
        "",
        Some(via_etcd.lat.p99 < 50.0),
    );
    let r2 = embedded.per_sec / via_etcd.per_sec;
    rep.row(
        format!(
            "3b. Creates over HTTPS, embedded store, 8 clients, n={}",
            embedded.n
        ),
        format!("{:.0} creates/s", embedded.per_sec),
        "≥ etcd backend creates/s",
        format!(
            "{:.2}× floor, {r2:.2}× etcd backend",
            embedded.per_sec / raw.per_sec
        ),
        Some(r2 >= 1.0),
    );
    rep.row(
        "3b. … latency (embedded store)",
        fmt_lat(&embedded.lat),
        "p99 < 50 ms",
        "",
        Some(embedded.lat.p99 < 50.0),
    );
    rep.note(format!(
        "max create latency: raw etcd {:.1} ms, etcd backend {:.1} ms, embedded {:.1} ms",
        raw.lat.max, via_etcd.lat.max, embedded.lat.max
    ));
    rep.note(format!("raw etcd puts: {raw_cpu}"));
    rep.note(format!("etcd backend creates: {etcd_cpu}"));
    rep.note(format!("embedded creates: {emb_cpu}"));
    Ok(())
}

/// 4: LIST of N pods, full and paged.
async fn fig_list(cfg: &Cfg, tmp: &Path, rep: &mut Report) -> Result<()> {
    let n = cfg.pods;
    eprintln!("[4] LIST of {n} pods (embedded store)");
    let (srv, _) = start_server_with(cfg, "server-list", &tmp.join("srv-list"), None, true).await?;
    let cs = clients(&srv, 8).await?;
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let (cs2, sizes2) = (cs.clone(), sizes.clone());
    let sent_len = pod(0).len();
    let created = run_load(n, 8, Duration::from_secs(600), move |w, i| {
        let c = cs2[w].clone();
        let sizes = sizes2.clone();
        async move {
            let (st, b) = c
                .req("POST", "/api/v1/namespaces/default/pods", pod(i))
                .await?;
            if st != 201 {
                bail!("create pod: {st}: {}", String::from_utf8_lossy(&b));
            }
            if i % 100 == 0 {
                sizes.lock().unwrap().push(b.len());
            }
            Ok(())
        }
    })
    .await?;
    let stored_len = {
        let s = sizes.lock().unwrap();
        s.iter().sum::<usize>() / s.len().max(1)
    };
    let c = &cs[0];
    // Warm-up and sanity check.
    let body = c.get("/api/v1/namespaces/default/pods").await?;
    let v: Value = serde_json::from_slice(&body)?;
    let count = v["items"].as_array().map_or(0, |a| a.len());
    if count != n {
        bail!("list returned {count} pods, expected {n}");
    }
    let mut full = Vec::new();
    let mut ttfb = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let resp = c
            .start("GET", "/api/v1/namespaces/default/pods", Bytes::new())
            .await?;
        ttfb.push(ms(t.elapsed()));
        let b = resp.into_body().collect().await?.to_bytes();
        full.push(ms(t.elapsed()));
        std::hint::black_box(b.len());
    }
    let mut paged = Vec::new();
    let mut pages = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let mut cont = String::new();
        let mut got = 0;
        pages = 0;
        loop {
            let path = if cont.is_empty() {
                "/api/v1/namespaces/default/pods?limit=500".to_string()
            } else {
                format!(
                    "/api/v1/namespaces/default/pods?limit=500&continue={}",
                    urlencode(&cont)
                )
            };
            let b = c.get(&path).await?;
            let v: PageHead = serde_json::from_slice(&b)?;
            got += v.items.len();
            pages += 1;
            cont = v.metadata.cont.unwrap_or_default();
            if cont.is_empty() || pages > n / 500 + 5 {
                break;
            }
        }
        if got != n {
            bail!("paged list returned {got} pods, expected {n}");
        }
        paged.push(ms(t.elapsed()));
    }
    drop(cs);
    srv.proc.stop();
    let mf = median(full.clone());
    let mp = median(paged.clone());
    rep.row(
        format!("4. LIST {n} pods, full list (median of 5)"),
        format!(
            "{mf:.0} ms ({:.1} MiB body; headers after {:.0} ms)",
            body.len() as f64 / 1048576.0,
            median(ttfb.clone())
        ),
        "< 200 ms",
        format!("{:.2}× target", mf / 200.0),
        Some(mf < 200.0),
    );
    rep.row(
        format!("4. LIST {n} pods, limit=500 pages, all {pages} pages (median of 5)"),
        format!("{mp:.0} ms total, {:.1} ms/page", mp / pages as f64),
        "(info)",
        "",
        None,
    );
    rep.note(format!(
        "pods: {sent_len} B of JSON sent per create, ~{stored_len} B returned (defaulted + managedFields); \
         {:.0} pod creates/s while loading (p99 {:.1} ms); full-list samples (ms): {}; paged: {}",
        created.per_sec,
        created.lat.p99,
        full.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", "),
        paged.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(", "),
    ));
    Ok(())
}

/// What the paged LIST reads of each page (items are skipped without being built).
#[derive(serde::Deserialize)]
struct PageHead {
    metadata: PageMeta,
    items: Vec<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct PageMeta {
    #[serde(rename = "continue")]
    cont: Option<String>,
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// 5: 1,000 watchers over 10 HTTP/2 connections see each of ~20 writes.
async fn fig_watch(cfg: &Cfg, tmp: &Path, rep: &mut Report) -> Result<()> {
    let watchers = cfg.watchers;
    let writes = cfg.watch_writes;
    let conns = 10.min(watchers);
    eprintln!(
        "[5] {watchers} watchers over {conns} HTTP/2 connections, {writes} writes (embedded store)"
    );
    let (srv, _) =
        start_server_with(cfg, "server-watch", &tmp.join("srv-watch"), None, true).await?;
    let writer = srv.client().await?;
    let v: Value = serde_json::from_slice(
        &writer
            .get("/api/v1/namespaces/default/configmaps?limit=1")
            .await?,
    )?;
    let rv = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();

    // seen[write][watcher] = arrival time.
    let seen: Arc<Mutex<Vec<Vec<Option<Instant>>>>> =
        Arc::new(Mutex::new(vec![vec![None; watchers]; writes]));
    let counts: Arc<Vec<AtomicUsize>> =
        Arc::new((0..writes).map(|_| AtomicUsize::new(0)).collect());
    let mut wconns = Vec::new();
    for _ in 0..conns {
        wconns.push(srv.client().await?);
    }
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=600"
    );
    let t_open = Instant::now();
    let mut opens = Vec::new();
    for w in 0..watchers {
        let c = wconns[w % conns].clone();
        let path = path.clone();
        opens.push(tokio::spawn(async move {
            c.start("GET", &path, Bytes::new()).await
        }));
    }
    let mut readers = Vec::new();
    for (w, o) in opens.into_iter().enumerate() {
        let resp = tokio::time::timeout(Duration::from_secs(60), o)
            .await
            .map_err(|_| anyhow!("opening watch {w} timed out"))???;
        if resp.status() != 200 {
            bail!("watch {w}: {}", resp.status());
        }
        let (seen, counts) = (seen.clone(), counts.clone());
        readers.push(tokio::spawn(async move {
            let mut body = resp.into_body();
            let mut buf: Vec<u8> = Vec::new();
            while let Some(f) = body.frame().await {
                let Ok(f) = f else { break };
                let Ok(data) = f.into_data() else { continue };
                let now = Instant::now();
                buf.extend_from_slice(&data);
                while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                        continue;
                    };
                    let name = ev["object"]["metadata"]["name"].as_str().unwrap_or("");
                    if let Some(k) = name
                        .strip_prefix("watch-")
                        .and_then(|k| k.parse::<usize>().ok())
                    {
                        if k < counts.len() {
                            let mut s = seen.lock().unwrap();
                            if s[k][w].is_none() {
                                s[k][w] = Some(now);
                                counts[k].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
        }));
    }
    let open_ms = ms(t_open.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut lats = Vec::new();
    let mut from_send = Vec::new();
    let mut ack_ms = Vec::new();
    let mut missing = 0usize;
    let mut early = 0usize;
    for k in 0..writes {
        let body = configmap_1k(&format!("watch-{k}"));
        let sent = Instant::now();
        let (st, b) = writer
            .req("POST", "/api/v1/namespaces/default/configmaps", body)
            .await?;
        let ack = Instant::now();
        ack_ms.push(ms(ack - sent));
        if st != 201 {
            bail!("create: {st}: {}", String::from_utf8_lossy(&b));
        }
        let until = Instant::now() + Duration::from_secs(10);
        while counts[k].load(Ordering::Relaxed) < watchers && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        {
            let s = seen.lock().unwrap();
            for t in &s[k] {
                if let Some(t) = t {
                    from_send.push(ms(*t - sent));
                }
                match t {
                    Some(t) if *t >= ack => lats.push(ms(*t - ack)),
                    Some(_) => {
                        early += 1;
                        lats.push(0.0);
                    }
                    None => missing += 1,
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in &readers {
        r.abort();
    }
    drop(wconns);
    srv.proc.stop();
    let l = lat(lats);
    let ls = lat(from_send);
    let la = lat(ack_ms);
    rep.row(
        format!("5. Watch fan-out: {watchers} watchers ({conns} HTTP/2 conns), {writes} writes; ack → event"),
        fmt_lat(&l),
        "p99 < 100 ms",
        format!("{:.2}× target", l.p99 / 100.0),
        Some(l.p99 < 100.0 && missing == 0),
    );
    rep.row(
        "5. … same events, measured from sending the write",
        fmt_lat(&ls),
        "(info)",
        format!("write itself: {}", fmt_lat(&la)),
        None,
    );
    rep.note(format!(
        "watch: opening {watchers} watches took {open_ms:.0} ms; max {:.1} ms; {early} deliveries arrived before the \
         writer saw its 201 (counted as 0 ms); {missing} missed (not seen within 10 s)",
        l.max
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Figures 6-8: scheduler and controllers end to end.

/// RFC 3339 UTC timestamp with microseconds (for Node heartbeats and Lease renewTime).
fn rfc3339_now() -> String {
    e2e::rfc3339_micros(std::time::SystemTime::now())
}

/// A Ready node with room for `pods` pods (as a kubelet would register it).
fn node_obj(name: &str, pods: u32) -> Bytes {
    let now = rfc3339_now();
    let res = json!({"cpu": "64", "memory": "256Gi", "pods": pods.to_string(), "ephemeral-storage": "100Gi"});
    let cond = |t: &str, s: &str, r: &str| {
        json!({"type": t, "status": s, "reason": r, "message": r,
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "topology.kubernetes.io/zone": format!("zone-{}", name.len() % 3)}},
        "spec": {},
        "status": {
            "capacity": res, "allocatable": res,
            "conditions": [cond("Ready", "True", "KubeletReady"),
                           cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                           cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                           cond("PIDPressure", "False", "KubeletHasSufficientPID")],
            "nodeInfo": {"kubeletVersion": "v1.31.0", "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "containerd://1.7.0", "kernelVersion": "6.1.0",
                         "osImage": "bench", "kubeProxyVersion": "v1.31.0", "machineID": "", "systemUUID": "",
                         "bootID": ""}
        }
    })
    .to_string()
    .into()
}

fn lease_obj(name: &str) -> Bytes {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": rfc3339_now()}
    })
    .to_string()
    .into()
}

/// A pending pod of `pod(i)`'s shape, without ownerReferences (a dangling owner would be
/// garbage-collected while the controllers run).
fn sched_pod(i: usize) -> Bytes {
    let mut v: Value = serde_json::from_slice(&pod(i)).expect("pod json");
    let m = v["metadata"].as_object_mut().expect("metadata");
    m.remove("ownerReferences");
    m.insert("name".into(), json!(format!("sched-{i:05}")));
    Bytes::from(v.to_string())
}

/// Creates `n` Ready nodes named `{prefix}-{i:04}` and their Leases (8 clients).
async fn create_nodes(cs: &[H2], n: usize, prefix: &str) -> Result<Throughput> {
    let cs = cs.to_vec();
    let prefix = prefix.to_string();
    run_load(n, cs.len(), Duration::from_secs(120), move |w, i| {
        let c = cs[w].clone();
        let name = format!("{prefix}-{i:04}");
        async move {
            let (st, b) = c.req("POST", "/api/v1/nodes", node_obj(&name, 110)).await?;
            if st != 201 {
                bail!("create node: {st}: {}", String::from_utf8_lossy(&b));
            }
            let (st, b) = c
                .req(
                    "POST",
                    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                    lease_obj(&name),
                )
                .await?;
            if st != 201 {
                bail!("create lease: {st}: {}", String::from_utf8_lossy(&b));
            }
            Ok(())
        }
    })
    .await
}

/// Renews the Leases of `n` nodes every 10 s (as kubelets do), so that the node lifecycle
/// controller keeps them Ready while a figure runs. Aborted by the caller.
fn renew_leases(c: H2, n: usize, prefix: &str) -> tokio::task::JoinHandle<()> {
    let prefix = prefix.to_string();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let now = rfc3339_now();
            for i in 0..n {
                let path = format!(
                    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{prefix}-{i:04}"
                );
                let patch = json!({"spec": {"renewTime": now}}).to_string();
                let req = hyper::Request::builder()
                    .method("PATCH")
                    .uri(format!("{}{path}", c.base))
                    .header("content-type", "application/merge-patch+json")
                    .header("accept", "application/json")
                    .body(Full::new(Bytes::from(patch)));
                let Ok(req) = req else { return };
                let mut s = c.send.clone();
                if s.ready().await.is_err() {
                    return;
                }
                if let Ok(resp) = s.send_request(req).await {
                    let _ = resp.into_body().collect().await;
                }
            }
        }
    })
}

/// The parts of a pod watch event the bench reads.
#[derive(serde::Deserialize)]
struct PodEv {
    object: PodEvObj,
}
#[derive(serde::Deserialize)]
struct PodEvObj {
    metadata: PodEvMeta,
    #[serde(default)]
    spec: Option<PodEvSpec>,
}
#[derive(serde::Deserialize)]
struct PodEvMeta {
    #[serde(default)]
    name: String,
}
#[derive(serde::Deserialize)]
struct PodEvSpec {
    #[serde(default, rename = "nodeName")]
    node_name: Option<String>,
}

/// A pod watch recording, per pod name, when it was first seen bound (arrival time of the
/// watch event carrying `spec.nodeName`) and when it was first seen at all.
struct PodWatch {
    bound: Arc<Mutex<std::collections::HashMap<String, (Instant, String)>>>,
    seen: Arc<Mutex<std::collections::HashMap<String, Instant>>>,
    nbound: Arc<AtomicUsize>,
    reader: tokio::task::JoinHandle<()>,
}

impl PodWatch {
    async fn start(c: &H2, ns: &str, selector: &str) -> Result<PodWatch> {
        let v: Value = serde_json::from_slice(
            &c.get(&format!("/api/v1/namespaces/{ns}/pods?limit=1"))
                .await?,
        )?;
        let rv = v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("0")
            .to_string();
        let mut path = format!(
            "/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={rv}&timeoutSeconds=900"
        );
        if !selector.is_empty() {
            path.push_str("&labelSelector=");
            path.push_str(&urlencode(selector));
        }
        let resp = c.start("GET", &path, Bytes::new()).await?;
        if resp.status() != 200 {
            bail!("pod watch: {}", resp.status());
        }
        let bound = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let seen = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let nbound = Arc::new(AtomicUsize::new(0));
        let (b2, s2, n2) = (bound.clone(), seen.clone(), nbound.clone());
        let reader = tokio::spawn(async move {
            let mut body = resp.into_body();
            let mut buf: Vec<u8> = Vec::new();
            while let Some(f) = body.frame().await {
                let Ok(f) = f else { break };
                let Ok(data) = f.into_data() else { continue };
                let now = Instant::now();
                buf.extend_from_slice(&data);
                let mut start = 0;
                while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
                    let line = &buf[start..start + nl];
                    start += nl + 1;
                    let Ok(ev) = serde_json::from_slice::<PodEv>(line) else {
                        continue;
                    };
                    let name = ev.object.metadata.name;
                    s2.lock().unwrap().entry(name.clone()).or_insert(now);
                    if let Some(node) = ev
                        .object
                        .spec
                        .and_then(|s| s.node_name)
                        .filter(|n| !n.is_empty())
                    {
                        let mut b = b2.lock().unwrap();
                        if let std::collections::hash_map::Entry::Vacant(e) = b.entry(name) {
                            e.insert((now, node));
                            n2.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                buf.drain(..start);
            }
        });
        Ok(PodWatch {
            bound,
            seen,
            nbound,
            reader,
        })
    }

    /// Waits until `n` pods were seen bound; false on timeout.
    async fn wait_bound(&self, n: usize, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while self.nbound.load(Ordering::Relaxed) < n {
            if Instant::now() > until || self.reader.is_finished() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// 6 (scheduler throughput, 1,000 nodes, 10,000 pods) and 8 (idle RSS of the controller
/// manager + scheduler with that data).
async fn fig_scheduler(cfg: &Cfg, tmp: &Path, rep: &mut Report) -> Result<()> {
    let (nn, np) = (cfg.sched_nodes, cfg.sched_pods);
    let data = tmp.join("srv-sched");
    eprintln!("[6] scheduler throughput: {nn} nodes, {np} pods (embedded store, full server)");
    let (srv, _) = start_server(cfg, "server-sched", &data, None).await?;
    let cs = clients(&srv, 8).await?;
    let t = Instant::now();
    create_nodes(&cs, nn, "node").await?;
    let nodes_s = t.elapsed().as_secs_f64();
    let renew = renew_leases(srv.client().await?, nn, "node");
    // Let the scheduler's node informer and the node lifecycle controller see the nodes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let watch = PodWatch::start(&srv.client().await?, "default", "").await?;
    let sent: Arc<Vec<Mutex<Option<Instant>>>> =
        Arc::new((0..np).map(|_| Mutex::new(None)).collect());
    let (cs2, sent2) = (cs.clone(), sent.clone());
    let cpu = CpuMeter::start(&[
        ("server", srv.proc.pid().to_string()),
        ("bench", "self".into()),
    ]);
    let t0 = Instant::now();
    // 8 creates in flight, as in figures 3-4. (32 were tried: creates got ~10 % faster
    // but starved the scheduler's single event loop of CPU, and bindings fell behind.)
    let created = run_load(np, 8, Duration::from_secs(600), move |w, i| {
        let c = cs2[w].clone();
        let sent = sent2.clone();
        let body = sched_pod(i);
        async move {
            *sent[i].lock().unwrap() = Some(Instant::now());
            let (st, b) = c
                .req("POST", "/api/v1/namespaces/default/pods", body)
                .await?;
            if st != 201 {
                bail!("create pod: {st}: {}", String::from_utf8_lossy(&b));
            }
            Ok(())
        }
    })
    .await?;
    let t_created = t0.elapsed();
    let all = watch.wait_bound(np, Duration::from_secs(300)).await;
    let cpu_s = cpu.finish(np);
    let nbound = watch.nbound.load(Ordering::Relaxed);
    let (lats, last, nodes_used) = {
        let b = watch.bound.lock().unwrap();
        let mut lats = Vec::with_capacity(np);
        let mut last = t0;
        for (i, s) in sent.iter().enumerate() {
            let name = format!("sched-{i:05}");
            if let (Some(s), Some((at, _))) = (*s.lock().unwrap(), b.get(&name)) {
                lats.push(ms(at.saturating_duration_since(s)));
                last = last.max(*at);
            }
        }
        let nodes: std::collections::HashSet<&String> = b.values().map(|(_, n)| n).collect();
        (lats, last, nodes.len())
    };
    let el = (last - t0).as_secs_f64();
    let rate = nbound.min(np) as f64 / el;
    let l = lat(lats);
    renew.abort();
    rep.row(
        format!("6. Scheduler: {np} pods onto {nn} nodes, first create → last binding seen"),
        format!("{rate:.0} pods/s ({nbound} bound in {el:.2} s)"),
        "≥ 1,000 pods/s",
        format!("{:.2}× target", rate / 1000.0),
        Some(all && rate >= 1000.0),
    );
    rep.row(
        "6. … per pod, create sent → binding seen on a watch",
        fmt_lat(&l),
        "(info)",
        "",
        None,
    );
    rep.note(format!(
        "scheduler: {nn} nodes + Leases created in {nodes_s:.1} s; pods created at {:.0}/s (all sent in {:.2} s, create p99 {:.1} ms); \
         {nodes_used} nodes used; max create→bound {:.0} ms; {cpu_s}",
        created.per_sec,
        t_created.as_secs_f64(),
        created.lat.p99,
        l.max
    ));
    drop(watch);
    drop(cs);

    if cfg.wants(8) {
        eprintln!("[8] controller manager + scheduler RSS with {nn} nodes, {np} pods");
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (warm, _) = rss_kib(srv.proc.pid())?;
        srv.proc.stop();
        let (mut full, _) = start_server(cfg, "server-sched-cold", &data, None).await?;
        tokio::time::sleep(Duration::from_secs(8)).await;
        full.proc.check_alive()?;
        let (cold, _) = rss_kib(full.proc.pid())?;
        full.proc.stop();
        if cfg.api_only_flags.is_empty() {
            rep.note(format!(
                "8: no --disable-controllers/--disable-scheduler flags; full server idle RSS {:.1} MiB warm, {:.1} MiB cold",
                warm as f64 / 1024.0,
                cold as f64 / 1024.0
            ));
        } else {
            let (mut api, _) =
                start_server_with(cfg, "server-sched-api-only", &data, None, true).await?;
            tokio::time::sleep(Duration::from_secs(8)).await;
            api.proc.check_alive()?;
            let (base, _) = rss_kib(api.proc.pid())?;
            api.proc.stop();
            let diff = (cold as f64 - base as f64) / 1024.0;
            rep.row(
                format!("8. Controller manager + scheduler idle RSS, {nn} nodes + {np} pods (cold full − cold API-only)"),
                format!(
                    "{diff:.1} MiB ({:.1} − {:.1} MiB)",
                    cold as f64 / 1024.0,
                    base as f64 / 1024.0
                ),
                "< 100 MiB",
                format!("{:.2}× target", diff / 100.0),
                Some(diff < 100.0),
            );
            rep.note(format!(
                "8: full server RSS right after figure 6 (warm, 5 s idle): {:.1} MiB; cold samples taken 8 s after /readyz",
                warm as f64 / 1024.0
            ));
        }
    } else {
        srv.proc.stop();
    }
    Ok(())
}

/// 7: a Deployment of N replicas, create → all pods bound (100 nodes, full server).
async fn fig_deployment(cfg: &Cfg, tmp: &Path, rep: &mut Report) -> Result<()> {
    let (nn, reps) = (cfg.deploy_nodes, cfg.deploy_replicas);
    eprintln!("[7] Deployment of {reps} replicas onto {nn} nodes (embedded store, full server)");
    let (srv, _) = start_server(cfg, "server-deploy", &tmp.join("srv-deploy"), None).await?;
    let cs = clients(&srv, 8).await?;
    create_nodes(&cs, nn, "dnode").await?;
    let renew = renew_leases(srv.client().await?, nn, "dnode");
    // The default ServiceAccount must exist before pods are admitted.
    let c = &cs[0];
    let until = Instant::now() + Duration::from_secs(30);
    while c
        .req(
            "GET",
            "/api/v1/namespaces/default/serviceaccounts/default",
            Bytes::new(),
        )
        .await?
        .0
        != 200
    {
        if Instant::now() > until {
            bail!("default ServiceAccount not created within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let watch = PodWatch::start(&srv.client().await?, "default", "app=bench-deploy").await?;
    let mut dep: Value = serde_json::from_slice(&sched_pod(0))?;
    let template = json!({
        "metadata": {"labels": {"app": "bench-deploy"}},
        "spec": dep["spec"].take(),
    });
    let body = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "bench-deploy"},
        "spec": {"replicas": reps, "selector": {"matchLabels": {"app": "bench-deploy"}}, "template": template}
    })
    .to_string();
    let cpu = CpuMeter::start(&[
        ("server", srv.proc.pid().to_string()),
        ("bench", "self".into()),
    ]);
    let t0 = Instant::now();
    let (st, b) = c
        .req(
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            body.into(),
        )
        .await?;
    if st != 201 {
        bail!("create deployment: {st}: {}", String::from_utf8_lossy(&b));
    }
    let all = watch.wait_bound(reps, Duration::from_secs(120)).await;
    let cpu_s = cpu.finish(reps);
    let nbound = watch.nbound.load(Ordering::Relaxed);
    let (last_bound, last_seen, first_seen) = {
        let b = watch.bound.lock().unwrap();
        let s = watch.seen.lock().unwrap();
        (
            b.values().map(|(t, _)| *t).max(),
            s.values().copied().max(),
            s.values().copied().min(),
        )
    };
    renew.abort();
    drop(watch);
    drop(cs);
    srv.proc.stop();
    let secs = |t: Option<Instant>| t.map_or(f64::NAN, |t| (t - t0).as_secs_f64());
    let took = secs(last_bound);
    rep.row(
        format!("7. Deployment of {reps} replicas on {nn} nodes: create → all pods bound"),
        if all {
            format!("{took:.2} s")
        } else {
            format!(
                "only {nbound}/{reps} bound after {:.0} s",
                t0.elapsed().as_secs_f64()
            )
        },
        "< 5 s",
        format!("{:.2}× target", took / 5.0),
        Some(all && took < 5.0),
    );
    rep.note(format!(
        "deployment: first pod seen at {:.2} s, last pod created (seen) at {:.2} s, last bound at {took:.2} s; {cpu_s} (per pod)",
        secs(first_seen),
        secs(last_seen),
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Figures 9-11: the node agent. One cluster of the multi-host harness (e2e::cluster): the
// server (`--disable-agent`) in h0, agents in h1 (runs the pods of figures 9-10) and h2
// (restarted by figure 11, never runs a pod). The bench talks to the API server over a
// socket created inside h0's network namespace and to h1's containerd over its unix
// socket; it never sends anything to a pod address.

const BUSYBOX: &str = node::images::BUSYBOX_IMAGE;
/// The host whose agent runs the pods of figures 9-10.
const POD_HOST: usize = 1;
/// The host whose agent figure 11 restarts.
const START_HOST: usize = 2;
const POD_SELECTOR: &str = "app=bench-start";

/// A blocking harness call, made without stalling the runtime's other workers.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The pod of figures 9-10: one busybox container, pinned to `node` by a nodeSelector (so
/// the scheduler is on the path, as for any pod), 1 s of termination grace.
fn start_pod(name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench-start"}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": BUSYBOX, "command": ["sleep", "3600"]}]
        }
    })
}

/// A watch whose events arrive through a channel, each with the time its bytes arrived.
struct EventStream {
    rx: tokio::sync::mpsc::UnboundedReceiver<(Instant, Value)>,
    reader: tokio::task::JoinHandle<()>,
}

impl EventStream {
    /// Lists `path` for a resourceVersion, then watches `path` from it.
    async fn open(c: &H2, path: &str) -> Result<EventStream> {
        let v: Value = serde_json::from_slice(&c.get(path).await?)?;
        let rv = v["metadata"]["resourceVersion"].as_str().unwrap_or("0");
        let sep = if path.contains('?') { '&' } else { '?' };
        let watch = format!("{path}{sep}watch=true&resourceVersion={rv}&timeoutSeconds=1800");
        let resp = c.start("GET", &watch, Bytes::new()).await?;
        if resp.status() != 200 {
            bail!("watch {watch}: {}", resp.status());
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut body = resp.into_body();
            let mut buf: Vec<u8> = Vec::new();
            while let Some(f) = body.frame().await {
                let Ok(f) = f else { break };
                let Ok(data) = f.into_data() else { continue };
                let now = Instant::now();
                buf.extend_from_slice(&data);
                let mut start = 0;
                while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
                    if let Ok(ev) = serde_json::from_slice::<Value>(&buf[start..start + nl]) {
                        if tx.send((now, ev)).is_err() {
                            return;
                        }
                    }
                    start += nl + 1;
                }
                buf.drain(..start);
            }
        });
        Ok(EventStream { rx, reader })
    }

    /// The next event; None once `until` passed or the watch ended.
    async fn next_until(&mut self, until: Instant) -> Option<(Instant, Value)> {
        let left = until.saturating_duration_since(Instant::now());
        tokio::time::timeout(left, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Drops the events received so far.
    fn drain(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Per pod name, when the pod watch first showed it bound and Running, and which pods it
/// saw deleted.
#[derive(Default)]
struct PodTimes {
    bound: std::collections::HashMap<String, Instant>,
    running: std::collections::HashMap<String, Instant>,
    deleted: std::collections::HashSet<String>,
    /// Every pod uid seen (their pod cgroups are removed after the teardown).
    uids: std::collections::HashSet<String>,
}

impl PodTimes {
    fn record(&mut self, at: Instant, ev: &Value) {
        let o = &ev["object"];
        let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
        if let Some(uid) = o["metadata"]["uid"].as_str() {
            self.uids.insert(uid.to_string());
        }
        if ev["type"] == "DELETED" {
            self.deleted.insert(name);
            return;
        }
        if o["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        {
            self.bound.entry(name.clone()).or_insert(at);
        }
        if o["status"]["phase"] == "Running" {
            self.running.entry(name).or_insert(at);
        }
    }

    /// Reads `w` into `self` until `done` holds; false when `limit` passed first.
    async fn pump(
        &mut self,
        w: &mut EventStream,
        limit: Duration,
        done: impl Fn(&PodTimes) -> bool,
    ) -> bool {
        let until = Instant::now() + limit;
        while !done(self) {
            match w.next_until(until).await {
                Some((at, ev)) => self.record(at, &ev),
                None => return false,
            }
        }
        true
    }
}

/// The raw-CRI floor: starts pods directly against an agent's containerd, with the sandbox
/// and container configs that the kubelet's own translation (`node::podspec`) makes from
/// the same manifest. Differences from the kubelet: no volumes (the kubelet adds the
/// service-account token, /etc/hosts and termination-log mounts), no environment, and no
/// `io.kubernetes.pod.uid` label, so that the agent's relist ignores these pods (it would
/// otherwise tear them down as pods unknown to the API).
#[derive(Clone)]
struct Floor {
    rt: node::cri::GrpcRuntime,
    logs: PathBuf,
    node: String,
    node_ip: String,
    image_id: String,
    image_uid: Option<i64>,
    image_user: String,
    /// Sandboxes (and their pod cgroup parents) created so far, for `cleanup`.
    created: Arc<Mutex<Vec<(String, String)>>>,
}

/// One floor pod: the three calls, timed.
struct FloorPod {
    total: Duration,
    run: Duration,
    create: Duration,
    start: Duration,
}

impl Floor {
    async fn new(agent_dir: &Path, node: String, node_ip: String) -> Result<Floor> {
        use node::cri::Runtime;
        let socket = node::containerd::ContainerdPaths::under(agent_dir).socket;
        let rt = node::cri::GrpcRuntime::connect(&socket)
            .await
            .with_context(|| format!("connecting to {}", socket.display()))?;
        let img = rt
            .image_status(BUSYBOX)
            .await?
            .ok_or_else(|| anyhow!("{BUSYBOX} is not present on {node}"))?;
        Ok(Floor {
            rt,
            logs: node::kubelet::KubeletPaths::under(agent_dir).logs,
            node,
            node_ip,
            image_id: img.id,
            image_uid: img.uid.map(|u| u.value),
            image_user: img.username,
            created: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// RunPodSandbox + CreateContainer + StartContainer for one pod (network=POD, so
    /// containerd runs the agent's CNI config).
    async fn start_pod(&self, name: &str, uid: &str) -> Result<FloorPod> {
        use node::cri::Runtime;
        use node::podspec;
        let mut v = start_pod(name, &self.node);
        v["metadata"]["namespace"] = json!("default");
        v["metadata"]["uid"] = json!(uid);
        v["spec"]["nodeName"] = json!(self.node);
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(v)?;
        let ctx = podspec::PodContext::new(&pod, &self.node, &self.node_ip, &[], &self.logs);
        let mut sandbox = podspec::sandbox_config(&ctx, 0)?;
        sandbox.labels.remove(node::labels::POD_UID);
        let c = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .context("pod without a container")?;
        let image = podspec::ResolvedImage {
            image_ref: &self.image_id,
            uid: self.image_uid,
            username: &self.image_user,
        };
        let mut config = podspec::container_config(
            &ctx,
            c,
            podspec::ContainerKind::App,
            0,
            Vec::new(),
            Vec::new(),
            &image,
        )?;
        config.labels.remove(node::labels::POD_UID);
        std::fs::create_dir_all(ctx.log_dir.join(&c.name))?;
        let t0 = Instant::now();
        let id = self.rt.run_pod_sandbox(sandbox.clone()).await?;
        let t1 = Instant::now();
        self.created
            .lock()
            .unwrap()
            .push((id.clone(), ctx.cgroup_parent.clone()));
        let cid = self.rt.create_container(&id, config, sandbox).await?;
        let t2 = Instant::now();
        self.rt.start_container(&cid).await?;
        let t3 = Instant::now();
        Ok(FloorPod {
            total: t3 - t0,
            run: t1 - t0,
            create: t2 - t1,
            start: t3 - t2,
        })
    }

    /// Stops and removes every sandbox made so far (their containers go with them), then
    /// removes their (empty) pod cgroups. Returns (sandboxes, failures, time taken).
    async fn cleanup(&self) -> (usize, usize, Duration) {
        use node::cri::Runtime;
        let created = std::mem::take(&mut *self.created.lock().unwrap());
        let t = Instant::now();
        let mut failed = 0;
        for (id, _) in &created {
            let stopped = self.rt.stop_pod_sandbox(id).await;
            let removed = self.rt.remove_pod_sandbox(id).await;
            if stopped.is_err() || removed.is_err() {
                failed += 1;
            }
        }
        let took = t.elapsed();
        for (_, cgroup) in &created {
            remove_pod_cgroup(cgroup);
        }
        (created.len(), failed, took)
    }

    /// Sandboxes of the kubelet's pods (those with a pod uid label) still in the runtime.
    async fn kubelet_sandboxes(&self) -> Result<usize> {
        use node::cri::Runtime;
        Ok(self
            .rt
            .list_pod_sandboxes()
            .await?
            .iter()
            .filter(|s| s.labels.contains_key(node::labels::POD_UID))
            .count())
    }
}

/// rmdir of `/sys/fs/cgroup/<hierarchy>/<cgroup>` in every v1 hierarchy (only empty
/// cgroups can be removed; the floor's pod uids are unique to this run).
fn remove_pod_cgroup(cgroup: &str) {
    let rel = cgroup.trim_start_matches('/');
    if !rel.contains("/pod") {
        return;
    }
    for e in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = e.path().join(rel);
        if p.is_dir() {
            let _ = std::fs::remove_dir(&p);
        }
    }
}

/// Starts `names` through the floor, `concurrency` at a time (1 or all); per-pod results
/// in order of completion.
async fn floor_run(floor: &Floor, names: &[String], all_at_once: bool) -> Result<Vec<FloorPod>> {
    let run_id = std::process::id();
    let uid = |n: &str| format!("bench-floor-{run_id}-{n}");
    let mut out = Vec::new();
    if !all_at_once {
        for n in names {
            out.push(floor.start_pod(n, &uid(n)).await?);
        }
        return Ok(out);
    }
    let mut js = tokio::task::JoinSet::new();
    for n in names {
        let (f, n, u) = (floor.clone(), n.clone(), uid(n));
        js.spawn(async move { f.start_pod(&n, &u).await });
    }
    while let Some(r) = js.join_next().await {
        out.push(r??);
    }
    Ok(out)
}

/// Creates `names` through the API, one at a time (each Running before the next is sent)
/// or all at once; returns when each POST was sent. The watch records Running.
async fn kubelet_run(
    api: &H2,
    w: &mut EventStream,
    times: &mut PodTimes,
    names: &[String],
    node: &str,
    all_at_once: bool,
) -> Result<Vec<(String, Instant)>> {
    async fn create(api: H2, name: String, node: String) -> Result<(String, Instant)> {
        let body = Bytes::from(start_pod(&name, &node).to_string());
        let sent = Instant::now();
        let (st, b) = api
            .req("POST", "/api/v1/namespaces/default/pods", body)
            .await?;
        if st != 201 {
            bail!("create pod {name}: {st}: {}", String::from_utf8_lossy(&b));
        }
        Ok((name, sent))
    }
    let limit = Duration::from_secs(120);
    let mut sent = Vec::new();
    if !all_at_once {
        for n in names {
            sent.push(create(api.clone(), n.clone(), node.to_string()).await?);
            if !times.pump(w, limit, |t| t.running.contains_key(n)).await {
                bail!("pod {n} not seen Running within {limit:?}");
            }
        }
        return Ok(sent);
    }
    let mut js = tokio::task::JoinSet::new();
    for n in names {
        js.spawn(create(api.clone(), n.clone(), node.to_string()));
    }
    while let Some(r) = js.join_next().await {
        sent.push(r??);
    }
    if !times
        .pump(w, limit, |t| {
            names.iter().all(|n| t.running.contains_key(n))
        })
        .await
    {
        let n = names
            .iter()
            .filter(|n| times.running.contains_key(*n))
            .count();
        bail!(
            "only {n}/{} pods seen Running within {limit:?}",
            names.len()
        );
    }
    Ok(sent)
}

/// Deletes the pods `names` and waits until the API and the runtime no longer hold them.
async fn delete_pods(
    api: &H2,
    w: &mut EventStream,
    times: &mut PodTimes,
    names: &[String],
    floor: &Floor,
) -> Result<Duration> {
    let t = Instant::now();
    for n in names {
        let (st, b) = api
            .req(
                "DELETE",
                &format!("/api/v1/namespaces/default/pods/{n}"),
                Bytes::new(),
            )
            .await?;
        if st != 200 && st != 202 {
            bail!("delete pod {n}: {st}: {}", String::from_utf8_lossy(&b));
        }
    }
    let limit = Duration::from_secs(90);
    if !times
        .pump(w, limit, |t| names.iter().all(|n| t.deleted.contains(n)))
        .await
    {
        bail!("pods not deleted within {limit:?}");
    }
    let until = Instant::now() + Duration::from_secs(60);
    while floor.kubelet_sandboxes().await? > 0 {
        if Instant::now() > until {
            bail!("the kubelet's sandboxes were not removed within 60 s of the pods' deletion");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(t.elapsed())
}

/// The `containerd` child of process `ppid`.
fn child_named(ppid: u32, comm: &str) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let name = head.split_once(" (").map(|x| x.1).unwrap_or("");
        let parent = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if name == comm && parent == Some(ppid) {
            return Some(pid);
        }
    }
    None
}

/// The pid of host `i`'s `minik8s` process (the harness runs it through `nsenter`, which
/// execs it in place).
fn minik8s_pid(cluster: &Cluster, i: usize) -> Result<u32> {
    let pid = cluster
        .pid(i)
        .ok_or_else(|| anyhow!("host {i} runs nothing"))?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "minik8s" {
        bail!("pid {pid} of host {i} is `{}`, not minik8s", comm.trim());
    }
    Ok(pid)
}

/// Processes (other than this one) whose command line mentions `dir`.
fn processes_under(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    let me = std::process::id();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(&needle) {
            out.push(pid);
        }
    }
    out
}

/// Mount points under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix) || *m == prefix.trim_end_matches('/'))
        .map(str::to_string)
        .collect()
}

fn fmt_ms_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Figures 9 (pod startup against the raw-CRI floor), 10 (agent idle RSS with 30 pods)
/// and 11 (agent start to Node Ready).
async fn fig_node(cfg: &Cfg, rep: &mut Report) -> Result<()> {
    if !blocking(e2e::cluster::netns_prerequisites) {
        rep.note("9-11: skipped (the multi-host harness needs root, kubectl, ip, nsenter, containerd, runc and /usr/lib/cni)");
        return Ok(());
    }
    eprintln!("[9-11] starting a cluster: server (--disable-agent) + 2 agents, each host in its own network namespace");
    let t = Instant::now();
    let mut cluster = blocking(|| Cluster::start(ClusterOpts::agents(2)))?;
    rep.note(format!(
        "9-11: cluster mk{} (server + 2 agents) up and Ready in {:.1} s",
        cluster.id(),
        t.elapsed().as_secs_f64()
    ));
    let mut uids = Vec::new();
    let res = fig_node_in(cfg, rep, &mut cluster, &mut uids).await;
    if res.is_err() {
        eprintln!("{}", cluster.log_tails(20));
    }
    if let Err(e) = blocking(|| cluster.shutdown()) {
        rep.note(format!("9-11: teardown: {e:#}"));
    }
    // The harness cannot attribute the pod cgroups of pods whose containers were already
    // gone (the pods deleted in figure 9); the bench knows their uids.
    for uid in &uids {
        for qos in ["", "burstable/", "besteffort/"] {
            remove_pod_cgroup(&format!("/kubepods/{qos}pod{uid}"));
        }
    }
    res
}

async fn fig_node_in(
    cfg: &Cfg,
    rep: &mut Report,
    cluster: &mut Cluster,
    uids: &mut Vec<String>,
) -> Result<()> {
    let tls = admin_tls(&cluster.kubeconfig())?;
    let api = H2::connect_in(
        &cluster.netns_path(0),
        cluster.host_ip(0),
        e2e::cluster::API_PORT,
        tls,
    )
    .await?;
    if cfg.wants(9) || cfg.wants(10) {
        fig_pods(cfg, rep, cluster, &api, uids).await?;
    }
    if cfg.wants(11) {
        fig_agent_start(cfg, rep, cluster, &api).await?;
    }
    Ok(())
}

/// The kubelet and floor latencies of one phase, as rows and a note.
#[allow(clippy::too_many_arguments)]
fn pod_rows(
    rep: &mut Report,
    label: &str,
    how: &str,
    floor: &[FloorPod],
    sent: &[(String, Instant)],
    times: &PodTimes,
    cpu_floor: &str,
    cpu_kubelet: &str,
) {
    let fl = lat(floor.iter().map(|p| ms(p.total)).collect());
    let mut total = Vec::new();
    let mut to_bound = Vec::new();
    let mut bound_to_running = Vec::new();
    for (n, s) in sent {
        if let Some(r) = times.running.get(n) {
            total.push(ms(r.saturating_duration_since(*s)));
            if let Some(b) = times.bound.get(n) {
                to_bound.push(ms(b.saturating_duration_since(*s)));
                bound_to_running.push(ms(r.saturating_duration_since(*b)));
            }
        }
    }
    let n = sent.len();
    let kl = lat(total);
    let (r50, r99) = (kl.p50 / fl.p50, kl.p99 / fl.p99);
    rep.row(
        format!("9{label}. Floor: raw CRI RunPodSandbox + CreateContainer + StartContainer, {how}, n={n}"),
        fmt_lat(&fl),
        "(floor)",
        "1.00× floor",
        None,
    );
    rep.row(
        format!("9{label}. Pod startup through the API, {how}, n={n}: create sent → Running seen on a watch"),
        fmt_lat(&kl),
        "p50 < 1 s, p99 < 2 s; ≤ 1.5× floor",
        format!("p50 {r50:.2}× floor, p99 {r99:.2}× floor"),
        Some(kl.p50 < 1000.0 && kl.p99 < 2000.0 && r50 <= 1.5 && r99 <= 1.5),
    );
    let part = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    rep.note(format!(
        "9{label} ({how}): floor per call, mean: RunPodSandbox {:.0} ms, CreateContainer {:.0} ms, StartContainer {:.0} ms (max total {:.0} ms); \
         API path: create → bound {}, bound → Running {} (max total {:.0} ms); floor {cpu_floor}; API path {cpu_kubelet}{}",
        part(&floor.iter().map(|p| ms(p.run)).collect::<Vec<_>>()),
        part(&floor.iter().map(|p| ms(p.create)).collect::<Vec<_>>()),
        part(&floor.iter().map(|p| ms(p.start)).collect::<Vec<_>>()),
        fl.max,
        fmt_lat(&lat(to_bound)),
        fmt_lat(&lat(bound_to_running)),
        kl.max,
        if fl.p50 >= 1000.0 || fl.p99 >= 2000.0 {
            "; the floor itself misses the absolute targets (p50 < 1 s, p99 < 2 s)"
        } else {
            ""
        },
    ));
}

async fn fig_pods(
    cfg: &Cfg,
    rep: &mut Report,
    cluster: &mut Cluster,
    api: &H2,
    uids: &mut Vec<String>,
) -> Result<()> {
    let n = cfg.node_pods;
    let node = cluster.node_name(POD_HOST);
    let agent_dir = cluster.data_dir(POD_HOST).join("agent");
    let agent = minik8s_pid(cluster, POD_HOST)?;
    let server = minik8s_pid(cluster, 0)?;
    let containerd = child_named(agent, "containerd")
        .ok_or_else(|| anyhow!("no containerd child of the agent (pid {agent})"))?;
    // Pods need the default ServiceAccount.
    let until = Instant::now() + Duration::from_secs(30);
    while api
        .req(
            "GET",
            "/api/v1/namespaces/default/serviceaccounts/default",
            Bytes::new(),
        )
        .await?
        .0
        != 200
    {
        if Instant::now() > until {
            bail!("default ServiceAccount not created within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let floor = Floor::new(
        &agent_dir,
        node.clone(),
        cluster.host_ip(POD_HOST).to_string(),
    )
    .await?;
    let mut w = EventStream::open(
        api,
        &format!(
            "/api/v1/namespaces/default/pods?labelSelector={}",
            urlencode(POD_SELECTOR)
        ),
    )
    .await?;
    let mut times = PodTimes::default();
    let res = fig_pods_in(
        cfg,
        rep,
        api,
        &mut w,
        &mut times,
        &floor,
        &node,
        [agent, server, containerd],
    )
    .await;
    uids.extend(times.uids.iter().cloned());
    let (k, failed, _) = floor.cleanup().await;
    if failed > 0 {
        rep.note(format!("9: {failed} of {k} floor sandboxes could not be stopped/removed (left to the teardown)"));
    }
    res?;
    if cfg.wants(10) {
        eprintln!("[10] agent idle RSS with {n} pods running");
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (rss, hwm) = rss_kib(agent)?;
        let (crss, _) = rss_kib(containerd).unwrap_or((0, 0));
        let running = {
            let v: Value = serde_json::from_slice(
                &api.get(&format!(
                    "/api/v1/namespaces/default/pods?labelSelector={}",
                    urlencode(POD_SELECTOR)
                ))
                .await?,
            )?;
            v["items"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|p| p["status"]["phase"] == "Running")
                        .count()
                })
                .unwrap_or(0)
        };
        let mib = rss as f64 / 1024.0;
        rep.row(
            format!("10. Agent idle RSS, {running} pods running, 10 s idle (`minik8s agent` process only)"),
            format!("{mib:.1} MiB (peak {:.1} MiB)", hwm as f64 / 1024.0),
            "< 30 MiB",
            format!("{:.2}× target", mib / 30.0),
            Some(mib < 30.0 && running == n),
        );
        rep.note(format!(
            "10: VmRSS of the agent pid {agent} from /proc/PID/status; its containerd (pid {containerd}, not counted): {:.1} MiB; shims not counted",
            crss as f64 / 1024.0
        ));
    }
    Ok(())
}

/// CPU time of a few processes, summed over the segments between `begin` and `end`
/// (shims and runc are separate, short-lived processes and are not included).
struct CpuAcc {
    pids: Vec<(&'static str, u32)>,
    mark: Vec<f64>,
    used: Vec<f64>,
    machine_mark: (u64, u64),
    machine: (u64, u64),
}

/// (busy, total) jiffies of the whole machine, from the first line of /proc/stat.
fn machine_jiffies() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

impl CpuAcc {
    fn new(pids: &[(&'static str, u32)]) -> CpuAcc {
        CpuAcc {
            pids: pids.to_vec(),
            mark: vec![0.0; pids.len()],
            used: vec![0.0; pids.len()],
            machine_mark: (0, 0),
            machine: (0, 0),
        }
    }
    fn begin(&mut self) {
        for (m, (_, p)) in self.mark.iter_mut().zip(&self.pids) {
            *m = cpu_secs(&p.to_string());
        }
        self.machine_mark = machine_jiffies();
    }
    fn end(&mut self) {
        for ((u, m), (_, p)) in self.used.iter_mut().zip(&self.mark).zip(&self.pids) {
            *u += cpu_secs(&p.to_string()) - m;
        }
        let (b, t) = machine_jiffies();
        self.machine.0 += b.saturating_sub(self.machine_mark.0);
        self.machine.1 += t.saturating_sub(self.machine_mark.1);
    }
    /// "CPU per pod: agent X ms, …; machine Y% busy".
    fn per_pod(&self, pods: usize) -> String {
        let parts: Vec<String> = self
            .pids
            .iter()
            .zip(&self.used)
            .map(|((n, _), u)| format!("{n} {:.0} ms", u * 1000.0 / pods.max(1) as f64))
            .collect();
        format!(
            "CPU per pod: {}; machine {:.0}% busy (all processes)",
            parts.join(", "),
            100.0 * self.machine.0 as f64 / self.machine.1.max(1) as f64
        )
    }
}

#[allow(clippy::too_many_arguments)]
async fn fig_pods_in(
    cfg: &Cfg,
    rep: &mut Report,
    api: &H2,
    w: &mut EventStream,
    times: &mut PodTimes,
    floor: &Floor,
    node: &str,
    [agent, server, containerd]: [u32; 3],
) -> Result<()> {
    let n = cfg.node_pods;
    let api_pids = [
        ("agent", agent),
        ("containerd", containerd),
        ("server", server),
    ];
    let floor_pids = [("containerd", containerd)];
    let names =
        |prefix: &str| -> Vec<String> { (0..n).map(|i| format!("{prefix}-{i:02}")).collect() };
    if !cfg.wants(9) {
        // Figure 10 alone: start the pods it measures.
        kubelet_run(api, w, times, &names("startb"), node, true).await?;
        return Ok(());
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    rep.note(format!(
        "9: load average before the figure (1, 5, 15 min): {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // Warm-up, not counted: one pod each way (the first sandbox on a node also creates
    // the CNI bridge).
    let warm = vec!["warm".to_string()];
    floor_run(floor, &warm, false).await?;
    floor.cleanup().await;
    kubelet_run(api, w, times, &warm, node, false).await?;
    delete_pods(api, w, times, &warm, floor).await?;

    // 9a: one pod at a time, floor and API pods interleaved (floor pod i, then API pod i,
    // each started only when the previous one runs), so that both see the same number of
    // running pods and the same background load.
    eprintln!("[9a] pod startup, one at a time: raw CRI floor and API pods interleaved");
    let how = "one at a time".to_string();
    let (fnames, knames) = (names("floora"), names("starta"));
    let (mut cf, mut ck) = (CpuAcc::new(&floor_pids), CpuAcc::new(&api_pids));
    let mut fl = Vec::new();
    let mut sent = Vec::new();
    for (f, k) in fnames.iter().zip(&knames) {
        cf.begin();
        fl.extend(floor_run(floor, std::slice::from_ref(f), false).await?);
        cf.end();
        ck.begin();
        sent.extend(kubelet_run(api, w, times, std::slice::from_ref(k), node, false).await?);
        ck.end();
    }
    pod_rows(
        rep,
        "a",
        &how,
        &fl,
        &sent,
        times,
        &cf.per_pod(n),
        &ck.per_pod(n),
    );
    let (k, failed, took) = floor.cleanup().await;
    if failed > 0 {
        bail!("{failed} of {k} floor sandboxes could not be removed");
    }
    let del = delete_pods(api, w, times, &knames, floor).await?;
    rep.note(format!(
        "9a: floor cleanup (stop + remove {k} sandboxes) {:.1} s; deleting the {n} API pods until gone from the API and the runtime {:.1} s",
        took.as_secs_f64(),
        del.as_secs_f64()
    ));

    // 9b: all pods at once, the floor first (then removed), then the API pods (which stay
    // for figure 10).
    let how = format!("all {n} at once");
    eprintln!("[9b] pod startup, {how}: raw CRI floor, then through the API");
    let (mut cf, mut ck) = (CpuAcc::new(&floor_pids), CpuAcc::new(&api_pids));
    cf.begin();
    let fl = floor_run(floor, &names("floorb"), true).await?;
    cf.end();
    let (k, failed, _) = floor.cleanup().await;
    if failed > 0 {
        bail!("{failed} of {k} floor sandboxes could not be removed");
    }
    ck.begin();
    let sent = kubelet_run(api, w, times, &names("startb"), node, true).await?;
    ck.end();
    pod_rows(
        rep,
        "b",
        &how,
        &fl,
        &sent,
        times,
        &cf.per_pod(n),
        &ck.per_pod(n),
    );
    Ok(())
}

/// Figure 11: the agent of h2 stopped (SIGTERM; it stops its containerd) and started
/// again, on a fresh data dir and on its existing one; start → Node Ready seen on a watch.
async fn fig_agent_start(
    cfg: &Cfg,
    rep: &mut Report,
    cluster: &mut Cluster,
    api: &H2,
) -> Result<()> {
    let i = START_HOST;
    let name = cluster.node_name(i);
    eprintln!(
        "[11] agent start → Node Ready on {name}, {} × (fresh data dir, existing data dir)",
        cfg.agent_starts
    );
    let v: Value = serde_json::from_slice(
        &api.get(&format!(
            "/api/v1/pods?fieldSelector={}",
            urlencode(&format!("spec.nodeName={name}"))
        ))
        .await?,
    )?;
    let on_node = v["items"].as_array().map_or(0, |a| a.len());
    if on_node > 0 {
        bail!("{on_node} pods run on {name}; figure 11 needs a node without pods");
    }
    let mut w = EventStream::open(api, "/api/v1/nodes").await?;
    let (mut fresh, mut existing) = (Vec::new(), Vec::new());
    let (mut reg_fresh, mut reg_existing) = (Vec::new(), Vec::new());
    let (mut cidr_fresh, mut cidr_existing) = (Vec::new(), Vec::new());
    let mut stops = Vec::new();
    for _ in 0..cfg.agent_starts {
        for is_fresh in [true, false] {
            let s = agent_start_once(cluster, api, &mut w, i, is_fresh).await?;
            stops.push(ms(s.stopped));
            let cidr = s.cidr.map_or(f64::NAN, ms);
            if is_fresh {
                fresh.push(ms(s.ready));
                reg_fresh.push(ms(s.registered));
                cidr_fresh.push(cidr);
            } else {
                existing.push(ms(s.ready));
                reg_existing.push(ms(s.registered));
                cidr_existing.push(cidr);
            }
        }
    }
    let (mf, me) = (median(fresh.clone()), median(existing.clone()));
    let k = cfg.agent_starts;
    rep.row(
        format!("11a. Agent start → Node Ready, fresh data dir (containerd start, join, base images; median of {k})"),
        format!("{mf:.0} ms (Node created after {:.0} ms)", median(reg_fresh.clone())),
        "< 3 s",
        format!("{:.2}× target", mf / 3000.0),
        Some(mf < 3000.0),
    );
    rep.row(
        format!("11b. Agent start → Node Ready, restart on the existing data dir (median of {k})"),
        format!(
            "{me:.0} ms (Node created after {:.0} ms)",
            median(reg_existing.clone())
        ),
        "< 3 s",
        format!("{:.2}× target", me / 3000.0),
        Some(me < 3000.0),
    );
    rep.note(format!(
        "11: samples (ms) fresh [{}], existing [{}]; Node created at fresh [{}], existing [{}]; \
         podCIDR first seen at fresh [{}], existing [{}]; \
         stopping the agent and its containerd (SIGTERM until both exited) took [{}]",
        fmt_ms_list(&fresh),
        fmt_ms_list(&existing),
        fmt_ms_list(&reg_fresh),
        fmt_ms_list(&reg_existing),
        fmt_ms_list(&cidr_fresh),
        fmt_ms_list(&cidr_existing),
        fmt_ms_list(&stops),
    ));
    Ok(())
}

struct StartSample {
    stopped: Duration,
    /// Start → the Node first seen (created by the agent).
    registered: Duration,
    /// Start → the Node first seen with `spec.podCIDR` (set by the server's node IPAM
    /// controller; the agent's CNI config and so containerd's NetworkReady wait for it).
    cidr: Option<Duration>,
    ready: Duration,
}

fn ready_true(node: &Value) -> bool {
    node["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// One stop + start of agent `i`. The Node object is deleted while the agent is down, so
/// that the Ready condition seen afterwards can only have been written by the new process
/// (otherwise the Node would still show Ready from before the stop).
async fn agent_start_once(
    cluster: &mut Cluster,
    api: &H2,
    w: &mut EventStream,
    i: usize,
    fresh: bool,
) -> Result<StartSample> {
    let name = cluster.node_name(i);
    let data = cluster.data_dir(i);
    let t = Instant::now();
    blocking(|| cluster.stop_agent(i))?;
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let left = processes_under(&data);
        if left.is_empty() {
            break;
        }
        if Instant::now() > until {
            bail!("processes {left:?} of {name} still run 15 s after the agent stopped");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = t.elapsed();
    if fresh {
        let m = mounts_under(&data);
        if !m.is_empty() {
            bail!("mounts left under {}: {m:?}", data.display());
        }
        std::fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
        std::fs::create_dir_all(&data)?;
    }
    let (st, b) = api
        .req("DELETE", &format!("/api/v1/nodes/{name}"), Bytes::new())
        .await?;
    match st {
        200 | 202 => {
            let until = Instant::now() + Duration::from_secs(30);
            loop {
                let Some((_, ev)) = w.next_until(until).await else {
                    bail!("Node {name} not seen deleted within 30 s");
                };
                if ev["type"] == "DELETED" && ev["object"]["metadata"]["name"] == name.as_str() {
                    break;
                }
            }
        }
        404 => {}
        _ => bail!("delete node {name}: {st}: {}", String::from_utf8_lossy(&b)),
    }
    // Let the controllers finish with the deletion (Lease garbage collection, pod CIDR).
    tokio::time::sleep(Duration::from_secs(1)).await;
    w.drain();
    let t0 = Instant::now();
    blocking(|| cluster.start_agent(i))?;
    let until = t0 + Duration::from_secs(60);
    let mut registered = None;
    let mut cidr = None;
    loop {
        let poll = (Instant::now() + Duration::from_millis(500)).min(until);
        match w.next_until(poll).await {
            Some((at, ev)) => {
                if ev["object"]["metadata"]["name"] != name.as_str() || ev["type"] == "DELETED" {
                    continue;
                }
                let reg = *registered.get_or_insert(at);
                if ev["object"]["spec"]["podCIDR"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
                {
                    cidr.get_or_insert(at - t0);
                }
                if ready_true(&ev["object"]) {
                    return Ok(StartSample {
                        stopped,
                        registered: reg - t0,
                        cidr,
                        ready: at - t0,
                    });
                }
            }
            None => {
                if Instant::now() >= until {
                    bail!("Node {name} not Ready within 60 s of the agent's start");
                }
                if w.reader.is_finished() {
                    bail!("the node watch ended");
                }
                if !blocking(|| cluster.is_running(i)) {
                    bail!("the agent of {name} exited after its start");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------

fn parse_args() -> Result<Cfg> {
    let mut quick = false;
    let mut keep = false;
    let mut only = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--keep" => keep = true,
            "--only" => {
                let v = it.next().context("--only needs a list like 1,3")?;
                only = Some(
                    v.split(',')
                        .map(|s| s.trim().parse())
                        .collect::<Result<Vec<u32>, _>>()?,
                );
            }
            "-h" | "--help" => {
                println!(
                    "usage: bench [--quick] [--keep] [--only 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let minik8s = match std::env::var_os("MINIK8S_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            eprintln!("building minik8s (cargo build --release -p minik8s)…");
            let st = Command::new(cargo)
                .args(["build", "--release", "-p", "minik8s"])
                .current_dir(&root)
                .status()?;
            if !st.success() {
                bail!("building minik8s failed");
            }
            root.join("target/release/minik8s")
        }
    };
    let help = Command::new(&minik8s).args(["server", "--help"]).output()?;
    let help = String::from_utf8_lossy(&help.stdout);
    let mut api_only_flags: Vec<String> = ["--disable-controllers", "--disable-scheduler"]
        .iter()
        .filter(|f| help.contains(*f))
        .map(|f| f.to_string())
        .collect();
    // Without the controllers nothing creates the `default` ServiceAccount that
    // ServiceAccount admission requires of pods (figures 4 and 5 create pods), and the
    // projected token volume it adds would change the pods' size from earlier runs.
    if help.contains("--disable-admission-plugins") && !api_only_flags.is_empty() {
        api_only_flags.push("--disable-admission-plugins=ServiceAccount".into());
    }
    let etcd = std::env::var_os("ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/etcd".into());
    Ok(Cfg {
        quick,
        keep,
        only,
        minik8s,
        etcd,
        creates: if quick { 1000 } else { 4000 },
        pods: if quick { 2000 } else { 10_000 },
        watchers: 1000,
        watch_writes: if quick { 10 } else { 20 },
        sched_nodes: 1000,
        sched_pods: if quick { 2000 } else { 10_000 },
        deploy_nodes: 100,
        deploy_replicas: 1000,
        node_pods: 30,
        agent_starts: if quick { 3 } else { 5 },
        net_services: 1000,
        api_only_flags,
    })
}

async fn run(cfg: &Cfg, rep: &mut Report) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("minik8s-bench-")
        .tempdir()?;
    let t = tmp.path().to_path_buf();
    let t = t.as_path();
    // The directory is removed when `tmp` drops, unless it is kept.
    let _tmp = if cfg.keep {
        eprintln!("keeping {} (--keep)", tmp.keep().display());
        None
    } else {
        Some(tmp)
    };
    if cfg.wants(1) || cfg.wants(2) {
        fig_rss_and_startup(cfg, t, rep).await?;
    }
    if cfg.wants(3) {
        fig_creates(cfg, t, rep).await?;
    }
    if cfg.wants(4) {
        fig_list(cfg, t, rep).await?;
    }
    if cfg.wants(5) {
        fig_watch(cfg, t, rep).await?;
    }
    if cfg.wants(6) || cfg.wants(8) {
        fig_scheduler(cfg, t, rep).await?;
    }
    if cfg.wants(7) {
        fig_deployment(cfg, t, rep).await?;
    }
    if cfg.wants(9) || cfg.wants(10) || cfg.wants(11) {
        fig_node(cfg, rep).await?;
    }
    if cfg.wants(12) || cfg.wants(13) {
        net::fig_net(cfg, rep).await?;
    }
    if cfg.wants(14) || cfg.wants(15) {
        auth::fig_auth(cfg, t, rep).await?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if net::is_probe(&argv) {
        return net::probe_main(&argv[2..]);
    }
    let cfg = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rep = Report::default();
    let started = Instant::now();
    let res = rt.block_on(async {
        tokio::select! {
            r = run(&cfg, &mut rep) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    // Any remaining child processes were killed when `run` was dropped.
    rt.shutdown_timeout(Duration::from_secs(2));
    let sys = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    rep.note(format!(
        "machine: {} CPUs ({sys}); bench client runs on the same machine; total bench time {:.0} s",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        started.elapsed().as_secs_f64()
    ));
    rep.print(&cfg);
    res
}
