//! The agent against a scripted in-process registry: each test plays the registry's side of the protocol
//! message by message, so it checks exactly what the agent sends and how it reacts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use prost_types::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};
use vigil_proto::v1::agent_message::Message as Up;
use vigil_proto::v1::controller_message::Message as Down;
use vigil_proto::v1::gateway_link_server::{GatewayLink, GatewayLinkServer};
use vigil_proto::v1::{
    AdmissionDecision, AgentMessage, CommandOutcome, ControllerMessage, EndReason, Heartbeat, Hello, IdleWarning, Lock,
    LockTarget, LockUpdate, Reconnect, ResourceType, SessionStart, TerminateCommand, Welcome, lock_target,
};

use vigil_testkit::{PATIENCE, eventually};

use crate::{Admission, Agent, AgentConfig, AgentError, CommandResult, FailMode, GatewayHandler, LinkState};

/// The registry side of one link, handed to the test.
struct FakeLink {
    inbound: Streaming<AgentMessage>,
    outbound: mpsc::Sender<Result<ControllerMessage, Status>>,
}

impl FakeLink {
    /// The agent's next message.
    async fn recv(&mut self) -> Up {
        let message = tokio::time::timeout(PATIENCE, self.inbound.next())
            .await
            .expect("the agent said nothing");
        message
            .expect("the agent ended the stream")
            .expect("the stream failed")
            .message
            .expect("empty message")
    }

    /// The agent's next message that is not a heartbeat.
    async fn recv_skipping_heartbeats(&mut self) -> Up {
        loop {
            match self.recv().await {
                Up::Heartbeat(_) => continue,
                message => return message,
            }
        }
    }

    async fn send(&self, message: Down) {
        self.outbound
            .send(Ok(ControllerMessage {
                trace_context: Default::default(),
                message: Some(message),
            }))
            .await
            .expect("the link is gone");
    }

    async fn hello(&mut self) -> Hello {
        match self.recv().await {
            Up::Hello(hello) => hello,
            other => panic!("expected a hello, got {other:?}"),
        }
    }

    async fn welcome(&self, replica: &str) {
        self.welcome_with(Welcome {
            replica: replica.into(),
            activity_interval_ms: 50,
            heartbeat_interval_ms: 60_000,
            ..Default::default()
        })
        .await;
    }

    async fn welcome_with(&self, welcome: Welcome) {
        self.send(Down::Welcome(welcome)).await;
    }

    /// Answers the next admission request.
    async fn decide(&mut self, allowed: bool, session_id: &str) -> SessionStart {
        let Up::SessionOpened(opened) = self.recv_skipping_heartbeats().await else {
            panic!("expected a SessionOpened");
        };
        self.send(Down::Admission(AdmissionDecision {
            request_id: opened.request_id,
            allowed,
            session_id: if allowed { session_id.into() } else { String::new() },
            reason: if allowed { String::new() } else { "locked".into() },
            evicted_session_ids: vec!["old-1".into()],
            ..Default::default()
        }))
        .await;
        opened.start.expect("a start")
    }
}

struct FakeRegistry {
    links: mpsc::UnboundedSender<FakeLink>,
}

#[async_trait]
impl GatewayLink for FakeRegistry {
    type ConnectStream = ReceiverStream<Result<ControllerMessage, Status>>;

