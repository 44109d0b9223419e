//! `vigil-policy`: one replica of the policy service.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vigil_policy::app::{self, PolicyConfig};

#[derive(Parser)]
#[command(
    version,
    about = "Vigil policy service: scoped policies, session admission, and the idle / maximum-duration sweeper"
)]
struct Cli {
    /// TOML configuration file; `VIGIL_*` environment variables override it.
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
    let config: PolicyConfig = vigil_runtime::config::load(cli.config.as_deref(), "VIGIL_")?;
    let command = cli.command.unwrap_or(Command::Serve);
    // Only a serving process exports traces and metrics (and opens the scrape port).
    let _telemetry = match command {
        Command::Serve => vigil_runtime::telemetry::init_telemetry(&config.log, &config.telemetry, "vigil-policy")?,
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
