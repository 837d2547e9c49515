//! End-to-end tests: real kubectl against a real minik8s server.
//!
//! The harness starts real processes and cleans them up by pid on drop (also when a test
//! panics):
//!
//! * [`Etcd`]: an etcd 3.4 on free loopback ports with a temporary data directory.
//! * [`Server`]: the `minik8s server` binary (`MINIK8S_BIN`, default
//!   `<workspace>/target/release/minik8s`) on a free port with a temporary data directory,
//!   over the embedded store or an etcd; it can be `kill -9`ed and restarted on the same
//!   data directory.
//! * [`Kubectl`]: runs the real `kubectl` with `KUBECONFIG` set and a fresh `HOME` (so a
//!   fresh discovery/HTTP cache) per instance.
//! * [`ApiClient`]: a tiny blocking HTTPS client authenticating with the admin client
//!   certificate from a kubeconfig, for bursts of raw requests where spawning kubectl is
//!   too slow.
//!
//! Tests call [`prerequisites`] first: when not root or when `kubectl` is missing they
//! print a `SKIP:` line and return, unless the environment variable `CI` is set, in which
//! case they fail. Children get `PR_SET_PDEATHSIG=SIGKILL`, so they also die if the test
//! thread that started them dies without running destructors.

pub mod cluster;

use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a process may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one kubectl invocation.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e crate lives in the workspace")
        .to_path_buf()
}

/// The minik8s binary under test. Panics with instructions when it is not built.
pub fn minik8s_bin() -> PathBuf {
    let p = std::env::var_os("MINIK8S_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/release/minik8s"));
    if !p.is_file() {
        panic!(
            "minik8s binary not found at {}: run `cargo build --release -p minik8s` first \
             (or point MINIK8S_BIN at a built binary)",
            p.display()
        );
    }
    p
}

fn on_path(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

fn skip_or_fail(reason: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("e2e prerequisite missing (CI is set, so this is a failure): {reason}");
    }
    eprintln!("SKIP: {reason} (set CI=1 to make this a failure)");
    false
}

/// Whether the end-to-end tests can run here: root and `kubectl` on PATH. Prints a
/// `SKIP:` line and returns false when not, or panics when `CI` is set. Also checks that
/// the binary under test is built (always a failure).
pub fn prerequisites() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip_or_fail("e2e tests need root");
    }
    if on_path("kubectl").is_none() {
        return skip_or_fail("kubectl is not on PATH");
    }
    minik8s_bin();
    true
}

/// Like [`prerequisites`], plus an `etcd` binary (env `ETCD_BIN`, `/usr/bin/etcd` or PATH).
pub fn etcd_prerequisites() -> bool {
    prerequisites() && (etcd_bin().is_some() || skip_or_fail("etcd is not installed"))
}

fn etcd_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ETCD_BIN") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from("/usr/bin/etcd");
    if p.is_file() {
        return Some(p);
    }
    on_path("etcd")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral loopback port")
}

/// Spawns `cmd` so that it dies with the spawning thread, logging to `log` (appended).
fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    cmd.stdin(Stdio::null()).stdout(f.try_clone()?).stderr(f);
    set_pdeathsig(cmd);
    cmd.spawn().with_context(|| format!("spawning {cmd:?}"))
}

fn set_pdeathsig(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; it runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill(); // SIGKILL by pid
        let _ = c.wait();
    }
}

/// The last `n` lines of a log file, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One plain-HTTP GET over loopback (for etcd's /health). Returns the whole response.
fn http_get_plain(port: u16, path: &str) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// An etcd on loopback with a temporary data directory; killed on drop.
pub struct Etcd {
    dir: tempfile::TempDir,
    client_port: u16,
    child: Option<Child>,
}

