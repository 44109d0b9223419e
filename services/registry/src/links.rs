//! The core of a gateway's link, free of the transport: what opening a link does to the registry's
//! records, and what each agent message does to sessions. `api/link.rs` reads the stream, runs the
//! loop and carries messages; everything it decides is here, returning `ServiceResult`.
//!
//! Opening a link, in order (design.md, flow 1), once the hello is validated and the gateway
//! authenticated:
//! 1. subscribe to the gateway's bus channel — before anything else, so a command published while
//!    the rest happens is not missed;
//! 2. record the gateway as connected here, end the sessions killed while it was away, revive the
//!    ones lost that it still holds, and reconcile its snapshot with the store;
//! 3. register the link (a newer link for the same gateway closes the older one) and write the
//!    welcome.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigil_proto::v1 as pb;
use vigil_runtime::bus::TypedSubscription;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{
    EndReason, EpochMillis, GatewayEnd, GeoLocation, PendingActivity, Reconciliation, RiskAssessment, Selector,
    SessionEnd, SessionRecord, SessionStatus, live_status,
};
use crate::now_millis;
use crate::registry::{Inner, Registry, Verdict};
use crate::validate::{self, ValidStart};

/// Most sessions one gateway may report in a hello.
pub const MAX_SNAPSHOT_SESSIONS: usize = 100_000;
/// Longest admission request id accepted.
const MAX_REQUEST_ID_LEN: usize = 128;

/// A validated hello.
pub(crate) struct ValidHello {
    pub gateway_id: String,
    agent_version: String,
    snapshot: Vec<SnapshotSession>,
}

/// A session the gateway says it holds, as its hello reports it.
struct SnapshotSession {
    id: String,
    start: ValidStart,
    last_activity_at: Option<EpochMillis>,
    bytes_in: u64,
    bytes_out: u64,
}

impl ValidHello {
    /// Checks a hello; its credential is the transport's business and is not looked at here.
    pub(crate) fn parse(hello: &pb::Hello) -> ServiceResult<Self> {
        let gateway_id = validate::gateway_id("hello.gateway_id", &hello.gateway_id)?;
        let agent_version = validate::optional_name("hello.agent_version", &hello.agent_version)?.unwrap_or_default();
        if hello.sessions.len() > MAX_SNAPSHOT_SESSIONS {
            return Err(ServiceError::invalid(format!(
                "hello.sessions holds {} sessions; at most {MAX_SNAPSHOT_SESSIONS} are allowed per gateway",
                hello.sessions.len()
            )));
        }
        let mut seen = HashSet::with_capacity(hello.sessions.len());
        let mut snapshot = Vec::with_capacity(hello.sessions.len());
        for (index, session) in hello.sessions.iter().enumerate() {
            let field = format!("hello.sessions[{index}]");
            let id = validate::session_id(&format!("{field}.session_id"), &session.session_id)?;
            if !seen.insert(id.clone()) {
                return Err(ServiceError::invalid(format!(
                    "{field}.session_id {id} appears twice in the snapshot"
                )));
            }
            snapshot.push(SnapshotSession {
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
            snapshot,
        })
    }
}

/// A link just opened: its state, the welcome to send, the kills pending for the gateway (to send
/// right after the welcome) and the subscription to the gateway's command channel.
pub(crate) struct OpenedLink {
    pub link: LinkState,
    pub welcome: pb::ControllerMessage,
    pub pending: Vec<pb::TerminateCommand>,
    pub commands: TypedSubscription<pb::GatewayDispatch>,
}

/// One open link on this replica, as the registry keeps it.
pub(crate) struct LinkState {
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

/// A recorded start to announce to watchers once the gateway has its decision.
pub(crate) struct Announcement {
    kind: pb::SessionEventKind,
    detail: String,
    session: SessionRecord,
}

impl LinkState {
    /// Opens a link for the gateway of `hello` (see the module's documentation for the order).
    pub(crate) async fn open(registry: Registry, hello: ValidHello) -> ServiceResult<OpenedLink> {
        let inner = &registry.inner;
        let gateway_id = hello.gateway_id.clone();
        let commands =
            TypedSubscription::subscribe(inner.bus.as_ref(), &vigil_core::topics::gateway(&gateway_id)).await?;
        let now = now_millis();
        inner
            .store
            .gateway_connected(&gateway_id, &inner.settings.replica, &hello.agent_version, now)
            .await?;
        inner.seen.connected(&gateway_id, now);
        let pending = pending_commands(inner, &gateway_id).await;
        end_killed_while_away(inner, &hello, &pending, now).await?;
        let revived = revive_still_held(inner, &hello, now).await?;
        let reconciliation = reconcile(inner, &hello, now).await?;
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
        let (link_id, closed) = register(inner, &gateway_id);
        tracing::info!(
            gateway = %gateway_id,
            held = hello.snapshot.len(),
            revived,
            ended = reconciliation.ended.len(),
            registered = reconciliation.registered.len(),
            "gateway linked"
        );
        let welcome = welcome(inner, &reconciliation);
        let link = Self {
            registry,
            gateway_id,
            link_id,
            closed,
            owned,
            in_flight: HashMap::new(),
            last_heard: now,
        };
        Ok(OpenedLink {
            link,
            welcome,
            pending,
            commands,
        })
    }

