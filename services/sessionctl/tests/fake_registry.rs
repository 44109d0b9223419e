//! The CLI driven through `run` against an in-process `SessionRegistry` (and `TerminationService`, and
//! `PolicyService`) that answer from fixed data and record what they were asked. This checks the client side (paging, metadata,
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
use vigil_proto::v1::lock_target::Target as LockOn;
use vigil_proto::v1::policy_scope::Scope;
use vigil_proto::v1::policy_service_server::{PolicyService, PolicyServiceServer};
use vigil_proto::v1::session_registry_server::{SessionRegistry, SessionRegistryServer};
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::termination_service_server::{TerminationService, TerminationServiceServer};
use vigil_proto::v1::{
    AdmitRequest, AdmitResponse, ConcurrencyAction, CreateLockRequest, CreatePolicyRequest, DeleteLockRequest,
    DeleteLockResponse, DeletePolicyRequest, DeletePolicyResponse, DeliveryState, EffectivePolicy, EndReason, Gateway,
    GetEffectivePolicyRequest, GetPolicyRequest, GetSessionRequest, GetStatsRequest, GetTerminationRequest,
    GlobalScope, ListGatewaysRequest, ListGatewaysResponse, ListLocksRequest, ListLocksResponse,
    ListPendingCommandsRequest, ListPendingCommandsResponse, ListPoliciesRequest, ListPoliciesResponse,
    ListSessionsRequest, ListSessionsResponse, ListTerminationsRequest, ListTerminationsResponse, Location,
    LocationKind, Lock, Policy, PolicyRules, PolicyScope, ReleaseSessionsRequest, ReleaseSessionsResponse,
    ReportCommandsRequest, ReportCommandsResponse, ResolveSessionsRequest, ResolveSessionsResponse, ResourceType,
    Session, SessionEvent, SessionEventKind, SessionSelector, SessionStats, SessionStatus, TerminateRequest,
    Termination, TerminationCommand, UpdatePolicyRequest, WatchSessionsRequest,
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
    /// Answer NOT_FOUND for a user with no session, as the real registry does for a user it never saw.
    unknown_users_not_found: bool,
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
            Some(Target::User(user)) if self.unknown_users_not_found && !live.iter().any(|s| &s.user == user) => {
                return Err(Status::not_found(format!("user {user:?} not found")));
            }
            Some(target) => {
                let covers = |s: &Session| match target {
                    Target::User(user) => &s.user == user,
                    Target::GatewayId(gateway) => &s.gateway_id == gateway,
                    Target::ResourceName(resource) => &s.resource_name == resource,
                    Target::All(all) => !all.idle_only || s.status() == SessionStatus::Idle,
                    Target::Group(group) => s.user_groups.contains(group),
                    Target::Device(device) => &s.device == device,
                    Target::SessionIds(_) | Target::Cidr(_) => false,
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
            total_size_is_lower_bound: false,
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
    /// Terminations another service issued (the policy service ending what a new lock covers), oldest
    /// first; listed before the history.
    issued: Arc<Mutex<Vec<Termination>>>,
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

    /// A termination issued by another service (no caller of ours to record), listed from then on.
    fn issue(&self, request: TerminateRequest) -> Result<Termination, Status> {
        let termination = self.start(request)?;
        self.issued.lock().expect("issued lock").push(termination.clone());
        Ok(termination)
    }

    /// Records the termination `request` asks for over what the registry resolves now; its commands then
    /// move along `progress` with each `GetTermination`.
    fn start(&self, request: TerminateRequest) -> Result<Termination, Status> {
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
        Ok(self.at_step(&base, 0))
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
        self.start(request).map(Response::new)
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
        let all: Vec<Termination> = {
            let issued = self.issued.lock().expect("issued lock");
            issued.iter().rev().chain(self.history.iter()).cloned().collect()
        };
        let end = (offset + size).min(all.len());
        let next_page_token = if end < all.len() {
            end.to_string()
        } else {
            String::new()
        };
        // The list carries counts, not commands.
        let terminations = all[offset.min(end)..end]
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

/// What one `sessions end` (or any command) printed: on stdout, and on the console where it asks.
struct Ran {
    result: Result<(), CliError>,
    out: String,
    console: String,
}

/// Runs `args` with `typed` as what the person types; `None` is a stdin that is not a terminal.
async fn run_answering(server: &str, args: &[&str], typed: Option<&str>) -> Ran {
    let mut input = Cursor::new(typed.unwrap_or_default().as_bytes().to_vec());
    let mut shown = Vec::new();
    let mut out = Vec::new();
    let mut console = Console {
        input: &mut input,
        output: &mut shown,
        interactive: typed.is_some(),
    };
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        run_with(cli(server, args), &mut out, &mut console, std::future::pending()),
    )
    .await
    .expect("the command finishes");
    Ran {
        result,
        out: String::from_utf8(out).expect("output is UTF-8"),
        console: String::from_utf8(shown).expect("console output is UTF-8"),
    }
}

/// Five live sessions through gw-eu-1, and a termination service over them whose commands move from
/// pending to acknowledged over two polls (one session turns out to have ended already).
fn termination_fakes() -> (FakeRegistry, FakeTerminations) {
    use DeliveryState::{Acknowledged as Ack, AlreadyEnded, Pending};
    let registry = five_sessions();
    let terminations = FakeTerminations {
        registry: registry.clone(),
        progress: vec![
            vec![Pending; 5],
            vec![Ack, Ack, Pending, Pending, Pending],
            vec![Ack, Ack, Ack, Ack, AlreadyEnded],
        ],
        ..FakeTerminations::default()
    };
    (registry, terminations)
}

#[tokio::test]
async fn end_with_yes_waits_for_the_gateways_and_summarises() {
    let (registry, terminations) = termination_fakes();
    let server = serve_both(Some(registry.clone()), Some(terminations.clone())).await;

    let ran = run_answering(
        &server,
        &[
            "sessions",
            "end",
            "--gateway",
            "gw-eu-1",
            "--reason",
            "anomaly",
            "--message",
            "Your session was ended by security",
            "--note",
            "ticket SOC-1234",
            "--yes",
            "--token",
            "s3cret",
        ],
        None,
    )
    .await;

    ran.result.expect("the sessions end");
    assert_eq!(ran.console, "", "--yes asks nothing");
    let lines: Vec<&str> = ran.out.lines().collect();
    assert_eq!(
        lines,
        [
            &format!("Termination {TERMINATION_ID}: ending 5 sessions (gateway gw-eu-1, reason: anomaly).")[..],
            "Waiting for the gateways: 0 of 5 acknowledged, 0 failed, 0 already ended, 5 waiting",
            "Waiting for the gateways: 2 of 5 acknowledged, 0 failed, 0 already ended, 3 waiting",
            "Ended 5 sessions: 4 acknowledged, 0 failed, 1 already ended.",
            &format!("Each session's state: sessionctl terminations get {TERMINATION_ID}")[..],
        ],
        "{}",
        ran.out
    );

    let seen = terminations.seen.lock().expect("seen lock");
    let [request] = seen.terminate_requests.as_slice() else {
        panic!("one Terminate call, got {:?}", seen.terminate_requests)
    };
    assert_eq!(
        request.selector.as_ref().and_then(|s| s.target.clone()),
        Some(Target::GatewayId("gw-eu-1".into()))
    );
    assert_eq!(request.expected_count, Some(5), "the previewed count guards the action");
    assert_eq!(request.reason, EndReason::Anomaly as i32);
    assert_eq!(request.user_message, "Your session was ended by security");
    assert_eq!(request.note, "ticket SOC-1234");
    assert_eq!(seen.get_requests, 2, "polled until nothing was left waiting");
    assert!(
        seen.authorization.iter().all(|h| h.as_deref() == Some("Bearer s3cret")),
        "{:?}",
        seen.authorization
    );
    let previews = &registry.seen.lock().expect("seen lock").resolve_requests;
    assert_eq!(previews.len(), 1);
}

#[tokio::test]
async fn end_as_json_prints_the_final_termination() {
    let (registry, terminations) = termination_fakes();
    let server = serve_both(Some(registry), Some(terminations)).await;

    let ran = run_answering(&server, &["sessions", "end", "--all", "-y", "-o", "json"], None).await;

    ran.result.expect("the sessions end");
    let value: serde_json::Value = serde_json::from_str(&ran.out).expect("only JSON on stdout");
    assert_eq!(value["termination"]["id"], TERMINATION_ID);
    assert_eq!(
        value["termination"]["selector"],
        serde_json::json!({ "all": { "idle_only": false } })
    );
    assert_eq!(value["termination"]["acknowledged"], 4);
    assert_eq!(value["termination"]["already_ended"], 1);
    assert_eq!(value["termination"]["pending"], 0);
    assert_eq!(value["termination"]["commands"][4]["state"], "already_ended");
    assert_eq!(value["already_ended"], serde_json::json!([]));
}

#[tokio::test]
async fn a_declined_prompt_ends_nothing_and_exits_4() {
    for typed in ["n\n", "\n", "", "nope\n"] {
        let (registry, terminations) = termination_fakes();
        let server = serve_both(Some(registry), Some(terminations.clone())).await;

        let ran = run_answering(&server, &["sessions", "end", "--resource", "prod-db-01"], Some(typed)).await;

        let error = ran.result.expect_err("declined");
        assert!(matches!(error, CliError::Aborted(_)), "{typed:?}: {error:?}");
        assert_eq!(error.exit_code(), EXIT_ABORTED);
        assert_eq!(error.to_string(), "aborted; nothing was ended");
        assert!(
            ran.console
                .starts_with("5 sessions will end (resource prod-db-01, reason: admin):\n"),
            "{}",
            ran.console
        );
        for n in 1..=5 {
            assert!(ran.console.contains(&format!("user{n}@example.com")), "{}", ran.console);
        }
        assert!(
            ran.console
                .contains("\nEnding a session may lose the user's unsaved work.\nEnd 5 sessions? [y/N] ")
        );
        assert_eq!(ran.out, "", "nothing on stdout");
        assert!(
            terminations
                .seen
                .lock()
                .expect("seen lock")
                .terminate_requests
                .is_empty(),
            "{typed:?}: Terminate must not be called"
        );
    }
}

#[tokio::test]
async fn a_confirmed_prompt_ends_the_sessions() {
    let (registry, terminations) = termination_fakes();
    let server = serve_both(Some(registry), Some(terminations.clone())).await;
    let id = session(3).id;

    let ran = run_answering(&server, &["sessions", "end", &id, "--no-wait"], Some("yes\n")).await;

    ran.result.expect("confirmed");
    assert!(
        ran.console
            .starts_with("1 session will end (session 00000000, reason: admin):"),
        "{}",
        ran.console
    );
    assert!(ran.console.ends_with("End 1 session? [y/N] "), "{}", ran.console);
    assert_eq!(
        ran.out,
        format!(
            "Termination {TERMINATION_ID}: ending 1 session (session 00000000, reason: admin).\n\
             Not waiting for the gateways. Each session's state: sessionctl terminations get {TERMINATION_ID}\n"
        )
    );
    let seen = terminations.seen.lock().expect("seen lock");
    assert_eq!(seen.terminate_requests.len(), 1);
    assert_eq!(seen.get_requests, 0, "--no-wait does not poll");
}

#[tokio::test]
async fn without_a_terminal_end_needs_yes_and_asks_the_server_nothing() {
    let (registry, terminations) = termination_fakes();
    let server = serve_both(Some(registry.clone()), Some(terminations.clone())).await;

    let ran = run_answering(&server, &["sessions", "end", "--all"], None).await;

    let error = ran.result.expect_err("refused");
    assert_eq!(error.exit_code(), EXIT_USAGE);
    assert!(error.to_string().contains("pass --yes"), "{error}");
    assert!(registry.seen.lock().expect("seen lock").resolve_requests.is_empty());
    assert!(
        terminations
            .seen
            .lock()
            .expect("seen lock")
            .terminate_requests
            .is_empty()
    );
}

#[tokio::test]
async fn a_world_changed_since_the_preview_is_refused_with_a_clear_message() {
    let (mut registry, mut terminations) = termination_fakes();
    registry.late_arrival = Some(session(6));
    terminations.registry = registry.clone();
    let server = serve_both(Some(registry), Some(terminations.clone())).await;

    let ran = run_answering(&server, &["sessions", "end", "--gateway", "gw-eu-1"], Some("y\n")).await;

    let error = ran.result.expect_err("the count changed");
    assert!(matches!(error, CliError::PreviewChanged { now: Some(6) }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the set of sessions changed since the preview (now 6); nothing was ended; run the command again"
    );
    assert_eq!(error.exit_code(), EXIT_SERVER);
    assert!(ran.console.contains("End 5 sessions? [y/N] "), "{}", ran.console);
    let seen = terminations.seen.lock().expect("seen lock");
    assert_eq!(seen.terminate_requests[0].expected_count, Some(5));
}

#[tokio::test]
async fn nothing_live_means_nothing_to_do_but_unknown_ids_are_errors() {
    let (mut registry, mut terminations) = termination_fakes();
    let gone = "0000dead-0000-4000-8000-000000000000";
    registry.ended = vec![gone.to_owned()];
    terminations.registry = registry.clone();
    let server = serve_both(Some(registry), Some(terminations.clone())).await;

    let ran = run_answering(&server, &["sessions", "end", "--user", "nobody@example.com"], Some("")).await;
    ran.result.expect("nothing to end is not an error");
    assert_eq!(
        ran.out,
        "No live sessions for user nobody@example.com; nothing to end.\n"
    );
    assert_eq!(ran.console, "", "nothing to confirm");

    let ran = run_answering(&server, &["sessions", "end", gone, "-y"], None).await;
    ran.result.expect("nothing to end is not an error");
    assert_eq!(
        ran.out,
        format!("None of the given sessions is live; nothing to end.\nAlready ended: {gone}\n")
    );

    let missing = "ffffffff-0000-4000-8000-000000000000";
    let ran = run_answering(&server, &["sessions", "end", missing, "-y"], None).await;
    let error = ran.result.expect_err("unknown id");
    assert_eq!(error.to_string(), format!("no session {missing} (not found)"));
    assert_eq!(error.exit_code(), EXIT_SERVER);

    assert!(
        terminations
            .seen
            .lock()
            .expect("seen lock")
            .terminate_requests
            .is_empty()
    );
}

#[tokio::test]
async fn a_wait_that_runs_out_says_what_is_still_pending() {
    let (registry, mut terminations) = termination_fakes();
    terminations.progress = vec![vec![
        DeliveryState::Acknowledged,
        DeliveryState::Failed,
        DeliveryState::Delivered,
        DeliveryState::Pending,
        DeliveryState::Pending,
    ]];
    let server = serve_both(Some(registry), Some(terminations)).await;

    let ran = run_answering(
        &server,
        &["sessions", "end", "--all", "--yes", "--wait-timeout", "500ms"],
        None,
    )
    .await;

    ran.result
        .expect("a wait that runs out is not an error: the termination goes on");
    let progress = ran.out.lines().filter(|l| l.starts_with("Waiting")).count();
    assert_eq!(progress, 1, "a line only when the counts move: {}", ran.out);
    assert!(
        ran.out.contains(
            "Ended 5 sessions: 1 acknowledged, 1 failed (00000000: the gateway could not end it), 0 already ended; \
             1 delivered, not yet acknowledged, 2 still pending (the gateways will get them when they reconnect).\n"
        ),
        "{}",
        ran.out
    );
}

#[tokio::test]
async fn a_separate_termination_server_is_used_when_given() {
    let (registry, terminations) = termination_fakes();
    let registry_server = serve_both(Some(registry), None).await;
    let termination_server = serve_both(None, Some(terminations.clone())).await;

    let ran = run_answering(
        &registry_server,
        &[
            "sessions",
            "end",
            "--all",
            "-y",
            "--no-wait",
            "--termination-server",
            &termination_server,
        ],
        None,
    )
    .await;
    ran.result.expect("ends through the separate termination service");
    assert_eq!(terminations.seen.lock().expect("seen lock").terminate_requests.len(), 1);

    // Without it, the registry's address is asked, which does not serve terminations here.
    let ran = run_answering(&registry_server, &["sessions", "end", "--all", "-y"], None).await;
    let error = ran.result.expect_err("no termination service there");
    assert!(
        error.to_string().contains("(unimplemented); is --termination-server"),
        "{error}"
    );

    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let error = run_to_string(
        &registry_server,
        &["terminations", "list", "--termination-server", &nowhere],
    )
    .await
    .expect_err("unreachable");
    assert_eq!(error.exit_code(), EXIT_UNREACHABLE);
    assert!(
        error.to_string().starts_with(&format!(
            "cannot reach the Vigil termination service at {nowhere} (connection refused)"
        )),
        "{error}"
    );
}

/// A port nothing listens on: bound by us, then released.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

fn past_termination(n: u32, actor: &str, target: Target, reason: EndReason) -> Termination {
    Termination {
        id: format!("0195a3c0-7e1f-7000-8000-0000000000{n:02}"),
        actor: actor.into(),
        selector: Some(SessionSelector { target: Some(target) }),
        reason: reason.into(),
        user_message: "You have been disconnected".into(),
        created_at: Some(Timestamp {
            seconds: 1_741_076_100 - i64::from(n) * 60,
            nanos: 0,
        }),
        session_count: 2,
        acknowledged: 1,
        delivered: 1,
        commands: vec![
            TerminationCommand {
                command_id: "c1".into(),
                session_id: session(1).id,
                gateway_id: "gw-eu-1".into(),
                user: "user1@example.com".into(),
                state: DeliveryState::Acknowledged.into(),
                attempts: 1,
                acknowledged_at: Some(Timestamp {
                    seconds: 1_741_076_103,
                    nanos: 0,
                }),
                ..TerminationCommand::default()
            },
            TerminationCommand {
                command_id: "c2".into(),
                session_id: session(2).id,
                gateway_id: "gw-ap-1".into(),
                user: "user2@example.com".into(),
                state: DeliveryState::Delivered.into(),
                attempts: 3,
                detail: "gateway slow to answer".into(),
                ..TerminationCommand::default()
            },
        ],
        ..Termination::default()
    }
}

fn with_history() -> FakeTerminations {
    FakeTerminations {
        history: vec![
            past_termination(
                1,
                "admin@example.com",
                Target::User("alice@example.com".into()),
                EndReason::Admin,
            ),
            past_termination(
                2,
                "soc@example.com",
                Target::All(vigil_proto::v1::AllSessions { idle_only: true }),
                EndReason::Policy,
            ),
            past_termination(
                3,
                "alice@example.com",
                Target::User("alice@example.com".into()),
                EndReason::UserSelfService,
            ),
        ],
        ..FakeTerminations::default()
    }
}

#[tokio::test]
async fn terminations_list_shows_the_audit_trail() {
    let terminations = with_history();
    let server = serve_both(None, Some(terminations.clone())).await;

    let text = run_to_string(
        &server,
        &[
            "terminations",
            "list",
            "--actor",
            "admin@example.com",
            "--reason",
            "admin",
            "--since",
            "2h",
            "--limit",
            "2",
        ],
    )
    .await
    .expect("list");

    let header = text.lines().next().expect("header");
    assert!(header.starts_with("ID") && header.ends_with("FAILED"), "{text}");
    let row = text.lines().find(|l| l.contains("soc@example.com")).expect("soc's row");
    for cell in ["00000002", "all (idle)", "policy"] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("user alice@example.com") && l.contains("admin")),
        "{text}"
    );
    assert!(!text.contains("self-service"), "one page of two: {text}");
    assert!(
        text.contains("2 terminations\nMore: repeat with --page-token 2"),
        "{text}"
    );
    {
        let seen = terminations.seen.lock().expect("seen lock");
        let request = &seen.list_requests[0];
        assert_eq!(request.actor, "admin@example.com");
        assert_eq!(request.reason, EndReason::Admin as i32);
        assert_eq!(request.page_size, 2);
        assert!(request.since.is_some());
    }

    let json = run_to_string(
        &server,
        &["terminations", "list", "--all", "--limit", "2", "-o", "json"],
    )
    .await
    .expect("list as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let reasons: Vec<&str> = value["terminations"]
        .as_array()
        .expect("terminations")
        .iter()
        .filter_map(|t| t["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["admin", "policy", "user_self_service"]);
    assert_eq!(value["terminations"][1]["selector"]["all"]["idle_only"], true);
    assert_eq!(value["next_page_token"], "");
}

#[tokio::test]
async fn terminations_get_shows_each_command() {
    let server = serve_both(None, Some(with_history())).await;
    let id = "0195a3c0-7e1f-7000-8000-000000000001";

    let text = run_to_string(&server, &["terminations", "get", id]).await.expect("get");

    assert!(
        text.lines().any(|l| l.starts_with("Termination") && l.ends_with(id)),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Selector") && l.ends_with("user alice@example.com")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("Delivery")
            && l.ends_with("1 acknowledged, 0 failed, 0 already ended, 1 delivered, 0 pending")),
        "{text}"
    );
    let header = text.lines().find(|l| l.contains("ATTEMPTS")).expect("commands header");
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "SESSION", "USER", "GATEWAY", "STATE", "ATTEMPTS", "ACKED", "AT", "DETAIL"
        ]
    );
    let row = text
        .lines()
        .find(|l| l.contains("user2@example.com"))
        .expect("user2's row");
    for cell in [
        &session(2).id[..],
        "gw-ap-1",
        "Delivered",
        "3",
        "gateway slow to answer",
    ] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?}");
    }

    let json = run_to_string(&server, &["terminations", "get", id, "-o", "json"])
        .await
        .expect("get as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["commands"][0]["state"], "acknowledged");
    assert_eq!(value["commands"][1]["attempts"], 3);

    let missing = "0195a3c0-7e1f-7000-8000-0000000000ff";
    let error = run_to_string(&server, &["terminations", "get", missing])
        .await
        .expect_err("no such termination");
    assert_eq!(error.to_string(), format!("no termination {missing} (not found)"));
    assert_eq!(error.exit_code(), EXIT_SERVER);
}

/// What the fake policy service was asked, in order.
#[derive(Default)]
struct SeenPolicies {
    authorization: Vec<Option<String>>,
    /// The rpcs called, by name, in order.
    calls: Vec<&'static str>,
    create_requests: Vec<CreatePolicyRequest>,
    update_requests: Vec<UpdatePolicyRequest>,
    delete_requests: Vec<String>,
    effective_requests: Vec<GetEffectivePolicyRequest>,
    create_lock_requests: Vec<CreateLockRequest>,
    list_lock_requests: Vec<ListLocksRequest>,
    delete_lock_requests: Vec<String>,
}

/// A policy service over an in-memory list of policies, most general first. It checks rules the way the
/// real one does for one case (the idle timeout must exceed the warning), so refusals can be followed
/// through to the terminal.
#[derive(Clone, Default)]
struct FakePolicies {
    policies: Arc<Mutex<Vec<Policy>>>,
    /// Locks, oldest first; `expired` ones are listed only on request.
    locks: Arc<Mutex<Vec<(Lock, bool)>>>,
    /// Where a new lock's covered sessions are ended, as the real service does through termination.
    terminations: Option<FakeTerminations>,
    seen: Arc<Mutex<SeenPolicies>>,
}

impl FakePolicies {
    fn with(policies: Vec<Policy>) -> Self {
        FakePolicies {
            policies: Arc::new(Mutex::new(policies)),
            ..FakePolicies::default()
        }
    }

    fn record<T>(&self, name: &'static str, request: &Request<T>) {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut seen = self.seen.lock().expect("seen lock");
        seen.authorization.push(header);
        seen.calls.push(name);
    }

    fn calls(&self) -> Vec<&'static str> {
        self.seen.lock().expect("seen lock").calls.clone()
    }

    fn stored(&self, id: &str) -> Option<Policy> {
        self.policies
            .lock()
            .expect("policies lock")
            .iter()
            .find(|p| p.id == id)
            .cloned()
    }

    fn check(rules: &PolicyRules) -> Result<(), Status> {
        if let (Some(warning), Some(timeout)) = (&rules.idle_warning_after, &rules.idle_timeout)
            && timeout.seconds <= warning.seconds
        {
            return Err(Status::invalid_argument(format!(
                "idle_timeout ({}s) must exceed idle_warning_after ({}s)",
                timeout.seconds, warning.seconds
            )));
        }
        Ok(())
    }
}

