//! Security end to end: every service on one server with authentication required (and, for the TLS
//! tests, TLS with certificates made at test time), driven over gRPC with real tokens.
//!
//! - the RBAC matrix: each role × each public RPC → the exact status;
//! - the own-sessions rule: a plain user sees and ends their own sessions only, and learns
//!   nothing about others' from `ResolveSessions` (one answer whatever the target);
//! - gateways: a hello speaks for its own gateway only (credential or client certificate);
//! - tokens: expired, badly signed, malformed, unknown key, wrong audience — all refused, with why;
//! - TLS: the right CA connects, a wrong CA fails the handshake; production refuses plaintext;
//! - audit: terminations, policy changes and refused admissions name the real caller.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity as TlsIdentity};
use tonic::{Code, Request, Status};
use vigil_proto::v1 as pb;
use vigil_proto::v1::geo_service_client::GeoServiceClient;
use vigil_proto::v1::policy_service_client::PolicyServiceClient;
use vigil_proto::v1::session_registry_client::SessionRegistryClient;
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::termination_service_client::TerminationServiceClient;
use vigil_proto::v1::{ResourceType, SessionStatus};
use vigil_runtime::auth::permission::{GEO_SERVICE, POLICY_SERVICE, SESSION_REGISTRY, TERMINATION_SERVICE};
use vigil_runtime::auth::{AuthConfig, Claims, Secret, ServiceToken, issue_hs256};
use vigil_runtime::client::ServiceChannel;
use vigil_runtime::server::{Server, ServerConfig, ServerError};
use vigil_runtime::tls::TlsConfig;
use vigil_tests::*;

const SECRET: &str = "security-tests-hs256-secret-0123456789";
const SERVICE_TOKEN: &str = "svc-7f3a9c2e-registry-token";
const GATEWAY: &str = "gw-sec";
const GATEWAY_CREDENTIAL: &str = "cred-sec-5b1e";
const OTHER_GATEWAY: &str = "gw-other";
const OTHER_CREDENTIAL: &str = "cred-other-9d4c";

const ALICE: &str = "alice@acme.example";
const BOB: &str = "bob@acme.example";
const ADMIN: &str = "ada@acme.example";

/// Authentication as the tests configure it: HS256, one service token, two gateways.
fn auth() -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(Secret::new(SECRET)),
        service_tokens: vec![ServiceToken {
            token: Secret::new(SERVICE_TOKEN),
            subject: "vigil-registry".into(),
        }],
        gateway_credentials: BTreeMap::from([
            (GATEWAY.to_owned(), Secret::new(GATEWAY_CREDENTIAL)),
            (OTHER_GATEWAY.to_owned(), Secret::new(OTHER_CREDENTIAL)),
        ]),
        ..AuthConfig::required()
    }
}

fn token(subject: &str, roles: &[&str]) -> String {
    issue_hs256(SECRET, subject, roles, Duration::from_secs(600)).expect("sign")
}

