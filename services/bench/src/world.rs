//! The system under test: a registry replica, the termination service, geo (on the demo GeoIP
//! databases) and policy (with a global concurrency limit) in this process, on a fresh PostgreSQL
//! schema and a fresh Redis namespace, served over real gRPC on a loopback port: the all-in-one's
//! composition ([`vigil::Composition`]). A second registry replica can be started in a child process
//! ([`crate::replica`]) on the same schema and namespace.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vigil_policy::PolicySettings;
use vigil_policy::service::PolicyEngine;
use vigil_proto::v1 as pb;
use vigil_registry::domain::SessionFilter;
use vigil_registry::store::SessionStore;
use vigil_registry::{Registry, RegistrySettings};
use vigil_runtime::auth::AuthConfig;
use vigil_runtime::bus::{BusConfig, BusKind, RedisBusConfig};
use vigil_runtime::database::{self, DatabaseConfig};
use vigil_runtime::server::{ServerConfig, ServerError};
use vigil_termination::TerminationSettings;

/// Connections of the bench's own pool onto the registry's tables.
const OBSERVER_CONNECTIONS: u32 = 2;
/// How often counts are polled.
const POLL: Duration = Duration::from_millis(100);
/// A connected-gateway count unchanged this long has settled.
const STILL: Duration = Duration::from_secs(3);
/// The global policy's concurrency limit: above the most sessions one bench user holds (the
/// sessions spread over 5,000 users), so every admission counts and checks a slot and none is
/// refused.
const MAX_CONCURRENT_SESSIONS: u32 = 1_000;

/// What the registry's tables hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    pub live_sessions: u64,
    pub connected_gateways: u64,
}

/// Where the world's dependencies are, and how big its connection pools are.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    pub database_url: String,
    pub redis_url: String,
    /// Pool size of each service's store (the registry and termination have one each); the
    /// services' default when `None`.
    pub db_connections: Option<u32>,
    /// A webhook every event is delivered to (`--events-webhook`); none: events are written to
    /// the outboxes and kept, as with no sink configured.
    pub events_webhook: Option<String>,
}

/// The running all-in-one (registry, termination, geo, policy). [`World::stop`] tears it down and drops the schema.
pub struct World {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub registry: Registry,
    /// The Redis namespace the services' bus uses.
    pub namespace: String,
    pub schema: String,
    /// The bench's own view of the registry's tables, through a pool of its own, so that counting
    /// neither takes connections from the registry nor fails when the registry's pool is exhausted.
    observer: Arc<dyn SessionStore>,
    database_url: String,
    /// The demo GeoIP databases' directory (removed at the end).
    geoip_dir: std::path::PathBuf,
    shutdown: CancellationToken,
    server: JoinHandle<Result<(), ServerError>>,
    vigil: vigil::AllInOne,
}

