//! `minik8s server`: flags, config file, data directory layout, bootstrap objects, and
//! starting the API server.

use anyhow::{bail, Context};
use apiserver::pki::{self, Pki};
use clap::Args;
use serde_json::json;
use sha2::Digest;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Directory for state, certificates and the embedded store.
    #[arg(long, default_value = "/var/lib/minik8s")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// HTTPS port.
    #[arg(long, default_value_t = 6443)]
    pub https_listen_port: u16,
    /// Address advertised to nodes and written into the serving certificate.
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,
    /// Extra subject alternative names for the serving certificate (repeatable).
    #[arg(long = "tls-san", action = clap::ArgAction::Append)]
    pub tls_san: Vec<String>,
    /// Cluster join secret; generated and written to DATA/server/token when absent.
    #[arg(long, env = "MINIK8S_TOKEN")]
    pub token: Option<String>,
    /// Empty: embedded store. `http://host:2379[,http://host2:2379]`: etcd.
    #[arg(long, default_value = "")]
    pub datastore_endpoint: String,
    /// Where to write the admin kubeconfig (mode 0600). Default: DATA/kubeconfig.yaml.
    #[arg(long)]
    pub write_kubeconfig: Option<PathBuf>,
    /// Do not run the node agent in the server.
    #[arg(long)]
    pub disable_agent: bool,
    /// Do not run the controller manager.
    #[arg(long)]
    pub disable_controllers: bool,
    /// Do not run the scheduler.
    #[arg(long)]
    pub disable_scheduler: bool,
    /// Pod network CIDR.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// Service network CIDR.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// Port range reserved for NodePort Services (`30000-32767`, `30000+2767`).
    #[arg(long, default_value = apiserver::services::DEFAULT_NODE_PORT_RANGE)]
    pub service_node_port_range: String,
    /// Encrypt Secrets at rest with a generated AES-CBC key (k3s's flag; the config is kept
    /// in DATA/server/cred/encryption-config.json).
    #[arg(long)]
    pub secrets_encryption: bool,
    /// An upstream EncryptionConfiguration file (overrides `--secrets-encryption`'s file).
    #[arg(long)]
    pub encryption_provider_config: Option<PathBuf>,
    /// Audit log file (`-` for stdout); needs `--audit-policy-file`.
    #[arg(long)]
    pub audit_log_path: Option<PathBuf>,
    /// Upstream audit Policy (audit.k8s.io/v1) deciding what is logged at which level.
    #[arg(long)]
    pub audit_policy_file: Option<PathBuf>,
    /// Rotate the audit log at this many MiB (0: 100).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxsize: u64,
    /// Rotated audit logs kept (0: all).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxbackup: usize,
    /// Days rotated audit logs are kept (0: forever).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxage: u64,
    /// Static bearer tokens (upstream CSV: `token,user,uid,"group1,group2"`).
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Admission plugins to switch off, comma-separated (upstream names, e.g.
    /// `ServiceAccount,PodSecurity`).
    #[arg(long, value_delimiter = ',')]
    pub disable_admission_plugins: Vec<String>,
    /// YAML file with the same keys as the flags (e.g. `data-dir: /x`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Log verbosity (repeat for more).
    #[arg(short = 'v', action = clap::ArgAction::Count)]
    pub verbosity: u8,
    /// Flags of the server's own node agent.
    #[command(flatten)]
    pub node: crate::agent::NodeArgs,
}

