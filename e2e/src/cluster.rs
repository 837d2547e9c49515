//! Multi-host test clusters: one `minik8s server` and N `minik8s agent`s, each "host" in
//! its own network namespace, wired to one bridge in a switch namespace.
//!
//! For a run id `ID` (8 random hex digits per cluster):
//!
//! * network namespaces `mkID-sw` (bridge `br0` and the veth ends `v0..vN`) and
//!   `mkID-h0..mkID-hN` (`lo`, and `eth0` with `10.99.S.(10+i)/24`, `S` picked per run).
//!   Nothing is created in the root network namespace and there is no default route
//!   anywhere: the hosts reach each other and nothing else. Host 0 runs the server.
//! * a directory `$TMPDIR/mkID/` with `h<i>/` (the data dir of host i), `images/` (built once
//!   with `minik8s images build`, hard-linked into each agent's `agent/images/`) and
//!   `logs/` (`h<i>.log` per process, appended across restarts, and `images.log`).
//!
//! Processes run as `nsenter --net=/run/netns/mkID-hI minik8s ...` (not `ip netns exec`, which
//! remounts /sys and hides the cgroup v1 mounts), each in its own process group, with its
//! data dir as working directory and `PR_SET_PDEATHSIG=SIGKILL`.
//!
//! Teardown (on drop, also while panicking, on a failed start, or [`Cluster::shutdown`])
//! touches only what is provably the cluster's own:
//!
//! 1. SIGKILL to the process groups of the processes it started (while they are not yet
//!    reaped, so the ids cannot have been reused), then repeatedly SIGKILL to every process
//!    whose command line or working directory lies under the cluster directory, whose
//!    network namespace is one of the cluster's, or that is the init of one of the
//!    cluster's runc containers, and to all their descendants (containerd, its shims, the
//!    pods' processes). Itself, its ancestors, pid 1 and kernel threads are never touched;
//!    each kill re-checks the process start time.
//! 2. `runc delete --force` for the containers in `/run/containerd/runc/<ns>/` whose
//!    state.json mentions the cluster directory; then rmdir of their cgroups and of their
//!    pod-level cgroups (`.../kubepods.../pod<uid>`, only when empty). Pod cgroups of
//!    pods whose containers were already gone are not identifiable and are left alone.
//! 3. lazy unmount of every mount under the cluster directory, deepest first.
//! 4. deletion of the veths, the bridge and the network namespaces.
//! 5. removal of the cluster directory, only if no mount is left under it.
//!
//! With `E2E_KEEP_LOGS=DIR` set, the logs are copied to `DIR/mkID/` before the teardown;
//! while panicking, their tails are printed.
//!
//! A marker file in the cluster directory records the owning test process, so that
//! [`sweep_orphaned_clusters`] (run by every [`Cluster::start`]) can tear down clusters whose
//! test process died without running destructors.

use crate::{log_tail, minik8s_bin, ApiClient, Kubectl, Output};
use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The API server port (every cluster has its own namespaces, so ports never clash).
pub const API_PORT: u16 = 6443;
/// Default time for every expected Node to become Ready.
pub const NODE_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long [`Cluster::stop_agent`] waits after SIGTERM before SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for one command run by [`Cluster::exec_in`] or by the plumbing.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

const MAX_AGENTS: usize = 200;
const NETNS_DIR: &str = "/run/netns";
/// Where containerd-shim-runc-v2 keeps runc state by default (`<root>/<namespace>/<id>`).
const RUNC_ROOTS: &[&str] = &["/run/containerd/runc"];
const CGROUP_ROOT: &str = "/sys/fs/cgroup/";
const MARKER: &str = ".minik8s-e2e-cluster";

/// Per-agent settings.
#[derive(Debug, Clone, Default)]
pub struct AgentOpts {
    /// `--node-label k=v` each.
    pub labels: Vec<(String, String)>,
    /// `--node-taint` each, as `key=value:Effect`.
    pub taints: Vec<String>,
    /// Appended to the agent's command line.
    pub extra_args: Vec<String>,
}

/// How to build a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterOpts {
    /// Number of agent hosts (h1..hN).
    pub agents: usize,
    /// Whether the server also runs its node agent (node `h0`); otherwise `--disable-agent`.
    pub server_agent: bool,
    /// Appended to the server's command line.
    pub extra_server_args: Vec<String>,
    /// `agent_opts[j]` applies to host `j + 1`; missing entries mean defaults.
    pub agent_opts: Vec<AgentOpts>,
    /// Hosts after the agents that get a namespace and an address but run nothing
    /// (clients for [`Cluster::exec_in`]).
    pub spare_hosts: usize,
    /// Build the image tarballs: `None` = when any agent runs.
    pub images: Option<bool>,
    /// Time for every expected Node to become Ready.
    pub node_ready_timeout: Duration,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        ClusterOpts {
            agents: 0,
            server_agent: false,
            extra_server_args: Vec::new(),
            agent_opts: Vec::new(),
            spare_hosts: 0,
            images: None,
            node_ready_timeout: NODE_READY_TIMEOUT,
        }
    }
}

impl ClusterOpts {
    /// `agents` agents, server without its own agent.
    pub fn agents(agents: usize) -> Self {
        ClusterOpts {
            agents,
            ..Default::default()
        }
    }

    fn agent(&self, host: usize) -> AgentOpts {
        host.checked_sub(1)
            .and_then(|j| self.agent_opts.get(j))
            .cloned()
            .unwrap_or_default()
    }

    fn wants_images(&self) -> bool {
        self.images.unwrap_or(self.server_agent || self.agents > 0)
    }
}

/// Whether the multi-host tests can run here: [`crate::prerequisites`] plus `ip`,
/// `nsenter`, `containerd`, `runc` on PATH and the CNI bridge plugin in /usr/lib/cni.
/// Prints a `SKIP:` line and returns false when not, or panics when `CI` is set.
pub fn netns_prerequisites() -> bool {
    if !crate::prerequisites() {
        return false;
    }
    for prog in ["ip", "nsenter", "containerd", "runc"] {
        if crate::on_path(prog).is_none() {
            return crate::skip_or_fail(&format!("{prog} is not on PATH"));
        }
    }
    if !Path::new("/usr/lib/cni/bridge").is_file() {
        return crate::skip_or_fail("the CNI bridge plugin /usr/lib/cni/bridge is missing");
    }
    true
}

/// Runs `f` on a fresh thread that has joined the network namespace file `netns`; sockets
/// it opens live in that namespace. A panic in `f` is propagated.
pub fn in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let file = std::fs::File::open(netns)
        .with_context(|| format!("opening network namespace {}", netns.display()))?;
    let fd = file.as_raw_fd();
    std::thread::scope(|s| {
        let h = s.spawn(move || -> Result<T> {
            // SAFETY: `fd` stays open for the whole scope; setns(CLONE_NEWNET) changes the
            // network namespace of this thread only.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error()).context("setns into netns");
            }
            Ok(f())
        });
        match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

// ---------------------------------------------------------------------------------------
// Names and command lines (pure).

fn switch_netns(id: &str) -> String {
    format!("mk{id}-sw")
}

fn host_netns(id: &str, i: usize) -> String {
    format!("mk{id}-h{i}")
}

fn host_ip(subnet: u8, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, subnet, (10 + i) as u8)
}

/// The Node name of host `i`.
pub fn node_name(i: usize) -> String {
    format!("h{i}")
}

/// The third octet of the cluster's 10.99.S.0/24, derived from the run id (1..=254).
fn subnet_for(id: &str) -> u8 {
    let n = u32::from_str_radix(id, 16).unwrap_or(0);
    (1 + n % 254) as u8
}

fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// One plumbing command and the link it creates (namespace, link name), if any.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    argv: Vec<String>,
    creates_link: Option<(String, String)>,
}

