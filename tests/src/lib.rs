//! Test harness for Vigil's end-to-end tests: real registry servers on port 0, real PostgreSQL
//! (a fresh schema per test) and real Redis (a fresh channel namespace per test).
//!
//! Where they are: `VIGIL_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and `VIGIL_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use vigil_agent::{Agent, AgentConfig, CommandResult, GatewayHandler};
use vigil_proto::v1 as pb;
use vigil_proto::v1::session_registry_client::SessionRegistryClient;
use vigil_proto::v1::termination_service_client::TerminationServiceClient;
use vigil_registry::store::{SessionStore, SqlStore};
use vigil_registry::{Registry, RegistrySettings};
use vigil_runtime::bus::{ControlBus, InProcessBus, RedisBus, RedisBusConfig};
use vigil_runtime::database::{self, DatabaseConfig};
use vigil_runtime::server::{Server, ServerConfig};
use vigil_termination::api::TerminationApi;
use vigil_termination::store::TerminationStore;
use vigil_termination::{TerminationSettings, Terminator};

pub use vigil_testkit::{PATIENCE, database_url, eventually};

pub mod gateway_stack;
pub use gateway_stack::GatewayStack;

pub fn redis_url() -> String {
    std::env::var("VIGIL_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Installs a test log subscriber once (`RUST_LOG=debug cargo test` to see the servers' logs).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A PostgreSQL schema of one's own, dropped when this is dropped.
pub struct TestSchema {
    pub name: String,
    pub config: DatabaseConfig,
}

impl TestSchema {
    pub async fn new() -> Self {
        let name = format!("vigil_test_{}", uuid::Uuid::new_v4().simple());
        database::create_schema(&database_url(), &name)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "cannot create a test schema in PostgreSQL at {}: {error}",
                    database_url()
                )
            });
        // Every connection of the test carries the schema's name, so the end of the test can close
        // them all: the services of one test hold each other (registry ⇄ termination ⇄ policy), so
        // their pools outlive it, and a suite would otherwise run PostgreSQL out of connections.
        let separator = if database_url().contains('?') { '&' } else { '?' };
        let config = DatabaseConfig {
            url: format!("{}{separator}application_name={name}", database_url()),
            schema: Some(name.clone()),
            // Each service of a test opens its own pool, two tests run at once on CI's two cores, and
            // PostgreSQL allows 100 connections in all: small pools keep a suite well inside that.
            max_connections: 6,
            // The background pools (the all-in-one's services open one each) stay small too.
            background_connections: 2,
            // Generous: a loaded machine can be slow to hand out connections, and a test should
            // fail on behaviour, not on a busy database.
            connect_timeout: Duration::from_secs(30),
            ..DatabaseConfig::default()
        };
        Self { name, config }
    }

    /// A migrated termination store on this schema (the services share the schema, as in development).
    pub async fn termination_store(&self) -> Arc<vigil_termination::store::SqlTerminationStore> {
        vigil_termination::app::open_store(&self.config, true)
            .await
            .expect("open and migrate the termination tables")
    }

    /// A migrated store on this schema (each call opens its own connection pool, as a replica would).
    pub async fn store(&self) -> Arc<SqlStore> {
        vigil_registry::app::open_store(&self.config, true)
            .await
            .expect("open and migrate the test schema")
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on async work: use a thread.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    close_connections(&name).await;
                    let _ = database::drop_schema(&database_url(), &name).await;
                });
            }
        })
        .join();
    }
}

/// Ends every PostgreSQL connection opened for the test schema `name` (see [`TestSchema::new`]).
async fn close_connections(name: &str) {
    use sea_orm::ConnectionTrait;
    let Ok(db) = sea_orm::Database::connect(database_url()).await else {
        return;
    };
    // `name` is `vigil_test_` and a UUID's hex digits: nothing to escape.
    let _ = db
        .execute_unprepared(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{name}' AND pid <> pg_backend_pid()"
        ))
        .await;
    let _ = db.close().await;
}

