//! Schema migrations, applied in order by [`Migrator`] (`Migrator::up(&db, None)`).
//!
//! Every statement is portable between PostgreSQL and SQLite: times are `BIGINT` epoch
//! milliseconds, durations `BIGINT` milliseconds, ids text, enums `SMALLINT` proto numbers.
//! Statements use `IF NOT EXISTS` (and the seed `ON CONFLICT DO NOTHING`) so a migration
//! interrupted half-way can simply be run again. Applied migrations are never edited: a schema
//! change is a new migration.
//!
//! The policy service may share a database schema with the registry and the termination service
//! (in development and in the all-in-one binary). sea-orm-migration refuses to run when its
//! bookkeeping table lists a migration it does not know, so each service keeps its own: this one
//! is `policy_migrations`.

use sea_orm::DynIden;
use sea_orm_migration::prelude::*;

mod m20261125_200001_create_policies;
mod m20261125_200002_create_policy_slots;
mod m20261125_200003_create_policy_idle_warnings;
mod m20261125_200004_create_policy_leases;
mod m20261201_200005_create_policy_audit_events;
pub(crate) mod m20261210_200006_create_policy_locks;
mod m20261211_200007_create_policy_take_slot;
mod m20261212_200008_event_outbox;
pub(crate) mod m20261215_200009_create_policy_set_versions;

/// The policy service's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_200001_create_policies::Migration),
            Box::new(m20261125_200002_create_policy_slots::Migration),
            Box::new(m20261125_200003_create_policy_idle_warnings::Migration),
            Box::new(m20261125_200004_create_policy_leases::Migration),
            Box::new(m20261201_200005_create_policy_audit_events::Migration),
            Box::new(m20261210_200006_create_policy_locks::Migration),
            Box::new(m20261211_200007_create_policy_take_slot::Migration),
            Box::new(m20261212_200008_event_outbox::Migration),
            Box::new(m20261215_200009_create_policy_set_versions::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "policy_migrations".into_iden()
    }
}
