//! The policy-set counter. Every change to the policies (one created, updated or deleted) increases
//! it in the same transaction, so a version names one state of the set on every replica, and a
//! replica holding the set need only compare versions to know whether it is current.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use vigil_runtime::{ServiceError, ServiceResult};

use super::super::entity::policy_set_version;
use super::super::migration::m20261215_200009_create_policy_set_versions::POLICY_SET;

const MISSING: &str = "the policy-set counter row is missing; run the migrations";

/// Increases the policy-set counter; returns its new value. Concurrent changes on any number of
/// replicas queue on the counter's row (PostgreSQL) or the write lock (SQLite), so each gets its
/// own version.
pub async fn bump(txn: &DatabaseTransaction) -> ServiceResult<u64> {
    use policy_set_version::Column;
    let rows = policy_set_version::Entity::update_many()
        .col_expr(Column::Version, Expr::col(Column::Version).add(1))
        .filter(Column::Name.eq(POLICY_SET))
        .exec_with_returning(txn)
        .await?;
    let row = rows.into_iter().next().ok_or_else(|| ServiceError::internal(MISSING))?;
    Ok(to_version(row.version))
}

pub async fn version(db: &impl ConnectionTrait) -> ServiceResult<u64> {
    let row = policy_set_version::Entity::find_by_id(POLICY_SET)
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::internal(MISSING))?;
    Ok(to_version(row.version))
}

fn to_version(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
