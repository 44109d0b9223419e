//! Where the termination service learns which sessions a selector covers: the registry, asked
//! over gRPC, or called in process in the all-in-one binary.

use async_trait::async_trait;
use vigil_proto::v1 as pb;
use vigil_proto::v1::session_registry_client::SessionRegistryClient;
use vigil_registry::Registry;
use vigil_registry::commands::status_to_error;
use vigil_runtime::ServiceResult;
use vigil_runtime::client::ServiceChannel;

/// The registry, as the termination service needs it.
#[async_trait]
pub trait SessionDirectory: Send + Sync + 'static {
    /// The live sessions `selector` covers; NOT_FOUND for ids, users, gateways or resources the
    /// registry has never seen.
    async fn resolve(&self, selector: &pb::SessionSelector) -> ServiceResult<pb::ResolveSessionsResponse>;

    /// Whose session `session_id` is (ended or not); `None` when the registry does not know it.
    async fn session_owner(&self, session_id: &str) -> ServiceResult<Option<String>>;
}

#[async_trait]
impl SessionDirectory for Registry {
    async fn resolve(&self, selector: &pb::SessionSelector) -> ServiceResult<pb::ResolveSessionsResponse> {
        Registry::resolve(self, selector).await
    }

    async fn session_owner(&self, session_id: &str) -> ServiceResult<Option<String>> {
        Ok(self.store().get_session(session_id).await?.map(|session| session.user))
    }
}

/// The registry over gRPC.
#[derive(Clone)]
pub struct GrpcSessionDirectory {
    client: SessionRegistryClient<ServiceChannel>,
}

impl GrpcSessionDirectory {
    /// On a channel carrying this service's credentials (the registry requires the `service` role
    /// or `sessions:read` to resolve).
    pub fn new(channel: ServiceChannel) -> Self {
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

    async fn session_owner(&self, session_id: &str) -> ServiceResult<Option<String>> {
        let request = pb::GetSessionRequest {
            id: session_id.to_owned(),
        };
        match self.client.clone().get_session(request).await {
            Ok(session) => Ok(Some(session.into_inner().user)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(status_to_error(status)),
        }
    }
}
