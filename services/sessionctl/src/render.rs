//! Human output: tables, key/value blocks and event lines, as pure functions of proto values and `now`.
//!
//! Tables are laid out by `comfy-table` (which measures display width, so `⚑` and CJK city names line up)
//! without borders, like `kubectl`'s.

use std::fmt::Display;

use chrono::{DateTime, TimeZone};
use comfy_table::{ContentArrangement, Table, presets};
use vigil_proto::v1::{
    Gateway, ListSessionsResponse, Location, LocationKind, ResourceType, Risk, Session, SessionEvent, SessionEventKind,
    SessionStats, SessionStatus,
};

use crate::format::{self, FLAG, NONE};

/// Spaces between table columns.
const COLUMN_GAP: u16 = 3;

/// The sessions table, then `N of TOTAL sessions` and, when there is more, how to get it.
///
/// `wide` shows full session ids (which `sessions get` takes) and adds the gateway column.
pub fn sessions_table<Tz: TimeZone<Offset: Display>>(
    page: &ListSessionsResponse,
    now: &DateTime<Tz>,
    wide: bool,
) -> String {
    let mut out = String::new();
    if page.sessions.is_empty() {
        out.push_str("No sessions match.\n\n");
    } else {
        let mut header = vec![
            "SESSION", "USER", "RESOURCE", "DEVICE", "DURATION", "LOCATION", "STATUS",
        ];
        if wide {
            header.insert(3, "GATEWAY");
        }
        let mut table = table(&header);
        for session in &page.sessions {
            let id = if wide {
                format::or_none(&session.id)
            } else {
                format::short_id(&session.id)
            };
            let mut row = vec![
                id.to_owned(),
                format::or_none(&session.user).to_owned(),
                format::resource(session),
                format::device(session),
                duration_cell(session, now),
                format::location_with_risk(session),
                format::status(session.status()).to_owned(),
            ];
            if wide {
                row.insert(3, format::or_none(&session.gateway_id).to_owned());
            }
            table.add_row(row);
        }
        out.push_str(&table.trim_fmt());
        out.push_str("\n\n");
    }

    let noun = if page.total_size == 1 { "session" } else { "sessions" };
    out.push_str(&format!("{} of {} {noun}\n", page.sessions.len(), page.total_size));
    if !page.next_page_token.is_empty() {
        out.push_str(&format!(
            "More: repeat with --page-token {} for the next page, or add --all for every page.\n",
            page.next_page_token
        ));
    }
    out
}

/// `2h 30m since 09:15` for a live session, `2h 30m from 09:15` for one that ended.
fn duration_cell<Tz: TimeZone<Offset: Display>>(session: &Session, now: &DateTime<Tz>) -> String {
    let length = format::duration(session.duration_seconds);
    if session.started_at.is_none() {
        return length;
    }
    let start = format::clock_time(session.started_at.as_ref(), now);
    let word = if session.status() == SessionStatus::Disconnected {
        "from"
    } else {
        "since"
    };
    format!("{length} {word} {start}")
}

/// Every field of one session as `Key   value` lines, location details and risk flags included.
pub fn session_detail<Tz: TimeZone<Offset: Display>>(session: &Session, now: &DateTime<Tz>) -> String {
    let groups = if session.user_groups.is_empty() {
        NONE.to_owned()
    } else {
        session.user_groups.join(", ")
    };
    let mut rows: Vec<(&str, String)> = vec![
        ("Session", format::or_none(&session.id).to_owned()),
        ("User", format::or_none(&session.user).to_owned()),
        ("Groups", groups),
        ("Status", format::status(session.status()).to_owned()),
        ("Resource", format::resource(session)),
        ("Gateway", format::or_none(&session.gateway_id).to_owned()),
        ("Device", format::or_none(&session.device).to_owned()),
        ("Client IP", format::or_none(&session.client_ip).to_owned()),
    ];
    rows.extend(location_rows(session.location.as_ref()));
    rows.extend([
        ("Started", with_ago(session.started_at.as_ref(), now)),
        ("Last activity", with_ago(session.last_activity_at.as_ref(), now)),
        ("Ended", with_ago(session.ended_at.as_ref(), now)),
        ("Duration", format::duration(session.duration_seconds)),
        ("End reason", end_reason(session)),
        (
            "Traffic",
            format!(
                "{} in, {} out",
                format::bytes(session.bytes_in),
                format::bytes(session.bytes_out)
            ),
        ),
        ("Risk", risk_summary(session.risk.as_ref())),
    ]);
    if let Some(risk) = session.risk.as_ref().filter(|r| !r.flags.is_empty()) {
        let flags: Vec<String> = risk
            .flags
            .iter()
            .map(|flag| {
                let explanation = if flag.explanation.is_empty() {
                    String::new()
                } else {
                    format!(": {}", flag.explanation)
                };
                format!("{FLAG} {} (+{}){explanation}", flag.code, flag.points)
            })
            .collect();
        rows.push(("Risk flags", flags.join("\n")));
    }
    key_values(&rows)
}

