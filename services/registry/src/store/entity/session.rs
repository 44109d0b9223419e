//! The `sessions` table: one row per session, live or ended, flattened from [`SessionRecord`].

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{
    EndReason, GeoLocation, ResourceType, RiskAssessment, RiskFlag, SessionRecord, SessionStatus, last_activity_rank,
};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `user` is a reserved word in PostgreSQL; `user_name` avoids quoting it in hand-written SQL.
    pub user_name: String,
    /// JSON array of strings.
    pub user_groups: String,
    pub gateway_id: String,
    pub resource_name: String,
    pub resource_type: i16,
    pub device: String,
    pub client_ip: String,
    pub location_kind: i16,
    pub location_city: String,
    pub location_region: String,
    pub location_country_code: String,
    pub location_country_name: String,
    pub location_latitude: Option<f64>,
    pub location_longitude: Option<f64>,
    pub location_accuracy_radius_km: i64,
    pub location_time_zone: String,
    pub location_asn: i64,
    pub location_asn_organization: String,
    pub risk_assessed: bool,
    pub risk_score: i64,
    /// JSON array of [`RiskFlag`].
    pub risk_flags: String,
    /// Whether `risk_flags` is non-empty, as a column so it can be filtered and counted.
    pub flagged: bool,
    /// Lower-cased user, resource, device, IP, city and gateway, for the free-text filter (which
    /// searches the database's copy in `session_search`).
    pub search_text: String,
    pub started_at: i64,
    /// For a live session this and the three activity columns below are a copy as of its last
    /// status change; the current values are in `session_activity` (reads take them from there).
    /// An ended session's are final: its end folds them in.
    pub last_activity_at: i64,
    /// `last_activity_rank(last_activity_at)`: what the indexes hold instead of the exact time, so
    /// that most activity reports update the row in place (see the migration
    /// `m20261124_000301_activity_buckets`).
    pub activity_bucket: i64,
    pub status: i16,
    pub ended_at: Option<i64>,
    pub end_reason: Option<i16>,
    pub end_detail: String,
    pub bytes_in: i64,
    pub bytes_out: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_one = "super::session_activity::Entity")]
    Activity,
}

impl Related<super::session_activity::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Activity.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// Separates the fields in `search_text`, so a query cannot match across two of them by accident.
const SEARCH_SEPARATOR: &str = "\n";

/// The column value of a proto enum. Proto enum numbers here are all small, so the fallback is
/// unreachable; it exists only to avoid a panic path.
pub fn enum_code(value: impl Into<i32>) -> i16 {
    i16::try_from(value.into()).unwrap_or(i16::MAX)
}

/// The lower-cased text the free-text filter searches.
pub fn search_text(session: &SessionRecord) -> String {
    search_text_of([
        session.user.as_str(),
        &session.resource_name,
        &session.device,
        &session.client_ip,
        &session.location.city,
        &session.location.country_name,
        &session.location.country_code,
        &session.gateway_id,
    ])
}

/// [`search_text`] of its fields, in its order: user, resource, device, client IP, city, country
/// name, country code, gateway.
pub fn search_text_of(fields: [&str; 8]) -> String {
    fields.join(SEARCH_SEPARATOR).to_lowercase()
}

/// A row to insert for `session`.
pub fn active_model(session: &SessionRecord) -> ServiceResult<ActiveModel> {
    let location = &session.location;
    let location_kind = i16::try_from(location.kind)
        .map_err(|_| ServiceError::internal(format!("location kind {} out of range", location.kind)))?;
    Ok(ActiveModel {
        id: Set(session.id.clone()),
        user_name: Set(session.user.clone()),
        user_groups: Set(to_json(&session.user_groups)?),
        gateway_id: Set(session.gateway_id.clone()),
        resource_name: Set(session.resource_name.clone()),
        resource_type: Set(enum_code(session.resource_type)),
        device: Set(session.device.clone()),
        client_ip: Set(session.client_ip.clone()),
        location_kind: Set(location_kind),
        location_city: Set(location.city.clone()),
        location_region: Set(location.region.clone()),
        location_country_code: Set(location.country_code.clone()),
        location_country_name: Set(location.country_name.clone()),
        location_latitude: Set(location.coordinates.map(|(latitude, _)| latitude)),
        location_longitude: Set(location.coordinates.map(|(_, longitude)| longitude)),
        location_accuracy_radius_km: Set(i64::from(location.accuracy_radius_km)),
        location_time_zone: Set(location.time_zone.clone()),
        location_asn: Set(i64::from(location.asn)),
        location_asn_organization: Set(location.asn_organization.clone()),
        risk_assessed: Set(session.risk.assessed),
        risk_score: Set(i64::from(session.risk.score)),
        risk_flags: Set(to_json(&session.risk.flags)?),
        flagged: Set(!session.risk.flags.is_empty()),
        search_text: Set(search_text(session)),
        started_at: Set(session.started_at),
        last_activity_at: Set(session.last_activity_at),
        activity_bucket: Set(last_activity_rank(session.last_activity_at)),
        status: Set(enum_code(session.status)),
        ended_at: Set(session.ended_at),
        end_reason: Set(session.end_reason.map(enum_code)),
        end_detail: Set(session.end_detail.clone()),
        bytes_in: Set(to_column_counter(session.bytes_in)),
        bytes_out: Set(to_column_counter(session.bytes_out)),
    })
}

