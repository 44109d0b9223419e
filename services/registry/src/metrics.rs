//! The registry's metrics, on the global meter provider (`vigil_runtime::telemetry`):
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `vigil_sessions_live` | gauge | `status` (`active`, `idle`) |
//! | `vigil_admissions` (`_total` in Prometheus) | counter | `outcome` (`allowed`, `denied`, `error`) |
//! | `vigil_kills_acknowledged` (`_total`) | counter | `outcome` (`done`, `not_found`, `failed`) |
//! | `vigil_kill_latency` (`_seconds`) | histogram | — |
//! | `vigil_agent_streams` | up-down counter | — |
//!
//! Instruments are made on first use, so the meter provider must be installed before the
//! registry starts (a process that never installs one gets no-op instruments).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, ObservableGauge, UpDownCounter};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_proto::v1 as pb;

use crate::domain::EpochMillis;
use crate::store::SessionStore;

/// Kill latencies (issue → acknowledgement) in seconds: from a millisecond on a quiet system to
/// the redelivery range of a gateway that was away.
const KILL_LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

struct Instruments {
    admissions: Counter<u64>,
    kills_acknowledged: Counter<u64>,
    kill_latency: Histogram<f64>,
    agent_streams: UpDownCounter<i64>,
    /// Kept so the gauge's callback stays registered.
    _sessions_live: ObservableGauge<u64>,
}

/// Live sessions by status as last read from the store; the gauge reports nothing until the first
/// read.
struct LiveCounts {
    known: AtomicBool,
    active: AtomicU64,
    idle: AtomicU64,
}

/// One set per process: with several replicas in one process (tests), the gauge shows the count the
/// last of them read — the same table, so the same figure.
static LIVE: LiveCounts = LiveCounts {
    known: AtomicBool::new(false),
    active: AtomicU64::new(0),
    idle: AtomicU64::new(0),
};

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("vigil-registry");
        Instruments {
            admissions: meter
                .u64_counter("vigil_admissions")
                .with_description("Session starts decided, by outcome")
                .build(),
            kills_acknowledged: meter
                .u64_counter("vigil_kills_acknowledged")
                .with_description("Kill commands acknowledged by gateways, by outcome")
                .build(),
            kill_latency: meter
                .f64_histogram("vigil_kill_latency")
                .with_unit("s")
                .with_description("Time from a kill command's issue to its acknowledgement by the gateway")
                .with_boundaries(KILL_LATENCY_BUCKETS.to_vec())
                .build(),
            agent_streams: meter
                .i64_up_down_counter("vigil_agent_streams")
                .with_description("Gateway agent links open on this replica")
                .build(),
            _sessions_live: meter
                .u64_observable_gauge("vigil_sessions_live")
                .with_description("Live sessions, by status")
                .with_callback(|observer| {
                    if LIVE.known.load(Ordering::Relaxed) {
                        observer.observe(
                            LIVE.active.load(Ordering::Relaxed),
                            &[KeyValue::new("status", "active")],
                        );
                        observer.observe(LIVE.idle.load(Ordering::Relaxed), &[KeyValue::new("status", "idle")]);
                    }
                })
                .build(),
        }
    })
}

/// A session start was decided (or failed to be).
pub(crate) fn admission<E>(decision: Result<&pb::AdmissionDecision, E>) {
    let outcome = match decision {
        Ok(decision) if decision.allowed => "allowed",
        Ok(_) => "denied",
        Err(_) => "error",
    };
    instruments().admissions.add(1, &[KeyValue::new("outcome", outcome)]);
}

/// A gateway acknowledged a kill; `command` is the command as carried on this link (its issue time
/// gives the latency), when this link carried it.
pub(crate) fn kill_acknowledged(outcome: pb::CommandOutcome, command: Option<&pb::TerminateCommand>, now: EpochMillis) {
    let instruments = instruments();
    let outcome = match outcome {
        pb::CommandOutcome::Done => "done",
        pb::CommandOutcome::NotFound => "not_found",
        pb::CommandOutcome::Failed | pb::CommandOutcome::Unspecified => "failed",
    };
    instruments
        .kills_acknowledged
        .add(1, &[KeyValue::new("outcome", outcome)]);
    let issued_at = command
        .and_then(|command| command.issued_at.as_ref())
        .and_then(vigil_proto::millis_from_timestamp);
    if let Some(issued_at) = issued_at {
        // Clocks of different replicas may disagree by a little: never a negative latency.
        let millis = (now - issued_at).max(0);
        instruments.kill_latency.record(millis as f64 / 1000.0, &[]);
    }
}

/// A gateway link opened on this replica.
pub(crate) fn agent_stream_opened() {
    instruments().agent_streams.add(1, &[]);
}

/// A gateway link closed on this replica.
pub(crate) fn agent_stream_closed() {
    instruments().agent_streams.add(-1, &[]);
}

/// Re-reads the live-session counts every `interval` until `shutdown`.
pub(crate) fn start_live_sessions_refresher(
    store: Arc<dyn SessionStore>,
    interval: Duration,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    // Registers the gauge now, so it is exported from the first collection on.
    instruments();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            match store.live_counts().await {
                Ok((active, idle)) => {
                    LIVE.active.store(active, Ordering::Relaxed);
                    LIVE.idle.store(idle, Ordering::Relaxed);
                    LIVE.known.store(true, Ordering::Relaxed);
                }
                Err(error) => tracing::debug!(%error, "could not count live sessions for the metrics; will retry"),
            }
        }
    })
}