/// How specific a scope is: the effective rules take each rule from the most specific policy that sets it.
fn specificity(policy: &Policy) -> u8 {
    match policy.scope.as_ref().and_then(|s| s.scope.as_ref()) {
        Some(Scope::User(_)) => 3,
        Some(Scope::ResourceName(_)) => 2,
        Some(Scope::Group(_)) => 1,
        Some(Scope::Global(_)) | None => 0,
    }
}

#[tonic::async_trait]
impl PolicyService for FakePolicies {
    async fn admit(&self, _request: Request<AdmitRequest>) -> Result<Response<AdmitResponse>, Status> {
        Err(Status::unimplemented("for the registry; sessionctl does not call it"))
    }

    async fn create_policy(&self, request: Request<CreatePolicyRequest>) -> Result<Response<Policy>, Status> {
        self.record("create", &request);
        let request = request.into_inner();
        self.seen
            .lock()
            .expect("seen lock")
            .create_requests
            .push(request.clone());
        let rules = request.rules.unwrap_or_default();
        Self::check(&rules)?;
        let mut policies = self.policies.lock().expect("policies lock");
        if policies.iter().any(|p| p.scope == request.scope) {
            return Err(Status::already_exists("that scope already has a policy"));
        }
        let policy = Policy {
            id: format!("0195a3c0-7e1f-7000-8000-0000000000{:02x}", 0xb0 + policies.len()),
            scope: request.scope,
            rules: Some(rules),
            description: request.description,
            updated_by: "admin@example.com".into(),
            updated_at: Some(Timestamp {
                seconds: 1_741_076_100,
                nanos: 0,
            }),
        };
        policies.push(policy.clone());
        policies.sort_by_key(specificity);
        Ok(Response::new(policy))
    }

