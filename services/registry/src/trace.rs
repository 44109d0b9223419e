//! The spans of the gateway link's work, continuing the traces that messages carry (see
//! `vigil_runtime::telemetry::propagation`):
//!
//! - `registry.admission`, `registry.session_closed`, `registry.command_ack`: handling an agent's
//!   message, as a child of the agent's span named in `AgentMessage.trace_context` (so geo and
//!   policy calls made for an admission join the gateway's trace);
//! - `registry.dispatch`: forwarding a `GatewayDispatch` from the bus to the agent, as a child of
//!   the publisher's span; each forwarded `ControllerMessage` carries this span's context on to the
//!   agent.

use tracing_opentelemetry::OpenTelemetrySpanExt;
use vigil_proto::v1 as pb;
use vigil_proto::v1::agent_message::Message as Up;
use vigil_runtime::telemetry::propagation;

/// The span to handle `message` in: `Span::none()` for the chatter (activity, heartbeats) that
/// would only bury the traces worth having.
pub(crate) fn agent_message_span(gateway_id: &str, message: &pb::AgentMessage) -> tracing::Span {
    let span = match &message.message {
        Some(Up::SessionOpened(opened)) => tracing::info_span!(
            "registry.admission",
            otel.kind = "server",
            gateway = %gateway_id,
            request_id = %opened.request_id,
        ),
        Some(Up::SessionClosed(closed)) => tracing::info_span!(
            "registry.session_closed",
            otel.kind = "server",
            gateway = %gateway_id,
            session = %closed.session_id,
        ),
        Some(Up::CommandAck(ack)) => tracing::info_span!(
            "registry.command_ack",
            otel.kind = "server",
            gateway = %gateway_id,
            command = %ack.command_id,
        ),
        _ => return tracing::Span::none(),
    };
    propagation::follow(span, &message.trace_context)
}

/// The span forwarding `dispatch` to the agent, and its messages carrying that span's context.
pub(crate) fn dispatch_span(
    gateway_id: &str,
    dispatch: pb::GatewayDispatch,
) -> (tracing::Span, Vec<pb::ControllerMessage>) {
    let span = propagation::follow(
        tracing::info_span!(
            "registry.dispatch",
            otel.kind = "consumer",
            gateway = %gateway_id,
            messages = dispatch.messages.len(),
        ),
        &dispatch.trace_context,
    );
    let trace_context = propagation::inject_map(&span.context());
    let messages = dispatch
        .messages
        .into_iter()
        .map(|message| pb::ControllerMessage {
            trace_context: trace_context.clone(),
            ..message
        })
        .collect();
    (span, messages)
}