/// The `ip` commands wiring `hosts` host namespaces to the switch bridge (all namespaces
/// already exist). Every command names its namespace with `-n`: nothing runs in the root
/// namespace, and no route other than the connected /24 is created.
fn link_plan(id: &str, subnet: u8, hosts: usize) -> Vec<Step> {
    let sw = switch_netns(id);
    let step = |parts: &[&str]| Step {
        argv: argv(parts),
        creates_link: None,
    };
    let mut plan = vec![
        step(&["ip", "-n", &sw, "link", "set", "lo", "up"]),
        Step {
            argv: argv(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"]),
            creates_link: Some((sw.clone(), "br0".into())),
        },
        step(&["ip", "-n", &sw, "link", "set", "br0", "up"]),
    ];
    for i in 0..hosts {
        let h = host_netns(id, i);
        let v = format!("v{i}");
        let addr = format!("{}/24", host_ip(subnet, i));
        plan.push(Step {
            argv: argv(&[
                "ip", "-n", &sw, "link", "add", &v, "type", "veth", "peer", "name", "eth0",
                "netns", &h,
            ]),
            creates_link: Some((sw.clone(), v.clone())),
        });
        plan.push(step(&[
            "ip", "-n", &sw, "link", "set", &v, "master", "br0", "up",
        ]));
        plan.push(step(&["ip", "-n", &h, "link", "set", "lo", "up"]));
        plan.push(step(&["ip", "-n", &h, "addr", "add", &addr, "dev", "eth0"]));
        plan.push(step(&["ip", "-n", &h, "link", "set", "eth0", "up"]));
    }
    plan
}

/// `minik8s server ...` for host 0.
fn server_argv(
    bin: &Path,
    data_dir: &Path,
    ip: Ipv4Addr,
    server_agent: bool,
    extra: &[String],
) -> Vec<String> {
    let ip = ip.to_string();
    let mut a = vec![
        bin.display().to_string(),
        "server".into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--bind-address".into(),
        ip.clone(),
        "--https-listen-port".into(),
        API_PORT.to_string(),
        "--advertise-address".into(),
        ip.clone(),
        // The cluster DNS forwards nothing: the test hosts have no resolvers to reach.
        "--resolv-conf=".into(),
    ];
    if server_agent {
        a.extend(argv(&["--node-ip", &ip, "--node-name", &node_name(0)]));
    } else {
        a.push("--disable-agent".into());
    }
    a.extend(extra.iter().cloned());
    a
}

/// `minik8s agent ...` for host `i`.
fn agent_argv(
    bin: &Path,
    server_ip: Ipv4Addr,
    token: &str,
    data_dir: &Path,
    i: usize,
    ip: Ipv4Addr,
    opts: &AgentOpts,
) -> Vec<String> {
    let mut a = vec![
        bin.display().to_string(),
        "agent".into(),
        "--join".into(),
        format!("https://{server_ip}:{API_PORT}"),
        "--token".into(),
        token.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--node-name".into(),
        node_name(i),
        "--node-ip".into(),
        ip.to_string(),
    ];
    for (k, v) in &opts.labels {
        a.push("--node-label".into());
        a.push(format!("{k}={v}"));
    }
    for t in &opts.taints {
        a.push("--node-taint".into());
        a.push(t.clone());
    }
    a.extend(opts.extra_args.iter().cloned());
    a
}

/// The expected nodes that are missing from a NodeList or not Ready, each with why.
fn unready_nodes(list: &serde_json::Value, expected: &[String]) -> Vec<String> {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    expected
        .iter()
        .filter_map(|name| {
            let Some(node) = items
                .iter()
                .find(|n| n["metadata"]["name"].as_str() == Some(name))
            else {
                return Some(format!("{name}: not registered"));
            };
            let ready = node["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
            match ready {
                Some(c) if c["status"] == "True" => None,
                Some(c) => Some(format!(
                    "{name}: Ready={} ({}: {})",
                    c["status"].as_str().unwrap_or("?"),
                    c["reason"].as_str().unwrap_or(""),
                    c["message"].as_str().unwrap_or("")
                )),
                None => Some(format!("{name}: no Ready condition")),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Ownership tests (pure).

/// Whether `text` mentions `root` as a path: `root` followed by the end, `/`, or a
/// character that cannot continue a file name component of ours (so `/tmp/mkab` does not
/// match `/tmp/mkabc`).
fn mentions_path(text: &str, root: &str) -> bool {
    if root.is_empty() {
        return false;
    }
    text.match_indices(root)
        .any(|(at, _)| match text[at + root.len()..].chars().next() {
            None => true,
            Some(c) => !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'),
        })
}

fn path_is_under(p: &Path, root: &Path) -> bool {
    p == root || p.starts_with(root)
}

/// A process as seen in /proc.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    /// Start time in clock ticks since boot (field 22 of /proc/PID/stat).
    pub start: u64,
    pub state: char,
    pub cmdline: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// Inode of its network namespace.
    pub netns: Option<u64>,
}

/// (state, ppid, pgrp, starttime) from the text of /proc/PID/stat.
fn parse_stat(s: &str) -> Option<(char, i32, i32, u64)> {
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split(' ').collect();
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
        f.get(19)?.parse().ok()?,
    ))
}

/// What a teardown may treat as the cluster's own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Owned {
    /// The cluster directory.
    pub root: PathBuf,
    /// Network namespace names (under /run/netns), hosts before the switch.
    pub netns: Vec<String>,
    /// Links created in those namespaces: (namespace, link).
    pub links: Vec<(String, String)>,
    /// Process groups of started processes that are not reaped yet.
    pub pgids: Vec<i32>,
}

/// The processes to kill: those matching the ownership tests, plus all their descendants;
/// never `own_pid`, its ancestors, pid 1, kernel threads or zombies.
fn select_victims(
    procs: &[ProcInfo],
    own_pid: i32,
    owned: &Owned,
    netns_inodes: &[u64],
    inits: &[(i32, u64)],
) -> Vec<ProcInfo> {
    let root = owned.root.to_string_lossy().into_owned();
    let by_pid: std::collections::HashMap<i32, &ProcInfo> =
        procs.iter().map(|p| (p.pid, p)).collect();
    let mut protected: HashSet<i32> = [0, 1, 2, own_pid].into_iter().collect();
    let mut cur = own_pid;
    for _ in 0..procs.len() {
        match by_pid.get(&cur) {
            Some(p) if p.ppid > 0 && p.ppid != cur => {
                protected.insert(p.ppid);
                cur = p.ppid;
            }
            _ => break,
        }
    }
    let kernel = |p: &ProcInfo| p.pid == 2 || p.ppid == 2;
    let seed = |p: &ProcInfo| {
        owned.pgids.contains(&p.pgid)
            || p.cmdline.iter().any(|a| mentions_path(a, &root))
            || p.cwd
                .as_deref()
                .is_some_and(|c| path_is_under(c, &owned.root))
            || p.netns.is_some_and(|n| netns_inodes.contains(&n))
            || inits.contains(&(p.pid, p.start))
    };
    let mut chosen: HashSet<i32> = procs.iter().filter(|p| seed(p)).map(|p| p.pid).collect();
    loop {
        let before = chosen.len();
        for p in procs {
            if chosen.contains(&p.ppid) && !protected.contains(&p.ppid) {
                chosen.insert(p.pid);
            }
        }
        if chosen.len() == before {
            break;
        }
    }
    procs
        .iter()
        .filter(|p| chosen.contains(&p.pid))
        .filter(|p| !protected.contains(&p.pid) && !kernel(p) && p.state != 'Z')
        .cloned()
        .collect()
}

/// Unescapes a mountinfo path field (`\040` for space etc.).
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points at or under `root`, deepest first (later mounts first among equals).
fn mounts_under(mountinfo: &str, root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(usize, usize, PathBuf)> = mountinfo
        .lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let mp = PathBuf::from(unescape_mount_path(line.split(' ').nth(4)?));
            path_is_under(&mp, root).then(|| (mp.components().count(), n, mp))
        })
        .collect();
    found.sort_by_key(|&(depth, line, _)| std::cmp::Reverse((depth, line)));
    found.into_iter().map(|(_, _, p)| p).collect()
}

/// A runc container of the cluster (its state.json mentions the cluster directory).
#[derive(Debug, Clone, PartialEq)]
struct RuncContainer {
    runc_root: PathBuf,
    id: String,
    init: Option<(i32, u64)>,
    cgroups: Vec<PathBuf>,
}

fn parse_runc_state(text: &str, runc_root: &Path, root: &Path) -> Option<RuncContainer> {
    if !mentions_path(text, &root.to_string_lossy()) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let id = v["id"].as_str()?.to_string();
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return None;
    }
    let init = match (
        v["init_process_pid"].as_i64(),
        v["init_process_start"].as_u64(),
    ) {
        (Some(pid), Some(start)) if pid > 1 => Some((pid as i32, start)),
        _ => None,
    };
    let cgroups = v["cgroup_paths"]
        .as_object()
        .map(|m| {
            m.values()
                .filter_map(|p| p.as_str())
                .map(PathBuf::from)
                .filter(|p| p.starts_with(CGROUP_ROOT))
                .collect()
        })
        .unwrap_or_default();
    Some(RuncContainer {
        runc_root: runc_root.to_path_buf(),
        id,
        init,
        cgroups,
    })
}

