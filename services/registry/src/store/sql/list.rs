//! A page of a session list and the total it is part of.
//!
//! Two shapes, by filter:
//! - **Without free text** the page walks an index in the list's order and stops after the page;
//!   the total is a second statement counting at most one match more than [`EXACT_TOTAL_UP_TO`]
//!   (a count of every match would read them all on every page).
//! - **With free text** every match is read anyway — collected from the trigram index, fetched by
//!   id, then sorted — so the total is counted in that same pass (`COUNT(*) OVER ()`) instead of by
//!   a second statement repeating the search. At 100,000 live sessions, with a term matching 500
//!   of them, that halves the page (two searches of ~5 ms each become one).
//! - **With free text alone, live sessions by start time** (the console's search box) the page is
//!   chosen in `session_search`, which carries the start time, without reading `sessions`: a
//!   match is live when it has its narrow `session_activity` row. The matches are collected from
//!   the trigram index up to one more than [`EXACT_TOTAL_UP_TO`], counted and sorted in one pass:
//!   for most terms, that is every match, and the page. A term found more often has its total
//!   then (a floor), and its page among the sessions after the cursor, walked in the list's order
//!   a bounded number of them: at 100,000 live sessions a term in 5,000 of them no longer needs
//!   5,000 liveness probes and a sort for a page of 51. Only the page's rows are read from
//!   `sessions`.

use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Order, Query, QueryStatementBuilder, SelectStatement};
use sea_orm::{
    Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, FromQueryResult, JoinType, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, QueryTrait,
};
use vigil_runtime::{ServiceError, ServiceResult};

use super::{MAX_PAGE, SqlStore, activity, conditions, records, to_count};
use crate::domain::{EXACT_TOTAL_UP_TO, ListQuery, PageCursor, SessionFilter, SessionPage, SortKey};
use crate::store::entity::session::{self, Column};
use crate::store::entity::session_activity;

/// The column carrying the free-text search's total on each row.
const TOTAL: &str = "total";

impl SqlStore {
    pub(super) async fn list_page(&self, query: &ListQuery) -> ServiceResult<SessionPage> {
        if !(1..=MAX_PAGE).contains(&query.limit) {
            return Err(ServiceError::invalid(format!(
                "page size must be between 1 and {MAX_PAGE}"
            )));
        }
        let filter =
            conditions::matching(self.backend(), &query.filter).add(conditions::statuses(&query.filter.statuses));
        let txn = self.read_transaction().await?;
        let free_text = query.filter.query.as_deref().is_some_and(|text| !text.is_empty());
        let (rows, counted) = if let Some(text) = searched_alone(query) {
            self.searched_page(&txn, query, text, filter).await?
        } else if free_text {
            self.text_page(&txn, query, filter).await?
        } else {
            let page = self.backend().build(&page_rows(query, filter.clone())?);
            let rows = session_models(&txn.query_all_raw(page).await?)?;
            (rows, self.count_capped(&txn, filter).await?)
        };
        txn.commit().await?;
        into_page(query, rows, counted)
    }

    /// Matches of `filter`, counted up to one more than [`EXACT_TOTAL_UP_TO`].
    async fn count_capped(&self, txn: &DatabaseTransaction, filter: Condition) -> ServiceResult<u64> {
        let capped = session::Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(filter)
            .limit(EXACT_TOTAL_UP_TO + 1)
            .into_query();
        let count = Query::select()
            .expr_as(Expr::cust("COUNT(*)"), TOTAL)
            .from_subquery(capped, "capped")
            .to_owned();
        let counted = txn.query_one_raw(self.backend().build(&count)).await?;
        Ok(counted
            .map(|row| row.try_get::<i64>("", TOTAL))
            .transpose()?
            .map_or(0, to_count))
    }

