//! `Geo` end to end: the demo databases, a real store (PostgreSQL and SQLite), and the gRPC
//! adapter on a real server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TempDir, on_store};
use tokio_util::sync::CancellationToken;
use vigil_geo::anomaly;
use vigil_geo::api::GeoApi;
use vigil_geo::store::{HistoryStore, SqlHistoryStore};
use vigil_geo::{AnomalyThresholds, Geo, GeoConfig};
use vigil_proto::v1::geo_service_client::GeoServiceClient;
use vigil_proto::v1::{self as pb, LocationKind};
use vigil_runtime::ServiceError;

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

const LONDON: &str = "81.2.69.170";
const BOXFORD: &str = "2.125.160.218";
const TOKYO: &str = "2001:218::42";

vigil_testkit::contract_tests!(
    on_store;
    a_trip_to_tokyo_in_ten_minutes_is_flagged_and_remembered,
    only_named_sessions_are_recorded,
    asking_again_about_a_session_records_it_once,
    the_history_keeps_the_newest_starts,
    concurrent_locations_far_apart_are_flagged,
    bad_requests_are_refused_and_change_nothing,
);

/// A `Geo` on the demo databases (written into `dir`) and `store`.
fn geo(dir: &TempDir, store: Arc<SqlHistoryStore>, thresholds: AnomalyThresholds) -> Geo {
    let (city, asn) = vigil_geo::write_demo_databases(dir.path()).unwrap();
    let config = GeoConfig {
        city_db: vec![city],
        asn_db: vec![asn],
        thresholds,
        ..GeoConfig::default()
    };
    Geo::open(&config, store, CancellationToken::new()).unwrap()
}

fn request(user: &str, ip: &str, device: &str, session_id: &str, at: i64) -> pb::AssessRequest {
    pb::AssessRequest {
        user: user.into(),
        ip: ip.into(),
        device: device.into(),
        at: Some(vigil_proto::timestamp_from_millis(at)),
        session_id: session_id.into(),
        concurrent_locations: Vec::new(),
    }
}

fn codes(response: &pb::AssessResponse) -> Vec<&str> {
    response
        .risk
        .as_ref()
        .unwrap()
        .flags
        .iter()
        .map(|flag| flag.code.as_str())
        .collect()
}

/// The sessions in `user`'s history, newest first, once `geo`'s writes of it have landed.
async fn sessions(geo: &Geo, store: &SqlHistoryStore, user: &str) -> Vec<String> {
    geo.settled(user).await;
    let recent = store.recent(user, 1_000).await.unwrap();
    recent.into_iter().map(|sighting| sighting.session_id).collect()
}

async fn a_trip_to_tokyo_in_ten_minutes_is_flagged_and_remembered(store: Arc<SqlHistoryStore>) {
    let dir = TempDir::new();
    let geo = geo(&dir, store.clone(), AnomalyThresholds::default());

    let first = geo
        .assess(&request("alice", LONDON, "alice-macbook", "s-1", T0))
        .await
        .unwrap();
    let location = first.location.as_ref().unwrap();
    assert_eq!((location.city.as_str(), location.asn), ("London", 20712));
    let risk = first.risk.as_ref().unwrap();
    assert!(risk.assessed);
    assert_eq!(
        (risk.score, risk.flags.len()),
        (0, 0),
        "nothing to compare the first start with"
    );

    // Boxford is 85 km from London: an hour later is an ordinary commute on a new network.
    let second = geo
        .assess(&request("alice", BOXFORD, "alice-macbook", "s-2", T0 + 60 * MINUTE))
        .await
        .unwrap();
    assert_eq!(codes(&second), [anomaly::NEW_ASN]);

    let third = geo
        .assess(&request("alice", TOKYO, "alice-macbook", "s-3", T0 + 70 * MINUTE))
        .await
        .unwrap();
    assert_eq!(
        codes(&third),
        [anomaly::IMPOSSIBLE_TRAVEL, anomaly::NEW_COUNTRY, anomaly::NEW_ASN]
    );
    let risk = third.risk.as_ref().unwrap();
    assert!(
        risk.flags[0].explanation.starts_with("Boxford → Tokyo in 10 min, 9,"),
        "{}",
        risk.flags[0].explanation
    );
    assert_eq!(risk.score, 95);
    assert_eq!(sessions(&geo, &store, "alice").await, ["s-3", "s-2", "s-1"]);
    geo.settled("alice").await;
    let remembered = &store.recent("alice", 1).await.unwrap()[0];
    assert_eq!(remembered.ip, "2001:218::42");
    assert_eq!(remembered.device, "alice-macbook");
    assert_eq!(&remembered.location, third.location.as_ref().unwrap());

    // Another user's history is their own.
    let bob = geo.assess(&request("bob", TOKYO, "bob-pc", "s-9", T0)).await.unwrap();
    assert!(codes(&bob).is_empty());
}

