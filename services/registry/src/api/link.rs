//! `vigil.v1.GatewayLink`: the long-lived stream between a gateway's agent and this replica.
//!
//! Opening a link, in order (design.md, flow 1):
//! 1. read and validate the hello, and authenticate the gateway it names (its credential, or a
//!    client certificate naming it — `vigil_runtime::auth::authenticate_gateway`);
//! 2. subscribe to the gateway's bus channel — before anything else, so a command published while
//!    the rest happens is not missed;
//! 3. record the gateway as connected here and reconcile its snapshot with the store;
//! 4. answer `Welcome` and push the lock set, then serve the stream: agent messages up, bus messages
//!    and lock set changes down.
//!
//! Whatever is published on `gateway.<id>` is an encoded `ControllerMessage` and is forwarded to
//! the agent as it is; the link does not interpret commands, it carries them.
//!
//! Every message from the agent counts as hearing from the gateway (see `liveness`); a link silent
//! for `gateway_grace` is closed with a `Reconnect`, as the gateway's sessions are ended as lost.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;
use vigil_proto::v1 as pb;
use vigil_proto::v1::agent_message::Message as Up;
use vigil_proto::v1::gateway_link_server::GatewayLink;
use vigil_runtime::auth::authenticate_gateway;
use vigil_runtime::bus::{BusEvent, Subscription};
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{
    EndReason, EpochMillis, GatewayEnd, GeoLocation, PendingActivity, RiskAssessment, Selector, SessionEnd,
    SessionRecord, SessionStatus, live_status,
};
use crate::locks::PushedLocks;
use crate::now_millis;
use crate::registry::{Registry, Verdict};
use crate::validate::{self, ValidStart};

/// Most sessions one gateway may report in a hello.
pub const MAX_SNAPSHOT_SESSIONS: usize = 100_000;
/// Longest admission request id accepted.
const MAX_REQUEST_ID_LEN: usize = 128;
/// Messages queued to one agent before the link pushes back.
const OUTBOUND_QUEUE: usize = 1024;

/// The `GatewayLink` service.
pub struct LinkApi {
    registry: Registry,
}

