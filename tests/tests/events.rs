//! `sessionctl events` against the all-in-one with authentication required and real webhook
//! receivers on loopback: one `EventsService` over the three relays (every sink of every relay
//! listed once), the backlog and last error of a sink that is down, a test event that arrives as
//! CloudEvents, a test through a sink that is down or unknown, and who may do what.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sessionctl::EXIT_SERVER;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tonic::Code;
use vigil_events::config::{EventsConfig, SinkConfig, SinkKind};
use vigil_proto::v1 as pb;
use vigil_proto::v1::events_service_client::EventsServiceClient;
use vigil_proto::v1::policy_service_client::PolicyServiceClient;
use vigil_runtime::auth::{AuthConfig, Secret, issue_hs256};
use vigil_runtime::tls::TlsConfig;
use vigil_testkit::http::read_request;
use vigil_tests::*;

const SECRET: &str = "events-tests-hs256-secret-0123456789";
const HOOK_SECRET: &str = "webhook-secret-0123456789abcdef";

fn token(subject: &str, roles: &[&str]) -> String {
    issue_hs256(SECRET, subject, roles, Duration::from_secs(600)).expect("sign")
}

/// The bodies a webhook receiver accepted, as JSON.
type Received = Arc<Mutex<Vec<serde_json::Value>>>;

/// A receiver that accepts everything (204) and keeps what it got; its URL has a path and a query
/// that must never be shown.
async fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "http://{}/hooks/T0/s3cr3t-path?token=q",
        listener.local_addr().expect("address")
    );
    let received: Received = Arc::default();
    let kept = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                while let Some((_, body)) = read_request(&mut stream).await {
                    kept.lock()
                        .expect("received")
                        .push(serde_json::from_slice(&body).unwrap_or_default());
                    let answer = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (url, received)
}

fn webhook(url: &str) -> SinkConfig {
    SinkConfig {
        kind: SinkKind::Webhook,
        url: url.to_owned(),
        secret: Secret::new(HOOK_SECRET),
        key_id: "k1".into(),
        timeout: Duration::from_millis(500),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        ..SinkConfig::default()
    }
}

/// `soc`: a receiver that takes everything; `down`: a port nobody listens on, for lock events.
async fn stack() -> (SecureStack, TestSchema, Received) {
    let schema = TestSchema::new().await;
    let (url, received) = receiver().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/down", listener.local_addr().expect("address"))
    };
    let events = EventsConfig {
        sinks: BTreeMap::from([
            ("soc".to_owned(), webhook(&url)),
            (
                "down".to_owned(),
                SinkConfig {
                    types: vec!["lock.*".into()],
                    ..webhook(&closed)
                },
            ),
        ]),
        poll_interval: Duration::from_millis(50),
        ..EventsConfig::default()
    };
    let auth = AuthConfig {
        hs256_secret: Some(Secret::new(SECRET)),
        ..AuthConfig::required()
    };
    let stack = SecureStack::start_configured(&schema, auth, TlsConfig::default(), |config| {
        config.events = events;
    })
    .await;
    (stack, schema, received)
}

async fn sessionctl(server: &str, token: &str, args: &[&str]) -> SessionctlRun {
    run_sessionctl(&[&["--server", server, "--token", token][..], args].concat()).await
}

async fn sinks_json(server: &str, token: &str) -> Vec<serde_json::Value> {
    let ran = sessionctl(server, token, &["events", "sinks", "-o", "json"]).await;
    ran.result.expect("events sinks");
    let value: serde_json::Value = serde_json::from_str(&ran.out).expect("JSON");
    value["sinks"].as_array().expect("a list").clone()
}

#[tokio::test]
async fn sinks_show_every_relay_once_with_backlog_and_errors_and_test_events_arrive() {
    let (stack, _schema, received) = stack().await;
    let admin = token("ada@acme.example", &["admin"]);
    every_relay_and_sink_is_listed_once_without_secrets(&stack.url, &admin).await;
    a_lock_is_delivered_to_one_sink_and_backs_up_on_the_other(&stack, &admin, &received).await;

    // The table: a row each, the failing sink's error.
    let ran = sessionctl(&stack.url, &admin, &["events", "status"]).await;
    ran.result.expect("events status");
    assert!(ran.out.starts_with("SERVICE"), "{}", ran.out);
    assert_eq!(ran.out.lines().count(), 7, "{}", ran.out);

    test_events_arrive_once_and_failures_are_named(&stack.url, &admin, &received).await;
    stack.stop().await;
}

