//! `vigil-policy`: one replica of the policy service.

use clap::{Parser, Subcommand};
use vigil_policy::app::{self, PolicyConfig};
use vigil_runtime::service::{ServiceArgs, ServiceCommand, service_main};

/// mimalloc, not glibc's malloc: a fifth less CPU per admission, list page and kill (README,
/// Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Vigil policy service: scoped policies, session admission, and the idle / maximum-duration sweeper"
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
        "vigil-policy",
        &cli.service,
        command,
        app::run,
        |config: PolicyConfig| async move { app::open_store(&config.database, true).await.map(drop) },
    )
    .await
}
