//! Gateways gone silent: their sessions end, so the list never shows sessions nobody supervises.
//!
//! A gateway is alive while it is heard from. Each replica notes, in memory, when each gateway it
//! holds a link to last said anything (any message counts: heartbeats fill the silences), and writes
//! those times to `gateways.last_seen_at` in batched statements, each gateway's at most once per
//! `seen_interval` and spread over it (the link's opening writes it too). Every
//! replica then looks, every `check_interval`, for gateways not heard from for longer than
//! `gateway_grace` — whichever replica held them, including one that died — and ends their live
//! sessions with reason GATEWAY_LOST. The store makes that safe to run everywhere at once (each
//! session is ended by one replica), so no leader is needed.
//!
//! A gateway found lost is also told, on its bus channel, to reconnect: if a link to it is still
//! open somewhere (a stalled agent, or a replica that could not write to the database for a while),
//! the agent's next hello reconciles. In that hello, sessions the gateway still holds that were
//! ended as lost come back live (the snapshot is the truth of what the gateway holds); the others
//! stay ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prost::Message;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use vigil_proto::v1 as pb;

use vigil_runtime::bus::ControlBus;

use crate::admission::SlotReleaser;
use crate::domain::{EndReason, EpochMillis, SessionEnd};
use crate::ending::announce_ended;
use crate::events::EventHub;
use crate::now_millis;
use crate::store::SessionStore;

/// Gateways handled per statement when ending lost ones; a larger backlog is worked off in a loop.
const LOST_BATCH: u64 = 100;
/// Floor of the derived intervals, so a tiny grace period cannot make the replica spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// When each gateway linked to this replica was last heard from, and what of it was written.
#[derive(Debug, Default)]
pub(crate) struct SeenTracker {
    gateways: Mutex<HashMap<String, Seen>>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    heard: EpochMillis,
    /// The time last written to the store; `None` before the first write, or after one failed.
    written: Option<EpochMillis>,
}

impl SeenTracker {
    fn gateways(&self) -> MutexGuard<'_, HashMap<String, Seen>> {
        self.gateways.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that the gateway said something at `at`. Cheap: called for every message.
    pub(crate) fn heard(&self, gateway_id: &str, at: EpochMillis) {
        let mut gateways = self.gateways();
        match gateways.get_mut(gateway_id) {
            Some(seen) => seen.heard = seen.heard.max(at),
            None => {
                gateways.insert(
                    gateway_id.to_owned(),
                    Seen {
                        heard: at,
                        written: None,
                    },
                );
            }
        }
    }

    /// Notes that the gateway's link opened at `at`, which wrote that time to the store: written,
    /// so the writer does not write it again at once.
    pub(crate) fn connected(&self, gateway_id: &str, at: EpochMillis) {
        let mut gateways = self.gateways();
        let seen = gateways.entry(gateway_id.to_owned()).or_insert(Seen {
            heard: at,
            written: None,
        });
        seen.heard = seen.heard.max(at);
        seen.written = Some(at);
    }

    /// Gateways remembered (linked here, or heard from lately).
    fn len(&self) -> usize {
        self.gateways().len()
    }

    /// Up to `limit` gateways to write, each with the time it was last heard from: those never
    /// written, and those whose written time is `every` or more behind. They count as written from
    /// now on ([`SeenTracker::failed`] undoes that). Forgets gateways written up to date and not
    /// heard from since `forget_before` (their links are gone; the store has their last time).
    fn due(&self, every: EpochMillis, limit: usize, forget_before: EpochMillis) -> Vec<(String, EpochMillis)> {
        let mut gateways = self.gateways();
        gateways
            .retain(|_, seen| seen.heard >= forget_before || seen.written.is_none_or(|written| written < seen.heard));
        let mut due = Vec::new();
        for (gateway_id, seen) in gateways.iter_mut() {
            if due.len() >= limit {
                break;
            }
            let behind = match seen.written {
                None => true,
                Some(written) => seen.heard > written && seen.heard - written >= every,
            };
            if behind {
                due.push((gateway_id.clone(), seen.heard));
                seen.written = Some(seen.heard);
            }
        }
        due
    }

    /// A batch from [`SeenTracker::due`] could not be written: its gateways are due again.
    fn failed(&self, batch: &[(String, EpochMillis)]) {
        let mut gateways = self.gateways();
        for (gateway_id, _) in batch {
            if let Some(seen) = gateways.get_mut(gateway_id) {
                seen.written = None;
            }
        }
    }
}

