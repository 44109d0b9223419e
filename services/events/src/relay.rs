//! The relay: reads a service's outbox and delivers to every configured sink, at least once, in
//! order per session.
//!
//! Each sink has a cursor row (`<service>_event_cursors`). Whichever replica holds the row's
//! lease delivers that sink; the lease is renewed with every round and taken over by another
//! replica when it runs out (a dead relay's sinks resume within `events.lease_ttl`), so no leader
//! is needed and different sinks may be served by different replicas. A round reads a batch after
//! the cursor, delivers it — events of one session (else one subject) one after another, different
//! sessions up to the sink's concurrency — and moves the cursor past the longest delivered prefix.
//! A failed event stops its session for the round; the round is retried after a backoff
//! (exponential, jittered, at least what `Retry-After` asked). Events delivered beyond the prefix
//! are remembered by this relay and not sent again; a relay that dies sends them again (receivers
//! deduplicate on the event id). Rejected events (HTTP 4xx other than 408/429) are counted,
//! recorded as the sink's last error, and passed over.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::Rng;
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use vigil_core::EpochMillis;
use vigil_runtime::ServiceResult;

use crate::config::{EventsConfig, SinkConfig};
use crate::event::Event;
use crate::metrics::SinkMetrics;
use crate::outbox::{Outbox, OutboxTables, Position, Progress, Stored};
use crate::sink::{Outcome, Sink};
use crate::status::RelayView;

/// How often a sink's backlog is re-counted for the metric (at most).
const BACKLOG_REFRESH: Duration = Duration::from_secs(1);

/// A running relay; [`RelayHandle::stopped`] waits for it after its shutdown token is cancelled.
pub struct RelayHandle {
    tasks: Vec<JoinHandle<()>>,
    view: RelayView,
}

impl RelayHandle {
    /// The relay as status sees it (for [`crate::status::Relays`]).
    pub fn view(&self) -> RelayView {
        self.view.clone()
    }

