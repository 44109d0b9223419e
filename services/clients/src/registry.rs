//! The registry, as its callers need it: the termination service resolves selectors and checks
//! owners ([`SessionDirectory`]); the policy sweeper and lock enforcement read live sessions
//! ([`SessionSource`]).

use async_trait::async_trait;
use vigil_core::EpochMillis;
use vigil_proto::v1 as pb;
use vigil_proto::v1::session_registry_client::SessionRegistryClient;
use vigil_runtime::client::ServiceChannel;
use vigil_runtime::{ServiceError, ServiceResult};

/// Whether a call failed because its connection went away (not because of what it asked): the
/// transport's error, not the server's answer.
fn connection_lost(status: &tonic::Status) -> bool {
    match status.code() {
        tonic::Code::Unavailable => true,
        tonic::Code::Unknown => {
            std::error::Error::source(status).is_some() || status.message().contains("transport error")
        }
        _ => false,
    }
}

/// The registry, as the termination service needs it.
#[async_trait]
pub trait SessionDirectory: Send + Sync + 'static {
    /// The live sessions `selector` covers; NOT_FOUND for ids, users, gateways or resources the
    /// registry has never seen.
    async fn resolve(&self, selector: &pb::SessionSelector) -> ServiceResult<pb::ResolveSessionsResponse>;

    /// Every live session (only the idle ones with `idle_only`), narrowed to where a kill goes, in
    /// batches of whole gateways sent as they are read: an end-all publishes its first gateways'
    /// commands before the last row is read. Over gRPC the answer comes whole, in one batch.
    async fn live_targets(&self, idle_only: bool) -> ServiceResult<TargetBatches> {
        let all = pb::SessionSelector {
            target: Some(pb::session_selector::Target::All(pb::AllSessions { idle_only })),
        };
        let targets = self
            .resolve(&all)
            .await?
            .sessions
            .into_iter()
            .map(|session| SessionTarget {
                id: session.id,
                gateway_id: session.gateway_id,
                user: session.user,
            })
            .collect();
        let (sender, batches) = tokio::sync::mpsc::channel(1);
        // Cannot fail: the channel is new and has room for one.
        let _ = sender.try_send(Ok(targets));
        Ok(batches)
    }

    /// Whose session `session_id` is (ended or not); `None` when the registry does not know it.
    async fn session_owner(&self, session_id: &str) -> ServiceResult<Option<String>>;
}

/// Where a live session is: what a kill command needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTarget {
    pub id: String,
    pub gateway_id: String,
    pub user: String,
}

/// Batches of [`SessionTarget`]s as they are read; an error ends the stream.
pub type TargetBatches = tokio::sync::mpsc::Receiver<ServiceResult<Vec<SessionTarget>>>;

/// A live session, as much of it as policy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub id: String,
    pub user: String,
    pub user_groups: Vec<String>,
    pub resource_name: String,
    pub gateway_id: String,
    pub started_at: EpochMillis,
    pub last_activity_at: EpochMillis,
}

/// The orders the sweeper reads in (both oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveOrder {
    /// Least recent activity first: the idlest sessions come first.
    LastActivity,
    /// Earliest start first: the oldest sessions come first.
    StartedAt,
}

/// One page request over the live sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveQuery {
    pub order: LiveOrder,
    /// Only this user's sessions.
    pub user: Option<String>,
    /// 1–1000.
    pub page_size: u32,
    /// Empty for the first page; then the previous page's `next_page_token`.
    pub page_token: String,
}

/// One page of live sessions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LivePage {
    pub sessions: Vec<LiveSession>,
    /// Empty on the last page.
    pub next_page_token: String,
}

/// The registry, as the sweeper needs it.
#[async_trait]
pub trait SessionSource: Send + Sync + 'static {
    async fn live_sessions(&self, query: &LiveQuery) -> ServiceResult<LivePage>;

    /// The live sessions a selector covers (what a lock's target covers). A user, gateway or
    /// resource the registry has never seen covers nothing.
    async fn covered(&self, selector: &pb::SessionSelector) -> ServiceResult<Vec<LiveSession>>;
}

