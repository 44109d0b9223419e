//! Logs, traces and metrics, set up once per process by [`init_telemetry`]:
//!
//! - **Logs**: one `tracing` subscriber writing to stderr, human-readable or JSON, filtered by
//!   `log.filter` unless `RUST_LOG` says otherwise. JSON lines inside a span carry its `trace_id`
//!   and `span_id` ([`json`]).
//! - **Traces**: `tracing` spans (at `info` and above) become OpenTelemetry spans through
//!   `tracing-opentelemetry`. A tracer provider is always installed, so trace ids exist and travel
//!   even when nothing is exported; spans are exported over OTLP/gRPC only when an endpoint is
//!   configured (`telemetry.otlp_endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`). The W3C trace-context
//!   propagator is installed globally: [`propagation`] carries contexts over gRPC metadata, the
//!   gateway link and the bus; [`grpc::RpcTraceLayer`] makes the server span of every call.
//! - **Metrics**: the global OpenTelemetry meter provider, read by an OTLP periodic exporter when an
//!   endpoint is configured and by a Prometheus scrape endpoint (`GET /metrics`) when
//!   `telemetry.prometheus_listen` is set. Services create their instruments from
//!   `opentelemetry::global::meter(..)` after this ran.

pub mod grpc;
pub mod json;
pub mod propagation;
mod scrape;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{MeterProviderBuilder, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanExporter, TracerProviderBuilder};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

/// Logging configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `info,vigil_registry=debug`. The `RUST_LOG`
    /// environment variable, when set, takes precedence.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

/// Traces and metrics (the `[telemetry]` section). Everything is off by default: no exporter, no
/// scrape endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/gRPC endpoint of a collector (`http://otel-collector:4317`) that receives traces and
    /// metrics. Unset: the standard `OTEL_EXPORTER_OTLP_ENDPOINT` is used when it is set, and
    /// nothing is exported over OTLP otherwise.
    pub otlp_endpoint: Option<String>,
    /// `service.name` on exported traces and metrics. Unset: `OTEL_SERVICE_NAME` when set, else
    /// the binary's own name (`vigil-registry`, `vigil-termination`, …).
    pub service_name: Option<String>,
    /// Share of traces started here that are recorded and exported, 0.0–1.0. A call that arrives
    /// with a trace context follows its caller's decision instead.
    pub trace_sample_ratio: f64,
    /// How often metrics are pushed over OTLP.
    #[serde(with = "humantime_serde")]
    pub metrics_interval: Duration,
    /// Where to serve `GET /metrics` for Prometheus to scrape (`0.0.0.0:9464`). Unset: not served.
    pub prometheus_listen: Option<SocketAddr>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: None,
            trace_sample_ratio: 1.0,
            metrics_interval: Duration::from_secs(15),
            prometheus_listen: None,
        }
    }
}

/// The standard variable naming an OTLP endpoint for every signal.
const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard variable naming the service.
const SERVICE_NAME_ENV: &str = "OTEL_SERVICE_NAME";
/// Spans below this level stay local (logs only): the OpenTelemetry layer sees `info` and above
/// whatever the log filter says, so quieter logs do not cost traces.
const TRACE_LEVEL: LevelFilter = LevelFilter::INFO;

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter directive does not parse.
    #[error("invalid log filter {filter:?}: {source}")]
    InvalidFilter {
        /// The directive as given.
        filter: String,
        /// What is wrong with it.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A `[telemetry]` setting is out of range.
    #[error("invalid telemetry setting: {0}")]
    InvalidSetting(String),
    /// The OTLP exporter could not be built.
    #[error("cannot set up the OTLP exporter for {endpoint}: {detail}")]
    Otlp {
        /// The endpoint, or where it came from.
        endpoint: String,
        /// What went wrong.
        detail: String,
    },
    /// The Prometheus endpoint could not be set up.
    #[error("cannot serve metrics on {addr}: {detail}")]
    Prometheus {
        /// The address asked for.
        addr: SocketAddr,
        /// What went wrong.
        detail: String,
    },
}

/// Only the first initialisation in a process installs anything.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Sets up logs, traces and metrics for this process as the module docs say; `service_name` is
/// the binary's name, used unless configured otherwise. Call it once, early, inside the Tokio
/// runtime (the OTLP exporter and the scrape endpoint run on it), and keep the guard until exit:
/// dropping it flushes what is buffered.
///
/// Settings are validated on every call, but only the first call in a process installs: later
/// calls return a guard that does nothing. If another `tracing` subscriber is installed already
/// (as test harnesses do), that one stays, and spans are not exported.
pub fn init_telemetry(
    log: &LogConfig,
    config: &TelemetryConfig,
    service_name: &str,
) -> Result<TelemetryGuard, TelemetryError> {
    Telemetry::new(log, config, service_name).init()
}

