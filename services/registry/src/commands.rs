//! The registry's side of kill commands: where a link learns what its gateway still has to do,
//! and where it tells what happened to the commands it carried.
//!
//! Commands belong to the termination service (it records them, re-sends them, shows them); the
//! registry only carries them over the link. [`CommandJournal`] is that service seen from here —
//! in process in the all-in-one binary, over gRPC otherwise.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use vigil_proto::v1 as pb;
use vigil_proto::v1::termination_service_client::TerminationServiceClient;
use vigil_runtime::client::{ServiceChannel, ServiceConnector};
use vigil_runtime::{ServiceError, ServiceResult};

/// How often buffered command reports are sent.
const REPORT_INTERVAL: Duration = Duration::from_millis(50);
/// Reports sent per call (the termination service accepts at most 100,000).
const REPORT_CHUNK: usize = 10_000;
/// Reports kept while the termination service is unreachable; beyond this the oldest are dropped
/// (harmlessly: unacknowledged commands are re-sent and re-acknowledged).
const MAX_BUFFERED_REPORTS: usize = 1_000_000;

/// The termination service, as the registry needs it.
#[async_trait]
pub trait CommandJournal: Send + Sync + 'static {
    /// Commands not yet acknowledged for a gateway, oldest first.
    async fn pending_commands(&self, gateway_id: &str) -> ServiceResult<Vec<pb::TerminateCommand>>;
    /// What happened to commands at the gateways.
    async fn report(&self, reports: Vec<pb::CommandReport>) -> ServiceResult<()>;
}

/// The journal over gRPC.
#[derive(Clone)]
pub struct GrpcCommandJournal {
    client: TerminationServiceClient<ServiceChannel>,
}

impl GrpcCommandJournal {
    /// A journal on a lazily connected plaintext channel to `url`, without credentials.
    pub fn connect_lazy(url: &str) -> ServiceResult<Self> {
        Self::connect_with(&ServiceConnector::plain(), url)
    }

    /// A journal on a lazily connected channel to `url` carrying this process's TLS trust and
    /// service token: the registry starts even when the termination service is not up yet, and
    /// reports wait in the buffer until it is.
    pub fn connect_with(connector: &ServiceConnector, url: &str) -> ServiceResult<Self> {
        Ok(Self {
            client: TerminationServiceClient::new(connector.lazy("termination_url", url)?),
        })
    }
}

#[async_trait]
impl CommandJournal for GrpcCommandJournal {
    async fn pending_commands(&self, gateway_id: &str) -> ServiceResult<Vec<pb::TerminateCommand>> {
        let request = pb::ListPendingCommandsRequest {
            gateway_id: gateway_id.to_owned(),
        };
        let response = self
            .client
            .clone()
            .list_pending_commands(request)
            .await
            .map_err(status_to_error)?;
        Ok(response.into_inner().commands)
    }

    async fn report(&self, reports: Vec<pb::CommandReport>) -> ServiceResult<()> {
        self.client
            .clone()
            .report_commands(pb::ReportCommandsRequest { reports })
            .await
            .map_err(status_to_error)?;
        Ok(())
    }
}

/// A status from another Vigil service, as a domain error of ours.
pub fn status_to_error(status: tonic::Status) -> ServiceError {
    use tonic::Code;
    let message = status.message().to_owned();
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => ServiceError::InvalidArgument(message),
        Code::NotFound => ServiceError::NotFound {
            kind: "resource",
            id: message,
        },
        Code::AlreadyExists => ServiceError::AlreadyExists(message),
        Code::FailedPrecondition | Code::Aborted => ServiceError::FailedPrecondition(message),
        Code::PermissionDenied => ServiceError::PermissionDenied(message),
        Code::Unauthenticated => ServiceError::Unauthenticated(message),
        Code::Unavailable | Code::Cancelled => ServiceError::Unavailable(message),
        Code::DeadlineExceeded => ServiceError::DeadlineExceeded(message),
        Code::ResourceExhausted => ServiceError::ResourceExhausted(message),
        Code::Ok | Code::Unknown | Code::Unimplemented | Code::Internal | Code::DataLoss => {
            ServiceError::Internal(format!("{}: {message}", status.code()))
        }
    }
}

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
                    while let Some(chunk) = chunks.next() {
                        if let Err(error) = journal.report(chunk.to_vec()).await {
                            tracing::warn!(%error, reports = chunk.len(), "could not report command outcomes; will retry");
                            let unsent: Vec<_> = std::iter::once(chunk).chain(chunks).flatten().cloned().collect();
                            let mut buffer = self.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            let newer = std::mem::replace(&mut *buffer, unsent);
                            buffer.extend(newer);
                            break;
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
