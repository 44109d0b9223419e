//! For the crate's unit tests: a real [`SqlPolicyStore`] on PostgreSQL, watched — it counts the
//! reads of the policy-set version and of the whole set, can make those reads fail (as a database
//! going away would) and can forbid reading policy rows at all, to show what admission reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use vigil_runtime::{ServiceError, ServiceResult};
use vigil_testkit::TestDatabase;

use crate::domain::{
    AuditQuery, AuditRecord, ConcurrencyLimit, DeleteOutcome, EpochMillis, IdleWarningRecord, LockRecord, LockSet,
    PolicyRecord, Rules, Slot, SlotOutcome, Subject, VersionedPolicies,
};
use crate::store::{PolicyStore, SqlPolicyStore};

pub(crate) struct WatchedStore {
    inner: SqlPolicyStore,
    /// `policy_version` calls.
    pub version_reads: AtomicUsize,
    /// `versioned_policies` calls.
    pub set_reads: AtomicUsize,
    /// While set, `policy_version` and `versioned_policies` fail as if the database were away.
    pub set_reads_fail: AtomicBool,
    /// While set, reading policy rows (`list_policies`, `applicable_policies`, `versioned_policies`)
    /// panics: admission must not need them.
    pub policy_rows_forbidden: AtomicBool,
}

impl WatchedStore {
    /// A migrated store on `database` (one replica: a pool of its own).
    pub async fn open(database: &TestDatabase) -> Arc<Self> {
        let inner = SqlPolicyStore::new(database.connect().await).await.expect("store");
        inner.migrate().await.expect("migrate");
        Arc::new(Self {
            inner,
            version_reads: AtomicUsize::new(0),
            set_reads: AtomicUsize::new(0),
            set_reads_fail: AtomicBool::new(false),
            policy_rows_forbidden: AtomicBool::new(false),
        })
    }

    /// (version reads, whole-set reads) so far.
    pub fn reads(&self) -> (usize, usize) {
        (
            self.version_reads.load(Ordering::SeqCst),
            self.set_reads.load(Ordering::SeqCst),
        )
    }

    fn fail_if_asked(&self) -> ServiceResult<()> {
        if self.set_reads_fail.load(Ordering::SeqCst) {
            return Err(ServiceError::Unavailable(
                "the database is away (a test says so)".into(),
            ));
        }
        Ok(())
    }

    fn policy_rows(&self, what: &str) {
        assert!(
            !self.policy_rows_forbidden.load(Ordering::SeqCst),
            "{what} read policy rows where none should be read"
        );
    }
}

#[async_trait]
impl PolicyStore for WatchedStore {
    async fn create_policy(&self, policy: &PolicyRecord) -> ServiceResult<()> {
        self.inner.create_policy(policy).await
    }

    async fn get_policy(&self, id: &str) -> ServiceResult<Option<PolicyRecord>> {
        self.inner.get_policy(id).await
    }

    async fn list_policies(&self) -> ServiceResult<Vec<PolicyRecord>> {
        self.policy_rows("list_policies");
        self.inner.list_policies().await
    }

    async fn policy_version(&self) -> ServiceResult<u64> {
        self.version_reads.fetch_add(1, Ordering::SeqCst);
        self.fail_if_asked()?;
        self.inner.policy_version().await
    }

    async fn versioned_policies(&self) -> ServiceResult<VersionedPolicies> {
        self.set_reads.fetch_add(1, Ordering::SeqCst);
        self.fail_if_asked()?;
        self.policy_rows("versioned_policies");
        self.inner.versioned_policies().await
    }

    async fn applicable_policies(&self, subject: Subject<'_>) -> ServiceResult<Vec<PolicyRecord>> {
        self.policy_rows("applicable_policies");
        self.inner.applicable_policies(subject).await
    }

    async fn update_policy(
        &self,
        id: &str,
        rules: &Rules,
        description: &str,
        updated_by: &str,
        updated_at: EpochMillis,
    ) -> ServiceResult<Option<PolicyRecord>> {
        self.inner
            .update_policy(id, rules, description, updated_by, updated_at)
            .await
    }

    async fn delete_policy(&self, id: &str, actor: &str) -> ServiceResult<DeleteOutcome> {
        self.inner.delete_policy(id, actor).await
    }

    async fn take_slot(&self, slot: &Slot, limit: Option<ConcurrencyLimit>) -> ServiceResult<SlotOutcome> {
        self.inner.take_slot(slot, limit).await
    }

    async fn release_slots(&self, session_ids: &[String]) -> ServiceResult<u64> {
        self.inner.release_slots(session_ids).await
    }

    async fn slots_of(&self, user: &str) -> ServiceResult<Vec<Slot>> {
        self.inner.slots_of(user).await
    }

    async fn users_with_slots(&self, after: Option<&str>, limit: u64) -> ServiceResult<Vec<String>> {
        self.inner.users_with_slots(after, limit).await
    }

    async fn record_idle_warnings(
        &self,
        warnings: &[IdleWarningRecord],
        now: EpochMillis,
    ) -> ServiceResult<Vec<String>> {
        self.inner.record_idle_warnings(warnings, now).await
    }

    async fn prune_idle_warnings(&self, warned_before: EpochMillis) -> ServiceResult<u64> {
        self.inner.prune_idle_warnings(warned_before).await
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> ServiceResult<bool> {
        self.inner.acquire_lease(name, holder, ttl).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> ServiceResult<()> {
        self.inner.release_lease(name, holder).await
    }

    async fn record_audit(&self, event: &AuditRecord) -> ServiceResult<()> {
        self.inner.record_audit(event).await
    }

    async fn list_audit(&self, query: &AuditQuery) -> ServiceResult<Vec<AuditRecord>> {
        self.inner.list_audit(query).await
    }

    async fn create_lock(&self, lock: &LockRecord) -> ServiceResult<u64> {
        self.inner.create_lock(lock).await
    }

    async fn delete_lock(&self, id: &str, actor: &str) -> ServiceResult<Option<(LockRecord, u64)>> {
        self.inner.delete_lock(id, actor).await
    }

    async fn lock_version(&self) -> ServiceResult<u64> {
        self.inner.lock_version().await
    }

    async fn locks(&self, in_force_at: Option<EpochMillis>) -> ServiceResult<LockSet> {
        self.inner.locks(in_force_at).await
    }

    async fn announce_expired_locks(&self, now: EpochMillis) -> ServiceResult<Option<u64>> {
        self.inner.announce_expired_locks(now).await
    }

    async fn ping(&self) -> ServiceResult<()> {
        self.inner.ping().await
    }
}
