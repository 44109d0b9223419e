//! Policy, as the registry's admission and lock feed need it.

use async_trait::async_trait;
use vigil_proto::v1 as pb;
use vigil_proto::v1::policy_service_client::PolicyServiceClient;
use vigil_runtime::client::{ServiceChannel, ServiceConnector};
use vigil_runtime::{ServiceError, ServiceResult};

/// Whether policy lets a start in, and the slots it holds.
#[async_trait]
pub trait AdmissionPolicy: Send + Sync + 'static {
    async fn admit(&self, request: pb::AdmitRequest) -> ServiceResult<pb::AdmitResponse>;
    /// These sessions ended: they stop counting against concurrency limits.
    async fn release(&self, session_ids: Vec<String>) -> ServiceResult<()>;
    /// The locks in force and the lock set's version (`PolicyService.ListLocks`): the snapshot the
    /// registry starts from before following the "locks" channel. A policy that does not manage locks
    /// keeps this default, and the registry retries now and then.
    async fn list_locks(&self) -> ServiceResult<pb::ListLocksResponse> {
        Err(ServiceError::FailedPrecondition(
            "this policy does not provide locks".into(),
        ))
    }
}

/// Policy over gRPC.
pub struct GrpcAdmissionPolicy(PolicyServiceClient<ServiceChannel>);

impl GrpcAdmissionPolicy {
    /// On a lazily connected plaintext channel to `url`, without credentials.
    pub fn connect_lazy(url: &str) -> ServiceResult<Self> {
        Self::connect_with(&ServiceConnector::plain(), url)
    }

    /// On a lazily connected channel carrying this process's TLS trust and service token.
    pub fn connect_with(connector: &ServiceConnector, url: &str) -> ServiceResult<Self> {
        Ok(Self(PolicyServiceClient::new(connector.lazy("policy_url", url)?)))
    }
}

#[async_trait]
impl AdmissionPolicy for GrpcAdmissionPolicy {
    async fn admit(&self, request: pb::AdmitRequest) -> ServiceResult<pb::AdmitResponse> {
        Ok(self.0.clone().admit(request).await?.into_inner())
    }

    async fn release(&self, session_ids: Vec<String>) -> ServiceResult<()> {
        let request = pb::ReleaseSessionsRequest { session_ids };
        self.0.clone().release_sessions(request).await?;
        Ok(())
    }

    async fn list_locks(&self) -> ServiceResult<pb::ListLocksResponse> {
        // Expired locks refuse nobody: the registry has no use for them.
        let request = pb::ListLocksRequest { include_expired: false };
        Ok(self.0.clone().list_locks(request).await?.into_inner())
    }
}
