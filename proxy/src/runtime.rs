//! The proxy's main loop. [`run`] watches Services and EndpointSlices with kube's
//! `runtime::watcher` (no reflector stores: each object is reduced to a small struct as soon
//! as it arrives, see [`crate::changes`]), merges both watches into one stream of
//! [`ProxyEvent`]s and drives a [`Proxier`] with it ([`run_events`]): every event available
//! without waiting is applied, then one sync runs through the [`Backend`], stale conntrack
//! entries are deleted, and a [`SyncReport`] is published. Nothing is synced before both
//! watches have listed everything; the first sync is a full one, so is every
//! `resync_period`; a failed sync is retried with exponential backoff and a full render.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::changes::{
    service_object, slice_object, ChangeTracker, Object, ProxyEvent, Watched, WATCH_LABEL_SELECTOR,
};
use crate::conntrack::{stale_flows, Conntrack, Flush};
use crate::model::ProxyState;
use crate::netfilter::Backend;

/// First retry delay after a failed sync; doubles up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest retry delay after failed syncs.
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// Everything that can go wrong, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("run {command}: {source}")]
    Exec {
        command: String,
        source: std::io::Error,
    },
    #[error("apply nftables rules: {0}")]
    ApplyNftables(String),
    #[error("apply iptables rules: {0}")]
    ApplyIptables(String),
    #[error("read iptables rules: {0}")]
    SaveIptables(String),
    #[error("create chain {chain} in table {table}: {message}")]
    EnsureChain {
        table: String,
        chain: String,
        message: String,
    },
    #[error("ensure jump rule in {table}/{chain}: {message}")]
    EnsureJumpRule {
        table: String,
        chain: String,
        message: String,
    },
    #[error("clean up {mode} rules: {message}")]
    Cleanup { mode: ProxyMode, message: String },
    #[error("parse proxy mode {0:?}: expected nftables or iptables")]
    ParseMode(String),
    #[error("watch of services and endpointslices ended")]
    WatchEnded,
}

/// Which rules the proxy writes (`--proxy-mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ProxyMode {
    #[default]
    Nftables,
    Iptables,
}

impl std::fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProxyMode::Nftables => "nftables",
            ProxyMode::Iptables => "iptables",
        })
    }
}

impl std::str::FromStr for ProxyMode {
    type Err = ProxyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nftables" | "" => Ok(ProxyMode::Nftables),
            "iptables" => Ok(ProxyMode::Iptables),
            other => Err(ProxyError::ParseMode(other.to_string())),
        }
    }
}

/// The proxy's settings (kube-proxy's flags of the same meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub node_name: String,
    /// Addresses NodePorts listen on.
    pub node_ips: Vec<Ipv4Addr>,
    pub cluster_cidr: (Ipv4Addr, u8),
    pub service_cidr: (Ipv4Addr, u8),
    pub mode: ProxyMode,
    /// Least time between two syncs (0: sync as soon as a batch of events is in).
    pub min_sync_period: Duration,
    /// A full re-render at least this often.
    pub resync_period: Duration,
}

impl Default for ProxyConfig {
    /// k3s's default networks, nftables, no minimum gap, a full re-check every 30 s.
    fn default() -> Self {
        ProxyConfig {
            node_name: String::new(),
            node_ips: Vec::new(),
            cluster_cidr: (Ipv4Addr::new(10, 42, 0, 0), 16),
            service_cidr: (Ipv4Addr::new(10, 43, 0, 0), 16),
            mode: ProxyMode::Nftables,
            min_sync_period: Duration::ZERO,
            resync_period: Duration::from_secs(30),
        }
    }
}

/// Published after each successful sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Successful syncs so far (0: none yet).
    pub generation: u64,
    /// The highest resourceVersion among all events applied up to and including this sync
    /// (Services and EndpointSlices share one counter): every change at or below it is in
    /// the rules.
    pub resource_version: u64,
    /// Service ports in the rules.
    pub services: usize,
    /// Endpoints over all service ports.
    pub endpoints: usize,
    /// Rules installed, as the renderer counts them.
    pub rules: usize,
    /// Whether the backend rewrote everything.
    pub full: bool,
    /// Time spent in this sync (rebuild, render, apply, conntrack).
    pub took: Duration,
}

