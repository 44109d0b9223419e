//! The termination service's events, written into its outbox (`termination_event_outbox`, see
//! `vigil-events`) in the transaction of the change: a termination recorded (requested), and its
//! commands delivered, acknowledged or failed as the gateways report.

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::json;
use vigil_events::{Event, EventType};
use vigil_runtime::ServiceResult;

use super::conditions;
use crate::domain::{CommandRecord, DeliveryState, TerminationRecord};
use crate::store::entity::{command, termination};

/// The outbox's service name (its tables are `termination_event_*`).
pub const SERVICE: &str = "termination";

/// A termination was recorded: who asked to end what, why, and which sessions it covers.
pub async fn requested(
    db: &impl ConnectionTrait,
    record: &TerminationRecord,
    commands: &[CommandRecord],
) -> ServiceResult<()> {
    let (selector_kind, selector_value) = termination::selector_columns(&record.selector)?;
    let sessions: Vec<&str> = commands
        .iter()
        .filter(|command| command.is_open())
        .map(|command| command.session_id.as_str())
        .collect();
    let data = json!({
        "termination_id": record.id,
        "selector": { "kind": selector_kind, "value": selector_value },
        "reason": record.reason.as_str_name(),
        "user_message": record.user_message,
        "note": record.note,
        "sessions": sessions,
        "already_ended": commands.len() - sessions.len(),
    });
    let event = Event::at(
        EventType::TerminationRequested,
        SERVICE,
        format!("termination/{}", record.id),
        record.created_at,
        data,
    )
    .with_actor(&record.actor);
    vigil_events::outbox::append(db, SERVICE, &[event]).await
}

/// Commands the gateways reported on: `delivered` reached their gateway, `settled` were answered
/// (acknowledged or failed). One event per change, keyed by the command's session.
pub async fn reported(
    db: &impl ConnectionTrait,
    delivered: &HashSet<String>,
    settled: &HashSet<String>,
) -> ServiceResult<()> {
    let ids: Vec<String> = delivered.union(settled).cloned().collect();
    if ids.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let rows = command::Entity::find()
        .filter(conditions::is_in(
            backend,
            (command::Entity, command::Column::Id),
            &ids,
        )?)
        .all(db)
        .await?;
    let mut events = Vec::with_capacity(ids.len());
    for row in rows {
        let command = row.into_record()?;
        if delivered.contains(&command.id) {
            let at = command.delivered_at.unwrap_or(command.created_at);
            events.push(command_event(EventType::TerminationDelivered, &command, at));
        }
        if settled.contains(&command.id) {
            let kind = if command.state == DeliveryState::Failed {
                EventType::TerminationFailed
            } else {
                EventType::TerminationAcknowledged
            };
            let at = command.acknowledged_at.unwrap_or(command.created_at);
            events.push(command_event(kind, &command, at));
        }
    }
    vigil_events::outbox::append(db, SERVICE, &events).await
}

fn command_event(kind: EventType, command: &CommandRecord, at: i64) -> Event {
    let data = json!({
        "termination_id": command.termination_id,
        "command_id": command.id,
        "session_id": command.session_id,
        "gateway_id": command.gateway_id,
        "user": command.user,
        "reason": command.reason.as_str_name(),
        "state": command.state.as_str_name(),
        "detail": command.detail,
        "attempts": command.attempts,
    });
    Event::at(kind, SERVICE, format!("session/{}", command.session_id), at, data).with_session(&command.session_id)
}
