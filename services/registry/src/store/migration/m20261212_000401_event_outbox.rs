//! The outbox of the registry's events (`registry_event_outbox`, `registry_event_cursors`): written in
//! the transaction of each change, read by the event relay (`vigil-events`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        vigil_events::outbox::migrate_up(manager, "registry").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        vigil_events::outbox::migrate_down(manager, "registry").await
    }
}
