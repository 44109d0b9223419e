//! Session activity in its own table (`session_activity`, see its entity): batches of reports
//! written to it, reads that take the current values from it, and the rows' life with their
//! sessions'.

use std::collections::HashMap;

use sea_orm::sea_query::{
    Alias, Expr, ExprTrait as _, Func, OnConflict, Query, QueryStatementBuilder, SelectStatement,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, IdenStatic, Iterable,
    JoinType, QueryFilter, QuerySelect, RelationTrait, Select, Statement, UpdateMany,
};
use vigil_runtime::ServiceResult;

use super::INSERT_CHUNK;
use crate::domain::{EpochMillis, LAST_ACTIVITY_ORDER_MS, PendingActivity, SessionRecord, SessionStatus};
use crate::store::entity::session::{self, Column, enum_code, to_column_counter};
use crate::store::entity::session_activity::{self, Column as A};

/// One session's reports in a batch, merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedActivity {
    pub session_id: String,
    /// `i64::MIN` when no report had input: it never wins a `GREATEST`.
    pub last_input_at: EpochMillis,
    pub bytes_in: i64,
    pub bytes_out: i64,
}

/// Merges reports for the same session (the latest input, the largest counters), sorted by id so
/// concurrent batches lock rows in the same order.
pub fn merge(batch: &[PendingActivity]) -> Vec<MergedActivity> {
    let mut merged: HashMap<&str, MergedActivity> = HashMap::with_capacity(batch.len());
    for report in batch {
        let last_input_at = report.last_input_at.unwrap_or(i64::MIN);
        let bytes_in = to_column_counter(report.bytes_in);
        let bytes_out = to_column_counter(report.bytes_out);
        merged
            .entry(report.session_id.as_str())
            .and_modify(|entry| {
                entry.last_input_at = Ord::max(entry.last_input_at, last_input_at);
                entry.bytes_in = Ord::max(entry.bytes_in, bytes_in);
                entry.bytes_out = Ord::max(entry.bytes_out, bytes_out);
            })
            .or_insert_with(|| MergedActivity {
                session_id: report.session_id.clone(),
                last_input_at,
                bytes_in,
                bytes_out,
            });
    }
    let mut merged: Vec<MergedActivity> = merged.into_values().collect();
    merged.sort_unstable_by(|a, b| a.session_id.cmp(&b.session_id));
    merged
}

/// Where a live session keeps this `sessions` column instead, if it is one of its activity columns.
fn activity_column(column: Column) -> Option<A> {
    match column {
        Column::LastActivityAt => Some(A::LastActivityAt),
        Column::ActivityBucket => Some(A::ActivityBucket),
        Column::BytesIn => Some(A::BytesIn),
        Column::BytesOut => Some(A::BytesOut),
        _ => None,
    }
}

/// Every `sessions` column of a query joining `session_activity`, the activity ones as their current
/// value: from `session_activity` where the session has a row there (it is live).
fn current_columns() -> impl Iterator<Item = (Expr, Column)> {
    Column::iter().map(|column| {
        let value = match activity_column(column) {
            Some(activity) => Func::coalesce([
                Expr::col((session_activity::Entity, activity)),
                Expr::col((session::Entity, column)),
            ])
            .into(),
            None => Expr::col((session::Entity, column)),
        };
        (value, column)
    })
}

/// Sessions as they are now (see [`current_columns`]). `join` is `InnerJoin` for lists of live
/// sessions walked in `session_activity`'s order, `LeftJoin` otherwise.
pub fn sessions_now(join: JoinType) -> Select<session::Entity> {
    let mut select = session::Entity::find().select_only();
    for (value, column) in current_columns() {
        select = select.column_as(value, column.as_str());
    }
    select.join(join, session::Relation::Activity.def())
}