    async fn get_policy(&self, request: Request<GetPolicyRequest>) -> Result<Response<Policy>, Status> {
        self.record("get", &request);
        let id = request.into_inner().id;
        self.stored(&id)
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no policy {id}")))
    }

    async fn list_policies(
        &self,
        request: Request<ListPoliciesRequest>,
    ) -> Result<Response<ListPoliciesResponse>, Status> {
        self.record("list", &request);
        let policies = self.policies.lock().expect("policies lock").clone();
        Ok(Response::new(ListPoliciesResponse { policies }))
    }

    async fn update_policy(&self, request: Request<UpdatePolicyRequest>) -> Result<Response<Policy>, Status> {
        self.record("update", &request);
        let request = request.into_inner();
        self.seen
            .lock()
            .expect("seen lock")
            .update_requests
            .push(request.clone());
        let rules = request.rules.unwrap_or_default();
        Self::check(&rules)?;
        let mut policies = self.policies.lock().expect("policies lock");
        let Some(policy) = policies.iter_mut().find(|p| p.id == request.id) else {
            return Err(Status::not_found(format!("no policy {}", request.id)));
        };
        policy.rules = Some(rules);
        policy.description = request.description;
        policy.updated_by = "operator@example.com".into();
        Ok(Response::new(policy.clone()))
    }

