//! The agent's local state: the sessions the gateway holds, what is waiting to be said to the registry,
//! and the current link's outbound queue.
//!
//! Everything here is synchronous and lives behind one `std::sync::Mutex`, so that a state change and the
//! message that reports it happen together: a session cannot, say, leave the table after a hello's snapshot
//! was taken but before its `SessionClosed` was queued on the old link. Sends use `try_send` on a deep
//! queue; a full queue means the registry stopped reading, and the link is marked broken so the link task
//! reconnects (everything that matters is then carried by the next hello's snapshot).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use prost_types::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use vigil_proto::v1::agent_message::Message;
use vigil_proto::v1::{
    ActivityBatch, AdmissionDecision, AgentMessage, CommandAck, CommandOutcome, EndReason, Lock, LockUpdate,
    SessionActivity, SessionClosed, SessionOpened, SessionStart, SnapshotSession, TerminateCommand,
};

use crate::locks::LockSet;
use crate::{AgentError, CommandResult, validate};

/// How many completed command ids are remembered to acknowledge re-sends without acting twice. The registry
/// re-sends an unacknowledged command within seconds, so a few thousand covers any burst a gateway sees.
pub(crate) const COMPLETED_COMMANDS_REMEMBERED: usize = 4096;

/// Detail of the `SessionClosed` sent for a session the registry admitted after the gateway stopped waiting.
const ABANDONED_ADMISSION: &str = "the gateway stopped waiting for the admission decision";

/// What a user whose session the agent ends in strict fail mode reads.
pub(crate) const FAILED_CLOSED_MESSAGE: &str =
    "Your session was ended because this gateway lost contact with the access control service. Try again shortly.";

/// A session the gateway holds, as the agent knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldSession {
    /// The id the registry gave the session at admission.
    pub session_id: String,
    /// The session's details as sent in the admission request.
    pub start: SessionStart,
    /// When the agent received the admission.
    pub admitted_at: SystemTime,
    /// The latest user input reported through [`Agent::record_activity`](crate::Agent::record_activity).
    pub last_input_at: Option<SystemTime>,
    /// Bytes from client to resource so far.
    pub bytes_in: u64,
    /// Bytes from resource to client so far.
    pub bytes_out: u64,
}

impl HeldSession {
    fn snapshot(&self) -> SnapshotSession {
        SnapshotSession {
            session_id: self.session_id.clone(),
            start: Some(self.start.clone()),
            // A user who never typed was last active when they connected.
            last_activity_at: Some(Timestamp::from(self.last_input_at.unwrap_or(self.admitted_at))),
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
        }
    }
}

/// One held session plus its reporting state.
#[derive(Debug)]
struct Entry {
    session: HeldSession,
    /// The latest input not yet reported in an activity batch.
    unreported_input: Option<SystemTime>,
    /// Something changed since the last batch.
    dirty: bool,
    /// A terminate command for it is being carried out; the acknowledgement reports its end.
    terminating: bool,
}

/// A close that happened while the link was down: the session stays in the next hello's snapshot (so the
/// registry does not end it as lost) and the `SessionClosed` follows the `Welcome`.
#[derive(Debug)]
struct PendingClose {
    session: HeldSession,
    closed: SessionClosed,
}

/// An admission request waiting for its decision.
#[derive(Debug)]
struct PendingAdmission {
    start: SessionStart,
    waiter: oneshot::Sender<AdmissionDecision>,
}

/// The outbound half of the current link.
#[derive(Debug, Clone)]
pub(crate) struct LinkSender {
    pub(crate) tx: mpsc::Sender<AgentMessage>,
    /// Cancelled when a send fails, so the link task tears the link down.
    pub(crate) broken: CancellationToken,
}

/// What to do with a terminate command that just arrived.
#[derive(Debug, PartialEq)]
pub(crate) enum CommandStart {
    /// Acknowledged already (a re-send, or a session not held): nothing to carry out.
    Answered,
    /// The same command is being carried out; its acknowledgement will follow.
    InFlight,
    /// Carry it out through the handler, then call [`LocalState::finish_command`].
    Run,
}

/// Ids of commands being carried out and of recently completed ones with their acknowledgement.
#[derive(Debug)]
pub(crate) struct CommandLog {
    in_flight: HashSet<String>,
    completed: HashMap<String, CommandAck>,
    /// Completion order, oldest first, to forget the oldest when full.
    order: VecDeque<String>,
    capacity: usize,
}

