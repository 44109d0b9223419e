//! `vigil-registry`: one replica of the session registry.

use clap::{Parser, Subcommand};
use vigil_registry::app::{self, RegistryConfig};
use vigil_runtime::service::{ServiceArgs, ServiceCommand, service_main};

/// mimalloc, not glibc's malloc: a fifth less CPU per admission, list page and kill (README,
/// Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Vigil session registry: the source of truth of sessions, and the gateway agents' link"
)]
struct Cli {
    #[command(flatten)]
    service: ServiceArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Service(ServiceCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Command::Service(command) = cli.command.unwrap_or(Command::Service(ServiceCommand::Serve));
    service_main(
        "vigil-registry",
        &cli.service,
        command,
        app::run,
        |config: RegistryConfig| async move { app::open_store(&config.database, true).await.map(drop) },
    )
    .await
}
