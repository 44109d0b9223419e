//! Issue 18's findings, each reproduced against every service on one server (authentication
//! required, PostgreSQL): each assertion failed before its fix.
//!
//! - tokens: a JWT's `service` role grants nothing; an `exp` in the year 3000 is refused;
//! - breadth: `0.0.0.0/1` (Terminate) and `::/1` (CreateLock) are refused as too broad;
//! - the audit trail: a refused 1 MiB id, or one with a newline and terminal escapes, is recorded
//!   escaped and capped;
//! - reasons: an operator cannot end a session for IDLE_TIMEOUT;
//! - range and input checks: ListAuditEvents `since` 2^62, ReleaseSessions ["bad"], Admit with an
//!   unknown resource type, a 1 ns idle timeout, a note holding terminal escapes;
//! - the gateway link: a peer guessing credentials is refused with RESOURCE_EXHAUSTED after
//!   `MAX_FAILED_HELLOS` failures, before its next hello is read;
//! - change feeds: `WatchSessions` streams are bounded per caller and in all (RESOURCE_EXHAUSTED
//!   beyond), while health stays SERVING and sessions still open; 400 feeds opening at once with
//!   their snapshots all get them over a 3-connection pool, while a session opens and the stats
//!   answer (snapshot pages are read `registry.snapshot_reads` at a time); then, with every
//!   connection of the registry's pool taken, a session's activity is still written (the
//!   background work has a pool of its own, `database.background_connections`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::Code;
use vigil_proto::v1 as pb;
use vigil_proto::v1::ResourceType;
use vigil_proto::v1::policy_service_client::PolicyServiceClient;
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::termination_service_client::TerminationServiceClient;
use vigil_runtime::auth::{AuthConfig, Claims, Secret, ServiceToken, issue_hs256};
use vigil_runtime::client::ServiceChannel;
use vigil_runtime::tls::TlsConfig;
use vigil_tests::*;

const SECRET: &str = "hardening-tests-hs256-secret-0123456789";
const SERVICE_TOKEN: &str = "svc-hardening-token-4b2f";
const GATEWAY: &str = "gw-hard";
const GATEWAY_CREDENTIAL: &str = "cred-hard-77a1";

fn auth() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(Secret::new(SECRET)),
        service_tokens: vec![ServiceToken {
            token: Secret::new(SERVICE_TOKEN),
            subject: "vigil-registry".into(),
        }],
        gateway_credentials: BTreeMap::from([(GATEWAY.to_owned(), Secret::new(GATEWAY_CREDENTIAL))]),
        ..AuthConfig::required()
    }
}

fn token(subject: &str, roles: &[&str]) -> String {
    issue_hs256(SECRET, subject, roles, Duration::from_secs(600)).expect("sign")
}