/// How far behind a gateway's written time may fall: a third of the grace period (so a live
/// gateway's row is never close to looking lost), or `gateway_seen_interval` if shorter.
pub(crate) fn seen_interval(gateway_seen_interval: Duration, gateway_grace: Duration) -> Duration {
    gateway_seen_interval.min(gateway_grace / 3).max(MIN_INTERVAL)
}

/// How often each replica looks for lost gateways.
pub(crate) fn check_interval(gateway_grace: Duration) -> Duration {
    (gateway_grace / 3).max(MIN_INTERVAL)
}

/// Ticks of the writer per `seen_interval`: each tick writes the gateways that fell due since the
/// last, so the writes are spread over the interval rather than one statement for every gateway
/// (at 10,000 gateways that statement took ~60 ms of a core every interval, and requests that
/// met it waited).
const SEEN_TICKS_PER_INTERVAL: u32 = 30;
/// Gateways written per statement at most, unless more are needed to keep up: each tick may write
/// twice its share of the gateways remembered, so a backlog (a reconnect storm) drains in half an
/// interval.
const SEEN_BATCH: usize = 500;

fn seen_batch(remembered: usize) -> usize {
    SEEN_BATCH.max(remembered * 2 / SEEN_TICKS_PER_INTERVAL as usize)
}

/// Writes the times gateways were heard from, each gateway at most once per `interval` (and the
/// first time at once), until `shutdown`, then every time not yet written.
pub(crate) async fn run_seen_writer(
    store: Arc<dyn SessionStore>,
    tracker: Arc<SeenTracker>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let every = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    let mut ticker = tokio::time::interval((interval / SEEN_TICKS_PER_INTERVAL).max(MIN_INTERVAL));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            _ = ticker.tick() => false,
        };
        let forget_before = now_millis().saturating_sub(every.saturating_mul(4));
        let (every, limit) = if stopping {
            (0, usize::MAX)
        } else {
            (every, seen_batch(tracker.len()))
        };
        let batch = tracker.due(every, limit, forget_before);
        if !batch.is_empty()
            && let Err(error) = store.gateways_seen(&batch).await
        {
            tracing::warn!(%error, gateways = batch.len(), "could not record when gateways were last heard from; will retry");
            tracker.failed(&batch);
        }
        if stopping {
            return;
        }
    }
}

/// The lost-gateway check: ends the sessions of gateways silent for longer than `grace`.
pub(crate) struct LostGatewayCheck {
    pub store: Arc<dyn SessionStore>,
    pub bus: Arc<dyn ControlBus>,
    pub events: EventHub,
    pub releaser: SlotReleaser,
    pub grace: Duration,
}

impl LostGatewayCheck {
    /// Checks every `check_interval` until `shutdown`.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(check_interval(self.grace));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            while self.end_lost_batch().await {}
        }
    }

    /// Ends one batch of lost gateways' sessions; true when there may be more.
    async fn end_lost_batch(&self) -> bool {
        let grace = self.grace;
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let now = now_millis();
        let end = SessionEnd {
            ended_at: now,
            reason: EndReason::GatewayLost,
            detail: format!("the gateway was not heard from for more than {grace:?}"),
        };
        match self
            .store
            .end_lost_gateways(now.saturating_sub(grace_ms), &end, LOST_BATCH)
            .await
        {
            Ok(lost) if lost.gateway_ids.is_empty() => false,
            Ok(lost) => {
                tracing::warn!(
                    gateways = ?lost.gateway_ids,
                    sessions = lost.ended.len(),
                    ?grace,
                    "gateways lost: not heard from within the grace period; their sessions are ended"
                );
                // The reconnection request first: an agent that reconnects in reaction to the
                // announcement must not be told to reconnect again afterwards.
                for gateway_id in &lost.gateway_ids {
                    ask_to_reconnect(self.bus.as_ref(), gateway_id).await;
                }
                announce_ended(&self.events, &self.releaser, &lost.ended, now).await;
                (lost.gateway_ids.len() as u64) >= LOST_BATCH
            }
            Err(error) => {
                tracing::warn!(%error, "could not look for lost gateways; will retry");
                false
            }
        }
    }
}

