//! Location and risk at admission: a real geo service (over gRPC, on the demo GeoIP databases and
//! PostgreSQL history) asked by a real registry, as in production.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vigil_clients::GrpcRiskAssessor;
use vigil_proto::v1 as pb;
use vigil_proto::v1::ResourceType;
use vigil_runtime::server::{Server, ServerConfig};
use vigil_tests::*;

/// A geo server on a random port, on demo databases in `dir` and history in `schema`.
async fn start_geo(schema: &TestSchema, dir: &std::path::Path, shutdown: CancellationToken) -> String {
    let (city, asn) = vigil_geo::write_demo_databases(dir).expect("demo databases");
    let config = vigil_geo::GeoConfig {
        city_db: vec![city],
        asn_db: vec![asn],
        ..Default::default()
    };
    let store = vigil_geo::app::open_store(&schema.config, true)
        .await
        .expect("geo store");
    let geo = vigil_geo::Geo::open(&config, store, shutdown.clone()).expect("geo");
    let server = Server::new(ServerConfig::default()).add_service(vigil_geo::api::GeoApi::server(geo));
    server.readiness().set_all(true).await;
    let listener = vigil_runtime::server::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { server.serve(listener, shutdown).await.expect("serve geo") });
    url
}

#[tokio::test]
async fn sessions_carry_their_location_and_an_impossible_trip_is_flagged_and_filterable() {
    init_logs();
    let schema = TestSchema::new().await;
    let dir = tempdir::TempDir::new();
    let shutdown = CancellationToken::new();
    let geo_url = start_geo(&schema, dir.path(), shutdown.clone()).await;
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), test_settings("r1")).await;
    registry
        .registry
        .attach_risk_assessor(Arc::new(GrpcRiskAssessor::connect_lazy(&geo_url).unwrap()));
    let agent = registry.agent("gw-geo", Arc::default()).await;

    // London first: located, nothing unusual (a first sign-in has no history to differ from).
    let london = agent
        .open_session(start("quinn", "db", ResourceType::Ssh, "81.2.69.170"))
        .await
        .unwrap();
    assert_located_in_london_without_risk(&london);

    // Changchun a moment later, while London is still live: impossible travel, far apart at once.
    let far = agent
        .open_session(start("quinn", "db", ResourceType::Ssh, "175.16.199.10"))
        .await
        .unwrap();
    let risk = assert_impossible_travel(&far);

    // Stored on the session, and the list filters on it.
    let mut client = registry.sessions_client().await;
    let session = client
        .get_session(pb::GetSessionRequest {
            id: far.session_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(session.location.as_ref().map(|l| l.country_code.as_str()), Some("CN"));
    assert_eq!(session.risk.as_ref().map(|r| r.score), Some(risk.score));
    the_list_filters_on_location_and_risk(&client, &london.session_id, &far.session_id).await;

    // A private address is located as such, not as an error.
    let office = agent
        .open_session(start("rae", "db", ResourceType::Rdp, "10.20.30.40"))
        .await
        .unwrap();
    assert_eq!(office.location.map(|l| l.kind), Some(pb::LocationKind::Private as i32));
    registry.stop().await;
    shutdown.cancel();
}

/// London, a first sign-in: located, nothing unusual (there is no history to differ from).
fn assert_located_in_london_without_risk(london: &vigil_agent::Admission) {
    let location = london.location.clone().expect("location");
    assert_eq!(location.kind, pb::LocationKind::Located as i32, "{location:?}");
    assert_eq!(
        (location.city.as_str(), location.country_code.as_str()),
        ("London", "GB")
    );
    assert_eq!(location.kind, pb::LocationKind::Located as i32);
    assert!(
        london
            .risk
            .as_ref()
            .is_some_and(|risk| risk.assessed && risk.flags.is_empty()),
        "{:?}",
        london.risk
    );
}

/// Changchun while London is still live: admitted (geo flags, policy decides), flagged as impossible
/// travel and a new country; returns the risk.
fn assert_impossible_travel(far: &vigil_agent::Admission) -> pb::Risk {
    assert!(
        far.allowed,
        "geo flags, policy decides; without policy the start is admitted"
    );
    let risk = far.risk.clone().expect("risk");
    let codes: Vec<_> = risk.flags.iter().map(|flag| flag.code.as_str()).collect();
    assert!(codes.contains(&"impossible_travel"), "{codes:?}");
    assert!(codes.contains(&"new_country"), "{codes:?}");
    assert!(risk.score >= 60, "{risk:?}");
    let travel = risk.flags.iter().find(|flag| flag.code == "impossible_travel").unwrap();
    assert!(
        travel.explanation.contains("London → Changchun"),
        "{}",
        travel.explanation
    );
    risk
}

/// The flagged and risky filters find the far session, the country filter the London one.
async fn the_list_filters_on_location_and_risk(
    client: &vigil_proto::v1::session_registry_client::SessionRegistryClient<tonic::transport::Channel>,
    london: &str,
    far: &str,
) {
    let list = |filter: pb::SessionFilter| {
        let mut client = client.clone();
        async move {
            let request = pb::ListSessionsRequest {
                filter: Some(filter),
                ..Default::default()
            };
            let page = client.list_sessions(request).await.unwrap().into_inner();
            page.sessions.into_iter().map(|s| s.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(pb::SessionFilter {
            flagged_only: true,
            ..Default::default()
        })
        .await,
        vec![far.to_owned()]
    );
    assert_eq!(
        list(pb::SessionFilter {
            min_risk_score: 50,
            ..Default::default()
        })
        .await,
        vec![far.to_owned()]
    );
    assert_eq!(
        list(pb::SessionFilter {
            country_code: "gb".into(),
            ..Default::default()
        })
        .await,
        vec![london.to_owned()]
    );
}

/// The simulator's addresses and geo's demo databases are made for each other: the demo shows
/// real places. Here because it takes both the agent SDK and geo, which only tests compose.
#[test]
fn every_public_address_the_gateway_simulator_uses_is_in_the_demo_database() {
    let dir = tempdir::TempDir::new();
    let (city, asn) = vigil_geo::write_demo_databases(dir.path()).unwrap();
    let locator = vigil_geo::Locator::open(&[city], &[asn]).unwrap();
    let mut factory = vigil_agent::simulate::data::SessionFactory::new(7, 0, 2_000, 0.2);
    let (mut located, mut private) = (0, 0);
    for _ in 0..5_000 {
        let start = factory.next_start(std::time::SystemTime::UNIX_EPOCH).start;
        let location = locator.locate(&start.client_ip).unwrap();
        match pb::LocationKind::try_from(location.kind).unwrap() {
            pb::LocationKind::Located => located += 1,
            pb::LocationKind::Private => private += 1,
            other => panic!("{}: {other:?}", start.client_ip),
        }
        assert!(
            location.kind == pb::LocationKind::Private as i32 || location.asn != 0,
            "{}",
            start.client_ip
        );
    }
    assert!(located > 3_000 && private > 500, "{located} located, {private} private");
}
