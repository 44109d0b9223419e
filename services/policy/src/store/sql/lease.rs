//! The leader lease: one conditional UPSERT, timed by the database's clock.
//!
//! The row is taken when it does not exist, when its holder asks again (a renewal), or when it has
//! expired. Expiry is judged by the database's clock, never a replica's, so replicas whose clocks
//! disagree still agree on who leads. The only hand-written SQL of the store: the "now" of each
//! backend has to be spelled out.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use vigil_runtime::ServiceResult;

/// The database's now, in epoch milliseconds. `clock_timestamp()`, not `now()`: the latter is the
/// start of the transaction.
const POSTGRES_NOW: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint";
/// Julian day 2440587.5 is the Unix epoch.
const SQLITE_NOW: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

fn acquire_sql(backend: DbBackend) -> String {
    let (now, name, holder, ttl) = match backend {
        DbBackend::Postgres => (POSTGRES_NOW, "$1", "$2", "$3"),
        _ => (SQLITE_NOW, "?", "?", "?"),
    };
    format!(
        "INSERT INTO policy_leases (name, holder, expires_at) VALUES ({name}, {holder}, {now} + {ttl}) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE policy_leases.holder = excluded.holder OR policy_leases.expires_at <= {now} \
         RETURNING holder"
    )
}

pub async fn acquire(db: &DatabaseConnection, name: &str, holder: &str, ttl: Duration) -> ServiceResult<bool> {
    let backend = db.get_database_backend();
    let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let statement =
        Statement::from_sql_and_values(backend, acquire_sql(backend), [name.into(), holder.into(), ttl.into()]);
    // A row comes back only when the insert or the conditional update happened.
    Ok(db.query_one_raw(statement).await?.is_some())
}

pub async fn release(db: &DatabaseConnection, name: &str, holder: &str) -> ServiceResult<()> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "DELETE FROM policy_leases WHERE name = $1 AND holder = $2",
        _ => "DELETE FROM policy_leases WHERE name = ? AND holder = ?",
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [name.into(), holder.into()],
    ))
    .await?;
    Ok(())
}
