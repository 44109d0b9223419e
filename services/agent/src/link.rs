//! The link task: connect, say hello, pump both directions, and start over when anything breaks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use prost_types::Timestamp;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};
use tracing::Instrument;
use vigil_proto::v1::agent_message::Message;
use vigil_proto::v1::controller_message::Message as Command;
use vigil_proto::v1::gateway_link_client::GatewayLinkClient;
use vigil_proto::v1::{
    ActivityBatch, AgentMessage, ControllerMessage, Heartbeat, Hello, SessionActivity, TerminateCommand, Welcome,
};

use crate::backoff::Backoff;
use crate::shared::{LinkState, Shared};
use crate::state::{CommandStart, LinkSender};
use crate::{AgentConfig, CommandResult};

/// Messages that may wait on a link before it counts as stuck. Deep enough for an end-all burst of
/// acknowledgements; a registry that leaves this many unread has stopped reading.
const OUTBOUND_QUEUE: usize = 16_384;
/// Used when the `Welcome` leaves the activity interval at zero.
const DEFAULT_ACTIVITY_INTERVAL: Duration = Duration::from_secs(2);
/// Used when the `Welcome` leaves the heartbeat interval at zero.
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// Floor of both intervals, so a misconfigured registry cannot make the agent spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// HTTP/2 pings find a registry that vanished without closing the connection.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// A link up this long counts as healthy: the backoff starts over, and a later reconnection request is
/// followed at once.
const STABLE_LINK: Duration = Duration::from_secs(10);
/// Most sessions in one activity batch, keeping each message far below gRPC's default 4 MiB limit.
const MAX_BATCH_SESSIONS: usize = 4096;
/// Largest message accepted from the registry: a welcome may list many ended sessions.
const MAX_INBOUND_MESSAGE: usize = 64 * 1024 * 1024;
/// How long a shutting-down agent waits for the registry to end the stream after the agent ended its half.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long resolving a registry host name may take before the name is used as it is.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

/// How a link ended without error.
enum LinkEnd {
    /// The agent is shutting down.
    Shutdown,
    /// The registry asked for a new link (its replica is going away): connect again at once.
    Reconnect,
}

/// How a link failed.
enum LinkError {
    /// The registry refused the hello; retrying soon will not help.
    Refused(Status),
    /// Anything else: connection refused, stream broken, timeout, protocol violation.
    Failed(String),
}

/// Whether the pump goes on after a message.
enum Flow {
    Continue,
    Reconnect,
}