    pub(crate) fn gateway_id(&self) -> &str {
        &self.gateway_id
    }

    /// Cancelled when this link must close: a newer one replaced it, or the replica stops.
    pub(crate) fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// When the agent last said anything.
    pub(crate) fn last_heard(&self) -> EpochMillis {
        self.last_heard
    }

    /// Decides on a session start. Invalid starts are refused with the reason, and nothing is
    /// recorded. Returns the decision and, for a recorded start, the change to announce to watchers
    /// once the gateway has its answer.
    pub(crate) async fn admit(
        &mut self,
        opened: pb::SessionOpened,
        now: EpochMillis,
    ) -> ServiceResult<(pb::AdmissionDecision, Option<Announcement>)> {
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
        let mut session = new_session(&self.gateway_id, start, now);
        let inner = &self.registry.inner;
        let verdict = inner.admission(&mut session, opened.start.unwrap_or_default()).await?;
        let evicted = match verdict {
            Verdict::Deny(reason) => return self.record_refusal(opened.request_id, session, reason).await,
            Verdict::Allow { evict } => evict,
        };
        inner.store.insert_session(&session).await?;
        self.owned.insert(session.id.clone());
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

    /// Every start is recorded, refused ones too: as a session that ended as it began.
    async fn record_refusal(
        &self,
        request_id: String,
        mut session: SessionRecord,
        reason: String,
    ) -> ServiceResult<(pb::AdmissionDecision, Option<Announcement>)> {
        session.status = SessionStatus::Disconnected;
        session.ended_at = Some(session.started_at);
        session.end_reason = Some(EndReason::Policy);
        session.end_detail = format!("admission denied: {reason}");
        self.registry.inner.store.insert_session(&session).await?;
        let decision = pb::AdmissionDecision {
            request_id,
            allowed: false,
            session_id: String::new(),
            reason: reason.clone(),
            location: Some(crate::convert::location_to_proto(&session.location)),
            risk: Some(crate::convert::risk_to_proto(&session.risk)),
            evicted_session_ids: Vec::new(),
        };
        let announcement = Announcement {
            kind: pb::SessionEventKind::Denied,
            detail: reason,
            session,
        };
        Ok((decision, Some(announcement)))
    }

    /// Tells watchers of a recorded start.
    pub(crate) async fn announce(&self, announcement: Announcement, now: EpochMillis) {
        self.registry
            .inner
            .events
            .publish(announcement.kind, &announcement.session, &announcement.detail, now)
            .await;
    }

    /// Buffers an activity report for the batched write.
    pub(crate) fn record_activity(&self, batch: pb::ActivityBatch, now: EpochMillis) {
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

    /// The gateway reports that a session ended.
    pub(crate) async fn close_session(&mut self, closed: pb::SessionClosed, now: EpochMillis) -> ServiceResult<()> {
        let session_id = validate::session_id("session_closed.session_id", &closed.session_id)?;
        let reason = match EndReason::try_from(closed.reason) {
            Ok(EndReason::Unspecified) => EndReason::UserClosed,
            Ok(reason) => reason,
            Err(_) => {
                return Err(ServiceError::invalid(format!(
                    "session_closed.reason {} is not a known end reason",
                    closed.reason
                )));
            }
        };
        let detail = validate::optional_name("session_closed.detail", &closed.detail)?.unwrap_or_default();
        let ended_at = validate::optional_timestamp("session_closed.ended_at", closed.ended_at.as_ref())?
            .map_or(now, |at| at.min(now));
        self.owned.remove(&session_id);
        let end = SessionEnd {
            ended_at,
            reason,
            detail,
        };
        let inner = &self.registry.inner;
        if let Some(last) = inner.activity.take_session(&session_id) {
            // The session's final input and byte counts, written before it ends (best effort, as
            // activity is: a failure costs the final figures, not the end).
            let idle_after_ms = inner.settings.idle_after_ms();
            if let Err(error) = inner
                .store
                .apply_activity(Some(&self.gateway_id), &[last], now, idle_after_ms)
                .await
            {
                tracing::warn!(%error, session = %session_id, "could not write a closing session's last activity");
            }
        }
        if let Some(session) = inner
            .store
            .end_session(&session_id, Some(&self.gateway_id), &end)
            .await?
        {
            inner.announce_ended_one(&session, now).await;
        }
        Ok(())
    }

    /// A message is about to go down the link: the kills among it are remembered, so that their
    /// acknowledgement ends the session with the command's reason. Returns the kill's command id.
    pub(crate) fn carry(&mut self, message: &pb::ControllerMessage) -> Option<String> {
        match &message.message {
            Some(pb::controller_message::Message::Terminate(command)) => {
                self.in_flight.insert(command.command_id.clone(), command.clone());
                Some(command.command_id.clone())
            }
            _ => None,
        }
    }

    /// Reads this gateway's pending kills again, on a task of its own (the link's loop does not
    /// wait on termination): after a bus break, whatever was published meanwhile was lost.
    /// Also a moment after a link opens: a kill whose record was not yet committed when the
    /// welcome's pending kills were read was published while no replica held the gateway's
    /// channel, and would otherwise wait for termination's re-send, seconds later.
    pub(crate) fn fetch_pending(
        &self,
        after: std::time::Duration,
    ) -> tokio::task::JoinHandle<Vec<pb::TerminateCommand>> {
        let registry = self.registry.clone();
        let gateway_id = self.gateway_id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            pending_commands(&registry.inner, &gateway_id).await
        })
    }

