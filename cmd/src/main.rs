//! The `minik8s` binary: `minik8s server` runs the control plane; later issues add the
//! agent. Flags follow k3s.

mod server;

use clap::{Parser, Subcommand};

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
    /// Run the control plane (API server over the embedded store or etcd).
    Server(server::ServerArgs),
}

fn main() -> anyhow::Result<()> {
    let argv = server::expand_config_file(std::env::args().collect())?;
    let cli = Cli::parse_from(argv);
    match cli.command {
        Command::Server(args) => {
            init_logging(args.verbosity);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(server::run(args))
        }
    }
}

fn init_logging(v: u8) {
    let level = match v {
        0 => "info",
        1..=2 => "info,apiserver=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MINIK8S_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
