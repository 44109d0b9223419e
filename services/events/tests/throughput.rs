//! The relay's delivery rate to a webhook on loopback, for the README's figure (not a CI gate: run
//! it on purpose, on a quiet machine):
//!
//! ```sh
//! cargo test --release -p vigil-events --test throughput -- --ignored --nocapture
//! ```
//!
//! 10,000 sessions' churn — each opened, then ended: `VIGIL_EVENTS_SESSIONS` × 2 events — written
//! into a PostgreSQL outbox before the relay starts (a backlog, as after a sink was down), then
//! delivered to a receiver that answers 204 at once on kept-alive connections. It fails only when an
//! event does not arrive.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use vigil_events::config::{EventsConfig, SinkConfig, SinkKind};
use vigil_events::{Event, EventType, OutboxTables};
use vigil_testkit::TestDatabase;

const SERVICE: &str = "throughput";

async fn serve(mut stream: TcpStream, count: Arc<AtomicU64>) {
    let _ = stream.set_nodelay(true);
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let complete = buffer.windows(4).position(|w| w == b"\r\n\r\n").and_then(|head| {
            let text = String::from_utf8_lossy(&buffer[..head]).to_ascii_lowercase();
            let length: usize = text
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            (buffer.len() >= head + 4 + length).then_some(head + 4 + length)
        });
        if let Some(end) = complete {
            buffer.drain(..end);
            count.fetch_add(1, Ordering::Relaxed);
            if stream
                .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn relay_delivery_rate_to_a_loopback_webhook() {
    let sessions: usize = std::env::var("VIGIL_EVENTS_SESSIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let database = TestDatabase::postgres().await;
    let db = database.connect().await;
    for statement in OutboxTables::new(SERVICE).create_statements(db.get_database_backend()) {
        db.execute_unprepared(&statement).await.unwrap();
    }
    let mut events = Vec::with_capacity(sessions * 2);
    for kind in [EventType::SessionOpened, EventType::SessionEnded] {
        for n in 0..sessions {
            let session = format!("s{n}");
            let data =
                serde_json::json!({ "user": format!("user{}", n % 500), "gateway_id": format!("gw{}", n % 10_000) });
            events.push(Event::new(kind, SERVICE, format!("session/{session}"), data).with_session(&session));
        }
    }
    vigil_events::outbox::append(&db, SERVICE, &events).await.unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/vigil", listener.local_addr().unwrap());
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, counted.clone()));
        }
    });
    let sink = SinkConfig {
        kind: SinkKind::Webhook,
        url,
        secret: "throughput-secret-0123456789".into(),
        concurrency: 16,
        ..SinkConfig::default()
    };
    let config = EventsConfig {
        sinks: BTreeMap::from([("soc".to_owned(), sink)]),
        poll_interval: Duration::from_millis(50),
        ..EventsConfig::default()
    };
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let relay = vigil_events::relay::spawn(db.clone(), SERVICE, &config, shutdown.clone()).unwrap();
    let total = events.len() as u64;
    while count.load(Ordering::Relaxed) < total && started.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    relay.stopped().await;
    let delivered = count.load(Ordering::Relaxed);
    println!(
        "{delivered} events ({sessions} sessions opened and ended) delivered in {:.2} s: {:.0} events/s",
        elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(delivered, total, "every event arrives");
    database.remove().await;
}