async fn only_named_sessions_are_recorded(store: Arc<SqlHistoryStore>) {
    let dir = TempDir::new();
    let geo = geo(&dir, store.clone(), AnomalyThresholds::default());
    geo.assess(&request("alice", LONDON, "alice-macbook", "s-1", T0))
        .await
        .unwrap();
    // A what-if without a session id: scored, not remembered.
    let probe = geo
        .assess(&request("alice", TOKYO, "alice-macbook", "", T0 + MINUTE))
        .await
        .unwrap();
    assert!(codes(&probe).contains(&anomaly::IMPOSSIBLE_TRAVEL));
    assert_eq!(sessions(&geo, &store, "alice").await, ["s-1"]);

    // Without `at`, the server's clock: long after T0, so London → Tokyo is no longer too fast.
    let now = geo
        .assess(&pb::AssessRequest {
            at: None,
            ..request("alice", TOKYO, "alice-macbook", "s-2", 0)
        })
        .await
        .unwrap();
    assert_eq!(codes(&now), [anomaly::NEW_COUNTRY, anomaly::NEW_ASN]);
    geo.settled("alice").await;
    let recorded = store.recent("alice", 1).await.unwrap();
    assert!(recorded[0].at > T0 + 365 * 24 * 60 * MINUTE);
}

async fn asking_again_about_a_session_records_it_once(store: Arc<SqlHistoryStore>) {
    let dir = TempDir::new();
    let geo = geo(&dir, store.clone(), AnomalyThresholds::default());
    geo.assess(&request("alice", LONDON, "alice-macbook", "s-1", T0))
        .await
        .unwrap();
    let tokyo = request("alice", TOKYO, "alice-macbook", "s-2", T0 + 10 * MINUTE);
    let first = geo.assess(&tokyo).await.unwrap();
    // The retry compares with the rest of the history, not with its own first record.
    let again = geo.assess(&tokyo).await.unwrap();
    assert_eq!(first.risk, again.risk);
    assert_eq!(sessions(&geo, &store, "alice").await, ["s-2", "s-1"]);
}

async fn the_history_keeps_the_newest_starts(store: Arc<SqlHistoryStore>) {
    let dir = TempDir::new();
    let thresholds = AnomalyThresholds {
        history_per_user: 3,
        ..AnomalyThresholds::default()
    };
    let geo = geo(&dir, store.clone(), thresholds);
    geo.assess(&request("alice", TOKYO, "alice-macbook", "s-0", T0))
        .await
        .unwrap();
    for index in 1..=3 {
        let at = T0 + index * 24 * 60 * MINUTE;
        geo.assess(&request("alice", LONDON, "alice-macbook", &format!("s-{index}"), at))
            .await
            .unwrap();
    }
    assert_eq!(sessions(&geo, &store, "alice").await, ["s-3", "s-2", "s-1"]);
    // Tokyo has been forgotten: a week later it counts as a new country again.
    let back = geo
        .assess(&request(
            "alice",
            TOKYO,
            "alice-macbook",
            "s-4",
            T0 + 7 * 24 * 60 * MINUTE,
        ))
        .await
        .unwrap();
    assert_eq!(codes(&back), [anomaly::NEW_COUNTRY, anomaly::NEW_ASN]);
}