/// Turns `--config FILE` into flags placed before the command-line ones, so the command
/// line wins. Keys are flag names; lists repeat the flag; `true` booleans become switches.
pub fn expand_config_file(argv: Vec<String>) -> anyhow::Result<Vec<String>> {
    let pos = argv
        .iter()
        .position(|a| a == "--config" || a.starts_with("--config="));
    let Some(pos) = pos else { return Ok(argv) };
    let path = match argv[pos].strip_prefix("--config=") {
        Some(p) => p.to_string(),
        None => argv
            .get(pos + 1)
            .cloned()
            .context("--config needs a file")?,
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading config file {path}"))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("parsing config file {path}"))?;
    let mut extra = Vec::new();
    if let serde_yaml::Value::Mapping(m) = doc {
        for (k, v) in m {
            let key = k
                .as_str()
                .context("config keys must be strings")?
                .to_string();
            if key == "config" {
                continue;
            }
            let flag = format!("--{key}");
            match v {
                serde_yaml::Value::Bool(true) => extra.push(flag),
                serde_yaml::Value::Bool(false) | serde_yaml::Value::Null => {}
                serde_yaml::Value::Sequence(items) => {
                    for i in items {
                        extra.push(flag.clone());
                        extra.push(scalar(&i)?);
                    }
                }
                other => {
                    extra.push(flag);
                    extra.push(scalar(&other)?);
                }
            }
        }
    } else if !matches!(doc, serde_yaml::Value::Null) {
        bail!("config file {path} must be a mapping of flag names to values");
    }
    // Insert after the subcommand name (argv[0] = program, argv[1] = subcommand).
    let at = 2.min(argv.len());
    let mut out = argv[..at].to_vec();
    out.extend(extra);
    out.extend_from_slice(&argv[at..]);
    Ok(out)
}

fn scalar(v: &serde_yaml::Value) -> anyhow::Result<String> {
    Ok(match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        other => bail!("unsupported config value {other:?}"),
    })
}

/// What the system Services point at: `kubernetes` at the first service IP with the
/// advertise address behind it, `kube-dns` at the first `--cluster-dns` address with the
/// DNS server on the advertise address.
fn system_services_config(
    args: &ServerArgs,
) -> anyhow::Result<apiserver::services::SystemServicesConfig> {
    let cidr = apiserver::services::ServiceCidr::parse(&args.service_cidr)?;
    let kubernetes_ip = cidr
        .first()
        .with_context(|| format!("service cidr {} has no usable address", args.service_cidr))?;
    let endpoint = args
        .advertise_address
        .or_else(|| (!args.bind_address.is_unspecified()).then_some(args.bind_address))
        .or(args.node.node_ip)
        .or_else(default_route_ip);
    let endpoint_ip = match endpoint {
        Some(IpAddr::V4(ip)) => ip,
        Some(IpAddr::V6(_)) => bail!("the advertise address must be IPv4"),
        None => std::net::Ipv4Addr::LOCALHOST,
    };
    let cluster_dns = args
        .node
        .cluster_dns
        .iter()
        .map(|s| s.trim())
        .find(|s| !s.is_empty())
        .map(|s| {
            s.parse::<std::net::Ipv4Addr>()
                .with_context(|| format!("--cluster-dns {s:?}: not an IPv4 address"))
        })
        .transpose()?;
    Ok(apiserver::services::SystemServicesConfig {
        kubernetes_ip,
        apiserver_ip: endpoint_ip,
        apiserver_port: args.https_listen_port,
        cluster_dns,
        dns_ip: endpoint_ip,
    })
}

/// The address of the interface holding the default route, as k3s picks it: the source
/// address towards a documentation address.
fn default_route_ip() -> Option<IpAddr> {
    crate::agent::source_ip_towards("192.0.2.1:9")
}

