//! Activity reports without index writes: `activity_bucket`, the last activity to the nearest
//! 10 s (`domain::last_activity_rank`), takes the place of `last_activity_at` in every index.
//!
//! Agents report activity every few seconds per session; each report moves `last_activity_at`
//! (and the byte counters). While that column was indexed, PostgreSQL could not update those rows
//! in place (a "HOT" update): every report wrote a new entry into each of the table's eleven
//! indexes. Measured at 100,000 live sessions, a batch of 10,000 reports took 660–910 ms that
//! way; with no indexed column changing it takes 110–360 ms. The bucket changes once per
//! 10 s per session, so most reports leave every index alone.
//!
//! The price: lists sorted by last activity order sessions by bucket, then id (activity within the
//! same 10 s counts as equal), and the idle sweep finds candidates by bucket and checks the exact
//! time. The exact `last_activity_at` is still what every session shows.
//!
//! On PostgreSQL the table's fill factor drops to 50 so that updated rows find room on their own
//! page (the other condition for an in-place update); it applies to pages written from now on.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `SessionStatus::Active`'s proto number, frozen here (see the first migration).
const STATUS_ACTIVE: i16 = 1;
/// `domain::LAST_ACTIVITY_ORDER_MS`, frozen here: another width needs a new migration that
/// recomputes the column.
const ACTIVITY_BUCKET_MS: i64 = 10_000;

const ACTIVE_BY_BUCKET: &str = "idx_sessions_active_activity_bucket";
const LIVE_BY_BUCKET: &str = "idx_sessions_live_activity_bucket";
/// The indexes on `last_activity_at` this migration replaces.
const ACTIVE_BY_ACTIVITY: &str = "idx_sessions_active_last_activity_id";
const LIVE_BY_ACTIVITY: &str = "idx_sessions_live_last_activity";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("sessions", "activity_bucket").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .add_column(
                            ColumnDef::new(Sessions::ActivityBucket)
                                .big_integer()
                                .not_null()
                                .default(0),
                        )
                        .to_owned(),
                )
                .await?;
        }
        // Integer division truncates alike in both databases, and as `last_activity_rank` does.
        manager
            .exec_stmt(
                Query::update()
                    .table(Sessions::Table)
                    .value(
                        Sessions::ActivityBucket,
                        Expr::col(Sessions::LastActivityAt).div(ACTIVITY_BUCKET_MS),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(by_bucket(ACTIVE_BY_BUCKET, Sessions::ActivityBucket, true))
            .await?;
        manager
            .create_index(by_bucket(LIVE_BY_BUCKET, Sessions::ActivityBucket, false))
            .await?;
        manager
            .drop_index(super::drop_sessions_index(ACTIVE_BY_ACTIVITY))
            .await?;
        manager.drop_index(super::drop_sessions_index(LIVE_BY_ACTIVITY)).await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE sessions SET (fillfactor = 50)")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE sessions RESET (fillfactor)")
                .await?;
        }
        manager
            .create_index(by_bucket(ACTIVE_BY_ACTIVITY, Sessions::LastActivityAt, true))
            .await?;
        manager
            .create_index(by_bucket(LIVE_BY_ACTIVITY, Sessions::LastActivityAt, false))
            .await?;
        manager.drop_index(super::drop_sessions_index(ACTIVE_BY_BUCKET)).await?;
        manager.drop_index(super::drop_sessions_index(LIVE_BY_BUCKET)).await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::ActivityBucket)
                    .to_owned(),
            )
            .await
    }
}

/// Live sessions (ACTIVE ones only when `active_only`) by `column`, then `id`: the list's order and
/// keyset, and with `active_only` the idle sweep's candidates.
fn by_bucket(name: &str, column: Sessions, active_only: bool) -> IndexCreateStatement {
    let mut index = Index::create();
    index
        .name(name)
        .table(Sessions::Table)
        .if_not_exists()
        .col(column)
        .col(Sessions::Id)
        .and_where(Expr::col(Sessions::EndedAt).is_null());
    if active_only {
        index.and_where(Expr::col(Sessions::Status).eq(STATUS_ACTIVE));
    }
    index.to_owned()
}

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    Id,
    Status,
    EndedAt,
    LastActivityAt,
    ActivityBucket,
}
