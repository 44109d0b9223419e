//! Schema migrations, applied in order by [`Migrator`] (`Migrator::up(&db, None)`).
//!
//! Every statement is portable between PostgreSQL and SQLite: times are `BIGINT` epoch
//! milliseconds, ids are text, enums are `SMALLINT` proto numbers, and the partial indexes use
//! `WHERE state IN (1, 2)` (PENDING, DELIVERED), which both understand. Statements use
//! `IF NOT EXISTS` so a migration interrupted half-way can simply be run again.
//! Applied migrations are never edited: a schema change is a new migration.
//!
//! The termination service may share a database schema with the registry (in development and in
//! the all-in-one binary). sea-orm-migration refuses to run when its bookkeeping table lists a
//! migration it does not know, so each service keeps its own: this one is
//! `termination_migrations`, the registry's `registry_migrations`.

use sea_orm::DynIden;
use sea_orm_migration::prelude::*;

mod m20261123_100001_create_terminations;
mod m20261123_100002_create_termination_commands;
mod m20261207_000001_create_termination_early_reports;
mod m20261212_100003_event_outbox;

/// The termination service's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_100001_create_terminations::Migration),
            Box::new(m20261123_100002_create_termination_commands::Migration),
            Box::new(m20261207_000001_create_termination_early_reports::Migration),
            Box::new(m20261212_100003_event_outbox::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "termination_migrations".into_iden()
    }
}
