//! The registry as a process: its configuration, and the wiring from configuration to a serving
//! replica. `main.rs` only parses flags and calls into here.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use vigil_runtime::auth::AuthConfig;
use vigil_runtime::bus::{self, BusConfig, ControlBus};
use vigil_runtime::client::ServiceConnector;
use vigil_runtime::database::{self, DatabaseConfig};
use vigil_runtime::server::{Readiness, Server, ServerConfig};
use vigil_runtime::service::{dependencies_reachable, keep_ready};
use vigil_runtime::telemetry::{LogConfig, TelemetryConfig};
use vigil_runtime::tls::TlsConfig;

use crate::registry::Registry;
use crate::settings::RegistrySettings;
use crate::store::SqlStore;
use vigil_clients::{GrpcAdmissionPolicy, GrpcCommandJournal, GrpcRiskAssessor, GrpcSessionEvictor};

/// Configuration of a registry replica (defaults → TOML file → `VIGIL_*` environment).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub bus: BusConfig,
    pub log: LogConfig,
    /// Traces and metrics: OTLP export and the Prometheus endpoint, both off by default.
    pub telemetry: TelemetryConfig,
    /// Who may call (bearer tokens, roles) and which gateways may link (their credentials).
    pub auth: AuthConfig,
    /// TLS for this server and for the calls to termination, geo and policy.
    pub tls: TlsConfig,
    pub registry: RegistrySettings,
    /// Where this service's events go (webhooks, syslog) and how the relay works.
    pub events: vigil_events::EventsConfig,
    /// Run database migrations at start-up (the embedded default does; production runs
    /// `vigil-registry migrate` once, as a Kubernetes Job).
    pub migrate_on_start: bool,
    /// The termination service (`http://termination:7403`): where links fetch pending kills and
    /// report acknowledgements. Without it, links carry no pending kills.
    pub termination_url: Option<String>,
    /// The geo service (`http://geo:7401`): session starts are located and scored. Without it,
    /// sessions carry no location.
    pub geo_url: Option<String>,
    /// The policy service (`http://policy:7402`): session starts are admitted by it. Without it,
    /// every valid start is admitted.
    pub policy_url: Option<String>,
}
impl vigil_runtime::service::ServiceConfig for RegistryConfig {
    fn log(&self) -> &LogConfig {
        &self.log
    }

    fn telemetry(&self) -> &TelemetryConfig {
        &self.telemetry
    }

    fn database(&self) -> &DatabaseConfig {
        &self.database
    }
}

/// Connects to the database, optionally migrating it.
pub async fn open_store(config: &DatabaseConfig, migrate: bool) -> anyhow::Result<Arc<SqlStore>> {
    let connection = database::connect(config).await?;
    let store = SqlStore::new(connection).await?;
    if migrate {
        store.migrate().await?;
    }
    Ok(Arc::new(store))
}

/// The store the replica's background work writes through: `api`'s database on a pool of its own
/// (`database.background_connections`), so calls holding every connection of `api`'s pool cannot
/// stop activity writes, idle marking or the gateways' liveness.
pub async fn open_background_store(config: &DatabaseConfig, api: &SqlStore) -> anyhow::Result<Arc<SqlStore>> {
    let connection = database::connect_background(config, api.connection()).await?;
    Ok(Arc::new(SqlStore::new(connection).await?))
}

/// Runs one replica until `shutdown` is cancelled, then drains.
pub async fn run(config: RegistryConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    config
        .registry
        .validate_for_production(config.server.production)
        .map_err(anyhow::Error::msg)?;
    let store = open_store(&config.database, config.migrate_on_start).await?;
    let background = open_background_store(&config.database, &store).await?;
    let relay = vigil_events::relay::spawn(
        background.connection().clone(),
        "registry",
        &config.events,
        shutdown.clone(),
    )?;
    let bus = bus::connect(&config.bus).await?;
    // Checked before anything starts: a misconfigured server should not get half way.
    let server = Server::new(config.server.clone()).with_security(&config.auth, &config.tls)?;
    let connector = ServiceConnector::from_config(&config.auth, &config.tls)?;
    let registry =
        Registry::start_with_background(config.registry.clone(), store, background, bus, shutdown.clone()).await?;
    if let Some(url) = &config.termination_url {
        registry.attach_command_journal(Arc::new(GrpcCommandJournal::connect_with(&connector, url)?));
        registry.attach_session_evictor(Arc::new(GrpcSessionEvictor::connect_with(&connector, url)?));
    }
    if let Some(url) = &config.geo_url {
        registry.attach_risk_assessor(Arc::new(GrpcRiskAssessor::connect_with(&connector, url)?));
    }
    if let Some(url) = &config.policy_url {
        registry.attach_admission_policy(Arc::new(GrpcAdmissionPolicy::connect_with(&connector, url)?));
    }

    // The web console's pages and its "who am I" (no sign-in codes: people bring their own tokens);
    // its other calls reach the registry, termination and policy over gRPC-Web by service path.
    let server = server
        .add_service(registry.sessions_service())
        .add_service(registry.link_service())
        .add_service(vigil_events::EventsApi::server(vigil_events::Relays::new(vec![
            relay.view(),
        ])))
        .with_pages(Arc::new(vigil_console::ConsolePages))
        .add_service(vigil_console::ConsoleApi::server(Arc::new(
            vigil_console::SignInCodes::new(None),
        )));
    let probe = database::Probe::new(&config.database, database::PROBE_TIMEOUT).await?;
    tokio::spawn(follow_dependencies(
        probe,
        registry.bus().clone(),
        server.readiness(),
        shutdown.clone(),
    ));

    let listener = vigil_runtime::server::bind(config.server.listen).await?;
    server.serve(listener, shutdown).await?;
    registry.stopped().await;
    relay.stopped().await;
    Ok(())
}

/// Keeps health in step with the database and the bus: `NOT_SERVING` while either is unreachable.
/// The database is asked through `probe`, a connection of its own (NOT_SERVING within a second of
/// an outage), not through the service's pool: calls holding every pooled connection must not make
/// a healthy database look down.
pub async fn follow_dependencies(
    probe: database::Probe,
    bus: Arc<dyn ControlBus>,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    let check = move || {
        let (probe, bus) = (probe.clone(), bus.clone());
        async move { dependencies_reachable(probe.ping().await, bus.is_connected()) }
    };
    keep_ready(readiness, check, shutdown).await;
}
