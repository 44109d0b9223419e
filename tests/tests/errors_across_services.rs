//! An error that crosses a service boundary reads as it did where it was raised: the termination
//! service, resolving through the registry over gRPC, answers an unknown user's kill with the
//! registry's own NOT_FOUND, word for word (it used to read `resource "user \"x\" not found" not
//! found`, wrapped a second time on the way back).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tonic::Code;
use vigil_proto::v1 as pb;
use vigil_proto::v1::termination_service_client::TerminationServiceClient;
use vigil_runtime::client::ServiceConnector;
use vigil_runtime::server::{Server, ServerConfig};
use vigil_tests::*;

/// Serves what `build` adds on a random port until `shutdown`; returns its URL.
async fn serve(build: impl FnOnce(Server) -> Server, shutdown: &CancellationToken) -> String {
    let server = build(Server::new(ServerConfig::default()));
    server.readiness().set_all(true).await;
    let listener = vigil_runtime::server::bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    tokio::spawn(server.serve(listener, shutdown.clone()));
    url
}

#[tokio::test]
async fn a_not_found_from_the_registry_reaches_the_caller_of_termination_unchanged() {
    init_logs();
    let schema = TestSchema::new().await;
    let namespace = unique_namespace();
    let registry = TestRegistry::on_postgres(&schema, &namespace, test_settings("r1")).await;
    let shutdown = registry.shutdown.child_token();

    // Termination in a server of its own, resolving through the registry's gRPC API.
    let channel = ServiceConnector::plain()
        .connect("registry_url", &registry.url(), PATIENCE)
        .await
        .expect("connect to the registry");
    let terminator = vigil_termination::Terminator::new(
        schema.termination_store().await,
        Arc::new(vigil_clients::GrpcSessionDirectory::new(channel)),
        redis_bus(&namespace).await,
        fast_termination(),
    );
    let termination_url = serve(
        |server| server.add_service(vigil_termination::api::TerminationApi::server(terminator)),
        &shutdown,
    )
    .await;

    let selectors = [
        pb::session_selector::Target::User("nobody@acme.example".into()),
        pb::session_selector::Target::GatewayId("gw-unknown".into()),
        pb::session_selector::Target::SessionIds(pb::SessionIds {
            ids: vec!["6f9619ff-8b86-d011-b42d-00c04fc964ff".into()],
        }),
    ];
    let channel = vigil_runtime::server::connect_channel(&termination_url, PATIENCE)
        .await
        .expect("connect to termination");
    let mut termination = TerminationServiceClient::new(channel);
    let mut sessions = registry.sessions_client().await;
    for target in selectors {
        let selector = pb::SessionSelector { target: Some(target) };
        let direct = sessions
            .resolve_sessions(pb::ResolveSessionsRequest {
                selector: Some(selector.clone()),
            })
            .await
            .expect_err("the registry has never seen it");
        assert_eq!(direct.code(), Code::NotFound, "{direct:?}");
        let relayed = termination
            .terminate(pb::TerminateRequest {
                selector: Some(selector),
                reason: pb::EndReason::Admin as i32,
                ..Default::default()
            })
            .await
            .expect_err("nothing to end");
        assert_eq!(relayed.code(), Code::NotFound, "{relayed:?}");
        assert_eq!(relayed.message(), direct.message());
        assert_eq!(
            relayed.message().matches("not found").count(),
            1,
            "{}",
            relayed.message()
        );
    }
    registry.stop().await;
}
