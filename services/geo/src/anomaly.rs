//! The anomaly rules: how unusual a session start is for its user, as named flags with points and
//! a sentence each, and a score that is their sum capped at 100. Pure functions of the start, the
//! user's history and the thresholds; [`crate::Geo::assess`] supplies them.
//!
//! Rules (each off when its points are 0):
//! - `impossible_travel`: from the last located start to this one faster than `max_speed_kmh`.
//!   Both accuracy radii come off the distance first, so two fuzzy locations of one city, or a
//!   commuter's two towns, are not travel at all. Worth half its points just over the limit,
//!   all of them at twice the limit or more.
//! - `new_country`, `new_asn`, `new_device`: nothing in the remembered history matches.
//! - `concurrent_far_apart`: another live session of the user is more than `far_apart_km` away.
//! - `unlocatable`: a public address the GeoIP database does not know.

use std::collections::HashSet;

use vigil_proto::v1::{self as pb, LocationKind};

use crate::config::AnomalyThresholds;
use crate::domain::{EpochMillis, Sighting, place_name};
use crate::human;

pub const IMPOSSIBLE_TRAVEL: &str = "impossible_travel";
pub const NEW_COUNTRY: &str = "new_country";
pub const NEW_ASN: &str = "new_asn";
pub const NEW_DEVICE: &str = "new_device";
pub const CONCURRENT_FAR_APART: &str = "concurrent_far_apart";
pub const UNLOCATABLE: &str = "unlocatable";

/// Mean Earth radius (IUGG), for great-circle distances.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// The shortest time between two starts that speeds are computed over. Two starts within the same
/// minute still make a finite speed (gateways' clocks disagree by seconds), and a jump of
/// thousands of kilometres in under a minute is impossible travel all the same.
const MIN_ELAPSED_MS: i64 = 60_000;

/// How many known countries, networks or devices an explanation lists.
const LISTED: usize = 3;

/// A session start to assess.
#[derive(Debug, Clone, Copy)]
pub struct Start<'a> {
    pub at: EpochMillis,
    pub ip: &'a str,
    pub device: &'a str,
    pub location: &'a pb::Location,
    /// Where the user's other live sessions are.
    pub concurrent: &'a [pb::Location],
}

/// Scores `start` against `history`: the user's earlier starts, newest first, without this
/// session. `can_locate` says whether a city database is loaded; without one every public address
/// is unknown, and flagging them all as unlocatable would say nothing about the user.
pub fn assess(start: &Start<'_>, history: &[Sighting], thresholds: &AnomalyThresholds, can_locate: bool) -> pb::Risk {
    let flags: Vec<pb::RiskFlag> = [
        impossible_travel(start, history, thresholds),
        new_country(start, history, thresholds),
        new_asn(start, history, thresholds),
        new_device(start, history, thresholds),
        concurrent_far_apart(start, thresholds),
        unlocatable(start, thresholds, can_locate),
    ]
    .into_iter()
    .flatten()
    .filter(|flag| flag.points > 0)
    .collect();
    pb::Risk {
        score: flags.iter().map(|flag| flag.points).sum::<u32>().min(100),
        flags,
        assessed: true,
    }
}

