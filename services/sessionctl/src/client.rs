//! The connection to the registry: channel, bearer token, per-call timeout, and error classification.

use std::future::Future;
use std::time::Duration;

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use vigil_proto::v1::session_registry_client::SessionRegistryClient;
use vigil_proto::v1::{
    GetSessionRequest, GetStatsRequest, ListGatewaysRequest, ListGatewaysResponse, ListSessionsRequest,
    ListSessionsResponse, Session, SessionEvent, SessionStats, WatchSessionsRequest,
};

use crate::cli::GlobalArgs;
use crate::error::CliError;

type Client = SessionRegistryClient<InterceptedService<Channel, BearerAuth>>;

/// A connected `SessionRegistry` client that turns every failure into a [`CliError`].
pub(crate) struct Registry {
    client: Client,
    server: String,
    timeout: Duration,
}

impl Registry {
    /// Connects eagerly, so an unreachable registry is reported before anything else happens.
    pub(crate) async fn connect(global: &GlobalArgs) -> Result<Self, CliError> {
        let server = global.server.clone();
        let auth = BearerAuth::new(global.token.as_ref().map(|t| t.expose()))?;
        let endpoint = Endpoint::from_shared(server.clone())
            .map_err(|e| CliError::Usage(format!("`{server}` is not a valid registry address: {e}")))?
            .connect_timeout(global.timeout)
            .tcp_nodelay(true);

        let channel = match tokio::time::timeout(global.timeout, endpoint.connect()).await {
            Err(_elapsed) => {
                return Err(CliError::TimedOut {
                    server,
                    after: global.timeout,
                });
            }
            Ok(Err(error)) => return Err(CliError::from_connect(&error, &server)),
            Ok(Ok(channel)) => channel,
        };
        Ok(Registry {
            client: SessionRegistryClient::with_interceptor(channel, auth),
            server,
            timeout: global.timeout,
        })
    }

    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    pub(crate) async fn list_sessions(&self, request: ListSessionsRequest) -> Result<ListSessionsResponse, CliError> {
        let mut client = self.client.clone();
        self.unary(client.list_sessions(self.request(request))).await
    }

    pub(crate) async fn get_session(&self, id: String) -> Result<Session, CliError> {
        let mut client = self.client.clone();
        self.unary(client.get_session(self.request(GetSessionRequest { id })))
            .await
    }

    pub(crate) async fn get_stats(&self) -> Result<SessionStats, CliError> {
        let mut client = self.client.clone();
        self.unary(client.get_stats(self.request(GetStatsRequest { filter: None })))
            .await
    }

    pub(crate) async fn list_gateways(&self, request: ListGatewaysRequest) -> Result<ListGatewaysResponse, CliError> {
        let mut client = self.client.clone();
        self.unary(client.list_gateways(self.request(request))).await
    }

    /// Opens the event stream. Only opening it is bounded by the timeout: the stream itself runs until the
    /// caller stops reading it.
    pub(crate) async fn watch_sessions(
        &self,
        request: WatchSessionsRequest,
    ) -> Result<tonic::Streaming<SessionEvent>, CliError> {
        let mut client = self.client.clone();
        // No `grpc-timeout` here: the server would cut the stream when it expired.
        self.unary(client.watch_sessions(tonic::Request::new(request))).await
    }

    /// Turns a status from the event stream into a [`CliError`].
    pub(crate) fn stream_error(&self, status: Status) -> CliError {
        CliError::from_status(status, &self.server)
    }

    /// A request carrying the timeout as `grpc-timeout`, so the server gives up when we do.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// Awaits a call for at most the timeout and classifies its failure.
    async fn unary<T>(&self, call: impl Future<Output = Result<tonic::Response<T>, Status>>) -> Result<T, CliError> {
        let timed_out = || CliError::TimedOut {
            server: self.server.clone(),
            after: self.timeout,
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_elapsed) => Err(timed_out()),
            // The server enforces our `grpc-timeout` too, and may give up first: tonic answers CANCELLED,
            // other servers DEADLINE_EXCEEDED. Either way our deadline passed.
            Ok(Err(status)) if matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded) => Err(timed_out()),
            Ok(Err(status)) => Err(CliError::from_status(status, &self.server)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }
}

/// Adds `authorization: Bearer <token>` to every call when a token is configured.
#[derive(Clone)]
pub(crate) struct BearerAuth {
    header: Option<AsciiMetadataValue>,
}

impl BearerAuth {
    fn new(token: Option<&str>) -> Result<Self, CliError> {
        let header = match token {
            None => None,
            Some(token) => {
                let mut value: AsciiMetadataValue = MetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| CliError::Usage("the token holds characters a header cannot carry".to_owned()))?;
                // Keeps HPACK from indexing the header, so the token is not kept in the connection's tables.
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(BearerAuth { header })
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(header) = &self.header {
            request.metadata_mut().insert("authorization", header.clone());
        }
        Ok(request)
    }
}