    async fn connect(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let (outbound, rx) = mpsc::channel(64);
        let _ = self.links.send(FakeLink {
            inbound: request.into_inner(),
            outbound,
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A registry on a random port; every agent connection shows up on the receiver.
async fn fake_registry() -> (String, mpsc::UnboundedReceiver<FakeLink>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (links, received) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GatewayLinkServer::new(FakeRegistry { links }))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (url, received)
}

async fn next_link(links: &mut mpsc::UnboundedReceiver<FakeLink>) -> FakeLink {
    tokio::time::timeout(PATIENCE, links.recv())
        .await
        .expect("the agent did not connect")
        .expect("registry gone")
}

/// Records what the agent asked of the gateway.
#[derive(Default)]
struct Recorder {
    terminated: Mutex<Vec<String>>,
    warnings: Mutex<Vec<String>>,
    locks: Mutex<Vec<usize>>,
    calls: AtomicUsize,
}

#[async_trait]
impl GatewayHandler for Recorder {
    async fn terminate(&self, command: &TerminateCommand) -> CommandResult {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.terminated.lock().unwrap().push(command.user_message.clone());
        CommandResult::Done
    }

    async fn idle_warning(&self, warning: &IdleWarning) {
        self.warnings.lock().unwrap().push(warning.session_id.clone());
    }

    async fn locks_changed(&self, locks: &[Lock]) {
        self.locks.lock().unwrap().push(locks.len());
    }
}

fn config(url: &str) -> AgentConfig {
    AgentConfig {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(400),
        ..AgentConfig::new(url, "gw-fra-01").with_credential("s3cret")
    }
}

fn start(user: &str) -> SessionStart {
    SessionStart {
        user: user.into(),
        resource_name: "prod-db-01".into(),
        resource_type: ResourceType::Ssh as i32,
        device: "alice-macbook".into(),
        client_ip: "81.2.69.160".into(),
        started_at: None,
        user_groups: vec![],
    }
}

/// A connected agent holding the given sessions (admitted through the protocol).
async fn connected_with(
    url: &str,
    links: &mut mpsc::UnboundedReceiver<FakeLink>,
    handler: Arc<Recorder>,
    session_ids: &[&str],
) -> (Agent, FakeLink) {
    let agent = Agent::start(config(url), handler);
    let mut link = next_link(links).await;
    link.hello().await;
    link.welcome("replica-a").await;
    agent.wait_connected(PATIENCE).await.unwrap();
    for session_id in session_ids {
        let opening = tokio::spawn({
            let agent = agent.clone();
            async move { agent.open_session(start("alice@acme.example")).await }
        });
        link.decide(true, session_id).await;
        assert!(opening.await.unwrap().unwrap().allowed);
    }
    (agent, link)
}

/// Shuts the agent down the way a registry sees it: once the agent's half of the stream ends, the registry
/// ends its own (otherwise the agent waits its grace period for it).
async fn hang_up(agent: Agent, mut link: FakeLink) {
    let closing = tokio::spawn(async move { agent.shutdown().await });
    while let Some(Ok(_)) = tokio::time::timeout(PATIENCE, link.inbound.next())
        .await
        .expect("the agent did not hang up")
    {}
    drop(link);
    closing.await.unwrap();
}

#[tokio::test]
async fn the_hello_introduces_the_gateway_and_the_welcome_connects_it() {
    let (url, mut links) = fake_registry().await;
    let agent = Agent::start(config(&url), Arc::new(Recorder::default()));
    let mut link = next_link(&mut links).await;
    let hello = link.hello().await;
    assert_eq!(hello.gateway_id, "gw-fra-01");
    assert_eq!(hello.credential, "s3cret");
    assert_eq!(hello.agent_version, env!("CARGO_PKG_VERSION"));
    assert!(hello.sessions.is_empty());

    // Said hello, not welcomed yet: admissions are refused at once.
    assert_eq!(*agent.state().borrow(), LinkState::Connecting);
    assert!(matches!(
        agent.open_session(start("a@b")).await,
        Err(AgentError::Unavailable)
    ));

    link.welcome("replica-a").await;
    agent.wait_connected(PATIENCE).await.unwrap();
    assert_eq!(
        *agent.state().borrow(),
        LinkState::Connected {
            replica: "replica-a".into()
        }
    );
    hang_up(agent, link).await;
}

#[tokio::test]
async fn admissions_round_trip_and_allowed_sessions_are_held() {
    let (url, mut links) = fake_registry().await;
    let (agent, mut link) = connected_with(&url, &mut links, Arc::new(Recorder::default()), &[]).await;

    let opening = tokio::spawn({
        let agent = agent.clone();
        async move { agent.open_session(start("alice@acme.example")).await }
    });
    let sent = link.decide(true, "s-1").await;
    assert_eq!(sent.user, "alice@acme.example");
    let admission: Admission = opening.await.unwrap().unwrap();
    assert!(admission.allowed);
    assert_eq!(admission.session_id, "s-1");
    assert_eq!(admission.evicted_session_ids, ["old-1"]);
    let held = agent.sessions();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].session_id, "s-1");
    assert_eq!(held[0].start.user, "alice@acme.example");

    let opening = tokio::spawn({
        let agent = agent.clone();
        async move { agent.open_session(start("mallory@acme.example")).await }
    });
    link.decide(false, "").await;
    let refused = opening.await.unwrap().unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.reason, "locked");
    assert_eq!(agent.session_count(), 1);