fn location_rows(location: Option<&Location>) -> Vec<(&'static str, String)> {
    let Some(loc) = location else {
        return vec![("Location", format::location(None))];
    };
    if loc.kind() != LocationKind::Located {
        return vec![("Location", format::location(Some(loc)))];
    }
    let mut rows = vec![(
        "Location",
        format::place_in_full(loc).unwrap_or_else(|| "unknown".to_owned()),
    )];
    if loc.has_coordinates {
        let radius = if loc.accuracy_radius_km == 0 {
            String::new()
        } else {
            format!(" (within {} km)", loc.accuracy_radius_km)
        };
        rows.push((
            "Coordinates",
            format!("{:.4}, {:.4}{radius}", loc.latitude, loc.longitude),
        ));
    }
    if !loc.time_zone.is_empty() {
        rows.push(("Time zone", loc.time_zone.clone()));
    }
    if loc.asn != 0 || !loc.asn_organization.is_empty() {
        let network = match (loc.asn, loc.asn_organization.as_str()) {
            (0, org) => org.to_owned(),
            (asn, "") => format!("AS{asn}"),
            (asn, org) => format!("AS{asn} {org}"),
        };
        rows.push(("Network", network));
    }
    rows
}

fn with_ago<Tz: TimeZone<Offset: Display>>(ts: Option<&prost_types::Timestamp>, now: &DateTime<Tz>) -> String {
    match ts.and_then(format::to_datetime) {
        Some(_) => format!("{} ({})", format::date_time(ts, now), format::ago(ts, now)),
        None => NONE.to_owned(),
    }
}

fn end_reason(session: &Session) -> String {
    match (format::end_reason(session.end_reason()), session.end_detail.as_str()) {
        (None, "") => NONE.to_owned(),
        (None, detail) => detail.to_owned(),
        (Some(reason), "") => reason.to_owned(),
        (Some(reason), detail) => format!("{reason}: {detail}"),
    }
}

fn risk_summary(risk: Option<&Risk>) -> String {
    match risk {
        None => "not assessed".to_owned(),
        Some(risk) if !risk.assessed => "not assessed (the geo service could not be asked)".to_owned(),
        Some(risk) => match risk.flags.len() {
            0 => format!("{} (nothing unusual)", risk.score),
            1 => format!("{} {FLAG} 1 flag", risk.score),
            n => format!("{} {FLAG} {n} flags", risk.score),
        },
    }
}

/// The dashboard header's figures as a key/value block.
pub fn stats_block<Tz: TimeZone<Offset: Display>>(stats: &SessionStats, now: &DateTime<Tz>) -> String {
    // Every type is listed, zeros included, so the line reads the same from one run to the next.
    let by_type = [ResourceType::Ssh, ResourceType::Rdp, ResourceType::Web]
        .into_iter()
        .map(|kind| {
            let live: u64 = stats
                .by_type
                .iter()
                .filter(|count| count.resource_type() == kind)
                .map(|count| count.live)
                .sum();
            format!("{} {live}", format::resource_type(kind).unwrap_or(NONE))
        })
        .collect::<Vec<_>>()
        .join(", ");
    key_values(&[
        ("Active", stats.active.to_string()),
        ("Idle", stats.idle.to_string()),
        ("Total duration", format::duration(stats.total_live_duration_seconds)),
        ("By type", by_type),
        ("Flagged", stats.flagged.to_string()),
        ("Gateways connected", stats.gateways_connected.to_string()),
        ("Ended (last 24h)", stats.ended_last_24h.to_string()),
        ("As of", format::date_time(stats.computed_at.as_ref(), now)),
    ])
}

