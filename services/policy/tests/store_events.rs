//! The policy service's events are written with the changes that cause them, into its outbox
//! (`policy_event_outbox`), on PostgreSQL and SQLite: policies created, changed and deleted;
//! locks created, deleted and expired; idle warnings — and a refused change writes nothing.

use std::future::Future;
use std::sync::Arc;

use uuid::Uuid;
use vigil_events::outbox::Position;
use vigil_events::{Event, EventType, Outbox, OutboxTables};
use vigil_policy::domain::{IdleWarningRecord, LockRecord, LockTarget, PolicyRecord, Rules, Scope};
use vigil_policy::store::{PolicyStore, SqlPolicyStore};
use vigil_testkit::TestDatabase;

const T0: i64 = 1_700_000_000_000;

async fn on_store<F, Fut>(database: Arc<TestDatabase>, test: F)
where
    F: FnOnce(Arc<SqlPolicyStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = SqlPolicyStore::new(database.connect().await).await.expect("store");
    store.migrate().await.expect("migrate");
    let store = Arc::new(store);
    test(store.clone()).await;
    let _ = store.connection().close_by_ref().await;
}

vigil_testkit::contract_tests!(on_store; policy_and_lock_changes_write_their_events);

fn lock(user: &str, expires_at: Option<i64>) -> LockRecord {
    LockRecord {
        id: Uuid::now_v7().to_string(),
        target: LockTarget::User(user.into()),
        message: "suspended".into(),
        reason: "SOC-9".into(),
        created_by: "soc@example.com".into(),
        created_at: T0,
        expires_at,
    }
}

async fn events(store: &SqlPolicyStore) -> Vec<Event> {
    vigil_testkit::past_running_transactions(store.connection()).await;
    let outbox = Outbox::new(store.connection().clone(), OutboxTables::new("policy"));
    let stored = outbox
        .read_after(Position::default(), 1000)
        .await
        .expect("read the outbox");
    stored.into_iter().map(|stored| stored.event).collect()
}

async fn policy_and_lock_changes_write_their_events(store: Arc<SqlPolicyStore>) {
    let policy = create_change_and_delete_a_policy(&store).await;
    let (kept, brief) = create_delete_and_expire_locks(&store).await;
    warn_of_idleness_twice(&store).await;

    let events = events(&store).await;
    let seen: Vec<(EventType, String, Option<String>)> = events
        .iter()
        .map(|event| (event.kind, event.subject.clone(), event.actor.clone()))
        .collect();
    let policy_subject = format!("policy/{}", policy.id);
    assert_eq!(
        seen,
        vec![
            (
                EventType::PolicyCreated,
                policy_subject.clone(),
                Some("admin@example.com".into())
            ),
            (
                EventType::PolicyChanged,
                policy_subject.clone(),
                Some("lead@example.com".into())
            ),
            // Who deleted it, not who changed it last.
            (
                EventType::PolicyDeleted,
                policy_subject,
                Some("ciso@example.com".into())
            ),
            (
                EventType::LockCreated,
                format!("lock/{}", kept.id),
                Some("soc@example.com".into())
            ),
            (
                EventType::LockCreated,
                format!("lock/{}", brief.id),
                Some("soc@example.com".into())
            ),
            (
                EventType::LockDeleted,
                format!("lock/{}", kept.id),
                Some("responder@example.com".into())
            ),
            (EventType::LockExpired, format!("lock/{}", brief.id), None),
            (EventType::SessionIdleWarned, "session/s1".into(), None),
        ]
    );
    assert_eq!(events[0].data["rules"]["max_concurrent_sessions"], 2);
    assert_eq!(events[0].data["scope"]["name"], "contractors");
    assert_eq!(events[6].time, T0 + 10);
    assert_eq!(events[7].session_id.as_deref(), Some("s1"));
}

/// A policy created (and its twin refused), changed by someone else, then deleted; returns it.
async fn create_change_and_delete_a_policy(store: &SqlPolicyStore) -> PolicyRecord {
    let policy = PolicyRecord {
        id: Uuid::now_v7().to_string(),
        scope: Scope::Group("contractors".into()),
        rules: Rules {
            max_concurrent_sessions: Some(2),
            ..Rules::default()
        },
        description: "contractors".into(),
        updated_by: "admin@example.com".into(),
        updated_at: T0,
    };
    store.create_policy(&policy).await.unwrap();
    // The same scope again is refused, and writes nothing.
    let twin = PolicyRecord {
        id: Uuid::now_v7().to_string(),
        ..policy.clone()
    };
    assert!(store.create_policy(&twin).await.is_err());
    store
        .update_policy(&policy.id, &Rules::default(), "relaxed", "lead@example.com", T0 + 1)
        .await
        .unwrap()
        .expect("updated");
    store.delete_policy(&policy.id, "ciso@example.com").await.unwrap();
    policy
}

/// Two locks created; one deleted (a second delete finds nothing), the other expires (announced once).
async fn create_delete_and_expire_locks(store: &SqlPolicyStore) -> (LockRecord, LockRecord) {
    let kept = lock("alice", None);
    let brief = lock("bob", Some(T0 + 10));
    store.create_lock(&kept).await.unwrap();
    store.create_lock(&brief).await.unwrap();
    store
        .delete_lock(&kept.id, "responder@example.com")
        .await
        .unwrap()
        .expect("deleted");
    assert!(
        store
            .delete_lock(&kept.id, "responder@example.com")
            .await
            .unwrap()
            .is_none()
    );
    store.announce_expired_locks(T0 + 20).await.unwrap().expect("announced");
    assert!(store.announce_expired_locks(T0 + 30).await.unwrap().is_none());
    (kept, brief)
}

/// The same idle warning recorded twice.
async fn warn_of_idleness_twice(store: &SqlPolicyStore) {
    let warning = IdleWarningRecord {
        session_id: "s1".into(),
        last_activity_at: T0,
    };
    store
        .record_idle_warnings(std::slice::from_ref(&warning), T0 + 40)
        .await
        .unwrap();
    store.record_idle_warnings(&[warning], T0 + 50).await.unwrap();
}
