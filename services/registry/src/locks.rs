//! The lock set, followed on every replica and pushed to the gateways it holds.
//!
//! Policy owns the locks. After every change it publishes the whole set, with a version that grows
//! with each change, on the bus channel [`topics::LOCKS`]; `PolicyService.ListLocks` answers the
//! current set. A replica subscribes to the channel first, then loads the snapshot, then applies the
//! updates as they come, so no change made in between is missed; it keeps the set with the highest
//! version, so a late snapshot or update never undoes a newer one (version 0 means "unknown" and is
//! taken as it is). After a bus break it loads the snapshot again.
//!
//! The set pushed to agents leaves out expired locks; when a lock expires, the trimmed set is pushed
//! again. Until the replica knows a set (no policy configured and no update seen, or policy not
//! answering yet) it pushes nothing, so agents keep the set they hold rather than being told "no
//! locks" by a replica that simply does not know.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_core::topics;
use vigil_proto::v1 as pb;
use vigil_runtime::ServiceResult;
use vigil_runtime::backoff::Backoff;
use vigil_runtime::bus::{ControlBus, Delivery, TypedSubscription};

use crate::admission::AdmissionHooks;

/// First delay before asking policy for the snapshot again after a failure; it doubles up to
/// [`SNAPSHOT_RETRY_MAX`], each delay jittered.
const SNAPSHOT_RETRY_MIN: Duration = Duration::from_millis(500);
const SNAPSHOT_RETRY_MAX: Duration = Duration::from_secs(30);

/// What links read: the set to push (expired locks left out), or `None` while unknown.
pub(crate) type PushedLocks = Option<Arc<pb::LockUpdate>>;

/// The replica's lock set, as links see it.
#[derive(Clone)]
pub struct LockFeed {
    pushed: Arc<watch::Sender<PushedLocks>>,
    policy_attached: Arc<Notify>,
}

impl LockFeed {
    /// Subscribes to [`topics::LOCKS`] (before returning, so nothing published afterwards is
    /// missed), then follows it until `shutdown`, loading the snapshot from the policy in `hooks`
    /// once one is attached.
    pub(crate) async fn start(
        bus: Arc<dyn ControlBus>,
        hooks: AdmissionHooks,
        policy_timeout: Duration,
        shutdown: CancellationToken,
    ) -> ServiceResult<(Self, JoinHandle<()>)> {
        let subscription = TypedSubscription::subscribe(bus.as_ref(), topics::LOCKS).await?;
        let (pushed, _) = watch::channel(None);
        let feed = Self {
            pushed: Arc::new(pushed),
            policy_attached: Arc::new(Notify::new()),
        };
        let follower = Follower {
            feed: feed.clone(),
            hooks,
            policy_timeout,
            held: None,
        };
        let task = tokio::spawn(follower.run(subscription, shutdown));
        Ok((feed, task))
    }

    /// A receiver of the set to push; `changed()` wakes when it changes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<PushedLocks> {
        self.pushed.subscribe()
    }

    /// A policy was attached: load the snapshot now rather than at the next retry.
    pub(crate) fn policy_attached(&self) {
        self.policy_attached.notify_one();
    }

    /// The set pushed to agents right now (`None` while unknown).
    pub fn current(&self) -> Option<pb::LockUpdate> {
        self.pushed.borrow().as_deref().cloned()
    }
}

/// The follower task's state.
struct Follower {
    feed: LockFeed,
    hooks: AdmissionHooks,
    policy_timeout: Duration,
    /// The accepted set with the highest version, expired locks included (they are trimmed when
    /// pushed, by the clock of that moment).
    held: Option<pb::LockUpdate>,
}