/// The gateways table, then how many there are and how many are connected.
pub fn gateways_table<Tz: TimeZone>(gateways: &[Gateway], now: &DateTime<Tz>) -> String {
    let connected = gateways.iter().filter(|g| g.connected).count();
    let noun = if gateways.len() == 1 { "gateway" } else { "gateways" };
    let footer = format!("{} {noun}, {connected} connected\n", gateways.len());
    if gateways.is_empty() {
        return format!("No gateways known to the registry.\n\n{footer}");
    }

    let mut table = table(&["GATEWAY", "CONNECTED", "SESSIONS", "LAST SEEN", "AGENT", "REPLICA"]);
    for gateway in gateways {
        let last_seen = if gateway.last_seen_at.is_some() {
            format::ago(gateway.last_seen_at.as_ref(), now)
        } else {
            "never".to_owned()
        };
        table.add_row(vec![
            format::or_none(&gateway.id).to_owned(),
            if gateway.connected { "yes" } else { "no" }.to_owned(),
            gateway.live_sessions.to_string(),
            last_seen,
            format::or_none(&gateway.agent_version).to_owned(),
            format::or_none(&gateway.replica).to_owned(),
        ]);
    }
    format!("{}\n\n{footer}", table.trim_fmt())
}

/// One watch event as one line: time, kind, session, user, resource, status, location, and why.
pub fn event_line<Tz: TimeZone<Offset: Display>>(event: &SessionEvent, now: &DateTime<Tz>) -> String {
    let time = format::time_of_day(event.at.as_ref(), now);
    let kind = event.kind();
    if kind == SessionEventKind::SnapshotDone {
        return format!("{time}  {:-<8}  snapshot complete; watching for changes", "");
    }
    let label = match kind {
        SessionEventKind::Snapshot => "SNAPSHOT",
        SessionEventKind::Opened => "OPENED",
        SessionEventKind::Updated => "UPDATED",
        SessionEventKind::Ended => "ENDED",
        SessionEventKind::Denied => "DENIED",
        SessionEventKind::SnapshotDone | SessionEventKind::Unspecified => "UNKNOWN",
    };
    let mut line = format!("{time}  {label:<8}");
    if let Some(session) = &event.session {
        line.push_str(&format!(
            "  {}  {}  {}  {}  {}",
            format::short_id(&session.id),
            format::or_none(&session.user),
            format::resource(session),
            format::status(session.status()),
            format::location_with_risk(session),
        ));
        if kind == SessionEventKind::Ended {
            let reason = end_reason(session);
            if reason != NONE {
                line.push_str(&format!("  ({reason})"));
            }
            return line;
        }
    }
    if !event.detail.is_empty() {
        line.push_str(&format!("  ({})", event.detail));
    }
    line
}

/// A borderless table with the given header.
fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for column in table.column_iter_mut() {
        column.set_padding((0, COLUMN_GAP));
    }
    table
}

