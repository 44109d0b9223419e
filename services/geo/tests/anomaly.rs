//! The anomaly rules on crafted histories: each rule fires when it should and stays quiet on an
//! ordinary one; scores grow with severity.

use vigil_geo::AnomalyThresholds;
use vigil_geo::anomaly::{self, Start};
use vigil_geo::domain::Sighting;
use vigil_proto::v1::{self as pb, LocationKind};

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

#[derive(Clone, Copy)]
struct Place {
    city: &'static str,
    country: (&'static str, &'static str),
    coordinates: (f64, f64),
    radius: u32,
    asn: (u32, &'static str),
}

const BERLIN: Place = Place {
    city: "Berlin",
    country: ("DE", "Germany"),
    coordinates: (52.5244, 13.4105),
    radius: 10,
    asn: (3320, "Deutsche Telekom AG"),
};
/// 27 km from Berlin: where a Berlin commuter lives.
const POTSDAM: Place = Place {
    city: "Potsdam",
    country: ("DE", "Germany"),
    coordinates: (52.3906, 13.0645),
    radius: 20,
    asn: (3320, "Deutsche Telekom AG"),
};
const FRANKFURT: Place = Place {
    city: "Frankfurt am Main",
    country: ("DE", "Germany"),
    coordinates: (50.1109, 8.6821),
    radius: 10,
    asn: (3320, "Deutsche Telekom AG"),
};
const LONDON: Place = Place {
    city: "London",
    country: ("GB", "United Kingdom"),
    coordinates: (51.5142, -0.0931),
    radius: 10,
    asn: (20712, "Andrews & Arnold Ltd"),
};
const NEW_YORK: Place = Place {
    city: "New York",
    country: ("US", "United States"),
    coordinates: (40.7128, -74.006),
    radius: 10,
    asn: (3320, "Deutsche Telekom AG"),
};
const TOKYO: Place = Place {
    city: "Tokyo",
    country: ("JP", "Japan"),
    coordinates: (35.6895, 139.6917),
    radius: 50,
    asn: (2914, "NTT America, Inc."),
};

fn location(place: Place) -> pb::Location {
    pb::Location {
        city: place.city.into(),
        region: String::new(),
        country_code: place.country.0.into(),
        country_name: place.country.1.into(),
        latitude: place.coordinates.0,
        longitude: place.coordinates.1,
        has_coordinates: true,
        accuracy_radius_km: place.radius,
        time_zone: String::new(),
        asn: place.asn.0,
        asn_organization: place.asn.1.into(),
        kind: LocationKind::Located as i32,
    }
}

fn private() -> pb::Location {
    pb::Location {
        kind: LocationKind::Private as i32,
        ..Default::default()
    }
}

fn unknown() -> pb::Location {
    pb::Location {
        kind: LocationKind::Unknown as i32,
        ..Default::default()
    }
}

fn sighting(at: i64, location: pb::Location, device: &str) -> Sighting {
    Sighting {
        user: "alice@example.com".into(),
        session_id: format!("s-{at}"),
        at,
        ip: "192.0.2.1".into(),
        device: device.into(),
        location,
    }
}

/// `(minutes after T0, place)` starts on alice's laptop, returned newest first as the store does.
fn history(starts: &[(i64, Place)]) -> Vec<Sighting> {
    let mut history: Vec<Sighting> = starts
        .iter()
        .map(|(minutes, place)| sighting(T0 + minutes * MINUTE, location(*place), "alice-macbook"))
        .collect();
    history.sort_by_key(|sighting| std::cmp::Reverse(sighting.at));
    history
}

/// Assesses a start at `at` from `here` on `device` with default thresholds and a city database.
fn assess(history: &[Sighting], at: i64, here: &pb::Location, device: &str, concurrent: &[pb::Location]) -> pb::Risk {
    assess_with(&AnomalyThresholds::default(), history, at, here, device, concurrent)
}

fn assess_with(
    thresholds: &AnomalyThresholds,
    history: &[Sighting],
    at: i64,
    here: &pb::Location,
    device: &str,
    concurrent: &[pb::Location],
) -> pb::Risk {
    let start = Start {
        at,
        ip: "198.51.100.7",
        device,
        location: here,
        concurrent,
    };
    anomaly::assess(&start, history, thresholds, true)
}

fn codes(risk: &pb::Risk) -> Vec<&str> {
    risk.flags.iter().map(|flag| flag.code.as_str()).collect()
}

fn flag<'r>(risk: &'r pb::Risk, code: &str) -> &'r pb::RiskFlag {
    risk.flags
        .iter()
        .find(|flag| flag.code == code)
        .unwrap_or_else(|| panic!("no {code} flag in {risk:?}"))
}

