//! The node's private containerd: where its files live ([`ContainerdPaths`]), its config
//! ([`render_config`]), the [`Supervisor`] that runs it as a child process (waits for its
//! CRI socket, restarts it when it dies, stops it with SIGTERM then SIGKILL), and image
//! import into its `k8s.io` namespace ([`ImageImporter`], [`CtrImporter`], [`import_dir`]).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cri::{GrpcRuntime, Runtime, Timeouts};

/// Debian's CNI plugin directory.
pub const DEFAULT_CNI_BIN_DIR: &str = "/usr/lib/cni";
/// The containerd namespace the CRI plugin uses.
pub const K8S_NAMESPACE: &str = "k8s.io";
/// Longest path a unix socket address can hold (sun_path is 108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;
/// The log is moved aside to `<log>.1` at start once it is this large.
const LOG_ROTATE_BYTES: u64 = 16 << 20;

/// Plugins a kubelet-only containerd does not need. `opt` would create /opt/containerd,
/// `restart` is for containers started with `ctr`, the cgroups monitor only serves the v1
/// runtime and metrics export (runc v2 shims report OOMs themselves), and the other
/// snapshotters only log errors on this machine.
pub const DISABLED_PLUGINS: &[&str] = &[
    "io.containerd.internal.v1.opt",
    "io.containerd.internal.v1.restart",
    "io.containerd.monitor.v1.cgroups",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
];

#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("containerd socket path {} is {len} bytes, longer than the {MAX_SOCKET_PATH} a unix socket allows", .path.display())]
    SocketPathTooLong { path: PathBuf, len: usize },
    #[error("create directory {}: {source}", .path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write containerd config {}: {source}", .path.display())]
    WriteConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("open containerd log {}: {source}", .path.display())]
    OpenLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("spawn {}: {source}", .binary.display())]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("containerd exited before it was ready ({status}); log tail:\n{log_tail}")]
    ExitedEarly { status: String, log_tail: String },
    #[error("containerd did not answer on {} within {}s (last error: {last_error}); log tail:\n{log_tail}", .socket.display(), .waited.as_secs_f64())]
    NotReady {
        socket: PathBuf,
        waited: Duration,
        last_error: String,
        log_tail: String,
    },
    #[error("import image {}: {message}", .tarball.display())]
    Import { tarball: PathBuf, message: String },
    #[error("read image directory {}: {source}", .dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Every file and directory of the node's containerd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdPaths {
    pub root: PathBuf,
    pub state: PathBuf,
    pub socket: PathBuf,
    pub config_file: PathBuf,
    pub log_file: PathBuf,
    pub cni_bin_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
}

impl ContainerdPaths {
    /// Everything under `AGENT/containerd/`, CNI configs in `AGENT/cni/net.d`, CNI
    /// plugins in /usr/lib/cni.
    pub fn under(agent_dir: &Path) -> ContainerdPaths {
        let base = agent_dir.join("containerd");
        ContainerdPaths {
            root: base.join("root"),
            state: base.join("state"),
            socket: base.join("containerd.sock"),
            config_file: base.join("config.toml"),
            log_file: base.join("containerd.log"),
            cni_bin_dir: PathBuf::from(DEFAULT_CNI_BIN_DIR),
            cni_conf_dir: agent_dir.join("cni").join("net.d"),
        }
    }

    /// The same paths with CNI plugins taken from `dir`.
    pub fn with_cni_bin_dir(mut self, dir: impl AsRef<Path>) -> ContainerdPaths {
        self.cni_bin_dir = dir.as_ref().to_path_buf();
        self
    }

    /// Directories that must exist before containerd starts.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![
            self.root.clone(),
            self.state.clone(),
            self.cni_conf_dir.clone(),
        ];
        for f in [&self.socket, &self.config_file, &self.log_file] {
            if let Some(p) = f.parent() {
                if !dirs.iter().any(|d| d == p) {
                    dirs.push(p.to_path_buf());
                }
            }
        }
        dirs
    }
}

/// A TOML basic string (quotes and backslashes escaped).
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_path(p: &Path) -> String {
    toml_str(&p.to_string_lossy())
}

