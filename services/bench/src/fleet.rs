//! A fleet of lean gateway agents: each is one `GatewayLink.Connect` stream, and the streams are
//! multiplexed over a small pool of HTTP/2 connections (thousands of agents, a few dozen sockets),
//! so what is measured is the registry, not the kernel's socket handling.
//!
//! Each agent says hello with a snapshot of the sessions it holds (the registry registers the ones
//! it does not know), then reads: on a `TerminateCommand` it timestamps the receipt, drops the
//! session and acknowledges DONE (NOT_FOUND for a session it no longer holds), as a real agent does.
//! It can also open a session through admission, for re-populating after kills. When the registry
//! drops its link, it re-opens it with a snapshot of what it holds, as a real agent does; the drops
//! are counted for the report.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Streaming;
use tonic::transport::Channel;
use vigil_proto::v1 as pb;
use vigil_proto::v1::agent_message::Message as Up;
use vigil_proto::v1::controller_message::Message as Down;
use vigil_proto::v1::gateway_link_client::GatewayLinkClient;

/// Links being opened at once. The registry does several statements per hello; more in flight
/// only queue for its connection pool (and may time out waiting for it).
const CONNECT_CONCURRENCY: usize = 64;
/// How long one hello may take to be welcomed.
const HELLO_PATIENCE: Duration = Duration::from_secs(60);
/// First pause before reconnecting a dropped link; it doubles up to the maximum.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);
/// Distinct users and resources the fake sessions spread over.
const USERS: usize = 5_000;
const RESOURCES: usize = 200;
/// Spacing of the agents' seeds for sessions they open (see `AgentTask::seed`).
const OPENS_PER_AGENT: usize = 7;

/// What to connect.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// The registry's gRPC address.
    pub url: String,
    /// Prefix of the gateway ids.
    pub prefix: String,
    pub agents: usize,
    pub sessions: usize,
    /// HTTP/2 connections the streams share.
    pub connections: usize,
    /// Whether agents send heartbeats at the interval the welcome asks for (real agents do).
    pub heartbeats: bool,
}

/// How connecting went.
#[derive(Debug, Clone)]
pub struct Connected {
    /// From the first hello sent to the last welcome received.
    pub elapsed: Duration,
    /// Hello → welcome, per agent.
    pub hello_latencies: Vec<Duration>,
}

/// The connected agents, and the bench's own record of which sessions each holds.
pub struct Fleet {
    agents: Vec<AgentHandle>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
}

struct AgentHandle {
    gateway_id: String,
    control: mpsc::UnboundedSender<Control>,
    /// The sessions this agent holds, as the bench keeps track (the agent task has its own copy).
    held: Vec<String>,
}

impl AgentHandle {
    /// Asks the agent to open a session through admission; the future is the decision (the
    /// session's id), and owns what it needs, so it can run on a task of its own.
    fn open(&self) -> impl std::future::Future<Output = anyhow::Result<String>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.control.send(Control::Open(reply));
        let gateway_id = self.gateway_id.clone();
        async move {
            sent.map_err(|_| anyhow!("agent {gateway_id} is gone"))?;
            tokio::time::timeout(HELLO_PATIENCE, answer)
                .await
                .map_err(|_| anyhow!("agent {gateway_id}: no admission decision within {HELLO_PATIENCE:?}"))?
                .map_err(|_| anyhow!("agent {gateway_id} is gone"))?
        }
    }
}

/// What the bench asks of an agent task.
enum Control {
    /// Open one session through admission; answered with its id.
    Open(oneshot::Sender<anyhow::Result<String>>),
    /// Report activity for every session held: input at this time (epoch ms), byte counters
    /// derived from it (so every report moves them forward).
    Activity(i64),
    /// Close this session as its user would (`SessionClosed`); answered with when it was sent.
    Close(String, oneshot::Sender<Instant>),
}

/// What agent tasks report back.
#[derive(Default)]
struct Shared {
    /// Kill samples in flight: session id → where to send the receipt time.
    kill_waiters: Mutex<HashMap<String, oneshot::Sender<Instant>>>,
    end_all: Mutex<EndAllWatch>,
    end_all_progress: Notify,
    /// Anything that went wrong in an agent that should not have (a decision for nothing asked).
    failures: Mutex<Vec<String>>,
    /// Links the registry dropped (and the agent re-opened), by reason.
    drops: Mutex<HashMap<String, usize>>,
    /// Set before tearing down, when closing links is expected.
    stopping: AtomicBool,
}

