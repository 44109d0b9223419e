//! The registry end to end: a real server on a random port, real PostgreSQL and Redis, driven
//! through the agent SDK and the gRPC clients.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tonic::Code;
use vigil_proto::v1 as pb;
use vigil_proto::v1::{ResourceType, SessionStatus};
use vigil_tests::*;

fn live_filter() -> Option<pb::SessionFilter> {
    None
}

type SessionsClient = pb::session_registry_client::SessionRegistryClient<tonic::transport::Channel>;

async fn list(client: &mut SessionsClient, request: pb::ListSessionsRequest) -> pb::ListSessionsResponse {
    client.list_sessions(request).await.expect("list").into_inner()
}

/// Waits until the one gateway the registry knows shows as disconnected.
async fn the_only_gateway_shows_disconnected(client: &SessionsClient) {
    eventually("the gateway to show as disconnected", || {
        let mut client = client.clone();
        async move {
            let gateways = client
                .list_gateways(pb::ListGatewaysRequest::default())
                .await
                .ok()?
                .into_inner();
            (!gateways.gateways[0].connected).then_some(())
        }
    })
    .await;
}

/// Alice's session (`session_id`) has every field of its start, and its gateway counts it.
async fn every_field_is_kept(client: &mut SessionsClient, session_id: &str) {
    let alice = client
        .get_session(pb::GetSessionRequest {
            id: session_id.to_owned(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(alice.user, "alice@acme.example");
    assert_eq!(alice.gateway_id, "gw-fra-01");
    assert_eq!(alice.resource_name, "prod-db-01");
    assert_eq!(alice.resource_type, ResourceType::Ssh as i32);
    assert_eq!(alice.device, "alice-laptop");
    assert_eq!(alice.client_ip, "81.2.69.142");
    assert_eq!(alice.status, SessionStatus::Active as i32);
    assert_eq!(alice.user_groups, vec!["engineering".to_string()]);
    assert!(alice.started_at.is_some() && alice.ended_at.is_none());

    let gateways = client
        .list_gateways(pb::ListGatewaysRequest::default())
        .await
        .expect("gateways")
        .into_inner();
    assert_eq!(gateways.gateways.len(), 1);
    assert!(gateways.gateways[0].connected);
    assert_eq!(gateways.gateways[0].live_sessions, 2);
    assert_eq!(gateways.gateways[0].replica, "r1");
}

#[tokio::test]
async fn agent_opens_sessions_and_they_are_listed_with_every_field() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), test_settings("r1")).await;
    let agent = registry.agent("gw-fra-01", Arc::default()).await;

    let admission = agent
        .open_session(start(
            "alice@acme.example",
            "prod-db-01",
            ResourceType::Ssh,
            "81.2.69.142",
        ))
        .await
        .expect("admission");
    assert!(admission.allowed, "refused: {}", admission.reason);
    agent
        .open_session(start(
            "bob@acme.example",
            "finance-portal",
            ResourceType::Web,
            "2001:db8::7",
        ))
        .await
        .expect("admission");

    let mut client = registry.sessions_client().await;
    let page = list(
        &mut client,
        pb::ListSessionsRequest {
            filter: live_filter(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(page.total_size, 2);
    assert_eq!(page.sessions.len(), 2);
    assert!(page.next_page_token.is_empty());

    every_field_is_kept(&mut client, &admission.session_id).await;

    // The user closes the session right after typing: it is DISCONNECTED with the reason, no longer
    // live, and keeps its final byte counts (the activity not yet reported goes ahead of the close).
    agent.record_activity(&admission.session_id, Some(SystemTime::now()), 1234, 5678);
    agent
        .close_session(&admission.session_id, pb::EndReason::UserClosed, "logout")
        .await;
    let ended = eventually("the close to be recorded", || {
        let mut client = client.clone();
        let id = admission.session_id.clone();
        async move {
            let session = client
                .get_session(pb::GetSessionRequest { id })
                .await
                .ok()?
                .into_inner();
            (session.status == SessionStatus::Disconnected as i32).then_some(session)
        }
    })
    .await;
    assert_eq!(ended.end_reason, pb::EndReason::UserClosed as i32);
    assert!(ended.ended_at.is_some());
    assert_eq!(
        (ended.bytes_in, ended.bytes_out),
        (1234, 5678),
        "the final activity is kept"
    );
    let page = list(&mut client, pb::ListSessionsRequest::default()).await;
    assert_eq!(page.total_size, 1);

    agent.shutdown().await;
    the_only_gateway_shows_disconnected(&client).await;
    registry.stop().await;
}

#[tokio::test]
async fn quiet_sessions_turn_idle_and_activity_brings_them_back() {
    init_logs();
    let schema = TestSchema::new().await;
    let settings = vigil_registry::RegistrySettings {
        idle_after: Duration::from_millis(800),
        ..test_settings("r1")
    };
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), settings).await;
    let agent = registry.agent("gw-idle", Arc::default()).await;
    let session = agent
        .open_session(start(
            "carol@acme.example",
            "win-jump-03",
            ResourceType::Rdp,
            "89.160.20.112",
        ))
        .await
        .expect("admission")
        .session_id;
    let mut client = registry.sessions_client().await;
    let reader = client.clone();
    let status_of = |id: String| {
        let mut client = reader.clone();
        async move {
            client
                .get_session(pb::GetSessionRequest { id })
                .await
                .ok()
                .map(|s| s.into_inner())
        }
    };

    eventually("the quiet session to turn idle", || {
        let id = session.clone();
        async move { status_of(id).await.filter(|s| s.status == SessionStatus::Idle as i32) }
    })
    .await;
    let stats = client
        .get_stats(pb::GetStatsRequest::default())
        .await
        .expect("stats")
        .into_inner();
    assert_eq!((stats.active, stats.idle), (0, 1));

    agent.record_activity(&session, Some(SystemTime::now()), 4096, 1 << 20);
    let back = eventually("activity to make the session active again", || {
        let id = session.clone();
        async move { status_of(id).await.filter(|s| s.status == SessionStatus::Active as i32) }
    })
    .await;
    assert_eq!((back.bytes_in, back.bytes_out), (4096, 1 << 20));
    registry.stop().await;
}

#[tokio::test]
async fn list_filters_orders_and_pages() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), test_settings("r1")).await;
    let fra = registry.agent("gw-fra-01", Arc::default()).await;
    let nyc = registry.agent("gw-nyc-02", Arc::default()).await;
    open_twelve_sessions(&fra, &nyc).await;
    let mut client = registry.sessions_client().await;
    filters_select_what_they_name(&mut client).await;
    pages_come_in_order_once_each(&mut client).await;
    // Newest first by default.
    let newest = list(&mut client, pb::ListSessionsRequest::default()).await;
    let starts: Vec<_> = newest
        .sessions
        .iter()
        .map(|s| vigil_proto::millis_from_timestamp(s.started_at.as_ref().unwrap()))
        .collect();
    assert!(starts.windows(2).all(|pair| pair[0] >= pair[1]));
    registry.stop().await;
}