/// The containerd (config version 2) file for a node: the CRI plugin with runc v2 on the
/// cgroupfs driver, overlayfs, pod netns files under the state dir, a loopback stream
/// server on a free port, and the node's CNI directories.
pub fn render_config(
    paths: &ContainerdPaths,
    sandbox_image: &str,
    restrict_oom_score_adj: bool,
) -> String {
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    let disabled: Vec<String> = DISABLED_PLUGINS.iter().map(|p| toml_str(p)).collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by the minik8s node agent; changes are overwritten."
    );
    let _ = writeln!(s, "version = 2");
    let _ = writeln!(s, "root = {}", toml_path(&paths.root));
    let _ = writeln!(s, "state = {}", toml_path(&paths.state));
    let _ = writeln!(s, "disabled_plugins = [{}]", disabled.join(", "));
    let _ = writeln!(s);
    let _ = writeln!(s, "[grpc]");
    let _ = writeln!(s, "  address = {}", toml_path(&paths.socket));
    let _ = writeln!(s);
    let _ = writeln!(s, "[{cri}]");
    let _ = writeln!(s, "  sandbox_image = {}", toml_str(sandbox_image));
    let _ = writeln!(s, "  restrict_oom_score_adj = {restrict_oom_score_adj}");
    let _ = writeln!(s, "  netns_mounts_under_state_dir = true");
    let _ = writeln!(s, "  stream_server_address = \"127.0.0.1\"");
    let _ = writeln!(s, "  stream_server_port = \"0\"");
    let _ = writeln!(s, "  enable_selinux = false");
    let _ = writeln!(s, "  [{cri}.containerd]");
    let _ = writeln!(s, "    snapshotter = \"overlayfs\"");
    let _ = writeln!(s, "    default_runtime_name = \"runc\"");
    let _ = writeln!(s, "    [{cri}.containerd.runtimes.runc]");
    let _ = writeln!(s, "      runtime_type = \"io.containerd.runc.v2\"");
    let _ = writeln!(s, "      [{cri}.containerd.runtimes.runc.options]");
    let _ = writeln!(s, "        SystemdCgroup = false");
    let _ = writeln!(s, "  [{cri}.cni]");
    let _ = writeln!(s, "    bin_dir = {}", toml_path(&paths.cni_bin_dir));
    let _ = writeln!(s, "    conf_dir = {}", toml_path(&paths.cni_conf_dir));
    s
}

/// True when the effective capability set in `/proc/self/status` text lacks
/// CAP_SYS_RESOURCE (bit 24), or cannot be read: then containerd must not give pods
/// negative oom_score_adj values (`restrict_oom_score_adj = true`).
pub fn lacks_cap_sys_resource(proc_status: &str) -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    proc_status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .map(|caps| caps & (1u64 << CAP_SYS_RESOURCE) == 0)
        .unwrap_or(true)
}

/// The last `n` lines of a text.
pub fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The back-off before the next restart: doubles from `initial` up to `max`, and starts
/// over once the process had stayed up for `stable`.
pub fn next_backoff(
    previous: Duration,
    ran_for: Duration,
    initial: Duration,
    max: Duration,
    stable: Duration,
) -> Duration {
    if ran_for >= stable || previous.is_zero() {
        initial
    } else {
        (previous * 2).min(max)
    }
}

/// True when a `/proc/<pid>/cmdline` (NUL-separated) is a containerd run with this config.
pub fn is_containerd_with_config(cmdline: &[u8], config_file: &Path) -> bool {
    let args: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    let Some(argv0) = args.first() else {
        return false;
    };
    let name = argv0.rsplit(|b| *b == b'/').next().unwrap_or(argv0);
    if name != b"containerd" {
        return false;
    }
    let want = config_file.as_os_str().as_encoded_bytes();
    args.windows(2)
        .any(|w| (w[0] == b"--config" || w[0] == b"-c") && w[1] == want)
        || args
            .iter()
            .any(|a| a.strip_prefix(b"--config=".as_slice()) == Some(want))
}

// ---------------------------------------------------------------------------------------
// Supervision
// ---------------------------------------------------------------------------------------

/// One running containerd process.
#[async_trait]
pub trait Child: Send {
    fn pid(&self) -> Option<u32>;
    /// Waits for the process to exit and describes how it ended. Cancel-safe.
    async fn wait(&mut self) -> String;
    /// `Some(description)` once the process has exited.
    fn try_wait(&mut self) -> Option<String>;
    /// Asks the process to stop (SIGTERM).
    fn terminate(&mut self);
    /// Forces it (SIGKILL).
    fn kill(&mut self);
}

/// How the supervisor starts and checks containerd; the real one runs the binary, tests
/// use a fake.
#[async_trait]
pub trait Launcher: Send + Sync + 'static {
    fn socket(&self) -> &Path;
    /// Stops containerd processes left over from an earlier agent on the same files.
    async fn stop_stale(&self) -> Vec<u32>;
    fn spawn(&self) -> Result<Box<dyn Child>, ContainerdError>;
    /// Ok once the socket answers a CRI Version call.
    async fn probe(&self) -> Result<(), String>;
    /// The end of containerd's log, for error messages.
    fn log_tail(&self) -> String;
}

