//! Shared fakes for the CLI tests: the CLI is driven through `run` against an in-process `SessionRegistry` (and `TerminationService`, and
//! `PolicyService`) that answer from fixed data and record what they were asked. This checks the client side (paging, metadata,
//! streaming, confirmation, errors, exit codes); the end-to-end run against the real services lives in the
//! workspace's `tests/` crate.

use std::io::Cursor;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use prost_types::Timestamp;
use sessionctl::{Cli, CliError, Console, Streams, run_with};
use tokio::net::TcpListener;
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
    Session, SessionEvent, SessionSelector, SessionStats, SessionStatus, TerminateRequest, Termination,
    TerminationCommand, UpdatePolicyRequest, WatchSessionsRequest,
};

/// What the fake was asked, for assertions.
#[derive(Default)]
pub struct Seen {
    pub authorization: Vec<Option<String>>,
    pub list_requests: Vec<ListSessionsRequest>,
    pub watch_requests: Vec<WatchSessionsRequest>,
    pub resolve_requests: Vec<ResolveSessionsRequest>,
}

#[derive(Clone, Default)]
pub struct FakeRegistry {
    pub sessions: Vec<Session>,
    /// Ids of sessions that exist but ended: `ResolveSessions` reports them as already ended.
    pub ended: Vec<String>,
    /// A session that goes live right after the first `ResolveSessions`, as if someone logged in between
    /// the preview and the confirmation.
    pub late_arrival: Option<Session>,
    /// Sent on every watch before the stream goes quiet (or ends, with `end_watch`).
    pub events: Vec<SessionEvent>,
    pub end_watch: bool,
    /// Never answer `GetStats`, to exercise the client's timeout.
    pub stall_stats: bool,
    /// Answer NOT_FOUND for a user with no session, as the real registry does for a user it never saw.
    pub unknown_users_not_found: bool,
    pub seen: Arc<Mutex<Seen>>,
}

impl FakeRegistry {
    pub fn record<T>(&self, request: &Request<T>) {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.seen.lock().expect("seen lock").authorization.push(header);
    }

