//! JSON output for scripts: an explicit mapping from the proto messages (prost types have no serde).
//!
//! Field names follow the proto; enums are lower-case names (`"ssh"`, `"idle"`, `"idle_timeout"`) and unset
//! enums, timestamps, messages and optional numbers are `null`; timestamps are RFC 3339 in UTC; durations
//! are numbers of seconds, in fields named `<proto field>_seconds`.

use prost_types::Timestamp;
use serde_json::{Value, json};
use vigil_proto::v1::lock_target::Target as LockOn;
use vigil_proto::v1::policy_scope::Scope;
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::{
    ConcurrencyAction, DeliveryState, EffectivePolicy, EndReason, Gateway, ListSessionsResponse,
    ListTerminationsResponse, Location, LocationKind, Lock, LockTarget, Policy, PolicyRules, PolicyScope, ResourceType,
    Risk, Session, SessionEvent, SessionEventKind, SessionSelector, SessionStats, SessionStatus, Termination,
    TerminationCommand, TypeCount,
};

use crate::format;

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

/// A page (or, with `--all`, every page) of a session list.
pub fn sessions_page(page: &ListSessionsResponse) -> Value {
    json!({
        "sessions": page.sessions.iter().map(session).collect::<Vec<_>>(),
        "total_size": page.total_size,
        "total_size_is_lower_bound": page.total_size_is_lower_bound,
        "next_page_token": page.next_page_token,
    })
}

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

pub fn gateway(g: &Gateway) -> Value {
    json!({
        "id": g.id,
        "connected": g.connected,
        "connected_at": timestamp(g.connected_at.as_ref()),
        "last_seen_at": timestamp(g.last_seen_at.as_ref()),
        "agent_version": g.agent_version,
        "live_sessions": g.live_sessions,
        "replica": g.replica,
    })
}

