//! The scheduler: watches unscheduled pods, filters and scores nodes with pure functions
//! over a snapshot, and binds through the `pods/binding` subresource.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
}

/// Settings of the scheduler.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pods with this `spec.schedulerName` are ours.
    pub scheduler_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            scheduler_name: "default-scheduler".into(),
        }
    }
}

/// Runs the scheduler until a fatal error.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let _ = (client, config);
    std::future::pending().await
}
