//! Ending sessions end to end: Terminate → record → Redis → the replica holding the gateway's link
//! → the agent → acknowledgement → audit trail. Real PostgreSQL and Redis throughout.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tonic::Code;
use vigil_proto::v1 as pb;
use vigil_proto::v1::{EndReason, ResourceType, SessionStatus};
use vigil_runtime::bus::ControlBus;
use vigil_tests::*;

fn ids(ids: &[&str]) -> Option<pb::SessionSelector> {
    Some(pb::SessionSelector {
        target: Some(pb::session_selector::Target::SessionIds(pb::SessionIds {
            ids: ids.iter().map(|id| id.to_string()).collect(),
        })),
    })
}

fn target(target: pb::session_selector::Target) -> Option<pb::SessionSelector> {
    Some(pb::SessionSelector { target: Some(target) })
}

fn all_sessions(idle_only: bool) -> Option<pb::SessionSelector> {
    target(pb::session_selector::Target::All(pb::AllSessions { idle_only }))
}

fn admin(selector: Option<pb::SessionSelector>) -> pb::TerminateRequest {
    pb::TerminateRequest {
        selector,
        reason: EndReason::Admin as i32,
        ..Default::default()
    }
}

/// Waits until every command of the termination is acknowledged, and returns it.
async fn acknowledged(registry: &TestRegistry, termination_id: &str) -> pb::Termination {
    let client = registry.termination_client().await;
    eventually("every command to be acknowledged", || {
        let mut client = client.clone();
        let id = termination_id.to_owned();
        async move {
            let termination = client
                .get_termination(pb::GetTerminationRequest { id })
                .await
                .ok()?
                .into_inner();
            (termination.acknowledged + termination.already_ended == termination.session_count).then_some(termination)
        }
    })
    .await
}

fn terminated_ids(handler: &RecordingHandler) -> Vec<String> {
    let mut ids: Vec<_> = handler
        .terminated
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.session_id.clone())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn ending_one_session_reaches_its_agent_shows_the_message_and_is_audited() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::with_termination(&schema, &unique_namespace(), test_settings("r1")).await;
    let handler = Arc::new(RecordingHandler::default());
    let agent = registry.agent("gw-one", handler.clone()).await;
    let mut sessions = Vec::new();
    for user in ["ann", "ben", "cat"] {
        sessions.push(
            agent
                .open_session(start(user, "db", ResourceType::Ssh, "10.9.0.1"))
                .await
                .unwrap()
                .session_id,
        );
    }

    let mut client = registry.termination_client().await;
    let request = pb::TerminateRequest {
        user_message: "Disconnected for maintenance".into(),
        note: "ticket OPS-42".into(),
        ..admin(ids(&[&sessions[1]]))
    };
    let termination = client.terminate(request).await.expect("terminate").into_inner();
    assert_eq!(termination.session_count, 1);
    assert!(
        termination.actor.starts_with("anonymous@127.0.0.1"),
        "{}",
        termination.actor
    );

    let done = acknowledged(&registry, &termination.id).await;
    assert_eq!(done.acknowledged, 1);
    assert_eq!(done.commands[0].state, pb::DeliveryState::Acknowledged as i32);
    assert!(done.commands[0].acknowledged_at.is_some());
    // Exactly the right session, with the message the admin wrote.
    let received = handler.terminated.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].session_id, sessions[1]);
    assert_eq!(received[0].user_message, "Disconnected for maintenance");
    assert_eq!(received[0].reason, EndReason::Admin as i32);
    assert_eq!(agent.session_count(), 2);

    let mut sessions_client = registry.sessions_client().await;
    let ended = eventually("the session to be disconnected", || {
        let mut client = sessions_client.clone();
        let id = sessions[1].clone();
        async move {
            let s = client
                .get_session(pb::GetSessionRequest { id })
                .await
                .ok()?
                .into_inner();
            (s.status == SessionStatus::Disconnected as i32).then_some(s)
        }
    })
    .await;
    assert_eq!(ended.end_reason, EndReason::Admin as i32);
    let live = sessions_client
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(live.total_size, 2);

    let trail = client
        .list_terminations(pb::ListTerminationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(trail.terminations.len(), 1);
    let record = &trail.terminations[0];
    assert_eq!(
        (record.reason, record.note.as_str(), record.acknowledged),
        (EndReason::Admin as i32, "ticket OPS-42", 1)
    );
    assert_eq!(record.actor, termination.actor);
    registry.stop().await;
}

