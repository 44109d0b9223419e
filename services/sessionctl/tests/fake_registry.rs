//! The CLI driven through `run` against an in-process `SessionRegistry` (and `TerminationService`) that
//! answer from fixed data and record what they were asked. This checks the client side (paging, metadata,
//! streaming, confirmation, errors, exit codes); the end-to-end run against the real services lives in the
//! workspace's `tests/` crate.

use std::io::{Cursor, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use prost_types::Timestamp;
use sessionctl::{
    Cli, CliError, Console, EXIT_ABORTED, EXIT_SERVER, EXIT_UNREACHABLE, EXIT_USAGE, run, run_until, run_with,
};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use vigil_proto::v1::session_registry_server::{SessionRegistry, SessionRegistryServer};
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::termination_service_server::{TerminationService, TerminationServiceServer};
use vigil_proto::v1::{
    DeliveryState, EndReason, Gateway, GetSessionRequest, GetStatsRequest, GetTerminationRequest, ListGatewaysRequest,
    ListGatewaysResponse, ListPendingCommandsRequest, ListPendingCommandsResponse, ListSessionsRequest,
    ListSessionsResponse, ListTerminationsRequest, ListTerminationsResponse, Location, LocationKind,
    ReportCommandsRequest, ReportCommandsResponse, ResolveSessionsRequest, ResolveSessionsResponse, ResourceType,
    Session, SessionEvent, SessionEventKind, SessionSelector, SessionStats, SessionStatus, TerminateRequest,
    Termination, TerminationCommand, WatchSessionsRequest,
};

/// What the fake was asked, for assertions.
#[derive(Default)]
struct Seen {
    authorization: Vec<Option<String>>,
    list_requests: Vec<ListSessionsRequest>,
    watch_requests: Vec<WatchSessionsRequest>,
    resolve_requests: Vec<ResolveSessionsRequest>,
}

#[derive(Clone, Default)]
struct FakeRegistry {
    sessions: Vec<Session>,
    /// Ids of sessions that exist but ended: `ResolveSessions` reports them as already ended.
    ended: Vec<String>,
    /// A session that goes live right after the first `ResolveSessions`, as if someone logged in between
    /// the preview and the confirmation.
    late_arrival: Option<Session>,
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

    /// What the selector covers now; `after_preview` counts the late arrival in.
    fn resolve(&self, selector: &SessionSelector, after_preview: bool) -> Result<ResolveSessionsResponse, Status> {
        let live: Vec<&Session> = self
            .sessions
            .iter()
            .chain(self.late_arrival.iter().filter(|_| after_preview))
            .collect();
        let mut response = ResolveSessionsResponse::default();
        match selector.target.as_ref() {
            None => return Err(Status::invalid_argument("no selector")),
            Some(Target::SessionIds(ids)) => {
                for id in &ids.ids {
                    if let Some(session) = live.iter().find(|s| &s.id == id) {
                        response.sessions.push((*session).clone());
                    } else if self.ended.contains(id) {
                        response.already_ended.push(id.clone());
                    } else {
                        return Err(Status::not_found(format!("no session {id}")));
                    }
                }
            }
            Some(target) => {
                let covers = |s: &Session| match target {
                    Target::User(user) => &s.user == user,
                    Target::GatewayId(gateway) => &s.gateway_id == gateway,
                    Target::ResourceName(resource) => &s.resource_name == resource,
                    Target::All(all) => !all.idle_only || s.status() == SessionStatus::Idle,
                    Target::SessionIds(_) => false,
                };
                response.sessions = live.into_iter().filter(|s| covers(s)).cloned().collect();
            }
        }
        Ok(response)
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
        request: Request<ResolveSessionsRequest>,
    ) -> Result<Response<ResolveSessionsResponse>, Status> {
        self.record(&request);
        let request = request.into_inner();
        let previews = {
            let mut seen = self.seen.lock().expect("seen lock");
            seen.resolve_requests.push(request.clone());
            seen.resolve_requests.len() - 1
        };
        let selector = request.selector.unwrap_or_default();
        Ok(Response::new(self.resolve(&selector, previews > 0)?))
    }
}

/// The termination id the fake hands out.
const TERMINATION_ID: &str = "0195a3c0-7e1f-7000-8000-00000000beef";

/// What the fake termination service was asked.
#[derive(Default)]
struct SeenTerminations {
    authorization: Vec<Option<String>>,
    terminate_requests: Vec<TerminateRequest>,
    get_requests: usize,
    list_requests: Vec<ListTerminationsRequest>,
}

/// A termination service over the fake registry's sessions: `Terminate` checks the expected count against
/// what the registry resolves now and records one command per session; each `GetTermination` moves the
/// commands one step along `progress`.
#[derive(Clone, Default)]
struct FakeTerminations {
    registry: FakeRegistry,
    /// The commands' states after each poll (the first list as `Terminate` answers); the last one repeats.
    /// Lists shorter than the session count leave the rest PENDING.
    progress: Vec<Vec<DeliveryState>>,
    /// What `ListTerminations` pages through, newest first.
    history: Vec<Termination>,
    started: Arc<Mutex<Option<Termination>>>,
    seen: Arc<Mutex<SeenTerminations>>,
}

impl FakeTerminations {
    fn record<T>(&self, request: &Request<T>) {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.seen.lock().expect("seen lock").authorization.push(header);
    }

    /// `base` with its commands in the states of step `step`, and the counts to match.
    fn at_step(&self, base: &Termination, step: usize) -> Termination {
        let states = self
            .progress
            .get(step.min(self.progress.len().saturating_sub(1)))
            .cloned()
            .unwrap_or_default();
        let mut t = base.clone();
        for (n, command) in t.commands.iter_mut().enumerate() {
            let state = states.get(n).copied().unwrap_or(DeliveryState::Pending);
            command.state = state.into();
            if state == DeliveryState::Failed {
                command.detail = "the gateway could not end it".into();
            }
            if state == DeliveryState::Acknowledged {
                command.acknowledged_at = Some(Timestamp {
                    seconds: 1_741_076_200,
                    nanos: 0,
                });
            }
        }
        let count = |wanted| t.commands.iter().filter(|c| c.state() == wanted).count() as u32;
        t.pending = count(DeliveryState::Pending);
        t.delivered = count(DeliveryState::Delivered);
        t.acknowledged = count(DeliveryState::Acknowledged);
        t.failed = count(DeliveryState::Failed);
        t.already_ended = count(DeliveryState::AlreadyEnded);
        t
    }
}

#[tonic::async_trait]
impl TerminationService for FakeTerminations {
    async fn terminate(&self, request: Request<TerminateRequest>) -> Result<Response<Termination>, Status> {
        self.record(&request);
        let request = request.into_inner();
        self.seen
            .lock()
            .expect("seen lock")
            .terminate_requests
            .push(request.clone());
        let selector = request.selector.clone().unwrap_or_default();
        let live = self.registry.resolve(&selector, true)?.sessions;
        if let Some(expected) = request.expected_count
            && expected as usize != live.len()
        {
            return Err(Status::failed_precondition(format!(
                "expected {expected} live sessions, the selector covers {}",
                live.len()
            )));
        }
        let base = Termination {
            id: TERMINATION_ID.into(),
            actor: "admin@example.com".into(),
            selector: Some(selector),
            reason: request.reason,
            user_message: request.user_message,
            note: request.note,
            created_at: Some(Timestamp {
                seconds: 1_741_076_100,
                nanos: 0,
            }),
            session_count: live.len() as u32,
            commands: live
                .iter()
                .enumerate()
                .map(|(n, s)| TerminationCommand {
                    command_id: format!("cmd-{n}"),
                    session_id: s.id.clone(),
                    gateway_id: s.gateway_id.clone(),
                    user: s.user.clone(),
                    attempts: 1,
                    ..TerminationCommand::default()
                })
                .collect(),
            ..Termination::default()
        };
        *self.started.lock().expect("started lock") = Some(base.clone());
        Ok(Response::new(self.at_step(&base, 0)))
    }

    async fn get_termination(&self, request: Request<GetTerminationRequest>) -> Result<Response<Termination>, Status> {
        self.record(&request);
        let id = request.into_inner().id;
        let polls = {
            let mut seen = self.seen.lock().expect("seen lock");
            seen.get_requests += 1;
            seen.get_requests
        };
        if let Some(base) = self.started.lock().expect("started lock").clone()
            && base.id == id
        {
            return Ok(Response::new(self.at_step(&base, polls)));
        }
        match self.history.iter().find(|t| t.id == id) {
            Some(t) => Ok(Response::new(t.clone())),
            None => Err(Status::not_found(format!("no termination {id}"))),
        }
    }

    async fn list_terminations(
        &self,
        request: Request<ListTerminationsRequest>,
    ) -> Result<Response<ListTerminationsResponse>, Status> {
        self.record(&request);
        let request = request.into_inner();
        self.seen.lock().expect("seen lock").list_requests.push(request.clone());
        let offset: usize = match request.page_token.as_str() {
            "" => 0,
            token => token.parse().map_err(|_| Status::invalid_argument("bad page token"))?,
        };
        let size = if request.page_size == 0 {
            50
        } else {
            request.page_size as usize
        };
        let end = (offset + size).min(self.history.len());
        let next_page_token = if end < self.history.len() {
            end.to_string()
        } else {
            String::new()
        };
        // The list carries counts, not commands.
        let terminations = self.history[offset.min(end)..end]
            .iter()
            .map(|t| Termination {
                commands: vec![],
                ..t.clone()
            })
            .collect();
        Ok(Response::new(ListTerminationsResponse {
            terminations,
            next_page_token,
        }))
    }

    async fn list_pending_commands(
        &self,
        _request: Request<ListPendingCommandsRequest>,
    ) -> Result<Response<ListPendingCommandsResponse>, Status> {
        Err(Status::unimplemented(
            "for registry replicas; sessionctl does not call it",
        ))
    }

    async fn report_commands(
        &self,
        _request: Request<ReportCommandsRequest>,
    ) -> Result<Response<ReportCommandsResponse>, Status> {
        Err(Status::unimplemented(
            "for registry replicas; sessionctl does not call it",
        ))
    }
}

/// Serves `fake` on a fresh port; the listener is bound before this returns, so connections queue
/// until the server task accepts them.
async fn serve(fake: FakeRegistry) -> String {
    serve_both(Some(fake), None).await
}

/// Serves whichever fakes are given on one fresh port, as the all-in-one binary does.
async fn serve_both(registry: Option<FakeRegistry>, terminations: Option<FakeTerminations>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("local address");
    let router = tonic::transport::Server::builder()
        .add_optional_service(registry.map(SessionRegistryServer::new))
        .add_optional_service(terminations.map(TerminationServiceServer::new));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
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