impl CommandLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            in_flight: HashSet::new(),
            completed: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn completed(&self, command_id: &str) -> Option<&CommandAck> {
        self.completed.get(command_id)
    }

    fn is_in_flight(&self, command_id: &str) -> bool {
        self.in_flight.contains(command_id)
    }

    fn start(&mut self, command_id: &str) {
        self.in_flight.insert(command_id.to_owned());
    }

    /// Records the acknowledgement of a command, forgetting the oldest completed one when full.
    fn complete(&mut self, ack: CommandAck) {
        self.in_flight.remove(&ack.command_id);
        if self.completed.insert(ack.command_id.clone(), ack.clone()).is_some() {
            return;
        }
        self.order.push_back(ack.command_id);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.completed.remove(&oldest);
            }
        }
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.completed.len()
    }
}

/// Everything the agent knows locally. See the module documentation for why it is one lock.
#[derive(Debug)]
pub(crate) struct LocalState {
    sessions: HashMap<String, Entry>,
    pending_closes: Vec<PendingClose>,
    admissions: HashMap<String, PendingAdmission>,
    commands: CommandLog,
    locks: LockSet,
    link: Option<LinkSender>,
    /// Strict fail mode ended the sessions after the link stayed down too long: admissions are refused
    /// until the next welcome.
    failed_closed: bool,
    /// Messages queued so far on any link; the heartbeat goes out only when this did not move.
    sent: u64,
    /// The status of the last refused hello, until an attempt ends differently.
    pub(crate) rejection: Option<tonic::Status>,
}

impl LocalState {
    pub(crate) fn new() -> Self {
        Self {
            sessions: HashMap::new(),
            pending_closes: Vec::new(),
            admissions: HashMap::new(),
            commands: CommandLog::new(COMPLETED_COMMANDS_REMEMBERED),
            locks: LockSet::default(),
            link: None,
            failed_closed: false,
            sent: 0,
            rejection: None,
        }
    }

    /// Queues a message on the current link. False when there is no link or it cannot take the message
    /// (then the link is marked broken and dropped from the state).
    pub(crate) fn send(&mut self, message: Message) -> bool {
        let Some(link) = &self.link else { return false };
        match link.tx.try_send(AgentMessage {
            trace_context: crate::trace::current_map(),
            message: Some(message),
        }) {
            Ok(()) => {
                self.sent += 1;
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot queue a message for the registry; reconnecting");
                link.broken.cancel();
                self.link = None;
                false
            }
        }
    }

