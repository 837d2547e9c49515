//! The `minik8s` binary: `minik8s server` runs the control plane (and a node agent),
//! `minik8s agent` joins a worker, `minik8s proxy` runs the service proxy alone,
//! `minik8s images build` makes the offline base images.
//! Flags follow k3s.

mod agent;
mod alloc;
mod proxy;
mod server;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOC: alloc::Allocator = alloc::Allocator;

#[derive(Parser)]
#[command(
    name = "minik8s",
    version,
    about = "A small Kubernetes in one binary",
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (API server over the embedded store or etcd) and a node agent.
    Server(Box<server::ServerArgs>),
    /// Run a node agent (kubelet) that joins a server.
    Agent(Box<agent::AgentArgs>),
    /// Run the service proxy alone (as kube-proxy), against a kubeconfig.
    Proxy(proxy::ProxyCommandArgs),
    /// Offline base images.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Encryption of Secrets at rest.
    #[command(subcommand)]
    SecretsEncrypt(SecretsEncryptCommand),
    /// The server's certificates.
    #[command(subcommand)]
    Certificate(CertificateCommand),
}

#[derive(Subcommand)]
enum CertificateCommand {
    /// Remove the server's client certificates so its next start issues new ones (run
    /// with the server stopped; the CA, the serving certificate — reissued on every
    /// start — and the service account key stay).
    Rotate {
        #[arg(long, default_value = "/var/lib/minik8s")]
        data_dir: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum SecretsEncryptCommand {
    /// Put a new key first in DATA/server/cred/encryption-config.json (run with the
    /// server stopped; its next start re-encrypts every Secret).
    Rotate {
        #[arg(long, default_value = "/var/lib/minik8s")]
        data_dir: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Write localhost/busybox and localhost/pause OCI archives into DIR.
    Build(agent::ImagesBuildArgs),
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .enable_all()
        .build()
}

/// Caps glibc's malloc arenas before any thread starts. By default glibc gives each thread
/// that contends for the heap its own arena (up to 8 per core), and each keeps freed memory
/// of its own: with the tokio workers, blocking-pool threads and the store's threads that
/// costs ~9 MiB of idle RSS for no measurable throughput (BENCHMARKS.md, figure 1).
/// `MALLOC_ARENA_MAX` in the environment still overrides this.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator settings; called before threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Returns freed heap to the operating system now and then.
async fn trim_heap_periodically() {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        alloc::release_free_memory();
    }
}

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    let argv = server::expand_config_file(std::env::args().collect())?;
    let cli = Cli::parse_from(argv);
    match cli.command {
        Command::Server(args) => {
            alloc::use_mimalloc();
            init_logging(args.verbosity);
            let rt = runtime()?;
            rt.spawn(trim_heap_periodically());
            rt.block_on(server::run(*args))
        }
        Command::Agent(args) => {
            init_logging(args.verbosity);
            let rt = runtime()?;
            rt.spawn(trim_heap_periodically());
            rt.block_on(agent::run(*args))
        }
        Command::Proxy(args) => {
            init_logging(args.verbosity);
            runtime()?.block_on(proxy::run_command(args))
        }
        Command::Images(ImagesCommand::Build(args)) => agent::images_build(args),
        Command::SecretsEncrypt(SecretsEncryptCommand::Rotate { data_dir }) => {
            server::rotate_encryption_key(&data_dir)
        }
        Command::Certificate(CertificateCommand::Rotate { data_dir }) => {
            let dir = data_dir.join("server/tls");
            for p in apiserver::pki::rotate(&dir)? {
                println!("removed {}", p.display());
            }
            println!("restart the server to issue new certificates");
            Ok(())
        }
    }
}

fn init_logging(v: u8) {
    let level = match v {
        0 => "info",
        1..=2 => "info,apiserver=debug,node=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MINIK8S_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