/// A Redis bus in a namespace of its own (share the namespace to make replicas see each other).
pub async fn redis_bus(namespace: &str) -> Arc<RedisBus> {
    let config = RedisBusConfig {
        url: redis_url(),
        namespace: namespace.to_owned(),
        ..RedisBusConfig::default()
    };
    Arc::new(
        RedisBus::connect(config)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to Redis at {}: {error}", redis_url())),
    )
}

/// A fresh namespace for one test's bus traffic.
pub fn unique_namespace() -> String {
    format!("vigil-test-{}", uuid::Uuid::new_v4().simple())
}

/// Registry settings for tests: fast flushing and scanning, a short idle threshold.
pub fn test_settings(replica: &str) -> RegistrySettings {
    RegistrySettings {
        replica: replica.to_owned(),
        idle_after: Duration::from_secs(60),
        idle_scan_interval: Duration::from_millis(100),
        activity_flush_interval: Duration::from_millis(50),
        agent_activity_interval: Duration::from_millis(100),
        gateway_seen_interval: Duration::from_millis(100),
        // Generous: a loaded CI machine must not turn a slow first call into "geo unavailable".
        admission: vigil_registry::admission::AdmissionSettings {
            geo_timeout: Duration::from_secs(5),
            policy_timeout: Duration::from_secs(5),
            ..Default::default()
        },
        ..RegistrySettings::default()
    }
}

/// Termination settings for tests: quick re-sends.
pub fn fast_termination() -> TerminationSettings {
    TerminationSettings {
        ack_timeout: Duration::from_millis(300),
        max_retry_interval: Duration::from_secs(1),
        redelivery_scan_interval: Duration::from_millis(100),
        ..TerminationSettings::default()
    }
}

