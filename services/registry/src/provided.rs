//! What the registry provides to the other services in process (the all-in-one binary): the
//! traits of `vigil-clients` they call it through, which its gRPC API serves to them otherwise.

use async_trait::async_trait;
use tracing::Instrument;
use vigil_clients::registry::{
    LiveOrder, LivePage, LiveQuery, LiveSession, SessionDirectory, SessionSource, TargetBatches, covered_sessions,
};
use vigil_proto::v1 as pb;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::Registry;
use crate::domain::{ListQuery, PageCursor, SessionFilter, SessionRecord, SortKey, SortValue};

#[async_trait]
impl SessionDirectory for Registry {
    async fn resolve(&self, selector: &pb::SessionSelector) -> ServiceResult<pb::ResolveSessionsResponse> {
        Registry::resolve(self, selector).await
    }

    async fn session_owner(&self, session_id: &str) -> ServiceResult<Option<String>> {
        Ok(self.store().get_session(session_id).await?.map(|session| session.user))
    }

    async fn live_targets(&self, idle_only: bool) -> ServiceResult<TargetBatches> {
        let (sink, batches) = tokio::sync::mpsc::channel(TARGET_BATCHES_AHEAD);
        let store = self.store().clone();
        // In the caller's span: the read is part of its request.
        tokio::spawn(
            async move {
                if let Err(error) = store.live_targets(idle_only, TARGET_BATCH, &sink).await {
                    let _ = sink.send(Err(error)).await;
                }
            }
            .in_current_span(),
        );
        Ok(batches)
    }
}

/// Sessions per batch of [`SessionDirectory::live_targets`] (whole gateways, so a little more):
/// small enough that the first commands go out after a few milliseconds of reading, large enough
/// that an end-all of 100,000 sessions is ~50 batches.
const TARGET_BATCH: usize = 2_000;
/// Batches read ahead of the caller before the read waits for it.
const TARGET_BATCHES_AHEAD: usize = 8;

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
        covered_sessions(Registry::resolve(self, selector).await)
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
