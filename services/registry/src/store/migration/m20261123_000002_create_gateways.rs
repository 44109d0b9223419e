//! The `gateways` table.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Gateways::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Gateways::Id).text().not_null().primary_key())
                    .col(ColumnDef::new(Gateways::Connected).boolean().not_null())
                    .col(ColumnDef::new(Gateways::Replica).text().null())
                    .col(ColumnDef::new(Gateways::ConnectedAt).big_integer().not_null())
                    .col(ColumnDef::new(Gateways::LastSeenAt).big_integer().not_null())
                    .col(ColumnDef::new(Gateways::AgentVersion).text().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Gateways::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Gateways {
    Table,
    Id,
    Connected,
    Replica,
    ConnectedAt,
    LastSeenAt,
    AgentVersion,
}
