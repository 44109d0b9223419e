//! Trace context on the link, so a gateway's traces and Vigil's join up:
//!
//! - every message the agent sends carries the context of the span it is sent from (the gateway's
//!   `agent.open_session`, the `agent.terminate` of a command) in `AgentMessage.trace_context`;
//! - a terminate command is carried out in an `agent.terminate` span whose parent is the span the
//!   registry named in `ControllerMessage.trace_context` (the kill's trace, from the `Terminate`
//!   call through the bus).
//!
//! Spans are `tracing` spans made into OpenTelemetry spans by `tracing-opentelemetry`: for them to
//! be exported and their context to be sent, the gateway installs that layer and the W3C
//! `TraceContextPropagator` as the global propagator (Vigil's services do so through
//! `vigil_runtime::telemetry`). Without them the maps stay empty and nothing changes.
//!
//! (The same few lines as `vigil_runtime::telemetry::propagation`: the SDK does not depend on the
//! runtime, which would bring the database and bus clients into every gateway.)

use std::collections::HashMap;

use opentelemetry::global;
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The current span's context as a `trace_context` map; empty outside any (valid) span. ("Current":
/// the innermost entered span that is traced, whose context the OpenTelemetry layer attaches.)
pub(crate) fn current_map() -> HashMap<String, String> {
    let context = opentelemetry::Context::current();
    let mut map = HashMap::new();
    if context.span().span_context().is_valid() {
        global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut map));
    }
    map
}

/// `span`, made a child of the span a received `trace_context` map names, when it names one.
pub(crate) fn follow(span: tracing::Span, trace_context: &HashMap<String, String>) -> tracing::Span {
    if trace_context.is_empty() {
        return span;
    }
    let parent = global::get_text_map_propagator(|propagator| propagator.extract(trace_context));
    if parent.span().span_context().is_valid() {
        // Fails only for a disabled span: then there is nothing to link.
        let _ = span.set_parent(parent);
    }
    span
}
