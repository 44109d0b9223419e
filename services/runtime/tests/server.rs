//! The shared gRPC server, exercised over real TCP on port 0: health, reflection, panics and
//! shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use vigil_runtime::server::{CatchPanicLayer, Readiness, Server, ServerConfig, ServerError, bind, connect_channel};

/// A deadline for things that should happen promptly; generous so a loaded machine does not flake.
const PROMPTLY: Duration = Duration::from_secs(10);

/// A hand-written service with two methods: `Panic` panics; `Wait` tells `started`, waits for
/// `release`, then answers `ALREADY_EXISTS` (any status the server itself never produces will do).
#[derive(Clone, Default)]
struct Probe {
    started: Arc<Notify>,
    release: Arc<Notify>,
}

impl NamedService for Probe {
    const NAME: &'static str = "vigil.test.Probe";
}

impl tower::Service<http::Request<tonic::body::Body>> for Probe {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let probe = self.clone();
        let method = request.uri().path().rsplit('/').next().unwrap_or_default().to_owned();
        Box::pin(async move {
            match method.as_str() {
                "Panic" => panic!("handler bug"),
                "Wait" => {
                    probe.started.notify_one();
                    probe.release.notified().await;
                    Ok(tonic::Status::already_exists("done").into_http())
                }
                _ => Ok(tonic::Status::unimplemented(method).into_http()),
            }
        })
    }
}

/// Calls a `Probe` method; the request and response messages are empty.
async fn call_probe(channel: Channel, method: &'static str) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::try_from(format!("/{}/{method}", Probe::NAME)).unwrap();
    grpc.unary::<_, (), _>(tonic::Request::new(()), path, tonic_prost::ProstCodec::default())
        .await
        .unwrap_err()
}

struct Running {
    addr: SocketAddr,
    probe: Probe,
    readiness: Readiness,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ServerError>>,
}

async fn start(config: ServerConfig) -> Running {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let probe = Probe::default();
    let server = Server::new(config).add_service(probe.clone());
    let readiness = server.readiness();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.serve(listener, shutdown.clone()));
    Running {
        addr,
        probe,
        readiness,
        shutdown,
        task,
    }
}

async fn channel(addr: SocketAddr) -> Channel {
    connect_channel(&format!("http://{addr}"), PROMPTLY).await.unwrap()
}

async fn health_of(channel: &Channel, service: &str) -> Result<ServingStatus, tonic::Status> {
    let response = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?;
    Ok(response.into_inner().status())
}