/// Tells a link still open to a lost gateway, wherever it is, to have its agent reconnect, so that
/// the agent's hello brings back the sessions it still holds.
async fn ask_to_reconnect(bus: &dyn ControlBus, gateway_id: &str) {
    let dispatch = pb::GatewayDispatch {
        messages: vec![pb::ControllerMessage {
            trace_context: Default::default(),
            message: Some(pb::controller_message::Message::Reconnect(pb::Reconnect {
                reason: "the registry had not heard from this gateway within its grace period".into(),
            })),
        }],
        trace_context: Default::default(),
    };
    let channel = vigil_core::topics::gateway(gateway_id);
    if let Err(error) = bus.publish(&channel, dispatch.encode_to_vec().into()).await {
        // Nothing may be listening anyway; a link that missed it is closed by its own silence timer.
        tracing::debug!(gateway = gateway_id, %error, "could not ask a lost gateway to reconnect");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut batch: Vec<(String, EpochMillis)>) -> Vec<(String, EpochMillis)> {
        batch.sort();
        batch
    }

    #[test]
    fn the_tracker_writes_each_gateway_once_per_interval_and_retries_a_failed_write() {
        let tracker = SeenTracker::default();
        tracker.heard("gw-1", 100);
        tracker.heard("gw-1", 90);
        tracker.heard("gw-2", 50);
        // Never written: due at once, with the latest time heard.
        let batch = sorted(tracker.due(1_000, 10, 0));
        assert_eq!(batch, [("gw-1".to_owned(), 100), ("gw-2".to_owned(), 50)]);
        assert!(tracker.due(1_000, 10, 0).is_empty());
        // Heard again, but less than an interval after the written time: not yet.
        tracker.heard("gw-1", 1_099);
        assert!(tracker.due(1_000, 10, 0).is_empty());
        tracker.heard("gw-1", 1_100);
        assert_eq!(tracker.due(1_000, 10, 0), [("gw-1".to_owned(), 1_100)]);
        // A failed write makes its gateways due again, whatever the interval.
        tracker.heard("gw-2", 60);
        let batch = sorted(tracker.due(0, 10, 0));
        assert_eq!(batch, [("gw-2".to_owned(), 60)]);
        tracker.failed(&batch);
        assert_eq!(tracker.due(1_000, 10, 0), [("gw-2".to_owned(), 60)]);
    }

    #[test]
    fn the_tracker_writes_at_most_a_batch_per_tick_and_forgets_gateways_gone_quiet() {
        let tracker = SeenTracker::default();
        for i in 0..5 {
            tracker.heard(&format!("gw-{i}"), 100 + i);
        }
        assert_eq!(tracker.due(1_000, 3, 0).len(), 3);
        assert_eq!(tracker.due(1_000, 3, 0).len(), 2);
        // Written up to date and quiet since before 200: forgotten. Not yet written: kept.
        tracker.heard("gw-late", 150);
        assert!(tracker.due(1_000, 10, 200).iter().any(|(id, _)| id == "gw-late"));
        tracker.heard("gw-9", 300);
        assert_eq!(tracker.due(0, 10, 200), [("gw-9".to_owned(), 300)]);
        let remembered = tracker.gateways.lock().unwrap().len();
        assert_eq!(remembered, 1, "only the gateway heard since 200 is remembered");
    }

    #[test]
    fn a_link_opening_counts_as_written_and_the_batch_keeps_up() {
        let tracker = SeenTracker::default();
        tracker.connected("gw-1", 100);
        tracker.heard("gw-1", 100);
        tracker.heard("gw-1", 600);
        assert!(tracker.due(1_000, 10, 0).is_empty(), "the link's opening wrote 100");
        tracker.heard("gw-1", 1_100);
        assert_eq!(tracker.due(1_000, 10, 0), [("gw-1".to_owned(), 1_100)]);
        assert_eq!(seen_batch(1_000), SEEN_BATCH);
        assert_eq!(seen_batch(30_000), 2_000);
    }

    #[test]
    fn intervals_follow_the_grace_period() {
        let grace = Duration::from_secs(60);
        assert_eq!(seen_interval(Duration::from_secs(5), grace), Duration::from_secs(5));
        assert_eq!(seen_interval(Duration::from_secs(30), grace), Duration::from_secs(20));
        assert_eq!(check_interval(grace), Duration::from_secs(20));
        assert_eq!(check_interval(Duration::from_millis(3)), MIN_INTERVAL);
    }
}
