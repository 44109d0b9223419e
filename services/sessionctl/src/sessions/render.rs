//! Sessions for people: the list, one session in full, live counts, watch lines, and what `sessions end`
//! shows before it asks.

use std::fmt::Display;

use chrono::{DateTime, TimeZone};
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::{
    EndReason, ListSessionsResponse, Location, LocationKind, ResolveSessionsResponse, ResourceType, Risk, Session,
    SessionEvent, SessionEventKind, SessionSelector, SessionStats, SessionStatus, Termination,
};

use crate::format::{self, FLAG, NONE};
use crate::output::Grid;
use crate::render::{key_values, table, with_ago};

/// The sessions table; its first line is the header. Empty when there are no sessions ([`sessions_footer`]
/// says so).
///
/// `wide` shows full session ids and adds the gateway column.
pub fn sessions_table<Tz: TimeZone<Offset: Display>>(sessions: &[Session], now: &DateTime<Tz>, wide: bool) -> String {
    if sessions.is_empty() {
        return String::new();
    }
    let mut header = vec![
        "SESSION", "USER", "RESOURCE", "DEVICE", "DURATION", "LOCATION", "RISK", "FLAGS", "STATUS",
    ];
    if wide {
        header.insert(3, "GATEWAY");
    }
    let mut table = table(&header);
    for session in sessions {
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
            format::location(session.location.as_ref()),
            risk_cell(session),
            flags_cell(session),
            format::status(session.status()).to_owned(),
        ];
        if wide {
            row.insert(3, format::or_none(&session.gateway_id).to_owned());
        }
        table.add_row(row);
    }
    format!("{}\n", table.trim_fmt())
}

/// `N of TOTAL sessions` and, when there is more, how to get it: for stderr, under the table.
pub fn sessions_footer(page: &ListSessionsResponse) -> String {
    let mut out = String::new();
    if page.sessions.is_empty() {
        out.push_str("No sessions match.\n");
    }
    let noun = if page.total_size == 1 { "session" } else { "sessions" };
    let at_least = if page.total_size_is_lower_bound { "+" } else { "" };
    out.push_str(&format!(
        "{} of {}{at_least} {noun}\n",
        page.sessions.len(),
        page.total_size
    ));
    if !page.next_page_token.is_empty() {
        out.push_str(&format!(
            "More: repeat with --page-token {} for the next page, or add --all for every page.\n",
            page.next_page_token
        ));
    }
    out
}

/// The risk score, `-` when not assessed.
fn risk_cell(session: &Session) -> String {
    match &session.risk {
        Some(risk) if risk.assessed => risk.score.to_string(),
        _ => NONE.to_owned(),
    }
}

/// The risk flags' codes (`new_country,impossible_travel`), `-` when none.
fn flags_cell(session: &Session) -> String {
    match &session.risk {
        Some(risk) if !risk.flags.is_empty() => risk
            .flags
            .iter()
            .map(|flag| flag.code.as_str())
            .collect::<Vec<_>>()
            .join(","),
        _ => NONE.to_owned(),
    }
}

