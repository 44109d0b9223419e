//! The one gRPC server bootstrap every Vigil service (and the all-in-one binary) uses.
//!
//! ```no_run
//! # async fn example(svc: vigil_proto::v1::session_registry_server::SessionRegistryServer<impl vigil_proto::v1::session_registry_server::SessionRegistry>) -> Result<(), Box<dyn std::error::Error>> {
//! use vigil_runtime::server::{Server, ServerConfig, bind};
//!
//! let config = ServerConfig::default();
//! let shutdown = vigil_runtime::shutdown::shutdown_on_signal();
//! let server = Server::new(config.clone()).add_service(svc);
//! let readiness = server.readiness();
//! let listener = bind(config.listen).await?;
//! let serving = tokio::spawn(server.serve(listener, shutdown));
//! // ... once the database and the bus answer:
//! readiness.set_all(true).await;
//! serving.await??;
//! # Ok(()) }
//! ```
//!
//! Every server gets:
//! - `grpc.health.v1.Health`: each service starts `NOT_SERVING` and stays so until the caller
//!   marks it ready through [`Readiness`]; the overall status (`""`) is `SERVING` only while every
//!   service is.
//! - Server reflection, v1 and v1alpha (grpcurl 1.8 speaks only v1alpha), advertising exactly the
//!   services served here.
//! - A catch-panic layer: a panicking handler fails its own call with `INTERNAL`, the server lives on.
//! - A request timeout (the smaller of the client's `grpc-timeout` and ours), a per-connection
//!   concurrency limit, TCP nodelay and keepalive, HTTP/2 keepalive pings.
//! - Graceful shutdown when the token is cancelled: health turns `NOT_SERVING` first, then the
//!   listener closes and in-flight calls get [`ServerConfig::shutdown_grace`] to finish; whatever
//!   is still open after that (long-lived streams) has its connection closed.
//! - A span per call ([`crate::telemetry::grpc::RpcTraceLayer`]) named after the method and
//!   continuing the caller's trace (W3C `traceparent` in the request metadata).
//! - Authentication and permissions ([`AuthLayer`]): off unless [`Server::with_security`] says
//!   otherwise, in which case every call is checked against the per-RPC tables of
//!   [`crate::auth::permission`] before any handler runs.
//! - TLS, and mutual TLS when a client CA is configured ([`Server::with_security`]); a server that
//!   should not run in plaintext refuses to start without it (see [`check_transport_security`]).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};
use tonic::transport::{Channel, Endpoint, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tower::{Layer, Service};

use crate::ServiceError;
use crate::auth::{AuthConfig, AuthLayer, AuthMode, Authenticator};
use crate::tls::TlsConfig;
use crate::web::{WebConfig, WebLayer, WebPages};

/// Ping idle HTTP/2 connections this often, so dead peers and silent NATs are noticed.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// A keepalive ping unanswered for this long closes the connection.
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP-level keepalive for accepted and outgoing connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// After the grace period, how long to wait for force-closed connections to wind down.
const FORCE_CLOSE_WAIT: Duration = Duration::from_secs(2);

const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
const REFLECTION_V1_SERVICE: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA_SERVICE: &str = "grpc.reflection.v1alpha.ServerReflection";

/// Settings of a gRPC server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Longest a call may take before it fails with `DEADLINE_EXCEEDED` (a shorter client deadline
    /// wins). Applies until the response starts, so streams are not cut.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Calls one connection may have in flight at once; more wait their turn.
    pub concurrency_limit_per_connection: usize,
    /// On shutdown, how long in-flight calls get to finish before their connections are closed.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// A production server: refuses to start without TLS (unless `allow_plaintext`).
    pub production: bool,
    /// Serve plaintext even where TLS is otherwise required (production, or bearer tokens on a
    /// non-loopback address): for a deployment whose TLS ends in front of Vigil (a service mesh
    /// sidecar). Tokens and credentials then cross the network between that proxy and Vigil as
    /// they are.
    pub allow_plaintext: bool,
    /// Also answer `grpc.health.v1` — and nothing else — in plaintext on this address, with the
    /// same statuses as the main port. For kubelet's native gRPC probes, which cannot speak TLS:
    /// bind it where only the node reaches it (the pod's address, kept out of every Service).
    /// Unset: health is on the main port only.
    pub health_listen: Option<SocketAddr>,
    /// The browser's access: gRPC-Web origins (see [`crate::web`]).
    pub web: WebConfig,
    /// How long a new connection may take to send its first bytes (the HTTP/2 preface, a TLS
    /// hello, an HTTP/1.1 request line): a connection that never starts is closed after this,
    /// instead of holding a socket and a task for ever.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            request_timeout: Duration::from_secs(30),
            concurrency_limit_per_connection: 256,
            shutdown_grace: Duration::from_secs(10),
            production: false,
            allow_plaintext: false,
            health_listen: None,
            web: WebConfig::default(),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address cannot be bound (in use, not ours, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// The reflection service rejected a descriptor set (a build problem).
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed while running.
    #[error("gRPC server failed: {0}")]
    Serve(String),
    /// Authentication or TLS is misconfigured, or the server would run in plaintext where it must
    /// not.
    #[error("{0}")]
    Security(String),
}

/// Whether a server may serve on `listen` with this transport, and why not.
///
/// TLS is required — unless `allow_plaintext` — when the server is marked `production`, or when it
/// takes bearer tokens (`auth.mode = required`) on an address other than loopback: a token sent in
/// plaintext over a network is a token given away. The embedded default (authentication off or
/// on, loopback only) runs in plaintext.
pub fn check_transport_security(
    config: &ServerConfig,
    serves_tls: bool,
    auth_mode: AuthMode,
    listen: SocketAddr,
) -> Result<(), ServerError> {
    if serves_tls || config.allow_plaintext {
        return Ok(());
    }
    if config.production {
        return Err(ServerError::Security(
            "server.production is set but TLS is not configured: set tls.cert and tls.key (or, if TLS ends in \
             front of this server, server.allow_plaintext = true)"
                .into(),
        ));
    }
    if auth_mode == AuthMode::Required && !listen.ip().is_loopback() {
        return Err(ServerError::Security(format!(
            "refusing to take bearer tokens in plaintext on {listen}: set tls.cert and tls.key, listen on a \
             loopback address, or set server.allow_plaintext = true if TLS ends in front of this server"
        )));
    }
    Ok(())
}

/// Binds a TCP listener. Bind port 0 to get a free port; `local_addr()` tells which.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Opens a client channel to `url` (e.g. `http://127.0.0.1:7400`), connecting now rather than on
/// first use, with TCP nodelay and HTTP/2 keepalive.
///
/// A malformed URL is `InvalidArgument`; a server that cannot be reached within
/// `connect_timeout` is `Unavailable`.
pub async fn connect_channel(url: &str, connect_timeout: Duration) -> Result<Channel, ServiceError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|error| ServiceError::invalid(format!("{url:?} is not a valid gRPC endpoint URL: {error}")))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .tcp_keepalive(Some(TCP_KEEPALIVE))
        .http2_keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    // `connect_timeout` bounds the TCP connect only; the outer timeout covers the HTTP/2 handshake too.
    match tokio::time::timeout(connect_timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(error)) => Err(ServiceError::Unavailable(format!(
            "cannot connect to {url}: {}",
            error_chain(&error)
        ))),
        Err(_elapsed) => Err(ServiceError::Unavailable(format!(
            "cannot connect to {url}: no answer within {connect_timeout:?}"
        ))),
    }
}

