//! Applying the rendered rules to the kernel: the [`Exec`] seam that runs `nft`,
//! `iptables-restore`, `iptables`, `iptables-save` and `conntrack` ([`RealExec`] for real,
//! [`FakeExec`] in tests), and the two [`Backend`]s built on it. [`NftBackend`] feeds
//! [`NftRenderer`] output to `nft -f -` as one transaction; [`IptablesBackend`] feeds
//! [`IptablesRenderer`] output to `iptables-restore --noflush -w`, learns the existing chains
//! from `iptables-save` on full syncs and keeps the jump rules from the built-in chains with
//! `-C` then `-I`, so a restart never duplicates them. Each backend removes the other mode's
//! leftovers on its first sync, as upstream kube-proxy does when the mode changes. A failed
//! apply makes the next sync a full one.
//!
//! A full nft sync (after a restart, a failure, or the periodic re-check) first reads the
//! table's state fingerprint back (one cheap `nft -j list map`): when it equals the desired
//! state's, the rules are already right and are adopted, not rewritten; when it equals the
//! fingerprint this backend last applied, an incremental transaction is enough; otherwise
//! (no table, rules written by someone else, another layout version) everything is rebuilt.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::iptables::{IptablesRenderer, JumpRule};
use crate::model::ProxyState;
use crate::nft::{Fingerprint, NftRenderer, FINGERPRINT_LIST_ARGS};
use crate::runtime::{ProxyError, ProxyMode};

/// One program run: name or path, arguments, and what to write to its stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
    pub stdin: Option<String>,
}

impl Command {
    pub fn new<I, S>(program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            program: program.to_string(),
            args: args.into_iter().map(Into::into).collect(),
            stdin: None,
        }
    }

    pub fn stdin(mut self, input: String) -> Self {
        self.stdin = Some(input);
        self
    }

    /// `program arg arg ...` for logs and errors.
    pub fn line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How a program ended: exit status (-1 when killed by a signal) and its output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok() -> Self {
        Output::default()
    }

    pub fn status(status: i32, stderr: &str) -> Self {
        Output {
            status,
            stdout: String::new(),
            stderr: stderr.to_string(),
        }
    }

    pub fn stdout(stdout: &str) -> Self {
        Output {
            status: 0,
            stdout: stdout.to_string(),
            stderr: String::new(),
        }
    }

    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// Runs programs. The only way the proxy touches netfilter and conntrack.
pub trait Exec: Send {
    fn run(&mut self, cmd: &Command) -> std::io::Result<Output>;
}

/// Runs programs with `std::process` (blocking), feeding stdin from a helper thread so a
/// program that writes while it reads cannot deadlock.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealExec;

impl Exec for RealExec {
    fn run(&mut self, cmd: &Command) -> std::io::Result<Output> {
        use std::process::Stdio;
        let mut child = std::process::Command::new(&cmd.program)
            .args(&cmd.args)
            .env("LC_ALL", "C")
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let out = std::thread::scope(|scope| {
            if let (Some(mut pipe), Some(input)) = (stdin, cmd.stdin.as_deref()) {
                // A write error (EPIPE when the program exits early) shows in its status.
                scope.spawn(move || {
                    let _ = pipe.write_all(input.as_bytes());
                });
            }
            child.wait_with_output()
        })?;
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

type Responder = Box<dyn FnMut(&Command) -> std::io::Result<Output> + Send>;

/// Records every command and answers from a responder (default: success, empty output) or
/// from queued outputs.
pub struct FakeExec {
    calls: Arc<Mutex<Vec<Command>>>,
    queued: VecDeque<std::io::Result<Output>>,
    responder: Responder,
}

impl Default for FakeExec {
    fn default() -> Self {
        FakeExec::new()
    }
}

impl FakeExec {
    pub fn new() -> Self {
        FakeExec::with(|_| Ok(Output::ok()))
    }

    /// Answers each command with `f` (after any queued outputs are used up).
    pub fn with(f: impl FnMut(&Command) -> std::io::Result<Output> + Send + 'static) -> Self {
        FakeExec {
            calls: Arc::default(),
            queued: VecDeque::new(),
            responder: Box::new(f),
        }
    }

    /// Queues the answer to the next command not yet answered.
    pub fn push(&mut self, out: std::io::Result<Output>) {
        self.queued.push_back(out);
    }

    /// A handle on the recorded commands that stays valid after the fake is boxed.
    pub fn calls(&self) -> Arc<Mutex<Vec<Command>>> {
        self.calls.clone()
    }
}

impl Exec for FakeExec {
    fn run(&mut self, cmd: &Command) -> std::io::Result<Output> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(cmd.clone());
        }
        match self.queued.pop_front() {
            Some(out) => out,
            None => (self.responder)(cmd),
        }
    }
}

/// Names or paths of the programs the proxy runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub nft: String,
    pub iptables: String,
    pub iptables_save: String,
    pub iptables_restore: String,
    pub conntrack: String,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            nft: "nft".into(),
            iptables: "iptables".into(),
            iptables_save: "iptables-save".into(),
            iptables_restore: "iptables-restore".into(),
            conntrack: "conntrack".into(),
        }
    }
}

