//! `vigil-termination`: one replica of the termination service.

use clap::{Parser, Subcommand};
use vigil_runtime::service::{ServiceArgs, ServiceCommand, service_main};
use vigil_termination::app::{self, TerminationConfig};

/// mimalloc, not glibc's malloc: a fifth less CPU per admission, list page and kill (README,
/// Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Vigil termination service: ends sessions, keeps the audit trail, delivers kill commands"
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
        "vigil-termination",
        &cli.service,
        command,
        app::run,
        |config: TerminationConfig| async move { app::open_store(&config.database, true).await.map(drop) },
    )
    .await
}
