//! The CLI driven through `run` against an in-process `SessionRegistry` that answers from fixed data and
//! records what it was asked. This checks the client side (paging, metadata, streaming, errors, exit codes);
//! the end-to-end run against the real registry lives in the workspace's `tests/` crate.

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use prost_types::Timestamp;
use sessionctl::{Cli, CliError, EXIT_SERVER, EXIT_UNREACHABLE, run, run_until};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use vigil_proto::v1::session_registry_server::{SessionRegistry, SessionRegistryServer};
use vigil_proto::v1::{
    Gateway, GetSessionRequest, GetStatsRequest, ListGatewaysRequest, ListGatewaysResponse, ListSessionsRequest,
    ListSessionsResponse, Location, LocationKind, ResolveSessionsRequest, ResolveSessionsResponse, ResourceType,
    Session, SessionEvent, SessionEventKind, SessionStats, SessionStatus, WatchSessionsRequest,
};

/// What the fake was asked, for assertions.
#[derive(Default)]
struct Seen {
    authorization: Vec<Option<String>>,
    list_requests: Vec<ListSessionsRequest>,
    watch_requests: Vec<WatchSessionsRequest>,
}

#[derive(Clone, Default)]
struct FakeRegistry {
    sessions: Vec<Session>,
    /// Sent on every watch before the stream goes quiet (or ends, with `end_watch`).
    events: Vec<SessionEvent>,
    end_watch: bool,
    /// Never answer `GetStats`, to exercise the client's timeout.
    stall_stats: bool,
    seen: Arc<Mutex<Seen>>,
}

impl FakeRegistry {
    fn record<T>(&self, request: &Request<T>) {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.seen.lock().expect("seen lock").authorization.push(header);
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<SessionEvent, Status>> + Send>>;

#[tonic::async_trait]
impl SessionRegistry for FakeRegistry {
    async fn list_sessions(
        &self,
        request: Request<ListSessionsRequest>,
    ) -> Result<Response<ListSessionsResponse>, Status> {
        self.record(&request);
        let request = request.into_inner();
        self.seen.lock().expect("seen lock").list_requests.push(request.clone());
        // Page tokens are plain offsets here; the real registry's are opaque.
        let offset: usize = match request.page_token.as_str() {
            "" => 0,
            token => token.parse().map_err(|_| Status::invalid_argument("bad page token"))?,
        };
        let size = if request.page_size == 0 {
            50
        } else {
            request.page_size as usize
        };
        let end = (offset + size).min(self.sessions.len());
        let next_page_token = if end < self.sessions.len() {
            end.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(ListSessionsResponse {
            sessions: self.sessions[offset.min(end)..end].to_vec(),
            next_page_token,
            total_size: self.sessions.len() as u64,
        }))
    }

    async fn get_session(&self, request: Request<GetSessionRequest>) -> Result<Response<Session>, Status> {
        self.record(&request);
        let id = request.into_inner().id;
        match self.sessions.iter().find(|s| s.id == id) {
            Some(session) => Ok(Response::new(session.clone())),
            None => Err(Status::not_found(format!("no session {id}"))),
        }
    }

    async fn get_stats(&self, request: Request<GetStatsRequest>) -> Result<Response<SessionStats>, Status> {
        self.record(&request);
        if self.stall_stats {
            std::future::pending::<()>().await;
        }
        Ok(Response::new(SessionStats {
            active: 2,
            idle: 1,
            total_live_duration_seconds: 3 * 3600 + 7 * 60,
            gateways_connected: 1,
            ended_last_24h: 9,
            flagged: 1,
            ..SessionStats::default()
        }))
    }

    type WatchSessionsStream = EventStream;

    async fn watch_sessions(
        &self,
        request: Request<WatchSessionsRequest>,
    ) -> Result<Response<Self::WatchSessionsStream>, Status> {
        self.record(&request);
        self.seen
            .lock()
            .expect("seen lock")
            .watch_requests
            .push(request.into_inner());
        let events = tokio_stream::iter(self.events.clone().into_iter().map(Ok));
        let stream: EventStream = if self.end_watch {
            Box::pin(events)
        } else {
            Box::pin(events.chain(tokio_stream::pending()))
        };
        Ok(Response::new(stream))
    }

    async fn list_gateways(
        &self,
        request: Request<ListGatewaysRequest>,
    ) -> Result<Response<ListGatewaysResponse>, Status> {
        self.record(&request);
        let gateways = vec![Gateway {
            id: "gw-eu-1".into(),
            connected: true,
            live_sessions: 3,
            agent_version: "0.1.0".into(),
            replica: "registry-0".into(),
            ..Gateway::default()
        }];
        let connected_only = request.into_inner().connected_only;
        Ok(Response::new(ListGatewaysResponse {
            gateways: gateways
                .into_iter()
                .filter(|g| g.connected || !connected_only)
                .collect(),
        }))
    }

    async fn resolve_sessions(
        &self,
        _request: Request<ResolveSessionsRequest>,
    ) -> Result<Response<ResolveSessionsResponse>, Status> {
        Err(Status::unimplemented("sessionctl does not resolve selectors"))
    }
}

/// Serves `fake` on a fresh port; the listener is bound before this returns, so connections queue
/// until the server task accepts them.
async fn serve(fake: FakeRegistry) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SessionRegistryServer::new(fake))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    format!("http://{address}")
}