/// What one successful sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Rules now installed, as the renderer counts them.
    pub rules: usize,
    /// Whether everything was rewritten (first sync, after a failure, or when requested).
    pub full: bool,
}

/// Makes the kernel's rules match a [`ProxyState`].
pub trait Backend: Send {
    /// Renders `state` (incrementally unless a full sync is due) and applies it.
    fn sync(&mut self, state: &ProxyState) -> Result<SyncStats, ProxyError>;
    /// Makes the next [`sync`](Backend::sync) rewrite everything (the periodic re-check).
    fn request_full(&mut self);
    /// Removes everything this mode installed (`kube-proxy --cleanup`).
    fn cleanup(&mut self) -> Result<(), ProxyError>;
    fn mode(&self) -> ProxyMode;
}

/// The backend for `mode`, running programs through `exec`.
pub fn new_backend(mode: ProxyMode, exec: Box<dyn Exec>, tools: Tools) -> Box<dyn Backend> {
    match mode {
        ProxyMode::Nftables => Box::new(NftBackend::new(exec, tools)),
        ProxyMode::Iptables => Box::new(IptablesBackend::new(exec, tools)),
    }
}

fn run(exec: &mut dyn Exec, cmd: &Command) -> Result<Output, ProxyError> {
    exec.run(cmd).map_err(|source| ProxyError::Exec {
        command: cmd.line(),
        source,
    })
}

fn stderr_of(out: &Output) -> String {
    let s = out.stderr.trim();
    if s.is_empty() {
        format!("exit status {}", out.status)
    } else {
        s.to_string()
    }
}

fn iptables_save(exec: &mut dyn Exec, tools: &Tools) -> Result<String, ProxyError> {
    let mut all = String::new();
    for table in ["filter", "nat"] {
        let cmd = Command::new(&tools.iptables_save, ["-t", table]);
        let out = run(exec, &cmd)?;
        if !out.success() {
            return Err(ProxyError::SaveIptables(stderr_of(&out)));
        }
        all.push_str(&out.stdout);
    }
    Ok(all)
}

fn iptables_restore(exec: &mut dyn Exec, tools: &Tools, script: String) -> Result<(), String> {
    let cmd = Command::new(&tools.iptables_restore, ["--noflush", "-w"]).stdin(script);
    match exec.run(&cmd) {
        Ok(out) if out.success() => Ok(()),
        Ok(out) => Err(stderr_of(&out)),
        Err(e) => Err(format!("{}: {e}", cmd.line())),
    }
}

fn nft_apply(exec: &mut dyn Exec, tools: &Tools, script: String) -> Result<(), String> {
    let cmd = Command::new(&tools.nft, ["-f", "-"]).stdin(script);
    match exec.run(&cmd) {
        Ok(out) if out.success() => Ok(()),
        Ok(out) => Err(stderr_of(&out)),
        Err(e) => Err(format!("{}: {e}", cmd.line())),
    }
}

/// Removes the iptables mode's chains and jump rules, if any.
fn cleanup_iptables(exec: &mut dyn Exec, tools: &Tools) -> Result<(), ProxyError> {
    let save = iptables_save(exec, tools)?;
    let script = IptablesRenderer::cleanup_script(&save);
    if script.trim().is_empty() {
        return Ok(());
    }
    delete_jump_rules(exec, tools)?;
    iptables_restore(exec, tools, script).map_err(|e| ProxyError::Cleanup {
        mode: ProxyMode::Iptables,
        message: e,
    })
}

/// The state fingerprint stored in our nft table; `None` when there is no table or map (or
/// `nft` cannot be run: the apply that follows reports that).
fn nft_fingerprint(exec: &mut dyn Exec, tools: &Tools) -> Option<Fingerprint> {
    let cmd = Command::new(&tools.nft, FINGERPRINT_LIST_ARGS);
    match exec.run(&cmd) {
        Ok(out) if out.success() => Fingerprint::from_nft_json(&out.stdout),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(error = %e, "could not read the nftables state fingerprint");
            None
        }
    }
}

/// Removes the nftables mode's table, if any.
fn cleanup_nft(exec: &mut dyn Exec, tools: &Tools) -> Result<(), ProxyError> {
    let script = NftRenderer::cleanup_script();
    if script.trim().is_empty() {
        return Ok(());
    }
    nft_apply(exec, tools, script).map_err(|e| ProxyError::Cleanup {
        mode: ProxyMode::Nftables,
        message: e,
    })
}

/// The nftables mode: one `nft -f -` transaction per sync.
pub struct NftBackend {
    exec: Box<dyn Exec>,
    tools: Tools,
    renderer: NftRenderer,
    started: bool,
    full_next: bool,
}

impl NftBackend {
    pub fn new(exec: Box<dyn Exec>, tools: Tools) -> Self {
        NftBackend {
            exec,
            tools,
            renderer: NftRenderer::new(),
            started: false,
            full_next: true,
        }
    }
}

