//! `vigil.v1.GatewayLink`: the long-lived stream between a gateway's agent and this replica.
//!
//! This is the transport: it waits for the hello (within `hello_timeout`), authenticates the
//! gateway it names (its credential, or a client certificate naming it —
//! `vigil_runtime::auth::authenticate_gateway`), then runs the link's loop: agent messages up,
//! bus messages and lock set changes down. What a link does to the registry's records — opening,
//! reconciliation, admission, closes, acknowledgements — is the core's (`crate::links`).
//!
//! Whatever is published on `gateway.<id>` is a `GatewayDispatch` of `ControllerMessage`s and is
//! forwarded to the agent as it is; the link does not interpret commands, it carries them.
//!
//! Every message from the agent counts as hearing from the gateway (see `liveness`); a link silent
//! for `gateway_grace` is closed with a `Reconnect`, as the gateway's sessions are ended as lost.
//! Errors leave as `ServiceError` and become a `Status` in the runtime's one mapping.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;
use vigil_proto::v1 as pb;
use vigil_proto::v1::agent_message::Message as Up;
use vigil_proto::v1::gateway_link_server::GatewayLink;
use vigil_runtime::auth::authenticate_gateway;
use vigil_runtime::bus::{Delivery, TypedSubscription};
use vigil_runtime::{ServiceError, ServiceResult};

use super::hello_guard::HelloGuard;
use crate::links::{LinkState, OpenedLink, ValidHello};
use crate::locks::PushedLocks;
use crate::now_millis;
use crate::registry::Registry;

/// Messages queued to one agent before the link pushes back.
const OUTBOUND_QUEUE: usize = 1024;

/// The `GatewayLink` service.
pub struct LinkApi {
    registry: Registry,
    /// Failed hellos per peer (credential guessing).
    hellos: HelloGuard,
}

impl LinkApi {
    pub(crate) fn new(registry: Registry) -> Self {
        Self {
            registry,
            hellos: HelloGuard::default(),
        }
    }

    /// Reads, checks and authenticates the hello. Any failure counts against the peer.
    async fn accept_hello(
        &self,
        extensions: &tonic::Extensions,
        inbound: &mut Streaming<pb::AgentMessage>,
        peer: Option<std::net::IpAddr>,
    ) -> Result<ValidHello, Status> {
        let accepted = async {
            let mut hello = self.hello(inbound).await?;
            let credential = std::mem::take(&mut hello.credential);
            let hello = ValidHello::parse(&hello)?;
            // The agent speaks for this gateway only if it proved to be it; everything after (the
            // snapshot, the command channel) is scoped to this id.
            let proof = authenticate_gateway(extensions, &hello.gateway_id, &credential)?;
            tracing::debug!(gateway = %hello.gateway_id, ?proof, "gateway authenticated");
            Ok::<_, Status>(hello)
        }
        .await;
        if accepted.is_err() {
            self.hellos.failed(peer);
        }
        accepted
    }

    /// Reads the first message, which must be a hello, within the hello timeout.
    async fn hello(&self, inbound: &mut Streaming<pb::AgentMessage>) -> Result<pb::Hello, Status> {
        let hello_timeout = self.registry.inner.settings.hello_timeout;
        let first = tokio::time::timeout(hello_timeout, inbound.message())
            .await
            .map_err(|_| {
                ServiceError::DeadlineExceeded(format!("no hello within {hello_timeout:?} of opening the link"))
            })??;
        match first.and_then(|message| message.message) {
            Some(Up::Hello(hello)) => Ok(hello),
            Some(other) => Err(ServiceError::invalid(format!(
                "the first message on a link must be hello, not {}",
                message_name(&other)
            ))
            .into()),
            None => Err(ServiceError::invalid("the link closed (or sent an empty message) before hello").into()),
        }
    }
}