#[tokio::test]
async fn health_is_not_serving_until_ready() {
    // A long grace period: with nothing in flight, shutdown must not wait for it.
    let server = start(ServerConfig {
        shutdown_grace: Duration::from_secs(600),
        ..ServerConfig::default()
    })
    .await;
    let channel = channel(server.addr).await;

    assert_eq!(health_of(&channel, "").await.unwrap(), ServingStatus::NotServing);
    assert_eq!(
        health_of(&channel, Probe::NAME).await.unwrap(),
        ServingStatus::NotServing
    );

    server.readiness.set_serving(Probe::NAME, true).await;
    assert_eq!(health_of(&channel, Probe::NAME).await.unwrap(), ServingStatus::Serving);
    assert_eq!(health_of(&channel, "").await.unwrap(), ServingStatus::Serving);
    assert!(server.readiness.is_serving());

    server.readiness.set_all(false).await;
    assert_eq!(health_of(&channel, "").await.unwrap(), ServingStatus::NotServing);
    let unknown = health_of(&channel, "vigil.v1.NoSuchService").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    server.shutdown.cancel();
    tokio::time::timeout(PROMPTLY, server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_health_port_answers_health_only_with_the_main_ports_statuses() {
    let health_addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let server = start(ServerConfig {
        health_listen: Some(health_addr),
        ..ServerConfig::default()
    })
    .await;
    // The health port opens once `serve` runs, in its task: wait for it.
    let mut health_port = None;
    for _ in 0..40 {
        if let Ok(channel) = connect_channel(&format!("http://{health_addr}"), PROMPTLY).await {
            health_port = Some(channel);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let health_port = health_port.expect("the health port opens");

    assert_eq!(health_of(&health_port, "").await.unwrap(), ServingStatus::NotServing);
    server.readiness.set_all(true).await;
    assert_eq!(health_of(&health_port, "").await.unwrap(), ServingStatus::Serving);
    assert_eq!(
        health_of(&health_port, Probe::NAME).await.unwrap(),
        ServingStatus::Serving
    );
    // Nothing but health: the service itself is not routed there (on the main port `Panic` fails INTERNAL).
    assert_eq!(
        call_probe(health_port.clone(), "Panic").await.code(),
        Code::Unimplemented
    );

    // During the drain the port says NOT_SERVING; once the server has stopped, it is closed.
    server.shutdown.cancel();
    tokio::time::timeout(PROMPTLY, server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let closed = eventually_refused(health_addr).await;
    assert!(
        closed,
        "the health port still accepts connections after the server stopped"
    );
}

/// Whether connections to `addr` are refused within a second.
async fn eventually_refused(addr: SocketAddr) -> bool {
    for _ in 0..40 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test]
async fn readiness_set_before_serving_is_kept() {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(ServerConfig::default()).add_service(Probe::default());
    server.readiness().set_all(true).await;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.serve(listener, shutdown.clone()));

    assert_eq!(
        health_of(&channel(addr).await, "").await.unwrap(),
        ServingStatus::Serving
    );
    shutdown.cancel();
    tokio::time::timeout(PROMPTLY, task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn reflection_lists_the_served_services_in_both_versions() {
    use tonic_reflection::pb::{v1, v1alpha};

    let server = start(ServerConfig::default()).await;
    let channel = channel(server.addr).await;
    let expected = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        Probe::NAME,
    ];

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = response.message_response
    else {
        panic!("not a list: {response:?}");
    };
    let mut names: Vec<_> = list.service.into_iter().map(|service| service.name).collect();
    names.sort();
    assert_eq!(names, expected);

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone())
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("not a list: {response:?}");
    };
    let mut names: Vec<_> = list.service.into_iter().map(|service| service.name).collect();
    names.sort();
    assert_eq!(names, expected);

    // The health service can be described, so grpcurl can call it by name.
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol("grpc.health.v1.Health".into()),
        ),
    };
    let mut responses = v1alpha::server_reflection_client::ServerReflectionClient::new(channel)
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    assert!(
        matches!(
            response.message_response,
            Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
        ),
        "{response:?}"
    );

    server.shutdown.cancel();
    tokio::time::timeout(PROMPTLY, server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_panicking_handler_fails_its_call_and_the_server_lives_on() {
    let server = start(ServerConfig::default()).await;
    let channel = channel(server.addr).await;

    let status = call_probe(channel.clone(), "Panic").await;
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(
        !status.message().contains("handler bug"),
        "panic details stay in the log: {status:?}"
    );

    // Same connection, next call: served.
    assert_eq!(health_of(&channel, "").await.unwrap(), ServingStatus::NotServing);

    server.shutdown.cancel();
    tokio::time::timeout(PROMPTLY, server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn catch_panic_layer_on_its_own() {
    use tower::{Layer, ServiceExt};

    let panicking = tower::service_fn(|_request: http::Request<()>| async {
        if true {
            panic!("boom");
        }
        Ok::<http::Response<tonic::body::Body>, Infallible>(http::Response::default())
    });
    let response = CatchPanicLayer
        .layer(panicking)
        .oneshot(http::Request::new(()))
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "13");

    let fine = tower::service_fn(|_request: http::Request<()>| async {
        Ok::<_, Infallible>(http::Response::new(tonic::body::Body::empty()))
    });
    let response = CatchPanicLayer
        .layer(fine)
        .oneshot(http::Request::new(()))
        .await
        .unwrap();
    assert!(response.headers().get("grpc-status").is_none());
}

#[tokio::test]
async fn in_flight_calls_finish_during_shutdown() {
    let server = start(ServerConfig {
        shutdown_grace: Duration::from_secs(600),
        ..ServerConfig::default()
    })
    .await;
    let channel = channel(server.addr).await;
    let call = tokio::spawn(call_probe(channel.clone(), "Wait"));
    server.probe.started.notified().await;

    server.shutdown.cancel();
    // Once the listener is closed, shutdown is under way; only then let the call finish.
    tokio::time::timeout(PROMPTLY, async {
        while tokio::net::TcpStream::connect(server.addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("listener closed");
    assert!(!server.task.is_finished(), "serve() waits for the call in flight");
    server.probe.release.notify_one();

    assert_eq!(
        call.await.unwrap().code(),
        Code::AlreadyExists,
        "the call completed normally"
    );
    tokio::time::timeout(PROMPTLY, server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_reports_not_serving_then_closes_streams_after_the_grace_period() {
    let grace = Duration::from_millis(300);
    let server = start(ServerConfig {
        shutdown_grace: grace,
        ..ServerConfig::default()
    })
    .await;
    server.readiness.set_all(true).await;
    let channel = channel(server.addr).await;

    // Health `Watch` is a stream that never ends by itself: exactly what the grace period is for.
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.next().await.unwrap().unwrap().status(), ServingStatus::Serving);

    let cancelled_at = tokio::time::Instant::now();
    server.shutdown.cancel();
    assert_eq!(watch.next().await.unwrap().unwrap().status(), ServingStatus::NotServing);

    // The stream is cut once the grace period is over, and serve() returns.
    let end = tokio::time::timeout(PROMPTLY, watch.next()).await.unwrap();
    assert!(matches!(end, None | Some(Err(_))), "{end:?}");
    tokio::time::timeout(PROMPTLY, server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        cancelled_at.elapsed() >= grace,
        "in-flight streams got the grace period"
    );

    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn bind_reports_the_address_in_use() {
    let taken = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = taken.local_addr().unwrap();
    let error = bind(addr).await.unwrap_err();
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
}

#[tokio::test]
async fn connect_channel_errors_are_classified() {
    use vigil_runtime::ServiceError;

    let error = connect_channel("not a url", PROMPTLY).await.unwrap_err();
    assert!(matches!(error, ServiceError::InvalidArgument(_)), "{error}");

    // A port that was free a moment ago: refused.
    let addr = bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let error = connect_channel(&format!("http://{addr}"), PROMPTLY).await.unwrap_err();
    assert!(matches!(error, ServiceError::Unavailable(_)), "{error}");
}

#[tokio::test]
async fn a_connection_that_never_starts_is_closed_after_the_handshake_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(ServerConfig {
        handshake_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    // Silent: the server hangs up (end of stream or a reset) well before 5 s.
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buffer)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the silent connection was still open: {read:?}"
    );
    // A dribble of a few bytes is no start either.
    let mut dribble = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    dribble.write_all(b"PRI * ").await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match dribble.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the dribbling connection was still open");
    // A real client past the preface is not cut by the timeout.
    let channel = channel(server.addr).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(health_of(&channel, "").await.is_ok());
    server.shutdown.cancel();
}
