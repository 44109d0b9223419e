//! The termination service as a process: configuration and wiring.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use vigil_runtime::auth::AuthConfig;
use vigil_runtime::bus::{self, BusConfig};
use vigil_runtime::client::ServiceConnector;
use vigil_runtime::database::{self, DatabaseConfig};
use vigil_runtime::server::{Server, ServerConfig};
use vigil_runtime::service::{dependencies_reachable, keep_ready};
use vigil_runtime::telemetry::{LogConfig, TelemetryConfig};
use vigil_runtime::tls::TlsConfig;

use crate::api::TerminationApi;
use crate::delivery::run_redelivery;
use crate::service::Terminator;
use crate::settings::TerminationSettings;
use crate::store::{SqlTerminationStore, TerminationStore};
use vigil_clients::GrpcSessionDirectory;

/// Configuration of a termination replica (defaults → TOML file → `VIGIL_*` environment).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TerminationConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub bus: BusConfig,
    pub log: LogConfig,
    /// Traces and metrics: OTLP export and the Prometheus endpoint, both off by default.
    pub telemetry: TelemetryConfig,
    /// Who may call (bearer tokens, roles), and the token this service presents to the registry.
    pub auth: AuthConfig,
    /// TLS for this server and for the calls to the registry.
    pub tls: TlsConfig,
    pub termination: TerminationSettings,
    /// Where this service's events go (webhooks, syslog) and how the relay works.
    pub events: vigil_events::EventsConfig,
    /// The registry, which resolves selectors.
    pub registry_url: String,
    /// Run database migrations at start-up.
    pub migrate_on_start: bool,
}

impl Default for TerminationConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig {
                listen: ([127, 0, 0, 1], 7403).into(),
                ..ServerConfig::default()
            },
            database: DatabaseConfig::default(),
            bus: BusConfig::default(),
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            termination: TerminationSettings::default(),
            events: vigil_events::EventsConfig::default(),
            registry_url: "http://127.0.0.1:7400".into(),
            migrate_on_start: false,
        }
    }
}
impl vigil_runtime::service::ServiceConfig for TerminationConfig {
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
pub async fn open_store(config: &DatabaseConfig, migrate: bool) -> anyhow::Result<Arc<SqlTerminationStore>> {
    let store = SqlTerminationStore::new(database::connect(config).await?).await?;
    if migrate {
        store.migrate().await?;
    }
    Ok(Arc::new(store))
}

/// The store the re-sends and the event relay work through: `api`'s database on a pool of its own
/// (`database.background_connections`), so calls holding every connection of `api`'s pool cannot
/// stop re-sending kills.
pub async fn open_background_store(
    config: &DatabaseConfig,
    api: &SqlTerminationStore,
) -> anyhow::Result<Arc<SqlTerminationStore>> {
    let connection = database::connect_background(config, api.connection()).await?;
    Ok(Arc::new(SqlTerminationStore::new(connection).await?))
}

/// Starts the background work of a terminator (every replica runs it): the redelivery loop, on
/// `background` (the terminator's database, on connections of its own when configured so), and the
/// following of session changes that keeps its in-memory route of live sessions.
pub fn start_redelivery(
    terminator: &Terminator,
    background: Arc<dyn TerminationStore>,
    settings: &TerminationSettings,
    shutdown: CancellationToken,
) {
    tokio::spawn(crate::routes::follow(
        terminator.routes().clone(),
        terminator.bus().clone(),
        terminator.directory().clone(),
        shutdown.clone(),
    ));
    tokio::spawn(run_redelivery(
        background,
        terminator.bus().clone(),
        settings.clone(),
        shutdown,
    ));
}

/// Runs one replica until `shutdown`.
pub async fn run(config: TerminationConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    config.termination.validate().map_err(anyhow::Error::msg)?;
    let server = Server::new(config.server.clone()).with_security(&config.auth, &config.tls)?;
    let store = open_store(&config.database, config.migrate_on_start).await?;
    let background = open_background_store(&config.database, &store).await?;
    let relay = vigil_events::relay::spawn(
        background.connection().clone(),
        "termination",
        &config.events,
        shutdown.clone(),
    )?;
    let bus = bus::connect(&config.bus).await?;
    let registry = ServiceConnector::from_config(&config.auth, &config.tls)?
        .connect("registry_url", &config.registry_url, Duration::from_secs(5))
        .await?;
    let terminator = Terminator::new(
        store.clone(),
        Arc::new(GrpcSessionDirectory::new(registry)),
        bus.clone(),
        config.termination.clone(),
    );
    start_redelivery(&terminator, background, &config.termination, shutdown.clone());

    let server = server
        .add_service(TerminationApi::server(terminator))
        .add_service(vigil_events::EventsApi::server(vigil_events::Relays::new(vec![
            relay.view(),
        ])));
    let readiness = server.readiness();
    // The database through a probe of its own (NOT_SERVING within a second of an outage), not
    // through the service's pool and its connect timeout.
    let probe = database::Probe::new(&config.database, database::PROBE_TIMEOUT).await?;
    tokio::spawn(keep_ready(
        readiness,
        move || {
            let (probe, bus) = (probe.clone(), bus.clone());
            async move { dependencies_reachable(probe.ping().await, bus.is_connected()) }
        },
        shutdown.clone(),
    ));
    let listener = vigil_runtime::server::bind(config.server.listen).await?;
    server.serve(listener, shutdown).await?;
    relay.stopped().await;
    Ok(())
}
