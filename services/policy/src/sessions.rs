//! Where the sweeper learns which sessions are live: the registry, called in process (the
//! all-in-one binary) or over gRPC. The sweeper reads them a page at a time in an order the
//! registry has an index for, and stops as soon as the rest cannot need action.

use async_trait::async_trait;
use vigil_proto::v1 as pb;
use vigil_proto::v1::session_registry_client::SessionRegistryClient;
use vigil_registry::Registry;
use vigil_registry::commands::status_to_error;
use vigil_registry::domain::{ListQuery, PageCursor, SessionFilter, SessionRecord, SortKey, SortValue};
use vigil_runtime::client::ServiceChannel;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::EpochMillis;

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
fn covered_sessions(resolved: ServiceResult<pb::ResolveSessionsResponse>) -> ServiceResult<Vec<LiveSession>> {
    match resolved {
        Ok(resolved) => resolved.sessions.into_iter().map(from_proto).collect(),
        Err(ServiceError::NotFound { .. }) => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

/// In process: straight to the registry's store, with the same keyset paging its API uses.
#[async_trait]
impl SessionSource for Registry {
    async fn live_sessions(&self, query: &LiveQuery) -> ServiceResult<LivePage> {
        let sort = match query.order {
            LiveOrder::LastActivity => SortKey::LastActivity,
            LiveOrder::StartedAt => SortKey::StartedAt,
        };
        let after = match query.page_token.as_str() {
            "" => None,
            token => Some(decode_cursor(token)?),
        };
        let list = ListQuery {
            // Empty statuses: live sessions (ACTIVE and IDLE).
            filter: SessionFilter {
                user: query.user.clone(),
                ..SessionFilter::default()
            },
            sort,
            ascending: true,
            limit: u64::from(query.page_size.clamp(1, 1000)),
            after,
        };
        let page = self.store().list_sessions(&list).await?;
        Ok(LivePage {
            sessions: page.sessions.into_iter().map(from_record).collect(),
            next_page_token: page.next.as_ref().map(encode_cursor).unwrap_or_default(),
        })
    }

    async fn covered(&self, selector: &pb::SessionSelector) -> ServiceResult<Vec<LiveSession>> {
        covered_sessions(self.resolve(selector).await)
    }
}

fn from_record(session: SessionRecord) -> LiveSession {
    LiveSession {
        id: session.id,
        user: session.user,
        user_groups: session.user_groups,
        resource_name: session.resource_name,
        gateway_id: session.gateway_id,
        started_at: session.started_at,
        last_activity_at: session.last_activity_at,
    }
}

/// The in-process page token: the sort value and id of the last row, `<millis>:<id>` (both
/// orders the sweeper uses sort by a time).
fn encode_cursor(cursor: &PageCursor) -> String {
    match &cursor.value {
        SortValue::Int(value) => format!("{value}:{}", cursor.id),
        SortValue::Text(text) => format!("t{text}:{}", cursor.id),
    }
}

fn decode_cursor(token: &str) -> ServiceResult<PageCursor> {
    let invalid = || ServiceError::internal(format!("page token {token:?} was not issued by this source"));
    let (value, id) = token.rsplit_once(':').ok_or_else(invalid)?;
    let value = match value.strip_prefix('t') {
        Some(text) => SortValue::Text(text.to_owned()),
        None => SortValue::Int(value.parse().map_err(|_| invalid())?),
    };
    Ok(PageCursor {
        value,
        id: id.to_owned(),
    })
}

/// The registry over gRPC.
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
        let response = self
            .client
            .clone()
            .list_sessions(request)
            .await
            .map_err(status_to_error)?
            .into_inner();
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
        covered_sessions(resolved.map(tonic::Response::into_inner).map_err(status_to_error))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for cursor in [
            PageCursor {
                value: SortValue::Int(-5),
                id: "0190-abc".into(),
            },
            PageCursor {
                value: SortValue::Text("a:b".into()),
                id: "x".into(),
            },
        ] {
            assert_eq!(decode_cursor(&encode_cursor(&cursor)).unwrap(), cursor);
        }
        assert!(decode_cursor("garbage").is_err());
    }
}
