//! Export over OTLP: a service configured with `telemetry.otlp_endpoint` sends its spans and
//! metrics to the collector there (an in-process OTLP/gRPC collector here), named as configured,
//! and flushes what is buffered when its telemetry guard is dropped at exit.
//!
//! One test in this binary: the providers are global.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use tonic::{Request, Response, Status};
use vigil_proto::v1 as pb;
use vigil_runtime::telemetry::{LogConfig, LogFormat, TelemetryConfig, init_telemetry};
use vigil_tests::*;

/// What the collector received.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ResourceSpans>>>,
    metrics: Arc<Mutex<Vec<ResourceMetrics>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.spans.lock().unwrap().extend(request.into_inner().resource_spans);
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.metrics
            .lock()
            .unwrap()
            .extend(request.into_inner().resource_metrics);
        Ok(Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

fn service_name(resource: Option<&Resource>) -> Option<String> {
    resource?
        .attributes
        .iter()
        .find(|attribute| attribute.key == "service.name")
        .and_then(|attribute| match attribute.value.as_ref()?.value.as_ref()? {
            Value::StringValue(name) => Some(name.clone()),
            _ => None,
        })
}

// Multi-threaded: dropping the guard waits for the exporters, whose calls run on the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_the_configured_collector_and_are_flushed_at_exit() {
    // A plain tonic server: the collector's own calls must not be traced (and exported, and traced…).
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .add_service(MetricsServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let log = LogConfig {
        format: LogFormat::Text,
        filter: "warn".into(),
    };
    let config = TelemetryConfig {
        otlp_endpoint: Some(endpoint),
        service_name: Some("vigil-otlp-test".into()),
        metrics_interval: Duration::from_secs(3600),
        ..TelemetryConfig::default()
    };
    let telemetry = init_telemetry(&log, &config, "vigil-tests").expect("telemetry");

    let schema = TestSchema::new().await;
    let registry = TestRegistry::on_postgres(&schema, &unique_namespace(), test_settings("r1")).await;
    let mut sessions = registry.sessions_client().await;
    sessions
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .expect("list sessions");
    // A gateway link, counted in `vigil_agent_streams` (recorded for sure, unlike the periodically
    // read live-session gauge).
    let link = RawLink::open(&registry, "gw-otlp", Vec::new()).await.expect("link");
    drop(link);
    registry.stop().await;

    // Nothing has been pushed yet (batches wait, the metrics interval is an hour): the exit flush
    // is what delivers them.
    drop(telemetry);

    let spans = collector.spans.lock().unwrap().clone();
    let list = spans
        .iter()
        .filter(|resource| service_name(resource.resource.as_ref()).as_deref() == Some("vigil-otlp-test"))
        .flat_map(|resource| &resource.scope_spans)
        .flat_map(|scope| &scope.spans)
        .find(|span| span.name == "vigil.v1.SessionRegistry/ListSessions")
        .expect("the call's server span at the collector, named by the configured service name");
    assert_eq!(list.kind, SpanKind::Server as i32);
    assert_eq!(list.trace_id.len(), 16);

    let metrics = collector.metrics.lock().unwrap().clone();
    let names: Vec<&str> = metrics
        .iter()
        .filter(|resource| service_name(resource.resource.as_ref()).as_deref() == Some("vigil-otlp-test"))
        .flat_map(|resource| &resource.scope_metrics)
        .flat_map(|scope| &scope.metrics)
        .map(|metric| metric.name.as_str())
        .collect();
    assert!(names.contains(&"vigil_agent_streams"), "{names:?}");
}
