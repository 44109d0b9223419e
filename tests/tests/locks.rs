//! Locks end to end: a real registry and termination service on PostgreSQL and Redis, agents on
//! two gateways, and the policy engine (on a manual clock) admitting starts, holding the lock set,
//! publishing it on the bus and ending the sessions a new lock covers. Also: a session's
//! concurrency slot is free the moment it ends.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::Code;
use tonic::transport::Channel;
use vigil_agent::{Admission, Agent};
use vigil_core::topics;
use vigil_policy::api::PolicyApi;
use vigil_policy::{Clock, ManualClock, PolicyEngine, PolicySettings, Sweeper, SweeperHandle};
use vigil_proto::v1 as pb;
use vigil_proto::v1::lock_target::Target as LockOn;
use vigil_proto::v1::policy_service_client::PolicyServiceClient;
use vigil_proto::v1::session_selector::Target as Select;
use vigil_proto::v1::{AdmissionVerdict, ConcurrencyAction, EndReason, ResourceType, SessionStatus};
use vigil_runtime::bus::{BusEvent, ControlBus, RedisBus, Subscription};
use vigil_runtime::server::{Server, ServerConfig};
use vigil_tests::*;

const HOUR: Duration = Duration::from_secs(3600);
const SOC_MESSAGE: &str = "Your access is suspended by security — contact the SOC";

// ---------------------------------------------------------------------------------------------
// The world: registry + termination on PostgreSQL and Redis, policy on a manual clock, two gateways
// ---------------------------------------------------------------------------------------------

struct World {
    registry: TestRegistry,
    namespace: String,
    clock: Arc<ManualClock>,
    engine: PolicyEngine,
    gw_a: Agent,
    gw_b: Agent,
    handler_a: Arc<RecordingHandler>,
    handler_b: Arc<RecordingHandler>,
    // Last: dropped after everything that uses it.
    schema: TestSchema,
}

impl World {
    async fn new() -> Self {
        Self::with(true).await
    }

    /// With `terminator`: a new lock ends what it covers itself; without, only a sweeper does.
    async fn with(terminator: bool) -> Self {
        init_logs();
        let schema = TestSchema::new().await;
        let namespace = unique_namespace();
        let registry = TestRegistry::with_termination(&schema, &namespace, test_settings("r1")).await;
        let clock = Arc::new(ManualClock::starting_now());
        let engine = PolicyEngine::new(schema.policy_store().await, clock.clone());
        engine.attach_bus(registry.registry.bus().clone());
        if terminator {
            engine.attach_terminator(Arc::new(registry.terminator.clone().expect("termination")));
        }
        engine.start_refresh(registry.shutdown.child_token());
        registry.registry.attach_admission_policy(Arc::new(engine.clone()));
        let handler_a = Arc::new(RecordingHandler::default());
        let handler_b = Arc::new(RecordingHandler::default());
        let gw_a = registry.agent("gw-a", handler_a.clone()).await;
        let gw_b = registry.agent("gw-b", handler_b.clone()).await;
        Self {
            registry,
            namespace,
            clock,
            engine,
            gw_a,
            gw_b,
            handler_a,
            handler_b,
            schema,
        }
    }

    async fn finish(self) {
        self.gw_a.shutdown().await;
        self.gw_b.shutdown().await;
        self.registry.stop().await;
        drop(self.schema);
    }

    async fn start_on(agent: &Agent, start: pb::SessionStart) -> Admission {
        agent.open_session(start).await.expect("the registry answers")
    }

    /// Waits until both gateways' agents have dropped the lock from their pushed sets (they refuse
    /// locally by that set, so a removed or expired lock stops refusing there once its update lands).
    async fn agents_drop(&self, lock_id: &str) {
        for agent in [&self.gw_a, &self.gw_b] {
            eventually("the agent to drop the lock from its pushed set", || async {
                (!agent.locks().iter().any(|lock| lock.id == lock_id)).then_some(())
            })
            .await;
        }
    }

