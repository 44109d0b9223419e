//! `vigil.v1.GeoService` over gRPC: a thin adapter around [`Geo`].

use tonic::{Request, Response, Status};
use vigil_proto::v1 as pb;
use vigil_proto::v1::geo_service_server::{GeoService, GeoServiceServer};

use crate::service::Geo;

/// The gRPC service.
pub struct GeoApi {
    geo: Geo,
}

impl GeoApi {
    pub fn server(geo: Geo) -> GeoServiceServer<Self> {
        GeoServiceServer::new(Self { geo })
    }
}

#[tonic::async_trait]
impl GeoService for GeoApi {
    async fn locate(&self, request: Request<pb::LocateRequest>) -> Result<Response<pb::Location>, Status> {
        Ok(Response::new(self.geo.locate(&request.get_ref().ip)?))
    }

    async fn assess(&self, request: Request<pb::AssessRequest>) -> Result<Response<pb::AssessResponse>, Status> {
        Ok(Response::new(self.geo.assess(request.get_ref()).await?))
    }
}
