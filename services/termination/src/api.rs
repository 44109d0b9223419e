//! `vigil.v1.TerminationService` over gRPC: a thin adapter around [`Terminator`].

use tonic::{Request, Response, Status};
use vigil_proto::v1 as pb;
use vigil_proto::v1::termination_service_server::{TerminationService, TerminationServiceServer};

use crate::service::Terminator;

/// The gRPC service.
pub struct TerminationApi {
    terminator: Terminator,
}

impl TerminationApi {
    pub fn server(terminator: Terminator) -> TerminationServiceServer<Self> {
        // A termination with every command of an end-all can be large.
        TerminationServiceServer::new(Self { terminator })
            .max_encoding_message_size(256 * 1024 * 1024)
            .max_decoding_message_size(64 * 1024 * 1024)
    }
}

/// Who is asking. Until callers authenticate (the security issue), this is the peer's address,
/// which at least says where an action came from; it is never a field the client fills in.
fn actor<T>(request: &Request<T>) -> String {
    match request.remote_addr() {
        Some(addr) => format!("anonymous@{}", addr.ip()),
        None => "anonymous@local".into(),
    }
}

#[tonic::async_trait]
impl TerminationService for TerminationApi {
    async fn terminate(&self, request: Request<pb::TerminateRequest>) -> Result<Response<pb::Termination>, Status> {
        let actor = actor(&request);
        Ok(Response::new(
            self.terminator.terminate(&actor, request.get_ref()).await?,
        ))
    }

    async fn get_termination(
        &self,
        request: Request<pb::GetTerminationRequest>,
    ) -> Result<Response<pb::Termination>, Status> {
        Ok(Response::new(self.terminator.get(&request.get_ref().id).await?))
    }

    async fn list_terminations(
        &self,
        request: Request<pb::ListTerminationsRequest>,
    ) -> Result<Response<pb::ListTerminationsResponse>, Status> {
        Ok(Response::new(self.terminator.list(request.get_ref()).await?))
    }

    async fn list_pending_commands(
        &self,
        request: Request<pb::ListPendingCommandsRequest>,
    ) -> Result<Response<pb::ListPendingCommandsResponse>, Status> {
        let commands = self
            .terminator
            .pending_for_gateway(&request.get_ref().gateway_id)
            .await?;
        Ok(Response::new(pb::ListPendingCommandsResponse { commands }))
    }

    async fn report_commands(
        &self,
        request: Request<pb::ReportCommandsRequest>,
    ) -> Result<Response<pb::ReportCommandsResponse>, Status> {
        self.terminator.apply_reports(&request.get_ref().reports).await?;
        Ok(Response::new(pb::ReportCommandsResponse {}))
    }
}
