//! [`SqlPolicyStore`]: the [`PolicyStore`] on sea-orm, for PostgreSQL and SQLite alike.
//!
//! Queries are built with sea-orm/sea-query so one code path serves both backends; the lease
//! (`lease.rs`) and the per-user admission lock are the only backend-specific SQL. Locks and their
//! counter are in `locks.rs`, the policy-set counter in `policy_set.rs`.

mod conditions;
mod lease;
mod locks;
mod outbox;
mod policy_set;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use vigil_runtime::{ServiceError, ServiceResult};

use super::PolicyStore;
use super::entity::{audit_event, idle_warning, policy, slot};
use super::migration::Migrator;
use crate::domain::{
    AuditQuery, AuditRecord, ConcurrencyAction, ConcurrencyLimit, DeleteOutcome, EpochMillis, IdleWarningRecord,
    LockRecord, LockSet, PolicyRecord, Rules, ScopeKind, Slot, SlotOutcome, Subject, VersionedPolicies,
};

/// The first key of the PostgreSQL advisory locks that serialise admissions per user ("poli"),
/// so they cannot collide with another component's advisory locks on the same database.
const SLOT_LOCK_CLASS: i32 = 0x706f_6c69;

/// Rows per multi-row INSERT of idle warnings (3 parameters each, well within both backends'
/// bind-parameter limits).
const WARNINGS_PER_INSERT: usize = 5_000;

/// Policies, slots, idle warnings and leases in a SQL database (PostgreSQL or SQLite).
#[derive(Debug, Clone)]
pub struct SqlPolicyStore {
    db: DatabaseConnection,
}

impl SqlPolicyStore {
    /// A store on `db`. Does not touch the schema: call [`SqlPolicyStore::migrate`] (or run the
    /// migrations elsewhere) first. Fails on a backend other than PostgreSQL or SQLite ≥ 3.35.
    pub async fn new(db: DatabaseConnection) -> ServiceResult<Self> {
        vigil_runtime::database::check_backend(&db, "policy service").await?;
        Ok(Self { db })
    }

    /// Applies the migrations that have not been applied yet, under the lock every Vigil service
    /// migrates under (`vigil_runtime::database::migrate_locked`): replicas starting at once wait
    /// for each other, then find nothing to do.
    pub async fn migrate(&self) -> ServiceResult<()> {
        vigil_runtime::database::migrate_locked::<Migrator>(&self.db).await
    }

    /// The underlying connection (pool).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// A transaction that will write. On SQLite it takes the (single, database-wide) write lock up
    /// front (`BEGIN IMMEDIATE`): that is what serialises admissions there, and a deferred
    /// transaction that reads and then writes would fail with `SQLITE_BUSY` instead of waiting.
    async fn write_transaction(&self) -> ServiceResult<DatabaseTransaction> {
        vigil_runtime::database::begin_write(&self.db).await
    }