fn code_of<T>(result: &Result<T, Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn ids(ids: &[&str]) -> Option<pb::SessionSelector> {
    Some(pb::SessionSelector {
        target: Some(Target::SessionIds(pb::SessionIds {
            ids: ids.iter().map(|id| (*id).to_owned()).collect(),
        })),
    })
}

fn selector(target: Target) -> Option<pb::SessionSelector> {
    Some(pb::SessionSelector { target: Some(target) })
}

fn terminate(selector: Option<pb::SessionSelector>) -> pb::TerminateRequest {
    pb::TerminateRequest {
        selector,
        reason: pb::EndReason::Admin as i32,
        ..Default::default()
    }
}

fn user_policy(user: &str, rules: pb::PolicyRules) -> pb::CreatePolicyRequest {
    pb::CreatePolicyRequest {
        scope: Some(pb::PolicyScope {
            scope: Some(pb::policy_scope::Scope::User(user.to_owned())),
        }),
        rules: Some(rules),
        description: String::new(),
    }
}

async fn open(agent: &vigil_agent::Agent, user: &str) -> String {
    let admission = agent
        .open_session(start(user, "prod-db-01", ResourceType::Ssh, "81.2.69.142"))
        .await
        .expect("admission answered");
    assert!(admission.allowed, "{user}'s session was refused: {}", admission.reason);
    admission.session_id
}

// ---------------------------------------------------------------------------------------------
// The RBAC matrix
// ---------------------------------------------------------------------------------------------

/// The callers of the matrix, in the order of its columns.
/// `jwt-service`: a person's JWT claiming the `service` role, which only service tokens carry: it
/// gets what a person without roles gets.
const ROLES: [&str; 7] = ["none", "viewer", "operator", "admin", "user", "service", "jwt-service"];

/// What each RPC answers each caller. `U`: unauthenticated, `D`: permission denied, `K`: OK.
const U: Code = Code::Unauthenticated;
const D: Code = Code::PermissionDenied;
const K: Code = Code::Ok;

#[rustfmt::skip]
const MATRIX: &[(&str, &str, [Code; 7])] = &[
    //                                                    none viewer operator admin user service jwt-service
    ("SessionRegistry",    "ListSessions",              [U,   K,     K,       K,    K,   K,   K]),
    ("SessionRegistry",    "GetSession",                [U,   K,     K,       K,    D,   K,   D]),
    ("SessionRegistry",    "GetStats",                  [U,   K,     K,       K,    D,   K,   D]),
    ("SessionRegistry",    "WatchSessions",             [U,   K,     K,       K,    K,   K,   K]),
    ("SessionRegistry",    "ListGateways",              [U,   K,     K,       K,    D,   K,   D]),
    ("SessionRegistry",    "ResolveSessions",           [U,   K,     K,       K,    D,   K,   D]),
    ("TerminationService", "Terminate",                 [U,   D,     K,       K,    D,   K,   D]),
    ("TerminationService", "Terminate(all)",            [U,   D,     D,       K,    D,   D,   D]),
    ("TerminationService", "GetTermination",            [U,   K,     K,       K,    D,   D,   D]),
    ("TerminationService", "ListTerminations",          [U,   K,     K,       K,    D,   D,   D]),
    ("TerminationService", "ListPendingCommands",       [U,   D,     D,       D,    D,   K,   D]),
    ("TerminationService", "ReportCommands",            [U,   D,     D,       D,    D,   K,   D]),
    ("PolicyService",      "Admit",                     [U,   D,     D,       D,    D,   K,   D]),
    ("PolicyService",      "CreatePolicy",              [U,   D,     D,       K,    D,   D,   D]),
    ("PolicyService",      "GetPolicy",                 [U,   K,     K,       K,    D,   D,   D]),
    ("PolicyService",      "ListPolicies",              [U,   K,     K,       K,    D,   D,   D]),
    ("PolicyService",      "UpdatePolicy",              [U,   D,     D,       K,    D,   D,   D]),
    ("PolicyService",      "DeletePolicy",              [U,   D,     D,       K,    D,   D,   D]),
    ("PolicyService",      "GetEffectivePolicy",        [U,   K,     K,       K,    D,   D,   D]),
    ("PolicyService",      "CreateLock",                [U,   D,     K,       K,    D,   D,   D]),
    ("PolicyService",      "ListLocks",                 [U,   K,     K,       K,    D,   K,   D]),
    ("PolicyService",      "DeleteLock",                [U,   D,     K,       K,    D,   D,   D]),
    ("PolicyService",      "ReleaseSessions",           [U,   D,     D,       D,    D,   K,   D]),
    ("PolicyService",      "ListAuditEvents",           [U,   K,     K,       K,    D,   D,   D]),
    ("GeoService",         "Locate",                    [U,   D,     D,       D,    D,   K,   D]),
    ("GeoService",         "Assess",                    [U,   D,     D,       D,    D,   K,   D]),
];

/// What the matrix's calls need to exist.
struct Fixtures {
    stack: SecureStack,
    /// Alice's session that every `Terminate` call ends (ending an ended session is fine).
    victim: String,
    /// Alice's session nobody ends.
    keep: String,
    termination_id: String,
    global_policy_id: String,
    updatable_policy_id: String,
}

/// A lock on `user`, for an hour.
fn matrix_lock(user: &str) -> pb::CreateLockRequest {
    pb::CreateLockRequest {
        target: Some(pb::LockTarget {
            target: Some(pb::lock_target::Target::User(user.into())),
        }),
        message: String::new(),
        ttl: Some(prost_types::Duration {
            seconds: 3600,
            nanos: 0,
        }),
        reason: "the RBAC matrix".into(),
    }
}

/// Makes one call of the matrix on `channel`.
async fn call(service: &str, rpc: &str, channel: ServiceChannel, fx: &Fixtures) -> Result<(), Status> {
    match service {
        "SessionRegistry" => registry_call(rpc, channel, fx).await,
        "TerminationService" => termination_call(rpc, channel, fx).await,
        "PolicyService" => policy_call(rpc, channel, fx).await,
        "GeoService" => geo_call(rpc, channel).await,
        other => panic!("the matrix has no service {other}"),
    }
}

/// A `SessionRegistry` call of the matrix.
async fn registry_call(rpc: &str, channel: ServiceChannel, fx: &Fixtures) -> Result<(), Status> {
    let mut registry = SessionRegistryClient::new(channel);
    match rpc {
        "ListSessions" => registry
            .list_sessions(pb::ListSessionsRequest::default())
            .await
            .map(drop),
        "GetSession" => registry
            .get_session(pb::GetSessionRequest { id: fx.keep.clone() })
            .await
            .map(drop),
        "GetStats" => registry.get_stats(pb::GetStatsRequest::default()).await.map(drop),
        "WatchSessions" => registry
            .watch_sessions(pb::WatchSessionsRequest::default())
            .await
            .map(drop),
        "ListGateways" => registry
            .list_gateways(pb::ListGatewaysRequest::default())
            .await
            .map(drop),
        "ResolveSessions" => registry
            .resolve_sessions(pb::ResolveSessionsRequest {
                selector: ids(&[&fx.keep]),
            })
            .await
            .map(drop),
        other => panic!("the matrix has no call for {other}"),
    }
}

/// A `TerminationService` call of the matrix.
async fn termination_call(rpc: &str, channel: ServiceChannel, fx: &Fixtures) -> Result<(), Status> {
    let mut termination = TerminationServiceClient::new(channel);
    match rpc {
        "Terminate" => termination.terminate(terminate(ids(&[&fx.victim]))).await.map(drop),
        "Terminate(all)" => termination
            .terminate(terminate(selector(Target::All(pb::AllSessions { idle_only: true }))))
            .await
            .map(drop),
        "GetTermination" => termination
            .get_termination(pb::GetTerminationRequest {
                id: fx.termination_id.clone(),
            })
            .await
            .map(drop),
        "ListTerminations" => termination
            .list_terminations(pb::ListTerminationsRequest::default())
            .await
            .map(drop),
        "ListPendingCommands" => termination
            .list_pending_commands(pb::ListPendingCommandsRequest {
                gateway_id: GATEWAY.into(),
            })
            .await
            .map(drop),
        "ReportCommands" => termination
            .report_commands(pb::ReportCommandsRequest::default())
            .await
            .map(drop),
        other => panic!("the matrix has no call for {other}"),
    }
}

/// A `PolicyService` call of the matrix: policies and admission (locks and the rest in `policy_lock_call`).
async fn policy_call(rpc: &str, channel: ServiceChannel, fx: &Fixtures) -> Result<(), Status> {
    let mut policy = PolicyServiceClient::new(channel.clone());
    match rpc {
        "Admit" => policy
            .admit(pb::AdmitRequest {
                session_id: uuid::Uuid::now_v7().to_string(),
                gateway_id: GATEWAY.into(),
                start: Some(start(
                    "matrix@acme.example",
                    "prod-db-01",
                    ResourceType::Ssh,
                    "10.0.0.1",
                )),
                ..Default::default()
            })
            .await
            .map(drop),
        "CreatePolicy" => policy
            .create_policy(user_policy(
                &format!("matrix-{}@acme.example", uuid::Uuid::new_v4().simple()),
                pb::PolicyRules::default(),
            ))
            .await
            .map(drop),
        "GetPolicy" => policy
            .get_policy(pb::GetPolicyRequest {
                id: fx.global_policy_id.clone(),
            })
            .await
            .map(drop),
        "ListPolicies" => policy.list_policies(pb::ListPoliciesRequest {}).await.map(drop),
        "UpdatePolicy" => policy
            .update_policy(pb::UpdatePolicyRequest {
                id: fx.updatable_policy_id.clone(),
                rules: Some(pb::PolicyRules::default()),
                description: "changed by the matrix".into(),
            })
            .await
            .map(drop),
        "DeletePolicy" => {
            let fresh = fx
                .stack
                .policy
                .create(
                    "setup",
                    &user_policy(
                        &format!("doomed-{}@acme.example", uuid::Uuid::new_v4().simple()),
                        pb::PolicyRules::default(),
                    ),
                )
                .await
                .expect("a policy to delete");
            policy
                .delete_policy(pb::DeletePolicyRequest { id: fresh.id })
                .await
                .map(drop)
        }
        other => policy_lock_call(other, channel, fx).await,
    }
}

/// A `PolicyService` call of the matrix: effective rules, locks, releases, the audit trail.
async fn policy_lock_call(rpc: &str, channel: ServiceChannel, fx: &Fixtures) -> Result<(), Status> {
    let mut policy = PolicyServiceClient::new(channel);
    match rpc {
        "GetEffectivePolicy" => policy
            .get_effective_policy(pb::GetEffectivePolicyRequest {
                user: ALICE.into(),
                user_groups: vec![],
                resource_name: "prod-db-01".into(),
            })
            .await
            .map(drop),
        // Locks on users nobody is: the matrix's own sessions stay.
        "CreateLock" => policy
            .create_lock(matrix_lock(&format!(
                "locked-{}@acme.example",
                uuid::Uuid::new_v4().simple()
            )))
            .await
            .map(drop),
        "ListLocks" => policy.list_locks(pb::ListLocksRequest::default()).await.map(drop),
        "DeleteLock" => {
            let fresh = fx
                .stack
                .policy
                .create_lock(
                    "setup",
                    &matrix_lock(&format!("doomed-{}@acme.example", uuid::Uuid::new_v4().simple())),
                )
                .await
                .expect("a lock to delete");
            policy
                .delete_lock(pb::DeleteLockRequest { id: fresh.id })
                .await
                .map(drop)
        }
        "ReleaseSessions" => policy
            .release_sessions(pb::ReleaseSessionsRequest::default())
            .await
            .map(drop),
        "ListAuditEvents" => policy
            .list_audit_events(pb::ListAuditEventsRequest::default())
            .await
            .map(drop),
        other => panic!("the matrix has no call for {other}"),
    }
}

/// A `GeoService` call of the matrix.
async fn geo_call(rpc: &str, channel: ServiceChannel) -> Result<(), Status> {
    let mut geo = GeoServiceClient::new(channel);
    match rpc {
        "Locate" => geo
            .locate(pb::LocateRequest {
                ip: "81.2.69.142".into(),
            })
            .await
            .map(drop),
        "Assess" => geo
            .assess(pb::AssessRequest {
                user: "matrix@acme.example".into(),
                ip: "81.2.69.142".into(),
                ..Default::default()
            })
            .await
            .map(drop),
        other => panic!("the matrix has no call for {other}"),
    }
}

/// The sessions, termination and policies the matrix's calls act on.
async fn matrix_fixtures(stack: SecureStack, agent: &vigil_agent::Agent) -> Fixtures {
    let victim = open(agent, ALICE).await;
    let keep = open(agent, ALICE).await;
    let extra = open(agent, ALICE).await;
    let termination_id = stack
        .terminator
        .terminate("setup", &terminate(ids(&[&extra])))
        .await
        .expect("a termination to read")
        .id;
    let policies = stack.policy.list().await.expect("policies").policies;
    let global_policy_id = policies
        .iter()
        .find(|policy| {
            matches!(
                policy.scope.as_ref().and_then(|scope| scope.scope.as_ref()),
                Some(pb::policy_scope::Scope::Global(_))
            )
        })
        .expect("the global policy exists")
        .id
        .clone();
    let updatable_policy_id = stack
        .policy
        .create(
            "setup",
            &user_policy("updatable@acme.example", pb::PolicyRules::default()),
        )
        .await
        .expect("a policy to update")
        .id;
    Fixtures {
        stack,
        victim,
        keep,
        termination_id,
        global_policy_id,
        updatable_policy_id,
    }
}

/// Every cell of the matrix that does not hold, described.
async fn matrix_mismatches(channels: &[ServiceChannel], fx: &Fixtures) -> Vec<String> {
    let mut wrong = Vec::new();
    for (service, rpc, expected) in MATRIX {
        for (column, role) in ROLES.iter().enumerate() {
            let result = call(service, rpc, channels[column].clone(), fx).await;
            let got = code_of(&result);
            if got != expected[column] {
                wrong.push(format!(
                    "{service}.{rpc} as {role}: expected {:?}, got {got:?} ({})",
                    expected[column],
                    result
                        .err()
                        .map(|status| status.message().to_owned())
                        .unwrap_or_default()
                ));
            }
        }
    }
    wrong
}

/// The matrix covers every RPC of the four services the people and tools call.
fn assert_the_matrix_covers_every_rpc() {
    for (service, table) in [
        ("SessionRegistry", SESSION_REGISTRY),
        ("TerminationService", TERMINATION_SERVICE),
        ("PolicyService", POLICY_SERVICE),
        ("GeoService", GEO_SERVICE),
    ] {
        for (method, _) in table {
            assert!(
                MATRIX.iter().any(|(s, rpc, _)| s == &service && rpc == method),
                "the matrix misses {service}.{method}"
            );
        }
    }
}

#[tokio::test]
async fn every_role_gets_exactly_its_answer_from_every_rpc() {
    init_logs();
    let schema = TestSchema::new().await;
    let stack = SecureStack::start(&schema, auth(), TlsConfig::default()).await;
    let agent = stack
        .agent(GATEWAY, GATEWAY_CREDENTIAL, Arc::new(RecordingHandler::default()))
        .await;
    let fx = matrix_fixtures(stack, &agent).await;

    let tokens: [Option<String>; 7] = [
        None,
        Some(token("vera@acme.example", &["viewer"])),
        Some(token("olga@acme.example", &["operator"])),
        Some(token(ADMIN, &["admin"])),
        Some(token("mallory@acme.example", &[])),
        Some(SERVICE_TOKEN.to_owned()),
        Some(token("trudy@acme.example", &["service"])),
    ];
    let mut channels = Vec::new();
    for token in &tokens {
        channels.push(fx.stack.channel(token.as_deref()).await);
    }

    let wrong = matrix_mismatches(&channels, &fx).await;
    assert!(wrong.is_empty(), "the matrix does not hold:\n{}", wrong.join("\n"));

    assert_the_matrix_covers_every_rpc();

    // Refusals say what is missing, and what the caller has.
    let status = call("TerminationService", "Terminate", channels[1].clone(), &fx)
        .await
        .unwrap_err();
    assert_eq!(
        status.message(),
        format!(
            "session {} belongs to another user; requires the `sessions:terminate` permission (operator); you \
             have: viewer",
            fx.victim
        )
    );
    let status = call("TerminationService", "Terminate(all)", channels[2].clone(), &fx)
        .await
        .unwrap_err();
    assert_eq!(
        status.message(),
        "requires the `sessions:terminate-all` permission (admin); you have: operator"
    );
    let status = call("PolicyService", "CreatePolicy", channels[2].clone(), &fx)
        .await
        .unwrap_err();
    assert_eq!(
        status.message(),
        "requires the `policies:write` permission (admin); you have: operator"
    );
    let status = call("SessionRegistry", "ListSessions", channels[0].clone(), &fx)
        .await
        .unwrap_err();
    assert!(
        status.message().starts_with("missing bearer token"),
        "{}",
        status.message()
    );

    // Health and reflection stay open to probes and tools.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channels[0].clone());
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health without a token");
    assert_eq!(answer.into_inner().status, 1, "SERVING");

    agent.shutdown().await;
    fx.stack.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Own sessions
// ---------------------------------------------------------------------------------------------

/// Lists, the change feed's snapshot and gets are narrowed to alice's own sessions.
async fn her_reads_are_narrowed_to_her_own(
    registry: &mut SessionRegistryClient<ServiceChannel>,
    alice_1: &str,
    bob_1: &str,
) {
    // Lists are narrowed to her own sessions; asking for someone else's is refused.
    let listed = registry
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.total_size, 3);
    assert!(listed.sessions.iter().all(|session| session.user == ALICE));
    let refused = registry
        .list_sessions(pb::ListSessionsRequest {
            filter: Some(pb::SessionFilter {
                user: BOB.into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // So is the change feed's snapshot.
    let mut feed = registry
        .watch_sessions(pb::WatchSessionsRequest {
            include_snapshot: true,
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let mut shown = Vec::new();
    while let Some(event) = feed.message().await.expect("event") {
        if event.kind == pb::SessionEventKind::SnapshotDone as i32 {
            break;
        }
        shown.push(event.session.expect("a session").user);
    }
    assert_eq!(shown, vec![ALICE; 3]);

    // Getting: her own yes, bob's no.
    registry
        .get_session(pb::GetSessionRequest { id: alice_1.to_owned() })
        .await
        .expect("her own session");
    let refused = registry
        .get_session(pb::GetSessionRequest { id: bob_1.to_owned() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("belongs to another user"),
        "{}",
        refused.message()
    );
}

/// Ending someone else's session is refused, also when mixed with her own, and nothing ends.
async fn others_sessions_stay_out_of_her_reach(
    stack: &SecureStack,
    termination: &mut TerminationServiceClient<ServiceChannel>,
    alice_1: &str,
    bob_1: &str,
) {
    // Ending someone else's session is refused, also when mixed with her own, and nothing ends.
    for selector in [
        ids(&[bob_1]),
        ids(&[alice_1, bob_1]),
        selector(Target::User(BOB.into())),
        selector(Target::GatewayId(GATEWAY.into())),
        selector(Target::ResourceName("prod-db-01".into())),
    ] {
        let refused = termination.terminate(terminate(selector.clone())).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{selector:?}");
    }
    let refused = termination
        .terminate(terminate(selector(Target::All(pb::AllSessions { idle_only: false }))))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("sessions:terminate-all"),
        "{}",
        refused.message()
    );
    let live = stack
        .registry
        .resolve(&pb::SessionSelector {
            target: Some(Target::User(BOB.into())),
        })
        .await
        .expect("resolve");
    assert_eq!(live.sessions.len(), 1, "bob's session lives on");
}

#[tokio::test]
async fn a_plain_user_sees_and_ends_their_own_sessions_only() {
    init_logs();
    let schema = TestSchema::new().await;
    let stack = SecureStack::start(&schema, auth(), TlsConfig::default()).await;
    let handler = Arc::new(RecordingHandler::default());
    let agent = stack.agent(GATEWAY, GATEWAY_CREDENTIAL, handler.clone()).await;
    let alice_1 = open(&agent, ALICE).await;
    let alice_2 = open(&agent, ALICE).await;
    let alice_3 = open(&agent, ALICE).await;
    let bob_1 = open(&agent, BOB).await;

    let alice = stack.channel(Some(&token(ALICE, &[]))).await;
    let mut registry = SessionRegistryClient::new(alice.clone());
    let mut termination = TerminationServiceClient::new(alice);

    her_reads_are_narrowed_to_her_own(&mut registry, &alice_1, &bob_1).await;

    others_sessions_stay_out_of_her_reach(&stack, &mut termination, &alice_1, &bob_1).await;

    // Her own: by id, and all of hers by user. Recorded as self-service, by her.
    let ended = termination
        .terminate(terminate(ids(&[&alice_1])))
        .await
        .expect("her own session")
        .into_inner();
    assert_eq!(ended.actor, ALICE);
    assert_eq!(ended.reason, pb::EndReason::UserSelfService as i32);
    assert_eq!(ended.session_count, 1);
    // `Terminate` returns once its commands are recorded, not once the gateway ended them: wait
    // for the end, so that "all of hers" below covers exactly the two still live.
    eventually("her first session to have ended", || {
        let registry = stack.registry.clone();
        let alice_1 = alice_1.clone();
        async move {
            let resolved = registry
                .resolve(&pb::SessionSelector {
                    target: Some(Target::SessionIds(pb::SessionIds { ids: vec![alice_1] })),
                })
                .await
                .ok()?;
            (resolved.already_ended.len() == 1).then_some(())
        }
    })
    .await;
    let ended = termination
        .terminate(terminate(selector(Target::User(ALICE.into()))))
        .await
        .expect("all her sessions")
        .into_inner();
    assert_eq!(ended.actor, ALICE);
    let mut covered: Vec<String> = ended
        .commands
        .iter()
        .map(|command| command.session_id.clone())
        .collect();
    covered.sort();
    let mut expected = vec![alice_2, alice_3];
    expected.sort();
    assert_eq!(covered, expected);
    eventually("alice's sessions to end at the gateway", || {
        let handler = handler.clone();
        async move { (handler.terminated.lock().expect("lock").len() == 3).then_some(()) }
    })
    .await;
    assert!(
        handler
            .terminated
            .lock()
            .expect("lock")
            .iter()
            .all(|command| command.session_id != bob_1)
    );

    agent.shutdown().await;
    stack.stop().await;
}

/// An administrator ends one of bob's sessions and one of alice's; returns once both have ended.
async fn end_one_of_each(stack: &SecureStack, bob_2: &str, alice_2: &str) {
    // An administrator ends one of bob's sessions and one of alice's.
    let mut admin = TerminationServiceClient::new(stack.channel(Some(&token(ADMIN, &["admin"]))).await);
    admin
        .terminate(terminate(ids(&[bob_2, alice_2])))
        .await
        .expect("the administrator ends them");
    eventually("both sessions to have ended", || {
        let registry = stack.registry.clone();
        let (bob_2, alice_2) = (bob_2.to_owned(), alice_2.to_owned());
        async move {
            let resolved = registry
                .resolve(&pb::SessionSelector {
                    target: Some(Target::SessionIds(pb::SessionIds {
                        ids: vec![bob_2, alice_2],
                    })),
                })
                .await
                .ok()?;
            (resolved.already_ended.len() == 2).then_some(())
        }
    })
    .await;
}

/// Every selector about others gets the same refusal, which names nobody.
async fn others_get_one_answer(
    registry: &mut SessionRegistryClient<ServiceChannel>,
    alice_1: &str,
    bob_1: &str,
    bob_2: &str,
) {
    let unknown_id = "0b9d7c3e-1f2a-4c5d-8e6f-7a8b9c0d1e2f";
    let others = [
        ("bob's live session", ids(&[bob_1])),
        ("bob's ended session", ids(&[bob_2])),
        ("an unknown session", ids(&[unknown_id])),
        ("hers and bob's", ids(&[alice_1, bob_1])),
        ("bob, who has sessions", selector(Target::User(BOB.into()))),
        (
            "a user never seen",
            selector(Target::User("nobody@acme.example".into())),
        ),
        ("a group with sessions", selector(Target::Group("engineering".into()))),
        ("a group never seen", selector(Target::Group("no-such-group".into()))),
        ("a device with sessions", selector(Target::Device("bob-laptop".into()))),
        ("a device never seen", selector(Target::Device("nobody-laptop".into()))),
        ("a network with sessions", selector(Target::Cidr("81.2.69.0/24".into()))),
        ("a network without", selector(Target::Cidr("198.51.100.0/24".into()))),
        ("a gateway with sessions", selector(Target::GatewayId(GATEWAY.into()))),
        ("a gateway never seen", selector(Target::GatewayId("gw-nowhere".into()))),
        (
            "a resource with sessions",
            selector(Target::ResourceName("prod-db-01".into())),
        ),
        (
            "a resource never seen",
            selector(Target::ResourceName("no-such-db".into())),
        ),
        (
            "everything",
            selector(Target::All(pb::AllSessions { idle_only: false })),
        ),
    ];
    let mut answers = Vec::new();
    for (case, selector) in others {
        let refused = registry
            .resolve_sessions(pb::ResolveSessionsRequest { selector })
            .await
            .expect_err(case);
        answers.push((case, refused.code(), refused.message().to_owned()));
    }
    let (_, code, message) = answers[0].clone();
    assert_eq!(code, Code::PermissionDenied);
    for (case, other_code, other_message) in &answers {
        assert_eq!((*other_code, other_message), (code, &message), "{case}");
    }
    for named in [bob_1, bob_2, unknown_id, BOB, "bob"] {
        assert!(!message.contains(named), "{message}");
    }
}

/// A plain user asking `ResolveSessions` about anything but their own sessions gets one answer —
/// the same code and text whether the target exists, has live sessions, has ended ones, or was
/// never seen — so the answer tells them nothing about other people.
#[tokio::test]
async fn a_plain_user_learns_nothing_about_others_from_resolve() {
    init_logs();
    let schema = TestSchema::new().await;
    let stack = SecureStack::start(&schema, auth(), TlsConfig::default()).await;
    let handler = Arc::new(RecordingHandler::default());
    let agent = stack.agent(GATEWAY, GATEWAY_CREDENTIAL, handler.clone()).await;
    let alice_1 = open(&agent, ALICE).await;
    let alice_2 = open(&agent, ALICE).await;
    let bob_1 = open(&agent, BOB).await;
    let bob_2 = open(&agent, BOB).await;

    end_one_of_each(&stack, &bob_2, &alice_2).await;

    let mut registry = SessionRegistryClient::new(stack.channel(Some(&token(ALICE, &[]))).await);
    others_get_one_answer(&mut registry, &alice_1, &bob_1, &bob_2).await;

    // Her own still resolve: live by id and by her user, ended by id.
    let own = registry
        .resolve_sessions(pb::ResolveSessionsRequest {
            selector: ids(&[&alice_1, &alice_2]),
        })
        .await
        .expect("her own ids")
        .into_inner();
    assert_eq!(own.sessions.len(), 1);
    assert_eq!(own.sessions[0].id, alice_1);
    assert_eq!(own.already_ended, vec![alice_2.clone()]);
    let own = registry
        .resolve_sessions(pb::ResolveSessionsRequest {
            selector: selector(Target::User(ALICE.into())),
        })
        .await
        .expect("her own user")
        .into_inner();
    assert_eq!(own.sessions.len(), 1);

    // A malformed selector is still refused as such (it depends on the request alone).
    let refused = registry
        .resolve_sessions(pb::ResolveSessionsRequest {
            selector: ids(&["not-a-uuid"]),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    agent.shutdown().await;
    stack.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Gateways
// ---------------------------------------------------------------------------------------------

/// An agent hears only its own gateway's commands: one linked as each gateway, a session on each,
/// the one on B ended. Returns the agents (A, B).
async fn agents_hear_only_their_own_commands(stack: &SecureStack) -> (vigil_agent::Agent, vigil_agent::Agent) {
    // An agent hears only its own gateway's commands.
    let handler_a = Arc::new(RecordingHandler::default());
    let handler_b = Arc::new(RecordingHandler::default());
    let agent_a = stack.agent(GATEWAY, GATEWAY_CREDENTIAL, handler_a.clone()).await;
    let agent_b = stack.agent(OTHER_GATEWAY, OTHER_CREDENTIAL, handler_b.clone()).await;
    let on_b = open(&agent_b, BOB).await;
    let on_a = open(&agent_a, ALICE).await;
    stack
        .terminator
        .terminate("ops", &terminate(ids(&[&on_b])))
        .await
        .expect("terminate");
    eventually("gateway B to be told", || {
        let handler_b = handler_b.clone();
        async move { (!handler_b.terminated.lock().expect("lock").is_empty()).then_some(()) }
    })
    .await;
    assert!(handler_a.terminated.lock().expect("lock").is_empty());
    assert_eq!(
        agent_a.sessions().len(),
        1,
        "gateway A still holds its own session {on_a}"
    );
    (agent_a, agent_b)
}

#[tokio::test]
async fn a_gateway_speaks_for_itself_only() {
    init_logs();
    let schema = TestSchema::new().await;
    let stack = SecureStack::start(&schema, auth(), TlsConfig::default()).await;
    let plain = || async {
        vigil_runtime::server::connect_channel(&stack.url, Duration::from_secs(5))
            .await
            .expect("connect")
    };

    let link = open_link(plain().await, gateway_hello(GATEWAY, GATEWAY_CREDENTIAL)).await;
    assert!(link.is_ok(), "its own credential: {:?}", link.err());
    drop(link);

    let refusals = [
        (
            gateway_hello(GATEWAY, "wrong"),
            Code::Unauthenticated,
            "invalid credential for gateway gw-sec",
        ),
        (gateway_hello(GATEWAY, ""), Code::Unauthenticated, "must authenticate"),
        (
            gateway_hello("gw-unknown", "anything"),
            Code::Unauthenticated,
            "invalid credential",
        ),
        // Gateway A's credential, claiming to be gateway B.
        (
            gateway_hello(OTHER_GATEWAY, GATEWAY_CREDENTIAL),
            Code::PermissionDenied,
            "belongs to another gateway",
        ),
        (
            gateway_hello("gw-unknown", GATEWAY_CREDENTIAL),
            Code::PermissionDenied,
            "belongs to another gateway",
        ),
    ];
    for (hello, code, words) in refusals {
        let described = format!("{}/{:?}", hello.gateway_id, hello.credential);
        let status = open_link(plain().await, hello).await.map(drop).expect_err("refused");
        assert_eq!(status.code(), code, "{described}: {status:?}");
        assert!(status.message().contains(words), "{described}: {}", status.message());
    }
    // The refused gateways were never recorded as linked.
    let gateways = stack.registry.store().list_gateways(false).await.expect("gateways");
    assert!(gateways.iter().all(|gateway| gateway.id == GATEWAY), "{gateways:?}");

    let (agent_a, agent_b) = agents_hear_only_their_own_commands(&stack).await;

    // The SDK reports the refusal and does not hammer the registry.
    let refused = vigil_agent::Agent::start(
        vigil_agent::AgentConfig::new(stack.url.clone(), OTHER_GATEWAY).with_credential(GATEWAY_CREDENTIAL),
        Arc::new(RecordingHandler::default()),
    );
    let error = refused.wait_connected(PATIENCE).await.expect_err("refused");
    assert!(error.to_string().contains("another gateway"), "{error}");
    refused.shutdown().await;

    agent_a.shutdown().await;
    agent_b.shutdown().await;
    stack.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// What `ListSessions` answers with this `authorization` header.
async fn list_with_header(stack: &SecureStack, header: &str) -> Result<(), Status> {
    let channel = vigil_runtime::server::connect_channel(&stack.url, Duration::from_secs(5))
        .await
        .expect("connect");
    let mut request = Request::new(pb::ListSessionsRequest::default());
    request
        .metadata_mut()
        .insert("authorization", header.parse().expect("ascii header"));
    SessionRegistryClient::new(channel)
        .list_sessions(request)
        .await
        .map(drop)
}

fn encode(claims: &serde_json::Value, header: &Header, key: &EncodingKey) -> String {
    jsonwebtoken::encode(header, claims, key).expect("sign")
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[tokio::test]
async fn expired_badly_signed_and_malformed_tokens_are_refused() {
    init_logs();
    let schema = TestSchema::new().await;
    let stack = SecureStack::start(&schema, auth(), TlsConfig::default()).await;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let hs256 = Header::new(Algorithm::HS256);

    let good = token("vera@acme.example", &["viewer"]);
    list_with_header(&stack, &format!("Bearer {good}"))
        .await
        .expect("a good token");

    let cases = [
        (
            format!(
                "Bearer {}",
                encode(
                    &serde_json::json!({"sub": "vera", "roles": ["viewer"], "exp": now() - 3600}),
                    &hs256,
                    &key
                )
            ),
            "token expired",
        ),
        (
            format!(
                "Bearer {}",
                issue_hs256(
                    "another-secret-that-is-long-enough-000",
                    "vera",
                    &["admin"],
                    Duration::from_secs(60)
                )
                .expect("sign")
            ),
            "token signature is invalid",
        ),
        (
            format!(
                "Bearer {}",
                encode(
                    &serde_json::json!({"roles": ["admin"], "exp": now() + 60}),
                    &hs256,
                    &key
                )
            ),
            "token lacks the `sub` claim",
        ),
        (
            format!(
                "Bearer {}",
                encode(&serde_json::json!({"sub": "vera", "roles": ["viewer"]}), &hs256, &key)
            ),
            "token lacks the `exp` claim",
        ),
        ("Bearer not.a.jwt".to_owned(), "malformed token"),
        ("Bearer eyJhbGciOiJIUzI1NiJ9.e30".to_owned(), "unknown token"),
        ("Bearer opaque-but-unknown".to_owned(), "unknown token"),
        (
            format!("Basic {good}"),
            "the authorization header must be `Bearer <token>`",
        ),
        // A token tampered with after signing: roles raised from viewer to admin.
        (format!("Bearer {}", tamper(&good)), "token signature is invalid"),
    ];
    for (header, reason) in cases {
        let status = list_with_header(&stack, &header).await.expect_err(&header);
        assert_eq!(status.code(), Code::Unauthenticated, "{header}: {status:?}");
        assert_eq!(status.message(), reason, "{header}");
    }
    stack.stop().await;
}

/// The token with its payload replaced by one granting `admin`, signature kept.
fn tamper(token: &str) -> String {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let (header, signature) = (parts.next().unwrap_or_default(), parts.nth(1).unwrap_or_default());
    let forged = Claims {
        sub: "vera@acme.example".into(),
        roles: vec!["admin".into()],
        exp: now() + 600,
        iss: None,
        aud: None,
    };
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
    format!("{header}.{payload}.{signature}")
}

/// A 2048-bit RSA key for RS256 tokens (generating one at test time takes seconds in a debug build).
const RSA_TEST_KEY: &str = include_str!("data/rsa-test-key.pem");

/// A JWKS file in `dir` with an RSA key (`rsa-1`) and an EC key (`ec-1`); their signing keys.
fn write_jwks(dir: &std::path::Path) -> (std::path::PathBuf, EncodingKey, EncodingKey) {
    let rsa = EncodingKey::from_rsa_pem(RSA_TEST_KEY.as_bytes()).expect("RSA key");
    let ec_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
    let ec = EncodingKey::from_ec_pem(ec_pair.serialize_pem().as_bytes()).expect("EC key");
    let mut rsa_jwk = Jwk::from_encoding_key(&rsa, Algorithm::RS256).expect("RSA JWK");
    rsa_jwk.common.key_id = Some("rsa-1".into());
    let mut ec_jwk = Jwk::from_encoding_key(&ec, Algorithm::ES256).expect("EC JWK");
    ec_jwk.common.key_id = Some("ec-1".into());
    let jwks = dir.join("jwks.json");
    std::fs::write(
        &jwks,
        serde_json::to_vec(&JwkSet {
            keys: vec![rsa_jwk, ec_jwk],
        })
        .expect("json"),
    )
    .expect("write the JWKS");
    (jwks, rsa, ec)
}

#[tokio::test]
async fn rs256_and_es256_tokens_are_checked_against_the_jwks() {
    init_logs();
    let dir = tempdir::TempDir::new();
    let (jwks, rsa, ec) = write_jwks(dir.path());

    let schema = TestSchema::new().await;
    let config = AuthConfig {
        jwks_file: Some(jwks),
        issuer: Some("https://idp.acme.example".into()),
        audience: Some("vigil".into()),
        ..AuthConfig::required()
    };
    let stack = SecureStack::start(&schema, config, TlsConfig::default()).await;

    let claims = |aud: &str, iss: &str| {
        serde_json::json!({
            "sub": "vera@acme.example",
            "roles": ["viewer"],
            "exp": now() + 600,
            "iss": iss,
            "aud": aud,
        })
    };
    let good = claims("vigil", "https://idp.acme.example");
    let header = |alg: Algorithm, kid: &str| Header {
        kid: Some(kid.into()),
        ..Header::new(alg)
    };

    for (name, token) in [
        ("RS256", encode(&good, &header(Algorithm::RS256, "rsa-1"), &rsa)),
        ("ES256", encode(&good, &header(Algorithm::ES256, "ec-1"), &ec)),
        ("ES256 without kid", encode(&good, &Header::new(Algorithm::ES256), &ec)),
    ] {
        list_with_header(&stack, &format!("Bearer {token}"))
            .await
            .unwrap_or_else(|status| panic!("{name}: {status:?}"));
    }

    let stranger = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
    let stranger = EncodingKey::from_ec_pem(stranger.serialize_pem().as_bytes()).expect("EC key");
    let refused = [
        (
            encode(&good, &header(Algorithm::ES256, "ec-1"), &stranger),
            "token signature is invalid",
        ),
        (
            encode(&good, &header(Algorithm::ES256, "ec-9"), &ec),
            "no configured key has the token's key id \"ec-9\"",
        ),
        (
            encode(
                &claims("someone-else", "https://idp.acme.example"),
                &header(Algorithm::RS256, "rsa-1"),
                &rsa,
            ),
            "token audience is not accepted",
        ),
        (
            encode(
                &claims("vigil", "https://evil.example"),
                &header(Algorithm::ES256, "ec-1"),
                &ec,
            ),
            "token issuer is not accepted",
        ),
        (token("vera", &["viewer"]), "HS256 tokens are not accepted here"),
    ];
    for (token, reason) in refused {
        let status = list_with_header(&stack, &format!("Bearer {token}"))
            .await
            .expect_err(reason);
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), reason);
    }
    stack.stop().await;
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// A CA, and certificates it signs.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate with these names (DNS names, or `urn:` URIs), for a server or a client.
    fn leaf(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        for name in names {
            params.subject_alt_names.push(if name.starts_with("urn:") {
                SanType::URI((*name).try_into().expect("URI"))
            } else if let Ok(ip) = name.parse() {
                SanType::IpAddress(ip)
            } else {
                SanType::DnsName((*name).try_into().expect("DNS name"))
            });
        }
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().expect("key");
        let certificate = params.signed_by(&key, &self.issuer).expect("sign");
        (certificate.pem(), key.serialize_pem())
    }
}

/// Writes `contents` to `name` in `dir`.
fn write(dir: &tempdir::TempDir, name: &str, contents: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).expect("write");
    path
}

/// A gateway with a client certificate (of `ca`) naming it needs no credential; the certificate
/// does not make it any other gateway; one of `stranger_ca` proves nothing.
async fn client_certificates_name_their_gateway(stack: &SecureStack, ca: &TestCa, stranger_ca: &TestCa) {
    let trusting = |ca: &TestCa| ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.pem()));
    // A gateway with a client certificate naming it needs no credential; the certificate does not
    // make it any other gateway.
    let (gateway_cert, gateway_key) = ca.leaf(&["gw-tls"], ExtendedKeyUsagePurpose::ClientAuth);
    let gateway_tls = trusting(ca).identity(TlsIdentity::from_pem(gateway_cert, gateway_key));
    let gateway_channel = || async {
        tonic::transport::Endpoint::from_shared(stack.url.clone())
            .expect("url")
            .tls_config(gateway_tls.clone())
            .expect("tls")
            .connect()
            .await
            .expect("mTLS connects")
    };
    let link = open_link(gateway_channel().await, gateway_hello("gw-tls", "")).await;
    assert!(link.is_ok(), "its certificate names it: {:?}", link.err());
    let status = open_link(gateway_channel().await, gateway_hello(GATEWAY, ""))
        .await
        .map(drop)
        .expect_err("another gateway");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("names gw-tls, not gateway gw-sec"),
        "{}",
        status.message()
    );
    // A verified client certificate is a gateway's identity on the link and nothing more: without
    // a token it reaches neither the internal RPCs (the `service` role comes from service tokens
    // only) nor the public ones.
    let internal = TerminationServiceClient::new(gateway_channel().await)
        .list_pending_commands(pb::ListPendingCommandsRequest {
            gateway_id: "gw-tls".into(),
        })
        .await
        .map(drop)
        .expect_err("a client certificate grants no role");
    assert_eq!(internal.code(), Code::Unauthenticated, "{}", internal.message());
    let public = SessionRegistryClient::new(gateway_channel().await)
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .map(drop)
        .expect_err("a client certificate grants no role");
    assert_eq!(public.code(), Code::Unauthenticated, "{}", public.message());

    // A certificate from another CA is refused at the handshake, before any hello.
    let (forged_cert, forged_key) = stranger_ca.leaf(&["gw-tls"], ExtendedKeyUsagePurpose::ClientAuth);
    let forged = trusting(ca).identity(TlsIdentity::from_pem(forged_cert, forged_key));
    let forged_link = match tonic::transport::Endpoint::from_shared(stack.url.clone())
        .expect("url")
        .tls_config(forged)
        .expect("tls")
        .connect()
        .await
    {
        Ok(channel) => open_link(channel, gateway_hello("gw-tls", "")).await.map(drop),
        Err(error) => Err(Status::unavailable(error.to_string())),
    };
    assert!(forged_link.is_err(), "a certificate of another CA proves nothing");
}

#[tokio::test]
async fn tls_with_the_right_ca_connects_and_a_wrong_ca_fails_the_handshake() {
    init_logs();
    let dir = tempdir::TempDir::new();
    let ca = TestCa::new("Vigil test CA");
    let stranger_ca = TestCa::new("Somebody else's CA");
    let (server_cert, server_key) = ca.leaf(&["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let tls = TlsConfig {
        cert: Some(write(&dir, "server.pem", &server_cert)),
        key: Some(write(&dir, "server.key", &server_key)),
        client_ca: Some(write(&dir, "ca.pem", &ca.pem())),
        ..TlsConfig::default()
    };
    let schema = TestSchema::new().await;
    let stack = SecureStack::start(&schema, auth(), tls).await;
    assert!(stack.url.starts_with("https://localhost:"), "{}", stack.url);
    let viewer = token("vera@acme.example", &["viewer"]);
    let trusting = |ca: &TestCa| ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.pem()));

    // The right CA: connected, and the token still decides.
    let channel = stack
        .connector(Some(&viewer), Some(trusting(&ca)))
        .connect("url", &stack.url, Duration::from_secs(5))
        .await
        .expect("the right CA connects");
    SessionRegistryClient::new(channel)
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .expect("a call over TLS");

    // A CA that did not sign the server's certificate: the handshake fails.
    let error = stack
        .connector(Some(&viewer), Some(trusting(&stranger_ca)))
        .connect("url", &stack.url, Duration::from_secs(5))
        .await
        .expect_err("a wrong CA must not connect");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "the failure is the certificate: {error}"
    );

    // Plaintext to a TLS port gets nowhere either.
    let plaintext = stack
        .connector(Some(&viewer), None)
        .connect("url", &format!("http://{}", stack.addr), Duration::from_secs(2))
        .await;
    if let Ok(channel) = plaintext {
        let result = SessionRegistryClient::new(channel)
            .list_sessions(pb::ListSessionsRequest::default())
            .await;
        assert!(result.is_err(), "plaintext must not be served");
    }

    client_certificates_name_their_gateway(&stack, &ca, &stranger_ca).await;

    stack.stop().await;
}

#[tokio::test]
async fn a_server_that_must_not_run_in_plaintext_refuses_to_start() {
    // A server that refuses returns at once; one that serves answers on loopback until stopped.
    let serve = |config: ServerConfig, auth: AuthConfig, addr: &'static str| async move {
        let server = Server::new(config)
            .with_security(&auth, &TlsConfig::default())
            .expect("valid settings");
        let listener = vigil_runtime::server::bind(addr.parse().expect("address"))
            .await
            .expect("bind");
        let url = format!("http://127.0.0.1:{}", listener.local_addr().expect("address").port());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let mut serving = tokio::spawn(server.serve(listener, shutdown.clone()));
        let answering = eventually("the server to answer", || {
            let url = url.clone();
            async move {
                vigil_runtime::server::connect_channel(&url, Duration::from_secs(1))
                    .await
                    .ok()
                    .map(drop)
            }
        });
        tokio::select! {
            result = &mut serving => return result.expect("join"),
            () = answering => {}
        }
        shutdown.cancel();
        serving.await.expect("join")
    };

    let production = ServerConfig {
        production: true,
        ..ServerConfig::default()
    };
    let error = serve(production.clone(), AuthConfig::default(), "127.0.0.1:0")
        .await
        .expect_err("production without TLS");
    assert!(matches!(error, ServerError::Security(_)), "{error}");
    assert!(error.to_string().contains("server.production"), "{error}");

    let tokens = AuthConfig {
        hs256_secret: Some(Secret::new(SECRET)),
        ..AuthConfig::required()
    };
    let error = serve(ServerConfig::default(), tokens.clone(), "0.0.0.0:0")
        .await
        .expect_err("bearer tokens in plaintext on the network");
    assert!(
        error
            .to_string()
            .contains("refusing to take bearer tokens in plaintext"),
        "{error}"
    );

    // Loopback, or an explicit override (TLS ends in a sidecar), may run in plaintext.
    serve(ServerConfig::default(), tokens.clone(), "127.0.0.1:0")
        .await
        .expect("loopback");
    serve(
        ServerConfig {
            allow_plaintext: true,
            ..production
        },
        tokens,
        "0.0.0.0:0",
    )
    .await
    .expect("explicitly allowed");
}

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

/// Policy changes are recorded with who, what, and whether it was done.
async fn policy_changes_are_audited(admin: ServiceChannel) {
    // Policy changes: who, what, and whether it was done.
    let mut policies = PolicyServiceClient::new(admin);
    let limit_one = pb::PolicyRules {
        max_concurrent_sessions: Some(1),
        concurrency_action: pb::ConcurrencyAction::DenyNew as i32,
        ..Default::default()
    };
    let created = policies
        .create_policy(user_policy("carol@acme.example", limit_one))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(created.updated_by, ADMIN);
    let duplicate = policies
        .create_policy(user_policy("carol@acme.example", limit_one))
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    let events = policies
        .list_audit_events(pb::ListAuditEventsRequest {
            actor: ADMIN.into(),
            ..Default::default()
        })
        .await
        .expect("audit events")
        .into_inner()
        .events;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events
            .iter()
            .all(|event| event.actor == ADMIN && event.action == "policy.create")
    );
    assert_eq!(events[0].outcome, pb::AuditOutcome::Failed as i32, "newest first");
    assert!(events[0].detail.contains("exists already"), "{}", events[0].detail);
    assert_eq!(events[1].outcome, pb::AuditOutcome::Succeeded as i32);
    assert!(events[1].target.contains(&created.id), "{}", events[1].target);
}

/// `sessionctl audit` reads the termination, the policy changes and the denial, with the caller's
/// own token.
async fn sessionctl_reads_the_trail(stack: &SecureStack, admin_token: &str) {
    // `sessionctl audit` reads all three, with the caller's own token.
    let args = [
        "sessionctl",
        "--server",
        stack.url.as_str(),
        "--token",
        admin_token,
        "-o",
        "json",
        "audit",
        "--since",
        "1h",
    ];
    let cli = <sessionctl::Cli as clap::Parser>::try_parse_from(args).expect("arguments parse");
    let mut out = Vec::new();
    sessionctl::run(cli, &mut out).await.expect("sessionctl audit");
    let trail: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
    let events = trail["events"].as_array().expect("events");
    let find = |action: &str| {
        events
            .iter()
            .filter(|event| event["action"] == action)
            .cloned()
            .collect::<Vec<_>>()
    };
    let ended = find("sessions.terminate");
    assert_eq!(ended.len(), 1, "{trail:#}");
    assert_eq!(ended[0]["actor"], ADMIN);
    assert_eq!(find("policy.create").len(), 2, "{trail:#}");
    let denials = find("admission.deny");
    assert_eq!(denials.len(), 1, "{trail:#}");
    assert_eq!(denials[0]["actor"], "admission");
    assert!(
        denials[0]["target"]
            .as_str()
            .unwrap_or_default()
            .starts_with("carol@acme.example"),
        "{trail:#}"
    );
}

#[tokio::test]
async fn the_audit_trail_names_the_real_caller() {
    init_logs();
    let schema = TestSchema::new().await;
    let stack = SecureStack::start(&schema, auth(), TlsConfig::default()).await;
    let agent = stack
        .agent(GATEWAY, GATEWAY_CREDENTIAL, Arc::new(RecordingHandler::default()))
        .await;
    let admin_token = token(ADMIN, &["admin"]);
    let admin = stack.channel(Some(&admin_token)).await;

    // A termination records the authenticated caller; there is no request field to say otherwise.
    let victim = open(&agent, ALICE).await;
    let termination = TerminationServiceClient::new(admin.clone())
        .terminate(pb::TerminateRequest {
            note: "actor: someone-else@acme.example".into(),
            ..terminate(ids(&[&victim]))
        })
        .await
        .expect("terminate")
        .into_inner();
    assert_eq!(termination.actor, ADMIN);

    policy_changes_are_audited(admin.clone()).await;

    // A refused admission is recorded too.
    open(&agent, "carol@acme.example").await;
    let refused = agent
        .open_session(start(
            "carol@acme.example",
            "prod-db-01",
            ResourceType::Ssh,
            "81.2.69.142",
        ))
        .await
        .expect("answered");
    assert!(!refused.allowed);
    let denied = SessionRegistryClient::new(admin.clone())
        .list_sessions(pb::ListSessionsRequest {
            filter: Some(pb::SessionFilter {
                denied_only: true,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("denied admissions")
        .into_inner()
        .sessions;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].user, "carol@acme.example");
    assert_eq!(denied[0].status, SessionStatus::Disconnected as i32);

    sessionctl_reads_the_trail(&stack, &admin_token).await;

    // A plain user may not read the trail.
    let mallory = stack.channel(Some(&token("mallory@acme.example", &[]))).await;
    let status = PolicyServiceClient::new(mallory)
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    agent.shutdown().await;
    stack.stop().await;
}