#[tokio::test]
async fn ending_a_users_sessions_reaches_every_gateway_and_spares_the_others() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::with_termination(&schema, &unique_namespace(), test_settings("r1")).await;
    let (fra_handler, nyc_handler) = (
        Arc::new(RecordingHandler::default()),
        Arc::new(RecordingHandler::default()),
    );
    let fra = registry.agent("gw-fra", fra_handler.clone()).await;
    let nyc = registry.agent("gw-nyc", nyc_handler.clone()).await;
    let alice_fra = fra
        .open_session(start("alice", "db", ResourceType::Ssh, "10.9.1.1"))
        .await
        .unwrap()
        .session_id;
    let alice_nyc = nyc
        .open_session(start("alice", "crm", ResourceType::Web, "10.9.1.2"))
        .await
        .unwrap()
        .session_id;
    fra.open_session(start("bob", "db", ResourceType::Ssh, "10.9.1.3"))
        .await
        .unwrap();

    let mut client = registry.termination_client().await;
    let termination = client
        .terminate(admin(target(pb::session_selector::Target::User("alice".into()))))
        .await
        .expect("terminate")
        .into_inner();
    assert_eq!(termination.session_count, 2);
    acknowledged(&registry, &termination.id).await;
    assert_eq!(terminated_ids(&fra_handler), vec![alice_fra]);
    assert_eq!(terminated_ids(&nyc_handler), vec![alice_nyc]);
    assert_eq!(fra.session_count() + nyc.session_count(), 1, "bob's session stays");
    registry.stop().await;
}