    async fn delete_policy(
        &self,
        request: Request<DeletePolicyRequest>,
    ) -> Result<Response<DeletePolicyResponse>, Status> {
        self.record("delete", &request);
        let id = request.into_inner().id;
        self.seen.lock().expect("seen lock").delete_requests.push(id.clone());
        let mut policies = self.policies.lock().expect("policies lock");
        let Some(at) = policies.iter().position(|p| p.id == id) else {
            return Err(Status::not_found(format!("no policy {id}")));
        };
        if specificity(&policies[at]) == 0 {
            return Err(Status::failed_precondition(
                "the global policy cannot be deleted, only changed",
            ));
        }
        policies.remove(at);
        Ok(Response::new(DeletePolicyResponse {}))
    }

    async fn get_effective_policy(
        &self,
        request: Request<GetEffectivePolicyRequest>,
    ) -> Result<Response<EffectivePolicy>, Status> {
        self.record("effective", &request);
        let request = request.into_inner();
        self.seen
            .lock()
            .expect("seen lock")
            .effective_requests
            .push(request.clone());
        let mut applicable: Vec<Policy> = self
            .policies
            .lock()
            .expect("policies lock")
            .iter()
            .filter(|p| match p.scope.as_ref().and_then(|s| s.scope.as_ref()) {
                Some(Scope::User(user)) => *user == request.user,
                Some(Scope::ResourceName(resource)) => *resource == request.resource_name,
                Some(Scope::Group(group)) => request.user_groups.contains(group),
                Some(Scope::Global(_)) => true,
                None => false,
            })
            .cloned()
            .collect();
        applicable.sort_by_key(|p| std::cmp::Reverse(specificity(p)));
        let mut merged = PolicyRules::default();
        let mut policy_ids = Vec::new();
        for policy in &applicable {
            let rules = policy.rules.unwrap_or_default();
            let mut contributed = false;
            let mut take = |field_set: bool, unset_here: bool| {
                let taken = field_set && unset_here;
                contributed |= taken;
                taken
            };
            if take(rules.idle_warning_after.is_some(), merged.idle_warning_after.is_none()) {
                merged.idle_warning_after = rules.idle_warning_after;
            }
            if take(rules.idle_timeout.is_some(), merged.idle_timeout.is_none()) {
                merged.idle_timeout = rules.idle_timeout;
            }
            if take(
                rules.max_session_duration.is_some(),
                merged.max_session_duration.is_none(),
            ) {
                merged.max_session_duration = rules.max_session_duration;
            }
            if take(
                rules.max_concurrent_sessions.is_some(),
                merged.max_concurrent_sessions.is_none(),
            ) {
                merged.max_concurrent_sessions = rules.max_concurrent_sessions;
            }
            if take(rules.concurrency_action != 0, merged.concurrency_action == 0) {
                merged.concurrency_action = rules.concurrency_action;
            }
            if take(rules.deny_risk_score.is_some(), merged.deny_risk_score.is_none()) {
                merged.deny_risk_score = rules.deny_risk_score;
            }
            if take(rules.flag_risk_score.is_some(), merged.flag_risk_score.is_none()) {
                merged.flag_risk_score = rules.flag_risk_score;
            }
            if contributed {
                policy_ids.push(policy.id.clone());
            }
        }
        Ok(Response::new(EffectivePolicy {
            rules: Some(merged),
            policy_ids,
        }))
    }

