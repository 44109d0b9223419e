//! The services' warnings, counted: under a bench's load they can come by the thousand (pool
//! timeouts, slow statements), which would bury the progress lines, yet they are the evidence of
//! where the system strains. The table shows the counts; `RUST_LOG=warn` prints them as well.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Longest detail (an `error` or `code` field) kept with a message.
const DETAIL_CHARS: usize = 100;

/// Warnings and errors so far, by "level target: message (detail)".
static COUNTS: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// Counts every warning and error event.
pub struct WarningCounter;

impl<S: Subscriber> Layer<S> for WarningCounter {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let metadata = event.metadata();
        // More verbose levels compare greater.
        if *metadata.level() > Level::WARN {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut key = format!("{} {}: {}", metadata.level(), metadata.target(), fields.message);
        if let Some(detail) = fields.detail {
            let detail: String = detail.chars().take(DETAIL_CHARS).collect();
            key.push_str(&format!(" ({detail})"));
        }
        *COUNTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default() += 1;
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    /// The event's `error` (or gRPC `code`) field: what distinguishes one pool timeout from a
    /// missing table under the same message.
    detail: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "error" | "code" => self.detail = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

/// The counts so far.
pub fn snapshot() -> BTreeMap<String, usize> {
    COUNTS.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// What was counted between two snapshots, most frequent first.
pub fn since(before: &BTreeMap<String, usize>) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = snapshot()
        .into_iter()
        .filter_map(|(key, count)| {
            let new = count - before.get(&key).copied().unwrap_or(0);
            (new > 0).then_some((key, new))
        })
        .collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}