impl Backend for NftBackend {
    fn sync(&mut self, state: &ProxyState) -> Result<SyncStats, ProxyError> {
        if !self.started {
            self.started = true;
            // Leftovers of the iptables mode would still DNAT before our rules; failing to
            // read or remove them (no iptables installed, say) is not fatal.
            if let Err(e) = cleanup_iptables(self.exec.as_mut(), &self.tools) {
                tracing::warn!(error = %e, "could not clean up iptables proxy rules");
            }
        }
        let mut full = self.full_next;
        if full {
            let wanted = Fingerprint::of(state);
            let kernel = nft_fingerprint(self.exec.as_mut(), &self.tools);
            if kernel == Some(wanted) {
                self.full_next = false;
                if self.renderer.fingerprint() == Some(wanted) {
                    // The periodic re-check of an intact table: nothing to do.
                    tracing::debug!(fingerprint = %wanted, "nftables rules intact");
                } else {
                    self.renderer.adopt(state);
                    tracing::info!(
                        fingerprint = %wanted,
                        rules = self.renderer.rule_count(),
                        "nftables rules already match the desired state, adopting them"
                    );
                }
                return Ok(SyncStats {
                    rules: self.renderer.rule_count(),
                    full: false,
                });
            }
            if kernel.is_some() && kernel == self.renderer.fingerprint() {
                // The table is as this backend left it: only the changes are needed.
                full = false;
            } else {
                self.renderer.reset();
            }
        }
        let script = self.renderer.render(state);
        let result = if script.trim().is_empty() {
            Ok(())
        } else {
            nft_apply(self.exec.as_mut(), &self.tools, script)
        };
        match result {
            Ok(()) => {
                self.renderer.applied(true);
                self.full_next = false;
                Ok(SyncStats {
                    rules: self.renderer.rule_count(),
                    full,
                })
            }
            Err(e) => {
                self.renderer.applied(false);
                self.full_next = true;
                Err(ProxyError::ApplyNftables(e))
            }
        }
    }

    fn request_full(&mut self) {
        self.full_next = true;
    }

    fn cleanup(&mut self) -> Result<(), ProxyError> {
        self.renderer.reset();
        self.full_next = true;
        cleanup_nft(self.exec.as_mut(), &self.tools)
    }

    fn mode(&self) -> ProxyMode {
        ProxyMode::Nftables
    }
}

/// The iptables mode: `iptables-restore --noflush -w` of the filter and nat tables.
pub struct IptablesBackend {
    exec: Box<dyn Exec>,
    tools: Tools,
    renderer: IptablesRenderer,
    started: bool,
    full_next: bool,
}

impl IptablesBackend {
    pub fn new(exec: Box<dyn Exec>, tools: Tools) -> Self {
        IptablesBackend {
            exec,
            tools,
            renderer: IptablesRenderer::new(),
            started: false,
            full_next: true,
        }
    }

    /// Learns the chains a previous run left (they are deleted when unused) and makes the
    /// next render a full one.
    fn prepare_full(&mut self) -> Result<(), ProxyError> {
        let save = iptables_save(self.exec.as_mut(), &self.tools)?;
        self.renderer.observe_existing(&save);
        self.renderer.reset();
        Ok(())
    }
}

fn iptables(
    exec: &mut dyn Exec,
    tools: &Tools,
    op: &str,
    rule: &JumpRule,
) -> Result<Output, ProxyError> {
    let mut argv = vec![
        "-w".to_string(),
        "-t".into(),
        rule.table.into(),
        op.into(),
        rule.chain.into(),
    ];
    argv.extend(rule.args.iter().cloned());
    run(exec, &Command::new(&tools.iptables, argv))
}

/// For each jump rule: `-C`, and `-I` when it is missing (status 1), so restarts never
/// duplicate them. Run after a restore created the target chains.
fn ensure_jump_rules(exec: &mut dyn Exec, tools: &Tools) -> Result<(), ProxyError> {
    for rule in IptablesRenderer::jump_rules() {
        let err = |out: &Output| ProxyError::EnsureJumpRule {
            table: rule.table.to_string(),
            chain: rule.chain.to_string(),
            message: stderr_of(out),
        };
        let check = iptables(exec, tools, "-C", &rule)?;
        match check.status {
            0 => continue,
            1 => {}
            _ => return Err(err(&check)),
        }
        let insert = iptables(exec, tools, "-I", &rule)?;
        if !insert.success() {
            return Err(err(&insert));
        }
    }
    Ok(())
}

/// How many copies of one jump rule cleanup deletes at most (older runs may have left more
/// than one).
const MAX_JUMP_COPIES: usize = 8;

/// Deletes every copy of each jump rule (`-D` until it fails).
fn delete_jump_rules(exec: &mut dyn Exec, tools: &Tools) -> Result<(), ProxyError> {
    for rule in IptablesRenderer::jump_rules() {
        for _ in 0..MAX_JUMP_COPIES {
            if !iptables(exec, tools, "-D", &rule)?.success() {
                break;
            }
        }
    }
    Ok(())
}