type Outbound = mpsc::Sender<Result<pb::ControllerMessage, Status>>;
type ControllerStream = Pin<Box<dyn Stream<Item = Result<pb::ControllerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl GatewayLink for LinkApi {
    type ConnectStream = ControllerStream;

    async fn connect(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        // The extensions hold what authenticates the agent: the auth layer's verdict and the TLS client
        // certificate, if any.
        let peer = request.remote_addr().map(|address| address.ip());
        // A peer that keeps failing its hello is refused before its next one is read.
        self.hellos.admit(peer)?;
        let (_, extensions, mut inbound) = request.into_parts();
        let hello = self.accept_hello(&extensions, &mut inbound, peer).await?;
        let OpenedLink {
            link,
            welcome,
            pending,
            commands,
        } = LinkState::open(self.registry.clone(), hello).await?;

        let (outbound, receiver) = mpsc::channel(OUTBOUND_QUEUE);
        // The queue is empty and its receiver alive: these cannot fail.
        let _ = outbound.try_send(Ok(welcome));
        // The lock set right after the welcome; changes from here on follow through `locks`.
        let mut locks = self.registry.inner.locks.subscribe();
        if let Some(set) = locks.borrow_and_update().as_deref() {
            let _ = outbound.try_send(Ok(lock_update(set)));
        }
        crate::metrics::agent_stream_opened();
        let pump = Pump {
            link,
            registry: self.registry.clone(),
            outbound,
        };
        tokio::spawn(pump.serve(inbound, commands, locks, pending));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

/// How long after a link opens its pending kills are read a second time (a kill recorded while the
/// link was opening was published to no one: see `LinkState::fetch_pending`).
const RELINK_RECHECK: Duration = Duration::from_millis(500);

/// A link's loop: its state in the core, and the way down to the agent.
struct Pump {
    link: LinkState,
    registry: Registry,
    outbound: Outbound,
}

/// Why the loop stops.
enum Stop {
    /// The agent left, the stream failed, or a newer link replaced this one: the gateway was heard
    /// from until now.
    Now,
    /// The agent fell silent: it was last heard from then.
    SilentSince(vigil_core::EpochMillis),
}

impl Pump {
    /// Serves the link until the agent leaves or falls silent, a newer link replaces it, or the
    /// replica stops.
    async fn serve(
        mut self,
        mut inbound: Streaming<pb::AgentMessage>,
        mut commands: TypedSubscription<pb::GatewayDispatch>,
        mut locks: watch::Receiver<PushedLocks>,
        pending: Vec<pb::TerminateCommand>,
    ) {
        // Pending kills go first, right after the welcome (and the lock set), before anything the
        // agent says is handled.
        let stop = if self.forward(pending.into_iter().map(terminate)).await.is_err() {
            Stop::Now
        } else {
            self.pump(&mut inbound, &mut commands, &mut locks).await
        };
        let last_heard = match stop {
            Stop::Now => now_millis(),
            Stop::SilentSince(at) => at,
        };
        self.link.close(last_heard).await;
    }

    async fn pump(
        &mut self,
        inbound: &mut Streaming<pb::AgentMessage>,
        commands: &mut TypedSubscription<pb::GatewayDispatch>,
        locks: &mut watch::Receiver<PushedLocks>,
    ) -> Stop {
        let shutdown = self.registry.inner.shutdown.clone();
        let closed = self.link.closed().clone();
        let grace = self.registry.inner.settings.gateway_grace;
        let silence = tokio::time::sleep(grace);
        tokio::pin!(silence);
        let mut locks_open = true;
        let mut catch_up = Some(self.link.fetch_pending(RELINK_RECHECK));
        loop {
            tokio::select! {
                pending = async {
                    match catch_up.as_mut() {
                        Some(task) => task.await,
                        None => std::future::pending().await,
                    }
                }, if catch_up.is_some() => {
                    catch_up = None;
                    if self.forward(pending.unwrap_or_default().into_iter().map(terminate)).await.is_err() {
                        return Stop::Now;
                    }
                }
                () = &mut silence => {
                    tracing::warn!(gateway = %self.link.gateway_id(), ?grace, "gateway silent for longer than its grace period; closing its link");
                    let _ = self.outbound.try_send(Ok(reconnect(format!("the registry heard nothing on this link for {grace:?}"))));
                    return Stop::SilentSince(self.link.last_heard());
                }
                changed = locks.changed(), if locks_open => match changed {
                    Ok(()) => {
                        let set = locks.borrow_and_update().clone();
                        if let Some(set) = set
                            && self.forward([lock_update(&set)]).await.is_err()
                        {
                            return Stop::Now;
                        }
                    }
                    // The replica is stopping; `closed` follows.
                    Err(_) => locks_open = false,
                },
                () = closed.cancelled() => {
                    let reason = if shutdown.is_cancelled() {
                        "the registry replica is shutting down"
                    } else {
                        "a newer link for this gateway was opened"
                    };
                    let _ = self.outbound.send(Ok(reconnect(reason.into()))).await;
                    return Stop::Now;
                }
                message = inbound.message() => {
                    if matches!(message, Ok(Some(_))) {
                        silence.as_mut().reset(Instant::now() + grace);
                    }
                    if let Err(stop) = self.on_agent_message(message).await {
                        return stop;
                    }
                }
                event = commands.next() => {
                    match self.on_dispatch(event).await {
                        Ok(true) => catch_up = Some(self.link.fetch_pending(Duration::ZERO)),
                        Ok(false) => {}
                        Err(stop) => return stop,
                    }
                }
            }
        }
    }

    /// What the agent sent: handled, or why the link stops (the agent left, the stream failed, or
    /// handling failed — the agent is told why).
    async fn on_agent_message(&mut self, message: Result<Option<pb::AgentMessage>, Status>) -> Result<(), Stop> {
        match message {
            Ok(Some(message)) => {
                let span = crate::trace::agent_message_span(self.link.gateway_id(), &message);
                if let Err(error) = self.handle(message).instrument(span).await {
                    let _ = self.outbound.send(Err(error.into())).await;
                    return Err(Stop::Now);
                }
                Ok(())
            }
            Ok(None) => Err(Stop::Now),
            Err(status) => {
                tracing::debug!(gateway = %self.link.gateway_id(), %status, "link stream failed");
                Err(Stop::Now)
            }
        }
    }

    /// What the bus delivered on the gateway's channel: forwarded to the agent, or why the link stops.
    /// `true` when messages may have been missed and the pending kills must be read again.
    async fn on_dispatch(&mut self, event: Option<Delivery<pb::GatewayDispatch>>) -> Result<bool, Stop> {
        match event {
            Some(Delivery::Message(dispatch)) => {
                let (span, messages) = crate::trace::dispatch_span(self.link.gateway_id(), dispatch);
                if self.forward(messages).instrument(span).await.is_err() {
                    return Err(Stop::Now);
                }
                Ok(false)
            }
            Some(Delivery::MayHaveMissed) => {
                // Whatever was published during the break is lost: the pending kills are
                // read again (as after the welcome) rather than left to the termination
                // service's redelivery, seconds later.
                tracing::info!(gateway = %self.link.gateway_id(), "command channel resubscribed after a bus break; reading pending kills");
                Ok(true)
            }
            None => {
                tracing::warn!(gateway = %self.link.gateway_id(), "command channel closed; asking the agent to reconnect");
                Err(Stop::Now)
            }
        }
    }

    /// One message from the agent; an error ends the link with it.
    async fn handle(&mut self, message: pb::AgentMessage) -> ServiceResult<()> {
        let now = now_millis();
        self.link.touch(now);
        match message.message {
            Some(Up::SessionOpened(opened)) => {
                let admitted = self.link.admit(opened, now).await;
                crate::metrics::admission(admitted.as_ref().map(|(decision, _)| decision));
                let (decision, announcement) = admitted?;
                let reply = pb::ControllerMessage {
                    trace_context: vigil_runtime::telemetry::propagation::current_map(),
                    message: Some(pb::controller_message::Message::Admission(decision)),
                };
                // A closed outbound means the agent is gone; the inbound side will notice.
                let _ = self.outbound.send(Ok(reply)).await;
                // Watchers learn of the start after the gateway has its answer: the user waits on
                // the decision, nobody waits on the event (it is committed either way).
                if let Some(announcement) = announcement {
                    self.link.announce(announcement, now).await;
                }
            }
            Some(Up::Activity(batch)) => self.link.record_activity(batch, now),
            Some(Up::SessionClosed(closed)) => self.link.close_session(closed, now).await?,
            Some(Up::CommandAck(ack)) => self.link.acknowledge(ack, now)?,
            Some(Up::Heartbeat(_)) => {}
            Some(Up::Hello(_)) => {
                return Err(ServiceError::invalid(
                    "hello may only be sent once, as the first message",
                ));
            }
            None => return Err(ServiceError::invalid("empty agent message")),
        }
        Ok(())
    }

    /// Sends messages to the agent, remembering the kills among them and reporting them delivered.
    /// Fails only when the agent is gone.
    async fn forward(&mut self, messages: impl IntoIterator<Item = pb::ControllerMessage>) -> Result<(), ()> {
        for message in messages {
            let kill = self.link.carry(&message);
            self.outbound.send(Ok(message)).await.map_err(|_| ())?;
            if let Some(command_id) = kill {
                self.link.delivered(command_id);
            }
        }
        Ok(())
    }
}

fn terminate(command: pb::TerminateCommand) -> pb::ControllerMessage {
    pb::ControllerMessage {
        trace_context: Default::default(),
        message: Some(pb::controller_message::Message::Terminate(command)),
    }
}

fn reconnect(reason: String) -> pb::ControllerMessage {
    pb::ControllerMessage {
        trace_context: Default::default(),
        message: Some(pb::controller_message::Message::Reconnect(pb::Reconnect { reason })),
    }
}

/// The lock set as a message to an agent.
fn lock_update(set: &pb::LockUpdate) -> pb::ControllerMessage {
    pb::ControllerMessage {
        trace_context: Default::default(),
        message: Some(pb::controller_message::Message::LockUpdate(set.clone())),
    }
}

fn message_name(message: &Up) -> &'static str {
    match message {
        Up::Hello(_) => "hello",
        Up::SessionOpened(_) => "session_opened",
        Up::Activity(_) => "activity",
        Up::SessionClosed(_) => "session_closed",
        Up::CommandAck(_) => "command_ack",
        Up::Heartbeat(_) => "heartbeat",
    }
}
