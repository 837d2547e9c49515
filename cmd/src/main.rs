//! The `minik8s` binary: `minik8s server` runs the control plane (and a node agent),
//! `minik8s agent` joins a worker, `minik8s proxy` runs the service proxy alone,
//! `minik8s images build` makes the offline base images.
//! Flags follow k3s.

mod agent;
mod proxy;
mod server;

use clap::{Parser, Subcommand};

/// mimalloc (v3, without transparent huge pages) instead of glibc's malloc for Rust
/// allocations: the API server allocates and frees many small objects per request (JSON
/// values, headers, buffers) from several threads, and glibc's arenas took a quarter of
/// the server's CPU in figure 6 (BENCHMARKS.md). SQLite keeps glibc's malloc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (libmimalloc-sys 0.1.49, whose
/// own constants follow v2's numbering); checked by a test against its v3 default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

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

/// Returns freed memory to the OS after 20 ms instead of mimalloc's default second, so an
/// idle server does not keep the peak of its last burst resident (figure 1). Set
/// `MIMALLOC_PURGE_DELAY` in the environment to override it.
fn tune_mimalloc() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one allocator option; mimalloc reads it on later purges.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 20) };
    }
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

/// Returns freed heap to the operating system now and then: after an informer's initial
/// list or a large LIST response, the allocators otherwise keep the peak resident.
async fn trim_heap_periodically() {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        // SAFETY: collects this thread's free pages and purges what is due.
        unsafe { libmimalloc_sys::mi_collect(true) };
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free memory; it is thread-safe in glibc.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

fn main() -> anyhow::Result<()> {
    tune_mimalloc();
    limit_malloc_arenas();
    let argv = server::expand_config_file(std::env::args().collect())?;
    let cli = Cli::parse_from(argv);
    match cli.command {
        Command::Server(args) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is mimalloc v3's `mi_option_purge_delay`: its default is 1000 ms
    /// (a v2 build or a renumbering would read another option here).
    #[test]
    fn purge_delay_option_is_v3s() {
        // SAFETY: reads one allocator option.
        let v = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(v, 1000);
    }
}