    /// The page and the total of a free-text list in one statement: the matches with their count
    /// (`COUNT(*) OVER ()`, before the cursor and the limit apply), then the page of them.
    async fn text_page(
        &self,
        txn: &DatabaseTransaction,
        query: &ListQuery,
        filter: Condition,
    ) -> ServiceResult<(Vec<session::Model>, u64)> {
        // Sorted by last activity, every match needs its current activity; otherwise only the page.
        let by_activity = query.sort == SortKey::LastActivity;
        let matches = if by_activity {
            activity::sessions_now(JoinType::LeftJoin)
        } else {
            session::Entity::find()
        };
        let matches = matches
            .filter(filter.clone())
            .column_as(Expr::cust("COUNT(*) OVER ()"), TOTAL)
            .into_query();
        // Aliased as the table itself, so the cursor's and the order's columns (qualified with the
        // table's name) name the subquery's, which are current.
        let sort = Expr::col((session::Entity, conditions::sort_column(query.sort)));
        let order = conditions::order(query.ascending);
        let mut page = Query::select();
        page.column(Asterisk).from_subquery(matches, session::Entity);
        if let Some(cursor) = &query.after {
            page.cond_where(conditions::after(query.sort, sort.clone(), query.ascending, cursor)?);
        }
        in_list_order(&mut page, sort.clone(), order.clone());
        page.limit(query.limit + 1);
        if !by_activity {
            page = activity::page_now(page, &[TOTAL]);
            in_list_order(&mut page, sort, order);
        }
        self.counted_rows(txn, query, filter, &page).await
    }

    /// Free text alone, live sessions by start time (the console's search box), from
    /// `session_search` alone. The matches are collected from the trigram index up to one more
    /// than [`EXACT_TOTAL_UP_TO`], then counted and sorted: for most terms that is all of them, and
    /// the page. A term found more often has its total by then, and its page among the newest
    /// sessions after the cursor (walked, see [`SqlStore::walked_page`]); only when they hold too
    /// few of its matches are all of them collected and sorted.
    async fn searched_page(
        &self,
        txn: &DatabaseTransaction,
        query: &ListQuery,
        text: &str,
        filter: Condition,
    ) -> ServiceResult<(Vec<session::Model>, u64)> {
        let (rows, counted) = self
            .matched_page(txn, query, text, filter.clone(), Some(EXACT_TOTAL_UP_TO + 1))
            .await?;
        if counted <= EXACT_TOTAL_UP_TO {
            return Ok((rows, counted));
        }
        let walked = self.walked_page(txn, query, text).await?;
        if walked.len() as u64 > query.limit {
            return Ok((walked, counted));
        }
        let (rows, _every_match) = self.matched_page(txn, query, text, filter, None).await?;
        Ok((rows, counted))
    }

    /// The page among the [`walk_span`] sessions after the cursor in the list's order (ended ones
    /// included): for a term found in many sessions, the page is there, and only the walked rows
    /// holding the text are probed for liveness. Shorter than a page plus one when the term is
    /// rarer than that among them (or the list ends), and then not to be trusted as the page.
    async fn walked_page(
        &self,
        txn: &DatabaseTransaction,
        query: &ListQuery,
        text: &str,
    ) -> ServiceResult<Vec<session::Model>> {
        use conditions::SessionSearch;
        let order = conditions::order(query.ascending);
        let started = Expr::col((SessionSearch::Table, SessionSearch::StartedAt));
        let id = Expr::col((SessionSearch::Table, SessionSearch::SessionId));
        let mut walked = Query::select();
        walked
            .column((SessionSearch::Table, SessionSearch::SessionId))
            .column((SessionSearch::Table, SessionSearch::StartedAt))
            .column((SessionSearch::Table, SessionSearch::SearchText))
            .from(SessionSearch::Table);
        if let Some(cursor) = &query.after {
            walked.cond_where(conditions::after_by(
                query.sort,
                started.clone(),
                id.clone(),
                query.ascending,
                cursor,
            )?);
        }
        walked
            .order_by_expr(started, order.clone())
            .order_by_expr(id, order)
            .limit(walk_span(query.limit));
        // Aliased as the table itself, so the text and liveness conditions name the walked rows.
        let matches = live_matches(Query::select().from_subquery(walked, SessionSearch::Table), text);
        // The page applies the cursor again: on rows walked from it, that filters nothing.
        let page = page_of_matches(query, matches, &[])?;
        session_models(&txn.query_all_raw(self.backend().build(&page)).await?)
    }