impl Etcd {
    /// Starts etcd and waits until `/health` says healthy.
    pub fn start() -> Result<Etcd> {
        let bin = etcd_bin().context("no etcd binary")?;
        let mut last_err = anyhow!("etcd did not start");
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new().prefix("e2e-etcd-").tempdir()?;
            let (cp, pp) = (free_port(), free_port());
            let client = format!("http://127.0.0.1:{cp}");
            let peer = format!("http://127.0.0.1:{pp}");
            let mut cmd = Command::new(&bin);
            cmd.arg("--name=e2e")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls={client}"))
                .arg(format!("--advertise-client-urls={client}"))
                .arg(format!("--listen-peer-urls={peer}"))
                .arg(format!("--initial-advertise-peer-urls={peer}"))
                .arg(format!("--initial-cluster=e2e={peer}"))
                .arg("--log-level=warn");
            let log = dir.path().join("etcd.log");
            let child = spawn_logged(&mut cmd, &log)?;
            let mut etcd = Etcd {
                dir,
                client_port: cp,
                child: Some(child),
            };
            match etcd.wait_healthy() {
                Ok(()) => return Ok(etcd),
                Err(e) => last_err = e.context(log_tail(&log, 20)),
            }
        }
        Err(last_err)
    }

    fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("etcd exited early: {st}");
            }
            if let Ok(r) = http_get_plain(self.client_port, "/health") {
                if r.contains("\"health\":\"true\"") {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("etcd not healthy after {READY_TIMEOUT:?}")
    }

    /// `http://127.0.0.1:PORT`, for `--datastore-endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// etcd's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

/// How to run a [`Server`].
#[derive(Debug, Clone, Default)]
pub struct ServerOpts {
    /// `--datastore-endpoint`; `None` for the embedded store.
    pub datastore_endpoint: Option<String>,
    /// Extra command-line arguments.
    pub extra_args: Vec<String>,
}

impl ServerOpts {
    pub fn embedded() -> Self {
        ServerOpts::default()
    }
    pub fn etcd(etcd: &Etcd) -> Self {
        ServerOpts {
            datastore_endpoint: Some(etcd.endpoint()),
            ..Default::default()
        }
    }
}

/// A running `minik8s server` with its own data directory; killed on drop.
pub struct Server {
    dir: tempfile::TempDir,
    port: u16,
    opts: ServerOpts,
    child: Option<Child>,
}

impl Server {
    /// Starts the server and waits for `/readyz` to answer `ok`.
    pub fn start(opts: ServerOpts) -> Result<Server> {
        let dir = tempfile::Builder::new().prefix("e2e-minik8s-").tempdir()?;
        let mut server = Server {
            dir,
            port: 0,
            opts,
            child: None,
        };
        let mut last = anyhow!("server did not start");
        for _attempt in 0..3 {
            server.port = free_port();
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    kill_child(&mut server.child);
                    // Only a lost race for the port is worth another try.
                    let in_use = format!("{e:#}").contains("Address already in use");
                    last = e;
                    if !in_use {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        let mut cmd = Command::new(minik8s_bin());
        cmd.arg("server")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--bind-address", "127.0.0.1"])
            // Control-plane tests run without a node agent (no containerd); the
            // multi-host cluster harness starts agents of its own.
            .arg("--disable-agent")
            .arg("--https-listen-port")
            .arg(self.port.to_string());
        if let Some(ep) = &self.opts.datastore_endpoint {
            cmd.arg("--datastore-endpoint").arg(ep);
        }
        cmd.args(&self.opts.extra_args);
        cmd.env("RUST_BACKTRACE", "0");
        let log = self.log_path();
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| writeln!(f, "==== e2e: starting server on port {}", self.port));
        self.child = Some(spawn_logged(&mut cmd, &log)?);
        self.wait_ready()
            .with_context(|| format!("server log tail:\n{}", log_tail(&log, 30)))
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("minik8s server exited early: {st}");
            }
            if self.kubeconfig().is_file() {
                match ApiClient::from_kubeconfig(&self.kubeconfig())
                    .and_then(|c| c.request("GET", "/readyz", None, None))
                {
                    Ok(r) if r.status == 200 && r.body_str() == "ok" => return Ok(()),
                    Ok(r) => last = format!("{} {}", r.status, r.body_str()),
                    Err(e) => last = format!("{e:#}"),
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("server not ready after {READY_TIMEOUT:?}: {last}")
    }

    /// The admin kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("kubeconfig.yaml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILL, no shutdown of any kind.
    pub fn kill9(&mut self) {
        kill_child(&mut self.child);
    }

    /// Kills the server if running and starts it again on the same data dir and port.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.spawn_and_wait()
    }

    /// A kubectl bound to this server with a fresh HOME.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(&self.kubeconfig())
    }

    /// A raw HTTPS client with the admin certificate.
    pub fn client(&self) -> ApiClient {
        ApiClient::from_kubeconfig(&self.kubeconfig()).expect("reading the admin kubeconfig")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_child(&mut self.child);
        if std::thread::panicking() {
            eprintln!(
                "---- minik8s server log tail ({}):\n{}",
                self.log_path().display(),
                log_tail(&self.log_path(), 40)
            );
        }
    }
}

/// What one kubectl run produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code; -1 when killed by a signal (e.g. the timeout).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real kubectl against one server, with its own HOME and working directory.
pub struct Kubectl {
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
    editor: Option<PathBuf>,
    envs: Vec<(String, String)>,
    /// A network namespace file: kubectl then runs as `nsenter --net=PATH kubectl ...`.
    netns: Option<PathBuf>,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Kubectl {
        Kubectl {
            kubeconfig: kubeconfig.to_path_buf(),
            home: tempfile::Builder::new()
                .prefix("e2e-kubectl-")
                .tempdir()
                .expect("creating kubectl HOME"),
            editor: None,
            envs: Vec::new(),
            netns: None,
        }
    }

    /// Runs every kubectl of this instance inside the network namespace file `netns`
    /// (e.g. `/run/netns/NAME`), as `nsenter --net=NETNS kubectl ...`.
    pub fn in_netns(mut self, netns: &Path) -> Kubectl {
        self.netns = Some(netns.to_path_buf());
        self
    }

    /// The per-instance HOME, also the working directory (relative `-f` paths).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Writes `content` to HOME/`name` and returns its path.
    pub fn write_file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.home.path().join(name);
        std::fs::write(&p, content).expect("writing test file");
        p
    }

    /// Writes an executable editor script and uses it as `EDITOR`/`KUBE_EDITOR`. The
    /// script gets the file to edit as `$1`.
    pub fn set_editor_script(&mut self, script: &str) -> PathBuf {
        let p = self.write_file("editor.sh", &format!("#!/bin/sh\nset -e\n{script}\n"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        self.editor = Some(p.clone());
        p
    }

    /// Uses `cmd` (e.g. `true`) as the editor.
    pub fn set_editor(&mut self, cmd: &str) {
        self.editor = Some(PathBuf::from(cmd));
    }

    /// An extra environment variable for every run.
    pub fn env(&mut self, k: &str, v: &str) {
        self.envs.push((k.into(), v.into()));
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg("kubectl");
                c
            }
            None => Command::new("kubectl"),
        };
        cmd.args(args)
            .current_dir(self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.home.path())
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .env_remove("KUBE_EDITOR")
            .env_remove("EDITOR");
        if let Some(e) = &self.editor {
            cmd.env("KUBE_EDITOR", e).env("EDITOR", e);
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        set_pdeathsig(&mut cmd);
        cmd
    }

    /// Runs kubectl and returns its exit code and output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, None)
    }

    /// Runs kubectl with `stdin` piped in.
    pub fn with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.run_with(args, Some(stdin))
    }

    fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning kubectl");
        if let Some(input) = stdin {
            let mut si = child.stdin.take().unwrap();
            let input = input.to_string();
            std::thread::spawn(move || {
                let _ = si.write_all(input.as_bytes());
            });
        }
        let out = wait_with_timeout(child, KUBECTL_TIMEOUT);
        if out.code == -1 {
            panic!("kubectl {args:?} timed out or was killed: {out:?}");
        }
        out
    }

    /// Asserts exit code 0 and returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.code,
            0,
            "kubectl {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// Asserts a non-zero exit code and returns stderr.
    #[track_caller]
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_ne!(
            out.code,
            0,
            "kubectl {} unexpectedly succeeded:\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        out.stderr
    }

    /// Starts kubectl in the background, stdout and stderr going to files under HOME.
    pub fn spawn(&self, args: &[&str], name: &str) -> Background {
        let stdout = self.home.path().join(format!("{name}.stdout"));
        let stderr = self.home.path().join(format!("{name}.stderr"));
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        Background {
            child: Some(cmd.spawn().expect("spawning kubectl")),
            stdout,
            stderr,
        }
    }
}

