//! Sessions other commands look up: the full id an abbreviated session id stands for, and every page of a
//! session list. Apart from the `sessions` commands so that `terminations list --session` can resolve an id
//! without depending on them (they depend on `terminations` to follow what they end).

use chrono::Local;
use tonic::Code;
use vigil_proto::v1::{
    ListSessionsRequest, ListSessionsResponse, Session, SessionFilter, SessionOrderBy, SessionStatus,
};

use crate::client::{Registry, repeated_page_token};
use crate::error::{CliError, Service};
use crate::ids;

/// How many of the most recent sessions an abbreviated id is looked for in, after the live ones: the
/// registry has no lookup by part of an id, so older sessions need their full id.
pub(crate) const HISTORY_SEARCHED: i32 = 10_000;

/// The page size used when the CLI itself pages (abbreviated ids, time ranges).
pub(crate) const BIG_PAGE: i32 = 1000;

/// Follows `next_page_token` to the last page and returns everything as one page.
pub(crate) async fn every_page(
    registry: &Registry,
    mut request: ListSessionsRequest,
) -> Result<ListSessionsResponse, CliError> {
    let mut all = registry.list_sessions(request.clone()).await?;
    while !all.next_page_token.is_empty() {
        if all.next_page_token == request.page_token {
            return Err(repeated_page_token(Service::Registry));
        }
        request.page_token = std::mem::take(&mut all.next_page_token);
        let page = registry.list_sessions(request.clone()).await?;
        all.sessions.extend(page.sessions);
        all.total_size = page.total_size;
        all.total_size_is_lower_bound = page.total_size_is_lower_bound;
        all.next_page_token = page.next_page_token;
    }
    Ok(all)
}

/// The full id of the session `given` names: itself when whole, else the one live session it abbreviates,
/// else the one among the [`HISTORY_SEARCHED`] most recent.
pub(crate) async fn resolve_session(registry: &Registry, given: &str, live_only: bool) -> Result<String, CliError> {
    if ids::is_full(given) {
        return Ok(given.to_owned());
    }
    let label = |s: &Session| {
        format!(
            "{} → {} ({}, started {})",
            s.user,
            s.resource_name,
            crate::format::status(s.status()),
            crate::format::clock_time(s.started_at.as_ref(), &Local::now())
        )
    };
    let search = |statuses: Vec<SessionStatus>, page_size| ListSessionsRequest {
        filter: Some(SessionFilter {
            statuses: statuses.into_iter().map(i32::from).collect(),
            ..SessionFilter::default()
        }),
        order_by: SessionOrderBy::StartedAt.into(),
        ascending: false,
        page_size,
        page_token: String::new(),
    };
    let live = every_page(
        registry,
        search(vec![SessionStatus::Active, SessionStatus::Idle], BIG_PAGE),
    )
    .await?;
    let candidates = live.sessions.iter().map(|s| (s.id.as_str(), label(s)));
    match ids::pick(given, "session", Service::Registry, candidates) {
        Err(error) if error.server_code() == Some(Code::NotFound) && !live_only => {}
        decided => return decided,
    }
    let mut request = search(vec![SessionStatus::Disconnected], BIG_PAGE);
    let mut ended = Vec::new();
    while ended.len() < usize::try_from(HISTORY_SEARCHED).unwrap_or(usize::MAX) {
        let page = registry.list_sessions(request.clone()).await?;
        ended.extend(page.sessions);
        if page.next_page_token.is_empty() || page.next_page_token == request.page_token {
            break;
        }
        request.page_token = page.next_page_token;
    }
    ids::pick(
        given,
        "session",
        Service::Registry,
        ended.iter().map(|s| (s.id.as_str(), label(s))),
    )
    .map_err(|error| match error.server_code() {
        Some(Code::NotFound) => CliError::Server {
            service: Service::Registry,
            code: Code::NotFound,
            message: format!(
                "no live session, nor any of the {HISTORY_SEARCHED} most recent, has an id starting or ending \
                     with `{given}`; give the full id"
            ),
        },
        _ => error,
    })
}
