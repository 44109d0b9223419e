//! Recording a termination: the termination row, then its commands in bulk (one JSON array per
//! INSERT on PostgreSQL, multi-row INSERTs on SQLite), with at most one open command per session.
//!
//! The unique partial index on `session_id WHERE state IN (PENDING, DELIVERED)` is what makes
//! "the same kill twice ends a session once" hold. Open commands are inserted with
//! `ON CONFLICT (session_id) WHERE ... DO NOTHING`: a row that would be a session's second open
//! command is skipped — also when the first comes from a concurrent transaction, which PostgreSQL
//! waits for — and is then stored as ALREADY_ENDED, naming the termination that holds the session.

use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, Iterable, QueryFilter, QuerySelect, Statement,
};
use serde::Serialize;
use vigil_runtime::{ServiceError, ServiceResult};

use super::conditions;
use crate::domain::{CommandRecord, DeliveryState, TerminationRecord};
use crate::store::entity::{command, enum_code, termination};

/// How many times a command whose insert lost a race is looked at again. Each round either stores
/// it or finds the termination that holds its session; a further round is needed only when the
/// holder's command closed in between, so two rounds nearly always suffice.
const ROUNDS: usize = 3;

/// Bind parameters one statement may carry.
const POSTGRES_MAX_PARAMETERS: usize = 65_535;
const SQLITE_MAX_PARAMETERS: usize = 32_766;

/// Rows per INSERT: as many as the backend's bind-parameter limit allows.
fn rows_per_insert(backend: DbBackend) -> usize {
    let parameters = match backend {
        DbBackend::Postgres => POSTGRES_MAX_PARAMETERS,
        _ => SQLITE_MAX_PARAMETERS,
    };
    parameters / command::Column::iter().count()
}

/// The detail of a command that is not sent because another termination is ending its session.
fn held_by(termination_id: &str) -> String {
    format!("already being ended by termination {termination_id}")
}

/// The detail when the session's holder could not be named (its command closed while this one
/// was being recorded, several times over).
const HELD_BY_ANOTHER: &str = "already being ended by another termination";

/// Records `termination` and `commands` in `txn`; returns the commands as stored, in the order
/// given.
pub async fn record(
    txn: &DatabaseTransaction,
    termination: &TerminationRecord,
    commands: &[CommandRecord],
) -> ServiceResult<Vec<CommandRecord>> {
    let backend = txn.get_database_backend();
    termination::Entity::insert(termination::active_model(termination)?)
        .exec_without_returning(txn)
        .await?;

    let mut stored = commands.to_vec();
    // Sorted by session so that two transactions inserting overlapping sessions wait for each
    // other in the same order instead of deadlocking.
    let mut contested: Vec<usize> = (0..stored.len()).filter(|&i| stored[i].is_open()).collect();
    contested.sort_by(|&a, &b| stored[a].session_id.cmp(&stored[b].session_id));

    for _ in 0..ROUNDS {
        if contested.is_empty() {
            break;
        }
        let sessions: Vec<String> = contested.iter().map(|&i| stored[i].session_id.clone()).collect();
        let holders = open_holders(txn, backend, &sessions).await?;
        let mut free = Vec::with_capacity(contested.len());
        for i in contested {
            match holders.get(&stored[i].session_id) {
                Some(holder) => mark_already_ended(&mut stored[i], held_by(holder)),
                None => free.push(i),
            }
        }
        let inserted = insert_open(txn, backend, &stored, &free).await?;
        // What was skipped conflicted with an open command committed (or inserted by this same
        // termination) since the lookup: look again.
        contested = free
            .into_iter()
            .filter(|&i| !inserted.contains(&stored[i].id))
            .collect();
    }
    for i in contested {
        mark_already_ended(&mut stored[i], HELD_BY_ANOTHER.to_owned());
    }

    // Everything not open: ALREADY_ENDED as given or as found above. No index constrains these.
    let closed: Vec<&CommandRecord> = stored.iter().filter(|command| !command.is_open()).collect();
    if backend == DbBackend::Postgres {
        insert_json(txn, &closed, false).await?;
        return Ok(stored);
    }
    for chunk in closed.chunks(rows_per_insert(backend)) {
        command::Entity::insert_many(chunk.iter().map(|command| command::active_model(command)))
            .exec_without_returning(txn)
            .await?;
    }
    Ok(stored)
}

fn mark_already_ended(command: &mut CommandRecord, detail: String) {
    command.state = DeliveryState::AlreadyEnded;
    command.detail = detail;
    command.next_attempt_at = None;
}

