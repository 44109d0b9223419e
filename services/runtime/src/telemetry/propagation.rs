//! W3C trace context (`traceparent`, `tracestate`) across process boundaries, through the global
//! propagator [`super::init_telemetry`] installs:
//!
//! - gRPC calls: the client side injects into the request metadata
//!   ([`crate::client::OutboundInterceptor`] does it for every service-to-service channel), the
//!   server side extracts from the request headers ([`super::grpc::RpcTraceLayer`]);
//! - the `trace_context` maps of `AgentMessage`, `ControllerMessage` and `GatewayDispatch`, which
//!   carry a trace over the gateway link and across the bus: [`current_map`] / [`inject_map`] on
//!   the sending side, [`follow`] / [`extract_map`] on the receiving side.
//!
//! Without a global propagator (telemetry not initialised) nothing is injected and every
//! extraction yields an empty context, so these are safe to call anywhere.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tonic::metadata::{AsciiMetadataValue, MetadataKey, MetadataMap};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The current span's context as a `trace_context` map; empty when there is no (valid) current span.
///
/// "Current" is the innermost entered span that is traced (the OpenTelemetry layer attaches its
/// context while it is entered), so a debug-level span in between, which is not traced, is skipped.
pub fn current_map() -> HashMap<String, String> {
    inject_map(&Context::current())
}

/// `context` as a `trace_context` map; empty when it holds no valid span.
pub fn inject_map(context: &Context) -> HashMap<String, String> {
    let mut map = HashMap::new();
    // Checked here so that messages sent outside any span (heartbeats, activity) skip the
    // propagator's lock altogether.
    if context.span().span_context().is_valid() {
        global::get_text_map_propagator(|propagator| propagator.inject_context(context, &mut map));
    }
    map
}

/// The remote context a `trace_context` map names (an empty context when it names none, or names
/// it in a malformed way).
pub fn extract_map(map: &HashMap<String, String>) -> Context {
    if map.is_empty() {
        return Context::new();
    }
    global::get_text_map_propagator(|propagator| propagator.extract(map))
}

/// Makes `span` a child of the remote span in `parent`, when there is one; otherwise `span`
/// keeps its ordinary parent (the current span, or none). Call before the span is first entered.
pub fn set_remote_parent(span: &tracing::Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        // Fails only when the span is disabled or already started: then there is nothing to link.
        let _ = span.set_parent(parent);
    }
}

/// `span`, made a child of the span a received `trace_context` map names (see
/// [`set_remote_parent`]).
pub fn follow(span: tracing::Span, trace_context: &HashMap<String, String>) -> tracing::Span {
    set_remote_parent(&span, extract_map(trace_context));
    span
}

/// Writes `context` into outgoing gRPC metadata.
pub fn inject_metadata(context: &Context, metadata: &mut MetadataMap) {
    if context.span().span_context().is_valid() {
        global::get_text_map_propagator(|propagator| {
            propagator.inject_context(context, &mut MetadataInjector(metadata));
        });
    }
}

/// The remote context named by incoming request headers.
pub fn extract_headers(headers: &http::HeaderMap) -> Context {
    global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)))
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The W3C propagator only writes lower-case ASCII names and visible ASCII values; anything
        // else would be a propagator bug, and is dropped rather than failing the call.
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            AsciiMetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    use super::*;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn remote() -> Context {
        let span_context = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "value")]).unwrap(),
        );
        Context::new().with_remote_span_context(span_context)
    }

    fn with_propagator() {
        // Idempotent; every test of this binary that propagates wants the W3C propagator.
        global::set_text_map_propagator(TraceContextPropagator::new());
    }

    #[test]
    fn maps_round_trip_the_w3c_fields() {
        with_propagator();
        let map = inject_map(&remote());
        assert_eq!(map.get("traceparent").map(String::as_str), Some(TRACEPARENT));
        assert_eq!(map.get("tracestate").map(String::as_str), Some("vendor=value"));

        let extracted = extract_map(&map);
        let span = extracted.span();
        let context = span.span_context();
        assert!(context.is_remote());
        assert_eq!(context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context.is_sampled());
        assert_eq!(context.trace_state().header(), "vendor=value");
    }

    #[test]
    fn nothing_is_injected_without_a_span_and_nothing_extracted_from_garbage() {
        with_propagator();
        assert!(inject_map(&Context::new()).is_empty());
        assert!(current_map().is_empty(), "no span is current here");
        let garbage = HashMap::from([("traceparent".to_owned(), "00-not-a-trace".to_owned())]);
        assert!(!extract_map(&garbage).span().span_context().is_valid());
        assert!(!extract_map(&HashMap::new()).span().span_context().is_valid());
    }

    #[test]
    fn grpc_metadata_carries_the_context_to_request_headers() {
        with_propagator();
        let mut metadata = MetadataMap::new();
        inject_metadata(&remote(), &mut metadata);
        assert_eq!(metadata.get("traceparent").unwrap().to_str().unwrap(), TRACEPARENT);

        // What the server sees: the metadata as HTTP/2 headers.
        let headers = metadata.into_headers();
        let extracted = extract_headers(&headers);
        assert_eq!(
            extracted.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );

        let mut untouched = MetadataMap::new();
        inject_metadata(&Context::new(), &mut untouched);
        assert!(untouched.is_empty());
    }
}
