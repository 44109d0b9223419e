//! The `PolicyStore` contract: one suite, run against PostgreSQL and SQLite.
//!
//! Each test is an `async fn(Backend)`; `contract_tests!` runs it as `postgres::<name>` (a fresh
//! schema on the database of `VIGIL_TEST_DATABASE_URL`, dropped afterwards) and as
//! `sqlite::<name>` (a fresh database file, deleted afterwards). A test that needs two replicas
//! opens a second store — its own connection pool — on the same database.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectOptions, Database};
use uuid::Uuid;
use vigil_policy::domain::{
    AuditQuery, AuditRecord, Cidr, ConcurrencyAction, ConcurrencyLimit, DeleteOutcome, IdleWarningRecord, LockRecord,
    LockTarget, PolicyRecord, Rules, Scope, Slot, SlotOutcome, Subject,
};
use vigil_policy::store::{PolicyStore, SqlPolicyStore};
use vigil_runtime::ServiceError;
use vigil_testkit::TestDatabase;

/// A fixed "now" for the data: 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;
const MIN: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A migrated store, and how to open another one on the same database.
#[derive(Clone)]
struct Backend {
    store: Arc<SqlPolicyStore>,
    options: ConnectOptions,
}

impl Backend {
    /// Another store on the same database, with its own connection pool (another replica).
    async fn replica(&self) -> Arc<SqlPolicyStore> {
        let db = Database::connect(self.options.clone()).await.expect("connect again");
        Arc::new(SqlPolicyStore::new(db).await.expect("store"))
    }
}

async fn open(options: ConnectOptions) -> Backend {
    let db = Database::connect(options.clone()).await.expect("connect");
    let store = SqlPolicyStore::new(db).await.expect("store");
    store.migrate().await.expect("migrate");
    Backend {
        store: Arc::new(store),
        options,
    }
}

/// Opens and migrates the store, runs `test` on it, and closes it.
async fn run<F, Fut>(options: ConnectOptions, test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let backend = open(options).await;
    let store = backend.store.clone();
    test(backend).await;
    let _ = store.connection().close_by_ref().await;
}

/// Runs `test` on a store on `database`: on PostgreSQL with pools of eight connections (the
/// concurrency tests race two replicas), on SQLite in WAL mode, connections waiting for each
/// other's write lock as the service's own connections do.
async fn on_store<F, Fut>(database: Arc<TestDatabase>, test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut options = database.options();
    match database.as_ref() {
        TestDatabase::Postgres { .. } => {
            options.max_connections(8);
        }
        TestDatabase::Sqlite { .. } => {
            options.map_sqlx_sqlite_opts(|sqlite| {
                sqlite
                    .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10))
            });
        }
    }
    run(options, test).await;
}

vigil_testkit::contract_tests!(
    on_store;
    the_migration_seeds_one_global_policy_with_the_defaults,
    policies_round_trip_one_per_scope_most_general_first,
    updates_replace_rules_whole_and_deletes_spare_the_global_policy,
    every_policy_change_takes_a_new_version,
    concurrent_policy_changes_on_two_replicas_each_get_their_own_version,
    the_policies_that_apply_to_a_subject,
    slots_under_the_limit_are_taken_once,
    deny_new_at_the_limit_changes_nothing,
    end_oldest_frees_the_oldest_slots,
    concurrent_admissions_on_two_replicas_never_exceed_the_limit,
    concurrent_evictions_on_two_replicas_keep_the_limit,
    release_frees_slots_and_forgets_warnings,
    users_with_slots_page_by_name,
    idle_warnings_are_recorded_once_per_idle_period,
    racing_replicas_record_a_warning_once,
    old_warnings_are_pruned,
    a_lease_has_one_holder_until_released_or_expired,
    racing_replicas_take_a_lease_once,
    the_audit_trail_reads_newest_first_by_page_actor_and_time,
    locks_round_trip_and_every_change_takes_a_new_version,
    expired_locks_are_announced_once,
    concurrent_lock_changes_on_two_replicas_each_get_their_own_version,
);

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn policy(scope: Scope, rules: Rules) -> PolicyRecord {
    PolicyRecord {
        id: Uuid::now_v7().to_string(),
        scope,
        rules,
        description: "for a test".to_owned(),
        updated_by: "anonymous@127.0.0.1".to_owned(),
        updated_at: T0,
    }
}