/// The termination holding each of `sessions` that has an open command.
async fn open_holders(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    sessions: &[String],
) -> ServiceResult<HashMap<String, String>> {
    use command::Column;
    let rows: Vec<(String, String)> = command::Entity::find()
        .select_only()
        .column(Column::SessionId)
        .column(Column::TerminationId)
        .filter(conditions::is_in(
            backend,
            (command::Entity, Column::SessionId),
            sessions,
        )?)
        .filter(conditions::open())
        .into_tuple()
        .all(txn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Inserts `stored[i]` for each `i` in `indexes` unless its session has an open command by now;
/// returns the ids inserted.
async fn insert_open(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    stored: &[CommandRecord],
    indexes: &[usize],
) -> ServiceResult<HashSet<String>> {
    if backend == DbBackend::Postgres {
        let rows: Vec<&CommandRecord> = indexes.iter().map(|&i| &stored[i]).collect();
        return insert_json(txn, &rows, true).await;
    }
    let mut inserted = HashSet::with_capacity(indexes.len());
    for chunk in indexes.chunks(rows_per_insert(backend)) {
        let mut skip_open_session = OnConflict::column(command::Column::SessionId);
        skip_open_session.target_and_where(conditions::open()).do_nothing();
        let keys = command::Entity::insert_many(chunk.iter().map(|&i| command::active_model(&stored[i])))
            .on_conflict(skip_open_session)
            .exec_with_returning_keys(txn)
            .await?;
        inserted.extend(keys);
    }
    Ok(inserted)
}

/// A command as a row of the JSON array [`insert_json`] sends.
#[derive(Serialize)]
struct JsonRow<'a> {
    id: &'a str,
    termination_id: &'a str,
    session_id: &'a str,
    gateway_id: &'a str,
    user_name: &'a str,
    reason: i16,
    user_message: &'a str,
    state: i16,
    detail: &'a str,
    attempts: i64,
    created_at: i64,
    next_attempt_at: Option<i64>,
    delivered_at: Option<i64>,
    acknowledged_at: Option<i64>,
}

/// PostgreSQL: inserts `rows` in one statement whatever their number, as one JSON array
/// (`json_to_recordset`); with `skip_open_conflicts`, a row whose session has an open command by
/// now is skipped. Returns the ids inserted.
///
/// Why not a multi-row `VALUES`: that binds 14 parameters a row, so an end-all of 100,000
/// sessions was 22 statements of 4,681 rows, each built value by value and planned anew; the
/// array is one short statement, encoded in one pass.
async fn insert_json(
    txn: &DatabaseTransaction,
    rows: &[&CommandRecord],
    skip_open_conflicts: bool,
) -> ServiceResult<HashSet<String>> {
    const INSERT: &str = "INSERT INTO termination_commands (id, termination_id, session_id, gateway_id, \
        user_name, reason, user_message, state, detail, attempts, created_at, next_attempt_at, \
        delivered_at, acknowledged_at) \
        SELECT * FROM json_to_recordset($1::json) AS r(id text, termination_id text, session_id text, \
        gateway_id text, user_name text, reason smallint, user_message text, state smallint, \
        detail text, attempts bigint, created_at bigint, next_attempt_at bigint, delivered_at bigint, \
        acknowledged_at bigint)";
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let json: Vec<JsonRow<'_>> = rows
        .iter()
        .map(|command| JsonRow {
            id: &command.id,
            termination_id: &command.termination_id,
            session_id: &command.session_id,
            gateway_id: &command.gateway_id,
            user_name: &command.user,
            reason: enum_code(command.reason),
            user_message: &command.user_message,
            state: enum_code(command.state),
            detail: &command.detail,
            attempts: i64::from(command.attempts),
            created_at: command.created_at,
            next_attempt_at: command.next_attempt_at,
            delivered_at: command.delivered_at,
            acknowledged_at: command.acknowledged_at,
        })
        .collect();
    let json = serde_json::to_string(&json).map_err(ServiceError::internal)?;
    let sql = if skip_open_conflicts {
        // The conflict target spelled like the unique partial index's predicate, literals and all,
        // so that PostgreSQL infers that index.
        let pending = enum_code(DeliveryState::Pending);
        let delivered = enum_code(DeliveryState::Delivered);
        format!("{INSERT} ON CONFLICT (session_id) WHERE state IN ({pending}, {delivered}) DO NOTHING RETURNING id")
    } else {
        format!("{INSERT} RETURNING id")
    };
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, [json.into()]);
    txn.query_all_raw(statement)
        .await?
        .into_iter()
        .map(|row| Ok(row.try_get_by_index::<String>(0)?))
        .collect()
}
