//! Sessions for scripts.

use serde_json::{Value, json};
use vigil_proto::v1::{
    ListSessionsResponse, ResourceType, Session, SessionEvent, SessionStats, Termination, TypeCount,
};

use crate::format;
use crate::json::{end_reason_name, event_kind_name, location, resource_type_name, risk, status_name, timestamp};
use crate::terminations::json::termination;

/// One session, every field.
pub fn session(s: &Session) -> Value {
    json!({
        "id": s.id,
        "user": s.user,
        "user_groups": s.user_groups,
        "gateway_id": s.gateway_id,
        "resource_name": s.resource_name,
        "resource_type": resource_type_name(s.resource_type()),
        "device": s.device,
        "client_ip": s.client_ip,
        "location": s.location.as_ref().map(location),
        "started_at": timestamp(s.started_at.as_ref()),
        "last_activity_at": timestamp(s.last_activity_at.as_ref()),
        "status": status_name(s.status()),
        "ended_at": timestamp(s.ended_at.as_ref()),
        "end_reason": end_reason_name(s.end_reason()),
        "end_detail": s.end_detail,
        "duration_seconds": s.duration_seconds,
        "risk": s.risk.as_ref().map(risk),
        "bytes_in": s.bytes_in,
        "bytes_out": s.bytes_out,
    })
}

/// One session, with `ended_by` (the termination's id, actor, reason and note) when it is known.
pub fn session_with_ending(s: &Session, ending: Option<&Termination>) -> Value {
    let mut value = session(s);
    value["ended_by"] = ending.map_or(Value::Null, ended_by);
    value
}

/// Who ended a session: the termination's id, actor, reason and note.
pub fn ended_by(t: &Termination) -> Value {
    json!({
        "termination_id": t.id,
        "actor": t.actor,
        "reason": end_reason_name(t.reason()),
        "note": t.note,
    })
}

/// One watch event, its session's `ended_by` filled when known.
pub fn event_with_ending(e: &SessionEvent, ending: Option<&Termination>) -> Value {
    let mut value = event(e);
    if let Some(session) = &e.session {
        value["session"] = session_with_ending(session, ending);
    }
    value
}

/// A page (or, with `--all`, every page) of a session list.
pub fn sessions_page(page: &ListSessionsResponse) -> Value {
    json!({
        "sessions": page.sessions.iter().map(session).collect::<Vec<_>>(),
        "total_size": page.total_size,
        "total_size_is_lower_bound": page.total_size_is_lower_bound,
        "next_page_token": page.next_page_token,
    })
}

pub fn stats(stats: &SessionStats) -> Value {
    let by_type: serde_json::Map<String, Value> = stats
        .by_type
        .iter()
        .map(|TypeCount { resource_type, live }| {
            let name = ResourceType::try_from(*resource_type)
                .ok()
                .and_then(resource_type_name)
                .map_or_else(|| format!("type_{resource_type}"), str::to_owned);
            (name, json!(live))
        })
        .collect();
    json!({
        "active": stats.active,
        "idle": stats.idle,
        "total_live_duration_seconds": stats.total_live_duration_seconds,
        "total_live_duration": format::duration(stats.total_live_duration_seconds),
        "by_type": by_type,
        "flagged": stats.flagged,
        "gateways_connected": stats.gateways_connected,
        "ended_last_24h": stats.ended_last_24h,
        "computed_at": timestamp(stats.computed_at.as_ref()),
    })
}

/// One watch event; `session` is `null` on the end-of-snapshot marker.
pub fn event(e: &SessionEvent) -> Value {
    json!({
        "kind": event_kind_name(e.kind()),
        "at": timestamp(e.at.as_ref()),
        "detail": e.detail,
        "session": e.session.as_ref().map(session),
    })
}

