//! The `policies` table, one policy per scope, and the global policy with the documented defaults.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The global policy as first installed: warn after 10 minutes idle, end after 30. Frozen here
/// (not read from the code's defaults): a migration must not change meaning when the code does.
const SEED_IDLE_WARNING_AFTER_MS: i64 = 10 * 60 * 1000;
const SEED_IDLE_TIMEOUT_MS: i64 = 30 * 60 * 1000;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// In one transaction on every backend: the seed's `ON CONFLICT` needs the unique index, and
    /// on SQLite (where sea-orm-migration does not wrap migrations) pooled connections could
    /// otherwise run the seed on a connection that has not seen the index yet.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use Policies::*;
        let text = |column: Policies| ColumnDef::new(column).text().not_null().to_owned();
        let optional_bigint = |column: Policies| ColumnDef::new(column).big_integer().null().to_owned();
        let optional_smallint = |column: Policies| ColumnDef::new(column).small_integer().null().to_owned();
        manager
            .create_table(
                sea_query::Table::create()
                    .table(Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Id).text().not_null().primary_key())
                    .col(text(ScopeKind))
                    .col(text(ScopeName))
                    .col(optional_bigint(IdleWarningAfterMs))
                    .col(optional_bigint(IdleTimeoutMs))
                    .col(optional_bigint(MaxSessionDurationMs))
                    .col(optional_bigint(MaxConcurrentSessions))
                    .col(optional_smallint(ConcurrencyAction))
                    .col(optional_smallint(DenyRiskScore))
                    .col(optional_smallint(FlagRiskScore))
                    .col(text(Description))
                    .col(text(UpdatedBy))
                    .col(ColumnDef::new(UpdatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        // One policy per scope, enforced by the database (two admins creating the same scope at
        // once: one gets ALREADY_EXISTS). It also serves the lookups of the policies that apply
        // to a session, and the list's order.
        manager
            .create_index(
                Index::create()
                    .name("uq_policies_scope")
                    .table(Table)
                    .if_not_exists()
                    .col(ScopeKind)
                    .col(ScopeName)
                    .unique()
                    .to_owned(),
            )
            .await?;

        let now = crate::clock::system_now_millis();
        let mut seed = Query::insert();
        seed.into_table(Table)
            .columns([
                Id,
                ScopeKind,
                ScopeName,
                IdleWarningAfterMs,
                IdleTimeoutMs,
                Description,
                UpdatedBy,
                UpdatedAt,
            ])
            .values([
                uuid::Uuid::now_v7().to_string().into(),
                "global".into(),
                "".into(),
                SEED_IDLE_WARNING_AFTER_MS.into(),
                SEED_IDLE_TIMEOUT_MS.into(),
                "Applies to every session unless a more specific policy says otherwise.".into(),
                "system".into(),
                now.into(),
            ])
            .map_err(|error| DbErr::Migration(format!("building the global policy's seed: {error}")))?
            .on_conflict(OnConflict::columns([ScopeKind, ScopeName]).do_nothing().to_owned());
        manager.exec_stmt(seed).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Policies::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Policies {
    Table,
    Id,
    ScopeKind,
    ScopeName,
    IdleWarningAfterMs,
    IdleTimeoutMs,
    MaxSessionDurationMs,
    MaxConcurrentSessions,
    ConcurrencyAction,
    DenyRiskScore,
    FlagRiskScore,
    Description,
    UpdatedBy,
    UpdatedAt,
}
