//! The `termination_early_reports` table: what a gateway reported about a command whose row did
//! not exist yet.
//!
//! Termination publishes a kill while it records it, so an agent's answer can reach the database
//! before the command's row. Such a report is kept here (one row per command: the first delivery
//! and the first answer) and applied as soon as the row exists; rows nobody claims expire.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use TerminationEarlyReports::*;
        manager
            .create_table(
                sea_query::Table::create()
                    .table(Table)
                    .if_not_exists()
                    .col(ColumnDef::new(CommandId).text().not_null().primary_key())
                    .col(ColumnDef::new(GatewayId).text().not_null())
                    .col(ColumnDef::new(DeliveredAt).big_integer().null())
                    .col(ColumnDef::new(SettledState).small_integer().null())
                    .col(ColumnDef::new(SettledAt).big_integer().null())
                    .col(ColumnDef::new(Detail).text().not_null())
                    .col(ColumnDef::new(KeptAt).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(TerminationEarlyReports::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
pub enum TerminationEarlyReports {
    Table,
    CommandId,
    GatewayId,
    DeliveredAt,
    SettledState,
    SettledAt,
    Detail,
    KeptAt,
}
