//! Small, pure formatters for single values: durations, times, locations, enum labels.
//!
//! Anything that depends on the current time takes `now`, whose time zone is also the one times are shown
//! in, so tests pin both.

use std::fmt::Display;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use prost_types::Timestamp;
use vigil_proto::v1::lock_target::Target as LockOn;
use vigil_proto::v1::policy_scope::Scope;
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::{
    ConcurrencyAction, DeliveryState, EndReason, Location, LocationKind, LockTarget, PolicyRules, PolicyScope,
    ResourceType, Session, SessionSelector, SessionStatus,
};

/// Shown where a value is absent.
pub const NONE: &str = "-";

/// The marker that says "this session has risk flags".
pub const FLAG: &str = "⚑";

/// A duration as people read it on the portal: `<1m`, `32m`, `3h`, `2h 05m`, `1d`, `2d 4h`.
///
/// Truncates rather than rounds (59m59s is `59m`), and shows at most two units: minutes under an hour,
/// hours and minutes under a day, days and hours beyond. A zero second unit is left out (`3h`, `1d`).
pub fn duration(seconds: u64) -> String {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;

    if seconds < MINUTE {
        return "<1m".to_owned();
    }
    if seconds < HOUR {
        return format!("{}m", seconds / MINUTE);
    }
    if seconds < DAY {
        let (hours, minutes) = (seconds / HOUR, seconds % HOUR / MINUTE);
        return if minutes == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h {minutes:02}m")
        };
    }
    let (days, hours) = (seconds / DAY, seconds % DAY / HOUR);
    if hours == 0 {
        format!("{days}d")
    } else {
        format!("{days}d {hours}h")
    }
}

/// How long ago `ts` was, as `32m ago`; `-` when unset. A time in the future (clock skew) reads `<1m ago`.
pub fn ago<Tz: TimeZone>(ts: Option<&Timestamp>, now: &DateTime<Tz>) -> String {
    match ts.and_then(to_datetime) {
        Some(at) => {
            let seconds = (now.timestamp() - at.timestamp()).max(0);
            format!("{} ago", duration(seconds.unsigned_abs()))
        }
        None => NONE.to_owned(),
    }
}

/// A protobuf timestamp as a UTC date-time; `None` when unset or out of range.
pub fn to_datetime(ts: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(ts.nanos).ok()?;
    DateTime::from_timestamp(ts.seconds, nanos)
}

