//! Following a versioned set on the bus — the lock set ([`crate::locks`]) and the policies
//! ([`crate::policy_updates`]) are both held in memory and kept current the same way: an update
//! whose version is newer than the one held means re-read it; a gap in the subscription means
//! updates may have been lost; and a check every few seconds catches a change whose message was
//! lost without a gap, or any change while the bus cannot be followed at all.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use vigil_proto::v1 as pb;
use vigil_runtime::bus::{Delivery, TypedSubscription};

use crate::service::PolicyEngine;

/// What a follower asks of its book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Read the version; re-read the set when it moved.
    Check,
    /// Re-read the set.
    Reload,
}

/// A bus message announcing a new version of a held set.
pub(crate) trait VersionUpdate: prost::Message + Default + 'static {
    fn version(&self) -> u64;
}

impl VersionUpdate for pb::LockUpdate {
    fn version(&self) -> u64 {
        self.version
    }
}

impl VersionUpdate for pb::PolicySetUpdate {
    fn version(&self) -> u64 {
        self.version
    }
}

/// Which set a follower keeps current, and how.
pub(crate) struct Follow {
    /// The bus channel its updates are published on.
    pub channel: &'static str,
    /// How often the version is checked whatever the bus says.
    pub poll: Duration,
    /// What a gap in the subscription calls for.
    pub on_gap: Step,
    /// For the log: "lock updates", "policy changes".
    pub what: &'static str,
}

/// Keeps a held set current until `shutdown`: `held` is the version the engine holds, `refresh`
/// checks or re-reads the set (and logs its own failures; the next tick retries).
pub(crate) fn start<M, Held, Refresh, Fut>(
    engine: PolicyEngine,
    follow: Follow,
    held: Held,
    refresh: Refresh,
    shutdown: CancellationToken,
) -> JoinHandle<()>
where
    M: VersionUpdate,
    Held: Fn(&PolicyEngine) -> u64 + Send + 'static,
    Refresh: Fn(PolicyEngine, Step) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(follow.poll);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut subscription: Option<TypedSubscription<M>> = None;
        loop {
            if subscription.is_none()
                && let Some(bus) = engine.bus()
            {
                match TypedSubscription::subscribe(bus.as_ref(), follow.channel).await {
                    Ok(subscribed) => subscription = Some(subscribed),
                    Err(error) => {
                        tracing::warn!(%error, "cannot follow {} on the bus yet; checking the version every few seconds", follow.what)
                    }
                }
            }
            let event = async {
                match subscription.as_mut() {
                    Some(subscription) => subscription.next().await,
                    None => std::future::pending().await,
                }
            };
            let step = tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => Step::Check,
                event = event => match event {
                    Some(Delivery::Message(update)) if update.version() > held(&engine) => Step::Reload,
                    Some(Delivery::Message(_)) => continue,
                    // Updates may have been lost during the break.
                    Some(Delivery::MayHaveMissed) => follow.on_gap,
                    None => {
                        subscription = None;
                        Step::Check
                    }
                },
            };
            refresh(engine.clone(), step).await;
        }
    })
}
