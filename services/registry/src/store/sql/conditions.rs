//! WHERE and ORDER BY pieces shared by the store's queries: filters, list order, keyset cursors,
//! and "id in this list" in one bind parameter.

use sea_orm::sea_query::extension::postgres::PgFunc;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, Query, QueryStatementBuilder};
use sea_orm::{ColumnTrait, Condition, DbBackend, Order, Value};
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{PageCursor, SessionFilter, SessionStatus, SortKey, SortValue};
use crate::store::entity::session::{self, Column, enum_code};
use crate::store::entity::session_activity;

/// Live sessions: the ones not ended. Spelled exactly like the partial indexes' predicate so the
/// planners can use them.
pub fn live() -> Condition {
    Condition::all().add(Column::EndedAt.is_null())
}

/// The statuses a list covers: empty means live.
pub fn statuses(statuses: &[SessionStatus]) -> Condition {
    if statuses.is_empty() {
        return live();
    }
    let codes: Vec<i16> = statuses.iter().copied().map(enum_code).collect();
    let mut condition = Condition::all().add(Column::Status.is_in(codes));
    // ACTIVE and IDLE sessions are exactly the ones with no end time; saying so lets the live-only
    // partial indexes serve the query.
    if live_only(statuses) {
        condition = condition.add(Column::EndedAt.is_null());
    }
    condition
}

/// Whether a list of these statuses holds live sessions only (empty means live).
pub fn live_only(statuses: &[SessionStatus]) -> bool {
    statuses
        .iter()
        .all(|status| matches!(status, SessionStatus::Active | SessionStatus::Idle))
}

/// Everything in the filter except its statuses.
pub fn matching(backend: DbBackend, filter: &SessionFilter) -> Condition {
    let mut condition = Condition::all();
    if let Some(user) = &filter.user {
        condition = condition.add(Column::UserName.eq(user.as_str()));
    }
    if let Some(resource) = &filter.resource_name {
        condition = condition.add(Column::ResourceName.eq(resource.as_str()));
    }
    if let Some(resource_type) = filter.resource_type {
        condition = condition.add(Column::ResourceType.eq(enum_code(resource_type)));
    }
    if let Some(gateway) = &filter.gateway_id {
        condition = condition.add(Column::GatewayId.eq(gateway.as_str()));
    }
    if let Some(country) = &filter.country_code {
        condition = condition.add(Column::LocationCountryCode.eq(country.as_str()));
    }
    if let Some(query) = filter.query.as_deref().filter(|query| !query.is_empty()) {
        // Matched in `session_search` (a copy of `search_text` the database keeps, with a trigram
        // index on PostgreSQL), not in `sessions`, whose rows change too often to carry that index.
        let matching_ids = Query::select()
            .column(SessionSearch::SessionId)
            .from(SessionSearch::Table)
            .and_where(search_text_holds(query))
            .to_owned();
        condition = condition.add(match backend {
            // `id = ANY(ARRAY(...))`: the matches are collected once, first, from the trigram
            // index, then fetched by id and sorted. As `IN (...)`, PostgreSQL misjudged how common
            // a term is and walked the whole sort order, probing each session (196 ms at 100k).
            // The price: a term found in most sessions costs one lookup per match.
            DbBackend::Postgres => {
                let subquery = Expr::SubQuery(None, Box::new(matching_ids.into_sub_query_statement()));
                let ids = Expr::cust_with_exprs("ARRAY $1", [subquery]);
                Expr::col((session::Entity, Column::Id)).eq(PgFunc::any(ids))
            }
            _ => Column::Id.in_subquery(matching_ids),
        });
    }
    if let Some(min_score) = filter.min_risk_score {
        condition = condition.add(Column::RiskScore.gte(i64::from(min_score)));
    }
    if filter.flagged_only {
        condition = condition.add(Column::Flagged.eq(true));
    }
    if let Some(ip) = &filter.client_ip {
        condition = condition.add(Column::ClientIp.eq(ip.as_str()));
    }
    if filter.denied_only {
        // A refused start is recorded as a session that ended as it began, by policy.
        condition = condition
            .add(Column::EndReason.eq(enum_code(crate::domain::EndReason::Policy)))
            .add(Expr::col(Column::EndedAt).eq(Expr::col(Column::StartedAt)));
    }
    condition
}

/// The free-text filter's table (see the migrations `m20261124_000302_free_text_index` and
/// `m20261215_000701_free_text_covering`).
#[derive(sea_orm::DeriveIden, Clone, Copy)]
pub enum SessionSearch {
    Table,
    SessionId,
    SearchText,
    StartedAt,
}

/// `session_search.search_text` holds `query` (case folded as the text is).
pub fn search_text_holds(query: &str) -> Expr {
    let pattern = LikeExpr::new(contains_pattern(&query.to_lowercase())).escape(LIKE_ESCAPE);
    Expr::col((SessionSearch::Table, SessionSearch::SearchText)).like(pattern)
}

