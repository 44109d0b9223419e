//! Applying a batch of command reports: the one place where PostgreSQL and SQLite get different
//! SQL.
//!
//! A batch can hold thousands of reports, each with its own time and detail. Each kind of change
//! is one `UPDATE ... FROM <the batch>` joined on the command id: the rows travel as a few
//! PostgreSQL arrays (`UNNEST`) or as one JSON array (SQLite's `json_each`), so a batch of any size
//! is one statement per kind, with every report's own values. The forward-only rule is the
//! `WHERE` on the current state, and the gateway must match the command's own.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use sea_orm::sea_query::{Expr, ExprTrait, LockType, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, Value};
use serde::Serialize;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{CommandOutcome, CommandReport, DeliveryState, EpochMillis};
use crate::store::entity::{command, enum_code};

/// A command handed to its gateway's link: PENDING → DELIVERED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub command_id: String,
    pub gateway_id: String,
    pub at: EpochMillis,
}

/// A command the gateway answered: PENDING or DELIVERED → ACKNOWLEDGED or FAILED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settlement {
    pub command_id: String,
    pub gateway_id: String,
    pub at: EpochMillis,
    /// ACKNOWLEDGED or FAILED, as its column value.
    pub state: i16,
    pub detail: String,
}

/// The changes a batch asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub deliveries: Vec<Delivery>,
    pub settlements: Vec<Settlement>,
}

/// Sorts a batch into deliveries and settlements. For a command reported more than once, the
/// first report of each kind counts: applied in order, the later ones would change nothing. A
/// report that is neither DELIVERED nor ACKNOWLEDGED with an outcome is ignored. Both lists are
/// sorted by command id: when the planner walks the batch in order (the usual plan for a batch
/// joined on the primary key), concurrent batches lock shared rows in the same order.
pub fn plan(reports: &[CommandReport]) -> Plan {
    let mut plan = Plan::default();
    let mut delivered = HashSet::new();
    let mut settled = HashSet::new();
    for report in reports {
        let settled_as = match (report.state, report.outcome) {
            (DeliveryState::Delivered, _) => {
                if delivered.insert(report.command_id.as_str()) {
                    plan.deliveries.push(Delivery {
                        command_id: report.command_id.clone(),
                        gateway_id: report.gateway_id.clone(),
                        at: report.at,
                    });
                }
                continue;
            }
            (DeliveryState::Acknowledged, CommandOutcome::Done | CommandOutcome::NotFound) => {
                DeliveryState::Acknowledged
            }
            (DeliveryState::Acknowledged, CommandOutcome::Failed) => DeliveryState::Failed,
            _ => continue,
        };
        if settled.insert(report.command_id.as_str()) {
            plan.settlements.push(Settlement {
                command_id: report.command_id.clone(),
                gateway_id: report.gateway_id.clone(),
                at: report.at,
                state: enum_code(settled_as),
                detail: report.detail.clone(),
            });
        }
    }
    plan.deliveries.sort_unstable_by(|a, b| a.command_id.cmp(&b.command_id));
    plan.settlements
        .sort_unstable_by(|a, b| a.command_id.cmp(&b.command_id));
    plan
}

/// Locks the commands `plan` changes, in id order, before it changes any. Its two updates lock
/// rows in the order their plans walk them, which for a large batch is the table's order; a
/// concurrent batch or reconcile locking the same rows in another order deadlocked (one per
/// end-all of 100,000, each rolled back and retried). Taken first and in one order, the locks
/// queue instead.
pub async fn lock_commands(txn: &DatabaseTransaction, plan: &Plan) -> ServiceResult<()> {
    let ids = plan
        .deliveries
        .iter()
        .map(|row| row.command_id.as_str())
        .chain(plan.settlements.iter().map(|row| row.command_id.as_str()));
    locked_commands(txn, ids).await.map(drop)
}

