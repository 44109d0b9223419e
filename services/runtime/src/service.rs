//! What every Vigil service binary does the same way: its command line (`serve`, `migrate`,
//! `print-config`, and `--config`), loading the configuration, setting up logs (and, when serving,
//! traces and metrics), and keeping health in step with the service's dependencies. A service's
//! `main` names itself, says how it serves and how it migrates, and adds commands of its own.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::database::DatabaseConfig;
use crate::server::Readiness;
use crate::telemetry::{LogConfig, TelemetryConfig};

/// How often readiness re-checks a service's dependencies.
pub const READINESS_INTERVAL: Duration = Duration::from_secs(2);

/// What `service_main` needs to know of a service's configuration.
pub trait ServiceConfig: DeserializeOwned + Serialize + Default {
    fn log(&self) -> &LogConfig;
    fn telemetry(&self) -> &TelemetryConfig;
    fn database(&self) -> &DatabaseConfig;
}

/// The options every service binary takes.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// TOML configuration file; `VIGIL_*` environment variables override it (`VIGIL_DATABASE__URL`).
    #[arg(long, short, env = "VIGIL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The commands every service binary takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Subcommand)]
pub enum ServiceCommand {
    /// Serve (the default).
    #[default]
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration and exit.
    PrintConfig,
}

/// Runs `command` for the service `name`: loads its configuration (defaults → file → `VIGIL_*`),
/// sets up telemetry, then serves until SIGTERM/SIGINT, migrates, or prints the configuration.
pub async fn service_main<C, Serve, Served, Migrate, Migrated>(
    name: &'static str,
    args: &ServiceArgs,
    command: ServiceCommand,
    serve: Serve,
    migrate: Migrate,
) -> anyhow::Result<()>
where
    C: ServiceConfig,
    Serve: FnOnce(C, CancellationToken) -> Served,
    Served: Future<Output = anyhow::Result<()>>,
    Migrate: FnOnce(C) -> Migrated,
    Migrated: Future<Output = anyhow::Result<()>>,
{
    let config: C = crate::config::load(args.config.as_deref(), "VIGIL_")?;
    // Only a serving process exports traces and metrics (and opens the scrape port).
    let _telemetry = match command {
        ServiceCommand::Serve => crate::telemetry::init_telemetry(config.log(), config.telemetry(), name)?,
        ServiceCommand::Migrate | ServiceCommand::PrintConfig => crate::telemetry::init_logs(config.log())?,
    };
    match command {
        ServiceCommand::Serve => serve(config, crate::shutdown::shutdown_on_signal()).await,
        ServiceCommand::Migrate => {
            let database = config.database().to_string();
            migrate(config).await?;
            tracing::info!(%database, "migrations applied");
            Ok(())
        }
        ServiceCommand::PrintConfig => {
            print!("{}", crate::config::describe(&config)?);
            Ok(())
        }
    }
}

/// Keeps health in step with what a service depends on: `NOT_SERVING` while `check` says why it
/// cannot serve (the database or the bus unreachable), `SERVING` again once it can. Checks every
/// [`READINESS_INTERVAL`] until `shutdown`; logs each change.
pub async fn keep_ready<Check, Checked>(readiness: Readiness, check: Check, shutdown: CancellationToken)
where
    Check: Fn() -> Checked,
    Checked: Future<Output = Result<(), String>>,
{
    let mut ticker = tokio::time::interval(READINESS_INTERVAL);
    let mut was_ready = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let outcome = check().await;
        let ready = outcome.is_ok();
        if was_ready != Some(ready) {
            match &outcome {
                Ok(()) => tracing::info!("dependencies reachable; serving"),
                Err(why) => tracing::warn!(%why, "not serving"),
            }
            readiness.set_all(ready).await;
            was_ready = Some(ready);
        }
    }
}

/// What a service that needs its database and the bus tells [`keep_ready`].
pub fn dependencies_reachable(database: crate::ServiceResult<()>, bus_connected: bool) -> Result<(), String> {
    match (database, bus_connected) {
        (Ok(()), true) => Ok(()),
        (Err(error), _) => Err(format!("database unreachable: {error}")),
        (Ok(()), false) => Err("control bus disconnected".into()),
    }
}
