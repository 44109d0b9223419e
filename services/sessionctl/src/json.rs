//! JSON output for scripts: an explicit mapping from the proto messages (prost types have no serde).
//!
//! Field names follow the proto; enums are lower-case names (`"ssh"`, `"idle"`, `"idle_timeout"`) and unset
//! enums, timestamps, messages and optional numbers are `null`; timestamps are RFC 3339 in UTC; durations
//! are numbers of seconds, in fields named `<proto field>_seconds`.
//!
//! This module holds the mappings several resources share; each resource maps its own messages.

use prost_types::Timestamp;
use serde_json::{Value, json};
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::{
    DeliveryState, EndReason, Location, LocationKind, ResourceType, Risk, SessionEventKind, SessionSelector,
    SessionStatus,
};

use crate::format;

pub fn location(loc: &Location) -> Value {
    let coordinates = loc.has_coordinates.then(|| {
        json!({
            "latitude": loc.latitude,
            "longitude": loc.longitude,
            "accuracy_radius_km": loc.accuracy_radius_km,
        })
    });
    json!({
        "kind": location_kind_name(loc.kind()),
        "city": loc.city,
        "region": loc.region,
        "country_code": loc.country_code,
        "country_name": loc.country_name,
        "coordinates": coordinates,
        "time_zone": loc.time_zone,
        "asn": (loc.asn != 0).then_some(loc.asn),
        "asn_organization": loc.asn_organization,
    })
}

pub fn risk(risk: &Risk) -> Value {
    let flags: Vec<Value> = risk
        .flags
        .iter()
        .map(|f| json!({ "code": f.code, "points": f.points, "explanation": f.explanation }))
        .collect();
    json!({ "score": risk.score, "assessed": risk.assessed, "flags": flags })
}

/// A selector as one key named after the proto field it sets: `{"user": "alice@example.com"}`,
/// `{"session_ids": [...]}`, `{"all": {"idle_only": true}}`; `null` when unset.
pub fn selector(selector: Option<&SessionSelector>) -> Value {
    match selector.and_then(|s| s.target.as_ref()) {
        None => Value::Null,
        Some(Target::SessionIds(ids)) => json!({ "session_ids": ids.ids }),
        Some(Target::User(user)) => json!({ "user": user }),
        Some(Target::GatewayId(gateway)) => json!({ "gateway_id": gateway }),
        Some(Target::ResourceName(resource)) => json!({ "resource_name": resource }),
        Some(Target::All(all)) => json!({ "all": { "idle_only": all.idle_only } }),
        Some(Target::Group(group)) => json!({ "group": group }),
        Some(Target::Device(device)) => json!({ "device": device }),
        Some(Target::Cidr(cidr)) => json!({ "cidr": cidr }),
    }
}

/// Whole seconds as an integer, a fraction only when there is one; `null` when unset.
pub fn duration_seconds(duration: Option<&prost_types::Duration>) -> Value {
    match duration {
        None => Value::Null,
        Some(d) if d.nanos == 0 => json!(d.seconds),
        // Display only: f64 holds any realistic policy duration to the nanosecond.
        Some(d) => json!(d.seconds as f64 + f64::from(d.nanos) / 1e9),
    }
}

/// RFC 3339 in UTC, with fractional seconds only when there are any; `null` when unset or out of range.
pub fn timestamp(ts: Option<&Timestamp>) -> Value {
    match ts.and_then(format::to_datetime) {
        Some(at) => Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        None => Value::Null,
    }
}

pub fn resource_type_name(kind: ResourceType) -> Option<&'static str> {
    match kind {
        ResourceType::Ssh => Some("ssh"),
        ResourceType::Rdp => Some("rdp"),
        ResourceType::Web => Some("web"),
        ResourceType::Unspecified => None,
    }
}

pub fn status_name(status: SessionStatus) -> Option<&'static str> {
    match status {
        SessionStatus::Active => Some("active"),
        SessionStatus::Idle => Some("idle"),
        SessionStatus::Disconnected => Some("disconnected"),
        SessionStatus::Unspecified => None,
    }
}

pub fn location_kind_name(kind: LocationKind) -> Option<&'static str> {
    match kind {
        LocationKind::Located => Some("located"),
        LocationKind::Private => Some("private"),
        LocationKind::Unknown => Some("unknown"),
        LocationKind::Unavailable => Some("unavailable"),
        LocationKind::Unspecified => None,
    }
}

pub fn end_reason_name(reason: EndReason) -> Option<&'static str> {
    Some(match reason {
        EndReason::Unspecified => return None,
        EndReason::UserClosed => "user_closed",
        EndReason::Admin => "admin",
        EndReason::UserSelfService => "user_self_service",
        EndReason::IdleTimeout => "idle_timeout",
        EndReason::MaxDuration => "max_duration",
        EndReason::ConcurrencyLimit => "concurrency_limit",
        EndReason::Anomaly => "anomaly",
        EndReason::Policy => "policy",
        EndReason::Lost => "lost",
        EndReason::GatewayLost => "gateway_lost",
        EndReason::GatewayClosed => "gateway_closed",
        EndReason::Locked => "locked",
    })
}

pub fn delivery_state_name(state: DeliveryState) -> Option<&'static str> {
    Some(match state {
        DeliveryState::Unspecified => return None,
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Acknowledged => "acknowledged",
        DeliveryState::Failed => "failed",
        DeliveryState::AlreadyEnded => "already_ended",
    })
}

pub fn event_kind_name(kind: SessionEventKind) -> Option<&'static str> {
    match kind {
        SessionEventKind::Snapshot => Some("snapshot"),
        SessionEventKind::SnapshotDone => Some("snapshot_done"),
        SessionEventKind::Opened => Some("opened"),
        SessionEventKind::Updated => Some("updated"),
        SessionEventKind::Ended => Some("ended"),
        SessionEventKind::Denied => Some("denied"),
        SessionEventKind::Unspecified => None,
    }
}
