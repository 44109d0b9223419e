//! The free-text filter served by an index: `session_search`, a table the database fills from
//! `sessions` on insert, with a trigram index on PostgreSQL.
//!
//! The filter is `search_text LIKE '%term%'`, which no B-tree serves: at 100,000 live sessions a
//! rare term scanned every one of them (p50 60 ms, p99 117 ms for a page in `make bench`). A GIN
//! index of trigrams (the `pg_trgm` extension, shipped with PostgreSQL) answers the same LIKE from
//! the index: p50 10 ms, p99 16 ms.
//!
//! Why a table of its own: on `sessions` the GIN index would take new entries on every update
//! that is not in place (HOT), and each session's `activity_bucket` moves every 10 s. Measured,
//! that cut activity ingestion from 78,000 to 15,000 updates/s. `search_text` never changes after
//! insert, so its table is insert-only: an `AFTER INSERT` trigger copies it (one statement per
//! insert on PostgreSQL, whatever the number of rows; one row at a time on SQLite), in the same
//! transaction, whichever code path inserts the session.
//!
//! `pg_trgm` is a trusted extension: a database owner, or anyone allowed to create objects in the
//! database, may install it. Where it cannot be installed (not shipped, or not allowed), the
//! migration leaves the index out and logs it: free text then scans `session_search` (narrow rows,
//! still cheaper than `sessions`). SQLite has no trigram index; the embedded default's table is
//! small. The extension goes to the `public` schema, not the service's own: a schema dropped with
//! its service (as the tests do) must not take the operator class of other schemas' indexes along.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub(super) const TRIGRAM_INDEX: &str = "idx_session_search_trgm";

/// The insert trigger's function on PostgreSQL, as this migration writes it (a later one's `down`
/// writes it again).
pub(super) const COPY_FUNCTION: &str = "CREATE OR REPLACE FUNCTION session_search_copy() RETURNS trigger \
     LANGUAGE plpgsql SET search_path FROM CURRENT AS $$ BEGIN \
       INSERT INTO session_search (session_id, search_text) \
       SELECT id, search_text FROM inserted ON CONFLICT (session_id) DO NOTHING; \
       RETURN NULL; \
     END $$";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// The advisory lock below lasts until the transaction ends.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SessionSearch::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(SessionSearch::SessionId).text().not_null().primary_key())
                    .col(ColumnDef::new(SessionSearch::SearchText).text().not_null())
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            // `WHERE true`: without it SQLite would read `ON CONFLICT` as part of the SELECT.
            "INSERT INTO session_search (session_id, search_text) SELECT id, search_text FROM sessions \
             WHERE true ON CONFLICT (session_id) DO NOTHING",
        )
        .await?;
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                // `SET search_path FROM CURRENT`: the function finds `session_search` in this
                // service's schema whatever the inserting connection's path.
                db.execute_unprepared(COPY_FUNCTION).await?;
                db.execute_unprepared("DROP TRIGGER IF EXISTS sessions_search_copy ON sessions")
                    .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER sessions_search_copy AFTER INSERT ON sessions \
                     REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT \
                     EXECUTE FUNCTION session_search_copy()",
                )
                .await?;
                create_trigram_index(db).await?;
            }
            _ => {
                db.execute_unprepared(
                    "CREATE TRIGGER IF NOT EXISTS sessions_search_copy AFTER INSERT ON sessions BEGIN \
                       INSERT OR IGNORE INTO session_search (session_id, search_text) \
                       VALUES (NEW.id, NEW.search_text); \
                     END",
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // The extension stays: other schemas' indexes may use it.
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                db.execute_unprepared("DROP TRIGGER IF EXISTS sessions_search_copy ON sessions")
                    .await?;
                db.execute_unprepared("DROP FUNCTION IF EXISTS session_search_copy()")
                    .await?;
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER IF EXISTS sessions_search_copy")
                    .await?;
            }
        }
        manager
            .drop_table(Table::drop().table(SessionSearch::Table).if_exists().to_owned())
            .await
    }
}

/// The trigram index, when `pg_trgm` is installed or may be.
pub(super) async fn create_trigram_index(db: &SchemaManagerConnection<'_>) -> Result<(), DbErr> {
    // Concurrent first installs (several services, or tests, migrating at once) would race on the
    // extension's catalog row: one at a time, until this transaction ends.
    db.execute_unprepared("SELECT pg_advisory_xact_lock(hashtext('vigil: install pg_trgm'))")
        .await?;
    let Some(schema) = trigram_schema(db).await? else {
        tracing::warn!(
            "pg_trgm is not installed and cannot be installed here: the free-text filter of session lists will scan"
        );
        return Ok(());
    };
    db.execute_unprepared(&format!(
        "CREATE INDEX IF NOT EXISTS {TRIGRAM_INDEX} ON session_search USING gin (search_text \"{schema}\".gin_trgm_ops)"
    ))
    .await?;
    Ok(())
}

/// The schema holding `pg_trgm`, installing it in `public` first when it is missing and may be
/// installed; `None` when it is missing and may not.
async fn trigram_schema(db: &SchemaManagerConnection<'_>) -> Result<Option<String>, DbErr> {
    let installed = "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'";
    if let Some(schema) = single_text(db, installed).await? {
        return Ok(Some(schema));
    }
    let installable = single_text(
        db,
        "SELECT 'yes' FROM pg_available_extensions \
         WHERE name = 'pg_trgm' \
           AND has_database_privilege(current_database(), 'CREATE') \
           AND CASE WHEN to_regnamespace('public') IS NULL THEN false \
                    ELSE has_schema_privilege('public', 'CREATE') END",
    )
    .await?;
    if installable.is_none() {
        return Ok(None);
    }
    db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        .await?;
    Ok(Some("public".to_owned()))
}

async fn single_text(db: &SchemaManagerConnection<'_>, sql: &str) -> Result<Option<String>, DbErr> {
    db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
        .map(|row| row.try_get_by_index::<String>(0))
        .transpose()
}

#[derive(DeriveIden)]
enum SessionSearch {
    Table,
    SessionId,
    SearchText,
}