    /// The live matches of the text, from the trigram index (the first `cap` found, if capped),
    /// counted (`COUNT(*) OVER ()`) and sorted by the start time `session_search` carries; only
    /// the page's rows are read from `sessions`. The page is the list's only when the count is
    /// below the cap.
    async fn matched_page(
        &self,
        txn: &DatabaseTransaction,
        query: &ListQuery,
        text: &str,
        filter: Condition,
        cap: Option<u64>,
    ) -> ServiceResult<(Vec<session::Model>, u64)> {
        use conditions::SessionSearch;
        let mut matches = live_matches(Query::select().from(SessionSearch::Table), text);
        if let Some(cap) = cap {
            matches.limit(cap);
        }
        // Aliased as `sessions`, so the cursor's and the order's columns (qualified with that
        // table's name) name the matches'; counted before the cursor applies.
        let counted = Query::select()
            .column((session::Entity, Column::Id))
            .column((session::Entity, Column::StartedAt))
            .expr_as(Expr::cust("COUNT(*) OVER ()"), Alias::new(TOTAL))
            .from_subquery(matches, session::Entity)
            .to_owned();
        let page = page_of_matches(query, counted, &[TOTAL])?;
        self.counted_rows(txn, query, filter, &page).await
    }

    /// Runs `page`, whose rows carry the matches' total in [`TOTAL`]; the rows and that total.
    async fn counted_rows(
        &self,
        txn: &DatabaseTransaction,
        query: &ListQuery,
        filter: Condition,
        page: &SelectStatement,
    ) -> ServiceResult<(Vec<session::Model>, u64)> {
        let rows = txn.query_all_raw(self.backend().build(page)).await?;
        let counted = match rows.first() {
            Some(row) => to_count(row.try_get::<i64>("", TOTAL)?),
            // Past the last match no row carries the count: counted apart (rare: a next page whose
            // sessions all ended meanwhile).
            None if query.after.is_some() => self.count_capped(txn, filter).await?,
            None => 0,
        };
        Ok((session_models(&rows)?, counted))
    }
}

/// Rows walked for a free-text page of `limit` (see [`SqlStore::walked_page`]): enough to fill
/// the page when one session in [`WALKED_PER_PAGE_ROW`] or more holds the text.
fn walk_span(limit: u64) -> u64 {
    (limit + 1).saturating_mul(WALKED_PER_PAGE_ROW)
}

/// See [`walk_span`]. At 40, a page of 50 walks 2,040 rows, about a millisecond; only terms with
/// more matches than [`EXACT_TOTAL_UP_TO`] are walked for.
const WALKED_PER_PAGE_ROW: u64 = 40;

