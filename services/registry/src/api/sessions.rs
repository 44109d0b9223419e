//! `vigil.v1.SessionRegistry`: list, get, stats, watch, gateways, resolve.
//!
//! Who may call what is decided by the auth layer (`vigil_runtime::auth`), except the one rule that
//! needs the sessions themselves: a caller without `sessions:read` sees only their own sessions —
//! lists and watches are narrowed to their user, getting someone else's session is refused, and
//! resolving answers only about their own sessions (see `Registry::resolve_own`).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use vigil_proto::v1 as pb;
use vigil_proto::v1::session_registry_server::SessionRegistry;
use vigil_runtime::auth::{Identity, Permission, SessionScope, authorize_own_sessions};
use vigil_runtime::{ServiceError, ServiceResult};

use super::watch_limits::WatchLimits;
use crate::convert::{gateway_to_proto, session_to_proto, stats_to_proto};
use crate::domain::{ListQuery, SessionFilter, SessionStatus};
use crate::events::FeedItem;
use crate::registry::Registry;
use crate::{now_millis, validate};

/// Sessions that ended within this window count in `ended_last_24h`.
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The `SessionRegistry` service.
pub struct SessionsApi {
    registry: Registry,
    /// Open change feeds, per caller and in all.
    watches: Arc<WatchLimits>,
    /// Snapshot pages read at once (`registry.snapshot_reads`).
    snapshot_reads: Arc<Semaphore>,
}

impl SessionsApi {
    pub(crate) fn new(registry: Registry) -> Self {
        let settings = &registry.inner.settings;
        let watches = WatchLimits::new(settings.watch_streams_per_caller, settings.watch_streams_total);
        let snapshot_reads = Arc::new(Semaphore::new(settings.snapshot_reads.max(1)));
        Self {
            registry,
            watches,
            snapshot_reads,
        }
    }