    /// A kill went down the link: the termination service learns it was delivered.
    pub(crate) fn delivered(&self, command_id: String) {
        self.registry.inner.reporter.report(pb::CommandReport {
            command_id,
            gateway_id: self.gateway_id.clone(),
            state: pb::DeliveryState::Delivered as i32,
            outcome: pb::CommandOutcome::Unspecified as i32,
            detail: String::new(),
            at: Some(vigil_proto::timestamp_from_millis(now_millis())),
        });
    }

    /// The agent carried out (or could not carry out) a command: end the session with the
    /// command's reason, and tell the termination service.
    pub(crate) fn acknowledge(&mut self, ack: pb::CommandAck, now: EpochMillis) -> ServiceResult<()> {
        let outcome = match pb::CommandOutcome::try_from(ack.outcome) {
            Ok(pb::CommandOutcome::Unspecified) | Err(_) => {
                return Err(ServiceError::invalid(format!(
                    "command_ack.outcome {} must be DONE, NOT_FOUND or FAILED",
                    ack.outcome
                )));
            }
            Ok(outcome) => outcome,
        };
        let detail = validate::optional_name("command_ack.detail", &ack.detail)?.unwrap_or_default();
        let command = self.in_flight.remove(&ack.command_id);
        crate::metrics::kill_acknowledged(outcome, command.as_ref(), now);
        let report = pb::CommandReport {
            command_id: ack.command_id,
            gateway_id: self.gateway_id.clone(),
            state: pb::DeliveryState::Acknowledged as i32,
            outcome: outcome as i32,
            detail,
            at: Some(vigil_proto::timestamp_from_millis(now)),
        };
        match command {
            // The session ends with the kill's reason (NOT_FOUND too: the gateway does not hold it
            // any more, so it is not live either). The writer reports the acknowledgement once the
            // end is written, retrying while the database is away; the link goes on meanwhile.
            Some(command) if matches!(outcome, pb::CommandOutcome::Done | pb::CommandOutcome::NotFound) => {
                self.owned.remove(&command.session_id);
                let end = GatewayEnd {
                    end: command_end(&command, now),
                    session_id: command.session_id,
                    gateway_id: self.gateway_id.clone(),
                };
                self.registry.inner.ender.end(end, report);
            }
            Some(_) => self.registry.inner.reporter.report(report),
            None => {
                // Acknowledged on a link that did not carry it (the agent reconnected in between):
                // the termination service still records it; the session's end arrives with the
                // agent's snapshot or the re-sent command.
                tracing::debug!(gateway = %self.gateway_id, command = %report.command_id, "acknowledgement for a command this link did not carry");
                self.registry.inner.reporter.report(report);
            }
        }
        Ok(())
    }