/// A resolution, with "never seen" read as "nothing live".
pub fn covered_sessions(resolved: ServiceResult<pb::ResolveSessionsResponse>) -> ServiceResult<Vec<LiveSession>> {
    match resolved {
        Ok(resolved) => resolved.sessions.into_iter().map(from_proto).collect(),
        Err(ServiceError::NotFound(_)) => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

/// The registry over gRPC, for the termination service.
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
        let response = match self.client.clone().resolve_sessions(request.clone()).await {
            // A read, so asked again at once when the replica answering it died mid-call (its
            // connection dropped): the channel reconnects to a replica that is up, and an end-all
            // does not fail back to its caller (who would retry it only a round trip later).
            Err(status) if connection_lost(&status) => self.client.clone().resolve_sessions(request).await?,
            answer => answer?,
        };
        Ok(response.into_inner())
    }

    async fn session_owner(&self, session_id: &str) -> ServiceResult<Option<String>> {
        let request = pb::GetSessionRequest {
            id: session_id.to_owned(),
        };
        match self.client.clone().get_session(request).await {
            Ok(session) => Ok(Some(session.into_inner().user)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(status.into()),
        }
    }
}

/// The registry over gRPC, for policy.
#[derive(Clone)]
pub struct GrpcSessionSource {
    client: SessionRegistryClient<ServiceChannel>,
}

impl GrpcSessionSource {
    /// On a channel carrying this service's credentials (listing every user's sessions needs the
    /// `service` role).
    pub fn new(channel: ServiceChannel) -> Self {
        Self {
            client: SessionRegistryClient::new(channel),
        }
    }
}

#[async_trait]
impl SessionSource for GrpcSessionSource {
    async fn live_sessions(&self, query: &LiveQuery) -> ServiceResult<LivePage> {
        let request = pb::ListSessionsRequest {
            filter: Some(pb::SessionFilter {
                user: query.user.clone().unwrap_or_default(),
                ..pb::SessionFilter::default()
            }),
            order_by: match query.order {
                LiveOrder::LastActivity => pb::SessionOrderBy::LastActivity,
                LiveOrder::StartedAt => pb::SessionOrderBy::StartedAt,
            } as i32,
            ascending: true,
            page_size: i32::try_from(query.page_size).unwrap_or(1000),
            page_token: query.page_token.clone(),
        };
        let response = self.client.clone().list_sessions(request).await?.into_inner();
        let sessions = response
            .sessions
            .into_iter()
            .map(from_proto)
            .collect::<ServiceResult<_>>()?;
        Ok(LivePage {
            sessions,
            next_page_token: response.next_page_token,
        })
    }

    async fn covered(&self, selector: &pb::SessionSelector) -> ServiceResult<Vec<LiveSession>> {
        let request = pb::ResolveSessionsRequest {
            selector: Some(selector.clone()),
        };
        let resolved = self.client.clone().resolve_sessions(request).await;
        covered_sessions(resolved.map(tonic::Response::into_inner).map_err(ServiceError::from))
    }
}

fn from_proto(session: pb::Session) -> ServiceResult<LiveSession> {
    let time = |field: &str, value: Option<&prost_types::Timestamp>| {
        value
            .and_then(vigil_proto::millis_from_timestamp)
            .ok_or_else(|| ServiceError::internal(format!("the registry sent session {} without {field}", session.id)))
    };
    let started_at = time("started_at", session.started_at.as_ref())?;
    let last_activity_at = time("last_activity_at", session.last_activity_at.as_ref())?;
    Ok(LiveSession {
        id: session.id,
        user: session.user,
        user_groups: session.user_groups,
        resource_name: session.resource_name,
        gateway_id: session.gateway_id,
        started_at,
        last_activity_at,
    })
}