/// A byte counter as stored: BIGINT is signed, so counters saturate at `i64::MAX` (8 EiB).
pub fn to_column_counter(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A session's location columns alone: what admission reads of the user's live sessions. The
/// columns selected are the fields' names (`DerivePartialModel`).
#[derive(Debug, Clone, PartialEq, DerivePartialModel)]
#[sea_orm(entity = "Entity")]
pub struct LocationColumns {
    pub location_kind: i16,
    pub location_city: String,
    pub location_region: String,
    pub location_country_code: String,
    pub location_country_name: String,
    pub location_latitude: Option<f64>,
    pub location_longitude: Option<f64>,
    pub location_accuracy_radius_km: i64,
    pub location_time_zone: String,
    pub location_asn: i64,
    pub location_asn_organization: String,
}

impl LocationColumns {
    /// The domain's location; fails only if the row holds values no version of this code writes.
    pub fn into_location(self) -> ServiceResult<GeoLocation> {
        let coordinates = match (self.location_latitude, self.location_longitude) {
            (Some(latitude), Some(longitude)) => Some((latitude, longitude)),
            _ => None,
        };
        Ok(GeoLocation {
            kind: i32::from(self.location_kind),
            city: self.location_city,
            region: self.location_region,
            country_code: self.location_country_code,
            country_name: self.location_country_name,
            coordinates,
            accuracy_radius_km: to_u32(self.location_accuracy_radius_km, "location_accuracy_radius_km")?,
            time_zone: self.location_time_zone,
            asn: to_u32(self.location_asn, "location_asn")?,
            asn_organization: self.location_asn_organization,
        })
    }
}

impl Model {
    /// The domain record; fails only if the row holds values no version of this code writes.
    pub fn into_record(self) -> ServiceResult<SessionRecord> {
        let flags: Vec<RiskFlag> = from_json(&self.risk_flags, "risk_flags")?;
        let location = LocationColumns {
            location_kind: self.location_kind,
            location_city: self.location_city,
            location_region: self.location_region,
            location_country_code: self.location_country_code,
            location_country_name: self.location_country_name,
            location_latitude: self.location_latitude,
            location_longitude: self.location_longitude,
            location_accuracy_radius_km: self.location_accuracy_radius_km,
            location_time_zone: self.location_time_zone,
            location_asn: self.location_asn,
            location_asn_organization: self.location_asn_organization,
        }
        .into_location()?;
        Ok(SessionRecord {
            user_groups: from_json(&self.user_groups, "user_groups")?,
            resource_type: decode_enum::<ResourceType>(self.resource_type, "resource_type")?,
            location,
            risk: RiskAssessment {
                assessed: self.risk_assessed,
                score: to_u32(self.risk_score, "risk_score")?,
                flags,
            },
            status: decode_enum::<SessionStatus>(self.status, "status")?,
            end_reason: self
                .end_reason
                .map(|code| decode_enum::<EndReason>(code, "end_reason"))
                .transpose()?,
            bytes_in: u64::try_from(self.bytes_in).unwrap_or(0),
            bytes_out: u64::try_from(self.bytes_out).unwrap_or(0),
            id: self.id,
            user: self.user_name,
            gateway_id: self.gateway_id,
            resource_name: self.resource_name,
            device: self.device,
            client_ip: self.client_ip,
            started_at: self.started_at,
            last_activity_at: self.last_activity_at,
            ended_at: self.ended_at,
            end_detail: self.end_detail,
        })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> ServiceResult<String> {
    serde_json::to_string(value).map_err(|error| ServiceError::internal(format!("encoding JSON column: {error}")))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, column: &str) -> ServiceResult<T> {
    serde_json::from_str(text)
        .map_err(|error| ServiceError::internal(format!("sessions.{column} is not valid: {error}")))
}

fn decode_enum<E: TryFrom<i32>>(code: i16, column: &str) -> ServiceResult<E> {
    E::try_from(i32::from(code))
        .map_err(|_| ServiceError::internal(format!("sessions.{column} holds unknown value {code}")))
}

fn to_u32(value: i64, column: &str) -> ServiceResult<u32> {
    u32::try_from(value).map_err(|_| ServiceError::internal(format!("sessions.{column} out of range: {value}")))
}