#[tokio::test]
async fn ending_all_and_all_idle() {
    init_logs();
    let schema = TestSchema::new().await;
    let settings = vigil_registry::RegistrySettings {
        idle_after: Duration::from_millis(700),
        ..test_settings("r1")
    };
    let registry = TestRegistry::with_termination(&schema, &unique_namespace(), settings).await;
    let handler = Arc::new(RecordingHandler::default());
    let agent = registry.agent("gw-all", handler.clone()).await;
    let busy = agent
        .open_session(start("busy", "db", ResourceType::Ssh, "10.9.2.1"))
        .await
        .unwrap()
        .session_id;
    let quiet = agent
        .open_session(start("quiet", "db", ResourceType::Rdp, "10.9.2.2"))
        .await
        .unwrap()
        .session_id;

    // Keep "busy" typing while "quiet" turns idle.
    let mut sessions = registry.sessions_client().await;
    eventually("the quiet session to turn idle", || {
        agent.record_activity(&busy, Some(SystemTime::now()), 1, 1);
        let mut client = sessions.clone();
        let id = quiet.clone();
        async move {
            let s = client
                .get_session(pb::GetSessionRequest { id })
                .await
                .ok()?
                .into_inner();
            (s.status == SessionStatus::Idle as i32).then_some(())
        }
    })
    .await;
    agent.record_activity(&busy, Some(SystemTime::now()), 2, 2);
    let busy_status = sessions
        .get_session(pb::GetSessionRequest { id: busy.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(busy_status.status, SessionStatus::Active as i32);

    let mut client = registry.termination_client().await;
    let idle_only = pb::TerminateRequest {
        reason: EndReason::IdleTimeout as i32,
        ..admin(all_sessions(true))
    };
    let termination = client.terminate(idle_only).await.expect("terminate idle").into_inner();
    assert_eq!(termination.session_count, 1);
    acknowledged(&registry, &termination.id).await;
    assert_eq!(terminated_ids(&handler), vec![quiet.clone()]);
    let received = handler.terminated.lock().unwrap()[0].clone();
    assert!(
        received.user_message.contains("inactivity"),
        "default message per reason: {}",
        received.user_message
    );

    let all = client
        .terminate(admin(all_sessions(false)))
        .await
        .expect("terminate all")
        .into_inner();
    assert_eq!(all.session_count, 1);
    acknowledged(&registry, &all.id).await;
    assert_eq!(agent.session_count(), 0);
    let live = sessions
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(live.total_size, 0);
    registry.stop().await;
}

#[tokio::test]
async fn a_gateway_offline_at_kill_time_gets_the_command_first_thing_on_reconnect() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::with_termination(&schema, &unique_namespace(), test_settings("r1")).await;

    // The gateway registers two sessions through its snapshot, then goes away.
    let (kept, killed) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
    let snapshot = || {
        vec![
            pb::SnapshotSession {
                session_id: kept.clone(),
                start: Some(start("kim", "db", ResourceType::Ssh, "10.9.3.1")),
                ..Default::default()
            },
            pb::SnapshotSession {
                session_id: killed.clone(),
                start: Some(start("lee", "db", ResourceType::Ssh, "10.9.3.2")),
                ..Default::default()
            },
        ]
    };
    let link = RawLink::open(&registry, "gw-away", snapshot()).await.expect("hello");
    drop(link);
    let mut gateways = registry.sessions_client().await;
    eventually("the gateway to be offline", || {
        let mut client = gateways.clone();
        async move {
            let list = client
                .list_gateways(pb::ListGatewaysRequest::default())
                .await
                .ok()?
                .into_inner();
            (!list.gateways[0].connected).then_some(())
        }
    })
    .await;

    let mut client = registry.termination_client().await;
    let termination = client
        .terminate(admin(ids(&[&killed])))
        .await
        .expect("terminate")
        .into_inner();
    assert_eq!(termination.session_count, 1);

    // Back online: the kill is the first thing after the welcome.
    let mut link = RawLink::open(&registry, "gw-away", snapshot()).await.expect("hello");
    let command = match link.next().await {
        Some(pb::controller_message::Message::Terminate(command)) => command,
        other => panic!("expected the pending kill first, got {other:?}"),
    };
    assert_eq!(command.session_id, killed);
    link.send(pb::agent_message::Message::CommandAck(pb::CommandAck {
        command_id: command.command_id.clone(),
        session_id: killed.clone(),
        outcome: pb::CommandOutcome::Done as i32,
        detail: String::new(),
    }))
    .await;
    let done = acknowledged(&registry, &termination.id).await;
    assert_eq!(done.commands[0].state, pb::DeliveryState::Acknowledged as i32);
    let session = gateways
        .get_session(pb::GetSessionRequest { id: killed })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (session.status, session.end_reason),
        (SessionStatus::Disconnected as i32, EndReason::Admin as i32)
    );
    let kept = gateways
        .get_session(pb::GetSessionRequest { id: kept })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept.status, SessionStatus::Active as i32);
    registry.stop().await;
}

#[tokio::test]
async fn a_kill_issued_on_one_replica_reaches_an_agent_on_another() {
    init_logs();
    let schema = TestSchema::new().await;
    let namespace = unique_namespace();
    // Replica A serves termination; replica B only holds the agent's link and reports over gRPC.
    let replica_a = TestRegistry::with_termination(&schema, &namespace, test_settings("replica-a")).await;
    let replica_b = TestRegistry::on_postgres(&schema, &namespace, test_settings("replica-b")).await;
    let journal = vigil_clients::GrpcCommandJournal::connect_lazy(&replica_a.url()).expect("journal");
    replica_b.registry.attach_command_journal(Arc::new(journal));

    let handler = Arc::new(RecordingHandler::default());
    let agent = replica_b.agent("gw-b", handler.clone()).await;
    let session = agent
        .open_session(start("mia", "db", ResourceType::Ssh, "10.9.4.1"))
        .await
        .unwrap()
        .session_id;

    let mut client = replica_a.termination_client().await;
    let termination = client
        .terminate(admin(ids(&[&session])))
        .await
        .expect("terminate")
        .into_inner();
    let done = acknowledged(&replica_a, &termination.id).await;
    assert_eq!(done.acknowledged, 1);
    assert_eq!(terminated_ids(&handler), vec![session]);
    replica_a.stop().await;
    replica_b.stop().await;
}