/// Logs only, for one-shot commands (`migrate`, `print-config`): nothing is exported and no port
/// is opened. Same once-per-process rule as [`init_telemetry`].
pub fn init_logs(log: &LogConfig) -> Result<TelemetryGuard, TelemetryError> {
    Telemetry::new(log, &TelemetryConfig::default(), "vigil")
        .without_export()
        .init()
}

/// [`init_telemetry`] with extra span exporters, for tests that look at the spans (an in-memory
/// exporter) and for embedders with an exporter of their own.
pub struct Telemetry<'a> {
    log: &'a LogConfig,
    config: &'a TelemetryConfig,
    service_name: &'a str,
    tracer: TracerProviderBuilder,
    /// Ignore `OTEL_EXPORTER_OTLP_ENDPOINT` (one-shot commands export nothing).
    export: bool,
}

impl<'a> Telemetry<'a> {
    /// Telemetry as configured; see [`init_telemetry`].
    pub fn new(log: &'a LogConfig, config: &'a TelemetryConfig, service_name: &'a str) -> Self {
        Self {
            log,
            config,
            service_name,
            tracer: SdkTracerProvider::builder(),
            export: true,
        }
    }

    /// Exports nothing over OTLP, whatever the environment says.
    pub fn without_export(mut self) -> Self {
        self.export = false;
        self
    }

    /// Also sends every finished span to `exporter`, one by one as it ends.
    pub fn with_span_exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.tracer = self.tracer.with_simple_exporter(exporter);
        self
    }

    /// Installs everything; see [`init_telemetry`].
    pub fn init(self) -> Result<TelemetryGuard, TelemetryError> {
        let Self {
            log,
            config,
            service_name,
            tracer,
            export,
        } = self;
        let rust_log = std::env::var("RUST_LOG").ok();
        let env_filter = build_filter(&log.filter, rust_log.as_deref())?;
        if !(0.0..=1.0).contains(&config.trace_sample_ratio) {
            return Err(TelemetryError::InvalidSetting(format!(
                "telemetry.trace_sample_ratio is {}; it must be between 0.0 and 1.0",
                config.trace_sample_ratio
            )));
        }
        if config.metrics_interval.is_zero() {
            return Err(TelemetryError::InvalidSetting(
                "telemetry.metrics_interval must be longer than zero".into(),
            ));
        }
        let otlp = if export {
            otlp_target(
                config.otlp_endpoint.as_deref(),
                std::env::var(OTLP_ENDPOINT_ENV).ok().as_deref(),
            )?
        } else {
            None
        };
        if (otlp.is_some() || config.prometheus_listen.is_some()) && tokio::runtime::Handle::try_current().is_err() {
            return Err(TelemetryError::InvalidSetting(
                "exporting over OTLP or serving /metrics needs a Tokio runtime: call init_telemetry inside it".into(),
            ));
        }
        if INSTALLED.swap(true, Ordering::SeqCst) {
            tracing::debug!("telemetry already set up in this process; keeping it");
            return Ok(TelemetryGuard::default());
        }
        let installed = install(log, config, service_name, tracer, env_filter, otlp);
        if installed.is_err() {
            // Nothing global was set (that happens last): a later call may try again.
            INSTALLED.store(false, Ordering::SeqCst);
        }
        installed
    }
}

