//! Calling another Vigil service: TLS with the configured CA (and this process's certificate for
//! mutual TLS), the service token as `authorization: Bearer …` and the caller's trace context
//! (W3C `traceparent`) on every call.
//!
//! ```no_run
//! # fn example(auth: &vigil_runtime::auth::AuthConfig, tls: &vigil_runtime::tls::TlsConfig) -> anyhow::Result<()> {
//! use vigil_proto::v1::termination_service_client::TerminationServiceClient;
//! use vigil_runtime::client::ServiceConnector;
//!
//! let connector = ServiceConnector::from_config(auth, tls)?;
//! let client = TerminationServiceClient::new(connector.lazy("termination_url", "https://termination:7403")?);
//! # Ok(()) }
//! ```

use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::auth::AuthConfig;
use crate::tls::{TlsConfig, TlsError};
use crate::{ServiceError, ServiceResult};

/// Longest a call to another service may take to start answering.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A channel to another service that carries this process's credentials and the trace context.
pub type ServiceChannel = InterceptedService<Channel, OutboundInterceptor>;

/// What every call to another service carries: `authorization: Bearer <token>`, when a token is
/// configured, and the current span's trace context (`traceparent`, `tracestate`), when there is
/// one, so the callee's span joins the caller's trace.
#[derive(Clone, Default)]
pub struct OutboundInterceptor {
    header: Option<AsciiMetadataValue>,
}

impl OutboundInterceptor {
    /// No token: calls go out unauthenticated (fine when the callee has authentication off).
    pub fn none() -> Self {
        Self::default()
    }

    /// Sends `token` as a bearer token.
    pub fn bearer(token: &str) -> ServiceResult<Self> {
        let mut value: AsciiMetadataValue = format!("Bearer {token}")
            .parse()
            .map_err(|_| ServiceError::invalid("the outgoing token holds characters a header cannot carry"))?;
        // Keeps HPACK from indexing it, so the token is not kept in the connection's tables.
        value.set_sensitive(true);
        Ok(Self { header: Some(value) })
    }
}

impl std::fmt::Debug for OutboundInterceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.header.is_some() {
            "OutboundInterceptor(<bearer token>)"
        } else {
            "OutboundInterceptor(<none>)"
        })
    }
}

impl Interceptor for OutboundInterceptor {
    /// Runs in the calling task as the call starts, so the current span is the caller's.
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(header) = &self.header {
            request.metadata_mut().insert("authorization", header.clone());
        }
        crate::telemetry::propagation::inject_metadata(&opentelemetry::Context::current(), request.metadata_mut());
        Ok(request)
    }
}

/// Makes channels to other Vigil services with this process's TLS trust and service token.
#[derive(Clone, Debug, Default)]
pub struct ServiceConnector {
    credentials: OutboundInterceptor,
    tls: Option<ClientTlsConfig>,
}

impl ServiceConnector {
    /// Plaintext, no token: what the tests and the all-in-one's defaults need.
    pub fn plain() -> Self {
        Self::default()
    }

    /// From the process's `[auth]` (its `outgoing_token`) and `[tls]` (its `ca`, and `cert`/`key` for
    /// mutual TLS).
    pub fn from_config(auth: &AuthConfig, tls: &TlsConfig) -> Result<Self, TlsError> {
        let credentials = match &auth.outgoing_token {
            Some(token) if !token.is_empty() => {
                OutboundInterceptor::bearer(token.expose()).map_err(|error| TlsError(error.to_string()))?
            }
            _ => OutboundInterceptor::none(),
        };
        Ok(Self {
            credentials,
            tls: tls.client_config()?,
        })
    }

    /// The same connector sending `credentials` instead.
    pub fn with_credentials(mut self, credentials: OutboundInterceptor) -> Self {
        self.credentials = credentials;
        self
    }

