//! Policy end to end: a real registry and termination service on PostgreSQL and Redis, real
//! agents, the policy engine attached to the registry for admission, and sweepers on a manual
//! clock — tests move time forward by half an hour instead of waiting for it. (Session
//! timestamps are the registry's real ones; the manual clock starts at the real time.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::Code;
use tonic::transport::Channel;
use vigil_agent::{Admission, Agent};
use vigil_clients::{AdmissionPolicy, RiskAssessor};
use vigil_policy::api::PolicyApi;
use vigil_policy::store::PolicyStore;
use vigil_policy::{ManualClock, PolicyEngine, PolicySettings, Sweeper, SweeperHandle, SweeperStatus};
use vigil_proto::v1 as pb;
use vigil_proto::v1::policy_service_client::PolicyServiceClient;
use vigil_proto::v1::{AdmissionVerdict, ConcurrencyAction, EndReason, ResourceType, SessionStatus};
use vigil_proto::{millis_from_timestamp, timestamp_from_millis};
use vigil_runtime::bus::InProcessBus;
use vigil_runtime::database::DatabaseConfig;
use vigil_runtime::server::{Server, ServerConfig};
use vigil_runtime::{ServiceError, ServiceResult};
use vigil_testkit::eventually_within;
use vigil_tests::*;

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------------
// The world: registry + termination + policy, an agent, a manual clock
// ---------------------------------------------------------------------------------------------

/// What has to outlive the services (dropped last).
#[allow(dead_code)]
enum Keep {
    Schema(TestSchema),
    Dir(tempdir::TempDir),
}

struct World {
    registry: TestRegistry,
    clock: Arc<ManualClock>,
    engine: PolicyEngine,
    handler: Arc<RecordingHandler>,
    agent: Agent,
    _keep: Keep,
}

impl World {
    /// PostgreSQL + Redis, the production pair.
    async fn new() -> Self {
        Self::with_policy(|engine| Arc::new(engine)).await
    }

    /// PostgreSQL + Redis, the registry asking policy through `policy` (made from the engine).
    async fn with_policy(policy: impl FnOnce(PolicyEngine) -> Arc<dyn AdmissionPolicy>) -> Self {
        init_logs();
        let schema = TestSchema::new().await;
        let registry = TestRegistry::with_termination(&schema, &unique_namespace(), test_settings("r1")).await;
        let store = schema.policy_store().await;
        Self::around(registry, store, Keep::Schema(schema), policy).await
    }

    /// SQLite + the in-process bus, the embedded default.
    async fn embedded() -> Self {
        init_logs();
        let dir = tempdir::TempDir::new();
        let config = DatabaseConfig {
            url: format!("sqlite://{}/vigil.db?mode=rwc", dir.path().display()),
            ..DatabaseConfig::default()
        };
        let store = vigil_registry::app::open_store(&config, true)
            .await
            .expect("registry store");
        let termination_store = vigil_termination::app::open_store(&config, true)
            .await
            .expect("termination store");
        let registry = TestRegistry::start_with(
            test_settings("embedded"),
            store,
            Arc::new(InProcessBus::new()),
            Some((termination_store, fast_termination())),
        )
        .await;
        let policy_store = vigil_policy::app::open_store(&config, true)
            .await
            .expect("policy store");
        Self::around(registry, policy_store, Keep::Dir(dir), |engine| Arc::new(engine)).await
    }

    async fn around(
        registry: TestRegistry,
        store: Arc<dyn PolicyStore>,
        keep: Keep,
        policy: impl FnOnce(PolicyEngine) -> Arc<dyn AdmissionPolicy>,
    ) -> Self {
        let clock = Arc::new(ManualClock::starting_now());
        let engine = PolicyEngine::new(store, clock.clone());
        registry.registry.attach_admission_policy(policy(engine.clone()));
        registry
            .registry
            .attach_session_evictor(Arc::new(registry.terminator.clone().expect("termination")));
        let handler = Arc::new(RecordingHandler::default());
        let agent = registry.agent("gw-policy", handler.clone()).await;
        Self {
            registry,
            clock,
            engine,
            handler,
            agent,
            _keep: keep,
        }
    }

    /// Stops the agent and the servers, letting their work in flight finish (before the schema
    /// goes; a transaction left open would hold the schema's drop up).
    async fn finish(self) {
        self.agent.shutdown().await;
        self.registry.stop().await;
    }

    /// A sweeper for this world (every sweeper shares the world's clock and database).
    fn sweeper(&self, settings: PolicySettings) -> SweeperHandle {
        Sweeper::new(
            self.engine.store().clone(),
            Arc::new(self.registry.registry.clone()),
            Arc::new(self.registry.terminator.clone().expect("termination")),
            self.registry.registry.bus().clone(),
            self.clock.clone(),
            settings,
        )
        .start(self.registry.shutdown.child_token())
    }

    /// A sweeper, once it leads.
    async fn leading_sweeper(&self, settings: PolicySettings) -> SweeperHandle {
        let sweeper = self.sweeper(settings);
        let (status, leading) = sweeper.wait_for(PATIENCE, |status| status.leading).await;
        assert!(leading, "the only sweeper should lead: {status:?}");
        sweeper
    }

    async fn admission(&self, user: &str, resource: &str, groups: &[&str], started_ago: Duration) -> Admission {
        let started_at = SystemTime::now() - started_ago;
        let start = pb::SessionStart {
            user_groups: groups.iter().map(|group| group.to_string()).collect(),
            started_at: (!started_ago.is_zero()).then(|| timestamp_from_millis(epoch_millis(started_at))),
            ..start(user, resource, ResourceType::Ssh, "10.20.0.1")
        };
        self.agent.open_session(start).await.expect("the registry answers")
    }

    /// Opens a session that must be admitted; returns its id.
    async fn open(&self, user: &str, resource: &str, groups: &[&str], started_ago: Duration) -> String {
        let admission = self.admission(user, resource, groups, started_ago).await;
        assert!(admission.allowed, "{user} should be admitted: {}", admission.reason);
        admission.session_id
    }

    async fn session(&self, id: &str) -> pb::Session {
        self.registry
            .sessions_client()
            .await
            .get_session(pb::GetSessionRequest { id: id.to_owned() })
            .await
            .expect("the session exists")
            .into_inner()
    }

    fn warnings(&self) -> Vec<pb::IdleWarning> {
        self.handler.idle_warnings.lock().unwrap().clone()
    }

    fn terminations(&self) -> Vec<pb::TerminateCommand> {
        self.handler.terminated.lock().unwrap().clone()
    }

    async fn wait_for_warnings(&self, count: usize) -> Vec<pb::IdleWarning> {
        eventually(&format!("{count} idle warning(s) at the agent"), || async {
            let warnings = self.warnings();
            (warnings.len() >= count).then_some(warnings)
        })
        .await
    }

