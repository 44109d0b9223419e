//! [`SqlHistoryStore`]: the [`HistoryStore`] on sea-orm, for PostgreSQL and SQLite alike.

use async_trait::async_trait;
use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, TryInsertResult,
};
use vigil_runtime::{ServiceError, ServiceResult};

use super::HistoryStore;
use super::entity::{self, Column, Entity};
use super::migration::Migrator;
use crate::domain::Sighting;

/// User histories in a SQL database (PostgreSQL or SQLite).
#[derive(Debug, Clone)]
pub struct SqlHistoryStore {
    db: DatabaseConnection,
}

impl SqlHistoryStore {
    /// A store on `db`. Does not touch the schema: call [`SqlHistoryStore::migrate`] (or run the
    /// migrations elsewhere) first. Fails on a backend other than PostgreSQL or SQLite.
    pub fn new(db: DatabaseConnection) -> ServiceResult<Self> {
        match db.get_database_backend() {
            DbBackend::Postgres | DbBackend::Sqlite => Ok(Self { db }),
            other => Err(ServiceError::internal(format!(
                "unsupported database backend {other:?}"
            ))),
        }
    }

    /// Applies the migrations that have not been applied yet, under the lock every Vigil service
    /// migrates under (`vigil_runtime::database::migrate_locked`): replicas starting at once wait
    /// for each other, then find nothing to do.
    pub async fn migrate(&self) -> ServiceResult<()> {
        vigil_runtime::database::migrate_locked::<Migrator>(&self.db).await
    }

    /// The underlying connection (pool).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// A transaction that will write. On SQLite it takes the write lock up front (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads and then writes fails with `SQLITE_BUSY`
    /// instead of waiting when another connection wrote in between.
    async fn write_transaction(&self) -> ServiceResult<DatabaseTransaction> {
        vigil_runtime::database::begin_write(&self.db).await
    }
}

#[async_trait]
impl HistoryStore for SqlHistoryStore {
    async fn recent(&self, user: &str, limit: u64) -> ServiceResult<Vec<Sighting>> {
        Entity::find()
            .filter(Column::UserName.eq(user))
            .order_by_desc(Column::At)
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(entity::Model::into_sighting)
            .collect()
    }

    async fn record(&self, sighting: &Sighting, keep: u64) -> ServiceResult<bool> {
        let txn = self.write_transaction().await?;
        if self.db.get_database_backend() == DbBackend::Postgres {
            // The history is advisory: after a database crash, losing the last fraction of a
            // second of sightings costs a few anomaly comparisons, never consistency. Not
            // waiting for the WAL flush makes recording ~20 times faster (a durable commit is an
            // fdatasync; milliseconds on ordinary disks).
            txn.execute_unprepared("SET LOCAL synchronous_commit = off").await?;
            // One recording per user at a time: under READ COMMITTED two concurrent trims each miss
            // the other's uncommitted insert, and the history would keep one sighting too many.
            // (SQLite's write transaction serialises already.)
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtext('vigil geo history'), hashtext($1))",
                [sighting.user.clone().into()],
            ))
            .await?;
        }
        let inserted = Entity::insert(entity::active_model(sighting))
            .on_conflict_do_nothing_on([Column::UserName, Column::SessionId])
            .exec_without_returning(&txn)
            .await?;
        if !matches!(inserted, TryInsertResult::Inserted(rows) if rows > 0) {
            txn.commit().await?;
            return Ok(false);
        }
        let newest = Query::select()
            .column(Column::Id)
            .from(Entity)
            .and_where(Column::UserName.eq(sighting.user.as_str()))
            .order_by(Column::At, sea_orm::Order::Desc)
            .order_by(Column::Id, sea_orm::Order::Desc)
            .limit(keep)
            .to_owned();
        Entity::delete_many()
            .filter(Column::UserName.eq(sighting.user.as_str()))
            .filter(Column::Id.not_in_subquery(newest))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(true)
    }

    async fn ping(&self) -> ServiceResult<()> {
        let backend = self.db.get_database_backend();
        self.db.execute_raw(Statement::from_string(backend, "SELECT 1")).await?;
        Ok(())
    }
}
