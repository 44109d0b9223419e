//! One trace across the services: a gateway's admission that makes room under a concurrency limit
//! runs agent → registry (over the link) → geo and policy (gRPC) → termination (gRPC; the session is
//! in its route, so no `ResolveSessions`) → Redis → the registry replica holding the link → the agent's
//! terminate handler → the registry's handling of the acknowledgement — and every hop's span is in
//! the same trace, a child of the hop before.
//!
//! Each service has its own gRPC server here, as in production; they share the process, so they
//! share the tracer provider, whose span recorder the test reads. One test in this binary:
//! the provider is global.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tokio_util::sync::CancellationToken;
use vigil_clients::{GrpcAdmissionPolicy, GrpcCommandJournal, GrpcRiskAssessor, GrpcSessionEvictor};
use vigil_proto::v1 as pb;
use vigil_proto::v1::{ConcurrencyAction, ResourceType};
use vigil_runtime::client::ServiceConnector;
use vigil_runtime::server::{Server, ServerConfig};
use vigil_runtime::telemetry::{LogConfig, LogFormat, Telemetry, TelemetryConfig};
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

/// The finished spans of one trace, by name (each name must appear once in it).
fn trace_spans(spans: &[SpanData], trace_id: TraceId) -> HashMap<String, SpanData> {
    let mut by_name = HashMap::new();
    for span in spans.iter().filter(|span| span.span_context.trace_id() == trace_id) {
        let previous = by_name.insert(span.name.to_string(), span.clone());
        assert!(previous.is_none(), "{} appears twice in the trace", span.name);
    }
    by_name
}

/// The hops of the trace: (span name, its kind, the span name of its parent).
const HOPS: [(&str, SpanKind, Option<&str>); 10] = [
    ("agent.open_session", SpanKind::Client, None),
    ("registry.admission", SpanKind::Server, Some("agent.open_session")),
    (
        "vigil.v1.GeoService/Assess",
        SpanKind::Server,
        Some("registry.admission"),
    ),
    (
        "vigil.v1.PolicyService/Admit",
        SpanKind::Server,
        Some("registry.admission"),
    ),
    ("registry.evict", SpanKind::Internal, Some("registry.admission")),
    (
        "vigil.v1.TerminationService/Terminate",
        SpanKind::Server,
        Some("registry.evict"),
    ),
    (
        "termination.publish",
        SpanKind::Producer,
        Some("vigil.v1.TerminationService/Terminate"),
    ),
    ("registry.dispatch", SpanKind::Consumer, Some("termination.publish")),
    ("agent.terminate", SpanKind::Consumer, Some("registry.dispatch")),
    ("registry.command_ack", SpanKind::Server, Some("agent.terminate")),
];

/// Keeps every span exported, for the test to read. (The SDK's `InMemorySpanExporter` is behind its
/// `testing` feature, which would change `opentelemetry_sdk`'s build, and so every crate above it,
/// between `cargo test` and `cargo build`.)
#[derive(Debug, Clone, Default)]
struct SpanRecorder(Arc<Mutex<Vec<SpanData>>>);

impl SpanRecorder {
    fn finished_spans(&self) -> Vec<SpanData> {
        self.0.lock().expect("spans").clone()
    }
}

impl SpanExporter for SpanRecorder {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.0.lock().expect("spans").extend(batch);
        std::future::ready(Ok(()))
    }
}

#[tokio::test]
async fn an_eviction_is_one_trace_from_the_gateway_through_every_service_and_back() {
    let exporter = SpanRecorder::default();
    let log = LogConfig {
        format: LogFormat::Text,
        filter: "warn".into(),
    };
    let _telemetry = Telemetry::new(&log, &TelemetryConfig::default(), "vigil-tests")
        .with_span_exporter(exporter.clone())
        .init()
        .expect("telemetry");

    let schema = TestSchema::new().await;
    let namespace = unique_namespace();
    let registry = TestRegistry::on_postgres(&schema, &namespace, test_settings("r1")).await;
    let shutdown = registry.shutdown.child_token();

    let termination_url = serve_termination(&schema, &registry, &namespace, &shutdown).await;

    let policy_url = serve_policy(&schema, &shutdown).await;

    let geo_dir = tempdir::TempDir::new();
    let geo_url = serve_geo(&schema, geo_dir.path(), &shutdown).await;

    let inner = &registry.registry;
    inner.attach_risk_assessor(Arc::new(GrpcRiskAssessor::connect_lazy(&geo_url).unwrap()));
    inner.attach_admission_policy(Arc::new(GrpcAdmissionPolicy::connect_lazy(&policy_url).unwrap()));
    inner.attach_session_evictor(Arc::new(GrpcSessionEvictor::connect_lazy(&termination_url).unwrap()));
    inner.attach_command_journal(Arc::new(GrpcCommandJournal::connect_lazy(&termination_url).unwrap()));

    let handler = Arc::new(RecordingHandler::default());
    let agent = registry.agent("gw-trace", handler.clone()).await;
    let ann = || start("ann@acme.example", "prod-db", ResourceType::Ssh, "81.2.69.160");
    let first = agent.open_session(ann()).await.expect("first admission");
    assert!(first.allowed, "{first:?}");
    let second = agent.open_session(ann()).await.expect("second admission");
    assert!(second.allowed, "{second:?}");
    assert_eq!(second.evicted_session_ids, vec![first.session_id.clone()]);

    // The gateway is told to end the first session, and acknowledges it.
    eventually("the agent to end the evicted session", || {
        let done = handler
            .terminated
            .lock()
            .unwrap()
            .iter()
            .any(|command| command.session_id == first.session_id);
        async move { done.then_some(()) }
    })
    .await;

    // The kill's trace is the one the agent's terminate span is in; wait for every hop's span
    // to have ended and been exported.
    let trace = eventually("every hop of the trace to be exported", || {
        let spans = exporter.finished_spans();
        let trace = spans
            .iter()
            .find(|span| span.name == "agent.terminate")
            .map(|terminate| trace_spans(&spans, terminate.span_context.trace_id()))
            .filter(|trace| HOPS.iter().all(|(name, _, _)| trace.contains_key(*name)));
        async move { trace }
    })
    .await;

    every_hop_is_where_it_belongs(&trace);
    let terminate = &trace["vigil.v1.TerminationService/Terminate"];
    // The first admission is a trace of its own, with no kill in it.
    let spans = exporter.finished_spans();
    let first_trace = spans
        .iter()
        .find(|span| {
            span.name == "agent.open_session" && span.span_context.trace_id() != terminate.span_context.trace_id()
        })
        .map(|span| trace_spans(&spans, span.span_context.trace_id()))
        .expect("the first admission's trace");
    assert!(first_trace.contains_key("vigil.v1.PolicyService/Admit"));
    assert!(!first_trace.contains_key("registry.evict"));

    agent.shutdown().await;
    registry.stop().await;
}