    /// Stores the lock (refusing a network with host bits set, as the real service does), then ends what it
    /// covers through the fake termination service, noting the lock as the real service does.
    async fn create_lock(&self, request: Request<CreateLockRequest>) -> Result<Response<Lock>, Status> {
        self.record("create_lock", &request);
        let request = request.into_inner();
        self.seen
            .lock()
            .expect("seen lock")
            .create_lock_requests
            .push(request.clone());
        let Some(target) = request.target.clone().and_then(|t| t.target) else {
            return Err(Status::invalid_argument(
                "target is required: a user, group, resource_name, gateway_id, device or cidr",
            ));
        };
        if let LockOn::Cidr(cidr) = &target
            && cidr == "10.1.2.3/16"
        {
            return Err(Status::invalid_argument(
                "target.cidr \"10.1.2.3/16\" has bits set past the prefix length; did you mean 10.1.0.0/16?",
            ));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64;
        let mut locks = self.locks.lock().expect("locks lock");
        let lock = Lock {
            id: format!("0195a3c0-7e1f-7000-8000-00000000f0{:02x}", locks.len()),
            target: request.target.clone(),
            message: if request.message.is_empty() {
                "Your access is locked by security; contact your administrator.".into()
            } else {
                request.message.clone()
            },
            expires_at: request.ttl.map(|ttl| Timestamp {
                seconds: now + ttl.seconds,
                nanos: 0,
            }),
            created_by: "soc@example.com".into(),
            created_at: Some(Timestamp { seconds: now, nanos: 0 }),
            reason: request.reason.clone(),
        };
        locks.push((lock.clone(), false));
        drop(locks);
        if let Some(terminations) = &self.terminations {
            let selector = match target {
                LockOn::User(user) => Target::User(user),
                LockOn::Group(group) => Target::Group(group),
                LockOn::ResourceName(resource) => Target::ResourceName(resource),
                LockOn::GatewayId(gateway) => Target::GatewayId(gateway),
                LockOn::Device(device) => Target::Device(device),
                LockOn::Cidr(cidr) => Target::Cidr(cidr),
            };
            let ending = TerminateRequest {
                selector: Some(SessionSelector { target: Some(selector) }),
                reason: EndReason::Locked as i32,
                user_message: lock.message.clone(),
                note: format!("lock {} by {}: {}", lock.id, lock.created_by, lock.reason),
                expected_count: None,
            };
            // Like the real service: a target the registry never saw has nothing to end.
            match terminations.issue(ending) {
                Ok(_) => {}
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) => return Err(status),
            }
        }
        Ok(Response::new(lock))
    }

    async fn list_locks(&self, request: Request<ListLocksRequest>) -> Result<Response<ListLocksResponse>, Status> {
        self.record("list_locks", &request);
        let request = request.into_inner();
        self.seen.lock().expect("seen lock").list_lock_requests.push(request);
        let locks = self
            .locks
            .lock()
            .expect("locks lock")
            .iter()
            .filter(|(_, expired)| request.include_expired || !expired)
            .map(|(lock, _)| lock.clone())
            .collect();
        Ok(Response::new(ListLocksResponse { locks, version: 0 }))
    }

    async fn delete_lock(&self, request: Request<DeleteLockRequest>) -> Result<Response<DeleteLockResponse>, Status> {
        self.record("delete_lock", &request);
        let id = request.into_inner().id;
        self.seen
            .lock()
            .expect("seen lock")
            .delete_lock_requests
            .push(id.clone());
        let mut locks = self.locks.lock().expect("locks lock");
        let Some(at) = locks.iter().position(|(lock, _)| lock.id == id) else {
            return Err(Status::not_found(format!("lock {id:?} not found")));
        };
        locks.remove(at);
        Ok(Response::new(DeleteLockResponse {}))
    }

    async fn release_sessions(
        &self,
        _request: Request<ReleaseSessionsRequest>,
    ) -> Result<Response<ReleaseSessionsResponse>, Status> {
        Err(Status::unimplemented(
            "for registry replicas; sessionctl does not call it",
        ))
    }

    async fn list_audit_events(
        &self,
        request: Request<vigil_proto::v1::ListAuditEventsRequest>,
    ) -> Result<Response<vigil_proto::v1::ListAuditEventsResponse>, Status> {
        self.record("audit", &request);
        Ok(Response::new(vigil_proto::v1::ListAuditEventsResponse::default()))
    }
}

/// Serves `fake` alone on a fresh port.
async fn serve_policies(fake: FakePolicies) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("local address");
    let router = tonic::transport::Server::builder().add_service(PolicyServiceServer::new(fake));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    format!("http://{address}")
}

const GLOBAL_POLICY: &str = "0195a3c0-7e1f-7000-8000-0000000000a1";
const SRE_POLICY: &str = "0195a3c0-7e1f-7000-8000-0000000000a2";
const ALICE_POLICY: &str = "0195a3c0-7e1f-7000-8000-0000000000a3";

fn minutes(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: n * 60,
        nanos: 0,
    })
}

fn stored_policy(id: &str, scope: Scope, rules: PolicyRules, description: &str) -> Policy {
    Policy {
        id: id.into(),
        scope: Some(PolicyScope { scope: Some(scope) }),
        rules: Some(rules),
        description: description.into(),
        updated_by: "admin@example.com".into(),
        updated_at: Some(Timestamp {
            seconds: 1_741_076_100,
            nanos: 0,
        }),
    }
}

/// A global policy with every rule set, a group policy for `sre` and a user policy for alice.
fn three_policies() -> FakePolicies {
    FakePolicies::with(vec![
        stored_policy(
            GLOBAL_POLICY,
            Scope::Global(GlobalScope {}),
            PolicyRules {
                idle_warning_after: minutes(10),
                idle_timeout: minutes(30),
                max_session_duration: minutes(8 * 60),
                max_concurrent_sessions: Some(0),
                concurrency_action: ConcurrencyAction::DenyNew.into(),
                deny_risk_score: Some(90),
                flag_risk_score: Some(50),
            },
            "the defaults",
        ),
        stored_policy(
            SRE_POLICY,
            Scope::Group("sre".into()),
            PolicyRules {
                idle_timeout: minutes(45),
                max_session_duration: minutes(12 * 60),
                max_concurrent_sessions: Some(3),
                concurrency_action: ConcurrencyAction::EndOldest.into(),
                ..PolicyRules::default()
            },
            "on-call engineers",
        ),
        stored_policy(
            ALICE_POLICY,
            Scope::User("alice@example.com".into()),
            PolicyRules {
                deny_risk_score: Some(70),
                ..PolicyRules::default()
            },
            "",
        ),
    ])
}

#[tokio::test]
async fn policies_list_shows_each_scope_with_inherit_for_unset_rules() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    let text = run_to_string(&server, &["policies", "list", "--token", "s3cret"])
        .await
        .expect("list");

    let header = text.lines().next().expect("header");
    assert!(header.starts_with("ID") && header.ends_with("UPDATED"), "{text}");
    let row = text.lines().find(|l| l.contains("group sre")).expect("the sre row");
    for cell in [
        "000000a2",
        "inherit",
        "45m",
        "12h",
        "3 (end oldest)",
        "by admin@example.com",
    ] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?}");
    }
    let row = text.lines().find(|l| l.contains("global")).expect("the global row");
    for cell in ["10m", "30m", "8h", "unlimited (deny new)", "90", "50"] {
        assert!(row.contains(cell), "{cell:?} missing from {row:?}");
    }
    let row = text
        .lines()
        .find(|l| l.contains("user alice@example.com"))
        .expect("alice's row");
    assert_eq!(row.matches("inherit").count(), 5, "all but the deny threshold: {row:?}");
    assert!(row.contains(" 70 "), "{row:?}");
    assert!(text.ends_with("\n\n3 policies\n"), "{text}");
    assert_eq!(
        fake.seen.lock().expect("seen lock").authorization,
        [Some("Bearer s3cret".to_owned())]
    );

    let json = run_to_string(&server, &["policies", "list", "-o", "json"])
        .await
        .expect("list as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let policies = value["policies"].as_array().expect("policies");
    assert_eq!(policies.len(), 3);
    assert_eq!(policies[0]["scope"], serde_json::json!({ "global": {} }));
    assert_eq!(policies[1]["scope"]["group"], "sre");
    assert_eq!(policies[1]["rules"]["idle_timeout_seconds"], 2700);
    assert_eq!(
        policies[1]["rules"]["idle_warning_after_seconds"],
        serde_json::Value::Null
    );
    assert_eq!(policies[1]["rules"]["concurrency_action"], "end_oldest");
    assert_eq!(policies[2]["rules"]["deny_risk_score"], 70);
}