/// `Key   value` lines with the values aligned; a multi-line value continues under its first line.
fn key_values(rows: &[(&str, String)]) -> String {
    // Keys are ASCII labels from this file, so their byte length is their display width.
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    let indent = " ".repeat(width + 2);
    let mut out = String::new();
    for (key, value) in rows {
        let mut lines = value.lines();
        out.push_str(&format!("{key:<width$}  {}\n", lines.next().unwrap_or_default()));
        for line in lines {
            out.push_str(&format!("{indent}{line}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;
    use prost_types::Timestamp;
    use vigil_proto::v1::{EndReason, RiskFlag, TypeCount};

    use super::*;

    fn at(rfc3339: &str) -> Option<Timestamp> {
        let t = DateTime::parse_from_rfc3339(rfc3339).expect("valid test time");
        Some(Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        })
    }

    /// 2025-03-04 12:00 in Berlin (UTC+1).
    fn now() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2025-03-04T12:00:00+01:00").expect("valid test time")
    }

    fn berlin() -> Location {
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

    fn alice() -> Session {
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

    fn bob() -> Session {
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

    fn line_containing<'a>(text: &'a str, needle: &str) -> &'a str {
        text.lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
    }

    #[test]
    fn sessions_table_shows_a_row_per_session_with_the_portal_columns() {
        let page = ListSessionsResponse {
            sessions: vec![alice(), bob()],
            next_page_token: String::new(),
            total_size: 2,
        };
        let text = sessions_table(&page, &now(), false);

        let header = text.lines().next().expect("a header line");
        let columns: Vec<&str> = header.split_whitespace().collect();
        assert_eq!(
            columns,
            [
                "SESSION", "USER", "RESOURCE", "DEVICE", "DURATION", "LOCATION", "STATUS"
            ]
        );

        let row = line_containing(&text, "alice@example.com");
        for cell in [
            "c27a4dbc",
            "prod-db-01 (SSH)",
            "alice-mbp 81.2.69.142",
            "2h 30m since 09:30",
            "Berlin, DE",
            "Active",
        ] {
            assert!(row.contains(cell), "{cell:?} missing from {row:?}");
        }
        assert!(!row.contains("01a209da"), "the table shows short ids: {row:?}");
        assert!(!row.contains(FLAG), "alice has no flags: {row:?}");

        let row = line_containing(&text, "bob@example.com");
        for cell in [
            "71035a38",
            "Finance Portal (Web)",
            "2d 4h since Mar 02 08:00",
            "東京, JP ⚑ 85",
            "Idle",
        ] {
            assert!(row.contains(cell), "{cell:?} missing from {row:?}");
        }
        assert!(text.ends_with("2 of 2 sessions\n"), "{text}");
        assert!(!text.contains("--page-token"));
    }

    #[test]
    fn sessions_table_columns_line_up_despite_wide_characters() {
        let page = ListSessionsResponse {
            sessions: vec![alice(), bob()],
            next_page_token: String::new(),
            total_size: 2,
        };
        let text = sessions_table(&page, &now(), false);
        // The STATUS header and each status start in the same terminal column. `東京` takes two columns
        // per character on a terminal, so compare display widths, counting it as such.
        let width = |s: &str| {
            s.chars()
                .map(|c| if matches!(c, '東' | '京') { 2 } else { 1 })
                .sum::<usize>()
        };
        let header = text.lines().next().expect("header");
        let header_col = width(&header[..header.find("STATUS").expect("STATUS header")]);
        for (needle, status) in [("alice@", "Active"), ("bob@", "Idle")] {
            let row = line_containing(&text, needle);
            let col = width(&row[..row.rfind(status).expect("status cell")]);
            assert_eq!(col, header_col, "{status} misaligned in:\n{text}");
        }
    }

    #[test]
    fn sessions_table_wide_shows_full_ids_and_gateways() {
        let page = ListSessionsResponse {
            sessions: vec![alice()],
            next_page_token: String::new(),
            total_size: 1,
        };
        let text = sessions_table(&page, &now(), true);
        assert!(text.lines().next().is_some_and(|h| h.contains("GATEWAY")));
        let row = line_containing(&text, "alice@example.com");
        assert!(row.contains("01a209da-fe18-708a-896c-97c6c27a4dbc"));
        assert!(row.contains("gw-eu-1"));
        assert!(text.ends_with("1 of 1 session\n"), "{text}");
    }

    #[test]
    fn sessions_table_footer_says_how_to_get_the_next_page() {
        let page = ListSessionsResponse {
            sessions: vec![alice()],
            next_page_token: "tok123".into(),
            total_size: 120,
        };
        let text = sessions_table(&page, &now(), false);
        assert!(text.contains("1 of 120 sessions"));
        assert!(text.contains("--page-token tok123"));
        assert!(text.contains("--all"));
    }

    #[test]
    fn an_empty_list_says_so() {
        let text = sessions_table(&ListSessionsResponse::default(), &now(), false);
        assert_eq!(text, "No sessions match.\n\n0 of 0 sessions\n");
    }

    #[test]
    fn ended_sessions_read_from_their_start() {
        let mut session = alice();
        session.status = SessionStatus::Disconnected.into();
        assert_eq!(duration_cell(&session, &now()), "2h 30m from 09:30");
        session.started_at = None;
        assert_eq!(duration_cell(&session, &now()), "2h 30m");
    }

    fn value_of<'a>(block: &'a str, key: &str) -> &'a str {
        block
            .lines()
            .find_map(|line| {
                line.strip_prefix(key)
                    .filter(|rest| rest.starts_with("  "))
                    .map(str::trim)
            })
            .unwrap_or_else(|| panic!("no {key:?} in:\n{block}"))
    }

    #[test]
    fn session_detail_shows_every_field() {
        let block = session_detail(&alice(), &now());
        assert_eq!(value_of(&block, "Session"), "01a209da-fe18-708a-896c-97c6c27a4dbc");
        assert_eq!(value_of(&block, "Groups"), "admins, eng");
        assert_eq!(value_of(&block, "Status"), "Active");
        assert_eq!(value_of(&block, "Resource"), "prod-db-01 (SSH)");
        assert_eq!(value_of(&block, "Gateway"), "gw-eu-1");
        assert_eq!(value_of(&block, "Client IP"), "81.2.69.142");
        assert_eq!(value_of(&block, "Location"), "Berlin, Germany (DE)");
        assert_eq!(value_of(&block, "Coordinates"), "52.5200, 13.4050 (within 20 km)");
        assert_eq!(value_of(&block, "Time zone"), "Europe/Berlin");
        assert_eq!(value_of(&block, "Network"), "AS3320 Deutsche Telekom AG");
        assert_eq!(value_of(&block, "Started"), "2025-03-04 09:30:00 +01:00 (2h 30m ago)");
        assert_eq!(value_of(&block, "Last activity"), "2025-03-04 11:59:00 +01:00 (1m ago)");
        assert_eq!(value_of(&block, "Ended"), "-");
        assert_eq!(value_of(&block, "End reason"), "-");
        assert_eq!(value_of(&block, "Traffic"), "1.2 MB in, 34.5 MB out");
        assert_eq!(value_of(&block, "Risk"), "0 (nothing unusual)");
        assert!(!block.contains("Risk flags"));
    }

    #[test]
    fn session_detail_explains_each_flag_and_the_end() {
        let mut session = bob();
        session.risk.as_mut().expect("bob has a risk").flags.push(RiskFlag {
            code: "new_device".into(),
            points: 25,
            explanation: "First session from bob-laptop".into(),
        });
        session.status = SessionStatus::Disconnected.into();
        session.ended_at = at("2025-03-04T11:00:00+01:00");
        session.end_reason = EndReason::Admin.into();
        session.end_detail = "terminated by admin@example.com: suspected compromise".into();

        let block = session_detail(&session, &now());
        assert_eq!(value_of(&block, "Risk"), "85 ⚑ 2 flags");
        assert!(block.contains("⚑ impossible_travel (+60): Berlin → Tokyo in 40 min, 8,900 km, 13,000 km/h\n"));
        assert!(block.contains("⚑ new_device (+25): First session from bob-laptop\n"));
        assert_eq!(
            value_of(&block, "End reason"),
            "ended by an administrator: terminated by admin@example.com: suspected compromise"
        );
        assert_eq!(value_of(&block, "Ended"), "2025-03-04 11:00:00 +01:00 (1h ago)");
        assert_eq!(value_of(&block, "Location"), "東京 (JP)");
        assert!(!block.contains("Coordinates"));
    }

    #[test]
    fn session_detail_for_locations_without_a_place() {
        let mut session = alice();
        session.location = Some(Location {
            kind: LocationKind::Unavailable.into(),
            ..Location::default()
        });
        session.risk = Some(Risk {
            score: 0,
            flags: vec![],
            assessed: false,
        });
        let block = session_detail(&session, &now());
        assert_eq!(value_of(&block, "Location"), "unavailable");
        assert_eq!(
            value_of(&block, "Risk"),
            "not assessed (the geo service could not be asked)"
        );
    }

    #[test]
    fn stats_block_lists_every_figure() {
        let stats = SessionStats {
            active: 12,
            idle: 3,
            total_live_duration_seconds: 4 * 3600 + 7 * 60,
            by_type: vec![
                TypeCount {
                    resource_type: ResourceType::Rdp.into(),
                    live: 5,
                },
                TypeCount {
                    resource_type: ResourceType::Ssh.into(),
                    live: 10,
                },
            ],
            gateways_connected: 2,
            ended_last_24h: 40,
            flagged: 1,
            computed_at: at("2025-03-04T12:00:00+01:00"),
        };
        let block = stats_block(&stats, &now());
        assert_eq!(value_of(&block, "Active"), "12");
        assert_eq!(value_of(&block, "Idle"), "3");
        assert_eq!(value_of(&block, "Total duration"), "4h 07m");
        assert_eq!(value_of(&block, "By type"), "SSH 10, RDP 5, Web 0");
        assert_eq!(value_of(&block, "Flagged"), "1");
        assert_eq!(value_of(&block, "Gateways connected"), "2");
        assert_eq!(value_of(&block, "Ended (last 24h)"), "40");
        assert_eq!(value_of(&block, "As of"), "2025-03-04 12:00:00 +01:00");
    }

    #[test]
    fn gateways_table_shows_state_and_counts() {
        let gateways = [
            Gateway {
                id: "gw-eu-1".into(),
                connected: true,
                connected_at: at("2025-03-04T08:00:00+01:00"),
                last_seen_at: at("2025-03-04T11:58:00+01:00"),
                agent_version: "0.1.0".into(),
                live_sessions: 4,
                replica: "registry-0".into(),
            },
            Gateway {
                id: "gw-ap-1".into(),
                ..Gateway::default()
            },
        ];
        let text = gateways_table(&gateways, &now());
        let row = line_containing(&text, "gw-eu-1");
        for cell in ["yes", "4", "2m ago", "0.1.0", "registry-0"] {
            assert!(row.contains(cell), "{cell:?} missing from {row:?}");
        }
        let row = line_containing(&text, "gw-ap-1");
        assert!(row.contains("no") && row.contains("never"), "{row:?}");
        assert!(text.ends_with("2 gateways, 1 connected\n"), "{text}");

        assert_eq!(
            gateways_table(&[], &now()),
            "No gateways known to the registry.\n\n0 gateways, 0 connected\n"
        );
    }

    #[test]
    fn event_lines_name_the_change() {
        let opened = SessionEvent {
            kind: SessionEventKind::Opened.into(),
            session: Some(alice()),
            at: at("2025-03-04T11:45:07+01:00"),
            detail: String::new(),
        };
        assert_eq!(
            event_line(&opened, &now()),
            "11:45:07  OPENED    c27a4dbc  alice@example.com  prod-db-01 (SSH)  Active  Berlin, DE"
        );

        let mut ended_session = bob();
        ended_session.status = SessionStatus::Disconnected.into();
        ended_session.end_reason = EndReason::IdleTimeout.into();
        let ended = SessionEvent {
            kind: SessionEventKind::Ended.into(),
            session: Some(ended_session),
            ..opened.clone()
        };
        let line = event_line(&ended, &now());
        assert!(
            line.starts_with("11:45:07  ENDED     71035a38  bob@example.com"),
            "{line}"
        );
        assert!(line.ends_with("Disconnected  東京, JP ⚑ 85  (idle timeout)"), "{line}");

        let denied = SessionEvent {
            kind: SessionEventKind::Denied.into(),
            session: Some(Session {
                id: String::new(),
                status: 0,
                ..alice()
            }),
            detail: "country DE is blocked by policy".into(),
            ..opened.clone()
        };
        let line = event_line(&denied, &now());
        assert!(line.starts_with("11:45:07  DENIED    -  alice@example.com"), "{line}");
        assert!(line.ends_with("(country DE is blocked by policy)"), "{line}");

        let done = SessionEvent {
            kind: SessionEventKind::SnapshotDone.into(),
            session: None,
            ..opened
        };
        assert_eq!(
            event_line(&done, &now()),
            "11:45:07  --------  snapshot complete; watching for changes"
        );
    }
}