    /// Opens a session that must be admitted; returns its id.
    async fn open(agent: &Agent, start: pb::SessionStart) -> String {
        let user = start.user.clone();
        let admission = Self::start_on(agent, start).await;
        assert!(admission.allowed, "{user} should be admitted: {}", admission.reason);
        admission.session_id
    }

    async fn lock(&self, target: LockOn, ttl: Option<Duration>) -> pb::Lock {
        self.engine
            .create_lock(
                "soc@acme.example",
                &pb::CreateLockRequest {
                    target: Some(pb::LockTarget { target: Some(target) }),
                    message: SOC_MESSAGE.into(),
                    ttl: ttl.map(proto_duration),
                    reason: "suspected credential theft, SOC-1234".into(),
                },
            )
            .await
            .expect("create the lock")
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

    /// Waits until the registry has ended the session, and returns it.
    async fn ended(&self, id: &str) -> pb::Session {
        let client = self.registry.sessions_client().await;
        eventually(&format!("session {id} to be disconnected"), || {
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

    /// Admission as the policy engine decides it, without a gateway.
    async fn admit(&self, start: pb::SessionStart, gateway_id: &str) -> pb::AdmitResponse {
        self.engine
            .admit(&pb::AdmitRequest {
                session_id: uuid::Uuid::now_v7().to_string(),
                gateway_id: gateway_id.into(),
                start: Some(start),
                ..Default::default()
            })
            .await
            .expect("admission answers")
    }

    fn sweeper(&self) -> SweeperHandle {
        Sweeper::new(
            self.engine.store().clone(),
            Arc::new(self.registry.registry.clone()),
            Arc::new(self.registry.terminator.clone().expect("termination")),
            self.registry.registry.bus().clone(),
            self.clock.clone(),
            PolicySettings {
                replica: "locks-test".into(),
                sweeper: true,
                sweep_interval: Duration::from_millis(50),
                lease_ttl: Duration::from_millis(900),
                page_size: 50,
                reconcile_interval: HOUR,
                slot_grace: Duration::from_secs(60),
            },
        )
        .start(self.registry.shutdown.child_token())
    }

    /// A subscription to the lock set's channel, on a bus connection of its own (as a registry
    /// replica would have).
    async fn lock_updates(&self) -> Updates {
        let bus = redis_bus(&self.namespace).await;
        let subscription = bus
            .subscribe(topics::LOCKS)
            .await
            .expect("subscribe to the lock channel");
        Updates {
            subscription,
            _bus: bus,
        }
    }
}

fn proto_duration(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: duration.as_secs() as i64,
        nanos: duration.subsec_nanos() as i32,
    }
}

fn from(user: &str, ip: &str) -> pb::SessionStart {
    start(user, "prod-db-01", ResourceType::Ssh, ip)
}

fn commands(handler: &RecordingHandler) -> Vec<pb::TerminateCommand> {
    handler.terminated.lock().unwrap().clone()
}

/// Lock updates as a holder receives them (the bus connection lives as long as the subscription).
struct Updates {
    subscription: Subscription,
    _bus: Arc<RedisBus>,
}

/// The next lock update on `updates` (skipping bus reconnection notices).
async fn next_update(updates: &mut Updates) -> pb::LockUpdate {
    loop {
        let event = tokio::time::timeout(PATIENCE, updates.subscription.next())
            .await
            .expect("a lock update in time")
            .expect("the subscription stays open");
        if let BusEvent::Message(payload) = event {
            return pb::LockUpdate::decode(&payload[..]).expect("a LockUpdate");
        }
    }
}

fn lock_ids(update: &pb::LockUpdate) -> Vec<String> {
    update.locks.iter().map(|lock| lock.id.clone()).collect()
}

/// The policy service over gRPC on a random port (no authentication: the actor is
/// `anonymous@<ip>`); stops when the guard drops.
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
// Locking ends and refuses
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_ends_the_users_sessions_on_every_gateway_and_refuses_the_next_start() {
    let world = World::new().await;
    let on_a = World::open(&world.gw_a, from("alice", "81.2.69.142")).await;
    let on_b = World::open(&world.gw_b, from("alice", "81.2.69.143")).await;
    let bystander = World::open(&world.gw_a, from("bob", "81.2.69.144")).await;

    let lock = world.lock(LockOn::User("alice".into()), None).await;
    assert_eq!(lock.created_by, "soc@acme.example");
    assert_eq!(lock.message, SOC_MESSAGE);
    assert_eq!(lock.expires_at, None);

    // Both gateways are told, with the lock's message; the registry records why.
    for (handler, session) in [(&world.handler_a, &on_a), (&world.handler_b, &on_b)] {
        let command = eventually("the terminate command at the gateway", || async {
            commands(handler)
                .into_iter()
                .find(|command| &command.session_id == session)
        })
        .await;
        assert_eq!(command.reason, EndReason::Locked as i32);
        assert_eq!(command.user_message, SOC_MESSAGE);
        assert_eq!(world.ended(session).await.end_reason, EndReason::Locked as i32);
    }
    assert!(
        commands(&world.handler_a)
            .iter()
            .all(|command| command.session_id != bystander)
    );
    assert_eq!(world.session(&bystander).await.status, SessionStatus::Active as i32);

    // The termination's record names the lock.
    let terminations = world
        .registry
        .termination_client()
        .await
        .list_terminations(pb::ListTerminationsRequest {
            reason: EndReason::Locked as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .terminations;
    assert_eq!(terminations.len(), 1, "{terminations:?}");
    assert_eq!(
        terminations[0].note,
        format!(
            "lock {} by soc@acme.example: suspected credential theft, SOC-1234",
            lock.id
        )
    );
    assert_eq!(terminations[0].actor, "soc@acme.example");
    assert_eq!(terminations[0].session_count, 2);

    // The next start is refused with the lock's message, on either gateway; others get in.
    for agent in [&world.gw_a, &world.gw_b] {
        let refused = World::start_on(agent, from("alice", "81.2.69.142")).await;
        assert!(!refused.allowed);
        assert_eq!(refused.reason, SOC_MESSAGE);
    }
    World::open(&world.gw_b, from("carol", "81.2.69.145")).await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lock_stops_refusing_and_its_expiry_is_announced() {
    let world = World::new().await;
    let mut updates = world.lock_updates().await;
    let lock = world.lock(LockOn::User("dave".into()), Some(HOUR)).await;
    let expires_at = vigil_proto::millis_from_timestamp(lock.expires_at.as_ref().expect("an expiry")).unwrap();
    assert_eq!(expires_at, world.clock.now_millis() + 3_600_000);
    let created = next_update(&mut updates).await;
    assert_eq!(lock_ids(&created), vec![lock.id.clone()]);

    let refused = World::start_on(&world.gw_a, from("dave", "81.2.69.142")).await;
    assert_eq!((refused.allowed, refused.reason.as_str()), (false, SOC_MESSAGE));

    // An hour later, by the policy's clock: admission stops refusing at once.
    world.clock.advance(HOUR);
    let verdict = world.admit(from("dave", "81.2.69.142"), "gw-a").await;
    assert_eq!(verdict.verdict, AdmissionVerdict::Allow as i32, "{}", verdict.reason);

    // The sweeper announces the smaller set, under a newer version, for the holders to drop it.
    let sweeper = world.sweeper();
    let expired = next_update(&mut updates).await;
    assert!(expired.locks.is_empty(), "{expired:?}");
    assert!(expired.version > created.version);
    let (status, announced) = sweeper.wait_for(PATIENCE, |status| status.lock_expiries == 1).await;
    assert!(announced, "{status:?}");
    // The gateways drop it too (their own clocks say an hour is left: the announcement is what counts).
    world.agents_drop(&lock.id).await;
    World::open(&world.gw_a, from("dave", "81.2.69.142")).await;
    // Listed only on request once expired.
    let listed = world.engine.list_locks(&pb::ListLocksRequest::default()).await.unwrap();
    assert!(listed.locks.is_empty());
    let all = world
        .engine
        .list_locks(&pb::ListLocksRequest { include_expired: true })
        .await
        .unwrap();
    assert_eq!(all.locks, vec![lock]);
    // Announced once: later sweeps find nothing more to announce.
    let target = sweeper.status().sweeps + 3;
    let (status, swept) = sweeper.wait_for(PATIENCE, |status| status.sweeps >= target).await;
    assert!(swept);
    assert_eq!(status.lock_expiries, 1);
    sweeper.stop().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_lock_ends_and_refuses_addresses_inside_and_admits_those_outside() {
    let world = World::new().await;
    let inside = World::open(&world.gw_a, from("erin", "203.0.113.9")).await;
    let mapped = World::open(&world.gw_b, from("finn", "::ffff:203.0.113.200")).await;
    let outside = World::open(&world.gw_a, from("gus", "203.0.114.9")).await;

    world.lock(LockOn::Cidr("203.0.113.0/24".into()), None).await;
    assert_eq!(world.ended(&inside).await.end_reason, EndReason::Locked as i32);
    assert_eq!(world.ended(&mapped).await.end_reason, EndReason::Locked as i32);
    assert_eq!(world.session(&outside).await.status, SessionStatus::Active as i32);

    for ip in ["203.0.113.7", "203.0.113.255", "::ffff:203.0.113.1"] {
        let refused = World::start_on(&world.gw_a, from("erin", ip)).await;
        assert_eq!((refused.allowed, refused.reason.as_str()), (false, SOC_MESSAGE), "{ip}");
    }
    for ip in ["203.0.114.7", "198.51.100.1", "2001:db8::1"] {
        World::open(&world.gw_a, from("erin", ip)).await;
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_resources_gateways_and_devices_are_locked_too() {
    let world = World::new().await;
    let in_group = World::open(
        &world.gw_a,
        pb::SessionStart {
            user_groups: vec!["contractors".into(), "eng".into()],
            ..from("hana", "81.2.69.142")
        },
    )
    .await;
    // "contractor" is not "contractors": membership is exact.
    let near_miss = World::open(
        &world.gw_a,
        pb::SessionStart {
            user_groups: vec!["contractor".into(), "Contractors".into()],
            ..from("ivan", "81.2.69.142")
        },
    )
    .await;
    world.lock(LockOn::Group("contractors".into()), None).await;
    assert_eq!(world.ended(&in_group).await.end_reason, EndReason::Locked as i32);
    assert_eq!(world.session(&near_miss).await.status, SessionStatus::Active as i32);
    let refused = World::start_on(
        &world.gw_b,
        pb::SessionStart {
            user_groups: vec!["contractors".into()],
            ..from("jo", "81.2.69.142")
        },
    )
    .await;
    assert_eq!((refused.allowed, refused.reason.as_str()), (false, SOC_MESSAGE));

    let on_device = World::open(&world.gw_b, from("kim", "81.2.69.142")).await;
    world.lock(LockOn::Device("kim-laptop".into()), None).await;
    assert_eq!(world.ended(&on_device).await.end_reason, EndReason::Locked as i32);
    assert!(!World::start_on(&world.gw_a, from("kim", "81.2.69.142")).await.allowed);
    World::open(
        &world.gw_a,
        pb::SessionStart {
            device: "kim-desktop".into(),
            ..from("kim", "81.2.69.142")
        },
    )
    .await;

    let to_wiki = World::open(&world.gw_a, start("lee", "wiki", ResourceType::Web, "81.2.69.142")).await;
    world.lock(LockOn::ResourceName("wiki".into()), None).await;
    assert_eq!(world.ended(&to_wiki).await.end_reason, EndReason::Locked as i32);
    assert!(
        !World::start_on(&world.gw_b, start("lee", "wiki", ResourceType::Web, "81.2.69.142"))
            .await
            .allowed
    );
    World::open(&world.gw_b, start("lee", "crm", ResourceType::Web, "81.2.69.142")).await;

    let through_b = World::open(&world.gw_b, from("max", "81.2.69.142")).await;
    let through_a = World::open(&world.gw_a, from("max", "81.2.69.142")).await;
    world.lock(LockOn::GatewayId("gw-b".into()), None).await;
    assert_eq!(world.ended(&through_b).await.end_reason, EndReason::Locked as i32);
    assert_eq!(world.session(&through_a).await.status, SessionStatus::Active as i32);
    assert!(!World::start_on(&world.gw_b, from("max", "81.2.69.142")).await.allowed);
    World::open(&world.gw_a, from("max", "81.2.69.142")).await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_lock_admits_again() {
    let world = World::new().await;
    let lock = world.lock(LockOn::User("nia".into()), None).await;
    assert!(!World::start_on(&world.gw_a, from("nia", "81.2.69.142")).await.allowed);
    world
        .engine
        .delete_lock("soc@acme.example", &lock.id)
        .await
        .expect("delete");
    world.agents_drop(&lock.id).await;
    World::open(&world.gw_a, from("nia", "81.2.69.142")).await;
    assert!(
        world
            .engine
            .list_locks(&pb::ListLocksRequest { include_expired: true })
            .await
            .unwrap()
            .locks
            .is_empty()
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_ends_what_a_lock_covers_when_its_creation_could_not() {
    // No terminator attached: creating the lock ends nothing by itself.
    let world = World::with(false).await;
    let session = World::open(&world.gw_a, from("olga", "81.2.69.142")).await;
    world.lock(LockOn::User("olga".into()), None).await;
    assert_eq!(world.session(&session).await.status, SessionStatus::Active as i32);

    let sweeper = world.sweeper();
    let ended = world.ended(&session).await;
    assert_eq!(ended.end_reason, EndReason::Locked as i32);
    let command = commands(&world.handler_a)
        .into_iter()
        .find(|command| command.session_id == session)
        .expect("a terminate command");
    assert_eq!(command.user_message, SOC_MESSAGE);
    // Once ended, it is not asked for again.
    let target = sweeper.status().sweeps + 3;
    let (status, swept) = sweeper.wait_for(PATIENCE, |status| status.sweeps >= target).await;
    assert!(swept);
    assert_eq!(status.ended, 1, "{status:?}");
    assert_eq!(commands(&world.handler_a).len(), 1);
    sweeper.stop().await;
    world.finish().await;
}

// ---------------------------------------------------------------------------------------------
// The lock set on the bus, and other replicas
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_publishes_the_set_in_force_with_a_higher_version() {
    let world = World::new().await;
    let mut updates = world.lock_updates().await;
    let first = world.lock(LockOn::User("pat".into()), None).await;
    let one = next_update(&mut updates).await;
    assert_eq!(lock_ids(&one), vec![first.id.clone()]);
    assert_eq!(one.locks[0], first);

    let second = world.lock(LockOn::Cidr("2001:db8::/32".into()), Some(HOUR)).await;
    let two = next_update(&mut updates).await;
    assert_eq!(lock_ids(&two), vec![first.id.clone(), second.id.clone()]);
    assert!(two.version > one.version);

    world.engine.delete_lock("soc@acme.example", &first.id).await.unwrap();
    let three = next_update(&mut updates).await;
    assert_eq!(lock_ids(&three), vec![second.id.clone()]);
    assert!(three.version > two.version);
    assert_eq!(world.engine.held_lock_version(), three.version);

    // The sweeper's leader publishes the set as it is, unchanged, for holders that came later.
    let sweeper = world.sweeper();
    let again = next_update(&mut updates).await;
    assert_eq!(again, three);
    sweeper.stop().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_policy_replica_refuses_by_a_lock_it_did_not_create() {
    let world = World::new().await;
    // A second replica on the same database and bus, already holding the (empty) set.
    let other = PolicyEngine::new(world.schema.policy_store().await, world.clock.clone());
    other.attach_bus(redis_bus(&world.namespace).await);
    other.start_refresh(world.registry.shutdown.child_token());
    let before = other
        .admit(&pb::AdmitRequest {
            session_id: uuid::Uuid::now_v7().to_string(),
            gateway_id: "gw-a".into(),
            start: Some(from("quinn", "81.2.69.142")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(before.verdict, AdmissionVerdict::Allow as i32);

    world.lock(LockOn::User("quinn".into()), None).await;
    let version = world.engine.held_lock_version();
    eventually("the other replica to hold the new set", || async {
        (other.held_lock_version() == version).then_some(())
    })
    .await;
    let after = other
        .admit(&pb::AdmitRequest {
            session_id: uuid::Uuid::now_v7().to_string(),
            gateway_id: "gw-a".into(),
            start: Some(from("quinn", "81.2.69.142")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (after.verdict, after.reason.as_str()),
        (AdmissionVerdict::Deny as i32, SOC_MESSAGE)
    );
    world.finish().await;
}

// ---------------------------------------------------------------------------------------------
// The RPCs: validation, listing, the audit trail
// ---------------------------------------------------------------------------------------------

fn refused(result: Result<tonic::Response<impl std::fmt::Debug>, tonic::Status>, code: Code) -> String {
    match result {
        Err(status) if status.code() == code => status.message().to_owned(),
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_requests_are_checked_listed_and_audited() {
    let world = World::new().await;
    let (mut client, _server) = serve(world.engine.clone()).await;
    bad_lock_requests_are_refused(&mut client).await;
    let lock = a_lock_refuses_until_it_expires(&world, &mut client).await;
    every_lock_request_is_audited(&mut client, &lock).await;
    world.finish().await;
}

/// A lock request for `target`, lasting `ttl`, showing `message`.
fn create(target: Option<LockOn>, ttl: Option<prost_types::Duration>, message: &str) -> pb::CreateLockRequest {
    pb::CreateLockRequest {
        target: target.map(|target| pb::LockTarget { target: Some(target) }),
        message: message.into(),
        ttl,
        reason: String::new(),
    }
}

/// Creates and deletes that must be refused, each with its message; none stores anything.
async fn bad_lock_requests_are_refused(client: &mut PolicyServiceClient<Channel>) {
    bad_lock_creates_are_refused(client).await;
    bad_lock_deletes_are_refused(client).await;
    // Nothing was stored by any of that.
    assert!(
        client
            .list_locks(pb::ListLocksRequest { include_expired: true })
            .await
            .unwrap()
            .into_inner()
            .locks
            .is_empty()
    );
}

/// Creates without a usable target, with a TTL of zero or with too long a message: INVALID_ARGUMENT, saying why.
async fn bad_lock_creates_are_refused(client: &mut PolicyServiceClient<Channel>) {
    let invalid = Code::InvalidArgument;
    let refused_creates = [
        (
            create(None, None, ""),
            "target is required: a user, group, resource_name, gateway_id, device or cidr",
        ),
        (
            create(Some(LockOn::User(String::new())), None, ""),
            "target.user must not be empty",
        ),
        (
            create(Some(LockOn::Cidr("10.1.2.3/16".into())), None, ""),
            "target.cidr \"10.1.2.3/16\" has bits set past the prefix length; did you mean 10.1.0.0/16?",
        ),
        (
            create(Some(LockOn::Cidr("0.0.0.0/0".into())), None, ""),
            "target.cidr \"0.0.0.0/0\" covers every address; name a smaller network (or act on everyone explicitly)",
        ),
    ];
    for (request, expected) in refused_creates {
        assert_eq!(refused(client.create_lock(request).await, invalid), expected);
    }
    assert!(
        refused(
            client
                .create_lock(create(Some(LockOn::GatewayId("gw/1".into())), None, ""))
                .await,
            invalid
        )
        .starts_with("target.gateway_id \"gw/1\" contains '/'")
    );
    let refused_creates = [
        (
            create(
                Some(LockOn::User("rae".into())),
                Some(prost_types::Duration { seconds: 0, nanos: 0 }),
                "",
            ),
            "ttl must be at least 1 second (leave it unset for a lock that lasts until removed)",
        ),
        (
            create(Some(LockOn::User("rae".into())), None, &"m".repeat(600)),
            "message is 600 characters long; at most 512 are allowed",
        ),
    ];
    for (request, expected) in refused_creates {
        assert_eq!(refused(client.create_lock(request).await, invalid), expected);
    }
}

/// Deletes of no id, of something that is no lock id, and of a lock that does not exist.
async fn bad_lock_deletes_are_refused(client: &mut PolicyServiceClient<Channel>) {
    let invalid = Code::InvalidArgument;
    assert_eq!(
        refused(
            client.delete_lock(pb::DeleteLockRequest { id: String::new() }).await,
            invalid
        ),
        "id must not be empty"
    );
    assert_eq!(
        refused(
            client.delete_lock(pb::DeleteLockRequest { id: "lock-1".into() }).await,
            invalid
        ),
        "id is not a lock id (a UUID)"
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        refused(
            client.delete_lock(pb::DeleteLockRequest { id: unknown.clone() }).await,
            Code::NotFound
        ),
        format!("lock {unknown:?} not found")
    );
}

/// A good one: the default message, the caller as creator, listed until it expires.
async fn a_lock_refuses_until_it_expires(world: &World, client: &mut PolicyServiceClient<Channel>) -> pb::Lock {
    let lock = client
        .create_lock(create(
            Some(LockOn::User("rae".into())),
            Some(proto_duration(Duration::from_secs(90))),
            "",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lock.message, vigil_policy::locks::DEFAULT_LOCK_MESSAGE);
    assert!(lock.created_by.starts_with("anonymous@"), "{}", lock.created_by);
    let verdict = world.admit(from("rae", "81.2.69.142"), "gw-a").await;
    assert_eq!(
        (verdict.verdict, verdict.reason.as_str()),
        (AdmissionVerdict::Deny as i32, vigil_policy::locks::DEFAULT_LOCK_MESSAGE)
    );
    let listed = client
        .list_locks(pb::ListLocksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.locks, vec![lock.clone()]);
    world.clock.advance(Duration::from_secs(90));
    assert!(
        client
            .list_locks(pb::ListLocksRequest::default())
            .await
            .unwrap()
            .into_inner()
            .locks
            .is_empty()
    );
    client
        .delete_lock(pb::DeleteLockRequest { id: lock.id.clone() })
        .await
        .expect("an expired lock can still be removed");

    lock
}

/// Every attempt of the two above is in the audit trail, refused ones with why.
async fn every_lock_request_is_audited(client: &mut PolicyServiceClient<Channel>, lock: &pb::Lock) {
    let events = client
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    let creates: Vec<&pb::AuditEvent> = events.iter().filter(|event| event.action == "lock.create").collect();
    let deletes: Vec<&pb::AuditEvent> = events.iter().filter(|event| event.action == "lock.delete").collect();
    assert_eq!((creates.len(), deletes.len()), (8, 4), "{events:#?}");
    let made = creates
        .iter()
        .find(|event| event.outcome == pb::AuditOutcome::Succeeded as i32)
        .expect("the successful create");
    assert_eq!(made.target, format!("lock {} (user \"rae\")", lock.id));
    assert_eq!(made.actor, lock.created_by);
    let removed = deletes
        .iter()
        .find(|event| event.outcome == pb::AuditOutcome::Succeeded as i32)
        .expect("the successful delete");
    assert_eq!(removed.target, format!("lock {} (user \"rae\")", lock.id));
    let bad_network = creates
        .iter()
        .find(|event| event.detail.contains("bits set"))
        .expect("the refused network");
    assert_eq!(bad_network.target, "new lock (invalid target)");
    assert_eq!(bad_network.outcome, pb::AuditOutcome::Failed as i32);
}

// ---------------------------------------------------------------------------------------------
// The registry resolves the new selectors
// ---------------------------------------------------------------------------------------------

/// The ids of the live sessions `target` covers, sorted.
async fn resolve(
    mut client: pb::session_registry_client::SessionRegistryClient<Channel>,
    target: Select,
) -> Vec<String> {
    let mut ids: Vec<String> = client
        .resolve_sessions(pb::ResolveSessionsRequest {
            selector: Some(pb::SessionSelector { target: Some(target) }),
        })
        .await
        .expect("resolves")
        .into_inner()
        .sessions
        .into_iter()
        .map(|session| session.id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_resolved_by_group_device_and_network() {
    let world = World::new().await;
    let sre = World::open(
        &world.gw_a,
        pb::SessionStart {
            user_groups: vec!["sre".into(), "50%_off".into()],
            ..from("uma", "10.20.1.5")
        },
    )
    .await;
    let other = World::open(
        &world.gw_b,
        pb::SessionStart {
            user_groups: vec!["SRE".into(), "sre-leads".into()],
            device: "shared-kiosk".into(),
            ..from("vic", "10.20.200.5")
        },
    )
    .await;
    let v6 = World::open(&world.gw_b, from("wes", "2001:db8:1::7")).await;
    let client = world.registry.sessions_client().await;
    let resolve = |target: Select| resolve(client.clone(), target);
    assert_eq!(resolve(Select::Group("sre".into())).await, vec![sre.clone()]);
    assert_eq!(resolve(Select::Group("50%_off".into())).await, vec![sre.clone()]);
    assert_eq!(resolve(Select::Group("50%".into())).await, Vec::<String>::new());
    assert_eq!(
        resolve(Select::Device("shared-kiosk".into())).await,
        vec![other.clone()]
    );
    assert_eq!(resolve(Select::Device("nobody's".into())).await, Vec::<String>::new());
    let mut both = vec![sre.clone(), other.clone()];
    both.sort();
    assert_eq!(resolve(Select::Cidr("10.20.0.0/16".into())).await, both);
    assert_eq!(resolve(Select::Cidr("10.20.1.0/24".into())).await, vec![sre.clone()]);
    assert_eq!(resolve(Select::Cidr("10.20.1.5/32".into())).await, vec![sre.clone()]);
    assert_eq!(resolve(Select::Cidr("2001:db8::/32".into())).await, vec![v6.clone()]);
    let refused = client
        .clone()
        .resolve_sessions(pb::ResolveSessionsRequest {
            selector: Some(pb::SessionSelector {
                target: Some(Select::Cidr("10.20.1.5/16".into())),
            }),
        })
        .await
        .expect_err("host bits set");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        refused.message(),
        "selector.cidr \"10.20.1.5/16\" has bits set past the prefix length; did you mean 10.20.0.0/16?"
    );
    world.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency slots are freed as sessions end
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_ends_frees_its_slot_for_the_very_next_start() {
    let world = World::new().await;
    world
        .engine
        .create(
            "test",
            &pb::CreatePolicyRequest {
                scope: Some(pb::PolicyScope {
                    scope: Some(pb::policy_scope::Scope::User("yan".into())),
                }),
                rules: Some(pb::PolicyRules {
                    max_concurrent_sessions: Some(1),
                    concurrency_action: ConcurrencyAction::DenyNew as i32,
                    ..Default::default()
                }),
                description: String::new(),
            },
        )
        .await
        .unwrap();
    let mut session = World::open(&world.gw_a, from("yan", "81.2.69.142")).await;
    let full = World::start_on(&world.gw_a, from("yan", "81.2.69.142")).await;
    assert!(!full.allowed, "at the limit");
    for round in 0..5 {
        world
            .gw_a
            .close_session(&session, EndReason::UserClosed, "logged out")
            .await;
        // No waiting: the slot is free by the time the next start is decided.
        let next = World::start_on(&world.gw_a, from("yan", "81.2.69.142")).await;
        assert!(next.allowed, "round {round}: {}", next.reason);
        session = next.session_id;
    }
    // A session ended by a kill frees its slot as promptly.
    let termination = world
        .registry
        .terminator
        .as_ref()
        .unwrap()
        .terminate(
            "test",
            &pb::TerminateRequest {
                selector: Some(pb::SessionSelector {
                    target: Some(Select::SessionIds(pb::SessionIds {
                        ids: vec![session.clone()],
                    })),
                }),
                reason: EndReason::Admin as i32,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(termination.session_count, 1);
    world.ended(&session).await;
    let next = World::start_on(&world.gw_a, from("yan", "81.2.69.142")).await;
    assert!(next.allowed, "after a kill: {}", next.reason);
    world.finish().await;
}
