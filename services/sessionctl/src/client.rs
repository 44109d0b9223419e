//! Connections to the registry, the termination service and the policy service: channel, bearer token,
//! per-call timeout, and error classification.

use std::future::Future;
use std::time::Duration;

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};
use vigil_proto::v1::events_service_client::EventsServiceClient;
use vigil_proto::v1::policy_service_client::PolicyServiceClient;
use vigil_proto::v1::session_registry_client::SessionRegistryClient;
use vigil_proto::v1::termination_service_client::TerminationServiceClient;
use vigil_proto::v1::{
    CreateLockRequest, CreatePolicyRequest, DeleteLockRequest, DeletePolicyRequest, EffectivePolicy,
    GetEffectivePolicyRequest, GetPolicyRequest, GetSessionRequest, GetStatsRequest, GetTerminationRequest,
    ListAuditEventsRequest, ListAuditEventsResponse, ListGatewaysRequest, ListGatewaysResponse, ListLocksRequest,
    ListPoliciesRequest, ListSessionsRequest, ListSessionsResponse, ListSinksRequest, ListTerminationsRequest,
    ListTerminationsResponse, Lock, Policy, ResolveSessionsRequest, ResolveSessionsResponse, Session, SessionEvent,
    SessionSelector, SessionStats, SinkStatus, TerminateRequest, Termination, TestSinkRequest, TestSinkResponse,
    UpdatePolicyRequest, WatchSessionsRequest,
};

use crate::args::GlobalArgs;
use crate::error::{CliError, Service};

type RegistryClient = SessionRegistryClient<InterceptedService<Channel, BearerAuth>>;
type TerminationClient = TerminationServiceClient<InterceptedService<Channel, BearerAuth>>;
type PolicyClient = PolicyServiceClient<InterceptedService<Channel, BearerAuth>>;
type EventsClient = EventsServiceClient<InterceptedService<Channel, BearerAuth>>;

/// A connected `SessionRegistry` client that turns every failure into a [`CliError`].
pub(crate) struct Registry {
    client: RegistryClient,
    channel: Channel,
    calls: Calls,
}

impl Registry {
    /// Connects eagerly, so an unreachable registry is reported before anything else happens.
    pub(crate) async fn connect(global: &GlobalArgs) -> Result<Self, CliError> {
        let channel = open_channel(Service::Registry, global.server(), global).await?;
        Ok(Registry {
            client: SessionRegistryClient::with_interceptor(channel.clone(), BearerAuth::from_global(global)?),
            channel,
            calls: Calls {
                service: Service::Registry,
                server: global.server().to_owned(),
                timeout: global.timeout,
            },
        })
    }

    pub(crate) fn server(&self) -> &str {
        &self.calls.server
    }

    pub(crate) async fn list_sessions(&self, request: ListSessionsRequest) -> Result<ListSessionsResponse, CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.list_sessions(self.calls.request(request)))
            .await
    }

    pub(crate) async fn get_session(&self, id: String) -> Result<Session, CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.get_session(self.calls.request(GetSessionRequest { id })))
            .await
    }

    pub(crate) async fn get_stats(&self) -> Result<SessionStats, CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.get_stats(self.calls.request(GetStatsRequest { filter: None })))
            .await
    }

    pub(crate) async fn list_gateways(&self, request: ListGatewaysRequest) -> Result<ListGatewaysResponse, CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.list_gateways(self.calls.request(request)))
            .await
    }

    /// The live sessions a selector covers now, and the named ids that already ended.
    pub(crate) async fn resolve_sessions(
        &self,
        selector: SessionSelector,
    ) -> Result<ResolveSessionsResponse, CliError> {
        let mut client = self.client.clone();
        let request = ResolveSessionsRequest {
            selector: Some(selector),
        };
        self.calls
            .unary(client.resolve_sessions(self.calls.request(request)))
            .await
    }

    /// Opens the event stream. Only opening it is bounded by the timeout: the stream itself runs until the
    /// caller stops reading it.
    pub(crate) async fn watch_sessions(
        &self,
        request: WatchSessionsRequest,
    ) -> Result<tonic::Streaming<SessionEvent>, CliError> {
        let mut client = self.client.clone();
        // No `grpc-timeout` here: the server would cut the stream when it expired.
        self.calls
            .unary(client.watch_sessions(tonic::Request::new(request)))
            .await
    }

    /// Turns a status from the event stream into a [`CliError`].
    pub(crate) fn stream_error(&self, status: Status) -> CliError {
        CliError::from_status(status, Service::Registry, &self.calls.server)
    }
}

/// A connected `TerminationService` client that turns every failure into a [`CliError`].
pub(crate) struct Terminations {
    client: TerminationClient,
    calls: Calls,
}