#[test]
fn distances_are_great_circle_distances() {
    let km = anomaly::distance_km(&location(BERLIN), &location(TOKYO));
    assert!(
        (8_900.0..8_940.0).contains(&km),
        "Berlin–Tokyo is about 8,920 km, got {km}"
    );
    let km = anomaly::distance_km(&location(LONDON), &location(NEW_YORK));
    assert!(
        (5_560.0..5_590.0).contains(&km),
        "London–New York is about 5,570 km, got {km}"
    );
    assert_eq!(anomaly::distance_km(&location(LONDON), &location(LONDON)), 0.0);
}

#[test]
fn berlin_to_tokyo_in_forty_minutes_is_impossible_travel() {
    let history = history(&[(0, BERLIN)]);
    let risk = assess(&history, T0 + 40 * MINUTE, &location(TOKYO), "alice-macbook", &[]);
    let travel = flag(&risk, anomaly::IMPOSSIBLE_TRAVEL);
    // 8,918 km less the two radii (20 km minimum for Berlin, 50 km for Tokyo) in 40 minutes.
    assert_eq!(travel.explanation, "Berlin → Tokyo in 40 min, 8,920 km, 13,300 km/h");
    assert_eq!(travel.points, 60, "far beyond twice the limit: all the rule's points");
    assert!(risk.assessed);
}

#[test]
fn a_commuter_is_not_an_impossible_traveller() {
    // A week of Potsdam mornings and Berlin office hours, with a trip to Frankfurt by plane on
    // Wednesday (420 km in 2 hours).
    let mut starts = Vec::new();
    for day in 0..5 {
        let base = day * 24 * 60;
        starts.push((base, POTSDAM));
        starts.push((base + 40, BERLIN));
        starts.push((base + 45, POTSDAM)); // phone on the train, still counted as Potsdam
        starts.push((base + 50, BERLIN));
    }
    starts.push((2 * 24 * 60 + 170, FRANKFURT));
    starts.push((2 * 24 * 60 + 400, BERLIN));
    let history = history(&starts);
    for (minutes, here) in [
        (5 * 24 * 60, POTSDAM),
        (5 * 24 * 60 + 1, BERLIN),
        (4 * 24 * 60 + 52, POTSDAM),
    ] {
        let risk = assess(&history, T0 + minutes * MINUTE, &location(here), "alice-macbook", &[]);
        assert_eq!(risk.score, 0, "{risk:?}");
        assert!(risk.flags.is_empty(), "{risk:?}");
    }
    // Berlin → New York in 9 hours is a flight, not impossible travel (and a first visit to the US).
    let risk = assess(
        &history,
        T0 + 5 * 24 * 60 * MINUTE + 9 * HOUR,
        &location(NEW_YORK),
        "alice-macbook",
        &[],
    );
    assert_eq!(codes(&risk), [anomaly::NEW_COUNTRY]);
}

#[test]
fn accuracy_radii_come_off_the_distance() {
    // Two places 300 km apart, 10 minutes apart: 1,800 km/h if the coordinates were exact.
    let a = pb::Location {
        latitude: 50.0,
        longitude: 10.0,
        ..location(BERLIN)
    };
    let b = pb::Location {
        latitude: 52.698,
        longitude: 10.0,
        ..location(BERLIN)
    };
    let precise = [sighting(
        T0,
        pb::Location {
            accuracy_radius_km: 1,
            ..a.clone()
        },
        "alice-macbook",
    )];
    let here = pb::Location {
        accuracy_radius_km: 1,
        ..b.clone()
    };
    let risk = assess(&precise, T0 + 10 * MINUTE, &here, "alice-macbook", &[]);
    assert_eq!(codes(&risk), [anomaly::IMPOSSIBLE_TRAVEL], "precise places: too fast");

    let vague = [sighting(
        T0,
        pb::Location {
            accuracy_radius_km: 150,
            ..a
        },
        "alice-macbook",
    )];
    let here = pb::Location {
        accuracy_radius_km: 150,
        ..b
    };
    let risk = assess(&vague, T0 + 10 * MINUTE, &here, "alice-macbook", &[]);
    assert!(risk.flags.is_empty(), "150 km radii cover the 300 km: {risk:?}");
}

