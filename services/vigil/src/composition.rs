//! Registry, termination, geo and policy on one database and one bus, each told about the others
//! in process, served on one port with the web console.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_console::{ConsoleApi, ConsolePages, SignInCodes};
use vigil_events::{EventsApi, RelayView, Relays};
use vigil_geo::api::GeoApi;
use vigil_geo::{Geo, GeoConfig};
use vigil_policy::api::PolicyApi;
use vigil_policy::clock::SystemClock;
use vigil_policy::service::PolicyEngine;
use vigil_policy::sweeper::{Sweeper, SweeperHandle};
use vigil_registry::Registry;
use vigil_registry::app::follow_dependencies;
use vigil_registry::store::SqlStore;
use vigil_runtime::bus::ControlBus;
use vigil_runtime::database::{PROBE_TIMEOUT, Probe};
use vigil_runtime::server::{Server, ServerError};
use vigil_termination::api::TerminationApi;
use vigil_termination::app::start_redelivery;
use vigil_termination::store::TerminationStore;
use vigil_termination::{TerminationSettings, Terminator};

use crate::config::VigilConfig;

/// How long [`AllInOne::stop`] waits for the registry's background tasks.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

/// What to start: the configuration's sections (`server`, `auth`, `tls`, `database`, `bus`,
/// `registry`, `termination`, `geo`, `policy`; `simulation` and `demo_gateway` are `vigil run`'s
/// business), and how to serve.
pub struct Composition<'a> {
    config: &'a VigilConfig,
    console: Option<Arc<SignInCodes>>,
    always_ready: bool,
}

impl<'a> Composition<'a> {
    /// The composition of `config`: no console, health following the database and the bus.
    pub fn new(config: &'a VigilConfig) -> Self {
        Self {
            config,
            console: None,
            always_ready: false,
        }
    }

    /// Serves the web console too (its pages and its API), signing people in with `sign_in`.
    pub fn with_console(mut self, sign_in: Arc<SignInCodes>) -> Self {
        self.console = Some(sign_in);
        self
    }

    /// Reports SERVING from the start, whatever the database and the bus say (tests that exhaust
    /// the database's pool on purpose).
    pub fn always_ready(mut self) -> Self {
        self.always_ready = true;
        self
    }

    /// Checks the configuration, opens (and migrates) every service's tables, connects the bus,
    /// wires the services to each other and binds `server.listen`. Nothing is served until
    /// [`AllInOne::serve`] or [`AllInOne::spawn_server`]; everything stops when `shutdown` is
    /// cancelled.
    pub async fn start(self, shutdown: CancellationToken) -> anyhow::Result<AllInOne> {
        let config = self.config;
        // Checked before anything starts: a misconfigured server should not get half way.
        config
            .registry
            .validate_for_production(config.server.production)
            .map_err(anyhow::Error::msg)?;
        config.termination.validate().map_err(anyhow::Error::msg)?;
        let server = Server::new(config.server.clone()).with_security(&config.auth, &config.tls)?;
        let services = Services::start(config, shutdown.clone()).await?;
        let server = services.add_to(self.console_on(server));
        if self.always_ready {
            server.readiness().set_all(true).await;
        } else {
            let probe = Probe::new(&config.database, PROBE_TIMEOUT).await?;
            tokio::spawn(follow_dependencies(
                probe,
                services.bus.clone(),
                server.readiness(),
                shutdown.clone(),
            ));
        }
        let listener = vigil_runtime::server::bind(config.server.listen).await?;
        let addr = listener.local_addr().context("the listener's address")?;
        let scheme = if config.tls.serves_tls() { "https" } else { "http" };
        Ok(AllInOne {
            url: format!("{scheme}://{addr}"),
            addr,
            registry: services.registry,
            registry_store: services.registry_store,
            terminator: services.terminator,
            policy: services.policy,
            geo: services.geo,
            bus: services.bus,
            serving: Some((server, listener)),
            sweeper: services.sweeper,
            shutdown,
        })
    }