/// A kubectl running in the background (e.g. a watch); killed on drop.
pub struct Background {
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Background {
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
    /// Polls stdout until `pred` holds; returns whether it did within `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.stdout()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    /// Waits for the process to exit by itself within `timeout` (else kills it); returns
    /// its exit code (-1 if killed).
    pub fn finish(&mut self, timeout: Duration) -> i32 {
        let Some(mut c) = self.child.take() else {
            return -1;
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                return -1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

fn wait_with_timeout(mut child: Child, timeout: Duration) -> Output {
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let code = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code().unwrap_or(-1),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break -1;
            }
        }
    };
    Output {
        code,
        stdout: String::from_utf8_lossy(&t1.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&t2.join().unwrap_or_default()).into_owned(),
    }
}

/// A response from [`ApiClient`].
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "status {} body is not JSON: {}",
                self.status,
                self.body_str()
            )
        })
    }
}

/// A minimal blocking HTTPS/1.1 client (one connection per request) using the
/// kubeconfig's CA and client certificate.
#[derive(Clone)]
pub struct ApiClient {
    host: String,
    port: u16,
    config: Arc<rustls::ClientConfig>,
}

impl ApiClient {
    pub fn from_kubeconfig(path: &Path) -> Result<ApiClient> {
        use base64::Engine;
        let text = std::fs::read_to_string(path)?;
        let kc: serde_json::Value = serde_yaml::from_str(&text)?;
        let field = |sect: &str, inner: &str, key: &str| -> Result<String> {
            kc[sect][0][inner][key]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("kubeconfig has no {sect}[0].{inner}.{key}"))
        };
        let b64 = |s: String| -> Result<Vec<u8>> {
            Ok(base64::engine::general_purpose::STANDARD.decode(s.trim())?)
        };
        let server = field("clusters", "cluster", "server")?;
        let ca = b64(field("clusters", "cluster", "certificate-authority-data")?)?;
        let cert = b64(field("users", "user", "client-certificate-data")?)?;
        let key = b64(field("users", "user", "client-key-data")?)?;
        let hostport = server
            .strip_prefix("https://")
            .context("server URL is not https")?
            .trim_end_matches('/');
        let (host, port) = hostport
            .rsplit_once(':')
            .context("server URL has no port")?;

        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots.add(c?)?;
        }
        let certs = rustls_pemfile::certs(&mut cert.as_slice()).collect::<Result<Vec<_>, _>>()?;
        let key = rustls_pemfile::private_key(&mut key.as_slice())?.context("no client key")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ApiClient {
            host: host.to_string(),
            port: port.parse()?,
            config: Arc::new(config),
        })
    }

    /// One request; `body` is sent with `content_type` (default `application/json`).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Response> {
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())?;
        let conn = rustls::ClientConnection::new(self.config.clone(), name)?;
        let sock = TcpStream::connect((self.host.as_str(), self.port))?;
        sock.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nAccept: application/json\r\nUser-Agent: minik8s-e2e\r\nConnection: close\r\n",
            self.host, self.port
        );
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                content_type.unwrap_or("application/json"),
                b.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        tls.write_all(&bytes)?;
        tls.flush()?;
        let mut raw = Vec::new();
        match tls.read_to_end(&mut raw) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(e.into()),
        }
        parse_response(&raw)
    }

    pub fn get(&self, path: &str) -> Result<Response> {
        self.request("GET", path, None, None)
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Result<Response> {
        self.request("POST", path, None, Some(&serde_json::to_vec(body)?))
    }
}