    /// The same connector trusting this TLS configuration instead.
    pub fn with_tls(mut self, tls: ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// A channel that connects on first use (and reconnects), so a service starts while the one it
    /// calls is still coming up; calls fail `UNAVAILABLE` until it answers. `setting` names the
    /// configuration key of `url` in error messages.
    pub fn lazy(&self, setting: &str, url: &str) -> ServiceResult<ServiceChannel> {
        let endpoint = self.endpoint(setting, url, Duration::from_secs(5))?;
        Ok(self.wrap(endpoint.connect_lazy()))
    }

    /// A channel connected now: `Unavailable` when `url` does not answer (or fails the TLS
    /// handshake) within `timeout`.
    pub async fn connect(&self, setting: &str, url: &str, timeout: Duration) -> ServiceResult<ServiceChannel> {
        let endpoint = self.endpoint(setting, url, timeout)?;
        match tokio::time::timeout(timeout, endpoint.connect()).await {
            Ok(Ok(channel)) => Ok(self.wrap(channel)),
            Ok(Err(error)) => Err(ServiceError::Unavailable(format!(
                "cannot connect to {url}: {}",
                crate::server::error_chain(&error)
            ))),
            Err(_elapsed) => Err(ServiceError::Unavailable(format!(
                "cannot connect to {url}: no answer within {timeout:?}"
            ))),
        }
    }

    /// Wraps a channel made elsewhere with this connector's credentials.
    pub fn wrap(&self, channel: Channel) -> ServiceChannel {
        InterceptedService::new(channel, self.credentials.clone())
    }

    fn endpoint(&self, setting: &str, url: &str, connect_timeout: Duration) -> ServiceResult<Endpoint> {
        let invalid = |error: &dyn std::fmt::Display| {
            ServiceError::invalid(format!("{setting} {url:?} is not a valid URL: {error}"))
        };
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|error| invalid(&error))?
            .connect_timeout(connect_timeout)
            // A callee that accepts a call and never answers must not hold the caller for ever
            // (until the response starts: streams are not cut).
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        if url.starts_with("https://") {
            let tls = self.tls.clone().ok_or_else(|| {
                ServiceError::invalid(format!(
                    "{setting} {url:?} is https, but no CA is configured to check its certificate: set tls.ca"
                ))
            })?;
            endpoint = endpoint.tls_config(tls).map_err(|error| invalid(&error))?;
        }
        Ok(endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Secret;

    #[test]
    fn the_token_is_sent_as_a_sensitive_bearer_header() {
        let mut credentials = OutboundInterceptor::bearer("s3cret").unwrap();
        let request = credentials.call(tonic::Request::new(())).unwrap();
        let header = request.metadata().get("authorization").expect("set");
        assert_eq!(header.to_str().unwrap(), "Bearer s3cret");
        assert!(header.is_sensitive());
        assert!(!format!("{credentials:?}").contains("s3cret"));

        let mut none = OutboundInterceptor::none();
        assert!(
            none.call(tonic::Request::new(()))
                .unwrap()
                .metadata()
                .get("authorization")
                .is_none()
        );
    }

    #[test]
    fn the_current_span_travels_as_traceparent() {
        use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        use tracing_subscriber::layer::SubscriberExt;

        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let mut interceptor = OutboundInterceptor::none();
        let (request, span_context) = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("caller");
            let span_context = span.context().span().span_context().clone();
            let request = span.in_scope(|| interceptor.call(tonic::Request::new(())).unwrap());
            (request, span_context)
        });
        let traceparent = request.metadata().get("traceparent").expect("set").to_str().unwrap();
        assert_eq!(
            traceparent,
            format!("00-{}-{}-01", span_context.trace_id(), span_context.span_id())
        );

        // Outside any span nothing is added.
        let request = interceptor.call(tonic::Request::new(())).unwrap();
        assert!(request.metadata().get("traceparent").is_none());
    }

    #[tokio::test]
    async fn https_needs_a_ca() {
        let connector = ServiceConnector::plain();
        let error = connector.lazy("registry_url", "https://registry:7400").unwrap_err();
        assert!(error.to_string().contains("set tls.ca"), "{error}");
        assert!(connector.lazy("registry_url", "http://registry:7400").is_ok());
        let error = connector.lazy("registry_url", "not a url").unwrap_err();
        assert!(error.to_string().starts_with("registry_url \"not a url\""), "{error}");
    }

    #[tokio::test]
    async fn a_configured_token_is_used() {
        let auth = AuthConfig {
            outgoing_token: Some(Secret::from("service-token")),
            ..AuthConfig::default()
        };
        let connector = ServiceConnector::from_config(&auth, &TlsConfig::default()).unwrap();
        assert!(format!("{connector:?}").contains("<bearer token>"));
    }
}
