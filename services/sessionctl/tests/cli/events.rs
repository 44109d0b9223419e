//! `events sinks` and `events test` over real gRPC against vigil-events' own `EventsService` (the
//! one the services serve), on a SQLite outbox, with a real webhook receiver on loopback: the
//! backlog and its age, every output format, control characters from the server escaped, split
//! services merged (and a test sent through the one that has the sink), the receiver getting the
//! test event.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use sessionctl::CliError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;
use vigil_events::config::{EventsConfig, SinkConfig, SinkKind};
use vigil_events::status::RelayView;
use vigil_events::{Event, EventType, EventsApi, Outbox, OutboxTables, Relays};
use vigil_testkit::TestDatabase;

use crate::fakes::{run_answering, run_to_streams};

/// A webhook receiver answering 204 to everything; what it got, as the raw requests.
async fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook?key=hidden", listener.local_addr().expect("address"));
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = got.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                // One request per connection is enough here: the body follows the headers, and the
                // test event is small.
                while let Ok(n) = stream.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .to_ascii_lowercase()
                            .lines()
                            .find_map(|line| line.strip_prefix("content-length:").map(|n| n.trim().to_owned()))
                            .and_then(|n| n.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            kept.lock().unwrap().push(text.into_owned());
                            let _ = stream
                                .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                                .await;
                            break;
                        }
                    }
                }
            });
        }
    });
    (url, got)
}

fn webhook(url: &str) -> SinkConfig {
    SinkConfig {
        kind: SinkKind::Webhook,
        url: url.to_owned(),
        secret: "0123456789abcdef-secret".into(),
        timeout: Duration::from_secs(2),
        ..SinkConfig::default()
    }
}

/// An outbox of `service` on `db` with `pending` events written and nothing delivered.
async fn outbox(db: &DatabaseConnection, service: &str, pending: usize) -> Outbox {
    let tables = OutboxTables::new(service);
    for statement in tables.create_statements(db.get_database_backend()) {
        db.execute_unprepared(&statement).await.expect("create the outbox");
    }
    let events: Vec<Event> = (0..pending)
        .map(|n| {
            Event::at(
                EventType::LockCreated,
                service,
                format!("lock/{n}"),
                1_000 * (n as i64 + 1),
                serde_json::json!({}),
            )
        })
        .collect();
    vigil_events::outbox::append(db, service, &events)
        .await
        .expect("append");
    Outbox::new(db.clone(), tables)
}

async fn serve(relays: Vec<RelayView>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("local address");
    let router = tonic::transport::Server::builder().add_service(EventsApi::server(Relays::new(relays)));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    format!("http://{address}")
}

#[tokio::test]
async fn sinks_show_the_backlog_in_every_format_and_escape_what_the_server_says() {
    let database = TestDatabase::sqlite();
    let db = database.connect().await;
    let (url, _) = receiver().await;
    let outbox = outbox(&db, "registry", 3).await;
    // A last error as a hostile receiver could word it: a terminal title change and a bell.
    db.execute_unprepared(
        "INSERT INTO registry_event_cursors (sink, last_error, last_error_at, failed) \
         VALUES ('soc', 'HTTP 500 \u{1b}]0;pwned\u{7}', 2000, 4)",
    )
    .await
    .expect("a cursor");
    let config = EventsConfig {
        sinks: BTreeMap::from([("soc".to_owned(), webhook(&url))]),
        ..EventsConfig::default()
    };
    let server = serve(vec![RelayView::new(outbox, config)]).await;

    let (out, err) = run_to_streams(&server, &["events", "sinks"]).await.expect("table");
    assert!(out.starts_with("SERVICE"), "{out}");
    let row = out.lines().nth(1).expect("a row");
    for cell in ["registry", "soc", "webhook", "all", "4", "3 (oldest"] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?}");
    }
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{7}'),
        "control characters escaped: {out:?}"
    );
    assert!(out.contains("\\u{1b}]0;pwned\\u{7}"), "{out}");
    assert!(!out.contains("hidden") && !out.contains("/hook"), "{out}");
    assert_eq!(err, "1 sink over 1 relay; 3 events pending, 1 behind with an error\n");

    let wide = run_to_streams(&server, &["events", "sinks", "-o", "wide"])
        .await
        .expect("wide")
        .0;
    assert!(wide.contains("TARGET") && wide.contains("http://127.0.0.1:"), "{wide}");

    let json = run_to_streams(&server, &["events", "sinks", "-o", "json"])
        .await
        .expect("json")
        .0;
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let sink = &value["sinks"][0];
    assert_eq!((sink["backlog"].as_u64(), sink["failed"].as_u64()), (Some(3), Some(4)));
    assert_eq!(sink["oldest_pending_at"], "1970-01-01T00:00:01Z");
    assert_eq!(sink["last_error"], "HTTP 500 \u{1b}]0;pwned\u{7}");
    assert_eq!(sink["min_risk"], serde_json::Value::Null);

    let csv = run_to_streams(&server, &["events", "sinks", "-o", "csv"])
        .await
        .expect("csv")
        .0;
    assert!(
        csv.starts_with("service,name,kind,target,types,min_risk,delivered,failed,backlog"),
        "{csv}"
    );
    let names = run_to_streams(&server, &["events", "sinks", "-o", "name"])
        .await
        .expect("names")
        .0;
    assert_eq!(names, "sink/soc\n");
    database.remove().await;
}

