//! The relay against a real HTTP receiver on loopback that verifies every signature and fails on
//! purpose: 500s, a timeout, a 429 with `Retry-After`, a 410 for one event; and a relay killed
//! mid-delivery. Every event arrives, in order per session, no id is lost, the 410 is recorded
//! and not retried. On PostgreSQL and on SQLite.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use vigil_events::config::{EventsConfig, SinkConfig, SinkKind};
use vigil_events::{Event, EventType, Outbox, OutboxTables};
use vigil_testkit::{TestDatabase, eventually_within};

use vigil_testkit::http::read_request;

const SECRET: &str = "webhook-test-secret-0123456789";
const SERVICE: &str = "webhooktest";

/// What the receiver does with the n-th request (0-based); afterwards it accepts.
fn scripted(n: usize) -> Option<Answer> {
    match n {
        0 | 1 => Some(Answer::Status(500, None)),
        2 => Some(Answer::Hang),
        3 => Some(Answer::Status(429, Some(1))),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16, Option<u64>),
    Hang,
}

#[derive(Default)]
struct Received {
    requests: usize,
    /// Accepted (2xx) deliveries, in arrival order: (session, event id).
    accepted: Vec<(String, String)>,
    rejected: Vec<String>,
    bad_signatures: usize,
    /// The event answered 429, when, and when it came again.
    throttled: Option<(String, Instant)>,
    after_throttle: Option<Instant>,
}

/// Verifies `Vigil-Signature: t=…,kid=…,v1=…` as a receiver would.
fn signature_ok(header: &str, body: &[u8]) -> bool {
    let fields: HashMap<&str, &str> = header.split(',').filter_map(|part| part.split_once('=')).collect();
    let (Some(t), Some(kid), Some(v1)) = (fields.get("t"), fields.get("kid"), fields.get("v1")) else {
        return false;
    };
    let Ok(timestamp) = t.parse::<i64>() else { return false };
    if *kid != "k1" || (vigil_core::now_millis() / 1000 - timestamp).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let expected: Vec<u8> = (0..v1.len() / 2)
        .filter_map(|i| u8::from_str_radix(&v1[2 * i..2 * i + 2], 16).ok())
        .collect();
    mac.verify_slice(&expected).is_ok()
}

async fn handle(mut stream: TcpStream, received: Arc<Mutex<Received>>) {
    let Some((headers, body)) = read_request(&mut stream).await else {
        return;
    };
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let id = json["id"].as_str().unwrap_or_default().to_owned();
    let answer = {
        let mut received = received.lock().unwrap();
        let n = received.requests;
        received.requests += 1;
        if received
            .throttled
            .as_ref()
            .is_some_and(|(throttled, _)| *throttled == id)
            && received.after_throttle.is_none()
        {
            received.after_throttle = Some(Instant::now());
        }
        let signed = headers
            .get("vigil-signature")
            .is_some_and(|header| signature_ok(header, &body));
        let typed = headers.get("content-type").map(String::as_str) == Some("application/cloudevents+json");
        if !signed || !typed || headers.get("vigil-event-id") != Some(&id) {
            received.bad_signatures += 1;
            Answer::Status(401, None)
        } else if json["data"]["poison"] == true {
            received.rejected.push(id.clone());
            Answer::Status(410, None)
        } else if let Some(answer) = scripted(n) {
            if let Answer::Status(429, _) = answer {
                received.throttled = Some((id.clone(), Instant::now()));
            }
            answer
        } else {
            let session = json["sessionid"].as_str().unwrap_or_default().to_owned();
            received.accepted.push((session, id));
            Answer::Status(204, None)
        }
    };
    match answer {
        Answer::Hang => tokio::time::sleep(Duration::from_secs(3)).await,
        Answer::Status(status, retry_after) => {
            let extra = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
            let response = format!("HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(response.as_bytes()).await;
        }
    }
}

async fn receiver() -> (String, Arc<Mutex<Received>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/vigil?x=1", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Received::default()));
    let state = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle(stream, state.clone()));
        }
    });
    (url, received)
}

fn config(url: &str) -> EventsConfig {
    let sink = SinkConfig {
        kind: SinkKind::Webhook,
        url: url.to_owned(),
        secret: SECRET.into(),
        key_id: "k1".into(),
        timeout: Duration::from_millis(400),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        concurrency: 4,
        ..SinkConfig::default()
    };
    EventsConfig {
        sinks: BTreeMap::from([("soc".to_owned(), sink)]),
        poll_interval: Duration::from_millis(50),
        batch: 16,
        lease_ttl: Duration::from_secs(2),
        ..EventsConfig::default()
    }
}

