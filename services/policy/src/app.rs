//! The policy service as a process: configuration and wiring.

use std::sync::Arc;

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

use crate::api::PolicyApi;
use crate::clock::SystemClock;
use crate::service::PolicyEngine;
use crate::settings::PolicySettings;
use crate::store::SqlPolicyStore;
use crate::sweeper::Sweeper;
use vigil_clients::{GrpcSessionSource, GrpcSessionTerminator};

/// Configuration of a policy replica (defaults → TOML file → `VIGIL_*` environment).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub bus: BusConfig,
    pub log: LogConfig,
    /// Traces and metrics: OTLP export and the Prometheus endpoint, both off by default.
    pub telemetry: TelemetryConfig,
    /// Who may call (bearer tokens, roles), and the token this service presents to the registry
    /// and termination.
    pub auth: AuthConfig,
    /// TLS for this server and for the calls to the registry and termination.
    pub tls: TlsConfig,
    pub policy: PolicySettings,
    /// Where this service's events go (webhooks, syslog) and how the relay works.
    pub events: vigil_events::EventsConfig,
    /// The registry, which the sweeper asks for live sessions.
    pub registry_url: String,
    /// The termination service, which ends the sessions the sweeper finds and those a new lock
    /// covers.
    pub termination_url: String,
    /// Run database migrations at start-up.
    pub migrate_on_start: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig {
                listen: ([127, 0, 0, 1], 7402).into(),
                ..ServerConfig::default()
            },
            database: DatabaseConfig::default(),
            bus: BusConfig::default(),
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            policy: PolicySettings::default(),
            events: vigil_events::EventsConfig::default(),
            registry_url: "http://127.0.0.1:7400".into(),
            termination_url: "http://127.0.0.1:7403".into(),
            migrate_on_start: false,
        }
    }
}
impl vigil_runtime::service::ServiceConfig for PolicyConfig {
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
pub async fn open_store(config: &DatabaseConfig, migrate: bool) -> anyhow::Result<Arc<SqlPolicyStore>> {
    let store = SqlPolicyStore::new(database::connect(config).await?).await?;
    if migrate {
        store.migrate().await?;
    }
    Ok(Arc::new(store))
}

/// The store the sweeper and the event relay work through: `api`'s database on a pool of its own
/// (`database.background_connections`), so calls holding every connection of `api`'s pool cannot
/// stop the sweeps.
pub async fn open_background_store(
    config: &DatabaseConfig,
    api: &SqlPolicyStore,
) -> anyhow::Result<Arc<SqlPolicyStore>> {
    let connection = database::connect_background(config, api.connection()).await?;
    Ok(Arc::new(SqlPolicyStore::new(connection).await?))
}

/// Runs one replica until `shutdown`.
pub async fn run(config: PolicyConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    config.policy.validate().map_err(anyhow::Error::msg)?;
    let server = Server::new(config.server.clone()).with_security(&config.auth, &config.tls)?;
    // Lazy channels: a replica starts while the registry or termination is still coming up.
    let connector = ServiceConnector::from_config(&config.auth, &config.tls)?;
    let store = open_store(&config.database, config.migrate_on_start).await?;
    let background = open_background_store(&config.database, &store).await?;
    let relay = vigil_events::relay::spawn(
        background.connection().clone(),
        "policy",
        &config.events,
        shutdown.clone(),
    )?;
    let bus = bus::connect(&config.bus).await?;
    let clock = Arc::new(SystemClock);
    let terminator = Arc::new(GrpcSessionTerminator::new(
        connector.lazy("termination_url", &config.termination_url)?,
    ));
    // Locks and policies: published on the bus after each change, the sessions a new lock covers
    // ended through termination, and other replicas' changes followed.
    let engine = PolicyEngine::new(store.clone(), clock.clone());
    engine.attach_bus(bus.clone());
    engine.attach_terminator(terminator.clone());
    // Before serving, so admission takes its rules from memory from the first start. A failure is
    // logged by the book, and admission reads each start's policies until a load succeeds.
    let _ = engine.load_policies().await;
    let refresh = engine.start_refresh(shutdown.clone());

    let sweeper = if config.policy.sweeper {
        let sweeper = Sweeper::new(
            background,
            Arc::new(GrpcSessionSource::new(
                connector.lazy("registry_url", &config.registry_url)?,
            )),
            terminator,
            bus.clone(),
            clock,
            config.policy.clone(),
        );
        Some(sweeper.start(shutdown.clone()))
    } else {
        None
    };

    let server = server
        .add_service(PolicyApi::server(engine))
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
    if let Some(sweeper) = sweeper {
        // Hands the lease over at once rather than letting it expire.
        sweeper.stop().await;
    }
    let _ = refresh.await;
    relay.stopped().await;
    Ok(())
}