    // Malformed starts never reach the registry.
    let bad = SessionStart {
        client_ip: "not-an-ip".into(),
        ..start("a@b")
    };
    assert!(matches!(
        agent.open_session(bad).await,
        Err(AgentError::InvalidInput(_))
    ));
    hang_up(agent, link).await;
}

#[tokio::test]
async fn a_late_admission_times_out_and_the_session_is_closed_when_allowed_after_all() {
    let (url, mut links) = fake_registry().await;
    let agent = Agent::start(
        AgentConfig {
            admission_timeout: Duration::from_millis(100),
            ..config(&url)
        },
        Arc::new(Recorder::default()),
    );
    let mut link = next_link(&mut links).await;
    link.hello().await;
    link.welcome("replica-a").await;
    agent.wait_connected(PATIENCE).await.unwrap();

    let result = agent.open_session(start("alice@acme.example")).await;
    assert!(matches!(result, Err(AgentError::Timeout)), "{result:?}");
    // The registry answers after all: the gateway never let the user in, so the agent closes it.
    link.decide(true, "s-late").await;
    match link.recv_skipping_heartbeats().await {
        Up::SessionClosed(closed) => {
            assert_eq!(closed.session_id, "s-late");
            assert_eq!(closed.reason, EndReason::GatewayClosed as i32);
        }
        other => panic!("expected a SessionClosed, got {other:?}"),
    }
    assert_eq!(agent.session_count(), 0);
    hang_up(agent, link).await;
}

#[tokio::test]
async fn activity_is_batched_per_interval_and_heartbeats_fill_silence() {
    let (url, mut links) = fake_registry().await;
    let agent = Agent::start(config(&url), Arc::new(Recorder::default()));
    let mut link = next_link(&mut links).await;
    link.hello().await;
    link.welcome_with(Welcome {
        replica: "replica-a".into(),
        activity_interval_ms: 100,
        heartbeat_interval_ms: 150,
        ..Default::default()
    })
    .await;
    agent.wait_connected(PATIENCE).await.unwrap();
    let opening = tokio::spawn({
        let agent = agent.clone();
        async move { agent.open_session(start("alice@acme.example")).await }
    });
    link.decide(true, "s-1").await;
    opening.await.unwrap().unwrap();

    let typed_at = SystemTime::now();
    agent.record_activity("s-1", Some(typed_at - Duration::from_secs(2)), 10, 100);
    agent.record_activity("s-1", Some(typed_at), 20, 200);
    agent.record_activity("s-1", None, 30, 300);
    let batch = match link.recv_skipping_heartbeats().await {
        Up::Activity(batch) => batch,
        other => panic!("expected an activity batch, got {other:?}"),
    };
    assert_eq!(batch.sessions.len(), 1);
    let activity = &batch.sessions[0];
    assert_eq!(
        (activity.session_id.as_str(), activity.bytes_in, activity.bytes_out),
        ("s-1", 30, 300)
    );
    assert_eq!(activity.last_input_at, Some(Timestamp::from(typed_at)));

    // Nothing more to report: the link carries heartbeats only.
    for _ in 0..2 {
        assert!(matches!(
            link.recv().await,
            Up::Heartbeat(Heartbeat { sent_at: Some(_) })
        ));
    }
    hang_up(agent, link).await;
}