/// The pod-level cgroup of a container cgroup (`.../kubepods.../pod<uid>/<container>`).
fn pod_cgroup(container_cgroup: &Path) -> Option<PathBuf> {
    let parent = container_cgroup.parent()?;
    let is_pod = parent
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("pod") && n.len() > 3);
    let under_kubepods = parent.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|s| s.starts_with("kubepods"))
    });
    (is_pod && under_kubepods && parent.starts_with(CGROUP_ROOT)).then(|| parent.to_path_buf())
}

// ---------------------------------------------------------------------------------------
// Side effects of the teardown, behind a trait (a recording fake in the tests).

pub(crate) trait System {
    /// Runs a command (with a timeout); `Err` carries its stderr.
    fn run(&self, argv: &[String]) -> std::result::Result<String, String>;
    fn processes(&self) -> Vec<ProcInfo>;
    fn own_pid(&self) -> i32;
    /// SIGKILL to `pid` if it still has start time `start`; whether a signal was sent.
    fn kill(&self, pid: i32, start: u64) -> bool;
    fn mountinfo(&self) -> String;
    fn umount_lazy(&self, path: &Path) -> std::result::Result<(), String>;
    /// rmdir; a missing directory is fine.
    fn rmdir(&self, path: &Path) -> std::result::Result<(), String>;
    /// Recursive removal; a missing path is fine.
    fn remove_tree(&self, path: &Path) -> std::result::Result<(), String>;
    fn list_dir(&self, path: &Path) -> Vec<String>;
    fn read_file(&self, path: &Path) -> Option<String>;
    fn exists(&self, path: &Path) -> bool;
    fn netns_inode(&self, path: &Path) -> Option<u64>;
    fn sleep(&self, d: Duration);
}

/// The real machine.
pub(crate) struct RealSystem;

fn proc_info(pid: i32) -> Option<ProcInfo> {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let (state, ppid, pgid, start) = parse_stat(&std::fs::read_to_string(base.join("stat")).ok()?)?;
    let cmdline = std::fs::read(base.join("cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(ProcInfo {
        pid,
        ppid,
        pgid,
        start,
        state,
        cmdline,
        cwd: std::fs::read_link(base.join("cwd")).ok(),
        netns: std::fs::metadata(base.join("ns/net")).ok().map(|m| m.ino()),
    })
}

fn proc_start(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&s).map(|(_, _, _, start)| start)
}

fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::set_pdeathsig(cmd);
    match cmd.spawn() {
        Ok(child) => crate::wait_with_timeout(child, timeout),
        Err(e) => Output {
            code: -1,
            stdout: String::new(),
            stderr: format!("spawning {cmd:?}: {e}"),
        },
    }
}

impl System for RealSystem {
    fn run(&self, argv: &[String]) -> std::result::Result<String, String> {
        let Some((prog, args)) = argv.split_first() else {
            return Err("empty command".into());
        };
        let out = run_with_timeout(Command::new(prog).args(args), COMMAND_TIMEOUT);
        if out.code == 0 {
            Ok(out.stdout)
        } else {
            Err(format!(
                "{} exited with {}: {}",
                argv.join(" "),
                out.code,
                out.stderr.trim()
            ))
        }
    }

    fn processes(&self) -> Vec<ProcInfo> {
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(proc_info)
            .collect()
    }

    fn own_pid(&self) -> i32 {
        std::process::id() as i32
    }

    fn kill(&self, pid: i32, start: u64) -> bool {
        if pid <= 1 || proc_start(pid) != Some(start) {
            return false;
        }
        // SAFETY: plain kill(2) on a positive pid whose identity was just re-checked.
        unsafe { libc::kill(pid, libc::SIGKILL) == 0 }
    }

    fn mountinfo(&self) -> String {
        std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
    }

