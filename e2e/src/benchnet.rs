//! Figures 12-13 of the bench (issue 5): the service proxy and the cluster DNS, on a
//! cluster of network namespaces (server + one agent + one spare host that runs
//! `minik8s proxy` alone). Included by `src/bin/bench.rs` as a child module, so it uses the
//! bench's report, HTTP/2 client and latency helpers.

use super::{admin_tls, blocking, fmt_lat, lat, ms, rss_kib, Cfg, Report, H2};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use e2e::cluster::{Cluster, ClusterOpts};
use serde_json::{json, Value};
use std::io::BufRead;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NS: &str = "bench-net";
const DNS_PROBE_ARG: &str = "--dns-probe";

/// Entry point of the re-executed bench inside a pod's network namespace:
/// `bench --dns-probe ADDR:PORT N NAME...` (or `--udp-echo` as the first name for the
/// floor). Prints `{"us": [...], "errors": n}`.
pub(super) fn probe_main(args: &[String]) -> Result<()> {
    let target: SocketAddr = args.first().context("probe target")?.parse()?;
    let n: usize = args.get(1).context("probe count")?.parse()?;
    let names = &args[2..];
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.connect(target)?;
    sock.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut us = Vec::with_capacity(n);
    let mut errors = 0usize;
    let mut buf = [0u8; 1500];
    for i in 0..n {
        let name = &names[i % names.len()];
        let id = (i % 65536) as u16;
        let q = dns_query(id, name);
        let t = Instant::now();
        sock.send(&q)?;
        let ok = loop {
            match sock.recv(&mut buf) {
                Ok(len) if len >= 12 && buf[..2] == id.to_be_bytes() => {
                    // echo: the bytes come back; DNS: NOERROR with at least one answer.
                    let echo = buf[..len] == q[..];
                    let answered = buf[3] & 0x0f == 0 && u16::from_be_bytes([buf[6], buf[7]]) > 0;
                    break echo || answered;
                }
                Ok(_) => continue,
                Err(_) => break false,
            }
        };
        if ok {
            us.push(t.elapsed().as_micros() as u64);
        } else {
            errors += 1;
        }
    }
    println!("{}", json!({"us": us, "errors": errors}));
    Ok(())
}

/// A DNS query for `name` IN A with recursion desired.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

pub(super) fn is_probe(args: &[String]) -> bool {
    args.get(1).is_some_and(|a| a == DNS_PROBE_ARG)
}