/// Marks PENDING commands DELIVERED and sets `delivered_at`. Returns the ids changed.
pub async fn deliver(txn: &DatabaseTransaction, rows: &[Delivery]) -> ServiceResult<Vec<String>> {
    const POSTGRES: &str = r#"
        UPDATE termination_commands AS c
        SET state = $4, delivered_at = r.at
        FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS r(id, gateway_id, at)
        WHERE c.id = r.id AND c.gateway_id = r.gateway_id AND c.state = $5
        RETURNING c.id
    "#;
    // SQLite's RETURNING may only name the updated table's columns, unqualified.
    const SQLITE: &str = r#"
        UPDATE termination_commands AS c
        SET state = ?2, delivered_at = r.at
        FROM (
            SELECT json_extract(value, '$.command_id') AS id,
                json_extract(value, '$.gateway_id') AS gateway_id,
                json_extract(value, '$.at') AS at
            FROM json_each(?1)
        ) AS r
        WHERE c.id = r.id AND c.gateway_id = r.gateway_id AND c.state = ?3
        RETURNING id
    "#;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let codes = [DeliveryState::Delivered, DeliveryState::Pending];
    changed_ids(txn, delivery_statement(txn, rows, POSTGRES, SQLITE, codes)?).await
}

/// An update joining `rows` to their commands: on PostgreSQL the rows as three arrays ($1–$3), on
/// SQLite as one JSON array (?1), then the state `codes` in order ($4…, ?2…).
fn delivery_statement<const N: usize>(
    txn: &DatabaseTransaction,
    rows: &[Delivery],
    postgres: &str,
    sqlite: &str,
    codes: [DeliveryState; N],
) -> ServiceResult<Statement> {
    let codes = codes.map(|state| Value::from(enum_code(state)));
    Ok(match txn.get_database_backend() {
        DbBackend::Postgres => {
            let rows = [
                column(rows, |row| row.command_id.clone()),
                column(rows, |row| row.gateway_id.clone()),
                column(rows, |row| row.at),
            ];
            Statement::from_sql_and_values(DbBackend::Postgres, postgres, rows.into_iter().chain(codes))
        }
        backend => Statement::from_sql_and_values(backend, sqlite, std::iter::once(json(rows)?).chain(codes)),
    })
}

/// Marks open commands ACKNOWLEDGED or FAILED: sets `acknowledged_at` (when the gateway answered,
/// either way) and the detail, and clears `next_attempt_at`. A command answered was delivered:
/// when its delivery report was lost or is still on its way, `delivered_at` takes the answer's
/// time. Returns the ids changed.
pub async fn settle(txn: &DatabaseTransaction, rows: &[Settlement]) -> ServiceResult<Vec<String>> {
    const POSTGRES: &str = r#"
        UPDATE termination_commands AS c
        SET state = r.state, acknowledged_at = r.at, detail = r.detail, next_attempt_at = NULL,
            delivered_at = COALESCE(c.delivered_at, r.at)
        FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::smallint[], $5::text[])
            AS r(id, gateway_id, at, state, detail)
        WHERE c.id = r.id AND c.gateway_id = r.gateway_id AND c.state IN ($6, $7)
        RETURNING c.id
    "#;
    const SQLITE: &str = r#"
        UPDATE termination_commands AS c
        SET state = r.state, acknowledged_at = r.at, detail = r.detail, next_attempt_at = NULL,
            delivered_at = COALESCE(c.delivered_at, r.at)
        FROM (
            SELECT json_extract(value, '$.command_id') AS id,
                json_extract(value, '$.gateway_id') AS gateway_id,
                json_extract(value, '$.at') AS at,
                json_extract(value, '$.state') AS state,
                json_extract(value, '$.detail') AS detail
            FROM json_each(?1)
        ) AS r
        WHERE c.id = r.id AND c.gateway_id = r.gateway_id AND c.state IN (?2, ?3)
        RETURNING id
    "#;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let pending = enum_code(DeliveryState::Pending);
    let delivered = enum_code(DeliveryState::Delivered);
    let statement = match txn.get_database_backend() {
        DbBackend::Postgres => Statement::from_sql_and_values(
            DbBackend::Postgres,
            POSTGRES,
            [
                column(rows, |row| row.command_id.clone()),
                column(rows, |row| row.gateway_id.clone()),
                column(rows, |row| row.at),
                column(rows, |row| row.state),
                column(rows, |row| row.detail.clone()),
                pending.into(),
                delivered.into(),
            ],
        ),
        backend => Statement::from_sql_and_values(backend, SQLITE, [json(rows)?, pending.into(), delivered.into()]),
    };
    changed_ids(txn, statement).await
}