    /// Serialises admissions of `user` until the end of `txn`, across every replica (PostgreSQL;
    /// on SQLite the IMMEDIATE transaction holds the database's write lock already).
    async fn lock_user(&self, txn: &DatabaseTransaction, user: &str) -> ServiceResult<()> {
        if self.backend() == DbBackend::Postgres {
            let lock = Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                [SLOT_LOCK_CLASS.into(), user.into()],
            );
            txn.execute_raw(lock).await?;
        }
        Ok(())
    }

    /// PostgreSQL: the slot taken by `policy_take_slot` (see its migration), one round trip.
    async fn take_slot_in_one(&self, slot: &Slot, limit: Option<ConcurrencyLimit>) -> ServiceResult<SlotOutcome> {
        let max = limit.map(|limit| i32::try_from(limit.max).unwrap_or(i32::MAX));
        let end_oldest = limit.is_some_and(|limit| limit.action == ConcurrencyAction::EndOldest);
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT outcome, sessions FROM policy_take_slot($1, $2, $3, $4, $5, $6)",
                [
                    slot.session_id.as_str().into(),
                    slot.user.as_str().into(),
                    slot.started_at.into(),
                    slot.created_at.into(),
                    max.into(),
                    end_oldest.into(),
                ],
            ))
            .await?
            .ok_or_else(|| ServiceError::Internal("policy_take_slot returned no row".into()))?;
        let outcome: String = row.try_get_by_index(0)?;
        let sessions: Vec<String> = row.try_get_by_index(1)?;
        match outcome.as_str() {
            "taken" => Ok(SlotOutcome::Taken { evicted: sessions }),
            "held" => Ok(SlotOutcome::AlreadyHeld),
            "full" => Ok(SlotOutcome::Full {
                held: u32::try_from(sessions.len()).unwrap_or(u32::MAX),
            }),
            other => Err(ServiceError::Internal(format!("policy_take_slot answered {other:?}"))),
        }
    }

    /// SQLite: the slot taken in a write transaction (which holds the database's write lock).
    async fn take_slot_in_transaction(
        &self,
        slot: &Slot,
        limit: Option<ConcurrencyLimit>,
    ) -> ServiceResult<SlotOutcome> {
        use slot::Column;
        let txn = self.write_transaction().await?;
        self.lock_user(&txn, &slot.user).await?;
        // Under the lock, and read after taking it: every earlier admission of this user has
        // committed, and none can commit until this one does. One read answers both "held
        // already?" (a retried admission) and "how many?": a round trip less on every admission.
        let held: Vec<String> = slot::Entity::find()
            .select_only()
            .column(Column::SessionId)
            .filter(Column::UserName.eq(slot.user.as_str()))
            .order_by_asc(Column::StartedAt)
            .order_by_asc(Column::SessionId)
            .into_tuple()
            .all(&txn)
            .await?;
        if held.contains(&slot.session_id) {
            txn.commit().await?;
            return Ok(SlotOutcome::AlreadyHeld);
        }
        let mut evicted = Vec::new();
        if let Some(limit) = limit {
            let max = Ord::max(limit.max, 1) as usize;
            if held.len() >= max {
                match limit.action {
                    ConcurrencyAction::DenyNew => {
                        txn.commit().await?;
                        return Ok(SlotOutcome::Full {
                            held: u32::try_from(held.len()).unwrap_or(u32::MAX),
                        });
                    }
                    // Oldest first: keep the newest `max - 1` and the new one.
                    ConcurrencyAction::EndOldest => evicted = held[..held.len() + 1 - max].to_vec(),
                }
            }
        }
        slot::Entity::insert(slot::active_model(slot))
            .exec_without_returning(&txn)
            .await?;
        if !evicted.is_empty() {
            self.forget_sessions(&txn, &evicted).await?;
        }
        txn.commit().await?;
        Ok(SlotOutcome::Taken { evicted })
    }

    /// Deletes the slots and idle-warning records of `session_ids`; returns the slots deleted.
    async fn forget_sessions(&self, db: &impl ConnectionTrait, session_ids: &[String]) -> ServiceResult<u64> {
        let slots = slot::Entity::delete_many()
            .filter(conditions::is_in(
                self.backend(),
                (slot::Entity, slot::Column::SessionId),
                session_ids,
            )?)
            .exec(db)
            .await?;
        idle_warning::Entity::delete_many()
            .filter(conditions::is_in(
                self.backend(),
                (idle_warning::Entity, idle_warning::Column::SessionId),
                session_ids,
            )?)
            .exec(db)
            .await?;
        Ok(slots.rows_affected)
    }
}

fn records(rows: Vec<policy::Model>) -> ServiceResult<Vec<PolicyRecord>> {
    rows.into_iter().map(policy::Model::into_record).collect()
}

