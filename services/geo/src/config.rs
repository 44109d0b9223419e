//! The geo service's own settings (the `[geo]` section): which GeoIP databases to read, how often to
//! look for replaced files, and the anomaly rules' thresholds and points.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoConfig {
    /// City databases (MMDB: GeoIP2/GeoLite2 City, DB-IP City Lite, or the ip-location-db files).
    /// One path or a list: DB-IP Lite as published by ip-location-db is one file for IPv4 and one
    /// for IPv6. The first database that knows an address answers. Empty: every public address is
    /// "unknown location".
    #[serde(deserialize_with = "one_or_many")]
    pub city_db: Vec<PathBuf>,
    /// ASN databases (MMDB: GeoLite2 ASN, or the file `make geoip` builds). One path or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub asn_db: Vec<PathBuf>,
    /// How often the database files are checked for replacement (size, modification time and
    /// inode; a replaced file is reopened without a restart).
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    pub thresholds: AnomalyThresholds,
}

impl Default for GeoConfig {
    fn default() -> Self {
        Self {
            city_db: Vec::new(),
            asn_db: Vec::new(),
            reload_interval: Duration::from_secs(60),
            thresholds: AnomalyThresholds::default(),
        }
    }
}

impl GeoConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.reload_interval.is_zero() {
            return Err("geo.reload_interval must be longer than zero".into());
        }
        self.thresholds.validate()
    }
}

/// When a session start counts as unusual, and how much each finding weighs (the
/// `[geo.thresholds]` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalyThresholds {
    /// Travel between two consecutive places faster than this is impossible travel. Airliners
    /// cruise at about 900 km/h.
    pub max_speed_kmh: f64,
    /// Live sessions of one user further apart than this (after accuracy radii) are far apart.
    pub far_apart_km: f64,
    /// Session starts remembered per user; the "never seen" rules look this far back.
    pub history_per_user: u32,
    /// The accuracy radius assumed for a location whose database states a smaller one or none
    /// (the ip-location-db files state none). City-level GeoIP is rarely better than this, and
    /// without it two neighbouring towns a minute apart would read as supersonic travel.
    pub min_accuracy_radius_km: f64,
    pub points: RulePoints,
}

impl Default for AnomalyThresholds {
    fn default() -> Self {
        Self {
            max_speed_kmh: 1000.0,
            far_apart_km: 500.0,
            history_per_user: 50,
            min_accuracy_radius_km: 20.0,
            points: RulePoints::default(),
        }
    }
}

impl AnomalyThresholds {
    pub fn validate(&self) -> Result<(), String> {
        let positive = |value: f64| value.is_finite() && value > 0.0;
        if !positive(self.max_speed_kmh) || !positive(self.far_apart_km) {
            return Err("geo.thresholds.max_speed_kmh and far_apart_km must be positive numbers".into());
        }
        if !(self.min_accuracy_radius_km.is_finite() && self.min_accuracy_radius_km >= 0.0) {
            return Err("geo.thresholds.min_accuracy_radius_km must be zero or a positive number".into());
        }
        if self.history_per_user == 0 {
            return Err("geo.thresholds.history_per_user must be at least 1".into());
        }
        self.points.validate()
    }
}

/// Points each rule adds to the score (the total is capped at 100). A rule with 0 points is off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulePoints {
    /// At twice `max_speed_kmh` or faster; half of it just over the limit, in proportion between.
    pub impossible_travel: u32,
    pub new_country: u32,
    pub new_asn: u32,
    pub new_device: u32,
    pub concurrent_far_apart: u32,
    pub unlocatable: u32,
}

impl Default for RulePoints {
    fn default() -> Self {
        Self {
            impossible_travel: 60,
            new_country: 25,
            new_asn: 10,
            new_device: 15,
            concurrent_far_apart: 40,
            unlocatable: 10,
        }
    }
}

impl RulePoints {
    fn validate(&self) -> Result<(), String> {
        let all = [
            self.impossible_travel,
            self.new_country,
            self.new_asn,
            self.new_device,
            self.concurrent_far_apart,
            self.unlocatable,
        ];
        if all.iter().any(|points| *points > 100) {
            return Err("geo.thresholds.points: a rule is worth at most 100 points".into());
        }
        Ok(())
    }
}

/// A path or a list of paths.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(path) if path.as_os_str().is_empty() => Vec::new(),
        OneOrMany::One(path) => vec![path],
        OneOrMany::Many(paths) => paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_one_path_or_a_list() {
        let config: GeoConfig = toml::from_str(
            r#"
            city_db = ["v4.mmdb", "v6.mmdb"]
            asn_db = "asn.mmdb"
            reload_interval = "5s"
            [thresholds]
            max_speed_kmh = 800
            [thresholds.points]
            new_device = 0
            "#,
        )
        .unwrap();
        assert_eq!(config.city_db, [PathBuf::from("v4.mmdb"), PathBuf::from("v6.mmdb")]);
        assert_eq!(config.asn_db, [PathBuf::from("asn.mmdb")]);
        assert_eq!(config.reload_interval, Duration::from_secs(5));
        assert_eq!(config.thresholds.max_speed_kmh, 800.0);
        assert_eq!(config.thresholds.far_apart_km, 500.0);
        assert_eq!(config.thresholds.points.new_device, 0);
        assert_eq!(config.thresholds.points.new_country, 25);
        config.validate().unwrap();
    }

    #[test]
    fn defaults_are_valid_and_nonsense_is_refused() {
        GeoConfig::default().validate().unwrap();
        let mut config = GeoConfig::default();
        config.thresholds.max_speed_kmh = 0.0;
        assert!(config.validate().unwrap_err().contains("max_speed_kmh"));
        let mut config = GeoConfig::default();
        config.thresholds.history_per_user = 0;
        assert!(config.validate().unwrap_err().contains("history_per_user"));
        let config = GeoConfig {
            reload_interval: Duration::ZERO,
            ..GeoConfig::default()
        };
        assert!(config.validate().unwrap_err().contains("reload_interval"));
        let mut config = GeoConfig::default();
        config.thresholds.points.unlocatable = 101;
        assert!(config.validate().unwrap_err().contains("at most 100"));
    }
}
