//! Writing a batch of activity reports: the one place where PostgreSQL and SQLite get different SQL.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter, Statement,
};
use vigil_runtime::ServiceResult;

use crate::domain::{EpochMillis, LAST_ACTIVITY_ORDER_MS, PendingActivity, SessionStatus};
use crate::store::entity::session::{self, Column, enum_code, to_column_counter};

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
                entry.last_input_at = entry.last_input_at.max(last_input_at);
                entry.bytes_in = entry.bytes_in.max(bytes_in);
                entry.bytes_out = entry.bytes_out.max(bytes_out);
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
        UPDATE sessions AS s
        SET last_activity_at = GREATEST(s.last_activity_at, v.last_input_at),
            activity_bucket = GREATEST(s.last_activity_at, v.last_input_at) / $6,
            bytes_in = GREATEST(s.bytes_in, v.bytes_in),
            bytes_out = GREATEST(s.bytes_out, v.bytes_out)
        FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
            AS v(id, last_input_at, bytes_in, bytes_out)
        WHERE s.id = v.id
          AND s.ended_at IS NULL
          AND ($5::text IS NULL OR s.gateway_id = $5)
          AND (v.last_input_at > s.last_activity_at OR v.bytes_in > s.bytes_in OR v.bytes_out > s.bytes_out)
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
/// them. The `status = IDLE` test is re-checked on the latest row version, so when two writers
/// race, exactly one of them reports the change.
pub async fn wake(
    txn: &DatabaseTransaction,
    gateway_id: Option<&str>,
    recent: &[String],
) -> ServiceResult<Vec<session::Model>> {
    if recent.is_empty() {
        return Ok(Vec::new());
    }
    let backend = txn.get_database_backend();
    if backend == DbBackend::Postgres {
        // From the few IDLE sessions (their partial index, `idx_sessions_live_idle`) to the batch,
        // not from each of the thousands in the batch to its row. The statuses are literals so
        // that a generic plan still proves the index's predicate.
        let sql = format!(
            "UPDATE sessions AS s SET status = {active} \
             FROM UNNEST($1::text[]) AS r(id) \
             WHERE s.id = r.id AND s.status = {idle} AND s.ended_at IS NULL \
               AND ($2::text IS NULL OR s.gateway_id = $2) \
             RETURNING s.*",
            active = enum_code(SessionStatus::Active),
            idle = enum_code(SessionStatus::Idle),
        );
        let statement = Statement::from_sql_and_values(
            backend,
            sql,
            [recent.to_vec().into(), gateway_id.map(str::to_owned).into()],
        );
        return Ok(session::Entity::find().from_raw_sql(statement).all(txn).await?);
    }
    let mut update = session::Entity::update_many()
        .col_expr(Column::Status, Expr::val(enum_code(SessionStatus::Active)))
        .filter(super::conditions::id_in(backend, recent)?)
        .filter(Column::Status.eq(enum_code(SessionStatus::Idle)))
        .filter(Column::EndedAt.is_null());
    if let Some(gateway_id) = gateway_id {
        update = update.filter(Column::GatewayId.eq(gateway_id));
    }
    Ok(update.exec_with_returning(txn).await?)
}

/// SQLite: one UPDATE per session. SQLite runs in-process, so statements cost no round trip, and
/// the prepared statement is reused from the connection's cache.
async fn record_row_by_row(
    txn: &DatabaseTransaction,
    gateway_id: Option<&str>,
    batch: &[MergedActivity],
) -> ServiceResult<()> {
    let greatest =
        |column: Column, value: i64| -> Expr { Func::greatest([Expr::col(column), Expr::val(value)]).into() };
    for row in batch {
        let mut update = session::Entity::update_many()
            .col_expr(
                Column::LastActivityAt,
                greatest(Column::LastActivityAt, row.last_input_at),
            )
            .col_expr(
                Column::ActivityBucket,
                sea_orm::sea_query::ExprTrait::div(
                    greatest(Column::LastActivityAt, row.last_input_at),
                    LAST_ACTIVITY_ORDER_MS,
                ),
            )
            .col_expr(Column::BytesIn, greatest(Column::BytesIn, row.bytes_in))
            .col_expr(Column::BytesOut, greatest(Column::BytesOut, row.bytes_out))
            .filter(Column::Id.eq(row.session_id.as_str()))
            .filter(Column::EndedAt.is_null())
            .filter(
                Condition::any()
                    .add(Column::LastActivityAt.lt(row.last_input_at))
                    .add(Column::BytesIn.lt(row.bytes_in))
                    .add(Column::BytesOut.lt(row.bytes_out)),
            );
        if let Some(gateway_id) = gateway_id {
            update = update.filter(Column::GatewayId.eq(gateway_id));
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
