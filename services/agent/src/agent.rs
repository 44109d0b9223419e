//! The handle a gateway holds: admissions, activity, closes, and what the agent currently knows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;
use vigil_proto::v1::{AdmissionDecision, EndReason, Location, Lock, Risk, SessionStart};

use crate::shared::{LinkState, Shared};
use crate::{AgentConfig, AgentError, FailMode, GatewayHandler, HeldSession, failsafe, link, locks, validate};

/// The registry's answer to [`Agent::open_session`].
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    /// Whether the gateway may let the user in.
    pub allowed: bool,
    /// The new session's id when allowed (empty otherwise).
    pub session_id: String,
    /// When refused: a sentence the gateway can show the user.
    pub reason: String,
    /// Where the client is, as far as the registry could tell.
    pub location: Option<Location>,
    /// How unusual the start is for this user.
    pub risk: Option<Risk>,
    /// Older sessions of the same user that the registry will end to make room (terminate commands follow).
    pub evicted_session_ids: Vec<String>,
    /// When the agent refused the start itself, from the lock set it holds: that lock (`reason` is its
    /// message). `None` for the registry's decisions.
    pub lock: Option<Lock>,
}

impl Admission {
    /// A refusal by a lock the agent holds, decided without the registry.
    fn locked(lock: Lock) -> Self {
        Self {
            allowed: false,
            session_id: String::new(),
            reason: locks::message_of(&lock),
            location: None,
            risk: None,
            evicted_session_ids: Vec::new(),
            lock: Some(lock),
        }
    }
}

impl From<AdmissionDecision> for Admission {
    fn from(decision: AdmissionDecision) -> Self {
        Self {
            allowed: decision.allowed,
            session_id: decision.session_id,
            reason: decision.reason,
            location: decision.location,
            risk: decision.risk,
            evicted_session_ids: decision.evicted_session_ids,
            lock: None,
        }
    }
}

