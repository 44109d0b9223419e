//! The gateway's metrics, through the OpenTelemetry global meter the runtime installs (exported over
//! OTLP and on `/metrics` when `telemetry.prometheus_listen` is set; no-ops otherwise).

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, UpDownCounter};

struct Instruments {
    logins: Counter<u64>,
    sessions_open: UpDownCounter<i64>,
    relayed_bytes: Counter<u64>,
    ended_by_registry: Counter<u64>,
    web_requests: Counter<u64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("vigil-gateway");
        Instruments {
            logins: meter
                .u64_counter("vigil_gateway_logins")
                .with_description("SSH logins after authentication, by outcome")
                .build(),
            sessions_open: meter
                .i64_up_down_counter("vigil_gateway_sessions_open")
                .with_description("SSH sessions relayed right now")
                .build(),
            relayed_bytes: meter
                .u64_counter("vigil_gateway_relayed_bytes")
                .with_unit("By")
                .with_description("Bytes relayed, by direction (in: user to target)")
                .build(),
            ended_by_registry: meter
                .u64_counter("vigil_gateway_sessions_ended_by_registry")
                .with_description("Sessions ended on the registry's command, by reason")
                .build(),
            web_requests: meter
                .u64_counter("vigil_gateway_web_requests")
                .with_description("Requests to the web proxy, by outcome")
                .build(),
        }
    })
}

/// A login's outcome: `admitted`, `refused`, `unknown_target`, `malformed`, `target_unreachable`,
/// `error`, `listing`.
pub fn login(outcome: &'static str) {
    instruments().logins.add(1, &[KeyValue::new("outcome", outcome)]);
}

pub fn session_opened() {
    instruments().sessions_open.add(1, &[]);
}

pub fn session_closed() {
    instruments().sessions_open.add(-1, &[]);
}

pub fn relayed(direction: &'static str, bytes: usize) {
    instruments()
        .relayed_bytes
        .add(bytes as u64, &[KeyValue::new("direction", direction)]);
}

pub fn ended_by_registry(reason: &str) {
    instruments()
        .ended_by_registry
        .add(1, &[KeyValue::new("reason", reason.to_owned())]);
}

/// A web request's outcome: `proxied`, `unknown_resource`, `untrusted`, `no_user`, `malformed`,
/// `not_allowed`, `refused`, `ended`, `error`, `upstream_error`, `upstream_timeout`.
pub fn web_request(outcome: &'static str) {
    instruments().web_requests.add(1, &[KeyValue::new("outcome", outcome)]);
}