async fn concurrent_locations_far_apart_are_flagged(store: Arc<SqlHistoryStore>) {
    let dir = TempDir::new();
    let geo = geo(&dir, store, AnomalyThresholds::default());
    let tokyo = geo.locate(TOKYO).unwrap();
    let response = geo
        .assess(&pb::AssessRequest {
            concurrent_locations: vec![tokyo, geo.locate("10.20.1.1").unwrap()],
            ..request("alice", LONDON, "alice-macbook", "s-1", T0)
        })
        .await
        .unwrap();
    assert_eq!(codes(&response), [anomaly::CONCURRENT_FAR_APART]);
    assert_eq!(
        response.risk.unwrap().flags[0].explanation,
        "another live session is in Tokyo, 9,560 km from London"
    );
}

async fn bad_requests_are_refused_and_change_nothing(store: Arc<SqlHistoryStore>) {
    let dir = TempDir::new();
    let geo = geo(&dir, store.clone(), AnomalyThresholds::default());
    let good = request("alice", LONDON, "alice-macbook", "s-1", T0);
    let off_the_globe = pb::Location {
        latitude: 91.0,
        has_coordinates: true,
        ..Default::default()
    };
    let cases = [
        ("user", spoiled(&good, |r| r.user = String::new())),
        ("user", spoiled(&good, |r| r.user = "   ".into())),
        ("user", spoiled(&good, |r| r.user = "u".repeat(513))),
        ("ip", spoiled(&good, |r| r.ip = String::new())),
        ("ip", spoiled(&good, |r| r.ip = "81.2.69".into())),
        ("device", spoiled(&good, |r| r.device = "d".repeat(257))),
        ("session_id", spoiled(&good, |r| r.session_id = "s".repeat(129))),
        (
            "at",
            spoiled(&good, |r| r.at = Some(prost_types::Timestamp { seconds: 0, nanos: -1 })),
        ),
        (
            "concurrent_locations[0]",
            spoiled(&good, |r| r.concurrent_locations = vec![off_the_globe]),
        ),
    ];
    for (field, request) in cases {
        match geo.assess(&request).await {
            Err(ServiceError::InvalidArgument(message)) => {
                assert!(message.starts_with(field), "{field}: {message}")
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    geo.settled("alice").await;
    assert!(store.recent("alice", 10).await.unwrap().is_empty());
    assert!(geo.assess(&good).await.is_ok());
}

/// `good` with one thing spoiled by `spoil`.
fn spoiled(good: &pb::AssessRequest, spoil: impl FnOnce(&mut pb::AssessRequest)) -> pb::AssessRequest {
    let mut request = good.clone();
    spoil(&mut request);
    request
}

#[tokio::test]
async fn the_grpc_service_locates_and_assesses() {
    let dir = TempDir::new();
    let path = dir.join("history.db");
    let db = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    let store = Arc::new(SqlHistoryStore::new(db).unwrap());
    store.migrate().await.unwrap();
    let shutdown = CancellationToken::new();
    let geo = geo(&dir, store, AnomalyThresholds::default());

    let listener = vigil_runtime::server::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = vigil_runtime::server::Server::new(Default::default()).add_service(GeoApi::server(geo));
    let serving = tokio::spawn(server.serve(listener, shutdown.clone()));

    let channel = vigil_runtime::server::connect_channel(&format!("http://{address}"), Duration::from_secs(5))
        .await
        .unwrap();
    let mut client = GeoServiceClient::new(channel);
    let location = client
        .locate(pb::LocateRequest { ip: TOKYO.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (location.city.as_str(), location.kind()),
        ("Tokyo", LocationKind::Located)
    );
    let private = client
        .locate(pb::LocateRequest { ip: "10.64.3.3".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(private.kind(), LocationKind::Private);
    let status = client
        .locate(pb::LocateRequest { ip: "not-an-ip".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("not-an-ip"), "{}", status.message());

    let response = client
        .assess(request("alice", LONDON, "alice-macbook", "s-1", T0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.location.unwrap().city, "London");
    assert!(response.risk.unwrap().assessed);
    let status = client
        .assess(pb::AssessRequest {
            user: String::new(),
            ..request("alice", LONDON, "", "", T0)
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    shutdown.cancel();
    serving.await.unwrap().unwrap();
}
