//! Recording sightings off the admission's path.
//!
//! `Assess` answers as soon as the start is scored; the sighting is written to the history by a
//! task of its own. Within this process, a user's next assessment waits for that user's pending
//! write before reading the history, so consecutive starts of one user are still scored against
//! each other; different users never wait for one another. A write that fails is logged (the
//! history is advisory: a lost sighting costs one comparison, never a wrong admission).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::domain::Sighting;
use crate::store::HistoryStore;

/// Per user with a write in flight, the lock that write holds until it is done.
#[derive(Default)]
pub(crate) struct Recorder {
    pending: Mutex<HashMap<String, Arc<AsyncMutex<()>>>>,
}

impl Recorder {
    /// Waits until no write of `user`'s history is in flight.
    pub(crate) async fn settled(&self, user: &str) {
        let Some(lock) = self.map().get(user).cloned() else {
            return;
        };
        drop(lock.lock().await);
        drop(lock);
        self.forget_if_idle(user);
    }

    /// Writes `sighting` (keeping the user's newest `keep`) in the background; the user's next
    /// [`Recorder::settled`] waits for it.
    pub(crate) async fn record(self: &Arc<Self>, store: Arc<dyn HistoryStore>, sighting: Sighting, keep: u64) {
        let guard = self.hold(&sighting.user).await;
        let recorder = self.clone();
        tokio::spawn(async move {
            if let Err(error) = store.record(&sighting, keep).await {
                tracing::warn!(user = %sighting.user, session = %sighting.session_id, %error, "could not record a sighting in the history");
            }
            drop(guard);
            recorder.forget_if_idle(&sighting.user);
        });
    }

    /// The user's write lock, taken (after any write of the user still in flight).
    async fn hold(&self, user: &str) -> OwnedMutexGuard<()> {
        let lock = self.map().entry(user.to_owned()).or_default().clone();
        lock.lock_owned().await
    }

    /// Drops the user's entry when nobody holds or waits for it (clones are only made under the
    /// map's mutex, so the count cannot grow meanwhile).
    fn forget_if_idle(&self, user: &str) {
        let mut map = self.map();
        if map.get(user).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            map.remove(user);
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AsyncMutex<()>>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
