//! The `policy_idle_warnings` table: which idle period of each session has been warned about.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use PolicyIdleWarnings::*;
        manager
            .create_table(
                sea_query::Table::create()
                    .table(Table)
                    .if_not_exists()
                    .col(ColumnDef::new(SessionId).text().not_null().primary_key())
                    .col(ColumnDef::new(LastActivityAt).big_integer().not_null())
                    .col(ColumnDef::new(WarnedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        // Pruning old records.
        manager
            .create_index(
                Index::create()
                    .name("idx_policy_idle_warnings_warned")
                    .table(Table)
                    .if_not_exists()
                    .col(WarnedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PolicyIdleWarnings::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum PolicyIdleWarnings {
    Table,
    SessionId,
    LastActivityAt,
    WarnedAt,
}