    async fn wait_for_terminations(&self, count: usize) -> Vec<pb::TerminateCommand> {
        eventually(&format!("{count} terminate command(s) at the agent"), || async {
            let commands = self.terminations();
            (commands.len() >= count).then_some(commands)
        })
        .await
    }

    /// Waits until the registry has ended the session, and returns it.
    async fn ended(&self, id: &str) -> pb::Session {
        let client = self.registry.sessions_client().await;
        eventually("the session to be disconnected", || {
            let mut client = client.clone();
            let id = id.to_owned();
            async move {
                let session = client
                    .get_session(pb::GetSessionRequest { id })
                    .await
                    .ok()?
                    .into_inner();
                (session.status == SessionStatus::Disconnected as i32).then_some(session)
            }
        })
        .await
    }

    async fn global_policy(&self) -> pb::Policy {
        let policies = self.engine.list().await.expect("list").policies;
        policies.into_iter().next().expect("the global policy comes first")
    }

    async fn set_global(&self, rules: pb::PolicyRules) {
        let global = self.global_policy().await;
        self.engine
            .update(
                "test",
                &pb::UpdatePolicyRequest {
                    id: global.id,
                    rules: Some(rules),
                    description: "changed by a test".into(),
                },
            )
            .await
            .expect("update the global policy");
    }

    async fn create(&self, scope: pb::policy_scope::Scope, rules: pb::PolicyRules) -> pb::Policy {
        self.engine
            .create(
                "test",
                &pb::CreatePolicyRequest {
                    scope: Some(pb::PolicyScope { scope: Some(scope) }),
                    rules: Some(rules),
                    description: String::new(),
                },
            )
            .await
            .expect("create a policy")
    }
}

/// Sweeper settings for tests: sweeps every 50 ms, pages of two sessions (so paging is
/// exercised), a lease that a dead leader loses within a second.
fn fast(replica: &str) -> PolicySettings {
    PolicySettings {
        replica: replica.to_owned(),
        sweeper: true,
        sweep_interval: Duration::from_millis(50),
        lease_ttl: Duration::from_millis(900),
        page_size: 2,
        reconcile_interval: Duration::from_secs(3600),
        slot_grace: Duration::from_secs(60),
    }
}

/// Waits until the sweeper has completed `more` further sweeps, and returns its status.
async fn sweeps(sweeper: &SweeperHandle, more: u64) -> SweeperStatus {
    let target = sweeper.status().sweeps + more;
    let (status, reached) = sweeper.wait_for(PATIENCE, |status| status.sweeps >= target).await;
    assert!(reached, "the sweeper should keep sweeping: {status:?}");
    status
}

fn epoch_millis(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn millis(timestamp: Option<&prost_types::Timestamp>) -> i64 {
    millis_from_timestamp(timestamp.expect("a timestamp")).expect("a valid timestamp")
}

fn proto(duration: Duration) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: duration.as_secs() as i64,
        nanos: duration.subsec_nanos() as i32,
    })
}

fn user(name: &str) -> pb::policy_scope::Scope {
    pb::policy_scope::Scope::User(name.into())
}

fn group(name: &str) -> pb::policy_scope::Scope {
    pb::policy_scope::Scope::Group(name.into())
}

fn resource(name: &str) -> pb::policy_scope::Scope {
    pb::policy_scope::Scope::ResourceName(name.into())
}

fn limit(max: u32, action: ConcurrencyAction) -> pb::PolicyRules {
    pb::PolicyRules {
        max_concurrent_sessions: Some(max),
        concurrency_action: action as i32,
        ..Default::default()
    }
}

/// The policy service over gRPC on a random port; stops when the guard drops.
type PolicyClient = PolicyServiceClient<Channel>;

async fn serve(engine: PolicyEngine) -> (PolicyServiceClient<Channel>, DropGuard) {
    let server = Server::new(ServerConfig::default()).add_service(PolicyApi::server(engine));
    server.readiness().set_all(true).await;
    let listener = vigil_runtime::server::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move { server.serve(listener, shutdown).await.expect("serve") }
    });
    let channel = vigil_runtime::server::connect_channel(&url, Duration::from_secs(5))
        .await
        .unwrap();
    (PolicyServiceClient::new(channel), shutdown.drop_guard())
}

// ---------------------------------------------------------------------------------------------
// Policies and precedence
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_specific_policy_wins() {
    let world = World::new().await;
    let (mut client, _server) = serve(world.engine.clone()).await;
    let eng = created(
        &mut client,
        group("eng"),
        pb::PolicyRules {
            idle_timeout: proto(60 * MIN),
            ..Default::default()
        },
    )
    .await;
    let prod_db = created(
        &mut client,
        resource("prod-db"),
        pb::PolicyRules {
            idle_timeout: proto(15 * MIN),
            max_concurrent_sessions: Some(2),
            ..Default::default()
        },
    )
    .await;
    let alice = created(
        &mut client,
        user("alice"),
        pb::PolicyRules {
            idle_warning_after: proto(4 * MIN),
            idle_timeout: proto(5 * MIN),
            ..Default::default()
        },
    )
    .await;
    assert!(
        alice.updated_by.starts_with("anonymous@127.0.0.1"),
        "{}",
        alice.updated_by
    );
    let global = world.global_policy().await;

    let for_alice = effective(&mut client, "alice", &["eng"], "prod-db").await;
    let rules = for_alice.rules.unwrap();
    assert_eq!(rules.idle_timeout, proto(5 * MIN), "user beats resource and group");
    assert_eq!(rules.idle_warning_after, proto(4 * MIN));
    assert_eq!(rules.max_concurrent_sessions, Some(2), "from the resource");
    assert_eq!(
        rules.concurrency_action,
        ConcurrencyAction::DenyNew as i32,
        "the default"
    );
    assert_eq!(rules.max_session_duration, None);
    assert_eq!(for_alice.policy_ids, vec![alice.id.clone(), prod_db.id.clone()]);

    let for_bob = effective(&mut client, "bob", &["eng"], "wiki").await;
    let rules = for_bob.rules.unwrap();
    assert_eq!(rules.idle_timeout, proto(60 * MIN), "group beats global");
    assert_eq!(rules.idle_warning_after, proto(10 * MIN), "inherited from global");
    assert_eq!(rules.max_concurrent_sessions, None);
    assert_eq!(for_bob.policy_ids, vec![eng.id.clone(), global.id.clone()]);

    let listed: Vec<String> = client
        .list_policies(pb::ListPoliciesRequest {})
        .await
        .unwrap()
        .into_inner()
        .policies
        .into_iter()
        .map(|policy| policy.id)
        .collect();
    assert_eq!(
        listed,
        vec![global.id, eng.id, prod_db.id, alice.id],
        "most general first"
    );
    only_alices_idle_session_ends(&world).await;
    world.finish().await;
}

