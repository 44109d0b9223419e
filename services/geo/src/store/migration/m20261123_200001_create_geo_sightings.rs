//! The `geo_sightings` table: each user's recent session starts and where they came from.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use GeoSightings::*;
        let text = |column: GeoSightings| ColumnDef::new(column).text().not_null().to_owned();
        let bigint = |column: GeoSightings| ColumnDef::new(column).big_integer().not_null().to_owned();
        manager
            .create_table(
                sea_query::Table::create()
                    .table(Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Id).text().not_null().primary_key())
                    .col(text(UserName))
                    .col(text(SessionId))
                    .col(bigint(At))
                    .col(text(Ip))
                    .col(text(Device))
                    .col(ColumnDef::new(Kind).small_integer().not_null())
                    .col(text(City))
                    .col(text(Region))
                    .col(text(CountryCode))
                    .col(text(CountryName))
                    .col(ColumnDef::new(Latitude).double().null())
                    .col(ColumnDef::new(Longitude).double().null())
                    .col(bigint(AccuracyRadiusKm))
                    .col(text(TimeZone))
                    .col(bigint(Asn))
                    .col(text(AsnOrganization))
                    // One sighting per session: asking twice about one start records it once.
                    // A constraint of the table rather than a separate index, so that no SQLite
                    // connection can know the table without it: SQLite resolves an upsert's
                    // conflict target when it prepares the statement, from the schema the
                    // connection last read.
                    .index(
                        Index::create()
                            .name("uq_geo_sightings_user_session")
                            .col(UserName)
                            .col(SessionId)
                            .unique(),
                    )
                    .to_owned(),
            )
            .await?;
        // A user's history newest first, and the trim that keeps it bounded, walk this index.
        manager
            .create_index(
                Index::create()
                    .name("idx_geo_sightings_user_at")
                    .table(Table)
                    .if_not_exists()
                    .col(UserName)
                    .col(At)
                    .col(Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(GeoSightings::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum GeoSightings {
    Table,
    Id,
    UserName,
    SessionId,
    At,
    Ip,
    Device,
    Kind,
    City,
    Region,
    CountryCode,
    CountryName,
    Latitude,
    Longitude,
    AccuracyRadiusKm,
    TimeZone,
    Asn,
    AsnOrganization,
}