    /// How many messages were queued so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    pub(crate) fn is_linked(&self) -> bool {
        self.link.is_some()
    }

    /// The snapshot for a hello: every held session, including those closed while the link was down.
    pub(crate) fn snapshot(&self) -> Vec<SnapshotSession> {
        let held = self.sessions.values().map(|entry| entry.session.snapshot());
        let closing = self.pending_closes.iter().map(|pending| pending.session.snapshot());
        held.chain(closing).collect()
    }

    /// The registry welcomed the agent on this link: use it, and send the closes that waited for it.
    /// `ended` are sessions the registry ended because they were missing from the snapshot.
    pub(crate) fn link_up(&mut self, link: LinkSender, ended: &[String]) {
        self.link = Some(link);
        self.failed_closed = false;
        for session_id in ended {
            // Missing from the snapshot means not in the table; this only guards against a confused registry.
            if self.sessions.remove(session_id).is_some() {
                tracing::warn!(session_id, "registry ended a session the gateway still holds");
            }
        }
        let pending = std::mem::take(&mut self.pending_closes);
        let mut pending = pending.into_iter();
        while let Some(close) = pending.next() {
            if !self.send(Message::SessionClosed(close.closed.clone())) {
                // The link broke already: keep this close and the rest for the next one.
                self.pending_closes.push(close);
                self.pending_closes.extend(pending);
                break;
            }
        }
    }

    /// The link is gone: no more sends, and every admission waiting on it fails (its waiter sees the
    /// sender dropped and reports `Unavailable`).
    pub(crate) fn link_down(&mut self) {
        self.link = None;
        self.admissions.clear();
    }

    /// Registers an admission request and queues its `SessionOpened`.
    pub(crate) fn request_admission(
        &mut self,
        request_id: String,
        start: SessionStart,
        waiter: oneshot::Sender<AdmissionDecision>,
    ) -> Result<(), AgentError> {
        if !self.is_linked() {
            return Err(AgentError::Unavailable);
        }
        let opened = SessionOpened {
            request_id: request_id.clone(),
            start: Some(start.clone()),
        };
        if !self.send(Message::SessionOpened(opened)) {
            return Err(AgentError::Unavailable);
        }
        self.admissions.insert(request_id, PendingAdmission { start, waiter });
        Ok(())
    }

    /// Forgets an admission request whose caller stopped waiting. False when its decision already came.
    pub(crate) fn abandon_admission(&mut self, request_id: &str) -> bool {
        self.admissions.remove(request_id).is_some()
    }

    /// A decision arrived: hand it to its waiter and, when allowed, hold the session. An allowed session
    /// nobody waits for any more is closed at once, so the registry does not count a user who never got in.
    pub(crate) fn admission_decided(&mut self, decision: AdmissionDecision, now: SystemTime) {
        let allowed = decision.allowed;
        let session_id = decision.session_id.clone();
        let start = match self.admissions.remove(&decision.request_id) {
            Some(pending) => match pending.waiter.send(decision) {
                Ok(()) => Some(pending.start),
                Err(_) => None,
            },
            None => None,
        };
        if !allowed {
            return;
        }
        match start {
            Some(start) => {
                let session = HeldSession {
                    session_id: session_id.clone(),
                    start,
                    admitted_at: now,
                    last_input_at: None,
                    bytes_in: 0,
                    bytes_out: 0,
                };
                let entry = Entry {
                    session,
                    unreported_input: None,
                    dirty: false,
                    terminating: false,
                };
                self.sessions.insert(session_id, entry);
            }
            None => {
                tracing::info!(session_id, "admitted a session nobody waits for any more; closing it");
                self.send(Message::SessionClosed(SessionClosed {
                    session_id,
                    reason: EndReason::GatewayClosed as i32,
                    detail: ABANDONED_ADMISSION.to_owned(),
                    ended_at: Some(Timestamp::from(now)),
                }));
            }
        }
    }

    /// Notes activity of a held session. Running totals replace the previous ones; the input time only
    /// moves forward. Unknown sessions are ignored.
    pub(crate) fn record_activity(
        &mut self,
        session_id: &str,
        last_input_at: Option<SystemTime>,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let Some(entry) = self.sessions.get_mut(session_id) else {
            tracing::debug!(session_id, "activity for a session the agent does not hold");
            return;
        };
        let session = &mut entry.session;
        let mut changed = session.bytes_in != bytes_in || session.bytes_out != bytes_out;
        session.bytes_in = bytes_in;
        session.bytes_out = bytes_out;
        if let Some(input) = last_input_at {
            changed = true;
            session.last_input_at = session.last_input_at.max(Some(input));
            entry.unreported_input = entry.unreported_input.max(Some(input));
        }
        entry.dirty |= changed;
    }

    /// The latest values of every session that changed since the last batch; marks them reported.
    pub(crate) fn take_activity(&mut self) -> Vec<SessionActivity> {
        self.sessions
            .values_mut()
            .filter(|entry| entry.dirty)
            .map(|entry| {
                entry.dirty = false;
                SessionActivity {
                    session_id: entry.session.session_id.clone(),
                    last_input_at: entry.unreported_input.take().map(Timestamp::from),
                    bytes_in: entry.session.bytes_in,
                    bytes_out: entry.session.bytes_out,
                }
            })
            .collect()
    }

    /// The gateway closed a session: drop it from the table and tell the registry, now or after the next
    /// `Welcome`. Closing a session that is being terminated, or not held at all, says nothing: the
    /// command's acknowledgement reports the first, the second is not the registry's concern.
    pub(crate) fn close(&mut self, session_id: &str, reason: EndReason, detail: &str, now: SystemTime) {
        let Some(entry) = self.sessions.remove(session_id) else {
            tracing::debug!(session_id, "close of a session the agent does not hold");
            return;
        };
        if entry.terminating {
            return;
        }
        // The activity since the last batch goes first, or the session's final input and byte counts
        // would be lost with it (the registry ignores activity for ended sessions).
        if entry.dirty {
            let last = SessionActivity {
                session_id: session_id.to_owned(),
                last_input_at: entry.unreported_input.map(Timestamp::from),
                bytes_in: entry.session.bytes_in,
                bytes_out: entry.session.bytes_out,
            };
            self.send(Message::Activity(ActivityBatch { sessions: vec![last] }));
        }
        let closed = SessionClosed {
            session_id: session_id.to_owned(),
            reason: reason as i32,
            detail: validate::detail(detail),
            ended_at: Some(Timestamp::from(now)),
        };
        if !self.send(Message::SessionClosed(closed.clone())) {
            self.pending_closes.push(PendingClose {
                session: entry.session,
                closed,
            });
        }
    }

    /// Drops a session without telling anyone (the gateway lost it).
    pub(crate) fn forget(&mut self, session_id: &str) -> bool {
        self.sessions.remove(session_id).is_some()
    }

    /// Decides what to do with an incoming terminate command, acknowledging it at once when there is
    /// nothing to carry out.
    pub(crate) fn begin_command(&mut self, command: &TerminateCommand) -> CommandStart {
        if let Some(ack) = self.commands.completed(&command.command_id) {
            let ack = ack.clone();
            self.send(Message::CommandAck(ack));
            return CommandStart::Answered;
        }
        if self.commands.is_in_flight(&command.command_id) {
            return CommandStart::InFlight;
        }
        match self.sessions.get_mut(&command.session_id) {
            Some(entry) if entry.terminating => {
                // Another command is ending this session right now (two kills crossed): this one
                // has nothing left to do, and the gateway's handler runs once per session.
                let ack = ack_of(
                    command,
                    CommandOutcome::NotFound,
                    "already being ended by another command".to_owned(),
                );
                self.commands.complete(ack.clone());
                self.send(Message::CommandAck(ack));
                CommandStart::Answered
            }
            Some(entry) => {
                entry.terminating = true;
                self.commands.start(&command.command_id);
                CommandStart::Run
            }
            None => {
                let ack = ack_of(command, CommandOutcome::NotFound, String::new());
                self.commands.complete(ack.clone());
                self.send(Message::CommandAck(ack));
                CommandStart::Answered
            }
        }
    }

    /// The handler carried out a command: update the table, remember the outcome, acknowledge it on the
    /// current link (when there is none, the registry re-sends the command and the log answers it).
    pub(crate) fn finish_command(&mut self, command: &TerminateCommand, result: &CommandResult) {
        match result {
            CommandResult::Done | CommandResult::NotFound => {
                self.sessions.remove(&command.session_id);
            }
            CommandResult::Failed(_) => {
                if let Some(entry) = self.sessions.get_mut(&command.session_id) {
                    entry.terminating = false;
                }
            }
        }
        let (outcome, detail) = result.outcome();
        let ack = ack_of(command, outcome, validate::detail(&detail));
        self.commands.complete(ack.clone());
        self.send(Message::CommandAck(ack));
    }

    /// Whether the gateway holds this session (for forwarding idle warnings).
    pub(crate) fn holds(&self, session_id: &str) -> bool {
        self.sessions.contains_key(session_id)
    }

    pub(crate) fn sessions(&self) -> Vec<HeldSession> {
        self.sessions.values().map(|entry| entry.session.clone()).collect()
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub(crate) fn locks(&self) -> Vec<Lock> {
        self.locks.locks().to_vec()
    }

    /// Takes a lock update unless it is older than the set held; the new locks when they changed.
    pub(crate) fn apply_locks(&mut self, update: LockUpdate) -> Option<Vec<Lock>> {
        self.locks.apply(update).then(|| self.locks())
    }

    /// The lock in force at `now` that refuses this start on `gateway_id`, if any.
    pub(crate) fn refusing(&self, start: &SessionStart, gateway_id: &str, now: SystemTime) -> Option<Lock> {
        self.locks.refusing(start, gateway_id, now).cloned()
    }

    /// Whether strict fail mode is refusing admissions (until the next welcome).
    pub(crate) fn is_failed_closed(&self) -> bool {
        self.failed_closed
    }

    /// Strict fail mode, once the link has been down for longer than the grace period: from now on admissions
    /// are refused until the next welcome, and every held session is to be ended through the gateway's
    /// handler. Returns the commands to hand to the handler (the sessions are marked as being ended, so
    /// a registry kill arriving meanwhile does not run the handler twice), or `None` when a link came
    /// up in the meantime.
    pub(crate) fn fail_closed(&mut self, now: SystemTime) -> Option<Vec<TerminateCommand>> {
        if self.is_linked() {
            return None;
        }
        self.failed_closed = true;
        let commands = self
            .sessions
            .values_mut()
            .filter(|entry| !entry.terminating)
            .map(|entry| {
                entry.terminating = true;
                TerminateCommand {
                    // Local: never acknowledged to the registry, which learns the end from the close.
                    command_id: format!("fail-closed-{}", entry.session.session_id),
                    termination_id: String::new(),
                    session_id: entry.session.session_id.clone(),
                    reason: EndReason::GatewayLost as i32,
                    user_message: FAILED_CLOSED_MESSAGE.to_owned(),
                    issued_at: Some(Timestamp::from(now)),
                }
            })
            .collect();
        Some(commands)
    }

    /// The handler carried out a strict-mode end: the session leaves the table, and its close (reason
    /// `GATEWAY_LOST`) goes to the registry now or, as usual while the link is down, after the next
    /// welcome. A failed end keeps the session (the gateway could not end it).
    pub(crate) fn finish_local_end(
        &mut self,
        command: &TerminateCommand,
        result: &CommandResult,
        grace: Duration,
        now: SystemTime,
    ) {
        let Some(entry) = self.sessions.remove(&command.session_id) else {
            return;
        };
        if let CommandResult::Failed(detail) = result {
            tracing::warn!(
                session_id = command.session_id,
                detail,
                "the gateway could not end a session in strict fail mode; it keeps running"
            );
            let mut entry = entry;
            entry.terminating = false;
            self.sessions.insert(command.session_id.clone(), entry);
            return;
        }
        let closed = SessionClosed {
            session_id: command.session_id.clone(),
            reason: EndReason::GatewayLost as i32,
            detail: validate::detail(&format!(
                "ended by the gateway's agent: the link to the registry was down for longer than {grace:?} (strict fail mode)"
            )),
            ended_at: Some(Timestamp::from(now)),
        };
        if !self.send(Message::SessionClosed(closed.clone())) {
            self.pending_closes.push(PendingClose {
                session: entry.session,
                closed,
            });
        }
    }
}

