//! How the sweeper ends sessions: through the termination service, called in process (the
//! all-in-one binary) or over gRPC. Termination records who asked and why, delivers the kill and
//! ends a session once however often it is asked.

use async_trait::async_trait;
use vigil_proto::v1 as pb;
use vigil_proto::v1::termination_service_client::TerminationServiceClient;
use vigil_registry::commands::status_to_error;
use vigil_runtime::ServiceResult;
use vigil_runtime::client::ServiceChannel;
use vigil_termination::Terminator;

/// Who the termination service records as having asked, in process. Over gRPC, the termination
/// service records the caller it authenticated: the subject of policy's service token.
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

/// The termination request for `session_ids`.
pub fn request(session_ids: Vec<String>, reason: pb::EndReason) -> pb::TerminateRequest {
    pb::TerminateRequest {
        selector: Some(pb::SessionSelector {
            target: Some(pb::session_selector::Target::SessionIds(pb::SessionIds {
                ids: session_ids,
            })),
        }),
        reason: reason as i32,
        // Empty: the termination service's default message for the reason.
        user_message: String::new(),
        note: SWEEPER_NOTE.into(),
        expected_count: None,
    }
}

#[async_trait]
impl SessionTerminator for Terminator {
    async fn terminate(&self, session_ids: Vec<String>, reason: pb::EndReason) -> ServiceResult<()> {
        Terminator::terminate(self, SWEEPER_ACTOR, &request(session_ids, reason))
            .await
            .map(drop)
    }

    async fn terminate_request(&self, actor: &str, request: pb::TerminateRequest) -> ServiceResult<pb::Termination> {
        Terminator::terminate(self, actor, &request).await
    }
}

/// The termination service over gRPC.
#[derive(Clone)]
pub struct GrpcSessionTerminator {
    client: TerminationServiceClient<ServiceChannel>,
}

impl GrpcSessionTerminator {
    /// On a channel carrying this service's credentials: the termination service records the
    /// service token's subject as the actor.
    pub fn new(channel: ServiceChannel) -> Self {
        Self {
            // The answer lists one command per session; a large sweep's can pass tonic's 4 MiB.
            client: TerminationServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024),
        }
    }
}

#[async_trait]
impl SessionTerminator for GrpcSessionTerminator {
    async fn terminate(&self, session_ids: Vec<String>, reason: pb::EndReason) -> ServiceResult<()> {
        self.client
            .clone()
            .terminate(request(session_ids, reason))
            .await
            .map_err(status_to_error)?;
        Ok(())
    }

    async fn terminate_request(&self, _actor: &str, request: pb::TerminateRequest) -> ServiceResult<pb::Termination> {
        Ok(self
            .client
            .clone()
            .terminate(request)
            .await
            .map_err(status_to_error)?
            .into_inner())
    }
}