    /// What the selector covers now; `after_preview` counts the late arrival in.
    pub fn resolve(&self, selector: &SessionSelector, after_preview: bool) -> Result<ResolveSessionsResponse, Status> {
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

pub type EventStream = Pin<Box<dyn Stream<Item = Result<SessionEvent, Status>> + Send>>;

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
pub const TERMINATION_ID: &str = "0195a3c0-7e1f-7000-8000-00000000beef";

/// What the fake termination service was asked.
#[derive(Default)]
pub struct SeenTerminations {
    pub authorization: Vec<Option<String>>,
    pub terminate_requests: Vec<TerminateRequest>,
    pub get_requests: usize,
    pub list_requests: Vec<ListTerminationsRequest>,
}

/// A termination service over the fake registry's sessions: `Terminate` checks the expected count against
/// what the registry resolves now and records one command per session; each `GetTermination` moves the
/// commands one step along `progress`.
#[derive(Clone, Default)]
pub struct FakeTerminations {
    pub registry: FakeRegistry,
    /// The commands' states after each poll (the first list as `Terminate` answers); the last one repeats.
    /// Lists shorter than the session count leave the rest PENDING.
    pub progress: Vec<Vec<DeliveryState>>,
    /// What `ListTerminations` pages through, newest first.
    pub history: Vec<Termination>,
    /// Terminations another service issued (the policy service ending what a new lock covers), oldest
    /// first; listed before the history.
    pub issued: Arc<Mutex<Vec<Termination>>>,
    pub started: Arc<Mutex<Option<Termination>>>,
    pub seen: Arc<Mutex<SeenTerminations>>,
}

impl FakeTerminations {
    pub fn record<T>(&self, request: &Request<T>) {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.seen.lock().expect("seen lock").authorization.push(header);
    }

    /// `base` with its commands in the states of step `step`, and the counts to match.
    pub fn at_step(&self, base: &Termination, step: usize) -> Termination {
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
    pub fn issue(&self, request: TerminateRequest) -> Result<Termination, Status> {
        let termination = self.start(request)?;
        self.issued.lock().expect("issued lock").push(termination.clone());
        Ok(termination)
    }

    /// Records the termination `request` asks for over what the registry resolves now; its commands then
    /// move along `progress` with each `GetTermination`.
    pub fn start(&self, request: TerminateRequest) -> Result<Termination, Status> {
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
pub async fn serve(fake: FakeRegistry) -> String {
    serve_both(Some(fake), None).await
}

/// Serves whichever fakes are given on one fresh port, as the all-in-one binary does.
pub async fn serve_both(registry: Option<FakeRegistry>, terminations: Option<FakeTerminations>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("local address");
    let router = tonic::transport::Server::builder()
        .add_optional_service(registry.map(SessionRegistryServer::new))
        .add_optional_service(terminations.map(TerminationServiceServer::new));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    format!("http://{address}")
}

pub fn cli(server: &str, args: &[&str]) -> Cli {
    Cli::parse_from(
        ["sessionctl", "--server", server]
            .into_iter()
            .chain(args.iter().copied()),
    )
}

/// Runs a command that asks nothing; returns its stdout (data only: notes go to stderr).
pub async fn run_to_string(server: &str, args: &[&str]) -> Result<String, CliError> {
    run_to_streams(server, args).await.map(|(out, _)| out)
}

/// Runs a command that asks nothing; returns its stdout and its stderr (footers, hints).
pub async fn run_to_streams(server: &str, args: &[&str]) -> Result<(String, String), CliError> {
    let ran = run_answering(server, args, None).await;
    ran.result.map(|()| (ran.out, ran.err))
}

pub fn session(n: u32) -> Session {
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

pub fn five_sessions() -> FakeRegistry {
    FakeRegistry {
        sessions: (1..=5).map(session).collect(),
        ..FakeRegistry::default()
    }
}

/// What one `sessions end` (or any command) printed: on stdout, and on the console where it asks.
pub struct Ran {
    pub result: Result<(), CliError>,
    pub out: String,
    /// Notes for people: footers, hints.
    pub err: String,
    pub console: String,
}

/// Runs `args` with `typed` as what the person types; `None` is a stdin that is not a terminal.
pub async fn run_answering(server: &str, args: &[&str], typed: Option<&str>) -> Ran {
    let mut input = Cursor::new(typed.unwrap_or_default().as_bytes().to_vec());
    let mut shown = Vec::new();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut console = Console {
        input: &mut input,
        output: &mut shown,
        interactive: typed.is_some(),
    };
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        run_with(
            cli(server, args),
            Streams {
                out: &mut out,
                err: &mut err,
                terminal: false,
            },
            &mut console,
            std::future::pending(),
        ),
    )
    .await
    .expect("the command finishes");
    Ran {
        result,
        out: String::from_utf8(out).expect("output is UTF-8"),
        err: String::from_utf8(err).expect("notes are UTF-8"),
        console: String::from_utf8(shown).expect("console output is UTF-8"),
    }
}

/// Five live sessions through gw-eu-1, and a termination service over them whose commands move from
/// pending to acknowledged over two polls (one session turns out to have ended already).
pub fn termination_fakes() -> (FakeRegistry, FakeTerminations) {
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

/// A port nothing listens on: bound by us, then released.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

pub fn past_termination(n: u32, actor: &str, target: Target, reason: EndReason) -> Termination {
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

pub fn with_history() -> FakeTerminations {
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

/// What the fake policy service was asked, in order.
#[derive(Default)]
pub struct SeenPolicies {
    pub authorization: Vec<Option<String>>,
    /// The rpcs called, by name, in order.
    pub calls: Vec<&'static str>,
    pub create_requests: Vec<CreatePolicyRequest>,
    pub update_requests: Vec<UpdatePolicyRequest>,
    pub delete_requests: Vec<String>,
    pub effective_requests: Vec<GetEffectivePolicyRequest>,
    pub create_lock_requests: Vec<CreateLockRequest>,
    pub list_lock_requests: Vec<ListLocksRequest>,
    pub delete_lock_requests: Vec<String>,
}

/// A policy service over an in-memory list of policies, most general first. It checks rules the way the
/// real one does for one case (the idle timeout must exceed the warning), so refusals can be followed
/// through to the terminal.
#[derive(Clone, Default)]
pub struct FakePolicies {
    pub policies: Arc<Mutex<Vec<Policy>>>,
    /// Locks, oldest first; `expired` ones are listed only on request.
    pub locks: Arc<Mutex<Vec<(Lock, bool)>>>,
    /// Where a new lock's covered sessions are ended, as the real service does through termination.
    pub terminations: Option<FakeTerminations>,
    pub seen: Arc<Mutex<SeenPolicies>>,
}

impl FakePolicies {
    pub fn with(policies: Vec<Policy>) -> Self {
        FakePolicies {
            policies: Arc::new(Mutex::new(policies)),
            ..FakePolicies::default()
        }
    }

    pub fn record<T>(&self, name: &'static str, request: &Request<T>) {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut seen = self.seen.lock().expect("seen lock");
        seen.authorization.push(header);
        seen.calls.push(name);
    }

    pub fn calls(&self) -> Vec<&'static str> {
        self.seen.lock().expect("seen lock").calls.clone()
    }

    pub fn stored(&self, id: &str) -> Option<Policy> {
        self.policies
            .lock()
            .expect("policies lock")
            .iter()
            .find(|p| p.id == id)
            .cloned()
    }

    pub fn check(rules: &PolicyRules) -> Result<(), Status> {
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
pub fn specificity(policy: &Policy) -> u8 {
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
pub async fn serve_policies(fake: FakePolicies) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let address = listener.local_addr().expect("local address");
    let router = tonic::transport::Server::builder().add_service(PolicyServiceServer::new(fake));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    format!("http://{address}")
}

pub const GLOBAL_POLICY: &str = "0195a3c0-7e1f-7000-8000-0000000000a1";

pub const SRE_POLICY: &str = "0195a3c0-7e1f-7000-8000-0000000000a2";

pub const ALICE_POLICY: &str = "0195a3c0-7e1f-7000-8000-0000000000a3";

pub fn minutes(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: n * 60,
        nanos: 0,
    })
}

pub fn stored_policy(id: &str, scope: Scope, rules: PolicyRules, description: &str) -> Policy {
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
pub fn three_policies() -> FakePolicies {
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

/// The first lock id the fake policy service hands out.
pub const FIRST_LOCK: &str = "0195a3c0-7e1f-7000-8000-00000000f000";

/// Every fake on one port, as the all-in-one binary serves them.
pub async fn serve_all(registry: FakeRegistry, terminations: FakeTerminations, policies: FakePolicies) -> String {
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
pub fn lock_fakes(registry: FakeRegistry) -> (FakeRegistry, FakeTerminations, FakePolicies) {
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
