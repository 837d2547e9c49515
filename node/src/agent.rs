//! The agent's top level: join the cluster, start (or connect to) the container runtime,
//! import air-gapped images, register the Node, then keep its Lease, status, pod network
//! and pods current until shutdown.

use crate::cri::{GrpcRuntime, Runtime};
use crate::nodestatus::{self, Health, MachineInfo, NodeConfig, StatusInputs};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ContainerImage, Node};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("joining the cluster: {0}")]
    Join(#[from] crate::join::JoinError),
    #[error("creating a client for the node identity: {0}")]
    Client(String),
    #[error("starting containerd: {0}")]
    Containerd(String),
    #[error("connecting to the container runtime: {0}")]
    Runtime(#[from] crate::cri::CriError),
    #[error("registering node {name}: {message}")]
    Register { name: String, message: String },
    #[error("creating {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kubelet: {0}")]
    Kubelet(String),
    #[error("pod network settings: {0}")]
    Network(String),
    #[error("node settings: {0}")]
    NodeConfig(#[from] crate::nodestatus::NodeConfigError),
}

/// Everything `minik8s agent` (or the server's own agent) is configured with.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `https://host:6443`.
    pub server: String,
    pub token: String,
    /// DATA; the agent keeps its state under DATA/agent.
    pub data_dir: PathBuf,
    pub node: NodeConfig,
    /// A CRI socket to use instead of supervising containerd.
    pub container_runtime_endpoint: Option<PathBuf>,
    pub containerd_binary: PathBuf,
    pub ctr_binary: PathBuf,
    pub cni_bin_dir: PathBuf,
    pub cluster_cidr: String,
    pub service_cidr: String,
    pub kubelet_port: u16,
    pub sandbox_image: String,
    /// Statically linked busybox for the base images.
    pub busybox: PathBuf,
    /// `--cluster-dns`: nameservers of ClusterFirst pods (empty: MissingClusterDNS).
    pub cluster_dns: Vec<std::net::IpAddr>,
    /// `--cluster-domain`.
    pub cluster_domain: String,
    /// `--resolv-conf`: the host resolv.conf pods with dnsPolicy Default start from;
    /// None when the flag is empty.
    pub resolv_conf: Option<PathBuf>,
}

pub const DEFAULT_PAUSE_IMAGE: &str = "localhost/pause:3.6";

impl AgentConfig {
    pub fn agent_dir(&self) -> PathBuf {
        self.data_dir.join("agent")
    }
}

/// A component that runs on every node next to the kubelet (the service proxy), started
/// once the Node is registered with the agent's API client; it runs until the agent stops.
pub type NodeComponent =
    Box<dyn FnOnce(kube::Client) -> futures::future::BoxFuture<'static, ()> + Send>;

/// Runs the agent until `shutdown` resolves.
pub async fn run(
    cfg: AgentConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    run_with(cfg, shutdown, Vec::new()).await
}

/// [`run`], with extra node components.
pub async fn run_with(
    cfg: AgentConfig,
    shutdown: impl std::future::Future<Output = ()>,
    components: Vec<NodeComponent>,
) -> Result<(), AgentError> {
    let started = std::time::Instant::now();
    // As upstream's kubelet, refuse to start with labels a node may not set on itself.
    nodestatus::validate_node_labels(&cfg.node.labels)?;
    let agent_dir = cfg.agent_dir();
    std::fs::create_dir_all(&agent_dir).map_err(|source| AgentError::Dir {
        path: agent_dir.clone(),
        source,
    })?;
    let paths = crate::join::JoinPaths::under(&agent_dir);
    let kubeconfig = crate::join::join(
        &cfg.server,
        &cfg.token,
        &paths,
        &cfg.node.name,
        std::slice::from_ref(&cfg.node.internal_ip),
    )
    .await?;
    let client = crate::join::client_from_kubeconfig(&kubeconfig)
        .await
        .map_err(AgentError::Client)?;

    // Container runtime.
    let cd_paths =
        crate::containerd::ContainerdPaths::under(&agent_dir).with_cni_bin_dir(&cfg.cni_bin_dir);
    let (supervisor, socket) = match &cfg.container_runtime_endpoint {
        Some(ep) => (None, ep.clone()),
        None => {
            let sup = crate::containerd::Supervisor::start(
                cfg.containerd_binary.clone(),
                cd_paths.clone(),
                &cfg.sandbox_image,
            )
            .await
            .map_err(|e| AgentError::Containerd(e.to_string()))?;
            let sock = cd_paths.socket.clone();
            (Some(sup), sock)
        }
    };
    // Air-gapped base images: built from busybox-static when the default pause image
    // has not been provided.
    let images_dir = agent_dir.join("images");
    if cfg.sandbox_image == DEFAULT_PAUSE_IMAGE
        && !images_dir.join("pause.tar").exists()
        && cfg.busybox.exists()
    {
        match crate::images::build_base_images(&images_dir, &cfg.busybox) {
            Ok(files) => {
                tracing::info!(count = files.len(), dir = %images_dir.display(), "built base images")
            }
            Err(e) => tracing::warn!(error = %e, "building base images"),
        }
    }
    let importer = crate::containerd::CtrImporter {
        ctr: cfg.ctr_binary.clone(),
        socket: socket.clone(),
    };
    for (path, r) in crate::containerd::import_dir(&importer, &images_dir).await {
        match r {
            Ok(()) => tracing::info!(image = %path.display(), "imported image"),
            Err(e) => tracing::warn!(image = %path.display(), error = %e, "importing image failed"),
        }
    }
    let runtime: Arc<dyn Runtime> = Arc::new(GrpcRuntime::connect(&socket).await?);
    let version = runtime.version().await?;
    let runtime_version = format!("{}://{}", version.runtime_name, version.runtime_version);

    register(&client, &cfg.node).await?;
    tracing::info!(node = %cfg.node.name, elapsed_ms = started.elapsed().as_millis() as u64, "node registered");

    let kubelet = crate::kubelet::Kubelet::new(
        client.clone(),
        runtime.clone(),
        crate::kubelet::KubeletPaths::under(&agent_dir),
        cfg.node.clone(),
        cfg.sandbox_image.clone(),
        crate::resolvconf::DnsSettings {
            cluster_dns: cfg.cluster_dns.clone(),
            cluster_domain: cfg.cluster_domain.clone(),
            resolv_conf: cfg.resolv_conf.clone(),
        },
    );
    let tls = crate::server::ServerTls {
        ca_pem: std::fs::read_to_string(&paths.ca).unwrap_or_default(),
        cert_pem: std::fs::read_to_string(&paths.serving_cert).unwrap_or_default(),
        key_pem: std::fs::read_to_string(&paths.serving_key).unwrap_or_default(),
    };
    let listener = tokio::net::TcpListener::bind((
        cfg.node
            .internal_ip
            .parse::<std::net::IpAddr>()
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        cfg.kubelet_port,
    ))
    .await
    .map_err(|e| {
        AgentError::Kubelet(format!(
            "binding the kubelet port {}: {e}",
            cfg.kubelet_port
        ))
    })?;

    let mut tasks = tokio::task::JoinSet::new();
    for c in components {
        tasks.spawn(c(client.clone()));
    }
    tasks.spawn(lease_loop(client.clone(), cfg.node.name.clone()));
    tasks.spawn(status_loop(
        client.clone(),
        runtime.clone(),
        kubelet.clone(),
        cfg.clone(),
        runtime_version,
    ));
    let cluster_cidr: crate::network::Ipv4Cidr = cfg
        .cluster_cidr
        .parse()
        .map_err(|e: crate::network::NetworkError| AgentError::Network(e.to_string()))?;
    let service_cidr: crate::network::Ipv4Cidr = cfg
        .service_cidr
        .parse()
        .map_err(|e: crate::network::NetworkError| AgentError::Network(e.to_string()))?;
    tasks.spawn(crate::netsync::run(
        client.clone(),
        cfg.node.name.clone(),
        crate::netsync::NetSettings {
            cluster_cidr,
            service_cidr,
            ipam_data_dir: agent_dir.join("cni/ipam"),
            conf_dir: cd_paths.cni_conf_dir.clone(),
        },
    ));
    tasks.spawn(crate::staticpods::run(
        client.clone(),
        cfg.node.name.clone(),
        agent_dir.join("pod-manifests"),
    ));
    {
        let k = kubelet.clone();
        tasks.spawn(async move { k.run().await });
    }
    let stats = Arc::new(crate::stats::StatsCollector::new(
        runtime.clone(),
        cfg.node.name.clone(),
        crate::stats::HostPaths::host(),
        crate::stats::StatsConfig::for_host(),
    ));
    tasks.spawn(stats.clone().run());
    {
        let backend: Arc<dyn crate::server::KubeletBackend> = kubelet.clone();
        let app = crate::server::router(backend).merge(crate::stats::routes(stats));
        tasks.spawn(async move {
            if let Err(e) = crate::server::serve_router(listener, tls, app).await {
                tracing::error!(error = %e, "kubelet server stopped");
            }
        });
    }
    tracing::info!(node = %cfg.node.name, "agent running");
    tokio::select! {
        _ = shutdown => tracing::info!("agent shutting down"),
        Some(r) = tasks.join_next() => tracing::error!(result = ?r.err(), "an agent task ended"),
    }
    tasks.abort_all();
    if let Some(s) = supervisor {
        s.stop().await;
    }
    Ok(())
}

/// Creates the Node. When it already exists, as upstream's kubelet
/// (`tryRegisterWithAPIServer`), only the default labels are brought up to date
/// ([`nodestatus::reconcile_default_labels`]); user labels, annotations and taints of an
/// existing Node are never changed by its kubelet.
async fn register(client: &kube::Client, cfg: &NodeConfig) -> Result<(), AgentError> {
    let api: Api<Node> = Api::all(client.clone());
    let node = nodestatus::new_node(cfg);
    let err = |e: kube::Error| AgentError::Register {
        name: cfg.name.clone(),
        message: e.to_string(),
    };
    for attempt in 0..60 {
        let r = match api.create(&PostParams::default(), &node).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => reconcile_existing(&api, &node).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 59 => {
                tracing::warn!(error = %e, "registering node, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(err(e)),
        }
    }
    Ok(())
}

/// The re-registration half of [`register`]: reads the existing Node and patches the
/// default labels that differ (nothing when they all match).
async fn reconcile_existing(api: &Api<Node>, initial: &Node) -> Result<(), kube::Error> {
    let name = initial.metadata.name.as_deref().unwrap_or("");
    let existing = api.get(name).await?;
    tracing::info!(node = %name, "node was previously registered");
    let changes = nodestatus::reconcile_default_labels(
        initial
            .metadata
            .labels
            .as_ref()
            .unwrap_or(&Default::default()),
        existing
            .metadata
            .labels
            .as_ref()
            .unwrap_or(&Default::default()),
    );
    if changes.is_empty() {
        return Ok(());
    }
    let patch = json!({"metadata": {"labels": changes}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn now_time() -> Time {
    Time(jiff::Timestamp::now())
}

/// Renews the node's Lease in kube-node-lease every 10 s (40 s duration, as upstream).
async fn lease_loop(client: kube::Client, node: String) {
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(client);
    loop {
        let now = MicroTime(jiff::Timestamp::now());
        let r = match api.get_opt(&node).await {
            Ok(Some(mut l)) => {
                let spec = l.spec.get_or_insert_with(Default::default);
                spec.renew_time = Some(now);
                spec.holder_identity = Some(node.clone());
                spec.lease_duration_seconds = Some(40);
                api.replace(&node, &PostParams::default(), &l)
                    .await
                    .map(|_| ())
            }
            Ok(None) => {
                let owner = nodes.get(&node).await.ok().map(|n| OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: node.clone(),
                    uid: n.metadata.uid.unwrap_or_default(),
                    ..Default::default()
                });
                let l = Lease {
                    metadata: ObjectMeta {
                        name: Some(node.clone()),
                        namespace: Some("kube-node-lease".into()),
                        owner_references: owner.map(|o| vec![o]),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(node.clone()),
                        lease_duration_seconds: Some(40),
                        renew_time: Some(now),
                        ..Default::default()
                    }),
                };
                api.create(&PostParams::default(), &l).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        let wait = match r {
            Ok(()) => Duration::from_secs(10),
            Err(e) => {
                tracing::warn!(error = %e, "renewing node lease");
                Duration::from_secs(2)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

async fn runtime_health(runtime: &dyn Runtime) -> Option<String> {
    match runtime.status().await {
        Err(e) => Some(format!("container runtime is down: {e}")),
        Ok(s) => {
            let conds = s.status.map(|s| s.conditions).unwrap_or_default();
            for c in conds {
                if !c.status {
                    let what = if c.r#type == "NetworkReady" {
                        "container runtime network not ready"
                    } else {
                        "container runtime not ready"
                    };
                    return Some(format!(
                        "{what}: {}=false reason:{} message:{}",
                        c.r#type, c.reason, c.message
                    ));
                }
            }
            None
        }
    }
}

/// Posts node status when it changes (checked every 10 s) and at least every 5 minutes.
async fn status_loop(
    client: kube::Client,
    runtime: Arc<dyn Runtime>,
    kubelet: Arc<crate::kubelet::Kubelet>,
    cfg: AgentConfig,
    runtime_version: String,
) {
    let api: Api<Node> = Api::all(client);
    let machine = nodestatus::SysMachine;
    let mut last_sent: Option<(k8s_openapi::api::core::v1::NodeStatus, std::time::Instant)> = None;
    let mut interval = Duration::from_millis(200);
    loop {
        let facts = machine.facts(&cfg.agent_dir());
        // Memory and disk pressure as the eviction manager reports them (with its
        // transition period); PID pressure from the process count heuristic.
        let (_, _, pid) = nodestatus::pressures(&cfg.node, &facts);
        let p = kubelet.pressure();
        let health = Health {
            not_ready: runtime_health(runtime.as_ref()).await,
            memory_pressure: p.memory,
            disk_pressure: p.disk,
            pid_pressure: pid || p.pid,
        };
        let images: Vec<ContainerImage> = runtime
            .list_images()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|i| {
                let mut names = i.repo_digests.clone();
                names.extend(i.repo_tags.clone());
                ContainerImage {
                    names: Some(names),
                    size_bytes: Some(i.size as i64),
                }
            })
            .collect();
        // The Node itself, not its status subresource: a node may get only its own Node
        // object (the Node authorizer gives no `get` on nodes/status).
        let old = api
            .get(&cfg.node.name)
            .await
            .ok()
            .and_then(|n| n.status)
            .and_then(|s| s.conditions)
            .unwrap_or_default();
        let status = nodestatus::node_status(
            &cfg.node,
            &StatusInputs {
                machine: &facts,
                runtime_version: &runtime_version,
                images,
                health: health.clone(),
            },
            &now_time(),
            &old,
        );
        let due = match &last_sent {
            None => true,
            Some((prev, at)) => {
                nodestatus::status_changed(prev, &status) || at.elapsed() > Duration::from_secs(300)
                    // The node lifecycle controller may have marked us Unknown.
                    || old.iter().any(|c| c.status == "Unknown")
            }
        };
        if due {
            match api
                .patch_status(
                    &cfg.node.name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
            {
                Ok(_) => {
                    if health.not_ready.is_none() {
                        interval = Duration::from_secs(10);
                    }
                    last_sent = Some((status, std::time::Instant::now()));
                }
                Err(e) => tracing::warn!(error = %e, "updating node status"),
            }
        }
        tokio::time::sleep(interval).await;
    }
}
