//! Activity moves to a narrow table of its own, `session_activity`: one row per live session.
//!
//! Every activity report rewrote a whole `sessions` row (two dozen columns, the search text) and,
//! each time its 10-second bucket moved, added an entry to each of its ten indexes. At 100,000
//! sessions reporting every second the WAL grew by over 1 GB a minute, checkpoints came every
//! ~20 s, and the first write of each page after one logged the whole page: the writes topped out
//! at ~80,000 sessions a second. The same updates on a table of just the activity (measured with
//! pgbench, 4 writers of 2,500-session batches) ran 3-4× as fast in less WAL.
//!
//! The orderings by last activity move with it: the two bucket indexes of `sessions` are replaced
//! by this table's. `sessions` keeps its activity columns for ended sessions (an end folds the
//! final values in) and as a copy for live ones.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `SessionStatus::Idle`'s proto number, frozen here (see the first migration).
const STATUS_IDLE: i16 = 2;
const STATUS_ACTIVE: i16 = 1;

/// The live sessions by bucket: lists by last activity, the policy sweeper's walk.
pub const BY_BUCKET: &str = "idx_session_activity_bucket";
/// The sessions not IDLE, by bucket: the idle sweep's candidates, oldest first.
pub const AWAKE_BY_BUCKET: &str = "idx_session_activity_awake_bucket";
/// The IDLE sessions: what an activity flush looks for to wake sessions up (they are few).
pub const IDLE: &str = "idx_session_activity_idle";

/// `sessions`' indexes this table's replace (from `m20261124_000301_activity_buckets`).
const SESSIONS_ACTIVE_BY_BUCKET: &str = "idx_sessions_active_activity_bucket";
const SESSIONS_LIVE_BY_BUCKET: &str = "idx_sessions_live_activity_bucket";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let bigint = |column: SessionActivity| ColumnDef::new(column).big_integer().not_null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(SessionActivity::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SessionActivity::SessionId)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SessionActivity::GatewayId).text().not_null())
                    .col(bigint(SessionActivity::LastActivityAt))
                    .col(bigint(SessionActivity::ActivityBucket))
                    .col(bigint(SessionActivity::BytesIn))
                    .col(bigint(SessionActivity::BytesOut))
                    .col(ColumnDef::new(SessionActivity::Idle).boolean().not_null())
                    .to_owned(),
            )
            .await?;
        let connection = manager.get_connection();
        if manager.get_database_backend() == DbBackend::Postgres {
            // Room on each page for the next version of its rows: activity updates stay in place
            // (HOT) until a bucket moves. `sessions` no longer needs that room: what still updates
            // it (a status change, the end) changes indexed columns, never in place.
            connection
                .execute_unprepared("ALTER TABLE session_activity SET (fillfactor = 50)")
                .await?;
            connection
                .execute_unprepared("ALTER TABLE sessions RESET (fillfactor)")
                .await?;
        }
        connection
            .execute_unprepared(&format!(
                "INSERT INTO session_activity \
                   (session_id, gateway_id, last_activity_at, activity_bucket, bytes_in, bytes_out, idle) \
                 SELECT id, gateway_id, last_activity_at, activity_bucket, bytes_in, bytes_out, status = {STATUS_IDLE} \
                 FROM sessions WHERE ended_at IS NULL"
            ))
            .await?;
        manager.create_index(by_bucket(BY_BUCKET, None)).await?;
        manager.create_index(by_bucket(AWAKE_BY_BUCKET, Some(false))).await?;
        manager
            .create_index(
                Index::create()
                    .name(IDLE)
                    .table(SessionActivity::Table)
                    .if_not_exists()
                    .col(SessionActivity::SessionId)
                    .and_where(Expr::col(SessionActivity::Idle).eq(true))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(super::drop_sessions_index(SESSIONS_ACTIVE_BY_BUCKET))
            .await?;
        manager
            .drop_index(super::drop_sessions_index(SESSIONS_LIVE_BY_BUCKET))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The live sessions' current activity back into their rows, then the old indexes.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE sessions SET \
                   last_activity_at = (SELECT a.last_activity_at FROM session_activity a WHERE a.session_id = sessions.id), \
                   activity_bucket = (SELECT a.activity_bucket FROM session_activity a WHERE a.session_id = sessions.id), \
                   bytes_in = (SELECT a.bytes_in FROM session_activity a WHERE a.session_id = sessions.id), \
                   bytes_out = (SELECT a.bytes_out FROM session_activity a WHERE a.session_id = sessions.id) \
                 WHERE id IN (SELECT session_id FROM session_activity)",
            )
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE sessions SET (fillfactor = 50)")
                .await?;
        }
        for (name, active_only) in [(SESSIONS_ACTIVE_BY_BUCKET, true), (SESSIONS_LIVE_BY_BUCKET, false)] {
            let mut index = Index::create();
            index
                .name(name)
                .table(Sessions::Table)
                .if_not_exists()
                .col(Sessions::ActivityBucket)
                .and_where(Expr::col(Sessions::EndedAt).is_null());
            if active_only {
                index.and_where(Expr::col(Sessions::Status).eq(STATUS_ACTIVE));
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .drop_table(Table::drop().table(SessionActivity::Table).if_exists().to_owned())
            .await
    }
}

/// `(activity_bucket, session_id)`, of the sessions whose `idle` is `idle` when given.
fn by_bucket(name: &str, idle: Option<bool>) -> IndexCreateStatement {
    let mut index = Index::create();
    index
        .name(name)
        .table(SessionActivity::Table)
        .if_not_exists()
        .col(SessionActivity::ActivityBucket)
        .col(SessionActivity::SessionId);
    if let Some(idle) = idle {
        index.and_where(Expr::col(SessionActivity::Idle).eq(idle));
    }
    index.to_owned()
}

#[derive(DeriveIden, Clone, Copy)]
enum SessionActivity {
    Table,
    SessionId,
    GatewayId,
    LastActivityAt,
    ActivityBucket,
    BytesIn,
    BytesOut,
    Idle,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    EndedAt,
    Status,
    ActivityBucket,
}
