//! `minik8s agent` and the node flags it shares with `minik8s server` (whose own agent
//! takes the same ones, as in k3s), plus `minik8s images build`.

use anyhow::Context;
use clap::Args;
use node::nodestatus::{self, NodeConfig};
use std::net::IpAddr;
use std::path::PathBuf;

/// Flags for the node agent (kubelet).
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// Node name. Default: the hostname.
    #[arg(long)]
    pub node_name: Option<String>,
    /// IP address the node advertises (InternalIP). Default: the address that reaches the
    /// server (agents) or the advertise address (server).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// Node label `key=value` (repeatable).
    #[arg(long = "node-label", action = clap::ArgAction::Append)]
    pub node_label: Vec<String>,
    /// Node taint `key=value:Effect` (repeatable).
    #[arg(long = "node-taint", action = clap::ArgAction::Append)]
    pub node_taint: Vec<String>,
    /// CRI socket of an existing runtime (`unix:///run/containerd/containerd.sock`);
    /// default: the agent supervises its own containerd.
    #[arg(long)]
    pub container_runtime_endpoint: Option<String>,
    /// Maximum number of pods on this node.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Resources reserved for Kubernetes daemons, e.g. `cpu=100m,memory=256Mi`.
    #[arg(long, default_value = "")]
    pub kube_reserved: String,
    /// Resources reserved for the system, e.g. `cpu=100m,memory=256Mi`.
    #[arg(long, default_value = "")]
    pub system_reserved: String,
    /// Hard eviction thresholds, e.g. `memory.available<100Mi,nodefs.available<10%`.
    #[arg(long, default_value = "")]
    pub eviction_hard: String,
    /// Sandbox (pause) image, imported from DATA/agent/images.
    #[arg(long, default_value = node::agent::DEFAULT_PAUSE_IMAGE)]
    pub pause_image: String,
    /// Directory holding the CNI plugin binaries.
    #[arg(long, default_value = "/usr/lib/cni")]
    pub cni_bin_dir: PathBuf,
    /// Port of the kubelet's HTTPS API.
    #[arg(long, default_value_t = 10250, hide = true)]
    pub kubelet_port: u16,
    /// Cluster IP(s) of the cluster DNS service, the nameservers of ClusterFirst pods
    /// (comma-separated or repeated; an empty value configures none).
    #[arg(long = "cluster-dns", value_delimiter = ',', action = clap::ArgAction::Append, default_value = "10.43.0.10")]
    pub cluster_dns: Vec<String>,
    /// Cluster domain: the search domains of ClusterFirst pods and the pods' FQDNs.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The host resolv.conf pods with dnsPolicy Default use (empty: none).
    #[arg(long, env = "MINIK8S_RESOLV_CONF", default_value = node::resolvconf::DEFAULT_RESOLV_CONF)]
    pub resolv_conf: String,
    #[command(flatten)]
    pub proxy: crate::proxy::ProxyArgs,
}

#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// The server to join, `https://SERVER:6443`.
    #[arg(long, alias = "server", env = "MINIK8S_URL")]
    pub join: String,
    /// Join token: `K10<ca-hash>::server:<secret>` (pins the CA) or the bare secret.
    #[arg(long, env = "MINIK8S_TOKEN")]
    pub token: String,
    /// Directory for the agent's state (DATA/agent).
    #[arg(long, default_value = "/var/lib/minik8s")]
    pub data_dir: PathBuf,
    /// Pod network CIDR (must match the server's).
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// Service network CIDR (must match the server's).
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    #[command(flatten)]
    pub node: NodeArgs,
    /// YAML file with the same keys as the flags.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Log verbosity (repeat for more).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbosity: u8,
}

/// The local address used to reach `target` (a UDP connect sends no packet).
pub(crate) fn source_ip_towards(target: &str) -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect(target).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_else(|_| "localhost".into())
}

/// What an agent gets besides its node flags: where to join and the cluster's ranges.
pub struct JoinTarget {
    pub server: String,
    pub token: String,
    pub data_dir: PathBuf,
    pub cluster_cidr: String,
    pub service_cidr: String,
    /// The node IP when `--node-ip` is not given.
    pub default_ip: Option<IpAddr>,
    /// The server's own agent (control-plane role labels).
    pub control_plane: bool,
}