#[derive(Default)]
struct EndAllWatch {
    armed: bool,
    first_command: Option<Instant>,
    /// When each agent received the command for the last session it held.
    emptied: Vec<Instant>,
}

/// When the commands of an end-all arrived.
#[derive(Debug, Clone)]
pub struct EndAllReceipts {
    pub first_command: Instant,
    /// Per agent, when it held every command it was due (sorted).
    pub emptied: Vec<Instant>,
}

impl Fleet {
    /// Connects `spec.agents` agents holding `spec.sessions` sessions between them (as evenly as
    /// possible), each registered by the registry from the agent's hello.
    pub async fn connect(spec: &FleetSpec) -> anyhow::Result<(Self, Connected)> {
        if spec.agents == 0 || spec.sessions < spec.agents {
            bail!(
                "every agent must hold at least one session ({} agents, {} sessions)",
                spec.agents,
                spec.sessions
            );
        }
        let mut channels = Vec::with_capacity(spec.connections);
        for _ in 0..spec.connections.clamp(1, spec.agents) {
            let channel = vigil_runtime::server::connect_channel(&spec.url, Duration::from_secs(5)).await?;
            channels.push(channel);
        }

        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let started = Instant::now();
        let hellos = (0..spec.agents).map(|index| {
            let channel = channels[index % channels.len()].clone();
            let gateway_id = format!("{}-gw-{index:05}", spec.prefix);
            let held = new_sessions(index, share(spec.sessions, spec.agents, index));
            async move {
                let link = open_link(&channel, &gateway_id, &held, true).await?;
                Ok::<_, anyhow::Error>((index, gateway_id, channel, held, link))
            }
        });
        let links: Vec<_> = futures::stream::iter(hellos)
            .buffer_unordered(CONNECT_CONCURRENCY)
            .try_collect()
            .await?;
        let elapsed = started.elapsed();

        let mut tasks = tokio::task::JoinSet::new();
        let mut agents = Vec::with_capacity(links.len());
        let mut hello_latencies = Vec::with_capacity(links.len());
        for (index, gateway_id, channel, held, link) in links {
            hello_latencies.push(link.hello_latency);
            let (control, commands) = mpsc::unbounded_channel();
            let heartbeat = spec
                .heartbeats
                .then(|| Duration::from_millis(u64::from(link.heartbeat_interval_ms.max(1))));
            agents.push(AgentHandle {
                gateway_id: gateway_id.clone(),
                control,
                held: held.keys().cloned().collect(),
            });
            let task = AgentTask {
                gateway_id,
                channel,
                held,
                outbound: link.outbound,
                opening: HashMap::new(),
                next_request: 0,
                seed: index * OPENS_PER_AGENT,
                shared: shared.clone(),
            };
            tasks.spawn(task.run(link.inbound, commands, heartbeat, stop.clone()));
        }
        // In gateway order (hellos completed in any order), so kill samples spread predictably.
        agents.sort_by(|a, b| a.gateway_id.cmp(&b.gateway_id));
        let fleet = Self {
            agents,
            shared,
            stop,
            tasks,
        };
        Ok((
            fleet,
            Connected {
                elapsed,
                hello_latencies,
            },
        ))
    }

    /// Connected agents.
    pub fn agents(&self) -> usize {
        self.agents.len()
    }

    /// Sessions the agents hold, per the bench's record.
    pub fn sessions(&self) -> usize {
        self.agents.iter().map(|agent| agent.held.len()).sum()
    }

    /// A session to kill for sample `sample`: spread over the agents by a multiplicative hash,
    /// skipping agents that hold nothing. Returns the agent's index and the session.
    pub fn pick_session(&self, sample: usize) -> Option<(usize, String)> {
        let count = self.agents.len();
        let start = (sample as u64).wrapping_mul(2_654_435_761) % count as u64;
        (0..count)
            .map(|offset| (start as usize + offset) % count)
            .find_map(|index| self.agents[index].held.last().map(|session| (index, session.clone())))
    }