/// A policy created over gRPC, as the service answers it.
async fn created(client: &mut PolicyClient, scope: pb::policy_scope::Scope, rules: pb::PolicyRules) -> pb::Policy {
    let request = pb::CreatePolicyRequest {
        description: "set by the test".into(),
        ..create(Some(scope), rules)
    };
    client.create_policy(request).await.unwrap().into_inner()
}

async fn effective(client: &mut PolicyClient, user: &str, groups: &[&str], resource: &str) -> pb::EffectivePolicy {
    let request = pb::GetEffectivePolicyRequest {
        user: user.into(),
        user_groups: groups.iter().map(|g| g.to_string()).collect(),
        resource_name: resource.into(),
    };
    client.get_effective_policy(request).await.unwrap().into_inner()
}

/// The policies of `the_most_specific_policy_wins` in action: after six idle minutes, only alice's
/// session ends (her own policy gives her five; bob's group and carol's global give more).
async fn only_alices_idle_session_ends(world: &World) {
    let alices = world.open("alice", "prod-db", &["eng"], Duration::ZERO).await;
    let bobs = world.open("bob", "wiki", &["eng"], Duration::ZERO).await;
    let carols = world.open("carol", "wiki", &[], Duration::ZERO).await;
    let sweeper = world.leading_sweeper(fast("p1")).await;
    world.clock.advance(6 * MIN);
    let commands = world.wait_for_terminations(1).await;
    assert_eq!(commands[0].session_id, alices);
    assert_eq!(commands[0].reason, EndReason::IdleTimeout as i32);
    assert_eq!(world.ended(&alices).await.end_reason, EndReason::IdleTimeout as i32);
    sweeps(&sweeper, 3).await;
    assert_eq!(world.terminations().len(), 1);
    assert!(
        world.warnings().is_empty(),
        "nobody else is idle long enough for a warning"
    );
    for live in [bobs, carols] {
        assert_ne!(world.session(&live).await.status, SessionStatus::Disconnected as i32);
    }
    sweeper.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_changes_are_checked_and_explained() {
    let world = World::new().await;
    let (mut client, _server) = serve(world.engine.clone()).await;
    bad_policies_are_refused(&mut client).await;
    let ann = client
        .create_policy(create(Some(user("ann")), limit(2, ConcurrencyAction::EndOldest)))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .create_policy(create(Some(user("ann")), pb::PolicyRules::default()))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    assert!(again.message().contains(&ann.id), "{}", again.message());

    an_update_replaces_the_rules_whole(&mut client, &ann.id).await;
    deletes_are_checked(&world, &mut client, &ann.id).await;

    // Locks are served beside policies (tests/locks.rs covers them): none yet.
    let locks = client
        .list_locks(pb::ListLocksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(locks.locks.is_empty());
    world.finish().await;
}

/// A request for a policy on `scope` with `rules`.
fn create(scope: Option<pb::policy_scope::Scope>, rules: pb::PolicyRules) -> pb::CreatePolicyRequest {
    pb::CreatePolicyRequest {
        scope: scope.map(|scope| pb::PolicyScope { scope: Some(scope) }),
        rules: Some(rules),
        description: String::new(),
    }
}

/// Rules that contradict themselves and scopes that name nothing: INVALID_ARGUMENT, saying why.
async fn bad_policies_are_refused(client: &mut PolicyClient) {
    let refusals = [
        (
            create(
                Some(user("ann")),
                pb::PolicyRules {
                    idle_warning_after: proto(40 * MIN),
                    idle_timeout: proto(30 * MIN),
                    ..Default::default()
                },
            ),
            "rules.idle_warning_after (40m) must be shorter than rules.idle_timeout (30m)",
        ),
        (
            create(
                Some(user("ann")),
                pb::PolicyRules {
                    idle_timeout: Some(prost_types::Duration { seconds: -60, nanos: 0 }),
                    ..Default::default()
                },
            ),
            "rules.idle_timeout must not be negative",
        ),
        (
            create(
                Some(user("ann")),
                pb::PolicyRules {
                    deny_risk_score: Some(0),
                    ..Default::default()
                },
            ),
            "rules.deny_risk_score is 0; it must be between 1 and 100",
        ),
        (create(None, pb::PolicyRules::default()), "scope is required"),
        (
            create(Some(group("")), pb::PolicyRules::default()),
            "scope.group must not be empty",
        ),
    ];
    for (request, reason) in refusals {
        let status = client.create_policy(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains(reason),
            "{:?} should say {reason:?}",
            status.message()
        );
    }
}

/// An update replaces the rules whole; nonsense rules are refused.
async fn an_update_replaces_the_rules_whole(client: &mut PolicyClient, id: &str) {
    let updated = client
        .update_policy(pb::UpdatePolicyRequest {
            id: id.to_owned(),
            rules: Some(pb::PolicyRules {
                deny_risk_score: Some(70),
                ..Default::default()
            }),
            description: "risk only".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let rules = updated.rules.unwrap();
    assert_eq!((rules.max_concurrent_sessions, rules.deny_risk_score), (None, Some(70)));
    assert_eq!(updated.description, "risk only");
    assert_eq!(
        client
            .get_policy(pb::GetPolicyRequest { id: id.to_owned() })
            .await
            .unwrap()
            .into_inner()
            .rules
            .unwrap()
            .deny_risk_score,
        Some(70)
    );
    let nonsense_update = client
        .update_policy(pb::UpdatePolicyRequest {
            id: id.to_owned(),
            rules: Some(pb::PolicyRules {
                idle_warning_after: proto(5 * MIN),
                idle_timeout: proto(Duration::ZERO),
                ..Default::default()
            }),
            description: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(nonsense_update.code(), Code::InvalidArgument);
    assert!(nonsense_update.message().contains("no disconnection to warn about"));
}

/// The global policy cannot be deleted; `id` can, once; then it is gone; a malformed id is refused.
async fn deletes_are_checked(world: &World, client: &mut PolicyClient, id: &str) {
    let global = world.global_policy().await;
    let refused = client
        .delete_policy(pb::DeletePolicyRequest { id: global.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("update its rules instead"));
    client
        .delete_policy(pb::DeletePolicyRequest { id: id.to_owned() })
        .await
        .unwrap();
    for status in [
        client
            .delete_policy(pb::DeletePolicyRequest { id: id.to_owned() })
            .await
            .unwrap_err(),
        client
            .get_policy(pb::GetPolicyRequest { id: id.to_owned() })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::NotFound);
    }
    let garbage = client
        .get_policy(pb::GetPolicyRequest { id: "nope".into() })
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::InvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// The sweeper
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_warned_once_then_disconnected() {
    let world = World::new().await;
    let sweeper = world.leading_sweeper(fast("p1")).await;
    let session = world.open("dana", "db", &[], Duration::ZERO).await;
    let last_activity = millis(world.session(&session).await.last_activity_at.as_ref());
    sweeps(&sweeper, 3).await;
    assert!(world.warnings().is_empty(), "not idle yet");

    world.clock.advance(11 * MIN);
    let warnings = world.wait_for_warnings(1).await;
    assert_eq!(warnings[0].session_id, session);
    assert_eq!(
        millis(warnings[0].disconnect_at.as_ref()),
        last_activity + (30 * MIN).as_millis() as i64
    );
    assert!(
        warnings[0]
            .user_message
            .starts_with("You have been inactive for 10 minutes"),
        "{}",
        warnings[0].user_message
    );
    let status = sweeps(&sweeper, 3).await;
    assert_eq!(world.warnings().len(), 1, "once per idle period");
    assert_eq!((status.warned, status.ended), (1, 0));

    world.clock.advance(20 * MIN);
    let commands = world.wait_for_terminations(1).await;
    assert_eq!(commands[0].session_id, session);
    assert_eq!(commands[0].reason, EndReason::IdleTimeout as i32);
    assert!(
        commands[0].user_message.contains("inactivity"),
        "{}",
        commands[0].user_message
    );
    assert_eq!(world.ended(&session).await.end_reason, EndReason::IdleTimeout as i32);
    let status = sweeps(&sweeper, 3).await;
    assert_eq!(world.terminations().len(), 1);
    assert_eq!(world.warnings().len(), 1);
    assert_eq!((status.warned, status.ended), (1, 1));

    // The audit trail says who ended it and why.
    let trail = world
        .registry
        .termination_client()
        .await
        .list_terminations(pb::ListTerminationsRequest {
            reason: EndReason::IdleTimeout as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .terminations;
    assert_eq!(trail.len(), 1);
    assert_eq!(
        (trail[0].actor.as_str(), trail[0].note.as_str()),
        ("policy-sweeper", "policy sweeper")
    );
    sweeper.stop().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_after_a_warning_resets_the_idle_period() {
    let world = World::new().await;
    // Idle for eleven minutes already when the test starts.
    let session = world.open("erin", "db", &[], 11 * MIN).await;
    let first_period = millis(world.session(&session).await.last_activity_at.as_ref());
    let sweeper = world.leading_sweeper(fast("p1")).await;
    let warnings = world.wait_for_warnings(1).await;
    assert_eq!(
        millis(warnings[0].disconnect_at.as_ref()),
        first_period + (30 * MIN).as_millis() as i64
    );

    // The user does something: a new idle period begins.
    world.agent.record_activity(&session, Some(SystemTime::now()), 100, 200);
    let second_period = eventually("the activity to reach the registry", || async {
        let at = millis(world.session(&session).await.last_activity_at.as_ref());
        (at > first_period).then_some(at)
    })
    .await;
    sweeps(&sweeper, 3).await;
    assert_eq!(world.warnings().len(), 1, "active again: no warning");

    // Past the first period's disconnection time: not ended, but warned again for the new period.
    world.clock.advance(20 * MIN);
    let warnings = world.wait_for_warnings(2).await;
    assert_eq!(warnings[1].session_id, session);
    assert_eq!(
        millis(warnings[1].disconnect_at.as_ref()),
        second_period + (30 * MIN).as_millis() as i64
    );
    sweeps(&sweeper, 3).await;
    assert_eq!(world.warnings().len(), 2);
    assert!(world.terminations().is_empty(), "the activity saved the session");

    world.clock.advance(11 * MIN);
    let commands = world.wait_for_terminations(1).await;
    assert_eq!(
        (commands[0].session_id.as_str(), commands[0].reason),
        (session.as_str(), EndReason::IdleTimeout as i32)
    );
    sweeper.stop().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maximum_duration_ends_sessions_unless_lifted() {
    let world = World::new().await;
    world
        .set_global(pb::PolicyRules {
            idle_warning_after: proto(Duration::ZERO),
            idle_timeout: proto(Duration::ZERO),
            max_session_duration: proto(8 * HOUR),
            ..Default::default()
        })
        .await;
    world
        .create(
            resource("batch"),
            pb::PolicyRules {
                max_session_duration: proto(Duration::ZERO),
                ..Default::default()
            },
        )
        .await;
    let interactive = world.open("fay", "db", &[], Duration::ZERO).await;
    let batch = world.open("fay", "batch", &[], Duration::ZERO).await;
    let sweeper = world.leading_sweeper(fast("p1")).await;
    world.clock.advance(7 * HOUR);
    sweeps(&sweeper, 3).await;
    assert!(world.terminations().is_empty(), "younger than eight hours");

    world.clock.advance(HOUR + MIN);
    let commands = world.wait_for_terminations(1).await;
    assert_eq!(
        (commands[0].session_id.as_str(), commands[0].reason),
        (interactive.as_str(), EndReason::MaxDuration as i32)
    );
    assert_eq!(
        world.ended(&interactive).await.end_reason,
        EndReason::MaxDuration as i32
    );
    sweeps(&sweeper, 3).await;
    assert_eq!(world.terminations().len(), 1);
    assert!(world.warnings().is_empty(), "idle rules are off");
    assert_ne!(world.session(&batch).await.status, SessionStatus::Disconnected as i32);
    sweeper.stop().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leader_is_replaced_and_nothing_is_done_twice() {
    let world = World::new().await;
    let first = world.leading_sweeper(fast("p1")).await;
    let second = world.sweeper(fast("p2"));
    // The second competes for the lease for longer than a TTL without getting it.
    sweeps(&first, 40).await;
    assert!(!second.is_leading(), "one leader at a time");
    assert_eq!(second.status().terms, 0);

    let sessions = [
        world.open("gus", "db", &[], Duration::ZERO).await,
        world.open("hana", "db", &[], Duration::ZERO).await,
        world.open("ivan", "crm", &[], Duration::ZERO).await,
    ];
    world.clock.advance(11 * MIN);
    world.wait_for_warnings(3).await;
    // The sweep counts its warnings when it ends, which may be after the agents have them.
    let (status, _) = first.wait_for(PATIENCE, |status| status.warned >= 3).await;
    assert_eq!(status.warned, 3);

    // The leader dies without a word; the other takes over within the TTL.
    first.abort();
    let (status, took_over) = second.wait_for(Duration::from_secs(5), |status| status.leading).await;
    assert!(took_over, "the second sweeper should take over: {status:?}");
    sweeps(&second, 5).await;
    assert_eq!(
        world.warnings().len(),
        3,
        "the successor does not warn again for the same idle period"
    );
    assert_eq!(second.status().warned, 0);

    world.clock.advance(20 * MIN);
    let commands = world.wait_for_terminations(3).await;
    sweeps(&second, 5).await;
    let mut ended: Vec<String> = world.terminations().iter().map(|c| c.session_id.clone()).collect();
    ended.sort();
    let mut expected = sessions.to_vec();
    expected.sort();
    assert_eq!(ended, expected, "each session ended exactly once");
    assert!(commands.iter().all(|c| c.reason == EndReason::IdleTimeout as i32));
    let mut warned: Vec<String> = world.warnings().iter().map(|w| w.session_id.clone()).collect();
    warned.sort();
    assert_eq!(warned, expected, "each session warned exactly once");
    assert_eq!(second.status().ended, 3);
    second.stop().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_leader_hands_over_at_once() {
    let world = World::new().await;
    // A long lease: a successor that waited for it to expire would take seconds longer.
    let settings = |replica: &str| PolicySettings {
        lease_ttl: Duration::from_secs(12),
        ..fast(replica)
    };
    let first = world.leading_sweeper(settings("p1")).await;
    let second = world.sweeper(settings("p2"));
    sweeps(&first, 3).await;
    assert!(!second.is_leading());
    let stopped_at = tokio::time::Instant::now();
    first.stop().await;
    let (status, took_over) = second.wait_for(Duration::from_secs(10), |status| status.leading).await;
    assert!(took_over, "{status:?}");
    // The successor tries every 4 s; the lease, had it not been released, would run for 8–12 s more.
    assert!(
        stopped_at.elapsed() < Duration::from_secs(7),
        "took {:?}",
        stopped_at.elapsed()
    );
    second.stop().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_of_sessions_that_are_gone_are_freed() {
    let world = World::new().await;
    world.create(user("lou"), limit(2, ConcurrencyAction::DenyNew)).await;
    let live = world.open("lou", "db", &[], Duration::ZERO).await;
    // Admitted, but the registry never recorded it (its replica died, say): a slot leaks.
    let lost = uuid::Uuid::now_v7().to_string();
    let admit = world
        .engine
        .admit(&pb::AdmitRequest {
            session_id: lost.clone(),
            gateway_id: "gw-policy".into(),
            start: Some(start("lou", "db", ResourceType::Ssh, "10.20.0.9")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(admit.verdict, AdmissionVerdict::Allow as i32);
    let denied = world.admission("lou", "db", &[], Duration::ZERO).await;
    assert!(!denied.allowed, "two slots held");

    let sweeper = world
        .leading_sweeper(PolicySettings {
            reconcile_interval: Duration::from_millis(100),
            ..fast("p1")
        })
        .await;
    // Young slots are left alone (the session may be about to be recorded).
    sweeps(&sweeper, 5).await;
    assert_eq!(world.engine.store().slots_of("lou").await.unwrap().len(), 2);

    world.clock.advance(2 * MIN);
    let (status, freed) = sweeper.wait_for(PATIENCE, |status| status.reconciled >= 1).await;
    assert!(freed, "{status:?}");
    let slots = world.engine.store().slots_of("lou").await.unwrap();
    assert_eq!(
        slots.iter().map(|s| s.session_id.clone()).collect::<Vec<_>>(),
        vec![live]
    );
    world.open("lou", "db", &[], Duration::ZERO).await;
    sweeper.stop().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_sweeps_on_sqlite() {
    let world = World::embedded().await;
    let sweeper = world.leading_sweeper(fast("embedded")).await;
    let session = world.open("jo", "db", &[], Duration::ZERO).await;
    world.clock.advance(11 * MIN);
    world.wait_for_warnings(1).await;
    world.clock.advance(20 * MIN);
    let commands = world.wait_for_terminations(1).await;
    assert_eq!(
        (commands[0].session_id.as_str(), commands[0].reason),
        (session.as_str(), EndReason::IdleTimeout as i32)
    );
    assert_eq!(world.ended(&session).await.end_reason, EndReason::IdleTimeout as i32);
    sweeps(&sweeper, 3).await;
    assert_eq!((world.warnings().len(), world.terminations().len()), (1, 1));
    sweeper.stop().await;
    world.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Admission: concurrency
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_a_new_session_is_refused_until_one_closes() {
    let world = World::new().await;
    world.create(user("kai"), limit(2, ConcurrencyAction::DenyNew)).await;
    let first = world.open("kai", "db", &[], Duration::ZERO).await;
    world.open("kai", "crm", &[], Duration::ZERO).await;
    let refused = world.admission("kai", "wiki", &[], Duration::ZERO).await;
    assert!(!refused.allowed);
    assert_eq!(
        refused.reason,
        "You already have 2 active sessions, the most your policy allows. Close one and try again."
    );
    // Others are not affected.
    world.open("lee", "wiki", &[], Duration::ZERO).await;

    // Closing one frees its slot (the registry releases it as the session ends).
    world
        .agent
        .close_session(&first, EndReason::UserClosed, "logged out")
        .await;
    eventually("a slot to free up", || async {
        world
            .admission("kai", "wiki", &[], Duration::ZERO)
            .await
            .allowed
            .then_some(())
    })
    .await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_the_oldest_session_is_ended() {
    let world = World::new().await;
    world.create(user("mia"), limit(2, ConcurrencyAction::EndOldest)).await;
    let oldest = world.open("mia", "db", &[], Duration::ZERO).await;
    world.clock.advance(Duration::from_secs(1));
    let middle = world.open("mia", "crm", &[], Duration::ZERO).await;
    world.clock.advance(Duration::from_secs(1));
    let admitted = world.admission("mia", "wiki", &[], Duration::ZERO).await;
    assert!(admitted.allowed);
    assert_eq!(admitted.evicted_session_ids, vec![oldest.clone()]);

    let commands = world.wait_for_terminations(1).await;
    assert_eq!(
        (commands[0].session_id.as_str(), commands[0].reason),
        (oldest.as_str(), EndReason::ConcurrencyLimit as i32)
    );
    assert_eq!(
        world.ended(&oldest).await.end_reason,
        EndReason::ConcurrencyLimit as i32
    );
    let live = world
        .registry
        .sessions_client()
        .await
        .list_sessions(pb::ListSessionsRequest {
            filter: Some(pb::SessionFilter {
                user: "mia".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut live: Vec<String> = live.sessions.into_iter().map(|s| s.id).collect();
    live.sort();
    let mut expected = vec![middle, admitted.session_id];
    expected.sort();
    assert_eq!(live, expected);
    world.finish().await;
}

/// Admit requests for `count` new sessions of `user`, sent at once, alternately to each engine.
async fn admit_in_parallel(engines: &[PolicyEngine], user: &str, count: usize) -> Vec<(String, pb::AdmitResponse)> {
    // Released together, so the admissions really race.
    let barrier = Arc::new(tokio::sync::Barrier::new(count));
    let calls = (0..count).map(|i| {
        let engine = engines[i % engines.len()].clone();
        let session_id = uuid::Uuid::now_v7().to_string();
        let start = start(user, "db", ResourceType::Ssh, "10.20.1.1");
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            let response = engine
                .admit(&pb::AdmitRequest {
                    session_id: session_id.clone(),
                    gateway_id: "gw-race".into(),
                    start: Some(start),
                    ..Default::default()
                })
                .await
                .expect("admit");
            (session_id, response)
        })
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|outcome| outcome.unwrap())
        .collect()
}

/// A policy replica as the process runs one: a connection pool and a Redis connection of its own,
/// the policies loaded, other replicas' changes followed until `shutdown`.
async fn policy_replica(
    schema: &TestSchema,
    namespace: &str,
    clock: Arc<ManualClock>,
    shutdown: &CancellationToken,
) -> (PolicyEngine, JoinHandle<()>) {
    let engine = PolicyEngine::new(schema.policy_store().await, clock);
    engine.attach_bus(redis_bus(namespace).await);
    engine.load_policies().await.expect("load the policies");
    let refresh = engine.start_refresh(shutdown.child_token());
    (engine, refresh)
}

/// Waits until every replica holds the policies of the same version (each follows the others'
/// announcements on the bus).
async fn same_policies(engines: &[PolicyEngine]) {
    eventually("every replica to hold the same policies", || async {
        let versions: Vec<u64> = engines.iter().map(PolicyEngine::held_policy_version).collect();
        versions.windows(2).all(|pair| pair[0] == pair[1]).then_some(())
    })
    .await;
}

/// Stops the replicas' refreshers (before the schema goes).
async fn stop(shutdown: CancellationToken, refreshers: impl IntoIterator<Item = JoinHandle<()>>) {
    shutdown.cancel();
    for refresher in refreshers {
        refresher.await.expect("the refresher stops");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_starts_on_two_replicas_never_exceed_the_limit() {
    init_logs();
    let schema = TestSchema::new().await;
    let namespace = unique_namespace();
    let clock = Arc::new(ManualClock::starting_now());
    let shutdown = CancellationToken::new();
    // Two replicas: two engines, each with its own connection pool and bus connection, on one schema.
    let (first, first_refresh) = policy_replica(&schema, &namespace, clock.clone(), &shutdown).await;
    let (second, second_refresh) = policy_replica(&schema, &namespace, clock.clone(), &shutdown).await;
    let engines = [first, second];
    engines[0]
        .create(
            "test",
            &pb::CreatePolicyRequest {
                scope: Some(pb::PolicyScope {
                    scope: Some(user("nia")),
                }),
                rules: Some(limit(3, ConcurrencyAction::DenyNew)),
                description: String::new(),
            },
        )
        .await
        .unwrap();
    same_policies(&engines).await;

    let outcomes = admit_in_parallel(&engines, "nia", 20).await;
    let admitted: Vec<&String> = outcomes
        .iter()
        .filter(|(_, response)| response.verdict == AdmissionVerdict::Allow as i32)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(admitted.len(), 3, "exactly the limit");
    for (_, response) in outcomes
        .iter()
        .filter(|(_, r)| r.verdict != AdmissionVerdict::Allow as i32)
    {
        assert_eq!(response.verdict, AdmissionVerdict::Deny as i32);
        assert!(response.reason.starts_with("You already have 3 active sessions"));
    }
    let slots = engines[1].store().slots_of("nia").await.unwrap();
    assert_eq!(slots.len(), 3);
    assert!(slots.iter().all(|slot| admitted.contains(&&slot.session_id)));

    // The same race with END_OLDEST: everyone gets in, the oldest make room, the limit holds.
    let policy = engines[0].list().await.unwrap().policies.pop().unwrap();
    engines[1]
        .update(
            "test",
            &pb::UpdatePolicyRequest {
                id: policy.id,
                rules: Some(limit(3, ConcurrencyAction::EndOldest)),
                description: String::new(),
            },
        )
        .await
        .unwrap();
    same_policies(&engines).await;
    let outcomes = admit_in_parallel(&engines, "nia", 20).await;
    assert!(
        outcomes
            .iter()
            .all(|(_, r)| r.verdict == AdmissionVerdict::Allow as i32)
    );
    let mut evicted: Vec<String> = outcomes.iter().flat_map(|(_, r)| r.evict_session_ids.clone()).collect();
    evicted.sort();
    let before = evicted.len();
    evicted.dedup();
    assert_eq!(
        (before, evicted.len()),
        (20, 20),
        "each of the 23 but 3 evicted exactly once"
    );
    let remaining = engines[0].store().slots_of("nia").await.unwrap();
    assert_eq!(remaining.len(), 3);
    assert!(remaining.iter().all(|slot| !evicted.contains(&slot.session_id)));
    stop(shutdown, [first_refresh, second_refresh]).await;
}

/// `engine`'s verdict on a new session of `user`.
async fn verdict(engine: &PolicyEngine, user: &str) -> pb::AdmitResponse {
    engine
        .admit(&pb::AdmitRequest {
            session_id: uuid::Uuid::now_v7().to_string(),
            gateway_id: "gw-rules".into(),
            start: Some(start(user, "db", ResourceType::Ssh, "10.20.3.1")),
            ..Default::default()
        })
        .await
        .expect("admit")
}

fn allowed(response: &pb::AdmitResponse) -> bool {
    response.verdict == AdmissionVerdict::Allow as i32
}

/// Policy replicas hold the policies in memory; one replica's change is in force on its own next
/// admission at once, and on the other's within a bus hop (2 s at most here, the bound of its
/// own version check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_changed_on_one_replica_is_enforced_by_the_other_within_two_seconds() {
    init_logs();
    let schema = TestSchema::new().await;
    let namespace = unique_namespace();
    let clock = Arc::new(ManualClock::starting_now());
    let shutdown = CancellationToken::new();
    let (a, a_refresh) = policy_replica(&schema, &namespace, clock.clone(), &shutdown).await;
    let (b, b_refresh) = policy_replica(&schema, &namespace, clock.clone(), &shutdown).await;
    // Under the defaults (no limit), B lets pia open two sessions, holding the policies it loaded.
    for _ in 0..2 {
        assert!(allowed(&verdict(&b, "pia").await));
    }

    // A lowers pia's limit to the two she holds: A refuses her next start at once…
    let lowered = pb::CreatePolicyRequest {
        scope: Some(pb::PolicyScope {
            scope: Some(user("pia")),
        }),
        rules: Some(limit(2, ConcurrencyAction::DenyNew)),
        description: "lowered on A".into(),
    };
    let policy = a.create("test", &lowered).await.expect("create on A");
    let refused = verdict(&a, "pia").await;
    assert_eq!(refused.verdict, AdmissionVerdict::Deny as i32, "{refused:?}");
    assert_eq!(refused.policy_id, policy.id);
    // …and B within 2 s (each admission it lets through before then is one more session held).
    let refused = eventually_within(Duration::from_secs(2), "B to enforce A's new limit", || async {
        let response = verdict(&b, "pia").await;
        (!allowed(&response)).then_some(response)
    })
    .await;
    assert!(refused.reason.starts_with("You already have"), "{refused:?}");
    assert_eq!(refused.policy_id, policy.id);

    // The other way: B lifts the limit, and A admits her again within 2 s.
    b.update(
        "test",
        &pb::UpdatePolicyRequest {
            id: policy.id.clone(),
            rules: Some(limit(0, ConcurrencyAction::DenyNew)),
            description: "lifted on B".into(),
        },
    )
    .await
    .expect("update on B");
    assert!(allowed(&verdict(&b, "pia").await), "B at once");
    eventually_within(Duration::from_secs(2), "A to admit pia again", || async {
        allowed(&verdict(&a, "pia").await).then_some(())
    })
    .await;
    assert_eq!(a.held_policy_version(), b.held_policy_version());
    stop(shutdown, [a_refresh, b_refresh]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_starts_through_two_registry_replicas_never_exceed_the_limit() {
    init_logs();
    let schema = TestSchema::new().await;
    let namespace = unique_namespace();
    let clock = Arc::new(ManualClock::starting_now());
    let replicas = [
        TestRegistry::on_postgres(&schema, &namespace, test_settings("r1")).await,
        TestRegistry::on_postgres(&schema, &namespace, test_settings("r2")).await,
    ];
    let mut engines = Vec::new();
    for replica in &replicas {
        let engine = PolicyEngine::new(schema.policy_store().await, clock.clone());
        replica.registry.attach_admission_policy(Arc::new(engine.clone()));
        engines.push(engine);
    }
    engines[0]
        .create(
            "test",
            &pb::CreatePolicyRequest {
                scope: Some(pb::PolicyScope {
                    scope: Some(user("oli")),
                }),
                rules: Some(limit(3, ConcurrencyAction::DenyNew)),
                description: String::new(),
            },
        )
        .await
        .unwrap();
    let agents = [
        replicas[0].agent("gw-a", Arc::new(RecordingHandler::default())).await,
        replicas[1].agent("gw-b", Arc::new(RecordingHandler::default())).await,
    ];
    let opens = (0..20).map(|i| {
        let agent = &agents[i % 2];
        async move {
            agent
                .open_session(start("oli", &format!("host-{i}"), ResourceType::Ssh, "10.20.2.1"))
                .await
                .expect("the registry answers")
        }
    });
    let admissions = futures::future::join_all(opens).await;
    assert_eq!(admissions.iter().filter(|a| a.allowed).count(), 3);
    let live = replicas[1]
        .sessions_client()
        .await
        .list_sessions(pb::ListSessionsRequest {
            filter: Some(pb::SessionFilter {
                user: "oli".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(live.total_size, 3, "never more than the limit live");
    for agent in &agents {
        agent.shutdown().await;
    }
    for replica in replicas {
        replica.stop().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Admission: risk
// ---------------------------------------------------------------------------------------------

fn risky(user: &str, score: u32) -> pb::AdmitRequest {
    pb::AdmitRequest {
        session_id: uuid::Uuid::now_v7().to_string(),
        gateway_id: "gw-risk".into(),
        start: Some(start(user, "db", ResourceType::Ssh, "203.0.113.7")),
        location: None,
        risk: Some(pb::Risk {
            score,
            flags: vec![pb::RiskFlag {
                code: "new_country".into(),
                points: score,
                explanation: "first sign-in from Japan".into(),
            }],
            assessed: true,
        }),
        risk_pending: false,
    }
}

/// The same start asked about before geo has assessed it (`risk_pending`), as the registry asks.
fn pending(user: &str) -> pb::AdmitRequest {
    pb::AdmitRequest {
        location: None,
        risk: None,
        risk_pending: true,
        ..risky(user, 0)
    }
}

/// Asked before geo's assessment, policy decides at once unless the rules in force look at the
/// risk score; then it takes nothing and asks for the score.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_risk_is_asked_for_only_where_the_rules_look_at_it() {
    init_logs();
    let schema = TestSchema::new().await;
    let engine = PolicyEngine::new(schema.policy_store().await, Arc::new(ManualClock::starting_now()));
    let global = engine.list().await.unwrap().policies.remove(0);

    // No risk rule in force: decided now, and said to stand whatever the score.
    let response = engine.admit(&pending("pat")).await.unwrap();
    assert_eq!(
        (response.verdict, response.decided_without_risk),
        (AdmissionVerdict::Allow as i32, true)
    );
    assert_eq!(engine.store().slots_of("pat").await.unwrap().len(), 1);
    // An assessed request is decided as always, and says nothing of the pending case.
    let response = engine.admit(&risky("pat", 99)).await.unwrap();
    assert_eq!(
        (response.verdict, response.decided_without_risk),
        (AdmissionVerdict::Allow as i32, false)
    );

    // A flag threshold alone looks at the score: nothing taken, the score asked for.
    for rules in [
        pb::PolicyRules {
            flag_risk_score: Some(50),
            ..Default::default()
        },
        pb::PolicyRules {
            deny_risk_score: Some(80),
            ..Default::default()
        },
    ] {
        engine
            .update(
                "test",
                &pb::UpdatePolicyRequest {
                    id: global.id.clone(),
                    rules: Some(rules),
                    description: String::new(),
                },
            )
            .await
            .unwrap();
        let response = engine.admit(&pending("sam")).await.unwrap();
        assert_eq!(
            (response.verdict, response.decided_without_risk),
            (AdmissionVerdict::RiskNeeded as i32, false)
        );
        assert!(response.evict_session_ids.is_empty());
        assert!(
            engine.store().slots_of("sam").await.unwrap().is_empty(),
            "nothing taken"
        );
    }

    // A lock refuses whatever the score.
    engine
        .create_lock(
            "test",
            &pb::CreateLockRequest {
                target: Some(pb::LockTarget {
                    target: Some(pb::lock_target::Target::User("sam".into())),
                }),
                message: "Locked while we investigate.".into(),
                ttl: None,
                reason: "incident".into(),
            },
        )
        .await
        .unwrap();
    let response = engine.admit(&pending("sam")).await.unwrap();
    assert_eq!(
        (response.verdict, response.decided_without_risk),
        (AdmissionVerdict::Deny as i32, true)
    );

    // A pending request carries no assessment.
    let invalid = pb::AdmitRequest {
        risk: Some(pb::Risk::default()),
        ..pending("pat")
    };
    let error = engine.admit(&invalid).await.unwrap_err();
    assert!(matches!(error, ServiceError::InvalidArgument(_)), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risk_scores_deny_or_flag() {
    init_logs();
    let schema = TestSchema::new().await;
    let engine = PolicyEngine::new(schema.policy_store().await, Arc::new(ManualClock::starting_now()));
    let global = engine.list().await.unwrap().policies.remove(0);
    engine
        .update(
            "test",
            &pb::UpdatePolicyRequest {
                id: global.id.clone(),
                rules: Some(pb::PolicyRules {
                    deny_risk_score: Some(80),
                    flag_risk_score: Some(50),
                    ..Default::default()
                }),
                description: String::new(),
            },
        )
        .await
        .unwrap();

    let denied = risky("pat", 85);
    let response = engine.admit(&denied).await.unwrap();
    assert_eq!(response.verdict, AdmissionVerdict::Deny as i32);
    assert!(response.reason.contains("unusual"), "{}", response.reason);
    assert_eq!(response.policy_id, global.id);
    assert!(
        engine.store().slots_of("pat").await.unwrap().is_empty(),
        "a refused start takes no slot"
    );

    let response = engine.admit(&risky("pat", 60)).await.unwrap();
    assert_eq!(response.verdict, AdmissionVerdict::AllowFlagged as i32);
    assert_eq!(
        response.reason,
        "Flagged for review: unusual sign-in (risk score 60 of 100): new_country: first sign-in from Japan."
    );
    let response = engine.admit(&risky("pat", 30)).await.unwrap();
    assert_eq!(
        (response.verdict, response.reason.as_str()),
        (AdmissionVerdict::Allow as i32, "")
    );
    assert_eq!(engine.store().slots_of("pat").await.unwrap().len(), 2);

    a_users_own_threshold_beats_the_global_one(&engine).await;
    a_retried_admission_changes_nothing(&engine, &denied).await;
}

/// A user's own risk threshold beats the global one; the flag threshold is still inherited.
async fn a_users_own_threshold_beats_the_global_one(engine: &PolicyEngine) {
    let vip = engine
        .create(
            "test",
            &pb::CreatePolicyRequest {
                scope: Some(pb::PolicyScope {
                    scope: Some(user("vip")),
                }),
                rules: Some(pb::PolicyRules {
                    deny_risk_score: Some(95),
                    max_concurrent_sessions: Some(1),
                    ..Default::default()
                }),
                description: String::new(),
            },
        )
        .await
        .unwrap();
    let response = engine.admit(&risky("vip", 85)).await.unwrap();
    assert_eq!(response.verdict, AdmissionVerdict::AllowFlagged as i32);
    // Risk is checked before concurrency: at the limit, a risky start is refused for its risk.
    let response = engine.admit(&risky("vip", 99)).await.unwrap();
    assert_eq!(response.verdict, AdmissionVerdict::Deny as i32);
    assert!(response.reason.contains("unusual"), "{}", response.reason);
    assert_eq!(response.policy_id, vip.id);
    let response = engine.admit(&risky("vip", 10)).await.unwrap();
    assert_eq!(response.verdict, AdmissionVerdict::Deny as i32);
    assert!(response.reason.contains("1 active session"), "{}", response.reason);
    assert_eq!(response.policy_id, vip.id);
}

/// The same session admitted twice (a retried request) changes nothing.
async fn a_retried_admission_changes_nothing(engine: &PolicyEngine, denied: &pb::AdmitRequest) {
    let repeat = engine.admit(denied).await.unwrap();
    assert_eq!(repeat.verdict, AdmissionVerdict::Deny as i32);
    let once = risky("quinn", 0);
    assert_eq!(
        engine.admit(&once).await.unwrap().verdict,
        AdmissionVerdict::Allow as i32
    );
    assert_eq!(
        engine.admit(&once).await.unwrap().verdict,
        AdmissionVerdict::Allow as i32
    );
    assert_eq!(engine.store().slots_of("quinn").await.unwrap().len(), 1);
}

/// Geo as a test wants it: a fixed score.
struct FixedRisk(Mutex<u32>);

/// Geo scoring every start 90 (the test may change it), and the global policy refusing from 80 and
/// flagging from 50.
async fn with_risk_rules(world: &World) -> Arc<FixedRisk> {
    let risk = Arc::new(FixedRisk(Mutex::new(90)));
    world.registry.registry.attach_risk_assessor(risk.clone());
    world
        .set_global(pb::PolicyRules {
            deny_risk_score: Some(80),
            flag_risk_score: Some(50),
            ..Default::default()
        })
        .await;
    risk
}

#[tonic::async_trait]
impl RiskAssessor for FixedRisk {
    async fn assess(&self, _request: pb::AssessRequest) -> ServiceResult<pb::AssessResponse> {
        let score = *self.0.lock().unwrap();
        Ok(pb::AssessResponse {
            location: None,
            risk: Some(pb::Risk {
                score,
                flags: vec![pb::RiskFlag {
                    code: "impossible_travel".into(),
                    points: score,
                    explanation: "Berlin → Tokyo in 40 min".into(),
                }],
                assessed: true,
            }),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_shows_a_risk_refusal_and_the_registry_keeps_the_flag() {
    let world = World::new().await;
    let risk = with_risk_rules(&world).await;
    let refused = world.admission("rae", "db", &[], Duration::ZERO).await;
    assert!(!refused.allowed);
    assert!(
        refused
            .reason
            .starts_with("Sign-in refused: this sign-in looks unusual"),
        "{}",
        refused.reason
    );

    *risk.0.lock().unwrap() = 60;
    let flagged = world.open("rae", "db", &[], Duration::ZERO).await;
    let session = world.session(&flagged).await;
    let flags = session.risk.unwrap().flags;
    assert!(
        flags
            .iter()
            .any(|flag| flag.code == "flagged_for_review" && flag.explanation.contains("impossible_travel")),
        "{flags:?}"
    );
    world.finish().await;
}

/// A policy service from before `AdmitRequest.risk_pending`: it does not know the field, and
/// decides a start as if its risk score were 0.
struct PredatesRiskPending(PolicyEngine);

#[tonic::async_trait]
impl AdmissionPolicy for PredatesRiskPending {
    async fn admit(&self, request: pb::AdmitRequest) -> ServiceResult<pb::AdmitResponse> {
        let as_it_reads_it = pb::AdmitRequest {
            risk_pending: false,
            ..request
        };
        self.0.admit(&as_it_reads_it).await
    }

    async fn release(&self, session_ids: Vec<String>) -> ServiceResult<()> {
        AdmissionPolicy::release(&self.0, session_ids).await
    }

    async fn list_locks(&self) -> ServiceResult<pb::ListLocksResponse> {
        AdmissionPolicy::list_locks(&self.0).await
    }
}

/// During an upgrade the registry may be newer than policy: an answer that does not say it stands
/// whatever the score is not taken as final, and policy is asked again with geo's assessment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_predates_pending_risk_is_asked_again_with_the_score() {
    let world = World::with_policy(|engine| Arc::new(PredatesRiskPending(engine))).await;
    let risk = with_risk_rules(&world).await;
    let refused = world.admission("rae", "db", &[], Duration::ZERO).await;
    assert!(
        !refused.allowed,
        "asked as if the score were 0, policy allowed it the first time"
    );
    assert!(refused.reason.contains("unusual"), "{}", refused.reason);

    *risk.0.lock().unwrap() = 60;
    let flagged = world.open("rae", "db", &[], Duration::ZERO).await;
    let flags = world.session(&flagged).await.risk.unwrap().flags;
    assert!(flags.iter().any(|flag| flag.code == "flagged_for_review"), "{flags:?}");
    world.finish().await;
}