/// Runs until shutdown: one link after another, with backoff between failed attempts.
pub(crate) async fn run(shared: Arc<Shared>) {
    let config = &shared.config;
    let mut attempts = Attempts::new(config).await;
    while !shared.shutdown.is_cancelled() {
        shared.set_link_state(LinkState::Connecting);
        let mut welcomed_at = None;
        let target = attempts.target();
        let outcome = connect_and_pump(&shared, &target, &mut welcomed_at).await;
        shared.lock().link_down();
        attempts.advance(config, welcomed_at).await;
        let (error, delay) = match attempts.after(&shared, outcome) {
            Next::Stop => break,
            Next::Now => continue,
            Next::After { error, delay } => (error, delay),
        };
        attempts.report(&config.gateway_id, &error, delay);
        shared.set_link_state(LinkState::Disconnected { error });
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    shared.lock().link_down();
    shared.set_link_state(LinkState::Disconnected {
        error: "the agent was shut down".to_owned(),
    });
}

/// What the link task does after a link ended.
enum Next {
    /// The agent is shutting down.
    Stop,
    /// Open the next link at once.
    Now,
    /// Open the next link after `delay`; the link is down meanwhile because of `error`.
    After { error: String, delay: Duration },
}

/// The link task's memory across attempts: where to connect next and how long to wait.
struct Attempts {
    backoff: Backoff,
    /// The addresses to try, in turn; resolved again at the start of every round.
    targets: Vec<Target>,
    next_target: usize,
    /// Addresses that failed in a row since the last backoff: the next is tried at once until all have.
    failed_in_round: usize,
    /// Whether the previous attempt failed too; repeated failures are logged quietly.
    failing: bool,
    /// When the registry last asked for a reconnection that was followed at once.
    last_reconnect: Option<Instant>,
}

impl Attempts {
    async fn new(config: &AgentConfig) -> Self {
        Self {
            backoff: Backoff::new(config.initial_backoff, config.max_backoff),
            targets: resolve_targets(config).await,
            next_target: 0,
            failed_in_round: 0,
            failing: false,
            last_reconnect: None,
        }
    }

    fn target(&self) -> Target {
        self.targets[self.next_target % self.targets.len()].clone()
    }

    /// After a link to [`Attempts::target`] ended (welcomed at `welcomed_at`, if it was).
    async fn advance(&mut self, config: &AgentConfig, welcomed_at: Option<Instant>) {
        // Whatever happened, the next link goes to the next address: a replica that just failed (or asked
        // its agents to leave) is the last one to try again.
        self.next_target += 1;
        if self.next_target >= self.targets.len() {
            self.next_target = 0;
            self.targets = resolve_targets(config).await;
        }
        if welcomed_at.is_some() {
            self.failed_in_round = 0;
        }
        // Only a link that held for a while proves the registry healthy: one that fails right after the
        // welcome keeps the delays growing instead of reconnecting at the initial delay forever.
        if welcomed_at.is_some_and(|at: Instant| at.elapsed() >= STABLE_LINK) {
            self.backoff.reset();
        }
    }

    /// What to do after a link ended with `outcome`.
    fn after(&mut self, shared: &Shared, outcome: Result<LinkEnd, LinkError>) -> Next {
        let (error, delay) = match outcome {
            Ok(LinkEnd::Shutdown) => return Next::Stop,
            Ok(LinkEnd::Reconnect) => {
                // At once, as asked, unless the registry asked already a moment ago: two agents using the
                // same gateway id make the registry supersede each one's link with the other's, and
                // following every request at once would be a tight loop.
                let repeated = self.last_reconnect.is_some_and(|at| at.elapsed() < STABLE_LINK);
                if !repeated {
                    self.last_reconnect = Some(Instant::now());
                    self.failing = false;
                    return Next::Now;
                }
                let error = "the registry keeps asking to reconnect (is another agent using this gateway id?)";
                (error.to_owned(), self.backoff.next_delay(&mut rand::rng()))
            }
            Err(LinkError::Refused(status)) => {
                let error = format!(
                    "the registry refused the hello: {:?}: {}",
                    status.code(),
                    status.message()
                );
                shared.lock().rejection = Some(status);
                (error, self.backoff.max_delay(&mut rand::rng()))
            }
            Err(LinkError::Failed(error)) => {
                shared.lock().rejection = None;
                self.failed_in_round += 1;
                if self.failed_in_round < self.targets.len() {
                    // Fail over: another address may well be up, and sessions wait while there is no link.
                    (error, Duration::ZERO)
                } else {
                    self.failed_in_round = 0;
                    (error, self.backoff.next_delay(&mut rand::rng()))
                }
            }
        };
        Next::After { error, delay }
    }

    /// Logs a link down: a warning the first time, quietly while it stays down.
    fn report(&mut self, gateway_id: &str, error: &str, delay: Duration) {
        if self.failing {
            tracing::debug!(gateway_id, error, ?delay, "registry link still down");
        } else {
            tracing::warn!(gateway_id, error, ?delay, "registry link down; retrying");
        }
        self.failing = true;
    }
}

/// One address of the registry: a configured URL, and when its host name resolved to several
/// addresses, one of them.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    address: Option<SocketAddr>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.address {
            Some(address) => write!(f, "{} ({address})", self.url),
            None => f.write_str(&self.url),
        }
    }
}

/// Every address to try: `registry_url` then `failover_urls`, each host name that resolves to
/// several addresses expanded into one target per address. Never empty: a URL that does not parse or
/// resolve stays as it is, and connecting to it reports why.
async fn resolve_targets(config: &crate::AgentConfig) -> Vec<Target> {
    let mut targets = Vec::new();
    for url in std::iter::once(&config.registry_url).chain(&config.failover_urls) {
        let addresses = resolve(url).await;
        if addresses.len() > 1 {
            targets.extend(addresses.into_iter().map(|address| Target {
                url: url.clone(),
                address: Some(address),
            }));
        } else {
            targets.push(Target {
                url: url.clone(),
                address: None,
            });
        }
    }
    targets
}

/// The addresses a URL's host name resolves to (empty for an IP address, or when it cannot be resolved
/// within a second: connecting by name then tells what is wrong).
async fn resolve(url: &str) -> Vec<SocketAddr> {
    let Ok(uri) = url.parse::<tonic::codegen::http::Uri>() else {
        return Vec::new();
    };
    let Some(host) = uri.host() else {
        return Vec::new();
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Vec::new();
    }
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addresses)) => {
            let mut unique: Vec<SocketAddr> = Vec::new();
            for address in addresses {
                if !unique.contains(&address) {
                    unique.push(address);
                }
            }
            unique
        }
        _ => Vec::new(),
    }
}

