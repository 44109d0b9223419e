//! The policy service's metrics, on the global meter provider (`vigil_runtime::telemetry`):
//! `vigil_sweeper_runs` (`vigil_sweeper_runs_total` in Prometheus), the sweeps this replica ran as
//! leader, by `outcome`: `completed`, `lost_leadership` (stopped when the lease lapsed) or
//! `failed`.

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;

fn sweeper_runs_counter() -> &'static Counter<u64> {
    static COUNTER: OnceLock<Counter<u64>> = OnceLock::new();
    COUNTER.get_or_init(|| {
        opentelemetry::global::meter("vigil-policy")
            .u64_counter("vigil_sweeper_runs")
            .with_description("Sweeps run by the leading policy replica, by outcome")
            .build()
    })
}

/// A sweep ended with `outcome`.
pub(crate) fn sweeper_run(outcome: &'static str) {
    sweeper_runs_counter().add(1, &[KeyValue::new("outcome", outcome)]);
}