    fn console_on(&self, server: Server) -> Server {
        match &self.console {
            Some(sign_in) => server
                .with_pages(Arc::new(ConsolePages))
                .add_service(ConsoleApi::server(sign_in.clone())),
            None => server,
        }
    }
}

/// The services, started and wired, not yet served.
struct Services {
    registry: Registry,
    registry_store: Arc<SqlStore>,
    terminator: Terminator,
    policy: PolicyEngine,
    geo: Geo,
    bus: Arc<dyn ControlBus>,
    sweeper: Option<SweeperHandle>,
    /// Every service's event relay, for the one `EventsService` of the port they share.
    relays: Relays,
}

impl Services {
    async fn start(config: &VigilConfig, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let database = &config.database;
        let bus = vigil_runtime::bus::connect(&config.bus).await?;
        // One relay per service's outbox, on the service's background pool; their handles are not
        // awaited (the process ends with them), only looked at, by the one `EventsService` over all three.
        let (registry, store, registry_relay) = start_registry(config, &bus, &shutdown).await?;
        let mut relays = vec![registry_relay];

        // Termination asks the registry in process, and the registry's links report to it in process.
        let termination_store = vigil_termination::app::open_store(database, true).await?;
        let termination_background =
            vigil_termination::app::open_background_store(database, &termination_store).await?;
        relays.push(
            vigil_events::relay::spawn(
                termination_background.connection().clone(),
                "termination",
                &config.events,
                shutdown.clone(),
            )?
            .view(),
        );
        let terminator = wire_termination(
            &registry,
            (termination_store, termination_background),
            bus.clone(),
            &config.termination,
            &shutdown,
        );

        let geo_store = vigil_geo::app::open_store(database, true).await?;
        let geo = Geo::open(&config.geo, geo_store, shutdown.clone())?;
        registry.attach_risk_assessor(Arc::new(geo.clone()));

        // Policy admits starts and sweeps idle and overlong sessions (the lease still guards
        // against a second all-in-one on the same database). Locks are published on the shared
        // bus (the registry passes them to the gateways) and end the sessions they cover through
        // termination, in process.
        let policy_store = vigil_policy::app::open_store(database, true).await?;
        let policy_background = vigil_policy::app::open_background_store(database, &policy_store).await?;
        relays.push(
            vigil_events::relay::spawn(
                policy_background.connection().clone(),
                "policy",
                &config.events,
                shutdown.clone(),
            )?
            .view(),
        );
        let policy = PolicyEngine::new(policy_store, Arc::new(SystemClock));
        policy.attach_bus(bus.clone());
        policy.attach_terminator(Arc::new(terminator.clone()));
        // Before serving; a failure is logged, and admission reads the store until a load succeeds.
        let _ = policy.load_policies().await;
        policy.start_refresh(shutdown.clone());
        registry.attach_admission_policy(Arc::new(policy.clone()));
        let sweeper = config.policy.sweeper.then(|| {
            Sweeper::new(
                policy_background,
                Arc::new(registry.clone()),
                Arc::new(terminator.clone()),
                bus.clone(),
                Arc::new(SystemClock),
                config.policy.clone(),
            )
            .start(shutdown.clone())
        });
        Ok(Self {
            registry,
            registry_store: store,
            terminator,
            policy,
            geo,
            bus,
            sweeper,
            relays: Relays::new(relays),
        })
    }

    /// `server` serving every service's gRPC API.
    fn add_to(&self, server: Server) -> Server {
        server
            .add_service(self.registry.sessions_service())
            .add_service(self.registry.link_service())
            .add_service(TerminationApi::server(self.terminator.clone()))
            .add_service(GeoApi::server(self.geo.clone()))
            .add_service(PolicyApi::server(self.policy.clone()))
            .add_service(EventsApi::server(self.relays.clone()))
    }
}

