//! The `sessions` table and the indexes behind each query the registry runs.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `SessionStatus::Active`'s proto number, frozen here: a migration must not change meaning when
/// the code around it does.
const STATUS_ACTIVE: i16 = 1;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(sessions_table()).await?;
        for index in indexes() {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping the table drops its indexes.
        manager
            .drop_table(Table::drop().table(Sessions::Table).if_exists().to_owned())
            .await
    }
}

fn sessions_table() -> TableCreateStatement {
    use Sessions::*;
    let text = |column: Sessions| ColumnDef::new(column).text().not_null().to_owned();
    let bigint = |column: Sessions| ColumnDef::new(column).big_integer().not_null().to_owned();
    let smallint = |column: Sessions| ColumnDef::new(column).small_integer().not_null().to_owned();
    sea_query::Table::create()
        .table(Table)
        .if_not_exists()
        .col(ColumnDef::new(Id).text().not_null().primary_key())
        .col(text(UserName))
        .col(text(UserGroups))
        .col(text(GatewayId))
        .col(text(ResourceName))
        .col(smallint(ResourceType))
        .col(text(Device))
        .col(text(ClientIp))
        .col(smallint(LocationKind))
        .col(text(LocationCity))
        .col(text(LocationRegion))
        .col(text(LocationCountryCode))
        .col(text(LocationCountryName))
        .col(ColumnDef::new(LocationLatitude).double().null())
        .col(ColumnDef::new(LocationLongitude).double().null())
        .col(bigint(LocationAccuracyRadiusKm))
        .col(text(LocationTimeZone))
        .col(bigint(LocationAsn))
        .col(text(LocationAsnOrganization))
        .col(ColumnDef::new(RiskAssessed).boolean().not_null())
        .col(bigint(RiskScore))
        .col(text(RiskFlags))
        .col(ColumnDef::new(Flagged).boolean().not_null())
        .col(text(SearchText))
        .col(bigint(StartedAt))
        .col(bigint(LastActivityAt))
        .col(smallint(Status))
        .col(ColumnDef::new(EndedAt).big_integer().null())
        .col(ColumnDef::new(EndReason).small_integer().null())
        .col(text(EndDetail))
        .col(bigint(BytesIn))
        .col(bigint(BytesOut))
        .to_owned()
}

/// Most reads are of live sessions, a small part of a table that keeps history: those indexes are
/// partial (`WHERE ended_at IS NULL`), so they stay small and cheap to update.
fn indexes() -> Vec<IndexCreateStatement> {
    use Sessions::*;
    let live = |name: &str, columns: &[Sessions]| {
        let mut index = Index::create();
        index
            .name(name)
            .table(Table)
            .if_not_exists()
            .and_where(Expr::col(EndedAt).is_null());
        for column in columns {
            index.col(*column);
        }
        index
    };
    vec![
        // Reconciling a gateway's snapshot, live counts per gateway, the gateway selector.
        live("idx_sessions_live_gateway", &[GatewayId, Id]),
        // The idle sweep: ACTIVE sessions by last input.
        live("idx_sessions_active_last_activity", &[LastActivityAt])
            .and_where(Expr::col(Status).eq(STATUS_ACTIVE))
            .to_owned(),
        // The list orders, each with `id` as the tie-breaker of keyset paging.
        live("idx_sessions_live_started", &[StartedAt, Id]),
        live("idx_sessions_live_last_activity", &[LastActivityAt, Id]),
        live("idx_sessions_live_user", &[UserName, Id]),
        live("idx_sessions_live_resource", &[ResourceName, Id]),
        live("idx_sessions_live_risk", &[RiskScore, Id]),
        // A user's history (ended sessions too).
        Index::create()
            .name("idx_sessions_user")
            .table(Table)
            .if_not_exists()
            .col(UserName)
            .to_owned(),
        // "Ended since" in the stats, and history by end time. Partial on purpose: with the live
        // rows (NULL) in it, SQLite's planner takes `ended_at IS NULL` as an equality lookup on
        // this index and ignores the live-only ones above.
        Index::create()
            .name("idx_sessions_ended")
            .table(Table)
            .if_not_exists()
            .col(EndedAt)
            .and_where(Expr::col(EndedAt).is_not_null())
            .to_owned(),
    ]
}

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    Id,
    UserName,
    UserGroups,
    GatewayId,
    ResourceName,
    ResourceType,
    Device,
    ClientIp,
    LocationKind,
    LocationCity,
    LocationRegion,
    LocationCountryCode,
    LocationCountryName,
    LocationLatitude,
    LocationLongitude,
    LocationAccuracyRadiusKm,
    LocationTimeZone,
    LocationAsn,
    LocationAsnOrganization,
    RiskAssessed,
    RiskScore,
    RiskFlags,
    Flagged,
    SearchText,
    StartedAt,
    LastActivityAt,
    Status,
    EndedAt,
    EndReason,
    EndDetail,
    BytesIn,
    BytesOut,
}