fn parse_response(raw: &[u8]) -> Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("incomplete HTTP response")?;
    let head = std::str::from_utf8(&raw[..end])?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .context("no status line")?
        .parse()?;
    let mut chunked = false;
    let mut len = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                len = v.parse::<usize>().ok();
            }
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        let mut out = Vec::new();
        let mut p = rest;
        loop {
            let nl = p
                .windows(2)
                .position(|w| w == b"\r\n")
                .context("bad chunk")?;
            let size_str = std::str::from_utf8(&p[..nl])?;
            let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16)?;
            p = &p[nl + 2..];
            if size == 0 {
                break;
            }
            if p.len() < size {
                bail!("truncated chunk");
            }
            out.extend_from_slice(&p[..size]);
            p = &p[(size + 2).min(p.len())..];
        }
        out
    } else if let Some(n) = len {
        if rest.len() < n {
            bail!("truncated body: {} of {n} bytes", rest.len());
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_and_length_bodies() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
        assert_eq!((r.status, r.body_str().as_str()), (200, "ok"));
        let r = parse_response(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body_str().as_str()), (201, "abcde"));
    }
}

// ---------------------------------------------------------------------------------------
// Playing the kubelet through the API.

impl ApiClient {
    /// A JSON merge patch (`application/merge-patch+json`).
    pub fn patch_merge(&self, path: &str, body: &serde_json::Value) -> Result<Response> {
        self.request(
            "PATCH",
            path,
            Some("application/merge-patch+json"),
            Some(&serde_json::to_vec(body)?),
        )
    }

