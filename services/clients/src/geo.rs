//! Geo, as the registry's admission needs it.

use async_trait::async_trait;
use vigil_proto::v1 as pb;
use vigil_proto::v1::geo_service_client::GeoServiceClient;
use vigil_runtime::ServiceResult;
use vigil_runtime::client::{ServiceChannel, ServiceConnector};

/// Where a start comes from and how unusual it is.
#[async_trait]
pub trait RiskAssessor: Send + Sync + 'static {
    async fn assess(&self, request: pb::AssessRequest) -> ServiceResult<pb::AssessResponse>;
}

/// Geo over gRPC.
pub struct GrpcRiskAssessor(GeoServiceClient<ServiceChannel>);

impl GrpcRiskAssessor {
    /// On a lazily connected plaintext channel to `url`, without credentials.
    pub fn connect_lazy(url: &str) -> ServiceResult<Self> {
        Self::connect_with(&ServiceConnector::plain(), url)
    }

    /// On a lazily connected channel (the registry starts before the services it calls are up)
    /// carrying this process's TLS trust and service token.
    pub fn connect_with(connector: &ServiceConnector, url: &str) -> ServiceResult<Self> {
        Ok(Self(GeoServiceClient::new(connector.lazy("geo_url", url)?)))
    }
}

#[async_trait]
impl RiskAssessor for GrpcRiskAssessor {
    async fn assess(&self, request: pb::AssessRequest) -> ServiceResult<pb::AssessResponse> {
        Ok(self.0.clone().assess(request).await?.into_inner())
    }
}