#[tokio::test]
async fn policies_get_shows_one_and_reports_an_unknown_one() {
    let server = serve_policies(three_policies()).await;

    let text = run_to_string(&server, &["policies", "get", SRE_POLICY])
        .await
        .expect("get");
    let value_of = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).filter(|rest| rest.starts_with("  ")).map(str::trim))
            .unwrap_or_else(|| panic!("no {key:?} in:\n{text}"))
    };
    assert_eq!(value_of("Policy"), SRE_POLICY);
    assert_eq!(value_of("Scope"), "group sre");
    assert_eq!(value_of("Description"), "on-call engineers");
    assert_eq!(value_of("Idle warning"), "inherit");
    assert_eq!(value_of("Idle timeout"), "45m");
    assert_eq!(value_of("Max sessions"), "3");
    assert_eq!(value_of("On excess"), "end oldest");

    let json = run_to_string(&server, &["policies", "get", SRE_POLICY, "-o", "json"])
        .await
        .expect("get as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["id"], SRE_POLICY);
    assert_eq!(value["rules"]["max_session_duration_seconds"], 12 * 3600);

    let missing = "0195a3c0-7e1f-7000-8000-0000000000ff";
    let error = run_to_string(&server, &["policies", "get", missing])
        .await
        .expect_err("no such policy");
    assert_eq!(error.to_string(), format!("no policy {missing} (not found)"));
    assert_eq!(error.exit_code(), EXIT_SERVER);
}

#[tokio::test]
async fn policies_create_sends_the_scope_and_rules_and_shows_the_result() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    let text = run_to_string(
        &server,
        &[
            "policies",
            "create",
            "--resource",
            "prod-db-01",
            "--idle-timeout",
            "15m",
            "--max-sessions",
            "1",
            "--on-excess",
            "deny-new",
            "--flag-risk",
            "40",
            "--description",
            "production database",
        ],
    )
    .await
    .expect("create");

    assert!(
        text.starts_with("Created the policy for resource prod-db-01.\n\nPolicy "),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Idle timeout") && l.ends_with(" 15m")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Idle warning") && l.ends_with(" inherit")),
        "{text}"
    );
    let request = fake.seen.lock().expect("seen lock").create_requests[0].clone();
    assert_eq!(
        request,
        CreatePolicyRequest {
            scope: Some(PolicyScope {
                scope: Some(Scope::ResourceName("prod-db-01".into()))
            }),
            rules: Some(PolicyRules {
                idle_timeout: minutes(15),
                max_concurrent_sessions: Some(1),
                concurrency_action: ConcurrencyAction::DenyNew.into(),
                flag_risk_score: Some(40),
                ..PolicyRules::default()
            }),
            description: "production database".into(),
        }
    );

    let list = run_to_string(&server, &["policies", "list"]).await.expect("list");
    assert!(
        list.contains("resource prod-db-01") && list.contains("4 policies"),
        "{list}"
    );

    // The server's refusal comes through as it was worded.
    let error = run_to_string(&server, &["policies", "create", "--group", "sre"])
        .await
        .expect_err("sre has one");
    assert_eq!(error.to_string(), "that scope already has a policy (already exists)");

    let json = run_to_string(
        &server,
        &[
            "policies",
            "create",
            "--group",
            "dba",
            "--max-sessions",
            "0",
            "-o",
            "json",
        ],
    )
    .await
    .expect("create as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["scope"]["group"], "dba");
    assert_eq!(value["rules"]["max_concurrent_sessions"], 0);
}

#[tokio::test]
async fn policies_update_sends_the_current_rules_with_only_the_flags_changed() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    let text = run_to_string(
        &server,
        &[
            "policies",
            "update",
            SRE_POLICY,
            "--idle-timeout",
            "1h",
            "--clear",
            "max-duration",
        ],
    )
    .await
    .expect("update");

    assert!(text.starts_with("Updated the policy for group sre.\n\n"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("Idle timeout") && l.ends_with(" 1h")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Max duration") && l.ends_with(" inherit")),
        "{text}"
    );
    assert_eq!(fake.calls(), ["get", "update"], "read first, then replace");
    let request = fake.seen.lock().expect("seen lock").update_requests[0].clone();
    assert_eq!(
        request,
        UpdatePolicyRequest {
            id: SRE_POLICY.into(),
            rules: Some(PolicyRules {
                idle_timeout: minutes(60),
                max_concurrent_sessions: Some(3),
                concurrency_action: ConcurrencyAction::EndOldest.into(),
                ..PolicyRules::default()
            }),
            description: "on-call engineers".into(),
        }
    );
    let stored = fake.stored(SRE_POLICY).expect("still there");
    assert_eq!(stored.rules, request.rules);

    // Nothing to change, or a contradiction: refused before anything is asked.
    for args in [
        &["policies", "update", SRE_POLICY][..],
        &[
            "policies",
            "update",
            SRE_POLICY,
            "--flag-risk",
            "30",
            "--clear",
            "flag-risk",
        ],
    ] {
        let error = run_to_string(&server, args).await.expect_err("refused");
        assert_eq!(error.exit_code(), EXIT_USAGE, "{args:?}");
    }
    assert_eq!(fake.calls().len(), 2, "no further calls");

    let missing = "0195a3c0-7e1f-7000-8000-0000000000ff";
    let error = run_to_string(&server, &["policies", "update", missing, "--deny-risk", "60"])
        .await
        .expect_err("no such policy");
    assert_eq!(error.to_string(), format!("no policy {missing} (not found)"));
    assert_eq!(fake.calls().last(), Some(&"get"), "nothing to update");
}

#[tokio::test]
async fn invalid_rules_are_refused_with_the_servers_words() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    let error = run_to_string(
        &server,
        &[
            "policies",
            "create",
            "--user",
            "bob@example.com",
            "--idle-warning",
            "10m",
            "--idle-timeout",
            "5m",
        ],
    )
    .await
    .expect_err("timeout before warning");
    assert!(matches!(error, CliError::Server { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "idle_timeout (300s) must exceed idle_warning_after (600s) (invalid argument)"
    );
    assert_eq!(error.exit_code(), EXIT_SERVER);

    // The same through an update: the global policy warns at 10m, so a 5m timeout contradicts it.
    let error = run_to_string(&server, &["policies", "update", GLOBAL_POLICY, "--idle-timeout", "5m"])
        .await
        .expect_err("timeout before warning");
    assert_eq!(
        error.to_string(),
        "idle_timeout (300s) must exceed idle_warning_after (600s) (invalid argument)"
    );
    assert_eq!(
        fake.stored(GLOBAL_POLICY)
            .and_then(|p| p.rules)
            .and_then(|r| r.idle_timeout),
        minutes(30),
        "unchanged"
    );
}

#[tokio::test]
async fn policies_delete_shows_the_policy_and_asks_first() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    for typed in ["n\n", "\n", ""] {
        let ran = run_answering(&server, &["policies", "delete", SRE_POLICY], Some(typed)).await;
        let error = ran.result.expect_err("declined");
        assert!(matches!(error, CliError::Aborted(_)), "{typed:?}: {error:?}");
        assert_eq!(error.to_string(), "aborted; nothing was deleted");
        assert_eq!(error.exit_code(), EXIT_ABORTED);
        assert!(ran.console.starts_with("Policy "), "{}", ran.console);
        assert!(ran.console.contains("on-call engineers"), "{}", ran.console);
        // At the end of input the prompt's line is closed for the shell.
        assert!(
            ran.console.trim_end_matches('\n').ends_with(
                "What it covers falls back to the less specific policies.\nDelete the policy for group sre? [y/N] "
            ),
            "{}",
            ran.console
        );
        assert_eq!(ran.out, "");
    }
    assert!(fake.calls().iter().all(|call| *call == "get"), "{:?}", fake.calls());
    assert!(fake.stored(SRE_POLICY).is_some());

    let ran = run_answering(&server, &["policies", "delete", SRE_POLICY], Some("y\n")).await;
    ran.result.expect("confirmed");
    assert_eq!(ran.out, format!("Deleted policy {SRE_POLICY} (group sre).\n"));
    assert!(fake.stored(SRE_POLICY).is_none());
    assert_eq!(fake.seen.lock().expect("seen lock").delete_requests, [SRE_POLICY]);
}

