//! Persistence of the policy service: policies, concurrency slots, the record of idle warnings
//! sent, the sweeper's leader lease, the audit trail of policy changes, the policy-set version,
//! and locks with the lock-set version. [`SqlPolicyStore`] implements [`PolicyStore`] with
//! sea-orm on PostgreSQL and SQLite.

mod entity;
pub mod migration;
mod sql;

pub use sql::SqlPolicyStore;

use std::time::Duration;

use async_trait::async_trait;
use vigil_runtime::ServiceResult;

use crate::domain::{
    AuditQuery, AuditRecord, ConcurrencyLimit, DeleteOutcome, EpochMillis, IdleWarningRecord, LockRecord, LockSet,
    PolicyRecord, Rules, Slot, SlotOutcome, Subject, VersionedPolicies,
};

/// Durable state of the policy service. Every method is atomic.
#[async_trait]
pub trait PolicyStore: Send + Sync + 'static {
    /// Stores a new policy and increases the policy-set version, in one transaction;
    /// ALREADY_EXISTS (naming the existing policy) when its scope has one.
    async fn create_policy(&self, policy: &PolicyRecord) -> ServiceResult<()>;

    async fn get_policy(&self, id: &str) -> ServiceResult<Option<PolicyRecord>>;

    /// Every policy, most general first: global, then groups, resources and users, each by name.
    async fn list_policies(&self) -> ServiceResult<Vec<PolicyRecord>>;

    /// The policy-set version now: increased in the transaction of every policy created, updated
    /// or deleted (0 before any change).
    async fn policy_version(&self) -> ServiceResult<u64>;

    /// Every policy, as [`PolicyStore::list_policies`], with the version read before them.
    async fn versioned_policies(&self) -> ServiceResult<VersionedPolicies>;

    /// The policies that apply to `subject` (its user's, resource's, groups' and the global one),
    /// in no particular order.
    async fn applicable_policies(&self, subject: Subject<'_>) -> ServiceResult<Vec<PolicyRecord>>;

    /// Replaces a policy's rules and description and increases the policy-set version, in one
    /// transaction; `None` (and no new version) when there is no such policy.
    async fn update_policy(
        &self,
        id: &str,
        rules: &Rules,
        description: &str,
        updated_by: &str,
        updated_at: EpochMillis,
    ) -> ServiceResult<Option<PolicyRecord>>;

    /// Deletes a policy, unless it is the global one, and increases the policy-set version, in one
    /// transaction; `actor` is who asked (for its event).
    async fn delete_policy(&self, id: &str, actor: &str) -> ServiceResult<DeleteOutcome>;

    /// Takes a concurrency slot for `slot.session_id`, atomically with counting the user's slots:
    /// concurrent calls for one user — on any number of replicas — are serialised, so a limit is
    /// never exceeded. Under `limit`: taken. At it: DENY_NEW leaves everything as it was
    /// ([`SlotOutcome::Full`]); END_OLDEST takes the slot and frees the user's oldest ones to get
    /// back to the limit, returning their sessions. Without a limit the slot is still taken, so a
    /// limit added later counts correctly. A session that holds a slot already changes nothing.
    async fn take_slot(&self, slot: &Slot, limit: Option<ConcurrencyLimit>) -> ServiceResult<SlotOutcome>;

    /// Frees the slots (and forgets the idle warnings) of sessions that ended. Unknown ids are
    /// ignored. Returns how many slots were freed.
    async fn release_slots(&self, session_ids: &[String]) -> ServiceResult<u64>;

    /// A user's slots, oldest session first.
    async fn slots_of(&self, user: &str) -> ServiceResult<Vec<Slot>>;

    /// Users holding slots, by name, after `after`: at most `limit`.
    async fn users_with_slots(&self, after: Option<&str>, limit: u64) -> ServiceResult<Vec<String>>;

    /// Records idle warnings about to be sent, at most one per session and idle period: a warning
    /// is recorded when the session has none yet, or only one for an earlier period (an older
    /// `last_activity_at`). Returns the sessions recorded now — the only ones to warn.
    async fn record_idle_warnings(
        &self,
        warnings: &[IdleWarningRecord],
        now: EpochMillis,
    ) -> ServiceResult<Vec<String>>;

    /// Forgets idle warnings sent before `warned_before`. Returns how many.
    async fn prune_idle_warnings(&self, warned_before: EpochMillis) -> ServiceResult<u64>;

    /// Takes or renews the lease `name` for `holder` for `ttl`, by the database's clock: succeeds
    /// when nobody holds it, `holder` does, or the holder's lease has expired.
    async fn acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> ServiceResult<bool>;

    /// Gives the lease up, if `holder` has it (so a successor need not wait for it to expire).
    async fn release_lease(&self, name: &str, holder: &str) -> ServiceResult<()>;

    /// Appends an event to the audit trail of policy changes.
    async fn record_audit(&self, event: &AuditRecord) -> ServiceResult<()>;

    /// Audit events matching `query`, newest first (ties broken by id, descending).
    async fn list_audit(&self, query: &AuditQuery) -> ServiceResult<Vec<AuditRecord>>;

    /// Stores a new lock and increases the lock-set version, in one transaction; returns the new
    /// version.
    async fn create_lock(&self, lock: &LockRecord) -> ServiceResult<u64>;

    /// Removes a lock and increases the lock-set version, in one transaction; returns the removed
    /// lock and the new version, or `None` when there is no such lock. `actor` is who asked (for its
    /// event).
    async fn delete_lock(&self, id: &str, actor: &str) -> ServiceResult<Option<(LockRecord, u64)>>;

    /// The lock-set version now (0 before any change).
    async fn lock_version(&self) -> ServiceResult<u64>;

    /// Every lock, or with `in_force_at` only those in force then (no expiry, or a later one),
    /// oldest first, with the version read before them.
    async fn locks(&self, in_force_at: Option<EpochMillis>) -> ServiceResult<LockSet>;

    /// Marks the locks that expired at or before `now` and whose expiry has not been announced;
    /// when there were any, increases the lock-set version and returns it (so holders drop them).
    async fn announce_expired_locks(&self, now: EpochMillis) -> ServiceResult<Option<u64>>;

    /// Whether the database answers.
    async fn ping(&self) -> ServiceResult<()>;
}