/// The registry, its background work and event relay on a pool of their own; with its store for calls.
async fn start_registry(
    config: &VigilConfig,
    bus: &Arc<dyn ControlBus>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Registry, Arc<SqlStore>, RelayView)> {
    let store = vigil_registry::app::open_store(&config.database, true).await?;
    let background = vigil_registry::app::open_background_store(&config.database, &store).await?;
    let relay = vigil_events::relay::spawn(
        background.connection().clone(),
        "registry",
        &config.events,
        shutdown.clone(),
    )?
    .view();
    let registry = Registry::start_with_background(
        config.registry.clone(),
        store.clone(),
        background,
        bus.clone(),
        shutdown.clone(),
    )
    .await?;
    Ok((registry, store, relay))
}

/// The running all-in-one: the services' handles, and the server bound but not yet serving.
pub struct AllInOne {
    /// `http://<address>` (or `https://` when TLS is served).
    pub url: String,
    /// The address bound (`server.listen`; the port chosen when that said 0).
    pub addr: SocketAddr,
    pub registry: Registry,
    /// The registry's store for calls (its pool is the one API load takes; the background work
    /// has its own, `database.background_connections`).
    pub registry_store: Arc<SqlStore>,
    pub terminator: Terminator,
    pub policy: PolicyEngine,
    pub geo: Geo,
    pub bus: Arc<dyn ControlBus>,
    serving: Option<(Server, tokio::net::TcpListener)>,
    sweeper: Option<SweeperHandle>,
    shutdown: CancellationToken,
}

impl AllInOne {
    /// Serves until the composition's `shutdown` is cancelled, then drains. Serves once: later
    /// calls return at once.
    pub async fn serve(&mut self) -> Result<(), ServerError> {
        match self.serving.take() {
            Some((server, listener)) => server.serve(listener, self.shutdown.clone()).await,
            None => Ok(()),
        }
    }

    /// [`AllInOne::serve`] on a task of its own.
    pub fn spawn_server(&mut self) -> JoinHandle<Result<(), ServerError>> {
        let serving = self.serving.take();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            match serving {
                Some((server, listener)) => server.serve(listener, shutdown).await,
                None => Ok(()),
            }
        })
    }

    /// The token that stops everything.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Stops everything (cancels the shutdown token if it was not yet), hands the sweeper's lease
    /// back so another process can lead at once, and waits (a few seconds at most) for the
    /// registry's background tasks.
    pub async fn stop(self) {
        self.shutdown.cancel();
        if let Some(sweeper) = self.sweeper {
            sweeper.stop().await;
        }
        let registry = self.registry;
        let stopped = vigil_runtime::shutdown::join_with_deadline(
            vec![tokio::spawn(async move { registry.stopped().await })],
            STOP_DEADLINE,
        )
        .await;
        if !stopped {
            tracing::warn!("registry tasks did not stop in time");
        }
    }
}

/// Termination on `store` (its calls) and `background` (its re-sends; the same store, or the same
/// database on connections of its own), wired to `registry` in process: it asks the registry for
/// sessions, and the registry's links journal their commands and hand their evictions to it.
/// Redelivery runs until `shutdown`.
pub fn wire_termination(
    registry: &Registry,
    (store, background): (Arc<dyn TerminationStore>, Arc<dyn TerminationStore>),
    bus: Arc<dyn ControlBus>,
    settings: &TerminationSettings,
    shutdown: &CancellationToken,
) -> Terminator {
    let terminator = Terminator::new(store, Arc::new(registry.clone()), bus, settings.clone());
    registry.attach_command_journal(Arc::new(terminator.clone()));
    registry.attach_session_evictor(Arc::new(terminator.clone()));
    start_redelivery(&terminator, background, settings, shutdown.clone());
    terminator
}

/// With no `city_db` configured: writes the demo GeoIP databases into `dir` (once) and points
/// `geo` at them. A configured database is kept.
pub fn use_demo_geoip(geo: &mut GeoConfig, dir: &Path) -> anyhow::Result<()> {
    if !geo.city_db.is_empty() {
        return Ok(());
    }
    let (city, asn) = vigil_geo::write_demo_databases(dir)?;
    tracing::info!(city = %city.display(), "no geo.city_db configured: using the demo GeoIP databases (make geoip fetches real ones)");
    geo.city_db = vec![city];
    geo.asn_db = vec![asn];
    Ok(())
}
