//! The live IDLE sessions, by id: what an activity flush looks for to wake sessions up.
//!
//! Every flush asks which of its sessions (thousands) are IDLE. Probing each by primary key cost
//! as much as a third of the flush's own update (132 ms for 15,000 sessions in `make bench`),
//! though few sessions are ever IDLE. This index holds only those, so the question reads the few
//! IDLE sessions instead of every session in the batch. The wake statement spells the status as
//! a literal, so a generic plan can still prove this index's predicate.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `SessionStatus::Idle`'s proto number, frozen here (see the first migration).
pub const STATUS_IDLE: i16 = 2;

pub const IDLE_SESSIONS: &str = "idx_sessions_live_idle";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(IDLE_SESSIONS)
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(Sessions::Id)
                    .and_where(Expr::col(Sessions::EndedAt).is_null())
                    .and_where(Expr::col(Sessions::Status).eq(STATUS_IDLE))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(super::drop_sessions_index(IDLE_SESSIONS)).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    Id,
    EndedAt,
    Status,
}