/// What is kept of the reports about one command that changed nothing, in case its row does not
/// exist yet: the first delivery and the first answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EarlyReport {
    pub command_id: String,
    pub gateway_id: String,
    pub delivered_at: Option<EpochMillis>,
    pub settled_state: Option<i16>,
    pub settled_at: Option<EpochMillis>,
    pub detail: String,
}

/// The reports of `plan` that changed nothing (deliveries whose ids are not in `delivered`,
/// answers whose ids are not in `settled`), one row per command.
pub fn unmatched(plan: &Plan, delivered: &HashSet<String>, settled: &HashSet<String>) -> Vec<EarlyReport> {
    let mut rows: BTreeMap<&str, EarlyReport> = BTreeMap::new();
    let blank = |command_id: &str, gateway_id: &str| EarlyReport {
        command_id: command_id.to_owned(),
        gateway_id: gateway_id.to_owned(),
        delivered_at: None,
        settled_state: None,
        settled_at: None,
        detail: String::new(),
    };
    for delivery in plan
        .deliveries
        .iter()
        .filter(|row| !delivered.contains(&row.command_id))
    {
        rows.entry(&delivery.command_id)
            .or_insert_with(|| blank(&delivery.command_id, &delivery.gateway_id))
            .delivered_at = Some(delivery.at);
    }
    for settlement in plan.settlements.iter().filter(|row| !settled.contains(&row.command_id)) {
        let row = rows
            .entry(&settlement.command_id)
            .or_insert_with(|| blank(&settlement.command_id, &settlement.gateway_id));
        if row.gateway_id != settlement.gateway_id {
            // One gateway's reports per row (see [`keep`]): the delivery's gateway came first.
            continue;
        }
        row.settled_state = Some(settlement.state);
        row.settled_at = Some(settlement.at);
        row.detail = settlement.detail.clone();
    }
    rows.into_values().collect()
}

/// Keeps `rows` in `termination_early_reports`, first report of each kind winning, as received
/// at `now`. A row holds one gateway's reports: another gateway's about the same command are
/// dropped (they could never apply, and merged they would be applied as the first gateway's). Most are repeats about commands that exist (a re-sent kill answered twice, another
/// gateway's report): [`reconcile`] drops those; the others wait there for their command's row.
pub async fn keep(txn: &DatabaseTransaction, rows: &[EarlyReport], now: EpochMillis) -> ServiceResult<()> {
    // `WHERE true` lets SQLite tell the SELECT's end from the upsert clause.
    const POSTGRES: &str = r#"
        INSERT INTO termination_early_reports AS e
            (command_id, gateway_id, delivered_at, settled_state, settled_at, detail, kept_at)
        SELECT command_id, gateway_id, delivered_at, settled_state, settled_at, detail, $2
        FROM json_to_recordset($1::json) AS r(command_id text, gateway_id text, delivered_at bigint,
            settled_state smallint, settled_at bigint, detail text)
        WHERE true
        ON CONFLICT (command_id) DO UPDATE SET
            delivered_at = COALESCE(e.delivered_at, excluded.delivered_at),
            settled_state = COALESCE(e.settled_state, excluded.settled_state),
            settled_at = COALESCE(e.settled_at, excluded.settled_at),
            detail = CASE WHEN e.settled_state IS NULL THEN excluded.detail ELSE e.detail END
        WHERE e.gateway_id = excluded.gateway_id
    "#;
    const SQLITE: &str = r#"
        INSERT INTO termination_early_reports AS e
            (command_id, gateway_id, delivered_at, settled_state, settled_at, detail, kept_at)
        SELECT json_extract(value, '$.command_id'), json_extract(value, '$.gateway_id'),
            json_extract(value, '$.delivered_at'), json_extract(value, '$.settled_state'),
            json_extract(value, '$.settled_at'), json_extract(value, '$.detail'), ?2
        FROM json_each(?1)
        WHERE true
        ON CONFLICT (command_id) DO UPDATE SET
            delivered_at = COALESCE(e.delivered_at, excluded.delivered_at),
            settled_state = COALESCE(e.settled_state, excluded.settled_state),
            settled_at = COALESCE(e.settled_at, excluded.settled_at),
            detail = CASE WHEN e.settled_state IS NULL THEN excluded.detail ELSE e.detail END
        WHERE e.gateway_id = excluded.gateway_id
    "#;
    if rows.is_empty() {
        return Ok(());
    }
    let backend = txn.get_database_backend();
    let sql = if backend == DbBackend::Postgres {
        POSTGRES
    } else {
        SQLITE
    };
    txn.execute_raw(Statement::from_sql_and_values(backend, sql, [json(rows)?, now.into()]))
        .await?;
    Ok(())
}