#[tokio::test]
async fn policies_delete_without_a_terminal_needs_yes() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    let ran = run_answering(&server, &["policies", "delete", ALICE_POLICY], None).await;
    let error = ran.result.expect_err("refused");
    assert_eq!(error.exit_code(), EXIT_USAGE);
    assert!(error.to_string().contains("pass --yes"), "{error}");
    assert!(fake.calls().is_empty(), "nothing asked of the server");

    let ran = run_answering(
        &server,
        &["policies", "delete", ALICE_POLICY, "--yes", "-o", "json"],
        None,
    )
    .await;
    ran.result.expect("deleted");
    assert_eq!(ran.console, "", "nothing asked");
    let value: serde_json::Value = serde_json::from_str(&ran.out).expect("valid JSON");
    assert_eq!(value["deleted"]["id"], ALICE_POLICY);
    assert_eq!(value["deleted"]["scope"]["user"], "alice@example.com");
    assert!(fake.stored(ALICE_POLICY).is_none());

    // The server keeps the global policy; its refusal comes through.
    let ran = run_answering(&server, &["policies", "delete", GLOBAL_POLICY, "-y"], None).await;
    let error = ran.result.expect_err("the global policy stays");
    assert_eq!(
        error.to_string(),
        "the global policy cannot be deleted, only changed (failed precondition)"
    );
}

#[tokio::test]
async fn policies_effective_shows_the_merged_rules_and_where_they_come_from() {
    let fake = three_policies();
    let server = serve_policies(fake.clone()).await;

    let text = run_to_string(
        &server,
        &[
            "policies",
            "effective",
            "--user",
            "alice@example.com",
            "--group",
            "sre",
            "--group",
            "eng",
            "--resource",
            "prod-db-01",
        ],
    )
    .await
    .expect("effective");

    assert!(
        text.starts_with("Rules for alice@example.com (groups sre, eng) on prod-db-01:\n\n"),
        "{text}"
    );
    let value_of = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).filter(|rest| rest.starts_with("  ")).map(str::trim))
            .unwrap_or_else(|| panic!("no {key:?} in:\n{text}"))
    };
    assert_eq!(value_of("Idle warning"), "10m", "from the global policy");
    assert_eq!(value_of("Idle timeout"), "45m", "from sre");
    assert_eq!(value_of("Max sessions"), "3");
    assert_eq!(value_of("On excess"), "end oldest");
    assert_eq!(value_of("Deny if risk ≥"), "70", "from alice's own");
    assert_eq!(value_of("From policies"), ALICE_POLICY);
    assert!(
        text.ends_with(&format!(
            "{ALICE_POLICY}\n                {SRE_POLICY}\n                {GLOBAL_POLICY}\n"
        )),
        "{text}"
    );
    assert_eq!(
        fake.seen.lock().expect("seen lock").effective_requests,
        [GetEffectivePolicyRequest {
            user: "alice@example.com".into(),
            user_groups: vec!["sre".into(), "eng".into()],
            resource_name: "prod-db-01".into(),
        }]
    );

    let json = run_to_string(
        &server,
        &[
            "policies",
            "effective",
            "--user",
            "bob",
            "--resource",
            "wiki",
            "-o",
            "json",
        ],
    )
    .await
    .expect("effective as JSON");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["policy_ids"], serde_json::json!([GLOBAL_POLICY]));
    assert_eq!(value["rules"]["idle_timeout_seconds"], 1800);
    assert_eq!(value["rules"]["concurrency_action"], "deny_new");
}