#[async_trait]
impl PolicyStore for SqlPolicyStore {
    async fn create_policy(&self, policy: &PolicyRecord) -> ServiceResult<()> {
        use policy::Column;
        let txn = self.write_transaction().await?;
        let inserted = policy::Entity::insert(policy::active_model(policy))
            .on_conflict(
                OnConflict::columns([Column::ScopeKind, Column::ScopeName])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        if inserted == 0 {
            drop(txn);
            let holder = policy::Entity::find()
                .filter(Column::ScopeKind.eq(policy.scope.kind().as_str()))
                .filter(Column::ScopeName.eq(policy.scope.name()))
                .one(&self.db)
                .await?;
            let holder = holder.map(|row| format!(" (id {})", row.id)).unwrap_or_default();
            return Err(ServiceError::AlreadyExists(format!(
                "a policy for the {} scope exists already{holder}; update it instead",
                policy.scope
            )));
        }
        outbox::policy_saved(&txn, policy, false).await?;
        policy_set::bump(&txn).await?;
        Ok(txn.commit().await?)
    }

    async fn get_policy(&self, id: &str) -> ServiceResult<Option<PolicyRecord>> {
        policy::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(policy::Model::into_record)
            .transpose()
    }

    async fn list_policies(&self) -> ServiceResult<Vec<PolicyRecord>> {
        let mut policies = records(policy::Entity::find().all(&self.db).await?)?;
        // Sorted here, not in SQL: the order of names must be byte order on both backends (it is
        // the documented order among groups), whatever the database's collation.
        policies.sort_by(|a, b| (a.scope.kind(), a.scope.name()).cmp(&(b.scope.kind(), b.scope.name())));
        Ok(policies)
    }

    async fn policy_version(&self) -> ServiceResult<u64> {
        policy_set::version(&self.db).await
    }

    /// The version, then the policies: read in that order (each statement sees at least what
    /// committed before it), the policies are never older than the version they are held with.
    async fn versioned_policies(&self) -> ServiceResult<VersionedPolicies> {
        let version = policy_set::version(&self.db).await?;
        let policies = self.list_policies().await?;
        Ok(VersionedPolicies { version, policies })
    }

    async fn applicable_policies(&self, subject: Subject<'_>) -> ServiceResult<Vec<PolicyRecord>> {
        use policy::Column;
        let scope = |kind: ScopeKind| Column::ScopeKind.eq(kind.as_str());
        let mut matches = Condition::any()
            .add(scope(ScopeKind::Global))
            .add(
                Condition::all()
                    .add(scope(ScopeKind::User))
                    .add(Column::ScopeName.eq(subject.user)),
            )
            .add(
                Condition::all()
                    .add(scope(ScopeKind::Resource))
                    .add(Column::ScopeName.eq(subject.resource)),
            );
        if !subject.groups.is_empty() {
            matches = matches.add(
                Condition::all()
                    .add(scope(ScopeKind::Group))
                    .add(Column::ScopeName.is_in(subject.groups.iter().map(String::as_str))),
            );
        }
        records(policy::Entity::find().filter(matches).all(&self.db).await?)
    }

    async fn update_policy(
        &self,
        id: &str,
        rules: &Rules,
        description: &str,
        updated_by: &str,
        updated_at: EpochMillis,
    ) -> ServiceResult<Option<PolicyRecord>> {
        use sea_orm::ActiveValue::Set;
        let mut changes = policy::ActiveModel {
            description: Set(description.to_owned()),
            updated_by: Set(updated_by.to_owned()),
            updated_at: Set(updated_at),
            ..Default::default()
        };
        policy::set_rules(&mut changes, rules);
        let txn = self.write_transaction().await?;
        let rows = policy::Entity::update_many()
            .set(changes)
            .filter(policy::Column::Id.eq(id))
            .exec_with_returning(&txn)
            .await?;
        let updated = rows.into_iter().next().map(policy::Model::into_record).transpose()?;
        if let Some(policy) = &updated {
            outbox::policy_saved(&txn, policy, true).await?;
            policy_set::bump(&txn).await?;
        }
        txn.commit().await?;
        Ok(updated)
    }

    async fn delete_policy(&self, id: &str, actor: &str) -> ServiceResult<DeleteOutcome> {
        use policy::Column;
        let txn = self.write_transaction().await?;
        let deleted = records(
            policy::Entity::delete_many()
                .filter(Column::Id.eq(id))
                .filter(Column::ScopeKind.ne(ScopeKind::Global.as_str()))
                .exec_with_returning(&txn)
                .await?,
        )?;
        outbox::policy_deleted(&txn, deleted.first(), actor).await?;
        if !deleted.is_empty() {
            policy_set::bump(&txn).await?;
        }
        txn.commit().await?;
        if !deleted.is_empty() {
            return Ok(DeleteOutcome::Deleted);
        }
        // Nothing deleted: the id is unknown, or it is the global policy (which never goes away,
        // so this second look cannot race with anything that matters).
        Ok(match policy::Entity::find_by_id(id).one(&self.db).await? {
            Some(_) => DeleteOutcome::Global,
            None => DeleteOutcome::NotFound,
        })
    }

    async fn take_slot(&self, slot: &Slot, limit: Option<ConcurrencyLimit>) -> ServiceResult<SlotOutcome> {
        if self.backend() == DbBackend::Postgres {
            return self.take_slot_in_one(slot, limit).await;
        }
        self.take_slot_in_transaction(slot, limit).await
    }

    async fn release_slots(&self, session_ids: &[String]) -> ServiceResult<u64> {
        if session_ids.is_empty() {
            return Ok(0);
        }
        let txn = self.write_transaction().await?;
        let released = self.forget_sessions(&txn, session_ids).await?;
        txn.commit().await?;
        Ok(released)
    }

    async fn slots_of(&self, user: &str) -> ServiceResult<Vec<Slot>> {
        use slot::Column;
        let rows = slot::Entity::find()
            .filter(Column::UserName.eq(user))
            .order_by_asc(Column::StartedAt)
            .order_by_asc(Column::SessionId)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(Slot::from).collect())
    }

    async fn users_with_slots(&self, after: Option<&str>, limit: u64) -> ServiceResult<Vec<String>> {
        use slot::Column;
        let mut query = slot::Entity::find()
            .select_only()
            .column(Column::UserName)
            .distinct()
            .order_by_asc(Column::UserName)
            .limit(limit);
        if let Some(after) = after {
            query = query.filter(Column::UserName.gt(after));
        }
        Ok(query.into_tuple().all(&self.db).await?)
    }

