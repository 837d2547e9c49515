//! The controller manager: idempotent reconcilers fed by de-duplicating work queues over
//! shared informers, each talking to the API server only through list-watch HTTP, as
//! upstream's kube-controller-manager does.

pub mod cachedpod;
pub mod cronjob;
pub mod cronsched;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod gc;
pub mod informers;
pub mod job;
pub mod meta;
pub mod namespace;
pub mod nodelifecycle;
pub mod podctl;
pub mod recorder;
pub mod replicaset;
pub mod serviceaccount;
pub mod servicelb;
pub mod statefulset;

use std::sync::Arc;
use std::time::Duration;

/// Settings of the controller manager.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pod network, split into one `spec.podCIDR` per node.
    pub cluster_cidr: String,
    /// Size of each node's pod CIDR (prefix length), 24 by default.
    pub node_cidr_mask_size: u8,
    /// After this long without a Lease renewal a node goes Ready=Unknown (40 s upstream).
    pub node_monitor_grace_period: Duration,
    /// The cluster CA, published as the `kube-root-ca.crt` ConfigMap in every namespace.
    pub root_ca_pem: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster_cidr: "10.42.0.0/16".into(),
            node_cidr_mask_size: 24,
            node_monitor_grace_period: Duration::from_secs(40),
            root_ca_pem: String::new(),
        }
    }
}

/// What every controller gets.
pub struct Ctx {
    pub client: kube::Client,
    pub informers: Arc<informers::Informers>,
    pub config: Config,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Runs every controller until one fails (each retries API errors itself; a returned error
/// is fatal). Controllers subscribe to the shared informers first, then the informers start.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let ctx = Arc::new(Ctx {
        informers: Arc::new(informers::Informers::new(&client)),
        client,
        config,
    });
    type Fut = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send>>;
    let controllers: Vec<(&str, Fut)> = vec![
        ("replicaset", Box::pin(replicaset::run(ctx.clone()))),
        ("deployment", Box::pin(deployment::run(ctx.clone()))),
        ("garbagecollector", Box::pin(gc::run(ctx.clone()))),
        ("namespace", Box::pin(namespace::run(ctx.clone()))),
        ("serviceaccount", Box::pin(serviceaccount::run(ctx.clone()))),
        ("nodelifecycle", Box::pin(nodelifecycle::run(ctx.clone()))),
        ("disruption", Box::pin(disruption::run(ctx.clone()))),
        ("job", Box::pin(job::run(ctx.clone()))),
        ("cronjob", Box::pin(cronjob::run(ctx.clone()))),
        ("daemonset", Box::pin(daemonset::run(ctx.clone()))),
        ("statefulset", Box::pin(statefulset::run(ctx.clone()))),
        ("endpointslice", Box::pin(endpointslice::run(ctx.clone()))),
        ("endpoint", Box::pin(endpoints::run(ctx.clone()))),
        ("servicelb", Box::pin(servicelb::run(ctx.clone()))),
    ];
    let mut set = tokio::task::JoinSet::new();
    for (name, fut) in controllers {
        set.spawn(async move { (name, fut.await) });
    }
    // Let every controller subscribe before the informers begin streaming.
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    ctx.informers.start_all();
    while let Some(done) = set.join_next().await {
        match done {
            Ok((name, Err(e))) => {
                tracing::error!(controller = name, error = %e, "controller failed");
                return Err(e);
            }
            Ok((name, Ok(()))) => tracing::info!(controller = name, "controller stopped"),
            Err(e) => return Err(Error::Invalid(format!("controller task panicked: {e}"))),
        }
    }
    Ok(())
}
