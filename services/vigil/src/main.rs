//! `vigil`: every Vigil service in one process (the embedded default), plus `migrate` and a
//! gateway simulator for a registry elsewhere.

mod demo;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use vigil::Composition;
use vigil::config::{SimulationSettings, VigilConfig};
use vigil_agent::simulate::{self, SimulationConfig};
use vigil_registry::app::open_store;

use crate::demo::{Demos, LocalSetup};

/// mimalloc, not glibc's malloc: a fifth less CPU per admission, list page and kill (README,
/// Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Vigil: live remote-access sessions, seen and controlled. All services in one process."
)]
struct Cli {
    /// TOML configuration file; `VIGIL_*` environment variables override it (`VIGIL_SERVER__LISTEN`).
    #[arg(long, short, global = true, env = "VIGIL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in this process (the default).
    Run,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration and exit.
    PrintConfig,
    /// Run simulated gateways against a registry elsewhere.
    Simulate(SimulateArgs),
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// The registry's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:7400")]
    registry: String,
    #[arg(long, default_value_t = 4)]
    gateways: usize,
    #[arg(long, default_value_t = 25)]
    sessions_per_gateway: usize,
    #[arg(long, default_value_t = 0.2)]
    idle_fraction: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Put before every gateway id, so that several simulators can share one registry.
    #[arg(long, default_value = "")]
    gateway_id_prefix: String,
    /// Another registry replica to fail over to (repeatable).
    #[arg(long = "failover-registry")]
    failover_registries: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config: VigilConfig = vigil_runtime::config::load(cli.config.as_deref(), "VIGIL_")?;
    let command = cli.command.unwrap_or(Command::Run);
    // Only a serving process exports traces and metrics (and opens the scrape port).
    let _telemetry = match command {
        Command::Run | Command::Simulate(_) => {
            vigil_runtime::telemetry::init_telemetry(&config.log, &config.telemetry, "vigil")?
        }
        Command::Migrate | Command::PrintConfig => vigil_runtime::telemetry::init_logs(&config.log)?,
    };
    let shutdown = vigil_runtime::shutdown::shutdown_on_signal();
    match command {
        Command::Run => run(config, shutdown).await,
        Command::Migrate => {
            open_store(&config.database, true).await?;
            tracing::info!(database = %config.database, "migrations applied");
            Ok(())
        }
        Command::PrintConfig => {
            print!("{}", vigil_runtime::config::describe(&config)?);
            Ok(())
        }
        Command::Simulate(args) => simulate_elsewhere(args, &config, shutdown).await,
    }
}

/// Simulated gateways against the registry at `args.registry`, until `shutdown`.
async fn simulate_elsewhere(
    args: SimulateArgs,
    config: &VigilConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let settings = SimulationSettings {
        enabled: true,
        gateways: args.gateways,
        sessions_per_gateway: args.sessions_per_gateway,
        idle_fraction: args.idle_fraction,
        seed: args.seed,
        ..SimulationSettings::default()
    };
    // The gateways present the credentials the registry's configuration gives them.
    let credentials = config
        .auth
        .gateway_credentials
        .iter()
        .map(|(gateway, credential)| (gateway.clone(), credential.expose().to_owned()))
        .collect();
    let simulation = simulate::run(
        SimulationConfig {
            gateway_id_prefix: args.gateway_id_prefix,
            failover_urls: args.failover_registries,
            ..demo::simulation_config(&args.registry, &settings, credentials)
        },
        shutdown,
    )
    .await?;
    tracing::info!(registry = %args.registry, gateways = args.gateways, sessions_per_gateway = args.sessions_per_gateway, "simulating gateways; Ctrl-C stops");
    simulation.wait().await;
    Ok(())
}

/// The embedded default: every service on one port, the console, and the demo gateways.
async fn run(mut config: VigilConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let local = LocalSetup::provision(&mut config)?;
    let mut vigil = Composition::new(&config)
        .with_console(local.sign_in.clone())
        .start(shutdown.clone())
        .await?;
    let demos = Demos::start(&config, &vigil.url, &local, shutdown).await?;
    demo::print_welcome(&config, &vigil.url, &local, &demos);
    vigil.serve().await?;
    demos.stop().await;
    vigil.stop().await;
    Ok(())
}