/// The endpoint for `target`: its URL, or its resolved address with the URL's host kept as the
/// request authority and as the name TLS verifies.
fn endpoint_of(target: &Target, tls: Option<&tonic::transport::ClientTlsConfig>) -> Result<Endpoint, LinkError> {
    let invalid =
        |error: &dyn std::error::Error| LinkError::Failed(format!("invalid registry url {:?}: {error}", target.url));
    let uri: tonic::codegen::http::Uri = target.url.parse().map_err(|error| invalid(&error))?;
    let mut endpoint = match target.address {
        None => Endpoint::from_shared(target.url.clone()).map_err(|error| invalid(&error))?,
        Some(address) => {
            let scheme = uri.scheme_str().unwrap_or("http");
            Endpoint::from_shared(format!("{scheme}://{address}"))
                .map_err(|error| invalid(&error))?
                .origin(uri.clone())
        }
    };
    if let Some(tls) = tls {
        let mut tls = tls.clone();
        if target.address.is_some()
            && let Some(host) = uri.host()
        {
            tls = tls.domain_name(host);
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|error| LinkError::Failed(format!("invalid TLS settings: {}", chain(&error))))?;
    }
    Ok(endpoint)
}

/// One link: connect, hello, wait for the welcome (noting when in `welcomed_at`), then pump until it ends.
async fn connect_and_pump(
    shared: &Arc<Shared>,
    target: &Target,
    welcomed_at: &mut Option<Instant>,
) -> Result<LinkEnd, LinkError> {
    let config = &shared.config;
    let channel = tokio::select! {
        () = shared.shutdown.cancelled() => return Ok(LinkEnd::Shutdown),
        connected = connect(config, target) => connected?,
    };

    // The hello is queued before the stream opens, so it is the first message; the snapshot is taken now,
    // and anything that changes until the welcome is reported after it (closes queue, activity stays dirty).
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let snapshot_len = queue_hello(shared, &tx)?;
    let welcome = welcome(channel, rx);
    let (inbound, welcome) = tokio::select! {
        () = shared.shutdown.cancelled() => return Ok(LinkEnd::Shutdown),
        welcomed = tokio::time::timeout(config.welcome_timeout, welcome) => match welcomed {
            Ok(result) => result?,
            Err(_) => return Err(LinkError::Failed(format!("no welcome within {:?}", config.welcome_timeout))),
        },
    };

    // From here on the state owns the only sender: when the link goes down, dropping it ends the request
    // stream, which the registry sees as the agent hanging up.
    let broken = CancellationToken::new();
    {
        let mut state = shared.lock();
        state.rejection = None;
        state.link_up(
            LinkSender {
                tx,
                broken: broken.clone(),
            },
            &welcome.ended_session_ids,
        );
    }
    *welcomed_at = Some(Instant::now());
    tracing::info!(
        gateway_id = config.gateway_id,
        replica = welcome.replica,
        snapshot = snapshot_len,
        ended = welcome.ended_session_ids.len(),
        registered = welcome.registered_session_ids.len(),
        "linked to the registry"
    );
    shared.set_link_state(LinkState::Connected {
        replica: welcome.replica.clone(),
    });
    pump(shared, inbound, &welcome, &broken).await
}

/// A channel to `target`, within the connect timeout.
async fn connect(config: &AgentConfig, target: &Target) -> Result<Channel, LinkError> {
    let endpoint = endpoint_of(target, config.tls.as_ref())?
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    match tokio::time::timeout(config.connect_timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(error)) => Err(LinkError::Failed(format!(
            "cannot connect to {target}: {}",
            chain(&error)
        ))),
        Err(_) => Err(LinkError::Failed(format!("connecting to {target} timed out"))),
    }
}

/// Queues the hello, with the snapshot of the sessions held now, on `tx`; returns how many it holds.
fn queue_hello(shared: &Shared, tx: &mpsc::Sender<AgentMessage>) -> Result<usize, LinkError> {
    let config = &shared.config;
    let hello = Hello {
        gateway_id: config.gateway_id.clone(),
        credential: config.credential.clone(),
        agent_version: config.agent_version.clone(),
        sessions: shared.lock().snapshot(),
    };
    let snapshot_len = hello.sessions.len();
    tx.try_send(AgentMessage {
        trace_context: Default::default(),
        message: Some(Message::Hello(hello)),
    })
    .map_err(|_| LinkError::Failed("cannot queue the hello".to_owned()))?;
    Ok(snapshot_len)
}