#[test]
fn just_over_the_limit_is_worth_half_the_points() {
    // London → Berlin (929 km, less 2 × 20 km of radius) in 50 minutes: about 1,070 km/h.
    let history = history(&[(0, LONDON)]);
    let risk = assess(&history, T0 + 50 * MINUTE, &location(BERLIN), "alice-macbook", &[]);
    let travel = flag(&risk, anomaly::IMPOSSIBLE_TRAVEL);
    // Half the points at the limit, all at twice the limit: 1,070 km/h earns 53% of 60.
    assert_eq!(travel.points, 32);
    assert_eq!(travel.explanation, "London → Berlin in 50 min, 929 km, 1,070 km/h");
    // An hour is slow enough.
    let risk = assess(&history, T0 + 60 * MINUTE, &location(BERLIN), "alice-macbook", &[]);
    assert!(!codes(&risk).contains(&anomaly::IMPOSSIBLE_TRAVEL), "{risk:?}");
}

#[test]
fn travel_compares_with_the_last_located_start_before_this_one() {
    let mut history = history(&[(0, BERLIN)]);
    // A start from a private address in between has no place to travel from.
    history.insert(0, sighting(T0 + 10 * MINUTE, private(), "alice-macbook"));
    // A start recorded later than the one assessed (requests out of order) is not "before".
    history.insert(0, sighting(T0 + 5 * HOUR, location(TOKYO), "alice-macbook"));
    let risk = assess(&history, T0 + 30 * MINUTE, &location(POTSDAM), "alice-macbook", &[]);
    assert!(risk.flags.is_empty(), "{risk:?}");
    let risk = assess(&history, T0 + 30 * MINUTE, &location(NEW_YORK), "alice-macbook", &[]);
    assert!(
        flag(&risk, anomaly::IMPOSSIBLE_TRAVEL)
            .explanation
            .starts_with("Berlin → New York in 30 min"),
        "{risk:?}"
    );
}

#[test]
fn a_new_country_network_or_device_is_flagged() {
    let history = history(&[(0, BERLIN), (60, POTSDAM), (120, BERLIN)]);
    let at = T0 + 30 * 24 * HOUR;

    let risk = assess(&history, at, &location(TOKYO), "alice-macbook", &[]);
    assert_eq!(codes(&risk), [anomaly::NEW_COUNTRY, anomaly::NEW_ASN]);
    assert_eq!(
        flag(&risk, anomaly::NEW_COUNTRY).explanation,
        "first session from Japan (JP); earlier ones came from Germany (DE)"
    );
    assert_eq!(
        flag(&risk, anomaly::NEW_ASN).explanation,
        "first session from network AS2914 (NTT America, Inc.); earlier ones came from AS3320 (Deutsche Telekom AG)"
    );
    assert_eq!(risk.score, 35);

    let risk = assess(&history, at, &location(BERLIN), "DESKTOP-7QH2K4M", &[]);
    assert_eq!(codes(&risk), [anomaly::NEW_DEVICE]);
    assert_eq!(
        flag(&risk, anomaly::NEW_DEVICE).explanation,
        r#"first session from device "DESKTOP-7QH2K4M"; earlier ones came from "alice-macbook""#
    );
}

#[test]
fn known_countries_networks_and_devices_are_quiet() {
    let history = history(&[(0, BERLIN), (60, LONDON), (120, BERLIN)]);
    let at = T0 + 30 * 24 * HOUR;
    for here in [BERLIN, LONDON, FRANKFURT] {
        let risk = assess(&history, at, &location(here), "alice-macbook", &[]);
        assert!(risk.flags.is_empty(), "{}: {risk:?}", here.city);
    }
    // Device names are compared regardless of ASCII case, and surrounding blanks.
    let risk = assess(&history, at, &location(BERLIN), " ALICE-MacBook ", &[]);
    assert!(risk.flags.is_empty(), "{risk:?}");
    // No device said: nothing to compare.
    let risk = assess(&history, at, &location(BERLIN), "", &[]);
    assert!(risk.flags.is_empty(), "{risk:?}");
}