/// Timing of the supervisor.
#[derive(Debug, Clone, Copy)]
pub struct SupervisorOptions {
    pub ready_timeout: Duration,
    pub probe_interval: Duration,
    pub stop_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A process that stayed up this long resets the back-off.
    pub backoff_reset_after: Duration,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            ready_timeout: Duration::from_secs(20),
            probe_interval: Duration::from_millis(50),
            stop_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            backoff_reset_after: Duration::from_secs(60),
        }
    }
}

#[derive(Default)]
struct Shared {
    pid: AtomicU32,
    restarts: AtomicU32,
}

/// Runs containerd as a child process and keeps it running until [`Supervisor::stop`].
/// Dropping the supervisor without `stop` kills containerd (SIGKILL); pods survive
/// either way, their shims are not containerd's children.
pub struct Supervisor {
    socket: PathBuf,
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("socket", &self.socket)
            .field("pid", &self.pid())
            .field("restarts", &self.restarts())
            .finish()
    }
}

impl Supervisor {
    /// Writes the config under `paths`, starts `binary` (containerd) and waits for its CRI
    /// socket. `restrict_oom_score_adj` follows this process's CAP_SYS_RESOURCE.
    pub async fn start(
        binary: PathBuf,
        paths: ContainerdPaths,
        sandbox_image: &str,
    ) -> Result<Supervisor, ContainerdError> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let restrict = lacks_cap_sys_resource(&status);
        prepare_files(&paths, sandbox_image, restrict)?;
        let launcher = ContainerdLauncher { binary, paths };
        Supervisor::start_with(Arc::new(launcher), SupervisorOptions::default()).await
    }

    /// Starts and supervises whatever `launcher` runs.
    pub async fn start_with(
        launcher: Arc<dyn Launcher>,
        opts: SupervisorOptions,
    ) -> Result<Supervisor, ContainerdError> {
        let stale = launcher.stop_stale().await;
        if !stale.is_empty() {
            tracing::warn!(pids = ?stale, "stopped containerd left over from an earlier run");
        }
        let mut child = launcher.spawn()?;
        if let Err(e) = wait_ready(launcher.as_ref(), child.as_mut(), &opts).await {
            child.kill();
            let _ = tokio::time::timeout(opts.stop_timeout, child.wait()).await;
            return Err(e);
        }
        let shared = Arc::new(Shared::default());
        shared
            .pid
            .store(child.pid().unwrap_or(0), Ordering::Relaxed);
        tracing::info!(pid = child.pid(), socket = %launcher.socket().display(), "containerd ready");
        let (stop_tx, stop_rx) = watch::channel(false);
        let socket = launcher.socket().to_path_buf();
        let task = tokio::spawn(supervise(launcher, child, stop_rx, shared.clone(), opts));
        Ok(Supervisor {
            socket,
            shared,
            stop_tx,
            task: Mutex::new(Some(task)),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The pid of the current containerd process (None while it is being restarted).
    pub fn pid(&self) -> Option<u32> {
        match self.shared.pid.load(Ordering::Relaxed) {
            0 => None,
            p => Some(p),
        }
    }

    /// How many times containerd was restarted after dying.
    pub fn restarts(&self) -> u32 {
        self.shared.restarts.load(Ordering::Relaxed)
    }

    /// Stops containerd: SIGTERM, then SIGKILL after the stop timeout. Idempotent.
    pub async fn stop(&self) {
        let _ = self.stop_tx.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.shared.pid.store(0, Ordering::Relaxed);
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // Aborting drops the child, whose kill_on_drop kills containerd.
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

/// Creates the directories, rotates a large log and writes the config.
pub fn prepare_files(
    paths: &ContainerdPaths,
    sandbox_image: &str,
    restrict_oom_score_adj: bool,
) -> Result<(), ContainerdError> {
    let len = paths.socket.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(ContainerdError::SocketPathTooLong {
            path: paths.socket.clone(),
            len,
        });
    }
    for dir in paths.dirs() {
        std::fs::create_dir_all(&dir).map_err(|source| ContainerdError::CreateDir {
            path: dir.clone(),
            source,
        })?;
    }
    if let Ok(meta) = std::fs::metadata(&paths.log_file) {
        if meta.len() > LOG_ROTATE_BYTES {
            let mut old = paths.log_file.as_os_str().to_owned();
            old.push(".1");
            let _ = std::fs::rename(&paths.log_file, PathBuf::from(old));
        }
    }
    let config = render_config(paths, sandbox_image, restrict_oom_score_adj);
    std::fs::write(&paths.config_file, config).map_err(|source| ContainerdError::WriteConfig {
        path: paths.config_file.clone(),
        source,
    })
}

async fn wait_ready(
    launcher: &dyn Launcher,
    child: &mut dyn Child,
    opts: &SupervisorOptions,
) -> Result<(), ContainerdError> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait() {
            return Err(ContainerdError::ExitedEarly {
                status,
                log_tail: launcher.log_tail(),
            });
        }
        let last_error = match launcher.probe().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let waited = started.elapsed();
        if waited >= opts.ready_timeout {
            return Err(ContainerdError::NotReady {
                socket: launcher.socket().to_path_buf(),
                waited,
                last_error,
                log_tail: launcher.log_tail(),
            });
        }
        tokio::time::sleep(opts.probe_interval).await;
    }
}

async fn shutdown(child: &mut dyn Child, stop_timeout: Duration) {
    child.terminate();
    match tokio::time::timeout(stop_timeout, child.wait()).await {
        Ok(status) => tracing::info!(%status, "containerd stopped"),
        Err(_) => {
            tracing::warn!("containerd ignored SIGTERM for {stop_timeout:?}; killing it");
            child.kill();
            let status = child.wait().await;
            tracing::info!(%status, "containerd killed");
        }
    }
}

async fn supervise(
    launcher: Arc<dyn Launcher>,
    mut child: Box<dyn Child>,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
    opts: SupervisorOptions,
) {
    let mut started = Instant::now();
    let mut backoff = Duration::ZERO;
    loop {
        tokio::select! {
            status = child.wait() => {
                shared.pid.store(0, Ordering::Relaxed);
                backoff = next_backoff(
                    backoff,
                    started.elapsed(),
                    opts.backoff_initial,
                    opts.backoff_max,
                    opts.backoff_reset_after,
                );
                tracing::warn!(
                    %status,
                    log_tail = %launcher.log_tail(),
                    "containerd exited unexpectedly; restarting in {backoff:?}"
                );
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return,
                    }
                    match launcher.spawn() {
                        Ok(c) => {
                            child = c;
                            started = Instant::now();
                            shared.pid.store(child.pid().unwrap_or(0), Ordering::Relaxed);
                            shared.restarts.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(pid = child.pid(), "containerd restarted");
                            break;
                        }
                        Err(e) => {
                            backoff = (backoff * 2).min(opts.backoff_max);
                            tracing::warn!(error = %e, "restart containerd failed; retrying in {backoff:?}");
                        }
                    }
                }
            }
            _ = stop.changed() => {
                shutdown(child.as_mut(), opts.stop_timeout).await;
                return;
            }
        }
    }
}