/// A start time in `now`'s time zone: `HH:MM` when it is on the same day as `now`, else `Mon DD HH:MM`, or
/// `YYYY-MM-DD HH:MM` in another year.
pub fn clock_time<Tz: TimeZone<Offset: Display>>(ts: Option<&Timestamp>, now: &DateTime<Tz>) -> String {
    let Some(at) = ts.and_then(to_datetime) else {
        return NONE.to_owned();
    };
    let local = at.with_timezone(&now.timezone());
    if local.date_naive() == now.date_naive() {
        local.format("%H:%M").to_string()
    } else if local.year() == now.year() {
        local.format("%b %d %H:%M").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// A full date-time in `now`'s time zone, with the offset: `2025-03-04 09:15:00 +01:00`.
pub fn date_time<Tz: TimeZone<Offset: Display>>(ts: Option<&Timestamp>, now: &DateTime<Tz>) -> String {
    match ts.and_then(to_datetime) {
        Some(at) => at
            .with_timezone(&now.timezone())
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
        None => NONE.to_owned(),
    }
}

/// Like [`clock_time`] with seconds (`HH:MM:SS`, or `Mon DD HH:MM:SS` on another day), for events that
/// happen seconds apart, like a gateway's acknowledgement.
pub fn clock_time_seconds<Tz: TimeZone<Offset: Display>>(ts: Option<&Timestamp>, now: &DateTime<Tz>) -> String {
    let Some(at) = ts.and_then(to_datetime) else {
        return NONE.to_owned();
    };
    let local = at.with_timezone(&now.timezone());
    if local.date_naive() == now.date_naive() {
        local.format("%H:%M:%S").to_string()
    } else if local.year() == now.year() {
        local.format("%b %d %H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// `HH:MM:SS` in `now`'s time zone, for event lines.
pub fn time_of_day<Tz: TimeZone<Offset: Display>>(ts: Option<&Timestamp>, now: &DateTime<Tz>) -> String {
    match ts.and_then(to_datetime) {
        Some(at) => at.with_timezone(&now.timezone()).format("%H:%M:%S").to_string(),
        None => now.format("%H:%M:%S").to_string(),
    }
}

/// The last 8 characters of a session id, as tables and event lines show it.
///
/// The last, not the first: the registry's ids are UUIDv7, whose leading characters are a timestamp that
/// every session started within the same minute shares, while the tail is random.
pub fn short_id(id: &str) -> &str {
    const LEN: usize = 8;
    if id.is_empty() {
        return NONE;
    }
    let chars = id.chars().count();
    id.char_indices()
        .nth(chars.saturating_sub(LEN))
        .map_or(id, |(start, _)| &id[start..])
}

/// `prod-db-01 (SSH)`; just the name when the type is not set.
pub fn resource(session: &Session) -> String {
    let name = or_none(&session.resource_name);
    match resource_type(session.resource_type()) {
        Some(kind) => format!("{name} ({kind})"),
        None => name.to_owned(),
    }
}

/// `SSH`, `RDP`, `Web`; `None` for an unset type.
pub fn resource_type(kind: ResourceType) -> Option<&'static str> {
    match kind {
        ResourceType::Ssh => Some("SSH"),
        ResourceType::Rdp => Some("RDP"),
        ResourceType::Web => Some("Web"),
        ResourceType::Unspecified => None,
    }
}

/// `alice-mbp 81.2.69.142`: device name and client address, whichever are known.
pub fn device(session: &Session) -> String {
    let parts: Vec<&str> = [session.device.as_str(), session.client_ip.as_str()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        NONE.to_owned()
    } else {
        parts.join(" ")
    }
}

/// `Active`, `Idle`, `Disconnected`.
pub fn status(status: SessionStatus) -> &'static str {
    match status {
        SessionStatus::Active => "Active",
        SessionStatus::Idle => "Idle",
        SessionStatus::Disconnected => "Disconnected",
        SessionStatus::Unspecified => NONE,
    }
}

/// A location in a few words, for a table cell: `Berlin, DE`, `private network`, `unknown`, `unavailable`.
pub fn location(location: Option<&Location>) -> String {
    let Some(loc) = location else {
        return "not looked up".to_owned();
    };
    match loc.kind() {
        LocationKind::Located => {
            let place = if loc.city.is_empty() {
                // Without a city, the country's name says more than its code.
                first_non_empty(&[&loc.country_name, &loc.country_code]).map(str::to_owned)
            } else if loc.country_code.is_empty() {
                Some(loc.city.clone())
            } else {
                Some(format!("{}, {}", loc.city, loc.country_code))
            };
            place.unwrap_or_else(|| "unknown".to_owned())
        }
        LocationKind::Private => "private network".to_owned(),
        LocationKind::Unknown => "unknown".to_owned(),
        LocationKind::Unavailable => "unavailable".to_owned(),
        LocationKind::Unspecified => "not looked up".to_owned(),
    }
}

/// A session's location cell: the location, then `⚑ <score>` when the risk assessment raised flags.
pub fn location_with_risk(session: &Session) -> String {
    let place = location(session.location.as_ref());
    match &session.risk {
        Some(risk) if !risk.flags.is_empty() => format!("{place} {FLAG} {}", risk.score),
        _ => place,
    }
}

/// Every place name known, most specific first, without repeats: `Berlin, Germany (DE)`.
pub fn place_in_full(loc: &Location) -> Option<String> {
    let mut names: Vec<&str> = Vec::new();
    for name in [&loc.city, &loc.region, &loc.country_name] {
        if !name.is_empty() && !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    let mut place = names.join(", ");
    if !loc.country_code.is_empty() {
        place = if place.is_empty() {
            loc.country_code.clone()
        } else {
            format!("{place} ({})", loc.country_code)
        };
    }
    (!place.is_empty()).then_some(place)
}

/// Why a session ended, as a sentence fragment; `None` while it is live.
pub fn end_reason(reason: EndReason) -> Option<&'static str> {
    Some(match reason {
        EndReason::Unspecified => return None,
        EndReason::UserClosed => "closed by the user",
        EndReason::Admin => "ended by an administrator",
        EndReason::UserSelfService => "ended by the user (self-service)",
        EndReason::IdleTimeout => "idle timeout",
        EndReason::MaxDuration => "maximum duration reached",
        EndReason::ConcurrencyLimit => "concurrent-session limit",
        EndReason::Anomaly => "location or device anomaly",
        EndReason::Policy => "ended by policy",
        EndReason::Lost => "lost with the gateway",
        EndReason::GatewayLost => "gateway went silent",
        EndReason::GatewayClosed => "closed by the gateway",
        EndReason::Locked => "locked out",
    })
}

/// What a termination was asked to end, in a few words: `session c27a4dbc`, `3 sessions`,
/// `user alice@example.com`, `gateway gw-eu-1`, `resource prod-db-01`, `all`, `all (idle)`.
pub fn selector(selector: Option<&SessionSelector>) -> String {
    match selector.and_then(|s| s.target.as_ref()) {
        None => NONE.to_owned(),
        Some(Target::SessionIds(ids)) => match ids.ids.as_slice() {
            [one] => format!("session {}", short_id(one)),
            many => counted(many.len() as u64, "session"),
        },
        Some(Target::User(user)) => format!("user {user}"),
        Some(Target::GatewayId(gateway)) => format!("gateway {gateway}"),
        Some(Target::ResourceName(resource)) => format!("resource {resource}"),
        Some(Target::All(all)) if all.idle_only => "all (idle)".to_owned(),
        Some(Target::All(_)) => "all".to_owned(),
        Some(Target::Group(group)) => format!("group {group}"),
        Some(Target::Device(device)) => format!("device {device}"),
        Some(Target::Cidr(cidr)) => format!("network {cidr}"),
    }
}

/// Why sessions were ended, as one word for tables: the `--reason` values (`admin`, `self-service`,
/// `policy`, `anomaly`) and, for reasons only the system uses, their name.
pub fn reason(reason: EndReason) -> &'static str {
    match reason {
        EndReason::Unspecified => NONE,
        EndReason::UserClosed => "user-closed",
        EndReason::Admin => "admin",
        EndReason::UserSelfService => "self-service",
        EndReason::IdleTimeout => "idle-timeout",
        EndReason::MaxDuration => "max-duration",
        EndReason::ConcurrencyLimit => "concurrency-limit",
        EndReason::Anomaly => "anomaly",
        EndReason::Policy => "policy",
        EndReason::Lost => "lost",
        EndReason::GatewayLost => "gateway-lost",
        EndReason::GatewayClosed => "gateway-closed",
        EndReason::Locked => "locked",
    }
}

/// Where one termination command stands: `Pending`, `Delivered`, `Acknowledged`, `Failed`, `Already ended`.
pub fn delivery_state(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Unspecified => NONE,
        DeliveryState::Pending => "Pending",
        DeliveryState::Delivered => "Delivered",
        DeliveryState::Acknowledged => "Acknowledged",
        DeliveryState::Failed => "Failed",
        DeliveryState::AlreadyEnded => "Already ended",
    }
}

/// `1 session`, `3 sessions`: a count and a noun whose plural takes an `s`.
pub fn counted(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// A byte count in decimal (SI) units with one decimal: `512 B`, `1.2 KB`, `34.5 MB`.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if count < 1000 {
        return format!("{count} B");
    }
    // Display only: the precision lost converting to f64 is far below the one decimal shown.
    let mut value = count as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// What a policy shows for a rule it leaves unset: a less specific policy's applies.
pub const INHERIT: &str = "inherit";

/// What a policy applies to: `global`, `group sre`, `user alice@example.com`, `resource prod-db-01`.
pub fn scope(scope: Option<&PolicyScope>) -> String {
    match scope.and_then(|s| s.scope.as_ref()) {
        None => NONE.to_owned(),
        Some(Scope::Global(_)) => "global".to_owned(),
        Some(Scope::Group(group)) => format!("group {group}"),
        Some(Scope::User(user)) => format!("user {user}"),
        Some(Scope::ResourceName(resource)) => format!("resource {resource}"),
    }
}

/// A rule's duration exactly, in the form the flags take (`10m`, `1h 30m`, `1day`), so what a table shows
/// can be typed back; `unset` when the rule is not set.
pub fn rule_duration(duration: Option<&prost_types::Duration>, unset: &str) -> String {
    let Some(duration) = duration else {
        return unset.to_owned();
    };
    match std::time::Duration::try_from(*duration) {
        Ok(duration) => humantime::format_duration(duration).to_string(),
        // Negative: never valid in a policy, but shown as sent rather than hidden.
        Err(_) => format!("{}s", duration.seconds),
    }
}

/// A concurrency limit: `3`, `unlimited` (0), or `unset`.
pub fn max_sessions(limit: Option<u32>, unset: &str) -> String {
    match limit {
        None => unset.to_owned(),
        Some(0) => "unlimited".to_owned(),
        Some(n) => n.to_string(),
    }
}

/// `deny new`, `end oldest`; `None` when not set.
pub fn concurrency_action(action: ConcurrencyAction) -> Option<&'static str> {
    match action {
        ConcurrencyAction::Unspecified => None,
        ConcurrencyAction::DenyNew => Some("deny new"),
        ConcurrencyAction::EndOldest => Some("end oldest"),
    }
}

