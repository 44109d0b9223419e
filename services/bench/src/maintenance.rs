//! A stand-in for PostgreSQL's autovacuum, for servers that run without it.
//!
//! The benchmark's tables grow from empty to 100,000 rows in a minute. With autovacuum on (the
//! default, and what production runs), PostgreSQL analyzes them as they grow; cached query plans
//! are re-planned with the new statistics, and the dead rows of updates are vacuumed. With it off,
//! a plan cached while a table was empty stays a sequential scan for the whole run: the agents'
//! hellos then scan every session (minutes for 10,000 agents), and the acknowledgements of an
//! end-all scan every command. That measures the server's configuration, not Vigil.
//!
//! So when `SHOW autovacuum` says off, the bench does autovacuum's work itself: it analyzes the
//! world's tables every [`ANALYZE_EVERY`] and vacuums them between phases. The report says so.

use std::time::Duration;

use anyhow::Context;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the tables are analyzed (autovacuum's default nap is one minute, but it analyzes a
/// growing table after every 10% of growth; this is about as often, at this scale).
pub const ANALYZE_EVERY: Duration = Duration::from_secs(10);

/// The world's schema kept analyzed and vacuumed, when the server's autovacuum is off.
pub struct Maintenance {
    db: DatabaseConnection,
    tables: Vec<String>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Maintenance {
    /// Starts analyzing the tables of `schema` every [`ANALYZE_EVERY`], unless the server runs
    /// autovacuum (then `None`: nothing to stand in for).
    pub async fn start(database_url: &str, schema: &str) -> anyhow::Result<Option<Self>> {
        let mut options = ConnectOptions::new(database_url.to_owned());
        options.max_connections(1).min_connections(0).sqlx_logging(false);
        let db = Database::connect(options)
            .await
            .context("connect to PostgreSQL for table maintenance")?;
        let autovacuum = db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, "SHOW autovacuum"))
            .await?
            .map(|row| row.try_get_by_index::<String>(0))
            .transpose()?
            .unwrap_or_default();
        if autovacuum == "on" {
            db.close().await?;
            return Ok(None);
        }
        let tables: Vec<String> = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = $1",
                [schema.into()],
            ))
            .await?
            .into_iter()
            .map(|row| row.try_get_by_index::<String>(0))
            .collect::<Result<_, _>>()?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(analyze_periodically(db.clone(), tables.clone(), stop.clone()));
        Ok(Some(Self { db, tables, stop, task }))
    }

    /// `VACUUM ANALYZE` of every table: what autovacuum would have done by the next phase.
    pub async fn vacuum(&self) -> anyhow::Result<()> {
        let statement = format!("VACUUM ANALYZE {}", self.tables.join(", "));
        self.db.execute_unprepared(&statement).await.context("VACUUM ANALYZE")?;
        Ok(())
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
        let _ = self.db.close().await;
    }
}

async fn analyze_periodically(db: DatabaseConnection, tables: Vec<String>, stop: CancellationToken) {
    let statement = format!("ANALYZE {}", tables.join(", "));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(ANALYZE_EVERY) => {}
        }
        if let Err(error) = db.execute_unprepared(&statement).await {
            tracing::warn!(%error, "bench maintenance: ANALYZE failed");
        }
    }
}
