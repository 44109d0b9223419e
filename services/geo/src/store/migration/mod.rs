//! Schema migrations, applied in order by [`Migrator`] (`Migrator::up(&db, None)`).
//!
//! Every statement is portable between PostgreSQL and SQLite: times are `BIGINT` epoch
//! milliseconds, ids are text, the location kind is its `SMALLINT` proto number. Statements use
//! `IF NOT EXISTS` so a migration interrupted half-way can simply be run again. Applied migrations
//! are never edited: a schema change is a new migration.
//!
//! The geo service may share a database schema with the other services (in development and in the
//! all-in-one binary). sea-orm-migration refuses to run when its bookkeeping table lists a
//! migration it does not know, so each service keeps its own: this one is `geo_migrations`.

use sea_orm::DynIden;
use sea_orm_migration::prelude::*;

mod m20261123_200001_create_geo_sightings;

/// The geo service's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261123_200001_create_geo_sightings::Migration)]
    }

    fn migration_table_name() -> DynIden {
        "geo_migrations".into_iden()
    }
}
