//! Applying a batch of command reports: the one place where PostgreSQL and SQLite get different
//! SQL.
//!
//! A batch can hold thousands of reports, each with its own time and detail. Each kind of change
//! is one `UPDATE ... FROM <the batch>` joined on the command id: the rows travel as a few
//! PostgreSQL arrays (`UNNEST`) or as one JSON array (SQLite's `json_each`), so a batch of any size
//! is one statement per kind, with every report's own values. The forward-only rule is the
//! `WHERE` on the current state, and the gateway must match the command's own.

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, Value};
use serde::Serialize;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{CommandOutcome, CommandReport, DeliveryState, EpochMillis};
use crate::store::entity::enum_code;

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
    let delivered = enum_code(DeliveryState::Delivered);
    let pending = enum_code(DeliveryState::Pending);
    let statement = match txn.get_database_backend() {
        DbBackend::Postgres => Statement::from_sql_and_values(
            DbBackend::Postgres,
            POSTGRES,
            [
                column(rows, |row| row.command_id.clone()),
                column(rows, |row| row.gateway_id.clone()),
                column(rows, |row| row.at),
                delivered.into(),
                pending.into(),
            ],
        ),
        backend => Statement::from_sql_and_values(backend, SQLITE, [json(rows)?, delivered.into(), pending.into()]),
    };
    changed_ids(txn, statement).await
}

/// Marks open commands ACKNOWLEDGED or FAILED: sets `acknowledged_at` (when the gateway answered,
/// either way) and the detail, and clears `next_attempt_at`. Returns the ids changed.
pub async fn settle(txn: &DatabaseTransaction, rows: &[Settlement]) -> ServiceResult<Vec<String>> {
    const POSTGRES: &str = r#"
        UPDATE termination_commands AS c
        SET state = r.state, acknowledged_at = r.at, detail = r.detail, next_attempt_at = NULL
        FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::smallint[], $5::text[])
            AS r(id, gateway_id, at, state, detail)
        WHERE c.id = r.id AND c.gateway_id = r.gateway_id AND c.state IN ($6, $7)
        RETURNING c.id
    "#;
    const SQLITE: &str = r#"
        UPDATE termination_commands AS c
        SET state = r.state, acknowledged_at = r.at, detail = r.detail, next_attempt_at = NULL
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
