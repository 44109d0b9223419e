//! Locks and the lock-set counter. Every change to the set (a lock created, removed, or its expiry
//! announced) increases the counter in the same transaction, so a version names one state of the
//! set on every replica.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder};
use vigil_runtime::{ServiceError, ServiceResult};

use super::super::entity::{lock, lock_version};
use super::super::migration::m20261210_200006_create_policy_locks::LOCK_SET;
use crate::domain::{EpochMillis, LockRecord, LockSet};

/// Increases the lock-set counter; returns its new value. Concurrent changes on any number of
/// replicas queue on the counter's row (PostgreSQL) or the write lock (SQLite), so each gets its
/// own version.
pub async fn bump(txn: &DatabaseTransaction) -> ServiceResult<u64> {
    use lock_version::Column;
    let rows = lock_version::Entity::update_many()
        .col_expr(Column::Version, Expr::col(Column::Version).add(1))
        .filter(Column::Name.eq(LOCK_SET))
        .exec_with_returning(txn)
        .await?;
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError::internal("the lock-set counter row is missing; run the migrations"))?;
    Ok(to_version(row.version))
}

pub async fn version(db: &impl ConnectionTrait) -> ServiceResult<u64> {
    let row = lock_version::Entity::find_by_id(LOCK_SET)
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::internal("the lock-set counter row is missing; run the migrations"))?;
    Ok(to_version(row.version))
}

fn to_version(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub async fn create(txn: &DatabaseTransaction, lock: &LockRecord) -> ServiceResult<u64> {
    lock::Entity::insert(lock::active_model(lock))
        .exec_without_returning(txn)
        .await?;
    bump(txn).await
}

/// Removes the lock; `None` when there is no such lock (or a concurrent call removed it first).
pub async fn delete(txn: &DatabaseTransaction, id: &str) -> ServiceResult<Option<(LockRecord, u64)>> {
    let Some(row) = lock::Entity::find_by_id(id).one(txn).await? else {
        return Ok(None);
    };
    let deleted = lock::Entity::delete_many()
        .filter(lock::Column::Id.eq(id))
        .exec(txn)
        .await?;
    if deleted.rows_affected == 0 {
        return Ok(None);
    }
    let version = bump(txn).await?;
    Ok(Some((row.into_record()?, version)))
}

/// The version, then the locks: read in that order (each statement sees at least what committed
/// before it), the locks are never older than the version they are published with.
pub async fn read(db: &impl ConnectionTrait, in_force_at: Option<EpochMillis>) -> ServiceResult<LockSet> {
    use lock::Column;
    let version = version(db).await?;
    let mut query = lock::Entity::find()
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id);
    if let Some(now) = in_force_at {
        query = query.filter(
            sea_orm::Condition::any()
                .add(Column::ExpiresAt.is_null())
                .add(Column::ExpiresAt.gt(now)),
        );
    }
    let locks = query
        .all(db)
        .await?
        .into_iter()
        .map(lock::Model::into_record)
        .collect::<ServiceResult<_>>()?;
    Ok(LockSet { version, locks })
}

/// Whether some lock expired at or before `now` without its expiry being announced.
pub async fn any_unannounced_expiry(db: &impl ConnectionTrait, now: EpochMillis) -> ServiceResult<bool> {
    use lock::Column;
    let found = lock::Entity::find()
        .filter(Column::ExpiresAt.lte(now))
        .filter(Column::ExpiryAnnounced.eq(false))
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// Marks the locks that expired at or before `now` and were not yet announced; when there were
/// any, takes a new version and returns it. Two callers at once: one marks, the other finds
/// nothing left to mark.
pub async fn announce_expired(txn: &DatabaseTransaction, now: EpochMillis) -> ServiceResult<Option<u64>> {
    use lock::Column;
    let marked = lock::Entity::update_many()
        .col_expr(Column::ExpiryAnnounced, Expr::val(true))
        .filter(Column::ExpiresAt.lte(now))
        .filter(Column::ExpiryAnnounced.eq(false))
        .exec(txn)
        .await?;
    if marked.rows_affected == 0 {
        return Ok(None);
    }
    Ok(Some(bump(txn).await?))
}