fn cli(server: &str, args: &[&str]) -> Cli {
    Cli::parse_from(
        ["sessionctl", "--server", server]
            .into_iter()
            .chain(args.iter().copied()),
    )
}

async fn run_to_string(server: &str, args: &[&str]) -> Result<String, CliError> {
    let mut out = Vec::new();
    run(cli(server, args), &mut out).await?;
    Ok(String::from_utf8(out).expect("output is UTF-8"))
}

fn session(n: u32) -> Session {
    Session {
        id: format!("{n:08x}-0000-4000-8000-000000000000"),
        user: format!("user{n}@example.com"),
        gateway_id: "gw-eu-1".into(),
        resource_name: "prod-db-01".into(),
        resource_type: ResourceType::Ssh.into(),
        device: format!("laptop-{n}"),
        client_ip: "81.2.69.142".into(),
        location: Some(Location {
            city: "Berlin".into(),
            country_code: "DE".into(),
            kind: LocationKind::Located.into(),
            ..Location::default()
        }),
        started_at: Some(Timestamp {
            seconds: 1_741_076_100,
            nanos: 0,
        }),
        status: SessionStatus::Active.into(),
        duration_seconds: 32 * 60,
        ..Session::default()
    }
}

fn five_sessions() -> FakeRegistry {
    FakeRegistry {
        sessions: (1..=5).map(session).collect(),
        ..FakeRegistry::default()
    }
}

#[tokio::test]
async fn list_shows_one_page_and_how_to_get_the_next() {
    let fake = five_sessions();
    let server = serve(fake.clone()).await;

    let text = run_to_string(&server, &["sessions", "list", "--limit", "2", "--type", "ssh"])
        .await
        .expect("list");

    assert!(
        text.contains("user1@example.com") && text.contains("user2@example.com"),
        "{text}"
    );
    assert!(!text.contains("user3@example.com"), "{text}");
    assert!(text.contains("2 of 5 sessions"), "{text}");
    assert!(text.contains("--page-token 2"), "{text}");
    let seen = fake.seen.lock().expect("seen lock");
    let request = &seen.list_requests[0];
    assert_eq!(request.page_size, 2);
    assert_eq!(
        request.filter.as_ref().map(|f| f.resource_type),
        Some(ResourceType::Ssh as i32)
    );
}

