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
//! world's tables every [`ANALYZE_EVERY`] while they grow (the agents connecting), and vacuums and
//! analyzes them between phases. Not during the measured phases: they change far less than the
//! tenth of a table after which autovacuum would step in (activity excepted, which is vacuumed
//! after). The report says so.

use std::time::Duration;

use anyhow::Context;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};

/// How often growing tables are analyzed (autovacuum's default nap is one minute, but it analyzes
/// a growing table after every 10% of growth; this is about as often, at this scale).
pub const ANALYZE_EVERY: Duration = Duration::from_secs(10);

/// The world's schema kept analyzed and vacuumed, when the server's autovacuum is off.
pub struct Maintenance {
    db: DatabaseConnection,
    tables: Vec<String>,
}

impl Maintenance {
    /// A connection for maintaining the tables of `schema`, unless the server runs autovacuum
    /// (then `None`: nothing to stand in for).
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
        Ok(Some(Self { db, tables }))
    }

    /// Runs `growth` (tables filling up), analyzing the tables every [`ANALYZE_EVERY`] meanwhile.
    pub async fn while_growing<T>(&self, growth: impl Future<Output = T>) -> T {
        let statement = format!("ANALYZE {}", self.tables.join(", "));
        let mut growth = std::pin::pin!(growth);
        loop {
            tokio::select! {
                outcome = &mut growth => return outcome,
                () = tokio::time::sleep(ANALYZE_EVERY) => {}
            }
            if let Err(error) = self.db.execute_unprepared(&statement).await {
                tracing::warn!(%error, "bench maintenance: ANALYZE failed");
            }
        }
    }

    /// `VACUUM ANALYZE` of every table: what autovacuum would have done by the next phase.
    pub async fn vacuum(&self) -> anyhow::Result<()> {
        let statement = format!("VACUUM ANALYZE {}", self.tables.join(", "));
        self.db.execute_unprepared(&statement).await.context("VACUUM ANALYZE")?;
        Ok(())
    }

    pub async fn stop(self) {
        let _ = self.db.close().await;
    }
}