/// Two sessions for each of six users, on two gateways (even users on `fra`), over the three
/// resource types in turn.
async fn open_twelve_sessions(fra: &vigil_agent::Agent, nyc: &vigil_agent::Agent) {
    let users = ["dave", "erin", "frank", "grace", "heidi", "ivan"];
    for (index, user) in users.iter().enumerate() {
        let kind = [ResourceType::Ssh, ResourceType::Rdp, ResourceType::Web][index % 3];
        let agent = if index % 2 == 0 { fra } else { nyc };
        for copy in 0..2 {
            let resource = format!("host-{copy}");
            let admission = agent
                .open_session(start(
                    &format!("{user}@acme.example"),
                    &resource,
                    kind,
                    &format!("81.2.69.{}", index * 10 + copy),
                ))
                .await
                .expect("admission");
            assert!(admission.allowed);
        }
    }
}

/// Each filter of [`open_twelve_sessions`]'s sessions counts what it names.
async fn filters_select_what_they_name(client: &mut SessionsClient) {
    let filtered = |filter: pb::SessionFilter| pb::ListSessionsRequest {
        filter: Some(filter),
        ..Default::default()
    };

    let by_user = list(
        client,
        filtered(pb::SessionFilter {
            user: "erin@acme.example".into(),
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(by_user.total_size, 2);
    assert!(by_user.sessions.iter().all(|s| s.user == "erin@acme.example"));

    let by_type = list(
        client,
        filtered(pb::SessionFilter {
            resource_type: ResourceType::Rdp as i32,
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(by_type.total_size, 4);
    assert!(
        by_type
            .sessions
            .iter()
            .all(|s| s.resource_type == ResourceType::Rdp as i32)
    );

    let by_gateway = list(
        client,
        filtered(pb::SessionFilter {
            gateway_id: "gw-nyc-02".into(),
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(by_gateway.total_size, 6);

    let by_text = list(
        client,
        filtered(pb::SessionFilter {
            query: "GRACE".into(),
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(by_text.total_size, 2, "free text is case-insensitive");

    let by_resource = list(
        client,
        filtered(pb::SessionFilter {
            resource_name: "host-1".into(),
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(by_resource.total_size, 6);

    let ended = list(
        client,
        filtered(pb::SessionFilter {
            statuses: vec![SessionStatus::Disconnected as i32],
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(ended.total_size, 0);
}

/// Pages of 5 sorted by user ascending: every session once, in order, then no token.
async fn pages_come_in_order_once_each(client: &mut SessionsClient) {
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            client,
            pb::ListSessionsRequest {
                order_by: pb::SessionOrderBy::User as i32,
                ascending: true,
                page_size: 5,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(page.total_size, 12);
        assert!(page.sessions.len() <= 5);
        seen.extend(page.sessions.into_iter().map(|s| (s.user, s.id)));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 12);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages come in (user, id) order");
}

#[tokio::test]
async fn stats_count_live_sessions_by_status_and_type() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), test_settings("r1")).await;
    let agent = registry.agent("gw-stats", Arc::default()).await;
    for (user, kind) in [
        ("a", ResourceType::Ssh),
        ("b", ResourceType::Ssh),
        ("c", ResourceType::Web),
    ] {
        agent
            .open_session(start(user, "r", kind, "10.0.0.1"))
            .await
            .expect("admission");
    }
    let closed = agent
        .open_session(start("d", "r", ResourceType::Rdp, "10.0.0.2"))
        .await
        .expect("admission");
    agent
        .close_session(&closed.session_id, pb::EndReason::UserClosed, "")
        .await;

    let mut client = registry.sessions_client().await;
    let stats = eventually("the close to be counted", || {
        let mut client = client.clone();
        async move {
            let stats = client
                .get_stats(pb::GetStatsRequest::default())
                .await
                .ok()?
                .into_inner();
            (stats.ended_last_24h == 1).then_some(stats)
        }
    })
    .await;
    assert_eq!(stats.active, 3);
    assert_eq!(stats.idle, 0);
    assert_eq!(stats.gateways_connected, 1);
    let ssh = stats
        .by_type
        .iter()
        .find(|t| t.resource_type == ResourceType::Ssh as i32)
        .map(|t| t.live);
    assert_eq!(ssh, Some(2));
    let filtered = client
        .get_stats(pb::GetStatsRequest {
            filter: Some(pb::SessionFilter {
                user: "c".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(filtered.active, 1);
    registry.stop().await;
}

#[tokio::test]
async fn watch_sees_snapshot_then_every_change() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), test_settings("r1")).await;
    let agent = registry.agent("gw-watch", Arc::default()).await;
    let existing = agent
        .open_session(start("old", "r", ResourceType::Ssh, "10.1.1.1"))
        .await
        .expect("admission");

    let mut client = registry.sessions_client().await;
    let mut events = client
        .watch_sessions(pb::WatchSessionsRequest {
            filter: None,
            include_snapshot: true,
        })
        .await
        .expect("watch")
        .into_inner();
    let first = next_event(&mut events).await;
    assert_eq!(first.kind, pb::SessionEventKind::Snapshot as i32);
    assert_eq!(
        first.session.as_ref().map(|s| s.id.clone()),
        Some(existing.session_id.clone())
    );
    assert_eq!(
        next_event(&mut events).await.kind,
        pb::SessionEventKind::SnapshotDone as i32
    );

    let new = agent
        .open_session(start("new", "r", ResourceType::Web, "10.1.1.2"))
        .await
        .expect("admission");
    let opened = next_event(&mut events).await;
    assert_eq!(opened.kind, pb::SessionEventKind::Opened as i32);
    assert_eq!(
        opened.session.as_ref().map(|s| s.id.clone()),
        Some(new.session_id.clone())
    );

    agent
        .close_session(&new.session_id, pb::EndReason::UserClosed, "")
        .await;
    let ended = next_event(&mut events).await;
    assert_eq!(ended.kind, pb::SessionEventKind::Ended as i32);
    let ended = ended.session.expect("session");
    assert_eq!(ended.id, new.session_id);
    assert_eq!(ended.status, SessionStatus::Disconnected as i32);
    registry.stop().await;
}

#[tokio::test]
async fn a_watcher_on_one_replica_sees_changes_made_on_another() {
    init_logs();
    let schema = TestSchema::new().await;
    let namespace = unique_namespace();
    let replica_a = TestRegistry::on_postgres(&schema, &namespace, test_settings("replica-a")).await;
    let replica_b = TestRegistry::on_postgres(&schema, &namespace, test_settings("replica-b")).await;

    let mut watcher = replica_a.sessions_client().await;
    let mut events = watcher
        .watch_sessions(pb::WatchSessionsRequest::default())
        .await
        .expect("watch")
        .into_inner();

    let agent = replica_b.agent("gw-on-b", Arc::default()).await;
    let admission = agent
        .open_session(start("zoe", "db", ResourceType::Ssh, "10.2.2.2"))
        .await
        .expect("admission");
    let event = tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("event");
    assert_eq!(event.kind, pb::SessionEventKind::Opened as i32);
    assert_eq!(
        event.session.map(|s| (s.id, s.gateway_id)),
        Some((admission.session_id.clone(), "gw-on-b".into()))
    );

    // And the session is visible through replica A's list: one source of truth.
    let mut client = replica_a.sessions_client().await;
    let page = list(&mut client, pb::ListSessionsRequest::default()).await;
    assert_eq!(
        page.sessions.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![admission.session_id]
    );
    let gateways = client
        .list_gateways(pb::ListGatewaysRequest::default())
        .await
        .expect("gateways")
        .into_inner();
    assert_eq!(gateways.gateways[0].replica, "replica-b");
    replica_a.stop().await;
    replica_b.stop().await;
}

#[tokio::test]
async fn reconnecting_with_a_different_snapshot_reconciles() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), test_settings("r1")).await;
    let agent = registry.agent("gw-reconnect", Arc::default()).await;
    let mut ids = Vec::new();
    for user in ["kept", "lost-1", "lost-2"] {
        ids.push(
            agent
                .open_session(start(user, "r", ResourceType::Ssh, "10.3.3.3"))
                .await
                .expect("admission")
                .session_id,
        );
    }
    let held_before = agent.sessions();
    agent.shutdown().await;

    // The gateway comes back holding only "kept", plus a session the registry never saw.
    let unknown_id = uuid::Uuid::new_v4().to_string();
    let kept = held_before
        .iter()
        .find(|s| s.session_id == ids[0])
        .expect("kept is held");
    let snapshot = vec![
        pb::SnapshotSession {
            session_id: kept.session_id.clone(),
            start: Some(kept.start.clone()),
            ..Default::default()
        },
        pb::SnapshotSession {
            session_id: unknown_id.clone(),
            start: Some(start("newcomer", "r", ResourceType::Web, "10.3.3.4")),
            bytes_in: 10,
            ..Default::default()
        },
    ];
    let (welcome, _outbound, _inbound) = raw_link(&registry, "gw-reconnect", snapshot)
        .await
        .expect("hello accepted");
    let mut ended = welcome.ended_session_ids.clone();
    ended.sort();
    let mut expected = vec![ids[1].clone(), ids[2].clone()];
    expected.sort();
    assert_eq!(ended, expected);
    assert_eq!(welcome.registered_session_ids, vec![unknown_id.clone()]);

    let mut client = registry.sessions_client().await;
    let lost = client
        .get_session(pb::GetSessionRequest { id: ids[1].clone() })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(lost.status, SessionStatus::Disconnected as i32);
    assert_eq!(lost.end_reason, pb::EndReason::Lost as i32);
    let newcomer = client
        .get_session(pb::GetSessionRequest { id: unknown_id })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        (newcomer.user.as_str(), newcomer.gateway_id.as_str()),
        ("newcomer", "gw-reconnect")
    );
    let live = list(&mut client, pb::ListSessionsRequest::default()).await;
    assert_eq!(live.total_size, 2);
    registry.stop().await;
}

async fn next_event(events: &mut tonic::Streaming<pb::SessionEvent>) -> pb::SessionEvent {
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event in time")
        .expect("stream open")
        .expect("event")
}

/// Opens a link by hand and says hello; the welcome and the stream halves.
#[allow(clippy::type_complexity)]
async fn raw_link(
    registry: &TestRegistry,
    gateway_id: &str,
    sessions: Vec<pb::SnapshotSession>,
) -> Result<
    (
        pb::Welcome,
        tokio::sync::mpsc::Sender<pb::AgentMessage>,
        tonic::Streaming<pb::ControllerMessage>,
    ),
    tonic::Status,
> {
    RawLink::open(registry, gateway_id, sessions)
        .await
        .map(RawLink::into_parts)
}

#[tokio::test]
async fn bad_requests_get_precise_statuses_and_write_nothing() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), test_settings("r1")).await;
    let mut client = registry.sessions_client().await;
    bad_gets_are_refused(&client).await;
    bad_lists_are_refused(&mut client).await;

    // A token from one query is refused for another.
    let agent = registry.agent("gw-bad", Arc::default()).await;
    for user in ["a", "b", "c"] {
        agent
            .open_session(start(user, "r", ResourceType::Ssh, "10.4.4.4"))
            .await
            .expect("admission");
    }
    a_page_token_is_bound_to_its_query(&mut client).await;

    // Bad session starts are refused with the reason, and nothing is recorded.
    bad_starts_are_refused(&agent).await;
    an_unknown_resource_type_is_refused_on_the_raw_link(&registry).await;
    let all = list(
        &mut client,
        pb::ListSessionsRequest {
            filter: Some(pb::SessionFilter {
                statuses: vec![
                    SessionStatus::Active as i32,
                    SessionStatus::Idle as i32,
                    SessionStatus::Disconnected as i32,
                ],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all.total_size, 3, "refused starts wrote nothing");
    registry.stop().await;
}

/// `GetSession` with an empty, malformed, huge or unknown id.
async fn bad_gets_are_refused(client: &SessionsClient) {
    let get = |id: &str| {
        let mut client = client.clone();
        let id = id.to_owned();
        async move {
            client
                .get_session(pb::GetSessionRequest { id })
                .await
                .expect_err("must fail")
        }
    };
    let status = get("").await;
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "id must not be empty")
    );
    assert_eq!(get("not-a-uuid").await.code(), Code::InvalidArgument);
    assert_eq!(get(&"x".repeat(100_000)).await.code(), Code::InvalidArgument);
    let missing = get("6f9619ff-8b86-d011-b42d-00c04fc964ff").await;
    assert_eq!(missing.code(), Code::NotFound);
    assert!(missing.message().contains("6f9619ff-8b86-d011-b42d-00c04fc964ff"));
}

/// `ListSessions` requests that must be refused as INVALID_ARGUMENT.
fn bad_list_requests() -> Vec<pb::ListSessionsRequest> {
    vec![
        pb::ListSessionsRequest {
            page_token: "never-issued".into(),
            ..Default::default()
        },
        pb::ListSessionsRequest {
            page_size: -5,
            ..Default::default()
        },
        pb::ListSessionsRequest {
            order_by: 99,
            ..Default::default()
        },
        pb::ListSessionsRequest {
            filter: Some(pb::SessionFilter {
                statuses: vec![42],
                ..Default::default()
            }),
            ..Default::default()
        },
        pb::ListSessionsRequest {
            filter: Some(pb::SessionFilter {
                resource_type: 7,
                ..Default::default()
            }),
            ..Default::default()
        },
        pb::ListSessionsRequest {
            filter: Some(pb::SessionFilter {
                user: "u".repeat(257),
                ..Default::default()
            }),
            ..Default::default()
        },
        pb::ListSessionsRequest {
            filter: Some(pb::SessionFilter {
                country_code: "Germany".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        pb::ListSessionsRequest {
            filter: Some(pb::SessionFilter {
                client_ip: "1.2.3".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]
}

async fn bad_lists_are_refused(client: &mut SessionsClient) {
    for request in bad_list_requests() {
        let status = client.list_sessions(request.clone()).await.expect_err("must fail");
        assert_eq!(status.code(), Code::InvalidArgument, "{request:?} → {status:?}");
        assert!(!status.message().is_empty());
    }
}

/// A page token of one query, presented with another order, is refused.
async fn a_page_token_is_bound_to_its_query(client: &mut SessionsClient) {
    let page = list(
        client,
        pb::ListSessionsRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    let status = client
        .list_sessions(pb::ListSessionsRequest {
            page_size: 1,
            page_token: page.next_page_token,
            ascending: true,
            ..Default::default()
        })
        .await
        .expect_err("must fail");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("different filter or order"));
}

/// Starts the SDK or the registry refuses, each naming its problem.
async fn bad_starts_are_refused(agent: &vigil_agent::Agent) {
    for (bad, expected) in [
        (
            start("mallory", "r", ResourceType::Ssh, "300.1.1.1"),
            "is not an IPv4 or IPv6 address",
        ),
        (
            start("", "r", ResourceType::Ssh, "10.0.0.1"),
            "start.user must not be empty",
        ),
        (
            start("mallory", "r", ResourceType::Unspecified, "10.0.0.1"),
            "resource_type must be SSH, RDP or WEB",
        ),
        (
            start(&"m".repeat(300), "r", ResourceType::Ssh, "10.0.0.1"),
            "at most 256",
        ),
    ] {
        let decision = agent.open_session(bad.clone()).await;
        match decision {
            Ok(admission) => {
                assert!(!admission.allowed);
                assert!(
                    admission.reason.contains(expected),
                    "{} does not say {expected}",
                    admission.reason
                );
            }
            // The SDK validates before sending; its error names the same problem.
            Err(error) => assert!(
                error.to_string().contains(expected) || matches!(error, vigil_agent::AgentError::InvalidInput(_)),
                "{error}"
            ),
        }
    }
}

/// A resource type the SDK would not send, sent on a raw link: refused with the reason.
async fn an_unknown_resource_type_is_refused_on_the_raw_link(registry: &TestRegistry) {
    let mut raw_start = start("mallory", "r", ResourceType::Ssh, "10.0.0.1");
    raw_start.resource_type = 42;
    let (_welcome, outbound, mut inbound) = raw_link(registry, "gw-raw", vec![]).await.expect("hello");
    let opened = pb::SessionOpened {
        request_id: "req-1".into(),
        start: Some(raw_start),
    };
    outbound
        .send(pb::AgentMessage {
            trace_context: Default::default(),
            message: Some(pb::agent_message::Message::SessionOpened(opened)),
        })
        .await
        .expect("send");
    let decision = match inbound.message().await.expect("reply").and_then(|m| m.message) {
        Some(pb::controller_message::Message::Admission(decision)) => decision,
        other => panic!("expected a decision, got {other:?}"),
    };
    assert!(!decision.allowed);
    assert_eq!(decision.request_id, "req-1");
    assert!(
        decision
            .reason
            .contains("start.resource_type 42 is not a known resource type"),
        "{}",
        decision.reason
    );
}

#[tokio::test]
async fn links_that_do_not_start_with_a_valid_hello_are_refused() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), test_settings("r1")).await;

    let status = raw_link(&registry, "gw with spaces", vec![])
        .await
        .expect_err("must be refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("hello.gateway_id"), "{}", status.message());

    let bad_snapshot = vec![pb::SnapshotSession {
        session_id: "nope".into(),
        ..Default::default()
    }];
    let status = raw_link(&registry, "gw-ok", bad_snapshot)
        .await
        .expect_err("must be refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("hello.sessions[0].session_id"),
        "{}",
        status.message()
    );

    let heartbeat = pb::agent_message::Message::Heartbeat(pb::Heartbeat::default());
    let status = RawLink::open_with_first(&registry, heartbeat)
        .await
        .err()
        .expect("must be refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("first message on a link must be hello, not heartbeat")
    );

    // Nothing was recorded for the refused links.
    let mut client = registry.sessions_client().await;
    let gateways = client
        .list_gateways(pb::ListGatewaysRequest::default())
        .await
        .expect("gateways")
        .into_inner();
    assert!(gateways.gateways.is_empty(), "{:?}", gateways.gateways);
    registry.stop().await;
}

#[tokio::test]
async fn an_agent_cannot_report_on_another_gateways_sessions() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), test_settings("r1")).await;
    let honest = registry.agent("gw-honest", Arc::default()).await;
    let victim = honest
        .open_session(start("victim", "r", ResourceType::Ssh, "10.5.5.5"))
        .await
        .expect("admission")
        .session_id;

    let (_welcome, outbound, mut inbound) = raw_link(&registry, "gw-rogue", vec![]).await.expect("hello");
    let close = pb::SessionClosed {
        session_id: victim.clone(),
        reason: pb::EndReason::UserClosed as i32,
        ..Default::default()
    };
    outbound
        .send(pb::AgentMessage {
            trace_context: Default::default(),
            message: Some(pb::agent_message::Message::SessionClosed(close)),
        })
        .await
        .expect("send");
    // A link handles its messages in order: once the next admission is answered, the close was handled.
    let opened = pb::SessionOpened {
        request_id: "after-close".into(),
        start: Some(start("rogue", "r", ResourceType::Ssh, "10.5.5.6")),
    };
    outbound
        .send(pb::AgentMessage {
            trace_context: Default::default(),
            message: Some(pb::agent_message::Message::SessionOpened(opened)),
        })
        .await
        .expect("send");
    let reply = inbound.message().await.expect("reply").and_then(|m| m.message);
    assert!(
        matches!(reply, Some(pb::controller_message::Message::Admission(ref d)) if d.request_id == "after-close"),
        "{reply:?}"
    );
    let mut client = registry.sessions_client().await;
    let victim = client
        .get_session(pb::GetSessionRequest { id: victim })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        victim.status,
        SessionStatus::Active as i32,
        "a foreign gateway cannot end it"
    );
    registry.stop().await;
}

#[tokio::test]
async fn health_and_reflection_answer() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), test_settings("r1")).await;
    let channel = registry.channel().await;

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["", "vigil.v1.SessionRegistry", "vigil.v1.GatewayLink"] {
        let response = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health")
            .into_inner();
        assert_eq!(
            response.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service}"
        );
    }

    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.message().await.expect("response").expect("one response");
    let Some(MessageResponse::ListServicesResponse(services)) = response.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<_> = services.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "vigil.v1.SessionRegistry",
        "vigil.v1.GatewayLink",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing from {names:?}"
        );
    }
    registry.stop().await;
}

#[tokio::test]
async fn the_embedded_default_works_the_same_on_sqlite_and_the_in_process_bus() {
    init_logs();
    let (registry, _dir) = TestRegistry::embedded(test_settings("embedded")).await;
    let mut client = registry.sessions_client().await;
    let mut events = client
        .watch_sessions(pb::WatchSessionsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let agent = registry.agent("gw-embedded", Arc::default()).await;
    let admission = agent
        .open_session(start("sam", "db", ResourceType::Ssh, "10.6.6.6"))
        .await
        .expect("admission");
    let event = tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("event");
    assert_eq!(event.kind, pb::SessionEventKind::Opened as i32);
    let page = list(&mut client, pb::ListSessionsRequest::default()).await;
    assert_eq!(
        page.sessions.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![admission.session_id]
    );
    registry.stop().await;
}

#[tokio::test]
async fn sessionctl_lists_gets_and_counts_against_a_real_registry() {
    use clap::Parser;
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), test_settings("r1")).await;
    let agent = registry.agent("gw-cli", Arc::default()).await;
    let admission = agent
        .open_session(start(
            "olivia@acme.example",
            "finance-portal",
            ResourceType::Web,
            "81.2.69.142",
        ))
        .await
        .expect("admission");

    let run = |args: Vec<String>| async move {
        let cli = sessionctl::Cli::try_parse_from(args).expect("arguments parse");
        let mut out = Vec::new();
        sessionctl::run(cli, &mut out)
            .await
            .map(|()| String::from_utf8(out).expect("utf-8"))
    };
    let server = registry.url();
    let args = |rest: &[&str]| {
        ["sessionctl", "--server", server.as_str()]
            .iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };

    let table = run(args(&["sessions", "list"])).await.expect("list");
    assert!(table.contains("olivia@acme.example"), "{table}");
    assert!(table.contains("finance-portal (Web)"), "{table}");
    assert!(table.contains("Active"), "{table}");

    let json = run(args(&["-o", "json", "sessions", "list", "--type", "web"]))
        .await
        .expect("list json");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["sessions"][0]["id"], admission.session_id.as_str(), "{json}");

    let empty = run(args(&["-o", "json", "sessions", "list", "--type", "rdp"]))
        .await
        .expect("list json");
    let value: serde_json::Value = serde_json::from_str(&empty).expect("valid JSON");
    assert_eq!(value["sessions"].as_array().map(Vec::len), Some(0), "{empty}");

    let detail = run(args(&["sessions", "get", &admission.session_id]))
        .await
        .expect("get");
    assert!(detail.contains("81.2.69.142") && detail.contains("gw-cli"), "{detail}");

    let error = run(args(&["sessions", "get", "6f9619ff-8b86-d011-b42d-00c04fc964ff"]))
        .await
        .expect_err("not found");
    assert_eq!(error.exit_code(), 1, "{error}");
    assert!(error.to_string().contains("not found"), "{error}");

    let stats = run(args(&["stats"])).await.expect("stats");
    assert!(stats.contains('1'), "{stats}");
    registry.stop().await;
}

#[tokio::test]
async fn when_geo_cannot_be_reached_sessions_are_admitted_and_marked_location_unavailable() {
    init_logs();
    let schema = TestSchema::new().await;
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), test_settings("r1")).await;
    // A port nobody listens on: geo is down.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let geo = vigil_clients::GrpcRiskAssessor::connect_lazy(&format!("http://{dead}")).unwrap();
    registry.registry.attach_risk_assessor(Arc::new(geo));

    let agent = registry.agent("gw-geo-down", Arc::default()).await;
    let admission = agent
        .open_session(start("pat", "db", ResourceType::Ssh, "81.2.69.142"))
        .await
        .expect("admission");
    assert!(admission.allowed, "{}", admission.reason);
    assert_eq!(
        admission.location.as_ref().map(|l| l.kind),
        Some(pb::LocationKind::Unavailable as i32)
    );
    let mut client = registry.sessions_client().await;
    let session = client
        .get_session(pb::GetSessionRequest {
            id: admission.session_id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        session.location.map(|l| l.kind),
        Some(pb::LocationKind::Unavailable as i32)
    );
    assert!(!session.risk.map(|r| r.assessed).unwrap_or(true));
    registry.stop().await;
}
