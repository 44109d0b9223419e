//! `vigil`: every Vigil service in one process (the embedded default), plus `migrate` and a
//! gateway simulator for a registry elsewhere.

mod config;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use vigil_agent::simulate::{self, SimulationConfig};
use vigil_geo::Geo;
use vigil_geo::api::GeoApi;
use vigil_policy::api::PolicyApi;
use vigil_policy::clock::SystemClock;
use vigil_policy::service::PolicyEngine;
use vigil_policy::sweeper::Sweeper;
use vigil_proto::v1 as pb;
use vigil_registry::Registry;
use vigil_registry::admission::RiskAssessor;
use vigil_registry::app::{follow_dependencies, open_store};
use vigil_runtime::server::Server;
use vigil_termination::Terminator;
use vigil_termination::api::TerminationApi;

use crate::config::{SimulationSettings, VigilConfig};

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
    Simulate {
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
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config: VigilConfig = vigil_runtime::config::load(cli.config.as_deref(), "VIGIL_")?;
    vigil_runtime::telemetry::init_tracing(&config.log)?;
    let shutdown = vigil_runtime::shutdown::shutdown_on_signal();
    match cli.command.unwrap_or(Command::Run) {
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
        Command::Simulate {
            registry,
            gateways,
            sessions_per_gateway,
            idle_fraction,
            seed,
        } => {
            let settings = SimulationSettings {
                enabled: true,
                gateways,
                sessions_per_gateway,
                idle_fraction,
                seed,
                ..SimulationSettings::default()
            };
            let simulation = simulate::run(simulation_config(&registry, &settings), shutdown.clone()).await?;
            tracing::info!(%registry, gateways, sessions_per_gateway, "simulating gateways; Ctrl-C stops");
            simulation.wait().await;
            Ok(())
        }
    }
}

/// The embedded default: registry and termination (and, as they land, the other services) on one port.
async fn run(config: VigilConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = open_store(&config.database, true).await?;
    let bus = vigil_runtime::bus::connect(&config.bus).await?;
    let registry = Registry::start(config.registry.clone(), store, bus.clone(), shutdown.clone()).await?;

    // Termination asks the registry in process, and the registry's links report to it in process.
    config.termination.validate().map_err(anyhow::Error::msg)?;
    let termination_store = vigil_termination::app::open_store(&config.database, true).await?;
    let terminator = Terminator::new(
        termination_store,
        Arc::new(registry.clone()),
        bus.clone(),
        config.termination.clone(),
    );
    registry.attach_command_journal(Arc::new(terminator.clone()));
    registry.attach_session_evictor(Arc::new(terminator.clone()));
    vigil_termination::app::start_redelivery(&terminator, &config.termination, shutdown.clone());

    let geo = start_geo(&config, shutdown.clone()).await?;
    registry.attach_risk_assessor(Arc::new(InProcessGeo(geo.clone())));

    // Policy admits starts and sweeps idle and overlong sessions (it leads alone here; the lease
    // still guards against a second all-in-one on the same database).
    let policy_store = vigil_policy::app::open_store(&config.database, true).await?;
    let policy = PolicyEngine::new(policy_store.clone(), Arc::new(SystemClock));
    registry.attach_admission_policy(Arc::new(policy.clone()));
    let sweeper = Sweeper::new(
        policy_store,
        Arc::new(registry.clone()),
        Arc::new(terminator.clone()),
        bus.clone(),
        Arc::new(SystemClock),
        config.policy.clone(),
    )
    .start(shutdown.clone());

    let server = Server::new(config.server.clone())
        .add_service(registry.sessions_service())
        .add_service(registry.link_service())
        .add_service(TerminationApi::server(terminator))
        .add_service(GeoApi::server(geo))
        .add_service(PolicyApi::server(policy));
    tokio::spawn(follow_dependencies(
        registry.store().clone(),
        registry.bus().clone(),
        server.readiness(),
        shutdown.clone(),
    ));
    let listener = vigil_runtime::server::bind(config.server.listen).await?;
    let url = format!("http://{}", listener.local_addr()?);

    // The simulated gateways are real agents on real gRPC streams to this very server.
    let simulation = if config.simulation.enabled {
        let simulation = simulate::run(simulation_config(&url, &config.simulation), shutdown.clone()).await?;
        tracing::info!(
            gateways = config.simulation.gateways,
            sessions_per_gateway = config.simulation.sessions_per_gateway,
            "simulated gateways started (set simulation.enabled = false to turn them off)"
        );
        Some(simulation)
    } else {
        None
    };
    println!("Vigil is running at {url} (database: {}).", config.database);
    println!("In another shell: cargo run --bin sessionctl -- sessions list");

    server.serve(listener, shutdown).await?;
    // Hand the sweeper's lease back, so another process can lead at once.
    sweeper.stop().await;
    if let Some(simulation) = simulation {
        simulation.wait().await;
    }
    if !vigil_runtime::shutdown::join_with_deadline(
        vec![tokio::spawn(async move { registry.stopped().await })],
        Duration::from_secs(5),
    )
    .await
    {
        tracing::warn!("registry tasks did not stop in time");
    }
    Ok(())
}

/// Where the all-in-one keeps the demo GeoIP databases it writes.
const DEMO_GEOIP_DIR: &str = "vigil-data/geoip";

/// Geo on the configured databases, or on demo databases written on first use.
async fn start_geo(config: &VigilConfig, shutdown: CancellationToken) -> anyhow::Result<Geo> {
    let mut geo_config = config.geo.clone();
    if geo_config.city_db.is_empty() {
        let (city, asn) = vigil_geo::write_demo_databases(std::path::Path::new(DEMO_GEOIP_DIR))?;
        tracing::info!(city = %city.display(), "no geo.city_db configured: using the demo GeoIP databases (make geoip fetches real ones)");
        geo_config.city_db = vec![city];
        geo_config.asn_db = vec![asn];
    }
    let store = vigil_geo::app::open_store(&config.database, true).await?;
    Geo::open(&geo_config, store, shutdown)
}

/// Geo, called in process by the registry's admission.
struct InProcessGeo(Geo);

#[async_trait::async_trait]
impl RiskAssessor for InProcessGeo {
    async fn assess(&self, request: pb::AssessRequest) -> vigil_runtime::ServiceResult<pb::AssessResponse> {
        self.0.assess(&request).await
    }
}

fn simulation_config(registry_url: &str, settings: &SimulationSettings) -> SimulationConfig {
    let mut config = SimulationConfig::new(registry_url);
    config.gateways = settings.gateways;
    config.sessions_per_gateway = settings.sessions_per_gateway;
    config.idle_fraction = settings.idle_fraction;
    config.activity_interval = settings.activity_interval;
    config.churn = settings.churn;
    config.seed = settings.seed;
    config
}