#[tokio::test]
async fn a_redis_restart_loses_no_kill() {
    init_logs();
    let mut redis = ThrowawayRedis::start().await;
    let schema = TestSchema::new().await;
    let namespace = unique_namespace();
    let bus = redis_bus_at(&redis.url(), &namespace).await;
    let termination_store: Arc<dyn vigil_termination::store::TerminationStore> = schema.termination_store().await;
    let registry = TestRegistry::start_with(
        test_settings("r1"),
        schema.store().await,
        bus.clone(),
        Some((termination_store, fast_termination())),
    )
    .await;
    let handler = Arc::new(RecordingHandler::default());
    let agent = registry.agent("gw-redis", handler.clone()).await;
    let session = agent
        .open_session(start("nia", "db", ResourceType::Ssh, "10.9.5.1"))
        .await
        .unwrap()
        .session_id;

    // Past the link's one catch-up read of pending kills after it opens (500 ms), so that only the bus
    // could carry this kill while Redis is down.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    redis.stop().await;
    eventually("the bus to notice Redis is gone", || async {
        (!bus.is_connected()).then_some(())
    })
    .await;
    let mut client = registry.termination_client().await;
    // Recorded even though it cannot be published now.
    let termination = client
        .terminate(admin(ids(&[&session])))
        .await
        .expect("terminate")
        .into_inner();
    assert_eq!(termination.session_count, 1);
    assert!(handler.terminated.lock().unwrap().is_empty());

    // Nothing reached the gateway while Redis was down (asserted above); once it is back, the kill
    // arrives and is acknowledged. Either of two paths may carry it, and which one wins is a race:
    // termination's re-send when the command falls due, or the registry's own catch-up read of
    // pending kills when its bus subscription comes back.
    redis.restart().await;
    let done = acknowledged(&registry, &termination.id).await;
    assert_eq!(done.acknowledged, 1);
    assert_eq!(terminated_ids(&handler), vec![session]);
    registry.stop().await;
}

/// Requests refused before anything is done, with the code and words of their answer.
fn bad_requests(session: &str) -> Vec<(pb::TerminateRequest, Code, &'static str)> {
    vec![
        (admin(None), Code::InvalidArgument, "selector must name"),
        (admin(ids(&[])), Code::InvalidArgument, "at least one"),
        (admin(ids(&["nope"])), Code::InvalidArgument, "is not a session id"),
        (
            admin(ids(&["6f9619ff-8b86-d011-b42d-00c04fc964ff"])),
            Code::NotFound,
            "6f9619ff-8b86-d011-b42d-00c04fc964ff",
        ),
        (
            admin(target(pb::session_selector::Target::User("nobody@acme.example".into()))),
            Code::NotFound,
            "nobody@acme.example",
        ),
        (
            admin(target(pb::session_selector::Target::GatewayId("gw-unknown".into()))),
            Code::NotFound,
            "gw-unknown",
        ),
        (
            pb::TerminateRequest {
                reason: 0,
                ..admin(ids(&[session]))
            },
            Code::InvalidArgument,
            "reason is required",
        ),
        (
            pb::TerminateRequest {
                reason: 77,
                ..admin(ids(&[session]))
            },
            Code::InvalidArgument,
            "77 is not a known end reason",
        ),
        (
            pb::TerminateRequest {
                expected_count: Some(5),
                ..admin(ids(&[session]))
            },
            Code::FailedPrecondition,
            "not the 5 expected",
        ),
        (
            pb::TerminateRequest {
                user_message: "x".repeat(2000),
                ..admin(ids(&[session]))
            },
            Code::InvalidArgument,
            "user_message",
        ),
    ]
}