/// The limit and what happens over it, for one table cell: `3 (deny new)`, `3 (action: inherit)`,
/// `inherit (end oldest)`, `unlimited`, or `unset` when neither is set.
pub fn max_sessions_with_action(rules: &PolicyRules, unset: &str) -> String {
    let limit = max_sessions(rules.max_concurrent_sessions, unset);
    match (
        concurrency_action(rules.concurrency_action()),
        rules.max_concurrent_sessions,
    ) {
        (Some(action), _) => format!("{limit} ({action})"),
        // Which action applies matters only under a real limit.
        (None, Some(n)) if n > 0 => format!("{limit} (action: {unset})"),
        (None, _) => limit,
    }
}

/// A risk threshold (`80`), or `unset`.
pub fn threshold(score: Option<u32>, unset: &str) -> String {
    score.map_or_else(|| unset.to_owned(), |score| score.to_string())
}

/// What a lock shuts out: `user alice@example.com`, `group contractors`, `resource prod-db-01`,
/// `gateway gw-eu-1`, `device kiosk-7`, `network 203.0.113.0/24`.
pub fn lock_target(target: Option<&LockTarget>) -> String {
    match target.and_then(|t| t.target.as_ref()) {
        None => NONE.to_owned(),
        Some(LockOn::User(user)) => format!("user {user}"),
        Some(LockOn::Group(group)) => format!("group {group}"),
        Some(LockOn::ResourceName(resource)) => format!("resource {resource}"),
        Some(LockOn::GatewayId(gateway)) => format!("gateway {gateway}"),
        Some(LockOn::Device(device)) => format!("device {device}"),
        Some(LockOn::Cidr(cidr)) => format!("network {cidr}"),
    }
}

