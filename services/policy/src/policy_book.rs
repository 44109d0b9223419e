//! Every policy, held in memory for admission ([`PolicyBook`]): a start's rules are worked out from
//! the held set ([`PolicySet::effective`]) instead of read from the database, so they cost admission
//! no round trip. Apart from the engine ([`crate::service`]) and the bus ([`crate::policy_updates`])
//! so that the engine holds a book without depending on either. Policies are few (one per scope
//! that differs from its defaults) and change rarely, so the whole set is held.
//!
//! **Freshness.** The held set carries the policy-set version it was read at; the store increases
//! the version in the transaction of every change. The set is re-read on this replica right after
//! its own change commits (the next admission here has it), when another replica announces a newer
//! version on the bus or the subscription had a gap, and when a check finds the version moved: the
//! follower checks every few seconds, and admission checks itself when the held set was last found
//! current more than [`MAX_HELD_AGE`] ago (no follower running, or it is stuck). So another
//! replica's change is in force here within a bus hop, and within [`MAX_HELD_AGE`] at worst.
//!
//! **Failure.** When the store cannot be read, a set loaded before keeps serving (the failure is
//! logged once, when it starts). Before any load has succeeded the book has nothing to offer and
//! admission reads the start's own policies from the store as it would without a book: a failed
//! load never means "no policies".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::time::Instant;
use vigil_runtime::ServiceResult;

use crate::rules::PolicySet;
use crate::store::PolicyStore;

/// How long the held set is used without asking the store whether it is current.
pub const MAX_HELD_AGE: Duration = Duration::from_secs(5);

/// How much a refresh does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresh {
    /// Nothing when the held set was found current recently; else as [`Refresh::Check`].
    IfStale,
    /// Reads the version; re-reads the policies when it moved (or none were ever loaded).
    Check,
    /// Re-reads the policies.
    Reload,
}

struct Held {
    /// `None` until the first load succeeds.
    policies: Option<Arc<PolicySet>>,
    /// The policy-set version `policies` were read at (0 before the first load).
    version: u64,
    /// When the set was last loaded or found current; `None`: check before the next use.
    checked_at: Option<Instant>,
}

/// Every policy, held in memory with its version, for admission.
pub struct PolicyBook {
    held: RwLock<Held>,
    /// One refresh at a time: admissions arriving together share it.
    refreshing: tokio::sync::Mutex<()>,
    /// How long the held set is used before admission checks the version.
    max_age: Duration,
    /// Whether the last read of the store failed: a failure is logged when it starts, not on every
    /// retry while the database is away.
    failing: AtomicBool,
}

impl Default for PolicyBook {
    fn default() -> Self {
        Self::with_max_age(MAX_HELD_AGE)
    }
}