/// A gRPC server under construction: add services, take a [`Readiness`] handle, then
/// [`serve`](Self::serve).
pub struct Server {
    config: ServerConfig,
    routes: Routes,
    service_names: Vec<&'static str>,
    readiness: Readiness,
    authenticator: Arc<Authenticator>,
    tls: Option<ServerTlsConfig>,
    pages: Option<Arc<dyn WebPages>>,
}

impl Server {
    /// A server with no application services yet, authentication off, in plaintext.
    pub fn new(config: ServerConfig) -> Self {
        Self {
            config,
            routes: Routes::default(),
            service_names: Vec::new(),
            readiness: Readiness::new(),
            authenticator: Arc::new(Authenticator::off()),
            tls: None,
            pages: None,
        }
    }

    /// Answers plain `GET`s with these pages (the web console); see [`crate::web`]. Without them a
    /// `GET` is a 404. gRPC-Web is served either way.
    pub fn with_pages(mut self, pages: Arc<dyn WebPages>) -> Self {
        self.pages = Some(pages);
        self
    }

    /// Authenticates callers as `auth` says and serves TLS as `tls` says. Fails on a configuration
    /// that cannot work (unreadable key files, authentication required with no way to
    /// authenticate).
    pub fn with_security(mut self, auth: &AuthConfig, tls: &TlsConfig) -> Result<Self, ServerError> {
        let authenticator =
            Authenticator::from_config(auth).map_err(|error| ServerError::Security(error.to_string()))?;
        self.authenticator = Arc::new(authenticator);
        self.tls = tls
            .server_config()
            .map_err(|error| ServerError::Security(error.to_string()))?;
        Ok(self)
    }

