//! `session_search` also carries each session's start time, so a free-text list of live sessions,
//! newest first (the console's search box), is chosen without reading `sessions`.
//!
//! Before, every match of the trigram index was looked up in `sessions` (wide rows) to learn
//! whether it was still live and when it started, then sorted, and only the page kept: at 100,000
//! live sessions a term matching 500 of them cost ~7 ms in those lookups, against ~4 ms for the
//! search itself (`EXPLAIN ANALYZE`; the page's p99 was 10–14 ms in `make bench`). Now the matches
//! are sorted by the start time beside the text, their liveness is the narrow `session_activity`
//! row every live session has, and only the page's 51 rows are read from `sessions`.
//!
//! The start time never changes after insert, so the table stays insert-only: the insert trigger
//! copies it with the text, whichever code path inserts the session. (Its end time was tried here
//! too: an end-all then rewrote every row of this table, and most of those rewrites could not
//! stay on their page, so each added its text's trigrams to the index again — 70 ms more per
//! batch of 1,800 ends, enough to slow the end-all's acknowledgements into redeliveries.)

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

use super::m20261124_000302_free_text_index::{COPY_FUNCTION, TRIGRAM_INDEX, create_trigram_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// The trigram index is dropped and built again (see below) in one transaction, so no search
    /// runs without it; the advisory lock of its build lasts until the transaction ends. On SQLite
    /// too: the trigger swap must run on one connection.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_column("session_search", "started_at").await? {
            manager
                .alter_table(
                    Table::alter()
                        .table(SessionSearch::Table)
                        .add_column(
                            ColumnDef::new(SessionSearch::StartedAt)
                                .big_integer()
                                .not_null()
                                .default(0),
                        )
                        .to_owned(),
                )
                .await?;
        }
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => postgres_up(db).await,
            _ => sqlite_up(db).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // The insert trigger as `m20261124_000302_free_text_index` wrote it.
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared(COPY_FUNCTION).await?;
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER IF EXISTS sessions_search_copy")
                    .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER sessions_search_copy AFTER INSERT ON sessions BEGIN \
                       INSERT OR IGNORE INTO session_search (session_id, search_text) \
                       VALUES (NEW.id, NEW.search_text); \
                     END",
                )
                .await?;
            }
        }
        manager
            .alter_table(
                Table::alter()
                    .table(SessionSearch::Table)
                    .drop_column(SessionSearch::StartedAt)
                    .to_owned(),
            )
            .await
    }
}

/// The start times copied, the insert trigger copying them from now on, on PostgreSQL.
async fn postgres_up(db: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
    // Every row is rewritten: the trigram index is dropped first and built again after, which is
    // far quicker than adding each new row version's trigrams to it.
    db.execute_unprepared(&format!("DROP INDEX IF EXISTS {TRIGRAM_INDEX}"))
        .await?;
    db.execute_unprepared(
        "UPDATE session_search AS s SET started_at = x.started_at FROM sessions AS x WHERE x.id = s.session_id",
    )
    .await?;
    create_trigram_index(db).await?;
    // `SET search_path FROM CURRENT`: as the trigger's function was (see
    // `m20261124_000302_free_text_index`).
    db.execute_unprepared(
        "CREATE OR REPLACE FUNCTION session_search_copy() RETURNS trigger LANGUAGE plpgsql \
         SET search_path FROM CURRENT AS $$ BEGIN \
           INSERT INTO session_search (session_id, search_text, started_at) \
           SELECT id, search_text, started_at FROM inserted ON CONFLICT (session_id) DO NOTHING; \
           RETURN NULL; \
         END $$",
    )
    .await?;
    Ok(())
}

/// The start times copied, the insert trigger copying them from now on, on SQLite.
async fn sqlite_up(db: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
    db.execute_unprepared(
        "UPDATE session_search SET \
           started_at = (SELECT started_at FROM sessions WHERE sessions.id = session_search.session_id) \
         WHERE EXISTS (SELECT 1 FROM sessions WHERE sessions.id = session_search.session_id)",
    )
    .await?;
    db.execute_unprepared("DROP TRIGGER IF EXISTS sessions_search_copy")
        .await?;
    db.execute_unprepared(
        "CREATE TRIGGER sessions_search_copy AFTER INSERT ON sessions BEGIN \
           INSERT OR IGNORE INTO session_search (session_id, search_text, started_at) \
           VALUES (NEW.id, NEW.search_text, NEW.started_at); \
         END",
    )
    .await?;
    Ok(())
}

#[derive(DeriveIden)]
enum SessionSearch {
    Table,
    StartedAt,
}
