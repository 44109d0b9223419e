//! The termination service's metrics, on the global meter provider (`vigil_runtime::telemetry`):
//! `vigil_kills_issued` (`vigil_kills_issued_total` in Prometheus), the kill commands issued —
//! one per live session a termination covers; re-sends are not counted again. (Their
//! acknowledgements and latency are counted where they arrive, in the registry.)

use std::sync::OnceLock;

use opentelemetry::metrics::Counter;

fn kills_issued_counter() -> &'static Counter<u64> {
    static COUNTER: OnceLock<Counter<u64>> = OnceLock::new();
    COUNTER.get_or_init(|| {
        opentelemetry::global::meter("vigil-termination")
            .u64_counter("vigil_kills_issued")
            .with_description("Kill commands issued to gateways (one per live session ended)")
            .build()
    })
}

/// `count` kill commands went out for the first time.
pub(crate) fn kills_issued(count: usize) {
    if count > 0 {
        kills_issued_counter().add(u64::try_from(count).unwrap_or(u64::MAX), &[]);
    }
}
