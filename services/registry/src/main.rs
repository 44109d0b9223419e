//! `vigil-registry`: one replica of the session registry.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vigil_registry::app::{self, RegistryConfig};

#[derive(Parser)]
#[command(
    version,
    about = "Vigil session registry: the source of truth of sessions, and the gateway agents' link"
)]
struct Cli {
    /// TOML configuration file; `VIGIL_*` environment variables override it (`VIGIL_DATABASE__URL`).
    #[arg(long, short, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration and exit.
    PrintConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config: RegistryConfig = vigil_runtime::config::load(cli.config.as_deref(), "VIGIL_")?;
    let command = cli.command.unwrap_or(Command::Serve);
    // Only a serving process exports traces and metrics (and opens the scrape port).
    let _telemetry = match command {
        Command::Serve => vigil_runtime::telemetry::init_telemetry(&config.log, &config.telemetry, "vigil-registry")?,
        _ => vigil_runtime::telemetry::init_logs(&config.log)?,
    };
    match command {
        Command::Serve => app::run(config, vigil_runtime::shutdown::shutdown_on_signal()).await,
        Command::Migrate => {
            app::open_store(&config.database, true).await?;
            tracing::info!(database = %config.database, "migrations applied");
            Ok(())
        }
        Command::PrintConfig => {
            print!("{}", vigil_runtime::config::describe(&config)?);
            Ok(())
        }
    }
}