/// Stops the link task when the last handle is dropped.
struct Inner {
    shared: Arc<Shared>,
    /// The link task, and the strict fail mode's watch when there is one.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    next_request: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// A gateway's agent: keeps the link to the registry and reports the gateway's sessions on it.
///
/// Cheap to clone; every clone drives the same link. The link task stops with [`Agent::shutdown`] or
/// when the last clone is dropped.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("gateway_id", &self.shared().config.gateway_id)
            .field("link_state", &*self.shared().link_state.borrow())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Starts the agent: spawns the link task, which connects (retrying with backoff), says hello and then
    /// keeps the link up. Returns at once; use [`Agent::wait_connected`] to wait for the link.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn start(config: AgentConfig, handler: Arc<dyn GatewayHandler>) -> Agent {
        let shared = Arc::new(Shared::new(config, handler));
        let mut tasks = vec![tokio::spawn(link::run(Arc::clone(&shared)))];
        if shared.config.fail_mode == FailMode::Strict {
            tasks.push(tokio::spawn(failsafe::run(Arc::clone(&shared))));
        }
        Agent {
            inner: Arc::new(Inner {
                shared,
                tasks: Mutex::new(tasks),
                next_request: AtomicU64::new(1),
            }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The gateway id this agent speaks for.
    pub fn gateway_id(&self) -> &str {
        &self.shared().config.gateway_id
    }

    /// Asks the registry whether a user may open a session, and waits for the decision.
    ///
    /// A start that a lock held by the agent covers (see [`Agent::lock_for`]) is refused at once, without
    /// asking the registry and whether or not the link is up: the refusal has `allowed: false`, the
    /// lock's message as `reason`, and the lock in [`Admission::lock`].
    ///
    /// Fails with [`AgentError::InvalidInput`] when `start` is malformed, at once with
    /// [`AgentError::Unavailable`] when the link is down (or if it drops while waiting), with
    /// [`AgentError::FailedClosed`] in strict fail mode once the link has been down for longer than
    /// the grace period, and with [`AgentError::Timeout`] after `admission_timeout`. When allowed, the
    /// session is in [`Agent::sessions`] by the time this returns. If the caller stops waiting (timeout
    /// or a dropped future) and the registry allows the session anyway, the agent closes it right away.
    ///
    /// Runs in an `agent.open_session` span (a child of the caller's current span), which the
    /// registry's admission continues: see the crate docs on tracing.
    pub async fn open_session(&self, start: SessionStart) -> Result<Admission, AgentError> {
        let span = tracing::info_span!(
            "agent.open_session",
            otel.kind = "client",
            gateway_id = %self.gateway_id(),
            user = %start.user,
            resource = %start.resource_name,
            allowed = tracing::field::Empty,
        );
        let admission = self.ask_admission(start).instrument(span.clone()).await;
        if let Ok(admission) = &admission {
            span.record("allowed", admission.allowed);
        }
        admission
    }

    async fn ask_admission(&self, start: SessionStart) -> Result<Admission, AgentError> {
        validate::session_start(&start)?;
        let request_id = format!("req-{}", self.inner.next_request.fetch_add(1, Ordering::Relaxed));
        let (waiter, mut decision) = oneshot::channel();
        {
            // One critical section: a lock update or a welcome cannot slip between the checks and the request.
            let mut state = self.shared().lock();
            if let Some(lock) = state.refusing(&start, self.gateway_id(), SystemTime::now()) {
                tracing::info!(
                    user = start.user,
                    lock_id = lock.id,
                    "refused a session start from the locks the agent holds"
                );
                return Ok(Admission::locked(lock));
            }
            if state.is_failed_closed() {
                return Err(AgentError::FailedClosed {
                    grace: self.shared().config.link_grace,
                });
            }
            state.request_admission(request_id.clone(), start, waiter)?;
        }
        let pending = PendingAdmission {
            shared: self.shared(),
            request_id: &request_id,
        };

        match tokio::time::timeout(self.shared().config.admission_timeout, &mut decision).await {
            Ok(Ok(decision)) => Ok(decision.into()),
            // The link dropped and took the request with it.
            Ok(Err(_)) => Err(AgentError::Unavailable),
            Err(_elapsed) => {
                if pending.abandon() {
                    return Err(AgentError::Timeout);
                }
                // The decision came while the timer fired: it is in the channel (or the link dropped).
                decision
                    .try_recv()
                    .map(Admission::from)
                    .map_err(|_| AgentError::Unavailable)
            }
        }
    }

    /// Notes a session's activity: the time of the latest user input (if there was input) and the byte
    /// counters so far (running totals). Never blocks on the network: the link task sends the latest values
    /// of every changed session once per activity interval. Activity of sessions not held is ignored.
    pub fn record_activity(&self, session_id: &str, last_input_at: Option<SystemTime>, bytes_in: u64, bytes_out: u64) {
        self.shared()
            .lock()
            .record_activity(session_id, last_input_at, bytes_in, bytes_out);
    }

    /// The gateway ended a session: removes it from the table and tells the registry.
    ///
    /// `reason` is [`EndReason::UserClosed`] or [`EndReason::GatewayClosed`]; any other reason is reported
    /// as `GatewayClosed` (the others are the registry's to give). If the link is down, the close waits:
    /// the session stays in the next hello's snapshot, so the registry does not end it as lost, and the
    /// close is sent right after the `Welcome`. Closing a session not held (already terminated by the
    /// registry, say) does nothing. `detail` is recorded by the registry; control characters become
    /// spaces and it is cut at 256 characters.
    #[allow(
        clippy::unused_async,
        reason = "public SDK API: callers await it, and a close may come to wait for the link"
    )]
    pub async fn close_session(&self, session_id: &str, reason: EndReason, detail: &str) {
        let reason = match reason {
            EndReason::UserClosed | EndReason::GatewayClosed => reason,
            other => {
                tracing::warn!(
                    session_id,
                    reason = other.as_str_name(),
                    "gateways close with USER_CLOSED or GATEWAY_CLOSED; reporting GATEWAY_CLOSED"
                );
                EndReason::GatewayClosed
            }
        };
        self.shared()
            .lock()
            .close(session_id, reason, detail, SystemTime::now());
    }

