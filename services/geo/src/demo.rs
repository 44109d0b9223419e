//! The demo GeoIP databases: small, generated, with real places. They cover every public network
//! the gateway simulator draws client addresses from (`vigil-agent`'s `simulate::data`, which uses
//! the networks of MaxMind's public test databases), plus Berlin and Google's resolver for trying
//! `Locate` by hand, so the embedded default shows real cities without a download.
//!
//! Coordinates are the cities' own; ASNs are the networks' real or plausible holders. For real use,
//! `make geoip` fetches a full database (see the README).

use std::io;
use std::path::{Path, PathBuf};

use crate::writer::{AsnEntry, CityEntry, Layout, write_asn_database, write_city_database};

/// File names of the demo databases inside the directory given to [`write_demo_databases`].
pub const DEMO_CITY_FILE: &str = "demo-city.mmdb";
pub const DEMO_ASN_FILE: &str = "demo-asn.mmdb";

const fn city(
    network: &'static str,
    (city, region, country_code, country_name): (&'static str, &'static str, &'static str, &'static str),
    (latitude, longitude, accuracy_radius_km): (f64, f64, u16),
    time_zone: &'static str,
) -> CityEntry<'static> {
    CityEntry {
        network,
        city,
        region,
        country_code,
        country_name,
        latitude,
        longitude,
        accuracy_radius_km,
        time_zone,
    }
}

/// The demo city database's networks.
pub const DEMO_CITIES: &[CityEntry<'static>] = &[
    city(
        "81.2.69.160/27",
        ("London", "England", "GB", "United Kingdom"),
        (51.5142, -0.0931, 10),
        "Europe/London",
    ),
    city(
        "2.125.160.216/29",
        ("Boxford", "England", "GB", "United Kingdom"),
        (51.75, -1.25, 20),
        "Europe/London",
    ),
    city(
        "89.160.20.112/28",
        ("Linköping", "Östergötland County", "SE", "Sweden"),
        (58.4167, 15.6167, 20),
        "Europe/Stockholm",
    ),
    city(
        "89.160.20.128/25",
        ("Linköping", "Östergötland County", "SE", "Sweden"),
        (58.4167, 15.6167, 20),
        "Europe/Stockholm",
    ),
    city(
        "216.160.83.56/29",
        ("Milton", "Washington", "US", "United States"),
        (47.2513, -122.3149, 20),
        "America/Los_Angeles",
    ),
    // Country-level only, as GeoIP data often is: the centre of the country and a wide radius.
    city(
        "149.101.100.0/28",
        ("", "", "US", "United States"),
        (37.751, -97.822, 1000),
        "America/Chicago",
    ),
    city(
        "175.16.199.0/24",
        ("Changchun", "Jilin", "CN", "China"),
        (43.88, 125.3228, 50),
        "Asia/Shanghai",
    ),
    city(
        "202.196.224.0/20",
        ("", "", "PH", "Philippines"),
        (13.0, 122.0, 500),
        "Asia/Manila",
    ),
    city(
        "67.43.156.0/24",
        ("", "", "BT", "Bhutan"),
        (27.5, 90.5, 100),
        "Asia/Thimphu",
    ),
    city(
        "141.20.0.0/16",
        ("Berlin", "Land Berlin", "DE", "Germany"),
        (52.5244, 13.4105, 10),
        "Europe/Berlin",
    ),
    city(
        "8.8.8.0/24",
        ("Mountain View", "California", "US", "United States"),
        (37.4223, -122.085, 10),
        "America/Los_Angeles",
    ),
    city(
        "2001:480::/32",
        ("Lorton", "Virginia", "US", "United States"),
        (38.7043, -77.2278, 50),
        "America/New_York",
    ),
    city(
        "2001:218::/32",
        ("Tokyo", "Tokyo", "JP", "Japan"),
        (35.6895, 139.6917, 50),
        "Asia/Tokyo",
    ),
];

const fn asn(network: &'static str, asn: u32, organization: &'static str) -> AsnEntry<'static> {
    AsnEntry {
        network,
        asn,
        organization,
    }
}

/// The demo ASN database's networks (the same networks as [`DEMO_CITIES`]).
pub const DEMO_ASNS: &[AsnEntry<'static>] = &[
    asn("81.2.69.0/24", 20712, "Andrews & Arnold Ltd"),
    asn("2.125.160.0/19", 5607, "Sky UK Limited"),
    asn("89.160.0.0/17", 29518, "Bredband2 AB"),
    asn("216.160.83.0/24", 209, "CenturyLink Communications, LLC"),
    asn("149.101.100.0/24", 6167, "Cellco Partnership DBA Verizon Wireless"),
    asn("175.16.0.0/16", 4837, "CHINA UNICOM China169 Backbone"),
    asn("202.196.224.0/20", 9299, "Philippine Long Distance Telephone Company"),
    asn("67.43.156.0/24", 18024, "Bhutan Telecom Ltd"),
    asn(
        "141.20.0.0/16",
        680,
        "Verein zur Foerderung eines Deutschen Forschungsnetzes e.V.",
    ),
    asn("8.8.8.0/24", 15169, "Google LLC"),
    asn("2001:480::/32", 668, "DoD Network Information Center"),
    asn("2001:218::/32", 2914, "NTT America, Inc."),
];

/// Writes the demo city and ASN databases into `dir` (created if missing), replacing any that
/// are there, and returns their paths (city, ASN).
pub fn write_demo_databases(dir: &Path) -> io::Result<(PathBuf, PathBuf)> {
    let city = dir.join(DEMO_CITY_FILE);
    let asn = dir.join(DEMO_ASN_FILE);
    write_city_database(&city, DEMO_CITIES, Layout::GeoIp2)?;
    write_asn_database(&asn, DEMO_ASNS)?;
    Ok((city, asn))
}