/// Runs the containerd binary with the config under [`ContainerdPaths`].
#[derive(Debug, Clone)]
pub struct ContainerdLauncher {
    pub binary: PathBuf,
    pub paths: ContainerdPaths,
}

struct ProcessChild {
    child: tokio::process::Child,
}

fn describe_exit(r: std::io::Result<std::process::ExitStatus>) -> String {
    match r {
        Ok(s) => s.to_string(),
        Err(e) => format!("wait failed: {e}"),
    }
}

fn send_signal(pid: Option<u32>, sig: libc::c_int) {
    if let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) {
        // SAFETY: kill(2) has no memory effects; the pid is our unreaped child.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

#[async_trait]
impl Child for ProcessChild {
    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn wait(&mut self) -> String {
        describe_exit(self.child.wait().await)
    }

    fn try_wait(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(s)) => Some(s.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("wait failed: {e}")),
        }
    }

    fn terminate(&mut self) {
        send_signal(self.child.id(), libc::SIGTERM);
    }

    fn kill(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn read_tail(path: &Path, max_bytes: u64, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    tail_lines(&String::from_utf8_lossy(&buf), lines)
}

fn process_is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie ("Z") has exited already.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => true,
    }
}

#[async_trait]
impl Launcher for ContainerdLauncher {
    fn socket(&self) -> &Path {
        &self.paths.socket
    }