/// The proxy's state machine: the change tracker, the state last rendered, the backend and
/// the sync timing. Driven by [`run_events`]; tests drive it directly.
pub struct Proxier {
    tracker: ChangeTracker,
    state: ProxyState,
    backend: Box<dyn Backend>,
    conntrack: Conntrack,
    /// Stale flows waiting for a successful sync.
    stale: BTreeSet<Flush>,
    min_sync_period: Duration,
    resync_period: Duration,
    /// Highest resourceVersion applied so far.
    resource_version: u64,
    /// Events applied since the last successful sync.
    pending_events: bool,
    generation: u64,
    rules: usize,
    last_sync: Option<Instant>,
    last_full: Option<Instant>,
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Proxier {
    pub fn new(cfg: &ProxyConfig, backend: Box<dyn Backend>, conntrack: Conntrack) -> Self {
        Proxier {
            tracker: ChangeTracker::new(cfg.node_name.clone()),
            state: ProxyState {
                node_name: cfg.node_name.clone(),
                node_ips: cfg.node_ips.clone(),
                cluster_cidr: cfg.cluster_cidr,
                service_cidr: cfg.service_cidr,
                services: Vec::new(),
            },
            backend,
            conntrack,
            stale: BTreeSet::new(),
            min_sync_period: cfg.min_sync_period,
            resync_period: cfg.resync_period,
            resource_version: 0,
            pending_events: false,
            generation: 0,
            rules: 0,
            last_sync: None,
            last_full: None,
            retry_at: None,
            backoff: FIRST_RETRY,
        }
    }

    /// Applies one event to the cache (no rules change until [`sync`](Proxier::sync)).
    pub fn handle(&mut self, event: ProxyEvent) {
        self.resource_version = self.resource_version.max(event.resource_version());
        self.tracker.apply(event);
        self.pending_events = true;
    }

    /// The state the last sync rendered (rebuilt at each sync).
    pub fn state(&self) -> &ProxyState {
        &self.state
    }

    /// Whether both watches have listed everything.
    pub fn ready(&self) -> bool {
        self.tracker.synced()
    }

    fn full_due(&self, now: Instant) -> bool {
        self.last_full.is_none_or(|t| now >= t + self.resync_period)
    }

    /// Whether a sync should run at `now`.
    pub fn sync_due(&self, now: Instant) -> bool {
        if !self.ready() {
            return false;
        }
        if let Some(at) = self.retry_at {
            return now >= at;
        }
        let Some(last) = self.last_sync else {
            return true;
        };
        self.full_due(now) || (self.pending_events && now >= last + self.min_sync_period)
    }

    /// When a sync becomes due without further events (`None`: only an event can make one).
    pub fn next_deadline(&self) -> Option<Instant> {
        if !self.ready() {
            return None;
        }
        if let Some(at) = self.retry_at {
            return Some(at);
        }
        let last = self.last_sync?;
        let full = self.last_full.map(|t| t + self.resync_period);
        let batch = self.pending_events.then_some(last + self.min_sync_period);
        match (full, batch) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Rebuilds the changed service ports, applies them through the backend and deletes stale
    /// conntrack entries. Blocking (runs programs). On failure the next attempt waits for the
    /// backoff and is a full sync.
    pub fn sync(&mut self, now: Instant) -> Result<SyncReport, ProxyError> {
        let started = std::time::Instant::now();
        let full = self.full_due(now);
        if full {
            self.backend.request_full();
        }
        let stale = &mut self.stale;
        let changed = self.tracker.update(&mut self.state.services, |old, new| {
            stale_flows(old, new, stale)
        });
        let must_apply = full || changed > 0 || self.retry_at.is_some() || self.generation == 0;
        let stats = if must_apply {
            match self.backend.sync(&self.state) {
                Ok(stats) => stats,
                Err(e) => {
                    self.retry_at = Some(now + self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_RETRY);
                    self.backend.request_full();
                    return Err(e);
                }
            }
        } else {
            crate::netfilter::SyncStats {
                rules: self.rules,
                full: false,
            }
        };
        if !self.stale.is_empty() {
            let stale = std::mem::take(&mut self.stale);
            self.conntrack.flush(&stale);
        }
        self.generation += 1;
        self.rules = stats.rules;
        self.pending_events = false;
        self.last_sync = Some(now);
        if full || stats.full {
            self.last_full = Some(now);
        }
        self.retry_at = None;
        self.backoff = FIRST_RETRY;
        Ok(SyncReport {
            generation: self.generation,
            resource_version: self.resource_version,
            services: self.state.services.len(),
            endpoints: self.state.services.iter().map(|p| p.endpoints.len()).sum(),
            rules: stats.rules,
            full: stats.full,
            took: started.elapsed(),
        })
    }
}

/// Runs `f` (which blocks on programs) without stalling the other tasks of a multi-thread
/// runtime; on a current-thread runtime (tests) it just runs.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Drives `proxier` with `events` until the stream ends (an error: watches never end).
/// Publishes a [`SyncReport`] on `reports` after each successful sync.
pub async fn run_events<S>(
    mut events: S,
    mut proxier: Proxier,
    reports: watch::Sender<SyncReport>,
) -> Result<(), ProxyError>
where
    S: Stream<Item = ProxyEvent> + Unpin,
{
    loop {
        let deadline = proxier.next_deadline();
        tokio::select! {
            ev = events.next() => match ev {
                Some(ev) => proxier.handle(ev),
                None => return Err(ProxyError::WatchEnded),
            },
            _ = sleep_until(deadline) => {}
        }
        // Coalesce the burst: everything already available goes into this sync.
        while let Some(next) = events.next().now_or_never() {
            match next {
                Some(ev) => proxier.handle(ev),
                None => return Err(ProxyError::WatchEnded),
            }
        }
        let now = Instant::now();
        if !proxier.sync_due(now) {
            continue;
        }
        match blocking(|| proxier.sync(now)) {
            Ok(report) => {
                tracing::debug!(
                    generation = report.generation,
                    resource_version = report.resource_version,
                    services = report.services,
                    endpoints = report.endpoints,
                    rules = report.rules,
                    full = report.full,
                    took_ms = report.took.as_millis() as u64,
                    "proxy rules synced"
                );
                reports.send_replace(report);
            }
            Err(e) => tracing::warn!(error = %e, "proxy sync failed, will retry"),
        }
    }
}

fn reduce<K, T>(ev: watcher::Event<K>, f: fn(&K) -> Object<T>) -> Watched<Object<T>> {
    match ev {
        watcher::Event::Init => Watched::Init,
        watcher::Event::InitApply(o) => Watched::InitApply(f(&o)),
        watcher::Event::InitDone => Watched::InitDone,
        watcher::Event::Apply(o) => Watched::Apply(f(&o)),
        watcher::Event::Delete(o) => Watched::Delete(f(&o)),
    }
}

/// Service and EndpointSlice events of the whole cluster (minus other proxies' and headless
/// ones, as upstream selects them), each object reduced as soon as it is decoded. Watch errors
/// are logged and retried with kube's default backoff.
pub fn watch_events(client: Client) -> impl Stream<Item = ProxyEvent> + Send + Unpin {
    let cfg = watcher::Config::default().labels(WATCH_LABEL_SELECTOR);
    let services = watcher(Api::<Service>::all(client.clone()), cfg.clone())
        .default_backoff()
        .filter_map(|r| async move {
            match r {
                Ok(ev) => Some(ProxyEvent::Services(reduce(ev, service_object))),
                Err(e) => {
                    tracing::warn!(error = %e, "service watch failed");
                    None
                }
            }
        });
    let slices = watcher(Api::<EndpointSlice>::all(client), cfg)
        .default_backoff()
        .filter_map(|r| async move {
            match r {
                Ok(ev) => Some(ProxyEvent::Slices(reduce(ev, slice_object))),
                Err(e) => {
                    tracing::warn!(error = %e, "endpointslice watch failed");
                    None
                }
            }
        });
    Box::pin(futures::stream::select(services, slices))
}

/// The proxy: watches the API through `client` and keeps the node's rules in step through
/// `backend`, deleting stale UDP/SCTP flows with `conntrack`. Returns only on error.
pub async fn run(
    client: Client,
    cfg: ProxyConfig,
    backend: Box<dyn Backend>,
    conntrack: Conntrack,
    reports: watch::Sender<SyncReport>,
) -> Result<(), ProxyError> {
    tracing::info!(node = %cfg.node_name, mode = %cfg.mode, "starting service proxy");
    let proxier = Proxier::new(&cfg, backend, conntrack);
    run_events(watch_events(client), proxier, reports).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::{
        ObjectKey, ServiceInfo, ServicePortInfo, SliceEndpoint, SliceInfo, SlicePort,
    };
    use crate::model::Protocol;
    use crate::netfilter::{FakeExec, SyncStats};
    use futures::channel::mpsc;
    use std::sync::{Arc, Mutex};

    /// Records each state it is asked to apply; fails while `fail` is above zero.
    #[derive(Default)]
    struct Log {
        states: Vec<ProxyState>,
        full_requests: usize,
        fail: usize,
    }

    struct FakeBackend(Arc<Mutex<Log>>, bool);

    impl Backend for FakeBackend {
        fn sync(&mut self, state: &ProxyState) -> Result<SyncStats, ProxyError> {
            let mut log = self.0.lock().unwrap();
            log.states.push(state.clone());
            if log.fail > 0 {
                log.fail -= 1;
                return Err(ProxyError::ApplyNftables("scripted failure".into()));
            }
            let full = std::mem::replace(&mut self.1, false);
            Ok(SyncStats {
                rules: state.services.len() * 10,
                full,
            })
        }
        fn request_full(&mut self) {
            self.0.lock().unwrap().full_requests += 1;
            self.1 = true;
        }
        fn cleanup(&mut self) -> Result<(), ProxyError> {
            Ok(())
        }
        fn mode(&self) -> ProxyMode {
            ProxyMode::Nftables
        }
    }

    fn svc(name: &str, last: u8, protocol: Protocol, rv: u64) -> ProxyEvent {
        ProxyEvent::Services(Watched::Apply(Object {
            key: ObjectKey::new("default", name),
            resource_version: rv,
            info: Some(ServiceInfo {
                cluster_ip: Ipv4Addr::new(10, 43, 0, last),
                ports: vec![ServicePortInfo {
                    name: String::new(),
                    protocol,
                    port: 53,
                    node_port: None,
                }],
                external_ips: vec![],
                load_balancer_ips: vec![],
                affinity_timeout: None,
                external_local: false,
                internal_local: false,
            }),
        }))
    }

    fn slice(name: &str, service: &str, protocol: Protocol, eps: &[u8], rv: u64) -> ProxyEvent {
        ProxyEvent::Slices(Watched::Apply(Object {
            key: ObjectKey::new("default", name),
            resource_version: rv,
            info: Some(SliceInfo {
                service: service.into(),
                ports: vec![SlicePort {
                    name: String::new(),
                    protocol,
                    port: 5353,
                }],
                endpoints: eps
                    .iter()
                    .map(|i| SliceEndpoint {
                        ip: Ipv4Addr::new(10, 42, 0, *i),
                        ready: true,
                        serving: true,
                        terminating: false,
                        node_name: None,
                    })
                    .collect(),
            }),
        }))
    }

    fn listed() -> [ProxyEvent; 2] {
        [
            ProxyEvent::Services(Watched::InitDone),
            ProxyEvent::Slices(Watched::InitDone),
        ]
    }

    struct Harness {
        tx: mpsc::UnboundedSender<ProxyEvent>,
        reports: watch::Receiver<SyncReport>,
        log: Arc<Mutex<Log>>,
        conntrack: Arc<Mutex<Vec<crate::netfilter::Command>>>,
        task: tokio::task::JoinHandle<Result<(), ProxyError>>,
    }

    fn start(cfg: ProxyConfig, fail: usize) -> Harness {
        let log = Arc::new(Mutex::new(Log {
            fail,
            ..Default::default()
        }));
        let fake = FakeExec::new();
        let conntrack = fake.calls();
        let proxier = Proxier::new(
            &cfg,
            Box::new(FakeBackend(log.clone(), true)),
            Conntrack::new(Box::new(fake), "conntrack"),
        );
        let (tx, rx) = mpsc::unbounded();
        let (rtx, reports) = watch::channel(SyncReport::default());
        let task = tokio::spawn(run_events(rx, proxier, rtx));
        Harness {
            tx,
            reports,
            log,
            conntrack,
            task,
        }
    }

    impl Harness {
        fn send(&self, ev: ProxyEvent) {
            self.tx.unbounded_send(ev).unwrap();
        }
        async fn next_report(&mut self) -> SyncReport {
            self.reports.changed().await.unwrap();
            self.reports.borrow_and_update().clone()
        }
        fn syncs(&self) -> usize {
            self.log.lock().unwrap().states.len()
        }
    }

    fn cfg() -> ProxyConfig {
        ProxyConfig {
            node_name: "node-a".into(),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_sync_before_both_lists_then_a_full_one() {
        let mut h = start(cfg(), 0);
        h.send(svc("dns", 10, Protocol::Udp, 3));
        h.send(ProxyEvent::Services(Watched::InitDone));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(h.syncs(), 0, "slices not listed yet");
        h.send(slice("dns-1", "dns", Protocol::Udp, &[1, 2], 4));
        h.send(ProxyEvent::Slices(Watched::InitDone));
        let r = h.next_report().await;
        assert_eq!(r.generation, 1);
        assert!(r.full);
        assert_eq!((r.services, r.endpoints, r.rules), (1, 2, 10));
        assert_eq!(r.resource_version, 4);
        assert_eq!(h.syncs(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_events_makes_one_sync() {
        let mut h = start(cfg(), 0);
        h.send(svc("dns", 10, Protocol::Tcp, 3));
        for ev in listed() {
            h.send(ev);
        }
        assert_eq!(h.next_report().await.generation, 1);
        let t0 = Instant::now();
        for (i, rv) in (10..20).enumerate() {
            let eps: Vec<u8> = (1..=i as u8 + 1).collect();
            h.send(slice("dns-1", "dns", Protocol::Tcp, &eps, rv));
        }
        let r = h.next_report().await;
        assert_eq!(Instant::now(), t0, "synced at once (min_sync_period 0)");
        assert_eq!(r.generation, 2);
        assert_eq!(r.resource_version, 19);
        assert_eq!(r.endpoints, 10);
        assert!(!r.full);
        assert_eq!(h.syncs(), 2, "ten events, one sync");
    }

    #[tokio::test(start_paused = true)]
    async fn min_sync_period_spaces_syncs() {
        let mut h = start(
            ProxyConfig {
                min_sync_period: Duration::from_secs(1),
                ..cfg()
            },
            0,
        );
        h.send(svc("a", 1, Protocol::Tcp, 1));
        for ev in listed() {
            h.send(ev);
        }
        h.next_report().await;
        let t0 = Instant::now();
        h.send(svc("b", 2, Protocol::Tcp, 2));
        let r = h.next_report().await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(1));
        assert_eq!(r.services, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_and_force_a_full_sync() {
        let mut h = start(cfg(), 2);
        h.send(svc("a", 1, Protocol::Tcp, 1));
        let t0 = Instant::now();
        for ev in listed() {
            h.send(ev);
        }
        let r = h.next_report().await;
        // failed at 0, retried at 0.5 s (failed), then at 1.5 s
        assert_eq!(Instant::now() - t0, Duration::from_millis(1500));
        assert_eq!(r.generation, 1);
        assert!(r.full);
        assert_eq!(h.syncs(), 3);
        // events during the backoff do not retry early
        let mut h = start(cfg(), 1);
        for ev in listed() {
            h.send(ev);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(h.syncs(), 1);
        h.send(svc("a", 1, Protocol::Tcp, 7));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(h.syncs(), 1);
        let r = h.next_report().await;
        assert_eq!(r.resource_version, 7);
        assert!(r.full);
        assert!(h.log.lock().unwrap().full_requests >= 2);
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_full_resync() {
        let mut h = start(cfg(), 0);
        h.send(svc("a", 1, Protocol::Tcp, 1));
        for ev in listed() {
            h.send(ev);
        }
        let t0 = Instant::now();
        assert!(h.next_report().await.full);
        let r = h.next_report().await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(30));
        assert!(r.full);
        assert_eq!(r.generation, 2);
        assert_eq!(h.syncs(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn unrelated_events_publish_without_touching_the_rules() {
        let mut h = start(cfg(), 0);
        h.send(svc("a", 1, Protocol::Tcp, 1));
        for ev in listed() {
            h.send(ev);
        }
        h.next_report().await;
        // a slice of a Service the proxy does not know
        h.send(slice("x-1", "x", Protocol::Tcp, &[1], 40));
        let r = h.next_report().await;
        assert_eq!(r.generation, 2);
        assert_eq!(r.resource_version, 40);
        assert_eq!(r.rules, 10);
        assert_eq!(h.syncs(), 1, "backend not called");
    }

    #[tokio::test(start_paused = true)]
    async fn removed_udp_endpoints_flush_conntrack_after_the_sync() {
        let mut h = start(cfg(), 0);
        h.send(svc("dns", 10, Protocol::Udp, 1));
        h.send(slice("dns-1", "dns", Protocol::Udp, &[1, 2], 2));
        h.send(svc("web", 20, Protocol::Tcp, 3));
        h.send(slice("web-1", "web", Protocol::Tcp, &[5, 6], 4));
        for ev in listed() {
            h.send(ev);
        }
        h.next_report().await;
        // newly active UDP service at first sync
        let first: Vec<String> = h
            .conntrack
            .lock()
            .unwrap()
            .drain(..)
            .map(|c| c.line())
            .collect();
        assert_eq!(
            first,
            vec!["conntrack -D -p udp --orig-dst 10.43.0.10 --orig-port-dst 53"]
        );
        h.send(slice("dns-1", "dns", Protocol::Udp, &[1], 5));
        h.send(slice("web-1", "web", Protocol::Tcp, &[5], 6));
        h.next_report().await;
        let lines: Vec<String> = h
            .conntrack
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.line())
            .collect();
        assert_eq!(
            lines,
            vec![
                "conntrack -D -p udp --orig-dst 10.43.0.10 --orig-port-dst 53 --dst-nat 10.42.0.2"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stale_flows_wait_for_a_successful_sync() {
        let log = Arc::new(Mutex::new(Log::default()));
        let fake = FakeExec::new();
        let calls = fake.calls();
        let mut p = Proxier::new(
            &cfg(),
            Box::new(FakeBackend(log.clone(), true)),
            Conntrack::new(Box::new(fake), "conntrack"),
        );
        p.handle(svc("dns", 10, Protocol::Udp, 1));
        p.handle(slice("dns-1", "dns", Protocol::Udp, &[1, 2], 2));
        for ev in listed() {
            p.handle(ev);
        }
        let now = Instant::now();
        assert!(p.sync_due(now));
        p.sync(now).unwrap();
        calls.lock().unwrap().clear();
        p.handle(slice("dns-1", "dns", Protocol::Udp, &[1], 3));
        log.lock().unwrap().fail = 1;
        assert!(p.sync(now).is_err());
        assert!(
            calls.lock().unwrap().is_empty(),
            "no flush before the rules changed"
        );
        assert!(!p.sync_due(now));
        assert_eq!(p.next_deadline(), Some(now + FIRST_RETRY));
        let later = now + FIRST_RETRY;
        assert!(p.sync_due(later));
        let r = p.sync(later).unwrap();
        assert!(r.full);
        assert_eq!(calls.lock().unwrap().len(), 1);
        assert_eq!(p.state().services[0].endpoints.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_ends_when_the_watch_ends() {
        let h = start(cfg(), 0);
        drop(h.tx);
        assert!(matches!(h.task.await.unwrap(), Err(ProxyError::WatchEnded)));
    }

    #[test]
    fn modes_parse() {
        assert_eq!(
            "iptables".parse::<ProxyMode>().unwrap(),
            ProxyMode::Iptables
        );
        assert_eq!(
            "nftables".parse::<ProxyMode>().unwrap(),
            ProxyMode::Nftables
        );
        assert!("ipvs".parse::<ProxyMode>().is_err());
        assert_eq!(
            ProxyConfig::default().resync_period,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn watcher_events_are_reduced() {
        let svc = Service {
            metadata: kube::api::ObjectMeta {
                namespace: Some("default".into()),
                name: Some("web".into()),
                resource_version: Some("42".into()),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                cluster_ip: Some("10.43.0.5".into()),
                ..Default::default()
            }),
            status: None,
        };
        let w = reduce(watcher::Event::Apply(svc), service_object);
        let Watched::Apply(o) = w else {
            panic!("not an apply: {w:?}");
        };
        assert_eq!(o.key, ObjectKey::new("default", "web"));
        assert_eq!(o.resource_version, 42);
        assert_eq!(
            o.info.map(|i| i.cluster_ip),
            Some(Ipv4Addr::new(10, 43, 0, 5))
        );
        assert_eq!(
            reduce::<Service, ServiceInfo>(watcher::Event::InitDone, service_object),
            Watched::InitDone
        );
    }
}