/// A registry replica serving on a random port.
pub struct TestRegistry {
    pub addr: SocketAddr,
    pub registry: Registry,
    /// The termination service served alongside, when started with one.
    pub terminator: Option<Terminator>,
    pub shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestRegistry {
    pub async fn start(settings: RegistrySettings, store: Arc<dyn SessionStore>, bus: Arc<dyn ControlBus>) -> Self {
        Self::start_with(settings, store, bus, None).await
    }

    /// A replica serving the termination service too (as the all-in-one binary does), with
    /// termination's directory and journal wired in process.
    pub async fn start_with(
        settings: RegistrySettings,
        store: Arc<dyn SessionStore>,
        bus: Arc<dyn ControlBus>,
        termination: Option<(Arc<dyn TerminationStore>, TerminationSettings)>,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let registry = Registry::start(settings, store, bus.clone(), shutdown.clone())
            .await
            .expect("start the registry");
        let mut server = Server::new(ServerConfig::default())
            .add_service(registry.sessions_service())
            .add_service(registry.link_service());
        let terminator = termination.map(|(termination_store, termination_settings)| {
            vigil::wire_termination(
                &registry,
                (termination_store.clone(), termination_store),
                bus.clone(),
                &termination_settings,
                &shutdown,
            )
        });
        if let Some(terminator) = &terminator {
            server = server.add_service(TerminationApi::server(terminator.clone()));
        }
        server.readiness().set_all(true).await;
        let listener = vigil_runtime::server::bind("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local address");
        let server_shutdown = shutdown.clone();
        let server = tokio::spawn(async move {
            server.serve(listener, server_shutdown).await.expect("serve");
        });
        Self {
            addr,
            registry,
            terminator,
            shutdown,
            server: Some(server),
        }
    }

    /// Registry + termination on PostgreSQL and Redis.
    pub async fn with_termination(schema: &TestSchema, namespace: &str, settings: RegistrySettings) -> Self {
        let termination_store: Arc<dyn TerminationStore> = schema.termination_store().await;
        let termination = Some((termination_store, fast_termination()));
        Self::start_with(settings, schema.store().await, redis_bus(namespace).await, termination).await
    }

    pub async fn termination_client(&self) -> TerminationServiceClient<Channel> {
        TerminationServiceClient::new(self.channel().await)
    }

    /// PostgreSQL + Redis, the production pair.
    pub async fn on_postgres(schema: &TestSchema, namespace: &str, settings: RegistrySettings) -> Self {
        Self::start(settings, schema.store().await, redis_bus(namespace).await).await
    }

    /// SQLite + in-process bus, the embedded default.
    pub async fn embedded(settings: RegistrySettings) -> (Self, tempdir::TempDir) {
        let dir = tempdir::TempDir::new();
        let config = DatabaseConfig {
            url: format!("sqlite://{}/vigil.db?mode=rwc", dir.path().display()),
            ..Default::default()
        };
        let store = vigil_registry::app::open_store(&config, true)
            .await
            .expect("open SQLite");
        (Self::start(settings, store, Arc::new(InProcessBus::new())).await, dir)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        vigil_runtime::server::connect_channel(&self.url(), Duration::from_secs(5))
            .await
            .expect("connect")
    }

    pub async fn sessions_client(&self) -> SessionRegistryClient<Channel> {
        SessionRegistryClient::new(self.channel().await)
    }

    /// An agent for `gateway_id`, connected.
    pub async fn agent(&self, gateway_id: &str, handler: Arc<RecordingHandler>) -> Agent {
        let agent = Agent::start(AgentConfig::new(self.url(), gateway_id), handler);
        agent.wait_connected(PATIENCE).await.expect("agent connects");
        agent
    }

    /// Stops the server and the registry's tasks, and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.registry.stopped().await;
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A gateway handler that ends sessions on command and remembers what it was told.
#[derive(Default)]
pub struct RecordingHandler {
    pub terminated: Mutex<Vec<pb::TerminateCommand>>,
    pub idle_warnings: Mutex<Vec<pb::IdleWarning>>,
}

#[tonic::async_trait]
impl GatewayHandler for RecordingHandler {
    async fn terminate(&self, command: &pb::TerminateCommand) -> CommandResult {
        self.terminated.lock().expect("lock").push(command.clone());
        CommandResult::Done
    }

    async fn idle_warning(&self, warning: &pb::IdleWarning) {
        self.idle_warnings.lock().expect("lock").push(warning.clone());
    }
}

/// A session start with sensible defaults.
pub fn start(user: &str, resource: &str, kind: pb::ResourceType, ip: &str) -> pb::SessionStart {
    pb::SessionStart {
        user: user.into(),
        resource_name: resource.into(),
        resource_type: kind as i32,
        device: format!("{}-laptop", user.split('@').next().unwrap_or(user)),
        client_ip: ip.into(),
        started_at: None,
        user_groups: vec!["engineering".into()],
    }
}

/// A temporary directory, removed on drop (tiny, to avoid a dependency).
/// A directory of a test's own, removed on drop.
pub mod tempdir {
    pub use vigil_testkit::TempDir;
}

/// A Redis bus on a given server, in a given namespace.
pub async fn redis_bus_at(url: &str, namespace: &str) -> Arc<RedisBus> {
    let config = RedisBusConfig {
        url: url.to_owned(),
        namespace: namespace.to_owned(),
        reconnect_max_backoff: Duration::from_millis(200),
    };
    Arc::new(
        RedisBus::connect(config)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to Redis at {url}: {error}")),
    )
}

/// A `redis-server` of the test's own, on a free port, that the test can stop and start again.
pub struct ThrowawayRedis {
    port: u16,
    child: Option<tokio::process::Child>,
}

impl ThrowawayRedis {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut redis = Self { port, child: None };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub async fn restart(&mut self) {
        let child = tokio::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed (it is on the development and CI machines)");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        eventually("the throwaway Redis to accept connections", || {
            let addr = addr.clone();
            async move { tokio::net::TcpStream::connect(addr).await.ok().map(drop) }
        })
        .await;
    }

