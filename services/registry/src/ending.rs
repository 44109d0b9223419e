//! Kills' ends, written by group commit.
//!
//! Every acknowledged kill ends its session in the store. One UPDATE per acknowledgement made an
//! end-all of 100,000 sessions 100,000 statements competing for the replica's pool (and starving
//! every other write for a minute). Here the links hand their ends to one writer, which writes
//! whatever is waiting in one statement, then the next batch: alone, an end is written at once;
//! under an end-all, batches grow with the load. Each link still waits for its own end (so it
//! announces it, and on failure keeps the command to be acknowledged again).

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use vigil_runtime::{ServiceError, ServiceResult};

use vigil_proto::v1 as pb;

use crate::admission::SlotReleaser;
use crate::domain::{EpochMillis, GatewayEnd, SessionRecord};
use crate::events::EventHub;
use crate::store::SessionStore;

/// The most ends written in one statement (PostgreSQL's arrays have no practical limit; this
/// bounds one statement's time and the rows it locks).
const MAX_BATCH: usize = 2_000;

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

type Reply = oneshot::Sender<ServiceResult<Option<SessionRecord>>>;

/// Where links hand the ends of acknowledged kills.
#[derive(Clone)]
pub struct EndWriter {
    queue: Arc<Mutex<Vec<(GatewayEnd, Reply)>>>,
    wake: Arc<Notify>,
}

impl EndWriter {
    /// Starts the writing task; it stops when `shutdown` is cancelled, answering what is still
    /// queued as unavailable (the kills are acknowledged again after the restart).
    pub fn start(store: Arc<dyn SessionStore>, shutdown: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        let writer = Self {
            queue: Arc::default(),
            wake: Arc::new(Notify::new()),
        };
        let task = tokio::spawn(writer.clone().run(store, shutdown));
        (writer, task)
    }

    /// Ends the session if it is live on the gateway; the ended record, or `None` when there was
    /// nothing to end. Returns once the end is committed.
    pub async fn end(&self, end: GatewayEnd) -> ServiceResult<Option<SessionRecord>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((end, reply));
        self.wake.notify_one();
        answer
            .await
            .unwrap_or_else(|_| Err(ServiceError::Unavailable("the registry is stopping".into())))
    }

    fn take(&self) -> Vec<(GatewayEnd, Reply)> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        // The oldest first; what is beyond the batch waits for the next one.
        let rest = if queue.len() > MAX_BATCH {
            queue.split_off(MAX_BATCH)
        } else {
            Vec::new()
        };
        std::mem::replace(&mut *queue, rest)
    }

    async fn run(self, store: Arc<dyn SessionStore>, shutdown: CancellationToken) {
        loop {
            let batch = self.take();
            if batch.is_empty() {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = self.wake.notified() => continue,
                }
            }
            let (ends, replies): (Vec<GatewayEnd>, Vec<Reply>) = batch.into_iter().unzip();
            match store.end_sessions(&ends).await {
                Ok(ended) => {
                    for (reply, session) in replies.into_iter().zip(ended) {
                        let _ = reply.send(Ok(session));
                    }
                }
                Err(error) => {
                    // The links keep their commands and end them when acknowledged again.
                    let error = error.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(ServiceError::Unavailable(error.clone())));
                    }
                }
            }
        }
        // Dropping the replies answers every waiting link "stopping".
        drop(self.take());
    }
}
