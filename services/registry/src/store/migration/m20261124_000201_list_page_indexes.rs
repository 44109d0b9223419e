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

/// Names of the indexes this migration adds or replaces.
const ACTIVE_BY_ACTIVITY: &str = "idx_sessions_active_last_activity_id";
const ACTIVE_BY_ACTIVITY_BEFORE: &str = "idx_sessions_active_last_activity";
const LIVE_COUNTRY: &str = "idx_sessions_live_country";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(active_by_activity(ACTIVE_BY_ACTIVITY, true))
            .await?;
        manager
            .drop_index(super::drop_sessions_index(ACTIVE_BY_ACTIVITY_BEFORE))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(LIVE_COUNTRY)
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(Sessions::LocationCountryCode)
                    .and_where(Expr::col(Sessions::EndedAt).is_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(super::drop_sessions_index(LIVE_COUNTRY)).await?;
        manager
            .create_index(active_by_activity(ACTIVE_BY_ACTIVITY_BEFORE, false))
            .await?;
        manager.drop_index(super::drop_sessions_index(ACTIVE_BY_ACTIVITY)).await
    }
}

/// Live ACTIVE sessions by last activity, with `id` as the tie-breaker when `with_id` (the index
/// before this migration had none).
fn active_by_activity(name: &str, with_id: bool) -> IndexCreateStatement {
    let mut index = Index::create();
    index
        .name(name)
        .table(Sessions::Table)
        .if_not_exists()
        .col(Sessions::LastActivityAt);
    if with_id {
        index.col(Sessions::Id);
    }
    index
        .and_where(Expr::col(Sessions::EndedAt).is_null())
        .and_where(Expr::col(Sessions::Status).eq(STATUS_ACTIVE))
        .to_owned()
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
