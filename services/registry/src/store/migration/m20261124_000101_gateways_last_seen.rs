//! An index on `gateways.last_seen_at`: every replica looks for gateways gone silent (last heard
//! from before the grace period) several times a minute.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_gateways_last_seen")
                    .table(Gateways::Table)
                    .if_not_exists()
                    .col(Gateways::LastSeenAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_gateways_last_seen")
                    .table(Gateways::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Gateways {
    Table,
    LastSeenAt,
}