/// The rows of `page` (whole `sessions` rows, and `also`) as they are now: the activity is joined
/// to the page, not to every row the page was chosen from. Joined first, the planners weighed a
/// lookup per candidate and walked another order instead (one resource's 500 sessions by user:
/// 18 ms instead of 2). The caller orders the result.
pub fn page_now(page: SelectStatement, also: &[&'static str]) -> SelectStatement {
    let mut select = Query::select();
    for (value, column) in current_columns() {
        select.expr_as(value, column);
    }
    for column in also {
        select.column((session::Entity, Alias::new(*column)));
    }
    select
        .from_subquery(page, session::Entity)
        .left_join(
            session_activity::Entity,
            Expr::col((session_activity::Entity, A::SessionId)).equals((session::Entity, Column::Id)),
        )
        .to_owned()
}

/// The current value of an activity column, from within an UPDATE of `sessions`.
fn current(column: Column, activity: A) -> Expr {
    let latest = Query::select()
        .column((session_activity::Entity, activity))
        .from(session_activity::Entity)
        .and_where(Expr::col((session_activity::Entity, A::SessionId)).equals((session::Entity, Column::Id)))
        .to_owned();
    Func::coalesce([
        Expr::SubQuery(None, Box::new(latest.into_sub_query_statement())),
        Expr::col((session::Entity, column)),
    ])
    .into()
}

/// Also copies the current activity into the rows `update` changes, so the rows it returns are
/// current, and an ended session's row keeps its final activity.
pub fn with_current_activity(mut update: UpdateMany<session::Entity>) -> UpdateMany<session::Entity> {
    for column in Column::iter() {
        if let Some(activity) = activity_column(column) {
            update = update.col_expr(column, current(column, activity));
        }
    }
    update
}

/// Gives the live ones among `sessions` their activity row (new sessions, revived ones).
pub async fn insert(txn: &DatabaseTransaction, sessions: &[SessionRecord]) -> ServiceResult<()> {
    let rows: Vec<session_activity::ActiveModel> = sessions.iter().filter_map(session_activity::active_model).collect();
    for chunk in rows.chunks(INSERT_CHUNK) {
        session_activity::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::column(A::SessionId)
                    .update_columns([
                        A::GatewayId,
                        A::LastActivityAt,
                        A::ActivityBucket,
                        A::BytesIn,
                        A::BytesOut,
                        A::Idle,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// PostgreSQL: the clause of a data-modifying `WITH` that gives the session just inserted (as
/// `inserted`, see `outbox::with_session_started`) its activity row, when it is live.
pub fn insert_clause() -> String {
    format!(
        "activity AS (INSERT INTO session_activity \
           (session_id, gateway_id, last_activity_at, activity_bucket, bytes_in, bytes_out, idle) \
         SELECT id, gateway_id, last_activity_at, activity_bucket, bytes_in, bytes_out, status = {idle} \
         FROM inserted WHERE ended_at IS NULL)",
        idle = enum_code(SessionStatus::Idle)
    )
}

/// Deletes the activity rows of sessions that ended (the ending update folded them in).
pub async fn forget(txn: &DatabaseTransaction, ended: &[SessionRecord]) -> ServiceResult<()> {
    if ended.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = ended.iter().map(|session| session.id.clone()).collect();
    session_activity::Entity::delete_many()
        .filter(super::conditions::in_list(
            txn.get_database_backend(),
            Expr::col((session_activity::Entity, A::SessionId)),
            &ids,
        )?)
        .exec(txn)
        .await?;
    Ok(())
}

/// Moves `last_activity_at` and the byte counters forward for live sessions (of `gateway_id`, when
/// given). Rows the batch would not change are not written: no dead tuple, no lock.
///
/// `activity_bucket` is recomputed with the time; it changes once per bucket, and until it does
/// no indexed column changes, so PostgreSQL updates the row in place without touching an index.
pub async fn record(
    txn: &DatabaseTransaction,
    gateway_id: Option<&str>,
    batch: &[MergedActivity],
) -> ServiceResult<()> {
    match txn.get_database_backend() {
        DbBackend::Postgres => record_postgres(txn, gateway_id, batch).await,
        _ => record_row_by_row(txn, gateway_id, batch).await,
    }
}

/// PostgreSQL: the whole batch in one statement, the rows passed as four arrays.
async fn record_postgres(
    txn: &DatabaseTransaction,
    gateway_id: Option<&str>,
    batch: &[MergedActivity],
) -> ServiceResult<()> {
    const SQL: &str = r#"
        UPDATE session_activity AS a
        SET last_activity_at = GREATEST(a.last_activity_at, v.last_input_at),
            activity_bucket = GREATEST(a.last_activity_at, v.last_input_at) / $6,
            bytes_in = GREATEST(a.bytes_in, v.bytes_in),
            bytes_out = GREATEST(a.bytes_out, v.bytes_out)
        FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
            AS v(id, last_input_at, bytes_in, bytes_out)
        WHERE a.session_id = v.id
          AND ($5::text IS NULL OR a.gateway_id = $5)
          AND (v.last_input_at > a.last_activity_at OR v.bytes_in > a.bytes_in OR v.bytes_out > a.bytes_out)
    "#;
    let ids: Vec<String> = batch.iter().map(|row| row.session_id.clone()).collect();
    let inputs: Vec<i64> = batch.iter().map(|row| row.last_input_at).collect();
    let bytes_in: Vec<i64> = batch.iter().map(|row| row.bytes_in).collect();
    let bytes_out: Vec<i64> = batch.iter().map(|row| row.bytes_out).collect();
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        SQL,
        [
            ids.into(),
            inputs.into(),
            bytes_in.into(),
            bytes_out.into(),
            gateway_id.map(str::to_owned).into(),
            LAST_ACTIVITY_ORDER_MS.into(),
        ],
    );
    txn.execute_raw(statement).await?;
    Ok(())
}

/// Sets the IDLE sessions among `recent` (of `gateway_id`, when given) back to ACTIVE and returns
/// them. `idle` is re-checked on the latest row version, so when two writers race, exactly one of
/// them reports the change. It starts from the few IDLE sessions (their partial index,
/// `idx_session_activity_idle`), not from each of the thousands in the batch.
pub async fn wake(
    txn: &DatabaseTransaction,
    gateway_id: Option<&str>,
    recent: &[String],
) -> ServiceResult<Vec<session::Model>> {
    if recent.is_empty() {
        return Ok(Vec::new());
    }
    let backend = txn.get_database_backend();
    let woken: Vec<String> = if backend == DbBackend::Postgres {
        let statement = Statement::from_sql_and_values(
            backend,
            "UPDATE session_activity AS a SET idle = FALSE \
             FROM UNNEST($1::text[]) AS r(id) \
             WHERE a.session_id = r.id AND a.idle = TRUE AND ($2::text IS NULL OR a.gateway_id = $2) \
             RETURNING a.session_id",
            [recent.to_vec().into(), gateway_id.map(str::to_owned).into()],
        );
        txn.query_all_raw(statement)
            .await?
            .iter()
            .map(|row| row.try_get::<String>("", "session_id"))
            .collect::<Result<_, _>>()?
    } else {
        let mut update = session_activity::Entity::update_many()
            .col_expr(A::Idle, Expr::val(false))
            .filter(super::conditions::in_list(
                backend,
                Expr::col((session_activity::Entity, A::SessionId)),
                recent,
            )?)
            .filter(A::Idle.eq(true));
        if let Some(gateway_id) = gateway_id {
            update = update.filter(A::GatewayId.eq(gateway_id));
        }
        update
            .exec_with_returning(txn)
            .await?
            .into_iter()
            .map(|row| row.session_id)
            .collect()
    };
    set_status(txn, &woken, SessionStatus::Idle, SessionStatus::Active).await
}

/// Moves the live sessions among `ids` from status `from` to `to` (the activity rows have been
/// changed to match), with their current activity, and returns them.
pub async fn set_status(
    txn: &DatabaseTransaction,
    ids: &[String],
    from: SessionStatus,
    to: SessionStatus,
) -> ServiceResult<Vec<session::Model>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let update = session::Entity::update_many()
        .col_expr(Column::Status, Expr::val(enum_code(to)))
        .filter(super::conditions::id_in(txn.get_database_backend(), ids)?)
        .filter(Column::Status.eq(enum_code(from)))
        .filter(Column::EndedAt.is_null());
    Ok(with_current_activity(update).exec_with_returning(txn).await?)
}

/// SQLite: one UPDATE per session. SQLite runs in-process, so statements cost no round trip, and
/// the prepared statement is reused from the connection's cache.
async fn record_row_by_row(
    txn: &DatabaseTransaction,
    gateway_id: Option<&str>,
    batch: &[MergedActivity],
) -> ServiceResult<()> {
    let greatest = |column: A, value: i64| -> Expr { Func::greatest([Expr::col(column), Expr::val(value)]).into() };
    for row in batch {
        let mut update = session_activity::Entity::update_many()
            .col_expr(A::LastActivityAt, greatest(A::LastActivityAt, row.last_input_at))
            .col_expr(
                A::ActivityBucket,
                sea_orm::sea_query::ExprTrait::div(
                    greatest(A::LastActivityAt, row.last_input_at),
                    LAST_ACTIVITY_ORDER_MS,
                ),
            )
            .col_expr(A::BytesIn, greatest(A::BytesIn, row.bytes_in))
            .col_expr(A::BytesOut, greatest(A::BytesOut, row.bytes_out))
            .filter(A::SessionId.eq(row.session_id.as_str()))
            .filter(
                Condition::any()
                    .add(A::LastActivityAt.lt(row.last_input_at))
                    .add(A::BytesIn.lt(row.bytes_in))
                    .add(A::BytesOut.lt(row.bytes_out)),
            );
        if let Some(gateway_id) = gateway_id {
            update = update.filter(A::GatewayId.eq(gateway_id));
        }
        update.exec(txn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, last_input_at: Option<i64>, bytes_in: u64, bytes_out: u64) -> PendingActivity {
        PendingActivity {
            session_id: id.to_owned(),
            last_input_at,
            bytes_in,
            bytes_out,
        }
    }

    #[test]
    fn reports_for_one_session_merge_to_the_maximum_of_each_field() {
        let merged = merge(&[
            report("b", Some(10), 5, 1),
            report("a", None, 1, 1),
            report("b", Some(7), 9, 0),
            report("b", None, 0, 3),
        ]);
        assert_eq!(
            merged,
            vec![
                MergedActivity {
                    session_id: "a".into(),
                    last_input_at: i64::MIN,
                    bytes_in: 1,
                    bytes_out: 1
                },
                MergedActivity {
                    session_id: "b".into(),
                    last_input_at: 10,
                    bytes_in: 9,
                    bytes_out: 3
                },
            ]
        );
    }

    #[test]
    fn counters_beyond_bigint_saturate() {
        let merged = merge(&[report("a", None, u64::MAX, 0)]);
        assert_eq!(merged[0].bytes_in, i64::MAX);
    }
}