    fn umount_lazy(&self, path: &Path) -> std::result::Result<(), String> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            Ok(())
        } else {
            Err(format!(
                "umount {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ))
        }
    }

    fn rmdir(&self, path: &Path) -> std::result::Result<(), String> {
        match std::fs::remove_dir(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("rmdir {}: {e}", path.display())),
        }
    }

    fn remove_tree(&self, path: &Path) -> std::result::Result<(), String> {
        match std::fs::remove_dir_all(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("removing {}: {e}", path.display())),
        }
    }

    fn list_dir(&self, path: &Path) -> Vec<String> {
        std::fs::read_dir(path)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn netns_inode(&self, path: &Path) -> Option<u64> {
        std::fs::metadata(path).ok().map(|m| m.ino())
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

fn our_containers(sys: &dyn System, root: &Path) -> Vec<RuncContainer> {
    let mut out = Vec::new();
    for runc_base in RUNC_ROOTS {
        let base = Path::new(runc_base);
        for ns in sys.list_dir(base) {
            let runc_root = base.join(&ns);
            for id in sys.list_dir(&runc_root) {
                let Some(text) = sys.read_file(&runc_root.join(&id).join("state.json")) else {
                    continue;
                };
                if let Some(c) = parse_runc_state(&text, &runc_root, root) {
                    if c.id == id {
                        out.push(c);
                    }
                }
            }
        }
    }
    out
}

/// Tears down everything `owned` describes (see the module docs for the order); `reap` is
/// called once all processes are killed. Returns what could not be cleaned up.
pub(crate) fn teardown(sys: &dyn System, owned: &Owned, reap: &mut dyn FnMut()) -> Vec<String> {
    let mut problems = Vec::new();
    let containers = our_containers(sys, &owned.root);
    let inits: Vec<(i32, u64)> = containers.iter().filter_map(|c| c.init).collect();
    let inodes: Vec<u64> = owned
        .netns
        .iter()
        .filter_map(|n| sys.netns_inode(&Path::new(NETNS_DIR).join(n)))
        .collect();

    // 1. processes
    let own = sys.own_pid();
    let mut left = Vec::new();
    for round in 0..50 {
        left = select_victims(&sys.processes(), own, owned, &inodes, &inits);
        if left.is_empty() {
            break;
        }
        for p in &left {
            sys.kill(p.pid, p.start);
        }
        sys.sleep(Duration::from_millis(if round < 5 { 20 } else { 100 }));
    }
    if !left.is_empty() {
        let pids: Vec<String> = left
            .iter()
            .map(|p| format!("{} ({})", p.pid, p.cmdline.join(" ")))
            .collect();
        problems.push(format!("processes still alive: {}", pids.join(", ")));
    }
    reap();

    // 2. runc containers and their cgroups
    for c in &containers {
        let mut cmd = vec!["runc".to_string(), "--root".into()];
        cmd.push(c.runc_root.display().to_string());
        cmd.extend(argv(&["delete", "--force", &c.id]));
        let _ = sys.run(&cmd);
        for cg in &c.cgroups {
            if let Err(e) = sys.rmdir(cg) {
                problems.push(e);
            }
        }
        for cg in &c.cgroups {
            if let Some(pod) = pod_cgroup(cg) {
                // Fails harmlessly while another container of the pod is still there.
                let _ = sys.rmdir(&pod);
            }
        }
        let state = c.runc_root.join(&c.id);
        if sys.exists(&state) {
            if let Err(e) = sys.remove_tree(&state) {
                problems.push(e);
            }
        }
    }

    // 3. mounts
    for _ in 0..5 {
        let mounts = mounts_under(&sys.mountinfo(), &owned.root);
        if mounts.is_empty() {
            break;
        }
        for m in mounts {
            let _ = sys.umount_lazy(&m);
        }
    }
    let mounts = mounts_under(&sys.mountinfo(), &owned.root);
    if !mounts.is_empty() {
        problems.push(format!(
            "mounts left under {}: {mounts:?}",
            owned.root.display()
        ));
    }

    // 4. links and network namespaces
    for (ns, link) in owned.links.iter().rev() {
        if sys.exists(&Path::new(NETNS_DIR).join(ns)) {
            let _ = sys.run(&argv(&["ip", "-n", ns, "link", "del", link]));
        }
    }
    for ns in &owned.netns {
        if sys.exists(&Path::new(NETNS_DIR).join(ns)) {
            if let Err(e) = sys.run(&argv(&["ip", "netns", "del", ns])) {
                problems.push(e);
            }
        }
    }

    // 5. the directory, only when nothing is mounted under it any more
    if mounts.is_empty() {
        if let Err(e) = sys.remove_tree(&owned.root) {
            problems.push(e);
        }
    } else {
        problems.push(format!(
            "kept {} because mounts remain under it",
            owned.root.display()
        ));
    }
    problems
}

/// The cluster id of a directory name `mkXXXXXXXX`.
fn cluster_id_of(dir_name: &str) -> Option<&str> {
    let id = dir_name.strip_prefix("mk")?;
    (id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Whether a netns name belongs to cluster `id` (`mkID-sw` or `mkID-h<digits>`).
fn netns_of_cluster(name: &str, id: &str) -> bool {
    match name.strip_prefix(&format!("mk{id}-")) {
        Some("sw") => true,
        Some(rest) => rest
            .strip_prefix('h')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// Tears down clusters left behind by test processes that died without running their
/// destructors: directories `$TMPDIR/mk<id>` with the harness's marker whose owning process
/// (pid and start time) is gone. Returns what could not be cleaned up.
pub fn sweep_orphaned_clusters() -> Vec<String> {
    sweep_orphans(&RealSystem, &std::env::temp_dir())
}

fn sweep_orphans(sys: &dyn System, tmp: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for name in sys.list_dir(tmp) {
        let Some(id) = cluster_id_of(&name) else {
            continue;
        };
        let root = tmp.join(&name);
        let Some(marker) = sys.read_file(&root.join(MARKER)) else {
            continue;
        };
        let mut it = marker.split_whitespace();
        let (Some(Ok(pid)), Some(Ok(start))) = (
            it.next().map(str::parse::<i32>),
            it.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        let alive = sys
            .processes()
            .iter()
            .any(|p| p.pid == pid && p.start == start);
        if alive {
            continue;
        }
        let mut netns: Vec<String> = sys
            .list_dir(Path::new(NETNS_DIR))
            .into_iter()
            .filter(|n| netns_of_cluster(n, id))
            .collect();
        netns.sort_by_key(|n| n.ends_with("-sw"));
        let owned = Owned {
            root,
            netns,
            links: Vec::new(),
            pgids: Vec::new(),
        };
        problems.extend(teardown(sys, &owned, &mut || {}));
    }
    problems
}

// ---------------------------------------------------------------------------------------
// The cluster.

struct Host {
    netns: String,
    ip: Ipv4Addr,
    child: Option<Child>,
}

/// A server and N agents, each in its own network namespace; torn down on drop.
pub struct Cluster {
    id: String,
    subnet: u8,
    dir: PathBuf,
    opts: ClusterOpts,
    hosts: Vec<Host>,
    netns_created: Vec<String>,
    links_created: Vec<(String, String)>,
    token: Option<String>,
    torn_down: bool,
}

impl Cluster {
    /// Creates the namespaces, builds the images (when agents run), starts the server in
    /// h0 and waits for `/readyz`, starts the agents in h1..hN and waits until every
    /// expected Node is Ready. On failure everything is torn down and the error carries
    /// the tails of all logs.
    pub fn start(opts: ClusterOpts) -> Result<Cluster> {
        for p in sweep_orphaned_clusters() {
            eprintln!("e2e cluster sweep: {p}");
        }
        let mut c = Cluster::claim(opts)?;
        match c.bring_up() {
            Ok(()) => Ok(c),
            Err(e) => {
                let tails = c.log_tails(30);
                Err(e.context(format!("cluster mk{} failed to start\n{tails}", c.id)))
            }
        }
    }

    /// Picks a run id and claims its directory (atomically, by creating it).
    fn claim(opts: ClusterOpts) -> Result<Cluster> {
        if opts.agents + opts.spare_hosts > MAX_AGENTS {
            bail!("at most {MAX_AGENTS} agents and spare hosts");
        }
        for _ in 0..20 {
            let id = random_id();
            let dir = std::env::temp_dir().join(format!("mk{id}"));
            let taken = std::fs::read_dir(NETNS_DIR)
                .map(|rd| {
                    rd.flatten().any(|e| {
                        e.file_name()
                            .to_str()
                            .is_some_and(|n| n.starts_with(&format!("mk{id}-")))
                    })
                })
                .unwrap_or(false);
            if taken {
                continue;
            }
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
            }
            let subnet = subnet_for(&id);
            let hosts = (0..=opts.agents + opts.spare_hosts)
                .map(|i| Host {
                    netns: host_netns(&id, i),
                    ip: host_ip(subnet, i),
                    child: None,
                })
                .collect();
            let c = Cluster {
                id,
                subnet,
                dir,
                opts,
                hosts,
                netns_created: Vec::new(),
                links_created: Vec::new(),
                token: None,
                torn_down: false,
            };
            let me = std::process::id() as i32;
            let start = proc_start(me).unwrap_or(0);
            std::fs::write(c.dir.join(MARKER), format!("{me} {start}\n"))
                .context("writing the cluster marker")?;
            std::fs::create_dir_all(c.dir.join("logs"))?;
            return Ok(c);
        }
        bail!("no free cluster id after 20 tries")
    }

    fn bring_up(&mut self) -> Result<()> {
        self.create_network()
            .context("creating the network namespaces")?;
        for i in 0..self.hosts.len() {
            std::fs::create_dir_all(self.data_dir(i))?;
        }
        if self.opts.wants_images() {
            self.build_images().context("building images")?;
        }
        self.spawn(0)?;
        self.wait_server_ready(crate::READY_TIMEOUT)?;
        let token_file = self.data_dir(0).join("server/token");
        let token = std::fs::read_to_string(&token_file)
            .with_context(|| format!("reading {}", token_file.display()))?;
        self.token = Some(token.trim().to_string());
        for i in 1..=self.opts.agents {
            self.spawn(i)?;
        }
        let expected: Vec<usize> = self.agent_hosts();
        if !expected.is_empty() {
            self.wait_nodes_ready(&expected, self.opts.node_ready_timeout)?;
        }
        Ok(())
    }

    /// Hosts that run a node agent.
    fn agent_hosts(&self) -> Vec<usize> {
        let first = if self.opts.server_agent { 0 } else { 1 };
        (first..=self.opts.agents).collect()
    }

    fn create_network(&mut self) -> Result<()> {
        let sys = RealSystem;
        let mut names: Vec<String> = self.hosts.iter().map(|h| h.netns.clone()).collect();
        names.push(switch_netns(&self.id));
        for n in names {
            sys.run(&argv(&["ip", "netns", "add", &n]))
                .map_err(anyhow::Error::msg)?;
            self.netns_created.push(n);
        }
        // Hosts before the switch when deleting.
        self.netns_created.sort_by_key(|n| n.ends_with("-sw"));
        for step in link_plan(&self.id, self.subnet, self.hosts.len()) {
            sys.run(&step.argv).map_err(anyhow::Error::msg)?;
            if let Some(l) = step.creates_link {
                self.links_created.push(l);
            }
        }
        Ok(())
    }

    fn build_images(&mut self) -> Result<()> {
        let images = self.dir.join("images");
        std::fs::create_dir_all(&images)?;
        let log = self.dir.join("logs/images.log");
        let mut cmd = Command::new(minik8s_bin());
        cmd.arg("images").arg("build").arg(&images);
        let out = run_with_timeout(&mut cmd, COMMAND_TIMEOUT);
        let _ = std::fs::write(&log, format!("{}{}", out.stdout, out.stderr));
        if out.code != 0 {
            bail!(
                "minik8s images build exited with {}: {}",
                out.code,
                out.stderr.trim()
            );
        }
        let mut tars: Vec<PathBuf> = std::fs::read_dir(&images)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "tar"))
            .collect();
        tars.sort();
        if tars.is_empty() {
            bail!(
                "minik8s images build wrote no *.tar into {}",
                images.display()
            );
        }
        for i in self.agent_hosts() {
            let dest = self.data_dir(i).join("agent/images");
            std::fs::create_dir_all(&dest)?;
            for t in &tars {
                let to = dest.join(t.file_name().unwrap_or_default());
                if std::fs::hard_link(t, &to).is_err() {
                    std::fs::copy(t, &to)
                        .with_context(|| format!("copying {} to {}", t.display(), to.display()))?;
                }
            }
        }
        Ok(())
    }

    fn command_line(&self, i: usize) -> Result<Vec<String>> {
        let bin = minik8s_bin();
        if i == 0 {
            return Ok(server_argv(
                &bin,
                &self.data_dir(0),
                self.hosts[0].ip,
                self.opts.server_agent,
                &self.opts.extra_server_args,
            ));
        }
        let token = self.token.as_deref().context("no join token yet")?;
        Ok(agent_argv(
            &bin,
            self.hosts[0].ip,
            token,
            &self.data_dir(i),
            i,
            self.hosts[i].ip,
            &self.opts.agent(i),
        ))
    }

    /// Starts the process of host `i` (the server for 0, else an agent).
    fn spawn(&mut self, i: usize) -> Result<()> {
        if self.hosts[i].child.is_some() {
            bail!("{} is already running", node_name(i));
        }
        let args = self.command_line(i)?;
        let log = self.log_path(i);
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| writeln!(f, "==== e2e: starting {}", args.join(" ")));
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns_path(i).display()))
            .args(&args)
            .current_dir(self.data_dir(i))
            .env("NO_COLOR", "1");
        // SAFETY: setpgid is async-signal-safe; it runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.hosts[i].child = Some(crate::spawn_logged(&mut cmd, &log)?);
        Ok(())
    }

    fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.hosts[i]
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn wait_server_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some(st) = self.exited(0) {
                bail!("minik8s server exited early: {st}");
            }
            if self.kubeconfig().is_file() {
                let r = self.api(|c| c.get("/readyz"));
                match r {
                    Ok(r) if r.status == 200 && r.body_str() == "ok" => return Ok(()),
                    Ok(r) => last = format!("{} {}", r.status, r.body_str()),
                    Err(e) => last = format!("{e:#}"),
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("server not ready after {timeout:?}: {last}")
    }

    /// Waits until the Nodes of `hosts` are registered and Ready; fails early when one of
    /// their processes exits.
    pub fn wait_nodes_ready(&mut self, hosts: &[usize], timeout: Duration) -> Result<()> {
        let names: Vec<String> = hosts.iter().map(|&i| node_name(i)).collect();
        let deadline = Instant::now() + timeout;
        let mut last = vec!["no answer yet".to_string()];
        while Instant::now() < deadline {
            for &i in hosts {
                if let Some(st) = self.exited(i) {
                    bail!("the process of {} exited early: {st}", node_name(i));
                }
            }
            match self.api(|c| c.get_json("/api/v1/nodes")) {
                Ok(list) => {
                    last = unready_nodes(&list, &names);
                    if last.is_empty() {
                        return Ok(());
                    }
                }
                Err(e) => last = vec![format!("listing nodes: {e:#}")],
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        bail!("nodes not ready after {timeout:?}: {}", last.join("; "))
    }

    // ---- accessors

    /// The run id (8 hex digits).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of hosts (server, agents, spare hosts).
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// The address of host `i` (h0 = server).
    pub fn host_ip(&self, i: usize) -> Ipv4Addr {
        self.hosts[i].ip
    }

    /// The Node name of host `i` (`h<i>`).
    pub fn node_name(&self, i: usize) -> String {
        node_name(i)
    }

    /// The network namespace name of host `i`.
    pub fn netns_name(&self, i: usize) -> &str {
        &self.hosts[i].netns
    }

    /// `/run/netns/<name>` of host `i`.
    pub fn netns_path(&self, i: usize) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.hosts[i].netns)
    }

    /// The switch namespace name.
    pub fn switch_netns(&self) -> String {
        switch_netns(&self.id)
    }

    /// The data dir of host `i`.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("h{i}"))
    }

    /// The log file of host `i`'s process (all its runs).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("logs/h{i}.log"))
    }

    /// The admin kubeconfig (server URL `https://<h0 ip>:6443`, reachable only from the
    /// cluster's namespaces).
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir(0).join("kubeconfig.yaml")
    }

    /// `https://<h0 ip>:6443`.
    pub fn server_url(&self) -> String {
        format!("https://{}:{API_PORT}", self.hosts[0].ip)
    }

    /// The join token (after the server started).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The pid of host `i`'s process, when running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.hosts[i].child.as_ref().map(Child::id)
    }

    /// Whether host `i`'s process is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        matches!(
            self.hosts[i].child.as_mut().map(|c| c.try_wait()),
            Some(Ok(None))
        )
    }

    // ---- using the cluster

    /// A kubectl bound to the admin kubeconfig, running inside the server's namespace.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl::new(&self.kubeconfig()).in_netns(&self.netns_path(0))
    }

    /// Runs `f` with an admin [`ApiClient`] on a thread inside the server's namespace.
    pub fn api<T: Send>(&self, f: impl FnOnce(&ApiClient) -> Result<T> + Send) -> Result<T> {
        let client = ApiClient::from_kubeconfig(&self.kubeconfig())?;
        in_netns(&self.netns_path(0), move || f(&client))?
    }

    /// Runs a command inside host `i`'s network namespace (e.g. `curl`, `busybox ping`),
    /// with [`COMMAND_TIMEOUT`]; code -1 when it could not run or timed out.
    pub fn exec_in(&self, i: usize, args: &[&str]) -> Output {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns_path(i).display()))
            .args(args);
        run_with_timeout(&mut cmd, COMMAND_TIMEOUT)
    }

    /// [`Cluster::exec_in`], asserting exit code 0; returns stdout.
    #[track_caller]
    pub fn exec_ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.exec_in(i, args);
        assert_eq!(
            out.code,
            0,
            "`{}` in {} failed:\nstdout: {}\nstderr: {}",
            args.join(" "),
            self.hosts[i].netns,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    // ---- restarts

    fn check_agent(&self, i: usize) -> Result<()> {
        if i == 0 || i > self.opts.agents {
            bail!("no agent host {i} (agents are 1..={})", self.opts.agents);
        }
        Ok(())
    }

    /// SIGTERM to agent `i` (its pid only), SIGKILL after [`STOP_TIMEOUT`]; reaps it.
    /// Its containerd, shims and pods are left to the agent's own shutdown (and teardown).
    pub fn stop_agent(&mut self, i: usize) -> Result<()> {
        self.check_agent(i)?;
        self.stop_host(i, Some(STOP_TIMEOUT));
        Ok(())
    }

    /// SIGKILL to agent `i` (its pid only, no shutdown of any kind); reaps it.
    pub fn kill_agent(&mut self, i: usize) -> Result<()> {
        self.check_agent(i)?;
        self.stop_host(i, None);
        Ok(())
    }

    /// Starts agent `i` again (same data dir, log appended). Does not wait: see
    /// [`Cluster::wait_nodes_ready`].
    pub fn start_agent(&mut self, i: usize) -> Result<()> {
        self.check_agent(i)?;
        self.spawn(i)
    }

    /// SIGKILL to the server (pid only); reaps it.
    pub fn kill_server(&mut self) {
        self.stop_host(0, None);
    }

    /// Starts the server again on its data dir and waits for `/readyz`.
    pub fn start_server(&mut self) -> Result<()> {
        self.spawn(0)?;
        self.wait_server_ready(crate::READY_TIMEOUT)
            .with_context(|| format!("server log tail:\n{}", log_tail(&self.log_path(0), 30)))
    }

    fn stop_host(&mut self, i: usize, grace: Option<Duration>) {
        let Some(mut child) = self.hosts[i].child.take() else {
            return;
        };
        if let Some(grace) = grace {
            // SAFETY: kill(2) on our own unreaped child, whose pid cannot be reused.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    // ---- teardown

    /// The last `n` lines of every log, for error messages.
    pub fn log_tails(&self, n: usize) -> String {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.join("logs"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.sort();
        logs.iter()
            .map(|p| {
                format!(
                    "---- {} (last {n} lines):\n{}\n",
                    p.display(),
                    log_tail(p, n)
                )
            })
            .collect()
    }

    /// Tears the cluster down now; errors list what could not be cleaned up.
    pub fn shutdown(mut self) -> Result<()> {
        let problems = self.teardown();
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("cluster mk{} teardown: {}", self.id, problems.join("; "))
        }
    }

    fn teardown(&mut self) -> Vec<String> {
        if self.torn_down {
            return Vec::new();
        }
        self.torn_down = true;
        if let Some(keep) = std::env::var_os("E2E_KEEP_LOGS") {
            let to = PathBuf::from(keep).join(format!("mk{}", self.id));
            if std::fs::create_dir_all(&to).is_ok() {
                for e in std::fs::read_dir(self.dir.join("logs"))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let _ = std::fs::copy(e.path(), to.join(e.file_name()));
                }
            }
        }
        // Kill the groups of our unreaped children first: their ids cannot be reused
        // until they are reaped, which happens only after the sweep below.
        let mut pgids = Vec::new();
        for h in &mut self.hosts {
            if let Some(c) = h.child.as_mut() {
                let pid = c.id() as i32;
                // SAFETY: killpg on the group our unreaped child leads (setpgid at spawn).
                unsafe { libc::killpg(pid, libc::SIGKILL) };
                let _ = c.kill();
                pgids.push(pid);
            }
        }
        let owned = Owned {
            root: self.dir.clone(),
            netns: self.netns_created.clone(),
            links: self.links_created.clone(),
            pgids,
        };
        let hosts = &mut self.hosts;
        let mut reap = || {
            for h in hosts.iter_mut() {
                if let Some(mut c) = h.child.take() {
                    let _ = c.wait();
                }
            }
        };
        teardown(&RealSystem, &owned, &mut reap)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.torn_down {
            return;
        }
        if std::thread::panicking() {
            eprintln!("---- cluster mk{} logs:\n{}", self.id, self.log_tails(40));
        }
        for p in self.teardown() {
            eprintln!("cluster mk{} teardown: {p}", self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    fn proc(pid: i32, ppid: i32, cmd: &str) -> ProcInfo {
        ProcInfo {
            pid,
            ppid,
            pgid: pid,
            start: 1000 + pid as u64,
            state: 'S',
            cmdline: cmd.split(' ').map(str::to_string).collect(),
            cwd: Some(PathBuf::from("/")),
            netns: Some(1),
        }
    }

    fn owned() -> Owned {
        Owned {
            root: PathBuf::from("/tmp/mkdeadbeef"),
            netns: vec!["mkdeadbeef-h0".into(), "mkdeadbeef-sw".into()],
            links: vec![("mkdeadbeef-sw".into(), "br0".into())],
            pgids: vec![],
        }
    }

    #[test]
    fn names_and_addresses() {
        assert_eq!(switch_netns("0a1b2c3d"), "mk0a1b2c3d-sw");
        assert_eq!(host_netns("0a1b2c3d", 2), "mk0a1b2c3d-h2");
        assert_eq!(host_ip(7, 0), Ipv4Addr::new(10, 99, 7, 10));
        assert_eq!(host_ip(7, 3), Ipv4Addr::new(10, 99, 7, 13));
        for id in ["00000000", "ffffffff", "000000fd", "000000fe"] {
            let s = subnet_for(id);
            assert!((1..=254).contains(&s), "{id} -> {s}");
        }
        let id = random_id();
        assert_eq!(id.len(), 8);
        assert_eq!(cluster_id_of(&format!("mk{id}")), Some(id.as_str()));
        assert_eq!(cluster_id_of("mkdeadbeef1"), None);
        assert_eq!(cluster_id_of("mkdeadbeeg"), None);
        assert!(netns_of_cluster("mkdeadbeef-sw", "deadbeef"));
        assert!(netns_of_cluster("mkdeadbeef-h12", "deadbeef"));
        assert!(!netns_of_cluster("mkdeadbeef-h", "deadbeef"));
        assert!(!netns_of_cluster("mkdeadbeef-hx", "deadbeef"));
        assert!(!netns_of_cluster("mkdeadbeef0-sw", "deadbeef"));
        assert!(!netns_of_cluster("nettest-31002", "deadbeef"));
    }

    #[test]
    fn link_plan_stays_in_our_namespaces_and_adds_no_routes() {
        let plan = link_plan("deadbeef", 42, 2);
        for s in &plan {
            assert_eq!(s.argv[0], "ip");
            assert_eq!(s.argv[1], "-n", "{:?} must name a namespace", s.argv);
            assert!(s.argv[2].starts_with("mkdeadbeef-"));
            assert!(!s.argv.contains(&"route".to_string()), "{:?}", s.argv);
        }
        let joined: Vec<String> = plan.iter().map(|s| s.argv.join(" ")).collect();
        assert!(joined.contains(
            &"ip -n mkdeadbeef-sw link add v1 type veth peer name eth0 netns mkdeadbeef-h1"
                .to_string()
        ));
        assert!(
            joined.contains(&"ip -n mkdeadbeef-h1 addr add 10.99.42.11/24 dev eth0".to_string())
        );
        assert!(joined.contains(&"ip -n mkdeadbeef-sw link set v0 master br0 up".to_string()));
        assert!(joined.contains(&"ip -n mkdeadbeef-h0 link set lo up".to_string()));
        let links: Vec<_> = plan.iter().filter_map(|s| s.creates_link.clone()).collect();
        assert_eq!(
            links,
            vec![
                ("mkdeadbeef-sw".to_string(), "br0".to_string()),
                ("mkdeadbeef-sw".to_string(), "v0".to_string()),
                ("mkdeadbeef-sw".to_string(), "v1".to_string()),
            ]
        );
    }

    #[test]
    fn command_lines() {
        let bin = Path::new("/bin/minik8s");
        let ip = Ipv4Addr::new(10, 99, 1, 10);
        let s = server_argv(bin, Path::new("/d/h0"), ip, false, &["-v".into()]);
        assert_eq!(
            s.join(" "),
            "/bin/minik8s server --data-dir /d/h0 --bind-address 10.99.1.10 \
             --https-listen-port 6443 --advertise-address 10.99.1.10 --resolv-conf= --disable-agent -v"
        );
        let s = server_argv(bin, Path::new("/d/h0"), ip, true, &[]);
        assert!(s.join(" ").ends_with("--node-ip 10.99.1.10 --node-name h0"));
        assert!(!s.contains(&"--disable-agent".to_string()));
        let o = AgentOpts {
            labels: vec![("zone".into(), "a".into())],
            taints: vec!["gpu=yes:NoSchedule".into()],
            extra_args: vec!["-v".into()],
        };
        let a = agent_argv(
            bin,
            ip,
            "K10x::server:y",
            Path::new("/d/h2"),
            2,
            Ipv4Addr::new(10, 99, 1, 12),
            &o,
        );
        assert_eq!(
            a.join(" "),
            "/bin/minik8s agent --join https://10.99.1.10:6443 --token K10x::server:y \
             --data-dir /d/h2 --node-name h2 --node-ip 10.99.1.12 --node-label zone=a \
             --node-taint gpu=yes:NoSchedule -v"
        );
        let opts = ClusterOpts {
            agents: 2,
            agent_opts: vec![o.clone()],
            ..Default::default()
        };
        assert_eq!(opts.agent(1).labels, o.labels);
        assert!(opts.agent(2).labels.is_empty());
        assert!(opts.agent(0).labels.is_empty());
        assert!(opts.wants_images());
        assert!(!ClusterOpts::default().wants_images());
        assert!(ClusterOpts {
            server_agent: true,
            ..Default::default()
        }
        .wants_images());
    }

    #[test]
    fn node_readiness() {
        let list = serde_json::json!({"items": [
            {"metadata": {"name": "h1"}, "status": {"conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "h2"}, "status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "cni"}]}},
            {"metadata": {"name": "h3"}, "status": {}},
        ]});
        let exp = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(unready_nodes(&list, &exp(&["h1"])).is_empty());
        assert_eq!(
            unready_nodes(&list, &exp(&["h1", "h2", "h3", "h4"])),
            vec![
                "h2: Ready=False (KubeletNotReady: cni)".to_string(),
                "h3: no Ready condition".to_string(),
                "h4: not registered".to_string(),
            ]
        );
    }

    #[test]
    fn path_mentions() {
        let r = "/tmp/mkdeadbeef";
        assert!(mentions_path("/tmp/mkdeadbeef", r));
        assert!(mentions_path("--data-dir=/tmp/mkdeadbeef/h1", r));
        assert!(mentions_path("{\"rootfs\":\"/tmp/mkdeadbeef/h1/x\"}", r));
        assert!(!mentions_path("/tmp/mkdeadbeef0/h1", r));
        assert!(!mentions_path("/tmp/mkdeadbeef-x", r));
        assert!(!mentions_path("/tmp/mkdead", r));
        assert!(!mentions_path("anything", ""));
        assert!(path_is_under(Path::new("/tmp/mkdeadbeef/a"), Path::new(r)));
        assert!(!path_is_under(Path::new("/tmp/mkdeadbeef0"), Path::new(r)));
    }

    #[test]
    fn parses_proc_stat() {
        let s = "4242 (containerd-shim) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 10 0 987654 1000 50";
        assert_eq!(parse_stat(s), Some(('S', 1, 4242, 987654)));
        let odd = "7 (a) b) c) Z 3 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0";
        assert_eq!(parse_stat(odd), Some(('Z', 3, 7, 55)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn victims_are_ours_and_descendants_only() {
        let o = owned();
        let mut procs = vec![
            proc(1, 0, "/process_api"),
            proc(2, 0, ""),
            proc(3, 2, ""),                                         // kernel thread
            proc(100, 1, "cargo test"),                             // our ancestor
            proc(101, 100, "e2e-test"),                             // ourselves
            proc(200, 101, "nsenter --net=/run/netns/mkdeadbeef-h0 minik8s server --data-dir /tmp/mkdeadbeef/h0"),
            proc(201, 200, "containerd --config /tmp/mkdeadbeef/h1/c.toml"),
            proc(300, 1, "containerd-shim-runc-v2 -namespace k8s.io -id abc -address /tmp/mkdeadbeef/h1/c.sock"),
            proc(301, 300, "/pause"),                               // container, via descendant
            proc(302, 301, "sh -c sleep"),
            proc(400, 1, "containerd --config /tmp/mkdeadbeef0/c.toml"), // another cluster
            proc(401, 400, "child of foreign"),
            proc(500, 1, "sleep 1000"),                             // in our netns (inode 77)
            proc(600, 1, "orphaned container init"),                // runc init (pid, start) match
            proc(601, 1, "pid reused"),                             // init pid but other start
            proc(700, 1, "bash"),                                   // cwd under root
        ];
        procs[12].netns = Some(77);
        procs[14].start = 99;
        procs[15].cwd = Some(PathBuf::from("/tmp/mkdeadbeef/h0"));
        let mut zombie = proc(800, 201, "");
        zombie.state = 'Z';
        procs.push(zombie);
        let v = select_victims(&procs, 101, &o, &[77], &[(600, 1600), (601, 1601)]);
        let mut pids: Vec<i32> = v.iter().map(|p| p.pid).collect();
        pids.sort();
        assert_eq!(pids, vec![200, 201, 300, 301, 302, 500, 600, 700]);
    }

    #[test]
    fn victims_never_include_self_or_ancestors() {
        let mut o = owned();
        // Even if our own process group or cwd looked like the cluster's.
        let mut me = proc(101, 100, "e2e-test /tmp/mkdeadbeef");
        me.cwd = Some(PathBuf::from("/tmp/mkdeadbeef"));
        let parent = proc(100, 1, "cargo test /tmp/mkdeadbeef");
        o.pgids = vec![100, 101];
        let procs = vec![proc(1, 0, "init /tmp/mkdeadbeef"), parent, me];
        assert!(select_victims(&procs, 101, &o, &[1], &[]).is_empty());
    }

    #[test]
    fn mountinfo_deepest_first() {
        let mi = "\
22 1 254:0 / / rw - ext4 /dev/vda rw
40 22 0:50 / /tmp/mkdeadbeef/h1/state/netns/cni-1 rw - nsfs nsfs rw
41 22 0:51 / /tmp/mkdeadbeef/h1/root/snap/1/fs rw - overlay overlay rw
42 22 0:52 / /tmp/mkdeadbeef/h1/pods/x/vol\\040a rw - tmpfs tmpfs rw
43 22 0:53 / /tmp/mkdeadbeef0/h1 rw - tmpfs tmpfs rw
44 22 0:54 / /tmp/mkdeadbeef rw - tmpfs tmpfs rw
45 22 0:55 / /tmp/mkdeadbeef/h1/root/snap/1/fs rw - overlay overlay rw
";
        let m = mounts_under(mi, Path::new("/tmp/mkdeadbeef"));
        assert_eq!(
            m,
            vec![
                PathBuf::from("/tmp/mkdeadbeef/h1/root/snap/1/fs"),
                PathBuf::from("/tmp/mkdeadbeef/h1/root/snap/1/fs"),
                // equal depth: the later mount first
                PathBuf::from("/tmp/mkdeadbeef/h1/pods/x/vol a"),
                PathBuf::from("/tmp/mkdeadbeef/h1/state/netns/cni-1"),
                PathBuf::from("/tmp/mkdeadbeef"),
            ]
        );
        assert_eq!(unescape_mount_path("a\\040b\\134c"), "a b\\c");
        assert_eq!(unescape_mount_path("trail\\04"), "trail\\04");
    }

    #[test]
    fn runc_state_ownership_and_pod_cgroups() {
        let root = Path::new("/tmp/mkdeadbeef");
        let rr = Path::new("/run/containerd/runc/k8s.io");
        let ours = serde_json::json!({
            "id": "abc", "init_process_pid": 600, "init_process_start": 1600,
            "config": {"rootfs": "/tmp/mkdeadbeef/h1/state/abc/rootfs"},
            "cgroup_paths": {
                "cpu": "/sys/fs/cgroup/cpu,cpuacct/kubepods/besteffort/pod1234/abc",
                "memory": "/sys/fs/cgroup/memory/kubepods/besteffort/pod1234/abc",
                "bogus": "/etc/passwd"}
        })
        .to_string();
        let c = parse_runc_state(&ours, rr, root).expect("ours");
        assert_eq!(c.id, "abc");
        assert_eq!(c.init, Some((600, 1600)));
        assert_eq!(c.cgroups.len(), 2);
        assert_eq!(
            pod_cgroup(&c.cgroups[0]),
            Some(PathBuf::from(
                "/sys/fs/cgroup/cpu,cpuacct/kubepods/besteffort/pod1234"
            ))
        );
        assert_eq!(
            pod_cgroup(Path::new("/sys/fs/cgroup/cpu/other/pod1/x")),
            None
        );
        assert_eq!(
            pod_cgroup(Path::new("/sys/fs/cgroup/cpu/kubepods/besteffort/x")),
            None
        );
        let foreign = ours.replace("/tmp/mkdeadbeef/", "/tmp/mkdeadbeef0/");
        assert_eq!(parse_runc_state(&foreign, rr, root), None);
        let evil = ours.replace("\"abc\"", "\"../x\"");
        assert_eq!(parse_runc_state(&evil, rr, root), None);
    }

    /// Records calls; killed processes vanish, unmounted mounts vanish.
    #[derive(Default)]
    struct Fake {
        procs: RefCell<Vec<ProcInfo>>,
        mounts: RefCell<Vec<String>>,
        files: HashMap<PathBuf, String>,
        dirs: HashMap<PathBuf, Vec<String>>,
        existing: RefCell<HashSet<PathBuf>>,
        inodes: HashMap<PathBuf, u64>,
        stuck_mount: bool,
        calls: RefCell<Vec<String>>,
    }

    impl Fake {
        fn log(&self, s: String) {
            self.calls.borrow_mut().push(s);
        }
        fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
        fn pos(&self, prefix: &str) -> usize {
            self.calls()
                .iter()
                .position(|c| c.starts_with(prefix))
                .unwrap_or_else(|| panic!("no call {prefix}: {:?}", self.calls()))
        }
    }

    impl System for Fake {
        fn run(&self, argv: &[String]) -> std::result::Result<String, String> {
            self.log(format!("run {}", argv.join(" ")));
            if argv.len() == 4 && argv[1] == "netns" && argv[2] == "del" {
                self.existing
                    .borrow_mut()
                    .remove(&Path::new(NETNS_DIR).join(&argv[3]));
            }
            Ok(String::new())
        }
        fn processes(&self) -> Vec<ProcInfo> {
            self.procs.borrow().clone()
        }
        fn own_pid(&self) -> i32 {
            101
        }
        fn kill(&self, pid: i32, start: u64) -> bool {
            self.log(format!("kill {pid}"));
            let mut p = self.procs.borrow_mut();
            let before = p.len();
            p.retain(|x| !(x.pid == pid && x.start == start));
            p.len() != before
        }
        fn mountinfo(&self) -> String {
            self.mounts
                .borrow()
                .iter()
                .enumerate()
                .map(|(n, m)| format!("{n} 1 0:1 / {m} rw - tmpfs tmpfs rw\n"))
                .collect()
        }
        fn umount_lazy(&self, path: &Path) -> std::result::Result<(), String> {
            self.log(format!("umount {}", path.display()));
            if !self.stuck_mount {
                let s = path.display().to_string();
                let mut m = self.mounts.borrow_mut();
                if let Some(i) = m.iter().rposition(|x| *x == s) {
                    m.remove(i);
                }
            }
            Ok(())
        }
        fn rmdir(&self, path: &Path) -> std::result::Result<(), String> {
            self.log(format!("rmdir {}", path.display()));
            Ok(())
        }
        fn remove_tree(&self, path: &Path) -> std::result::Result<(), String> {
            self.log(format!("rmtree {}", path.display()));
            Ok(())
        }
        fn list_dir(&self, path: &Path) -> Vec<String> {
            self.dirs.get(path).cloned().unwrap_or_default()
        }
        fn read_file(&self, path: &Path) -> Option<String> {
            self.files.get(path).cloned()
        }
        fn exists(&self, path: &Path) -> bool {
            self.existing.borrow().contains(path)
        }
        fn netns_inode(&self, path: &Path) -> Option<u64> {
            self.inodes.get(path).copied()
        }
        fn sleep(&self, _d: Duration) {}
    }

    fn fake_cluster() -> Fake {
        let mut f = Fake::default();
        *f.procs.borrow_mut() = vec![
            proc(1, 0, "/process_api"),
            proc(100, 1, "cargo"),
            proc(101, 100, "test"),
            proc(
                200,
                1,
                "containerd-shim-runc-v2 -address /tmp/mkdeadbeef/h1/c.sock",
            ),
            proc(201, 200, "/pause"),
            proc(300, 1, "unrelated"),
        ];
        *f.mounts.borrow_mut() = vec![
            "/tmp/mkdeadbeef/h1/netns/cni-1".into(),
            "/tmp/other".into(),
            "/tmp/mkdeadbeef/h1/rootfs".into(),
        ];
        let rr = PathBuf::from("/run/containerd/runc");
        f.dirs.insert(rr.clone(), vec!["k8s.io".into()]);
        f.dirs
            .insert(rr.join("k8s.io"), vec!["abc".into(), "foreign".into()]);
        f.files.insert(
            rr.join("k8s.io/abc/state.json"),
            serde_json::json!({"id": "abc", "init_process_pid": 201, "init_process_start": 1201,
                "config": {"rootfs": "/tmp/mkdeadbeef/h1/rootfs"},
                "cgroup_paths": {"memory": "/sys/fs/cgroup/memory/kubepods/besteffort/podu1/abc"}})
            .to_string(),
        );
        f.files.insert(
            rr.join("k8s.io/foreign/state.json"),
            serde_json::json!({"id": "foreign", "config": {"rootfs": "/var/lib/x"},
                "cgroup_paths": {"memory": "/sys/fs/cgroup/memory/kubepods/besteffort/podu2/foreign"}})
            .to_string(),
        );
        for p in [
            "/run/netns/mkdeadbeef-h0",
            "/run/netns/mkdeadbeef-sw",
            "/run/containerd/runc/k8s.io/abc",
        ] {
            f.existing.borrow_mut().insert(PathBuf::from(p));
        }
        f.inodes
            .insert(PathBuf::from("/run/netns/mkdeadbeef-h0"), 77);
        f
    }

    #[test]
    fn teardown_order_and_scope() {
        let f = fake_cluster();
        let reaped = RefCell::new(false);
        let problems = teardown(&f, &owned(), &mut || *reaped.borrow_mut() = true);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(*reaped.borrow());
        let calls = f.calls();
        let kills: Vec<&String> = calls.iter().filter(|c| c.starts_with("kill")).collect();
        assert_eq!(kills, vec!["kill 200", "kill 201"]);
        assert!(f.pos("kill") < f.pos("run runc"));
        assert!(calls.contains(
            &"run runc --root /run/containerd/runc/k8s.io delete --force abc".to_string()
        ));
        assert!(!calls
            .iter()
            .any(|c| c.contains("foreign") || c.contains("podu2")));
        assert!(calls
            .contains(&"rmdir /sys/fs/cgroup/memory/kubepods/besteffort/podu1/abc".to_string()));
        assert!(
            calls.contains(&"rmdir /sys/fs/cgroup/memory/kubepods/besteffort/podu1".to_string())
        );
        assert!(calls.contains(&"rmtree /run/containerd/runc/k8s.io/abc".to_string()));
        assert!(f.pos("run runc") < f.pos("umount"));
        // deepest first, never outside the root
        let umounts: Vec<&String> = calls.iter().filter(|c| c.starts_with("umount")).collect();
        assert_eq!(
            umounts,
            vec![
                "umount /tmp/mkdeadbeef/h1/netns/cni-1",
                "umount /tmp/mkdeadbeef/h1/rootfs"
            ]
        );
        assert!(f.pos("umount") < f.pos("run ip -n mkdeadbeef-sw link del br0"));
        assert!(f.pos("run ip netns del mkdeadbeef-h0") < f.pos("run ip netns del mkdeadbeef-sw"));
        assert_eq!(
            calls.last().map(String::as_str),
            Some("rmtree /tmp/mkdeadbeef")
        );
        assert!(f.procs.borrow().iter().any(|p| p.pid == 300));
    }

    #[test]
    fn teardown_keeps_the_directory_while_mounts_remain() {
        let mut f = fake_cluster();
        f.stuck_mount = true;
        let problems = teardown(&f, &owned(), &mut || {});
        assert!(
            problems.iter().any(|p| p.contains("mounts left")),
            "{problems:?}"
        );
        assert!(!f.calls().contains(&"rmtree /tmp/mkdeadbeef".to_string()));
    }

    #[test]
    fn teardown_reports_unkillable_processes() {
        let f = fake_cluster();
        // A process that survives SIGKILL (e.g. stuck in D state).
        f.procs.borrow_mut().push(ProcInfo {
            start: 5,
            ..proc(900, 1, "stuck /tmp/mkdeadbeef/x")
        });
        struct Stubborn<'a>(&'a Fake);
        impl System for Stubborn<'_> {
            fn run(&self, a: &[String]) -> std::result::Result<String, String> {
                self.0.run(a)
            }
            fn processes(&self) -> Vec<ProcInfo> {
                self.0.processes()
            }
            fn own_pid(&self) -> i32 {
                101
            }
            fn kill(&self, pid: i32, start: u64) -> bool {
                pid != 900 && self.0.kill(pid, start)
            }
            fn mountinfo(&self) -> String {
                self.0.mountinfo()
            }
            fn umount_lazy(&self, p: &Path) -> std::result::Result<(), String> {
                self.0.umount_lazy(p)
            }
            fn rmdir(&self, p: &Path) -> std::result::Result<(), String> {
                self.0.rmdir(p)
            }
            fn remove_tree(&self, p: &Path) -> std::result::Result<(), String> {
                self.0.remove_tree(p)
            }
            fn list_dir(&self, p: &Path) -> Vec<String> {
                self.0.list_dir(p)
            }
            fn read_file(&self, p: &Path) -> Option<String> {
                self.0.read_file(p)
            }
            fn exists(&self, p: &Path) -> bool {
                self.0.exists(p)
            }
            fn netns_inode(&self, p: &Path) -> Option<u64> {
                self.0.netns_inode(p)
            }
            fn sleep(&self, _d: Duration) {}
        }
        let problems = teardown(&Stubborn(&f), &owned(), &mut || {});
        assert!(
            problems
                .iter()
                .any(|p| p.contains("processes still alive: 900")),
            "{problems:?}"
        );
    }

    #[test]
    fn sweep_only_touches_dead_owners() {
        let mut f = fake_cluster();
        let tmp = PathBuf::from("/tmp");
        f.dirs.insert(
            tmp.clone(),
            vec![
                "mkdeadbeef".into(),
                "mkcafebabe".into(),
                "mk12".into(),
                "other".into(),
            ],
        );
        f.dirs.insert(
            PathBuf::from(NETNS_DIR),
            vec![
                "mkdeadbeef-sw".into(),
                "mkdeadbeef-h0".into(),
                "mkcafebabe-h0".into(),
                "nettest-31002".into(),
            ],
        );
        // deadbeef's owner (pid 555) is gone; cafebabe's owner (pid 100, start 1100) lives.
        f.files.insert(
            PathBuf::from("/tmp/mkdeadbeef").join(MARKER),
            "555 1\n".into(),
        );
        f.files.insert(
            PathBuf::from("/tmp/mkcafebabe").join(MARKER),
            "100 1100\n".into(),
        );
        let problems = sweep_orphans(&f, &tmp);
        assert!(problems.is_empty(), "{problems:?}");
        let calls = f.calls();
        assert!(calls.contains(&"run ip netns del mkdeadbeef-h0".to_string()));
        assert!(calls.contains(&"run ip netns del mkdeadbeef-sw".to_string()));
        assert!(calls.contains(&"rmtree /tmp/mkdeadbeef".to_string()));
        assert!(!calls
            .iter()
            .any(|c| c.contains("cafebabe") || c.contains("nettest")));
    }
}