#[tokio::test]
async fn split_services_are_merged_and_a_test_goes_through_the_one_with_the_sink() {
    let database = TestDatabase::sqlite();
    let db = database.connect().await;
    let (soc_url, _) = receiver().await;
    let (siem_url, siem_got) = receiver().await;
    let with = |sinks: &[(&str, &str)]| EventsConfig {
        sinks: sinks
            .iter()
            .map(|(name, url)| ((*name).to_owned(), webhook(url)))
            .collect(),
        ..EventsConfig::default()
    };
    let registry = serve(vec![RelayView::new(
        outbox(&db, "registry", 0).await,
        with(&[("soc", &soc_url)]),
    )])
    .await;
    let termination = serve(vec![RelayView::new(
        outbox(&db, "termination", 1).await,
        with(&[("soc", &soc_url)]),
    )])
    .await;
    let policy = serve(vec![RelayView::new(
        outbox(&db, "policy", 2).await,
        with(&[("soc", &soc_url), ("siem", &siem_url)]),
    )])
    .await;
    let split = [
        "--termination-server",
        termination.as_str(),
        "--policy-server",
        policy.as_str(),
    ];
    let args = |rest: &[&'static str]| -> Vec<&str> { split.iter().copied().chain(rest.iter().copied()).collect() };

    let json = run_to_streams(&registry, &args(&["events", "sinks", "-o", "json"]))
        .await
        .expect("json")
        .0;
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let rows: Vec<(String, String, u64)> = value["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sink| {
            (
                sink["service"].as_str().unwrap().to_owned(),
                sink["name"].as_str().unwrap().to_owned(),
                sink["backlog"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("policy", "siem", 2),
            ("policy", "soc", 2),
            ("registry", "soc", 0),
            ("termination", "soc", 1)
        ]
        .map(|(service, name, backlog)| (service.to_owned(), name.to_owned(), backlog))
    );

    // Only policy has `siem`: the registry and termination answer NOT_FOUND, policy sends it.
    let (out, _) = run_to_streams(&registry, &args(&["events", "test", "siem"]))
        .await
        .expect("test");
    assert!(
        out.starts_with("Test event ") && out.contains("delivered to sink siem (from the policy relay)"),
        "{out}"
    );
    let got = siem_got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("\"type\":\"vigil.test\"") && got[0].contains("\"subject\":\"sink/siem\""),
        "{}",
        got[0]
    );
    assert!(got[0].contains("POST /hook?key=hidden "), "{}", got[0]);

    let unknown = run_answering(&registry, &args(&["events", "test", "nope"]), None).await;
    let error: CliError = unknown.result.expect_err("no such sink");
    assert_eq!(error.server_code(), Some(Code::NotFound));
    assert!(unknown.out.is_empty());
    database.remove().await;
}
