//! The service proxy as a node component of every agent (and of the server's own agent),
//! and `minik8s proxy`, the same proxy run alone against a kubeconfig (as upstream's
//! kube-proxy binary; the benchmarks use it to measure the proxy by itself).

use anyhow::Context;
use clap::Args;
use proxy::conntrack::Conntrack;
use proxy::netfilter::{new_backend, RealExec, Tools};
use proxy::runtime::{ProxyConfig, ProxyMode, SyncReport};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Proxy flags shared by agents and the server's own agent.
#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    /// Service proxy mode: `nftables` or `iptables` (this kernel family has no IPVS).
    #[arg(long, default_value = "nftables")]
    pub proxy_mode: ProxyMode,
    /// Do not run the service proxy on this node.
    #[arg(long)]
    pub disable_kube_proxy: bool,
}

/// `a.b.c.d/n`.
pub fn parse_cidr(what: &str, s: &str) -> anyhow::Result<(Ipv4Addr, u8)> {
    let (ip, bits) = s
        .split_once('/')
        .with_context(|| format!("{what} {s:?}: expected ADDR/BITS"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .with_context(|| format!("{what} {s:?}: not an IPv4 address"))?;
    let bits: u8 = bits
        .parse()
        .ok()
        .filter(|b| *b <= 32)
        .with_context(|| format!("{what} {s:?}: prefix must be 0-32"))?;
    Ok((ip, bits))
}

/// The proxy's configuration for a node agent.
pub fn proxy_config(
    cfg: &node::agent::AgentConfig,
    args: &ProxyArgs,
) -> anyhow::Result<ProxyConfig> {
    let node_ip: Ipv4Addr = cfg
        .node
        .internal_ip
        .parse()
        .with_context(|| format!("node ip {:?} is not IPv4", cfg.node.internal_ip))?;
    Ok(ProxyConfig {
        node_name: cfg.node.name.clone(),
        node_ips: vec![node_ip],
        cluster_cidr: parse_cidr("--cluster-cidr", &cfg.cluster_cidr)?,
        service_cidr: parse_cidr("--service-cidr", &cfg.service_cidr)?,
        mode: args.proxy_mode,
        ..ProxyConfig::default()
    })
}

/// Runs the proxy until its watches end, then logs why.
async fn run_proxy(
    client: kube::Client,
    cfg: ProxyConfig,
    reports: tokio::sync::watch::Sender<SyncReport>,
) {
    let backend = new_backend(cfg.mode, Box::new(RealExec), Tools::default());
    let conntrack = Conntrack::new(Box::new(RealExec), "conntrack");
    if let Err(e) = proxy::runtime::run(client, cfg, backend, conntrack, reports).await {
        tracing::error!(error = %e, "service proxy stopped");
    }
}

/// The node components of an agent: the service proxy unless disabled.
pub fn node_components(
    cfg: &node::agent::AgentConfig,
    args: &ProxyArgs,
) -> anyhow::Result<Vec<node::agent::NodeComponent>> {
    if args.disable_kube_proxy {
        return Ok(Vec::new());
    }
    let pc = proxy_config(cfg, args)?;
    let c: node::agent::NodeComponent = Box::new(move |client: kube::Client| {
        Box::pin(async move {
            let (tx, _rx) = tokio::sync::watch::channel(SyncReport::default());
            run_proxy(client, pc, tx).await
        })
    });
    Ok(vec![c])
}

/// `minik8s proxy`: the service proxy alone.
#[derive(Args, Debug, Clone)]
pub struct ProxyCommandArgs {
    /// Kubeconfig of the identity the proxy uses.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// This node's name (for the Local traffic policies).
    #[arg(long)]
    pub node_name: String,
    /// This node's IP.
    #[arg(long)]
    pub node_ip: Ipv4Addr,
    /// Pod network CIDR.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// Service network CIDR.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// Print one JSON line per sync on stdout (generation, resourceVersion, counts, time).
    #[arg(long)]
    pub report_syncs: bool,
    /// Remove the proxy's rules (both modes) and exit.
    #[arg(long)]
    pub cleanup: bool,
    /// Log verbosity (repeat for more).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbosity: u8,
}

pub async fn run_command(a: ProxyCommandArgs) -> anyhow::Result<()> {
    if a.cleanup {
        for mode in [ProxyMode::Nftables, ProxyMode::Iptables] {
            new_backend(mode, Box::new(RealExec), Tools::default())
                .cleanup()
                .with_context(|| format!("removing the {mode} rules"))?;
        }
        return Ok(());
    }
    let kubeconfig = kube::config::Kubeconfig::read_from(&a.kubeconfig)
        .with_context(|| format!("reading {}", a.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("loading the kubeconfig")?;
    let client = kube::Client::try_from(config).context("building the API client")?;
    let cfg = ProxyConfig {
        node_name: a.node_name.clone(),
        node_ips: vec![a.node_ip],
        cluster_cidr: parse_cidr("--cluster-cidr", &a.cluster_cidr)?,
        service_cidr: parse_cidr("--service-cidr", &a.service_cidr)?,
        mode: a.proxy.proxy_mode,
        ..ProxyConfig::default()
    };
    let (tx, mut rx) = tokio::sync::watch::channel(SyncReport::default());
    if a.report_syncs {
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let r = rx.borrow_and_update().clone();
                println!(
                    "{}",
                    serde_json::json!({
                        "generation": r.generation,
                        "resourceVersion": r.resource_version,
                        "services": r.services,
                        "endpoints": r.endpoints,
                        "rules": r.rules,
                        "full": r.full,
                        "tookMicros": r.took.as_micros() as u64,
                    })
                );
            }
        });
    }
    tokio::select! {
        _ = run_proxy(client, cfg, tx) => anyhow::bail!("the service proxy stopped"),
        _ = crate::server::shutdown_signal() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse() {
        assert_eq!(
            parse_cidr("x", "10.43.0.0/16").unwrap(),
            (Ipv4Addr::new(10, 43, 0, 0), 16)
        );
        assert!(parse_cidr("x", "10.43.0.0").is_err());
        assert!(parse_cidr("x", "10.43.0.0/33").is_err());
        assert!(parse_cidr("x", "nope/8").is_err());
    }
}