#[tokio::test]
async fn bad_selectors_and_repeated_kills_get_precise_answers() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::with_termination(&schema, &unique_namespace(), test_settings("r1")).await;
    let handler = Arc::new(RecordingHandler::default());
    let agent = registry.agent("gw-bad", handler.clone()).await;
    let session = agent
        .open_session(start("ola", "db", ResourceType::Ssh, "10.9.6.1"))
        .await
        .unwrap()
        .session_id;
    let mut client = registry.termination_client().await;

    let cases = bad_requests(&session);
    for (request, code, words) in cases {
        let status = client.terminate(request).await.expect_err("must fail");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(
            status.message().contains(words),
            "{:?} should say {words:?}",
            status.message()
        );
    }
    let trail = client
        .list_terminations(pb::ListTerminationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(trail.terminations.is_empty(), "refused requests recorded nothing");
    let status = client
        .get_termination(pb::GetTerminationRequest { id: "x".into() })
        .await
        .expect_err("bad id");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client
        .get_termination(pb::GetTerminationRequest {
            id: "6f9619ff-8b86-d011-b42d-00c04fc964ff".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);

    // The same kill twice ends the session once; killing an ended session says so, without error.
    let first = client
        .terminate(admin(ids(&[&session])))
        .await
        .expect("first")
        .into_inner();
    let second = client
        .terminate(admin(ids(&[&session])))
        .await
        .expect("second")
        .into_inner();
    acknowledged(&registry, &first.id).await;
    assert_eq!(second.session_count, 1);
    assert_eq!(
        second.already_ended + second.pending + second.delivered + second.acknowledged,
        1
    );
    let third = client
        .terminate(admin(ids(&[&session])))
        .await
        .expect("third")
        .into_inner();
    assert_eq!(third.already_ended, 1, "{third:?}");
    assert_eq!(third.commands[0].state, pb::DeliveryState::AlreadyEnded as i32);
    tokio::time::sleep(Duration::from_millis(500)).await; // let any duplicate delivery surface
    assert_eq!(
        handler.terminated.lock().unwrap().len(),
        1,
        "the gateway ended the session once"
    );
    registry.stop().await;
}

/// Termination publishes a kill while it records it, so the agents' answers race the record. Every
/// command must still be acknowledged at once (not after the 5 s ack timeout and a re-send).
#[tokio::test]
async fn an_end_all_is_acknowledged_within_two_seconds_however_the_answers_race_the_record() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::with_termination(&schema, &unique_namespace(), test_settings("r1")).await;
    let mut agents = Vec::new();
    for gateway in 0..3 {
        let agent = registry
            .agent(&format!("gw-race-{gateway}"), Arc::new(RecordingHandler::default()))
            .await;
        for session in 0..30 {
            agent
                .open_session(start(
                    &format!("user-{gateway}-{session}"),
                    "db",
                    ResourceType::Ssh,
                    &format!("10.7.{gateway}.{}", session + 1),
                ))
                .await
                .unwrap();
        }
        agents.push(agent);
    }
    let mut client = registry.termination_client().await;
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        if round > 0 {
            for agent in &agents {
                agent
                    .open_session(start(&format!("late-{round}"), "db", ResourceType::Ssh, "10.7.9.1"))
                    .await
                    .unwrap();
            }
        }
        let issued = std::time::Instant::now();
        let all = client
            .terminate(admin(target(pb::session_selector::Target::All(pb::AllSessions {
                idle_only: false,
            }))))
            .await
            .expect("terminate all")
            .into_inner();
        acknowledged(&registry, &all.id).await;
        let took = issued.elapsed();
        slowest = slowest.max(took);
        eprintln!("round {round}: {} sessions acknowledged in {took:?}", all.session_count);
        assert!(
            took < Duration::from_secs(2),
            "round {round}: acknowledged after {took:?}"
        );
    }
    eprintln!("slowest end-all: {slowest:?}");
    for agent in &agents {
        assert_eq!(agent.session_count(), 0);
    }
    registry.stop().await;
}

