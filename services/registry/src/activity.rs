//! Activity ingestion: agents report often, the database is written in batches.
//!
//! Reports are merged per session in memory (latest input, highest byte counts) and flushed every
//! `activity_flush_interval`, or sooner when the buffer holds `activity_flush_max` sessions. A flush
//! is one `apply_activity` call, whatever the number of gateways. Sessions whose status flips back to
//! ACTIVE are announced.

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
            if !batch.is_empty() {
                let now = now_millis();
                match store.apply_activity(None, &batch, now, settings.idle_after_ms()).await {
                    Ok(reactivated) => {
                        self.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        events.publish_all(SessionEventKind::Updated, &reactivated, now).await;
                    }
                    Err(error) => {
                        // Put the batch back (merged with anything newer) so a database blip loses nothing.
                        tracing::warn!(%error, sessions = batch.len(), "could not write activity; will retry");
                        for report in batch {
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

fn merge(pending: &mut PendingActivity, newer: &PendingActivity) {
    pending.last_input_at = pending.last_input_at.max(newer.last_input_at);
    pending.bytes_in = pending.bytes_in.max(newer.bytes_in);
    pending.bytes_out = pending.bytes_out.max(newer.bytes_out);
}

#[cfg(test)]
mod tests {
    use super::*;

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
