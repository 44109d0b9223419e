//! The `policy_audit_events` table: the audit trail of policy changes.

use sea_orm::entity::prelude::*;

use crate::domain::AuditRecord;

/// Stored values of `outcome`: the `AuditOutcome` proto numbers.
pub const SUCCEEDED: i16 = 1;
pub const FAILED: i16 = 2;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "policy_audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: i16,
    pub detail: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn into_record(self) -> AuditRecord {
        AuditRecord {
            id: self.id,
            at: self.at,
            actor: self.actor,
            action: self.action,
            target: self.target,
            succeeded: self.outcome == SUCCEEDED,
            detail: self.detail,
        }
    }
}

pub fn active_model(record: &AuditRecord) -> ActiveModel {
    use sea_orm::ActiveValue::Set;
    ActiveModel {
        id: Set(record.id.clone()),
        at: Set(record.at),
        actor: Set(record.actor.clone()),
        action: Set(record.action.clone()),
        target: Set(record.target.clone()),
        outcome: Set(if record.succeeded { SUCCEEDED } else { FAILED }),
        detail: Set(record.detail.clone()),
    }
}