/// Opens one session on a new agent and waits until termination's in-memory route knows it.
async fn routed_session(
    registry: &TestRegistry,
    gateway: &str,
    handler: Arc<RecordingHandler>,
) -> (vigil_agent::Agent, String) {
    let agent = registry.agent(gateway, handler).await;
    let session = agent
        .open_session(start("ann", "db", ResourceType::Ssh, "10.9.0.1"))
        .await
        .unwrap()
        .session_id;
    let routes = registry.terminator.as_ref().expect("termination").routes().clone();
    let id = session.clone();
    eventually("termination's route to know the session", || {
        let found = routes.lookup(std::slice::from_ref(&id)).is_some();
        async move { found.then_some(()) }
    })
    .await;
    (agent, session)
}

/// A single-session kill needs no database before its command is out: with the registry's and
/// termination's tables locked, the agent still gets the command, and `Terminate` answers once the
/// record can be written.
#[tokio::test]
async fn a_kill_reaches_its_agent_while_the_database_is_held() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::with_termination(&schema, &unique_namespace(), test_settings("r1")).await;
    let handler = Arc::new(RecordingHandler::default());
    let (_agent, session) = routed_session(&registry, "gw-held", handler.clone()).await;

    let database = vigil_runtime::database::connect(&schema.config).await.unwrap();
    let hold = database.begin().await.unwrap();
    hold.execute_unprepared("LOCK TABLE sessions, terminations, termination_commands IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let mut client = registry.termination_client().await;
    let kill = tokio::spawn(async move { client.terminate(admin(ids(&[&session]))).await });
    eventually("the agent to get the command", || {
        let received = terminated_ids(&handler).len();
        async move { (received == 1).then_some(()) }
    })
    .await;
    assert!(!kill.is_finished(), "Terminate answers only once the kill is recorded");
    hold.rollback().await.unwrap();
    let termination = kill.await.unwrap().expect("terminate").into_inner();
    assert_eq!((termination.session_count, termination.already_ended), (1, 0));
    let done = acknowledged(&registry, &termination.id).await;
    assert_eq!(done.commands[0].state, pb::DeliveryState::Acknowledged as i32);
    registry.stop().await;
}

/// A route that still lists a session after it ended (its end announced late, or the announcement
/// lost) sends the command all the same: the gateway answers NOT_FOUND, and the command is recorded
/// as answered so, not left pending.
#[tokio::test]
async fn a_kill_sent_by_a_stale_route_is_answered_not_found_and_recorded() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::with_termination(&schema, &unique_namespace(), test_settings("r1")).await;
    let handler = Arc::new(RecordingHandler::default());
    let (agent, session) = routed_session(&registry, "gw-stale", handler.clone()).await;
    agent.close_session(&session, EndReason::UserClosed, "logged out").await;
    let routes = registry.terminator.as_ref().unwrap().routes().clone();
    let id = session.clone();
    eventually("the route to drop the ended session", || {
        let gone = routes.lookup(std::slice::from_ref(&id)).is_none();
        async move { gone.then_some(()) }
    })
    .await;
    // Stale on purpose: the session as it was when it opened.
    routes.apply(&pb::SessionEvent {
        kind: pb::SessionEventKind::Opened as i32,
        session: Some(pb::Session {
            id: session.clone(),
            user: "ann".into(),
            gateway_id: "gw-stale".into(),
            status: SessionStatus::Active as i32,
            ..Default::default()
        }),
        ..Default::default()
    });

    let mut client = registry.termination_client().await;
    let termination = client.terminate(admin(ids(&[&session]))).await.unwrap().into_inner();
    assert_eq!(termination.commands[0].state, pb::DeliveryState::Pending as i32);
    let done = acknowledged(&registry, &termination.id).await;
    assert_eq!(done.commands[0].state, pb::DeliveryState::Acknowledged as i32);
    assert_eq!(done.commands[0].detail, vigil_termination::service::NOT_HELD);
    assert!(terminated_ids(&handler).is_empty(), "nothing was ended twice");
    registry.stop().await;
}