/// Sessions for `-o csv`: raw values (RFC 3339 times, seconds, scores) a spreadsheet can sort and sum.
pub fn sessions_csv(sessions: &[Session]) -> Grid {
    let mut grid = Grid::new(&[
        "id",
        "user",
        "groups",
        "resource",
        "type",
        "gateway",
        "device",
        "client_ip",
        "country",
        "city",
        "status",
        "started_at",
        "last_activity_at",
        "ended_at",
        "duration_seconds",
        "risk_score",
        "risk_flags",
        "bytes_in",
        "bytes_out",
    ]);
    let time = |ts: Option<&prost_types::Timestamp>| {
        ts.and_then(format::to_datetime)
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    for s in sessions {
        let location = s.location.clone().unwrap_or_default();
        let risk = s.risk.clone().unwrap_or_default();
        grid.rows.push(vec![
            s.id.clone(),
            s.user.clone(),
            s.user_groups.join(";"),
            s.resource_name.clone(),
            crate::json::resource_type_name(s.resource_type())
                .unwrap_or_default()
                .to_owned(),
            s.gateway_id.clone(),
            s.device.clone(),
            s.client_ip.clone(),
            location.country_code,
            location.city,
            crate::json::status_name(s.status()).unwrap_or_default().to_owned(),
            time(s.started_at.as_ref()),
            time(s.last_activity_at.as_ref()),
            time(s.ended_at.as_ref()),
            s.duration_seconds.to_string(),
            if risk.assessed {
                risk.score.to_string()
            } else {
                String::new()
            },
            risk.flags.iter().map(|f| f.code.as_str()).collect::<Vec<_>>().join(";"),
            s.bytes_in.to_string(),
            s.bytes_out.to_string(),
        ]);
    }
    grid
}

/// `session/<id>` per session, for `-o name`.
pub fn session_names(sessions: &[Session]) -> Vec<String> {
    sessions.iter().map(|s| format!("session/{}", s.id)).collect()
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

/// Every field of one session as `Key   value` lines, location details and risk flags included; for an
/// ended one, who ended it and their note when `ending` (its termination) is known.
pub fn session_detail<Tz: TimeZone<Offset: Display>>(
    session: &Session,
    ending: Option<&Termination>,
    now: &DateTime<Tz>,
) -> String {
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
    ]);
    if let Some(termination) = ending {
        rows.push(("Ended by", ended_by(termination)));
        if !termination.note.is_empty() {
            rows.push(("Note", termination.note.clone()));
        }
    }
    rows.extend([
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

/// `olga@example.com (admin), termination 01a209da-…`: who ended a session, why, and the record to see.
pub fn ended_by(termination: &Termination) -> String {
    format!(
        "{} ({}), termination {}",
        format::or_none(&termination.actor),
        format::reason(termination.reason()),
        termination.id
    )
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

/// One watch event as one line: time, kind, session, user, resource, status, location, and why.
/// One watch event as a line; an ENDED one names who ended it (and their note) when `ending` is known.
pub fn event_line<Tz: TimeZone<Offset: Display>>(
    event: &SessionEvent,
    ending: Option<&Termination>,
    now: &DateTime<Tz>,
) -> String {
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
            if let Some(termination) = ending {
                let note = if termination.note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", termination.note)
                };
                line.push_str(&format!(
                    "  (by {}, {}{note})",
                    format::or_none(&termination.actor),
                    format::reason(termination.reason())
                ));
                return line;
            }
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

/// How many of the sessions about to end the confirmation lists; the rest are counted.
pub const PREVIEW_ROWS: usize = 10;

/// What `sessions end` is about to do, shown before asking: how many sessions will end, the first
/// [`PREVIEW_ROWS`] of them, the named ids that already ended, and the warning.
pub fn end_confirmation(preview: &ResolveSessionsResponse, selector: &SessionSelector, reason: EndReason) -> String {
    let count = preview.sessions.len();
    let mut out = format!(
        "{} will end ({}, reason: {}):\n\n",
        format::counted(count as u64, "session"),
        format::selector(Some(selector)),
        format::reason(reason),
    );
    let mut table = table(&["SESSION", "USER", "RESOURCE", "DEVICE"]);
    for session in preview.sessions.iter().take(PREVIEW_ROWS) {
        table.add_row(vec![
            format::short_id(&session.id).to_owned(),
            format::or_none(&session.user).to_owned(),
            format::resource(session),
            format::device(session),
        ]);
    }
    out.push_str(&table.trim_fmt());
    out.push('\n');
    if count > PREVIEW_ROWS {
        out.push_str(&format!("... and {} more\n", count - PREVIEW_ROWS));
    }
    if !preview.already_ended.is_empty() {
        out.push_str(&format!(
            "\nAlready ended (nothing to do): {}\n",
            preview.already_ended.join(", ")
        ));
    }
    out.push_str("\nEnding a session may lose the user's unsaved work.\n");
    out
}

/// The question after [`end_confirmation`]; the answer is typed on the same line.
pub fn end_question(count: usize) -> String {
    format!("End {}? [y/N] ", format::counted(count as u64, "session"))
}

/// What `sessions end` says when the selector covers no live session.
pub fn nothing_to_end(preview: &ResolveSessionsResponse, selector: &SessionSelector) -> String {
    let what = match selector.target.as_ref() {
        Some(Target::SessionIds(_)) => "None of the given sessions is live".to_owned(),
        Some(Target::All(all)) if all.idle_only => "No session is idle".to_owned(),
        Some(Target::All(_)) | None => "No session is live".to_owned(),
        Some(_) => format!("No live sessions for {}", format::selector(Some(selector))),
    };
    let mut out = format!("{what}; nothing to end.\n");
    if !preview.already_ended.is_empty() {
        out.push_str(&format!("Already ended: {}\n", preview.already_ended.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{
        EndReason, ListSessionsResponse, Location, LocationKind, ResolveSessionsResponse, ResourceType, Risk, RiskFlag,
        Session, SessionEvent, SessionEventKind, SessionSelector, SessionStats, SessionStatus, TypeCount,
    };

    use super::*;
    use crate::testing::*;

    #[test]
    fn sessions_table_shows_a_row_per_session_with_the_portal_columns() {
        let page = ListSessionsResponse {
            sessions: vec![alice(), bob()],
            next_page_token: String::new(),
            total_size: 2,
            total_size_is_lower_bound: false,
        };
        let text = sessions_table(&page.sessions, &now(), false);

        let header = text.lines().next().expect("a header line");
        let columns: Vec<&str> = header.split_whitespace().collect();
        assert_eq!(
            columns,
            [
                "SESSION", "USER", "RESOURCE", "DEVICE", "DURATION", "LOCATION", "RISK", "FLAGS", "STATUS"
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
            "東京, JP",
            " 85 ",
            "Idle",
        ] {
            assert!(row.contains(cell), "{cell:?} missing from {row:?}");
        }
        assert_eq!(text.lines().count(), 3, "header and two rows, no footer: {text}");
        assert_eq!(sessions_footer(&page), "2 of 2 sessions\n");
    }

    #[test]
    fn sessions_table_columns_line_up_despite_wide_characters() {
        let page = ListSessionsResponse {
            sessions: vec![alice(), bob()],
            next_page_token: String::new(),
            total_size: 2,
            total_size_is_lower_bound: false,
        };
        let text = sessions_table(&page.sessions, &now(), false);
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
            total_size_is_lower_bound: false,
        };
        let text = sessions_table(&page.sessions, &now(), true);
        assert!(text.lines().next().is_some_and(|h| h.contains("GATEWAY")));
        let row = line_containing(&text, "alice@example.com");
        assert!(row.contains("01a209da-fe18-708a-896c-97c6c27a4dbc"));
        assert!(row.contains("gw-eu-1"));
        assert_eq!(sessions_footer(&page), "1 of 1 session\n");
    }

    #[test]
    fn sessions_table_footer_says_how_to_get_the_next_page() {
        let page = ListSessionsResponse {
            sessions: vec![alice()],
            next_page_token: "tok123".into(),
            total_size: 120,
            total_size_is_lower_bound: false,
        };
        let text = sessions_footer(&page);
        assert!(text.contains("1 of 120 sessions"));
        assert!(text.contains("--page-token tok123"));
        assert!(text.contains("--all"));
    }

    #[test]
    fn an_empty_list_says_so() {
        assert_eq!(sessions_table(&[], &now(), false), "");
        let text = sessions_footer(&ListSessionsResponse::default());
        assert_eq!(text, "No sessions match.\n0 of 0 sessions\n");
    }

    #[test]
    fn ended_sessions_read_from_their_start() {
        let mut session = alice();
        session.status = SessionStatus::Disconnected.into();
        assert_eq!(duration_cell(&session, &now()), "2h 30m from 09:30");
        session.started_at = None;
        assert_eq!(duration_cell(&session, &now()), "2h 30m");
    }

    #[test]
    fn session_detail_shows_every_field() {
        let block = session_detail(&alice(), None, &now());
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

        let block = session_detail(&session, None, &now());
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
        let block = session_detail(&session, None, &now());
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
    fn event_lines_name_the_change() {
        let opened = SessionEvent {
            kind: SessionEventKind::Opened.into(),
            session: Some(alice()),
            at: at("2025-03-04T11:45:07+01:00"),
            detail: String::new(),
        };
        assert_eq!(
            event_line(&opened, None, &now()),
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
        let line = event_line(&ended, None, &now());
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
        let line = event_line(&denied, None, &now());
        assert!(line.starts_with("11:45:07  DENIED    -  alice@example.com"), "{line}");
        assert!(line.ends_with("(country DE is blocked by policy)"), "{line}");

        let done = SessionEvent {
            kind: SessionEventKind::SnapshotDone.into(),
            session: None,
            ..opened
        };
        assert_eq!(
            event_line(&done, None, &now()),
            "11:45:07  --------  snapshot complete; watching for changes"
        );
    }

    #[test]
    fn the_confirmation_says_how_many_end_lists_them_and_warns() {
        let preview = ResolveSessionsResponse {
            sessions: vec![alice(), bob()],
            already_ended: vec![],
        };
        let text = end_confirmation(&preview, &by_user("alice@example.com"), EndReason::Admin);
        assert!(
            text.starts_with("2 sessions will end (user alice@example.com, reason: admin):\n\n"),
            "{text}"
        );
        let header = text.lines().nth(2).expect("a header line");
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>(),
            ["SESSION", "USER", "RESOURCE", "DEVICE"]
        );
        let row = line_containing(&text, "alice@example.com  ");
        for cell in ["c27a4dbc", "prod-db-01 (SSH)", "alice-mbp 81.2.69.142"] {
            assert!(row.contains(cell), "{cell:?} missing from {row:?}");
        }
        assert!(line_containing(&text, "bob@example.com").contains("bob-laptop 203.0.113.9"));
        assert!(
            text.ends_with("\nEnding a session may lose the user's unsaved work.\n"),
            "{text}"
        );
        assert!(!text.contains("more"), "{text}");
        assert_eq!(end_question(2), "End 2 sessions? [y/N] ");
        assert_eq!(end_question(1), "End 1 session? [y/N] ");
    }

    #[test]
    fn a_long_confirmation_lists_the_first_ten_and_counts_the_rest() {
        let sessions: Vec<Session> = (0..13)
            .map(|n| Session {
                id: format!("01a209da-0000-7000-8000-0000000000{n:02}"),
                user: format!("user{n:02}@example.com"),
                ..alice()
            })
            .collect();
        let preview = ResolveSessionsResponse {
            sessions,
            already_ended: vec!["01a209da-0000-7000-8000-0000000000ff".into()],
        };
        let selector = SessionSelector {
            target: Some(Target::All(vigil_proto::v1::AllSessions { idle_only: true })),
        };
        let text = end_confirmation(&preview, &selector, EndReason::Policy);
        assert!(
            text.starts_with("13 sessions will end (all (idle), reason: policy):"),
            "{text}"
        );
        assert!(text.contains("user09@example.com"), "{text}");
        assert!(!text.contains("user10@example.com"), "{text}");
        assert!(text.contains("\n... and 3 more\n"), "{text}");
        assert!(
            text.contains("Already ended (nothing to do): 01a209da-0000-7000-8000-0000000000ff\n"),
            "{text}"
        );
        assert!(text.contains("Ending a session may lose the user's unsaved work."));
    }

    #[test]
    fn nothing_to_end_names_the_selector_and_the_ended_ids() {
        let empty = ResolveSessionsResponse::default();
        assert_eq!(
            nothing_to_end(&empty, &by_user("bob")),
            "No live sessions for user bob; nothing to end.\n"
        );
        let all = |idle_only| SessionSelector {
            target: Some(Target::All(vigil_proto::v1::AllSessions { idle_only })),
        };
        assert_eq!(
            nothing_to_end(&empty, &all(true)),
            "No session is idle; nothing to end.\n"
        );
        assert_eq!(
            nothing_to_end(&empty, &all(false)),
            "No session is live; nothing to end.\n"
        );
        let ended = ResolveSessionsResponse {
            sessions: vec![],
            already_ended: vec!["id-1".into(), "id-2".into()],
        };
        let ids = SessionSelector {
            target: Some(Target::SessionIds(vigil_proto::v1::SessionIds {
                ids: vec!["id-1".into(), "id-2".into()],
            })),
        };
        assert_eq!(
            nothing_to_end(&ended, &ids),
            "None of the given sessions is live; nothing to end.\nAlready ended: id-1, id-2\n"
        );
    }
}
