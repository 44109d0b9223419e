//! `policy_set_versions`: the one counter every change to the policies (a policy created, updated
//! or deleted) increases, in the same transaction as the change, so that a version names one state
//! of the whole set on every replica. Replicas hold the set in memory for admission and re-read it
//! only when the version has moved.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The name of the policy-set counter's row.
pub const POLICY_SET: &str = "policies";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// In one transaction on every backend, so the counter's seed sees its table (see the
    /// policies migration).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use PolicySetVersions::*;
        manager
            .create_table(
                sea_query::Table::create()
                    .table(Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Name).text().not_null().primary_key())
                    .col(ColumnDef::new(Version).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        let mut seed = Query::insert();
        seed.into_table(Table)
            .columns([Name, Version])
            .values([POLICY_SET.into(), 0i64.into()])
            .map_err(|error| DbErr::Migration(format!("building the policy-set counter's seed: {error}")))?
            .on_conflict(OnConflict::column(Name).do_nothing().to_owned());
        manager.exec_stmt(seed).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PolicySetVersions::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum PolicySetVersions {
    Table,
    Name,
    Version,
}
