//! Sinks for scripts.

use serde_json::{Value, json};
use vigil_proto::v1::{SinkStatus, TestSinkResponse};

use crate::json::timestamp;

/// One sink of one service's relay: its filter, counts, backlog and last error; times are RFC 3339
/// or `null`.
pub fn sink(s: &SinkStatus) -> Value {
    json!({
        "service": s.service,
        "name": s.name,
        "kind": s.kind,
        "target": s.target,
        "types": s.types,
        "min_risk": s.min_risk,
        "delivered": s.delivered,
        "failed": s.failed,
        "backlog": s.backlog,
        "oldest_pending_at": timestamp(s.oldest_pending_at.as_ref()),
        "last_error": s.last_error,
        "last_error_at": timestamp(s.last_error_at.as_ref()),
        "last_delivered_at": timestamp(s.last_delivered_at.as_ref()),
        "holder": s.holder,
        "lease_until": timestamp(s.lease_until.as_ref()),
    })
}

pub fn sinks(sinks: &[SinkStatus]) -> Value {
    json!({ "sinks": sinks.iter().map(sink).collect::<Vec<_>>() })
}

/// A test event a sink took.
pub fn tested(sink: &str, answer: &TestSinkResponse) -> Value {
    json!({
        "sink": sink,
        "service": answer.service,
        "event_id": answer.event_id,
        "delivered": true,
        "elapsed_ms": answer.elapsed_ms,
    })
}