    async fn record_idle_warnings(
        &self,
        warnings: &[IdleWarningRecord],
        now: EpochMillis,
    ) -> ServiceResult<Vec<String>> {
        use idle_warning::Column;
        use sea_orm::ActiveValue::Set;
        // One row per session (PostgreSQL refuses to update a row twice in one statement), for
        // its latest idle period.
        let mut latest: BTreeMap<&str, EpochMillis> = BTreeMap::new();
        for warning in warnings {
            let entry = latest
                .entry(warning.session_id.as_str())
                .or_insert(warning.last_activity_at);
            *entry = Ord::max(*entry, warning.last_activity_at);
        }
        let rows: Vec<idle_warning::ActiveModel> = latest
            .into_iter()
            .map(|(session_id, last_activity_at)| idle_warning::ActiveModel {
                session_id: Set(session_id.to_owned()),
                last_activity_at: Set(last_activity_at),
                warned_at: Set(now),
            })
            .collect();
        let mut recorded = Vec::with_capacity(rows.len());
        let txn = self.write_transaction().await?;
        for chunk in rows.chunks(WARNINGS_PER_INSERT) {
            // A session already warned for this idle period (or a later one) keeps its row and is
            // not returned: the conditional DO UPDATE is the "once per idle period".
            let mut newer_period = OnConflict::column(Column::SessionId);
            newer_period
                .update_columns([Column::LastActivityAt, Column::WarnedAt])
                .action_and_where(
                    Expr::col((idle_warning::Entity, Column::LastActivityAt))
                        .lt(Expr::cust("excluded.last_activity_at")),
                );
            let keys = idle_warning::Entity::insert_many(chunk.iter().cloned())
                .on_conflict(newer_period)
                .exec_with_returning_keys(&txn)
                .await?;
            recorded.extend(keys);
        }
        outbox::idle_warned(&txn, &recorded, warnings, now).await?;
        txn.commit().await?;
        Ok(recorded)
    }

    async fn prune_idle_warnings(&self, warned_before: EpochMillis) -> ServiceResult<u64> {
        let deleted = idle_warning::Entity::delete_many()
            .filter(idle_warning::Column::WarnedAt.lt(warned_before))
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> ServiceResult<bool> {
        lease::acquire(&self.db, name, holder, ttl).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> ServiceResult<()> {
        lease::release(&self.db, name, holder).await
    }

    async fn record_audit(&self, event: &AuditRecord) -> ServiceResult<()> {
        audit_event::Entity::insert(audit_event::active_model(event))
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    async fn list_audit(&self, query: &AuditQuery) -> ServiceResult<Vec<AuditRecord>> {
        use audit_event::Column;
        let mut condition = Condition::all();
        if let Some(actor) = &query.actor {
            condition = condition.add(Column::Actor.eq(actor.as_str()));
        }
        if let Some(since) = query.since {
            condition = condition.add(Column::At.gte(since));
        }
        if let Some((at, id)) = &query.after {
            condition = condition.add(
                Condition::any()
                    .add(Column::At.lt(*at))
                    .add(Condition::all().add(Column::At.eq(*at)).add(Column::Id.lt(id.as_str()))),
            );
        }
        let rows = audit_event::Entity::find()
            .filter(condition)
            .order_by_desc(Column::At)
            .order_by_desc(Column::Id)
            .limit(query.limit)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(audit_event::Model::into_record).collect())
    }

    async fn create_lock(&self, lock: &LockRecord) -> ServiceResult<u64> {
        let txn = self.write_transaction().await?;
        let version = locks::create(&txn, lock).await?;
        outbox::lock_created(&txn, lock).await?;
        txn.commit().await?;
        Ok(version)
    }

    async fn delete_lock(&self, id: &str, actor: &str) -> ServiceResult<Option<(LockRecord, u64)>> {
        let txn = self.write_transaction().await?;
        let deleted = locks::delete(&txn, id).await?;
        outbox::lock_deleted(&txn, deleted.as_ref(), actor).await?;
        txn.commit().await?;
        Ok(deleted)
    }

    async fn lock_version(&self) -> ServiceResult<u64> {
        locks::version(&self.db).await
    }

    async fn locks(&self, in_force_at: Option<EpochMillis>) -> ServiceResult<LockSet> {
        locks::read(&self.db, in_force_at).await
    }

    async fn announce_expired_locks(&self, now: EpochMillis) -> ServiceResult<Option<u64>> {
        // Asked every sweep: a read first, so the write transaction is taken only when needed.
        if !locks::any_unannounced_expiry(&self.db, now).await? {
            return Ok(None);
        }
        let txn = self.write_transaction().await?;
        outbox::locks_expiring(&txn, now).await?;
        let version = locks::announce_expired(&txn, now).await?;
        txn.commit().await?;
        Ok(version)
    }

    async fn ping(&self) -> ServiceResult<()> {
        Ok(self.db.ping().await?)
    }
}