/// Builds the providers and installs them, the propagator and the subscriber globally; see
/// [`init_telemetry`].
fn install(
    log: &LogConfig,
    config: &TelemetryConfig,
    service_name: &str,
    tracer: TracerProviderBuilder,
    env_filter: EnvFilter,
    otlp: Option<OtlpTarget>,
) -> Result<TelemetryGuard, TelemetryError> {
    let service_name = resolved_service_name(config, service_name);
    let resource = Resource::builder().with_service_name(service_name.clone()).build();

    let mut tracer = tracer
        .with_resource(resource.clone())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.trace_sample_ratio,
        ))));
    let mut meter = SdkMeterProvider::builder().with_resource(resource);
    let mut has_reader = false;
    if let Some(target) = &otlp {
        let spans = target
            .apply_spans(opentelemetry_otlp::SpanExporter::builder().with_tonic())
            .build()
            .map_err(|error| target.error(&error))?;
        tracer = tracer.with_batch_exporter(spans);
        let metrics = target
            .apply_metrics(opentelemetry_otlp::MetricExporter::builder().with_tonic())
            .build()
            .map_err(|error| target.error(&error))?;
        meter = meter.with_reader(
            PeriodicReader::builder(metrics)
                .with_interval(config.metrics_interval)
                .build(),
        );
        has_reader = true;
    }
    let scrape_stop = CancellationToken::new();
    let mut prometheus_addr = None;
    if let Some(addr) = config.prometheus_listen {
        let (with_scrape, bound) = with_prometheus(meter, addr, &scrape_stop)?;
        meter = with_scrape;
        has_reader = true;
        prometheus_addr = Some(bound);
    }

    let fmt_layer = fmt_layer(log, std::io::stderr).with_filter(env_filter);
    let tracer_provider = tracer.build();
    global::set_text_map_propagator(TraceContextPropagator::new());
    global::set_tracer_provider(tracer_provider.clone());
    let meter_provider = has_reader.then(|| meter.build());
    if let Some(meter_provider) = &meter_provider {
        global::set_meter_provider(meter_provider.clone());
    }

    let otel_layer = tracing_opentelemetry::layer()
        .with_tracer(tracer_provider.tracer("vigil"))
        .with_filter(TRACE_LEVEL);
    let installed = tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer)
        .try_init();
    // The only failure left is "a global subscriber is already set": the documented fallback.
    if installed.is_err() {
        tracing::debug!("tracing subscriber already installed; keeping it (spans are not exported)");
    }
    if otlp.is_some() || prometheus_addr.is_some() {
        tracing::info!(
            service = %service_name,
            otlp = otlp.as_ref().map(OtlpTarget::describe),
            prometheus = prometheus_addr.map(|addr| addr.to_string()),
            "exporting telemetry"
        );
    }
    Ok(TelemetryGuard {
        tracer: Some(tracer_provider),
        meter: meter_provider,
        prometheus_addr,
        scrape_stop: Some(scrape_stop),
    })
}

/// The service's name in traces and metrics: the configuration's, else the standard variable's,
/// else `default`.
fn resolved_service_name(config: &TelemetryConfig, default: &str) -> String {
    config
        .service_name
        .clone()
        .or_else(|| {
            std::env::var(SERVICE_NAME_ENV)
                .ok()
                .filter(|name| !name.trim().is_empty())
        })
        .unwrap_or_else(|| default.to_owned())
}

/// `meter` with a Prometheus reader, and its scrape endpoint serving on `addr` until `stop`;
/// returns the address bound too.
fn with_prometheus(
    meter: MeterProviderBuilder,
    addr: SocketAddr,
    stop: &CancellationToken,
) -> Result<(MeterProviderBuilder, SocketAddr), TelemetryError> {
    let failed = |detail: String| TelemetryError::Prometheus { addr, detail };
    let registry = prometheus::Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .map_err(|error| failed(error.to_string()))?;
    let bound = scrape::start(addr, registry, stop.clone()).map_err(|error| failed(error.to_string()))?;
    Ok((meter.with_reader(exporter), bound))
}

/// Where OTLP goes: the configured endpoint, or the one the standard variable names (which the
/// exporter then reads itself, with the variable's usual meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
enum OtlpTarget {
    Configured(String),
    FromEnvironment,
}

impl OtlpTarget {
    fn describe(&self) -> String {
        match self {
            OtlpTarget::Configured(endpoint) => endpoint.clone(),
            OtlpTarget::FromEnvironment => format!("${OTLP_ENDPOINT_ENV}"),
        }
    }

    fn error(&self, error: &dyn std::fmt::Display) -> TelemetryError {
        TelemetryError::Otlp {
            endpoint: self.describe(),
            detail: error.to_string(),
        }
    }

    fn apply_spans(
        &self,
        builder: opentelemetry_otlp::SpanExporterBuilder<opentelemetry_otlp::TonicExporterBuilderSet>,
    ) -> opentelemetry_otlp::SpanExporterBuilder<opentelemetry_otlp::TonicExporterBuilderSet> {
        match self {
            OtlpTarget::Configured(endpoint) => builder.with_endpoint(endpoint),
            OtlpTarget::FromEnvironment => builder,
        }
    }

