//! Turning quiet sessions IDLE, on time, on every replica at once.
//!
//! Each replica scans every `idle_scan_interval`; the store's `mark_idle` hands each newly idle
//! session to exactly one replica, which announces it. No leader is needed.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use vigil_proto::v1::SessionEventKind;

use crate::events::EventHub;
use crate::now_millis;
use crate::settings::RegistrySettings;
use crate::store::SessionStore;

/// Sessions turned idle per statement; a larger backlog is worked off in a loop.
const BATCH: u64 = 1000;

/// Runs until `shutdown`.
pub async fn run_idle_marker(
    store: Arc<dyn SessionStore>,
    events: EventHub,
    settings: RegistrySettings,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(settings.idle_scan_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        loop {
            let now = now_millis();
            match store.mark_idle(now - settings.idle_after_ms(), BATCH).await {
                Ok(idle) => {
                    events.publish_all(SessionEventKind::Updated, &idle, now).await;
                    if (idle.len() as u64) < BATCH {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "could not mark idle sessions; will retry");
                    break;
                }
            }
        }
    }
}