fn every_rule() -> Rules {
    Rules {
        idle_warning_after: Some(5 * MIN),
        idle_timeout: Some(20 * MIN),
        max_session_duration: Some(Duration::from_millis(8 * 3_600_000 + 250)),
        max_concurrent_sessions: Some(3),
        concurrency_action: Some(ConcurrencyAction::EndOldest),
        deny_risk_score: Some(90),
        flag_risk_score: Some(60),
    }
}

fn slot(user: &str, started_at: i64) -> Slot {
    Slot {
        session_id: Uuid::now_v7().to_string(),
        user: user.to_owned(),
        started_at,
        created_at: T0,
    }
}

fn limit(max: u32, action: ConcurrencyAction) -> Option<ConcurrencyLimit> {
    Some(ConcurrencyLimit { max, action })
}

fn ids(slots: &[Slot]) -> Vec<String> {
    slots.iter().map(|slot| slot.session_id.clone()).collect()
}

fn warning(session_id: &str, last_activity_at: i64) -> IdleWarningRecord {
    IdleWarningRecord {
        session_id: session_id.to_owned(),
        last_activity_at,
    }
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

async fn global(store: &SqlPolicyStore) -> PolicyRecord {
    let policies = store.list_policies().await.unwrap();
    let global: Vec<_> = policies.into_iter().filter(|p| p.scope == Scope::Global).collect();
    assert_eq!(global.len(), 1, "exactly one global policy");
    global.into_iter().next().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------------------------

async fn the_migration_seeds_one_global_policy_with_the_defaults(backend: Backend) {
    let store = &backend.store;
    let seeded = global(store).await;
    assert_eq!(
        seeded.rules,
        Rules {
            idle_warning_after: Some(10 * MIN),
            idle_timeout: Some(30 * MIN),
            ..Rules::default()
        }
    );
    assert_eq!(seeded.updated_by, "system");
    assert_eq!(store.list_policies().await.unwrap().len(), 1);
    // Migrating again (another replica starting) adds nothing and keeps the id.
    store.migrate().await.unwrap();
    backend.replica().await.migrate().await.unwrap();
    assert_eq!(global(store).await, seeded);
}

async fn policies_round_trip_one_per_scope_most_general_first(backend: Backend) {
    let store = &backend.store;
    let created = [
        policy(Scope::User("zoe".into()), every_rule()),
        policy(Scope::Resource("prod-db".into()), Rules::default()),
        policy(Scope::Group("ops".into()), Rules::default()),
        policy(Scope::User("adam".into()), Rules::default()),
        policy(Scope::Group("Eng".into()), Rules::default()),
        policy(Scope::Group("eng".into()), Rules::default()),
    ];
    for policy in &created {
        store.create_policy(policy).await.unwrap();
    }
    assert_eq!(
        store.get_policy(&created[0].id).await.unwrap().as_ref(),
        Some(&created[0])
    );
    assert_eq!(store.get_policy(&Uuid::now_v7().to_string()).await.unwrap(), None);

    let listed: Vec<String> = store
        .list_policies()
        .await
        .unwrap()
        .iter()
        .map(|policy| policy.scope.to_string())
        .collect();
    assert_eq!(
        listed,
        [
            "global",
            "group \"Eng\"",
            "group \"eng\"",
            "group \"ops\"",
            "resource \"prod-db\"",
            "user \"adam\"",
            "user \"zoe\""
        ]
    );

    // A second policy for a scope, the global one included, is refused and names the first.
    let duplicate = policy(Scope::User("zoe".into()), Rules::default());
    match store.create_policy(&duplicate).await {
        Err(ServiceError::AlreadyExists(message)) => {
            assert!(message.contains(&created[0].id), "{message}");
            assert!(message.contains("user \"zoe\""), "{message}");
        }
        other => panic!("expected ALREADY_EXISTS, got {other:?}"),
    }
    assert!(matches!(
        store.create_policy(&policy(Scope::Global, Rules::default())).await,
        Err(ServiceError::AlreadyExists(_))
    ));
    assert_eq!(store.list_policies().await.unwrap().len(), 7);
}

async fn updates_replace_rules_whole_and_deletes_spare_the_global_policy(backend: Backend) {
    let store = &backend.store;
    let user = policy(Scope::User("ann".into()), every_rule());
    store.create_policy(&user).await.unwrap();
    let narrower = Rules {
        idle_timeout: Some(Duration::ZERO),
        ..Rules::default()
    };
    let updated = store
        .update_policy(&user.id, &narrower, "no idle timeout", "admin@10.0.0.1", T0 + 5)
        .await
        .unwrap()
        .expect("the policy exists");
    assert_eq!(
        updated,
        PolicyRecord {
            rules: narrower.clone(),
            description: "no idle timeout".into(),
            updated_by: "admin@10.0.0.1".into(),
            updated_at: T0 + 5,
            ..user.clone()
        }
    );
    assert_eq!(store.get_policy(&user.id).await.unwrap(), Some(updated));
    assert_eq!(
        store
            .update_policy(&Uuid::now_v7().to_string(), &narrower, "", "x", T0)
            .await
            .unwrap(),
        None
    );

    let global = global(store).await;
    assert_eq!(
        store.delete_policy(&global.id, "admin@example.com").await.unwrap(),
        DeleteOutcome::Global
    );
    assert_eq!(
        store.delete_policy(&user.id, "admin@example.com").await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        store.delete_policy(&user.id, "admin@example.com").await.unwrap(),
        DeleteOutcome::NotFound
    );
    assert_eq!(store.get_policy(&user.id).await.unwrap(), None);
    // The global policy can be changed, even emptied.
    let emptied = store
        .update_policy(&global.id, &Rules::default(), "", "admin", T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(emptied.rules, Rules::default());
    assert_eq!(emptied.scope, Scope::Global);
}

async fn every_policy_change_takes_a_new_version(backend: Backend) {
    let store = &backend.store;
    let seeded = store.versioned_policies().await.unwrap();
    assert_eq!(
        (seeded.version, seeded.policies),
        (0, vec![global(store).await]),
        "the seeded global policy is version 0"
    );
    let user = policy(Scope::User("ann".into()), every_rule());
    store.create_policy(&user).await.unwrap();
    assert_eq!(store.policy_version().await.unwrap(), 1, "created");
    assert!(store.create_policy(&user).await.is_err());
    assert_eq!(
        store.policy_version().await.unwrap(),
        1,
        "a refused create takes no version"
    );

    store
        .update_policy(&user.id, &Rules::default(), "relaxed", "admin", T0 + 1)
        .await
        .unwrap()
        .expect("the policy exists");
    assert_eq!(store.policy_version().await.unwrap(), 2, "updated");
    let unknown = Uuid::now_v7().to_string();
    assert_eq!(
        store
            .update_policy(&unknown, &Rules::default(), "", "admin", T0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.policy_version().await.unwrap(),
        2,
        "updating nothing changes nothing"
    );

    let global = global(store).await;
    assert_eq!(
        store.delete_policy(&global.id, "admin").await.unwrap(),
        DeleteOutcome::Global
    );
    assert_eq!(
        store.policy_version().await.unwrap(),
        2,
        "the global policy stays, and so does the version"
    );
    assert_eq!(
        store.delete_policy(&user.id, "admin").await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(store.policy_version().await.unwrap(), 3, "deleted");
    assert_eq!(
        store.delete_policy(&user.id, "admin").await.unwrap(),
        DeleteOutcome::NotFound
    );

    // Another replica reads the same version, with the policies as of it.
    let read = backend.replica().await.versioned_policies().await.unwrap();
    assert_eq!((read.version, read.policies), (3, vec![global]));
}

async fn concurrent_policy_changes_on_two_replicas_each_get_their_own_version(backend: Backend) {
    let replicas: [Arc<SqlPolicyStore>; 2] = [backend.store.clone(), backend.replica().await];
    let policies: Vec<PolicyRecord> = (0..20)
        .map(|i| policy(Scope::User(format!("user-{i}")), Rules::default()))
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(policies.len()));
    let created = futures::future::join_all(policies.iter().enumerate().map(|(i, policy)| {
        let store = replicas[i % 2].clone();
        let policy = policy.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            store.create_policy(&policy).await
        })
    }))
    .await;
    assert!(created.into_iter().all(|outcome| outcome.unwrap().is_ok()));
    let read = backend.store.versioned_policies().await.unwrap();
    assert_eq!(
        (read.version, read.policies.len()),
        (20, 21),
        "one version per change, none lost"
    );
}

async fn the_policies_that_apply_to_a_subject(backend: Backend) {
    let store = &backend.store;
    let all = [
        policy(Scope::User("ann".into()), Rules::default()),
        policy(Scope::User("bob".into()), Rules::default()),
        policy(Scope::Resource("db".into()), Rules::default()),
        policy(Scope::Resource("wiki".into()), Rules::default()),
        policy(Scope::Group("eng".into()), Rules::default()),
        policy(Scope::Group("ops".into()), Rules::default()),
        // Same names, other kinds: must not be confused.
        policy(Scope::Group("ann".into()), Rules::default()),
        policy(Scope::Resource("eng".into()), Rules::default()),
    ];
    for policy in &all {
        store.create_policy(policy).await.unwrap();
    }
    let global = global(store).await;
    let applicable = |user: &'static str, groups: Vec<String>, resource: &'static str| {
        let store = store.clone();
        async move {
            let subject = Subject {
                user,
                groups: &groups,
                resource,
            };
            let mut found: Vec<String> = store
                .applicable_policies(subject)
                .await
                .unwrap()
                .iter()
                .map(|policy| policy.scope.to_string())
                .collect();
            found.sort();
            found
        }
    };
    assert_eq!(
        applicable("ann", vec!["eng".into(), "ops".into(), "none".into()], "db").await,
        [
            "global",
            "group \"eng\"",
            "group \"ops\"",
            "resource \"db\"",
            "user \"ann\""
        ]
    );
    assert_eq!(applicable("carl", vec![], "printer").await, ["global"]);
    assert_eq!(
        applicable("bob", vec!["ann".into()], "eng").await,
        ["global", "group \"ann\"", "resource \"eng\"", "user \"bob\""]
    );
    assert_eq!(global.scope, Scope::Global);
}

// ---------------------------------------------------------------------------------------------
// Slots
// ---------------------------------------------------------------------------------------------

async fn slots_under_the_limit_are_taken_once(backend: Backend) {
    let store = &backend.store;
    let (first, second) = (slot("ann", T0 + 10), slot("ann", T0));
    for slot in [&first, &second] {
        assert_eq!(
            store
                .take_slot(slot, limit(3, ConcurrencyAction::DenyNew))
                .await
                .unwrap(),
            SlotOutcome::Taken { evicted: vec![] }
        );
    }
    // Again: nothing changes, whatever the limit says now.
    assert_eq!(
        store
            .take_slot(&first, limit(1, ConcurrencyAction::DenyNew))
            .await
            .unwrap(),
        SlotOutcome::AlreadyHeld
    );
    // Without a limit the slot is still taken, so a later limit counts it.
    let unlimited = slot("ann", T0 + 20);
    assert_eq!(
        store.take_slot(&unlimited, None).await.unwrap(),
        SlotOutcome::Taken { evicted: vec![] }
    );
    assert_eq!(
        store.slots_of("ann").await.unwrap(),
        vec![second.clone(), first.clone(), unlimited.clone()],
        "oldest session first"
    );
    assert!(store.slots_of("bob").await.unwrap().is_empty());
}

async fn deny_new_at_the_limit_changes_nothing(backend: Backend) {
    let store = &backend.store;
    let held = [slot("ann", T0), slot("ann", T0 + 1)];
    for slot in &held {
        store.take_slot(slot, None).await.unwrap();
    }
    let refused = slot("ann", T0 + 2);
    assert_eq!(
        store
            .take_slot(&refused, limit(2, ConcurrencyAction::DenyNew))
            .await
            .unwrap(),
        SlotOutcome::Full { held: 2 }
    );
    // A limit lowered below what is held refuses too, and says how many are held.
    assert_eq!(
        store
            .take_slot(&refused, limit(1, ConcurrencyAction::DenyNew))
            .await
            .unwrap(),
        SlotOutcome::Full { held: 2 }
    );
    assert_eq!(ids(&store.slots_of("ann").await.unwrap()), ids(&held));
    // Another user is not affected.
    assert_eq!(
        store
            .take_slot(&slot("bob", T0), limit(2, ConcurrencyAction::DenyNew))
            .await
            .unwrap(),
        SlotOutcome::Taken { evicted: vec![] }
    );
}

async fn end_oldest_frees_the_oldest_slots(backend: Backend) {
    let store = &backend.store;
    // Taken out of start order; ties in start time are broken by session id.
    let (middle, oldest, newest) = (slot("ann", T0 + 5), slot("ann", T0), slot("ann", T0 + 9));
    let tied = Slot {
        session_id: format!("{}-tie", newest.session_id),
        ..newest.clone()
    };
    for slot in [&middle, &oldest, &newest, &tied] {
        store.take_slot(slot, None).await.unwrap();
    }
    store
        .record_idle_warnings(&[warning(&oldest.session_id, T0)], T0)
        .await
        .unwrap();

    let incoming = slot("ann", T0 + 10);
    assert_eq!(
        store
            .take_slot(&incoming, limit(2, ConcurrencyAction::EndOldest))
            .await
            .unwrap(),
        SlotOutcome::Taken {
            evicted: vec![
                oldest.session_id.clone(),
                middle.session_id.clone(),
                newest.session_id.clone()
            ]
        }
    );
    assert_eq!(store.slots_of("ann").await.unwrap(), vec![tied, incoming]);
    // The evicted session's idle period may be warned about again if it somehow lives on.
    assert_eq!(
        store
            .record_idle_warnings(&[warning(&oldest.session_id, T0)], T0)
            .await
            .unwrap(),
        vec![oldest.session_id.clone()]
    );
}

/// `attempts` admissions for each of `users`, all released at once through a barrier, alternately
/// on two replicas; returns each attempt's slot and outcome.
async fn race(
    backend: &Backend,
    users: &[&str],
    attempts: usize,
    limit: Option<ConcurrencyLimit>,
) -> Vec<(Slot, SlotOutcome)> {
    let replicas: [Arc<SqlPolicyStore>; 2] = [backend.store.clone(), backend.replica().await];
    let slots: Vec<Slot> = users
        .iter()
        .flat_map(|user| (0..attempts).map(move |i| slot(user, T0 + i as i64)))
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(slots.len()));
    let outcomes = futures::future::join_all(slots.iter().enumerate().map(|(i, slot)| {
        let store = replicas[i % 2].clone();
        let slot = slot.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            store.take_slot(&slot, limit).await.unwrap()
        })
    }))
    .await;
    slots
        .into_iter()
        .zip(outcomes.into_iter().map(|outcome| outcome.unwrap()))
        .collect()
}