    /// Adds a generated tonic service (`FooServer::new(...)`). Its health status starts
    /// `NOT_SERVING`.
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes = self.routes.add_service(service);
        self.service_names.push(S::NAME);
        self.readiness.register(S::NAME);
        self
    }

    /// The handle through which the caller reports when its services are ready (all clones share
    /// state, so services added later are covered too).
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Serves on `listener` until `shutdown` is cancelled, then drains (see the module docs).
    ///
    /// Returns once the server has stopped: after the in-flight calls finished, or after the grace
    /// period and the forced close of what was left.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> Result<(), ServerError> {
        let Self {
            config,
            routes,
            service_names,
            readiness,
            authenticator,
            tls,
            pages,
        } = self;
        let local_addr = listener
            .local_addr()
            .map_err(|error| ServerError::Serve(error.to_string()))?;
        let tls_on = tls.is_some();
        check_transport_security(&config, tls_on, authenticator.mode(), local_addr)?;

        let health = HealthServer::new(HealthService::from_health_reporter(readiness.reporter.clone()));
        let health_for_port = health.clone();
        let routes = routes
            .add_service(health)
            .add_service(reflection(&service_names).build_v1()?)
            .add_service(reflection(&service_names).build_v1alpha()?);

        // Connections are wrapped so they can be closed by force once the grace period is over.
        let force_close = CancellationToken::new();
        let incoming = closable_incoming(listener, &force_close, config.handshake_timeout);

        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls)
                .map_err(|error| ServerError::Security(format!("cannot set up TLS: {}", error_chain(&error))))?;
        }
        let mut builder = builder
            .timeout(config.request_timeout)
            .concurrency_limit_per_connection(config.concurrency_limit_per_connection)
            .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
            // HTTP/1.1 for browsers: gRPC-Web and the console's pages.
            .accept_http1(true)
            // Pages and origin checks first, then gRPC-Web turned into gRPC, so that everything after
            // (traces, authentication, permissions, handlers) sees one protocol.
            .layer(WebLayer::new(pages, &config.web))
            .layer(tonic_web::GrpcWebLayer::new())
            // Outermost of the gRPC layers, so the call's span covers authentication and a caught panic too.
            .layer(crate::telemetry::grpc::RpcTraceLayer)
            .layer(CatchPanicLayer)
            .layer(AuthLayer::new(authenticator.clone()));
        let router = builder.add_routes(routes);

        readiness.go_live().await;
        // Opened only now: tonic-health reports "" as SERVING until the first statuses are published.
        // Stopped once the main server has stopped, so probes see NOT_SERVING throughout the drain.
        let _stop_health_port = match config.health_listen {
            Some(addr) => Some(serve_health_only(addr, health_for_port).await?.drop_guard()),
            None => None,
        };
        tracing::info!(
            %local_addr,
            services = ?service_names,
            auth = ?authenticator.mode(),
            tls = tls_on,
            "gRPC server listening"
        );

        // Health turns NOT_SERVING before the listener closes, so a watching load balancer hears it.
        let stop_accepting = {
            let shutdown = shutdown.clone();
            let readiness = readiness.clone();
            async move {
                shutdown.cancelled().await;
                readiness.drain().await;
            }
        };
        let server = router.serve_with_incoming_shutdown(incoming, stop_accepting);
        drain(server, &shutdown, &force_close, local_addr, config.shutdown_grace).await
    }
}

/// The connections `listener` accepts, each closed by force when `force_close` is cancelled.
fn closable_incoming(
    listener: TcpListener,
    force_close: &CancellationToken,
    handshake_timeout: Duration,
) -> impl futures::Stream<Item = io::Result<ClosableStream>> {
    let force_close = force_close.clone();
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE))
        .map_ok(move |stream| ClosableStream::new(stream, force_close.clone(), handshake_timeout))
}

/// Runs `server` until `shutdown`, then lets it finish its calls for `grace`; past that, closes its
/// connections by force (`force_close`) and waits [`FORCE_CLOSE_WAIT`] at most.
async fn drain(
    server: impl Future<Output = Result<(), tonic::transport::Error>>,
    shutdown: &CancellationToken,
    force_close: &CancellationToken,
    local_addr: SocketAddr,
    grace: Duration,
) -> Result<(), ServerError> {
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => return result.map_err(|error| ServerError::Serve(error_chain(&error))),
        () = shutdown.cancelled() => {}
    }
    tracing::info!(%local_addr, ?grace, "gRPC server shutting down; draining calls");
    if let Ok(result) = tokio::time::timeout(grace, &mut server).await {
        tracing::info!(%local_addr, "gRPC server stopped");
        return result.map_err(|error| ServerError::Serve(error_chain(&error)));
    }

    tracing::warn!(%local_addr, "calls still open after the grace period; closing their connections");
    force_close.cancel();
    match tokio::time::timeout(FORCE_CLOSE_WAIT, &mut server).await {
        Ok(result) => result.map_err(|error| ServerError::Serve(error_chain(&error))),
        Err(_elapsed) => {
            tracing::warn!(%local_addr, "connections did not close; abandoning them");
            Ok(())
        }
    }
}

