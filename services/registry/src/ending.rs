//! Kills' ends, written by group commit, retried by the replica until written.
//!
//! Every acknowledged kill ends its session in the store. One UPDATE per acknowledgement made an
//! end-all of 100,000 sessions 100,000 statements competing for the replica's pool (and starving
//! every other write for a minute). Here the links hand their ends to one writer, which writes
//! whatever is waiting in one statement, then the next batch: alone, an end is written at once;
//! under an end-all, batches grow with the load.
//!
//! A link does not wait for its end: it hands over the end with the acknowledgement and goes on
//! reading its agent. Once the end is committed the writer announces it and reports the
//! acknowledgement to termination — in that order, so termination never shows a kill acknowledged
//! whose session the registry still shows live. While the database is away the writer keeps the
//! ends and retries them (backing off, jittered), so an acknowledgement received during an outage
//! is recorded within about a second of the database's return, instead of waiting for
//! termination to re-send the kill and the agent to acknowledge it again. Retrying is bounded
//! ([`GIVE_UP_AFTER`], [`MAX_QUEUED`]): an end given up on was not reported, so termination
//! re-sends its kill and the agent's next acknowledgement ends it — nothing is lost.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_runtime::backoff::Backoff;

use vigil_proto::v1 as pb;

use crate::admission::SlotReleaser;
use crate::commands::CommandReporter;
use crate::domain::{EpochMillis, GatewayEnd, SessionRecord};
use crate::events::EventHub;
use crate::store::SessionStore;

/// The most ends written in one statement (PostgreSQL's arrays have no practical limit; this
/// bounds one statement's time and the rows it locks).
const MAX_BATCH: usize = 2_000;
/// Retry delays while the store fails: from about 100 ms, doubling, to 500 ms (jittered), so an
/// end waits at most about half a second once the database is back.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_millis(500);
/// How long an end is retried before the writer leaves it to termination's re-send.
pub(crate) const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
/// Ends kept while the store fails; beyond this the oldest are left to termination's re-send.
const MAX_QUEUED: usize = 1_000_000;

/// Announces ended sessions on the change feed and frees their concurrency slots (whoever ended
/// them: a kill, a close, a lost gateway, a reconciliation).
pub(crate) async fn announce_ended(
    events: &EventHub,
    releaser: &SlotReleaser,
    sessions: &[SessionRecord],
    now: EpochMillis,
) {
    events.publish_all(pb::SessionEventKind::Ended, sessions, now).await;
    releaser.release(
        sessions
            .iter()
            .map(|session| (session.id.clone(), session.user.clone())),
    );
}

/// An acknowledged kill's end, with the acknowledgement to report once it is written.
struct Queued {
    end: GatewayEnd,
    ack: pb::CommandReport,
    /// When the link handed it over: retried until [`GIVE_UP_AFTER`] past this.
    since: Instant,
}

/// Where written ends go: the change feed, policy's slots, termination.
pub(crate) struct EndSinks {
    pub events: EventHub,
    pub releaser: SlotReleaser,
    pub reporter: CommandReporter,
}

/// Where links hand the ends of acknowledged kills.
#[derive(Clone)]
pub struct EndWriter {
    queue: Arc<Mutex<VecDeque<Queued>>>,
    wake: Arc<Notify>,
}

impl EndWriter {
    /// Starts the writing task; it stops when `shutdown` is cancelled, dropping what is still
    /// queued unreported (termination re-sends those kills; the agents acknowledge them again).
    pub(crate) fn start(
        store: Arc<dyn SessionStore>,
        sinks: EndSinks,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let writer = Self {
            queue: Arc::default(),
            wake: Arc::new(Notify::new()),
        };
        let task = tokio::spawn(writer.clone().run(store, sinks, shutdown));
        (writer, task)
    }

    /// Ends the session if it is live on the gateway, then reports `ack`; returns at once (the
    /// writer retries while the store fails).
    pub fn end(&self, end: GatewayEnd, ack: pb::CommandReport) {
        let dropped = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.push_back(Queued {
                end,
                ack,
                since: Instant::now(),
            });
            queue.len() > MAX_QUEUED && queue.pop_front().is_some()
        };
        if dropped {
            tracing::warn!(
                max = MAX_QUEUED,
                "too many kills' ends waiting for the database; the oldest is left to termination's re-send"
            );
        }
        self.wake.notify_one();
    }

    /// The oldest waiting ends, at most a batch.
    fn take(&self) -> Vec<Queued> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let count = queue.len().min(MAX_BATCH);
        queue.drain(..count).collect()
    }

    /// Puts a batch that could not be written back in front of the queue, but for the ends
    /// retried for longer than [`GIVE_UP_AFTER`]; returns how many were given up.
    fn requeue(&self, batch: Vec<Queued>) -> usize {
        let (kept, expired): (Vec<Queued>, Vec<Queued>) = batch
            .into_iter()
            .partition(|queued| queued.since.elapsed() < GIVE_UP_AFTER);
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        for queued in kept.into_iter().rev() {
            queue.push_front(queued);
        }
        expired.len()
    }

    async fn run(self, store: Arc<dyn SessionStore>, sinks: EndSinks, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
        loop {
            let batch = self.take();
            if batch.is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = self.wake.notified() => continue,
                }
            }
            let ends: Vec<GatewayEnd> = batch.iter().map(|queued| queued.end.clone()).collect();
            match store.end_sessions(&ends).await {
                Ok(ended) => {
                    let failures = backoff.succeed();
                    if failures > 0 {
                        tracing::info!(failures, "kills' ends written again");
                    }
                    sinks.written(batch, ended).await;
                }
                Err(error) => {
                    if backoff.failures() == 0 {
                        tracing::warn!(%error, ends = batch.len(), "could not write kills' ends; retrying with back-off");
                    } else {
                        tracing::debug!(%error, ends = batch.len(), "could not write kills' ends; retrying");
                    }
                    let delay = backoff.fail();
                    let given_up = self.requeue(batch);
                    if given_up > 0 {
                        tracing::warn!(given_up, after = ?GIVE_UP_AFTER, "kills' ends given up; termination re-sends their kills");
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        let left = self.queue.lock().unwrap_or_else(PoisonError::into_inner).len();
        if left > 0 {
            tracing::info!(
                left,
                "stopping with kills' ends unwritten; termination re-sends their kills"
            );
        }
    }
}

impl EndSinks {
    /// `ended[i]` is the record `batch[i]` ended (`None`: it had ended already): announce the
    /// ends, then report every acknowledgement.
    async fn written(&self, batch: Vec<Queued>, ended: Vec<Option<SessionRecord>>) {
        let ended: Vec<SessionRecord> = ended.into_iter().flatten().collect();
        if !ended.is_empty() {
            announce_ended(&self.events, &self.releaser, &ended, crate::now_millis()).await;
        }
        for queued in batch {
            self.reporter.report(queued.ack);
        }
    }
}
