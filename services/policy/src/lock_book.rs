//! The lock set in force, held in memory for admission ([`LockBook`]), and what the engine's lock
//! operations end covered sessions through ([`LockHooks`]). Apart from those operations
//! ([`crate::locks`]) so that the engine ([`crate::service`]) holds a book without depending on
//! them.

use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use tokio::time::Instant;
use vigil_clients::SessionTerminator;
use vigil_runtime::ServiceResult;

use crate::domain::{EpochMillis, LockSet};
use crate::store::PolicyStore;

/// How old the held set may be before admission checks the version itself (when no refresher
/// runs, or it is stuck).
const MAX_HELD_AGE: Duration = Duration::from_secs(5);

/// How much a refresh does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// Nothing when the held set was checked recently; else as [`Refresh::Check`].
    IfStale,
    /// Reads the version; reloads the set when it moved.
    Check,
    /// Reloads the set.
    Reload,
}

struct Held {
    set: Arc<LockSet>,
    /// When the set was last loaded or found current; `None` before the first load.
    checked_at: Option<Instant>,
}

/// The lock set in force, held in memory for admission.
pub struct LockBook {
    held: RwLock<Held>,
    /// One refresh at a time: admissions arriving together share it.
    refreshing: tokio::sync::Mutex<()>,
}

impl Default for LockBook {
    fn default() -> Self {
        Self {
            held: RwLock::new(Held {
                set: Arc::default(),
                checked_at: None,
            }),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }
}

impl LockBook {
    /// The held set and whether it has ever been loaded.
    fn held(&self) -> (Arc<LockSet>, Option<Instant>) {
        let held = self.held.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        (held.set.clone(), held.checked_at)
    }

    /// The held set if it was checked within [`MAX_HELD_AGE`].
    fn fresh(&self) -> Option<Arc<LockSet>> {
        match self.held() {
            (set, Some(checked_at)) if checked_at.elapsed() < MAX_HELD_AGE => Some(set),
            _ => None,
        }
    }

    /// The version of the held set (0 before the first load).
    pub fn version(&self) -> u64 {
        self.held().0.version
    }

    /// The set to admit by: the held one, refreshed first when stale. When the database cannot be
    /// read, a set loaded before is used as it is (locks change rarely; refusing every start for
    /// a database hiccup would be worse), and only a replica that never loaded one fails.
    pub async fn current(&self, store: &dyn PolicyStore, now: EpochMillis) -> ServiceResult<Arc<LockSet>> {
        if let Some(set) = self.fresh() {
            return Ok(set);
        }
        match self.refresh(store, now, Refresh::IfStale).await {
            Ok(set) => Ok(set),
            Err(error) => {
                let mut held = self.held.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                if held.checked_at.is_none() {
                    return Err(error);
                }
                // Counted as checked, so the admissions that follow do not each wait on the failing
                // database before falling back; the next check is due in MAX_HELD_AGE.
                held.checked_at = Some(Instant::now());
                tracing::warn!(%error, version = held.set.version, "could not refresh the lock set; admitting by the one held");
                Ok(held.set.clone())
            }
        }
    }

    /// Re-reads the set from the store (after a change, or when told of a newer version).
    pub async fn reload(&self, store: &dyn PolicyStore, now: EpochMillis) -> ServiceResult<Arc<LockSet>> {
        self.refresh(store, now, Refresh::Reload).await
    }

    /// Reloads if the store's version differs from the held one.
    pub async fn check(&self, store: &dyn PolicyStore, now: EpochMillis) -> ServiceResult<Arc<LockSet>> {
        self.refresh(store, now, Refresh::Check).await
    }

    async fn refresh(&self, store: &dyn PolicyStore, now: EpochMillis, how: Refresh) -> ServiceResult<Arc<LockSet>> {
        let _one_at_a_time = self.refreshing.lock().await;
        if how == Refresh::IfStale
            && let Some(set) = self.fresh()
        {
            // Refreshed by whoever held the lock before us.
            return Ok(set);
        }
        let (held, checked_at) = self.held();
        if how != Refresh::Reload && checked_at.is_some() && store.lock_version().await? == held.version {
            self.held
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .checked_at = Some(Instant::now());
            return Ok(held);
        }
        let loaded = Arc::new(store.locks(Some(now)).await?);
        let mut held = self.held.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Refreshes are one at a time and each reads the version before the locks, so a set never
        // goes back to an older version; the check keeps it so should that ever change.
        if held.checked_at.is_none() || loaded.version >= held.set.version {
            held.set = loaded;
        }
        held.checked_at = Some(Instant::now());
        Ok(held.set.clone())
    }
}

/// What the engine ends covered sessions through, attached after it is made (at most once). The
/// set is published on the engine's bus ([`PolicyEngine::attach_bus`](crate::PolicyEngine::attach_bus)).
#[derive(Default)]
pub struct LockHooks {
    pub(crate) terminator: OnceLock<Arc<dyn SessionTerminator>>,
}
