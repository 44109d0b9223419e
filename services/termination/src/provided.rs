//! What the termination service provides to the other services in process (the all-in-one
//! binary): the traits of `vigil-clients` they call it through, which its gRPC API serves to them
//! otherwise.

use async_trait::async_trait;
use vigil_clients::termination::{SWEEPER_ACTOR, eviction_request, sweeper_request};
use vigil_clients::{CommandJournal, SessionEvictor, SessionTerminator};
use vigil_proto::v1 as pb;
use vigil_runtime::ServiceResult;

use crate::Terminator;

/// The registry makes room under concurrency limits directly.
#[async_trait]
impl SessionEvictor for Terminator {
    async fn evict(&self, session_ids: Vec<String>) -> ServiceResult<()> {
        let request = eviction_request(session_ids);
        self.terminate("policy (concurrency limit)", &request).await.map(|_| ())
    }
}

/// The registry's links fetch and report commands directly.
#[async_trait]
impl CommandJournal for Terminator {
    async fn pending_commands(&self, gateway_id: &str) -> ServiceResult<Vec<pb::TerminateCommand>> {
        self.pending_for_gateway(gateway_id).await
    }

    async fn report(&self, reports: Vec<pb::CommandReport>) -> ServiceResult<()> {
        self.apply_reports(&reports).await.map(|_| ())
    }
}

/// Policy's sweeper and lock enforcement end sessions directly.
#[async_trait]
impl SessionTerminator for Terminator {
    async fn terminate(&self, session_ids: Vec<String>, reason: pb::EndReason) -> ServiceResult<()> {
        Terminator::terminate(self, SWEEPER_ACTOR, &sweeper_request(session_ids, reason))
            .await
            .map(drop)
    }

    async fn terminate_request(&self, actor: &str, request: pb::TerminateRequest) -> ServiceResult<pb::Termination> {
        Terminator::terminate(self, actor, &request).await
    }
}