/// Termination on its own server, resolving selectors through the registry's gRPC API; its URL.
async fn serve_termination(
    schema: &TestSchema,
    registry: &TestRegistry,
    namespace: &str,
    shutdown: &CancellationToken,
) -> String {
    let directory = ServiceConnector::plain()
        .connect("registry_url", &registry.url(), PATIENCE)
        .await
        .expect("connect to the registry");
    let terminator = vigil_termination::Terminator::new(
        schema.termination_store().await,
        Arc::new(vigil_clients::GrpcSessionDirectory::new(directory)),
        redis_bus(namespace).await,
        fast_termination(),
    );
    serve(
        |server| server.add_service(vigil_termination::api::TerminationApi::server(terminator)),
        shutdown,
    )
    .await
}

/// Policy on its own server: ann may hold one session; a second ends the first. Its URL.
async fn serve_policy(schema: &TestSchema, shutdown: &CancellationToken) -> String {
    let policy = vigil_policy::PolicyEngine::new(schema.policy_store().await, Arc::new(vigil_policy::SystemClock));
    policy
        .create(
            "test",
            &pb::CreatePolicyRequest {
                scope: Some(pb::PolicyScope {
                    scope: Some(pb::policy_scope::Scope::User("ann@acme.example".into())),
                }),
                rules: Some(pb::PolicyRules {
                    max_concurrent_sessions: Some(1),
                    concurrency_action: ConcurrencyAction::EndOldest as i32,
                    ..Default::default()
                }),
                description: String::new(),
            },
        )
        .await
        .expect("create the policy");
    serve(
        |server| server.add_service(vigil_policy::api::PolicyApi::server(policy)),
        shutdown,
    )
    .await
}

/// Geo on its own server, on the demo databases written into `dir`; its URL.
async fn serve_geo(schema: &TestSchema, dir: &std::path::Path, shutdown: &CancellationToken) -> String {
    let (city, asn) = vigil_geo::write_demo_databases(dir).expect("demo databases");
    let geo_config = vigil_geo::GeoConfig {
        city_db: vec![city],
        asn_db: vec![asn],
        ..Default::default()
    };
    let geo_store = vigil_geo::app::open_store(&schema.config, true)
        .await
        .expect("geo store");
    let geo = vigil_geo::Geo::open(&geo_config, geo_store, shutdown.clone()).expect("geo");
    serve(
        |server| server.add_service(vigil_geo::api::GeoApi::server(geo)),
        shutdown,
    )
    .await
}

/// Each hop of [`HOPS`] has its kind and parent; the root is the second admission's (its decision
/// named the evicted session); termination's server span carries the gRPC attributes.
fn every_hop_is_where_it_belongs(trace: &HashMap<String, SpanData>) {
    for (name, kind, parent) in HOPS {
        let span = &trace[name];
        assert_eq!(span.span_kind, kind, "kind of {name}");
        let expected_parent = parent.map_or(SpanId::INVALID, |parent| trace[parent].span_context.span_id());
        assert_eq!(
            span.parent_span_id,
            expected_parent,
            "{name} should be a child of {}",
            parent.unwrap_or("nothing (the root)")
        );
    }
    let admission = &trace["registry.admission"];
    assert!(
        admission
            .attributes
            .iter()
            .any(|attribute| attribute.key.as_str() == "gateway" && attribute.value.as_str() == "gw-trace"),
        "{:?}",
        admission.attributes
    );
    let terminate = &trace["vigil.v1.TerminationService/Terminate"];
    let attribute = |key: &str| {
        terminate
            .attributes
            .iter()
            .find(|attribute| attribute.key.as_str() == key)
            .map(|attribute| attribute.value.as_str().into_owned())
    };
    assert_eq!(attribute("rpc.system").as_deref(), Some("grpc"));
    assert_eq!(attribute("rpc.service").as_deref(), Some("vigil.v1.TerminationService"));
    assert_eq!(attribute("rpc.method").as_deref(), Some("Terminate"));
    assert_eq!(attribute("rpc.grpc.status_code").as_deref(), Some("0"));
}