    fn apply_metrics(
        &self,
        builder: opentelemetry_otlp::MetricExporterBuilder<opentelemetry_otlp::TonicExporterBuilderSet>,
    ) -> opentelemetry_otlp::MetricExporterBuilder<opentelemetry_otlp::TonicExporterBuilderSet> {
        match self {
            OtlpTarget::Configured(endpoint) => builder.with_endpoint(endpoint),
            OtlpTarget::FromEnvironment => builder,
        }
    }
}

/// OTLP is on when configured, or when the standard variable names an endpoint; a configured
/// endpoint must be an `http://` or `https://` URL.
fn otlp_target(configured: Option<&str>, from_env: Option<&str>) -> Result<Option<OtlpTarget>, TelemetryError> {
    match configured.map(str::trim) {
        Some("") | None => Ok(from_env
            .filter(|value| !value.trim().is_empty())
            .map(|_| OtlpTarget::FromEnvironment)),
        Some(endpoint) => match url::Url::parse(endpoint) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Ok(Some(OtlpTarget::Configured(endpoint.to_owned())))
            }
            _ => Err(TelemetryError::InvalidSetting(format!(
                "telemetry.otlp_endpoint {endpoint:?} is not an http:// or https:// URL (an OTLP/gRPC collector, e.g. http://otel-collector:4317)"
            ))),
        },
    }
}

/// The log layer: text or JSON lines (with trace ids) written to `writer`.
fn fmt_layer<S, W>(config: &LogConfig, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match config.format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer
            .json()
            .event_format(json::WithTraceIds::new(
                tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            ))
            .boxed(),
    }
}

/// Keeps the providers set up by [`init_telemetry`]; dropping it flushes buffered spans and
/// metrics and stops the scrape endpoint.
#[derive(Default)]
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    prometheus_addr: Option<SocketAddr>,
    scrape_stop: Option<CancellationToken>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("installed", &self.tracer.is_some())
            .field("metrics", &self.meter.is_some())
            .field("prometheus_addr", &self.prometheus_addr)
            .finish()
    }
}

impl TelemetryGuard {
    /// Where `GET /metrics` is served, when it is (with the actual port when port 0 was asked).
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus_addr
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.scrape_stop.take() {
            stop.cancel();
        }
        let tracer = self.tracer.take();
        let meter = self.meter.take();
        if tracer.is_none() && meter.is_none() {
            return;
        }
        let flush = move || {
            if let Some(tracer) = tracer
                && let Err(error) = tracer.shutdown()
            {
                eprintln!("telemetry: flushing spans at exit failed: {error}");
            }
            if let Some(meter) = meter
                && let Err(error) = meter.shutdown()
            {
                eprintln!("telemetry: flushing metrics at exit failed: {error}");
            }
        };
        // The exporters' last calls run on the Tokio runtime while this thread waits for them:
        // on a runtime worker, let the runtime move its other work elsewhere first.
        match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(flush),
            _ => flush(),
        }
    }
}

