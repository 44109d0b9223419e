//! The policy service's events, written into its outbox (`policy_event_outbox`, see
//! `vigil-events`) in the transaction of the change: policies created, changed, deleted; locks
//! created, deleted, expired; idle warnings recorded.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::json;
use vigil_events::{Event, EventType};
use vigil_runtime::ServiceResult;

use crate::domain::{EpochMillis, IdleWarningRecord, LockRecord, PolicyRecord};
use crate::store::entity::lock;

/// The outbox's service name (its tables are `policy_event_*`).
pub const SERVICE: &str = "policy";

/// `actor`: who made the change (a deletion's is the caller, not the policy's last editor).
fn policy_event(kind: EventType, policy: &PolicyRecord, time: EpochMillis, actor: &str) -> Event {
    let rules = &policy.rules;
    let seconds = |value: Option<std::time::Duration>| value.map(|duration| duration.as_secs());
    let data = json!({
        "policy_id": policy.id,
        "scope": { "kind": policy.scope.kind().as_str(), "name": policy.scope.name() },
        "description": policy.description,
        "rules": {
            "idle_warning_after_seconds": seconds(rules.idle_warning_after),
            "idle_timeout_seconds": seconds(rules.idle_timeout),
            "max_session_duration_seconds": seconds(rules.max_session_duration),
            "max_concurrent_sessions": rules.max_concurrent_sessions,
            "concurrency_action": rules.concurrency_action.map(|action| format!("{action:?}")),
            "deny_risk_score": rules.deny_risk_score,
            "flag_risk_score": rules.flag_risk_score,
        },
    });
    Event::at(kind, SERVICE, format!("policy/{}", policy.id), time, data).with_actor(actor)
}

/// A policy was created (`changed`: updated).
pub async fn policy_saved(db: &impl ConnectionTrait, policy: &PolicyRecord, changed: bool) -> ServiceResult<()> {
    let kind = if changed {
        EventType::PolicyChanged
    } else {
        EventType::PolicyCreated
    };
    let event = policy_event(kind, policy, policy.updated_at, &policy.updated_by);
    vigil_events::outbox::append(db, SERVICE, &[event]).await
}

/// A policy was deleted (its last state) by `actor`.
pub async fn policy_deleted(
    db: &impl ConnectionTrait,
    policy: Option<&PolicyRecord>,
    actor: &str,
) -> ServiceResult<()> {
    let Some(policy) = policy else { return Ok(()) };
    let event = policy_event(EventType::PolicyDeleted, policy, vigil_core::now_millis(), actor);
    vigil_events::outbox::append(db, SERVICE, &[event]).await
}

/// `actor`: who made the change (none for an expiry, which nobody does).
fn lock_event(kind: EventType, lock: &LockRecord, time: EpochMillis, actor: &str) -> Event {
    let data = json!({
        "lock_id": lock.id,
        "target": { "kind": lock.target.kind().as_str(), "value": lock.target.value() },
        "message": lock.message,
        "reason": lock.reason,
        "created_by": lock.created_by,
        "created_at": lock.created_at,
        "expires_at": lock.expires_at,
    });
    Event::at(kind, SERVICE, format!("lock/{}", lock.id), time, data).with_actor(actor)
}

/// A lock was created.
pub async fn lock_created(db: &impl ConnectionTrait, lock: &LockRecord) -> ServiceResult<()> {
    let event = lock_event(EventType::LockCreated, lock, lock.created_at, &lock.created_by);
    vigil_events::outbox::append(db, SERVICE, &[event]).await
}

/// A lock was deleted (when one was) by `actor`.
pub async fn lock_deleted(
    db: &impl ConnectionTrait,
    deleted: Option<&(LockRecord, u64)>,
    actor: &str,
) -> ServiceResult<()> {
    let Some((lock, _)) = deleted else { return Ok(()) };
    let event = lock_event(EventType::LockDeleted, lock, vigil_core::now_millis(), actor);
    vigil_events::outbox::append(db, SERVICE, &[event]).await
}

/// The locks whose expiry is about to be announced (expired, not yet announced): one event each.
/// Called in the announcing transaction, before the announcement marks them.
pub async fn locks_expiring(db: &impl ConnectionTrait, now: EpochMillis) -> ServiceResult<()> {
    let rows = lock::Entity::find()
        .filter(lock::Column::ExpiresAt.lte(now))
        .filter(lock::Column::ExpiryAnnounced.eq(false))
        .all(db)
        .await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let lock = row.into_record()?;
        let expired_at = lock.expires_at.unwrap_or(now);
        events.push(lock_event(EventType::LockExpired, &lock, expired_at, ""));
    }
    vigil_events::outbox::append(db, SERVICE, &events).await
}

/// Idle warnings newly recorded (`recorded`: their session ids), one event each.
pub async fn idle_warned(
    db: &impl ConnectionTrait,
    recorded: &[String],
    warnings: &[IdleWarningRecord],
    now: EpochMillis,
) -> ServiceResult<()> {
    let events: Vec<Event> = recorded
        .iter()
        .map(|session_id| {
            let idle_since = warnings
                .iter()
                .filter(|warning| &warning.session_id == session_id)
                .map(|warning| warning.last_activity_at)
                .max();
            let data = json!({ "session_id": session_id, "last_activity_at": idle_since, "warned_at": now });
            Event::at(
                EventType::SessionIdleWarned,
                SERVICE,
                format!("session/{session_id}"),
                now,
                data,
            )
            .with_session(session_id)
        })
        .collect();
    vigil_events::outbox::append(db, SERVICE, &events).await
}
