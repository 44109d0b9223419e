//! The `policy_audit_events` table: who changed which policy, when, and whether it was done.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use PolicyAuditEvents::*;
        manager
            .create_table(
                sea_query::Table::create()
                    .table(Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Id).text().not_null().primary_key())
                    .col(ColumnDef::new(At).big_integer().not_null())
                    .col(ColumnDef::new(Actor).text().not_null())
                    .col(ColumnDef::new(Action).text().not_null())
                    .col(ColumnDef::new(Target).text().not_null())
                    .col(ColumnDef::new(Outcome).small_integer().not_null())
                    .col(ColumnDef::new(Detail).text().not_null())
                    .to_owned(),
            )
            .await?;
        // The trail is read newest first, page by page.
        manager
            .create_index(
                Index::create()
                    .name("policy_audit_events_at")
                    .table(Table)
                    .col(At)
                    .col(Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PolicyAuditEvents::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum PolicyAuditEvents {
    Table,
    Id,
    At,
    Actor,
    Action,
    Target,
    Outcome,
    Detail,
}
