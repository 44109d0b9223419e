//! The termination service's events are written with the changes that cause them, into its
//! outbox (`termination_event_outbox`), on PostgreSQL and SQLite: a recorded termination
//! (requested, with its actor), then its commands delivered, acknowledged or failed as reported.

use std::future::Future;
use std::sync::Arc;

use uuid::Uuid;
use vigil_events::outbox::Position;
use vigil_events::{Event, EventType, Outbox, OutboxTables};
use vigil_termination::domain::{
    CommandOutcome, CommandRecord, CommandReport, DeliveryState, EndReason, SelectorRecord, TerminationRecord,
};
use vigil_termination::store::{SqlTerminationStore, TerminationStore};
use vigil_testkit::TestDatabase;

const T0: i64 = 1_700_000_000_000;

async fn on_store<F, Fut>(database: Arc<TestDatabase>, test: F)
where
    F: FnOnce(Arc<SqlTerminationStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = SqlTerminationStore::new(database.connect().await).await.expect("store");
    store.migrate().await.expect("migrate");
    let store = Arc::new(store);
    test(store.clone()).await;
    let _ = store.connection().close_by_ref().await;
}

vigil_testkit::contract_tests!(
    on_store;
    a_termination_and_its_reports_write_their_events,
    reports_that_beat_their_termination_write_their_events_once
);

fn termination() -> TerminationRecord {
    TerminationRecord {
        id: Uuid::new_v4().to_string(),
        actor: "ops@example.com".into(),
        selector: SelectorRecord::User("alice".into()),
        reason: EndReason::Admin,
        user_message: "Ended by security".into(),
        note: "SOC-7".into(),
        created_at: T0,
    }
}

fn command(termination: &TerminationRecord, session_id: &str) -> CommandRecord {
    CommandRecord {
        id: Uuid::new_v4().to_string(),
        termination_id: termination.id.clone(),
        session_id: session_id.to_owned(),
        gateway_id: "gw-1".to_owned(),
        user: "alice".to_owned(),
        reason: termination.reason,
        user_message: termination.user_message.clone(),
        state: DeliveryState::Pending,
        detail: String::new(),
        attempts: 0,
        created_at: T0,
        next_attempt_at: Some(T0),
        delivered_at: None,
        acknowledged_at: None,
    }
}

fn report(command: &CommandRecord, state: DeliveryState, outcome: CommandOutcome, at: i64) -> CommandReport {
    CommandReport {
        command_id: command.id.clone(),
        gateway_id: command.gateway_id.clone(),
        state,
        outcome,
        detail: if outcome == CommandOutcome::Failed {
            "refused".into()
        } else {
            String::new()
        },
        at,
    }
}

/// One session's events, as (kind, time), in order.
fn per_session(events: &[Event], session: &str) -> Vec<(EventType, i64)> {
    events
        .iter()
        .filter(|event| event.session_id.as_deref() == Some(session))
        .map(|event| (event.kind, event.time))
        .collect()
}

async fn events(store: &SqlTerminationStore) -> Vec<Event> {
    vigil_testkit::past_running_transactions(store.connection()).await;
    let outbox = Outbox::new(store.connection().clone(), OutboxTables::new("termination"));
    let stored = outbox
        .read_after(Position::default(), 1000)
        .await
        .expect("read the outbox");
    stored.into_iter().map(|stored| stored.event).collect()
}

