//! The `geo_sightings` table: one row per recorded session start. The schema is defined by the
//! migration (`store::migration`); this struct mirrors it.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use vigil_proto::v1 as pb;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{LocationKind, Sighting};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "geo_sightings")]
pub struct Model {
    /// UUIDv7: increasing with insertion, so it breaks ties between equal `at`s in order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `user` is a reserved word in PostgreSQL; `user_name` avoids quoting it in SQL by hand.
    pub user_name: String,
    pub session_id: String,
    pub at: i64,
    pub ip: String,
    pub device: String,
    /// A [`LocationKind`] proto number.
    pub kind: i16,
    pub city: String,
    pub region: String,
    pub country_code: String,
    pub country_name: String,
    /// Both set, or both unset when the location has no coordinates.
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub accuracy_radius_km: i64,
    pub time_zone: String,
    pub asn: i64,
    pub asn_organization: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A row to insert for `sighting`.
pub fn active_model(sighting: &Sighting) -> ActiveModel {
    let location = &sighting.location;
    let coordinate = |value: f64| location.has_coordinates.then_some(value);
    ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_name: Set(sighting.user.clone()),
        session_id: Set(sighting.session_id.clone()),
        at: Set(sighting.at),
        ip: Set(sighting.ip.clone()),
        device: Set(sighting.device.clone()),
        kind: Set(i16::try_from(location.kind).unwrap_or(LocationKind::Unspecified as i16)),
        city: Set(location.city.clone()),
        region: Set(location.region.clone()),
        country_code: Set(location.country_code.clone()),
        country_name: Set(location.country_name.clone()),
        latitude: Set(coordinate(location.latitude)),
        longitude: Set(coordinate(location.longitude)),
        accuracy_radius_km: Set(i64::from(location.accuracy_radius_km)),
        time_zone: Set(location.time_zone.clone()),
        asn: Set(i64::from(location.asn)),
        asn_organization: Set(location.asn_organization.clone()),
    }
}

impl Model {
    /// The domain value; fails only if the row holds values no version of this code writes.
    pub fn into_sighting(self) -> ServiceResult<Sighting> {
        let out_of_range =
            |column: &str, value: i64| ServiceError::internal(format!("geo_sightings.{column} out of range: {value}"));
        let kind = LocationKind::try_from(i32::from(self.kind))
            .map_err(|_| ServiceError::internal(format!("geo_sightings.kind holds unknown value {}", self.kind)))?;
        let (has_coordinates, latitude, longitude) = match (self.latitude, self.longitude) {
            (Some(latitude), Some(longitude)) => (true, latitude, longitude),
            _ => (false, 0.0, 0.0),
        };
        Ok(Sighting {
            location: pb::Location {
                city: self.city,
                region: self.region,
                country_code: self.country_code,
                country_name: self.country_name,
                latitude,
                longitude,
                has_coordinates,
                accuracy_radius_km: u32::try_from(self.accuracy_radius_km)
                    .map_err(|_| out_of_range("accuracy_radius_km", self.accuracy_radius_km))?,
                time_zone: self.time_zone,
                asn: u32::try_from(self.asn).map_err(|_| out_of_range("asn", self.asn))?,
                asn_organization: self.asn_organization,
                kind: kind as i32,
            },
            user: self.user_name,
            session_id: self.session_id,
            at: self.at,
            ip: self.ip,
            device: self.device,
        })
    }
}