/// Great-circle distance between two locations with coordinates (haversine).
pub fn distance_km(a: &pb::Location, b: &pb::Location) -> f64 {
    let (lat_a, lat_b) = (a.latitude.to_radians(), b.latitude.to_radians());
    let half_dlat = (lat_b - lat_a) / 2.0;
    let half_dlon = (b.longitude - a.longitude).to_radians() / 2.0;
    let h = half_dlat.sin().powi(2) + lat_a.cos() * lat_b.cos() * half_dlon.sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// The distance between two locations that is certain: the great-circle distance less both
/// accuracy radii (each at least `min_accuracy_radius_km`), never below 0.
fn certain_distance_km(a: &pb::Location, b: &pb::Location, thresholds: &AnomalyThresholds) -> f64 {
    let radius =
        |location: &pb::Location| f64::from(location.accuracy_radius_km).max(thresholds.min_accuracy_radius_km);
    (distance_km(a, b) - radius(a) - radius(b)).max(0.0)
}

fn flag(code: &str, points: u32, explanation: String) -> Option<pb::RiskFlag> {
    Some(pb::RiskFlag {
        code: code.to_owned(),
        points,
        explanation,
    })
}

fn name(location: &pb::Location) -> &str {
    place_name(location).unwrap_or("an unnamed place")
}

fn impossible_travel(start: &Start<'_>, history: &[Sighting], thresholds: &AnomalyThresholds) -> Option<pb::RiskFlag> {
    let here = start.location;
    if !here.has_coordinates {
        return None;
    }
    // The last place the user was seen at before this start. (A start recorded later than this
    // one — requests can arrive out of order — is not "before".)
    let previous = history
        .iter()
        .find(|sighting| sighting.at <= start.at && sighting.location.has_coordinates)?;
    let certain = certain_distance_km(&previous.location, here, thresholds);
    if certain <= 0.0 {
        return None;
    }
    let elapsed = start.at - previous.at;
    let hours = elapsed.max(MIN_ELAPSED_MS) as f64 / 3_600_000.0;
    let speed = certain / hours;
    if speed <= thresholds.max_speed_kmh {
        return None;
    }
    let severity = (speed / (2.0 * thresholds.max_speed_kmh)).clamp(0.5, 1.0);
    let points = (f64::from(thresholds.points.impossible_travel) * severity).round() as u32;
    flag(
        IMPOSSIBLE_TRAVEL,
        points,
        format!(
            "{} → {} in {}, {} km, {} km/h",
            name(&previous.location),
            name(here),
            human::duration(elapsed),
            human::number(distance_km(&previous.location, here)),
            human::number(speed),
        ),
    )
}

/// The distinct values of `key` in `history`, most recent first, skipping empty ones.
fn known<'h, K: Eq + std::hash::Hash + Clone>(
    history: &'h [Sighting],
    key: impl Fn(&'h Sighting) -> Option<K>,
) -> Vec<(K, &'h Sighting)> {
    let mut seen = HashSet::new();
    history
        .iter()
        .filter_map(|sighting| Some((key(sighting)?, sighting)))
        .filter(|(value, _)| seen.insert(value.clone()))
        .collect()
}

/// A list of up to [`LISTED`] names, then how many more.
fn listing(names: impl ExactSizeIterator<Item = String>) -> String {
    let total = names.len();
    let mut text = names.take(LISTED).collect::<Vec<_>>().join(", ");
    if total > LISTED {
        text.push_str(&format!(" and {} more", total - LISTED));
    }
    text
}

fn country_label(location: &pb::Location) -> String {
    if location.country_name.is_empty() {
        location.country_code.clone()
    } else {
        format!("{} ({})", location.country_name, location.country_code)
    }
}

fn asn_label(location: &pb::Location) -> String {
    if location.asn_organization.is_empty() {
        format!("AS{}", location.asn)
    } else {
        format!("AS{} ({})", location.asn, location.asn_organization)
    }
}

// The three "new_*" rules stay quiet when the history holds nothing to compare with — a user's
// first session, or one whose earlier starts never carried that attribute (private addresses have
// no country, older gateways send no device): "never seen" would then be true of every value and
// say nothing about this one.

fn new_country(start: &Start<'_>, history: &[Sighting], thresholds: &AnomalyThresholds) -> Option<pb::RiskFlag> {
    let code = start.location.country_code.as_str();
    if code.is_empty() {
        return None;
    }
    let countries = known(history, |sighting| {
        Some(sighting.location.country_code.as_str()).filter(|code| !code.is_empty())
    });
    if countries.is_empty() || countries.iter().any(|(known, _)| *known == code) {
        return None;
    }
    flag(
        NEW_COUNTRY,
        thresholds.points.new_country,
        format!(
            "first session from {}; earlier ones came from {}",
            country_label(start.location),
            listing(countries.iter().map(|(_, sighting)| country_label(&sighting.location)))
        ),
    )
}

fn new_asn(start: &Start<'_>, history: &[Sighting], thresholds: &AnomalyThresholds) -> Option<pb::RiskFlag> {
    let asn = start.location.asn;
    if asn == 0 {
        return None;
    }
    let networks = known(history, |sighting| Some(sighting.location.asn).filter(|asn| *asn != 0));
    if networks.is_empty() || networks.iter().any(|(known, _)| *known == asn) {
        return None;
    }
    flag(
        NEW_ASN,
        thresholds.points.new_asn,
        format!(
            "first session from network {}; earlier ones came from {}",
            asn_label(start.location),
            listing(networks.iter().map(|(_, sighting)| asn_label(&sighting.location)))
        ),
    )
}

fn new_device(start: &Start<'_>, history: &[Sighting], thresholds: &AnomalyThresholds) -> Option<pb::RiskFlag> {
    let device = start.device.trim();
    if device.is_empty() {
        return None;
    }
    // Device names are compared without regard to ASCII case: gateways disagree on the case of
    // Windows machine names.
    let devices = known(history, |sighting| {
        Some(sighting.device.trim().to_ascii_lowercase()).filter(|device| !device.is_empty())
    });
    let lower = device.to_ascii_lowercase();
    if devices.is_empty() || devices.iter().any(|(known, _)| *known == lower) {
        return None;
    }
    flag(
        NEW_DEVICE,
        thresholds.points.new_device,
        format!(
            "first session from device {device:?}; earlier ones came from {}",
            listing(
                devices
                    .iter()
                    .map(|(_, sighting)| format!("{:?}", sighting.device.trim()))
            )
        ),
    )
}

fn concurrent_far_apart(start: &Start<'_>, thresholds: &AnomalyThresholds) -> Option<pb::RiskFlag> {
    let here = start.location;
    if !here.has_coordinates {
        return None;
    }
    let far: Vec<(&pb::Location, f64)> = start
        .concurrent
        .iter()
        .filter(|other| other.has_coordinates && certain_distance_km(here, other, thresholds) > thresholds.far_apart_km)
        .map(|other| (other, distance_km(here, other)))
        .collect();
    let (farthest, distance) = far.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let explanation = match far.len() {
        1 => format!(
            "another live session is in {}, {} km from {}",
            name(farthest),
            human::number(distance),
            name(here)
        ),
        n => format!(
            "{n} other live sessions are more than {} km away; the farthest is in {}, {} km from {}",
            human::number(thresholds.far_apart_km),
            name(farthest),
            human::number(distance),
            name(here)
        ),
    };
    flag(
        CONCURRENT_FAR_APART,
        thresholds.points.concurrent_far_apart,
        explanation,
    )
}

fn unlocatable(start: &Start<'_>, thresholds: &AnomalyThresholds, can_locate: bool) -> Option<pb::RiskFlag> {
    if !can_locate || start.location.kind != LocationKind::Unknown as i32 {
        return None;
    }
    flag(
        UNLOCATABLE,
        thresholds.points.unlocatable,
        format!("{} is a public address the GeoIP database does not know", start.ip),
    )
}
