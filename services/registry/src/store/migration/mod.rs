//! Schema migrations, applied in order by [`Migrator`] (`Migrator::up(&db, None)`).
//!
//! Every statement is portable between PostgreSQL and SQLite: times are `BIGINT` epoch
//! milliseconds, ids are text, enums are `SMALLINT` proto numbers, lists are JSON text, and the
//! partial indexes use `WHERE ended_at IS NULL`, which both understand. Statements use
//! `IF NOT EXISTS` so a migration interrupted half-way can simply be run again.
//! Applied migrations are never edited: a schema change is a new migration.
//!
//! The registry may share a database schema with the termination service (in development and in
//! the all-in-one binary). sea-orm-migration refuses to run when its bookkeeping table lists a
//! migration it does not know, so each service keeps its own: this one is `registry_migrations`,
//! not the default `seaql_migrations`.

use sea_orm::DynIden;
use sea_orm_migration::prelude::*;

mod m20261123_000001_create_sessions;
mod m20261123_000002_create_gateways;
mod m20261124_000101_gateways_last_seen;
mod m20261124_000201_list_page_indexes;
mod m20261124_000301_activity_buckets;
mod m20261124_000302_free_text_index;
mod m20261212_000401_event_outbox;
mod m20261212_000402_search_text_countries;
mod m20261213_000501_idle_sessions_index;
mod m20261214_000601_session_activity;
mod m20261215_000701_free_text_covering;
mod m20261216_000801_free_text_walk;

/// The registry's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_sessions::Migration),
            Box::new(m20261123_000002_create_gateways::Migration),
            Box::new(m20261124_000101_gateways_last_seen::Migration),
            Box::new(m20261124_000201_list_page_indexes::Migration),
            Box::new(m20261124_000301_activity_buckets::Migration),
            Box::new(m20261124_000302_free_text_index::Migration),
            Box::new(m20261212_000401_event_outbox::Migration),
            Box::new(m20261212_000402_search_text_countries::Migration),
            Box::new(m20261213_000501_idle_sessions_index::Migration),
            Box::new(m20261214_000601_session_activity::Migration),
            Box::new(m20261215_000701_free_text_covering::Migration),
            Box::new(m20261216_000801_free_text_walk::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "registry_migrations".into_iden()
    }
}

/// Drops an index of the `sessions` table by name, if it exists (the migrations that replace
/// indexes share it).
fn drop_sessions_index(name: &str) -> IndexDropStatement {
    Index::drop()
        .name(name)
        .table(Alias::new("sessions"))
        .if_exists()
        .to_owned()
}