/// Opens the link's stream on `channel` (the hello first, from `rx`) and reads the registry's welcome.
async fn welcome(
    channel: Channel,
    rx: mpsc::Receiver<AgentMessage>,
) -> Result<(Streaming<ControllerMessage>, Welcome), LinkError> {
    let mut client = GatewayLinkClient::new(channel).max_decoding_message_size(MAX_INBOUND_MESSAGE);
    let response = client.connect(ReceiverStream::new(rx)).await.map_err(hello_failure)?;
    let mut inbound = response.into_inner();
    match inbound.message().await {
        Ok(Some(ControllerMessage {
            message: Some(Command::Welcome(welcome)),
            ..
        })) => Ok((inbound, welcome)),
        Ok(Some(other)) => Err(LinkError::Failed(format!("expected a welcome, got {other:?}"))),
        Ok(None) => Err(LinkError::Failed(
            "the registry closed the link before the welcome".to_owned(),
        )),
        Err(status) => Err(hello_failure(status)),
    }
}

/// An error with its causes ("transport error: tcp connect error: Connection refused"): tonic's transport
/// errors say little on their own.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A failure before the welcome: a refusal when the registry said the hello itself is wrong.
fn hello_failure(status: Status) -> LinkError {
    match status.code() {
        Code::InvalidArgument | Code::PermissionDenied | Code::Unauthenticated => LinkError::Refused(status),
        code => LinkError::Failed(format!("the registry failed the hello: {code:?}: {}", status.message())),
    }
}

/// Moves messages both ways until the link ends.
async fn pump(
    shared: &Arc<Shared>,
    mut inbound: Streaming<ControllerMessage>,
    welcome: &Welcome,
    broken: &CancellationToken,
) -> Result<LinkEnd, LinkError> {
    let mut activity = ticker(welcome.activity_interval_ms, DEFAULT_ACTIVITY_INTERVAL);
    let mut heartbeat = ticker(welcome.heartbeat_interval_ms, DEFAULT_HEARTBEAT_INTERVAL);
    let mut sent_at_last_heartbeat = shared.lock().sent();
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => {
                close(shared, inbound).await;
                return Ok(LinkEnd::Shutdown);
            }
            () = broken.cancelled() => {
                return Err(LinkError::Failed("the registry stopped reading the link".to_owned()));
            }
            message = inbound.next() => match message {
                Some(Ok(message)) => {
                    if let Flow::Reconnect = handle(shared, message).await {
                        return Ok(LinkEnd::Reconnect);
                    }
                }
                Some(Err(status)) => {
                    return Err(LinkError::Failed(format!(
                        "the link failed: {:?}: {}",
                        status.code(),
                        status.message()
                    )));
                }
                None => return Err(LinkError::Failed("the registry closed the link".to_owned())),
            },
            _ = activity.tick() => {
                let mut state = shared.lock();
                let activity = state.take_activity();
                for batch in batches(activity, MAX_BATCH_SESSIONS) {
                    // If this fails the link is broken; the next hello's snapshot carries the latest values.
                    if !state.send(Message::Activity(batch)) {
                        break;
                    }
                }
            }
            _ = heartbeat.tick() => {
                let mut state = shared.lock();
                if state.sent() == sent_at_last_heartbeat {
                    let sent_at = Some(Timestamp::from(SystemTime::now()));
                    state.send(Message::Heartbeat(Heartbeat { sent_at }));
                }
                sent_at_last_heartbeat = state.sent();
            }
        }
    }
}

/// Splits activity into messages of at most `max` sessions each.
fn batches(activity: Vec<SessionActivity>, max: usize) -> Vec<ActivityBatch> {
    let mut activity = activity.into_iter().peekable();
    let mut batches = Vec::new();
    while activity.peek().is_some() {
        batches.push(ActivityBatch {
            sessions: activity.by_ref().take(max).collect(),
        });
    }
    batches
}