impl Backend for IptablesBackend {
    fn sync(&mut self, state: &ProxyState) -> Result<SyncStats, ProxyError> {
        if !self.started {
            self.started = true;
            // The nft table of the nftables mode would also DNAT service traffic (the script
            // tolerates its absence). Failing to remove it is logged, not fatal.
            if let Err(e) = cleanup_nft(self.exec.as_mut(), &self.tools) {
                tracing::warn!(error = %e, "could not clean up nftables proxy rules");
            }
        }
        let full = self.full_next;
        if full {
            self.prepare_full()?;
        }
        let script = self.renderer.render(state);
        let result = if script.trim().is_empty() {
            Ok(())
        } else {
            iptables_restore(self.exec.as_mut(), &self.tools, script)
        };
        if let Err(e) = result {
            self.renderer.applied(false);
            self.full_next = true;
            return Err(ProxyError::ApplyIptables(e));
        }
        self.renderer.applied(true);
        if full {
            // The chains exist now; hook them in (again, if someone removed a jump).
            ensure_jump_rules(self.exec.as_mut(), &self.tools)?;
        }
        self.full_next = false;
        Ok(SyncStats {
            rules: self.renderer.rule_count(),
            full,
        })
    }

    fn request_full(&mut self) {
        self.full_next = true;
    }

    fn cleanup(&mut self) -> Result<(), ProxyError> {
        self.renderer.reset();
        self.full_next = true;
        cleanup_iptables(self.exec.as_mut(), &self.tools)
    }

    fn mode(&self) -> ProxyMode {
        ProxyMode::Iptables
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, Protocol, ServicePort, ServicePortName};
    use std::net::Ipv4Addr;

    fn state(n_endpoints: u8) -> ProxyState {
        ProxyState {
            node_name: "node-a".into(),
            node_ips: vec![Ipv4Addr::new(192, 0, 2, 10)],
            cluster_cidr: (Ipv4Addr::new(10, 42, 0, 0), 16),
            service_cidr: (Ipv4Addr::new(10, 43, 0, 0), 16),
            services: vec![ServicePort {
                name: ServicePortName {
                    namespace: "default".into(),
                    name: "web".into(),
                    port: "".into(),
                    protocol: Protocol::Tcp,
                },
                cluster_ip: Ipv4Addr::new(10, 43, 0, 20),
                port: 80,
                node_port: None,
                external_ips: vec![],
                load_balancer_ips: vec![],
                affinity_timeout: None,
                external_local: false,
                internal_local: false,
                endpoints: (1..=n_endpoints)
                    .map(|i| Endpoint {
                        ip: Ipv4Addr::new(10, 42, 0, i),
                        port: 8080,
                        ready: true,
                        serving: true,
                        terminating: false,
                        node_name: None,
                    })
                    .collect(),
            }],
        }
    }

    fn lines(calls: &Arc<Mutex<Vec<Command>>>) -> Vec<String> {
        calls.lock().unwrap().iter().map(Command::line).collect()
    }

    fn jump_lines(op: &str) -> Vec<String> {
        IptablesRenderer::jump_rules()
            .iter()
            .map(|j| {
                format!(
                    "iptables -w -t {} {op} {} {}",
                    j.table,
                    j.chain,
                    j.args.join(" ")
                )
            })
            .collect()
    }

    fn tools() -> Tools {
        Tools {
            nft: "/sbin/nft".into(),
            ..Tools::default()
        }
    }

    #[test]
    fn nft_first_sync_cleans_iptables_then_applies_in_full() {
        // iptables mode left a chain and one copy of each jump rule
        const SAVED: &str = "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n";
        let mut deleted = std::collections::HashSet::new();
        let fake = FakeExec::with(move |cmd| {
            Ok(match cmd.program.as_str() {
                "iptables-save" => Output::stdout(SAVED),
                "iptables" if deleted.insert(cmd.args.clone()) => Output::ok(),
                "iptables" => Output::status(1, "iptables: Bad rule"),
                _ => Output::ok(),
            })
        });
        let calls = fake.calls();
        let mut b = NftBackend::new(Box::new(fake), tools());
        let stats = b.sync(&state(1)).unwrap();
        assert!(stats.full);
        let l = lines(&calls);
        assert_eq!(l[..2], ["iptables-save -t filter", "iptables-save -t nat"]);
        let mut deletes = Vec::new();
        for d in jump_lines("-D") {
            deletes.push(d.clone());
            deletes.push(d);
        }
        let n = 2 + deletes.len();
        assert_eq!(l[2..n], deletes[..]);
        assert_eq!(l[n], "iptables-restore --noflush -w");
        assert_eq!(
            calls.lock().unwrap()[n].stdin.as_deref(),
            Some(IptablesRenderer::cleanup_script(SAVED).as_str())
        );
        assert_eq!(
            l[n + 1],
            "/sbin/nft -j list map ip kube-proxy state-fingerprint"
        );
        assert_eq!(l[n + 2], "/sbin/nft -f -");
        let script = calls.lock().unwrap()[n + 2]
            .stdin
            .clone()
            .unwrap_or_default();
        assert!(script.contains("kube-proxy"), "{script}");
        assert_eq!(l.len(), n + 3);

        // the second sync is incremental and does not clean up again
        let stats = b.sync(&state(2)).unwrap();
        assert!(!stats.full);
        assert_eq!(lines(&calls)[n + 3..], ["/sbin/nft -f -"]);
    }

