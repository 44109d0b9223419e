//! Indexes for the list pages that scanned every live session (found with `make bench` and
//! EXPLAIN ANALYZE at 100,000 live sessions):
//! - "active, by last activity": the ACTIVE-only index had no `id` tie-breaker, so the planner
//!   sorted every active session for each page (68 ms). It now ends with `id`, and serves the idle
//!   sweep as before.
//! - a country filter scanned every live session (41 ms when few match): a live index on the
//!   country code.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `SessionStatus::Active`'s proto number, frozen here (see the first migration).
const STATUS_ACTIVE: i16 = 1;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_active_last_activity_id")
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(Sessions::LastActivityAt)
                    .col(Sessions::Id)
                    .and_where(Expr::col(Sessions::EndedAt).is_null())
                    .and_where(Expr::col(Sessions::Status).eq(STATUS_ACTIVE))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_sessions_active_last_activity")
                    .table(Sessions::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_live_country")
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(Sessions::LocationCountryCode)
                    .and_where(Expr::col(Sessions::EndedAt).is_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_sessions_live_country")
                    .table(Sessions::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_active_last_activity")
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(Sessions::LastActivityAt)
                    .and_where(Expr::col(Sessions::EndedAt).is_null())
                    .and_where(Expr::col(Sessions::Status).eq(STATUS_ACTIVE))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_sessions_active_last_activity_id")
                    .table(Sessions::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    Status,
    EndedAt,
    LastActivityAt,
    LocationCountryCode,
}