    /// Kills the server and waits for it to be gone.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// A gateway link opened by hand (no SDK), for protocol-level tests.
pub struct RawLink {
    pub welcome: pb::Welcome,
    outbound: tokio::sync::mpsc::Sender<pb::AgentMessage>,
    inbound: tonic::Streaming<pb::ControllerMessage>,
}

impl RawLink {
    /// Says hello for `gateway_id` with `sessions`; the registry's refusal is returned as is.
    pub async fn open(
        registry: &TestRegistry,
        gateway_id: &str,
        sessions: Vec<pb::SnapshotSession>,
    ) -> Result<Self, tonic::Status> {
        let hello = pb::Hello {
            gateway_id: gateway_id.into(),
            sessions,
            ..Default::default()
        };
        Self::open_with_first(registry, pb::agent_message::Message::Hello(hello)).await
    }

    /// Opens a link whose first message is `first` (a hello, or not).
    pub async fn open_with_first(
        registry: &TestRegistry,
        first: pb::agent_message::Message,
    ) -> Result<Self, tonic::Status> {
        let (outbound, receiver) = tokio::sync::mpsc::channel(64);
        outbound
            .send(pb::AgentMessage {
                trace_context: Default::default(),
                message: Some(first),
            })
            .await
            .expect("queue");
        let mut client = pb::gateway_link_client::GatewayLinkClient::new(registry.channel().await);
        let mut inbound = client
            .connect(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await?
            .into_inner();
        match inbound.message().await?.and_then(|message| message.message) {
            Some(pb::controller_message::Message::Welcome(welcome)) => Ok(Self {
                welcome,
                outbound,
                inbound,
            }),
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// The welcome and the two halves of the stream.
    #[allow(clippy::type_complexity)]
    pub fn into_parts(
        self,
    ) -> (
        pb::Welcome,
        tokio::sync::mpsc::Sender<pb::AgentMessage>,
        tonic::Streaming<pb::ControllerMessage>,
    ) {
        (self.welcome, self.outbound, self.inbound)
    }

    pub async fn send(&self, message: pb::agent_message::Message) {
        self.outbound
            .send(pb::AgentMessage {
                trace_context: Default::default(),
                message: Some(message),
            })
            .await
            .expect("link open");
    }

    /// The next message from the registry (panics after [`PATIENCE`]).
    pub async fn next(&mut self) -> Option<pb::controller_message::Message> {
        tokio::time::timeout(PATIENCE, self.inbound.message())
            .await
            .expect("a message in time")
            .expect("link healthy")
            .and_then(|message| message.message)
    }
}

impl TestSchema {
    /// A migrated policy store on this schema (each call opens its own connection pool, as a
    /// policy replica would).
    pub async fn policy_store(&self) -> Arc<vigil_policy::store::SqlPolicyStore> {
        vigil_policy::app::open_store(&self.config, true)
            .await
            .expect("open and migrate the policy tables")
    }
}

/// Every service — registry, gateway link, termination, policy, geo — on one server with the given
/// authentication and TLS: the all-in-one's composition ([`vigil::Composition`]) on PostgreSQL and
/// the in-process bus, what the security tests drive. Test knobs: fast termination re-sends, no
/// sweeper, health SERVING whatever the database says.
pub struct SecureStack {
    pub addr: SocketAddr,
    /// `http://…` or, with TLS, `https://localhost:…` (the test certificates name `localhost`).
    pub url: String,
    pub registry: Registry,
    /// The registry's store for calls: its pool is the one API load takes.
    pub registry_store: Arc<SqlStore>,
    pub terminator: Terminator,
    pub policy: vigil_policy::PolicyEngine,
    pub shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<Result<(), vigil_runtime::server::ServerError>>>,
    vigil: Option<vigil::AllInOne>,
    _geo_dir: tempdir::TempDir,
}

impl SecureStack {
    pub async fn start(
        schema: &TestSchema,
        auth: vigil_runtime::auth::AuthConfig,
        tls: vigil_runtime::tls::TlsConfig,
    ) -> Self {
        Self::start_with(schema, auth, tls, test_settings("secure")).await
    }

    /// [`SecureStack::start`] with these registry settings.
    pub async fn start_with(
        schema: &TestSchema,
        auth: vigil_runtime::auth::AuthConfig,
        tls: vigil_runtime::tls::TlsConfig,
        settings: RegistrySettings,
    ) -> Self {
        Self::start_configured(schema, auth, tls, |config| config.registry = settings).await
    }

    /// [`SecureStack::start`] with the all-in-one's configuration changed by `configure` first
    /// (event sinks, say).
    pub async fn start_configured(
        schema: &TestSchema,
        auth: vigil_runtime::auth::AuthConfig,
        tls: vigil_runtime::tls::TlsConfig,
        configure: impl FnOnce(&mut vigil::VigilConfig),
    ) -> Self {
        let geo_dir = tempdir::TempDir::new();
        let mut config = all_in_one_config(schema, auth, tls, test_settings("secure"), geo_dir.path());
        configure(&mut config);
        let shutdown = CancellationToken::new();
        let mut vigil = vigil::Composition::new(&config)
            .always_ready()
            .start(shutdown.clone())
            .await
            .expect("start the all-in-one");
        let url = if config.tls.serves_tls() {
            format!("https://localhost:{}", vigil.addr.port())
        } else {
            vigil.url.clone()
        };
        Self {
            addr: vigil.addr,
            url,
            registry: vigil.registry.clone(),
            registry_store: vigil.registry_store.clone(),
            terminator: vigil.terminator.clone(),
            policy: vigil.policy.clone(),
            shutdown,
            server: Some(vigil.spawn_server()),
            vigil: Some(vigil),
            _geo_dir: geo_dir,
        }
    }

    /// A channel sending `token` (if any) with every call, in plaintext.
    pub async fn channel(&self, token: Option<&str>) -> vigil_runtime::client::ServiceChannel {
        self.connector(token, None)
            .connect("url", &self.url, Duration::from_secs(5))
            .await
            .expect("connect")
    }

    /// A connector sending `token` (if any) and trusting `tls` (for `https://`).
    pub fn connector(
        &self,
        token: Option<&str>,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> vigil_runtime::client::ServiceConnector {
        let credentials = match token {
            Some(token) => vigil_runtime::client::OutboundInterceptor::bearer(token).expect("token"),
            None => vigil_runtime::client::OutboundInterceptor::none(),
        };
        let connector = vigil_runtime::client::ServiceConnector::plain().with_credentials(credentials);
        match tls {
            Some(tls) => connector.with_tls(tls),
            None => connector,
        }
    }

    /// An agent for `gateway_id` presenting `credential`, connected.
    pub async fn agent(&self, gateway_id: &str, credential: &str, handler: Arc<RecordingHandler>) -> Agent {
        let agent = Agent::start(
            AgentConfig::new(self.url.clone(), gateway_id).with_credential(credential),
            handler,
        );
        agent.wait_connected(PATIENCE).await.expect("agent connects");
        agent
    }

    /// Stops the server and the services' tasks, and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        if let Some(vigil) = self.vigil.take() {
            vigil.stop().await;
        }
    }
}

/// The all-in-one's configuration for a [`SecureStack`]: the test schema, the in-process bus, a
/// random port, the demo GeoIP databases written into `geo_dir`.
fn all_in_one_config(
    schema: &TestSchema,
    auth: vigil_runtime::auth::AuthConfig,
    tls: vigil_runtime::tls::TlsConfig,
    settings: RegistrySettings,
    geo_dir: &std::path::Path,
) -> vigil::VigilConfig {
    let mut config = vigil::VigilConfig {
        server: ServerConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            ..ServerConfig::default()
        },
        database: schema.config.clone(),
        auth,
        tls,
        registry: settings,
        termination: fast_termination(),
        policy: vigil_policy::PolicySettings {
            sweeper: false,
            ..vigil_policy::PolicySettings::default()
        },
        ..vigil::VigilConfig::default()
    };
    vigil::use_demo_geoip(&mut config.geo, geo_dir).expect("demo databases");
    config
}

impl Drop for SecureStack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A gateway link opened by [`open_link`]: the agent's half (keep it to keep the link open) and
/// the registry's.
pub type LinkHalves = (
    tokio::sync::mpsc::Sender<pb::AgentMessage>,
    tonic::Streaming<pb::ControllerMessage>,
);

/// A hello with nothing but a gateway id and its credential (no sessions held).
pub fn gateway_hello(gateway_id: &str, credential: &str) -> pb::Hello {
    pb::Hello {
        gateway_id: gateway_id.into(),
        credential: credential.into(),
        ..Default::default()
    }
}

/// Opens a gateway link on `channel` with this hello; the registry's refusal is returned as is.
pub async fn open_link(channel: Channel, hello: pb::Hello) -> Result<LinkHalves, tonic::Status> {
    let (outbound, receiver) = tokio::sync::mpsc::channel(8);
    outbound
        .send(pb::AgentMessage {
            trace_context: Default::default(),
            message: Some(pb::agent_message::Message::Hello(hello)),
        })
        .await
        .expect("queue");
    let mut client = pb::gateway_link_client::GatewayLinkClient::new(channel);
    let mut inbound = client
        .connect(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await?
        .into_inner();
    // The refusal of a hello comes as the stream's status, after the response headers.
    match inbound.message().await? {
        Some(pb::ControllerMessage {
            message: Some(pb::controller_message::Message::Welcome(_)),
            ..
        }) => Ok((outbound, inbound)),
        other => panic!("expected a welcome or a refusal, got {other:?}"),
    }
}

impl TestRegistry {
    /// A replica (no termination) serving on `addr`: a stopped replica brought back where its agents
    /// look for it.
    pub async fn start_at(
        addr: SocketAddr,
        settings: RegistrySettings,
        store: Arc<dyn SessionStore>,
        bus: Arc<dyn ControlBus>,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let registry = Registry::start(settings, store, bus, shutdown.clone())
            .await
            .expect("start the registry");
        let server = Server::new(ServerConfig::default())
            .add_service(registry.sessions_service())
            .add_service(registry.link_service());
        server.readiness().set_all(true).await;
        let listener = vigil_runtime::server::bind(addr)
            .await
            .expect("bind the same address again");
        let server_shutdown = shutdown.clone();
        let server = tokio::spawn(async move {
            server.serve(listener, server_shutdown).await.expect("serve");
        });
        Self {
            addr,
            registry,
            terminator: None,
            shutdown,
            server: Some(server),
        }
    }
}

/// What one in-process sessionctl run printed, and how it ended.
pub struct SessionctlRun {
    pub result: Result<(), sessionctl::CliError>,
    pub out: String,
    pub err: String,
}

/// Runs sessionctl with `args` (after the program name), stdin and stdout not terminals (so
/// nothing can be asked, and output is as piped).
pub async fn run_sessionctl(args: &[&str]) -> SessionctlRun {
    use clap::Parser as _;
    let cli = sessionctl::Cli::try_parse_from(std::iter::once(&"sessionctl").chain(args)).expect("arguments parse");
    let (mut out, mut err, mut shown) = (Vec::new(), Vec::new(), Vec::new());
    let mut input = std::io::Cursor::new(Vec::new());
    let mut console = sessionctl::Console {
        input: &mut input,
        output: &mut shown,
        interactive: false,
    };
    let streams = sessionctl::Streams {
        out: &mut out,
        err: &mut err,
        terminal: false,
    };
    let result = sessionctl::run_with(cli, streams, &mut console, std::future::pending()).await;
    SessionctlRun {
        result,
        out: String::from_utf8(out).expect("stdout is UTF-8"),
        err: String::from_utf8(err).expect("stderr is UTF-8"),
    }
}