pub fn gateways(gateways: &[Gateway]) -> Value {
    json!({ "gateways": gateways.iter().map(gateway).collect::<Vec<_>>() })
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

/// One termination: the record, its delivery counts and (from `get` and `sessions end`) its commands.
pub fn termination(t: &Termination) -> Value {
    json!({
        "id": t.id,
        "actor": t.actor,
        "selector": selector(t.selector.as_ref()),
        "reason": end_reason_name(t.reason()),
        "user_message": t.user_message,
        "note": t.note,
        "created_at": timestamp(t.created_at.as_ref()),
        "session_count": t.session_count,
        "pending": t.pending,
        "delivered": t.delivered,
        "acknowledged": t.acknowledged,
        "failed": t.failed,
        "already_ended": t.already_ended,
        "commands": t.commands.iter().map(command).collect::<Vec<_>>(),
    })
}

pub fn command(c: &TerminationCommand) -> Value {
    json!({
        "command_id": c.command_id,
        "session_id": c.session_id,
        "gateway_id": c.gateway_id,
        "user": c.user,
        "state": delivery_state_name(c.state()),
        "detail": c.detail,
        "attempts": c.attempts,
        "acknowledged_at": timestamp(c.acknowledged_at.as_ref()),
    })
}

/// A page (or, with `--all`, every page) of the audit trail.
pub fn terminations_page(page: &ListTerminationsResponse) -> Value {
    json!({
        "terminations": page.terminations.iter().map(termination).collect::<Vec<_>>(),
        "next_page_token": page.next_page_token,
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

/// One policy: its scope, its rules (unset ones `null`: inherited), note and last change.
pub fn policy(p: &Policy) -> Value {
    json!({
        "id": p.id,
        "scope": policy_scope(p.scope.as_ref()),
        "rules": rules(p.rules.as_ref()),
        "description": p.description,
        "updated_by": p.updated_by,
        "updated_at": timestamp(p.updated_at.as_ref()),
    })
}

pub fn policies(policies: &[Policy]) -> Value {
    json!({ "policies": policies.iter().map(policy).collect::<Vec<_>>() })
}

/// What `policies delete` did: the policy as it was.
pub fn policy_deleted(p: &Policy) -> Value {
    json!({ "deleted": policy(p) })
}

/// The rules in force and the policies they come from, most specific first.
pub fn effective_policy(effective: &EffectivePolicy) -> Value {
    json!({
        "rules": rules(effective.rules.as_ref()),
        "policy_ids": effective.policy_ids,
    })
}

/// Every rule, `null` when unset; no rules at all reads as every rule unset.
pub fn rules(rules: Option<&PolicyRules>) -> Value {
    let unset = PolicyRules::default();
    let r = rules.unwrap_or(&unset);
    json!({
        "idle_warning_after_seconds": duration_seconds(r.idle_warning_after.as_ref()),
        "idle_timeout_seconds": duration_seconds(r.idle_timeout.as_ref()),
        "max_session_duration_seconds": duration_seconds(r.max_session_duration.as_ref()),
        "max_concurrent_sessions": r.max_concurrent_sessions,
        "concurrency_action": concurrency_action_name(r.concurrency_action()),
        "deny_risk_score": r.deny_risk_score,
        "flag_risk_score": r.flag_risk_score,
    })
}

/// A scope as one key named after the proto field it sets: `{"global": {}}`, `{"group": "sre"}`,
/// `{"user": ...}`, `{"resource_name": ...}`; `null` when unset.
pub fn policy_scope(scope: Option<&PolicyScope>) -> Value {
    match scope.and_then(|s| s.scope.as_ref()) {
        None => Value::Null,
        Some(Scope::Global(_)) => json!({ "global": {} }),
        Some(Scope::Group(group)) => json!({ "group": group }),
        Some(Scope::User(user)) => json!({ "user": user }),
        Some(Scope::ResourceName(resource)) => json!({ "resource_name": resource }),
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

pub fn concurrency_action_name(action: ConcurrencyAction) -> Option<&'static str> {
    match action {
        ConcurrencyAction::DenyNew => Some("deny_new"),
        ConcurrencyAction::EndOldest => Some("end_oldest"),
        ConcurrencyAction::Unspecified => None,
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

#[cfg(test)]
mod tests {
    use vigil_proto::v1::RiskFlag;

    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos })
    }

    fn ended_session() -> Session {
        Session {
            id: "3f2a9c1b-0000-4000-8000-000000000001".into(),
            user: "alice@example.com".into(),
            user_groups: vec!["admins".into(), "eng".into()],
            gateway_id: "gw-eu-1".into(),
            resource_name: "prod-db-01".into(),
            resource_type: ResourceType::Ssh.into(),
            device: "alice-mbp".into(),
            client_ip: "81.2.69.142".into(),
            location: Some(Location {
                city: "Berlin".into(),
                country_code: "DE".into(),
                country_name: "Germany".into(),
                latitude: 52.52,
                longitude: 13.405,
                has_coordinates: true,
                accuracy_radius_km: 20,
                time_zone: "Europe/Berlin".into(),
                asn: 3320,
                asn_organization: "Deutsche Telekom AG".into(),
                kind: LocationKind::Located.into(),
                ..Location::default()
            }),
            // 2025-03-04T08:15:00Z
            started_at: ts(1_741_076_100, 0),
            last_activity_at: ts(1_741_081_200, 250_000_000),
            status: SessionStatus::Disconnected.into(),
            ended_at: ts(1_741_085_100, 0),
            end_reason: EndReason::IdleTimeout.into(),
            end_detail: "idle for 30m".into(),
            risk: Some(Risk {
                score: 60,
                flags: vec![RiskFlag {
                    code: "new_country".into(),
                    points: 60,
                    explanation: "First session from Germany".into(),
                }],
                assessed: true,
            }),
            bytes_in: 1200,
            bytes_out: 34_500,
            duration_seconds: 9000,
        }
    }

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
    fn terminations_map_with_their_commands() {
        use vigil_proto::v1::AllSessions;
        let t = Termination {
            id: "0193a000-0000-7000-8000-00000000abcd".into(),
            actor: "admin@example.com".into(),
            selector: Some(SessionSelector {
                target: Some(Target::All(AllSessions { idle_only: true })),
            }),
            reason: EndReason::Policy.into(),
            user_message: "Idle sessions are closed at night".into(),
            note: "nightly sweep".into(),
            created_at: ts(1_741_076_100, 0),
            session_count: 2,
            pending: 1,
            acknowledged: 1,
            commands: vec![
                TerminationCommand {
                    command_id: "c1".into(),
                    session_id: "s1".into(),
                    gateway_id: "gw-eu-1".into(),
                    user: "alice@example.com".into(),
                    state: DeliveryState::Acknowledged.into(),
                    attempts: 1,
                    acknowledged_at: ts(1_741_076_101, 0),
                    ..TerminationCommand::default()
                },
                TerminationCommand {
                    command_id: "c2".into(),
                    session_id: "s2".into(),
                    state: DeliveryState::Pending.into(),
                    ..TerminationCommand::default()
                },
            ],
            ..Termination::default()
        };
        let value = termination(&t);
        assert_eq!(value["selector"], json!({ "all": { "idle_only": true } }));
        assert_eq!(value["reason"], "policy");
        assert_eq!(value["created_at"], "2025-03-04T08:15:00Z");
        assert_eq!(value["session_count"], 2);
        assert_eq!(value["pending"], 1);
        assert_eq!(value["commands"][0]["state"], "acknowledged");
        assert_eq!(value["commands"][0]["acknowledged_at"], "2025-03-04T08:15:01Z");
        assert_eq!(value["commands"][1]["state"], "pending");
        assert_eq!(value["commands"][1]["acknowledged_at"], Value::Null);

        let page = terminations_page(&ListTerminationsResponse {
            terminations: vec![t.clone()],
            next_page_token: "next".into(),
        });
        assert_eq!(page["terminations"][0]["id"], t.id.as_str());
        assert_eq!(page["next_page_token"], "next");

        let outcome = end_outcome(None, &["s9".to_owned()]);
        assert_eq!(outcome, json!({ "termination": null, "already_ended": ["s9"] }));
        assert_eq!(
            selector(Some(&SessionSelector {
                target: Some(Target::User("bob".into()))
            })),
            json!({ "user": "bob" })
        );
    }

    #[test]
    fn a_policy_maps_its_scope_and_rules_with_unset_ones_null() {
        let p = Policy {
            id: "0195a3c0-7e1f-7000-8000-0000000000a1".into(),
            scope: Some(PolicyScope {
                scope: Some(Scope::Group("sre".into())),
            }),
            rules: Some(PolicyRules {
                idle_timeout: Some(prost_types::Duration {
                    seconds: 1800,
                    nanos: 0,
                }),
                idle_warning_after: Some(prost_types::Duration {
                    seconds: 90,
                    nanos: 500_000_000,
                }),
                max_concurrent_sessions: Some(0),
                concurrency_action: ConcurrencyAction::EndOldest.into(),
                deny_risk_score: Some(80),
                ..PolicyRules::default()
            }),
            description: "on-call engineers".into(),
            updated_by: "admin@example.com".into(),
            updated_at: ts(1_741_076_100, 0),
        };
        let value = policy(&p);
        assert_eq!(value["scope"], json!({ "group": "sre" }));
        assert_eq!(
            value["rules"],
            json!({
                "idle_warning_after_seconds": 90.5,
                "idle_timeout_seconds": 1800,
                "max_session_duration_seconds": null,
                "max_concurrent_sessions": 0,
                "concurrency_action": "end_oldest",
                "deny_risk_score": 80,
                "flag_risk_score": null,
            })
        );
        assert_eq!(value["description"], "on-call engineers");
        assert_eq!(value["updated_by"], "admin@example.com");
        assert_eq!(value["updated_at"], "2025-03-04T08:15:00Z");

        let bare = policy(&Policy::default());
        assert_eq!(bare["scope"], Value::Null);
        assert_eq!(bare["rules"]["idle_timeout_seconds"], Value::Null);
        assert_eq!(bare["rules"]["concurrency_action"], Value::Null);
        assert_eq!(bare["updated_at"], Value::Null);

        let global = PolicyScope {
            scope: Some(Scope::Global(vigil_proto::v1::GlobalScope {})),
        };
        assert_eq!(policy_scope(Some(&global)), json!({ "global": {} }));
        assert_eq!(policies(std::slice::from_ref(&p))["policies"][0]["id"], p.id.as_str());
        assert_eq!(policy_deleted(&p)["deleted"]["id"], p.id.as_str());

        let effective = effective_policy(&EffectivePolicy {
            rules: p.rules,
            policy_ids: vec!["user-policy".into(), "global-policy".into()],
        });
        assert_eq!(effective["policy_ids"], json!(["user-policy", "global-policy"]));
        assert_eq!(effective["rules"]["deny_risk_score"], 80);
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

        let list = gateways(&[Gateway {
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