/// Serves `health` alone, in plaintext, on `addr` until the returned token is cancelled.
async fn serve_health_only(
    addr: SocketAddr,
    health: HealthServer<HealthService>,
) -> Result<CancellationToken, ServerError> {
    let listener = bind(addr).await?;
    let stop = CancellationToken::new();
    let stopped = stop.clone().cancelled_owned();
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, stopped)
            .await;
        if let Err(error) = served {
            tracing::warn!(%addr, error = %error_chain(&error), "the health port stopped");
        }
    });
    tracing::info!(%addr, "health (grpc.health.v1, plaintext) listening");
    Ok(stop)
}

/// A reflection builder advertising exactly the services this server serves.
fn reflection(service_names: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    let builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(vigil_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // Both reflection versions describe both, so either version can describe its sibling.
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
    service_names
        .iter()
        .chain(&[HEALTH_SERVICE, REFLECTION_V1_SERVICE, REFLECTION_V1ALPHA_SERVICE])
        .fold(builder, |builder, name| builder.with_service_name(*name))
}

/// What a server reports through `grpc.health.v1`. Cheap to clone; all clones share state.
///
/// Each service added to the [`Server`] is `NOT_SERVING` until marked otherwise; the overall
/// status `""` is `SERVING` exactly while every service is. Once shutdown starts, everything is
/// `NOT_SERVING` for good.
#[derive(Clone, Debug)]
pub struct Readiness {
    reporter: HealthReporter,
    inner: Arc<ReadinessInner>,
}

#[derive(Debug, Default)]
struct ReadinessInner {
    /// What the caller asked for. A plain mutex: never held across an await.
    wanted: Mutex<Wanted>,
    /// What the health service was last told, per service name. The async lock also serialises
    /// publishing, so concurrent updates cannot reach the health service out of order.
    published: tokio::sync::Mutex<BTreeMap<String, ServingStatus>>,
}

#[derive(Debug, Default)]
struct Wanted {
    serving: BTreeMap<&'static str, bool>,
    /// Whether the server is up; before that nothing is published (nobody can ask yet).
    live: bool,
    /// Whether shutdown has started.
    draining: bool,
}

impl Wanted {
    fn overall(&self) -> bool {
        self.live && !self.draining && self.serving.values().all(|serving| *serving)
    }
}

impl Readiness {
    fn new() -> Self {
        Self {
            reporter: HealthReporter::new(),
            inner: Arc::default(),
        }
    }

    fn register(&self, service_name: &'static str) {
        self.wanted().serving.entry(service_name).or_insert(false);
    }

    /// Marks one service (by its full name, e.g. `vigil.v1.SessionRegistry`) as serving or not.
    /// Names this server does not serve are ignored with a warning. During shutdown, `true` is
    /// ignored.
    pub async fn set_serving(&self, service_name: &str, serving: bool) {
        let known = {
            let mut wanted = self.wanted();
            let draining = wanted.draining;
            match wanted.serving.iter_mut().find(|(name, _)| **name == service_name) {
                Some((_, status)) => {
                    *status = serving && !draining;
                    true
                }
                None => false,
            }
        };
        if known {
            self.publish().await;
        } else {
            tracing::warn!(
                service_name,
                "readiness reported for a service this server does not serve"
            );
        }
    }

    /// Marks every service as serving or not.
    pub async fn set_all(&self, serving: bool) {
        {
            let mut wanted = self.wanted();
            let serving = serving && !wanted.draining;
            wanted.serving.values_mut().for_each(|status| *status = serving);
        }
        self.publish().await;
    }

    /// Whether the overall status is `SERVING`.
    pub fn is_serving(&self) -> bool {
        self.wanted().overall()
    }

    /// The server is about to accept connections: publish the current statuses.
    async fn go_live(&self) {
        self.wanted().live = true;
        self.publish().await;
    }

    /// Shutdown has started: everything is `NOT_SERVING` from now on.
    async fn drain(&self) {
        {
            let mut wanted = self.wanted();
            wanted.draining = true;
            wanted.serving.values_mut().for_each(|status| *status = false);
        }
        self.publish().await;
    }

    fn wanted(&self) -> std::sync::MutexGuard<'_, Wanted> {
        self.inner.wanted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Brings the health service in line with what is wanted, sending only changes (each change
    /// wakes every `Watch` caller).
    async fn publish(&self) {
        let mut published = self.inner.published.lock().await;
        let statuses: Vec<(String, ServingStatus)> = {
            let wanted = self.wanted();
            if !wanted.live {
                return;
            }
            let overall = wanted.overall();
            wanted
                .serving
                .iter()
                .map(|(name, serving)| ((*name).to_owned(), *serving))
                .chain([(String::new(), overall)])
                .map(|(name, serving)| {
                    (
                        name,
                        if serving {
                            ServingStatus::Serving
                        } else {
                            ServingStatus::NotServing
                        },
                    )
                })
                .collect()
        };
        for (name, status) in statuses {
            if published.get(&name) != Some(&status) {
                self.reporter.set_service_status(&name, status).await;
                tracing::debug!(service = %name, %status, "health status changed");
                published.insert(name, status);
            }
        }
    }
}

/// Tower layer that turns a panic in a request handler into an `INTERNAL` response for that call.
///
/// Without it, a panic unwinds into hyper's per-stream task: the caller sees a reset stream with
/// no gRPC status and nothing explains it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

/// The service made by [`CatchPanicLayer`].
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S, Req, ResBody> Service<http::Request<Req>> for CatchPanic<S>
where
    S: Service<http::Request<Req>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Req>) -> Self::Future {
        let path = request.uri().path().to_owned();
        // Handlers usually panic while polled, but a service may also panic in `call` itself.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => AssertUnwindSafe(future)
                .catch_unwind()
                .map(move |outcome| outcome.unwrap_or_else(|panic| Ok(panic_response(&path, panic.as_ref()))))
                .boxed(),
            Err(panic) => futures::future::ready(Ok(panic_response(&path, panic.as_ref()))).boxed(),
        }
    }
}

