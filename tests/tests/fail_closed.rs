//! Locks pushed to gateways, agents that lose the registry, and gateways the registry loses — on real
//! PostgreSQL and Redis.
//!
//! - A replica follows the lock set policy publishes on the bus ("locks") and pushes it to every
//!   link: right after the welcome, and again on every change (never an older set after a newer one,
//!   never an expired lock).
//! - An agent refuses a locked user from the set it holds, also while the registry is down.
//! - Strict fail mode ends the gateway's sessions once the link has been down for the grace period;
//!   best effort keeps them.
//! - A gateway silent past the registry's grace period has its sessions ended (GATEWAY_LOST); when it
//!   comes back, its snapshot brings back exactly what it still holds.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use prost::Message;
use tokio_util::sync::CancellationToken;
use vigil_agent::{Agent, AgentConfig, AgentError, FailMode};
use vigil_core::topics;
use vigil_proto::v1::{self as pb, EndReason, ResourceType, SessionStatus};
use vigil_registry::RegistrySettings;
use vigil_runtime::bus::ControlBus;
use vigil_tests::*;

fn user_lock(id: &str, user: &str, message: &str) -> pb::Lock {
    pb::Lock {
        id: id.into(),
        target: Some(pb::LockTarget {
            target: Some(pb::lock_target::Target::User(user.into())),
        }),
        message: message.into(),
        created_by: "admin@acme.example".into(),
        reason: "test".into(),
        ..Default::default()
    }
}

fn network_lock(id: &str, cidr: &str, message: &str) -> pb::Lock {
    pb::Lock {
        id: id.into(),
        target: Some(pb::LockTarget {
            target: Some(pb::lock_target::Target::Cidr(cidr.into())),
        }),
        message: message.into(),
        ..Default::default()
    }
}

/// Publishes a lock set as policy does: the whole set, encoded, on the "locks" channel.
async fn publish_locks(bus: &dyn ControlBus, locks: Vec<pb::Lock>, version: u64) {
    let update = pb::LockUpdate { locks, version };
    bus.publish(topics::LOCKS, update.encode_to_vec().into())
        .await
        .expect("publish the lock set");
}

async fn get_session(registry: &TestRegistry, id: &str) -> pb::Session {
    registry
        .sessions_client()
        .await
        .get_session(pb::GetSessionRequest { id: id.into() })
        .await
        .expect("get session")
        .into_inner()
}

fn held(user: &str) -> pb::SnapshotSession {
    pb::SnapshotSession {
        session_id: uuid::Uuid::new_v4().to_string(),
        start: Some(start(user, "prod-db-01", ResourceType::Ssh, "10.8.0.7")),
        ..Default::default()
    }
}

/// The next message on a raw link, which must be a lock update.
async fn next_lock_update(link: &mut RawLink) -> pb::LockUpdate {
    match link.next().await {
        Some(pb::controller_message::Message::LockUpdate(update)) => update,
        other => panic!("expected a lock update, got {other:?}"),
    }
}

fn lock_ids(update: &pb::LockUpdate) -> Vec<&str> {
    update.locks.iter().map(|lock| lock.id.as_str()).collect()
}

/// An agent that reconnects quickly, in the given fail mode.
async fn agent_in(
    registry: &TestRegistry,
    gateway_id: &str,
    mode: FailMode,
    grace: Duration,
) -> (Agent, Arc<RecordingHandler>) {
    let handler = Arc::new(RecordingHandler::default());
    let agent = Agent::start(
        AgentConfig {
            fail_mode: mode,
            link_grace: grace,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            ..AgentConfig::new(registry.url(), gateway_id)
        },
        handler.clone(),
    );
    agent.wait_connected(PATIENCE).await.expect("agent connects");
    (agent, handler)
}

async fn open(agent: &Agent, user: &str) -> String {
    let admission = agent
        .open_session(start(user, "prod-db-01", ResourceType::Ssh, "10.8.0.9"))
        .await
        .expect("admission");
    assert!(admission.allowed, "{admission:?}");
    admission.session_id
}