/// When a lock stops, for a table cell: `never`, `in 59m`, `expired 3m ago`.
pub fn lock_expiry<Tz: TimeZone>(expires_at: Option<&Timestamp>, now: &DateTime<Tz>) -> String {
    let Some(at) = expires_at.and_then(to_datetime) else {
        return "never".to_owned();
    };
    let left = at.timestamp() - now.timestamp();
    if left > 0 {
        format!("in {}", duration(left.unsigned_abs()))
    } else {
        format!("expired {} ago", duration(left.unsigned_abs()))
    }
}

/// How long a lock holds, in a sentence: `until removed`, or `until 14:05 (for 1h)`.
pub fn lock_until<Tz: TimeZone<Offset: Display>>(expires_at: Option<&Timestamp>, now: &DateTime<Tz>) -> String {
    let Some(at) = expires_at.and_then(to_datetime) else {
        return "until removed".to_owned();
    };
    let left = (at.timestamp() - now.timestamp()).max(0);
    format!(
        "until {} (for {})",
        clock_time(expires_at, now),
        duration(left.unsigned_abs())
    )
}

/// The text, or `-` when it is empty.
pub fn or_none(text: &str) -> &str {
    if text.is_empty() { NONE } else { text }
}

fn first_non_empty<'a>(candidates: &[&'a String]) -> Option<&'a str> {
    candidates.iter().find(|s| !s.is_empty()).map(|s| s.as_str())
}

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;
    use vigil_proto::v1::{Risk, RiskFlag};

    use super::*;

    fn at(rfc3339: &str) -> Timestamp {
        let t = DateTime::parse_from_rfc3339(rfc3339).expect("valid test time");
        Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        }
    }

    /// 2025-03-04 12:00 in Berlin (UTC+1).
    fn now() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2025-03-04T12:00:00+01:00").expect("valid test time")
    }

    #[test]
    fn durations_under_a_minute_read_less_than_one_minute() {
        assert_eq!(duration(0), "<1m");
        assert_eq!(duration(59), "<1m");
    }

    #[test]
    fn durations_under_an_hour_are_whole_minutes() {
        assert_eq!(duration(60), "1m");
        assert_eq!(duration(32 * 60 + 59), "32m");
        assert_eq!(duration(3599), "59m");
    }

    #[test]
    fn durations_under_a_day_are_hours_and_padded_minutes() {
        assert_eq!(duration(3600), "1h");
        assert_eq!(duration(3 * 3600), "3h");
        assert_eq!(duration(3600 + 5 * 60), "1h 05m");
        assert_eq!(duration(2 * 3600 + 30 * 60 + 59), "2h 30m");
        assert_eq!(duration(86_399), "23h 59m");
    }

    #[test]
    fn durations_of_a_day_or_more_are_days_and_hours() {
        assert_eq!(duration(86_400), "1d");
        assert_eq!(duration(86_400 + 59 * 60), "1d");
        assert_eq!(duration(2 * 86_400 + 4 * 3600 + 30 * 60), "2d 4h");
        assert_eq!(duration(400 * 86_400), "400d");
    }

    #[test]
    fn start_times_today_show_the_clock_and_earlier_ones_the_date() {
        assert_eq!(clock_time(Some(&at("2025-03-04T09:15:00+01:00")), &now()), "09:15");
        // 23:30 UTC on the 3rd is 00:30 on the 4th in Berlin: today.
        assert_eq!(clock_time(Some(&at("2025-03-03T23:30:00Z")), &now()), "00:30");
        assert_eq!(clock_time(Some(&at("2025-03-03T22:30:00Z")), &now()), "Mar 03 23:30");
        assert_eq!(clock_time(None, &now()), "-");
    }

    #[test]
    fn full_times_carry_the_offset() {
        assert_eq!(
            date_time(Some(&at("2025-03-04T08:15:00Z")), &now()),
            "2025-03-04 09:15:00 +01:00"
        );
        assert_eq!(time_of_day(Some(&at("2025-03-04T08:15:07Z")), &now()), "09:15:07");
        assert_eq!(ago(Some(&at("2025-03-04T10:30:00+01:00")), &now()), "1h 30m ago");
        assert_eq!(ago(Some(&at("2025-03-04T12:05:00+01:00")), &now()), "<1m ago");
        assert_eq!(ago(None, &now()), "-");
    }

    #[test]
    fn out_of_range_timestamps_are_treated_as_unset() {
        let broken = Timestamp { seconds: 0, nanos: -5 };
        assert_eq!(to_datetime(&broken), None);
        assert_eq!(clock_time(Some(&broken), &now()), "-");
    }

    fn located(city: &str, country_code: &str, country_name: &str) -> Location {
        Location {
            city: city.to_owned(),
            country_code: country_code.to_owned(),
            country_name: country_name.to_owned(),
            kind: LocationKind::Located.into(),
            ..Location::default()
        }
    }

    fn of_kind(kind: LocationKind) -> Location {
        Location {
            kind: kind.into(),
            ..Location::default()
        }
    }

    #[test]
    fn each_location_kind_has_its_words() {
        assert_eq!(location(Some(&located("Berlin", "DE", "Germany"))), "Berlin, DE");
        assert_eq!(location(Some(&located("", "DE", "Germany"))), "Germany");
        assert_eq!(location(Some(&located("", "DE", ""))), "DE");
        assert_eq!(location(Some(&located("Berlin", "", ""))), "Berlin");
        assert_eq!(location(Some(&located("", "", ""))), "unknown");
        assert_eq!(location(Some(&of_kind(LocationKind::Private))), "private network");
        assert_eq!(location(Some(&of_kind(LocationKind::Unknown))), "unknown");
        assert_eq!(location(Some(&of_kind(LocationKind::Unavailable))), "unavailable");
        assert_eq!(location(Some(&of_kind(LocationKind::Unspecified))), "not looked up");
        assert_eq!(location(None), "not looked up");
    }

    #[test]
    fn flagged_sessions_carry_the_marker_and_score() {
        let mut session = Session {
            location: Some(located("Tokyo", "JP", "Japan")),
            ..Session::default()
        };
        assert_eq!(location_with_risk(&session), "Tokyo, JP");

        session.risk = Some(Risk {
            score: 0,
            flags: vec![],
            assessed: true,
        });
        assert_eq!(location_with_risk(&session), "Tokyo, JP");

        session.risk = Some(Risk {
            score: 85,
            flags: vec![RiskFlag {
                code: "impossible_travel".into(),
                points: 60,
                explanation: String::new(),
            }],
            assessed: true,
        });
        assert_eq!(location_with_risk(&session), "Tokyo, JP ⚑ 85");
    }

    #[test]
    fn full_place_names_skip_repeats() {
        let mut berlin = located("Berlin", "DE", "Germany");
        berlin.region = "Berlin".into();
        assert_eq!(place_in_full(&berlin).as_deref(), Some("Berlin, Germany (DE)"));
        assert_eq!(place_in_full(&located("", "DE", "")).as_deref(), Some("DE"));
        assert_eq!(place_in_full(&of_kind(LocationKind::Private)), None);
    }

    #[test]
    fn resource_device_and_ids() {
        let session = Session {
            id: "3f2a9c1b-0000-4000-8000-000000000001".into(),
            resource_name: "prod-db-01".into(),
            resource_type: ResourceType::Ssh.into(),
            device: "alice-mbp".into(),
            client_ip: "81.2.69.142".into(),
            ..Session::default()
        };
        assert_eq!(resource(&session), "prod-db-01 (SSH)");
        assert_eq!(device(&session), "alice-mbp 81.2.69.142");
        assert_eq!(short_id(&session.id), "00000001");
        // UUIDv7 ids of sessions started together share their head; their tails tell them apart.
        assert_eq!(short_id("01a209da-fe18-708a-896c-97c6c27a4dbc"), "c27a4dbc");
        assert_eq!(short_id("01a209da-fe17-7686-ade2-a08971035a38"), "71035a38");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(short_id(""), "-");

        let bare = Session {
            client_ip: "10.0.0.7".into(),
            resource_name: "wiki".into(),
            ..Session::default()
        };
        assert_eq!(resource(&bare), "wiki");
        assert_eq!(device(&bare), "10.0.0.7");
        assert_eq!(device(&Session::default()), "-");
    }

    #[test]
    fn selectors_read_as_what_was_asked() {
        use vigil_proto::v1::{AllSessions, SessionIds};
        let of = |target| selector(Some(&SessionSelector { target: Some(target) }));
        let ids = |ids: &[&str]| {
            Target::SessionIds(SessionIds {
                ids: ids.iter().map(|id| id.to_string()).collect(),
            })
        };
        assert_eq!(of(ids(&["01a209da-fe18-708a-896c-97c6c27a4dbc"])), "session c27a4dbc");
        assert_eq!(of(ids(&["a", "b", "c"])), "3 sessions");
        assert_eq!(of(Target::User("alice@example.com".into())), "user alice@example.com");
        assert_eq!(of(Target::GatewayId("gw-eu-1".into())), "gateway gw-eu-1");
        assert_eq!(of(Target::ResourceName("prod-db-01".into())), "resource prod-db-01");
        assert_eq!(of(Target::All(AllSessions { idle_only: false })), "all");
        assert_eq!(of(Target::All(AllSessions { idle_only: true })), "all (idle)");
        assert_eq!(selector(None), "-");
        assert_eq!(selector(Some(&SessionSelector::default())), "-");
    }

    #[test]
    fn reasons_states_and_counts() {
        assert_eq!(reason(EndReason::Admin), "admin");
        assert_eq!(reason(EndReason::UserSelfService), "self-service");
        assert_eq!(reason(EndReason::Policy), "policy");
        assert_eq!(reason(EndReason::Anomaly), "anomaly");
        assert_eq!(delivery_state(DeliveryState::AlreadyEnded), "Already ended");
        assert_eq!(counted(1, "session"), "1 session");
        assert_eq!(counted(0, "session"), "0 sessions");
        assert_eq!(counted(12, "termination"), "12 terminations");
        assert_eq!(
            clock_time_seconds(Some(&at("2025-03-04T08:15:07Z")), &now()),
            "09:15:07"
        );
        assert_eq!(
            clock_time_seconds(Some(&at("2025-03-02T08:15:07Z")), &now()),
            "Mar 02 09:15:07"
        );
    }

    #[test]
    fn scopes_read_as_what_they_cover() {
        use vigil_proto::v1::GlobalScope;
        let of = |s| scope(Some(&PolicyScope { scope: Some(s) }));
        assert_eq!(of(Scope::Global(GlobalScope {})), "global");
        assert_eq!(of(Scope::Group("sre".into())), "group sre");
        assert_eq!(of(Scope::User("alice@example.com".into())), "user alice@example.com");
        assert_eq!(of(Scope::ResourceName("prod-db-01".into())), "resource prod-db-01");
        assert_eq!(scope(Some(&PolicyScope::default())), "-");
        assert_eq!(scope(None), "-");
    }

    #[test]
    fn rule_durations_are_exact_and_read_back_as_flags() {
        let d = |seconds, nanos| prost_types::Duration { seconds, nanos };
        assert_eq!(rule_duration(Some(&d(600, 0)), INHERIT), "10m");
        assert_eq!(rule_duration(Some(&d(5400, 0)), INHERIT), "1h 30m");
        assert_eq!(rule_duration(Some(&d(8 * 3600, 0)), INHERIT), "8h");
        assert_eq!(rule_duration(Some(&d(90, 0)), INHERIT), "1m 30s");
        assert_eq!(rule_duration(Some(&d(1, 500_000_000)), INHERIT), "1s 500ms");
        assert_eq!(rule_duration(Some(&d(-5, 0)), INHERIT), "-5s");
        assert_eq!(rule_duration(None, INHERIT), "inherit");
        assert_eq!(rule_duration(None, "not set"), "not set");
        for shown in ["10m", "1h 30m", "1m 30s"] {
            assert!(humantime::parse_duration(shown).is_ok(), "{shown}");
        }
    }

    #[test]
    fn limits_actions_and_thresholds() {
        let rules = |limit, action: ConcurrencyAction| PolicyRules {
            max_concurrent_sessions: limit,
            concurrency_action: action.into(),
            ..PolicyRules::default()
        };
        let cell = |limit, action| max_sessions_with_action(&rules(limit, action), INHERIT);
        assert_eq!(cell(Some(3), ConcurrencyAction::DenyNew), "3 (deny new)");
        assert_eq!(cell(Some(2), ConcurrencyAction::EndOldest), "2 (end oldest)");
        assert_eq!(cell(Some(3), ConcurrencyAction::Unspecified), "3 (action: inherit)");
        assert_eq!(cell(None, ConcurrencyAction::EndOldest), "inherit (end oldest)");
        assert_eq!(cell(Some(0), ConcurrencyAction::Unspecified), "unlimited");
        assert_eq!(cell(None, ConcurrencyAction::Unspecified), "inherit");
        assert_eq!(max_sessions(Some(0), INHERIT), "unlimited");
        assert_eq!(threshold(Some(80), INHERIT), "80");
        assert_eq!(threshold(None, "not set"), "not set");
    }

    #[test]
    fn byte_counts_use_decimal_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_000), "1.0 KB");
        assert_eq!(bytes(1_240_000), "1.2 MB");
        assert_eq!(bytes(999_960), "1.0 MB");
        assert_eq!(bytes(34_500_000_000), "34.5 GB");
    }
}