#[test]
fn the_first_session_has_nothing_to_compare_with() {
    let risk = assess(&[], T0, &location(TOKYO), "DESKTOP-7QH2K4M", &[]);
    assert!(risk.flags.is_empty(), "{risk:?}");
    assert_eq!(risk.score, 0);
    assert!(risk.assessed);

    // A history of private addresses and no device names knows no country, network or device.
    let history = [sighting(T0, private(), ""), sighting(T0 + HOUR, private(), "")];
    let risk = assess(&history, T0 + 2 * HOUR, &location(TOKYO), "DESKTOP-7QH2K4M", &[]);
    assert!(risk.flags.is_empty(), "{risk:?}");
}

#[test]
fn explanations_list_a_few_known_values_and_count_the_rest() {
    let places = [BERLIN, LONDON, NEW_YORK, TOKYO];
    let mut history: Vec<Sighting> = places
        .iter()
        .enumerate()
        .map(|(index, place)| {
            sighting(
                T0 + index as i64 * 24 * HOUR,
                location(*place),
                &format!("laptop-{index}"),
            )
        })
        .collect();
    history.reverse();
    let here = pb::Location {
        city: "Linköping".into(),
        country_code: "SE".into(),
        country_name: "Sweden".into(),
        latitude: 58.4167,
        longitude: 15.6167,
        asn: 29518,
        asn_organization: String::new(),
        ..location(BERLIN)
    };
    let risk = assess(&history, T0 + 30 * 24 * HOUR, &here, "laptop-9", &[]);
    assert_eq!(
        flag(&risk, anomaly::NEW_COUNTRY).explanation,
        "first session from Sweden (SE); earlier ones came from Japan (JP), United States (US), United Kingdom (GB) and 1 more"
    );
    assert_eq!(
        flag(&risk, anomaly::NEW_ASN).explanation,
        "first session from network AS29518; earlier ones came from AS2914 (NTT America, Inc.), AS3320 (Deutsche Telekom AG), AS20712 (Andrews & Arnold Ltd)"
    );
    assert!(
        flag(&risk, anomaly::NEW_DEVICE)
            .explanation
            .ends_with(r#""laptop-1" and 1 more"#)
    );
}

#[test]
fn live_sessions_far_apart_are_flagged() {
    let history = history(&[(0, BERLIN)]);
    let at = T0 + 24 * HOUR;
    let risk = assess(&history, at, &location(BERLIN), "alice-macbook", &[location(TOKYO)]);
    assert_eq!(codes(&risk), [anomaly::CONCURRENT_FAR_APART]);
    assert_eq!(
        flag(&risk, anomaly::CONCURRENT_FAR_APART).explanation,
        "another live session is in Tokyo, 8,920 km from Berlin"
    );
    assert_eq!(risk.score, 40);

    let risk = assess(
        &history,
        at,
        &location(BERLIN),
        "alice-macbook",
        &[
            location(POTSDAM),
            location(NEW_YORK),
            location(TOKYO),
            private(),
            unknown(),
        ],
    );
    assert_eq!(
        flag(&risk, anomaly::CONCURRENT_FAR_APART).explanation,
        "2 other live sessions are more than 500 km away; the farthest is in Tokyo, 8,920 km from Berlin"
    );

    // Nearby (the commuter's other device), unlocated, or no location here: quiet.
    for (here, others) in [
        (location(BERLIN), vec![location(POTSDAM), location(FRANKFURT)]),
        (location(BERLIN), vec![private(), unknown()]),
        (private(), vec![location(TOKYO)]),
    ] {
        let risk = assess(&history, at, &here, "alice-macbook", &others);
        assert!(risk.flags.is_empty(), "{risk:?}");
    }
}

#[test]
fn an_address_the_database_does_not_know_is_unlocatable() {
    let risk = assess(&[], T0, &unknown(), "", &[]);
    assert_eq!(codes(&risk), [anomaly::UNLOCATABLE]);
    assert_eq!(
        risk.flags[0].explanation,
        "198.51.100.7 is a public address the GeoIP database does not know"
    );
    assert_eq!(risk.score, 10);

    // Private addresses have no public place, and are normal (offices, the VPN).
    assert!(assess(&[], T0, &private(), "", &[]).flags.is_empty());

    // Without a city database every public address is unknown; flagging them all would say
    // nothing about the user.
    let start = Start {
        at: T0,
        ip: "198.51.100.7",
        device: "",
        location: &unknown(),
        concurrent: &[],
    };
    assert!(
        anomaly::assess(&start, &[], &AnomalyThresholds::default(), false)
            .flags
            .is_empty()
    );
}

#[test]
fn a_rule_worth_no_points_is_off() {
    let mut thresholds = AnomalyThresholds::default();
    thresholds.points.new_country = 0;
    thresholds.points.impossible_travel = 0;
    let history = history(&[(0, BERLIN)]);
    let risk = assess_with(
        &thresholds,
        &history,
        T0 + 40 * MINUTE,
        &location(TOKYO),
        "alice-macbook",
        &[],
    );
    assert_eq!(codes(&risk), [anomaly::NEW_ASN]);
}

#[test]
fn thresholds_are_configurable() {
    let history = history(&[(0, LONDON)]);
    // London → Berlin in 2 hours: 445 km/h, an ordinary flight.
    let at = T0 + 2 * HOUR;
    assert!(
        assess(&history, at, &location(BERLIN), "alice-macbook", &[])
            .flags
            .iter()
            .all(|f| f.code != anomaly::IMPOSSIBLE_TRAVEL)
    );
    let strict = AnomalyThresholds {
        max_speed_kmh: 300.0,
        ..AnomalyThresholds::default()
    };
    let risk = assess_with(&strict, &history, at, &location(BERLIN), "alice-macbook", &[]);
    assert!(codes(&risk).contains(&anomaly::IMPOSSIBLE_TRAVEL), "{risk:?}");

    // Frankfurt is 420 km from Berlin: not far apart by default, but by a stricter measure.
    let frankfurt = [location(FRANKFURT)];
    let risk = assess(&history, at, &location(BERLIN), "alice-macbook", &frankfurt);
    assert!(!codes(&risk).contains(&anomaly::CONCURRENT_FAR_APART), "{risk:?}");
    let near = AnomalyThresholds {
        far_apart_km: 300.0,
        ..AnomalyThresholds::default()
    };
    let risk = assess_with(&near, &history, at, &location(BERLIN), "alice-macbook", &frankfurt);
    assert!(codes(&risk).contains(&anomaly::CONCURRENT_FAR_APART), "{risk:?}");
}

#[test]
fn scores_grow_with_severity() {
    let history = history(&[(0, BERLIN), (60, POTSDAM)]);
    let at = T0 + 120 * MINUTE;
    let berlin = location(BERLIN);
    // Each step adds a finding to the one before.
    let new_device = pb::Location { ..berlin.clone() };
    let new_network = pb::Location {
        asn: 2914,
        asn_organization: "NTT America, Inc.".into(),
        ..berlin.clone()
    };
    let new_country = pb::Location {
        country_code: "JP".into(),
        country_name: "Japan".into(),
        ..new_network.clone()
    };
    let steps = [
        assess(&history, at, &berlin, "alice-macbook", &[]),
        assess(&history, at, &new_device, "DESKTOP-1", &[]),
        assess(&history, at, &new_network, "DESKTOP-1", &[]),
        assess(&history, at, &new_country, "DESKTOP-1", &[]),
        assess(&history, at, &location(TOKYO), "DESKTOP-1", &[]),
        assess(&history, at, &location(TOKYO), "DESKTOP-1", &[location(BERLIN)]),
    ];
    let scores: Vec<u32> = steps.iter().map(|risk| risk.score).collect();
    assert_eq!(scores[0], 0);
    assert!(
        scores.windows(2).all(|pair| pair[0] < pair[1] || pair[1] == 100),
        "{scores:?}"
    );
    assert_eq!(*scores.last().unwrap(), 100, "capped at 100");

    // The faster the trip, the higher the score, never lower.
    let mut previous = 0;
    for minutes in (5..=24 * 60).rev().step_by(5) {
        let risk = assess(
            &history,
            T0 + 60 * MINUTE + minutes * MINUTE,
            &location(LONDON),
            "alice-macbook",
            &[],
        );
        let travel = risk
            .flags
            .iter()
            .find(|flag| flag.code == anomaly::IMPOSSIBLE_TRAVEL)
            .map_or(0, |f| f.points);
        assert!(travel >= previous, "{minutes} min: {travel} < {previous}");
        previous = travel;
    }
    assert_eq!(previous, 60, "five minutes from Potsdam to London earns every point");
}