const RACERS: [&str; 4] = ["racer-a", "racer-b", "racer-c", "racer-d"];

async fn concurrent_admissions_on_two_replicas_never_exceed_the_limit(backend: Backend) {
    let outcomes = race(&backend, &RACERS, 20, limit(3, ConcurrencyAction::DenyNew)).await;
    for user in RACERS {
        let mut taken = Vec::new();
        for (slot, outcome) in outcomes.iter().filter(|(slot, _)| slot.user == user) {
            match outcome {
                SlotOutcome::Taken { evicted } => {
                    assert!(evicted.is_empty());
                    taken.push(slot.session_id.clone());
                }
                SlotOutcome::Full { held } => assert_eq!(*held, 3),
                SlotOutcome::AlreadyHeld => panic!("every attempt is a new session"),
            }
        }
        assert_eq!(taken.len(), 3, "{user}: exactly the limit admitted");
        assert_eq!(sorted(ids(&backend.store.slots_of(user).await.unwrap())), sorted(taken));
    }
}

async fn concurrent_evictions_on_two_replicas_keep_the_limit(backend: Backend) {
    let outcomes = race(&backend, &RACERS, 20, limit(3, ConcurrencyAction::EndOldest)).await;
    for user in RACERS {
        let mut evicted = Vec::new();
        for (_, outcome) in outcomes.iter().filter(|(slot, _)| slot.user == user) {
            match outcome {
                SlotOutcome::Taken { evicted: these } => evicted.extend(these.iter().cloned()),
                other => panic!("END_OLDEST always takes the slot, got {other:?}"),
            }
        }
        let remaining = ids(&backend.store.slots_of(user).await.unwrap());
        assert_eq!(remaining.len(), 3, "{user}: the limit holds");
        assert_eq!(evicted.len(), 17, "{user}: every other session was evicted");
        let evicted: HashSet<String> = evicted.into_iter().collect();
        assert_eq!(evicted.len(), 17, "{user}: no session evicted twice");
        assert!(remaining.iter().all(|id| !evicted.contains(id)));
    }
}