/// Rows of `sessions` (all its columns, as named there) as models.
fn session_models(rows: &[QueryResult]) -> ServiceResult<Vec<session::Model>> {
    Ok(rows
        .iter()
        .map(|row| session::Model::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()?)
}

/// `source` (`session_search`, or rows of it under that name) narrowed to its live rows holding
/// `text`, as rows of a session id and start time named as `sessions`' columns.
fn live_matches(source: &mut SelectStatement, text: &str) -> SelectStatement {
    use conditions::SessionSearch;
    source
        .expr_as(Expr::col((SessionSearch::Table, SessionSearch::SessionId)), Column::Id)
        .expr_as(
            Expr::col((SessionSearch::Table, SessionSearch::StartedAt)),
            Column::StartedAt,
        )
        .and_where(conditions::search_text_holds(text))
        .and_where(live_search_match())
        .to_owned()
}

/// The page of `matches` (rows of session ids and start times, plus the `carried` columns),
/// after the cursor and in the list's order, read from `sessions` as they are now.
fn page_of_matches(
    query: &ListQuery,
    matches: SelectStatement,
    carried: &[&'static str],
) -> ServiceResult<SelectStatement> {
    let sort = Expr::col((session::Entity, Column::StartedAt));
    let order = conditions::order(query.ascending);
    let mut chosen = Query::select();
    chosen
        .column((session::Entity, Column::Id))
        .from_subquery(matches, session::Entity);
    for column in carried {
        chosen.column((session::Entity, Alias::new(*column)));
    }
    if let Some(cursor) = &query.after {
        chosen.cond_where(conditions::after(query.sort, sort.clone(), query.ascending, cursor)?);
    }
    in_list_order(&mut chosen, sort.clone(), order.clone());
    chosen.limit(query.limit + 1);
    let chosen_alias = Alias::new("chosen");
    let mut rows = Query::select();
    rows.column((session::Entity, Asterisk));
    for column in carried {
        rows.column((chosen_alias.clone(), Alias::new(*column)));
    }
    rows.from(session::Entity).join_subquery(
        JoinType::InnerJoin,
        chosen,
        chosen_alias.clone(),
        Expr::col((chosen_alias, Column::Id)).equals((session::Entity, Column::Id)),
    );
    let mut page = activity::page_now(rows, carried);
    in_list_order(&mut page, sort, order);
    Ok(page)
}

/// A `session_search` row's session is live: it has its `session_activity` row. Written as a
/// scalar subquery, not `EXISTS`, so that it stays a probe by primary key for each match: as a
/// semi-join, a generic plan (which assumes a LIKE matches many rows) read all of
/// `session_activity` instead.
fn live_search_match() -> Expr {
    use conditions::SessionSearch;
    let activity_row = Query::select()
        .expr(Expr::val(1))
        .from(session_activity::Entity)
        .and_where(
            Expr::col((session_activity::Entity, session_activity::Column::SessionId))
                .equals((SessionSearch::Table, SessionSearch::SessionId)),
        )
        .to_owned();
    Expr::SubQuery(None, Box::new(activity_row.into_sub_query_statement())).is_not_null()
}

/// The free text of a list that `session_search` answers alone: live sessions by start time,
/// filtered by free text and nothing else.
fn searched_alone(query: &ListQuery) -> Option<&str> {
    let text = query.filter.query.as_deref().filter(|text| !text.is_empty())?;
    let text_alone = SessionFilter {
        query: query.filter.query.clone(),
        ..SessionFilter::default()
    };
    (query.sort == SortKey::StartedAt && query.filter == text_alone).then_some(text)
}

/// The page's rows (one more than asked: whether it comes back says whether there is a next
/// page), in the list's order, as they are now.
fn page_rows(query: &ListQuery, filter: Condition) -> ServiceResult<SelectStatement> {
    let order = conditions::order(query.ascending);
    if query.sort == SortKey::LastActivity {
        // Every live session has its activity row: an inner join lets a list of live sessions by
        // last activity walk that table's index.
        let live_only = conditions::live_only(&query.filter.statuses);
        let join = if live_only {
            JoinType::InnerJoin
        } else {
            JoinType::LeftJoin
        };
        let sort = conditions::sort_expr(query.sort, live_only);
        let mut page = activity::sessions_now(join).filter(filter);
        if let Some(cursor) = &query.after {
            page = page.filter(conditions::after(query.sort, sort.clone(), query.ascending, cursor)?);
        }
        return Ok(page
            .order_by(sort, order.clone())
            .order_by(Column::Id, order)
            .limit(query.limit + 1)
            .into_query());
    }
    let sort = Expr::col((session::Entity, conditions::sort_column(query.sort)));
    let mut page = session::Entity::find().filter(filter);
    if let Some(cursor) = &query.after {
        page = page.filter(conditions::after(query.sort, sort.clone(), query.ascending, cursor)?);
    }
    let page = page
        .order_by(sort.clone(), order.clone())
        .order_by(Column::Id, order.clone())
        .limit(query.limit + 1)
        .into_query();
    let mut page = activity::page_now(page, &[]);
    in_list_order(&mut page, sort, order);
    Ok(page)
}

/// Orders `page` (a query whose rows are named `sessions`) by the list's key, then by id.
fn in_list_order(page: &mut SelectStatement, sort: Expr, order: Order) {
    page.order_by_expr(sort, order.clone())
        .order_by((session::Entity, Column::Id), order);
}

/// The page as returned: `rows` cut to the page size, the cursor of the next page if there is one,
/// and the total (exact up to [`EXACT_TOTAL_UP_TO`]).
fn into_page(query: &ListQuery, mut rows: Vec<session::Model>, counted: u64) -> ServiceResult<SessionPage> {
    let more = rows.len() as u64 > query.limit;
    rows.truncate(query.limit as usize);
    let sessions = records(rows)?;
    let next = match sessions.last() {
        Some(last) if more => Some(PageCursor {
            value: query.sort.value_of(last),
            id: last.id.clone(),
        }),
        _ => None,
    };
    Ok(SessionPage {
        sessions,
        next,
        total: Ord::min(counted, EXACT_TOTAL_UP_TO),
        total_is_lower_bound: counted > EXACT_TOTAL_UP_TO,
    })
}