    /// Waits for every task (call after cancelling the shutdown token).
    pub async fn stopped(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Stops at once, as a crash would: no lease is released, rounds in flight are dropped.
    pub fn abort(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

struct SinkRunner {
    name: String,
    config: SinkConfig,
    sink: Sink,
    metrics: SinkMetrics,
}

struct Shared {
    outbox: Outbox,
    config: EventsConfig,
    holder: String,
}

/// Starts the relay of `service`'s outbox on `db`: one task per sink, and one that prunes.
/// With no sinks configured only the pruning runs (events are kept for `events.retention`).
pub fn spawn(
    db: DatabaseConnection,
    service: &str,
    config: &EventsConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<RelayHandle> {
    config.validate().map_err(anyhow::Error::msg)?;
    let tables = OutboxTables::new(service);
    let shared = Arc::new(Shared {
        outbox: Outbox::new(db, tables),
        config: config.clone(),
        holder: format!("{service}-{}", uuid::Uuid::new_v4().simple()),
    });
    let mut tasks = Vec::new();
    for (name, sink_config) in &config.sinks {
        let runner = SinkRunner {
            name: name.clone(),
            config: sink_config.clone(),
            sink: Sink::from_config(sink_config)?,
            metrics: SinkMetrics::new(service, name),
        };
        tasks.push(tokio::spawn(run_sink(shared.clone(), runner, shutdown.clone())));
    }
    let view = RelayView::new(shared.outbox.clone(), config.clone());
    tasks.push(tokio::spawn(prune(shared, shutdown)));
    Ok(RelayHandle { tasks, view })
}

/// What a round came to.
enum Round {
    /// Nothing to deliver.
    Idle,
    /// Everything read was delivered: go on at once.
    Done,
    /// Another replica holds the sink.
    NotHolder,
    /// Something failed: wait, at least this long.
    Stalled(Option<Duration>),
}

/// Exponential backoff with full jitter between half and the whole step.
fn backoff(config: &SinkConfig, failures: u32) -> Duration {
    let step = config
        .min_backoff
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(20)))
        .min(config.max_backoff);
    let millis = u64::try_from(step.as_millis()).unwrap_or(u64::MAX).max(2);
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
}

async fn run_sink(shared: Arc<Shared>, runner: SinkRunner, shutdown: CancellationToken) {
    let mut ahead: HashSet<Position> = HashSet::new();
    let mut failures = 0u32;
    let mut wait = Duration::ZERO;
    let mut counted = Instant::now() - BACKLOG_REFRESH;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
        let round = round(&shared, &runner, &mut ahead, &shutdown).await;
        wait = match round {
            Ok(Round::Done) => {
                failures = 0;
                Duration::ZERO
            }
            Ok(Round::Idle) => {
                failures = 0;
                shared.config.poll_interval
            }
            Ok(Round::NotHolder) => shared.config.poll_interval.max(shared.config.lease_ttl / 4),
            Ok(Round::Stalled(asked)) => {
                failures = failures.saturating_add(1);
                backoff(&runner.config, failures).max(asked.unwrap_or_default())
            }
            Err(error) => {
                tracing::warn!(sink = %runner.name, %error, "event relay round failed");
                failures = failures.saturating_add(1);
                backoff(&runner.config, failures)
            }
        };
        if counted.elapsed() >= BACKLOG_REFRESH {
            counted = Instant::now();
            refresh_backlog(&shared, &runner).await;
        }
    }
    if let Err(error) = shared.outbox.release(&runner.name, &shared.holder).await {
        tracing::debug!(sink = %runner.name, %error, "could not release the sink's lease");
    }
}

async fn refresh_backlog(shared: &Shared, runner: &SinkRunner) {
    let cursors = match shared.outbox.cursors().await {
        Ok(cursors) => cursors,
        Err(_) => return,
    };
    let at = cursors
        .iter()
        .find(|row| row.sink == runner.name)
        .map(|row| row.position)
        .unwrap_or_default();
    if let Ok(backlog) = shared.outbox.count_after(at).await {
        runner.metrics.set_backlog(backlog);
    }
}

fn lease_until(shared: &Shared, now: EpochMillis) -> EpochMillis {
    now.saturating_add(i64::try_from(shared.config.lease_ttl.as_millis()).unwrap_or(i64::MAX))
}

/// How each event of a batch ended this round.
#[derive(Debug, Clone, PartialEq)]
enum Fate {
    /// Not tried (its session stalled, or the round ran out of time).
    Open,
    /// Delivered now (counted), or before (by this relay, beyond the cursor), or filtered out.
    Passed {
        counted: bool,
    },
    Rejected(String),
    Failed {
        error: String,
        after: Option<Duration>,
    },
}

async fn round(
    shared: &Shared,
    runner: &SinkRunner,
    ahead: &mut HashSet<Position>,
    shutdown: &CancellationToken,
) -> ServiceResult<Round> {
    let now = vigil_core::now_millis();
    let Some(cursor) = shared
        .outbox
        .lease(&runner.name, &shared.holder, now, lease_until(shared, now))
        .await?
    else {
        ahead.clear();
        return Ok(Round::NotHolder);
    };
    ahead.retain(|position| *position > cursor);
    let batch = shared.outbox.read_after(cursor, shared.config.batch).await?;
    if batch.is_empty() {
        return Ok(Round::Idle);
    }
    // Half the lease for delivering: the rest is margin to record the result before it runs out.
    let deadline = Instant::now() + shared.config.lease_ttl / 2;
    let fates = deliver_batch(runner, &batch, ahead, deadline, shutdown).await;

    let mut progress = Progress {
        position: cursor,
        ..Progress::default()
    };
    let mut prefix = true;
    let mut stalled = false;
    let mut asked: Option<Duration> = None;
    for (stored, fate) in batch.iter().zip(&fates) {
        match fate {
            Fate::Passed { counted } => progress.delivered += u64::from(*counted),
            Fate::Rejected(error) => {
                progress.failed += 1;
                progress.error = Some(format!("event {} rejected: {error}", stored.event.id));
            }
            Fate::Failed { error, after } => {
                stalled = true;
                asked = asked.max(*after);
                progress.error = Some(format!("event {}: {error}", stored.event.id));
            }
            Fate::Open => stalled = true,
        }
        let finished = matches!(fate, Fate::Passed { .. } | Fate::Rejected(_));
        if prefix && finished {
            progress.position = stored.position;
        } else {
            prefix = false;
            if finished {
                ahead.insert(stored.position);
            }
        }
    }
    let now = vigil_core::now_millis();
    if !shared
        .outbox
        .advance(&runner.name, &shared.holder, &progress, now, lease_until(shared, now))
        .await?
    {
        ahead.clear();
        return Ok(Round::NotHolder);
    }
    Ok(if stalled { Round::Stalled(asked) } else { Round::Done })
}

/// Delivers `batch`: one session's events in order, sessions side by side up to the sink's
/// concurrency. Returns each event's fate, in batch order.
async fn deliver_batch(
    runner: &SinkRunner,
    batch: &[Stored],
    ahead: &HashSet<Position>,
    deadline: Instant,
    shutdown: &CancellationToken,
) -> Vec<Fate> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for (index, stored) in batch.iter().enumerate() {
        let group = *by_key.entry(stored.event.ordering_key()).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[group].push(index);
    }
    let limit = runner.sink.concurrency(runner.config.concurrency);
    let throttled = AtomicBool::new(false);
    let results: Vec<Vec<(usize, Fate)>> = futures::stream::iter(groups)
        .map(|group| deliver_group(runner, batch, group, ahead, (deadline, &throttled), shutdown))
        .buffer_unordered(limit)
        .collect()
        .await;
    let mut fates = vec![Fate::Open; batch.len()];
    for (index, fate) in results.into_iter().flatten() {
        fates[index] = fate;
    }
    fates
}

