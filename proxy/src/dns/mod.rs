//! The cluster DNS (what k3s ships as CoreDNS with the kubernetes plugin): answers
//! `svc.ns.svc.<domain>`, endpoint, SRV, pod and reverse names from an in-memory index
//! filled by list-watch, and forwards every other name to the resolvers of a resolv.conf.
//!
//! [`run`] is [`server::Listeners::bind`], then [`server::serve`] (answers from a
//! [`SharedIndex`]) next to [`watch::fill`] (keeps that index in step with the API). Until Services,
//! EndpointSlices and Namespaces have each been listed once, the server already answers
//! what it knows, and names it cannot find get SERVFAIL instead of NXDOMAIN (CoreDNS's
//! behaviour once its 5 s start-up wait is over; here the listeners open at once).

pub mod convert;
pub mod forward;
pub mod index;
pub mod server;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

pub use forward::{Forwarder, Upstream};
pub use index::{Answer, DnsIndex, Next};
pub use server::{serve, Listeners, SharedIndex};
pub use watch::fill;

/// How the cluster DNS runs.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Addresses to serve on, UDP and TCP each.
    pub listen: Vec<SocketAddr>,
    /// The cluster domain, `cluster.local`.
    pub domain: String,
    /// resolv.conf whose nameservers get the names outside the cluster domain; `None`
    /// answers them SERVFAIL.
    pub upstream: Option<PathBuf>,
    /// TTL of every answer (k3s: 30).
    pub ttl: u32,
}

/// Why the cluster DNS stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("invalid cluster domain {domain:?}")]
    Domain { domain: String },
    #[error("no listen address")]
    NoListenAddress,
    #[error("bind udp {addr}: {source}")]
    BindUdp {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("bind tcp {addr}: {source}")]
    BindTcp {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("read resolv.conf {path}: {source}", path = path.display())]
    ReadResolvConf {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no usable nameserver in {path}", path = path.display())]
    NoNameservers { path: PathBuf },
    #[error("dns server task failed: {0}")]
    ServeTask(String),
    #[error("watch of {resource} ended")]
    WatchEnded { resource: &'static str },
}

/// Runs the cluster DNS until a listener fails or a watch ends.
pub async fn run(client: kube::Client, cfg: DnsConfig) -> Result<(), DnsError> {
    let mut index = DnsIndex::new(&cfg.domain, cfg.ttl)?;
    let listeners = Listeners::bind(&cfg.listen).await?;
    let addrs = listeners.local_addrs();
    index.set_local_ips(
        addrs
            .iter()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified())
            .collect(),
    );
    let upstream: Option<Arc<dyn Upstream>> = match &cfg.upstream {
        Some(path) => Some(Arc::new(Forwarder::from_resolv_conf(path, &addrs)?)),
        None => None,
    };
    tracing::info!(listen = ?addrs, domain = %cfg.domain, "cluster dns serving");
    let index: SharedIndex = Arc::new(RwLock::new(index));
    tokio::select! {
        r = fill(client, index.clone()) => r,
        r = serve(index, listeners, upstream) => r,
    }
}
