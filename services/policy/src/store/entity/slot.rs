//! The `policy_slots` table: one row per live session counting against its user's limit.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;

use crate::domain::Slot;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "policy_slots")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: String,
    /// `user` is a reserved word in PostgreSQL.
    pub user_name: String,
    pub started_at: i64,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub fn active_model(slot: &Slot) -> ActiveModel {
    ActiveModel {
        session_id: Set(slot.session_id.clone()),
        user_name: Set(slot.user.clone()),
        started_at: Set(slot.started_at),
        created_at: Set(slot.created_at),
    }
}

impl From<Model> for Slot {
    fn from(row: Model) -> Self {
        Slot {
            session_id: row.session_id,
            user: row.user_name,
            started_at: row.started_at,
            created_at: row.created_at,
        }
    }
}