#[tokio::test]
async fn a_separate_policy_server_is_used_when_given() {
    let fake = three_policies();
    let registry_server = serve(FakeRegistry::default()).await;
    let policy_server = serve_policies(fake.clone()).await;

    let text = run_to_string(
        &registry_server,
        &["policies", "list", "--policy-server", &policy_server],
    )
    .await
    .expect("lists through the separate policy service");
    assert!(text.contains("3 policies"), "{text}");

    // Without it, the registry's address is asked, which does not serve policies here.
    let error = run_to_string(&registry_server, &["policies", "list"])
        .await
        .expect_err("no policy service there");
    assert!(
        error.to_string().contains("(unimplemented); is --policy-server"),
        "{error}"
    );

    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let error = run_to_string(&policy_server, &["policies", "list", "--policy-server", &nowhere])
        .await
        .expect_err("unreachable");
    assert_eq!(error.exit_code(), EXIT_UNREACHABLE);
    assert!(
        error.to_string().starts_with(&format!(
            "cannot reach the Vigil policy service at {nowhere} (connection refused)"
        )),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// Locks
// ---------------------------------------------------------------------------------------------

/// The first lock id the fake policy service hands out.
const FIRST_LOCK: &str = "0195a3c0-7e1f-7000-8000-00000000f000";

/// Every fake on one port, as the all-in-one binary serves them.
async fn serve_all(registry: FakeRegistry, terminations: FakeTerminations, policies: FakePolicies) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("local address");
    let router = tonic::transport::Server::builder()
        .add_service(SessionRegistryServer::new(registry))
        .add_service(TerminationServiceServer::new(terminations))
        .add_service(PolicyServiceServer::new(policies));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    format!("http://{address}")
}

/// The termination fakes, and a policy service whose new locks end what they cover through them.
fn lock_fakes(registry: FakeRegistry) -> (FakeRegistry, FakeTerminations, FakePolicies) {
    use DeliveryState::{Acknowledged as Ack, AlreadyEnded, Pending};
    let terminations = FakeTerminations {
        registry: registry.clone(),
        progress: vec![
            vec![Pending; 5],
            vec![Ack, Ack, Pending, Pending, Pending],
            vec![Ack, Ack, Ack, Ack, AlreadyEnded],
        ],
        ..FakeTerminations::default()
    };
    let policies = FakePolicies {
        terminations: Some(terminations.clone()),
        ..FakePolicies::default()
    };
    (registry, terminations, policies)
}

#[tokio::test]
async fn end_with_lock_locks_the_target_and_follows_what_the_lock_ended() {
    let (registry, terminations, policies) = lock_fakes(five_sessions());
    let server = serve_all(registry, terminations.clone(), policies.clone()).await;

    let ran = run_answering(
        &server,
        &[
            "sessions",
            "end",
            "--gateway",
            "gw-eu-1",
            "--lock",
            "--for",
            "1h",
            "--message",
            "Your access is suspended by security — contact the SOC",
            "--note",
            "SOC-1234",
            "--yes",
            "--token",
            "s3cret",
        ],
        None,
    )
    .await;

    ran.result.expect("locked and ended");
    let lines: Vec<&str> = ran.out.lines().collect();
    assert!(
        lines[0].starts_with("Locked gateway gw-eu-1 until ") && lines[0].ends_with(&format!("(lock {FIRST_LOCK}).")),
        "{}",
        ran.out
    );
    assert_eq!(
        lines[1..],
        [
            &format!("Termination {TERMINATION_ID}: ending 5 sessions (gateway gw-eu-1, reason: locked).")[..],
            "Waiting for the gateways: 0 of 5 acknowledged, 0 failed, 0 already ended, 5 waiting",
            "Waiting for the gateways: 2 of 5 acknowledged, 0 failed, 0 already ended, 3 waiting",
            "Ended 5 sessions: 4 acknowledged, 0 failed, 1 already ended.",
            &format!("Each session's state: sessionctl terminations get {TERMINATION_ID}")[..],
        ],
        "{}",
        ran.out
    );

    let seen = policies.seen.lock().expect("seen lock");
    let [request] = seen.create_lock_requests.as_slice() else {
        panic!("one CreateLock call, got {:?}", seen.create_lock_requests)
    };
    assert_eq!(
        request.target.as_ref().and_then(|t| t.target.clone()),
        Some(LockOn::GatewayId("gw-eu-1".into()))
    );
    assert_eq!(
        request.ttl,
        Some(prost_types::Duration {
            seconds: 3600,
            nanos: 0
        })
    );
    assert_eq!(
        request.message,
        "Your access is suspended by security — contact the SOC"
    );
    assert_eq!(request.reason, "SOC-1234");
    assert!(seen.authorization.iter().all(|h| h.as_deref() == Some("Bearer s3cret")));
    // The lock ended the sessions; sessionctl only found that termination and followed it.
    let seen = terminations.seen.lock().expect("seen lock");
    assert!(seen.terminate_requests.is_empty(), "{:?}", seen.terminate_requests);
    assert_eq!(seen.list_requests[0].reason, EndReason::Locked as i32);
    assert_eq!(seen.get_requests, 2);
}

#[tokio::test]
async fn end_with_lock_asks_about_both_and_a_no_does_neither() {
    let (registry, terminations, policies) = lock_fakes(five_sessions());
    let server = serve_all(registry, terminations, policies.clone()).await;

    let ran = run_answering(
        &server,
        &["sessions", "end", "--gateway", "gw-eu-1", "--lock"],
        Some("n\n"),
    )
    .await;

    let error = ran.result.expect_err("declined");
    assert_eq!(error.exit_code(), EXIT_ABORTED);
    assert_eq!(error.to_string(), "aborted; nothing was ended or locked");
    assert!(
        ran.console
            .starts_with("5 sessions will end (gateway gw-eu-1, reason: locked):\n"),
        "{}",
        ran.console
    );
    assert!(
        ran.console.ends_with(
            "\ngateway gw-eu-1 will be locked out until the lock is removed: new sessions are refused with the \
             server's lock message.\nEnd 5 sessions and lock gateway gw-eu-1? [y/N] "
        ),
        "{}",
        ran.console
    );
    assert!(policies.seen.lock().expect("seen lock").create_lock_requests.is_empty());

    // Without a terminal, --yes is needed before anything is asked of the servers.
    let ran = run_answering(&server, &["sessions", "end", "--user", "a", "--lock"], None).await;
    assert_eq!(ran.result.expect_err("no terminal").exit_code(), EXIT_USAGE);
    assert!(policies.seen.lock().expect("seen lock").create_lock_requests.is_empty());
}

#[tokio::test]
async fn a_user_never_seen_can_be_locked_out_ahead_of_time() {
    let registry = FakeRegistry {
        unknown_users_not_found: true,
        ..five_sessions()
    };
    let (registry, terminations, policies) = lock_fakes(registry);
    let server = serve_all(registry, terminations, policies.clone()).await;

    let ran = run_answering(
        &server,
        &["sessions", "end", "--user", "ghost@example.com", "--lock"],
        Some("y\n"),
    )
    .await;
    ran.result.expect("locked");
    assert_eq!(
        ran.console,
        "No live sessions for user ghost@example.com.\n\nuser ghost@example.com will be locked out until the lock \
         is removed: new sessions are refused with the server's lock message.\nLock user ghost@example.com? [y/N] "
    );
    assert_eq!(
        ran.out,
        format!(
            "Locked user ghost@example.com until removed (lock {FIRST_LOCK}).\nNo live session was ended for it.\n"
        )
    );

    let ran = run_answering(
        &server,
        &[
            "sessions",
            "end",
            "--user",
            "ghost2@example.com",
            "--lock",
            "-y",
            "-o",
            "json",
        ],
        None,
    )
    .await;
    ran.result.expect("locked");
    let value: serde_json::Value = serde_json::from_str(&ran.out).expect("only JSON on stdout");
    assert_eq!(
        value["lock"]["target"],
        serde_json::json!({ "user": "ghost2@example.com" })
    );
    assert_eq!(value["lock"]["expires_at"], serde_json::Value::Null);
    assert_eq!(value["termination"], serde_json::Value::Null);
    assert_eq!(value["already_ended"], serde_json::json!([]));
    assert_eq!(policies.seen.lock().expect("seen lock").create_lock_requests.len(), 2);
}

#[tokio::test]
async fn locks_are_created_listed_and_removed() {
    let (registry, terminations, policies) = lock_fakes(five_sessions());
    let server = serve_all(registry, terminations, policies.clone()).await;

    let out = run_to_string(
        &server,
        &[
            "locks",
            "create",
            "--user",
            "user1@example.com",
            "--for",
            "2h",
            "--reason",
            "SOC-1234",
        ],
    )
    .await
    .expect("created");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("Locked user user1@example.com until ")
            && lines[0].ends_with(&format!("(lock {FIRST_LOCK}).")),
        "{out}"
    );
    assert!(
        out.contains("\nMessage  Your access is locked by security; contact your administrator.\n"),
        "{out}"
    );
    assert!(out.contains("\nReason   SOC-1234\n"), "{out}");
    assert!(
        out.ends_with(&format!(
            "Ending 1 live session it covers (termination {TERMINATION_ID}).\n"
        )),
        "{out}"
    );
    let created = policies.seen.lock().expect("seen lock").create_lock_requests[0].clone();
    assert_eq!(
        created.ttl,
        Some(prost_types::Duration {
            seconds: 7200,
            nanos: 0
        })
    );

    // A second, already expired: listed only with --all.
    {
        let mut locks = policies.locks.lock().expect("locks lock");
        let mut expired = locks[0].0.clone();
        expired.id = "0195a3c0-7e1f-7000-8000-00000000dead".into();
        expired.target = Some(vigil_proto::v1::LockTarget {
            target: Some(LockOn::Cidr("203.0.113.0/24".into())),
        });
        expired.expires_at = Some(Timestamp {
            seconds: 1_741_076_100,
            nanos: 0,
        });
        locks.push((expired, true));
    }
    let out = run_to_string(&server, &["locks", "list"]).await.expect("listed");
    assert!(out.contains("user user1@example.com"), "{out}");
    assert!(!out.contains("203.0.113.0/24"), "{out}");
    assert!(out.ends_with("\n1 lock\n"), "{out}");
    let out = run_to_string(&server, &["locks", "list", "--all", "--wide"])
        .await
        .expect("listed");
    assert!(out.contains(FIRST_LOCK), "{out}");
    assert!(out.contains("network 203.0.113.0/24"), "{out}");
    assert!(out.contains("expired "), "{out}");
    assert!(out.ends_with("\n2 locks\n"), "{out}");
    let requests = policies.seen.lock().expect("seen lock").list_lock_requests.clone();
    assert_eq!(
        requests.iter().map(|r| r.include_expired).collect::<Vec<_>>(),
        vec![false, true]
    );
    let json = run_to_string(&server, &["locks", "list", "-o", "json"])
        .await
        .expect("listed");
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(value["locks"][0]["id"], FIRST_LOCK);
    assert_eq!(
        value["locks"][0]["target"],
        serde_json::json!({ "user": "user1@example.com" })
    );
    assert_eq!(value["locks"][0]["reason"], "SOC-1234");
    assert!(value["locks"][0]["expires_at"].is_string());

    let out = run_to_string(&server, &["locks", "delete", FIRST_LOCK])
        .await
        .expect("removed");
    assert_eq!(
        out,
        format!("Removed lock {FIRST_LOCK} (user user1@example.com): what it refused is admitted again.\n")
    );
    let error = run_to_string(&server, &["locks", "delete", FIRST_LOCK])
        .await
        .expect_err("gone already");
    assert_eq!(error.exit_code(), EXIT_SERVER);
    assert_eq!(
        error.to_string(),
        format!("lock \"{FIRST_LOCK}\" not found (not found)")
    );
}

#[tokio::test]
async fn a_refused_lock_is_reported_in_the_servers_words() {
    let (registry, terminations, policies) = lock_fakes(five_sessions());
    let server = serve_all(registry, terminations, policies.clone()).await;

    let error = run_to_string(&server, &["locks", "create", "--cidr", "10.1.2.3/16"])
        .await
        .expect_err("host bits");
    assert_eq!(error.exit_code(), EXIT_SERVER);
    assert_eq!(
        error.to_string(),
        "target.cidr \"10.1.2.3/16\" has bits set past the prefix length; did you mean 10.1.0.0/16? (invalid argument)"
    );
    assert!(policies.locks.lock().expect("locks lock").is_empty());
}