/// Kept reports handled per transaction when every kept report is reconciled (after a termination
/// is recorded, and on each redelivery scan).
pub const RECONCILE_CHUNK: u64 = 1_000;

/// The kept-reports table, for the statements built with sea-query.
#[derive(sea_orm::DeriveIden)]
enum TerminationEarlyReports {
    Table,
    CommandId,
    GatewayId,
    DeliveredAt,
    SettledState,
    SettledAt,
    Detail,
    KeptAt,
}

/// Up to `limit` kept reports about commands whose ids sort after `after`, in id order: one chunk
/// of a walk over every kept report.
pub async fn kept_after(txn: &DatabaseTransaction, after: &str, limit: u64) -> ServiceResult<Vec<EarlyReport>> {
    let mut query = kept_query();
    query
        .and_where(Expr::col(TerminationEarlyReports::CommandId).gt(after))
        .limit(limit);
    read_kept(txn, &query).await
}

/// The kept reports about `ids` (those that have one), in id order.
pub async fn kept_about(db: &impl ConnectionTrait, ids: &[String]) -> ServiceResult<Vec<EarlyReport>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = kept_query();
    query.and_where(Expr::col(TerminationEarlyReports::CommandId).is_in(ids.iter().map(String::as_str)));
    read_kept(db, &query).await
}

fn kept_query() -> SelectStatement {
    use TerminationEarlyReports::*;
    Query::select()
        .columns([CommandId, GatewayId, DeliveredAt, SettledState, SettledAt, Detail])
        .from(Table)
        .order_by(CommandId, Order::Asc)
        .to_owned()
}

async fn read_kept(db: &impl ConnectionTrait, query: &SelectStatement) -> ServiceResult<Vec<EarlyReport>> {
    db.query_all_raw(db.get_database_backend().build(query))
        .await?
        .iter()
        .map(|row| {
            Ok(EarlyReport {
                command_id: row.try_get("", "command_id")?,
                gateway_id: row.try_get("", "gateway_id")?,
                delivered_at: row.try_get("", "delivered_at")?,
                settled_state: row.try_get("", "settled_state")?,
                settled_at: row.try_get("", "settled_at")?,
                detail: row.try_get("", "detail")?,
            })
        })
        .collect()
}