/// The filter to use: `RUST_LOG` when it says something, the configured directive otherwise.
fn build_filter(configured: &str, rust_log: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let directives = rust_log.filter(|value| !value.trim().is_empty()).unwrap_or(configured);
    EnvFilter::try_new(directives).map_err(|source| TelemetryError::InvalidFilter {
        filter: directives.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_twice_is_fine_and_settings_are_checked_every_time() {
        // `warn`: this subscriber stays installed for the rest of the test binary.
        let warn = LogConfig {
            format: LogFormat::Text,
            filter: "warn".into(),
        };
        let first = init_telemetry(&warn, &TelemetryConfig::default(), "vigil-test").unwrap();
        let json = LogConfig {
            format: LogFormat::Json,
            ..warn.clone()
        };
        let second = init_telemetry(&json, &TelemetryConfig::default(), "vigil-test").unwrap();
        assert!(format!("{second:?}").contains("installed: false"), "{second:?}");
        drop(first);

        let ratio = TelemetryConfig {
            trace_sample_ratio: 1.5,
            ..TelemetryConfig::default()
        };
        let error = init_telemetry(&warn, &ratio, "vigil-test").unwrap_err();
        assert!(error.to_string().contains("trace_sample_ratio is 1.5"), "{error}");
        let interval = TelemetryConfig {
            metrics_interval: Duration::ZERO,
            ..TelemetryConfig::default()
        };
        assert!(init_telemetry(&warn, &interval, "vigil-test").is_err());
        let endpoint = TelemetryConfig {
            otlp_endpoint: Some("otel-collector:4317".into()),
            ..TelemetryConfig::default()
        };
        let error = init_telemetry(&warn, &endpoint, "vigil-test").unwrap_err();
        assert!(error.to_string().contains("otel-collector:4317"), "{error}");
        // This test runs outside any Tokio runtime.
        let scrape = TelemetryConfig {
            prometheus_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..TelemetryConfig::default()
        };
        let error = init_telemetry(&warn, &scrape, "vigil-test").unwrap_err();
        assert!(error.to_string().contains("needs a Tokio runtime"), "{error}");
    }

    #[test]
    fn otlp_is_on_when_configured_or_named_by_the_standard_variable() {
        assert_eq!(otlp_target(None, None).unwrap(), None);
        assert_eq!(otlp_target(Some(" "), Some("")).unwrap(), None);
        assert_eq!(
            otlp_target(None, Some("http://collector:4317")).unwrap(),
            Some(OtlpTarget::FromEnvironment)
        );
        assert_eq!(
            otlp_target(Some("https://collector:4317"), Some("http://other:4317")).unwrap(),
            Some(OtlpTarget::Configured("https://collector:4317".into()))
        );
        assert!(otlp_target(Some("grpc://collector:4317"), None).is_err());
        assert!(otlp_target(Some("not a url"), None).is_err());
    }

    #[test]
    fn the_telemetry_section_is_off_by_default_and_strict() {
        #[derive(Deserialize)]
        struct Wrapper {
            #[serde(default)]
            telemetry: TelemetryConfig,
        }
        let defaults: Wrapper = toml::from_str("").unwrap();
        assert_eq!(defaults.telemetry, TelemetryConfig::default());
        assert_eq!(defaults.telemetry.otlp_endpoint, None);
        assert_eq!(defaults.telemetry.prometheus_listen, None);

        let parsed: Wrapper = toml::from_str(
            "[telemetry]\notlp_endpoint = \"http://otel:4317\"\nprometheus_listen = \"0.0.0.0:9464\"\nmetrics_interval = \"5s\"\ntrace_sample_ratio = 0.25\n",
        )
        .unwrap();
        assert_eq!(parsed.telemetry.otlp_endpoint.as_deref(), Some("http://otel:4317"));
        assert_eq!(
            parsed.telemetry.prometheus_listen,
            Some("0.0.0.0:9464".parse().unwrap())
        );
        assert_eq!(parsed.telemetry.metrics_interval, Duration::from_secs(5));
        assert!((parsed.telemetry.trace_sample_ratio - 0.25).abs() < f64::EPSILON);
        assert!(toml::from_str::<Wrapper>("[telemetry]\notlp = \"x\"\n").is_err());
    }

    #[tokio::test]
    async fn the_scrape_endpoint_serves_the_text_format() {
        use opentelemetry::metrics::MeterProvider as _;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .unwrap();
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        let counter = provider.meter("vigil-test").u64_counter("vigil_test_things").build();
        counter.add(3, &[opentelemetry::KeyValue::new("kind", "sample")]);

        let stop = CancellationToken::new();
        let addr = scrape::start("127.0.0.1:0".parse().unwrap(), registry, stop.clone()).unwrap();
        let get = |path: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        };
        let response = get("/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("text/plain; version=0.0.4"), "{response}");
        assert!(
            response.lines().any(|line| line.starts_with("vigil_test_things_total{")
                && line.contains("kind=\"sample\"")
                && line.ends_with(" 3")),
            "{response}"
        );
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
        stop.cancel();
    }

    #[test]
    fn rust_log_overrides_the_configured_filter() {
        let filter = build_filter("info", Some("vigil_runtime=trace")).unwrap();
        assert_eq!(filter.to_string(), "vigil_runtime=trace");
        let filter = build_filter("info", Some("  ")).unwrap();
        assert_eq!(filter.to_string(), "info");
        let filter = build_filter("info,vigil_registry=debug", None).unwrap().to_string();
        assert!(
            filter.contains("vigil_registry=debug") && filter.contains("info"),
            "{filter}"
        );
    }

    #[test]
    fn an_invalid_filter_is_reported() {
        let error = build_filter("info,vigil=loud", None).unwrap_err();
        assert!(error.to_string().contains("vigil=loud"), "{error}");
    }

    #[test]
    fn formats_are_lower_case_in_config() {
        #[derive(Deserialize)]
        struct Wrapper {
            log: LogConfig,
        }
        let parsed: Wrapper = toml::from_str("[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(
            parsed.log,
            LogConfig {
                format: LogFormat::Json,
                filter: "info".into()
            }
        );
        assert!(toml::from_str::<Wrapper>("[log]\nformat = \"Json\"\n").is_err());
    }
}