fn ack_of(command: &TerminateCommand, outcome: CommandOutcome, detail: String) -> CommandAck {
    CommandAck {
        command_id: command.command_id.clone(),
        session_id: command.session_id.clone(),
        outcome: outcome as i32,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vigil_proto::v1::ResourceType;

    use super::*;

    fn start(user: &str) -> SessionStart {
        SessionStart {
            user: user.into(),
            resource_name: "prod-db-01".into(),
            resource_type: ResourceType::Ssh as i32,
            device: "alice-macbook".into(),
            client_ip: "81.2.69.142".into(),
            started_at: None,
            user_groups: vec![],
        }
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    /// A state with a live link, and the receiving end of that link.
    fn linked() -> (LocalState, mpsc::Receiver<AgentMessage>) {
        let (tx, rx) = mpsc::channel(64);
        let mut state = LocalState::new();
        state.link_up(
            LinkSender {
                tx,
                broken: CancellationToken::new(),
            },
            &[],
        );
        (state, rx)
    }

    fn drain(rx: &mut mpsc::Receiver<AgentMessage>) -> Vec<Message> {
        let mut messages = Vec::new();
        while let Ok(message) = rx.try_recv() {
            messages.extend(message.message);
        }
        messages
    }

    /// Admits a session through the real request/decision path.
    fn admit(state: &mut LocalState, request_id: &str, session_id: &str) {
        let (waiter, mut received) = oneshot::channel();
        state
            .request_admission(request_id.into(), start("alice@acme.example"), waiter)
            .unwrap();
        let decision = AdmissionDecision {
            request_id: request_id.into(),
            allowed: true,
            session_id: session_id.into(),
            ..Default::default()
        };
        state.admission_decided(decision, at(0));
        assert!(received.try_recv().is_ok());
    }

    #[test]
    fn activity_is_coalesced_to_the_latest_values_per_session() {
        let (mut state, _rx) = linked();
        admit(&mut state, "r1", "s1");
        admit(&mut state, "r2", "s2");

        state.record_activity("s1", Some(at(10)), 100, 1_000);
        state.record_activity("s1", Some(at(12)), 150, 2_000);
        // An older input time arriving late does not move the clock back.
        state.record_activity("s1", Some(at(11)), 200, 3_000);
        state.record_activity("unknown", Some(at(12)), 1, 1);

        let batch = state.take_activity();
        assert_eq!(batch.len(), 1, "only s1 changed: {batch:?}");
        assert_eq!(batch[0].session_id, "s1");
        assert_eq!(batch[0].last_input_at, Some(Timestamp::from(at(12))));
        assert_eq!((batch[0].bytes_in, batch[0].bytes_out), (200, 3_000));

        // Nothing changed since: nothing to send.
        assert!(state.take_activity().is_empty());
        // The same totals again are no change either.
        state.record_activity("s1", None, 200, 3_000);
        assert!(state.take_activity().is_empty());

        // Bytes without input: reported, with no input time (none since the last batch).
        state.record_activity("s1", None, 250, 3_000);
        let batch = state.take_activity();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].last_input_at, None);
        assert_eq!(batch[0].bytes_in, 250);
    }

    #[test]
    fn the_snapshot_carries_the_latest_activity() {
        let (mut state, _rx) = linked();
        admit(&mut state, "r1", "s1");
        let snapshot = state.snapshot();
        assert_eq!(snapshot.len(), 1);
        // Never typed: last active at admission.
        assert_eq!(snapshot[0].last_activity_at, Some(Timestamp::from(at(0))));
        state.record_activity("s1", Some(at(30)), 5, 6);
        let snapshot = state.snapshot();
        assert_eq!(snapshot[0].last_activity_at, Some(Timestamp::from(at(30))));
        assert_eq!((snapshot[0].bytes_in, snapshot[0].bytes_out), (5, 6));
    }

    #[test]
    fn admission_needs_a_link() {
        let mut state = LocalState::new();
        let (waiter, _rx) = oneshot::channel();
        assert!(matches!(
            state.request_admission("r1".into(), start("a@b"), waiter),
            Err(AgentError::Unavailable)
        ));
    }

    #[test]
    fn link_down_fails_the_waiting_admissions() {
        let (mut state, _rx) = linked();
        let (waiter, mut decision) = oneshot::channel();
        state.request_admission("r1".into(), start("a@b"), waiter).unwrap();
        state.link_down();
        assert!(matches!(decision.try_recv(), Err(oneshot::error::TryRecvError::Closed)));
    }

    #[test]
    fn an_admission_nobody_waits_for_is_closed_at_once() {
        let (mut state, mut rx) = linked();
        let (waiter, decision) = oneshot::channel();
        state.request_admission("r1".into(), start("a@b"), waiter).unwrap();
        drop(decision);
        let allowed = AdmissionDecision {
            request_id: "r1".into(),
            allowed: true,
            session_id: "s1".into(),
            ..Default::default()
        };
        state.admission_decided(allowed, at(1));
        assert_eq!(state.session_count(), 0);
        let messages = drain(&mut rx);
        assert!(
            matches!(&messages[..], [Message::SessionOpened(_), Message::SessionClosed(closed)]
            if closed.session_id == "s1" && closed.reason == EndReason::GatewayClosed as i32)
        );
    }

    #[test]
    fn a_close_while_offline_stays_in_the_snapshot_until_welcome() {
        let (mut state, mut rx) = linked();
        admit(&mut state, "r1", "s1");
        admit(&mut state, "r2", "s2");
        state.link_down();
        drain(&mut rx);

        state.close("s1", EndReason::UserClosed, "logout", at(5));
        assert_eq!(state.session_count(), 1);
        let mut in_snapshot: Vec<String> = state.snapshot().into_iter().map(|s| s.session_id).collect();
        in_snapshot.sort();
        assert_eq!(in_snapshot, ["s1", "s2"]);

        let (tx, mut new_rx) = mpsc::channel(8);
        state.link_up(
            LinkSender {
                tx,
                broken: CancellationToken::new(),
            },
            &[],
        );
        let messages = drain(&mut new_rx);
        assert!(matches!(&messages[..], [Message::SessionClosed(closed)] if closed.session_id == "s1"));
        let in_snapshot: Vec<String> = state.snapshot().into_iter().map(|s| s.session_id).collect();
        assert_eq!(in_snapshot, ["s2"]);
    }

    #[test]
    fn a_full_queue_marks_the_link_broken() {
        let (tx, _rx) = mpsc::channel(1);
        let broken = CancellationToken::new();
        let mut state = LocalState::new();
        state.link_up(
            LinkSender {
                tx,
                broken: broken.clone(),
            },
            &[],
        );
        assert!(state.send(Message::Heartbeat(Default::default())));
        assert!(!state.send(Message::Heartbeat(Default::default())));
        assert!(broken.is_cancelled());
        assert!(!state.is_linked());
        assert_eq!(state.sent(), 1);
    }

    fn command(command_id: &str, session_id: &str) -> TerminateCommand {
        TerminateCommand {
            command_id: command_id.into(),
            session_id: session_id.into(),
            user_message: "You have been disconnected by an administrator".into(),
            ..Default::default()
        }
    }

    fn acks(messages: &[Message]) -> Vec<(String, i32)> {
        messages
            .iter()
            .filter_map(|message| match message {
                Message::CommandAck(ack) => Some((ack.command_id.clone(), ack.outcome)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_command_runs_once_and_every_resend_is_acknowledged() {
        let (mut state, mut rx) = linked();
        admit(&mut state, "r1", "s1");
        drain(&mut rx);
        let kill = command("c1", "s1");

        assert_eq!(state.begin_command(&kill), CommandStart::Run);
        // A re-send while the handler works: no second run, the pending acknowledgement covers it.
        assert_eq!(state.begin_command(&kill), CommandStart::InFlight);
        // The gateway's teardown closes the session meanwhile: the ack reports it, no SessionClosed.
        state.close("s1", EndReason::UserClosed, "", at(3));
        state.finish_command(&kill, &CommandResult::Done);
        assert_eq!(state.session_count(), 0);
        // A re-send after completion: acknowledged again from the log.
        assert_eq!(state.begin_command(&kill), CommandStart::Answered);

        let messages = drain(&mut rx);
        let done = CommandOutcome::Done as i32;
        assert_eq!(acks(&messages), [("c1".to_owned(), done), ("c1".to_owned(), done)]);
        assert!(!messages.iter().any(|m| matches!(m, Message::SessionClosed(_))));
    }

    #[test]
    fn a_command_for_a_session_not_held_is_not_found() {
        let (mut state, mut rx) = linked();
        assert_eq!(state.begin_command(&command("c1", "nope")), CommandStart::Answered);
        assert_eq!(
            acks(&drain(&mut rx)),
            [("c1".to_owned(), CommandOutcome::NotFound as i32)]
        );
    }

    #[test]
    fn crossing_kills_of_one_session_run_the_handler_once() {
        let (mut state, mut rx) = linked();
        admit(&mut state, "r1", "s1");
        drain(&mut rx);
        let first = command("c1", "s1");
        let second = command("c2", "s1");
        assert_eq!(state.begin_command(&first), CommandStart::Run);
        // The second kill, while the first runs: answered at once, no second run.
        assert_eq!(state.begin_command(&second), CommandStart::Answered);
        state.finish_command(&first, &CommandResult::Done);
        assert_eq!(
            acks(&drain(&mut rx)),
            [
                ("c2".to_owned(), CommandOutcome::NotFound as i32),
                ("c1".to_owned(), CommandOutcome::Done as i32)
            ]
        );
    }

    #[test]
    fn a_failed_command_keeps_the_session() {
        let (mut state, mut rx) = linked();
        admit(&mut state, "r1", "s1");
        drain(&mut rx);
        let kill = command("c1", "s1");
        assert_eq!(state.begin_command(&kill), CommandStart::Run);
        state.finish_command(&kill, &CommandResult::Failed("backend hung".into()));
        assert_eq!(state.session_count(), 1);
        let messages = drain(&mut rx);
        assert!(matches!(&messages[..], [Message::CommandAck(ack)]
            if ack.outcome == CommandOutcome::Failed as i32 && ack.detail == "backend hung"));
        // No longer terminating: a normal close is reported again.
        state.close("s1", EndReason::UserClosed, "", at(4));
        assert!(matches!(&drain(&mut rx)[..], [Message::SessionClosed(_)]));
    }

    #[test]
    fn the_completed_command_log_is_bounded_and_forgets_the_oldest() {
        let mut log = CommandLog::new(100);
        for i in 0..250 {
            let id = format!("c{i}");
            log.start(&id);
            log.complete(CommandAck {
                command_id: id,
                ..Default::default()
            });
        }
        assert_eq!(log.remembered(), 100);
        assert_eq!(log.order.len(), 100);
        assert!(log.in_flight.is_empty());
        assert!(log.completed("c149").is_none());
        assert!(log.completed("c150").is_some());
        assert!(log.completed("c249").is_some());
        // Completing the same id twice does not take two places.
        log.complete(CommandAck {
            command_id: "c249".into(),
            ..Default::default()
        });
        assert_eq!(log.order.len(), 100);
    }

    #[test]
    fn the_agent_log_has_the_documented_bound() {
        let (mut state, _rx) = linked();
        for i in 0..COMPLETED_COMMANDS_REMEMBERED + 10 {
            state.begin_command(&command(&format!("c{i}"), "not-held"));
        }
        assert_eq!(state.commands.remembered(), COMPLETED_COMMANDS_REMEMBERED);
    }

    #[test]
    fn failing_closed_needs_the_link_down_and_marks_the_sessions_as_being_ended() {
        let (mut state, mut rx) = linked();
        admit(&mut state, "r1", "s1");
        admit(&mut state, "r2", "s2");
        // A link came up just before the grace period ran out: nothing to do.
        assert!(state.fail_closed(at(10)).is_none());
        assert!(!state.is_failed_closed());

        state.link_down();
        drain(&mut rx);
        let mut commands = state.fail_closed(at(40)).expect("down: fail closed");
        commands.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        assert_eq!(commands.len(), 2);
        assert_eq!(commands[0].session_id, "s1");
        assert_eq!(commands[0].reason, EndReason::GatewayLost as i32);
        assert_eq!(commands[0].user_message, FAILED_CLOSED_MESSAGE);
        assert!(state.is_failed_closed());
        let (waiter, _decision) = oneshot::channel();
        assert!(matches!(
            state.request_admission("r3".into(), start("a@b"), waiter),
            Err(AgentError::Unavailable)
        ));
        // Running again does not hand the same sessions over twice.
        assert_eq!(state.fail_closed(at(41)).map(|c| c.len()), Some(0));

        let grace = Duration::from_secs(30);
        state.finish_local_end(&commands[0], &CommandResult::Done, grace, at(42));
        state.finish_local_end(&commands[1], &CommandResult::Failed("stuck".into()), grace, at(42));
        assert_eq!(state.session_count(), 1, "a failed end keeps its session");
        // The ended one waits in the snapshot for the welcome, then its close goes out.
        let mut in_snapshot: Vec<String> = state.snapshot().into_iter().map(|s| s.session_id).collect();
        in_snapshot.sort();
        assert_eq!(in_snapshot, ["s1", "s2"]);
        let (tx, mut new_rx) = mpsc::channel(8);
        state.link_up(
            LinkSender {
                tx,
                broken: CancellationToken::new(),
            },
            &[],
        );
        assert!(!state.is_failed_closed());
        assert!(matches!(&drain(&mut new_rx)[..], [Message::SessionClosed(closed)]
            if closed.session_id == "s1" && closed.reason == EndReason::GatewayLost as i32 && closed.detail.contains("30s")));
        // The session that could not be ended is an ordinary one again: a kill runs for it.
        assert_eq!(state.begin_command(&command("c1", "s2")), CommandStart::Run);
    }

    #[test]
    fn a_registry_kill_crossing_a_strict_end_does_not_run_the_handler_twice() {
        let (mut state, mut rx) = linked();
        admit(&mut state, "r1", "s1");
        state.link_down();
        let commands = state.fail_closed(at(40)).expect("down");
        let (tx, mut new_rx) = mpsc::channel(8);
        state.link_up(
            LinkSender {
                tx,
                broken: CancellationToken::new(),
            },
            &[],
        );
        drain(&mut rx);
        // The link is back while the handler still works on the strict end; a kill arrives.
        assert_eq!(state.begin_command(&command("c1", "s1")), CommandStart::Answered);
        state.finish_local_end(&commands[0], &CommandResult::Done, Duration::from_secs(1), at(41));
        let messages = drain(&mut new_rx);
        assert_eq!(acks(&messages), [("c1".to_owned(), CommandOutcome::NotFound as i32)]);
        assert!(matches!(&messages[1..], [Message::SessionClosed(closed)] if closed.session_id == "s1"));
        assert_eq!(state.session_count(), 0);
    }
}