async fn release_frees_slots_and_forgets_warnings(backend: Backend) {
    let store = &backend.store;
    let held = [slot("ann", T0), slot("ann", T0 + 1), slot("bob", T0)];
    for slot in &held {
        store.take_slot(slot, None).await.unwrap();
    }
    store
        .record_idle_warnings(&[warning(&held[0].session_id, T0)], T0)
        .await
        .unwrap();
    let released = store
        .release_slots(&[held[0].session_id.clone(), held[2].session_id.clone(), "unknown".into()])
        .await
        .unwrap();
    assert_eq!(released, 2);
    assert_eq!(
        ids(&store.slots_of("ann").await.unwrap()),
        vec![held[1].session_id.clone()]
    );
    assert!(store.slots_of("bob").await.unwrap().is_empty());
    // Idempotent.
    assert_eq!(store.release_slots(&[held[0].session_id.clone()]).await.unwrap(), 0);
    assert_eq!(store.release_slots(&[]).await.unwrap(), 0);
    // Its warning record went with it.
    assert_eq!(
        store
            .record_idle_warnings(&[warning(&held[0].session_id, T0)], T0)
            .await
            .unwrap()
            .len(),
        1
    );
    // A large batch is one statement.
    let many: Vec<String> = (0..5_000).map(|_| Uuid::now_v7().to_string()).collect();
    assert_eq!(store.release_slots(&many).await.unwrap(), 0);
}

