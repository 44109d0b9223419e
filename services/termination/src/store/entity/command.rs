//! The `termination_commands` table: one row per session a termination covers, and where its
//! delivery stands.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use vigil_runtime::{ServiceError, ServiceResult};

use super::{decode_enum, enum_code};
use crate::domain::{CommandRecord, DeliveryState, EndReason};

const TABLE: &str = "termination_commands";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "termination_commands")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub termination_id: String,
    pub session_id: String,
    pub gateway_id: String,
    /// `user` is a reserved word in PostgreSQL; `user_name` avoids quoting it in hand-written SQL.
    pub user_name: String,
    pub reason: i16,
    pub user_message: String,
    /// A [`DeliveryState`] proto number.
    pub state: i16,
    pub detail: String,
    pub attempts: i64,
    pub created_at: i64,
    pub next_attempt_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A row to insert for `command`.
pub fn active_model(command: &CommandRecord) -> ActiveModel {
    ActiveModel {
        id: Set(command.id.clone()),
        termination_id: Set(command.termination_id.clone()),
        session_id: Set(command.session_id.clone()),
        gateway_id: Set(command.gateway_id.clone()),
        user_name: Set(command.user.clone()),
        reason: Set(enum_code(command.reason)),
        user_message: Set(command.user_message.clone()),
        state: Set(enum_code(command.state)),
        detail: Set(command.detail.clone()),
        attempts: Set(i64::from(command.attempts)),
        created_at: Set(command.created_at),
        next_attempt_at: Set(command.next_attempt_at),
        delivered_at: Set(command.delivered_at),
        acknowledged_at: Set(command.acknowledged_at),
    }
}

impl Model {
    /// The domain record; fails only if the row holds values no version of this code writes.
    pub fn into_record(self) -> ServiceResult<CommandRecord> {
        Ok(CommandRecord {
            reason: decode_enum::<EndReason>(self.reason, TABLE, "reason")?,
            state: decode_enum::<DeliveryState>(self.state, TABLE, "state")?,
            attempts: u32::try_from(self.attempts)
                .map_err(|_| ServiceError::internal(format!("{TABLE}.attempts out of range: {}", self.attempts)))?,
            id: self.id,
            termination_id: self.termination_id,
            session_id: self.session_id,
            gateway_id: self.gateway_id,
            user: self.user_name,
            user_message: self.user_message,
            detail: self.detail,
            created_at: self.created_at,
            next_attempt_at: self.next_attempt_at,
            delivered_at: self.delivered_at,
            acknowledged_at: self.acknowledged_at,
        })
    }
}
