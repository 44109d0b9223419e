//! Where the termination service learns which sessions a selector covers: the registry, asked
//! over gRPC, or called in process in the all-in-one binary.

use async_trait::async_trait;
use tonic::transport::Channel;
use vigil_proto::v1 as pb;
use vigil_proto::v1::session_registry_client::SessionRegistryClient;
use vigil_registry::Registry;
use vigil_registry::commands::status_to_error;
use vigil_runtime::ServiceResult;

/// The registry, as the termination service needs it.
#[async_trait]
pub trait SessionDirectory: Send + Sync + 'static {
    /// The live sessions `selector` covers; NOT_FOUND for ids, users, gateways or resources the
    /// registry has never seen.
    async fn resolve(&self, selector: &pb::SessionSelector) -> ServiceResult<pb::ResolveSessionsResponse>;
}

#[async_trait]
impl SessionDirectory for Registry {
    async fn resolve(&self, selector: &pb::SessionSelector) -> ServiceResult<pb::ResolveSessionsResponse> {
        Registry::resolve(self, selector).await
    }
}

/// The registry over gRPC.
#[derive(Clone)]
pub struct GrpcSessionDirectory {
    client: SessionRegistryClient<Channel>,
}

impl GrpcSessionDirectory {
    pub fn new(channel: Channel) -> Self {
        // A full end-all answer can be large (100k sessions): lift tonic's 4 MiB default.
        Self {
            client: SessionRegistryClient::new(channel).max_decoding_message_size(256 * 1024 * 1024),
        }
    }
}

#[async_trait]
impl SessionDirectory for GrpcSessionDirectory {
    async fn resolve(&self, selector: &pb::SessionSelector) -> ServiceResult<pb::ResolveSessionsResponse> {
        let request = pb::ResolveSessionsRequest {
            selector: Some(selector.clone()),
        };
        let response = self
            .client
            .clone()
            .resolve_sessions(request)
            .await
            .map_err(status_to_error)?;
        Ok(response.into_inner())
    }
}