    /// Registers interest in the receipt of a command for `session_id`; the receiver gets the
    /// instant the agent read it.
    pub fn watch_kill(&self, session_id: &str) -> oneshot::Receiver<Instant> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.shared.kill_waiters).insert(session_id.to_owned(), sender);
        receiver
    }

    /// The bench's record: agent `index` no longer holds `session_id`.
    pub fn forget(&mut self, index: usize, session_id: &str) {
        self.agents[index].held.retain(|held| held != session_id);
    }

    /// Opens one session on agent `index` through admission (`SessionOpened` → decision).
    pub async fn open_session(&mut self, index: usize) -> anyhow::Result<String> {
        let session_id = self.agents[index].open().await?;
        self.agents[index].held.push(session_id.clone());
        Ok(session_id)
    }

    /// Opens one session on each agent of `indices` through admission, at `per_second` starts a
    /// second whatever the answers' pace (an open loop: users do not wait for each other). Returns
    /// each `SessionOpened` → decision latency.
    pub async fn open_at_rate(&mut self, indices: &[usize], per_second: f64) -> anyhow::Result<Vec<Duration>> {
        let gap = Duration::from_secs_f64(1.0 / per_second.max(f64::MIN_POSITIVE));
        let started = tokio::time::Instant::now();
        let mut opening = tokio::task::JoinSet::new();
        for (sample, &index) in indices.iter().enumerate() {
            tokio::time::sleep_until(started + gap.mul_f64(sample as f64)).await;
            let opened = self.agents[index].open();
            opening.spawn(async move {
                let sent = Instant::now();
                let session_id = opened.await?;
                Ok::<_, anyhow::Error>((index, session_id, sent.elapsed()))
            });
        }
        let mut latencies = Vec::with_capacity(indices.len());
        while let Some(opened) = opening.join_next().await {
            let (index, session_id, latency) = opened??;
            self.agents[index].held.push(session_id);
            latencies.push(latency);
        }
        Ok(latencies)
    }

    /// Every agent reports activity for every session it holds, input at `at_ms`. Returns the
    /// number of session reports sent.
    pub fn report_activity(&self, at_ms: i64) -> usize {
        for agent in &self.agents {
            let _ = agent.control.send(Control::Activity(at_ms));
        }
        self.sessions()
    }

    /// Agent `index` closes the last session it holds; returns the session and when the close was
    /// sent, or `None` when the agent holds nothing.
    pub async fn close_one(&mut self, index: usize) -> anyhow::Result<Option<(String, Instant)>> {
        let agent = &mut self.agents[index];
        let Some(session_id) = agent.held.pop() else {
            return Ok(None);
        };
        let (reply, answer) = oneshot::channel();
        agent
            .control
            .send(Control::Close(session_id.clone(), reply))
            .map_err(|_| anyhow!("agent {} is gone", agent.gateway_id))?;
        let sent = answer
            .await
            .map_err(|_| anyhow!("agent {} is gone", agent.gateway_id))?;
        Ok(Some((session_id, sent)))
    }

    /// Starts watching for an end-all: from now on, each agent reports when the command for the
    /// last session it holds arrives.
    pub fn arm_end_all(&self) {
        *lock(&self.shared.end_all) = EndAllWatch {
            armed: true,
            ..EndAllWatch::default()
        };
    }

    /// Waits until every agent that holds sessions has received all its commands.
    pub async fn wait_end_all(&mut self, patience: Duration) -> anyhow::Result<EndAllReceipts> {
        let expected = self.agents.iter().filter(|agent| !agent.held.is_empty()).count();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let progress = self.shared.end_all_progress.notified();
            {
                let mut watch = lock(&self.shared.end_all);
                if watch.emptied.len() >= expected {
                    watch.armed = false;
                    let mut emptied = std::mem::take(&mut watch.emptied);
                    emptied.sort_unstable();
                    let first_command = watch
                        .first_command
                        .or(emptied.first().copied())
                        .unwrap_or_else(Instant::now);
                    for agent in &mut self.agents {
                        agent.held.clear();
                    }
                    return Ok(EndAllReceipts { first_command, emptied });
                }
            }
            self.check()?;
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                let done = lock(&self.shared.end_all).emptied.len();
                bail!("only {done} of {expected} agents received all their commands within {patience:?}");
            }
        }
    }

    /// Fails with what went wrong in the agents, if anything did.
    pub fn check(&self) -> anyhow::Result<()> {
        let failures = lock(&self.shared.failures);
        match failures.first() {
            None => Ok(()),
            Some(first) => Err(anyhow!("{} agent failure(s); the first: {first}", failures.len())),
        }
    }

    /// Links dropped by the registry so far (each re-opened by its agent), by reason, most
    /// frequent first.
    pub fn drops(&self) -> Vec<(String, usize)> {
        let mut drops: Vec<(String, usize)> = lock(&self.shared.drops)
            .iter()
            .map(|(reason, count)| (reason.clone(), *count))
            .collect();
        drops.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        drops
    }

    /// Closes every link (expected from now on) and waits for the agent tasks to end.
    pub async fn close(mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// An agent's link, just welcomed.
struct OpenLink {
    outbound: mpsc::UnboundedSender<pb::AgentMessage>,
    inbound: Streaming<pb::ControllerMessage>,
    heartbeat_interval_ms: u32,
    hello_latency: Duration,
}

/// Says hello with a snapshot of `held` and waits for the welcome. On a first connection
/// (`first`), the registry must register every session in the snapshot.
async fn open_link(
    channel: &Channel,
    gateway_id: &str,
    held: &HashMap<String, pb::SessionStart>,
    first: bool,
) -> anyhow::Result<OpenLink> {
    // Unbounded: the agent must never block on its own acknowledgements while the registry is
    // still pushing commands to it (a bounded queue at both ends can wait on each other).
    let (outbound, receiver) = mpsc::unbounded_channel();
    let hello = pb::Hello {
        gateway_id: gateway_id.to_owned(),
        agent_version: concat!("vigil-bench/", env!("CARGO_PKG_VERSION")).into(),
        sessions: held
            .iter()
            .map(|(id, start)| pb::SnapshotSession {
                session_id: id.clone(),
                start: Some(start.clone()),
                last_activity_at: None,
                bytes_in: 0,
                bytes_out: 0,
            })
            .collect(),
        ..pb::Hello::default()
    };
    let sent = Instant::now();
    outbound
        .send(pb::AgentMessage {
            trace_context: Default::default(),
            message: Some(Up::Hello(hello)),
        })
        .map_err(|_| anyhow!("queue the hello"))?;
    let opening = async {
        let mut inbound = GatewayLinkClient::new(channel.clone())
            .connect(UnboundedReceiverStream::new(receiver))
            .await?
            .into_inner();
        let first = inbound.message().await?;
        Ok::<_, tonic::Status>((inbound, first))
    };
    let (inbound, welcome) = tokio::time::timeout(HELLO_PATIENCE, opening)
        .await
        .map_err(|_| anyhow!("{gateway_id}: no welcome within {HELLO_PATIENCE:?}"))?
        .with_context(|| format!("{gateway_id}: open the link"))?;
    let hello_latency = sent.elapsed();
    let welcome = match welcome.and_then(|message| message.message) {
        Some(Down::Welcome(welcome)) => welcome,
        other => bail!("{gateway_id}: expected a welcome, got {other:?}"),
    };
    if first && welcome.registered_session_ids.len() != held.len() {
        bail!(
            "{gateway_id}: the registry registered {} of the {} sessions in the snapshot",
            welcome.registered_session_ids.len(),
            held.len()
        );
    }
    Ok(OpenLink {
        outbound,
        inbound,
        heartbeat_interval_ms: welcome.heartbeat_interval_ms,
        hello_latency,
    })
}

/// One agent's task: reads its link, carries out commands, opens sessions when asked.
struct AgentTask {
    gateway_id: String,
    /// The connection its link runs on (and is re-opened on).
    channel: Channel,
    /// The sessions it holds, with their starts (for the snapshot of a re-opened link).
    held: HashMap<String, pb::SessionStart>,
    outbound: mpsc::UnboundedSender<pb::AgentMessage>,
    /// Admission requests awaiting their decision, by request id, with the start asked for.
    opening: HashMap<String, (oneshot::Sender<anyhow::Result<String>>, pb::SessionStart)>,
    next_request: u64,
    /// Where this agent's opened sessions start in the users/resources/addresses spread, so that
    /// opens on different agents are of different users.
    seed: usize,
    shared: Arc<Shared>,
}

impl AgentTask {
    async fn run(
        mut self,
        mut inbound: Streaming<pb::ControllerMessage>,
        mut control: mpsc::UnboundedReceiver<Control>,
        heartbeat: Option<Duration>,
        stop: CancellationToken,
    ) {
        // Without heartbeats the branch is disabled and the ticker never polled.
        let mut ticker = tokio::time::interval(heartbeat.unwrap_or(Duration::from_secs(3600)));
        ticker.reset();
        loop {
            let broken = tokio::select! {
                () = stop.cancelled() => return,
                message = inbound.message() => match message {
                    Ok(Some(pb::ControllerMessage { message: Some(Down::Reconnect(reconnect)), .. })) => {
                        Some(format!("asked to reconnect: {}", reconnect.reason))
                    }
                    Ok(Some(message)) => {
                        if let Some(message) = message.message {
                            self.handle(message);
                        }
                        None
                    }
                    Ok(None) => Some("the registry ended the link".to_owned()),
                    Err(status) => Some(format!("the link failed: {}: {}", status.code(), status.message())),
                },
                request = control.recv() => match request {
                    Some(Control::Open(reply)) => {
                        self.open(reply);
                        None
                    }
                    Some(Control::Activity(at_ms)) => {
                        self.report_activity(at_ms);
                        None
                    }
                    Some(Control::Close(session_id, reply)) => {
                        self.close(&session_id, reply);
                        None
                    }
                    None => return,
                },
                _ = ticker.tick(), if heartbeat.is_some() => {
                    self.heartbeat();
                    None
                }
            };
            if let Some(reason) = broken {
                match self.reconnect(&reason, &stop).await {
                    Some(reopened) => inbound = reopened,
                    None => return,
                }
            }
        }
    }

    /// Re-opens a dropped link with a snapshot of what the agent holds, as a real agent does,
    /// backing off between attempts. `None` when the fleet is closing.
    async fn reconnect(&mut self, reason: &str, stop: &CancellationToken) -> Option<Streaming<pb::ControllerMessage>> {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return None;
        }
        *lock(&self.shared.drops).entry(reason.to_owned()).or_default() += 1;
        // Admissions in flight on the old link are lost with it.
        for (_, (reply, _)) in self.opening.drain() {
            let _ = reply.send(Err(anyhow!(
                "{}: the link dropped before the decision: {reason}",
                self.gateway_id
            )));
        }
        let mut delay = RECONNECT_DELAY;
        loop {
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            match open_link(&self.channel, &self.gateway_id, &self.held, false).await {
                Ok(link) => {
                    self.outbound = link.outbound;
                    return Some(link.inbound);
                }
                Err(error) => {
                    let reason = format!("re-opening failed: {error:#}").replace(&self.gateway_id, "<gateway>");
                    *lock(&self.shared.drops).entry(reason).or_default() += 1;
                    delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                }
            }
        }
    }

    fn heartbeat(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
        self.send(Up::Heartbeat(pb::Heartbeat {
            sent_at: Some(vigil_proto::timestamp_from_millis(now)),
        }));
    }

    fn handle(&mut self, message: Down) {
        match message {
            Down::Terminate(command) => {
                let at = Instant::now();
                let held = self.held.remove(&command.session_id).is_some();
                if held {
                    self.shared.received(&command.session_id, at, self.held.is_empty());
                }
                let outcome = if held {
                    pb::CommandOutcome::Done
                } else {
                    pb::CommandOutcome::NotFound
                };
                self.send(Up::CommandAck(pb::CommandAck {
                    command_id: command.command_id,
                    session_id: command.session_id,
                    outcome: outcome as i32,
                    detail: String::new(),
                }));
            }
            Down::Admission(decision) => {
                let Some((reply, start)) = self.opening.remove(&decision.request_id) else {
                    return self.fail(&format!("a decision for unknown request {}", decision.request_id));
                };
                let answer = if decision.allowed {
                    self.held.insert(decision.session_id.clone(), start);
                    Ok(decision.session_id)
                } else {
                    Err(anyhow!("{}: admission refused: {}", self.gateway_id, decision.reason))
                };
                let _ = reply.send(answer);
            }
            // Idle warnings, lock updates and a repeated welcome need nothing from a fake gateway;
            // a reconnect request is handled by the caller.
            Down::Welcome(_) | Down::IdleWarning(_) | Down::LockUpdate(_) | Down::Reconnect(_) => {}
        }
    }

    fn open(&mut self, reply: oneshot::Sender<anyhow::Result<String>>) {
        self.next_request += 1;
        let request_id = format!("open-{}", self.next_request);
        let start = session_start(self.seed + self.next_request as usize);
        self.opening.insert(request_id.clone(), (reply, start.clone()));
        self.send(Up::SessionOpened(pb::SessionOpened {
            request_id,
            start: Some(start),
        }));
    }

    fn report_activity(&mut self, at_ms: i64) {
        let counter = u64::try_from(at_ms).unwrap_or_default();
        let sessions = self
            .held
            .keys()
            .map(|session_id| pb::SessionActivity {
                session_id: session_id.clone(),
                last_input_at: Some(vigil_proto::timestamp_from_millis(at_ms)),
                bytes_in: counter,
                bytes_out: counter * 4,
            })
            .collect();
        self.send(Up::Activity(pb::ActivityBatch { sessions }));
    }

    fn close(&mut self, session_id: &str, reply: oneshot::Sender<Instant>) {
        self.held.remove(session_id);
        let sent = Instant::now();
        self.send(Up::SessionClosed(pb::SessionClosed {
            session_id: session_id.to_owned(),
            reason: pb::EndReason::UserClosed as i32,
            detail: "vigil-bench: watch fan-out".into(),
            ended_at: None,
        }));
        let _ = reply.send(sent);
    }

    fn send(&mut self, message: Up) {
        // A closed outbound means the link is gone: reading it says so, and the agent reconnects.
        let _ = self.outbound.send(pb::AgentMessage {
            trace_context: Default::default(),
            message: Some(message),
        });
    }

    fn fail(&self, what: &str) {
        if !self.shared.stopping.load(Ordering::SeqCst) {
            lock(&self.shared.failures).push(format!("{}: {what}", self.gateway_id));
            // Wake an end-all waiter so it notices at once.
            self.shared.end_all_progress.notify_waiters();
        }
    }
}

