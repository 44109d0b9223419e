//! The `terminations` table (the audit trail) and the indexes behind its list.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Terminations::*;
        let text = |column: Terminations| ColumnDef::new(column).text().not_null().to_owned();
        manager
            .create_table(
                sea_query::Table::create()
                    .table(Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Id).text().not_null().primary_key())
                    .col(text(Actor))
                    .col(text(SelectorKind))
                    .col(text(SelectorValue))
                    .col(ColumnDef::new(Reason).small_integer().not_null())
                    .col(text(UserMessage))
                    .col(text(Note))
                    .col(ColumnDef::new(CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        // The list is newest first with keyset paging on (created_at, id); filtered by actor, it
        // walks the actor's own rows in that order.
        let indexes = [
            ("idx_terminations_created", vec![CreatedAt, Id]),
            ("idx_terminations_actor", vec![Actor, CreatedAt, Id]),
        ];
        for (name, columns) in indexes {
            let mut index = Index::create();
            index.name(name).table(Table).if_not_exists();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping the table drops its indexes.
        manager
            .drop_table(Table::drop().table(Terminations::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub(super) enum Terminations {
    Table,
    Id,
    Actor,
    SelectorKind,
    SelectorValue,
    Reason,
    UserMessage,
    Note,
    CreatedAt,
}