fn panic_response<B: Default>(path: &str, panic: &(dyn std::any::Any + Send)) -> http::Response<B> {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(method = path, panic = message, "request handler panicked");
    tonic::Status::internal("internal error: the request handler failed; the server log has the details").into_http()
}

/// An accepted connection that fails every read and write once `closed` is cancelled, so the
/// server can end connections whose calls outlive the shutdown grace period.
struct ClosableStream {
    stream: TcpStream,
    closed: CancellationToken,
    /// Registers the connection's task for wake-up when `closed` is cancelled.
    on_close: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Until the first [`HANDSHAKE_BYTES`] have arrived: when the connection is given up.
    handshake_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes read so far, counted up to [`HANDSHAKE_BYTES`].
    read_so_far: usize,
}

/// What a connection must send within `server.handshake_timeout`: the length of the HTTP/2
/// client preface (a TLS client hello and an HTTP/1.1 request line are longer).
const HANDSHAKE_BYTES: usize = 24;

impl ClosableStream {
    fn new(stream: TcpStream, closed: CancellationToken, handshake_timeout: Duration) -> Self {
        let on_close = Box::pin(closed.clone().cancelled_owned());
        Self {
            stream,
            closed,
            on_close,
            handshake_deadline: Some(Box::pin(tokio::time::sleep(handshake_timeout))),
            read_so_far: 0,
        }
    }

    fn closed_error() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "server shut down")
    }
}

impl AsyncRead for ClosableStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // The connection always has a read pending, so polling the token here is enough to be
        // woken when it is cancelled. Checking `is_cancelled` first avoids polling a finished future.
        if this.closed.is_cancelled() || this.on_close.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(Self::closed_error()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Some(deadline) = this.handshake_deadline.as_mut() {
            this.read_so_far += buf.filled().len() - before;
            if this.read_so_far >= HANDSHAKE_BYTES {
                this.handshake_deadline = None;
            } else if result.is_pending() && deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection did not start within server.handshake_timeout",
                )));
            }
        }
        result
    }
}

impl AsyncWrite for ClosableStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closed.is_cancelled() {
            return Poll::Ready(Err(Self::closed_error()));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closed.is_cancelled() {
            return Poll::Ready(Err(Self::closed_error()));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Connected for ClosableStream {
    /// The plain TCP info, so handlers' `request.remote_addr()` keeps working.
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

/// An error and its sources on one line: tonic's transport errors say little at the top level.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