impl Shared {
    /// An agent received the command for a session it held.
    fn received(&self, session_id: &str, at: Instant, now_empty: bool) {
        if let Some(waiter) = lock(&self.kill_waiters).remove(session_id) {
            let _ = waiter.send(at);
        }
        let mut watch = lock(&self.end_all);
        if watch.armed {
            watch.first_command.get_or_insert(at);
            if now_empty {
                watch.emptied.push(at);
                self.end_all_progress.notify_waiters();
            }
        }
    }
}

/// Sessions agent `index` of `agents` holds out of `total`: the remainder goes to the first agents.
fn share(total: usize, agents: usize, index: usize) -> usize {
    total / agents + usize::from(index < total % agents)
}

/// `count` new sessions (fresh ids) for agent `agent`.
fn new_sessions(agent: usize, count: usize) -> HashMap<String, pb::SessionStart> {
    (0..count)
        .map(|offset| (uuid::Uuid::now_v7().to_string(), session_start(agent * 7 + offset)))
        .collect()
}

/// A plausible session start, varied by `seed`.
fn session_start(seed: usize) -> pb::SessionStart {
    pb::SessionStart {
        user: format!("user{:04}@bench.example", seed % USERS),
        resource_name: format!("srv-{:03}.bench.internal", seed % RESOURCES),
        resource_type: if seed.is_multiple_of(3) {
            pb::ResourceType::Rdp
        } else {
            pb::ResourceType::Ssh
        } as i32,
        device: format!("laptop-{:04}", seed % USERS),
        client_ip: client_ip(seed),
        started_at: None,
        user_groups: vec!["engineering".into()],
    }
}

/// Addresses geo locates in its demo database (London, Linköping) and, one in eight, a private one
/// it does not: admission's geo step does real lookups and anomaly scoring.
fn client_ip(seed: usize) -> String {
    match seed % 8 {
        0 => format!("10.{}.{}.{}", (seed >> 16) & 0xff, (seed >> 8) & 0xff, seed & 0xff),
        1..=4 => format!("81.2.69.{}", 160 + seed % 32),
        _ => format!("89.160.20.{}", 128 + seed % 128),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_shared_out_completely_and_evenly() {
        let shares: Vec<usize> = (0..7).map(|index| share(100, 7, index)).collect();
        assert_eq!(shares.iter().sum::<usize>(), 100);
        assert!(shares.iter().all(|&count| count == 14 || count == 15), "{shares:?}");
    }

    #[test]
    fn fake_starts_pass_the_registrys_validation() {
        for seed in [0, 1, 2, 65_535, 99_999] {
            vigil_registry::validate::session_start("start", Some(&session_start(seed))).unwrap();
        }
    }
}
