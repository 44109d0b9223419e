//! Nothing is lost when PostgreSQL crashes and comes back under a delivering relay, nor when the
//! relay itself is killed: on a throwaway PostgreSQL the test starts, crashes
//! (`pg_ctl stop -m immediate`) and restarts, with a webhook receiver on loopback.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil_events::config::{EventsConfig, SinkConfig, SinkKind};
use vigil_events::{Event, EventType, OutboxTables};
use vigil_testkit::http::read_request;
use vigil_testkit::{ThrowawayPostgres, eventually_within};

const SERVICE: &str = "restarttest";

/// Accepts every delivery, slowly (20 ms), recording the event ids.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let state = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let Some((_, body)) = read_request(&mut stream).await else {
                    return;
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                state
                    .lock()
                    .unwrap()
                    .push(json["id"].as_str().unwrap_or_default().to_owned());
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
            });
        }
    });
    (url, received)
}

/// Writes `count` events, retrying each while the database is away; returns their ids.
async fn write(db: &DatabaseConnection, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let event = Event::new(
            EventType::SessionEnded,
            SERVICE,
            format!("session/s{}", n % 4),
            serde_json::json!({ "n": n }),
        )
        .with_session(&format!("s{}", n % 4));
        eventually_within(Duration::from_secs(20), "an event written", || {
            let event = event.clone();
            async move { vigil_events::outbox::append(db, SERVICE, &[event]).await.ok() }
        })
        .await;
        ids.push(event.id);
    }
    ids
}

fn distinct(received: &Mutex<Vec<String>>) -> HashSet<String> {
    received.lock().unwrap().iter().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_across_a_database_crash_and_a_killed_relay() {
    let postgres = ThrowawayPostgres::init("events");
    postgres.start();
    let db = Database::connect(postgres.url()).await.unwrap();
    for statement in OutboxTables::new(SERVICE).create_statements(db.get_database_backend()) {
        db.execute_unprepared(&statement).await.unwrap();
    }
    let (url, received) = receiver().await;
    let sink = SinkConfig {
        kind: SinkKind::Webhook,
        url,
        secret: "restart-test-secret-0123456789".into(),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(300),
        ..SinkConfig::default()
    };
    let config = EventsConfig {
        sinks: [("hook".to_owned(), sink)].into(),
        poll_interval: Duration::from_millis(50),
        batch: 8,
        lease_ttl: Duration::from_secs(2),
        ..EventsConfig::default()
    };
    let mut expected: HashSet<String> = write(&db, 60).await.into_iter().collect();
    let relay = vigil_events::relay::spawn(db.clone(), SERVICE, &config, CancellationToken::new()).unwrap();
    eventually_within(Duration::from_secs(20), "deliveries under way", || {
        let received = received.clone();
        async move { (distinct(&received).len() >= 10).then_some(()) }
    })
    .await;

    // The database crashes mid-delivery and comes back; the relay carries on by itself.
    postgres.crash();
    tokio::time::sleep(Duration::from_millis(500)).await;
    postgres.start();
    expected.extend(write(&db, 30).await);
    eventually_within(Duration::from_secs(20), "more deliveries", || {
        let received = received.clone();
        async move { (distinct(&received).len() >= 70).then_some(()) }
    })
    .await;

    // Then the relay is killed mid-delivery, and another takes over once the lease runs out.
    relay.abort();
    expected.extend(write(&db, 30).await);
    let shutdown = CancellationToken::new();
    let second = vigil_events::relay::spawn(db.clone(), SERVICE, &config, shutdown.clone()).unwrap();
    let total = expected.len();
    eventually_within(Duration::from_secs(30), "every event delivered", || {
        let received = received.clone();
        async move { (distinct(&received).len() >= total).then_some(()) }
    })
    .await;
    shutdown.cancel();
    second.stopped().await;
    assert_eq!(distinct(&received), expected, "every event arrived, and nothing else");
}
