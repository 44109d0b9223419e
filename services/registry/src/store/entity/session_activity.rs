//! The `session_activity` table: what changes while a session runs, one narrow row per live session.
//!
//! Activity reports are the registry's most frequent write (every live session, every few
//! seconds). PostgreSQL writes a whole new row version for each update, so they go to this narrow
//! row instead of the wide `sessions` row with its ten indexes: about 4× the updates per second at
//! 100,000 sessions, in a fraction of the WAL (see the migration `m20261214_000601_session_activity`).
//!
//! The row is inserted with its session, deleted when the session ends (its values are folded
//! into `sessions` by the same transaction), and re-inserted if the session is revived. For a live
//! session, `sessions.last_activity_at`, `activity_bucket`, `bytes_in` and `bytes_out` are only a
//! copy as of its last status change: reads take these columns from here.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;

use crate::domain::{SessionRecord, SessionStatus, last_activity_rank};
use crate::store::entity::session::to_column_counter;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_activity")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: String,
    /// The session's gateway (never changes): a gateway's reports apply to its own sessions only.
    pub gateway_id: String,
    pub last_activity_at: i64,
    /// `last_activity_rank(last_activity_at)`, what the indexes hold (see `sessions.activity_bucket`).
    pub activity_bucket: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    /// Whether the session's status is IDLE (kept with `sessions.status`), so the idle sweep's
    /// index holds only the sessions it may mark.
    pub idle: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::session::Entity",
        from = "Column::SessionId",
        to = "super::session::Column::Id"
    )]
    Session,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// The row of a live session; `None` for an ended one (a refused start is recorded ended).
pub fn active_model(session: &SessionRecord) -> Option<ActiveModel> {
    if session.ended_at.is_some() {
        return None;
    }
    Some(ActiveModel {
        session_id: Set(session.id.clone()),
        gateway_id: Set(session.gateway_id.clone()),
        last_activity_at: Set(session.last_activity_at),
        activity_bucket: Set(last_activity_rank(session.last_activity_at)),
        bytes_in: Set(to_column_counter(session.bytes_in)),
        bytes_out: Set(to_column_counter(session.bytes_out)),
        idle: Set(session.status == SessionStatus::Idle),
    })
}