fn code<T>(result: &Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn cidr(network: &str) -> Option<pb::SessionSelector> {
    Some(pb::SessionSelector {
        target: Some(Target::Cidr(network.into())),
    })
}

fn admit(resource_type: i32) -> pb::AdmitRequest {
    let mut start = start("hard@acme.example", "prod-db-01", ResourceType::Ssh, "10.0.0.1");
    start.resource_type = resource_type;
    pb::AdmitRequest {
        session_id: uuid::Uuid::now_v7().to_string(),
        gateway_id: GATEWAY.into(),
        start: Some(start),
        ..Default::default()
    }
}

/// A JWT's `service` role grants nothing (the service token does); an `exp` in the year 3000 is refused.
async fn tokens_claiming_too_much_are_refused(stack: &SecureStack, service: ServiceChannel) {
    // A JWT claiming the `service` role reaches no internal RPC; the service token does.
    let forged = stack.channel(Some(&token("mallory@acme.example", &["service"]))).await;
    let answer = PolicyServiceClient::new(forged)
        .admit(admit(ResourceType::Ssh as i32))
        .await;
    assert_eq!(code(&answer), Code::PermissionDenied, "{answer:?}");
    let answer = PolicyServiceClient::new(service.clone())
        .admit(admit(ResourceType::Ssh as i32))
        .await;
    assert_eq!(code(&answer), Code::Ok, "{answer:?}");

    // A token valid until the year 3000 is refused.
    let forever = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &Claims {
            sub: "olga@acme.example".into(),
            roles: vec!["admin".into()],
            exp: 32_503_680_000,
            iss: None,
            aud: None,
        },
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign");
    let answer = PolicyServiceClient::new(stack.channel(Some(&forever)).await)
        .list_locks(pb::ListLocksRequest::default())
        .await;
    assert_eq!(code(&answer), Code::Unauthenticated, "{answer:?}");
}

/// Half the address space is neither ended nor locked by an operator; alice's session stays.
async fn too_broad_networks_are_refused(stack: &SecureStack, operator: ServiceChannel) {
    // Half the address space is not a network an operator may end or lock.
    let mut termination = TerminationServiceClient::new(operator.clone());
    for network in ["0.0.0.0/1", "128.0.0.0/1"] {
        let answer = termination
            .terminate(pb::TerminateRequest {
                selector: cidr(network),
                reason: pb::EndReason::Admin as i32,
                ..Default::default()
            })
            .await;
        assert_eq!(code(&answer), Code::InvalidArgument, "{network}: {answer:?}");
    }
    let live = stack
        .registry
        .resolve(&pb::SessionSelector {
            target: Some(Target::User("alice@acme.example".into())),
        })
        .await
        .expect("resolve");
    assert_eq!(live.sessions.len(), 1, "alice's session is still live");
    let mut policy = PolicyServiceClient::new(operator.clone());
    let answer = policy
        .create_lock(pb::CreateLockRequest {
            target: Some(pb::LockTarget {
                target: Some(pb::lock_target::Target::Cidr("::/1".into())),
            }),
            reason: "too broad".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(&answer), Code::InvalidArgument, "{answer:?}");
}

/// An operator cannot end a session for a system reason, nor hide terminal escapes in a note.
async fn false_reasons_and_escapes_are_refused(operator: ServiceChannel) {
    let mut termination = TerminationServiceClient::new(operator);
    // An operator cannot say the system ended a session.
    let answer = termination
        .terminate(pb::TerminateRequest {
            selector: Some(pb::SessionSelector {
                target: Some(Target::User("alice@acme.example".into())),
            }),
            reason: pb::EndReason::IdleTimeout as i32,
            ..Default::default()
        })
        .await;
    assert_eq!(code(&answer), Code::PermissionDenied, "{answer:?}");
    // Nor hide terminal escapes in a note.
    let answer = termination
        .terminate(pb::TerminateRequest {
            selector: Some(pb::SessionSelector {
                target: Some(Target::User("nobody@acme.example".into())),
            }),
            reason: pb::EndReason::Admin as i32,
            note: "ok\x1b[2J\x1b]0;pwned\x07".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(&answer), Code::InvalidArgument, "{answer:?}");
}

/// Refused lock deletions are recorded with their id escaped and capped.
async fn refused_ids_are_audited_escaped_and_capped(operator: ServiceChannel) {
    let mut policy = PolicyServiceClient::new(operator);
    let huge = "a".repeat(1 << 20);
    let forged_row = "x\n2026-12-07T00:00:00Z  admin@local  lock.delete  lock y  ok\x1b[31m";
    for id in [huge.as_str(), forged_row] {
        let answer = policy.delete_lock(pb::DeleteLockRequest { id: id.into() }).await;
        assert_eq!(code(&answer), Code::InvalidArgument);
    }
    let events = policy
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .expect("audit")
        .into_inner()
        .events;
    let deletions: Vec<&pb::AuditEvent> = events.iter().filter(|event| event.action == "lock.delete").collect();
    assert_eq!(deletions.len(), 2, "{events:?}");
    for event in deletions {
        assert!(event.target.chars().count() <= 600, "{} characters", event.target.len());
        assert!(!event.target.chars().any(char::is_control), "{:?}", event.target);
        assert!(!event.detail.chars().any(char::is_control), "{:?}", event.detail);
        assert!(event.target.contains("invalid id"), "{:?}", event.target);
    }
}

/// Range and input checks: `since`, sub-millisecond durations, internal RPCs' arguments.
async fn out_of_range_inputs_are_refused(stack: &SecureStack, operator: ServiceChannel, service: ServiceChannel) {
    let mut policy = PolicyServiceClient::new(operator);
    // `since` is range-checked like ListTerminations'.
    let answer = policy
        .list_audit_events(pb::ListAuditEventsRequest {
            since: Some(prost_types::Timestamp {
                seconds: 1 << 62,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await;
    assert_eq!(code(&answer), Code::InvalidArgument, "{answer:?}");

    // A positive duration under 1 ms is not stored as 0 (which would turn the rule off).
    let answer = PolicyServiceClient::new(stack.channel(Some(&token("ada@acme.example", &["admin"]))).await)
        .create_policy(pb::CreatePolicyRequest {
            scope: Some(pb::PolicyScope {
                scope: Some(pb::policy_scope::Scope::User("hard@acme.example".into())),
            }),
            rules: Some(pb::PolicyRules {
                idle_timeout: Some(prost_types::Duration { seconds: 0, nanos: 1 }),
                ..Default::default()
            }),
            description: String::new(),
        })
        .await;
    assert_eq!(code(&answer), Code::InvalidArgument, "{answer:?}");

    // Internal RPCs check what they are sent.
    let mut internal = PolicyServiceClient::new(service);
    let answer = internal
        .release_sessions(pb::ReleaseSessionsRequest {
            session_ids: vec!["bad".into()],
        })
        .await;
    assert_eq!(code(&answer), Code::InvalidArgument, "{answer:?}");
    let answer = internal.admit(admit(42)).await;
    assert_eq!(code(&answer), Code::InvalidArgument, "{answer:?}");
}

#[tokio::test]
async fn the_probe_s_findings_are_refused() {
    init_logs();
    let schema = TestSchema::new().await;
    let stack = SecureStack::start(&schema, auth(), TlsConfig::default()).await;
    let agent = stack
        .agent(GATEWAY, GATEWAY_CREDENTIAL, Arc::new(RecordingHandler::default()))
        .await;
    let admission = agent
        .open_session(start(
            "alice@acme.example",
            "prod-db-01",
            ResourceType::Ssh,
            "81.2.69.142",
        ))
        .await
        .expect("admission answered");
    assert!(admission.allowed, "{}", admission.reason);

    let operator = stack.channel(Some(&token("olga@acme.example", &["operator"]))).await;
    let service = stack.channel(Some(SERVICE_TOKEN)).await;

    tokens_claiming_too_much_are_refused(&stack, service.clone()).await;

    too_broad_networks_are_refused(&stack, operator.clone()).await;

    false_reasons_and_escapes_are_refused(operator.clone()).await;

    refused_ids_are_audited_escaped_and_capped(operator.clone()).await;

    out_of_range_inputs_are_refused(&stack, operator, service).await;

    agent.shutdown().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_peer_guessing_gateway_credentials_is_cut_off() {
    init_logs();
    let schema = TestSchema::new().await;
    let stack = SecureStack::start(&schema, auth(), TlsConfig::default()).await;
    let connect = || async {
        vigil_runtime::server::connect_channel(&stack.url, Duration::from_secs(5))
            .await
            .expect("connect")
    };
    for guess in 0..vigil_registry::MAX_FAILED_HELLOS {
        let refused = open_link(connect().await, gateway_hello(GATEWAY, &format!("guess-{guess}")))
            .await
            .map(drop)
            .expect_err("a wrong credential");
        assert_eq!(refused.code(), Code::Unauthenticated, "guess {guess}: {refused:?}");
    }
    // The next link from this address is refused before its hello is read — even one with the
    // right credential, so a guess that happens to be right tells the guesser nothing.
    for credential in ["guess-next", GATEWAY_CREDENTIAL] {
        let refused = open_link(connect().await, gateway_hello(GATEWAY, credential))
            .await
            .map(drop)
            .expect_err("cut off");
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert!(
            refused.message().contains("too many failed gateway hellos"),
            "{}",
            refused.message()
        );
    }
    // Only the link is closed to the guesser; the rest of the registry still answers.
    let mut registry = vigil_proto::v1::session_registry_client::SessionRegistryClient::new(
        stack.channel(Some(&token("ada@acme.example", &["viewer"]))).await,
    );
    registry
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .expect("the registry still answers");
    stack.stop().await;
}

#[tokio::test]
async fn change_feeds_are_bounded_per_caller_and_in_all() {
    init_logs();
    let schema = TestSchema::new().await;
    let settings = vigil_registry::RegistrySettings {
        watch_streams_per_caller: 3,
        watch_streams_total: 5,
        ..test_settings("feeds")
    };
    let stack = SecureStack::start_with(&schema, auth(), TlsConfig::default(), settings).await;
    let watch = |caller: &'static str| {
        let stack = &stack;
        async move {
            let channel = stack.channel(Some(&token(caller, &[]))).await;
            vigil_proto::v1::session_registry_client::SessionRegistryClient::new(channel)
                .watch_sessions(pb::WatchSessionsRequest {
                    include_snapshot: true,
                    ..Default::default()
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };

    let mut alices = Vec::new();
    for _ in 0..3 {
        alices.push(watch("alice@acme.example").await.expect("within alice's share"));
    }
    let refused = watch("alice@acme.example").await.expect_err("alice's fourth");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("watch_streams_per_caller"),
        "{}",
        refused.message()
    );
    let _bobs = [
        watch("bob@acme.example").await.expect("bob's first"),
        watch("bob@acme.example").await.expect("bob's second"),
    ];
    let refused = watch("carol@acme.example").await.expect_err("over the total");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("watch_streams_total"),
        "{}",
        refused.message()
    );

    // The replica is fine meanwhile: health SERVING, and a session opens (written and announced).
    let channel = vigil_runtime::server::connect_channel(&stack.url, Duration::from_secs(5))
        .await
        .expect("connect");
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health")
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");
    let agent = stack.agent(GATEWAY, GATEWAY_CREDENTIAL, Arc::default()).await;
    let admission = agent
        .open_session(start(
            "dave@acme.example",
            "prod-db-01",
            ResourceType::Ssh,
            "81.2.69.142",
        ))
        .await
        .expect("admission answered");
    assert!(admission.allowed, "{}", admission.reason);

    // A closed feed gives its slot back.
    drop(alices.pop());
    eventually("alice's closed feed to free its slot", || async {
        watch("alice@acme.example").await.ok().map(drop)
    })
    .await;

    agent.shutdown().await;
    stack.stop().await;
}

/// Feeds opened at once, each with its snapshot, in the flood test (over several connections: a
/// server takes at most 200 streams on one).
const FLOOD_FEEDS: usize = 400;
const FLOOD_CONNECTIONS: usize = 4;
/// Live sessions each snapshot carries.
const FLOOD_SESSIONS: usize = 120;

/// Opens one feed with its snapshot and counts the snapshot's sessions (up to SNAPSHOT_DONE).
async fn snapshot_size(channel: ServiceChannel) -> Result<usize, tonic::Status> {
    let mut feed = vigil_proto::v1::session_registry_client::SessionRegistryClient::new(channel)
        .watch_sessions(pb::WatchSessionsRequest {
            include_snapshot: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut sessions = 0;
    while let Some(event) = feed.message().await? {
        if event.kind == pb::SessionEventKind::SnapshotDone as i32 {
            return Ok(sessions);
        }
        if event.kind == pb::SessionEventKind::Snapshot as i32 {
            sessions += 1;
        }
    }
    Err(tonic::Status::aborted("the feed ended before SNAPSHOT_DONE"))
}

#[tokio::test]
async fn a_flood_of_snapshot_feeds_leaves_the_pool_to_everyone_else() {
    init_logs();
    let mut schema = TestSchema::new().await;
    // A small pool that gives up soon: snapshots holding every connection show as failed reads.
    schema.config.max_connections = 3;
    schema.config.connect_timeout = Duration::from_secs(1);
    let settings = vigil_registry::RegistrySettings {
        watch_streams_per_caller: FLOOD_FEEDS,
        watch_streams_total: FLOOD_FEEDS,
        snapshot_reads: 1,
        ..test_settings("flood")
    };
    let stack = SecureStack::start_with(&schema, auth(), TlsConfig::default(), settings).await;
    let agent = stack.agent(GATEWAY, GATEWAY_CREDENTIAL, Arc::default()).await;
    for n in 0..FLOOD_SESSIONS {
        let user = format!("user{n}@acme.example");
        let admission = agent
            .open_session(start(&user, "prod-db-01", ResourceType::Ssh, "81.2.69.142"))
            .await
            .expect("admission answered");
        assert!(admission.allowed, "{}", admission.reason);
    }

    let viewer = token("vera@acme.example", &["viewer"]);
    let mut channels = Vec::new();
    for _ in 0..FLOOD_CONNECTIONS {
        channels.push(stack.channel(Some(&viewer)).await);
    }
    let feeds = (0..FLOOD_FEEDS).map(|n| snapshot_size(channels[n % FLOOD_CONNECTIONS].clone()));
    // Meanwhile a session opens (admission reads and writes) and the stats answer.
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let admission = agent
            .open_session(start(
                "late@acme.example",
                "prod-db-01",
                ResourceType::Ssh,
                "81.2.69.142",
            ))
            .await
            .expect("admission answered during the flood");
        assert!(admission.allowed, "refused during the flood: {}", admission.reason);
        vigil_proto::v1::session_registry_client::SessionRegistryClient::new(channels[0].clone())
            .get_stats(pb::GetStatsRequest::default())
            .await
            .expect("the stats during the flood");
    };
    let (snapshots, ()) = tokio::join!(futures::future::join_all(feeds), meanwhile);

    let failed: Vec<String> = snapshots
        .iter()
        .filter_map(|result| {
            result
                .as_ref()
                .err()
                .map(|status| format!("{:?}: {}", status.code(), status.message()))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {FLOOD_FEEDS} feeds failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    assert!(
        snapshots.iter().flatten().all(|&size| size >= FLOOD_SESSIONS),
        "a snapshot missed sessions"
    );

    background_writes_outlast_a_taken_pool(&stack, &schema, &agent).await;
    agent.shutdown().await;
    stack.stop().await;
}

/// How long the calls hold every connection of the registry's pool in the flood test.
const POOL_HELD_FOR: Duration = Duration::from_secs(10);

/// Calls take every connection of the registry's pool (as enough of any call can, bounded feeds
/// or not): the background work, on connections of its own (`database.background_connections`),
/// still writes a session's activity meanwhile.
async fn background_writes_outlast_a_taken_pool(stack: &SecureStack, schema: &TestSchema, agent: &vigil_agent::Agent) {
    use sea_orm::TransactionTrait;
    use vigil_registry::store::SessionStore;
    let admission = agent
        .open_session(start(
            "busy@acme.example",
            "prod-db-01",
            ResourceType::Ssh,
            "81.2.69.142",
        ))
        .await
        .expect("admission answered");
    assert!(admission.allowed, "{}", admission.reason);
    let mut held = Vec::new();
    for _ in 0..schema.config.max_connections {
        held.push(
            stack
                .registry_store
                .connection()
                .begin()
                .await
                .expect("a connection of the pool"),
        );
    }
    agent.record_activity(&admission.session_id, Some(std::time::SystemTime::now()), 4242, 77);
    // Read on a pool of the test's own: the registry's is taken.
    let observer = vigil_registry::app::open_store(&schema.config, false)
        .await
        .expect("observer");
    let deadline = tokio::time::Instant::now() + POOL_HELD_FOR;
    loop {
        let session = observer
            .get_session(&admission.session_id)
            .await
            .expect("read")
            .expect("the session");
        if session.bytes_in == 4242 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the activity was not written while the calls held the registry's pool"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held);
}

/// A hello of `sessions` snapshot sessions (about 130 bytes each).
fn large_hello(credential: &str, sessions: usize) -> pb::Hello {
    pb::Hello {
        sessions: (0..sessions)
            .map(|n| pb::SnapshotSession {
                session_id: uuid::Uuid::now_v7().to_string(),
                start: Some(start(
                    &format!("user{n}@acme.example"),
                    "prod-db-01",
                    ResourceType::Ssh,
                    "81.2.69.142",
                )),
                ..Default::default()
            })
            .collect(),
        ..gateway_hello(GATEWAY, credential)
    }
}

#[tokio::test]
async fn a_large_first_message_is_read_only_once_its_hello_proves_the_gateway() {
    init_logs();
    let schema = TestSchema::new().await;
    let stack = SecureStack::start(&schema, auth(), TlsConfig::default()).await;
    let connect = || async {
        vigil_runtime::server::connect_channel(&stack.url, Duration::from_secs(5))
            .await
            .expect("connect")
    };
    let hello = large_hello("a-guess", 8_000);
    assert!(prost::Message::encoded_len(&hello) > 8 * vigil_registry::PRE_HELLO_LIMIT);
    let refused = open_link(connect().await, hello).await.map(drop).expect_err("refused");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("do not authenticate"),
        "{}",
        refused.message()
    );

    // A large hello that does not begin with its gateway id and credential: not read either.
    let mut hidden = large_hello("", 8_000);
    hidden.gateway_id.clear();
    let refused = open_link(connect().await, hidden).await.map(drop).expect_err("refused");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    // The gateway's own large hello is read whole and welcomed.
    let hello = large_hello(GATEWAY_CREDENTIAL, 800);
    assert!(prost::Message::encoded_len(&hello) > vigil_registry::PRE_HELLO_LIMIT);
    let (_outbound, _inbound) = open_link(connect().await, hello).await.expect("welcomed");
    let live = stack
        .registry
        .resolve(&pb::SessionSelector {
            target: Some(Target::GatewayId(GATEWAY.into())),
        })
        .await
        .expect("resolve");
    assert_eq!(live.sessions.len(), 800, "the hello's sessions are registered");
    stack.stop().await;
}
