//! Running a replica in production: readiness follows PostgreSQL and Redis, and SIGTERM drains a
//! registry replica's agent links onto another replica without losing a kill. Both run the
//! production wiring (`vigil_registry::app::run`), on real PostgreSQL and Redis.
//!
//! This file is its own test binary on purpose: the drain test sends SIGTERM to the test process,
//! which only the replica under test listens for.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use vigil_agent::{Agent, AgentConfig};
use vigil_proto::v1 as pb;
use vigil_proto::v1::{EndReason, ResourceType};
use vigil_registry::app::RegistryConfig;
use vigil_runtime::bus::{BusConfig, BusKind, RedisBusConfig};
use vigil_runtime::database::DatabaseConfig;
use vigil_tests::*;

/// A TCP relay standing in for the network between a client and its servers: it forwards each new
/// connection to the first backend that accepts it, and can be cut (every connection closed, new
/// ones refused) and restored — a dependency "going away" without touching the shared servers.
struct TcpRelay {
    addr: SocketAddr,
    state: Arc<Mutex<RelayState>>,
}

struct RelayState {
    backends: Vec<SocketAddr>,
    /// Cancelled to cut; replaced by a fresh token on restore.
    open: CancellationToken,
    cut: bool,
}

impl TcpRelay {
    async fn start(backends: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the relay");
        let addr = listener.local_addr().expect("relay address");
        let state = Arc::new(Mutex::new(RelayState {
            backends,
            open: CancellationToken::new(),
            cut: false,
        }));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (backends, open, cut) = {
                    let state = shared.lock().unwrap();
                    (state.backends.clone(), state.open.clone(), state.cut)
                };
                if cut {
                    continue; // dropped: the client sees the connection closed at once
                }
                tokio::spawn(async move {
                    for backend in backends {
                        if let Ok(mut outbound) = TcpStream::connect(backend).await {
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                () = open.cancelled() => {}
                            }
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_backends(&self, backends: Vec<SocketAddr>) {
        self.state.lock().unwrap().backends = backends;
    }

    fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut = true;
        state.open.cancel();
    }

    fn restore(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut = false;
        state.open = CancellationToken::new();
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// `url` with its `host:port` replaced by `addr` (user, database and parameters kept).
fn with_host(url: &str, addr: SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    (format!("{scheme}://{user}{addr}{path}"), host.to_owned())
}

/// A registry replica's configuration on the test's schema and Redis namespace.
fn replica_config(
    schema: &TestSchema,
    database_url: String,
    redis_url: String,
    namespace: &str,
    replica: &str,
) -> RegistryConfig {
    let mut config = RegistryConfig::default();
    config.server.listen = free_addr();
    config.server.shutdown_grace = Duration::from_secs(5);
    config.database = DatabaseConfig {
        url: database_url,
        connect_timeout: Duration::from_secs(1),
        ..schema.config.clone()
    };
    config.bus = BusConfig {
        kind: BusKind::Redis,
        redis: RedisBusConfig {
            url: redis_url,
            namespace: namespace.to_owned(),
            reconnect_max_backoff: Duration::from_millis(200),
        },
    };
    config.registry = test_settings(replica);
    config.migrate_on_start = true;
    config
}

/// The overall health status of the server at `addr`, or `None` while it does not answer.
async fn health(addr: SocketAddr) -> Option<ServingStatus> {
    let channel = vigil_runtime::server::connect_channel(&format!("http://{addr}"), Duration::from_secs(1))
        .await
        .ok()?;
    let response = HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .ok()?;
    Some(response.into_inner().status())
}

async fn wait_for_health(addr: SocketAddr, wanted: ServingStatus, why: &str) {
    eventually(
        why,
        || async move { (health(addr).await == Some(wanted)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn readiness_goes_false_while_redis_or_postgres_is_unreachable_and_back_when_it_returns() {
    init_logs();
    let schema = TestSchema::new().await;
    let mut redis = ThrowawayRedis::start().await;
    // PostgreSQL itself is shared by every test: reach it through a relay that can be cut.
    let (_, postgres_host) = with_host(&database_url(), free_addr());
    let postgres_addr = tokio::net::lookup_host(&postgres_host)
        .await
        .expect("resolve PostgreSQL's address")
        .next()
        .expect("an address for PostgreSQL");
    let postgres = TcpRelay::start(vec![postgres_addr]).await;
    let (relayed_url, _) = with_host(&database_url(), postgres.addr);

    let config = replica_config(&schema, relayed_url, redis.url(), &unique_namespace(), "ready");
    let addr = config.server.listen;
    let shutdown = CancellationToken::new();
    let replica = tokio::spawn(vigil_registry::app::run(config, shutdown.clone()));
    wait_for_health(addr, ServingStatus::Serving, "the replica to serve").await;

    redis.stop().await;
    wait_for_health(addr, ServingStatus::NotServing, "NOT_SERVING while Redis is down").await;
    redis.restart().await;
    wait_for_health(addr, ServingStatus::Serving, "SERVING once Redis is back").await;

    postgres.cut();
    wait_for_health(
        addr,
        ServingStatus::NotServing,
        "NOT_SERVING while PostgreSQL is unreachable",
    )
    .await;
    postgres.restore();
    wait_for_health(
        addr,
        ServingStatus::Serving,
        "SERVING once PostgreSQL is reachable again",
    )
    .await;

    shutdown.cancel();
    replica
        .await
        .expect("the replica task")
        .expect("the replica stops cleanly");
}

fn session_ids(ids: &[&str]) -> Option<pb::SessionSelector> {
    Some(pb::SessionSelector {
        target: Some(pb::session_selector::Target::SessionIds(pb::SessionIds {
            ids: ids.iter().map(|id| id.to_string()).collect(),
        })),
    })
}

async fn kill(replica: &TestRegistry, session_id: &str) -> pb::Termination {
    let mut client = replica.termination_client().await;
    client
        .terminate(pb::TerminateRequest {
            selector: session_ids(&[session_id]),
            reason: EndReason::Admin as i32,
            ..Default::default()
        })
        .await
        .expect("terminate")
        .into_inner()
}

async fn wait_acknowledged(replica: &TestRegistry, termination_id: &str) {
    let client = replica.termination_client().await;
    eventually("the kill to be acknowledged by the gateway", || {
        let mut client = client.clone();
        let id = termination_id.to_owned();
        async move {
            let termination = client
                .get_termination(pb::GetTerminationRequest { id })
                .await
                .ok()?
                .into_inner();
            (termination.acknowledged == 1).then_some(())
        }
    })
    .await;
}

/// Which replica holds the gateway's link, once it is connected.
async fn holder(replica: &TestRegistry, gateway_id: &str) -> Option<String> {
    let mut client = replica.sessions_client().await;
    let gateways = client
        .list_gateways(pb::ListGatewaysRequest::default())
        .await
        .ok()?
        .into_inner()
        .gateways;
    gateways
        .into_iter()
        .find(|gateway| gateway.id == gateway_id && gateway.connected)
        .map(|gateway| gateway.replica)
}

#[tokio::test]
async fn sigterm_drains_a_replica_onto_another_without_losing_a_kill() {
    init_logs();
    let schema = TestSchema::new().await;
    let namespace = unique_namespace();
    // Replica "b" also serves termination (the kill's record, its pending list and its acks).
    let survivor = TestRegistry::with_termination(&schema, &namespace, test_settings("b")).await;
    // Replica "a" runs the production wiring and stops on a real SIGTERM.
    let mut config = replica_config(&schema, database_url(), redis_url(), &namespace, "a");
    config.termination_url = Some(survivor.url());
    let leaving_addr = config.server.listen;
    let sigterm = vigil_runtime::shutdown::shutdown_on_signal();
    let leaving = tokio::spawn(vigil_registry::app::run(config, sigterm));
    wait_for_health(leaving_addr, ServingStatus::Serving, "replica a to serve").await;

    // The agents' way in (a Kubernetes Service, in production) leads to "a" first.
    let front = TcpRelay::start(vec![leaving_addr, survivor.addr]).await;
    let handler = Arc::new(RecordingHandler::default());
    let agent = Agent::start(AgentConfig::new(front.url(), "gw-drain"), handler.clone());
    agent.wait_connected(PATIENCE).await.expect("the agent connects");
    let mut sessions = Vec::new();
    for user in ["ann", "ben", "cat"] {
        let decision = agent
            .open_session(start(user, "db", ResourceType::Ssh, "10.9.0.1"))
            .await
            .expect("admitted");
        sessions.push(decision.session_id);
    }
    assert_eq!(holder(&survivor, "gw-drain").await.as_deref(), Some("a"));

    // Kubernetes takes a terminating pod out of the Service's endpoints (the preStop sleep orders it
    // before the signal), then sends SIGTERM.
    front.set_backends(vec![survivor.addr]);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    // A kill issued while the agent is moving between replicas.
    let during = kill(&survivor, &sessions[0]).await;

    tokio::time::timeout(Duration::from_secs(10), leaving)
        .await
        .expect("replica a drains within its grace period")
        .expect("the replica task")
        .expect("replica a stops cleanly");
    wait_acknowledged(&survivor, &during.id).await;
    eventually("the agent to hold its link on replica b", || async {
        (holder(&survivor, "gw-drain").await.as_deref() == Some("b")).then_some(())
    })
    .await;

    // And a kill after the hand-over reaches it too; the third session is untouched.
    let after = kill(&survivor, &sessions[1]).await;
    wait_acknowledged(&survivor, &after.id).await;
    let mut ended: Vec<String> = handler
        .terminated
        .lock()
        .unwrap()
        .iter()
        .map(|command| command.session_id.clone())
        .collect();
    ended.sort();
    ended.dedup();
    let mut expected = vec![sessions[0].clone(), sessions[1].clone()];
    expected.sort();
    assert_eq!(ended, expected);
    assert_eq!(agent.session_count(), 1);

    let mut client = survivor.sessions_client().await;
    let live = client
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .sessions;
    assert_eq!(
        live.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![sessions[2].clone()],
        "only the untouched session is live after the hand-over"
    );
    agent.shutdown().await;
}