impl LinkApi {
    pub(crate) fn new(registry: Registry) -> Self {
        Self { registry }
    }
}

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
        let (_, extensions, mut inbound) = request.into_parts();
        let hello_timeout = self.registry.inner.settings.hello_timeout;
        let first = tokio::time::timeout(hello_timeout, inbound.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!("no hello within {hello_timeout:?} of opening the link"))
            })??;
        let mut hello = match first.and_then(|message| message.message) {
            Some(Up::Hello(hello)) => hello,
            Some(other) => {
                return Err(Status::invalid_argument(format!(
                    "the first message on a link must be hello, not {}",
                    message_name(&other)
                )));
            }
            None => {
                return Err(Status::invalid_argument(
                    "the link closed (or sent an empty message) before hello",
                ));
            }
        };
        let credential = std::mem::take(&mut hello.credential);
        let hello = ValidHello::parse(&hello)?;
        // The agent speaks for this gateway only if it proved to be it; everything after (the
        // snapshot, the command channel) is scoped to this id.
        let proof = authenticate_gateway(&extensions, &hello.gateway_id, &credential)?;
        tracing::debug!(gateway = %hello.gateway_id, ?proof, "gateway authenticated");
        let (link, welcome, pending, subscription) = Link::open(self.registry.clone(), hello).await?;

        let (outbound, receiver) = mpsc::channel(OUTBOUND_QUEUE);
        // The queue is empty and its receiver alive: these cannot fail.
        let _ = outbound.try_send(Ok(welcome));
        // The lock set right after the welcome; changes from here on follow through `locks`.
        let mut locks = self.registry.inner.locks.subscribe();
        if let Some(set) = locks.borrow_and_update().as_deref() {
            let _ = outbound.try_send(Ok(lock_update(set)));
        }
        crate::metrics::agent_stream_opened();
        tokio::spawn(link.serve(inbound, subscription, locks, pending, outbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

/// A validated hello.
struct ValidHello {
    gateway_id: String,
    agent_version: String,
    held: Vec<HeldSession>,
}

struct HeldSession {
    id: String,
    start: ValidStart,
    last_activity_at: Option<EpochMillis>,
    bytes_in: u64,
    bytes_out: u64,
}

impl ValidHello {
    fn parse(hello: &pb::Hello) -> ServiceResult<Self> {
        let gateway_id = validate::gateway_id("hello.gateway_id", &hello.gateway_id)?;
        let agent_version = validate::optional_name("hello.agent_version", &hello.agent_version)?.unwrap_or_default();
        if hello.sessions.len() > MAX_SNAPSHOT_SESSIONS {
            return Err(ServiceError::invalid(format!(
                "hello.sessions holds {} sessions; at most {MAX_SNAPSHOT_SESSIONS} are allowed per gateway",
                hello.sessions.len()
            )));
        }
        let mut seen = HashSet::with_capacity(hello.sessions.len());
        let mut held = Vec::with_capacity(hello.sessions.len());
        for (index, session) in hello.sessions.iter().enumerate() {
            let field = format!("hello.sessions[{index}]");
            let id = validate::session_id(&format!("{field}.session_id"), &session.session_id)?;
            if !seen.insert(id.clone()) {
                return Err(ServiceError::invalid(format!(
                    "{field}.session_id {id} appears twice in the snapshot"
                )));
            }
            held.push(HeldSession {
                start: validate::session_start(&format!("{field}.start"), session.start.as_ref())?,
                last_activity_at: validate::optional_timestamp(
                    &format!("{field}.last_activity_at"),
                    session.last_activity_at.as_ref(),
                )?,
                bytes_in: session.bytes_in,
                bytes_out: session.bytes_out,
                id,
            });
        }
        Ok(Self {
            gateway_id,
            agent_version,
            held,
        })
    }
}

/// One open link, on this replica.
struct Link {
    registry: Registry,
    gateway_id: String,
    link_id: u64,
    /// Cancelled when a newer link for the same gateway opens on this replica, or at shutdown.
    closed: CancellationToken,
    /// Live sessions that belong to this gateway: the only ones its agent may report on.
    owned: HashSet<String>,
    /// Terminate commands carried to the agent and not yet acknowledged, by command id: an
    /// acknowledgement ends the session with the command's reason.
    in_flight: HashMap<String, pb::TerminateCommand>,
    /// When the agent last said anything.
    last_heard: EpochMillis,
}

impl Link {
    async fn open(
        registry: Registry,
        hello: ValidHello,
    ) -> ServiceResult<(Self, pb::ControllerMessage, Vec<pb::TerminateCommand>, Subscription)> {
        let inner = &registry.inner;
        let gateway_id = hello.gateway_id.clone();
        let subscription = inner.bus.subscribe(&vigil_core::topics::gateway(&gateway_id)).await?;

        let now = now_millis();
        inner
            .store
            .gateway_connected(&gateway_id, &inner.settings.replica, &hello.agent_version, now)
            .await?;

        // Kills issued while the gateway was away. Read after subscribing, so one issued right now
        // arrives either here or on the channel (or both: the agent acknowledges duplicates).
        let pending = match inner.journal.get() {
            Some(journal) => journal.pending_commands(&gateway_id).await.unwrap_or_else(|error| {
                // They are re-sent on the channel by the termination service's redelivery.
                tracing::warn!(gateway = %gateway_id, %error, "could not read pending commands; relying on redelivery");
                Vec::new()
            }),
            None => Vec::new(),
        };
        // A session the gateway no longer holds but that was being killed ended by the kill, not
        // by loss: record it with the kill's reason.
        let held_ids: HashSet<&str> = hello.held.iter().map(|session| session.id.as_str()).collect();
        for command in pending
            .iter()
            .filter(|command| !held_ids.contains(command.session_id.as_str()))
        {
            let end = command_end(command, now);
            if let Some(session) = inner
                .store
                .end_session(&command.session_id, Some(&gateway_id), &end)
                .await?
            {
                inner.announce_ended_one(&session, now).await;
            }
        }
        // Sessions ended because the gateway was lost, that it turns out to still hold, are live
        // again: the snapshot is the truth of what the gateway holds. Before reconciling, which then
        // finds them live and known.
        let held_id_list: Vec<String> = hello.held.iter().map(|session| session.id.clone()).collect();
        let revived = inner
            .store
            .revive_lost_sessions(&gateway_id, &held_id_list, now, inner.settings.idle_after_ms())
            .await?;
        for session in &revived {
            inner
                .events
                .publish(
                    pb::SessionEventKind::Opened,
                    session,
                    "live again: its gateway reconnected still holding it",
                    now,
                )
                .await;
        }
        let held: Vec<SessionRecord> = hello
            .held
            .iter()
            .map(|session| held_record(&gateway_id, session, now, inner.settings.idle_after_ms()))
            .collect();
        let lost = SessionEnd {
            ended_at: now,
            reason: EndReason::Lost,
            detail: "the gateway no longer held the session when its agent reconnected".into(),
        };
        let reconciliation = inner.store.reconcile_gateway(&gateway_id, &held, &lost).await?;
        inner.announce_ended(&reconciliation.ended, now).await;
        inner
            .events
            .publish_all(pb::SessionEventKind::Opened, &reconciliation.registered, now)
            .await;

        // Sessions held here that the registry already knew may carry newer activity.
        for session in &hello.held {
            inner.activity.record(PendingActivity {
                session_id: session.id.clone(),
                last_input_at: session.last_activity_at.map(|at| at.min(now)),
                bytes_in: session.bytes_in,
                bytes_out: session.bytes_out,
            });
        }
        // What this gateway may report on: its live sessions per the store (a snapshot claiming
        // another gateway's session does not make it this gateway's).
        let owned = inner
            .store
            .resolve(&Selector::Gateway(gateway_id.clone()))
            .await?
            .live
            .into_iter()
            .map(|session| session.id)
            .collect();

        let link_id = inner.next_link_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let closed = inner.shutdown.child_token();
        let superseded = inner
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(gateway_id.clone(), (link_id, closed.clone()));
        if let Some((_, older)) = superseded {
            older.cancel();
        }
        tracing::info!(
            gateway = %gateway_id,
            held = hello.held.len(),
            revived = revived.len(),
            ended = reconciliation.ended.len(),
            registered = reconciliation.registered.len(),
            "gateway linked"
        );

        let welcome = pb::ControllerMessage {
            trace_context: Default::default(),
            message: Some(pb::controller_message::Message::Welcome(pb::Welcome {
                replica: inner.settings.replica.clone(),
                ended_session_ids: reconciliation.ended.iter().map(|session| session.id.clone()).collect(),
                registered_session_ids: reconciliation
                    .registered
                    .iter()
                    .map(|session| session.id.clone())
                    .collect(),
                activity_interval_ms: millis_u32(inner.settings.agent_activity_interval),
                heartbeat_interval_ms: millis_u32(inner.settings.agent_heartbeat_interval),
            })),
        };
        let link = Self {
            registry,
            gateway_id,
            link_id,
            closed,
            owned,
            in_flight: HashMap::new(),
            last_heard: now,
        };
        Ok((link, welcome, pending, subscription))
    }

    /// Serves the link until the agent leaves or falls silent, a newer link replaces it, or the
    /// replica stops.
    async fn serve(
        mut self,
        mut inbound: Streaming<pb::AgentMessage>,
        mut commands: Subscription,
        mut locks: watch::Receiver<PushedLocks>,
        pending: Vec<pb::TerminateCommand>,
        outbound: mpsc::Sender<Result<pb::ControllerMessage, Status>>,
    ) {
        let shutdown = self.registry.inner.shutdown.clone();
        // Pending kills go first, right after the welcome (and the lock set), before anything the
        // agent says is handled.
        let pending = pending.into_iter().map(|command| pb::ControllerMessage {
            trace_context: Default::default(),
            message: Some(pb::controller_message::Message::Terminate(command)),
        });
        if self.forward(pending, &outbound).await.is_err() {
            self.close(now_millis()).await;
            return;
        }
        let grace = self.registry.inner.settings.gateway_grace;
        let silence = tokio::time::sleep(grace);
        tokio::pin!(silence);
        let mut locks_open = true;
        // When the link ended for silence: the gateway was last heard from then, not now.
        let mut silent_since = None;
        loop {
            tokio::select! {
                () = &mut silence => {
                    tracing::warn!(gateway = %self.gateway_id, ?grace, "gateway silent for longer than its grace period; closing its link");
                    let reconnect = pb::ControllerMessage { trace_context: Default::default(),
                        message: Some(pb::controller_message::Message::Reconnect(pb::Reconnect {
                            reason: format!("the registry heard nothing on this link for {grace:?}"),
                        })),
                    };
                    let _ = outbound.try_send(Ok(reconnect));
                    silent_since = Some(self.last_heard);
                    break;
                }
                changed = locks.changed(), if locks_open => match changed {
                    Ok(()) => {
                        let set = locks.borrow_and_update().clone();
                        if let Some(set) = set
                            && self.forward([lock_update(&set)], &outbound).await.is_err()
                        {
                            break;
                        }
                    }
                    // The replica is stopping; `closed` follows.
                    Err(_) => locks_open = false,
                },
                () = self.closed.cancelled() => {
                    let reason = if shutdown.is_cancelled() {
                        "the registry replica is shutting down"
                    } else {
                        "a newer link for this gateway was opened"
                    };
                    let reconnect = pb::ControllerMessage { trace_context: Default::default(),
                        message: Some(pb::controller_message::Message::Reconnect(pb::Reconnect { reason: reason.into() })),
                    };
                    let _ = outbound.send(Ok(reconnect)).await;
                    break;
                }
                message = inbound.message() => match message {
                    Ok(Some(message)) => {
                        silence.as_mut().reset(Instant::now() + grace);
                        let span = crate::trace::agent_message_span(&self.gateway_id, &message);
                        if let Err(status) = self.handle(message, &outbound).instrument(span).await {
                            let _ = outbound.send(Err(status)).await;
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(gateway = %self.gateway_id, %status, "link stream failed");
                        break;
                    }
                },
                event = commands.next() => match event {
                    Some(BusEvent::Message(payload)) => match pb::GatewayDispatch::decode(&payload[..]) {
                        Ok(dispatch) => {
                            let (span, messages) = crate::trace::dispatch_span(&self.gateway_id, dispatch);
                            if self.forward(messages, &outbound).instrument(span).await.is_err() {
                                break;
                            }
                        }
                        Err(error) => tracing::warn!(gateway = %self.gateway_id, %error, "undecodable dispatch on the bus; skipped"),
                    },
                    Some(BusEvent::Resubscribed) => {
                        // Whatever was published during the break is re-sent by the termination
                        // service's redelivery, from its database.
                        tracing::info!(gateway = %self.gateway_id, "command channel resubscribed after a bus break");
                    }
                    None => {
                        tracing::warn!(gateway = %self.gateway_id, "command channel closed; asking the agent to reconnect");
                        break;
                    }
                },
            }
        }
        self.close(silent_since.unwrap_or_else(now_millis)).await;
    }

    async fn handle(
        &mut self,
        message: pb::AgentMessage,
        outbound: &mpsc::Sender<Result<pb::ControllerMessage, Status>>,
    ) -> Result<(), Status> {
        let now = now_millis();
        self.touch(now).await;
        match message.message {
            Some(Up::SessionOpened(opened)) => {
                let admitted = self.admit(opened, now).await;
                crate::metrics::admission(admitted.as_ref().map(|(decision, _)| decision));
                let (decision, announcement) = admitted?;
                let reply = pb::ControllerMessage {
                    trace_context: vigil_runtime::telemetry::propagation::current_map(),
                    message: Some(pb::controller_message::Message::Admission(decision)),
                };
                // A closed outbound means the agent is gone; the inbound side will notice.
                let _ = outbound.send(Ok(reply)).await;
                // Watchers learn of the start after the gateway has its answer: the user waits on
                // the decision, nobody waits on the event (it is committed either way).
                if let Some(announcement) = announcement {
                    announcement.publish(&self.registry.inner.events, now).await;
                }
            }
            Some(Up::Activity(batch)) => self.record_activity(batch, now),
            Some(Up::SessionClosed(closed)) => self.close_session(closed, now).await?,
            Some(Up::CommandAck(ack)) => self.acknowledge(ack, now).await?,
            Some(Up::Heartbeat(_)) => {}
            Some(Up::Hello(_)) => {
                return Err(Status::invalid_argument(
                    "hello may only be sent once, as the first message",
                ));
            }
            None => return Err(Status::invalid_argument("empty agent message")),
        }
        Ok(())
    }

    /// Decides on a session start. Invalid starts are refused with the reason, and nothing is
    /// recorded. Returns the decision and, for a recorded start, the change to announce to watchers.
    async fn admit(
        &mut self,
        opened: pb::SessionOpened,
        now: EpochMillis,
    ) -> Result<(pb::AdmissionDecision, Option<Announcement>), Status> {
        let deny = |reason: String| pb::AdmissionDecision {
            request_id: opened.request_id.clone(),
            allowed: false,
            reason,
            ..Default::default()
        };
        if opened.request_id.is_empty() || opened.request_id.len() > MAX_REQUEST_ID_LEN {
            return Ok((
                deny(format!("request_id must be 1–{MAX_REQUEST_ID_LEN} characters")),
                None,
            ));
        }
        let start = match validate::session_start("start", opened.start.as_ref()) {
            Ok(start) => start,
            Err(error) => return Ok((deny(format!("invalid session start: {error}")), None)),
        };
        let started_at = start.started_at.map_or(now, |at| at.min(now));
        let mut session = SessionRecord {
            id: uuid::Uuid::now_v7().to_string(),
            user: start.user,
            user_groups: start.user_groups,
            gateway_id: self.gateway_id.clone(),
            resource_name: start.resource_name,
            resource_type: start.resource_type,
            device: start.device,
            client_ip: start.client_ip,
            location: GeoLocation::default(),
            risk: RiskAssessment::default(),
            started_at,
            last_activity_at: started_at,
            status: SessionStatus::Active,
            ended_at: None,
            end_reason: None,
            end_detail: String::new(),
            bytes_in: 0,
            bytes_out: 0,
        };
        let inner = &self.registry.inner;
        let verdict = inner.admission(&mut session, opened.start.unwrap_or_default()).await?;
        if let Verdict::Deny(reason) = &verdict {
            // Every start is recorded, refused ones too: as a session that ended as it began.
            session.status = SessionStatus::Disconnected;
            session.ended_at = Some(started_at);
            session.end_reason = Some(EndReason::Policy);
            session.end_detail = format!("admission denied: {reason}");
            inner.store.insert_session(&session).await.map_err(Status::from)?;
            let decision = pb::AdmissionDecision {
                request_id: opened.request_id,
                allowed: false,
                session_id: String::new(),
                reason: reason.clone(),
                location: Some(crate::convert::location_to_proto(&session.location)),
                risk: Some(crate::convert::risk_to_proto(&session.risk)),
                evicted_session_ids: Vec::new(),
            };
            let announcement = Announcement {
                kind: pb::SessionEventKind::Denied,
                detail: reason.clone(),
                session,
            };
            return Ok((decision, Some(announcement)));
        }
        inner.store.insert_session(&session).await.map_err(Status::from)?;
        self.owned.insert(session.id.clone());
        let evicted = match verdict {
            Verdict::Allow { evict } => evict,
            Verdict::Deny(_) => Vec::new(),
        };
        inner.evict(evicted.clone());
        let decision = pb::AdmissionDecision {
            request_id: opened.request_id,
            allowed: true,
            session_id: session.id.clone(),
            reason: String::new(),
            location: Some(crate::convert::location_to_proto(&session.location)),
            risk: Some(crate::convert::risk_to_proto(&session.risk)),
            evicted_session_ids: evicted,
        };
        let announcement = Announcement {
            kind: pb::SessionEventKind::Opened,
            detail: String::new(),
            session,
        };
        Ok((decision, Some(announcement)))
    }

    fn record_activity(&self, batch: pb::ActivityBatch, now: EpochMillis) {
        for report in batch.sessions {
            // Reports on sessions this gateway does not own are dropped: an agent speaks only for
            // its own gateway. Malformed ones are dropped too — activity is best effort by nature.
            let Ok(session_id) = validate::session_id("session_id", &report.session_id) else {
                continue;
            };
            if !self.owned.contains(&session_id) {
                tracing::debug!(gateway = %self.gateway_id, session = %session_id, "activity for a session this gateway does not hold; dropped");
                continue;
            }
            let last_input_at = report
                .last_input_at
                .as_ref()
                .and_then(vigil_proto::millis_from_timestamp)
                .map(|at| at.min(now));
            self.registry.inner.activity.record(PendingActivity {
                session_id,
                last_input_at,
                bytes_in: report.bytes_in,
                bytes_out: report.bytes_out,
            });
        }
    }

    async fn close_session(&mut self, closed: pb::SessionClosed, now: EpochMillis) -> Result<(), Status> {
        let session_id =
            validate::session_id("session_closed.session_id", &closed.session_id).map_err(ServiceError::from)?;
        let reason = match EndReason::try_from(closed.reason) {
            Ok(EndReason::Unspecified) => EndReason::UserClosed,
            Ok(reason) => reason,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "session_closed.reason {} is not a known end reason",
                    closed.reason
                )));
            }
        };
        let detail = validate::optional_name("session_closed.detail", &closed.detail)
            .map_err(ServiceError::from)?
            .unwrap_or_default();
        let ended_at = validate::optional_timestamp("session_closed.ended_at", closed.ended_at.as_ref())
            .map_err(ServiceError::from)?
            .map_or(now, |at| at.min(now));
        self.owned.remove(&session_id);
        let end = SessionEnd {
            ended_at,
            reason,
            detail,
        };
        let inner = &self.registry.inner;
        if let Some(session) = inner
            .store
            .end_session(&session_id, Some(&self.gateway_id), &end)
            .await?
        {
            inner.announce_ended_one(&session, now).await;
        }
        Ok(())
    }

    /// Sends messages to the agent, remembering the kills among them and reporting them delivered.
    /// Fails only when the agent is gone.
    async fn forward(
        &mut self,
        messages: impl IntoIterator<Item = pb::ControllerMessage>,
        outbound: &mpsc::Sender<Result<pb::ControllerMessage, Status>>,
    ) -> Result<(), ()> {
        for message in messages {
            let delivered = match &message.message {
                Some(pb::controller_message::Message::Terminate(command)) => {
                    self.in_flight.insert(command.command_id.clone(), command.clone());
                    Some(command.command_id.clone())
                }
                _ => None,
            };
            outbound.send(Ok(message)).await.map_err(|_| ())?;
            if let Some(command_id) = delivered {
                self.registry.inner.reporter.report(pb::CommandReport {
                    command_id,
                    gateway_id: self.gateway_id.clone(),
                    state: pb::DeliveryState::Delivered as i32,
                    outcome: pb::CommandOutcome::Unspecified as i32,
                    detail: String::new(),
                    at: Some(vigil_proto::timestamp_from_millis(now_millis())),
                });
            }
        }
        Ok(())
    }

    /// The agent carried out (or could not carry out) a command: end the session with the
    /// command's reason, and tell the termination service.
    async fn acknowledge(&mut self, ack: pb::CommandAck, now: EpochMillis) -> Result<(), Status> {
        let outcome = match pb::CommandOutcome::try_from(ack.outcome) {
            Ok(pb::CommandOutcome::Unspecified) | Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "command_ack.outcome {} must be DONE, NOT_FOUND or FAILED",
                    ack.outcome
                )));
            }
            Ok(outcome) => outcome,
        };
        let detail = validate::optional_name("command_ack.detail", &ack.detail)
            .map_err(ServiceError::from)?
            .unwrap_or_default();
        let command = self.in_flight.remove(&ack.command_id);
        if let Some(command) = &command
            && matches!(outcome, pb::CommandOutcome::Done | pb::CommandOutcome::NotFound)
        {
            // NOT_FOUND: the gateway does not hold the session any more, so it is not live either.
            let inner = &self.registry.inner;
            let end = GatewayEnd {
                session_id: command.session_id.clone(),
                gateway_id: self.gateway_id.clone(),
                end: command_end(command, now),
            };
            // Batched with the other links' ends (see `ending`).
            match inner.ender.end(end).await {
                Ok(Some(session)) => inner.announce_ended_one(&session, now).await,
                Ok(None) => {}
                // The link stays up: the command stays unacknowledged at termination, is re-sent,
                // and the agent's repeated acknowledgement ends the session then.
                Err(error) => {
                    tracing::warn!(gateway = %self.gateway_id, session = %command.session_id, %error, "could not record a kill's end; it will be retried");
                    self.in_flight.insert(ack.command_id.clone(), command.clone());
                    return Ok(());
                }
            }
            self.owned.remove(&command.session_id);
        }
        if command.is_none() {
            // Acknowledged on a link that did not carry it (the agent reconnected in between):
            // the termination service still records it; the session's end arrives with the
            // agent's snapshot or the re-sent command.
            tracing::debug!(gateway = %self.gateway_id, command = %ack.command_id, "acknowledgement for a command this link did not carry");
        }
        crate::metrics::kill_acknowledged(outcome, command.as_ref(), now);
        self.registry.inner.reporter.report(pb::CommandReport {
            command_id: ack.command_id,
            gateway_id: self.gateway_id.clone(),
            state: pb::DeliveryState::Acknowledged as i32,
            outcome: outcome as i32,
            detail,
            at: Some(vigil_proto::timestamp_from_millis(now)),
        });
        Ok(())
    }

    /// Notes that the gateway was heard from; the replica writes it with the other gateways' in one
    /// batch (see `liveness`).
    async fn touch(&mut self, now: EpochMillis) {
        self.last_heard = now;
        self.registry.inner.seen.heard(&self.gateway_id, now);
    }

    /// Forgets the link. `last_heard` is when the gateway was last heard from: when the link closes,
    /// unless it closes for silence (then it was last heard from before).
    async fn close(self, last_heard: EpochMillis) {
        crate::metrics::agent_stream_closed();
        let inner = &self.registry.inner;
        {
            let mut links = inner.links.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if links.get(&self.gateway_id).is_some_and(|(id, _)| *id == self.link_id) {
                links.remove(&self.gateway_id);
            }
        }
        // Only the last link of this gateway here records the disconnect (a newer one may be open).
        let still_linked_here = inner
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(&self.gateway_id);
        if !still_linked_here
            && let Err(error) = inner
                .store
                .gateway_disconnected(&self.gateway_id, &inner.settings.replica, last_heard)
                .await
        {
            tracing::warn!(gateway = %self.gateway_id, %error, "could not record that the gateway disconnected");
        }
        tracing::info!(gateway = %self.gateway_id, "gateway link closed");
    }
}

