//! The `policy_locks` table: one row per lock, in force or expired.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{LockRecord, LockTarget, LockTargetKind};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "policy_locks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `user`, `group`, `resource`, `gateway`, `device` or `cidr`.
    pub target_kind: String,
    /// The name, or the network in CIDR notation.
    pub target_value: String,
    pub message: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub expiry_announced: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The domain record; fails only if the row holds values no version of this code writes.
    pub fn into_record(self) -> ServiceResult<LockRecord> {
        let target = LockTargetKind::parse(&self.target_kind)
            .and_then(|kind| LockTarget::from_parts(kind, self.target_value.clone()))
            .ok_or_else(|| {
                ServiceError::internal(format!(
                    "policy_locks row {} holds an unknown target {:?} {:?}",
                    self.id, self.target_kind, self.target_value
                ))
            })?;
        Ok(LockRecord {
            id: self.id,
            target,
            message: self.message,
            reason: self.reason,
            created_by: self.created_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
        })
    }
}

pub fn active_model(lock: &LockRecord) -> ActiveModel {
    ActiveModel {
        id: Set(lock.id.clone()),
        target_kind: Set(lock.target.kind().as_str().to_owned()),
        target_value: Set(lock.target.value()),
        message: Set(lock.message.clone()),
        reason: Set(lock.reason.clone()),
        created_by: Set(lock.created_by.clone()),
        created_at: Set(lock.created_at),
        expires_at: Set(lock.expires_at),
        expiry_announced: Set(false),
    }
}