#[tokio::test]
async fn a_new_link_gets_the_lock_set_after_the_welcome_and_every_replica_pushes_changes() {
    init_logs();
    let schema = TestSchema::new().await;
    let namespace = unique_namespace();
    let replica_a = TestRegistry::on_postgres(&schema, &namespace, test_settings("replica-a")).await;
    let replica_b = TestRegistry::on_postgres(&schema, &namespace, test_settings("replica-b")).await;
    let policy_bus = redis_bus(&namespace).await;

    // Policy publishes a set; both replicas follow it.
    publish_locks(
        &*policy_bus,
        vec![user_lock("l-1", "mallory", "Your account is under review")],
        1,
    )
    .await;
    for replica in [&replica_a, &replica_b] {
        eventually("the replica knows the lock set", || async {
            replica.registry.locks().filter(|set| set.version == 1).map(drop)
        })
        .await;
    }

    // A new link, on either replica, gets the set right after its welcome.
    let mut link_a = RawLink::open(&replica_a, "gw-a", vec![]).await.expect("hello");
    let mut link_b = RawLink::open(&replica_b, "gw-b", vec![]).await.expect("hello");
    for link in [&mut link_a, &mut link_b] {
        let update = next_lock_update(link).await;
        assert_eq!((lock_ids(&update), update.version), (vec!["l-1"], 1));
        assert_eq!(update.locks[0].message, "Your account is under review");
    }
    let agent = replica_a.agent("gw-sdk", Arc::default()).await;
    eventually("the agent holds the lock set", || async {
        (agent.locks().len() == 1).then_some(())
    })
    .await;

    // A change reaches every connected link, without the locks that have already expired.
    let mut expired = user_lock("l-expired", "eve", "gone");
    expired.expires_at = Some((SystemTime::now() - Duration::from_secs(5)).into());
    let v3 = vec![
        user_lock("l-1", "mallory", "Your account is under review"),
        network_lock("l-net", "198.51.100.0/24", "This network is blocked"),
        expired,
    ];
    publish_locks(&*policy_bus, v3, 3).await;
    // A late, older set, then a newer one that removes every lock: the older one is never pushed.
    publish_locks(&*policy_bus, vec![user_lock("l-old", "bob", "old")], 2).await;
    publish_locks(&*policy_bus, vec![], 4).await;
    for link in [&mut link_a, &mut link_b] {
        let update = next_lock_update(link).await;
        assert_eq!((lock_ids(&update), update.version), (vec!["l-1", "l-net"], 3));
        let update = next_lock_update(link).await;
        assert_eq!((update.locks.len(), update.version), (0, 4));
    }
    eventually("the agent's locks are gone", || async {
        agent.locks().is_empty().then_some(())
    })
    .await;

    agent.shutdown().await;
    replica_a.stop().await;
    replica_b.stop().await;
}