#[tokio::test]
async fn list_all_follows_every_page() {
    let fake = five_sessions();
    let server = serve(fake.clone()).await;

    let text = run_to_string(&server, &["sessions", "list", "--limit", "2", "--all", "-o", "json"])
        .await
        .expect("list");

    let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let users: Vec<&str> = value["sessions"]
        .as_array()
        .expect("sessions array")
        .iter()
        .filter_map(|s| s["user"].as_str())
        .collect();
    assert_eq!(
        users,
        [
            "user1@example.com",
            "user2@example.com",
            "user3@example.com",
            "user4@example.com",
            "user5@example.com"
        ]
    );
    assert_eq!(value["next_page_token"], "");
    assert_eq!(value["total_size"], 5);
    let tokens: Vec<String> = fake
        .seen
        .lock()
        .expect("seen lock")
        .list_requests
        .iter()
        .map(|r| r.page_token.clone())
        .collect();
    assert_eq!(tokens, ["", "2", "4"]);
}

#[tokio::test]
async fn get_shows_a_session_and_reports_an_unknown_one() {
    let server = serve(five_sessions()).await;
    let id = session(3).id;

    let text = run_to_string(&server, &["sessions", "get", &id]).await.expect("get");
    assert!(
        text.contains(&id) && text.contains("user3@example.com") && text.contains("Berlin (DE)"),
        "{text}"
    );

    let json = run_to_string(&server, &["sessions", "get", &id, "-o", "json"])
        .await
        .expect("get as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["id"], id.as_str());
    assert_eq!(value["status"], "active");

    let missing = "ffffffff-0000-4000-8000-000000000000";
    let error = run_to_string(&server, &["sessions", "get", missing])
        .await
        .expect_err("no such session");
    assert_eq!(error.to_string(), format!("no session {missing} (not found)"));
    assert_eq!(error.exit_code(), EXIT_SERVER);
}

#[tokio::test]
async fn the_token_goes_out_as_a_bearer_header_on_every_call() {
    let fake = five_sessions();
    let server = serve(fake.clone()).await;

    run_to_string(&server, &["--token", "s3cret", "stats"])
        .await
        .expect("stats");
    run_to_string(&server, &["gateways", "list", "--token", "s3cret"])
        .await
        .expect("gateways");
    run_to_string(&server, &["sessions", "list"])
        .await
        .expect("list without a token");

    let seen = fake.seen.lock().expect("seen lock");
    assert_eq!(
        seen.authorization,
        [Some("Bearer s3cret".to_owned()), Some("Bearer s3cret".to_owned()), None]
    );
}

#[tokio::test]
async fn stats_and_gateways_render() {
    let server = serve(five_sessions()).await;

    let text = run_to_string(&server, &["stats"]).await.expect("stats");
    assert!(
        text.lines().any(|l| l.starts_with("Active") && l.ends_with(" 2")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Total duration") && l.ends_with("3h 07m")),
        "{text}"
    );

    let text = run_to_string(&server, &["gateways", "list", "--connected"])
        .await
        .expect("gateways");
    assert!(text.contains("gw-eu-1") && text.contains("registry-0"), "{text}");
    assert!(text.contains("1 gateway, 1 connected"), "{text}");
}

#[tokio::test]
async fn a_registry_that_does_not_answer_times_out() {
    let server = serve(FakeRegistry {
        stall_stats: true,
        ..FakeRegistry::default()
    })
    .await;

    let error = run_to_string(&server, &["--timeout", "200ms", "stats"])
        .await
        .expect_err("stats stall");

    assert!(matches!(error, CliError::TimedOut { .. }), "{error:?}");
    assert_eq!(error.exit_code(), EXIT_UNREACHABLE);
    assert!(error.to_string().contains("did not answer within 200ms"), "{error}");
}

/// A writer that keeps each printed line where the test can see it while `run` is still running.
#[derive(Clone, Default)]
struct Lines {
    printed: Arc<Mutex<Vec<String>>>,
    pending: Vec<u8>,
    /// Woken on every line; `notify_one` keeps a permit, so no wake-up is lost between checks.
    changed: Arc<Notify>,
}

impl Lines {
    fn snapshot(&self) -> Vec<String> {
        self.printed.lock().expect("lines lock").clone()
    }

    async fn wait_for(&self, wanted: usize) {
        while self.snapshot().len() < wanted {
            self.changed.notified().await;
        }
    }
}

impl Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.printed
                .lock()
                .expect("lines lock")
                .push(String::from_utf8_lossy(&line[..end]).into_owned());
            self.changed.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn event(kind: SessionEventKind, session: Option<Session>) -> SessionEvent {
    SessionEvent {
        kind: kind.into(),
        session,
        at: Some(Timestamp {
            seconds: 1_741_076_107,
            nanos: 0,
        }),
        detail: String::new(),
    }
}

fn watch_events() -> Vec<SessionEvent> {
    vec![
        event(SessionEventKind::Snapshot, Some(session(1))),
        event(SessionEventKind::SnapshotDone, None),
        event(SessionEventKind::Opened, Some(session(2))),
    ]
}

/// Runs `sessionctl <args>` until `wanted` lines have been printed, then stops it the way Ctrl-C would.
async fn watch_lines(server: &str, args: &[&str], wanted: usize) -> (Result<(), CliError>, Vec<String>) {
    let mut out = Lines::default();
    let watcher = out.clone();
    let shutdown = async move { watcher.wait_for(wanted).await };
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        run_until(cli(server, args), &mut out, shutdown),
    )
    .await
    .expect("the watch stops once the lines are printed");
    (result, out.snapshot())
}

#[tokio::test]
async fn watch_prints_a_line_per_event_until_stopped() {
    let fake = FakeRegistry {
        events: watch_events(),
        ..FakeRegistry::default()
    };
    let server = serve(fake.clone()).await;

    let (result, lines) = watch_lines(&server, &["watch", "--snapshot", "--user", "user2@example.com"], 3).await;

    result.expect("stopping the watch is a clean exit");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].contains("SNAPSHOT") && lines[0].contains("user1@example.com"),
        "{lines:?}"
    );
    assert!(lines[1].contains("snapshot complete"), "{lines:?}");
    assert!(lines[2].contains("OPENED") && lines[2].contains("prod-db-01 (SSH)") && lines[2].contains("Active"));
    let seen = fake.seen.lock().expect("seen lock");
    let request = &seen.watch_requests[0];
    assert!(request.include_snapshot);
    assert_eq!(
        request.filter.as_ref().map(|f| f.user.as_str()),
        Some("user2@example.com")
    );
}

#[tokio::test]
async fn watch_as_json_prints_one_object_per_line() {
    let server = serve(FakeRegistry {
        events: watch_events(),
        ..FakeRegistry::default()
    })
    .await;

    let (result, lines) = watch_lines(&server, &["watch", "-o", "json"], 3).await;

    result.expect("stopping the watch is a clean exit");
    let kinds: Vec<String> = lines
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("each line is a JSON object"))
        .map(|value| value["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(kinds, ["snapshot", "snapshot_done", "opened"]);
}

#[tokio::test]
async fn a_watch_the_registry_ends_is_an_error() {
    let server = serve(FakeRegistry {
        events: watch_events(),
        end_watch: true,
        ..FakeRegistry::default()
    })
    .await;

    // Ask for more lines than will come: the stream ends first.
    let (result, lines) = watch_lines(&server, &["watch"], 4).await;

    let error = result.expect_err("the stream ended");
    assert!(matches!(error, CliError::WatchEnded { .. }), "{error:?}");
    assert_eq!(error.exit_code(), EXIT_SERVER);
    assert_eq!(lines.len(), 3, "every event was printed before the end: {lines:?}");
}
