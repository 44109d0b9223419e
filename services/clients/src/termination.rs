//! The termination service, as its three callers need it: the policy sweeper and lock enforcement
//! end sessions ([`SessionTerminator`]), the registry's links fetch and report kill commands
//! ([`CommandJournal`]), and the registry's admission makes room under a concurrency limit
//! ([`SessionEvictor`]).

use async_trait::async_trait;
use vigil_proto::v1 as pb;
use vigil_proto::v1::termination_service_client::TerminationServiceClient;
use vigil_runtime::ServiceResult;
use vigil_runtime::client::{ServiceChannel, ServiceConnector};

/// Who the termination service records as having asked, in process, when the policy sweeper ends
/// sessions. Over gRPC, the termination service records the caller it authenticated: the subject
/// of policy's service token.
pub const SWEEPER_ACTOR: &str = "policy-sweeper";
/// The note on the sweeper's terminations.
pub const SWEEPER_NOTE: &str = "policy sweeper";

/// Ends sessions: the sweeper's by id, for a reason, with the reason's default message to the
/// user; a lock's by its selector, with its message and note.
#[async_trait]
pub trait SessionTerminator: Send + Sync + 'static {
    async fn terminate(&self, session_ids: Vec<String>, reason: pb::EndReason) -> ServiceResult<()>;

    /// Ends what `request` selects on behalf of `actor`. In process `actor` is recorded as who
    /// asked; over gRPC the termination service records the caller it authenticated (this
    /// service), so the request's note should say on whose behalf.
    async fn terminate_request(&self, actor: &str, request: pb::TerminateRequest) -> ServiceResult<pb::Termination>;
}

/// The sweeper's termination request for `session_ids`.
pub fn sweeper_request(session_ids: Vec<String>, reason: pb::EndReason) -> pb::TerminateRequest {
    pb::TerminateRequest {
        selector: Some(ids_selector(session_ids)),
        reason: reason as i32,
        // Empty: the termination service's default message for the reason.
        user_message: String::new(),
        note: SWEEPER_NOTE.into(),
        expected_count: None,
    }
}

/// The commands a gateway still has to carry out, and what happened to those it carried.
#[async_trait]
pub trait CommandJournal: Send + Sync + 'static {
    /// Commands not yet acknowledged for a gateway, oldest first.
    async fn pending_commands(&self, gateway_id: &str) -> ServiceResult<Vec<pb::TerminateCommand>>;
    /// What happened to commands at the gateways.
    async fn report(&self, reports: Vec<pb::CommandReport>) -> ServiceResult<()>;
}

/// Ends sessions to make room under a concurrency limit.
#[async_trait]
pub trait SessionEvictor: Send + Sync + 'static {
    async fn evict(&self, session_ids: Vec<String>) -> ServiceResult<()>;
}

/// The termination request that makes room under a concurrency limit.
pub fn eviction_request(session_ids: Vec<String>) -> pb::TerminateRequest {
    pb::TerminateRequest {
        selector: Some(ids_selector(session_ids)),
        reason: pb::EndReason::ConcurrencyLimit as i32,
        user_message: String::new(),
        note: "ended to admit a newer session under the user's concurrency limit".into(),
        expected_count: None,
    }
}

fn ids_selector(ids: Vec<String>) -> pb::SessionSelector {
    pb::SessionSelector {
        target: Some(pb::session_selector::Target::SessionIds(pb::SessionIds { ids })),
    }
}

/// The termination service over gRPC: every trait above on one client.
#[derive(Clone)]
pub struct GrpcTermination {
    client: TerminationServiceClient<ServiceChannel>,
}

impl GrpcTermination {
    /// On a channel carrying this service's credentials: the termination service records the
    /// service token's subject as the actor.
    pub fn new(channel: ServiceChannel) -> Self {
        Self {
            // The answer lists one command per session; a large sweep's can pass tonic's 4 MiB.
            client: TerminationServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024),
        }
    }

    /// On a lazily connected plaintext channel to `url`, without credentials.
    pub fn connect_lazy(url: &str) -> ServiceResult<Self> {
        Self::connect_with(&ServiceConnector::plain(), url)
    }

    /// On a lazily connected channel to `url` carrying this process's TLS trust and service token:
    /// the caller starts even when the termination service is not up yet.
    pub fn connect_with(connector: &ServiceConnector, url: &str) -> ServiceResult<Self> {
        Ok(Self::new(connector.lazy("termination_url", url)?))
    }
}

/// The names callers know the adapter by, one a role.
pub type GrpcSessionTerminator = GrpcTermination;
/// See [`GrpcTermination`].
pub type GrpcCommandJournal = GrpcTermination;
/// See [`GrpcTermination`].
pub type GrpcSessionEvictor = GrpcTermination;

#[async_trait]
impl SessionTerminator for GrpcTermination {
    async fn terminate(&self, session_ids: Vec<String>, reason: pb::EndReason) -> ServiceResult<()> {
        self.client
            .clone()
            .terminate(sweeper_request(session_ids, reason))
            .await?;
        Ok(())
    }

    async fn terminate_request(&self, _actor: &str, request: pb::TerminateRequest) -> ServiceResult<pb::Termination> {
        Ok(self.client.clone().terminate(request).await?.into_inner())
    }
}

#[async_trait]
impl CommandJournal for GrpcTermination {
    async fn pending_commands(&self, gateway_id: &str) -> ServiceResult<Vec<pb::TerminateCommand>> {
        let request = pb::ListPendingCommandsRequest {
            gateway_id: gateway_id.to_owned(),
        };
        Ok(self
            .client
            .clone()
            .list_pending_commands(request)
            .await?
            .into_inner()
            .commands)
    }

    async fn report(&self, reports: Vec<pb::CommandReport>) -> ServiceResult<()> {
        self.client
            .clone()
            .report_commands(pb::ReportCommandsRequest { reports })
            .await?;
        Ok(())
    }
}

#[async_trait]
impl SessionEvictor for GrpcTermination {
    async fn evict(&self, session_ids: Vec<String>) -> ServiceResult<()> {
        self.client.clone().terminate(eviction_request(session_ids)).await?;
        Ok(())
    }
}