    async fn list(
        &self,
        identity: &Identity,
        request: &pb::ListSessionsRequest,
    ) -> ServiceResult<pb::ListSessionsResponse> {
        let inner = &self.registry.inner;
        let filter = own_sessions_filter(identity, validate::filter(request.filter.as_ref())?)?;
        let sort = validate::order_by(request.order_by)?;
        let limit = validate::page_size(request.page_size)?;
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(inner.page_tokens.check(token, &filter, sort, request.ascending)?),
        };
        let query = ListQuery {
            filter,
            sort,
            ascending: request.ascending,
            limit,
            after,
        };
        let page = inner.store.list_sessions(&query).await?;
        let now = now_millis();
        Ok(pb::ListSessionsResponse {
            sessions: page
                .sessions
                .iter()
                .map(|session| session_to_proto(session, now))
                .collect(),
            next_page_token: page
                .next
                .map(|cursor| inner.page_tokens.issue(&query.filter, sort, query.ascending, &cursor))
                .unwrap_or_default(),
            total_size: page.total,
            total_size_is_lower_bound: page.total_is_lower_bound,
        })
    }

    async fn get(&self, identity: &Identity, request: &pb::GetSessionRequest) -> ServiceResult<pb::Session> {
        let id = validate::session_id("id", &request.id)?;
        let session = self.registry.inner.store.get_session(&id).await?;
        let session = session.ok_or_else(|| ServiceError::not_found("session", id))?;
        authorize_own_sessions(
            identity,
            Permission::SessionsRead,
            [(session.id.as_str(), session.user.as_str())],
        )?;
        Ok(session_to_proto(&session, now_millis()))
    }

    async fn stats(&self, request: &pb::GetStatsRequest) -> ServiceResult<pb::SessionStats> {
        let filter = validate::filter(request.filter.as_ref())?;
        let now = now_millis();
        let stats = self.registry.inner.store.stats(&filter, now, now - DAY_MS).await?;
        Ok(stats_to_proto(&stats, now))
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::SessionEvent, Status>> + Send>>;

#[tonic::async_trait]
impl SessionRegistry for SessionsApi {
    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let identity = Identity::of(&request)?;
        Ok(Response::new(self.list(identity, request.get_ref()).await?))
    }

    async fn get_session(&self, request: Request<pb::GetSessionRequest>) -> Result<Response<pb::Session>, Status> {
        let identity = Identity::of(&request)?;
        Ok(Response::new(self.get(identity, request.get_ref()).await?))
    }

    async fn get_stats(&self, request: Request<pb::GetStatsRequest>) -> Result<Response<pb::SessionStats>, Status> {
        Ok(Response::new(self.stats(request.get_ref()).await?))
    }

    type WatchSessionsStream = WatchStream;

    async fn watch_sessions(
        &self,
        request: Request<pb::WatchSessionsRequest>,
    ) -> Result<Response<Self::WatchSessionsStream>, Status> {
        let identity = Identity::of(&request)?;
        let filter = own_sessions_filter(identity, validate::filter(request.get_ref().filter.as_ref())?)?;
        // Taken before the snapshot is read and held by the stream's task until it ends.
        let slot = self.watches.acquire(&identity.subject)?;
        let request = request.into_inner();
        let inner = &self.registry.inner;
        // Subscribe before reading the snapshot, so a change committed in between is not missed
        // (it may be seen twice: once in the snapshot, once as an event — harmless).
        let feed = inner.events.watch();
        let (sender, receiver) = mpsc::channel(256);
        let shutdown = inner.shutdown.clone();
        let registry = self.registry.clone();
        let snapshot_reads = Arc::clone(&self.snapshot_reads);
        // The response (its headers) goes out at once and the snapshot is read inside the stream:
        // a feed queued behind `registry.snapshot_reads` under a flood waits there, not against
        // the request timeout (which applies until the response starts).
        tokio::spawn(async move {
            let _slot = slot;
            let snapshot = if request.include_snapshot {
                match snapshot(&registry, &snapshot_reads, &filter).await {
                    Ok(snapshot) => Some(snapshot),
                    Err(error) => {
                        drop(sender.send(Err(error.into())).await);
                        return;
                    }
                }
            } else {
                None
            };
            // An OPENED still in flight on the bus for a session the snapshot already showed is
            // not news: skip it, so a watcher sees each session open once.
            let shown = snapshot
                .iter()
                .flatten()
                .filter_map(|event| event.session.as_ref().map(|session| session.id.clone()))
                .collect();
            if let Some(snapshot) = snapshot
                && send_snapshot(&sender, snapshot).await.is_err()
            {
                return;
            }
            forward_changes(&sender, feed, &filter, shown, &shutdown).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn list_gateways(
        &self,
        request: Request<pb::ListGatewaysRequest>,
    ) -> Result<Response<pb::ListGatewaysResponse>, Status> {
        let gateways = self
            .registry
            .inner
            .store
            .list_gateways(request.get_ref().connected_only)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(pb::ListGatewaysResponse {
            gateways: gateways.iter().map(gateway_to_proto).collect(),
        }))
    }

    async fn resolve_sessions(
        &self,
        request: Request<pb::ResolveSessionsRequest>,
    ) -> Result<Response<pb::ResolveSessionsResponse>, Status> {
        let identity = Identity::of(&request)?;
        let selector = request.get_ref().selector.clone().unwrap_or_default();
        let resolution = if identity.has(Permission::SessionsRead) {
            self.registry.resolve(&selector).await?
        } else {
            self.registry.resolve_own(&identity.subject, &selector).await?
        };
        Ok(Response::new(resolution))
    }
}

/// A list or watch filter narrowed to the caller's own sessions when they may not see everyone's.
fn own_sessions_filter(identity: &Identity, filter: SessionFilter) -> ServiceResult<SessionFilter> {
    let user = SessionScope::of(identity, Permission::SessionsRead).user_filter(
        filter.user.clone(),
        Permission::SessionsRead,
        &identity.roles,
    )?;
    Ok(SessionFilter { user, ..filter })
}

type WatchSender = mpsc::Sender<Result<pb::SessionEvent, Status>>;

/// The snapshot's events, then SNAPSHOT_DONE. `Err` when the watcher has gone.
async fn send_snapshot(sender: &WatchSender, snapshot: Vec<pb::SessionEvent>) -> Result<(), ()> {
    for event in snapshot {
        sender.send(Ok(event)).await.map_err(drop)?;
    }
    let done = pb::SessionEvent {
        kind: pb::SessionEventKind::SnapshotDone as i32,
        at: Some(vigil_proto::timestamp_from_millis(now_millis())),
        ..Default::default()
    };
    sender.send(Ok(done)).await.map_err(drop)
}

/// The changes that concern this watcher, until it goes, the feed breaks or the replica stops.
/// `shown`: sessions the snapshot showed, whose OPENED still in flight is skipped.
async fn forward_changes(
    sender: &WatchSender,
    mut feed: broadcast::Receiver<FeedItem>,
    filter: &SessionFilter,
    mut shown: HashSet<String>,
    shutdown: &tokio_util::sync::CancellationToken,
) {
    loop {
        let item = tokio::select! {
            () = shutdown.cancelled() => {
                let stopping = ServiceError::Unavailable("the registry is shutting down; watch again".into());
                drop(sender.send(Err(stopping.into())).await);
                return;
            }
            () = sender.closed() => return,
            item = feed.recv() => item,
        };
        let event = match item {
            Ok(FeedItem::Event(event)) => event,
            Ok(FeedItem::Gap) | Err(broadcast::error::RecvError::Lagged(_)) => {
                let gap = ServiceError::Unavailable(
                    "the change feed was interrupted and changes may have been missed; watch again (with include_snapshot) to resynchronise".into(),
                );
                drop(sender.send(Err(gap.into())).await);
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Some(session) = &event.session
            && !shown.is_empty()
        {
            let kind = event.kind;
            if kind == pb::SessionEventKind::Opened as i32 && shown.contains(&session.id) {
                continue;
            }
            if kind == pb::SessionEventKind::Ended as i32 {
                shown.remove(&session.id);
            }
        }
        if event_matches(filter, &event) && sender.send(Ok((*event).clone())).await.is_err() {
            return;
        }
    }
}

/// The matching live sessions as SNAPSHOT events, read page by page, each page on a connection
/// taken for that one query and only with one of `reads`' permits (`registry.snapshot_reads`): however
/// many feeds open at once, their snapshots never hold more of the pool's connections than that.
async fn snapshot(
    registry: &Registry,
    reads: &Semaphore,
    filter: &SessionFilter,
) -> ServiceResult<Vec<pb::SessionEvent>> {
    let statuses = live_statuses_within(&filter.statuses);
    if statuses.is_empty() {
        // A watch for DISCONNECTED sessions only: nothing live to show.
        return Ok(Vec::new());
    }
    let mut query = ListQuery {
        filter: SessionFilter {
            statuses,
            ..filter.clone()
        },
        sort: Default::default(),
        ascending: true,
        limit: validate::MAX_PAGE_SIZE,
        after: None,
    };
    let now = now_millis();
    let mut events = Vec::new();
    loop {
        let page = {
            // Never closed: the semaphore lives as long as the service.
            let _permit = reads
                .acquire()
                .await
                .map_err(|_| ServiceError::Unavailable("the registry is shutting down; watch again".into()))?;
            registry.inner.store.list_sessions(&query).await?
        };
        events.extend(page.sessions.iter().map(|session| pb::SessionEvent {
            kind: pb::SessionEventKind::Snapshot as i32,
            session: Some(session_to_proto(session, now)),
            at: Some(vigil_proto::timestamp_from_millis(now)),
            detail: String::new(),
        }));
        match page.next {
            Some(cursor) => query.after = Some(cursor),
            None => return Ok(events),
        }
    }
}

/// A snapshot shows live sessions only: of those, the ones the filter's statuses allow.
fn live_statuses_within(statuses: &[SessionStatus]) -> Vec<SessionStatus> {
    [SessionStatus::Active, SessionStatus::Idle]
        .into_iter()
        .filter(|status| statuses.is_empty() || statuses.contains(status))
        .collect()
}

/// Whether a change concerns a watcher with this filter (see `WatchSessionsRequest.filter`).
fn event_matches(filter: &SessionFilter, event: &pb::SessionEvent) -> bool {
    let Some(session) = &event.session else {
        return true;
    };
    let ended = event.kind == pb::SessionEventKind::Ended as i32;
    let status_ok = ended
        || filter.statuses.is_empty()
        || SessionStatus::try_from(session.status).is_ok_and(|status| filter.statuses.contains(&status));
    let location = session.location.as_ref();
    let risk = session.risk.as_ref();
    let text_ok = filter.query.as_deref().is_none_or(|query| {
        [
            session.user.as_str(),
            &session.resource_name,
            &session.device,
            &session.client_ip,
            location.map_or("", |location| location.city.as_str()),
            &session.gateway_id,
        ]
        .iter()
        .any(|field| field.to_lowercase().contains(query))
    });
    status_ok
        && text_ok
        && filter.user.as_deref().is_none_or(|user| session.user == user)
        && filter
            .resource_name
            .as_deref()
            .is_none_or(|resource| session.resource_name == resource)
        && filter
            .resource_type
            .is_none_or(|kind| session.resource_type == kind as i32)
        && filter
            .gateway_id
            .as_deref()
            .is_none_or(|gateway| session.gateway_id == gateway)
        && filter.client_ip.as_deref().is_none_or(|ip| session.client_ip == ip)
        && filter
            .country_code
            .as_deref()
            .is_none_or(|code| location.is_some_and(|location| location.country_code.eq_ignore_ascii_case(code)))
        && filter
            .min_risk_score
            .is_none_or(|min| risk.is_some_and(|risk| risk.score >= min))
        && (!filter.flagged_only || risk.is_some_and(|risk| !risk.flags.is_empty()))
        && (!filter.denied_only || event.kind == pb::SessionEventKind::Denied as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: pb::SessionEventKind, status: SessionStatus, user: &str) -> pb::SessionEvent {
        pb::SessionEvent {
            kind: kind as i32,
            session: Some(pb::Session {
                user: user.into(),
                status: status as i32,
                resource_name: "prod-db-01".into(),
                location: Some(pb::Location {
                    city: "Berlin".into(),
                    country_code: "DE".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn watch_filters_apply_to_events() {
        let filter = SessionFilter {
            statuses: vec![SessionStatus::Idle],
            country_code: Some("DE".into()),
            ..Default::default()
        };
        assert!(event_matches(
            &filter,
            &event(pb::SessionEventKind::Updated, SessionStatus::Idle, "a")
        ));
        assert!(!event_matches(
            &filter,
            &event(pb::SessionEventKind::Updated, SessionStatus::Active, "a")
        ));
        // An end is always reported to a watcher whose other filters match.
        assert!(event_matches(
            &filter,
            &event(pb::SessionEventKind::Ended, SessionStatus::Disconnected, "a")
        ));
        let other_country = SessionFilter {
            country_code: Some("FR".into()),
            ..Default::default()
        };
        assert!(!event_matches(
            &other_country,
            &event(pb::SessionEventKind::Ended, SessionStatus::Disconnected, "a")
        ));
    }

    #[test]
    fn free_text_matches_any_shown_field() {
        let filter = SessionFilter {
            query: Some("berl".into()),
            ..Default::default()
        };
        assert!(event_matches(
            &filter,
            &event(pb::SessionEventKind::Opened, SessionStatus::Active, "bob")
        ));
        let filter = SessionFilter {
            query: Some("carol".into()),
            ..Default::default()
        };
        assert!(!event_matches(
            &filter,
            &event(pb::SessionEventKind::Opened, SessionStatus::Active, "bob")
        ));
    }
}
