//! The `policy_slots` table: the live sessions counting against their users' concurrency limits.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use PolicySlots::*;
        manager
            .create_table(
                sea_query::Table::create()
                    .table(Table)
                    .if_not_exists()
                    .col(ColumnDef::new(SessionId).text().not_null().primary_key())
                    .col(ColumnDef::new(UserName).text().not_null())
                    .col(ColumnDef::new(StartedAt).big_integer().not_null())
                    .col(ColumnDef::new(CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        // Admission counts a user's slots and picks the oldest; reconciliation walks the users.
        manager
            .create_index(
                Index::create()
                    .name("idx_policy_slots_user")
                    .table(Table)
                    .if_not_exists()
                    .col(UserName)
                    .col(StartedAt)
                    .col(SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PolicySlots::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum PolicySlots {
    Table,
    SessionId,
    UserName,
    StartedAt,
    CreatedAt,
}