    #[test]
    fn nft_failure_forces_a_full_sync_next_time() {
        let mut fake = FakeExec::new();
        fake.push(Ok(Output::ok())); // iptables-save filter
        fake.push(Ok(Output::ok())); // iptables-save nat
        fake.push(Ok(Output::status(1, "Error: No such file or directory"))); // no table yet
        fake.push(Ok(Output::status(1, "Error: syntax error")));
        let calls = fake.calls();
        let mut b = NftBackend::new(Box::new(fake), Tools::default());
        let err = b.sync(&state(1)).unwrap_err();
        assert!(
            matches!(err, ProxyError::ApplyNftables(ref m) if m.contains("syntax error")),
            "{err}"
        );
        let stats = b.sync(&state(1)).unwrap();
        assert!(stats.full, "full again after a failure");
        assert!(!b.sync(&state(1)).unwrap().full);
        b.request_full();
        assert!(b.sync(&state(1)).unwrap().full);
        // iptables leftovers were only looked at once
        let saves = lines(&calls)
            .iter()
            .filter(|l| l.starts_with("iptables-save"))
            .count();
        assert_eq!(saves, 2);
    }

    /// A fake `nft` that keeps the state fingerprint the way the kernel does: set by the
    /// last `state-fingerprint` element line of an applied script, dropped by the cleanup
    /// script, listed as JSON. The returned handle holds the current words.
    fn fake_kernel() -> (FakeExec, Arc<Mutex<Option<Vec<u64>>>>) {
        let words: Arc<Mutex<Option<Vec<u64>>>> = Arc::default();
        let kernel = words.clone();
        let fake = FakeExec::with(move |cmd| {
            let mut words = kernel.lock().unwrap();
            if cmd.program != "nft" {
                return Ok(Output::ok());
            }
            if cmd.args[..2] == ["-j", "list"] {
                return Ok(match &*words {
                    Some(w) => {
                        let elem: Vec<_> = w.iter().enumerate().map(|(i, w)| (i, *w)).collect();
                        Output::stdout(
                            &serde_json::json!({"nftables": [
                                {"metainfo": {"version": "1.0.6"}},
                                {"map": {"family": "ip", "name": "state-fingerprint",
                                         "table": "kube-proxy", "type": "inet_service",
                                         "map": "mark", "elem": elem}}]})
                            .to_string(),
                        )
                    }
                    None => Output::status(1, "Error: No such file or directory"),
                });
            }
            let script = cmd.stdin.clone().unwrap_or_default();
            if script == NftRenderer::cleanup_script() {
                *words = None;
            }
            let prefix = "add element ip kube-proxy state-fingerprint { ";
            if let Some(line) = script.lines().rev().find(|l| l.starts_with(prefix)) {
                let parsed = line[prefix.len()..]
                    .trim_end_matches(" }")
                    .split(", ")
                    .map(|kv| {
                        let (_, v) = kv.split_once(" : 0x").unwrap();
                        u64::from_str_radix(v, 16).unwrap()
                    })
                    .collect();
                *words = Some(parsed);
            }
            Ok(Output::ok())
        });
        (fake, words)
    }