    /// Drops a session from the table without telling the registry, as if the gateway lost it without
    /// noticing (a crash of the process that carried it). The next hello's snapshot lacks it, so the
    /// registry ends it as lost. Returns whether the session was held.
    pub fn forget_session(&self, session_id: &str) -> bool {
        self.shared().lock().forget(session_id)
    }

    /// The sessions the gateway holds, in no particular order.
    pub fn sessions(&self) -> Vec<HeldSession> {
        self.shared().lock().sessions()
    }

    /// How many sessions the gateway holds.
    pub fn session_count(&self) -> usize {
        self.shared().lock().session_count()
    }

    /// The locks as last sent by the registry (kept across reconnections until the next update), expired
    /// ones included: [`Agent::lock_for`] judges expiry.
    pub fn locks(&self) -> Vec<Lock> {
        self.shared().lock().locks()
    }

    /// The lock, among those the agent holds and not expired by this machine's clock, that covers this
    /// start: its user, one of its groups, its resource, this gateway, its device, or a network holding
    /// its client IP. [`Agent::open_session`] refuses such a start itself; a gateway may also use this to
    /// check a session it holds.
    pub fn lock_for(&self, start: &SessionStart) -> Option<Lock> {
        self.shared()
            .lock()
            .refusing(start, self.gateway_id(), SystemTime::now())
    }

    /// Whether strict fail mode is in force: the link has been down for longer than the grace period,
    /// the sessions were ended, and admissions are refused until the link is back.
    pub fn is_failed_closed(&self) -> bool {
        self.shared().lock().is_failed_closed()
    }

    /// A receiver of the link state; `changed()` wakes on every transition.
    pub fn state(&self) -> watch::Receiver<LinkState> {
        self.shared().link_state.subscribe()
    }

    /// Whether the link is up right now.
    pub fn is_connected(&self) -> bool {
        matches!(*self.shared().link_state.borrow(), LinkState::Connected { .. })
    }

    /// Waits until the link is up.
    ///
    /// Fails with [`AgentError::Timeout`] when it is not up in time, with [`AgentError::Rejected`] as soon
    /// as the registry refuses the hello (wrong credential, invalid gateway id: waiting longer would not
    /// help; the agent keeps retrying at its longest backoff), and with [`AgentError::Unavailable`] once the
    /// agent is shut down.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), AgentError> {
        let mut states = self.state();
        let wait = async {
            loop {
                // Clone, so the watch's read lock is not held while taking the state lock below.
                let state = states.borrow_and_update().clone();
                match state {
                    LinkState::Connected { .. } => return Ok(()),
                    LinkState::Disconnected { .. } => {
                        if self.shared().shutdown.is_cancelled() {
                            return Err(AgentError::Unavailable);
                        }
                        if let Some(status) = self.shared().lock().rejection.clone() {
                            return Err(AgentError::Rejected(status));
                        }
                    }
                    LinkState::Connecting => {}
                }
                if states.changed().await.is_err() {
                    return Err(AgentError::Unavailable);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(AgentError::Timeout))
    }

    /// Stops the link task: ends the stream cleanly (the registry sees the agent leave rather than a
    /// broken connection) and waits for the task to finish. Afterwards admissions fail with
    /// [`AgentError::Unavailable`]. Calling it again does nothing.
    pub async fn shutdown(&self) {
        self.shared().shutdown.cancel();
        let tasks = std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, gateway_id = self.gateway_id(), "an agent task failed");
            }
        }
    }
}

/// An admission request in the state; forgotten when the caller stops waiting for any reason, including
/// the `open_session` future being dropped.
struct PendingAdmission<'a> {
    shared: &'a Shared,
    request_id: &'a str,
}

impl PendingAdmission<'_> {
    /// Forgets the request; false when its decision already came.
    fn abandon(&self) -> bool {
        self.shared.lock().abandon_admission(self.request_id)
    }
}

impl Drop for PendingAdmission<'_> {
    fn drop(&mut self) {
        self.abandon();
    }
}
