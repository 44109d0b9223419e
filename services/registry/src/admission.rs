//! Deciding on a session start: where it comes from and how unusual it is (geo), whether policy
//! lets it in (policy), and who has to make room (termination).
//!
//! Each service is reached through a trait, attached after the registry starts — in process in the
//! all-in-one binary, over gRPC otherwise — and each is optional: without geo, sessions carry no
//! location; without policy, every valid start is admitted.
//!
//! Failure stance: geo is advisory — when it cannot answer within `geo_timeout`, the session is
//! admitted and marked "location unavailable". Policy is authoritative — when it cannot answer,
//! `on_policy_unavailable` decides (admit, the default, so an outage of the policy service does not
//! lock everyone out; or deny, for those who prefer to fail closed).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use vigil_clients::{AdmissionPolicy, RiskAssessor, SessionEvictor};
use vigil_runtime::{ServiceError, ServiceResult};

/// What to do when the policy service cannot be asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyUnavailable {
    /// Admit (and log): availability first.
    #[default]
    Allow,
    /// Refuse: fail closed.
    Deny,
}

/// The registry's admission settings (the `[registry.admission]` section).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionSettings {
    /// How long geo may take before the session is admitted without a location.
    #[serde(with = "humantime_serde")]
    pub geo_timeout: Duration,
    /// How long policy may take before `on_policy_unavailable` applies.
    #[serde(with = "humantime_serde")]
    pub policy_timeout: Duration,
    pub on_policy_unavailable: PolicyUnavailable,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self {
            geo_timeout: Duration::from_millis(250),
            policy_timeout: Duration::from_secs(1),
            on_policy_unavailable: PolicyUnavailable::Allow,
        }
    }
}

/// The services admission uses, attached once each.
#[derive(Clone, Default)]
pub struct AdmissionHooks {
    pub(crate) assessor: Arc<OnceLock<Arc<dyn RiskAssessor>>>,
    pub(crate) policy: Arc<OnceLock<Arc<dyn AdmissionPolicy>>>,
    pub(crate) evictor: Arc<OnceLock<Arc<dyn SessionEvictor>>>,
}

/// Sessions released per call.
const RELEASE_CHUNK: usize = 10_000;
/// How often ended sessions are released to policy, in batches.
const RELEASE_INTERVAL: Duration = Duration::from_millis(50);

/// Tells policy, in batches, which sessions ended.
///
/// A start is decided only after the slots of its user's sessions that ended on this replica are
/// released ([`SlotReleaser::flush_for`]): a user at their concurrency limit who closes a session
/// and opens another at once gets in, instead of waiting for the next batch.
#[derive(Clone)]
pub struct SlotReleaser {
    queue: Arc<Mutex<ReleaseQueue>>,
    wake: Arc<Notify>,
    /// Held while a batch is on its way to policy, so a flush waits for the batch in flight.
    sending: Arc<tokio::sync::Mutex<()>>,
}

/// Ended sessions not yet released, and whose they are.
#[derive(Default)]
struct ReleaseQueue {
    ids: Vec<String>,
    /// The users of the queued sessions.
    users: HashSet<String>,
    /// The users of the batch on its way to policy.
    in_flight: HashSet<String>,
}

impl SlotReleaser {
    pub fn start(hooks: AdmissionHooks, shutdown: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        let releaser = Self {
            queue: Arc::default(),
            wake: Arc::new(Notify::new()),
            sending: Arc::default(),
        };
        let task = tokio::spawn(releaser.clone().run(hooks, shutdown));
        (releaser, task)
    }

    /// Queues ended sessions, given as (session id, user).
    pub fn release(&self, sessions: impl IntoIterator<Item = (String, String)>) {
        let mut queue = self.queue();
        for (id, user) in sessions {
            queue.ids.push(id);
            queue.users.insert(user);
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, ReleaseQueue> {
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Releases now whatever is queued, if any of it (queued or on its way) is `user`'s; returns
    /// once policy has it. Cheap when nothing of the user's is pending, which is most starts. The
    /// release runs as a task of its own, so a caller that stops waiting (a timeout) does not
    /// drop a batch half sent.
    pub async fn flush_for(&self, user: &str, policy: &Arc<dyn AdmissionPolicy>) -> ServiceResult<()> {
        {
            let queue = self.queue();
            if !queue.users.contains(user) && !queue.in_flight.contains(user) {
                return Ok(());
            }
        }
        let releaser = self.clone();
        let policy = policy.clone();
        tokio::spawn(async move { releaser.send(policy.as_ref()).await })
            .await
            .map_err(ServiceError::internal)?
    }

    /// Sends everything queued, a chunk at a time; what could not be sent goes back in the queue.
    async fn send(&self, policy: &dyn AdmissionPolicy) -> ServiceResult<()> {
        let _sending = self.sending.lock().await;
        let batch = {
            let mut queue = self.queue();
            queue.in_flight = std::mem::take(&mut queue.users);
            std::mem::take(&mut queue.ids)
        };
        let mut outcome = Ok(());
        let mut chunks = batch.chunks(RELEASE_CHUNK);
        while let Some(chunk) = chunks.next() {
            if let Err(error) = policy.release(chunk.to_vec()).await {
                let unsent: Vec<String> = std::iter::once(chunk).chain(chunks).flatten().cloned().collect();
                tracing::warn!(%error, sessions = unsent.len(), "could not release concurrency slots; will retry");
                let mut queue = self.queue();
                queue.ids.extend(unsent);
                let in_flight = std::mem::take(&mut queue.in_flight);
                queue.users.extend(in_flight);
                outcome = Err(error);
                break;
            }
        }
        self.queue().in_flight.clear();
        outcome
    }

    async fn run(self, hooks: AdmissionHooks, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(RELEASE_INTERVAL);
        loop {
            let stopping = tokio::select! {
                () = shutdown.cancelled() => true,
                _ = ticker.tick() => false,
                () = self.wake.notified() => false,
            };
            if let Some(policy) = hooks.policy.get() {
                // Failures are logged and queued again by `send`.
                let _ = self.send(policy.as_ref()).await;
            }
            if stopping {
                break;
            }
        }
    }
}
