//! What geo provides to the other services in process (the all-in-one binary): the registry's
//! admission asks it through `vigil_clients::RiskAssessor`, which its gRPC API serves otherwise.

use async_trait::async_trait;
use vigil_clients::RiskAssessor;
use vigil_proto::v1 as pb;
use vigil_runtime::ServiceResult;

use crate::Geo;

#[async_trait]
impl RiskAssessor for Geo {
    async fn assess(&self, request: pb::AssessRequest) -> ServiceResult<pb::AssessResponse> {
        Geo::assess(self, &request).await
    }
}
