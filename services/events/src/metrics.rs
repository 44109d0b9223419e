//! Per-sink metrics, on the global meter provider (`vigil_runtime::telemetry`):
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `vigil_events_delivered` (`_total` in Prometheus) | counter | `service`, `sink` |
//! | `vigil_events_failed` (`_total`) | counter | `service`, `sink`, `outcome` (`retry`, `rejected`) |
//! | `vigil_events_backlog` | gauge | `service`, `sink`: events written and not yet delivered |
//! | `vigil_event_delivery_latency` (`_seconds`) | histogram | `service`, `sink`: from the change to its delivery |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, ObservableGauge};

/// Delivery latencies in seconds: loopback to a sink that was down for an hour.
const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0, 3600.0,
];

type Backlogs = Arc<Mutex<Vec<(Vec<KeyValue>, Arc<AtomicU64>)>>>;

struct Instruments {
    delivered: Counter<u64>,
    failed: Counter<u64>,
    latency: Histogram<f64>,
    backlogs: Backlogs,
    _backlog: ObservableGauge<u64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("vigil-events");
        let backlogs: Backlogs = Arc::default();
        let observed = backlogs.clone();
        Instruments {
            delivered: meter
                .u64_counter("vigil_events_delivered")
                .with_description("Events delivered to a sink")
                .build(),
            failed: meter
                .u64_counter("vigil_events_failed")
                .with_description("Failed delivery attempts (retry) and events refused for good (rejected)")
                .build(),
            latency: meter
                .f64_histogram("vigil_event_delivery_latency")
                .with_unit("s")
                .with_description("From the change that caused an event to its delivery")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            _backlog: meter
                .u64_observable_gauge("vigil_events_backlog")
                .with_description("Events written and not yet delivered to a sink")
                .with_callback(move |gauge| {
                    for (labels, value) in observed.lock().expect("backlog list").iter() {
                        gauge.observe(value.load(Ordering::Relaxed), labels);
                    }
                })
                .build(),
            backlogs,
        }
    })
}

/// The metrics of one sink of one service.
#[derive(Clone)]
pub struct SinkMetrics {
    labels: Vec<KeyValue>,
    backlog: Arc<AtomicU64>,
}

impl SinkMetrics {
    pub fn new(service: &str, sink: &str) -> Self {
        let labels = vec![
            KeyValue::new("service", service.to_owned()),
            KeyValue::new("sink", sink.to_owned()),
        ];
        let backlog = Arc::new(AtomicU64::new(0));
        instruments()
            .backlogs
            .lock()
            .expect("backlog list")
            .push((labels.clone(), backlog.clone()));
        Self { labels, backlog }
    }

    pub fn delivered(&self, latency_seconds: f64) {
        let instruments = instruments();
        instruments.delivered.add(1, &self.labels);
        instruments.latency.record(latency_seconds.max(0.0), &self.labels);
    }

    pub fn failed(&self, outcome: &'static str) {
        let mut labels = self.labels.clone();
        labels.push(KeyValue::new("outcome", outcome));
        instruments().failed.add(1, &labels);
    }

    pub fn set_backlog(&self, events: u64) {
        self.backlog.store(events, Ordering::Relaxed);
    }

    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }
}
