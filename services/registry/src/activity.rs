//! Activity ingestion: agents report often, the database is written in batches.
//!
//! Reports are merged per session in memory (latest input, highest byte counts) and flushed every
//! `activity_flush_interval`, or sooner when the buffer holds `activity_flush_max` sessions. A flush
//! is one `apply_activity` call per slice of sessions, whatever the number of gateways: a large one
//! is cut into up to `activity_flush_writers` slices written at once, since one statement runs on
//! one core of the database. The slices hold different sessions, so they never wait on each other's
//! row locks. Sessions whose status flips back to ACTIVE are announced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use vigil_proto::v1::SessionEventKind;

use crate::domain::PendingActivity;
use crate::events::EventHub;
use crate::now_millis;
use crate::settings::RegistrySettings;
use crate::store::SessionStore;

/// The buffer between the links and the store.
#[derive(Clone)]
pub struct ActivityWriter {
    buffer: Arc<Mutex<HashMap<String, PendingActivity>>>,
    flush_now: Arc<Notify>,
    flush_max: usize,
    /// Session updates written so far (reports merged per session before a flush count once).
    written: Arc<AtomicU64>,
}

impl ActivityWriter {
    /// Starts the flushing task; it writes what is left when `shutdown` is cancelled, then stops.
    pub fn start(
        store: Arc<dyn SessionStore>,
        events: EventHub,
        settings: &RegistrySettings,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let writer = Self {
            buffer: Arc::default(),
            flush_now: Arc::new(Notify::new()),
            flush_max: settings.activity_flush_max,
            written: Arc::default(),
        };
        let task = tokio::spawn(writer.clone().run(store, events, settings.clone(), shutdown));
        (writer, task)
    }

    /// Buffers a report, merging it with earlier ones for the same session.
    pub fn record(&self, report: PendingActivity) {
        let len = {
            let mut buffer = self.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match buffer.get_mut(&report.session_id) {
                Some(pending) => merge(pending, &report),
                None => {
                    buffer.insert(report.session_id.clone(), report);
                }
            }
            buffer.len()
        };
        if len >= self.flush_max {
            self.flush_now.notify_one();
        }
    }

    /// Session updates written to the store since start: one per session per flush, whatever the
    /// number of reports merged into it (what `make bench` counts as ingested).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Removes and returns what is buffered for one session, for a write ahead of its end (the flush
    /// skips ended sessions, so whatever is still buffered when a session ends would be lost).
    pub fn take_session(&self, session_id: &str) -> Option<PendingActivity> {
        let mut buffer = self.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        buffer.remove(session_id)
    }

    fn take(&self) -> Vec<PendingActivity> {
        let mut buffer = self.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        buffer.drain().map(|(_, report)| report).collect()
    }

    async fn run(
        self,
        store: Arc<dyn SessionStore>,
        events: EventHub,
        settings: RegistrySettings,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(settings.activity_flush_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                () = shutdown.cancelled() => true,
                _ = ticker.tick() => false,
                () = self.flush_now.notified() => false,
            };
            let batch = self.take();
            let now = now_millis();
            let idle_after_ms = settings.idle_after_ms();
            let writes = slices(batch, settings.activity_flush_writers).into_iter().map(|slice| {
                let store = store.clone();
                async move {
                    let written = store.apply_activity(None, &slice, now, idle_after_ms).await;
                    (slice, written)
                }
            });
            for (slice, written) in futures::future::join_all(writes).await {
                match written {
                    Ok(reactivated) => {
                        self.written.fetch_add(slice.len() as u64, Ordering::Relaxed);
                        events.publish_all(SessionEventKind::Updated, &reactivated, now).await;
                    }
                    Err(error) => {
                        // Put the slice back (merged with anything newer) so a database blip loses nothing.
                        tracing::warn!(%error, sessions = slice.len(), "could not write activity; will retry");
                        for report in slice {
                            self.record(report);
                        }
                    }
                }
            }
            if stopping {
                break;
            }
        }
    }
}

/// The fewest sessions worth a slice (and a connection) of their own.
const MIN_SLICE: usize = 1_000;

/// `batch` cut into at most `writers` slices of at least [`MIN_SLICE`] sessions (one slice when
/// smaller; none when empty). The buffer holds one entry per session, so slices never share one.
fn slices(mut batch: Vec<PendingActivity>, writers: usize) -> Vec<Vec<PendingActivity>> {
    if batch.is_empty() {
        return Vec::new();
    }
    let count = batch.len().div_ceil(MIN_SLICE).clamp(1, writers.max(1));
    let size = batch.len().div_ceil(count);
    let mut slices = Vec::with_capacity(count);
    while batch.len() > size {
        let rest = batch.split_off(size);
        slices.push(std::mem::replace(&mut batch, rest));
    }
    slices.push(batch);
    slices
}

fn merge(pending: &mut PendingActivity, newer: &PendingActivity) {
    pending.last_input_at = pending.last_input_at.max(newer.last_input_at);
    pending.bytes_in = pending.bytes_in.max(newer.bytes_in);
    pending.bytes_out = pending.bytes_out.max(newer.bytes_out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reports(count: usize) -> Vec<PendingActivity> {
        (0..count)
            .map(|i| PendingActivity {
                session_id: format!("s{i}"),
                last_input_at: None,
                bytes_in: 0,
                bytes_out: 0,
            })
            .collect()
    }

    #[test]
    fn a_flush_is_cut_into_slices_of_at_least_a_thousand_sessions_up_to_the_writers() {
        let sizes = |count: usize, writers: usize| -> Vec<usize> {
            slices(reports(count), writers).iter().map(Vec::len).collect()
        };
        assert!(sizes(0, 4).is_empty());
        assert_eq!(sizes(10, 4), vec![10]);
        assert_eq!(sizes(2_500, 4), vec![834, 834, 832]);
        assert_eq!(sizes(10_000, 4), vec![2_500; 4]);
        assert_eq!(sizes(10_001, 1), vec![10_001]);
        // Every report once, in one slice.
        let ids: Vec<String> = slices(reports(4_321), 3)
            .into_iter()
            .flatten()
            .map(|report| report.session_id)
            .collect();
        assert_eq!(
            ids,
            reports(4_321).into_iter().map(|r| r.session_id).collect::<Vec<_>>()
        );
    }

    #[test]
    fn merging_keeps_the_latest_input_and_highest_counters() {
        let mut pending = PendingActivity {
            session_id: "s".into(),
            last_input_at: Some(10),
            bytes_in: 5,
            bytes_out: 50,
        };
        merge(
            &mut pending,
            &PendingActivity {
                session_id: "s".into(),
                last_input_at: None,
                bytes_in: 7,
                bytes_out: 40,
            },
        );
        assert_eq!(
            (pending.last_input_at, pending.bytes_in, pending.bytes_out),
            (Some(10), 7, 50)
        );
        merge(
            &mut pending,
            &PendingActivity {
                session_id: "s".into(),
                last_input_at: Some(20),
                bytes_in: 1,
                bytes_out: 1,
            },
        );
        assert_eq!(pending.last_input_at, Some(20));
    }
}