/// Runs the probe inside the network namespace `netns` (a path), returns latencies in ms.
fn run_probe(
    netns: &Path,
    target: SocketAddr,
    n: usize,
    names: &[String],
) -> Result<(Vec<f64>, usize)> {
    let exe = std::env::current_exe()?;
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .arg(exe)
        .arg(DNS_PROBE_ARG)
        .arg(target.to_string())
        .arg(n.to_string())
        .args(names)
        .output()?;
    if !out.status.success() {
        bail!("probe failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let us: Vec<f64> = v["us"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .map(|u| u / 1000.0)
        .collect();
    Ok((us, v["errors"].as_u64().unwrap_or(0) as usize))
}

fn service(i: usize) -> Bytes {
    Bytes::from(
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("svc-{i}"), "namespace": NS},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
        .to_string(),
    )
}

fn slice(i: usize, per: usize, flip: Option<bool>) -> Value {
    let endpoints: Vec<Value> = (0..per)
        .map(|j| {
            let n = i * per + j;
            let ready = if j == 0 { flip.unwrap_or(true) } else { true };
            json!({"addresses": [format!("10.42.{}.{}", 128 + n / 250, 1 + n % 250)],
                "conditions": {"ready": ready},
                "nodeName": if j % 2 == 0 { "bench-proxy" } else { "elsewhere" }})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("svc-{i}-x"), "namespace": NS,
            "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints})
}

async fn create_all(api: &H2, path: &str, bodies: Vec<Bytes>) -> Result<()> {
    let mut set = tokio::task::JoinSet::new();
    let chunks: Vec<Vec<Bytes>> = bodies
        .chunks(bodies.len().div_ceil(8).max(1))
        .map(<[Bytes]>::to_vec)
        .collect();
    for chunk in chunks {
        let api = H2 {
            send: api.send.clone(),
            base: api.base.clone(),
        };
        let path = path.to_string();
        set.spawn(async move {
            for b in chunk {
                let (st, body) = api.req("POST", &path, b).await?;
                if st != 201 {
                    bail!("POST {path}: {st}: {}", String::from_utf8_lossy(&body));
                }
            }
            Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// `minik8s proxy --report-syncs` in a network namespace; its reports on a channel.
struct ProxyProc {
    child: Child,
    started: Instant,
    rx: std::sync::mpsc::Receiver<(Instant, Value)>,
    /// The newest report received.
    last: std::cell::RefCell<Option<(Instant, Value)>>,
}

impl ProxyProc {
    fn start(cfg: &Cfg, c: &Cluster, host: usize, mode: &str) -> Result<ProxyProc> {
        let log = c.dir().join(format!("proxy-{host}.log"));
        let started = Instant::now();
        let mut child = Command::new("nsenter")
            .arg(format!("--net={}", c.netns_path(host).display()))
            .arg(&cfg.minik8s)
            .args(["proxy", "--kubeconfig"])
            .arg(c.kubeconfig())
            .args(["--node-name", "bench-proxy", "--node-ip"])
            .arg(c.host_ip(host).to_string())
            .args(["--proxy-mode", mode, "--report-syncs"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        let stdout = child.stdout.take().context("proxy stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send((Instant::now(), v)).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(ProxyProc {
            child,
            started,
            rx,
            last: std::cell::RefCell::new(None),
        })
    }

    /// The first report satisfying `f` within `limit` (the newest one already received
    /// counts).
    fn wait(&self, limit: Duration, f: impl Fn(&Value) -> bool) -> Result<(Instant, Value)> {
        if let Some((at, v)) = self.last.borrow().as_ref() {
            if f(v) {
                return Ok((*at, v.clone()));
            }
        }
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((at, v)) => {
                    *self.last.borrow_mut() = Some((at, v.clone()));
                    if f(&v) {
                        return Ok((at, v));
                    }
                }
                Err(_) => bail!(
                    "no matching proxy sync report within {limit:?} (last: {:?})",
                    self.last.borrow().as_ref().map(|(_, v)| v.to_string())
                ),
            }
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Times `nft -f -` of `script` inside host `i`'s namespace.
fn time_nft(c: &Cluster, i: usize, script: &str) -> Result<Duration> {
    use std::io::Write;
    let t = Instant::now();
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", c.netns_path(i).display()))
        .args(["nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("nft stdin")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(t.elapsed())
}

pub(super) async fn fig_net(cfg: &Cfg, rep: &mut Report) -> Result<()> {
    if !blocking(e2e::cluster::netns_prerequisites) {
        rep.note("12-13: skipped (the multi-host harness needs root, kubectl, ip, nsenter, containerd, runc and /usr/lib/cni)");
        return Ok(());
    }
    eprintln!("[12-13] starting a cluster: server (--disable-agent) + 1 agent + 1 spare host for `minik8s proxy`");
    let opts = ClusterOpts {
        agents: 1,
        spare_hosts: 1,
        agent_opts: vec![e2e::cluster::AgentOpts {
            extra_args: vec![
                "--eviction-hard".into(),
                "memory.available<100Mi,nodefs.available<1%,imagefs.available<1%".into(),
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut cluster = blocking(|| Cluster::start(opts))?;
    let res = fig_net_in(cfg, rep, &mut cluster).await;
    if res.is_err() {
        eprintln!("{}", cluster.log_tails(20));
    }
    if let Err(e) = blocking(|| cluster.shutdown()) {
        rep.note(format!("12-13: teardown: {e:#}"));
    }
    res
}

async fn fig_net_in(cfg: &Cfg, rep: &mut Report, c: &mut Cluster) -> Result<()> {
    let tls = admin_tls(&c.kubeconfig())?;
    let api = H2::connect_in(&c.netns_path(0), c.host_ip(0), e2e::cluster::API_PORT, tls).await?;
    let (services, per) = (cfg.net_services, 10usize);
    let (st, b) = api
        .req(
            "POST",
            "/api/v1/namespaces",
            Bytes::from(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
                    .to_string(),
            ),
        )
        .await?;
    if st != 201 {
        bail!("creating namespace: {st}: {}", String::from_utf8_lossy(&b));
    }
    let t = Instant::now();
    create_all(
        &api,
        &format!("/api/v1/namespaces/{NS}/services"),
        (0..services).map(service).collect(),
    )
    .await?;
    let svc_time = t.elapsed();
    create_all(
        &api,
        &format!("/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"),
        (0..services)
            .map(|i| Bytes::from(slice(i, per, None).to_string()))
            .collect(),
    )
    .await?;
    rep.note(format!(
        "12: {services} Services (ClusterIPs allocated) created in {:.1} s, {} endpoints in {services} EndpointSlices",
        svc_time.as_secs_f64(),
        services * per
    ));
    let spare = c.hosts() - 1;
    let want = services;
    let full = |v: &Value| v["services"].as_u64().unwrap_or(0) as usize >= want;

    // Endpoint 0 of every slice starts ready; each measured change flips it (across both
    // modes, so every PUT is a real change).
    let mut ready = vec![true; services];
    for mode in ["nftables", "iptables"] {
        // Cold start: process start -> every service in the rules.
        let p = blocking(|| ProxyProc::start(cfg, c, spare, mode))?;
        let (at, first) = blocking(|| p.wait(Duration::from_secs(120), full))?;
        let cold = at - p.started;
        let rules = first["rules"].as_u64().unwrap_or(0);
        // Endpoint changes: PUT a slice with one endpoint's readiness flipped, wait for the
        // report that covers its resourceVersion.
        let mut lats = Vec::new();
        let changes = if cfg.quick { 50 } else { 200 };
        for k in 0..changes {
            let i = (k * 7) % services;
            ready[i] = !ready[i];
            let body = slice(i, per, Some(ready[i])).to_string();
            let t0 = Instant::now();
            let (st, b) = api
                .req(
                    "PUT",
                    &format!("/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices/svc-{i}-x"),
                    Bytes::from(body),
                )
                .await?;
            if st != 200 {
                bail!("PUT slice: {st}: {}", String::from_utf8_lossy(&b));
            }
            let v: Value = serde_json::from_slice(&b)?;
            let rv: u64 = v["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("0")
                .parse()?;
            let (at, _) = blocking(|| {
                p.wait(Duration::from_secs(10), |r| {
                    r["resourceVersion"].as_u64().unwrap_or(0) >= rv
                })
            })
            .with_context(|| {
                let log = std::fs::read_to_string(c.dir().join(format!("proxy-{spare}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                format!(
                    "change {k} (slice svc-{i}-x, resourceVersion {rv}); proxy log tail:\n{}",
                    tail.join("\n")
                )
            })?;
            lats.push(ms(at - t0));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (rss, _) = rss_kib(p.child.id())?;
        // Restart: the rules are in place; a new process must list and rewrite them.
        p.stop();
        let p = blocking(|| ProxyProc::start(cfg, c, spare, mode))?;
        let (at, _) = blocking(|| p.wait(Duration::from_secs(120), full))?;
        let restart = at - p.started;
        p.stop();

        let l = lat(lats);
        if mode == "nftables" {
            // Floors: one raw `nft -f` of a one-element change, and of the whole ruleset.
            let dump = c.exec_ok(spare, &["nft", "list", "table", "ip", "kube-proxy"]);
            let mut one = Vec::new();
            blocking(|| -> Result<()> {
                time_nft(
                    c,
                    spare,
                    "add table ip bench-floor\nadd set ip bench-floor s { type ipv4_addr; }\n",
                )?;
                for k in 0..50u32 {
                    let ip = Ipv4Addr::from(0x0a_00_00_00 + k);
                    one.push(ms(time_nft(
                        c,
                        spare,
                        &format!("add element ip bench-floor s {{ {ip} }}\n"),
                    )?));
                }
                time_nft(c, spare, "delete table ip bench-floor\n")?;
                Ok(())
            })?;
            let full_floor =
                blocking(|| time_nft(c, spare, &format!("delete table ip kube-proxy\n{dump}")))?;
            let fl = lat(one);
            rep.row(
                "12a. Floor: raw `nft -f` of a one-element change (process start + commit), n=50",
                fmt_lat(&fl),
                "(floor)",
                "1.00× floor",
                None,
            );
            rep.row(
                format!("12a. Endpoint change (EndpointSlice PUT) → in the node's nftables rules, {services} Services / {} endpoints, n={changes}", services * per),
                fmt_lat(&l),
                "p99 < 100 ms",
                format!("p99 {:.1}× floor", l.p99 / fl.p99),
                Some(l.p99 < 100.0),
            );
            rep.row(
                "12b. Floor: raw `nft -f` of the whole ruleset (table replaced)",
                format!("{:.0} ms", ms(full_floor)),
                "(floor)",
                "1.00× floor",
                None,
            );
            rep.row(
                format!("12b. Full resync after a proxy restart (start → all {services} Services in the rules), nftables"),
                format!("{:.0} ms", ms(restart)),
                "< 1 s",
                format!("{:.2}× floor", ms(restart) / ms(full_floor)),
                Some(restart < Duration::from_secs(1)),
            );
            rep.row(
                "12c. Proxy rules and RSS (nftables, `minik8s proxy` process)",
                format!("{rules} rules, {:.1} MiB", rss as f64 / 1024.0),
                "(report)",
                "",
                None,
            );
            rep.note(format!(
                "12 (nftables): first start → all rules {:.0} ms",
                ms(cold)
            ));
        } else {
            rep.row(
                format!("12d. iptables mode: endpoint change → rules, n={changes}; restart resync; rules; RSS"),
                format!(
                    "{}; restart {:.0} ms; {rules} rules; {:.1} MiB",
                    fmt_lat(&l),
                    ms(restart),
                    rss as f64 / 1024.0
                ),
                "(info: the targets are for the default mode)",
                "",
                None,
            );
            rep.note(format!(
                "12 (iptables): first start → all rules {:.0} ms",
                ms(cold)
            ));
        }
    }
    if cfg.wants(13) {
        fig_dns(cfg, rep, c, services).await?;
    }
    Ok(())
}

/// The pid of a process whose command line is exactly `argv`, if any.
fn pid_with_cmdline(argv: &[&str]) -> Option<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        (std::fs::read(format!("/proc/{pid}/cmdline")).ok()? == want).then_some(pid)
    })
}

async fn fig_dns(cfg: &Cfg, rep: &mut Report, c: &mut Cluster, services: usize) -> Result<()> {
    let k = c.kubectl();
    let node = c.node_name(1);
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: dns-probe, namespace: {NS}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 0\n  containers:\n  - {{name: c, image: localhost/busybox:1.35, command: [sleep, \"424242\"]}}\n"
    );
    let out = blocking(|| k.with_stdin(&["apply", "-f", "-"], &pod));
    if out.code != 0 {
        bail!("creating the probe pod: {}", out.stderr);
    }
    let until = Instant::now() + Duration::from_secs(90);
    let pid = loop {
        if let Some(pid) = pid_with_cmdline(&["sleep", "424242"]) {
            break pid;
        }
        if Instant::now() > until {
            bail!("the probe pod's process never appeared");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let netns = std::path::PathBuf::from(format!("/proc/{pid}/ns/net"));
    // The floor: a UDP echo on the server host (same path, no DNS, no DNAT).
    let server_ip = c.host_ip(0);
    let echo =
        e2e::cluster::in_netns(&c.netns_path(0), move || UdpSocket::bind((server_ip, 5353)))??;
    echo.set_read_timeout(Some(Duration::from_millis(200)))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let echo_thread = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((n, from)) = echo.recv_from(&mut buf) {
                let _ = echo.send_to(&buf[..n], from);
            }
        }
    });
    let n = if cfg.quick { 500 } else { 2000 };
    let names: Vec<String> = (0..services.min(1000))
        .step_by(7)
        .map(|i| format!("svc-{i}.{NS}.svc.cluster.local"))
        .collect();
    // Warm-up (ARP, conntrack, the index), then the measured runs.
    let _ = blocking(|| run_probe(&netns, "10.43.0.10:53".parse().unwrap(), 50, &names));
    let floor = blocking(|| run_probe(&netns, SocketAddr::from((server_ip, 5353)), n, &names));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = echo_thread.join();
    let (floor, ferr) = floor?;
    let (dns, derr) = blocking(|| run_probe(&netns, "10.43.0.10:53".parse().unwrap(), n, &names))?;
    let (direct, _) = blocking(|| run_probe(&netns, SocketAddr::from((server_ip, 53)), n, &names))?;
    let (fl, dl, dd) = (lat(floor), lat(dns), lat(direct));
    rep.row(
        format!("13. Floor: UDP echo from a pod to the server host, n={n} ({ferr} lost)"),
        fmt_lat(&fl),
        "(floor)",
        "1.00× floor",
        None,
    );
    rep.row(
        format!("13. DNS A query from a pod to kube-dns 10.43.0.10, {services} Services, n={n} ({derr} failed)"),
        fmt_lat(&dl),
        "p99 < 5 ms",
        format!("p99 {:.1}× floor", dl.p99 / fl.p99),
        Some(dl.p99 < 5.0 && derr == 0),
    );
    rep.note(format!(
        "13: the same queries sent to the server's address directly (no service DNAT): {}",
        fmt_lat(&dd)
    ));
    Ok(())
}