impl Follower {
    async fn run(mut self, mut subscription: TypedSubscription<pb::LockUpdate>, shutdown: CancellationToken) {
        let mut subscribed = true;
        let mut need_snapshot = true;
        // Jittered, so replicas that lost policy together do not all ask again in step.
        let mut backoff = Backoff::new(SNAPSHOT_RETRY_MIN, SNAPSHOT_RETRY_MAX);
        let mut retry_at = Instant::now();
        loop {
            let has_policy = self.hooks.policy.get().is_some();
            let next_expiry = self.next_expiry();
            tokio::select! {
                () = shutdown.cancelled() => return,
                event = subscription.next(), if subscribed => match event {
                    Some(Delivery::Message(update)) => self.accept(update, "update"),
                    Some(Delivery::MayHaveMissed) => {
                        // Updates published during the break are lost: the snapshot has them.
                        tracing::info!("lock channel resubscribed after a bus break; reloading the lock set");
                        need_snapshot = true;
                        backoff.succeed();
                        retry_at = Instant::now();
                    }
                    None => {
                        tracing::warn!("lock channel closed; the lock set will not follow changes");
                        subscribed = false;
                    }
                },
                () = self.feed.policy_attached.notified(), if need_snapshot && !has_policy => {
                    retry_at = Instant::now();
                }
                () = tokio::time::sleep_until(retry_at), if need_snapshot && has_policy => {
                    match self.snapshot().await {
                        Ok(snapshot) => {
                            need_snapshot = false;
                            backoff.succeed();
                            self.accept(snapshot, "snapshot");
                        }
                        Err(error) => {
                            // UNIMPLEMENTED (a policy without locks yet) or unreachable: no snapshot
                            // yet. Updates on the channel are still followed meanwhile.
                            if backoff.failures() == 0 {
                                tracing::warn!(%error, "could not load the lock set from policy; will retry");
                            } else {
                                tracing::debug!(%error, failures = backoff.failures(), "could not load the lock set from policy; will retry");
                            }
                            retry_at = Instant::now() + backoff.fail();
                        }
                    }
                }
                () = sleep_until_expiry(next_expiry), if next_expiry.is_some() => self.push(),
            }
        }
    }

    async fn snapshot(&self) -> Result<pb::LockUpdate, String> {
        let Some(policy) = self.hooks.policy.get() else {
            return Err("no policy attached".into());
        };
        match tokio::time::timeout(self.policy_timeout, policy.list_locks()).await {
            Ok(Ok(response)) => Ok(pb::LockUpdate {
                locks: response.locks,
                version: response.version,
            }),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.policy_timeout)),
        }
    }

    /// Takes `update` unless it is older than the set held, and pushes the result.
    fn accept(&mut self, update: pb::LockUpdate, source: &str) {
        if let Some(held) = &self.held
            && !supersedes(update.version, held.version)
        {
            tracing::debug!(
                source,
                held = held.version,
                received = update.version,
                "ignored an older lock set"
            );
            return;
        }
        tracing::debug!(source, version = update.version, locks = update.locks.len(), "lock set");
        self.held = Some(update);
        self.push();
    }

    /// Publishes the held set, without its expired locks, to the links (when it differs from what
    /// they have).
    fn push(&self) {
        let Some(held) = &self.held else { return };
        let now = SystemTime::now();
        let trimmed = pb::LockUpdate {
            locks: held.locks.iter().filter(|lock| !expired(lock, now)).cloned().collect(),
            version: held.version,
        };
        self.feed.pushed.send_if_modified(|pushed| {
            if pushed.as_deref() == Some(&trimmed) {
                return false;
            }
            *pushed = Some(Arc::new(trimmed));
            true
        });
    }

    /// When the next lock of the held set expires (`None` when none will).
    fn next_expiry(&self) -> Option<SystemTime> {
        let now = SystemTime::now();
        self.held
            .as_ref()?
            .locks
            .iter()
            .filter_map(expires_at)
            .filter(|at| *at > now)
            .min()
    }
}

/// Whether an update of `version` replaces a held set of `held` (0 is "unknown": taken).
fn supersedes(version: u64, held: u64) -> bool {
    version == 0 || version >= held
}

fn expires_at(lock: &pb::Lock) -> Option<SystemTime> {
    lock.expires_at.and_then(|at| SystemTime::try_from(at).ok())
}

fn expired(lock: &pb::Lock, now: SystemTime) -> bool {
    expires_at(lock).is_some_and(|at| at <= now)
}

