//! Getting commands to the gateways: one bus message per gateway, and re-sending from the
//! database whatever is not acknowledged in time.
//!
//! The bus is the fast path and forgets; the database is the memory. Every open command has a
//! `next_attempt_at`; the redelivery loop on each replica claims the due ones (each is claimed by
//! one replica) and publishes them again. So a kill published while Redis was down, or while the
//! gateway was offline, or lost with a registry replica, is sent again until acknowledged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use vigil_core::topics;
use vigil_proto::v1 as pb;
use vigil_runtime::backoff::Backoff;
use vigil_runtime::bus::ControlBus;

use crate::convert::command_to_proto;
use crate::domain::CommandRecord;
use crate::now_millis;
use crate::settings::TerminationSettings;
use crate::store::TerminationStore;

/// Gateways published to at once.
const PUBLISH_CONCURRENCY: usize = 64;

/// Publishes commands, one dispatch per gateway. Returns how many gateways could not be reached
/// over the bus (their commands stay due and are re-sent by the redelivery loop).
///
/// Each publication is a `termination.publish` span (a child of the current span) whose context
/// travels in the dispatch, so the registry's forwarding and the agent's handling join the trace.
pub async fn publish(bus: &Arc<dyn ControlBus>, commands: &[CommandRecord]) -> usize {
    let mut by_gateway: BTreeMap<String, Vec<pb::ControllerMessage>> = BTreeMap::new();
    for command in commands.iter().filter(|command| command.is_open()) {
        by_gateway
            .entry(command.gateway_id.clone())
            .or_default()
            .push(pb::ControllerMessage {
                trace_context: Default::default(),
                message: Some(pb::controller_message::Message::Terminate(command_to_proto(command))),
            });
    }
    let publishes = by_gateway.into_iter().map(|(gateway_id, messages)| {
        let bus = bus.clone();
        let span = tracing::info_span!(
            "termination.publish",
            otel.kind = "producer",
            gateway = %gateway_id,
            commands = messages.len(),
        );
        let trace_context = vigil_runtime::telemetry::propagation::inject_map(&span.context());
        async move {
            let payload = pb::GatewayDispatch {
                trace_context,
                messages,
            }
            .encode_to_vec();
            match bus.publish(&topics::gateway(&gateway_id), payload.into()).await {
                Ok(()) => 0,
                Err(error) => {
                    tracing::warn!(gateway = %gateway_id, %error, "could not publish commands; they will be re-sent");
                    1
                }
            }
        }
        .instrument(span)
    });
    let results: Vec<usize> = futures::stream::iter(publishes)
        .buffer_unordered(PUBLISH_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().sum()
}

/// Share of a re-send delay drawn at random either way (±20 %), so the commands of one outage,
/// claimed together, are not all re-sent again on the same beat by every replica.
const RESEND_JITTER: f64 = 0.2;

/// `delay_ms` moved by up to ±[`RESEND_JITTER`] of itself, at random.
fn jittered(delay_ms: i64) -> i64 {
    let spread = (delay_ms as f64 * RESEND_JITTER) as i64;
    if spread <= 0 {
        return delay_ms;
    }
    delay_ms.saturating_add(rand::random_range(-spread..=spread))
}

/// Re-sends due commands until `shutdown`.
pub async fn run_redelivery(
    store: Arc<dyn TerminationStore>,
    bus: Arc<dyn ControlBus>,
    settings: TerminationSettings,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(settings.redelivery_scan_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let retry_after = {
        let settings = settings.clone();
        move |attempts: u32| jittered(settings.retry_after_ms(attempts))
    };
    // While the database is down: from 100 ms, doubling, to the scan interval (at least 1 s).
    let mut backoff = Backoff::new(
        Duration::from_millis(100),
        settings.redelivery_scan_interval.max(Duration::from_secs(1)),
    );
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // The safety net for early reports: normally applied right after their termination is
        // recorded, here whatever that missed (a failure in between), and the expired forgotten.
        let settled = store.settle_early_reports(now_millis()).await;
        let claimed = match settled {
            Ok(_) => store
                .claim_due(now_millis(), settings.redelivery_batch, &retry_after)
                .await
                .map_err(|error| format!("could not look for commands to re-send: {error}")),
            Err(error) => Err(format!("could not apply early reports: {error}")),
        };
        match claimed {
            Ok(due) => {
                let failures = backoff.succeed();
                if failures > 0 {
                    tracing::info!(failures, "the database answers again; redelivery resumed");
                }
                if !due.is_empty() {
                    tracing::info!(commands = due.len(), "re-sending unacknowledged commands");
                    publish(&bus, &due)
                        .instrument(tracing::info_span!("termination.redelivery", commands = due.len()))
                        .await;
                }
            }
            Err(error) => {
                // One warning per outage; the next tries are jittered so replicas do not return in step.
                if backoff.failures() == 0 {
                    tracing::warn!(%error, "redelivery paused; will retry with back-off");
                } else {
                    tracing::debug!(%error, "redelivery still paused");
                }
                let delay = backoff.fail();
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resend_delays_are_jittered_within_twenty_percent() {
        let delays: Vec<i64> = (0..1000).map(|_| jittered(5_000)).collect();
        assert!(delays.iter().all(|delay| (4_000..=6_000).contains(delay)), "{delays:?}");
        // Spread over the range, not stuck at one value.
        assert!(delays.iter().any(|delay| *delay < 4_500), "never early: {delays:?}");
        assert!(delays.iter().any(|delay| *delay > 5_500), "never late: {delays:?}");
        // Nothing to spread on a zero delay, and no overflow at the top.
        assert_eq!(jittered(0), 0);
        assert!(jittered(i64::MAX) >= i64::MAX - i64::MAX / 5);
    }
}
