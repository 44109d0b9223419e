//! The registry's side of kill commands: where a link learns what its gateway still has to do,
//! and where it tells what happened to the commands it carried.
//!
//! Commands belong to the termination service (it records them, re-sends them, shows them); the
//! registry only carries them over the link. [`CommandJournal`] (`vigil-clients`) is that service
//! seen from here — in process in the all-in-one binary, over gRPC otherwise.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
pub use vigil_clients::CommandJournal;
use vigil_proto::v1 as pb;
use vigil_runtime::backoff::Backoff;

/// How often buffered command reports are sent.
const REPORT_INTERVAL: Duration = Duration::from_millis(50);
/// Retry delays while the termination service is unreachable: from about 100 ms, doubling, to
/// 500 ms, jittered (a kill's answer waits at most that long once the service is back, well inside
/// the second a fault's end should take; a few calls a second to a service that is down cost
/// nothing, and only the outage's first failure is logged as a warning).
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_millis(500);
/// Reports sent per call (the termination service accepts at most 100,000).
const REPORT_CHUNK: usize = 10_000;
/// Reports kept while the termination service is unreachable; beyond this the oldest are dropped
/// (harmlessly: unacknowledged commands are re-sent and re-acknowledged).
const MAX_BUFFERED_REPORTS: usize = 1_000_000;

/// The journal this replica uses, attached after start (the termination service may be built
/// after the registry, in the same process). Without one, links carry no pending commands and
/// reports are dropped.
#[derive(Clone, Default)]
pub struct JournalSlot {
    journal: Arc<std::sync::OnceLock<Arc<dyn CommandJournal>>>,
}

impl JournalSlot {
    pub fn attach(&self, journal: Arc<dyn CommandJournal>) -> bool {
        self.journal.set(journal).is_ok()
    }

    pub fn get(&self) -> Option<&Arc<dyn CommandJournal>> {
        self.journal.get()
    }
}

/// Buffers reports from every link of this replica and sends them in batches.
#[derive(Clone)]
pub struct CommandReporter {
    buffer: Arc<Mutex<Vec<pb::CommandReport>>>,
    wake: Arc<Notify>,
}

impl CommandReporter {
    pub fn start(journal: JournalSlot, shutdown: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        let reporter = Self {
            buffer: Arc::default(),
            wake: Arc::new(Notify::new()),
        };
        let task = tokio::spawn(reporter.clone().run(journal, shutdown));
        (reporter, task)
    }

    pub fn report(&self, report: pb::CommandReport) {
        let mut buffer = self.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buffer.len() >= MAX_BUFFERED_REPORTS {
            buffer.remove(0);
        }
        buffer.push(report);
    }

    async fn run(self, journal: JournalSlot, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(REPORT_INTERVAL);
        let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
        loop {
            let stopping = tokio::select! {
                () = shutdown.cancelled() => true,
                _ = ticker.tick() => false,
                () = self.wake.notified() => false,
            };
            let batch = std::mem::take(&mut *self.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            match journal.get() {
                None if !batch.is_empty() => {
                    tracing::debug!(
                        reports = batch.len(),
                        "no termination service attached; reports dropped"
                    );
                }
                None => {}
                Some(journal) => {
                    // In chunks: the service takes a bounded number of reports per call, and an
                    // end-all produces hundreds of thousands at once.
                    let mut chunks = batch.chunks(REPORT_CHUNK);
                    let mut retry_after = None;
                    while let Some(chunk) = chunks.next() {
                        if let Err(error) = journal.report(chunk.to_vec()).await {
                            // One warning per outage; the retries back off (jittered, so the
                            // replicas do not return in step) instead of calling every 50 ms.
                            if backoff.failures() == 0 {
                                tracing::warn!(%error, reports = chunk.len(), "could not report command outcomes; will retry with back-off");
                            } else {
                                tracing::debug!(%error, reports = chunk.len(), "could not report command outcomes; will retry");
                            }
                            retry_after = Some(backoff.fail());
                            let unsent: Vec<_> = std::iter::once(chunk).chain(chunks).flatten().cloned().collect();
                            let mut buffer = self.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            let newer = std::mem::replace(&mut *buffer, unsent);
                            buffer.extend(newer);
                            break;
                        }
                    }
                    match retry_after {
                        Some(delay) if !stopping => {
                            tokio::select! {
                                () = shutdown.cancelled() => break,
                                () = tokio::time::sleep(delay) => {}
                            }
                        }
                        Some(_) => {}
                        None if !batch.is_empty() => {
                            let failures = backoff.succeed();
                            if failures > 0 {
                                tracing::info!(failures, "command outcomes reported again");
                            }
                        }
                        None => {}
                    }
                }
            }
            if stopping {
                break;
            }
        }
    }
}
