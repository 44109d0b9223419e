//! The registry's events, written into its outbox (`registry_event_outbox`, see `vigil-events`)
//! in the transaction of the change: each store method that changes a session or a gateway calls
//! one of these before it commits.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use vigil_events::{Event, EventType};
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{EndReason, EpochMillis, FLAGGED_FOR_REVIEW, SessionRecord};

/// The outbox's service name (its tables are `registry_event_*`).
pub const SERVICE: &str = "registry";

fn session_data(session: &SessionRecord) -> serde_json::Value {
    json!({
        "session_id": session.id,
        "user": session.user,
        "groups": session.user_groups,
        "gateway_id": session.gateway_id,
        "resource": session.resource_name,
        "resource_type": session.resource_type.as_str_name(),
        "device": session.device,
        "client_ip": session.client_ip,
        "location": {
            "city": session.location.city,
            "country_code": session.location.country_code,
            "asn": session.location.asn,
        },
        "risk": {
            "assessed": session.risk.assessed,
            "score": session.risk.score,
            "flags": session.risk.flags,
        },
        "started_at": session.started_at,
    })
}

fn session_event(kind: EventType, session: &SessionRecord, time: EpochMillis, mut data: serde_json::Value) -> Event {
    let mut base = session_data(session);
    if let (Some(base), Some(extra)) = (base.as_object_mut(), data.as_object_mut()) {
        base.append(extra);
    }
    let risk = session.risk.assessed.then_some(session.risk.score);
    Event::at(kind, SERVICE, format!("session/{}", session.id), time, base)
        .with_session(&session.id)
        .with_risk(risk)
}

/// A start was recorded: opened (and flagged when policy flagged it, see [`FLAGGED_FOR_REVIEW`]),
/// or denied (a refused start is recorded as a session that ended as it began).
pub async fn session_started(db: &impl ConnectionTrait, session: &SessionRecord) -> ServiceResult<()> {
    vigil_events::outbox::append(db, SERVICE, &started_events(session)).await
}

/// PostgreSQL: `insert` (the session's row, one `INSERT`), `also` (more data-modifying clauses of
/// the `WITH`, which may read the inserted row as `inserted`) and the session's
/// [`session_started`] events as one statement, so they all commit together without a transaction
/// around them: one round trip where `BEGIN`, the inserts and `COMMIT` were five, on admission's
/// path.
pub fn with_session_started(insert: Statement, also: &[&str], session: &SessionRecord) -> ServiceResult<Statement> {
    // The rows as `vigil_events::outbox::append` writes them: the event, and the current trace.
    let trace = vigil_runtime::telemetry::propagation::current_map();
    let trace = if trace.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&trace).map_err(ServiceError::internal)?
    };
    let mut values = insert.values.map(|values| values.0).unwrap_or_default();
    let mut selects = Vec::with_capacity(2);
    for event in started_events(session) {
        let n = values.len();
        let payload = serde_json::to_string(&event).map_err(ServiceError::internal)?;
        values.extend([event.time.into(), payload.into(), trace.clone().into()]);
        selects.push(format!(
            "SELECT ${}::bigint, ${}::text, ${}::text FROM inserted",
            n + 1,
            n + 2,
            n + 3
        ));
    }
    let also: String = also.iter().map(|clause| format!(", {clause}")).collect();
    let sql = format!(
        "WITH inserted AS ({} RETURNING *){also} INSERT INTO {SERVICE}_event_outbox (occurred_at, payload, trace_context) {}",
        insert.sql,
        selects.join(" UNION ALL ")
    );
    Ok(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
}

/// The events of a recorded start.
fn started_events(session: &SessionRecord) -> Vec<Event> {
    let mut events = Vec::with_capacity(2);
    if session.ended_at.is_some() {
        let reason = session
            .end_detail
            .strip_prefix("admission denied: ")
            .unwrap_or(&session.end_detail);
        events.push(session_event(
            EventType::SessionDenied,
            session,
            session.started_at,
            json!({ "reason": reason }),
        ));
    } else {
        events.push(session_event(
            EventType::SessionOpened,
            session,
            session.started_at,
            json!({}),
        ));
        if session.risk.flags.iter().any(|flag| flag.code == FLAGGED_FOR_REVIEW) {
            let explained: Vec<String> = session.risk.flags.iter().map(|flag| flag.explanation.clone()).collect();
            events.push(session_event(
                EventType::SessionFlagged,
                session,
                session.started_at,
                json!({ "explanations": explained }),
            ));
        }
    }
    events
}

/// Sessions ended (by their gateway, a kill, a lost gateway, reconciliation).
pub async fn sessions_ended(db: &impl ConnectionTrait, sessions: &[SessionRecord]) -> ServiceResult<()> {
    let events: Vec<Event> = sessions
        .iter()
        .map(|session| {
            let ended_at = session.ended_at.unwrap_or(session.last_activity_at);
            let reason = session.end_reason.unwrap_or(EndReason::Unspecified);
            session_event(
                EventType::SessionEnded,
                session,
                ended_at,
                json!({
                    "reason": reason.as_str_name(),
                    "detail": session.end_detail,
                    "ended_at": ended_at,
                    "duration_seconds": session.duration_seconds(ended_at),
                    "bytes_in": session.bytes_in,
                    "bytes_out": session.bytes_out,
                }),
            )
        })
        .collect();
    vigil_events::outbox::append(db, SERVICE, &events).await
}

/// A gateway's agent linked to a replica.
pub async fn gateway_connected(
    db: &impl ConnectionTrait,
    gateway_id: &str,
    replica: &str,
    agent_version: &str,
    now: EpochMillis,
) -> ServiceResult<()> {
    let data = json!({ "gateway_id": gateway_id, "replica": replica, "agent_version": agent_version });
    let event = Event::at(
        EventType::GatewayConnected,
        SERVICE,
        format!("gateway/{gateway_id}"),
        now,
        data,
    );
    vigil_events::outbox::append(db, SERVICE, &[event]).await
}

/// Gateways not heard from within the grace period: lost (their sessions end with them).
pub async fn gateways_lost(db: &impl ConnectionTrait, gateway_ids: &[String], now: EpochMillis) -> ServiceResult<()> {
    let events: Vec<Event> = gateway_ids
        .iter()
        .map(|id| {
            let data = json!({ "gateway_id": id, "reason": "GATEWAY_LOST" });
            Event::at(EventType::GatewayLost, SERVICE, format!("gateway/{id}"), now, data)
        })
        .collect();
    vigil_events::outbox::append(db, SERVICE, &events).await
}
