//! `session_search` also carries each session's start time and end time, so a free-text list of
//! live sessions, newest first (the console's search box) is chosen from that table alone.
//!
//! Before, every match of the trigram index was looked up in `sessions` to learn whether it was
//! still live and when it started, then sorted, and only the page kept: at 100,000 live sessions
//! a term matching 500 of them cost ~7 ms in those lookups, against ~4 ms for the search itself
//! (`EXPLAIN ANALYZE`; the page's p99 was 10–14 ms in `make bench`). With the two times beside
//! the text, the matches are counted and sorted where they are found, and only the page's 51 rows
//! are read from `sessions`.
//!
//! `started_at` never changes after insert; `ended_at` is set when the session ends, and cleared
//! again when a lost gateway returns with it. The database keeps the copy, whichever code path
//! writes `sessions`: the insert trigger copies both times (refused starts are inserted already
//! ended), and an update trigger copies a changed end. On PostgreSQL the update trigger runs once
//! per statement over the rows it changed (an end-all ends sessions in batches of thousands); on
//! SQLite, once per row whose end changed.
//!
//! A change of the end is an update of `session_search`'s row. So that it can stay on the row's
//! page (a HOT update, which adds no entry to the trigram index), the table's pages are filled to
//! 70 %.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

use super::m20261124_000302_free_text_index::{TRIGRAM_INDEX, create_trigram_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// The trigram index is dropped and built again (see below) in one transaction, so no search
    /// runs without it; the advisory lock of its build lasts until the transaction ends.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new(SessionSearch::StartedAt)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(SessionSearch::EndedAt).big_integer().null().to_owned(),
        ] {
            if !manager.has_column("session_search", &column.get_column_name()).await? {
                manager
                    .alter_table(Table::alter().table(SessionSearch::Table).add_column(column).to_owned())
                    .await?;
            }
        }
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => postgres_up(db).await,
            _ => sqlite_up(db).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared("DROP TRIGGER IF EXISTS sessions_search_end ON sessions")
                    .await?;
                db.execute_unprepared("DROP FUNCTION IF EXISTS session_search_end()")
                    .await?;
                // The insert trigger's function as `m20261124_000302_free_text_index` wrote it.
                db.execute_unprepared(
                    "CREATE OR REPLACE FUNCTION session_search_copy() RETURNS trigger LANGUAGE plpgsql \
                     SET search_path FROM CURRENT AS $$ BEGIN \
                       INSERT INTO session_search (session_id, search_text) \
                       SELECT id, search_text FROM inserted ON CONFLICT (session_id) DO NOTHING; \
                       RETURN NULL; \
                     END $$",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER IF EXISTS sessions_search_end")
                    .await?;
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
        for column in [SessionSearch::StartedAt, SessionSearch::EndedAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(SessionSearch::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// The copy of the times, its triggers, and the trigram index rebuilt, on PostgreSQL.
async fn postgres_up(db: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
    db.execute_unprepared("ALTER TABLE session_search SET (fillfactor = 70)")
        .await?;
    // Every row is rewritten: the trigram index is dropped first and built again after,
    // which is far quicker than adding each new row version's trigrams to it.
    db.execute_unprepared(&format!("DROP INDEX IF EXISTS {TRIGRAM_INDEX}"))
        .await?;
    db.execute_unprepared(
        "UPDATE session_search AS s SET started_at = x.started_at, ended_at = x.ended_at \
         FROM sessions AS x WHERE x.id = s.session_id",
    )
    .await?;
    create_trigram_index(db).await?;
    // `SET search_path FROM CURRENT`: as the insert trigger's function (see
    // `m20261124_000302_free_text_index`).
    db.execute_unprepared(
        "CREATE OR REPLACE FUNCTION session_search_copy() RETURNS trigger LANGUAGE plpgsql \
         SET search_path FROM CURRENT AS $$ BEGIN \
           INSERT INTO session_search (session_id, search_text, started_at, ended_at) \
           SELECT id, search_text, started_at, ended_at FROM inserted \
           ON CONFLICT (session_id) DO NOTHING; \
           RETURN NULL; \
         END $$",
    )
    .await?;
    db.execute_unprepared(
        "CREATE OR REPLACE FUNCTION session_search_end() RETURNS trigger LANGUAGE plpgsql \
         SET search_path FROM CURRENT AS $$ BEGIN \
           UPDATE session_search AS s SET ended_at = u.ended_at FROM updated AS u \
           WHERE s.session_id = u.id AND s.ended_at IS DISTINCT FROM u.ended_at; \
           RETURN NULL; \
         END $$",
    )
    .await?;
    db.execute_unprepared("DROP TRIGGER IF EXISTS sessions_search_end ON sessions")
        .await?;
    // Transition tables rule out a column list (`UPDATE OF ended_at`): the function
    // picks the rows whose end changed out of every update.
    db.execute_unprepared(
        "CREATE TRIGGER sessions_search_end AFTER UPDATE ON sessions \
         REFERENCING NEW TABLE AS updated FOR EACH STATEMENT \
         EXECUTE FUNCTION session_search_end()",
    )
    .await?;
    Ok(())
}

/// The copy of the times and its triggers, on SQLite.
async fn sqlite_up(db: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
    db.execute_unprepared(
        "UPDATE session_search SET \
           started_at = (SELECT started_at FROM sessions WHERE sessions.id = session_search.session_id), \
           ended_at = (SELECT ended_at FROM sessions WHERE sessions.id = session_search.session_id) \
         WHERE EXISTS (SELECT 1 FROM sessions WHERE sessions.id = session_search.session_id)",
    )
    .await?;
    db.execute_unprepared("DROP TRIGGER IF EXISTS sessions_search_copy")
        .await?;
    db.execute_unprepared(
        "CREATE TRIGGER sessions_search_copy AFTER INSERT ON sessions BEGIN \
           INSERT OR IGNORE INTO session_search (session_id, search_text, started_at, ended_at) \
           VALUES (NEW.id, NEW.search_text, NEW.started_at, NEW.ended_at); \
         END",
    )
    .await?;
    db.execute_unprepared(
        "CREATE TRIGGER IF NOT EXISTS sessions_search_end \
         AFTER UPDATE OF ended_at ON sessions \
         FOR EACH ROW WHEN NEW.ended_at IS NOT OLD.ended_at BEGIN \
           UPDATE session_search SET ended_at = NEW.ended_at WHERE session_id = NEW.id; \
         END",
    )
    .await?;
    Ok(())
}

#[derive(DeriveIden)]
enum SessionSearch {
    Table,
    StartedAt,
    EndedAt,
}
