//! `vigil.v1.PolicyService` over gRPC: a thin adapter around [`PolicyEngine`].
//!
//! Who may call what is decided by the auth layer (`vigil_runtime::auth`): policy changes need
//! `policies:write` (admin), lock changes `locks:write` (operator). The actor of a change is the
//! authenticated caller.

use tonic::{Request, Response, Status};
use vigil_proto::v1 as pb;
use vigil_proto::v1::policy_service_server::{PolicyService, PolicyServiceServer};
use vigil_runtime::auth::Identity;

use crate::service::PolicyEngine;

/// The gRPC service.
pub struct PolicyApi {
    engine: PolicyEngine,
}

impl PolicyApi {
    pub fn server(engine: PolicyEngine) -> PolicyServiceServer<Self> {
        // A release batch from a busy registry can list many thousands of sessions.
        PolicyServiceServer::new(Self { engine }).max_decoding_message_size(16 * 1024 * 1024)
    }
}

/// Who is asking: the authenticated caller's subject (`anonymous@<ip>` when authentication is
/// off), never a field the client fills in.
fn actor<T>(request: &Request<T>) -> Result<String, Status> {
    Ok(Identity::of(request)?.subject.clone())
}

#[tonic::async_trait]
impl PolicyService for PolicyApi {
    async fn admit(&self, request: Request<pb::AdmitRequest>) -> Result<Response<pb::AdmitResponse>, Status> {
        Ok(Response::new(self.engine.admit(request.get_ref()).await?))
    }

    async fn create_policy(&self, request: Request<pb::CreatePolicyRequest>) -> Result<Response<pb::Policy>, Status> {
        let actor = actor(&request)?;
        Ok(Response::new(self.engine.create(&actor, request.get_ref()).await?))
    }

    async fn get_policy(&self, request: Request<pb::GetPolicyRequest>) -> Result<Response<pb::Policy>, Status> {
        Ok(Response::new(self.engine.get(&request.get_ref().id).await?))
    }

    async fn list_policies(
        &self,
        _request: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        Ok(Response::new(self.engine.list().await?))
    }

    async fn update_policy(&self, request: Request<pb::UpdatePolicyRequest>) -> Result<Response<pb::Policy>, Status> {
        let actor = actor(&request)?;
        Ok(Response::new(self.engine.update(&actor, request.get_ref()).await?))
    }

    async fn delete_policy(
        &self,
        request: Request<pb::DeletePolicyRequest>,
    ) -> Result<Response<pb::DeletePolicyResponse>, Status> {
        let actor = actor(&request)?;
        self.engine.delete(&actor, &request.get_ref().id).await?;
        Ok(Response::new(pb::DeletePolicyResponse {}))
    }

    async fn get_effective_policy(
        &self,
        request: Request<pb::GetEffectivePolicyRequest>,
    ) -> Result<Response<pb::EffectivePolicy>, Status> {
        Ok(Response::new(self.engine.effective(request.get_ref()).await?))
    }

    async fn create_lock(&self, request: Request<pb::CreateLockRequest>) -> Result<Response<pb::Lock>, Status> {
        let actor = actor(&request)?;
        Ok(Response::new(self.engine.create_lock(&actor, request.get_ref()).await?))
    }

    async fn list_locks(
        &self,
        request: Request<pb::ListLocksRequest>,
    ) -> Result<Response<pb::ListLocksResponse>, Status> {
        Ok(Response::new(self.engine.list_locks(request.get_ref()).await?))
    }

    async fn delete_lock(
        &self,
        request: Request<pb::DeleteLockRequest>,
    ) -> Result<Response<pb::DeleteLockResponse>, Status> {
        let actor = actor(&request)?;
        self.engine.delete_lock(&actor, &request.get_ref().id).await?;
        Ok(Response::new(pb::DeleteLockResponse {}))
    }

    async fn release_sessions(
        &self,
        request: Request<pb::ReleaseSessionsRequest>,
    ) -> Result<Response<pb::ReleaseSessionsResponse>, Status> {
        self.engine.release(&request.get_ref().session_ids).await?;
        Ok(Response::new(pb::ReleaseSessionsResponse {}))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        Ok(Response::new(self.engine.audit_events(request.get_ref()).await?))
    }
}