impl Terminations {
    /// Connects to `--termination-server`. When that is the registry's address (the default: the all-in-one
    /// binary serves both there) and `registry` is already connected, its connection is shared.
    pub(crate) async fn connect(global: &GlobalArgs, registry: Option<&Registry>) -> Result<Self, CliError> {
        let server = global.termination_address();
        let channel = match registry {
            Some(registry) if registry.server() == server => registry.channel.clone(),
            _ => open_channel(Service::Termination, server, global).await?,
        };
        Ok(Terminations {
            client: TerminationServiceClient::with_interceptor(channel, BearerAuth::from_global(global)?),
            calls: Calls {
                service: Service::Termination,
                server: server.to_owned(),
                timeout: global.timeout,
            },
        })
    }

    pub(crate) async fn terminate(&self, request: TerminateRequest) -> Result<Termination, CliError> {
        let mut client = self.client.clone();
        self.calls.unary(client.terminate(self.calls.request(request))).await
    }

    pub(crate) async fn get_termination(&self, id: String) -> Result<Termination, CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.get_termination(self.calls.request(GetTerminationRequest { id })))
            .await
    }

    pub(crate) async fn list_terminations(
        &self,
        request: ListTerminationsRequest,
    ) -> Result<ListTerminationsResponse, CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.list_terminations(self.calls.request(request)))
            .await
    }
}

/// A connected `PolicyService` client that turns every failure into a [`CliError`].
pub(crate) struct Policies {
    client: PolicyClient,
    calls: Calls,
}

impl Policies {
    /// Connects to `--policy-server` (by default the registry's address, where the all-in-one binary serves
    /// policies too).
    pub(crate) async fn connect(global: &GlobalArgs) -> Result<Self, CliError> {
        let server = global.policy_address();
        let channel = open_channel(Service::Policy, server, global).await?;
        Ok(Policies {
            client: PolicyServiceClient::with_interceptor(channel, BearerAuth::from_global(global)?),
            calls: Calls {
                service: Service::Policy,
                server: server.to_owned(),
                timeout: global.timeout,
            },
        })
    }

    pub(crate) async fn list_policies(&self) -> Result<Vec<Policy>, CliError> {
        let mut client = self.client.clone();
        let response = self
            .calls
            .unary(client.list_policies(self.calls.request(ListPoliciesRequest {})))
            .await?;
        Ok(response.policies)
    }

    pub(crate) async fn get_policy(&self, id: String) -> Result<Policy, CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.get_policy(self.calls.request(GetPolicyRequest { id })))
            .await
    }

    pub(crate) async fn create_policy(&self, request: CreatePolicyRequest) -> Result<Policy, CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.create_policy(self.calls.request(request)))
            .await
    }

    pub(crate) async fn update_policy(&self, request: UpdatePolicyRequest) -> Result<Policy, CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.update_policy(self.calls.request(request)))
            .await
    }

    pub(crate) async fn delete_policy(&self, id: String) -> Result<(), CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.delete_policy(self.calls.request(DeletePolicyRequest { id })))
            .await?;
        Ok(())
    }

    /// The audit trail of policy changes.
    pub(crate) async fn list_audit_events(
        &self,
        request: ListAuditEventsRequest,
    ) -> Result<ListAuditEventsResponse, CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.list_audit_events(self.calls.request(request)))
            .await
    }

    pub(crate) async fn get_effective_policy(
        &self,
        request: GetEffectivePolicyRequest,
    ) -> Result<EffectivePolicy, CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.get_effective_policy(self.calls.request(request)))
            .await
    }

    pub(crate) async fn create_lock(&self, request: CreateLockRequest) -> Result<Lock, CliError> {
        let mut client = self.client.clone();
        self.calls.unary(client.create_lock(self.calls.request(request))).await
    }

    pub(crate) async fn list_locks(&self, request: ListLocksRequest) -> Result<Vec<Lock>, CliError> {
        let mut client = self.client.clone();
        let response = self.calls.unary(client.list_locks(self.calls.request(request))).await?;
        Ok(response.locks)
    }

    pub(crate) async fn delete_lock(&self, id: String) -> Result<(), CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.delete_lock(self.calls.request(DeleteLockRequest { id })))
            .await?;
        Ok(())
    }
}

/// `EventsService` on one server: every process that relays events serves it (the all-in-one once,
/// over its three relays).
pub(crate) struct Events {
    client: EventsClient,
    calls: Calls,
}

