//! The transactional outbox: each service writes its events into a table of its own store, in the
//! transaction of the change that causes them ([`append`]), and a relay reads them from there.
//!
//! Two tables per service, named after it so services sharing a database keep theirs apart:
//! `<service>_event_outbox` (the events) and `<service>_event_cursors` (per sink: how far it has
//! been delivered, who is delivering it, what went wrong last).
//!
//! **Order without gaps.** On PostgreSQL each row records the id of the transaction that wrote it
//! (`pg_current_xact_id()`), and a relay reads only rows of transactions older than the oldest one
//! still running (`pg_snapshot_xmin`), in (transaction, sequence) order. No row can appear later
//! below that horizon, so a cursor on (transaction, sequence) never skips an event whose
//! transaction committed late. A transaction left open anywhere in the cluster holds delivery back
//! until it ends. SQLite has a single writer: its sequence is commit order (transaction column 0).

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use vigil_core::EpochMillis;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::event::Event;

/// Rows per INSERT (3 parameters each).
const INSERT_CHUNK: usize = 1000;

/// The tables of one service's outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxTables {
    service: String,
    outbox: String,
    cursors: String,
}

impl OutboxTables {
    /// The tables of `service` (lowercase letters and `_` only: it becomes part of table names).
    pub fn new(service: &str) -> Self {
        assert!(
            !service.is_empty() && service.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "an outbox service name is lowercase letters and underscores"
        );
        Self {
            service: service.to_owned(),
            outbox: format!("{service}_event_outbox"),
            cursors: format!("{service}_event_cursors"),
        }
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    pub fn outbox(&self) -> &str {
        &self.outbox
    }

    pub fn cursors(&self) -> &str {
        &self.cursors
    }

    /// The statements that create both tables (idempotent), for a service's migration.
    pub fn create_statements(&self, backend: DbBackend) -> Vec<String> {
        let (outbox, cursors, service) = (&self.outbox, &self.cursors, &self.service);
        let (seq, tx) = match backend {
            DbBackend::Postgres => (
                "seq BIGSERIAL PRIMARY KEY",
                "tx BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint)",
            ),
            _ => ("seq INTEGER PRIMARY KEY AUTOINCREMENT", "tx BIGINT NOT NULL DEFAULT 0"),
        };
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {outbox} ({seq}, {tx}, occurred_at BIGINT NOT NULL, \
                 payload TEXT NOT NULL, trace_context TEXT NOT NULL DEFAULT '')"
            ),
            format!("CREATE INDEX IF NOT EXISTS idx_{service}_event_outbox_order ON {outbox} (tx, seq)"),
            format!("CREATE INDEX IF NOT EXISTS idx_{service}_event_outbox_time ON {outbox} (occurred_at)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {cursors} (sink TEXT PRIMARY KEY, tx BIGINT NOT NULL DEFAULT 0, \
                 seq BIGINT NOT NULL DEFAULT 0, holder TEXT NOT NULL DEFAULT '', \
                 lease_until BIGINT NOT NULL DEFAULT 0, delivered BIGINT NOT NULL DEFAULT 0, \
                 failed BIGINT NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '', \
                 last_error_at BIGINT, last_delivered_at BIGINT)"
            ),
        ]
    }

    /// The statements that drop both tables (a migration's `down`).
    pub fn drop_statements(&self) -> Vec<String> {
        vec![
            format!("DROP TABLE IF EXISTS {}", self.outbox),
            format!("DROP TABLE IF EXISTS {}", self.cursors),
        ]
    }
}

/// Creates the outbox tables of `service`: the body of the migration each service adds.
pub async fn migrate_up(manager: &sea_orm_migration::SchemaManager<'_>, service: &str) -> Result<(), sea_orm::DbErr> {
    let db = manager.get_connection();
    for statement in OutboxTables::new(service).create_statements(manager.get_database_backend()) {
        db.execute_unprepared(&statement).await?;
    }
    Ok(())
}