#[tokio::test]
async fn an_agent_refuses_a_locked_user_from_its_pushed_set_while_the_registry_is_down() {
    init_logs();
    let schema = TestSchema::new().await;
    let namespace = unique_namespace();
    let registry = TestRegistry::on_postgres(&schema, &namespace, test_settings("r1")).await;
    let (agent, _handler) = agent_in(&registry, "gw-locks", FailMode::BestEffort, Duration::from_secs(30)).await;
    let kept = open(&agent, "alice").await;

    let policy_bus = redis_bus(&namespace).await;
    publish_locks(
        &*policy_bus,
        vec![
            user_lock(
                "l-1",
                "mallory",
                "Your account is under review; contact security@acme.example",
            ),
            network_lock("l-net", "203.0.113.0/24", "Connections from this network are blocked"),
        ],
        1,
    )
    .await;
    eventually("the agent holds the pushed locks", || async {
        (agent.locks().len() == 2).then_some(())
    })
    .await;

    // The registry goes away.
    registry.stop().await;
    eventually("the link is down", || async { (!agent.is_connected()).then_some(()) }).await;

    // A locked user is refused by the agent itself, with the lock's message.
    let refused = agent
        .open_session(start("mallory", "prod-db-01", ResourceType::Ssh, "10.8.0.10"))
        .await
        .expect("a local decision");
    assert!(!refused.allowed);
    assert_eq!(
        refused.reason,
        "Your account is under review; contact security@acme.example"
    );
    assert_eq!(refused.lock.map(|lock| lock.id), Some("l-1".to_owned()));
    let refused = agent
        .open_session(start("bob", "prod-db-01", ResourceType::Rdp, "203.0.113.99"))
        .await
        .expect("a local decision");
    assert_eq!(
        (refused.allowed, refused.reason.as_str()),
        (false, "Connections from this network are blocked")
    );
    // Anyone else needs the registry: best effort refuses to guess.
    assert!(matches!(
        agent
            .open_session(start("bob", "prod-db-01", ResourceType::Ssh, "10.8.0.11"))
            .await,
        Err(AgentError::Unavailable)
    ));
    // And the session already open runs on.
    assert_eq!(
        agent
            .sessions()
            .iter()
            .map(|s| s.session_id.clone())
            .collect::<Vec<_>>(),
        [kept]
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn strict_mode_ends_sessions_after_the_grace_period_and_best_effort_does_not() {
    init_logs();
    let schema = TestSchema::new().await;
    let namespace = unique_namespace();
    let settings = test_settings("r1");
    let registry = TestRegistry::on_postgres(&schema, &namespace, settings.clone()).await;
    let addr = registry.addr;
    let grace = Duration::from_millis(300);
    let (strict, strict_handler) = agent_in(&registry, "gw-strict", FailMode::Strict, grace).await;
    let (lenient, lenient_handler) = agent_in(&registry, "gw-lenient", FailMode::BestEffort, grace).await;
    let strict_sessions = [open(&strict, "alice").await, open(&strict, "bob").await];
    let lenient_session = open(&lenient, "carol").await;

    // Both lose the registry at the same moment.
    let lost_at = Instant::now();
    registry.stop().await;
    eventually("strict mode ends every session", || async {
        (strict_handler.terminated.lock().expect("lock").len() == 2 && strict.session_count() == 0).then_some(())
    })
    .await;
    assert!(lost_at.elapsed() >= grace, "ended after {:?}", lost_at.elapsed());
    let mut ended: Vec<String> = Vec::new();
    for command in strict_handler.terminated.lock().expect("lock").iter() {
        assert_eq!(command.reason, EndReason::GatewayLost as i32);
        assert!(!command.user_message.is_empty());
        ended.push(command.session_id.clone());
    }
    ended.sort();
    let mut expected = strict_sessions.to_vec();
    expected.sort();
    assert_eq!(ended, expected);
    assert!(strict.is_failed_closed());
    assert!(matches!(
        strict
            .open_session(start("dave", "prod-db-01", ResourceType::Ssh, "10.8.0.12"))
            .await,
        Err(AgentError::FailedClosed { .. })
    ));
    // Best effort has been down just as long (past its grace period too): it keeps its session.
    assert!(lenient_handler.terminated.lock().expect("lock").is_empty());
    assert_eq!(lenient.session_count(), 1);
    assert!(!lenient.is_failed_closed());

    // The registry comes back where the agents look for it: both reconnect and reconcile.
    let registry = TestRegistry::start_at(addr, settings, schema.store().await, redis_bus(&namespace).await).await;
    eventually("both agents are back", || async {
        (strict.is_connected() && lenient.is_connected()).then_some(())
    })
    .await;
    for session_id in &strict_sessions {
        let session = eventually("the strict end is recorded", || async {
            let session = get_session(&registry, session_id).await;
            (session.status == SessionStatus::Disconnected as i32).then_some(session)
        })
        .await;
        assert_eq!(session.end_reason, EndReason::GatewayLost as i32);
        assert!(
            session.end_detail.contains("strict fail mode"),
            "{}",
            session.end_detail
        );
    }
    let kept = get_session(&registry, &lenient_session).await;
    assert_eq!(kept.status, SessionStatus::Active as i32);
    // The link is back: strict mode admits again.
    assert!(!strict.is_failed_closed());
    open(&strict, "dave").await;

    strict.shutdown().await;
    lenient.shutdown().await;
    registry.stop().await;
}

/// Settings with a short gateway grace period (and heartbeats often enough for it).
fn short_grace(replica: &str) -> RegistrySettings {
    RegistrySettings {
        gateway_grace: Duration::from_secs(1),
        agent_heartbeat_interval: Duration::from_millis(100),
        ..test_settings(replica)
    }
}

#[tokio::test]
async fn a_silent_gateway_has_its_sessions_ended_and_comes_back_consistent() {
    init_logs();
    let schema = TestSchema::new().await;
    let namespace = unique_namespace();
    let replica_a = TestRegistry::on_postgres(&schema, &namespace, short_grace("replica-a")).await;
    let replica_b = TestRegistry::on_postgres(&schema, &namespace, short_grace("replica-b")).await;
    let mut watcher = watch_gateway(&replica_b, "gw-silent").await;

    // A healthy gateway on replica B (its agent heartbeats) linked before the silent one.
    let healthy = replica_b.agent("gw-healthy", Arc::default()).await;
    let healthy_session = open(&healthy, "hank").await;

    // A gateway on replica A says hello with three sessions, then nothing more, holding the stream open.
    let snapshot = vec![held("ann"), held("ben"), held("cat")];
    let hello_at = Instant::now();
    let silent = RawLink::open(&replica_a, "gw-silent", snapshot.clone())
        .await
        .expect("hello");
    assert_eq!(silent.welcome.registered_session_ids.len(), 3);
    let (_, silent_outbound, mut silent_inbound) = silent.into_parts();

    // Past the grace period, replica A closes the silent link, asking the agent to reconnect.
    expect_reconnect(&mut silent_inbound).await;
    assert!(
        hello_at.elapsed() >= Duration::from_secs(1),
        "after {:?}",
        hello_at.elapsed()
    );

    // Its sessions end as lost, and watchers (on the other replica) are told.
    let mut ended = lost_sessions(&mut watcher, 3).await;
    ended.sort();
    let mut expected: Vec<String> = snapshot.iter().map(|s| s.session_id.clone()).collect();
    expected.sort();
    assert_eq!(ended, expected);
    for session_id in &expected {
        let session = get_session(&replica_a, session_id).await;
        assert_eq!(
            (session.status, session.end_reason),
            (SessionStatus::Disconnected as i32, EndReason::GatewayLost as i32)
        );
    }
    // The healthy gateway, linked for longer than the silent one, was heard from all along: its
    // session is live, on both replicas' view of the database.
    assert_eq!(
        get_session(&replica_a, &healthy_session).await.status,
        SessionStatus::Active as i32
    );
    only_the_silent_gateway_is_disconnected(&replica_a).await;
    drop(silent_outbound);

    // The gateway comes back, on the other replica, still holding two of the three: those are live
    // again, the third stays ended.
    let still_held = vec![snapshot[0].clone(), snapshot[1].clone()];
    let back = RawLink::open(&replica_b, "gw-silent", still_held.clone())
        .await
        .expect("hello");
    assert!(back.welcome.ended_session_ids.is_empty(), "{:?}", back.welcome);
    assert!(back.welcome.registered_session_ids.is_empty(), "{:?}", back.welcome);
    let (_, back_outbound, _back_inbound) = back.into_parts();
    // It keeps talking this time.
    let talking = keep_talking(back_outbound);
    let live = live_sessions_of(&replica_b, "gw-silent").await;
    let mut live_ids: Vec<String> = live.sessions.iter().map(|s| s.id.clone()).collect();
    live_ids.sort();
    let mut expected_live: Vec<String> = still_held.iter().map(|s| s.session_id.clone()).collect();
    expected_live.sort();
    assert_eq!(live_ids, expected_live);
    assert!(live.sessions.iter().all(|s| s.status == SessionStatus::Active as i32));
    let gone = get_session(&replica_b, &snapshot[2].session_id).await;
    assert_eq!(gone.end_reason, EndReason::GatewayLost as i32);
    // Watchers see the two come back.
    let mut back_again = reopened_sessions(&mut watcher, 2).await;
    back_again.sort();
    assert_eq!(back_again, expected_live);

    talking.cancel();
    healthy.shutdown().await;
    replica_a.stop().await;
    replica_b.stop().await;
}

type SessionEvents = tonic::Streaming<pb::SessionEvent>;

/// The live sessions `replica` lists for `gateway_id`.
async fn live_sessions_of(replica: &TestRegistry, gateway_id: &str) -> pb::ListSessionsResponse {
    replica
        .sessions_client()
        .await
        .list_sessions(pb::ListSessionsRequest {
            filter: Some(pb::SessionFilter {
                gateway_id: gateway_id.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
}

/// A change feed of `gateway_id`'s sessions on `replica`, without a snapshot.
async fn watch_gateway(replica: &TestRegistry, gateway_id: &str) -> SessionEvents {
    replica
        .sessions_client()
        .await
        .watch_sessions(pb::WatchSessionsRequest {
            filter: Some(pb::SessionFilter {
                gateway_id: gateway_id.into(),
                ..Default::default()
            }),
            include_snapshot: false,
        })
        .await
        .expect("watch")
        .into_inner()
}

/// The next message on a raw link is a reconnection request, with a reason.
async fn expect_reconnect(inbound: &mut tonic::Streaming<pb::ControllerMessage>) {
    match tokio::time::timeout(PATIENCE, inbound.message()).await {
        Ok(Ok(Some(pb::ControllerMessage {
            message: Some(pb::controller_message::Message::Reconnect(reconnect)),
            ..
        }))) => assert!(!reconnect.reason.is_empty()),
        other => panic!("expected a reconnect request, got {other:?}"),
    }
}

/// The next `count` sessions the feed announces ended (openings skipped), each as lost.
async fn lost_sessions(watcher: &mut SessionEvents, count: usize) -> Vec<String> {
    let mut ended = Vec::new();
    while ended.len() < count {
        let event = tokio::time::timeout(PATIENCE, watcher.next())
            .await
            .expect("an event in time")
            .expect("watch open")
            .expect("event");
        if event.kind == pb::SessionEventKind::Opened as i32 {
            continue;
        }
        assert_eq!(event.kind, pb::SessionEventKind::Ended as i32, "{event:?}");
        let session = event.session.expect("session");
        assert_eq!(session.end_reason, EndReason::GatewayLost as i32);
        ended.push(session.id);
    }
    ended
}

/// The next `count` sessions the feed announces opened.
async fn reopened_sessions(watcher: &mut SessionEvents, count: usize) -> Vec<String> {
    let mut back_again = Vec::new();
    while back_again.len() < count {
        let event = tokio::time::timeout(PATIENCE, watcher.next())
            .await
            .expect("an event in time")
            .expect("watch open")
            .expect("event");
        assert_eq!(event.kind, pb::SessionEventKind::Opened as i32, "{event:?}");
        back_again.push(event.session.expect("session").id);
    }
    back_again
}

/// `gw-silent` is listed disconnected, `gw-healthy` connected.
async fn only_the_silent_gateway_is_disconnected(replica: &TestRegistry) {
    let gateways = replica
        .sessions_client()
        .await
        .list_gateways(pb::ListGatewaysRequest::default())
        .await
        .expect("gateways")
        .into_inner()
        .gateways;
    let silent_row = gateways.iter().find(|g| g.id == "gw-silent").expect("listed");
    assert!(!silent_row.connected);
    assert!(
        gateways
            .iter()
            .find(|g| g.id == "gw-healthy")
            .expect("listed")
            .connected
    );
}

/// Heartbeats on `outbound` every 100 ms until the returned token is cancelled.
fn keep_talking(outbound: tokio::sync::mpsc::Sender<pb::AgentMessage>) -> CancellationToken {
    let talking = CancellationToken::new();
    tokio::spawn({
        let talking = talking.clone();
        async move {
            while !talking.is_cancelled() {
                let heartbeat = pb::AgentMessage {
                    message: Some(pb::agent_message::Message::Heartbeat(pb::Heartbeat::default())),
                    ..Default::default()
                };
                if outbound.send(heartbeat).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    talking
}