impl PolicyBook {
    /// A book whose held set is checked when older than `max_age` ([`MAX_HELD_AGE`] in service).
    pub fn with_max_age(max_age: Duration) -> Self {
        Self {
            held: RwLock::new(Held {
                policies: None,
                version: 0,
                checked_at: None,
            }),
            refreshing: tokio::sync::Mutex::new(()),
            max_age,
            failing: AtomicBool::new(false),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Held> {
        self.held.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Held> {
        self.held.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The version of the held set (0 before the first load).
    pub fn version(&self) -> u64 {
        self.read().version
    }

    /// Whether a load has ever succeeded.
    pub fn is_loaded(&self) -> bool {
        self.read().policies.is_some()
    }

    /// The held set if it was found current within `max_age`.
    fn fresh(&self) -> Option<Arc<PolicySet>> {
        let held = self.read();
        match (&held.policies, held.checked_at) {
            (Some(policies), Some(checked_at)) if checked_at.elapsed() < self.max_age => Some(policies.clone()),
            _ => None,
        }
    }

    /// The policies to admit by: the held ones, checked against the store's version first when
    /// stale. When the store cannot be read, the set loaded before. `None` only when no load has
    /// ever succeeded: the caller then reads what it needs from the store itself.
    pub async fn current(&self, store: &dyn PolicyStore) -> Option<Arc<PolicySet>> {
        if let Some(policies) = self.fresh() {
            return Some(policies);
        }
        match self.refresh(store, Refresh::IfStale).await {
            Ok(policies) => Some(policies),
            Err(_) => self.read().policies.clone(),
        }
    }

    /// Re-reads every policy (after a change, or when told of a newer version); returns the
    /// version now held.
    pub async fn reload(&self, store: &dyn PolicyStore) -> ServiceResult<u64> {
        self.refresh(store, Refresh::Reload).await?;
        Ok(self.version())
    }

    /// Re-reads every policy if the store's version differs from the held one; returns the
    /// version now held.
    pub async fn check(&self, store: &dyn PolicyStore) -> ServiceResult<u64> {
        self.refresh(store, Refresh::Check).await?;
        Ok(self.version())
    }

    /// The held set is known to be behind (a change made here could not be re-read after it
    /// committed): the next use checks the version first.
    pub fn invalidate(&self) {
        self.write().checked_at = None;
    }

    async fn refresh(&self, store: &dyn PolicyStore, how: Refresh) -> ServiceResult<Arc<PolicySet>> {
        let _one_at_a_time = self.refreshing.lock().await;
        if how == Refresh::IfStale
            && let Some(policies) = self.fresh()
        {
            // Refreshed by whoever held the lock before us.
            return Ok(policies);
        }
        let outcome = self.read_store(store, how).await;
        match &outcome {
            Ok(_) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(version = self.version(), "the policies can be read again");
                }
            }
            Err(error) => self.failed(error),
        }
        outcome
    }

    async fn read_store(&self, store: &dyn PolicyStore, how: Refresh) -> ServiceResult<Arc<PolicySet>> {
        let (held, version) = {
            let held = self.read();
            (held.policies.clone(), held.version)
        };
        if how != Refresh::Reload
            && let Some(held) = held
            && store.policy_version().await? == version
        {
            self.write().checked_at = Some(Instant::now());
            return Ok(held);
        }
        let read = store.versioned_policies().await?;
        let mut held = self.write();
        // Refreshes are one at a time and each reads the version before the policies, so the held
        // set never goes back to an older version; the check keeps it so should that ever change.
        let policies = match &held.policies {
            Some(policies) if read.version < held.version => policies.clone(),
            _ => {
                let policies = Arc::new(PolicySet::new(read.policies));
                held.policies = Some(policies.clone());
                held.version = read.version;
                policies
            }
        };
        held.checked_at = Some(Instant::now());
        Ok(policies)
    }

    /// A read failed. With a set loaded before, it counts as checked, so the admissions that follow
    /// do not each wait on the failing database before using it; the next check is due in
    /// `max_age` (or at the follower's next poll).
    fn failed(&self, error: &vigil_runtime::ServiceError) {
        let (loaded, version) = {
            let mut held = self.write();
            if held.policies.is_some() {
                held.checked_at = Some(Instant::now());
            }
            (held.policies.is_some(), held.version)
        };
        if self.failing.swap(true, Ordering::Relaxed) {
            return;
        }
        if loaded {
            tracing::warn!(%error, version, "could not read the policies; admitting by the ones held until the database answers");
        } else {
            tracing::warn!(%error, "could not load the policies; admission reads each start's policies from the database until a load succeeds");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use vigil_testkit::{TestDatabase, with_database};

    use super::*;
    use crate::domain::{PolicyRecord, Rules, Scope, Subject};
    use crate::watched_store::WatchedStore;

    const AGE: Duration = Duration::from_millis(300);

    fn limited(user: &str, max: u32) -> PolicyRecord {
        PolicyRecord {
            id: uuid::Uuid::now_v7().to_string(),
            scope: Scope::User(user.to_owned()),
            rules: Rules {
                max_concurrent_sessions: Some(max),
                ..Rules::default()
            },
            description: String::new(),
            updated_by: "test".to_owned(),
            updated_at: 0,
        }
    }

    /// The concurrency limit `policies` give `user`.
    fn limit_of(policies: &PolicySet, user: &str) -> Option<u32> {
        let subject = Subject {
            user,
            groups: &[],
            resource: "db",
        };
        policies.effective(subject).concurrency_limit().map(|limit| limit.max)
    }

    async fn held(book: &PolicyBook, store: &WatchedStore) -> Arc<PolicySet> {
        book.current(store).await.expect("policies held")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fresh_set_costs_nothing_and_a_stale_one_a_version_check() {
        with_database(TestDatabase::postgres().await, |database| async move {
            let store = WatchedStore::open(&database).await;
            let book = PolicyBook::with_max_age(AGE);
            held(&book, &store).await;
            assert_eq!(store.reads(), (0, 1), "the first use loads the set");
            for _ in 0..10 {
                held(&book, &store).await;
            }
            assert_eq!(store.reads(), (0, 1), "fresh: no statement at all");

            tokio::time::sleep(AGE).await;
            held(&book, &store).await;
            assert_eq!(store.reads(), (1, 1), "stale: the version is read, and has not moved");
            held(&book, &store).await;
            assert_eq!(store.reads(), (1, 1), "found current, it is fresh again");
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_moved_version_is_reloaded() {
        with_database(TestDatabase::postgres().await, |database| async move {
            let store = WatchedStore::open(&database).await;
            let book = PolicyBook::with_max_age(AGE);
            assert_eq!(book.check(store.as_ref()).await.unwrap(), 0);
            assert_eq!(limit_of(&*held(&book, &store).await, "ann"), None);

            // Another replica's change: a check finds the version moved and re-reads the set.
            store.create_policy(&limited("ann", 2)).await.unwrap();
            let reads = store.reads();
            assert_eq!(book.check(store.as_ref()).await.unwrap(), 1);
            assert_eq!(store.reads(), (reads.0 + 1, reads.1 + 1));
            assert_eq!(limit_of(&*held(&book, &store).await, "ann"), Some(2));

            // A stale set is checked by the next use on its own.
            store.create_policy(&limited("bob", 1)).await.unwrap();
            assert_eq!(limit_of(&*held(&book, &store).await, "bob"), None, "still fresh");
            tokio::time::sleep(AGE).await;
            assert_eq!(limit_of(&*held(&book, &store).await, "bob"), Some(1));
            assert_eq!(book.version(), 2);

            // A reload (told of a newer version) reads the set without asking the version.
            let reads = store.reads();
            assert_eq!(book.reload(store.as_ref()).await.unwrap(), 2);
            assert_eq!(store.reads(), (reads.0, reads.1 + 1));
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_read_keeps_the_held_set() {
        with_database(TestDatabase::postgres().await, |database| async move {
            let store = WatchedStore::open(&database).await;
            let book = PolicyBook::with_max_age(AGE);
            store.create_policy(&limited("ann", 2)).await.unwrap();
            held(&book, &store).await;

            store.set_reads_fail.store(true, Ordering::SeqCst);
            store.create_policy(&limited("ann-2", 1)).await.unwrap();
            assert!(book.check(store.as_ref()).await.is_err());
            tokio::time::sleep(AGE).await;
            let kept = held(&book, &store).await;
            assert_eq!(limit_of(&kept, "ann"), Some(2), "the set held before");
            assert_eq!(limit_of(&kept, "ann-2"), None);
            // The failure counts as a check: the admissions that follow do not each wait on it.
            let reads = store.reads();
            held(&book, &store).await;
            assert_eq!(store.reads(), reads);

            // The database back: the next check catches up.
            store.set_reads_fail.store(false, Ordering::SeqCst);
            assert_eq!(book.check(store.as_ref()).await.unwrap(), 2);
            assert_eq!(limit_of(&*held(&book, &store).await, "ann-2"), Some(1));
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn before_any_load_the_book_offers_nothing() {
        with_database(TestDatabase::postgres().await, |database| async move {
            let store = WatchedStore::open(&database).await;
            let book = PolicyBook::with_max_age(AGE);
            store.set_reads_fail.store(true, Ordering::SeqCst);
            assert!(book.current(store.as_ref()).await.is_none(), "never an empty set");
            assert!(!book.is_loaded());
            store.set_reads_fail.store(false, Ordering::SeqCst);
            assert!(book.current(store.as_ref()).await.is_some());
            assert!(book.is_loaded());
        })
        .await;
    }
}
