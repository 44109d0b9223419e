//! Fixtures the unit tests share.

use chrono::{DateTime, FixedOffset};
use clap::Parser;
use prost_types::Timestamp;
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::{
    DeliveryState, EndReason, Location, LocationKind, Lock, Policy, PolicyRules, ResourceType, Risk, RiskFlag, Session,
    SessionSelector, SessionStatus, Termination,
};

use crate::cli::Cli;

pub(crate) const ID_1: &str = "01a209da-fe18-708a-896c-97c6c27a4dbc";
pub(crate) const ID_2: &str = "01a209da-fe17-7686-ade2-a08971035a38";

pub(crate) fn at(rfc3339: &str) -> Option<Timestamp> {
    let t = DateTime::parse_from_rfc3339(rfc3339).expect("valid test time");
    Some(Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    })
}

/// 2025-03-04 12:00 in Berlin (UTC+1).
pub(crate) fn now() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2025-03-04T12:00:00+01:00").expect("valid test time")
}

pub(crate) fn berlin() -> Location {
    Location {
        city: "Berlin".into(),
        region: "Berlin".into(),
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
    }
}

pub(crate) fn alice() -> Session {
    Session {
        id: "01a209da-fe18-708a-896c-97c6c27a4dbc".into(),
        user: "alice@example.com".into(),
        user_groups: vec!["admins".into(), "eng".into()],
        gateway_id: "gw-eu-1".into(),
        resource_name: "prod-db-01".into(),
        resource_type: ResourceType::Ssh.into(),
        device: "alice-mbp".into(),
        client_ip: "81.2.69.142".into(),
        location: Some(berlin()),
        started_at: at("2025-03-04T09:30:00+01:00"),
        last_activity_at: at("2025-03-04T11:59:00+01:00"),
        status: SessionStatus::Active.into(),
        risk: Some(Risk {
            score: 0,
            flags: vec![],
            assessed: true,
        }),
        bytes_in: 1_240_000,
        bytes_out: 34_500_000,
        duration_seconds: 2 * 3600 + 30 * 60,
        ..Session::default()
    }
}

pub(crate) fn bob() -> Session {
    Session {
        id: "01a209da-fe17-7686-ade2-a08971035a38".into(),
        user: "bob@example.com".into(),
        gateway_id: "gw-ap-1".into(),
        resource_name: "Finance Portal".into(),
        resource_type: ResourceType::Web.into(),
        device: "bob-laptop".into(),
        client_ip: "203.0.113.9".into(),
        location: Some(Location {
            city: "東京".into(),
            country_code: "JP".into(),
            kind: LocationKind::Located.into(),
            ..Location::default()
        }),
        started_at: at("2025-03-02T08:00:00+01:00"),
        status: SessionStatus::Idle.into(),
        risk: Some(Risk {
            score: 85,
            flags: vec![RiskFlag {
                code: "impossible_travel".into(),
                points: 60,
                explanation: "Berlin → Tokyo in 40 min, 8,900 km, 13,000 km/h".into(),
            }],
            assessed: true,
        }),
        duration_seconds: 2 * 86_400 + 4 * 3600,
        ..Session::default()
    }
}

pub(crate) fn line_containing<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

pub(crate) fn value_of<'a>(block: &'a str, key: &str) -> &'a str {
    block
        .lines()
        .find_map(|line| {
            line.strip_prefix(key)
                .filter(|rest| rest.starts_with("  "))
                .map(str::trim)
        })
        .unwrap_or_else(|| panic!("no {key:?} in:\n{block}"))
}