    async fn stop_stale(&self) -> Vec<u32> {
        let me = std::process::id();
        let mut stale = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if pid == me {
                    continue;
                }
                let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                    continue;
                };
                if is_containerd_with_config(&cmdline, &self.paths.config_file) {
                    stale.push(pid);
                }
            }
        }
        for pid in &stale {
            send_signal(Some(*pid), libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stale.iter().all(|p| process_is_gone(*p)) {
            if Instant::now() >= deadline {
                for pid in &stale {
                    send_signal(Some(*pid), libc::SIGKILL);
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stale
    }

    fn spawn(&self) -> Result<Box<dyn Child>, ContainerdError> {
        let open_log = |source| ContainerdError::OpenLog {
            path: self.paths.log_file.clone(),
            source,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.paths.log_file)
            .map_err(open_log)?;
        let log2 = log.try_clone().map_err(open_log)?;
        let child = tokio::process::Command::new(&self.binary)
            .arg("--config")
            .arg(&self.paths.config_file)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            // Its own process group: a Ctrl-C meant for the agent does not reach it, the
            // agent stops it in order instead.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ContainerdError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        Ok(Box::new(ProcessChild { child }))
    }

    async fn probe(&self) -> Result<(), String> {
        let quick = Timeouts {
            quick: Duration::from_secs(2),
            ..Timeouts::default()
        };
        let rt = GrpcRuntime::connect(&self.paths.socket)
            .await
            .map_err(|e| e.to_string())?
            .with_timeouts(quick);
        rt.version().await.map(|_| ()).map_err(|e| e.to_string())
    }

    fn log_tail(&self) -> String {
        read_tail(&self.paths.log_file, 64 << 10, 20)
    }
}

// ---------------------------------------------------------------------------------------
// Image import
// ---------------------------------------------------------------------------------------

/// Loads an image tarball into the runtime's image store.
#[async_trait]
pub trait ImageImporter: Send + Sync {
    async fn import(&self, tarball: &Path) -> Result<(), ContainerdError>;
}

/// Imports with `ctr` into containerd's `k8s.io` namespace, where the CRI plugin sees the
/// image at once (the archive must name the image fully: `io.containerd.image.name`).
#[derive(Debug, Clone)]
pub struct CtrImporter {
    pub ctr: PathBuf,
    pub socket: PathBuf,
}

/// Longest an import may take.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// `ctr` arguments importing one tarball (unpacked for overlayfs, so the first container
/// does not pay for it).
pub fn ctr_import_args(socket: &Path, tarball: &Path) -> Vec<OsString> {
    vec![
        "--address".into(),
        socket.as_os_str().to_owned(),
        "--namespace".into(),
        K8S_NAMESPACE.into(),
        "images".into(),
        "import".into(),
        "--snapshotter".into(),
        "overlayfs".into(),
        tarball.as_os_str().to_owned(),
    ]
}

#[async_trait]
impl ImageImporter for CtrImporter {
    async fn import(&self, tarball: &Path) -> Result<(), ContainerdError> {
        let fail = |message: String| ContainerdError::Import {
            tarball: tarball.to_path_buf(),
            message,
        };
        let run = tokio::process::Command::new(&self.ctr)
            .args(ctr_import_args(&self.socket, tarball))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(IMPORT_TIMEOUT, run)
            .await
            .map_err(|_| {
                fail(format!(
                    "ctr did not finish within {}s",
                    IMPORT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| fail(format!("run {}: {e}", self.ctr.display())))?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(fail(format!(
                "ctr {}: {}",
                out.status,
                tail_lines(stderr.trim(), 5)
            )))
        }
    }
}

/// Imports every `*.tar` file of `dir` (in name order; other files are skipped) and
/// reports each result. A directory that cannot be read gives one error for the dir.
pub async fn import_dir(
    importer: &dyn ImageImporter,
    dir: &Path,
) -> Vec<(PathBuf, Result<(), ContainerdError>)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            return vec![(
                dir.to_path_buf(),
                Err(ContainerdError::ReadDir {
                    dir: dir.to_path_buf(),
                    source,
                }),
            )]
        }
    };
    let mut tars: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tar"))
        .collect();
    tars.sort();
    let mut results = Vec::with_capacity(tars.len());
    for t in tars {
        let r = importer.import(&t).await;
        results.push((t, r));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn paths_under_agent_dir() {
        let p = ContainerdPaths::under(Path::new("/var/lib/agent"));
        assert_eq!(p.root, Path::new("/var/lib/agent/containerd/root"));
        assert_eq!(p.state, Path::new("/var/lib/agent/containerd/state"));
        assert_eq!(
            p.socket,
            Path::new("/var/lib/agent/containerd/containerd.sock")
        );
        assert_eq!(
            p.config_file,
            Path::new("/var/lib/agent/containerd/config.toml")
        );
        assert_eq!(
            p.log_file,
            Path::new("/var/lib/agent/containerd/containerd.log")
        );
        assert_eq!(p.cni_bin_dir, Path::new("/usr/lib/cni"));
        assert_eq!(p.cni_conf_dir, Path::new("/var/lib/agent/cni/net.d"));
        let q = p.clone().with_cni_bin_dir("/opt/cni/bin");
        assert_eq!(q.cni_bin_dir, Path::new("/opt/cni/bin"));
        assert_eq!(q.root, p.root);
        let dirs = p.dirs();
        assert!(dirs.contains(&PathBuf::from("/var/lib/agent/containerd")));
        assert!(dirs.contains(&PathBuf::from("/var/lib/agent/cni/net.d")));
        assert_eq!(dirs.len(), 4);
    }

    #[test]
    fn config_has_the_settings_this_machine_needs() {
        let p = ContainerdPaths::under(Path::new("/a"));
        let c = render_config(&p, "localhost/pause:3.6", true);
        for want in [
            "version = 2\n",
            "root = \"/a/containerd/root\"\n",
            "state = \"/a/containerd/state\"\n",
            "[grpc]\n  address = \"/a/containerd/containerd.sock\"\n",
            "sandbox_image = \"localhost/pause:3.6\"\n",
            "restrict_oom_score_adj = true\n",
            "netns_mounts_under_state_dir = true\n",
            "stream_server_address = \"127.0.0.1\"\n",
            "stream_server_port = \"0\"\n",
            "enable_selinux = false\n",
            "snapshotter = \"overlayfs\"\n",
            "runtime_type = \"io.containerd.runc.v2\"\n",
            "SystemdCgroup = false\n",
            "bin_dir = \"/usr/lib/cni\"\n",
            "conf_dir = \"/a/cni/net.d\"\n",
            "\"io.containerd.internal.v1.opt\"",
        ] {
            assert!(c.contains(want), "missing {want:?} in\n{c}");
        }
        // The CRI tables nest under the plugin table.
        let cri = c.find("[plugins.\"io.containerd.grpc.v1.cri\"]\n").unwrap();
        let opts = c
            .find("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]")
            .unwrap();
        assert!(cri < opts);
        assert!(render_config(&p, "x", false).contains("restrict_oom_score_adj = false\n"));
        // The runtime v1 plugin must stay: the tasks service needs it.
        assert!(!c.contains("io.containerd.runtime.v1.linux"));
    }

    #[test]
    fn config_strings_are_escaped() {
        let mut p = ContainerdPaths::under(Path::new("/we\"ird\\dir"));
        p.cni_bin_dir = PathBuf::from("/x");
        let c = render_config(&p, "img", true);
        assert!(
            c.contains("root = \"/we\\\"ird\\\\dir/containerd/root\""),
            "{c}"
        );
    }

    #[test]
    fn cap_sys_resource_detection() {
        let this_vm = "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n";
        assert!(lacks_cap_sys_resource(this_vm));
        let full = "CapEff:\t000001ffffffffff\n";
        assert!(!lacks_cap_sys_resource(full));
        assert!(!lacks_cap_sys_resource("CapEff:\t0000000001000000\n"));
        assert!(lacks_cap_sys_resource("CapEff:\tzz\n"));
        assert!(lacks_cap_sys_resource(""));
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let (i, m, s) = (
            Duration::from_millis(200),
            Duration::from_secs(10),
            Duration::from_secs(60),
        );
        let short = Duration::from_secs(1);
        let mut b = next_backoff(Duration::ZERO, short, i, m, s);
        assert_eq!(b, i);
        b = next_backoff(b, short, i, m, s);
        assert_eq!(b, Duration::from_millis(400));
        for _ in 0..10 {
            b = next_backoff(b, short, i, m, s);
        }
        assert_eq!(b, m);
        assert_eq!(next_backoff(b, Duration::from_secs(61), i, m, s), i);
    }

    #[test]
    fn stale_process_matching() {
        let cfg = Path::new("/a/containerd/config.toml");
        assert!(is_containerd_with_config(
            b"containerd\0--config\0/a/containerd/config.toml\0",
            cfg
        ));
        assert!(is_containerd_with_config(
            b"/usr/bin/containerd\0--config=/a/containerd/config.toml\0",
            cfg
        ));
        assert!(!is_containerd_with_config(
            b"/usr/bin/containerd\0--config\0/b/containerd/config.toml\0",
            cfg
        ));
        assert!(!is_containerd_with_config(
            b"containerd-shim-runc-v2\0--config\0/a/containerd/config.toml\0",
            cfg
        ));
        assert!(!is_containerd_with_config(b"", cfg));
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a", 5), "a");
        assert_eq!(tail_lines("", 5), "");
    }

    #[test]
    fn socket_path_length_is_checked() {
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(120)));
        let p = ContainerdPaths::under(&long);
        let err = prepare_files(&p, "img", true).unwrap_err();
        assert!(
            matches!(err, ContainerdError::SocketPathTooLong { .. }),
            "{err}"
        );
    }

    #[test]
    fn prepare_files_writes_config_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let p = ContainerdPaths::under(dir.path());
        prepare_files(&p, "localhost/pause:3.6", true).unwrap();
        assert!(p.root.is_dir() && p.state.is_dir() && p.cni_conf_dir.is_dir());
        let written = std::fs::read_to_string(&p.config_file).unwrap();
        assert_eq!(written, render_config(&p, "localhost/pause:3.6", true));
    }

    // --- supervisor with a fake launcher ---

    #[derive(Default)]
    struct FakeWorld {
        events: Mutex<Vec<String>>,
        /// One sender per spawned child: send Some(status) to make it exit.
        exits: Mutex<Vec<watch::Sender<Option<String>>>>,
        ready: AtomicBool,
        ignore_term: AtomicBool,
        fail_spawn: AtomicBool,
    }

    impl FakeWorld {
        fn event(&self, e: String) {
            self.events.lock().unwrap().push(e);
        }
        fn events(&self) -> Vec<String> {
            self.events.lock().unwrap().clone()
        }
        fn exit(&self, n: usize, status: &str) {
            let _ = self.exits.lock().unwrap()[n - 1].send(Some(status.to_string()));
        }
    }

    struct FakeChild {
        n: u32,
        world: Arc<FakeWorld>,
        exit_tx: watch::Sender<Option<String>>,
        exit_rx: watch::Receiver<Option<String>>,
    }

    #[async_trait]
    impl Child for FakeChild {
        fn pid(&self) -> Option<u32> {
            Some(1000 + self.n)
        }
        async fn wait(&mut self) -> String {
            loop {
                if let Some(s) = self.exit_rx.borrow().clone() {
                    return s;
                }
                if self.exit_rx.changed().await.is_err() {
                    return "gone".into();
                }
            }
        }
        fn try_wait(&mut self) -> Option<String> {
            self.exit_rx.borrow().clone()
        }
        fn terminate(&mut self) {
            self.world.event(format!("term {}", self.n));
            if !self.world.ignore_term.load(Ordering::SeqCst) {
                let _ = self.exit_tx.send(Some("signal: 15".into()));
            }
        }
        fn kill(&mut self) {
            self.world.event(format!("kill {}", self.n));
            let _ = self.exit_tx.send(Some("signal: 9".into()));
        }
    }

    struct FakeLauncher {
        world: Arc<FakeWorld>,
        socket: PathBuf,
    }

    #[async_trait]
    impl Launcher for FakeLauncher {
        fn socket(&self) -> &Path {
            &self.socket
        }
        async fn stop_stale(&self) -> Vec<u32> {
            self.world.event("stop_stale".into());
            Vec::new()
        }
        fn spawn(&self) -> Result<Box<dyn Child>, ContainerdError> {
            if self.world.fail_spawn.load(Ordering::SeqCst) {
                self.world.event("spawn failed".into());
                return Err(ContainerdError::Spawn {
                    binary: "containerd".into(),
                    source: std::io::Error::other("no such file"),
                });
            }
            let (tx, rx) = watch::channel(None);
            let mut exits = self.world.exits.lock().unwrap();
            exits.push(tx.clone());
            let n = exits.len() as u32;
            self.world.event(format!("spawn {n}"));
            Ok(Box::new(FakeChild {
                n,
                world: self.world.clone(),
                exit_tx: tx,
                exit_rx: rx,
            }))
        }
        async fn probe(&self) -> Result<(), String> {
            if self.world.ready.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("connection refused".into())
            }
        }
        fn log_tail(&self) -> String {
            "level=fatal msg=\"boom\"".into()
        }
    }

    fn fake() -> (Arc<FakeWorld>, Arc<FakeLauncher>) {
        let world = Arc::new(FakeWorld::default());
        let launcher = Arc::new(FakeLauncher {
            world: world.clone(),
            socket: PathBuf::from("/x/containerd.sock"),
        });
        (world, launcher)
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn supervisor_restarts_and_stops() {
        let (world, launcher) = fake();
        world.ready.store(true, Ordering::SeqCst);
        let sup = Supervisor::start_with(launcher, SupervisorOptions::default())
            .await
            .unwrap();
        assert_eq!(sup.pid(), Some(1001));
        assert_eq!(world.events(), vec!["stop_stale", "spawn 1"]);

        world.exit(1, "exit status: 2");
        settle().await;
        assert_eq!(sup.pid(), None);
        tokio::time::sleep(Duration::from_millis(250)).await;
        settle().await;
        assert_eq!(sup.restarts(), 1);
        assert_eq!(sup.pid(), Some(1002));

        // Quick second death: longer back-off (400ms).
        world.exit(2, "signal: 9");
        settle().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        settle().await;
        assert_eq!(sup.restarts(), 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
        settle().await;
        assert_eq!(sup.restarts(), 2);

        sup.stop().await;
        assert_eq!(
            world.events(),
            vec!["stop_stale", "spawn 1", "spawn 2", "spawn 3", "term 3"]
        );
        assert_eq!(sup.pid(), None);
        sup.stop().await; // idempotent
    }

    #[tokio::test(start_paused = true)]
    async fn supervisor_kills_after_stop_timeout() {
        let (world, launcher) = fake();
        world.ready.store(true, Ordering::SeqCst);
        world.ignore_term.store(true, Ordering::SeqCst);
        let sup = Supervisor::start_with(launcher, SupervisorOptions::default())
            .await
            .unwrap();
        let before = Instant::now();
        sup.stop().await;
        assert!(before.elapsed() >= Duration::from_secs(10));
        assert_eq!(
            world.events(),
            vec!["stop_stale", "spawn 1", "term 1", "kill 1"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn supervisor_reports_not_ready_with_log_tail() {
        let (world, launcher) = fake();
        let opts = SupervisorOptions {
            ready_timeout: Duration::from_secs(2),
            ..SupervisorOptions::default()
        };
        let err = Supervisor::start_with(launcher, opts).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("containerd did not answer on /x/containerd.sock within 2"),
            "{msg}"
        );
        assert!(
            msg.contains("connection refused") && msg.contains("boom"),
            "{msg}"
        );
        assert_eq!(world.events(), vec!["stop_stale", "spawn 1", "kill 1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn supervisor_reports_early_exit() {
        let (world, launcher) = fake();
        let w = world.clone();
        let start = tokio::spawn(async move {
            Supervisor::start_with(launcher, SupervisorOptions::default()).await
        });
        settle().await;
        w.exit(1, "exit status: 1");
        let err = start.await.unwrap().unwrap_err();
        assert!(
            matches!(&err, ContainerdError::ExitedEarly { status, .. } if status == "exit status: 1"),
            "{err}"
        );
        assert!(err.to_string().contains("boom"));
    }

    #[tokio::test(start_paused = true)]
    async fn supervisor_retries_failed_spawns() {
        let (world, launcher) = fake();
        world.ready.store(true, Ordering::SeqCst);
        let sup = Supervisor::start_with(launcher, SupervisorOptions::default())
            .await
            .unwrap();
        world.fail_spawn.store(true, Ordering::SeqCst);
        world.exit(1, "exit status: 1");
        tokio::time::sleep(Duration::from_secs(1)).await;
        settle().await;
        assert!(
            world
                .events()
                .iter()
                .filter(|e| *e == "spawn failed")
                .count()
                >= 2
        );
        world.fail_spawn.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3)).await;
        settle().await;
        assert_eq!(sup.restarts(), 1);
        assert_eq!(sup.pid(), Some(1002));
        sup.stop().await;
    }

    // --- import ---

    #[derive(Default)]
    struct FakeImporter {
        seen: Mutex<Vec<PathBuf>>,
    }

    #[async_trait]
    impl ImageImporter for FakeImporter {
        async fn import(&self, tarball: &Path) -> Result<(), ContainerdError> {
            self.seen.lock().unwrap().push(tarball.to_path_buf());
            if tarball.ends_with("bad.tar") {
                return Err(ContainerdError::Import {
                    tarball: tarball.to_path_buf(),
                    message: "ctr exit status: 1: unrecognized image format".into(),
                });
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn import_dir_imports_only_tars_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "pause.tar",
            "busybox.tar",
            "bad.tar",
            "notes.txt",
            "x.tar.gz",
        ] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.tar")).unwrap();
        let imp = FakeImporter::default();
        let results = import_dir(&imp, dir.path()).await;
        let names: Vec<String> = results
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["bad.tar", "busybox.tar", "pause.tar"]);
        assert!(results[0].1.is_err());
        assert!(results[1].1.is_ok() && results[2].1.is_ok());
        assert_eq!(imp.seen.lock().unwrap().len(), 3);

        let missing = import_dir(&imp, &dir.path().join("nope")).await;
        assert_eq!(missing.len(), 1);
        assert!(matches!(missing[0].1, Err(ContainerdError::ReadDir { .. })));
    }

    #[test]
    fn ctr_args() {
        let args = ctr_import_args(Path::new("/a/c.sock"), Path::new("/img/pause.tar"));
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            vec![
                "--address",
                "/a/c.sock",
                "--namespace",
                "k8s.io",
                "images",
                "import",
                "--snapshotter",
                "overlayfs",
                "/img/pause.tar"
            ]
        );
    }

    #[tokio::test]
    async fn ctr_importer_reports_failures() {
        let imp = CtrImporter {
            ctr: PathBuf::from("/nonexistent/ctr"),
            socket: PathBuf::from("/x.sock"),
        };
        let err = imp.import(Path::new("/img/a.tar")).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("import image /img/a.tar: run /nonexistent/ctr"),
            "{err}"
        );
        // A command that fails is reported with its stderr.
        let imp = CtrImporter {
            ctr: PathBuf::from("/bin/false"),
            socket: PathBuf::from("/x.sock"),
        };
        let err = imp.import(Path::new("/img/a.tar")).await.unwrap_err();
        assert!(err.to_string().contains("ctr exit status: 1"), "{err}");
    }
}