/// Drops the outbox tables of `service`.
pub async fn migrate_down(manager: &sea_orm_migration::SchemaManager<'_>, service: &str) -> Result<(), sea_orm::DbErr> {
    let db = manager.get_connection();
    for statement in OutboxTables::new(service).drop_statements() {
        db.execute_unprepared(&statement).await?;
    }
    Ok(())
}

/// Writes `events` into the outbox of `service`, on `db` — the transaction of the change that
/// caused them, so they commit (or not) with it. The current trace travels with each event.
pub async fn append(db: &impl ConnectionTrait, service: &str, events: &[Event]) -> ServiceResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let table = format!("{service}_event_outbox");
    let trace = vigil_runtime::telemetry::propagation::current_map();
    let trace = if trace.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&trace).map_err(|error| ServiceError::internal(error.to_string()))?
    };
    for chunk in events.chunks(INSERT_CHUNK) {
        let mut sql = format!("INSERT INTO {table} (occurred_at, payload, trace_context) VALUES ");
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 3);
        for (i, event) in chunk.iter().enumerate() {
            let n = i * 3;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&placeholders(backend, n, 3));
            let payload = serde_json::to_string(event).map_err(|error| ServiceError::internal(error.to_string()))?;
            values.extend([event.time.into(), payload.into(), trace.clone().into()]);
        }
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// `($n+1, $n+2, …)` on PostgreSQL, `(?n+1, …)` on SQLite.
fn placeholders(backend: DbBackend, offset: usize, count: usize) -> String {
    let mark = if backend == DbBackend::Postgres { '$' } else { '?' };
    let list: Vec<String> = (1..=count).map(|i| format!("{mark}{}", offset + i)).collect();
    format!("({})", list.join(", "))
}

/// Rewrites `$1`-style parameters for SQLite (`?1`).
pub(crate) fn for_backend(backend: DbBackend, sql: &str) -> String {
    if backend == DbBackend::Postgres {
        sql.to_owned()
    } else {
        sql.replace('$', "?")
    }
}

/// A position in the outbox: (transaction, sequence).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub tx: i64,
    pub seq: i64,
}

/// One event as read back, with its position and the trace it was written in.
#[derive(Debug, Clone)]
pub struct Stored {
    pub position: Position,
    pub event: Event,
    pub trace_context: HashMap<String, String>,
}

/// Reads the outbox of one service, and the sinks' cursors beside it.
#[derive(Debug, Clone)]
pub struct Outbox {
    db: sea_orm::DatabaseConnection,
    tables: OutboxTables,
}

/// Where a sink's delivery stands, as recorded in the cursors table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CursorRow {
    pub sink: String,
    pub position: Position,
    pub holder: String,
    pub lease_until: EpochMillis,
    pub delivered: u64,
    pub failed: u64,
    pub last_error: String,
    pub last_error_at: Option<EpochMillis>,
    pub last_delivered_at: Option<EpochMillis>,
}

/// What one round of delivery achieved, to be recorded with the new cursor.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub position: Position,
    pub delivered: u64,
    pub failed: u64,
    /// The latest error, if any (kept until another replaces it).
    pub error: Option<String>,
}

fn row_i64(row: &sea_orm::QueryResult, column: &str) -> ServiceResult<i64> {
    Ok(row.try_get::<i64>("", column)?)
}

impl Outbox {
    pub fn new(db: sea_orm::DatabaseConnection, tables: OutboxTables) -> Self {
        Self { db, tables }
    }

    pub fn tables(&self) -> &OutboxTables {
        &self.tables
    }

    fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.backend(), for_backend(self.backend(), sql), values)
    }

    /// Up to `limit` events after `after`, in order, of transactions that have all ended.
    pub async fn read_after(&self, after: Position, limit: u64) -> ServiceResult<Vec<Stored>> {
        let horizon = if self.backend() == DbBackend::Postgres {
            " AND tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
        } else {
            ""
        };
        let sql = format!(
            "SELECT seq, tx, payload, trace_context FROM {} WHERE (tx > $1 OR (tx = $1 AND seq > $2)){horizon} \
             ORDER BY tx, seq LIMIT $3",
            self.tables.outbox
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .db
            .query_all_raw(self.statement(&sql, vec![after.tx.into(), after.seq.into(), limit.into()]))
            .await?;
        rows.iter()
            .map(|row| {
                let payload: String = row.try_get("", "payload")?;
                let trace: String = row.try_get("", "trace_context")?;
                let event: Event = serde_json::from_str(&payload).map_err(|error| {
                    ServiceError::internal(format!("{} holds an unreadable event: {error}", self.tables.outbox))
                })?;
                Ok(Stored {
                    position: Position {
                        tx: row_i64(row, "tx")?,
                        seq: row_i64(row, "seq")?,
                    },
                    event,
                    trace_context: if trace.is_empty() {
                        HashMap::new()
                    } else {
                        serde_json::from_str(&trace).unwrap_or_default()
                    },
                })
            })
            .collect()
    }

    /// Takes (or renews) the lease on `sink`'s cursor for `holder` until `until`; returns the
    /// cursor when this holder has it, `None` when another holder's lease runs.
    pub async fn lease(
        &self,
        sink: &str,
        holder: &str,
        now: EpochMillis,
        until: EpochMillis,
    ) -> ServiceResult<Option<Position>> {
        let cursors = &self.tables.cursors;
        let insert = format!("INSERT INTO {cursors} (sink) VALUES ($1) ON CONFLICT (sink) DO NOTHING");
        self.db.execute_raw(self.statement(&insert, vec![sink.into()])).await?;
        let take = format!(
            "UPDATE {cursors} SET holder = $2, lease_until = $3 \
             WHERE sink = $1 AND (holder = $2 OR lease_until < $4) RETURNING tx, seq"
        );
        let row = self
            .db
            .query_one_raw(self.statement(&take, vec![sink.into(), holder.into(), until.into(), now.into()]))
            .await?;
        row.map(|row| {
            Ok(Position {
                tx: row_i64(&row, "tx")?,
                seq: row_i64(&row, "seq")?,
            })
        })
        .transpose()
    }

    /// Records a round's progress and renews the lease; `false` when the lease was lost (another
    /// holder took over: nothing was recorded).
    pub async fn advance(
        &self,
        sink: &str,
        holder: &str,
        progress: &Progress,
        now: EpochMillis,
        until: EpochMillis,
    ) -> ServiceResult<bool> {
        let sql = format!(
            "UPDATE {} SET tx = $3, seq = $4, lease_until = $5, delivered = delivered + $6, \
             failed = failed + $7, \
             last_error = CASE WHEN $8 = '' THEN last_error ELSE $8 END, \
             last_error_at = CASE WHEN $8 = '' THEN last_error_at ELSE $9 END, \
             last_delivered_at = CASE WHEN $6 > 0 THEN $9 ELSE last_delivered_at END \
             WHERE sink = $1 AND holder = $2",
            self.tables.cursors
        );
        let values = vec![
            sink.into(),
            holder.into(),
            progress.position.tx.into(),
            progress.position.seq.into(),
            until.into(),
            i64::try_from(progress.delivered).unwrap_or(i64::MAX).into(),
            i64::try_from(progress.failed).unwrap_or(i64::MAX).into(),
            progress.error.clone().unwrap_or_default().into(),
            now.into(),
        ];
        let result = self.db.execute_raw(self.statement(&sql, values)).await?;
        Ok(result.rows_affected() == 1)
    }

    /// Gives up `holder`'s lease on `sink` (on shutdown), so another replica takes over at once.
    pub async fn release(&self, sink: &str, holder: &str) -> ServiceResult<()> {
        let sql = format!(
            "UPDATE {} SET lease_until = 0 WHERE sink = $1 AND holder = $2",
            self.tables.cursors
        );
        self.db
            .execute_raw(self.statement(&sql, vec![sink.into(), holder.into()]))
            .await?;
        Ok(())
    }

    /// Every sink's cursor.
    pub async fn cursors(&self) -> ServiceResult<Vec<CursorRow>> {
        let sql = format!(
            "SELECT sink, tx, seq, holder, lease_until, delivered, failed, last_error, last_error_at, \
             last_delivered_at FROM {} ORDER BY sink",
            self.tables.cursors
        );
        let rows = self.db.query_all_raw(self.statement(&sql, Vec::new())).await?;
        rows.iter()
            .map(|row| {
                Ok(CursorRow {
                    sink: row.try_get("", "sink")?,
                    position: Position {
                        tx: row_i64(row, "tx")?,
                        seq: row_i64(row, "seq")?,
                    },
                    holder: row.try_get("", "holder")?,
                    lease_until: row_i64(row, "lease_until")?,
                    delivered: u64::try_from(row_i64(row, "delivered")?).unwrap_or(0),
                    failed: u64::try_from(row_i64(row, "failed")?).unwrap_or(0),
                    last_error: row.try_get("", "last_error")?,
                    last_error_at: row.try_get("", "last_error_at")?,
                    last_delivered_at: row.try_get("", "last_delivered_at")?,
                })
            })
            .collect()
    }

    /// Events after `after` (committed or not yet visible alike): a sink's backlog.
    pub async fn count_after(&self, after: Position) -> ServiceResult<u64> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {} WHERE tx > $1 OR (tx = $1 AND seq > $2)",
            self.tables.outbox
        );
        let row = self
            .db
            .query_one_raw(self.statement(&sql, vec![after.tx.into(), after.seq.into()]))
            .await?;
        Ok(row
            .map(|row| row_i64(&row, "n"))
            .transpose()?
            .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }

    /// Events after `after` (committed or not yet visible alike), and when the oldest of them
    /// happened: a sink's backlog, and how far behind it is.
    pub async fn pending_after(&self, after: Position) -> ServiceResult<(u64, Option<EpochMillis>)> {
        let sql = format!(
            "SELECT COUNT(*) AS n, MIN(occurred_at) AS oldest FROM {} WHERE tx > $1 OR (tx = $1 AND seq > $2)",
            self.tables.outbox
        );
        let row = self
            .db
            .query_one_raw(self.statement(&sql, vec![after.tx.into(), after.seq.into()]))
            .await?;
        let Some(row) = row else { return Ok((0, None)) };
        let count = u64::try_from(row_i64(&row, "n")?).unwrap_or(0);
        let oldest: Option<i64> = row.try_get("", "oldest")?;
        Ok((count, oldest))
    }

    /// Deletes events older than `older_than`, and those every sink in `sinks` is past (all of
    /// them when `sinks` is empty and `delivered_only` is false). Returns the rows deleted.
    pub async fn prune(&self, older_than: EpochMillis, sinks: &[String]) -> ServiceResult<u64> {
        let outbox = &self.tables.outbox;
        let sql = format!("DELETE FROM {outbox} WHERE occurred_at < $1");
        let mut deleted = self
            .db
            .execute_raw(self.statement(&sql, vec![older_than.into()]))
            .await?
            .rows_affected();
        if sinks.is_empty() {
            return Ok(deleted);
        }
        let cursors = self.cursors().await?;
        let mut floor: Option<Position> = None;
        for sink in sinks {
            let Some(cursor) = cursors.iter().find(|row| &row.sink == sink) else {
                return Ok(deleted);
            };
            floor = Some(floor.map_or(cursor.position, |floor| floor.min(cursor.position)));
        }
        if let Some(floor) = floor.filter(|floor| *floor > Position::default()) {
            let sql = format!("DELETE FROM {outbox} WHERE tx < $1 OR (tx = $1 AND seq <= $2)");
            deleted += self
                .db
                .execute_raw(self.statement(&sql, vec![floor.tx.into(), floor.seq.into()]))
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }
}