    pub fn put_json(&self, path: &str, body: &serde_json::Value) -> Result<Response> {
        self.request("PUT", path, None, Some(&serde_json::to_vec(body)?))
    }

    pub fn delete(&self, path: &str) -> Result<Response> {
        self.request("DELETE", path, None, None)
    }

    /// GETs `path` and parses the JSON body; errors on a non-2xx status.
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        let r = self.get(path)?;
        if !(200..300).contains(&r.status) {
            bail!("GET {path}: {} {}", r.status, r.body_str());
        }
        r.json()
    }
}

/// `now` in RFC 3339 UTC with microseconds (a MicroTime), e.g. `2025-01-02T03:04:05.123456Z`.
pub fn rfc3339_micros(t: std::time::SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// `now` in RFC 3339 UTC with seconds (a metav1.Time).
pub fn rfc3339_now() -> String {
    let s = rfc3339_micros(std::time::SystemTime::now());
    format!("{}Z", &s[..19])
}

/// One node a [`FakeKubelet`] registers.
#[derive(Debug, Clone)]
pub struct FakeNode {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
    pub labels: Vec<(String, String)>,
    /// Taints as JSON objects (`{"key":..,"value":..,"effect":..}`).
    pub taints: Vec<serde_json::Value>,
}

impl FakeNode {
    /// A node with 4 cpu, 8Gi memory, 110 pods.
    pub fn new(name: &str) -> FakeNode {
        FakeNode {
            name: name.to_string(),
            cpu: "4".into(),
            memory: "8Gi".into(),
            pods: 110,
            labels: Vec::new(),
            taints: Vec::new(),
        }
    }
    pub fn cpu(mut self, cpu: &str) -> Self {
        self.cpu = cpu.into();
        self
    }
    pub fn memory(mut self, m: &str) -> Self {
        self.memory = m.into();
        self
    }
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.push((k.into(), v.into()));
        self
    }
    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        let mut t = serde_json::json!({"key": key, "effect": effect});
        if !value.is_empty() {
            t["value"] = value.into();
        }
        self.taints.push(t);
        self
    }
}

#[derive(Default)]
struct KubeletShared {
    stop: bool,
    /// Nodes whose kubelet is "dead": no lease renewals, no pod handling.
    dead: std::collections::HashSet<String>,
}