/// Applies `kept` (reports read by [`kept_after`] or [`kept_about`]) to the commands that exist
/// now, with the same forward-only rules as [`deliver`] and [`settle`], then forgets those with
/// nothing left to apply. Returns the commands that moved to DELIVERED and those that were
/// answered (ACKNOWLEDGED or FAILED), for their events: the caller writes them in the same
/// transaction, so each transition is told once, whichever replica's reconcile applied it (a
/// concurrent one finds the state moved and changes nothing).
///
/// Why nothing is lost: a report is kept in the transaction that found its command missing, and
/// its ids are reconciled after that transaction commits; the kept reports about a recorded
/// termination's commands are reconciled as well after its record commits. Whichever of the two
/// commits second sees the other's rows.
///
/// Every statement touches only the rows of `kept`, found by primary key: none joins the two
/// tables whole. Joined whole, the plan followed the statistics, and with statistics from before
/// an end-all (a few commands, no kept reports) PostgreSQL scanned one table for each row of the
/// other: 100,000 commands × 100,000 kept reports ran for over 13 minutes of a core, holding the
/// commands' locks — and it ran again after every batch of acknowledgements.
pub async fn reconcile(
    txn: &DatabaseTransaction,
    kept: &[EarlyReport],
) -> ServiceResult<(HashSet<String>, HashSet<String>)> {
    // Most kept reports wait for a record still being written: when none of their commands
    // exists yet, that is all there is to find out. The commands that exist are locked here, in
    // id order, before anything is written (see [`lock_commands`]).
    let existing = locked_commands(txn, kept.iter().map(|row| row.command_id.as_str())).await?;
    let kept: Vec<&EarlyReport> = kept
        .iter()
        .filter(|row| existing.contains_key(&row.command_id))
        .collect();
    if kept.is_empty() {
        return Ok((HashSet::new(), HashSet::new()));
    }
    let deliveries: Vec<Delivery> = kept
        .iter()
        .filter_map(|row| {
            row.delivered_at.map(|at| Delivery {
                command_id: row.command_id.clone(),
                gateway_id: row.gateway_id.clone(),
                at,
            })
        })
        .collect();
    // Deliveries first: an answer applied after them keeps the delivery's time (see [`settle`]).
    let delivered_now = deliver_kept(txn, &deliveries).await?;
    let settlements: Vec<Settlement> = kept
        .iter()
        .filter_map(|row| {
            Some(Settlement {
                command_id: row.command_id.clone(),
                gateway_id: row.gateway_id.clone(),
                at: row.settled_at?,
                state: row.settled_state?,
                detail: row.detail.clone(),
            })
        })
        .collect();
    let settled_now: HashSet<String> = settle(txn, &settlements).await?.into_iter().collect();
    // Each command's state now follows from what the updates returned: its rows are locked, so
    // nothing else moved them.
    let delivered = enum_code(DeliveryState::Delivered);
    let spent: Vec<&str> = kept
        .iter()
        .filter(|row| {
            let before = &existing[&row.command_id];
            let state = match row.settled_state {
                Some(settled) if settled_now.contains(&row.command_id) => settled,
                _ if delivered_now.contains(&row.command_id) => delivered,
                _ => before.state,
            };
            is_spent(row, &before.gateway_id, state)
        })
        .map(|row| row.command_id.as_str())
        .collect();
    if !spent.is_empty() {
        let forget = Query::delete()
            .from_table(TerminationEarlyReports::Table)
            .and_where(Expr::col(TerminationEarlyReports::CommandId).is_in(spent))
            .to_owned();
        txn.execute_raw(txn.get_database_backend().build(&forget)).await?;
    }
    Ok((delivered_now, settled_now))
}

/// Forgets the reports kept before `expired_before`: their termination was never recorded.
pub async fn forget_expired(db: &impl ConnectionTrait, expired_before: EpochMillis) -> ServiceResult<u64> {
    let expired = Query::delete()
        .from_table(TerminationEarlyReports::Table)
        .and_where(Expr::col(TerminationEarlyReports::KeptAt).lt(expired_before))
        .to_owned();
    Ok(db
        .execute_raw(db.get_database_backend().build(&expired))
        .await?
        .rows_affected())
}

/// Marks PENDING commands DELIVERED with a kept delivery's time, and corrects the delivery time of
/// commands answered meanwhile: the answer's time stood in for the delivery's (see [`settle`]),
/// and the earliest evidence of delivery is the true one. Returns the ids that moved to DELIVERED.
async fn deliver_kept(txn: &DatabaseTransaction, rows: &[Delivery]) -> ServiceResult<HashSet<String>> {
    const POSTGRES: &str = r#"
        UPDATE termination_commands AS c
        SET state = CASE WHEN c.state = $4 THEN $5 ELSE c.state END, delivered_at = r.at
        FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS r(id, gateway_id, at)
        WHERE c.id = r.id AND c.gateway_id = r.gateway_id
            AND (c.state = $4 OR (c.state IN ($6, $7) AND c.delivered_at > r.at))
        RETURNING c.id, c.state
    "#;
    const SQLITE: &str = r#"
        UPDATE termination_commands AS c
        SET state = CASE WHEN c.state = ?2 THEN ?3 ELSE c.state END, delivered_at = r.at
        FROM (
            SELECT json_extract(value, '$.command_id') AS id,
                json_extract(value, '$.gateway_id') AS gateway_id,
                json_extract(value, '$.at') AS at
            FROM json_each(?1)
        ) AS r
        WHERE c.id = r.id AND c.gateway_id = r.gateway_id
            AND (c.state = ?2 OR (c.state IN (?4, ?5) AND c.delivered_at > r.at))
        RETURNING id, state
    "#;
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let codes = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Acknowledged,
        DeliveryState::Failed,
    ];
    let statement = delivery_statement(txn, rows, POSTGRES, SQLITE, codes)?;
    let delivered = enum_code(DeliveryState::Delivered);
    // Only the commands that were PENDING moved to DELIVERED; the others' delivery time was
    // corrected, which is no new event.
    txn.query_all_raw(statement)
        .await?
        .into_iter()
        .filter_map(|row| match row.try_get_by_index::<i16>(1) {
            Ok(state) if state == delivered => row.try_get_by_index::<String>(0).ok().map(Ok),
            Ok(_) => None,
            Err(error) => Some(Err(error.into())),
        })
        .collect()
}