/// The cluster DNS on the address the `kube-dns` Service points at, port 53, reading the
/// API as `system:kube-dns`. A port that cannot be bound (another server on this host,
/// no privilege) is retried, not fatal: the API keeps serving.
async fn run_cluster_dns(client: kube::Client, cfg: proxy::dns::DnsConfig) {
    loop {
        match proxy::dns::run(client.clone(), cfg.clone()).await {
            Ok(()) => tracing::warn!("cluster dns stopped; restarting"),
            Err(e) => {
                tracing::error!(error = %e, listen = ?cfg.listen, "cluster dns failed; retrying in 10 s")
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    }
}

fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let server_dir = args.data_dir.join("server");
    std::fs::create_dir_all(&server_dir)
        .with_context(|| format!("creating data dir {}", server_dir.display()))?;
    let system = system_services_config(&args)?;
    // The `kubernetes` Service's address, which the serving certificate must name.
    let service_ip = IpAddr::V4(system.kubernetes_ip);

    let mut sans: Vec<String> = vec![
        "127.0.0.1".into(),
        "localhost".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        service_ip.to_string(),
    ];
    if let Some(a) = args.advertise_address {
        sans.push(a.to_string());
    }
    if !args.bind_address.is_unspecified() {
        sans.push(args.bind_address.to_string());
    }
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        sans.push(h.trim().to_string());
    }
    sans.extend(args.tls_san.iter().cloned());
    let pki =
        Pki::load_or_create(&server_dir.join("tls"), &sans).context("setting up certificates")?;

    // Join token: k3s form K10<sha256(CA)>::server:<secret>.
    let token_file = server_dir.join("token");
    let secret = match &args.token {
        Some(t) => apiserver::auth::join_token_secret(t).to_string(),
        None => match std::fs::read_to_string(&token_file) {
            Ok(t) => apiserver::auth::join_token_secret(t.trim()).to_string(),
            Err(_) => random_hex(16),
        },
    };
    let ca_hash: String = sha2::Sha256::digest(pki.ca_cert_pem.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let full_token = format!("K10{ca_hash}::server:{secret}");
    pki::write_file(&token_file, &format!("{full_token}\n"), 0o600)?;

    let backend = store::open(&args.datastore_endpoint, &server_dir.join("db"))
        .await
        .with_context(|| {
            if args.datastore_endpoint.is_empty() {
                "opening the embedded store".to_string()
            } else {
                format!("connecting to etcd at {}", args.datastore_endpoint)
            }
        })?;
    let backend = match encryption_config(&args, &server_dir)? {
        None => backend,
        Some(path) => {
            let text =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let transformers = apiserver::encryption::Transformers::load(&text)
                .with_context(|| format!("loading encryption configuration {}", path.display()))?;
            let enc = Arc::new(apiserver::encstore::EncryptedBackend::new(
                backend,
                transformers,
            ));
            let rewritten = enc
                .reencrypt_stale()
                .await
                .context("re-encrypting stored values with the current key")?;
            tracing::info!(
                config = %path.display(),
                resources = ?enc.covered(),
                rewritten,
                "encryption at rest enabled"
            );
            enc
        }
    };
    let backend: Arc<dyn store::Backend> = store::cache::WatchCache::new(backend);

    let advertise = args
        .advertise_address
        .map(|a| a.to_string())
        .unwrap_or_else(|| {
            if args.bind_address.is_unspecified() {
                "127.0.0.1".into()
            } else {
                args.bind_address.to_string()
            }
        });
    let app = apiserver::server::App::new(
        backend.clone(),
        &secret,
        format!("{advertise}:{}", args.https_listen_port),
    );
    let system_services = apiserver::services::system_services(&system);
    let allocator = Arc::new(
        apiserver::services::ServiceAllocator::new(
            backend,
            apiserver::services::ServiceAllocatorConfig {
                service_cidr: args.service_cidr.clone(),
                node_port_range: args.service_node_port_range.clone(),
                reserved: apiserver::services::reservations(&system_services),
            },
        )
        .context("configuring service allocation")?,
    );
    let _ = app.registry.services.set(allocator.clone());
    match (&args.audit_log_path, &args.audit_policy_file) {
        (Some(log), Some(policy)) => {
            let text =
                std::fs::read(policy).with_context(|| format!("reading {}", policy.display()))?;
            let policy = apiserver::audit::Policy::parse(&text)
                .with_context(|| format!("loading audit policy {}", policy.display()))?;
            let mut opts = apiserver::audit::LogOptions::new(log);
            opts.max_size_mib = args.audit_log_maxsize;
            opts.max_backups = args.audit_log_maxbackup;
            opts.max_age_days = args.audit_log_maxage;
            let sink = apiserver::audit::FileSink::new(opts)
                .with_context(|| format!("opening audit log {}", log.display()))?;
            let _ = app.audit.set(Arc::new(apiserver::audit::Auditor {
                policy,
                sink: Box::new(sink),
            }));
        }
        (Some(_), None) => {
            tracing::warn!("--audit-log-path without --audit-policy-file: no events are recorded")
        }
        _ => {}
    }
    if let Some(path) = &args.token_auth_file {
        let file = apiserver::authn::TokenFile::load(&path.to_string_lossy())
            .context("loading --token-auth-file")?;
        let _ = app.bearer.file.set(file);
    }
    for p in &args.disable_admission_plugins {
        if !apiserver::admission::PLUGINS.contains(&p.as_str()) {
            bail!(
                "--disable-admission-plugins: unknown plugin {p:?} (known: {})",
                apiserver::admission::PLUGINS.join(", ")
            );
        }
    }
    let _ = app
        .registry
        .disabled_admission
        .set(args.disable_admission_plugins.clone());
    bootstrap(&app)
        .await
        .context("creating bootstrap namespaces")?;
    let rbac_started = std::time::Instant::now();
    app.bootstrap_rbac()
        .await
        .context("reconciling the bootstrap RBAC policy")?;
    tracing::debug!(
        elapsed_ms = rbac_started.elapsed().as_millis() as u64,
        "bootstrap rbac policy reconciled"
    );
    // Before serving: no create can be half done, so leaked allocations go at once.
    let repaired = allocator
        .repair(true)
        .await
        .context("repairing service allocations")?;
    if repaired.claimed > 0 || repaired.released > 0 {
        tracing::info!(
            claimed = repaired.claimed,
            released = repaired.released,
            "repaired service allocations"
        );
    }
    if let Err(e) =
        apiserver::services::reconcile_system_services(&app.registry, &system_services).await
    {
        tracing::warn!(error = %e, "creating the system services");
    }
    tokio::spawn(
        allocator
            .clone()
            .run_repair(apiserver::services::REPAIR_INTERVAL),
    );
    tokio::spawn(apiserver::quotactl::run(
        app.registry.clone(),
        apiserver::quotactl::RESYNC,
    ));
    tokio::spawn(apiserver::services::run_system_services(
        app.registry.clone(),
        system_services,
        apiserver::services::SYSTEM_SERVICES_INTERVAL,
    ));

    let addr = SocketAddr::new(args.bind_address, args.https_listen_port);
    let listener = apiserver::server::bind(addr).await?;
    let kubeconfig = args
        .write_kubeconfig
        .clone()
        .unwrap_or_else(|| args.data_dir.join("kubeconfig.yaml"));
    let host = if args.bind_address.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        args.bind_address.to_string()
    };
    let url = format!("https://{host}:{}", args.https_listen_port);
    pki::write_file(&kubeconfig, &pki.admin_kubeconfig(&url), 0o600)?;
    tracing::info!(
        listen = %addr,
        kubeconfig = %kubeconfig.display(),
        store = if args.datastore_endpoint.is_empty() { "embedded" } else { "etcd" },
        startup_ms = started.elapsed().as_millis() as u64,
        "minik8s server ready"
    );
    eprintln!("kubeconfig written to {}", kubeconfig.display());

    let _ = app.pki.set(Arc::new(pki.clone()));
    let _ = app
        .registry
        .webhooks
        .set(apiserver::webhooks::Webhooks::start(
            app.registry.store.clone(),
            Box::new(apiserver::admission::webhook::HttpsTransport::new(
                pki.ca_cert_pem.as_bytes(),
            )),
        ));
    let signer = apiserver::tokens::ServiceAccountSigner::load_or_create(&server_dir.join("tls"))
        .context("setting up the service account signing key")?;
    let _ = app.sa_signer.set(Arc::new(signer));
    let (kc_cert, kc_key) =
        pki.issue_client_cert("kube-apiserver-kubelet-client", &["system:masters"])?;
    let _ = app.kubelet_client.set(apiserver::streaming::KubeletClient {
        ca_pem: pki.ca_cert_pem.clone(),
        client_cert_pem: kc_cert,
        client_key_pem: kc_key,
    });
    let registry = app.registry.clone();
    let serve = apiserver::server::serve(listener, app, &pki);
    let components = run_components(&args, &pki, &url, &full_token, registry);
    tokio::select! {
        r = serve => r.context("api server stopped")?,
        r = components => r?,
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

/// A kube client for a built-in component, with its own client certificate.
///
/// It speaks HTTP/2 over a single TLS connection (`node::join::http2_client`): the
/// controller manager alone keeps ~40 watches open (shared informers plus the garbage
/// collector's metadata watches), each of which would otherwise hold a connection of its
/// own (BENCHMARKS.md, figure 8).
async fn component_client(pki: &Pki, url: &str, user: &str) -> anyhow::Result<kube::Client> {
    let (cert, key) = pki.issue_client_cert(user, &[])?;
    let yaml = pki.kubeconfig(url, &cert, &key);
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).context("component kubeconfig")?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .context("component client config")?;
    node::join::http2_client(cfg).map_err(|e| anyhow::anyhow!("component client: {e}"))
}

/// Runs the controller manager and the scheduler in-process, each talking to the API
/// server over HTTPS with its own identity. Returns only on a fatal error.
async fn run_components(
    args: &ServerArgs,
    pki: &Pki,
    url: &str,
    token: &str,
    registry: Arc<apiserver::registry::Registry>,
) -> anyhow::Result<()> {
    let mut set = tokio::task::JoinSet::new();
    if !args.disable_agent {
        let default_ip = args
            .advertise_address
            .or_else(|| (!args.bind_address.is_unspecified()).then_some(args.bind_address));
        let cfg = crate::agent::agent_config(
            crate::agent::JoinTarget {
                server: url.to_string(),
                token: token.to_string(),
                data_dir: args.data_dir.clone(),
                cluster_cidr: args.cluster_cidr.clone(),
                service_cidr: args.service_cidr.clone(),
                default_ip,
                control_plane: true,
            },
            &args.node,
        )?;
        let components = crate::proxy::node_components(&cfg, &args.node.proxy)?;
        // NodeRestriction keeps a kubelet from giving itself role labels: the server sets
        // them on its own node (as k3s does).
        tokio::spawn(label_control_plane_node(
            registry,
            cfg.node.name.clone(),
            node::nodestatus::role_labels(&cfg.node),
        ));
        set.spawn(async move {
            node::agent::run_with(cfg, std::future::pending(), components)
                .await
                .context("node agent")
        });
    }
    let system = system_services_config(args)?;
    if system.cluster_dns.is_some() {
        let client = component_client(pki, url, apiserver::auth::DNS_USER).await?;
        let resolv = &args.node.resolv_conf;
        let cfg = proxy::dns::DnsConfig {
            listen: vec![SocketAddr::new(IpAddr::V4(system.dns_ip), 53)],
            domain: args.node.cluster_domain.clone(),
            upstream: (!resolv.is_empty()).then(|| PathBuf::from(resolv)),
            ttl: 30,
        };
        set.spawn(async move {
            run_cluster_dns(client, cfg).await;
            Ok(())
        });
    }
    if !args.disable_controllers {
        let client = component_client(pki, url, "system:kube-controller-manager").await?;
        let cfg = controllers::Config {
            cluster_cidr: args.cluster_cidr.clone(),
            root_ca_pem: pki.ca_cert_pem.clone(),
            ..Default::default()
        };
        set.spawn(async move {
            controllers::run(client, cfg)
                .await
                .context("controller manager")
        });
    }
    if !args.disable_scheduler {
        let client = component_client(pki, url, "system:kube-scheduler").await?;
        set.spawn(async move {
            scheduler::run(client, scheduler::Config::default())
                .await
                .context("scheduler")
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    std::future::pending().await
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Where the encryption configuration is: `--encryption-provider-config`, or with
/// `--secrets-encryption` DATA/server/cred/encryption-config.json, written on first use.
pub fn encryption_config(
    args: &ServerArgs,
    server_dir: &std::path::Path,
) -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = &args.encryption_provider_config {
        return Ok(Some(p.clone()));
    }
    if !args.secrets_encryption {
        return Ok(None);
    }
    let path = server_dir.join("cred/encryption-config.json");
    if !path.exists() {
        let text = apiserver::encryption::generate_config(&mut rand::rng());
        pki::write_file(&path, &text, 0o600)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(Some(path))
}

/// `minik8s secrets-encrypt rotate`: puts a new AES-CBC key first in the server's
/// encryption configuration; the old keys stay readable, and the next server start
/// rewrites every Secret with the new key.
pub fn rotate_encryption_key(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let path = data_dir.join("server/cred/encryption-config.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let rotated = apiserver::encryption::rotate_text(&text, &mut rand::rng(), now)
        .context("rotating the encryption key")?;
    pki::write_file(&path, &rotated, 0o600)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "new key written to {}; restart the server to re-encrypt all Secrets with it",
        path.display()
    );
    Ok(())
}

/// Waits for the server's own Node to register, then adds the control-plane role labels
/// it lacks (merge patch, as the server itself).
async fn label_control_plane_node(
    registry: Arc<apiserver::registry::Registry>,
    node: String,
    labels: std::collections::BTreeMap<String, String>,
) {
    let Some(nodes) = apiserver::resources::find("", "v1", "nodes") else {
        return;
    };
    let opts = apiserver::registry::WriteOptions {
        dry_run: false,
        field_manager: "minik8s".into(),
        field_validation: apiserver::registry::FieldValidation::Strict,
        force: false,
        user: Default::default(),
    };
    for _ in 0..600 {
        if let Ok(n) = registry.get(nodes, "", &node).await {
            let have = &n["metadata"]["labels"];
            if labels.iter().all(|(k, v)| have[k] == json!(v)) {
                return;
            }
            let patch = json!({"metadata": {"labels": labels}});
            match registry
                .patch(
                    nodes,
                    "",
                    &node,
                    None,
                    apiserver::registry::PatchType::Merge,
                    patch,
                    &opts,
                )
                .await
            {
                Ok(_) => return,
                Err(e) => tracing::debug!(error = %e.message, "labelling the control-plane node"),
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Creates the namespaces every cluster has.
async fn bootstrap(app: &apiserver::server::App) -> anyhow::Result<()> {
    let res = apiserver::resources::find("", "v1", "namespaces").context("namespaces resource")?;
    let opts = apiserver::registry::WriteOptions {
        dry_run: false,
        field_manager: "minik8s".into(),
        field_validation: apiserver::registry::FieldValidation::Strict,
        force: false,
        user: Default::default(),
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match app.registry.create(res, "", obj, &opts).await {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => bail!("creating namespace {ns}: {}", e.message),
        }
    }
    let pcs = apiserver::resources::find("scheduling.k8s.io", "v1", "priorityclasses")
        .context("priorityclasses resource")?;
    for (name, value, description) in apiserver::admission::SYSTEM_PRIORITY_CLASSES {
        let obj = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description,
            "preemptionPolicy": "PreemptLowerPriority"});
        match app.registry.create(pcs, "", obj, &opts).await {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => bail!("creating priority class {name}: {}", e.message),
        }
    }
    Ok(())
}
