//! The registry's events are written with the changes that cause them, into its outbox
//! (`registry_event_outbox`), on PostgreSQL and SQLite: what each change writes, in order, and
//! that a change refused writes nothing.

use std::future::Future;
use std::sync::Arc;

use uuid::Uuid;
use vigil_events::outbox::Position;
use vigil_events::{Event, EventType, Outbox, OutboxTables};
use vigil_registry::domain::{
    EndReason, FLAGGED_FOR_REVIEW, GatewayEnd, GeoLocation, ResourceType, RiskAssessment, RiskFlag, SessionEnd,
    SessionRecord, SessionStatus,
};
use vigil_registry::store::{SessionStore, SqlStore};
use vigil_testkit::TestDatabase;

const T0: i64 = 1_700_000_000_000;

async fn on_store<F, Fut>(database: Arc<TestDatabase>, test: F)
where
    F: FnOnce(Arc<SqlStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = SqlStore::new(database.connect().await).await.expect("store");
    store.migrate().await.expect("migrate");
    let store = Arc::new(store);
    test(store.clone()).await;
    let _ = store.connection().close_by_ref().await;
}

vigil_testkit::contract_tests!(on_store; each_change_writes_its_events_in_order);

fn session(user: &str) -> SessionRecord {
    SessionRecord {
        id: Uuid::new_v4().to_string(),
        user: user.to_owned(),
        user_groups: vec!["staff".to_owned()],
        gateway_id: "gw-1".to_owned(),
        resource_name: "db-1".to_owned(),
        resource_type: ResourceType::Ssh,
        device: "laptop".to_owned(),
        client_ip: "203.0.113.7".to_owned(),
        location: GeoLocation::default(),
        risk: RiskAssessment::default(),
        started_at: T0,
        last_activity_at: T0,
        status: SessionStatus::Active,
        ended_at: None,
        end_reason: None,
        end_detail: String::new(),
        bytes_in: 0,
        bytes_out: 0,
    }
}

fn end(at: i64, reason: EndReason) -> SessionEnd {
    SessionEnd {
        ended_at: at,
        reason,
        detail: "SOC-1".to_owned(),
    }
}

async fn events(store: &SqlStore) -> Vec<Event> {
    vigil_testkit::past_running_transactions(store.connection()).await;
    let outbox = Outbox::new(store.connection().clone(), OutboxTables::new("registry"));
    let stored = outbox
        .read_after(Position::default(), 1000)
        .await
        .expect("read the outbox");
    stored.into_iter().map(|stored| stored.event).collect()
}

fn kinds(events: &[Event]) -> Vec<(EventType, String)> {
    events.iter().map(|event| (event.kind, event.subject.clone())).collect()
}

/// A session geo scored 70 for a new country, flagged for review (policy's threshold reached).
fn flagged_session(user: &str) -> SessionRecord {
    let mut flagged = session(user);
    flagged.risk = RiskAssessment {
        assessed: true,
        score: 70,
        flags: vec![
            RiskFlag {
                code: "new_country".into(),
                points: 70,
                explanation: "first start from Japan".into(),
            },
            // What the registry adds when policy's flag threshold was reached.
            RiskFlag {
                code: FLAGGED_FOR_REVIEW.into(),
                points: 0,
                explanation: "Flagged for review: unusual sign-in (risk score 70 of 100).".into(),
            },
        ],
    };
    flagged
}

/// A session geo scored 10: flags below policy's threshold explain the score; it opens unflagged.
fn noted_session(user: &str) -> SessionRecord {
    let mut noted = session(user);
    noted.risk = RiskAssessment {
        assessed: true,
        score: 10,
        flags: vec![RiskFlag {
            code: "new_device".into(),
            points: 10,
            explanation: "first start from kiosk-7".into(),
        }],
    };
    noted
}

async fn each_change_writes_its_events_in_order(store: Arc<SqlStore>) {
    store.gateway_connected("gw-1", "replica-a", "1.2.3", T0).await.unwrap();
    let flagged = flagged_session("alice");
    store.insert_session(&flagged).await.unwrap();
    // Geo's flags below policy's threshold explain the score; the session opens, unflagged.
    let noted = noted_session("dave");
    store.insert_session(&noted).await.unwrap();
    let mut denied = session("bob");
    denied.status = SessionStatus::Disconnected;
    denied.ended_at = Some(T0);
    denied.end_reason = Some(EndReason::Policy);
    denied.end_detail = "admission denied: locked".into();
    store.insert_session(&denied).await.unwrap();
    // Refused changes write nothing: a taken id, an end of an ended session.
    assert!(store.insert_session(&flagged).await.is_err());
    assert!(
        store
            .end_session(&denied.id, None, &end(T0 + 1, EndReason::Admin))
            .await
            .unwrap()
            .is_none()
    );
    store
        .end_session(&flagged.id, Some("gw-1"), &end(T0 + 5_000, EndReason::Admin))
        .await
        .unwrap()
        .expect("ended");
    let plain = session("carol");
    store.insert_session(&plain).await.unwrap();
    let ends = [GatewayEnd {
        session_id: plain.id.clone(),
        gateway_id: "gw-1".into(),
        end: end(T0 + 6_000, EndReason::Locked),
    }];
    store.end_sessions(&ends).await.unwrap();

    let events = events(&store).await;
    let subject = |record: &SessionRecord| format!("session/{}", record.id);
    assert_eq!(
        kinds(&events),
        vec![
            (EventType::GatewayConnected, "gateway/gw-1".into()),
            (EventType::SessionOpened, subject(&flagged)),
            (EventType::SessionFlagged, subject(&flagged)),
            (EventType::SessionOpened, subject(&noted)),
            (EventType::SessionDenied, subject(&denied)),
            (EventType::SessionEnded, subject(&flagged)),
            (EventType::SessionOpened, subject(&plain)),
            (EventType::SessionEnded, subject(&plain)),
        ]
    );
    assert!(events.iter().all(|event| event.source == "registry"));
    let flag = &events[2];
    assert_eq!(flag.risk_score, Some(70));
    assert_eq!(flag.session_id.as_deref(), Some(flagged.id.as_str()));
    assert_eq!(flag.data["explanations"][0], "first start from Japan");
    assert_eq!(events[3].risk_score, Some(10));
    assert_eq!(events[4].data["reason"], "locked");
    assert_eq!(events[4].field("user"), "bob");
    let ended = &events[5];
    assert_eq!(ended.time, T0 + 5_000);
    assert_eq!(ended.field("reason"), "END_REASON_ADMIN");
    assert_eq!(ended.field("detail"), "SOC-1");
    assert_eq!(ended.data["duration_seconds"], 5);
    assert_eq!(events[7].field("reason"), "END_REASON_LOCKED");
    let ids: std::collections::HashSet<&str> = events.iter().map(|event| event.id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "every event has an id of its own");
}