/// Plays the kubelet for some nodes through the API, from a background thread stopped on
/// drop: registers the Node objects (capacity, labels, taints, Ready=True), renews their
/// Leases in `kube-node-lease` every 2 s, marks pods bound to them Running and Ready (pods
/// with restartPolicy Never/OnFailure then Succeeded about a second later), and finishes
/// the deletion (grace 0) of their pods that have a deletionTimestamp.
pub struct FakeKubelet {
    shared: Arc<std::sync::Mutex<KubeletShared>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl FakeKubelet {
    /// Registers `nodes` (synchronously, so they exist when this returns) and starts.
    pub fn start(client: ApiClient, nodes: Vec<FakeNode>) -> Result<FakeKubelet> {
        for (i, n) in nodes.iter().enumerate() {
            register_node(&client, n, i)?;
            renew_lease(&client, &n.name)?;
        }
        let shared = Arc::new(std::sync::Mutex::new(KubeletShared::default()));
        let sh = shared.clone();
        let handle = std::thread::spawn(move || kubelet_loop(client, nodes, sh));
        Ok(FakeKubelet {
            shared,
            handle: Some(handle),
        })
    }

    /// Stops playing the kubelet for `node` (its Lease goes stale, its pods stay as they are).
    pub fn kill_node(&self, node: &str) {
        self.shared.lock().unwrap().dead.insert(node.to_string());
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.shared.lock().unwrap().stop = true;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn node_ip(i: usize) -> String {
    format!("172.31.0.{}", i + 10)
}

fn register_node(c: &ApiClient, n: &FakeNode, i: usize) -> Result<()> {
    let mut labels = serde_json::Map::new();
    for (k, v) in [
        ("kubernetes.io/hostname", n.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
    ] {
        labels.insert(k.into(), v.into());
    }
    for (k, v) in &n.labels {
        labels.insert(k.clone(), v.clone().into());
    }
    let node = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": n.name, "labels": labels},
        "spec": {"taints": n.taints},
    });
    let r = c.post_json("/api/v1/nodes", &node)?;
    if r.status != 201 && r.status != 409 {
        bail!("creating node {}: {} {}", n.name, r.status, r.body_str());
    }
    let res = serde_json::json!({"cpu": n.cpu, "memory": n.memory, "pods": n.pods.to_string(),
        "ephemeral-storage": "100Gi"});
    let now = rfc3339_now();
    let cond = |ty: &str, st: &str, reason: &str, msg: &str| {
        serde_json::json!({"type": ty, "status": st, "reason": reason, "message": msg,
            "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let status = serde_json::json!({"status": {
        "capacity": res, "allocatable": res,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": node_ip(i)}, {"type": "Hostname", "address": n.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "6.1.0",
            "osImage": "fake", "containerRuntimeVersion": "fake://1.0", "kubeletVersion": "v1.33.0",
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
    }});
    let r = c.patch_merge(&format!("/api/v1/nodes/{}/status", n.name), &status)?;
    if r.status != 200 {
        bail!("node {} status: {} {}", n.name, r.status, r.body_str());
    }
    Ok(())
}

fn renew_lease(c: &ApiClient, node: &str) -> Result<()> {
    let path = format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}");
    let now = rfc3339_micros(std::time::SystemTime::now());
    let r = c.patch_merge(&path, &serde_json::json!({"spec": {"renewTime": now}}))?;
    if r.status == 404 {
        let lease = serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now},
        });
        let r = c.post_json(
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            &lease,
        )?;
        if r.status != 201 {
            bail!("creating lease {node}: {} {}", r.status, r.body_str());
        }
    } else if r.status != 200 {
        bail!("renewing lease {node}: {} {}", r.status, r.body_str());
    }
    Ok(())
}