async fn every_relay_and_sink_is_listed_once_without_secrets(url: &str, admin: &str) {
    let sinks = sinks_json(url, admin).await;
    let rows: Vec<(String, String)> = sinks
        .iter()
        .map(|sink| {
            (
                sink["service"].as_str().unwrap().to_owned(),
                sink["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = ["policy", "registry", "termination"]
        .iter()
        .flat_map(|service| ["down", "soc"].map(|name| ((*service).to_owned(), name.to_owned())))
        .collect();
    assert_eq!(rows, expected, "one row per relay and sink, once");
    let text = serde_json::to_string(&sinks).unwrap();
    assert!(
        !text.contains(HOOK_SECRET) && !text.contains("s3cr3t-path") && !text.contains("token=q"),
        "{text}"
    );
    assert_eq!(sinks[1]["types"], serde_json::json!([]));
    assert_eq!(sinks[0]["types"], serde_json::json!(["lock.*"]));
}

/// A lock: policy's relay delivers it to `soc` and cannot to `down`, which falls behind.
async fn a_lock_is_delivered_to_one_sink_and_backs_up_on_the_other(
    stack: &SecureStack,
    admin: &str,
    received: &Received,
) {
    let channel = stack.channel(Some(admin)).await;
    PolicyServiceClient::new(channel.clone())
        .create_lock(pb::CreateLockRequest {
            target: Some(pb::LockTarget {
                target: Some(pb::lock_target::Target::User("mallory".into())),
            }),
            ..pb::CreateLockRequest::default()
        })
        .await
        .expect("lock");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let (soc, down) = loop {
        let sinks = sinks_json(&stack.url, admin).await;
        let find = |name: &str| {
            sinks
                .iter()
                .find(|sink| sink["service"] == "policy" && sink["name"] == name)
                .cloned()
                .unwrap()
        };
        let (soc, down) = (find("soc"), find("down"));
        if (soc["delivered"].as_u64() >= Some(1) && down["last_error"] != "") || tokio::time::Instant::now() > deadline
        {
            break (soc, down);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(soc["delivered"].as_u64() >= Some(1), "{soc}");
    assert_eq!(soc["backlog"], 0, "{soc}");
    assert_eq!(down["delivered"], 0, "{down}");
    assert!(down["backlog"].as_u64() >= Some(1), "{down}");
    assert!(down["oldest_pending_at"].is_string(), "{down}");
    assert!(down["last_error"].as_str().unwrap().contains("connect"), "{down}");
    assert!(
        received
            .lock()
            .unwrap()
            .iter()
            .any(|event| event["type"] == "vigil.lock.created"),
        "the lock reached the receiver"
    );
}

/// A test event, through the all-in-one's one service: sent once, not once per relay.
async fn test_events_arrive_once_and_failures_are_named(url: &str, admin: &str, received: &Received) {
    let ran = sessionctl(url, admin, &["events", "test", "soc", "-o", "json"]).await;
    ran.result.expect("events test");
    let answer: serde_json::Value = serde_json::from_str(&ran.out).expect("JSON");
    let id = answer["event_id"].as_str().expect("an id").to_owned();
    let tests: Vec<serde_json::Value> = received
        .lock()
        .unwrap()
        .iter()
        .filter(|event| event["type"] == "vigil.test")
        .cloned()
        .collect();
    assert_eq!(tests.len(), 1, "{tests:?}");
    assert_eq!(tests[0]["id"], id.as_str());
    assert_eq!(tests[0]["subject"], "sink/soc");

    let ran = sessionctl(url, admin, &["events", "test", "down"]).await;
    let error = ran.result.expect_err("down");
    assert_eq!(error.exit_code(), EXIT_SERVER);
    assert_eq!(error.server_code(), Some(Code::FailedPrecondition));
    assert!(
        error.to_string().contains("sink down did not take the test event"),
        "{error}"
    );
    let error = sessionctl(url, admin, &["events", "test", "nope"])
        .await
        .result
        .expect_err("unknown");
    assert_eq!(error.server_code(), Some(Code::NotFound));
}

#[tokio::test]
async fn viewers_see_the_sinks_and_only_admins_send_test_events() {
    let (stack, _schema, received) = stack().await;
    for (roles, list, test) in [
        (&["viewer"][..], Code::Ok, Code::PermissionDenied),
        (&["operator"], Code::Ok, Code::PermissionDenied),
        (&["admin"], Code::Ok, Code::Ok),
        (&[], Code::PermissionDenied, Code::PermissionDenied),
    ] {
        let channel = stack.channel(Some(&token("someone@acme.example", roles))).await;
        let mut client = EventsServiceClient::new(channel);
        let listed = client.list_sinks(pb::ListSinksRequest {}).await;
        assert_eq!(
            listed.map_or_else(|status| status.code(), |_| Code::Ok),
            list,
            "{roles:?}"
        );
        let tested = client.test_sink(pb::TestSinkRequest { sink: "soc".into() }).await;
        assert_eq!(
            tested.map_or_else(|status| status.code(), |_| Code::Ok),
            test,
            "{roles:?}"
        );
    }
    let channel = stack.channel(None).await;
    let refused = EventsServiceClient::new(channel)
        .list_sinks(pb::ListSinksRequest {})
        .await;
    assert_eq!(refused.unwrap_err().code(), Code::Unauthenticated);
    let tests = received
        .lock()
        .unwrap()
        .iter()
        .filter(|event| event["type"] == "vigil.test")
        .count();
    assert_eq!(tests, 1, "only the admin's went out");
    stack.stop().await;
}