async fn users_with_slots_page_by_name(backend: Backend) {
    let store = &backend.store;
    for user in ["dan", "ann", "cat", "bob", "ann"] {
        store.take_slot(&slot(user, T0), None).await.unwrap();
    }
    assert_eq!(store.users_with_slots(None, 2).await.unwrap(), ["ann", "bob"]);
    assert_eq!(store.users_with_slots(Some("bob"), 2).await.unwrap(), ["cat", "dan"]);
    assert!(store.users_with_slots(Some("dan"), 2).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Idle warnings
// ---------------------------------------------------------------------------------------------

async fn idle_warnings_are_recorded_once_per_idle_period(backend: Backend) {
    let store = &backend.store;
    let (a, b) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    assert_eq!(
        sorted(
            store
                .record_idle_warnings(&[warning(&a, T0), warning(&b, T0)], T0)
                .await
                .unwrap()
        ),
        sorted(vec![a.clone(), b.clone()])
    );
    // The same period again: nothing.
    assert!(
        store
            .record_idle_warnings(&[warning(&a, T0)], T0 + 5)
            .await
            .unwrap()
            .is_empty()
    );
    // A new period (activity since): recorded again; an older one (a stale read): not.
    assert_eq!(
        store
            .record_idle_warnings(&[warning(&a, T0 + 60_000), warning(&b, T0 - 1)], T0 + 70_000)
            .await
            .unwrap(),
        vec![a.clone()]
    );
    // Duplicates in one batch count once, for the latest period.
    let c = Uuid::now_v7().to_string();
    assert_eq!(
        store
            .record_idle_warnings(&[warning(&c, T0), warning(&c, T0 + 1)], T0)
            .await
            .unwrap(),
        vec![c.clone()]
    );
    assert!(
        store
            .record_idle_warnings(&[warning(&c, T0 + 1)], T0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.record_idle_warnings(&[], T0).await.unwrap().is_empty());
}

async fn racing_replicas_record_a_warning_once(backend: Backend) {
    let replicas: [Arc<SqlPolicyStore>; 2] = [backend.store.clone(), backend.replica().await];
    let sessions: Vec<String> = (0..50).map(|_| Uuid::now_v7().to_string()).collect();
    let batch: Vec<IdleWarningRecord> = sessions.iter().map(|id| warning(id, T0)).collect();
    let recorded = futures::future::join_all((0..6).map(|i| {
        let store = replicas[i % 2].clone();
        let batch = batch.clone();
        tokio::spawn(async move { store.record_idle_warnings(&batch, T0).await.unwrap() })
    }))
    .await;
    let mut all: Vec<String> = recorded.into_iter().flat_map(|r| r.unwrap()).collect();
    all.sort();
    assert_eq!(all, sorted(sessions), "each session recorded exactly once");
}

async fn old_warnings_are_pruned(backend: Backend) {
    let store = &backend.store;
    let (old, recent) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    store.record_idle_warnings(&[warning(&old, T0)], T0).await.unwrap();
    store
        .record_idle_warnings(&[warning(&recent, T0)], T0 + 10_000)
        .await
        .unwrap();
    assert_eq!(store.prune_idle_warnings(T0 + 5_000).await.unwrap(), 1);
    assert_eq!(
        store.record_idle_warnings(&[warning(&old, T0)], T0).await.unwrap(),
        vec![old]
    );
    assert!(
        store
            .record_idle_warnings(&[warning(&recent, T0)], T0)
            .await
            .unwrap()
            .is_empty()
    );
}

// ---------------------------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------------------------

async fn a_lease_has_one_holder_until_released_or_expired(backend: Backend) {
    let store = &backend.store;
    let long = Duration::from_secs(60);
    assert!(store.acquire_lease("sweeper", "a", long).await.unwrap());
    assert!(!store.acquire_lease("sweeper", "b", long).await.unwrap());
    assert!(store.acquire_lease("sweeper", "a", long).await.unwrap(), "renewal");
    // Leases are independent of each other.
    assert!(store.acquire_lease("other", "b", long).await.unwrap());
    // Only the holder can release.
    store.release_lease("sweeper", "b").await.unwrap();
    assert!(!store.acquire_lease("sweeper", "b", long).await.unwrap());
    store.release_lease("sweeper", "a").await.unwrap();
    assert!(store.acquire_lease("sweeper", "b", long).await.unwrap());

    // An expired lease (by the database's clock) goes to whoever asks.
    assert!(
        store
            .acquire_lease("short", "a", Duration::from_millis(50))
            .await
            .unwrap()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !store.acquire_lease("short", "b", long).await.unwrap() {
        assert!(tokio::time::Instant::now() < deadline, "the lease never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !store.acquire_lease("short", "a", long).await.unwrap(),
        "b holds it now"
    );
}

async fn racing_replicas_take_a_lease_once(backend: Backend) {
    let replicas: [Arc<SqlPolicyStore>; 2] = [backend.store.clone(), backend.replica().await];
    let winners = futures::future::join_all((0..10).map(|i| {
        let store = replicas[i % 2].clone();
        tokio::spawn(async move {
            store
                .acquire_lease("sweeper", &format!("holder-{i}"), Duration::from_secs(60))
                .await
                .unwrap()
        })
    }))
    .await;
    assert_eq!(winners.into_iter().filter(|won| *won.as_ref().unwrap()).count(), 1);
}

// ---------------------------------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------------------------------

async fn the_audit_trail_reads_newest_first_by_page_actor_and_time(backend: Backend) {
    let store = &backend.store;
    let event = |at: i64, actor: &str, succeeded: bool| AuditRecord {
        id: Uuid::now_v7().to_string(),
        at,
        actor: actor.to_owned(),
        action: "policy.update".to_owned(),
        target: "policy 1 (global)".to_owned(),
        succeeded,
        detail: if succeeded {
            String::new()
        } else {
            "not found".to_owned()
        },
    };
    let events = [
        event(T0, "ada", true),
        event(T0 + 1, "bob", false),
        event(T0 + 1, "ada", true),
        event(T0 + 2, "ada", true),
    ];
    for event in &events {
        store.record_audit(event).await.unwrap();
    }
    let query = |actor: Option<&str>, since: Option<i64>, limit: u64, after: Option<&AuditRecord>| AuditQuery {
        actor: actor.map(str::to_owned),
        since,
        limit,
        after: after.map(|event| (event.at, event.id.clone())),
    };

    // Newest first; events at the same time by id, descending; pages continue where they stopped.
    let all = store.list_audit(&query(None, None, 10, None)).await.unwrap();
    let mut expected = vec![
        events[3].clone(),
        events[2].clone(),
        events[1].clone(),
        events[0].clone(),
    ];
    expected[1..3].sort_by(|a, b| b.id.cmp(&a.id));
    assert_eq!(all, expected);
    let first = store.list_audit(&query(None, None, 2, None)).await.unwrap();
    let second = store.list_audit(&query(None, None, 2, first.last())).await.unwrap();
    assert_eq!([first, second].concat(), expected);

    let by_ada = store.list_audit(&query(Some("ada"), None, 10, None)).await.unwrap();
    assert_eq!(by_ada.len(), 3);
    assert!(by_ada.iter().all(|event| event.actor == "ada"));
    let recent = store.list_audit(&query(None, Some(T0 + 1), 10, None)).await.unwrap();
    assert_eq!(recent.len(), 3);
    let failed: Vec<&AuditRecord> = all.iter().filter(|event| !event.succeeded).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].detail, "not found");
}

// ---------------------------------------------------------------------------------------------
// Locks
// ---------------------------------------------------------------------------------------------

fn lock(target: LockTarget, created_at: i64, expires_at: Option<i64>) -> LockRecord {
    LockRecord {
        id: Uuid::now_v7().to_string(),
        target,
        message: "Your access is suspended by security — contact the SOC".to_owned(),
        reason: "SOC-1234".to_owned(),
        created_by: "soc@acme.example".to_owned(),
        created_at,
        expires_at,
    }
}

async fn locks_round_trip_and_every_change_takes_a_new_version(backend: Backend) {
    let store = &backend.store;
    assert_eq!(store.lock_version().await.unwrap(), 0);
    assert!(store.locks(None).await.unwrap().locks.is_empty());
    let every_kind = [
        lock(LockTarget::User("alice".into()), T0, None),
        lock(LockTarget::Group("contractors".into()), T0 + 1, Some(T0 + 60_000)),
        lock(LockTarget::Resource("prod-db".into()), T0 + 2, None),
        lock(LockTarget::Gateway("gw-fra-1".into()), T0 + 3, None),
        lock(LockTarget::Device("kiosk-7".into()), T0 + 4, Some(T0 + 1_000)),
        lock(LockTarget::Network(Cidr::parse("2001:db8::/32").unwrap()), T0 + 5, None),
    ];
    for (i, lock) in every_kind.iter().enumerate() {
        assert_eq!(store.create_lock(lock).await.unwrap(), i as u64 + 1);
    }
    let all = store.locks(None).await.unwrap();
    assert_eq!(all.version, 6);
    assert_eq!(all.locks, every_kind.to_vec(), "oldest first, as stored");
    // In force at T0 + 1s: the device lock expired exactly then.
    let in_force = store.locks(Some(T0 + 1_000)).await.unwrap();
    assert_eq!(in_force.locks.len(), 5);
    assert!(in_force.locks.iter().all(|lock| lock.target != every_kind[4].target));

    let (removed, version) = store
        .delete_lock(&every_kind[0].id, "soc@example.com")
        .await
        .unwrap()
        .expect("removed");
    assert_eq!((removed, version), (every_kind[0].clone(), 7));
    assert_eq!(
        store.delete_lock(&every_kind[0].id, "soc@example.com").await.unwrap(),
        None
    );
    assert_eq!(
        store.lock_version().await.unwrap(),
        7,
        "removing nothing changes nothing"
    );
    // The same lock twice is refused by the database, and takes no version.
    assert!(store.create_lock(&every_kind[1]).await.is_err());
    assert_eq!(store.lock_version().await.unwrap(), 7);
}

async fn expired_locks_are_announced_once(backend: Backend) {
    let store = &backend.store;
    let soon = lock(LockTarget::User("bob".into()), T0, Some(T0 + 1_000));
    let later = lock(LockTarget::User("carol".into()), T0, Some(T0 + 5_000));
    let forever = lock(LockTarget::User("dan".into()), T0, None);
    for lock in [&soon, &later, &forever] {
        store.create_lock(lock).await.unwrap();
    }
    assert_eq!(store.announce_expired_locks(T0 + 999).await.unwrap(), None);
    assert_eq!(store.announce_expired_locks(T0 + 1_000).await.unwrap(), Some(4));
    assert_eq!(store.announce_expired_locks(T0 + 2_000).await.unwrap(), None, "once");
    // A replica racing for the same expiry: one of them announces it.
    let other = backend.replica().await;
    let (mine, theirs) = tokio::join!(
        store.announce_expired_locks(T0 + 5_000),
        other.announce_expired_locks(T0 + 5_000)
    );
    let announced: Vec<u64> = [mine.unwrap(), theirs.unwrap()].into_iter().flatten().collect();
    assert_eq!(announced, vec![5]);
    // Expired locks stay listed (until removed); only the in-force view drops them.
    assert_eq!(store.locks(None).await.unwrap().locks.len(), 3);
    assert_eq!(store.locks(Some(T0 + 5_000)).await.unwrap().locks, vec![forever]);
}

async fn concurrent_lock_changes_on_two_replicas_each_get_their_own_version(backend: Backend) {
    let replicas: [Arc<SqlPolicyStore>; 2] = [backend.store.clone(), backend.replica().await];
    let locks: Vec<LockRecord> = (0..20)
        .map(|i| lock(LockTarget::User(format!("user-{i}")), T0 + i, None))
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(locks.len()));
    let versions = futures::future::join_all(locks.iter().enumerate().map(|(i, lock)| {
        let store = replicas[i % 2].clone();
        let lock = lock.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            store.create_lock(&lock).await.unwrap()
        })
    }))
    .await;
    let mut versions: Vec<u64> = versions.into_iter().map(|version| version.unwrap()).collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=20).collect::<Vec<u64>>());
    assert_eq!(backend.store.locks(None).await.unwrap().version, 20);
}
