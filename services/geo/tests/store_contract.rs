//! The `HistoryStore` contract: one suite, run against PostgreSQL (`postgres::<name>`, a fresh
//! schema on `VIGIL_TEST_DATABASE_URL`) and SQLite (`sqlite::<name>`, a fresh file).

mod common;

use common::on_store;

use std::sync::Arc;

use vigil_geo::domain::Sighting;
use vigil_geo::store::{HistoryStore, SqlHistoryStore};
use vigil_proto::v1::{self as pb, LocationKind};

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;

vigil_testkit::contract_tests!(
    on_store;
    every_field_round_trips,
    recent_is_newest_first_and_limited,
    a_session_is_recorded_once_per_user,
    history_is_bounded_per_user,
    concurrent_records_keep_the_bound,
    the_database_answers_pings,
);

fn tokyo() -> pb::Location {
    pb::Location {
        city: "Tokyo".into(),
        region: "Tōkyō-to".into(),
        country_code: "JP".into(),
        country_name: "Japan".into(),
        latitude: 35.6895,
        longitude: 139.6917,
        has_coordinates: true,
        accuracy_radius_km: 50,
        time_zone: "Asia/Tokyo".into(),
        asn: 4_200_000_000,
        asn_organization: "NTT \"Communications\" Corp.".into(),
        kind: LocationKind::Located as i32,
    }
}

fn sighting(user: &str, session_id: &str, at: i64) -> Sighting {
    Sighting {
        user: user.into(),
        session_id: session_id.into(),
        at,
        ip: "2001:218::1".into(),
        device: "alice-macbook".into(),
        location: tokyo(),
    }
}

async fn sessions(store: &SqlHistoryStore, user: &str) -> Vec<String> {
    store
        .recent(user, 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|sighting| sighting.session_id)
        .collect()
}

async fn every_field_round_trips(store: Arc<SqlHistoryStore>) {
    let located = sighting("alice@example.com", "s-1", T0);
    let private = Sighting {
        session_id: "s-2".into(),
        at: T0 + 1,
        ip: "10.20.0.1".into(),
        device: String::new(),
        location: pb::Location {
            kind: LocationKind::Private as i32,
            ..Default::default()
        },
        ..located.clone()
    };
    let unknown_edge = Sighting {
        session_id: "s-3".into(),
        at: T0 + 2,
        location: pb::Location {
            // Coordinates on the edge of the range, no radius: as the flat databases answer.
            latitude: -90.0,
            longitude: 180.0,
            has_coordinates: true,
            accuracy_radius_km: 0,
            asn: u32::MAX,
            ..tokyo()
        },
        ..located.clone()
    };
    for sighting in [&located, &private, &unknown_edge] {
        assert!(store.record(sighting, 50).await.unwrap());
    }
    let recent = store.recent("alice@example.com", 10).await.unwrap();
    assert_eq!(recent, [unknown_edge, private, located]);
}

async fn recent_is_newest_first_and_limited(store: Arc<SqlHistoryStore>) {
    // Out of order, and with ties on `at`: ties come back newest recorded first.
    for (session, at) in [
        ("a", T0 + 5),
        ("b", T0 + 1),
        ("c", T0 + 5),
        ("d", T0 + 9),
        ("e", T0 + 5),
    ] {
        store.record(&sighting("alice", session, at), 50).await.unwrap();
    }
    store.record(&sighting("bob", "x", T0 + 7), 50).await.unwrap();
    assert_eq!(sessions(&store, "alice").await, ["d", "e", "c", "a", "b"]);
    let newest: Vec<String> = store
        .recent("alice", 2)
        .await
        .unwrap()
        .into_iter()
        .map(|sighting| sighting.session_id)
        .collect();
    assert_eq!(newest, ["d", "e"]);
    assert_eq!(sessions(&store, "bob").await, ["x"]);
    assert!(store.recent("nobody", 10).await.unwrap().is_empty());
}

async fn a_session_is_recorded_once_per_user(store: Arc<SqlHistoryStore>) {
    assert!(store.record(&sighting("alice", "s-1", T0), 50).await.unwrap());
    let again = Sighting {
        at: T0 + 1000,
        ip: "81.2.69.160".into(),
        ..sighting("alice", "s-1", T0)
    };
    assert!(
        !store.record(&again, 50).await.unwrap(),
        "the same session again is not added"
    );
    let recent = store.recent("alice", 10).await.unwrap();
    assert_eq!(recent, [sighting("alice", "s-1", T0)], "the first record stands");
    // Another user's session with the same id is theirs.
    assert!(store.record(&sighting("bob", "s-1", T0), 50).await.unwrap());
}

async fn history_is_bounded_per_user(store: Arc<SqlHistoryStore>) {
    for index in 0..12 {
        store
            .record(&sighting("alice", &format!("a-{index:02}"), T0 + index), 5)
            .await
            .unwrap();
    }
    for index in 0..3 {
        store
            .record(&sighting("bob", &format!("b-{index}"), T0 + index), 5)
            .await
            .unwrap();
    }
    assert_eq!(
        sessions(&store, "alice").await,
        ["a-11", "a-10", "a-09", "a-08", "a-07"]
    );
    assert_eq!(
        sessions(&store, "bob").await,
        ["b-2", "b-1", "b-0"],
        "another user's history is untouched"
    );
    // A start older than everything remembered is recorded and at once forgotten.
    assert!(store.record(&sighting("alice", "old", T0 - 1), 5).await.unwrap());
    assert_eq!(
        sessions(&store, "alice").await,
        ["a-11", "a-10", "a-09", "a-08", "a-07"]
    );
    // A larger bound keeps more from now on.
    store.record(&sighting("alice", "a-12", T0 + 12), 7).await.unwrap();
    assert_eq!(sessions(&store, "alice").await.len(), 6);
}

async fn concurrent_records_keep_the_bound(store: Arc<SqlHistoryStore>) {
    let tasks: Vec<_> = (0..24)
        .map(|index| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .record(&sighting("alice", &format!("s-{index:02}"), T0 + index), 10)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap());
    }
    // Every insert is followed by its own trim, so the last trim saw every insert.
    let expected: Vec<String> = (14..24).rev().map(|index| format!("s-{index:02}")).collect();
    assert_eq!(sessions(&store, "alice").await, expected);
}

async fn the_database_answers_pings(store: Arc<SqlHistoryStore>) {
    store.ping().await.unwrap();
}