impl World {
    /// Creates the schema, migrates it, connects the bus and starts serving.
    pub async fn start(config: &WorldConfig) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let schema = format!("vigil_bench_{id}");
        database::create_schema(&config.database_url, &schema)
            .await
            .with_context(|| format!("create schema {schema} in PostgreSQL"))?;
        match Self::serve(config, &schema, &format!("vigil-bench-{id}")).await {
            Ok(world) => Ok(world),
            Err(error) => {
                // Nothing else holds the schema yet: leave no trace.
                let _ = database::drop_schema(&config.database_url, &schema).await;
                Err(error)
            }
        }
    }

    async fn serve(config: &WorldConfig, schema: &str, namespace: &str) -> anyhow::Result<Self> {
        let database = DatabaseConfig {
            url: config.database_url.clone(),
            schema: Some(schema.to_owned()),
            max_connections: config
                .db_connections
                .unwrap_or(DatabaseConfig::default().max_connections),
            ..DatabaseConfig::default()
        };
        let geoip_dir = std::env::temp_dir().join(format!("{namespace}-geoip"));
        let vigil_config = all_in_one_config(config, database.clone(), namespace, &geoip_dir)?;
        let shutdown = CancellationToken::new();
        let mut vigil = vigil::Composition::new(&vigil_config)
            .always_ready()
            .start(shutdown.clone())
            .await
            .context("start the all-in-one's services")?;
        let observer: Arc<dyn SessionStore> = vigil_registry::app::open_store(
            &DatabaseConfig {
                max_connections: OBSERVER_CONNECTIONS,
                ..database.clone()
            },
            false,
        )
        .await
        .context("open the bench's own view of the registry's tables")?;
        limit_concurrency(&vigil.policy).await?;
        let url = vigil.url.clone();
        let server = vigil.spawn_server();
        Ok(Self {
            url,
            registry: vigil.registry.clone(),
            namespace: namespace.to_owned(),
            schema: schema.to_owned(),
            observer,
            database_url: config.database_url.clone(),
            geoip_dir,
            shutdown,
            server,
            vigil,
        })
    }

    /// Live sessions (ACTIVE or IDLE) and connected gateways, as the registry's tables say.
    pub async fn census(&self) -> anyhow::Result<Census> {
        let now = now_millis();
        let stats = self
            .observer
            .stats(&SessionFilter::default(), now, now)
            .instrument(tracing::info_span!("bench.observer"))
            .await
            .context("count live sessions and connected gateways")?;
        Ok(Census {
            live_sessions: stats.active + stats.idle,
            connected_gateways: stats.gateways_connected,
        })
    }

    /// Waits until the registry counts `expected` live sessions; how long that took, or `None`
    /// when it did not happen within `patience`.
    pub async fn wait_live_sessions(&self, expected: u64, patience: Duration) -> anyhow::Result<Option<Duration>> {
        let started = Instant::now();
        loop {
            if self.census().await?.live_sessions == expected {
                return Ok(Some(started.elapsed()));
            }
            if started.elapsed() > patience {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// After the agents left: waits until the registry has recorded every gateway disconnected,
    /// or the count stops moving (a write that failed under load leaves a gateway "connected"),
    /// so the schema is not dropped under links still closing.
    pub async fn wait_links_closed(&self, patience: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last = (u64::MAX, Instant::now());
        while started.elapsed() < patience {
            let connected = self.census().await?.connected_gateways;
            if connected == 0 {
                return Ok(());
            }
            if connected != last.0 {
                last = (connected, Instant::now());
            } else if last.1.elapsed() > STILL {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    pub fn store(&self) -> &Arc<dyn SessionStore> {
        self.registry.store()
    }

    /// Stops serving (links are told to reconnect and close), waits for the registry's tasks, and
    /// drops the schema.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let served = self.server.await;
        self.vigil.stop().await;
        // A statement of a task that outlived the stop (aborted, its query still running on the
        // server) can deadlock with the drop, which then goes again.
        let mut dropped = database::drop_schema(&self.database_url, &self.schema).await;
        for _ in 0..3 {
            if dropped.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            dropped = database::drop_schema(&self.database_url, &self.schema).await;
        }
        let _ = std::fs::remove_dir_all(&self.geoip_dir);
        served.context("the gRPC server task")?.context("the gRPC server")?;
        dropped.with_context(|| format!("drop schema {}", self.schema))?;
        Ok(())
    }
}

/// The migration seeds a global policy; the bench gives it a concurrency limit every admission
/// checks.
async fn limit_concurrency(policy: &PolicyEngine) -> anyhow::Result<()> {
    let global = policy
        .list()
        .await
        .context("list the policies")?
        .policies
        .into_iter()
        .find(|existing| {
            matches!(
                existing.scope.as_ref().and_then(|scope| scope.scope.as_ref()),
                Some(pb::policy_scope::Scope::Global(_))
            )
        })
        .context("the policy store holds no global policy")?;
    let mut rules = global.rules.unwrap_or_default();
    rules.max_concurrent_sessions = Some(MAX_CONCURRENT_SESSIONS);
    rules.concurrency_action = pb::ConcurrencyAction::DenyNew as i32;
    policy
        .update(
            "vigil-bench",
            &pb::UpdatePolicyRequest {
                id: global.id,
                rules: Some(rules),
                description: "vigil-bench: a concurrency limit every admission checks".into(),
            },
        )
        .await
        .context("set the bench's concurrency limit")?;
    Ok(())
}

/// The all-in-one's configuration for the bench: `database` and a Redis bus in `namespace`, a
/// random loopback port, authentication off, production defaults except the registry's
/// [`registry_settings`], no sweeper (the bench ends sessions itself), geo on the demo GeoIP
/// databases written into `geoip_dir`.
fn all_in_one_config(
    config: &WorldConfig,
    database: DatabaseConfig,
    namespace: &str,
    geoip_dir: &std::path::Path,
) -> anyhow::Result<vigil::VigilConfig> {
    let mut vigil_config = vigil::VigilConfig {
        server: ServerConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            ..ServerConfig::default()
        },
        database,
        bus: BusConfig {
            kind: BusKind::Redis,
            redis: RedisBusConfig {
                url: config.redis_url.clone(),
                namespace: namespace.to_owned(),
                ..RedisBusConfig::default()
            },
        },
        auth: AuthConfig::default(),
        registry: registry_settings("bench"),
        termination: TerminationSettings::default(),
        policy: PolicySettings {
            sweeper: false,
            ..PolicySettings::default()
        },
        ..vigil::VigilConfig::default()
    };
    vigil::use_demo_geoip(&mut vigil_config.geo, geoip_dir).context("write the demo GeoIP databases")?;
    if let Some(url) = &config.events_webhook {
        let sink = vigil_events::SinkConfig {
            url: url.clone(),
            secret: crate::webhook::SECRET.into(),
            concurrency: crate::webhook::CONCURRENCY,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            ..vigil_events::SinkConfig::default()
        };
        vigil_config.events.sinks.insert("bench".into(), sink);
        vigil_config.events.poll_interval = Duration::from_millis(100);
    }
    Ok(vigil_config)
}

/// The registry's production defaults, except where a benchmark run differs from production.
pub fn registry_settings(replica: &str) -> RegistrySettings {
    RegistrySettings {
        replica: replica.into(),
        // Without `--heartbeats` the agents stay silent between kills for the whole run: the
        // registry must not take them for lost gateways and end their sessions.
        gateway_grace: Duration::from_secs(24 * 60 * 60),
        // A full run outlasts the 5-minute default: sessions turning idle halfway would make the
        // later figures measure the idle marker's and the reactivations' work too.
        idle_after: Duration::from_secs(60 * 60),
        // The watch fan-out phase's watchers are all one (anonymous) caller.
        watch_streams_per_caller: 1024,
        ..RegistrySettings::default()
    }
}

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}
