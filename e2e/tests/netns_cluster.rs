//! The multi-host harness itself, with a server only: namespaces, veths and the switch
//! bridge, the server in h0, kubectl through nsenter, and teardown leaving nothing behind
//! (after a normal shutdown, a failed start, and a panic).

use e2e::cluster::{netns_prerequisites, Cluster, ClusterOpts};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a command with null stdio (for ones that leave daemons behind).
fn detached(cmd: &mut Command) {
    let st = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("running a command");
    assert!(st.success(), "{cmd:?}: {st}");
}

fn sh(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .output()
        .expect("running a command");
    assert!(out.status.success(), "{prog} {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Link names in the root network namespace.
fn root_links() -> HashSet<String> {
    sh("ip", &["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// Everything a cluster could leave behind, as readable strings (empty = clean).
fn leftovers(id: &str, dir: &Path, pids: &[u32]) -> Vec<String> {
    let mut out = Vec::new();
    if dir.exists() {
        out.push(format!("directory {} still exists", dir.display()));
    }
    for ns in sh("ip", &["netns", "list"]).lines() {
        if ns.starts_with(&format!("mk{id}-")) {
            out.push(format!("netns {ns}"));
        }
    }
    let root = dir.display().to_string();
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for l in mi.lines().filter(|l| l.contains(&root)) {
        out.push(format!("mount {l}"));
    }
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&root) || pids.contains(&pid) && !cmd.is_empty() {
            out.push(format!("process {pid}: {cmd}"));
        }
    }
    out
}

#[test]
fn server_in_netns_plumbing_kubectl_and_teardown() {
    if !netns_prerequisites() {
        return;
    }
    let links_before = root_links();
    let c = Cluster::start(ClusterOpts {
        spare_hosts: 1,
        ..Default::default()
    })
    .expect("starting the cluster");
    let (id, dir) = (c.id().to_string(), c.dir().to_path_buf());
    assert_eq!(c.hosts(), 2);
    let h0 = c.host_ip(0);
    assert_eq!(c.server_url(), format!("https://{h0}:6443"));

    // namespaces exist, the switch has the bridge and both veth ends
    let list = sh("ip", &["netns", "list"]);
    for n in [
        c.switch_netns(),
        c.netns_name(0).into(),
        c.netns_name(1).into(),
    ] {
        assert!(
            list.lines().any(|l| l.starts_with(&n)),
            "{n} missing: {list}"
        );
    }
    let sw = sh("ip", &["-n", &c.switch_netns(), "-o", "link", "show"]);
    for l in ["br0", "v0@", "v1@"] {
        assert!(sw.contains(l), "{l} missing in switch: {sw}");
    }
    assert!(sw.contains("master br0"), "{sw}");
    // nothing of ours appears in the root namespace
    let new_links: Vec<String> = root_links().difference(&links_before).cloned().collect();
    for l in ["br0", "v0", "v1", "eth0"] {
        assert!(
            !new_links.contains(&l.to_string()),
            "{l} appeared in the root netns"
        );
    }

    // h1 reaches h0 over the switch; no default route anywhere
    let ping = c.exec_ok(
        1,
        &["busybox", "ping", "-c", "1", "-W", "2", &h0.to_string()],
    );
    assert!(ping.contains("1 packets received"), "{ping}");
    for h in 0..2 {
        let routes = c.exec_ok(h, &["ip", "route", "show"]);
        assert!(
            !routes.contains("default"),
            "h{h} has a default route: {routes}"
        );
        let subnet = format!("10.99.{}.0/24 dev eth0", h0.octets()[2]);
        assert!(routes.contains(&subnet), "h{h} routes: {routes}");
        let addrs = c.exec_ok(h, &["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
        assert!(addrs.contains(&format!("{}/24", c.host_ip(h))), "{addrs}");
    }
    // the API server answers from h1 (any HTTP status proves the TCP+TLS path)
    let code = c.exec_ok(
        1,
        &[
            "curl",
            "-sk",
            "-m",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{}/readyz", c.server_url()),
        ],
    );
    assert!(
        code.len() == 3 && code != "000",
        "curl from h1 got {code:?}"
    );

    // kubectl via nsenter into h0
    let k = c.kubectl();
    let ns = k.ok(&["get", "namespaces", "-o", "name"]);
    for n in ["namespace/default", "namespace/kube-system"] {
        assert!(ns.lines().any(|l| l == n), "{n} missing: {ns}");
    }
    let nodes = k.get_json(&["nodes"]);
    assert_eq!(nodes["items"].as_array().map(Vec::len), Some(0));
    assert!(c.token().is_some_and(|t| t.starts_with("K10")));

    let pid = c.pid(0).expect("server pid");
    c.shutdown().expect("clean teardown");
    let left = leftovers(&id, &dir, &[pid]);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn failed_start_cleans_up_and_reports_logs() {
    if !netns_prerequisites() {
        return;
    }
    let err = match Cluster::start(ClusterOpts {
        spare_hosts: 1,
        extra_server_args: vec!["--no-such-flag".into()],
        ..Default::default()
    }) {
        Ok(_) => panic!("start with a bad flag succeeded"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("exited early"), "{err}");
    assert!(err.contains("--no-such-flag"), "log tail missing: {err}");
    let id = err
        .split("cluster mk")
        .nth(1)
        .map(|s| s[..8].to_string())
        .expect("cluster id in the error");
    let dir = std::env::temp_dir().join(format!("mk{id}"));
    let left = leftovers(&id, &dir, &[]);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn drop_while_panicking_cleans_up() {
    if !netns_prerequisites() {
        return;
    }
    let seen: std::sync::Mutex<Option<(String, PathBuf, u32)>> = Default::default();
    let r = std::panic::catch_unwind(|| {
        let c = Cluster::start(ClusterOpts::default()).expect("starting the cluster");
        *seen.lock().unwrap() = Some((c.id().into(), c.dir().into(), c.pid(0).unwrap()));
        panic!("test failure with a live cluster");
    });
    assert!(r.is_err());
    let (id, dir, pid) = seen.lock().unwrap().clone().expect("cluster started");
    let left = leftovers(&id, &dir, &[pid]);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// Things the cluster did not start itself but that are its own: a runc container (init
/// reparented to pid 1, cgroups under kubepods*), a process that escaped into its own
/// session and is known only by its netns, one known only by its cwd, one by its command
/// line (with a child), nested tmpfs mounts and a pod-style netns bind mount.
#[test]
fn teardown_removes_real_leftovers() {
    if !netns_prerequisites() {
        return;
    }
    let c = Cluster::start(ClusterOpts {
        spare_hosts: 1,
        ..Default::default()
    })
    .expect("starting the cluster");
    let (id, dir) = (c.id().to_string(), c.dir().to_path_buf());
    let h1 = format!("--net={}", c.netns_path(1).display());
    let d = dir.display().to_string();

    detached(Command::new("nsenter").args([&h1, "setsid", "-f", "sleep", "1000"]));
    detached(
        Command::new("setsid")
            .args(["-f", "sleep", "1001"])
            .current_dir(dir.join("h1")),
    );
    detached(Command::new("setsid").args(["-f", "sh", "-c", &format!("sleep 1002; : {d}/x")]));

    std::fs::create_dir_all(dir.join("h1/mnt")).unwrap();
    sh("mount", &["-t", "tmpfs", "e2etest", &format!("{d}/h1/mnt")]);
    std::fs::create_dir_all(dir.join("h1/mnt/inner")).unwrap();
    sh(
        "mount",
        &["-t", "tmpfs", "e2etest", &format!("{d}/h1/mnt/inner")],
    );
    std::fs::create_dir_all(dir.join("h1/netns")).unwrap();
    std::fs::write(dir.join("h1/netns/cni-x"), "").unwrap();
    sh("unshare", &[&format!("--net={d}/h1/netns/cni-x"), "true"]);

    // a real runc container, as containerd-shim-runc-v2 would leave it
    let had_containerd_run = Path::new("/run/containerd").exists();
    let had_runc_base = Path::new("/run/containerd/runc").exists();
    let runc_root = format!("/run/containerd/runc/e2e{id}");
    let bundle = dir.join("h1/bundle");
    std::fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
    std::fs::copy("/bin/busybox", bundle.join("rootfs/bin/busybox")).unwrap();
    sh("runc", &["spec", "--bundle", &bundle.display().to_string()]);
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let cg_parent = format!("kubepods-e2e{id}");
    let pod = format!("pod{id}");
    cfg["process"]["args"] = serde_json::json!(["/bin/busybox", "sleep", "1003"]);
    cfg["process"]["terminal"] = false.into();
    cfg["linux"]["cgroupsPath"] = format!("/{cg_parent}/{pod}/ctr{id}").into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    detached(
        Command::new("nsenter")
            .args([&h1, "runc", "--root", &runc_root, "run", "-d", "--bundle"])
            .arg(&bundle)
            .arg(format!("ctr{id}")),
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{runc_root}/ctr{id}/state.json")).unwrap(),
    )
    .unwrap();
    let init = state["init_process_pid"].as_u64().unwrap() as u32;
    let pod_cgroups: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path().join(&cg_parent).join(&pod))
        .filter(|p| p.is_dir())
        .collect();
    assert!(!pod_cgroups.is_empty(), "runc made no pod cgroups");

    // all of it is there before the teardown
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(mi.lines().filter(|l| l.contains(&d)).count(), 3, "{mi}");
    let ns_pids = sh("ip", &["netns", "pids", c.netns_name(1)]);
    assert!(!ns_pids.trim().is_empty(), "no process in h1");
    assert!(Path::new(&format!("/proc/{init}")).exists());

    let server = c.pid(0).unwrap();
    let shut = c.shutdown();
    let mut left = leftovers(&id, &dir, &[server, init]);
    for p in &pod_cgroups {
        if p.exists() {
            left.push(format!("cgroup {}", p.display()));
        }
    }
    if Path::new(&format!("{runc_root}/ctr{id}")).exists() {
        left.push(format!("runc state {runc_root}/ctr{id}"));
    }
    for sleeper in ["sleep 1000", "sleep 1001", "sleep 1002", "sleep 1003"] {
        let found = sh("ps", &["-eo", "args"])
            .lines()
            .any(|l| l.trim_end().ends_with(sleeper));
        if found {
            left.push(format!("process `{sleeper}`"));
        }
    }
    // what this test created in shared places (not the harness's to remove)
    for p in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(p.path().join(&cg_parent));
    }
    let _ = std::fs::remove_dir(&runc_root);
    if !had_runc_base {
        let _ = std::fs::remove_dir("/run/containerd/runc");
    }
    if !had_containerd_run {
        let _ = std::fs::remove_dir("/run/containerd");
    }
    shut.expect("clean teardown");
    assert!(left.is_empty(), "left behind: {left:#?}");
}