/// The escape character of LIKE patterns. PostgreSQL defaults to it, SQLite has none by default:
/// saying `ESCAPE` explicitly makes both behave the same.
pub const LIKE_ESCAPE: char = '\\';

/// A LIKE pattern matching `text` anywhere, with LIKE's own wildcards in `text` taken literally.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for character in text.chars() {
        if matches!(character, '%' | '_' | LIKE_ESCAPE) {
            pattern.push(LIKE_ESCAPE);
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

/// The column a list is sorted by, in `sessions`. Last activity sorts by its rank
/// (`last_activity_rank`), the indexed form of it; see [`sort_expr`] for where to read it.
pub fn sort_column(key: SortKey) -> Column {
    match key {
        SortKey::StartedAt => Column::StartedAt,
        SortKey::LastActivity => Column::ActivityBucket,
        SortKey::User => Column::UserName,
        SortKey::Resource => Column::ResourceName,
        SortKey::RiskScore => Column::RiskScore,
    }
}

/// What a list's rows are sorted by, in a query joining `session_activity`
/// (`activity::sessions_now`). Last activity is a live session's row there: only lists of live
/// sessions (joined with `InnerJoin`) can walk that table's index; others sort by the current
/// value, from either table.
pub fn sort_expr(key: SortKey, live_only: bool) -> Expr {
    let activity_bucket = Expr::col((session_activity::Entity, session_activity::Column::ActivityBucket));
    match key {
        SortKey::LastActivity if live_only => activity_bucket,
        SortKey::LastActivity => {
            Func::coalesce([activity_bucket, Expr::col((session::Entity, Column::ActivityBucket))]).into()
        }
        key => Expr::col((session::Entity, sort_column(key))),
    }
}

pub fn order(ascending: bool) -> Order {
    if ascending { Order::Asc } else { Order::Desc }
}

/// Rows strictly after `cursor` in the list's order: `(key, id) > (value, id)` ascending, `<`
/// descending. Written out as `key >= value AND (key > value OR (key = value AND id > id))`:
/// the redundant first bound is what lets both planners start the `(key, id)` index scan at the
/// cursor instead of filtering every row before it.
pub fn after(key: SortKey, sort: Expr, ascending: bool, cursor: &PageCursor) -> ServiceResult<Condition> {
    after_by(key, sort, Expr::col((session::Entity, Column::Id)), ascending, cursor)
}

/// [`after`], for rows whose session id is `id` (not `sessions.id`).
pub fn after_by(key: SortKey, sort: Expr, id: Expr, ascending: bool, cursor: &PageCursor) -> ServiceResult<Condition> {
    let value: Value = match (key, &cursor.value) {
        (SortKey::StartedAt | SortKey::LastActivity | SortKey::RiskScore, SortValue::Int(value)) => (*value).into(),
        (SortKey::User | SortKey::Resource, SortValue::Text(value)) => value.clone().into(),
        _ => return Err(ServiceError::invalid("page token does not belong to this sort order")),
    };
    let cursor_id = cursor.id.as_str();
    let (bound, beyond_key, beyond_id) = if ascending {
        (
            sort.clone().gte(value.clone()),
            sort.clone().gt(value.clone()),
            id.gt(cursor_id),
        )
    } else {
        (
            sort.clone().lte(value.clone()),
            sort.clone().lt(value.clone()),
            id.lt(cursor_id),
        )
    };
    Ok(Condition::all().add(bound).add(
        Condition::any()
            .add(beyond_key)
            .add(Condition::all().add(sort.eq(value)).add(beyond_id)),
    ))
}

/// `sessions.id` is one of `ids` (see [`in_list`]).
pub fn id_in(backend: DbBackend, ids: &[String]) -> ServiceResult<Expr> {
    in_list(backend, Expr::col((session::Entity, Column::Id)), ids)
}

/// `column` is one of `ids`, with the whole list as a single bind parameter (a PostgreSQL array,
/// or a JSON array SQLite unpacks with `json_each`): no limit on the list's length and one
/// prepared statement whatever the length.
pub fn in_list(backend: DbBackend, column: Expr, ids: &[String]) -> ServiceResult<Expr> {
    Ok(match backend {
        DbBackend::Postgres => column.eq(PgFunc::any(Expr::val(ids.to_vec()))),
        _ => {
            let json = serde_json::to_string(ids).map_err(ServiceError::internal)?;
            let list = Query::select()
                .expr(Expr::cust("value"))
                .from_function(Func::cust("json_each").arg(json), "ids")
                .to_owned();
            column.in_subquery(list)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_in_the_query_are_literal() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(contains_pattern("alice"), "%alice%");
    }
}