/// Builds the agent configuration from flags.
pub fn agent_config(t: JoinTarget, n: &NodeArgs) -> anyhow::Result<node::agent::AgentConfig> {
    let ip = n
        .node_ip
        .or(t.default_ip)
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let mut labels = std::collections::BTreeMap::new();
    for l in &n.node_label {
        let (k, v) = l
            .split_once('=')
            .with_context(|| format!("--node-label {l:?}: expected key=value"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    let taints = n
        .node_taint
        .iter()
        .map(|t| nodestatus::parse_taint(t))
        .collect::<Result<Vec<_>, _>>()?;
    let node = NodeConfig {
        name: n.node_name.clone().unwrap_or_else(hostname),
        internal_ip: ip.to_string(),
        labels,
        taints,
        max_pods: n.max_pods,
        kube_reserved: nodestatus::parse_resource_list("--kube-reserved", &n.kube_reserved)?,
        system_reserved: nodestatus::parse_resource_list("--system-reserved", &n.system_reserved)?,
        eviction_hard: nodestatus::parse_eviction_hard(&n.eviction_hard)?,
        control_plane: t.control_plane,
    };
    let cluster_dns = n
        .cluster_dns
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpAddr>()
                .with_context(|| format!("--cluster-dns {s:?}: not an IP address"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let endpoint = n
        .container_runtime_endpoint
        .as_ref()
        .map(|e| PathBuf::from(e.strip_prefix("unix://").unwrap_or(e)));
    Ok(node::agent::AgentConfig {
        server: t.server,
        token: t.token,
        data_dir: t.data_dir,
        node,
        container_runtime_endpoint: endpoint,
        containerd_binary: "containerd".into(),
        ctr_binary: "ctr".into(),
        cni_bin_dir: n.cni_bin_dir.clone(),
        cluster_cidr: t.cluster_cidr,
        service_cidr: t.service_cidr,
        kubelet_port: n.kubelet_port,
        sandbox_image: n.pause_image.clone(),
        busybox: "/bin/busybox".into(),
        cluster_dns,
        cluster_domain: n.cluster_domain.clone(),
        resolv_conf: (!n.resolv_conf.is_empty()).then(|| PathBuf::from(&n.resolv_conf)),
    })
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let host_port = args
        .join
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let cfg = agent_config(
        JoinTarget {
            server: args.join.clone(),
            token: args.token.clone(),
            data_dir: args.data_dir.clone(),
            cluster_cidr: args.cluster_cidr.clone(),
            service_cidr: args.service_cidr.clone(),
            default_ip: source_ip_towards(&host_port),
            control_plane: false,
        },
        &args.node,
    )?;
    let components = crate::proxy::node_components(&cfg, &args.node.proxy)?;
    node::agent::run_with(cfg, crate::server::shutdown_signal(), components)
        .await
        .context("agent")
}

/// `minik8s images build DIR`: the base images, built offline from busybox.
#[derive(Args, Debug, Clone)]
pub struct ImagesBuildArgs {
    /// Output directory (e.g. DATA/agent/images).
    pub dir: PathBuf,
    /// The statically linked busybox to put in the images.
    #[arg(long, default_value = "/bin/busybox")]
    pub busybox: PathBuf,
}

pub fn images_build(a: ImagesBuildArgs) -> anyhow::Result<()> {
    let files = node::images::build_base_images(&a.dir, &a.busybox)
        .with_context(|| format!("building images into {}", a.dir.display()))?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }

    fn config(args: &[&str]) -> anyhow::Result<node::agent::AgentConfig> {
        let cli = Cli::try_parse_from(std::iter::once("agent").chain(args.iter().copied()))?;
        agent_config(
            JoinTarget {
                server: "https://127.0.0.1:6443".into(),
                token: "t".into(),
                data_dir: "/tmp/x".into(),
                cluster_cidr: "10.42.0.0/16".into(),
                service_cidr: "10.43.0.0/16".into(),
                default_ip: None,
                control_plane: false,
            },
            &cli.node,
        )
    }

    #[test]
    fn dns_flags() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let c = config(&["--node-name", "n"]).expect("defaults");
        assert_eq!(c.cluster_dns, [ip("10.43.0.10")]);
        assert_eq!(c.cluster_domain, "cluster.local");
        assert_eq!(c.resolv_conf, Some(PathBuf::from("/etc/resolv.conf")));
        let c = config(&[
            "--cluster-dns",
            "10.96.0.10,fd00::a",
            "--cluster-dns=10.96.0.11",
            "--cluster-domain",
            "example.org",
            "--resolv-conf",
            "/run/systemd/resolve/resolv.conf",
        ])
        .expect("flags");
        assert_eq!(
            c.cluster_dns,
            [ip("10.96.0.10"), ip("fd00::a"), ip("10.96.0.11")]
        );
        assert_eq!(c.cluster_domain, "example.org");
        assert_eq!(
            c.resolv_conf,
            Some(PathBuf::from("/run/systemd/resolve/resolv.conf"))
        );
        let c = config(&["--cluster-dns=", "--resolv-conf="]).expect("empty values");
        assert!(c.cluster_dns.is_empty());
        assert_eq!(c.resolv_conf, None);
        let e = config(&["--cluster-dns", "kube-dns"]).expect_err("not an ip");
        assert_eq!(
            e.to_string(),
            "--cluster-dns \"kube-dns\": not an IP address"
        );
    }
}
