//! The `policy_locks` table (standing refusals of new sessions for a target) and
//! `policy_lock_versions`, the one counter every change to the lock set increases, in the same
//! transaction as the change, so that every replica numbers the sets it publishes alike.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The name of the lock-set counter's row.
pub const LOCK_SET: &str = "locks";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// In one transaction on every backend, so the counter's seed sees its table (see the
    /// policies migration).
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use PolicyLocks::*;
        let text = |column: PolicyLocks| ColumnDef::new(column).text().not_null().to_owned();
        manager
            .create_table(
                sea_query::Table::create()
                    .table(Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Id).text().not_null().primary_key())
                    .col(text(TargetKind))
                    .col(text(TargetValue))
                    .col(text(Message))
                    .col(text(Reason))
                    .col(text(CreatedBy))
                    .col(ColumnDef::new(CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(ExpiresAt).big_integer().null())
                    // Set once the lock's expiry has been announced to the holders of the lock set
                    // (which takes a new version): expiry is a change of the set like any other.
                    .col(ColumnDef::new(ExpiryAnnounced).boolean().not_null().default(false))
                    .to_owned(),
            )
            .await?;
        // The locks in force are read by expiry.
        manager
            .create_index(
                Index::create()
                    .name("idx_policy_locks_expires")
                    .table(Table)
                    .if_not_exists()
                    .col(ExpiresAt)
                    .to_owned(),
            )
            .await?;

        use PolicyLockVersions as Versions;
        manager
            .create_table(
                sea_query::Table::create()
                    .table(Versions::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Versions::Name).text().not_null().primary_key())
                    .col(ColumnDef::new(Versions::Version).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        let mut seed = Query::insert();
        seed.into_table(Versions::Table)
            .columns([Versions::Name, Versions::Version])
            .values([LOCK_SET.into(), 0i64.into()])
            .map_err(|error| DbErr::Migration(format!("building the lock-set counter's seed: {error}")))?
            .on_conflict(OnConflict::column(Versions::Name).do_nothing().to_owned());
        manager.exec_stmt(seed).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PolicyLockVersions::Table).if_exists().to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PolicyLocks::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum PolicyLocks {
    Table,
    Id,
    TargetKind,
    TargetValue,
    Message,
    Reason,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    ExpiryAnnounced,
}

#[derive(DeriveIden, Clone, Copy)]
enum PolicyLockVersions {
    Table,
    Name,
    Version,
}
