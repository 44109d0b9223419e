//! The history the anomaly rules compare with, as plain values.

use vigil_proto::v1 as pb;

pub use vigil_proto::v1::LocationKind;

pub use vigil_core::EpochMillis;

/// One session start as a user's history remembers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub user: String,
    /// The session started; a user's history holds each session once.
    pub session_id: String,
    pub at: EpochMillis,
    pub ip: String,
    /// May be empty (the gateway did not say).
    pub device: String,
    /// Where `ip` was when the session started.
    pub location: pb::Location,
}

/// The name a person knows a location by: the city, else the region, else the country.
pub fn place_name(location: &pb::Location) -> Option<&str> {
    [
        &location.city,
        &location.region,
        &location.country_name,
        &location.country_code,
    ]
    .into_iter()
    .find(|name| !name.is_empty())
    .map(String::as_str)
}