    /// The `nft -f -` scripts among the recorded commands.
    fn nft_scripts(calls: &Arc<Mutex<Vec<Command>>>) -> Vec<String> {
        calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.program == "nft" && c.args == ["-f", "-"])
            .map(|c| c.stdin.clone().unwrap_or_default())
            .collect()
    }

    const FULL_PREFIX: &str = "add table ip kube-proxy\ndelete table ip kube-proxy\n";
    const LIST_FINGERPRINT: &str = "nft -j list map ip kube-proxy state-fingerprint";

    #[test]
    fn nft_restart_with_matching_fingerprint_adopts_without_writing() {
        let (fake, kernel) = fake_kernel();
        let first_calls = fake.calls();
        let mut first = NftBackend::new(Box::new(fake), Tools::default());
        let stats = first.sync(&state(2)).unwrap();
        assert!(stats.full);
        assert!(nft_scripts(&first_calls)[0].starts_with(FULL_PREFIX));
        let words = kernel.lock().unwrap().clone().expect("fingerprint written");
        assert_eq!(words.len(), 8);

        // the restarted process finds its own fingerprint: only the read, no write
        let (fake, restarted) = fake_kernel();
        *restarted.lock().unwrap() = Some(words.clone());
        let calls = fake.calls();
        let mut b = NftBackend::new(Box::new(fake), Tools::default());
        let adopted = b.sync(&state(2)).unwrap();
        assert!(!adopted.full);
        assert_eq!(adopted.rules, stats.rules);
        assert_eq!(
            lines(&calls),
            [
                "iptables-save -t filter",
                "iptables-save -t nat",
                LIST_FINGERPRINT
            ]
        );

        // the next change is incremental, exactly what the first process would have sent
        let before = calls.lock().unwrap().len();
        let stats = b.sync(&state(3)).unwrap();
        assert!(!stats.full);
        assert_eq!(lines(&calls)[before..], ["nft -f -"]);
        let script = nft_scripts(&calls).pop().unwrap();
        assert!(!script.contains("add table"), "{script}");
        assert!(script.contains("dnat to 10.42.0.3:8080"), "{script}");
        first.sync(&state(3)).unwrap();
        assert_eq!(nft_scripts(&first_calls).pop().unwrap(), script);
        let mut fresh = NftRenderer::new();
        fresh.render(&state(3));
        fresh.applied(true);
        assert_eq!(stats.rules, fresh.rule_count());
        assert_eq!(
            *restarted.lock().unwrap(),
            Some(
                Fingerprint::of(&state(3))
                    .0
                    .chunks(4)
                    .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect()
            )
        );
    }

    #[test]
    fn nft_restart_with_another_fingerprint_rebuilds() {
        let (fake, kernel) = fake_kernel();
        let mut old = NftBackend::new(Box::new(fake), Tools::default());
        old.sync(&state(1)).unwrap();
        let words = kernel.lock().unwrap().clone();

        let (fake, restarted) = fake_kernel();
        *restarted.lock().unwrap() = words;
        let calls = fake.calls();
        let mut b = NftBackend::new(Box::new(fake), Tools::default());
        assert!(b.sync(&state(2)).unwrap().full);
        let scripts = nft_scripts(&calls);
        assert_eq!(scripts.len(), 1);
        assert!(scripts[0].starts_with(FULL_PREFIX));

        // a table written by another layout version (or mangled) is rebuilt too
        let (fake, restarted) = fake_kernel();
        *restarted.lock().unwrap() = Some(vec![0; 8]);
        let calls = fake.calls();
        let mut b = NftBackend::new(Box::new(fake), Tools::default());
        assert!(b.sync(&state(2)).unwrap().full);
        assert!(nft_scripts(&calls)[0].starts_with(FULL_PREFIX));
    }

    #[test]
    fn nft_periodic_full_sync_skips_an_intact_table() {
        let (fake, kernel) = fake_kernel();
        let calls = fake.calls();
        let mut b = NftBackend::new(Box::new(fake), Tools::default());
        b.sync(&state(2)).unwrap();
        let writes = nft_scripts(&calls).len();

        // same state, table intact: read only
        b.request_full();
        let before = calls.lock().unwrap().len();
        let stats = b.sync(&state(2)).unwrap();
        assert!(!stats.full);
        assert_eq!(lines(&calls)[before..], [LIST_FINGERPRINT]);
        assert_eq!(nft_scripts(&calls).len(), writes);

        // changed state, table as we left it: incremental
        b.request_full();
        let stats = b.sync(&state(3)).unwrap();
        assert!(!stats.full);
        let script = nft_scripts(&calls).pop().unwrap();
        assert!(!script.starts_with(FULL_PREFIX), "{script}");

        // someone else rewrote the table: everything is rebuilt
        *kernel.lock().unwrap() = Some(vec![7; 8]);
        b.request_full();
        assert!(b.sync(&state(3)).unwrap().full);
        assert!(nft_scripts(&calls).pop().unwrap().starts_with(FULL_PREFIX));
        // and the table vanished: rebuilt as well
        *kernel.lock().unwrap() = None;
        b.request_full();
        assert!(b.sync(&state(3)).unwrap().full);
        // without a periodic request, no read at all
        let before = calls.lock().unwrap().len();
        assert!(!b.sync(&state(3)).unwrap().full);
        assert_eq!(calls.lock().unwrap().len(), before);
    }

    #[test]
    fn nft_start_survives_missing_iptables() {
        let fake = FakeExec::with(|cmd| {
            if cmd.program.starts_with("iptables") {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file",
                ))
            } else {
                Ok(Output::ok())
            }
        });
        let mut b = NftBackend::new(Box::new(fake), Tools::default());
        assert!(b.sync(&state(1)).unwrap().full);
    }

    #[test]
    fn iptables_first_sync_cleans_nft_restores_then_ensures_jumps() {
        // -C says "missing" for every jump rule.
        let fake = FakeExec::with(|cmd| {
            Ok(
                match (cmd.program.as_str(), cmd.args.get(3).map(String::as_str)) {
                    ("iptables", Some("-C")) => Output::status(1, "iptables: Bad rule"),
                    _ => Output::ok(),
                },
            )
        });
        let calls = fake.calls();
        let mut b = IptablesBackend::new(Box::new(fake), Tools::default());
        let stats = b.sync(&state(1)).unwrap();
        assert!(stats.full);
        let l = lines(&calls);
        assert_eq!(l[0], "nft -f -");
        assert_eq!(
            calls.lock().unwrap()[0].stdin.as_deref(),
            Some(NftRenderer::cleanup_script().as_str())
        );
        assert_eq!(
            l[1..4],
            [
                "iptables-save -t filter",
                "iptables-save -t nat",
                "iptables-restore --noflush -w"
            ]
        );
        let script = calls.lock().unwrap()[3].stdin.clone().unwrap_or_default();
        assert!(
            script.contains("*nat") && script.contains("COMMIT"),
            "{script}"
        );
        let mut expected = Vec::new();
        for (c, i) in jump_lines("-C").into_iter().zip(jump_lines("-I")) {
            expected.push(c);
            expected.push(i);
        }
        assert!(!expected.is_empty());
        assert_eq!(l[4..], expected[..]);

        // incremental sync: no save, no jump rules
        assert!(!b.sync(&state(2)).unwrap().full);
        assert_eq!(lines(&calls)[l.len()..], ["iptables-restore --noflush -w"]);
    }

    #[test]
    fn iptables_restart_does_not_duplicate_jump_rules() {
        // -C finds every rule: nothing is inserted.
        let fake = FakeExec::new();
        let calls = fake.calls();
        let mut b = IptablesBackend::new(Box::new(fake), Tools::default());
        b.sync(&state(1)).unwrap();
        let l = lines(&calls);
        assert_eq!(
            l.iter().filter(|c| c.contains(" -C ")).count(),
            jump_lines("-C").len()
        );
        assert!(!l.iter().any(|c| c.contains(" -I ")), "{l:?}");
    }

    #[test]
    fn iptables_failures_are_named_after_their_step() {
        // restore fails: error, and the next sync is full again (save + checks again)
        let fake = FakeExec::with(|cmd| {
            Ok(if cmd.program == "iptables-restore" {
                Output::status(2, "iptables-restore: line 3 failed")
            } else {
                Output::ok()
            })
        });
        let calls = fake.calls();
        let mut b = IptablesBackend::new(Box::new(fake), Tools::default());
        assert!(
            matches!(b.sync(&state(1)), Err(ProxyError::ApplyIptables(m)) if m.contains("line 3"))
        );
        assert!(
            !lines(&calls).iter().any(|c| c.contains(" -C ")),
            "no jumps without chains"
        );
        let before = calls.lock().unwrap().len();
        let _ = b.sync(&state(1));
        let l = lines(&calls);
        assert!(l[before..].iter().any(|c| c.starts_with("iptables-save")));

        // a broken -C (status 2) fails the sync, and the next one is full again
        let fake = FakeExec::with(|cmd| {
            Ok(if cmd.args.get(3).map(String::as_str) == Some("-C") {
                Output::status(2, "iptables: No chain/target/match by that name.")
            } else {
                Output::ok()
            })
        });
        let mut b = IptablesBackend::new(Box::new(fake), Tools::default());
        let err = b.sync(&state(1)).unwrap_err();
        assert!(matches!(err, ProxyError::EnsureJumpRule { .. }), "{err}");
        assert!(err.to_string().contains("No chain/target"), "{err}");
        assert!(matches!(
            b.sync(&state(1)),
            Err(ProxyError::EnsureJumpRule { .. })
        ));

        // iptables-save failing
        let fake = FakeExec::with(|cmd| {
            Ok(if cmd.program == "iptables-save" {
                Output::status(1, "permission denied")
            } else {
                Output::ok()
            })
        });
        let mut b = IptablesBackend::new(Box::new(fake), Tools::default());
        assert!(matches!(
            b.sync(&state(1)),
            Err(ProxyError::SaveIptables(_))
        ));
    }

    #[test]
    fn cleanup_runs_the_renderers_scripts() {
        let fake = FakeExec::new();
        let calls = fake.calls();
        let mut b = NftBackend::new(Box::new(fake), Tools::default());
        b.cleanup().unwrap();
        assert_eq!(lines(&calls), ["nft -f -"]);

        // our chains exist: delete the jumps (until -D fails), then the chains
        const SAVED: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n\
            -A PREROUTING -m comment --comment \"kubernetes service portals\" \
            -j KUBE-SERVICES\nCOMMIT\n";
        let fake = FakeExec::with(|cmd| {
            Ok(
                match (cmd.program.as_str(), cmd.args.get(1).map(String::as_str)) {
                    ("iptables-save", Some("nat")) => Output::stdout(SAVED),
                    ("iptables", _) if cmd.args[3] == "-D" => Output::status(
                        1,
                        "iptables: Bad rule (does a matching rule exist in that chain?).",
                    ),
                    _ => Output::ok(),
                },
            )
        });
        let calls = fake.calls();
        let mut b = IptablesBackend::new(Box::new(fake), Tools::default());
        b.cleanup().unwrap();
        let l = lines(&calls);
        assert!(!IptablesRenderer::cleanup_script(SAVED).trim().is_empty());
        assert_eq!(l[..2], ["iptables-save -t filter", "iptables-save -t nat"]);
        assert_eq!(l[2..l.len() - 1], jump_lines("-D")[..]);
        assert_eq!(l[l.len() - 1], "iptables-restore --noflush -w");
        assert_eq!(
            calls.lock().unwrap().last().and_then(|c| c.stdin.clone()),
            Some(IptablesRenderer::cleanup_script(SAVED))
        );

        // nothing of ours: no command after the saves
        let fake = FakeExec::new();
        let calls = fake.calls();
        let mut b = IptablesBackend::new(Box::new(fake), Tools::default());
        b.cleanup().unwrap();
        assert_eq!(lines(&calls).len(), 2);
    }

    #[test]
    fn real_exec_feeds_stdin_and_reports_status() {
        let mut e = RealExec;
        let out = e
            .run(&Command::new("sh", ["-c", "cat; echo err >&2; exit 3"]).stdin("hello\n".into()))
            .unwrap();
        assert_eq!(out.status, 3);
        assert_eq!(out.stdout, "hello\n");
        assert_eq!(out.stderr, "err\n");
        let big = "x".repeat(1 << 20);
        let out = e.run(&Command::new("wc", ["-c"]).stdin(big)).unwrap();
        assert_eq!(out.stdout.trim(), (1 << 20).to_string());
        assert!(e
            .run(&Command::new("/nonexistent/prog", Vec::<String>::new()))
            .is_err());
    }

    /// Whether this process runs in a fresh network namespace: its only interface is `lo`.
    fn in_private_netns() -> bool {
        let Ok(dev) = std::fs::read_to_string("/proc/self/net/dev") else {
            return false;
        };
        let names: Vec<&str> = dev
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        names == ["lo"]
    }

    fn sh(line: &str) -> String {
        let out = RealExec
            .run(&Command::new("sh", ["-c", line]))
            .expect("run sh");
        out.stdout
    }

    /// The real programs against the kernel. Only inside a private network namespace:
    /// `unshare -n <test binary> --ignored real_backends`.
    #[test]
    #[ignore]
    fn real_backends_in_a_private_netns() {
        if !in_private_netns() {
            eprintln!("skipped: not in a private network namespace");
            return;
        }
        let ipt_jumps = || sh("iptables-save | grep -c -- '-j KUBE-SERVICES' || true");
        // iptables mode: rules, jump rules, restart without duplicates
        let mut ipt = IptablesBackend::new(Box::new(RealExec), Tools::default());
        assert!(ipt.sync(&state(2)).unwrap().full);
        assert!(!ipt.sync(&state(1)).unwrap().full);
        let jumps = ipt_jumps();
        assert!(jumps.trim().parse::<u32>().unwrap() >= 3, "{jumps}");
        let mut again = IptablesBackend::new(Box::new(RealExec), Tools::default());
        assert!(again.sync(&state(1)).unwrap().full);
        assert_eq!(ipt_jumps(), jumps, "restart duplicated jump rules");
        assert!(sh("iptables-save -t nat").contains("10.42.0.1:8080"));

        // nftables mode removes the iptables rules, then installs its table
        let mut nft = NftBackend::new(Box::new(RealExec), Tools::default());
        let stats = nft.sync(&state(2)).unwrap();
        assert!(stats.full && stats.rules > 0);
        assert!(
            !sh("iptables-save").contains("KUBE-"),
            "{}",
            sh("iptables-save")
        );
        assert!(sh("nft list table ip kube-proxy").contains("10.42.0.2"));
        assert!(!nft.sync(&state(1)).unwrap().full);
        assert!(!sh("nft list table ip kube-proxy").contains("10.42.0.2"));

        // and back: the iptables mode removes the nft table
        let mut ipt = IptablesBackend::new(Box::new(RealExec), Tools::default());
        ipt.sync(&state(1)).unwrap();
        assert!(sh("nft list tables")
            .lines()
            .all(|l| !l.contains("kube-proxy")));
        ipt.cleanup().unwrap();
        assert!(
            !sh("iptables-save").contains("KUBE-"),
            "{}",
            sh("iptables-save")
        );
        nft.cleanup().unwrap();

        // conntrack: a stale flow to a removed endpoint goes, others stay
        sh(
            "for i in 5 6; do conntrack -I -p udp -s 10.42.0.9 -d 10.43.0.10 --sport 4000$i \
            --dport 53 -r 10.42.0.$i -q 10.42.0.9 --reply-port-src 5353 \
            --reply-port-dst 4000$i --timeout 100 --dst-nat 10.42.0.$i:5353 2>/dev/null; done",
        );
        let mut ct = crate::conntrack::Conntrack::new(Box::new(RealExec), "conntrack");
        let flush = crate::conntrack::Flush::FrontendToEndpoint {
            protocol: crate::model::Protocol::Udp,
            ip: Ipv4Addr::new(10, 43, 0, 10),
            port: 53,
            endpoint: Ipv4Addr::new(10, 42, 0, 5),
        };
        assert_eq!(ct.flush([&flush, &flush]), 0);
        let left = sh("conntrack -L 2>/dev/null");
        assert!(
            !left.contains("src=10.42.0.5") && left.contains("src=10.42.0.6"),
            "{left}"
        );
    }
}