async fn deliver_group(
    runner: &SinkRunner,
    batch: &[Stored],
    group: Vec<usize>,
    ahead: &HashSet<Position>,
    (deadline, throttled): (Instant, &AtomicBool),
    shutdown: &CancellationToken,
) -> Vec<(usize, Fate)> {
    let mut fates = Vec::with_capacity(group.len());
    for index in group {
        let stored = &batch[index];
        if ahead.contains(&stored.position) || !runner.config.accepts(&stored.event) {
            fates.push((index, Fate::Passed { counted: false }));
            continue;
        }
        if Instant::now() >= deadline || shutdown.is_cancelled() || throttled.load(Ordering::Relaxed) {
            break;
        }
        let fate = deliver_one(runner, stored).await;
        let stop = matches!(fate, Fate::Failed { .. });
        if matches!(fate, Fate::Failed { after: Some(_), .. }) {
            // The receiver asked for a pause (`Retry-After`): no more deliveries this round.
            throttled.store(true, Ordering::Relaxed);
        }
        fates.push((index, fate));
        if stop {
            break;
        }
    }
    fates
}

async fn deliver_one(runner: &SinkRunner, stored: &Stored) -> Fate {
    let event: &Event = &stored.event;
    let span =
        tracing::info_span!("events.deliver", sink = %runner.name, event.id = %event.id, event.kind = %event.kind);
    let span = vigil_runtime::telemetry::propagation::follow(span, &stored.trace_context);
    match runner.sink.deliver(event).instrument(span).await {
        Outcome::Delivered => {
            let latency = vigil_core::now_millis().saturating_sub(event.time) as f64 / 1000.0;
            runner.metrics.delivered(latency);
            Fate::Passed { counted: true }
        }
        Outcome::Rejected(error) => {
            tracing::warn!(sink = %runner.name, event = %event.id, %error, "event rejected by the sink; not retried");
            runner.metrics.failed("rejected");
            Fate::Rejected(error)
        }
        Outcome::Retry { error, after } => {
            tracing::debug!(sink = %runner.name, event = %event.id, %error, "event delivery failed; will retry");
            runner.metrics.failed("retry");
            Fate::Failed { error, after }
        }
    }
}

/// Deletes expired events, and those every sink is past, every `prune_interval`.
async fn prune(shared: Arc<Shared>, shutdown: CancellationToken) {
    let sinks: Vec<String> = shared.config.sinks.keys().cloned().collect();
    let retention = i64::try_from(shared.config.retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(shared.config.prune_interval) => {}
        }
        let cutoff = vigil_core::now_millis().saturating_sub(retention);
        match shared.outbox.prune(cutoff, &sinks).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, outbox = shared.outbox.tables().outbox(), "pruned events"),
            Err(error) => tracing::warn!(%error, "could not prune the event outbox"),
        }
    }
}