pub(crate) fn termination(state: &[(DeliveryState, &str)]) -> Termination {
    use vigil_proto::v1::TerminationCommand;
    let commands: Vec<TerminationCommand> = state
        .iter()
        .enumerate()
        .map(|(n, (state, detail))| TerminationCommand {
            command_id: format!("cmd-{n}"),
            session_id: format!("01a209da-fe18-708a-896c-97c6c27a4d{n:02}"),
            gateway_id: "gw-eu-1".into(),
            user: format!("user{n}@example.com"),
            state: (*state).into(),
            detail: (*detail).into(),
            attempts: 1,
            acknowledged_at: if *state == DeliveryState::Acknowledged {
                at("2025-03-04T11:58:03+01:00")
            } else {
                None
            },
        })
        .collect();
    let count = |wanted: DeliveryState| commands.iter().filter(|c| c.state() == wanted).count() as u32;
    Termination {
        id: "0195a3c0-7e1f-7000-8000-00000000beef".into(),
        actor: "admin@example.com".into(),
        selector: Some(SessionSelector {
            target: Some(Target::User("alice@example.com".into())),
        }),
        reason: EndReason::Admin.into(),
        user_message: "You have been disconnected by an administrator".into(),
        note: String::new(),
        created_at: at("2025-03-04T11:58:00+01:00"),
        session_count: commands.len() as u32,
        pending: count(DeliveryState::Pending),
        delivered: count(DeliveryState::Delivered),
        acknowledged: count(DeliveryState::Acknowledged),
        failed: count(DeliveryState::Failed),
        already_ended: count(DeliveryState::AlreadyEnded),
        commands,
    }
}

pub(crate) fn by_user(user: &str) -> SessionSelector {
    SessionSelector {
        target: Some(Target::User(user.into())),
    }
}

pub(crate) fn policy(id: &str, scope: vigil_proto::v1::policy_scope::Scope, rules: Option<PolicyRules>) -> Policy {
    Policy {
        id: id.into(),
        scope: Some(vigil_proto::v1::PolicyScope { scope: Some(scope) }),
        rules,
        description: String::new(),
        updated_by: "admin@example.com".into(),
        updated_at: at("2025-03-04T10:00:00+01:00"),
    }
}

pub(crate) fn minutes(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: n * 60,
        nanos: 0,
    })
}

pub(crate) fn three_policies() -> Vec<Policy> {
    use vigil_proto::v1::ConcurrencyAction;
    use vigil_proto::v1::policy_scope::Scope;
    let mut global = policy(
        "0195a3c0-7e1f-7000-8000-0000000000a1",
        Scope::Global(vigil_proto::v1::GlobalScope {}),
        Some(PolicyRules {
            idle_warning_after: minutes(10),
            idle_timeout: minutes(30),
            max_session_duration: minutes(8 * 60),
            max_concurrent_sessions: Some(0),
            concurrency_action: ConcurrencyAction::Unspecified.into(),
            deny_risk_score: Some(90),
            flag_risk_score: Some(50),
        }),
    );
    global.description = "the defaults".into();
    let group = policy(
        "0195a3c0-7e1f-7000-8000-0000000000a2",
        Scope::Group("sre".into()),
        Some(PolicyRules {
            idle_timeout: minutes(45),
            max_concurrent_sessions: Some(3),
            concurrency_action: ConcurrencyAction::EndOldest.into(),
            ..PolicyRules::default()
        }),
    );
    let mut user = policy(
        "0195a3c0-7e1f-7000-8000-0000000000a3",
        Scope::User("alice@example.com".into()),
        None,
    );
    user.updated_by = String::new();
    user.updated_at = at("2025-03-02T12:00:00+01:00");
    vec![global, group, user]
}

pub(crate) fn soc_lock(expires_at: Option<Timestamp>) -> Lock {
    Lock {
        id: "0195a3c0-7e1f-7000-8000-00000000f00d".into(),
        target: Some(vigil_proto::v1::LockTarget {
            target: Some(vigil_proto::v1::lock_target::Target::User("alice@example.com".into())),
        }),
        message: "Your access is suspended by security — contact the SOC".into(),
        expires_at,
        created_by: "soc@example.com".into(),
        created_at: at("2025-03-04T11:30:00+01:00"),
        reason: "SOC-1234".into(),
    }
}

pub(crate) fn ts(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

pub(crate) fn ended_session() -> Session {
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

pub(crate) fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied())).expect("arguments parse")
}
