//! `vigil`: every Vigil service in one process (the embedded default), plus `migrate` and a
//! gateway simulator for a registry elsewhere.

mod config;
mod local_auth;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use vigil_agent::simulate::{self, SimulationConfig};
use vigil_console::{ConsoleApi, ConsolePages, SignInCodes, SignInIssuer};
use vigil_geo::Geo;
use vigil_geo::api::GeoApi;
use vigil_policy::api::PolicyApi;
use vigil_policy::clock::SystemClock;
use vigil_policy::service::PolicyEngine;
use vigil_policy::sweeper::Sweeper;
use vigil_registry::Registry;
use vigil_registry::app::{follow_dependencies, open_store};
use vigil_runtime::auth::AuthMode;
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
        /// Put before every gateway id, so that several simulators can share one registry.
        #[arg(long, default_value = "")]
        gateway_id_prefix: String,
        /// Another registry replica to fail over to (repeatable).
        #[arg(long = "failover-registry")]
        failover_registries: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config: VigilConfig = vigil_runtime::config::load(cli.config.as_deref(), "VIGIL_")?;
    let command = cli.command.unwrap_or(Command::Run);
    // Only a serving process exports traces and metrics (and opens the scrape port).
    let _telemetry = match command {
        Command::Run | Command::Simulate { .. } => {
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
        Command::Simulate {
            registry,
            gateways,
            sessions_per_gateway,
            idle_fraction,
            seed,
            gateway_id_prefix,
            failover_registries,
        } => {
            let settings = SimulationSettings {
                enabled: true,
                gateways,
                sessions_per_gateway,
                idle_fraction,
                seed,
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
                    gateway_id_prefix,
                    failover_urls: failover_registries,
                    ..simulation_config(&registry, &settings, credentials)
                },
                shutdown.clone(),
            )
            .await?;
            tracing::info!(%registry, gateways, sessions_per_gateway, "simulating gateways; Ctrl-C stops");
            simulation.wait().await;
            Ok(())
        }
    }
}

/// Where the all-in-one keeps its data (the SQLite default, the demo GeoIP databases, its secret and
/// administrator token).
const DATA_DIR: &str = "vigil-data";

