//! The registry: its state and background tasks, and the gRPC services built on them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_proto::v1::gateway_link_server::GatewayLinkServer;
use vigil_proto::v1::session_registry_server::SessionRegistryServer;
use vigil_runtime::ServiceResult;
use vigil_runtime::bus::ControlBus;

use crate::activity::ActivityWriter;
use crate::api::{LinkApi, SessionsApi};
use crate::commands::{CommandJournal, CommandReporter, JournalSlot};
use crate::events::EventHub;
use crate::idle::run_idle_marker;
use crate::page_token::PageTokens;
use crate::settings::RegistrySettings;
use crate::store::SessionStore;

/// Largest message accepted on a gateway link (a hello with a full snapshot).
const LINK_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A running registry replica. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn SessionStore>,
    pub bus: Arc<dyn ControlBus>,
    pub events: EventHub,
    pub activity: ActivityWriter,
    pub settings: RegistrySettings,
    pub page_tokens: PageTokens,
    pub journal: JournalSlot,
    pub reporter: CommandReporter,
    /// Links open on this replica: gateway id → the link's cancellation, so a newer link for the
    /// same gateway closes the older one.
    pub links: Mutex<HashMap<String, (u64, CancellationToken)>>,
    pub next_link_id: std::sync::atomic::AtomicU64,
    pub shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Registry {
    /// Starts the background work (change feed, activity writer, idle marker) and returns the
    /// replica. Everything stops when `shutdown` is cancelled; [`Registry::stopped`] waits for it.
    pub async fn start(
        settings: RegistrySettings,
        store: Arc<dyn SessionStore>,
        bus: Arc<dyn ControlBus>,
        shutdown: CancellationToken,
    ) -> ServiceResult<Self> {
        settings
            .validate()
            .map_err(vigil_runtime::ServiceError::FailedPrecondition)?;
        let events = EventHub::start(bus.clone(), settings.watch_buffer, shutdown.clone()).await?;
        let (activity, activity_task) =
            ActivityWriter::start(store.clone(), events.clone(), &settings, shutdown.clone());
        let idle_task = tokio::spawn(run_idle_marker(
            store.clone(),
            events.clone(),
            settings.clone(),
            shutdown.clone(),
        ));
        let journal = JournalSlot::default();
        let (reporter, reporter_task) = CommandReporter::start(journal.clone(), shutdown.clone());
        tracing::info!(replica = %settings.replica, "registry started");
        Ok(Self {
            inner: Arc::new(Inner {
                page_tokens: PageTokens::new(&settings.page_token_key),
                journal,
                reporter,
                store,
                bus,
                events,
                activity,
                settings,
                links: Mutex::default(),
                next_link_id: Default::default(),
                shutdown,
                tasks: Mutex::new(vec![activity_task, idle_task, reporter_task]),
            }),
        })
    }

    /// The `vigil.v1.SessionRegistry` gRPC service.
    pub fn sessions_service(&self) -> SessionRegistryServer<SessionsApi> {
        SessionRegistryServer::new(SessionsApi::new(self.clone()))
    }

    /// The `vigil.v1.GatewayLink` gRPC service.
    pub fn link_service(&self) -> GatewayLinkServer<LinkApi> {
        // A hello carries the gateway's whole snapshot (~160 bytes a session, up to
        // MAX_SNAPSHOT_SESSIONS): well beyond tonic's default 4 MiB message limit.
        GatewayLinkServer::new(LinkApi::new(self.clone())).max_decoding_message_size(LINK_MAX_MESSAGE_BYTES)
    }

    /// Connects the termination service: links then deliver its pending commands when they open,
    /// and report what their agents did with commands. Returns false if one was attached already.
    pub fn attach_command_journal(&self, journal: Arc<dyn CommandJournal>) -> bool {
        self.inner.journal.attach(journal)
    }

    /// The live sessions a selector covers (see `SessionRegistry.ResolveSessions`).
    pub async fn resolve(
        &self,
        selector: &vigil_proto::v1::SessionSelector,
    ) -> ServiceResult<vigil_proto::v1::ResolveSessionsResponse> {
        crate::api::resolve(self, selector).await
    }

    /// The store, for readiness checks.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// The bus, for readiness checks.
    pub fn bus(&self) -> &Arc<dyn ControlBus> {
        &self.inner.bus
    }

    /// Waits for the background tasks to finish after shutdown (pending activity is flushed).
    pub async fn stopped(&self) {
        let tasks = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "registry task failed");
            }
        }
    }
}