async fn sleep_until_expiry(at: Option<SystemTime>) {
    let Some(at) = at else {
        return std::future::pending().await;
    };
    let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wait).await;
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use prost::Message;
    use prost_types::Timestamp;
    use vigil_runtime::ServiceError;
    use vigil_runtime::bus::{BusError, BusEvent, InProcessBus, Subscription};

    use super::*;
    use vigil_clients::AdmissionPolicy;

    fn lock(id: &str, expires_at: Option<SystemTime>) -> pb::Lock {
        pb::Lock {
            id: id.into(),
            target: Some(pb::LockTarget {
                target: Some(pb::lock_target::Target::User(format!("{id}@acme.example"))),
            }),
            message: "locked".into(),
            expires_at: expires_at.map(Timestamp::from),
            ..Default::default()
        }
    }

    fn ids(update: &pb::LockUpdate) -> Vec<&str> {
        update.locks.iter().map(|lock| lock.id.as_str()).collect()
    }

    /// A policy whose ListLocks answers what the test says (an error until told otherwise).
    #[derive(Default)]
    struct ScriptedPolicy {
        snapshot: Mutex<Option<pb::ListLocksResponse>>,
        asked: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl AdmissionPolicy for ScriptedPolicy {
        async fn admit(&self, _request: pb::AdmitRequest) -> ServiceResult<pb::AdmitResponse> {
            Err(ServiceError::internal("not used"))
        }

        async fn release(&self, _session_ids: Vec<String>) -> ServiceResult<()> {
            Ok(())
        }

        async fn list_locks(&self) -> ServiceResult<pb::ListLocksResponse> {
            self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.snapshot
                .lock()
                .unwrap()
                .clone()
                .ok_or_else(|| ServiceError::internal("Unimplemented: locks arrive later"))
        }
    }

    async fn publish(bus: &InProcessBus, update: &pb::LockUpdate) {
        bus.publish(topics::LOCKS, update.encode_to_vec().into())
            .await
            .expect("publish");
    }

    async fn next_set(locks: &mut watch::Receiver<PushedLocks>) -> pb::LockUpdate {
        tokio::time::timeout(Duration::from_secs(5), locks.changed())
            .await
            .expect("a change in time")
            .expect("feed open");
        locks.borrow_and_update().as_deref().cloned().expect("a known set")
    }

    #[tokio::test]
    async fn updates_are_followed_and_an_older_one_never_undoes_a_newer_one() {
        let bus = Arc::new(InProcessBus::new());
        let shutdown = CancellationToken::new();
        let (feed, task) = LockFeed::start(
            bus.clone(),
            AdmissionHooks::default(),
            Duration::from_secs(1),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let mut locks = feed.subscribe();
        // Without a policy and before any update, the set is unknown: nothing to push.
        assert!(feed.current().is_none());

        let v2 = pb::LockUpdate {
            locks: vec![lock("a", None), lock("b", None)],
            version: 2,
        };
        publish(&bus, &v2).await;
        assert_eq!(next_set(&mut locks).await, v2);
        publish(
            &bus,
            &pb::LockUpdate {
                locks: vec![],
                version: 1,
            },
        )
        .await;
        let v3 = pb::LockUpdate {
            locks: vec![lock("b", None)],
            version: 3,
        };
        publish(&bus, &v3).await;
        // The older set in between was skipped: the next change is v3.
        assert_eq!(next_set(&mut locks).await, v3);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn the_snapshot_is_loaded_once_a_policy_answers_and_does_not_undo_a_newer_update() {
        let bus = Arc::new(InProcessBus::new());
        let shutdown = CancellationToken::new();
        let hooks = AdmissionHooks::default();
        let (feed, task) = LockFeed::start(bus.clone(), hooks.clone(), Duration::from_secs(1), shutdown.clone())
            .await
            .unwrap();
        let mut locks = feed.subscribe();
        let policy = Arc::new(ScriptedPolicy::default());
        assert!(hooks.policy.set(policy.clone()).is_ok());
        feed.policy_attached();
        // The policy does not answer (UNIMPLEMENTED); an update on the channel still counts.
        let newer = pb::LockUpdate {
            locks: vec![lock("new", None)],
            version: 5,
        };
        publish(&bus, &newer).await;
        assert_eq!(next_set(&mut locks).await, newer);
        let asked = |times: usize| {
            let policy = policy.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(5);
                while policy.asked.load(std::sync::atomic::Ordering::SeqCst) < times {
                    assert!(Instant::now() < deadline, "the snapshot was not asked {times} times");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        asked(1).await;
        // Then the snapshot answers, older than what arrived on the channel: kept out.
        *policy.snapshot.lock().unwrap() = Some(pb::ListLocksResponse {
            locks: vec![lock("old", None)],
            version: 4,
        });
        asked(2).await;
        // A newer update after it is taken as usual, and it is the next change seen.
        let newest = pb::LockUpdate {
            locks: vec![],
            version: 6,
        };
        publish(&bus, &newest).await;
        assert_eq!(next_set(&mut locks).await, newest);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn expired_locks_are_left_out_and_the_set_is_pushed_again_when_one_expires() {
        let bus = Arc::new(InProcessBus::new());
        let shutdown = CancellationToken::new();
        let (feed, task) = LockFeed::start(
            bus.clone(),
            AdmissionHooks::default(),
            Duration::from_secs(1),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let mut locks = feed.subscribe();
        let now = SystemTime::now();
        let update = pb::LockUpdate {
            locks: vec![
                lock("gone", Some(now - Duration::from_secs(1))),
                lock("soon", Some(now + Duration::from_millis(300))),
                lock("forever", None),
            ],
            version: 9,
        };
        publish(&bus, &update).await;
        assert_eq!(ids(&next_set(&mut locks).await), ["soon", "forever"]);
        let trimmed = next_set(&mut locks).await;
        assert_eq!(ids(&trimmed), ["forever"]);
        assert_eq!(trimmed.version, 9);
        assert!(SystemTime::now() >= now + Duration::from_millis(300));
        shutdown.cancel();
        task.await.unwrap();
    }

    /// A bus whose one subscription the test drives, to play a break and its resubscription.
    struct ScriptedBus {
        events: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<BusEvent>>>,
    }

    #[async_trait]
    impl ControlBus for ScriptedBus {
        async fn publish(&self, _channel: &str, _payload: vigil_runtime::bus::Payload) -> Result<(), BusError> {
            Ok(())
        }

        async fn subscribe(&self, channel: &str) -> Result<Subscription, BusError> {
            assert_eq!(channel, topics::LOCKS);
            let events = self.events.lock().unwrap().take().expect("one subscription");
            Ok(Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(events)))
        }

        fn is_connected(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn after_a_bus_break_the_snapshot_is_loaded_again() {
        let (events, received) = tokio::sync::mpsc::unbounded_channel();
        let bus = Arc::new(ScriptedBus {
            events: Mutex::new(Some(received)),
        });
        let shutdown = CancellationToken::new();
        let hooks = AdmissionHooks::default();
        let policy = Arc::new(ScriptedPolicy::default());
        *policy.snapshot.lock().unwrap() = Some(pb::ListLocksResponse {
            locks: vec![lock("a", None)],
            version: 1,
        });
        assert!(hooks.policy.set(policy.clone()).is_ok());
        let (feed, task) = LockFeed::start(bus, hooks, Duration::from_secs(1), shutdown.clone())
            .await
            .unwrap();
        let mut locks = feed.subscribe();
        assert_eq!(ids(&next_set(&mut locks).await), ["a"]);

        // During a break policy changed the set; the update was lost, the snapshot has it.
        *policy.snapshot.lock().unwrap() = Some(pb::ListLocksResponse {
            locks: vec![lock("b", None)],
            version: 2,
        });
        events.send(BusEvent::Resubscribed).unwrap();
        let reloaded = next_set(&mut locks).await;
        assert_eq!((ids(&reloaded), reloaded.version), (vec!["b"], 2));
        assert_eq!(policy.asked.load(std::sync::atomic::Ordering::SeqCst), 2);
        shutdown.cancel();
        task.await.unwrap();
    }

    #[test]
    fn version_zero_is_unknown_and_taken() {
        assert!(supersedes(0, 7));
        assert!(supersedes(7, 7));
        assert!(supersedes(8, 7));
        assert!(!supersedes(6, 7));
    }
}