    /// Notes that the gateway was heard from; the replica writes it with the other gateways' in one
    /// batch (see `liveness`).
    pub(crate) fn touch(&mut self, now: EpochMillis) {
        self.last_heard = now;
        self.registry.inner.seen.heard(&self.gateway_id, now);
    }

    /// Forgets the link. `last_heard` is when the gateway was last heard from: when the link closes,
    /// unless it closes for silence (then it was last heard from before).
    pub(crate) async fn close(self, last_heard: EpochMillis) {
        crate::metrics::agent_stream_closed();
        let inner = &self.registry.inner;
        // Only the last link of this gateway here records the disconnect (a newer one may be open).
        let still_linked_here = {
            let mut links = inner.links.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if links.get(&self.gateway_id).is_some_and(|(id, _)| *id == self.link_id) {
                links.remove(&self.gateway_id);
            }
            links.contains_key(&self.gateway_id)
        };
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

/// Kills issued while the gateway was away. Read after subscribing, so one issued right now arrives
/// either here or on the channel (or both: the agent acknowledges duplicates).
async fn pending_commands(inner: &Inner, gateway_id: &str) -> Vec<pb::TerminateCommand> {
    let Some(journal) = inner.journal.get() else {
        return Vec::new();
    };
    journal.pending_commands(gateway_id).await.unwrap_or_else(|error| {
        // They are re-sent on the channel by the termination service's redelivery.
        tracing::warn!(gateway = %gateway_id, %error, "could not read pending commands; relying on redelivery");
        Vec::new()
    })
}

/// A session the gateway no longer holds but that was being killed ended by the kill, not by
/// loss: record it with the kill's reason.
async fn end_killed_while_away(
    inner: &Inner,
    hello: &ValidHello,
    pending: &[pb::TerminateCommand],
    now: EpochMillis,
) -> ServiceResult<()> {
    let held: HashSet<&str> = hello.snapshot.iter().map(|session| session.id.as_str()).collect();
    for command in pending
        .iter()
        .filter(|command| !held.contains(command.session_id.as_str()))
    {
        let end = command_end(command, now);
        if let Some(session) = inner
            .store
            .end_session(&command.session_id, Some(&hello.gateway_id), &end)
            .await?
        {
            inner.announce_ended_one(&session, now).await;
        }
    }
    Ok(())
}

/// Sessions ended because the gateway was lost, that it turns out to still hold, are live again:
/// the snapshot is the truth of what the gateway holds. Before reconciling, which then finds them
/// live and known. Returns how many.
async fn revive_still_held(inner: &Inner, hello: &ValidHello, now: EpochMillis) -> ServiceResult<usize> {
    let held: Vec<String> = hello.snapshot.iter().map(|session| session.id.clone()).collect();
    let revived = inner
        .store
        .revive_lost_sessions(&hello.gateway_id, &held, now, inner.settings.idle_after_ms())
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
    Ok(revived.len())
}

/// Sessions the registry had live on the gateway that it no longer holds end as LOST; sessions it
/// holds that the registry did not know are registered; those it knew may carry newer activity.
async fn reconcile(inner: &Inner, hello: &ValidHello, now: EpochMillis) -> ServiceResult<Reconciliation> {
    let idle_after_ms = inner.settings.idle_after_ms();
    let held: Vec<SessionRecord> = hello
        .snapshot
        .iter()
        .map(|session| snapshot_record(&hello.gateway_id, session, now, idle_after_ms))
        .collect();
    let lost = SessionEnd {
        ended_at: now,
        reason: EndReason::Lost,
        detail: "the gateway no longer held the session when its agent reconnected".into(),
    };
    let reconciliation = inner.store.reconcile_gateway(&hello.gateway_id, &held, &lost).await?;
    inner.announce_ended(&reconciliation.ended, now).await;
    inner
        .events
        .publish_all(pb::SessionEventKind::Opened, &reconciliation.registered, now)
        .await;
    for session in &hello.snapshot {
        inner.activity.record(PendingActivity {
            session_id: session.id.clone(),
            last_input_at: session.last_activity_at.map(|at| at.min(now)),
            bytes_in: session.bytes_in,
            bytes_out: session.bytes_out,
        });
    }
    Ok(reconciliation)
}

/// Registers a new link for the gateway on this replica, closing an older one; returns its id and
/// its cancellation.
fn register(inner: &Inner, gateway_id: &str) -> (u64, CancellationToken) {
    let link_id = inner.next_link_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let closed = inner.shutdown.child_token();
    let superseded = inner
        .links
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(gateway_id.to_owned(), (link_id, closed.clone()));
    if let Some((_, older)) = superseded {
        older.cancel();
    }
    (link_id, closed)
}

/// The first message down a new link.
fn welcome(inner: &Inner, reconciliation: &Reconciliation) -> pb::ControllerMessage {
    let ids = |sessions: &[SessionRecord]| sessions.iter().map(|session| session.id.clone()).collect();
    pb::ControllerMessage {
        trace_context: Default::default(),
        message: Some(pb::controller_message::Message::Welcome(pb::Welcome {
            replica: inner.settings.replica.clone(),
            ended_session_ids: ids(&reconciliation.ended),
            registered_session_ids: ids(&reconciliation.registered),
            activity_interval_ms: millis_u32(inner.settings.agent_activity_interval),
            heartbeat_interval_ms: millis_u32(inner.settings.agent_heartbeat_interval),
        })),
    }
}

/// A session start the gateway asks about, as the registry records it if admitted.
fn new_session(gateway_id: &str, start: ValidStart, now: EpochMillis) -> SessionRecord {
    let started_at = start.started_at.map_or(now, |at| at.min(now));
    SessionRecord {
        id: uuid::Uuid::now_v7().to_string(),
        user: start.user,
        user_groups: start.user_groups,
        gateway_id: gateway_id.to_owned(),
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
fn snapshot_record(gateway_id: &str, session: &SnapshotSession, now: EpochMillis, idle_after_ms: i64) -> SessionRecord {
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

fn millis_u32(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}