/// An interval whose first tick is one period away (not immediate), and that does not burst after a stall.
fn ticker(millis: u32, default: Duration) -> tokio::time::Interval {
    let period = match millis {
        0 => default,
        millis => Duration::from_millis(u64::from(millis)).max(MIN_INTERVAL),
    };
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// Acts on one message from the registry.
async fn handle(shared: &Arc<Shared>, message: ControllerMessage) -> Flow {
    let ControllerMessage { message, trace_context } = message;
    let Some(message) = message else {
        return Flow::Continue;
    };
    match message {
        Command::Welcome(welcome) => {
            tracing::warn!(replica = welcome.replica, "a second welcome on the same link; ignored");
        }
        Command::Admission(decision) => shared.lock().admission_decided(decision, SystemTime::now()),
        Command::Terminate(command) => terminate(shared, command, &trace_context),
        Command::IdleWarning(warning) => {
            let held = shared.lock().holds(&warning.session_id);
            if held {
                shared.handler.idle_warning(&warning).await;
            } else {
                tracing::debug!(session_id = warning.session_id, "idle warning for a session not held");
            }
        }
        Command::LockUpdate(update) => {
            // An older update (or a re-send of the same set after a reconnection) changes nothing.
            let changed = shared.lock().apply_locks(update);
            if let Some(locks) = changed {
                shared.handler.locks_changed(&locks).await;
            }
        }
        Command::Reconnect(reconnect) => {
            tracing::info!(
                gateway_id = shared.config.gateway_id,
                reason = reconnect.reason,
                "the registry asked to reconnect"
            );
            return Flow::Reconnect;
        }
    }
    Flow::Continue
}

/// Carries out a terminate command on a task of its own (a slow gateway must not hold up admissions),
/// once per command id, in an `agent.terminate` span continuing the kill's trace (its acknowledgement
/// carries the span on to the registry).
fn terminate(shared: &Arc<Shared>, command: TerminateCommand, trace_context: &HashMap<String, String>) {
    let span = crate::trace::follow(
        tracing::info_span!(
            "agent.terminate",
            otel.kind = "consumer",
            command_id = %command.command_id,
            session_id = %command.session_id,
        ),
        trace_context,
    );
    if span.in_scope(|| shared.lock().begin_command(&command)) != CommandStart::Run {
        return;
    }
    let handler = Arc::clone(&shared.handler);
    let shared = Arc::clone(shared);
    let task = async move {
        // A panicking handler must still produce an acknowledgement, or the command would stay in flight.
        let result = match AssertUnwindSafe(handler.terminate(&command)).catch_unwind().await {
            Ok(result) => result,
            Err(_) => CommandResult::Failed("the gateway's terminate handler panicked".to_owned()),
        };
        tracing::info!(
            command_id = command.command_id,
            session_id = command.session_id,
            ?result,
            "terminate command carried out"
        );
        shared.lock().finish_command(&command, &result);
    };
    tokio::spawn(task.instrument(span));
}

/// Ends the agent's half of the stream and gives the registry a moment to end its half.
async fn close(shared: &Shared, mut inbound: Streaming<ControllerMessage>) {
    shared.lock().link_down();
    let drain = async { while let Some(Ok(_)) = inbound.next().await {} };
    if tokio::time::timeout(CLOSE_GRACE, drain).await.is_err() {
        tracing::debug!("the registry did not end the stream in time after the agent hung up");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chains_name_every_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("transport error")]
        struct Transport(#[source] std::io::Error);

        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(chain(&Transport(refused)), "transport error: Connection refused");
    }

    #[test]
    fn activity_is_split_into_bounded_batches_in_order() {
        let activity: Vec<SessionActivity> = (0..10)
            .map(|i| SessionActivity {
                session_id: format!("s{i}"),
                ..Default::default()
            })
            .collect();
        let sizes: Vec<usize> = batches(activity.clone(), 4).iter().map(|b| b.sessions.len()).collect();
        assert_eq!(sizes, [4, 4, 2]);
        let flattened: Vec<SessionActivity> = batches(activity.clone(), 4)
            .into_iter()
            .flat_map(|b| b.sessions)
            .collect();
        assert_eq!(flattened, activity);
        assert!(batches(Vec::new(), 4).is_empty());
    }

    #[tokio::test]
    async fn intervals_from_the_welcome_have_a_default_and_a_floor() {
        assert_eq!(ticker(0, Duration::from_secs(2)).period(), Duration::from_secs(2));
        assert_eq!(ticker(1, Duration::from_secs(2)).period(), MIN_INTERVAL);
        assert_eq!(
            ticker(1500, Duration::from_secs(2)).period(),
            Duration::from_millis(1500)
        );
    }
}