/// A command's owner and state, as reconciling needs them.
struct CommandState {
    gateway_id: String,
    state: i16,
}

/// The commands of `ids` that exist, by id, locked in id order (see [`lock_commands`]).
async fn locked_commands<'a>(
    txn: &DatabaseTransaction,
    ids: impl IntoIterator<Item = &'a str>,
) -> ServiceResult<HashMap<String, CommandState>> {
    let ids: BTreeSet<&str> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let query = Query::select()
        .columns([command::Column::Id, command::Column::GatewayId, command::Column::State])
        .from(command::Entity)
        .and_where(Expr::col(command::Column::Id).is_in(ids))
        .order_by(command::Column::Id, Order::Asc)
        .lock(LockType::Update)
        .to_owned();
    txn.query_all_raw(txn.get_database_backend().build(&query))
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get("", "id")?,
                CommandState {
                    gateway_id: row.try_get("", "gateway_id")?,
                    state: row.try_get("", "state")?,
                },
            ))
        })
        .collect()
}

/// Whether a kept report can never apply to its command again: states only move forward, so a
/// command past what the report would do stays past it. Another gateway's report never applies.
fn is_spent(kept: &EarlyReport, gateway_id: &str, state: i16) -> bool {
    let pending = enum_code(DeliveryState::Pending);
    let open = [pending, enum_code(DeliveryState::Delivered)].contains(&state);
    gateway_id != kept.gateway_id
        || ((kept.settled_state.is_none() || !open) && (kept.delivered_at.is_none() || state != pending))
}

/// One field of every row, as a PostgreSQL array parameter.
fn column<Row, T>(rows: &[Row], field: impl Fn(&Row) -> T) -> Value
where
    Vec<T>: Into<Value>,
{
    rows.iter().map(field).collect::<Vec<T>>().into()
}

/// The rows as one JSON array parameter.
fn json<Row: Serialize>(rows: &[Row]) -> ServiceResult<Value> {
    let text =
        serde_json::to_string(rows).map_err(|error| ServiceError::internal(format!("encoding reports: {error}")))?;
    Ok(text.into())
}

async fn changed_ids(txn: &DatabaseTransaction, statement: Statement) -> ServiceResult<Vec<String>> {
    txn.query_all_raw(statement)
        .await?
        .into_iter()
        .map(|row| Ok(row.try_get_by_index::<String>(0)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, state: DeliveryState, outcome: CommandOutcome, at: EpochMillis) -> CommandReport {
        CommandReport {
            command_id: id.to_owned(),
            gateway_id: "gw".to_owned(),
            state,
            outcome,
            detail: format!("{outcome:?}"),
            at,
        }
    }

    #[test]
    fn the_first_report_of_each_kind_counts_and_the_rest_are_ignored() {
        let plan = plan(&[
            report("b", DeliveryState::Acknowledged, CommandOutcome::Failed, 3),
            report("a", DeliveryState::Delivered, CommandOutcome::Unspecified, 1),
            report("b", DeliveryState::Acknowledged, CommandOutcome::Done, 4),
            report("a", DeliveryState::Delivered, CommandOutcome::Unspecified, 2),
            report("a", DeliveryState::Acknowledged, CommandOutcome::NotFound, 5),
            report("c", DeliveryState::Acknowledged, CommandOutcome::Unspecified, 6),
            report("d", DeliveryState::Pending, CommandOutcome::Done, 7),
        ]);
        assert_eq!(
            plan.deliveries,
            vec![Delivery {
                command_id: "a".into(),
                gateway_id: "gw".into(),
                at: 1
            }]
        );
        let settled: Vec<(&str, i16, EpochMillis)> = plan
            .settlements
            .iter()
            .map(|row| (row.command_id.as_str(), row.state, row.at))
            .collect();
        assert_eq!(
            settled,
            vec![
                ("a", enum_code(DeliveryState::Acknowledged), 5),
                ("b", enum_code(DeliveryState::Failed), 3),
            ]
        );
    }
}