fn kubelet_loop(c: ApiClient, nodes: Vec<FakeNode>, shared: Arc<std::sync::Mutex<KubeletShared>>) {
    let index: std::collections::HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    let mut last_renew = Instant::now();
    // Pod uid -> when we marked it Running (for run-to-completion pods).
    let mut started: std::collections::HashMap<String, Instant> = Default::default();
    let mut ip_seq: u32 = 0;
    loop {
        let dead = {
            let s = shared.lock().unwrap();
            if s.stop {
                return;
            }
            s.dead.clone()
        };
        if last_renew.elapsed() >= Duration::from_secs(2) {
            last_renew = Instant::now();
            for n in nodes.iter().filter(|n| !dead.contains(&n.name)) {
                let _ = renew_lease(&c, &n.name);
            }
        }
        if let Ok(list) = c.get_json("/api/v1/pods") {
            for p in list["items"].as_array().into_iter().flatten() {
                let Some(node) = p["spec"]["nodeName"].as_str() else {
                    continue;
                };
                let Some(&ni) = index.get(node) else { continue };
                if dead.contains(node) {
                    continue;
                }
                let (ns, name) = (
                    p["metadata"]["namespace"].as_str().unwrap_or("default"),
                    p["metadata"]["name"].as_str().unwrap_or_default(),
                );
                let uid = p["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
                if !p["metadata"]["deletionTimestamp"].is_null() {
                    let body = serde_json::json!({"kind": "DeleteOptions", "apiVersion": "v1",
                        "gracePeriodSeconds": 0, "preconditions": {"uid": uid}});
                    let _ = c.request(
                        "DELETE",
                        &path,
                        None,
                        Some(&serde_json::to_vec(&body).unwrap()),
                    );
                    continue;
                }
                let phase = p["status"]["phase"].as_str().unwrap_or("Pending");
                let run_to_completion = p["spec"]["restartPolicy"]
                    .as_str()
                    .is_some_and(|r| r != "Always");
                match phase {
                    "Pending" => {
                        ip_seq += 1;
                        let ip = format!("10.88.{}.{}", ni, ip_seq % 250 + 2);
                        let _ = c.patch_merge(
                            &format!("{path}/status"),
                            &pod_status(p, "Running", &ip, &node_ip(ni)),
                        );
                        started.insert(uid, Instant::now());
                    }
                    "Running" if run_to_completion => {
                        let t = *started.entry(uid).or_insert_with(Instant::now);
                        if t.elapsed() >= Duration::from_secs(1) {
                            let ip = p["status"]["podIP"].as_str().unwrap_or("").to_string();
                            let _ = c.patch_merge(
                                &format!("{path}/status"),
                                &pod_status(p, "Succeeded", &ip, &node_ip(ni)),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pod_status(p: &serde_json::Value, phase: &str, ip: &str, host_ip: &str) -> serde_json::Value {
    let now = rfc3339_now();
    let running = phase == "Running";
    let ready = if running { "True" } else { "False" };
    let started = p["status"]["startTime"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| now.clone());
    let containers: Vec<serde_json::Value> = p["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let state = if running {
                serde_json::json!({"running": {"startedAt": started}})
            } else {
                serde_json::json!({"terminated": {"exitCode": 0, "reason": "Completed",
                    "startedAt": started, "finishedAt": now}})
            };
            serde_json::json!({
                "name": c["name"], "image": c["image"],
                "imageID": format!("docker.io/library/{}@sha256:0", c["image"].as_str().unwrap_or("")),
                "containerID": "containerd://0", "ready": running, "started": running,
                "restartCount": 0, "state": state,
            })
        })
        .collect();
    let cond = |ty: &str, st: &str| {
        let mut c = serde_json::json!({"type": ty, "status": st, "lastTransitionTime": now,
            "lastProbeTime": null});
        if !running && (ty == "Ready" || ty == "ContainersReady") {
            c["reason"] = "PodCompleted".into();
        }
        c
    };
    serde_json::json!({"status": {
        "phase": phase,
        "conditions": [
            cond("PodReadyToStartContainers", ready),
            cond("Initialized", "True"),
            cond("Ready", ready),
            cond("ContainersReady", ready),
            cond("PodScheduled", "True"),
        ],
        "containerStatuses": containers,
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": started,
        "qosClass": p["status"]["qosClass"].as_str().unwrap_or("BestEffort"),
    }})
}

impl Kubectl {
    /// `kubectl get WHAT -o json`, parsed.
    #[track_caller]
    pub fn get_json(&self, what: &[&str]) -> serde_json::Value {
        let mut args: Vec<&str> = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", "json"]);
        let out = self.ok(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}: {out}"))
    }

    /// `kubectl get WHAT -o jsonpath=PATH`; `None` when kubectl fails (e.g. not found).
    pub fn jsonpath(&self, what: &[&str], path: &str) -> Option<String> {
        let arg = format!("jsonpath={path}");
        let mut args: Vec<&str> = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", &arg]);
        let out = self.run(&args);
        (out.code == 0).then_some(out.stdout)
    }

    /// Pipes a JSON (or YAML) manifest into `kubectl VERB -f -` and asserts success.
    #[track_caller]
    pub fn apply_json(&self, verb: &str, manifest: &serde_json::Value) -> String {
        let out = self.with_stdin(&[verb, "-f", "-"], &manifest.to_string());
        assert_eq!(
            out.code, 0,
            "kubectl {verb} -f - failed for {manifest}:\nstdout: {}\nstderr: {}",
            out.stdout, out.stderr
        );
        out.stdout
    }
}

/// Polls `f` (every 200 ms) until it returns `Some` and returns that, or panics after
/// `timeout` saying what was awaited and the last value seen by `last`.
#[track_caller]
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