impl Events {
    /// One client per distinct address among the registry's, termination's and policy's (the
    /// all-in-one: one), connected eagerly, in that order.
    pub(crate) async fn connect_all(global: &GlobalArgs) -> Result<Vec<Self>, CliError> {
        let mut servers: Vec<(Service, &str)> = Vec::new();
        for (service, server) in [
            (Service::Registry, global.server()),
            (Service::Termination, global.termination_address()),
            (Service::Policy, global.policy_address()),
        ] {
            if servers.iter().all(|(_, known)| *known != server) {
                servers.push((service, server));
            }
        }
        let mut all = Vec::with_capacity(servers.len());
        for (service, server) in servers {
            let channel = open_channel(service, server, global).await?;
            all.push(Events {
                client: EventsServiceClient::with_interceptor(channel, BearerAuth::from_global(global)?),
                calls: Calls {
                    service,
                    server: server.to_owned(),
                    timeout: global.timeout,
                },
            });
        }
        Ok(all)
    }

    pub(crate) async fn list_sinks(&self) -> Result<Vec<SinkStatus>, CliError> {
        let mut client = self.client.clone();
        let response = self
            .calls
            .unary(client.list_sinks(self.calls.request(ListSinksRequest {})))
            .await?;
        Ok(response.sinks)
    }

    /// Sends a test event now; the sink's answer may take its whole timeout, which ours bounds.
    pub(crate) async fn test_sink(&self, sink: String) -> Result<TestSinkResponse, CliError> {
        let mut client = self.client.clone();
        self.calls
            .unary(client.test_sink(self.calls.request(TestSinkRequest { sink })))
            .await
    }
}

/// Opens a channel to `server` within `--timeout`, over TLS for `https://` addresses (checking the
/// server's certificate against `--ca`, or without it against the system's trust store).
async fn open_channel(service: Service, server: &str, global: &GlobalArgs) -> Result<Channel, CliError> {
    let timeout = global.timeout;
    let mut endpoint = Endpoint::from_shared(server.to_owned())
        .map_err(|e| CliError::Usage(format!("`{server}` is not a valid address: {e}")))?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    if server.starts_with("https://") {
        let tls = match &global.ca {
            Some(ca) => {
                let pem = std::fs::read(ca)
                    .map_err(|error| CliError::Usage(format!("cannot read the CA file {}: {error}", ca.display())))?;
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
            }
            None => ClientTlsConfig::new().ca_certificates(system_roots(server)?),
        };
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|error| CliError::Usage(format!("cannot set up TLS for {server}: {error}")))?;
    }
    match tokio::time::timeout(timeout, endpoint.connect()).await {
        Err(_elapsed) => Err(CliError::TimedOut {
            service,
            server: server.to_owned(),
            after: timeout,
        }),
        Ok(Err(error)) => Err(CliError::from_connect(&error, service, server)),
        Ok(Ok(channel)) => Ok(channel),
    }
}

/// The system's trust store (what browsers and curl trust here), as PEM certificates for tonic.
fn system_roots(server: &str) -> Result<Vec<Certificate>, CliError> {
    use base64::Engine as _;
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "it holds no certificates".to_owned(), ToString::to_string);
        return Err(CliError::Usage(format!(
            "`{server}` is https, and the system's trust store cannot be used ({why}); give the CA that signed its \
             certificate with --ca, VIGIL_CA or the config file's `ca`"
        )));
    }
    Ok(found
        .certs
        .iter()
        .map(|der| {
            let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
            let lines: Vec<&str> = body
                .as_bytes()
                .chunks(64)
                .map(|line| std::str::from_utf8(line).unwrap_or_default())
                .collect();
            let pem = format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            );
            Certificate::from_pem(pem)
        })
        .collect())
}

/// How calls to one service are made and their failures described.
struct Calls {
    service: Service,
    server: String,
    timeout: Duration,
}

impl Calls {
    /// A request carrying the timeout as `grpc-timeout`, so the server gives up when we do.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// Awaits a call for at most the timeout and classifies its failure.
    async fn unary<T>(&self, call: impl Future<Output = Result<tonic::Response<T>, Status>>) -> Result<T, CliError> {
        let timed_out = || CliError::TimedOut {
            service: self.service,
            server: self.server.clone(),
            after: self.timeout,
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_elapsed) => Err(timed_out()),
            // The server enforces our `grpc-timeout` too, and may give up first: tonic answers CANCELLED,
            // other servers DEADLINE_EXCEEDED. Either way our deadline passed.
            Ok(Err(status)) if matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded) => Err(timed_out()),
            Ok(Err(status)) => Err(CliError::from_status(status, self.service, &self.server)),
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
    fn from_global(global: &GlobalArgs) -> Result<Self, CliError> {
        Self::new(global.token.as_ref().map(|t| t.expose()))
    }

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

/// A page token that does not move would loop forever; better to stop and say so.
pub(crate) fn repeated_page_token(service: Service) -> CliError {
    CliError::Server {
        service,
        code: Code::Internal,
        message: "the server returned the same page token twice; stopped paging".to_owned(),
    }
}
