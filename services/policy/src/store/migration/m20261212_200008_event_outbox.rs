//! The outbox of the policy's events (`policy_event_outbox`, `policy_event_cursors`): written in
//! the transaction of each change, read by the event relay (`vigil-events`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        vigil_events::outbox::migrate_up(manager, "policy").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        vigil_events::outbox::migrate_down(manager, "policy").await
    }
}