/// How a session ends when a kill command ends it.
fn command_end(command: &pb::TerminateCommand, now: EpochMillis) -> SessionEnd {
    SessionEnd {
        ended_at: now,
        reason: EndReason::try_from(command.reason).unwrap_or(EndReason::Admin),
        detail: format!("ended by termination {}", command.termination_id),
    }
}

/// A session from a hello, as the registry would record it if it did not know it.
fn held_record(gateway_id: &str, session: &HeldSession, now: EpochMillis, idle_after_ms: i64) -> SessionRecord {
    let started_at = session.start.started_at.map_or(now, |at| at.min(now));
    let last_activity_at = session
        .last_activity_at
        .map_or(started_at, |at| at.clamp(started_at, now));
    SessionRecord {
        id: session.id.clone(),
        user: session.start.user.clone(),
        user_groups: session.start.user_groups.clone(),
        gateway_id: gateway_id.to_owned(),
        resource_name: session.start.resource_name.clone(),
        resource_type: session.start.resource_type,
        device: session.start.device.clone(),
        client_ip: session.start.client_ip.clone(),
        location: GeoLocation::default(),
        risk: RiskAssessment::default(),
        started_at,
        last_activity_at,
        status: live_status(last_activity_at, now, idle_after_ms),
        ended_at: None,
        end_reason: None,
        end_detail: String::new(),
        bytes_in: session.bytes_in,
        bytes_out: session.bytes_out,
    }
}

/// The lock set as a message to an agent.
fn lock_update(set: &pb::LockUpdate) -> pb::ControllerMessage {
    pb::ControllerMessage {
        trace_context: Default::default(),
        message: Some(pb::controller_message::Message::LockUpdate(set.clone())),
    }
}

fn millis_u32(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
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

/// A recorded start to announce to watchers once the gateway has its decision.
struct Announcement {
    kind: pb::SessionEventKind,
    detail: String,
    session: SessionRecord,
}

impl Announcement {
    async fn publish(self, events: &crate::events::EventHub, now: EpochMillis) {
        events.publish(self.kind, &self.session, &self.detail, now).await;
    }
}