async fn a_termination_and_its_reports_write_their_events(store: Arc<SqlTerminationStore>) {
    let termination = TerminationRecord {
        id: Uuid::new_v4().to_string(),
        actor: "ops@example.com".into(),
        selector: SelectorRecord::User("alice".into()),
        reason: EndReason::Admin,
        user_message: "Ended by security".into(),
        note: "SOC-7".into(),
        created_at: T0,
    };
    let (first, second) = (command(&termination, "s1"), command(&termination, "s2"));
    store
        .record(&termination, &[first.clone(), second.clone()])
        .await
        .unwrap();
    let reports = [
        report(&first, DeliveryState::Delivered, CommandOutcome::Unspecified, T0 + 1),
        report(&second, DeliveryState::Delivered, CommandOutcome::Unspecified, T0 + 1),
    ];
    assert_eq!(store.apply_reports(&reports).await.unwrap(), 2);
    let answers = [
        report(&first, DeliveryState::Acknowledged, CommandOutcome::Done, T0 + 2),
        report(&second, DeliveryState::Acknowledged, CommandOutcome::Failed, T0 + 3),
    ];
    assert_eq!(store.apply_reports(&answers).await.unwrap(), 2);
    // The same answers again change nothing, and write nothing.
    assert_eq!(store.apply_reports(&answers).await.unwrap(), 0);

    let events = events(&store).await;
    let requested = &events[0];
    assert_eq!(requested.kind, EventType::TerminationRequested);
    assert_eq!(requested.actor.as_deref(), Some("ops@example.com"));
    assert_eq!(requested.subject, format!("termination/{}", termination.id));
    assert_eq!(requested.data["sessions"], serde_json::json!(["s1", "s2"]));
    assert_eq!(requested.data["note"], "SOC-7");
    assert_eq!(
        per_session(&events, "s1"),
        vec![
            (EventType::TerminationDelivered, T0 + 1),
            (EventType::TerminationAcknowledged, T0 + 2)
        ]
    );
    assert_eq!(
        per_session(&events, "s2"),
        vec![
            (EventType::TerminationDelivered, T0 + 1),
            (EventType::TerminationFailed, T0 + 3)
        ]
    );
    assert_eq!(events.len(), 5);
    let failed = events
        .iter()
        .find(|event| event.kind == EventType::TerminationFailed)
        .unwrap();
    assert_eq!(failed.field("detail"), "refused");
    assert_eq!(failed.field("termination_id"), termination.id);
}

/// An agent's answers can reach termination before the termination's own rows commit (the kill is
/// published while it is written): kept as early reports and applied once the rows exist. Each
/// transition they apply writes its event, once, however many times the reconcile runs.
async fn reports_that_beat_their_termination_write_their_events_once(store: Arc<SqlTerminationStore>) {
    let termination = termination();
    let (first, second) = (command(&termination, "s1"), command(&termination, "s2"));
    let early = [
        report(&first, DeliveryState::Delivered, CommandOutcome::Unspecified, T0 + 1),
        report(&first, DeliveryState::Acknowledged, CommandOutcome::Done, T0 + 2),
        report(&second, DeliveryState::Acknowledged, CommandOutcome::Failed, T0 + 3),
    ];
    assert_eq!(store.apply_reports(&early).await.unwrap(), 0, "no command exists yet");
    store
        .record(&termination, &[first.clone(), second.clone()])
        .await
        .unwrap();
    // `record` applies them in the background too: both runs race, and the later one finds
    // nothing left to do.
    store.settle_early_reports(T0 + 10).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while events(&store).await.len() < 4 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    store.settle_early_reports(T0 + 20).await.unwrap();
    assert_eq!(store.apply_reports(&early).await.unwrap(), 0, "applied already");

    let events = events(&store).await;
    assert_eq!(events.len(), 4, "{events:#?}");
    assert_eq!(events[0].kind, EventType::TerminationRequested);
    assert_eq!(
        per_session(&events, "s1"),
        vec![
            (EventType::TerminationDelivered, T0 + 1),
            (EventType::TerminationAcknowledged, T0 + 2)
        ]
    );
    assert_eq!(per_session(&events, "s2"), vec![(EventType::TerminationFailed, T0 + 3)]);
    let failed = events
        .iter()
        .find(|event| event.kind == EventType::TerminationFailed)
        .unwrap();
    assert_eq!(failed.field("detail"), "refused");
    assert_eq!(failed.field("state"), "DELIVERY_STATE_FAILED");
}
