//! Locks for scripts.

use serde_json::{Value, json};
use vigil_proto::v1::lock_target::Target as LockOn;
use vigil_proto::v1::{Lock, LockTarget, Termination};

use crate::json::timestamp;
use crate::terminations::json::termination;

/// One lock: its target (one key named after the proto field it sets), message, reason, creator and times;
/// `expires_at` is `null` for a lock that lasts until removed.
pub fn lock(l: &Lock) -> Value {
    json!({
        "id": l.id,
        "target": lock_target(l.target.as_ref()),
        "message": l.message,
        "reason": l.reason,
        "created_by": l.created_by,
        "created_at": timestamp(l.created_at.as_ref()),
        "expires_at": timestamp(l.expires_at.as_ref()),
    })
}

pub fn locks(locks: &[Lock]) -> Value {
    json!({ "locks": locks.iter().map(lock).collect::<Vec<_>>() })
}

/// A lock's target: `{"user": "alice"}`, `{"cidr": "203.0.113.0/24"}`, …; `null` when unset.
pub fn lock_target(target: Option<&LockTarget>) -> Value {
    match target.and_then(|t| t.target.as_ref()) {
        None => Value::Null,
        Some(LockOn::User(user)) => json!({ "user": user }),
        Some(LockOn::Group(group)) => json!({ "group": group }),
        Some(LockOn::ResourceName(resource)) => json!({ "resource_name": resource }),
        Some(LockOn::GatewayId(gateway)) => json!({ "gateway_id": gateway }),
        Some(LockOn::Device(device)) => json!({ "device": device }),
        Some(LockOn::Cidr(cidr)) => json!({ "cidr": cidr }),
    }
}

/// What `locks create` and `sessions end --lock` did: the lock, the termination that ended what it covered
/// (`null` when there was none), and the named sessions that had already ended.
pub fn lock_outcome(l: &Lock, t: Option<&Termination>, already_ended: &[String]) -> Value {
    json!({
        "lock": lock(l),
        "termination": t.map(termination),
        "already_ended": already_ended,
    })
}

/// What `locks delete` did.
pub fn lock_deleted(id: &str, l: Option<&Lock>) -> Value {
    json!({ "deleted": l.map_or_else(|| json!({ "id": id }), lock) })
}
