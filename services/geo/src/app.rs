//! The geo service as a process: configuration and wiring.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use vigil_runtime::auth::AuthConfig;
use vigil_runtime::database::{self, DatabaseConfig};
use vigil_runtime::server::{Server, ServerConfig};
use vigil_runtime::service::keep_ready;
use vigil_runtime::telemetry::{LogConfig, TelemetryConfig};
use vigil_runtime::tls::TlsConfig;

use crate::api::GeoApi;
use crate::config::GeoConfig;
use crate::service::Geo;
use crate::store::{HistoryStore, SqlHistoryStore};

/// Configuration of a geo replica (defaults → TOML file → `VIGIL_*` environment).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoServiceConfig {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    /// Traces and metrics: OTLP export and the Prometheus endpoint, both off by default.
    pub telemetry: TelemetryConfig,
    /// Who may call: only the registry's admission does (the `service` role).
    pub auth: AuthConfig,
    /// TLS for this server.
    pub tls: TlsConfig,
    pub geo: GeoConfig,
    /// Run database migrations at start-up.
    pub migrate_on_start: bool,
}

impl Default for GeoServiceConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig {
                listen: ([127, 0, 0, 1], 7401).into(),
                ..ServerConfig::default()
            },
            database: DatabaseConfig::default(),
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            geo: GeoConfig::default(),
            migrate_on_start: false,
        }
    }
}
impl vigil_runtime::service::ServiceConfig for GeoServiceConfig {
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
pub async fn open_store(config: &DatabaseConfig, migrate: bool) -> anyhow::Result<Arc<SqlHistoryStore>> {
    let store = SqlHistoryStore::new(database::connect(config).await?)?;
    if migrate {
        store.migrate().await?;
    }
    Ok(Arc::new(store))
}

/// Runs one replica until `shutdown`.
pub async fn run(config: GeoServiceConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let server = Server::new(config.server.clone()).with_security(&config.auth, &config.tls)?;
    let store: Arc<dyn HistoryStore> = open_store(&config.database, config.migrate_on_start).await?;
    let geo = Geo::open(&config.geo, store.clone(), shutdown.clone())?;

    let server = server.add_service(GeoApi::server(geo));
    let readiness = server.readiness();
    tokio::spawn(keep_ready(
        readiness,
        move || {
            let store = store.clone();
            async move {
                store
                    .ping()
                    .await
                    .map_err(|error| format!("database unreachable: {error}"))
            }
        },
        shutdown.clone(),
    ));
    let listener = vigil_runtime::server::bind(config.server.listen).await?;
    server.serve(listener, shutdown).await?;
    Ok(())
}
