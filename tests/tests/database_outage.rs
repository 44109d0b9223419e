//! A kill acknowledged while PostgreSQL is down is recorded within about a second of its return:
//! the registry keeps the acknowledgement and retries writing the session's end (then reports it to
//! termination) itself, rather than leaving it to termination's re-send, `ack_timeout` later. On a
//! throwaway PostgreSQL the test crashes and starts again (the shared one must never stop).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use vigil_agent::{CommandResult, GatewayHandler};
use vigil_proto::v1 as pb;
use vigil_proto::v1::{EndReason, ResourceType, SessionStatus};
use vigil_runtime::bus::InProcessBus;
use vigil_runtime::database::DatabaseConfig;
use vigil_termination::TerminationSettings;
use vigil_testkit::{ThrowawayPostgres, eventually_within};
use vigil_tests::*;

/// A gateway that carries out a kill only once the test lets it.
struct GatedHandler {
    gate: Semaphore,
    received: std::sync::Mutex<Vec<String>>,
}

#[tonic::async_trait]
impl GatewayHandler for GatedHandler {
    async fn terminate(&self, command: &pb::TerminateCommand) -> CommandResult {
        self.received.lock().unwrap().push(command.session_id.clone());
        let _permit = self.gate.acquire().await;
        CommandResult::Done
    }
}

#[tokio::test]
async fn a_kill_acknowledged_during_a_database_outage_is_recorded_within_a_second_of_its_return() {
    init_logs();
    let postgres = ThrowawayPostgres::init("ack-outage");
    postgres.start();
    // An outage longer than the pool waits for a connection: each write fails while it lasts.
    let config = DatabaseConfig {
        url: postgres.url(),
        max_connections: 4,
        connect_timeout: Duration::from_secs(1),
        ..DatabaseConfig::default()
    };
    let registry = registry_on(&config).await;
    let handler = Arc::new(GatedHandler {
        gate: Semaphore::new(0),
        received: Default::default(),
    });
    let agent = vigil_agent::Agent::start(
        vigil_agent::AgentConfig::new(registry.url(), "gw-outage"),
        handler.clone(),
    );
    agent.wait_connected(PATIENCE).await.unwrap();
    let session = agent
        .open_session(start("ann", "db", ResourceType::Ssh, "10.9.0.1"))
        .await
        .unwrap()
        .session_id;

    let mut client = registry.termination_client().await;
    let kill = kill_one(&mut client, &session).await;
    eventually("the gateway to receive the kill", || {
        let received = handler.received.lock().unwrap().len();
        async move { (received == 1).then_some(()) }
    })
    .await;

    // The gateway answers while the database is down, and it stays down a while longer.
    postgres.crash();
    handler.gate.add_permits(1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    postgres.start();
    let back = Instant::now();

    let mut sessions = registry.sessions_client().await;
    eventually_within(
        Duration::from_secs(30),
        "the kill acknowledged and the session ended",
        || {
            let (mut client, mut sessions) = (client.clone(), sessions.clone());
            let (id, session) = (kill.id.clone(), session.clone());
            async move {
                let termination = client
                    .get_termination(pb::GetTerminationRequest { id })
                    .await
                    .ok()?
                    .into_inner();
                let ended = sessions
                    .get_session(pb::GetSessionRequest { id: session })
                    .await
                    .ok()?
                    .into_inner()
                    .status
                    == SessionStatus::Disconnected as i32;
                (termination.acknowledged == 1 && ended).then_some(())
            }
        },
    )
    .await;
    let took = back.elapsed();
    eprintln!("recorded {took:?} after the database came back");
    assert!(
        took < Duration::from_secs(3),
        "recorded only {took:?} after the database came back"
    );
    let ended = sessions
        .get_session(pb::GetSessionRequest { id: session })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ended.end_reason,
        EndReason::Admin as i32,
        "ended by the kill, with its reason"
    );
    agent.shutdown().await;
    registry.stop().await;
}

/// A registry on `config`'s database, with termination in process; termination's re-send comes
/// far too late to be what records an acknowledgement.
async fn registry_on(config: &DatabaseConfig) -> TestRegistry {
    let registry_store = vigil_registry::app::open_store(config, true).await.unwrap();
    let termination_store = vigil_termination::app::open_store(config, true).await.unwrap();
    let termination = TerminationSettings {
        ack_timeout: Duration::from_secs(60),
        ..TerminationSettings::default()
    };
    TestRegistry::start_with(
        test_settings("r1"),
        registry_store,
        Arc::new(InProcessBus::new()),
        Some((termination_store, termination)),
    )
    .await
}

/// Ends `session` by id, as an administrator.
async fn kill_one(
    client: &mut vigil_proto::v1::termination_service_client::TerminationServiceClient<tonic::transport::Channel>,
    session: &str,
) -> pb::Termination {
    client
        .terminate(pb::TerminateRequest {
            selector: Some(pb::SessionSelector {
                target: Some(pb::session_selector::Target::SessionIds(pb::SessionIds {
                    ids: vec![session.to_owned()],
                })),
            }),
            reason: EndReason::Admin as i32,
            ..Default::default()
        })
        .await
        .expect("terminate")
        .into_inner()
}
