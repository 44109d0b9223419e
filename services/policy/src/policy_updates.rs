//! Policy changes on the bus, so that every replica's [`PolicyBook`](crate::policy_book::PolicyBook)
//! follows them: after a change commits, the replica that made it re-reads its own held set (its
//! next admission has the change) and publishes the new policy-set version on
//! [`topics::POLICIES`] as a `PolicySetUpdate`; every replica follows the channel and re-reads when
//! the version is newer than the one it holds, or when its subscription had a gap. The message
//! carries only the version: the policies themselves are always read from the database, so a lost,
//! late or forged message changes no rule — at worst it costs a re-read, and a lost one delays a
//! change by [`POLICY_POLL_INTERVAL`] (the follower's own check).

use std::time::Duration;

use prost::Message;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_core::topics;
use vigil_proto::v1 as pb;
use vigil_runtime::ServiceResult;
use vigil_runtime::bus::ControlBus;

use crate::follow::{self, Follow, Step};
use crate::service::PolicyEngine;

/// How often the follower checks the policy-set version (one statement), so another replica's
/// change reaches this one within this long even when its message is lost.
pub const POLICY_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Publishes `version` on [`topics::POLICIES`]. Best effort: followers also check the version
/// every [`POLICY_POLL_INTERVAL`].
pub async fn publish(bus: &dyn ControlBus, version: u64) {
    let update = pb::PolicySetUpdate { version };
    match bus.publish(topics::POLICIES, update.encode_to_vec().into()).await {
        Ok(()) => tracing::debug!(version, "policy-set version published"),
        Err(error) => {
            tracing::warn!(version, %error, "could not publish the policy-set version; other replicas see the change at their next check")
        }
    }
}

impl PolicyEngine {
    /// The policy-set version admission holds now (0 before the first load).
    pub fn held_policy_version(&self) -> u64 {
        self.policy_book().version()
    }

    /// Loads every policy into the book (at start-up, before serving). A failure is logged by the
    /// book; admission then reads each start's policies from the store until a load succeeds.
    pub async fn load_policies(&self) -> ServiceResult<u64> {
        self.policy_book().reload(self.store().as_ref()).await
    }

    /// After a committed change: re-read the held set (this replica admits by it at once) and
    /// publish its version.
    pub(crate) async fn policies_changed(&self) {
        match self.policy_book().reload(self.store().as_ref()).await {
            Ok(version) => {
                if let Some(bus) = self.bus() {
                    publish(bus.as_ref(), version).await;
                }
            }
            Err(error) => {
                // The next admission checks the version first rather than trusting the old set.
                self.policy_book().invalidate();
                tracing::warn!(%error, "could not re-read the policies after a change; the next admission checks again");
            }
        }
    }

    /// Keeps the held policies current until `shutdown`: re-reads when an update with a newer
    /// version arrives on the attached bus or the subscription had a gap, and checks the version
    /// every [`POLICY_POLL_INTERVAL`]. Failures are logged by the book.
    pub(crate) fn start_policy_refresh(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let follow = Follow {
            channel: topics::POLICIES,
            poll: POLICY_POLL_INTERVAL,
            on_gap: Step::Reload,
            what: "policy changes",
        };
        follow::start::<pb::PolicySetUpdate, _, _, _>(
            self.clone(),
            follow,
            PolicyEngine::held_policy_version,
            |engine, step| async move {
                let store = engine.store().as_ref();
                // Errors are the book's to log (once, while they last); the next tick retries.
                let _ = match step {
                    Step::Check => engine.policy_book().check(store).await,
                    Step::Reload => engine.policy_book().reload(store).await,
                };
            },
            shutdown,
        )
    }
}