/// What `sessions end` did: the termination (`null` when nothing was live, so nothing was asked) and the
/// named session ids that had already ended.
pub fn end_outcome(t: Option<&Termination>, already_ended: &[String]) -> Value {
    json!({
        "termination": t.map(termination),
        "already_ended": already_ended,
    })
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{
        Gateway, ListSessionsResponse, Location, LocationKind, ResourceType, Session, SessionEvent, SessionEventKind,
        SessionStats, SessionStatus, TypeCount,
    };

    use super::*;

    use crate::testing::{ended_session, ts};

    #[test]
    fn a_session_maps_to_readable_json() {
        let value = session(&ended_session());
        assert_eq!(value["id"], "3f2a9c1b-0000-4000-8000-000000000001");
        assert_eq!(value["user_groups"], json!(["admins", "eng"]));
        assert_eq!(value["resource_type"], "ssh");
        assert_eq!(value["status"], "disconnected");
        assert_eq!(value["end_reason"], "idle_timeout");
        assert_eq!(value["started_at"], "2025-03-04T08:15:00Z");
        assert_eq!(value["last_activity_at"], "2025-03-04T09:40:00.250Z");
        assert_eq!(value["ended_at"], "2025-03-04T10:45:00Z");
        assert_eq!(value["duration_seconds"], 9000);
        assert_eq!(value["bytes_out"], 34_500);
        assert_eq!(value["location"]["kind"], "located");
        assert_eq!(value["location"]["coordinates"]["latitude"], 52.52);
        assert_eq!(value["location"]["asn"], 3320);
        assert_eq!(value["risk"]["score"], 60);
        assert_eq!(value["risk"]["flags"][0]["code"], "new_country");
        assert_eq!(value["risk"]["flags"][0]["explanation"], "First session from Germany");
    }

    #[test]
    fn unset_fields_are_null() {
        let live = Session {
            status: SessionStatus::Active.into(),
            location: Some(Location {
                kind: LocationKind::Private.into(),
                ..Location::default()
            }),
            ..Session::default()
        };
        let value = session(&live);
        assert_eq!(value["status"], "active");
        assert_eq!(value["ended_at"], Value::Null);
        assert_eq!(value["end_reason"], Value::Null);
        assert_eq!(value["resource_type"], Value::Null);
        assert_eq!(value["risk"], Value::Null);
        assert_eq!(value["location"]["kind"], "private");
        assert_eq!(value["location"]["coordinates"], Value::Null);
        assert_eq!(value["location"]["asn"], Value::Null);
    }

    #[test]
    fn a_page_carries_the_next_token() {
        let page = ListSessionsResponse {
            sessions: vec![ended_session(), Session::default()],
            next_page_token: "next".into(),
            total_size: 7,
            total_size_is_lower_bound: false,
        };
        let value = sessions_page(&page);
        assert_eq!(value["sessions"].as_array().map(Vec::len), Some(2));
        assert_eq!(value["next_page_token"], "next");
        assert_eq!(value["total_size"], 7);
    }

    #[test]
    fn stats_count_by_type_name() {
        let value = stats(&SessionStats {
            active: 12,
            idle: 3,
            total_live_duration_seconds: 3 * 3600 + 7 * 60,
            by_type: vec![
                TypeCount {
                    resource_type: ResourceType::Ssh.into(),
                    live: 10,
                },
                TypeCount {
                    resource_type: ResourceType::Web.into(),
                    live: 5,
                },
            ],
            gateways_connected: 2,
            ended_last_24h: 40,
            flagged: 1,
            computed_at: ts(1_741_076_100, 0),
        });
        assert_eq!(value["by_type"], json!({ "ssh": 10, "web": 5 }));
        assert_eq!(value["total_live_duration"], "3h 07m");
        assert_eq!(value["computed_at"], "2025-03-04T08:15:00Z");
    }

    #[test]
    fn events_and_gateways() {
        let done = event(&SessionEvent {
            kind: SessionEventKind::SnapshotDone.into(),
            session: None,
            at: ts(1_741_076_100, 0),
            detail: String::new(),
        });
        assert_eq!(done["kind"], "snapshot_done");
        assert_eq!(done["session"], Value::Null);

        let denied = event(&SessionEvent {
            kind: SessionEventKind::Denied.into(),
            session: Some(ended_session()),
            at: None,
            detail: "blocked country".into(),
        });
        assert_eq!(denied["kind"], "denied");
        assert_eq!(denied["detail"], "blocked country");
        assert_eq!(denied["session"]["user"], "alice@example.com");
        assert_eq!(denied["at"], Value::Null);

        let list = crate::gateways::gateways_json(&[Gateway {
            id: "gw-eu-1".into(),
            connected: true,
            live_sessions: 4,
            replica: "registry-0".into(),
            ..Gateway::default()
        }]);
        assert_eq!(list["gateways"][0]["id"], "gw-eu-1");
        assert_eq!(list["gateways"][0]["connected"], true);
        assert_eq!(list["gateways"][0]["live_sessions"], 4);
        assert_eq!(list["gateways"][0]["last_seen_at"], Value::Null);
    }
}