/// The embedded default: registry and termination (and, as they land, the other services) on one port.
async fn run(mut config: VigilConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let admin_token = local_auth::provision(&mut config.auth, Path::new(DATA_DIR))?;
    local_auth::provision_page_token_key(&mut config.registry.page_token_key, Path::new(DATA_DIR))?;
    config
        .registry
        .validate_for_production(config.server.production)
        .map_err(anyhow::Error::msg)?;
    let gateway_ids: Vec<String> = (0..config.simulation.gateways)
        .map(simulate::data::gateway_id)
        .collect();
    let gateway_credentials = if config.simulation.enabled && config.auth.mode == AuthMode::Required {
        local_auth::simulated_gateway_credentials(&mut config.auth, &gateway_ids)
    } else {
        BTreeMap::new()
    };
    // The demo SSH gateway presents a credential of its own, made like the simulated gateways'.
    let demo_gateway_credential = if config.demo_gateway.enabled && config.auth.mode == AuthMode::Required {
        local_auth::simulated_gateway_credentials(
            &mut config.auth,
            std::slice::from_ref(&config.demo_gateway.gateway_id),
        )
        .remove(&config.demo_gateway.gateway_id)
        .unwrap_or_default()
    } else {
        String::new()
    };
    // Checked before anything starts: a misconfigured server should not get half way.
    let server = Server::new(config.server.clone()).with_security(&config.auth, &config.tls)?;

    let store = open_store(&config.database, true).await?;
    vigil_events::relay::spawn(store.connection().clone(), "registry", &config.events, shutdown.clone())?;
    let bus = vigil_runtime::bus::connect(&config.bus).await?;
    let registry = Registry::start(config.registry.clone(), store, bus.clone(), shutdown.clone()).await?;

    // Termination asks the registry in process, and the registry's links report to it in process.
    config.termination.validate().map_err(anyhow::Error::msg)?;
    let termination_store = vigil_termination::app::open_store(&config.database, true).await?;
    vigil_events::relay::spawn(
        termination_store.connection().clone(),
        "termination",
        &config.events,
        shutdown.clone(),
    )?;
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
    registry.attach_risk_assessor(Arc::new(geo.clone()));

    // Policy admits starts and sweeps idle and overlong sessions (it leads alone here; the lease
    // still guards against a second all-in-one on the same database).
    let policy_store = vigil_policy::app::open_store(&config.database, true).await?;
    vigil_events::relay::spawn(
        policy_store.connection().clone(),
        "policy",
        &config.events,
        shutdown.clone(),
    )?;
    let policy = PolicyEngine::new(policy_store.clone(), Arc::new(SystemClock));
    // Locks are published on the shared in-process bus (the registry passes them to the gateways)
    // and end the sessions they cover through termination, in process.
    policy.attach_lock_bus(bus.clone());
    policy.attach_terminator(Arc::new(terminator.clone()));
    policy.start_lock_refresh(shutdown.clone());
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

    let server = server
        .add_service(registry.sessions_service())
        .add_service(registry.link_service())
        .add_service(TerminationApi::server(terminator))
        .add_service(GeoApi::server(geo))
        .add_service(PolicyApi::server(policy));
    // The web console on the same port: its pages, and its sign-in codes when this process made
    // the keys (a configured deployment signs people in with its own tokens).
    let sign_in = Arc::new(SignInCodes::new(admin_token.as_ref().and_then(|_| {
        config.auth.hs256_secret.clone().map(|secret| SignInIssuer {
            secret,
            subject: local_auth::ADMIN_SUBJECT.to_owned(),
            roles: vec!["admin".to_owned()],
            token_ttl: local_auth::CONSOLE_TOKEN_TTL,
        })
    })));
    let server = server
        .with_pages(Arc::new(ConsolePages))
        .add_service(ConsoleApi::server(sign_in.clone()));
    tokio::spawn(follow_dependencies(
        registry.store().clone(),
        registry.bus().clone(),
        server.readiness(),
        shutdown.clone(),
    ));
    let listener = vigil_runtime::server::bind(config.server.listen).await?;
    let scheme = if config.tls.serves_tls() { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr()?);

    // The simulated gateways are real agents on real gRPC streams to this very server.
    let simulation = if config.simulation.enabled {
        let mut simulation_config = simulation_config(&url, &config.simulation, gateway_credentials);
        // Over TLS, the simulated gateways trust the CA of `tls.ca`.
        simulation_config.tls = config.tls.client_config()?;
        let simulation = simulate::run(simulation_config, shutdown.clone()).await?;
        tracing::info!(
            gateways = config.simulation.gateways,
            sessions_per_gateway = config.simulation.sessions_per_gateway,
            "simulated gateways started (set simulation.enabled = false to turn them off)"
        );
        Some(simulation)
    } else {
        None
    };
    let demo_gateway = if config.demo_gateway.enabled {
        let settings = &config.demo_gateway;
        match vigil_gateway::demo::start_demo_gateway(
            &settings.dir,
            settings.listen,
            settings.web_enabled.then_some(settings.web_listen),
            &url,
            &settings.gateway_id,
            &demo_gateway_credential,
            shutdown.clone(),
        )
        .await
        {
            Ok(demo) => Some(demo),
            // A taken port must not keep the rest of Vigil from running.
            Err(error) => {
                tracing::warn!(%error, "the demo SSH gateway did not start (demo_gateway.enabled = false turns it off)");
                None
            }
        }
    } else {
        None
    };
    println!("Vigil is running at {url} (database: {}).", config.database);
    if let Some(demo) = &demo_gateway {
        println!("A real SSH session through the demo gateway (a toy shell; see it in sessionctl sessions list):");
        println!("  {}", demo.ssh_command);
        if let Some(web) = &demo.web {
            println!(
                "A web session through its web proxy (user demo, password {}): {}  or: {}",
                web.password, web.url, web.curl_command
            );
        }
    }
    match (&admin_token, config.auth.mode) {
        (Some(token_file), _) => {
            println!(
                "Callers authenticate. An admin token ({}) is in {}; sessionctl run from this directory uses it.",
                local_auth::ADMIN_SUBJECT,
                token_file.display()
            );
            println!(
                "For other tools: export VIGIL_TOKEN=$(cat {})  (grpcurl: -H \"authorization: Bearer $VIGIL_TOKEN\")",
                token_file.display()
            );
        }
        (None, AuthMode::Required) => println!("Callers authenticate with the keys and tokens configured in [auth]."),
        (None, AuthMode::Off) => {
            println!("Authentication is off (auth.mode = \"off\"): every caller may do everything.")
        }
    }
    println!("Console: {url}/");
    if sign_in.enabled() {
        let code = sign_in.issue(local_auth::SIGN_IN_CODE_TTL);
        println!("Sign in to the console (this link works once, within 24 h): {url}/#signin={code}");
    }
    println!("In another shell: cargo run --bin sessionctl -- sessions list");

    server.serve(listener, shutdown).await?;
    if let Some(demo) = demo_gateway {
        demo.gateway.stop().await;
    }
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

fn simulation_config(
    registry_url: &str,
    settings: &SimulationSettings,
    credentials: BTreeMap<String, String>,
) -> SimulationConfig {
    let mut config = SimulationConfig::new(registry_url);
    config.credential = Arc::new(move |gateway_id: &str| credentials.get(gateway_id).cloned().unwrap_or_default());
    config.gateways = settings.gateways;
    config.sessions_per_gateway = settings.sessions_per_gateway;
    config.idle_fraction = settings.idle_fraction;
    config.activity_interval = settings.activity_interval;
    config.churn = settings.churn;
    config.seed = settings.seed;
    config
}