#[tokio::test]
async fn a_terminate_command_runs_once_and_is_acknowledged_every_time() {
    let (url, mut links) = fake_registry().await;
    let recorder = Arc::new(Recorder::default());
    let (agent, mut link) = connected_with(&url, &mut links, Arc::clone(&recorder), &["s-1"]).await;

    let command = TerminateCommand {
        command_id: "c-1".into(),
        termination_id: "t-1".into(),
        session_id: "s-1".into(),
        reason: EndReason::Admin as i32,
        user_message: "You have been disconnected by an administrator".into(),
        issued_at: None,
    };
    for _ in 0..2 {
        link.send(Down::Terminate(command.clone())).await;
        match link.recv_skipping_heartbeats().await {
            Up::CommandAck(ack) => {
                assert_eq!((ack.command_id.as_str(), ack.session_id.as_str()), ("c-1", "s-1"));
                assert_eq!(ack.outcome, CommandOutcome::Done as i32);
            }
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    assert_eq!(recorder.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        *recorder.terminated.lock().unwrap(),
        ["You have been disconnected by an administrator"]
    );
    assert_eq!(agent.session_count(), 0);

    // A session the gateway does not hold: NOT_FOUND, and the gateway is not bothered.
    let other = TerminateCommand {
        command_id: "c-2".into(),
        session_id: "s-gone".into(),
        ..command
    };
    link.send(Down::Terminate(other)).await;
    assert!(matches!(link.recv_skipping_heartbeats().await,
        Up::CommandAck(ack) if ack.outcome == CommandOutcome::NotFound as i32 && ack.command_id == "c-2"));
    assert_eq!(recorder.calls.load(Ordering::SeqCst), 1);
    hang_up(agent, link).await;
}

#[tokio::test]
async fn locks_and_idle_warnings_reach_the_gateway() {
    let (url, mut links) = fake_registry().await;
    let recorder = Arc::new(Recorder::default());
    let (agent, link) = connected_with(&url, &mut links, Arc::clone(&recorder), &["s-1"]).await;

    let lock = Lock {
        id: "l-1".into(),
        message: "Account under review".into(),
        ..Default::default()
    };
    link.send(Down::LockUpdate(LockUpdate {
        locks: vec![lock.clone()],
        version: 1,
    }))
    .await;
    link.send(Down::IdleWarning(IdleWarning {
        session_id: "s-unknown".into(),
        ..Default::default()
    }))
    .await;
    link.send(Down::IdleWarning(IdleWarning {
        session_id: "s-1".into(),
        ..Default::default()
    }))
    .await;
    eventually("the idle warning", || async {
        (!recorder.warnings.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    // Handler calls are in the registry's order, and only for held sessions.
    assert_eq!(*recorder.locks.lock().unwrap(), [1]);
    assert_eq!(*recorder.warnings.lock().unwrap(), ["s-1"]);
    assert_eq!(agent.locks(), [lock]);
    hang_up(agent, link).await;
}

#[tokio::test]
async fn a_dropped_link_fails_waiters_and_the_next_hello_carries_the_held_sessions() {
    let (url, mut links) = fake_registry().await;
    let (agent, mut link) = connected_with(&url, &mut links, Arc::new(Recorder::default()), &["s-1", "s-2"]).await;
    agent.record_activity("s-1", Some(SystemTime::now()), 111, 222);
    assert!(agent.forget_session("s-2"));

    let waiting = tokio::spawn({
        let agent = agent.clone();
        async move { agent.open_session(start("bob@acme.example")).await }
    });
    // Cut the link once the request is out (an activity batch may come first).
    while !matches!(link.recv().await, Up::SessionOpened(_)) {}
    drop(link);
    let result = tokio::time::timeout(PATIENCE, waiting).await.unwrap().unwrap();
    assert!(matches!(result, Err(AgentError::Unavailable)), "{result:?}");

    let mut link = next_link(&mut links).await;
    let hello = link.hello().await;
    let ids: Vec<&str> = hello.sessions.iter().map(|s| s.session_id.as_str()).collect();
    assert_eq!(ids, ["s-1"]);
    assert_eq!((hello.sessions[0].bytes_in, hello.sessions[0].bytes_out), (111, 222));
    assert_eq!(
        hello.sessions[0].start.as_ref().map(|s| s.user.as_str()),
        Some("alice@acme.example")
    );
    link.welcome("replica-b").await;
    eventually("reconnected", || async { (agent.is_connected()).then_some(()) }).await;
    hang_up(agent, link).await;
}

#[tokio::test]
async fn a_close_while_offline_stays_in_the_snapshot_and_follows_the_welcome() {
    let (url, mut links) = fake_registry().await;
    let (agent, link) = connected_with(&url, &mut links, Arc::new(Recorder::default()), &["s-1", "s-2"]).await;
    drop(link);
    eventually("the link is down", || async { (!agent.is_connected()).then_some(()) }).await;
    agent.close_session("s-1", EndReason::UserClosed, "logout").await;
    assert_eq!(agent.session_count(), 1);

    let mut link = next_link(&mut links).await;
    let mut ids: Vec<String> = link.hello().await.sessions.into_iter().map(|s| s.session_id).collect();
    ids.sort();
    assert_eq!(ids, ["s-1", "s-2"]);
    link.welcome("replica-b").await;
    match link.recv_skipping_heartbeats().await {
        Up::SessionClosed(closed) => {
            assert_eq!(closed.session_id, "s-1");
            assert_eq!(closed.reason, EndReason::UserClosed as i32);
            assert_eq!(closed.detail, "logout");
            assert!(closed.ended_at.is_some());
        }
        other => panic!("expected the queued SessionClosed, got {other:?}"),
    }
    hang_up(agent, link).await;
}

#[tokio::test]
async fn a_refused_hello_is_reported_and_retried_slowly() {
    let (url, mut links) = fake_registry().await;
    let agent = Agent::start(config(&url), Arc::new(Recorder::default()));
    let mut link = next_link(&mut links).await;
    link.hello().await;
    let refused_at = Instant::now();
    link.outbound
        .send(Err(Status::unauthenticated("unknown gateway credential")))
        .await
        .unwrap();

    match agent.wait_connected(PATIENCE).await {
        Err(AgentError::Rejected(status)) => assert_eq!(status.code(), tonic::Code::Unauthenticated),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(
        matches!(&*agent.state().borrow(), LinkState::Disconnected { error } if error.contains("unknown gateway credential"))
    );
    // The retry waits the (jittered) maximum backoff, not the 10 ms initial one.
    let mut link = next_link(&mut links).await;
    assert!(
        refused_at.elapsed() >= Duration::from_millis(200),
        "retried after {:?}",
        refused_at.elapsed()
    );
    link.hello().await;
    link.welcome("replica-a").await;
    agent.wait_connected(PATIENCE).await.unwrap();
    hang_up(agent, link).await;
}

#[tokio::test]
async fn a_reconnect_request_is_followed_at_once() {
    let (url, mut links) = fake_registry().await;
    // A long backoff: if the agent used it, the new link would take seconds.
    let agent = Agent::start(
        AgentConfig {
            initial_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(60),
            ..config(&url)
        },
        Arc::new(Recorder::default()),
    );
    let mut link = next_link(&mut links).await;
    link.hello().await;
    link.welcome("replica-a").await;
    agent.wait_connected(PATIENCE).await.unwrap();

    link.send(Down::Reconnect(Reconnect {
        reason: "replica shutting down".into(),
    }))
    .await;
    let mut next = tokio::time::timeout(Duration::from_secs(3), links.recv())
        .await
        .unwrap()
        .unwrap();
    next.hello().await;
    next.welcome("replica-b").await;
    eventually("connected to replica-b", || async {
        let done = *agent.state().borrow()
            == LinkState::Connected {
                replica: "replica-b".into(),
            };
        done.then_some(())
    })
    .await;
    hang_up(agent, next).await;
}

#[tokio::test]
async fn reconnect_requests_in_quick_succession_back_off() {
    let (url, mut links) = fake_registry().await;
    let agent = Agent::start(
        AgentConfig {
            initial_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(60),
            ..config(&url)
        },
        Arc::new(Recorder::default()),
    );
    let mut link = next_link(&mut links).await;
    for replica in ["replica-a", "replica-b"] {
        link.hello().await;
        link.welcome(replica).await;
        eventually("connected", || async { (agent.is_connected()).then_some(()) }).await;
        link.send(Down::Reconnect(Reconnect {
            reason: "a newer link for this gateway was opened".into(),
        }))
        .await;
        if replica == "replica-a" {
            // The first request is followed at once.
            link = tokio::time::timeout(Duration::from_secs(3), links.recv())
                .await
                .unwrap()
                .unwrap();
        }
    }
    // The second, moments later, goes through the backoff (at least 15 s here): no new link for now.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), links.recv())
            .await
            .is_err()
    );
    eventually("disconnected", || async {
        let done = matches!(&*agent.state().borrow(), LinkState::Disconnected { .. });
        done.then_some(())
    })
    .await;
    agent.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_the_stream_cleanly() {
    let (url, mut links) = fake_registry().await;
    let (agent, mut link) = connected_with(&url, &mut links, Arc::new(Recorder::default()), &["s-1"]).await;
    let closing = tokio::spawn({
        let agent = agent.clone();
        async move { agent.shutdown().await }
    });
    // The registry sees the request stream end (not an error), then ends its side.
    let end = tokio::time::timeout(PATIENCE, async {
        loop {
            match link.inbound.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .unwrap();
    assert!(end.is_none(), "expected a clean end, got {end:?}");
    drop(link);
    closing.await.unwrap();
    assert!(matches!(&*agent.state().borrow(), LinkState::Disconnected { .. }));
    assert!(matches!(
        agent.open_session(start("a@b")).await,
        Err(AgentError::Unavailable)
    ));
    assert!(matches!(
        agent.wait_connected(Duration::from_millis(50)).await,
        Err(AgentError::Unavailable)
    ));
}

fn user_lock(id: &str, user: &str, version_message: &str) -> Lock {
    Lock {
        id: id.into(),
        target: Some(LockTarget {
            target: Some(lock_target::Target::User(user.into())),
        }),
        message: version_message.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_locked_user_is_refused_by_the_agent_with_or_without_the_registry() {
    let (url, mut links) = fake_registry().await;
    let recorder = Arc::new(Recorder::default());
    let (agent, mut link) = connected_with(&url, &mut links, Arc::clone(&recorder), &[]).await;
    let network = Lock {
        id: "l-net".into(),
        target: Some(LockTarget {
            target: Some(lock_target::Target::Cidr("198.51.100.0/24".into())),
        }),
        message: "Connections from this network are blocked".into(),
        ..Default::default()
    };
    link.send(Down::LockUpdate(LockUpdate {
        locks: vec![
            user_lock("l-1", "mallory@acme.example", "Account under review"),
            network,
        ],
        version: 7,
    }))
    .await;
    eventually("the locks", || async { (agent.locks().len() == 2).then_some(()) }).await;

    // Linked: the refusal is local, the registry never hears of it.
    let refused = agent.open_session(start("mallory@acme.example")).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.reason, "Account under review");
    assert_eq!(refused.lock.as_ref().map(|lock| lock.id.as_str()), Some("l-1"));
    let opening = tokio::spawn({
        let agent = agent.clone();
        async move { agent.open_session(start("alice@acme.example")).await }
    });
    assert_eq!(link.decide(true, "s-1").await.user, "alice@acme.example");
    assert!(opening.await.unwrap().unwrap().allowed);

    // The registry goes away (the agent reconnects, and is never welcomed).
    drop(link);
    let _unanswered = next_link(&mut links).await;
    eventually("the link is down", || async { (!agent.is_connected()).then_some(()) }).await;
    let refused = agent.open_session(start("mallory@acme.example")).await.unwrap();
    assert_eq!(
        (refused.allowed, refused.reason.as_str()),
        (false, "Account under review")
    );
    let from_network = SessionStart {
        client_ip: "198.51.100.23".into(),
        ..start("bob@acme.example")
    };
    let refused = agent.open_session(from_network).await.unwrap();
    assert_eq!(refused.reason, "Connections from this network are blocked");
    // Anyone else needs the registry, as always.
    assert!(matches!(
        agent.open_session(start("bob@acme.example")).await,
        Err(AgentError::Unavailable)
    ));
    // The lock set was announced to the gateway once.
    assert_eq!(*recorder.locks.lock().unwrap(), [2]);
    agent.shutdown().await;
}

#[tokio::test]
async fn an_older_lock_update_does_not_undo_a_newer_one() {
    let (url, mut links) = fake_registry().await;
    let recorder = Arc::new(Recorder::default());
    let (agent, link) = connected_with(&url, &mut links, Arc::clone(&recorder), &[]).await;
    let newer = user_lock("l-new", "mallory@acme.example", "newer");
    link.send(Down::LockUpdate(LockUpdate {
        locks: vec![newer.clone()],
        version: 9,
    }))
    .await;
    // Late, older, and then the newer set again (as after a reconnection): neither changes anything.
    link.send(Down::LockUpdate(LockUpdate {
        locks: vec![],
        version: 8,
    }))
    .await;
    link.send(Down::LockUpdate(LockUpdate {
        locks: vec![newer.clone()],
        version: 9,
    }))
    .await;
    // Then a newer, empty set: handled in order, so once it is announced the two before it were seen.
    link.send(Down::LockUpdate(LockUpdate {
        locks: vec![],
        version: 10,
    }))
    .await;
    eventually("the removal", || async {
        (recorder.locks.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    assert_eq!(*recorder.locks.lock().unwrap(), [1, 0]);
    assert!(agent.locks().is_empty());
    hang_up(agent, link).await;
}

/// Records terminations with their reasons.
#[derive(Default)]
struct Ender {
    ended: Mutex<Vec<TerminateCommand>>,
}

#[async_trait]
impl GatewayHandler for Ender {
    async fn terminate(&self, command: &TerminateCommand) -> CommandResult {
        self.ended.lock().unwrap().push(command.clone());
        CommandResult::Done
    }
}

/// An agent in `mode` holding `session_ids`, linked to the fake registry.
async fn holding(
    url: &str,
    links: &mut mpsc::UnboundedReceiver<FakeLink>,
    mode: FailMode,
    grace: Duration,
    session_ids: &[&str],
) -> (Agent, FakeLink, Arc<Ender>) {
    let ender = Arc::new(Ender::default());
    let agent = Agent::start(
        AgentConfig {
            fail_mode: mode,
            link_grace: grace,
            ..config(url)
        },
        Arc::clone(&ender) as Arc<dyn GatewayHandler>,
    );
    let mut link = next_link(links).await;
    link.hello().await;
    link.welcome("replica-a").await;
    agent.wait_connected(PATIENCE).await.unwrap();
    for session_id in session_ids {
        let opening = tokio::spawn({
            let agent = agent.clone();
            async move { agent.open_session(start("alice@acme.example")).await }
        });
        link.decide(true, session_id).await;
        assert!(opening.await.unwrap().unwrap().allowed);
    }
    (agent, link, ender)
}

#[tokio::test]
async fn strict_mode_ends_sessions_after_the_grace_period_and_best_effort_keeps_them() {
    let (url, mut links) = fake_registry().await;
    let grace = Duration::from_millis(200);
    let (strict, strict_link, ender) = holding(&url, &mut links, FailMode::Strict, grace, &["s-1", "s-2"]).await;
    let (lenient, lenient_link, lenient_ender) = holding(&url, &mut links, FailMode::BestEffort, grace, &["s-3"]).await;

    // Both lose the registry at the same moment; their reconnections are never welcomed.
    let lost_at = Instant::now();
    drop(strict_link);
    drop(lenient_link);
    let mut strict_retry = next_link(&mut links).await;
    let _lenient_retry = next_link(&mut links).await;

    eventually("strict mode ends both sessions", || async {
        let done = ender.ended.lock().unwrap().len() == 2 && strict.session_count() == 0;
        done.then_some(())
    })
    .await;
    assert!(lost_at.elapsed() >= grace, "ended after {:?}", lost_at.elapsed());
    for command in ender.ended.lock().unwrap().iter() {
        assert_eq!(command.reason, EndReason::GatewayLost as i32);
        assert!(
            command.user_message.contains("lost contact"),
            "{}",
            command.user_message
        );
    }
    assert!(strict.is_failed_closed());
    assert!(matches!(
        strict.open_session(start("bob@acme.example")).await,
        Err(AgentError::FailedClosed { grace: g }) if g == grace
    ));
    // Best effort, down just as long: its session runs on, and admissions wait for the registry.
    assert!(lenient_ender.ended.lock().unwrap().is_empty());
    assert_eq!(lenient.session_count(), 1);
    assert!(!lenient.is_failed_closed());
    assert!(matches!(
        lenient.open_session(start("bob@acme.example")).await,
        Err(AgentError::Unavailable)
    ));

    // The registry comes back for the strict agent: the ended sessions are in the snapshot (so they are
    // not taken for lost) and their closes, reason GATEWAY_LOST, follow the welcome.
    let mut in_snapshot: Vec<String> = strict_retry
        .hello()
        .await
        .sessions
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    in_snapshot.sort();
    assert_eq!(in_snapshot, ["s-1", "s-2"]);
    strict_retry.welcome("replica-b").await;
    let mut closed = Vec::new();
    for _ in 0..2 {
        match strict_retry.recv_skipping_heartbeats().await {
            Up::SessionClosed(close) => {
                assert_eq!(close.reason, EndReason::GatewayLost as i32);
                assert!(close.detail.contains("strict fail mode"), "{}", close.detail);
                closed.push(close.session_id);
            }
            other => panic!("expected a SessionClosed, got {other:?}"),
        }
    }
    closed.sort();
    assert_eq!(closed, ["s-1", "s-2"]);
    // Linked again: admissions work.
    eventually("linked again", || async { (strict.is_connected()).then_some(()) }).await;
    assert!(!strict.is_failed_closed());
    let opening = tokio::spawn({
        let agent = strict.clone();
        async move { agent.open_session(start("bob@acme.example")).await }
    });
    strict_retry.decide(true, "s-4").await;
    assert!(opening.await.unwrap().unwrap().allowed);
    hang_up(strict, strict_retry).await;
    lenient.shutdown().await;
}

#[tokio::test]
async fn strict_mode_leaves_sessions_alone_when_the_link_is_back_within_the_grace_period() {
    let (url, mut links) = fake_registry().await;
    let grace = Duration::from_millis(300);
    let (agent, link, ender) = holding(&url, &mut links, FailMode::Strict, grace, &["s-1"]).await;
    drop(link);
    let mut link = next_link(&mut links).await;
    link.hello().await;
    link.welcome("replica-b").await;
    eventually("linked again", || async { (agent.is_connected()).then_some(()) }).await;
    let back_at = Instant::now();
    // Past the grace period counted from the loss, with the link up: nothing ended. A heartbeat-free
    // round trip proves the agent's tasks ran meanwhile.
    while back_at.elapsed() < grace * 2 {
        let opening = tokio::spawn({
            let agent = agent.clone();
            async move { agent.open_session(start("bob@acme.example")).await }
        });
        link.decide(false, "").await;
        assert!(!opening.await.unwrap().unwrap().allowed);
    }
    assert!(ender.ended.lock().unwrap().is_empty());
    assert_eq!(agent.session_count(), 1);
    assert!(!agent.is_failed_closed());
    hang_up(agent, link).await;
}

/// A registry replica that can be killed: once `stop` fires it accepts no more connections.
async fn stoppable_fake_registry() -> (
    String,
    mpsc::UnboundedReceiver<FakeLink>,
    tokio::sync::oneshot::Sender<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (links, received) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GatewayLinkServer::new(FakeRegistry { links }))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );
    (url, received, stop)
}

#[tokio::test]
async fn a_dead_replica_is_failed_over_at_once_keeping_sessions_and_queued_closes() {
    let (url_a, mut links_a, stop_a) = stoppable_fake_registry().await;
    let (url_b, mut links_b) = fake_registry().await;
    // Backoff far longer than a second: failing over must not wait for it.
    let agent = Agent::start(
        AgentConfig {
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(10),
            ..config(&url_a).with_failover_urls([url_b.clone()])
        },
        Arc::new(Recorder::default()),
    );
    let mut link = next_link(&mut links_a).await;
    link.hello().await;
    link.welcome("replica-a").await;
    agent.wait_connected(PATIENCE).await.unwrap();
    for session_id in ["s-1", "s-2"] {
        let opening = tokio::spawn({
            let agent = agent.clone();
            async move { agent.open_session(start("alice@acme.example")).await }
        });
        link.decide(true, session_id).await;
        assert!(opening.await.unwrap().unwrap().allowed);
    }

    // Replica A dies: its listener and its link go.
    let killed = Instant::now();
    stop_a.send(()).unwrap();
    drop(link);
    eventually("the link is down", || async { (!agent.is_connected()).then_some(()) }).await;
    agent.close_session("s-1", EndReason::UserClosed, "logout").await;

    let mut link = tokio::time::timeout(Duration::from_secs(1), links_b.recv())
        .await
        .expect("no failover to replica B within a second")
        .expect("registry gone");
    let mut ids: Vec<String> = link.hello().await.sessions.into_iter().map(|s| s.session_id).collect();
    let failed_over = killed.elapsed();
    ids.sort();
    assert_eq!(ids, ["s-1", "s-2"], "the held sessions travel in the hello");
    link.welcome("replica-b").await;
    match link.recv_skipping_heartbeats().await {
        Up::SessionClosed(closed) => assert_eq!(closed.session_id, "s-1"),
        other => panic!("expected the queued SessionClosed, got {other:?}"),
    }
    assert!(
        failed_over < Duration::from_secs(1),
        "failed over after {failed_over:?}"
    );
    eprintln!("failed over to replica B after {failed_over:?}");
    hang_up(agent, link).await;
}

#[tokio::test]
async fn a_registry_host_name_is_resolved_and_reached_without_backoff() {
    // "localhost" goes through the resolver: one address is used by name, several become one target
    // each (on this machine it resolves to 127.0.0.1 only, so this checks the by-name path).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (links, mut received) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GatewayLinkServer::new(FakeRegistry { links }))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let agent = Agent::start(
        AgentConfig {
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(10),
            ..config(&format!("http://localhost:{port}"))
        },
        Arc::new(Recorder::default()),
    );
    let mut link = tokio::time::timeout(Duration::from_secs(1), received.recv())
        .await
        .expect("no link within a second")
        .expect("registry gone");
    link.hello().await;
    link.welcome("replica-a").await;
    agent.wait_connected(PATIENCE).await.unwrap();
    hang_up(agent, link).await;
}