/// Writes `per_session` events for each of `sessions`, ten to a transaction; returns the ids in
/// written order per session.
async fn write_events(
    db: &DatabaseConnection,
    sessions: &[String],
    per_session: usize,
    written: &mut BTreeMap<String, Vec<String>>,
) {
    let mut events = Vec::new();
    for round in 0..per_session {
        for session in sessions {
            let data = serde_json::json!({ "user": "alice", "n": round });
            events.push(
                Event::new(EventType::SessionOpened, SERVICE, format!("session/{session}"), data).with_session(session),
            );
        }
    }
    for chunk in events.chunks(10) {
        let txn = db.begin().await.unwrap();
        vigil_events::outbox::append(&txn, SERVICE, chunk).await.unwrap();
        txn.commit().await.unwrap();
        for event in chunk {
            written
                .entry(event.session_id.clone().unwrap())
                .or_default()
                .push(event.id.clone());
        }
    }
}

async fn create_tables(db: &DatabaseConnection) {
    for statement in OutboxTables::new(SERVICE).create_statements(db.get_database_backend()) {
        db.execute_unprepared(&statement).await.unwrap();
    }
}

/// Waits until a sink's cursor has recorded a refused event. A relay killed between the receiver's
/// 410 and its record would rightly send the event again (delivery is at least once), which is not
/// what the killed-relay test is about.
async fn failure_recorded(db: &DatabaseConnection) {
    eventually_within(Duration::from_secs(20), "the 410 recorded", || {
        let db = db.clone();
        async move {
            let cursors = Outbox::new(db, OutboxTables::new(SERVICE)).cursors().await.ok()?;
            cursors.iter().any(|cursor| cursor.failed >= 1).then_some(())
        }
    })
    .await;
}

async fn every_event_arrives_in_order_despite_failures_and_a_killed_relay(database: Arc<TestDatabase>) {
    let db = database.connect().await;
    create_tables(&db).await;
    let (url, received) = receiver().await;
    let sessions: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    let mut written = BTreeMap::new();
    write_events(&db, &sessions, 5, &mut written).await;
    // One event the receiver refuses for good (410): recorded, passed over, never retried.
    let poison = Event::new(
        EventType::SessionFlagged,
        SERVICE,
        "session/p".into(),
        serde_json::json!({"poison": true}),
    )
    .with_session("p");
    vigil_events::outbox::append(&db, SERVICE, std::slice::from_ref(&poison))
        .await
        .unwrap();

    let config = config(&url);
    let first = vigil_events::relay::spawn(db.clone(), SERVICE, &config, CancellationToken::new()).unwrap();
    eventually_within(Duration::from_secs(20), "some deliveries", || {
        let received = received.clone();
        async move { (received.lock().unwrap().accepted.len() >= 8).then_some(()) }
    })
    .await;
    failure_recorded(&db).await;
    // Killed mid-delivery, lease held: the next relay takes over once the lease runs out.
    first.abort();
    write_events(&db, &sessions, 5, &mut written).await;
    let shutdown = CancellationToken::new();
    let second = vigil_events::relay::spawn(db.clone(), SERVICE, &config, shutdown.clone()).unwrap();
    let total: usize = written.values().map(Vec::len).sum();
    eventually_within(Duration::from_secs(30), "every event accepted", || {
        let received = received.clone();
        async move {
            let ids: HashSet<String> = received
                .lock()
                .unwrap()
                .accepted
                .iter()
                .map(|(_, id)| id.clone())
                .collect();
            (ids.len() >= total).then_some(())
        }
    })
    .await;
    shutdown.cancel();
    second.stopped().await;

    let outbox = Outbox::new(db.clone(), OutboxTables::new(SERVICE));
    let cursor = outbox.cursors().await.unwrap().pop().unwrap();
    assert_eq!(cursor.sink, "soc");
    assert_eq!(cursor.failed, 1);
    assert!(cursor.delivered as usize >= total);
    assert!(
        cursor.last_error.contains(&poison.id) && cursor.last_error.contains("410"),
        "{}",
        cursor.last_error
    );
    assert_eq!(outbox.count_after(cursor.position).await.unwrap(), 0, "no backlog left");

    let received = received.lock().unwrap();
    assert_eq!(received.bad_signatures, 0, "every request was signed correctly");
    assert_eq!(received.rejected, vec![poison.id.clone()], "the 410 was not retried");
    let (throttled, next) = (received.throttled.as_ref().unwrap().1, received.after_throttle.unwrap());
    assert!(
        next - throttled >= Duration::from_millis(900),
        "Retry-After: 1 was honoured"
    );
    // First arrivals, per session, are in written order; nothing missing, nothing foreign.
    let mut first_seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for (session, id) in &received.accepted {
        if seen.insert(id.clone()) {
            first_seen.entry(session.clone()).or_default().push(id.clone());
        }
    }
    assert_eq!(first_seen, written);
}

async fn on_database<F, Fut>(database: Arc<TestDatabase>, test: F)
where
    F: FnOnce(Arc<TestDatabase>) -> Fut,
    Fut: Future<Output = ()>,
{
    test(database).await;
}

vigil_testkit::contract_tests!(on_database; every_event_arrives_in_order_despite_failures_and_a_killed_relay);
