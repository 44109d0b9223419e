//! Human output: tables, key/value blocks and event lines, as pure functions of proto values and `now`.
//!
//! Tables are laid out by `comfy-table` (which measures display width, so `⚑` and CJK city names line up)
//! without borders, like `kubectl`'s.

use std::fmt::Display;

use chrono::{DateTime, TimeZone};
use comfy_table::{ContentArrangement, Table, presets};
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::{
    CreateLockRequest, DeliveryState, EffectivePolicy, EndReason, Gateway, GetEffectivePolicyRequest,
    ListSessionsResponse, ListTerminationsResponse, Location, LocationKind, Lock, Policy, PolicyRules,
    ResolveSessionsResponse, ResourceType, Risk, Session, SessionEvent, SessionEventKind, SessionSelector,
    SessionStats, SessionStatus, Termination,
};

use crate::format::{self, FLAG, INHERIT, NONE};

/// What the effective rules show for a rule no policy sets (the server's built-in default, if any, applies).
const NOT_SET: &str = "not set";

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

/// The line printed once the termination is recorded.
pub fn end_recorded(termination: &Termination) -> String {
    format!(
        "Termination {}: ending {} ({}, reason: {}).\n",
        format::or_none(&termination.id),
        format::counted(termination.session_count.into(), "session"),
        format::selector(termination.selector.as_ref()),
        format::reason(termination.reason()),
    )
}

/// A line on how far the gateways are, printed while waiting whenever it changes.
pub fn end_progress(termination: &Termination) -> String {
    format!(
        "Waiting for the gateways: {} of {} acknowledged, {} failed, {} already ended, {} waiting\n",
        termination.acknowledged,
        termination.session_count,
        termination.failed,
        termination.already_ended,
        termination.pending + termination.delivered,
    )
}

/// The outcome after waiting: how many sessions ended which way, why some failed, what is still on its way,
/// and how to look again.
pub fn end_summary(termination: &Termination) -> String {
    const REASONS_SHOWN: usize = 3;
    let failed = if termination.failed == 0 {
        "0 failed".to_owned()
    } else {
        let failures: Vec<String> = termination
            .commands
            .iter()
            .filter(|c| c.state() == DeliveryState::Failed)
            .map(|c| {
                let detail = if c.detail.is_empty() {
                    "no reason given"
                } else {
                    &c.detail
                };
                format!("{}: {detail}", format::short_id(&c.session_id))
            })
            .collect();
        let mut reasons = failures.iter().take(REASONS_SHOWN).cloned().collect::<Vec<_>>();
        if failures.len() > REASONS_SHOWN {
            reasons.push(format!("and {} more", failures.len() - REASONS_SHOWN));
        }
        if reasons.is_empty() {
            format!("{} failed", termination.failed)
        } else {
            format!("{} failed ({})", termination.failed, reasons.join("; "))
        }
    };
    let mut out = format!(
        "Ended {}: {} acknowledged, {failed}, {} already ended",
        format::counted(termination.session_count.into(), "session"),
        termination.acknowledged,
        termination.already_ended,
    );
    let mut waiting = Vec::new();
    if termination.delivered > 0 {
        waiting.push(format!("{} delivered, not yet acknowledged", termination.delivered));
    }
    if termination.pending > 0 {
        waiting.push(format!(
            "{} still pending (the gateways will get them when they reconnect)",
            termination.pending
        ));
    }
    if !waiting.is_empty() {
        out.push_str("; ");
        out.push_str(&waiting.join(", "));
    }
    out.push_str(".\n");
    out.push_str(&follow_up(termination));
    out
}

/// What `sessions end --no-wait` prints after [`end_recorded`].
pub fn end_not_waiting(termination: &Termination) -> String {
    format!("Not waiting for the gateways. {}", follow_up(termination))
}

fn follow_up(termination: &Termination) -> String {
    format!(
        "Each session's state: sessionctl terminations get {}\n",
        format::or_none(&termination.id)
    )
}

/// The terminations table, newest first, then how many are shown and, when there is more, how to get it.
///
/// PENDING counts every command the gateways have not answered yet (recorded or already handed over).
/// `wide` shows full termination ids, which `terminations get` takes.
pub fn terminations_table<Tz: TimeZone<Offset: Display>>(
    page: &ListTerminationsResponse,
    now: &DateTime<Tz>,
    wide: bool,
) -> String {
    let mut out = String::new();
    if page.terminations.is_empty() {
        out.push_str("No terminations match.\n\n");
    } else {
        let mut table = table(&[
            "ID", "WHEN", "ACTOR", "SELECTOR", "REASON", "SESSIONS", "ACKED", "PENDING", "FAILED",
        ]);
        for t in &page.terminations {
            let id = if wide {
                format::or_none(&t.id)
            } else {
                format::short_id(&t.id)
            };
            table.add_row(vec![
                id.to_owned(),
                format::clock_time(t.created_at.as_ref(), now),
                format::or_none(&t.actor).to_owned(),
                format::selector(t.selector.as_ref()),
                format::reason(t.reason()).to_owned(),
                t.session_count.to_string(),
                t.acknowledged.to_string(),
                (t.pending + t.delivered).to_string(),
                t.failed.to_string(),
            ]);
        }
        out.push_str(&table.trim_fmt());
        out.push_str("\n\n");
    }
    out.push_str(&format!(
        "{}\n",
        format::counted(page.terminations.len() as u64, "termination")
    ));
    if !page.next_page_token.is_empty() {
        out.push_str(&format!(
            "More: repeat with --page-token {} for the next page, or add --all for every page.\n",
            page.next_page_token
        ));
    }
    out
}

/// One termination as `Key   value` lines, then a row per session with its delivery state.
pub fn termination_detail<Tz: TimeZone<Offset: Display>>(termination: &Termination, now: &DateTime<Tz>) -> String {
    let t = termination;
    let mut out = key_values(&[
        ("Termination", format::or_none(&t.id).to_owned()),
        ("When", with_ago(t.created_at.as_ref(), now)),
        ("Actor", format::or_none(&t.actor).to_owned()),
        ("Selector", format::selector(t.selector.as_ref())),
        ("Reason", format::reason(t.reason()).to_owned()),
        ("User message", format::or_none(&t.user_message).to_owned()),
        ("Note", format::or_none(&t.note).to_owned()),
        ("Sessions", t.session_count.to_string()),
        (
            "Delivery",
            format!(
                "{} acknowledged, {} failed, {} already ended, {} delivered, {} pending",
                t.acknowledged, t.failed, t.already_ended, t.delivered, t.pending
            ),
        ),
    ]);
    out.push('\n');
    if t.commands.is_empty() {
        out.push_str("No sessions were covered.\n");
        return out;
    }
    let mut table = table(&["SESSION", "USER", "GATEWAY", "STATE", "ATTEMPTS", "ACKED AT", "DETAIL"]);
    for command in &t.commands {
        table.add_row(vec![
            format::or_none(&command.session_id).to_owned(),
            format::or_none(&command.user).to_owned(),
            format::or_none(&command.gateway_id).to_owned(),
            format::delivery_state(command.state()).to_owned(),
            command.attempts.to_string(),
            format::clock_time_seconds(command.acknowledged_at.as_ref(), now),
            format::or_none(&command.detail).to_owned(),
        ]);
    }
    out.push_str(&table.trim_fmt());
    out.push('\n');
    out
}

/// The policies table, in the server's order (most general first), then how many there are. Rules a policy
/// leaves unset read `inherit`. `wide` shows full policy ids, which `policies get`, `update` and `delete` take.
pub fn policies_table<Tz: TimeZone>(policies: &[Policy], now: &DateTime<Tz>, wide: bool) -> String {
    let footer = match policies.len() {
        1 => "1 policy\n".to_owned(),
        n => format!("{n} policies\n"),
    };
    if policies.is_empty() {
        return format!("No policies.\n\n{footer}");
    }
    let mut table = table(&[
        "ID",
        "SCOPE",
        "IDLE WARNING",
        "IDLE TIMEOUT",
        "MAX DURATION",
        "MAX SESSIONS",
        "DENY ≥",
        "FLAG ≥",
        "UPDATED",
    ]);
    for policy in policies {
        let id = if wide {
            format::or_none(&policy.id)
        } else {
            format::short_id(&policy.id)
        };
        let unset = PolicyRules::default();
        let rules = policy.rules.as_ref().unwrap_or(&unset);
        table.add_row(vec![
            id.to_owned(),
            format::scope(policy.scope.as_ref()),
            format::rule_duration(rules.idle_warning_after.as_ref(), INHERIT),
            format::rule_duration(rules.idle_timeout.as_ref(), INHERIT),
            format::rule_duration(rules.max_session_duration.as_ref(), INHERIT),
            format::max_sessions_with_action(rules, INHERIT),
            format::threshold(rules.deny_risk_score, INHERIT),
            format::threshold(rules.flag_risk_score, INHERIT),
            updated(policy, format::ago(policy.updated_at.as_ref(), now)),
        ]);
    }
    format!("{}\n\n{footer}", table.trim_fmt())
}

/// `2h ago by admin@example.com`: when, then who when known.
fn updated(policy: &Policy, when: String) -> String {
    if policy.updated_by.is_empty() {
        when
    } else {
        format!("{when} by {}", policy.updated_by)
    }
}

/// One policy as `Key   value` lines: scope, note, every rule (`inherit` when unset) and the last change.
pub fn policy_detail<Tz: TimeZone<Offset: Display>>(policy: &Policy, now: &DateTime<Tz>) -> String {
    let mut rows = vec![
        ("Policy", format::or_none(&policy.id).to_owned()),
        ("Scope", format::scope(policy.scope.as_ref())),
        ("Description", format::or_none(&policy.description).to_owned()),
    ];
    rows.extend(rule_rows(policy.rules.as_ref(), INHERIT));
    rows.push(("Updated", updated(policy, with_ago(policy.updated_at.as_ref(), now))));
    key_values(&rows)
}

/// A row per rule, `unset` for the rules not set.
fn rule_rows(rules: Option<&PolicyRules>, unset: &str) -> Vec<(&'static str, String)> {
    let default = PolicyRules::default();
    let rules = rules.unwrap_or(&default);
    vec![
        (
            "Idle warning",
            format::rule_duration(rules.idle_warning_after.as_ref(), unset),
        ),
        (
            "Idle timeout",
            format::rule_duration(rules.idle_timeout.as_ref(), unset),
        ),
        (
            "Max duration",
            format::rule_duration(rules.max_session_duration.as_ref(), unset),
        ),
        (
            "Max sessions",
            format::max_sessions(rules.max_concurrent_sessions, unset),
        ),
        (
            "On excess",
            format::concurrency_action(rules.concurrency_action())
                .unwrap_or(unset)
                .to_owned(),
        ),
        ("Deny if risk ≥", format::threshold(rules.deny_risk_score, unset)),
        ("Flag if risk ≥", format::threshold(rules.flag_risk_score, unset)),
    ]
}

/// What `policies create` and `policies update` print: what was done (`verb`: "Created", "Updated"), then
/// the policy as the server now has it.
pub fn policy_saved<Tz: TimeZone<Offset: Display>>(verb: &str, policy: &Policy, now: &DateTime<Tz>) -> String {
    format!(
        "{verb} the policy for {}.\n\n{}",
        format::scope(policy.scope.as_ref()),
        policy_detail(policy, now)
    )
}

/// The rules in force for the user on the resource the request names, and the policies they come from (most
/// specific first, full ids). Rules no policy sets read `not set`.
pub fn effective_policy(effective: &EffectivePolicy, request: &GetEffectivePolicyRequest) -> String {
    let groups = match request.user_groups.as_slice() {
        [] => String::new(),
        [one] => format!(" (group {one})"),
        many => format!(" (groups {})", many.join(", ")),
    };
    let mut rows = rule_rows(effective.rules.as_ref(), NOT_SET);
    let from = if effective.policy_ids.is_empty() {
        "none".to_owned()
    } else {
        effective.policy_ids.join("\n")
    };
    rows.push(("From policies", from));
    format!(
        "Rules for {}{groups} on {}:\n\n{}",
        format::or_none(&request.user),
        format::or_none(&request.resource_name),
        key_values(&rows)
    )
}

/// What `policies delete` shows before asking: the policy, and what deleting it means.
pub fn policy_delete_confirmation<Tz: TimeZone<Offset: Display>>(policy: &Policy, now: &DateTime<Tz>) -> String {
    format!(
        "{}\nWhat it covers falls back to the less specific policies.\n",
        policy_detail(policy, now)
    )
}

/// The question after [`policy_delete_confirmation`]; the answer is typed on the same line.
pub fn policy_delete_question(policy: &Policy) -> String {
    format!("Delete the policy for {}? [y/N] ", format::scope(policy.scope.as_ref()))
}

/// The line printed once the policy is gone.
pub fn policy_deleted(policy: &Policy) -> String {
    format!(
        "Deleted policy {} ({}).\n",
        format::or_none(&policy.id),
        format::scope(policy.scope.as_ref())
    )
}

/// The locks table, oldest first, then how many there are. `wide` shows full lock ids, which `locks delete`
/// takes; `with_expired` says whether expired locks were asked for (it changes what "none" means).
pub fn locks_table<Tz: TimeZone>(locks: &[Lock], now: &DateTime<Tz>, wide: bool, with_expired: bool) -> String {
    let footer = match locks.len() {
        1 => "1 lock\n".to_owned(),
        n => format!("{n} locks\n"),
    };
    if locks.is_empty() {
        let none = if with_expired {
            "No locks."
        } else {
            "No locks in force."
        };
        return format!("{none}\n\n{footer}");
    }
    let mut table = table(&["ID", "TARGET", "EXPIRES", "CREATED", "REASON", "MESSAGE"]);
    for lock in locks {
        let id = if wide {
            format::or_none(&lock.id)
        } else {
            format::short_id(&lock.id)
        };
        table.add_row(vec![
            id.to_owned(),
            format::lock_target(lock.target.as_ref()),
            format::lock_expiry(lock.expires_at.as_ref(), now),
            created(lock, format::ago(lock.created_at.as_ref(), now)),
            format::or_none(&lock.reason).to_owned(),
            format::or_none(&lock.message).to_owned(),
        ]);
    }
    format!("{}\n\n{footer}", table.trim_fmt())
}

/// `2h ago by soc@example.com`: when, then who when known.
fn created(lock: &Lock, when: String) -> String {
    if lock.created_by.is_empty() {
        when
    } else {
        format!("{when} by {}", lock.created_by)
    }
}

/// One lock as `Key   value` lines.
pub fn lock_detail<Tz: TimeZone<Offset: Display>>(lock: &Lock, now: &DateTime<Tz>) -> String {
    let expires = match lock.expires_at.as_ref() {
        None => "never (until removed)".to_owned(),
        Some(at) => format!(
            "{} ({})",
            format::date_time(Some(at), now),
            format::lock_expiry(Some(at), now)
        ),
    };
    key_values(&[
        ("Lock", format::or_none(&lock.id).to_owned()),
        ("Target", format::lock_target(lock.target.as_ref())),
        ("Message", format::or_none(&lock.message).to_owned()),
        ("Reason", format::or_none(&lock.reason).to_owned()),
        ("Expires", expires),
        ("Created", created(lock, with_ago(lock.created_at.as_ref(), now))),
    ])
}

/// The line printed once a lock is in place: `Locked user alice until removed (lock 0195…).`
pub fn locked<Tz: TimeZone<Offset: Display>>(lock: &Lock, now: &DateTime<Tz>) -> String {
    format!(
        "Locked {} {} (lock {}).\n",
        format::lock_target(lock.target.as_ref()),
        format::lock_until(lock.expires_at.as_ref(), now),
        format::or_none(&lock.id)
    )
}

/// What `locks create` prints: the lock, then what became of the sessions it covered (`termination`: the
/// one the policy service issued for it, if any).
pub fn lock_created<Tz: TimeZone<Offset: Display>>(
    lock: &Lock,
    termination: Option<&Termination>,
    now: &DateTime<Tz>,
) -> String {
    format!(
        "{}\n{}\n{}",
        locked(lock, now),
        lock_detail(lock, now),
        lock_sessions(termination)
    )
}

/// Whether a new lock ended anything: `Ending 2 live sessions it covers (termination 0195…).`
pub fn lock_sessions(termination: Option<&Termination>) -> String {
    match termination {
        Some(termination) if termination.session_count > 0 => format!(
            "Ending {} it covers (termination {}).\n",
            format::counted(termination.session_count.into(), "live session"),
            format::or_none(&termination.id)
        ),
        Some(_) => "It covered no live session.\n".to_owned(),
        None => "No live session was ended for it.\n".to_owned(),
    }
}

/// The line printed once a lock is removed.
pub fn lock_deleted(id: &str, lock: Option<&Lock>) -> String {
    match lock {
        Some(lock) => format!(
            "Removed lock {id} ({}): what it refused is admitted again.\n",
            format::lock_target(lock.target.as_ref())
        ),
        None => format!("Removed lock {id}: what it refused is admitted again.\n"),
    }
}

/// What `sessions end --lock` is about to do, shown before asking: the sessions that will end (as
/// [`end_confirmation`] lists them; none is fine) and the lock.
pub fn end_lock_confirmation(
    preview: &ResolveSessionsResponse,
    selector: &SessionSelector,
    lock: &CreateLockRequest,
) -> String {
    let mut out = if preview.sessions.is_empty() {
        format!("No live sessions for {}.\n", format::selector(Some(selector)))
    } else {
        end_confirmation(preview, selector, EndReason::Locked)
    };
    let how_long = match lock.ttl {
        None => "until the lock is removed".to_owned(),
        Some(ttl) => format!("for {}", format::rule_duration(Some(&ttl), NONE)),
    };
    let message = if lock.message.is_empty() {
        "the server's lock message".to_owned()
    } else {
        format!("\"{}\"", lock.message)
    };
    out.push_str(&format!(
        "\n{} will be locked out {how_long}: new sessions are refused with {message}.\n",
        format::lock_target(lock.target.as_ref())
    ));
    out
}

/// The question after [`end_lock_confirmation`]; the answer is typed on the same line.
pub fn end_lock_question(count: usize, lock: &CreateLockRequest) -> String {
    let target = format::lock_target(lock.target.as_ref());
    if count == 0 {
        format!("Lock {target}? [y/N] ")
    } else {
        format!(
            "End {} and lock {target}? [y/N] ",
            format::counted(count as u64, "session")
        )
    }
}

/// A borderless table with the given header.
pub(crate) fn table(header: &[&str]) -> Table {
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
    // Keys are labels from this file whose characters are each one column wide (`≥` included), so their
    // character count is their display width, and it is what `{:<width$}` pads by.
    let width = rows.iter().map(|(key, _)| key.chars().count()).max().unwrap_or(0);
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
            total_size_is_lower_bound: false,
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
            total_size_is_lower_bound: false,
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
            total_size_is_lower_bound: false,
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
            total_size_is_lower_bound: false,
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

    fn termination(state: &[(DeliveryState, &str)]) -> Termination {
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

    fn by_user(user: &str) -> SessionSelector {
        SessionSelector {
            target: Some(Target::User(user.into())),
        }
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

    #[test]
    fn progress_and_a_complete_summary() {
        let t = termination(&[
            (DeliveryState::Acknowledged, ""),
            (DeliveryState::Acknowledged, ""),
            (DeliveryState::AlreadyEnded, "the session had already ended"),
        ]);
        assert_eq!(
            end_recorded(&t),
            "Termination 0195a3c0-7e1f-7000-8000-00000000beef: ending 3 sessions (user alice@example.com, reason: \
             admin).\n"
        );
        assert_eq!(
            end_progress(&t),
            "Waiting for the gateways: 2 of 3 acknowledged, 0 failed, 1 already ended, 0 waiting\n"
        );
        assert_eq!(
            end_summary(&t),
            "Ended 3 sessions: 2 acknowledged, 0 failed, 1 already ended.\n\
             Each session's state: sessionctl terminations get 0195a3c0-7e1f-7000-8000-00000000beef\n"
        );
    }

    #[test]
    fn the_summary_gives_failure_reasons_and_what_is_still_on_its_way() {
        let t = termination(&[
            (DeliveryState::Acknowledged, ""),
            (DeliveryState::Failed, "RDP host refused the logoff"),
            (DeliveryState::Failed, ""),
            (DeliveryState::Delivered, ""),
            (DeliveryState::Pending, ""),
            (DeliveryState::Pending, ""),
        ]);
        assert_eq!(
            end_progress(&t),
            "Waiting for the gateways: 1 of 6 acknowledged, 2 failed, 0 already ended, 3 waiting\n"
        );
        let summary = end_summary(&t);
        assert_eq!(
            summary.lines().next(),
            Some(
                "Ended 6 sessions: 1 acknowledged, 2 failed (c27a4d01: RDP host refused the logoff; c27a4d02: no \
                 reason given), 0 already ended; 1 delivered, not yet acknowledged, 2 still pending (the gateways \
                 will get them when they reconnect)."
            ),
            "{summary}"
        );

        let many = termination(&[(DeliveryState::Failed, "gone"); 5]);
        let summary = end_summary(&many);
        assert!(
            summary.starts_with(
                "Ended 5 sessions: 0 acknowledged, 5 failed (c27a4d00: gone; c27a4d01: gone; c27a4d02: gone; and 2 \
                 more), 0 already ended.\n"
            ),
            "{summary}"
        );
        assert_eq!(
            end_not_waiting(&t),
            "Not waiting for the gateways. Each session's state: sessionctl terminations get \
             0195a3c0-7e1f-7000-8000-00000000beef\n"
        );
    }

    #[test]
    fn terminations_table_shows_who_what_why_and_delivery() {
        let mut by_ids = termination(&[(DeliveryState::Pending, ""), (DeliveryState::Delivered, "")]);
        by_ids.id = "0195a3c0-7e1f-7000-8000-00000000cafe".into();
        by_ids.actor = "soc@example.com".into();
        by_ids.reason = EndReason::Anomaly.into();
        by_ids.created_at = at("2025-03-03T16:20:00+01:00");
        by_ids.selector = Some(SessionSelector {
            target: Some(Target::SessionIds(vigil_proto::v1::SessionIds {
                ids: vec!["a".into(), "b".into()],
            })),
        });
        let page = ListTerminationsResponse {
            terminations: vec![
                termination(&[(DeliveryState::Acknowledged, ""), (DeliveryState::Failed, "x")]),
                by_ids,
            ],
            next_page_token: String::new(),
        };
        let text = terminations_table(&page, &now(), false);
        let header = text.lines().next().expect("a header line");
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>(),
            [
                "ID", "WHEN", "ACTOR", "SELECTOR", "REASON", "SESSIONS", "ACKED", "PENDING", "FAILED"
            ]
        );
        let row = line_containing(&text, "admin@example.com");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [
                "0000beef",
                "11:58",
                "admin@example.com",
                "user",
                "alice@example.com",
                "admin",
                "2",
                "1",
                "0",
                "1"
            ]
        );
        let row = line_containing(&text, "soc@example.com");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [
                "0000cafe",
                "Mar",
                "03",
                "16:20",
                "soc@example.com",
                "2",
                "sessions",
                "anomaly",
                "2",
                "0",
                "2",
                "0"
            ]
        );
        assert!(text.ends_with("\n\n2 terminations\n"), "{text}");

        let wide = terminations_table(&page, &now(), true);
        assert!(wide.contains("0195a3c0-7e1f-7000-8000-00000000beef"), "{wide}");

        let more = ListTerminationsResponse {
            terminations: vec![],
            next_page_token: "t2".into(),
        };
        assert_eq!(
            terminations_table(&more, &now(), false),
            "No terminations match.\n\n0 terminations\nMore: repeat with --page-token t2 for the next page, or add \
             --all for every page.\n"
        );
    }

    #[test]
    fn termination_detail_shows_the_record_and_a_row_per_command() {
        let mut t = termination(&[
            (DeliveryState::Acknowledged, ""),
            (DeliveryState::Failed, "RDP host refused the logoff"),
            (DeliveryState::Pending, ""),
        ]);
        t.note = "ticket SOC-1234".into();
        let text = termination_detail(&t, &now());
        assert_eq!(value_of(&text, "Termination"), "0195a3c0-7e1f-7000-8000-00000000beef");
        assert_eq!(value_of(&text, "When"), "2025-03-04 11:58:00 +01:00 (2m ago)");
        assert_eq!(value_of(&text, "Actor"), "admin@example.com");
        assert_eq!(value_of(&text, "Selector"), "user alice@example.com");
        assert_eq!(value_of(&text, "Reason"), "admin");
        assert_eq!(
            value_of(&text, "User message"),
            "You have been disconnected by an administrator"
        );
        assert_eq!(value_of(&text, "Note"), "ticket SOC-1234");
        assert_eq!(value_of(&text, "Sessions"), "3");
        assert_eq!(
            value_of(&text, "Delivery"),
            "1 acknowledged, 1 failed, 0 already ended, 0 delivered, 1 pending"
        );

        let header = line_containing(&text, "ATTEMPTS");
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>(),
            [
                "SESSION", "USER", "GATEWAY", "STATE", "ATTEMPTS", "ACKED", "AT", "DETAIL"
            ]
        );
        let row = line_containing(&text, "user0@example.com");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [
                "01a209da-fe18-708a-896c-97c6c27a4d00",
                "user0@example.com",
                "gw-eu-1",
                "Acknowledged",
                "1",
                "11:58:03",
                "-"
            ]
        );
        let row = line_containing(&text, "user1@example.com");
        assert!(
            row.contains("Failed") && row.ends_with("RDP host refused the logoff"),
            "{row:?}"
        );
        let row = line_containing(&text, "user2@example.com");
        assert_eq!(row.split_whitespace().nth(3), Some("Pending"), "{row:?}");

        t.commands.clear();
        assert!(termination_detail(&t, &now()).ends_with("\nNo sessions were covered.\n"));
    }

    fn policy(id: &str, scope: vigil_proto::v1::policy_scope::Scope, rules: Option<PolicyRules>) -> Policy {
        Policy {
            id: id.into(),
            scope: Some(vigil_proto::v1::PolicyScope { scope: Some(scope) }),
            rules,
            description: String::new(),
            updated_by: "admin@example.com".into(),
            updated_at: at("2025-03-04T10:00:00+01:00"),
        }
    }

    fn minutes(n: i64) -> Option<prost_types::Duration> {
        Some(prost_types::Duration {
            seconds: n * 60,
            nanos: 0,
        })
    }

    fn three_policies() -> Vec<Policy> {
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

    #[test]
    fn policies_table_shows_every_rule_and_inherit_where_unset() {
        let text = policies_table(&three_policies(), &now(), false);
        let header = text.lines().next().expect("a header line");
        assert_eq!(
            header
                .split("   ")
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .collect::<Vec<_>>(),
            [
                "ID",
                "SCOPE",
                "IDLE WARNING",
                "IDLE TIMEOUT",
                "MAX DURATION",
                "MAX SESSIONS",
                "DENY ≥",
                "FLAG ≥",
                "UPDATED"
            ]
        );
        let row = line_containing(&text, "global");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [
                "000000a1",
                "global",
                "10m",
                "30m",
                "8h",
                "unlimited",
                "90",
                "50",
                "2h",
                "ago",
                "by",
                "admin@example.com"
            ]
        );
        let row = line_containing(&text, "group sre");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [
                "000000a2",
                "group",
                "sre",
                "inherit",
                "45m",
                "inherit",
                "3",
                "(end",
                "oldest)",
                "inherit",
                "inherit",
                "2h",
                "ago",
                "by",
                "admin@example.com"
            ]
        );
        // No rules at all: everything is inherited; no author: just when.
        let row = line_containing(&text, "user alice@example.com");
        assert_eq!(row.matches("inherit").count(), 6, "{row:?}");
        assert!(row.ends_with("2d ago"), "{row:?}");
        assert!(text.ends_with("\n\n3 policies\n"), "{text}");

        // Columns line up under their headers (by display column: `≥` is one wide but three bytes long).
        let column = header[..header.find("FLAG ≥").expect("FLAG column")].chars().count();
        let global = line_containing(&text, "global");
        assert_eq!(global.chars().skip(column).take(2).collect::<String>(), "50", "{text}");

        let wide = policies_table(&three_policies()[..1], &now(), true);
        assert!(wide.contains("0195a3c0-7e1f-7000-8000-0000000000a1"), "{wide}");
        assert!(wide.ends_with("\n\n1 policy\n"), "{wide}");
        assert_eq!(policies_table(&[], &now(), false), "No policies.\n\n0 policies\n");
    }

    #[test]
    fn policy_detail_lists_every_rule() {
        let policies = three_policies();
        let text = policy_detail(&policies[1], &now());
        assert_eq!(value_of(&text, "Policy"), "0195a3c0-7e1f-7000-8000-0000000000a2");
        assert_eq!(value_of(&text, "Scope"), "group sre");
        assert_eq!(value_of(&text, "Description"), "-");
        assert_eq!(value_of(&text, "Idle warning"), "inherit");
        assert_eq!(value_of(&text, "Idle timeout"), "45m");
        assert_eq!(value_of(&text, "Max duration"), "inherit");
        assert_eq!(value_of(&text, "Max sessions"), "3");
        assert_eq!(value_of(&text, "On excess"), "end oldest");
        assert_eq!(value_of(&text, "Deny if risk ≥"), "inherit");
        assert_eq!(value_of(&text, "Flag if risk ≥"), "inherit");
        assert_eq!(
            value_of(&text, "Updated"),
            "2025-03-04 10:00:00 +01:00 (2h ago) by admin@example.com"
        );
        // Values line up: every value starts in the same column.
        let starts: Vec<usize> = text
            .lines()
            .map(|line| {
                let key_end = line.find("  ").expect("a key");
                line[key_end..]
                    .find(|c: char| c != ' ')
                    .map(|n| line[..key_end + n].chars().count())
            })
            .map(|start| start.expect("a value"))
            .collect();
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{text}");

        let text = policy_detail(&policies[0], &now());
        assert_eq!(value_of(&text, "Description"), "the defaults");
        assert_eq!(value_of(&text, "Max sessions"), "unlimited");
        assert_eq!(value_of(&text, "On excess"), "inherit");
        assert_eq!(value_of(&text, "Deny if risk ≥"), "90");

        let saved = policy_saved("Updated", &policies[1], &now());
        assert!(
            saved.starts_with("Updated the policy for group sre.\n\nPolicy "),
            "{saved}"
        );
    }

    #[test]
    fn effective_rules_name_their_policies_and_what_no_policy_sets() {
        let policies = three_policies();
        let effective = EffectivePolicy {
            rules: Some(PolicyRules {
                flag_risk_score: None,
                ..policies[0].rules.expect("rules")
            }),
            policy_ids: vec![policies[1].id.clone(), policies[0].id.clone()],
        };
        let request = GetEffectivePolicyRequest {
            user: "alice@example.com".into(),
            user_groups: vec!["sre".into(), "eng".into()],
            resource_name: "prod-db-01".into(),
        };
        let text = effective_policy(&effective, &request);
        assert!(
            text.starts_with("Rules for alice@example.com (groups sre, eng) on prod-db-01:\n\n"),
            "{text}"
        );
        assert_eq!(value_of(&text, "Idle timeout"), "30m");
        assert_eq!(value_of(&text, "Flag if risk ≥"), "not set");
        assert_eq!(value_of(&text, "On excess"), "not set");
        assert!(
            text.ends_with(
                "From policies   0195a3c0-7e1f-7000-8000-0000000000a2\n                \
                 0195a3c0-7e1f-7000-8000-0000000000a1\n"
            ),
            "{text}"
        );

        let alone = GetEffectivePolicyRequest {
            user_groups: vec!["sre".into()],
            ..request
        };
        let text = effective_policy(&EffectivePolicy::default(), &alone);
        assert!(
            text.starts_with("Rules for alice@example.com (group sre) on prod-db-01:"),
            "{text}"
        );
        assert_eq!(value_of(&text, "Idle warning"), "not set");
        assert_eq!(value_of(&text, "From policies"), "none");
    }

    #[test]
    fn deleting_a_policy_shows_it_asks_and_says_what_went() {
        let policies = three_policies();
        let text = policy_delete_confirmation(&policies[1], &now());
        assert!(text.starts_with("Policy "), "{text}");
        assert!(
            text.ends_with("\nWhat it covers falls back to the less specific policies.\n"),
            "{text}"
        );
        assert_eq!(
            policy_delete_question(&policies[1]),
            "Delete the policy for group sre? [y/N] "
        );
        assert_eq!(
            policy_deleted(&policies[2]),
            "Deleted policy 0195a3c0-7e1f-7000-8000-0000000000a3 (user alice@example.com).\n"
        );
    }

    fn soc_lock(expires_at: Option<Timestamp>) -> Lock {
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

    #[test]
    fn locks_list_with_their_target_expiry_and_creator() {
        let network = Lock {
            id: "0195a3c0-7e1f-7000-8000-00000000cafe".into(),
            target: Some(vigil_proto::v1::LockTarget {
                target: Some(vigil_proto::v1::lock_target::Target::Cidr("203.0.113.0/24".into())),
            }),
            reason: String::new(),
            ..soc_lock(at("2025-03-04T11:00:00+01:00"))
        };
        let text = locks_table(
            &[soc_lock(at("2025-03-04T13:00:00+01:00")), network.clone()],
            &now(),
            false,
            true,
        );
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        assert!(lines[0].starts_with("ID"), "{text}");
        assert!(lines[1].starts_with("0000f00d "), "{text}");
        assert!(lines[1].contains("user alice@example.com"), "{text}");
        assert!(lines[1].contains("in 1h"), "{text}");
        assert!(lines[1].contains("30m ago by soc@example.com"), "{text}");
        assert!(lines[1].contains("SOC-1234"), "{text}");
        assert!(lines[2].contains("network 203.0.113.0/24"), "{text}");
        assert!(lines[2].contains("expired 1h ago"), "{text}");
        assert_eq!(lines.last(), Some(&"2 locks"));
        assert!(locks_table(&[network], &now(), true, true).contains("0195a3c0-7e1f-7000-8000-00000000cafe"));
        assert_eq!(
            locks_table(&[], &now(), false, false),
            "No locks in force.\n\n0 locks\n"
        );
        assert_eq!(locks_table(&[], &now(), false, true), "No locks.\n\n0 locks\n");
        let forever = locks_table(&[soc_lock(None)], &now(), false, false);
        assert!(forever.contains("never"), "{forever}");
    }

    #[test]
    fn a_new_lock_says_what_it_covers_and_for_how_long() {
        let lock = soc_lock(at("2025-03-04T13:00:00+01:00"));
        assert_eq!(
            locked(&lock, &now()),
            "Locked user alice@example.com until 13:00 (for 1h) (lock 0195a3c0-7e1f-7000-8000-00000000f00d).\n"
        );
        assert_eq!(
            locked(&soc_lock(None), &now()),
            "Locked user alice@example.com until removed (lock 0195a3c0-7e1f-7000-8000-00000000f00d).\n"
        );
        let ending = Termination {
            id: "0195a3c0-7e1f-7000-8000-00000000beef".into(),
            session_count: 2,
            ..Termination::default()
        };
        let text = lock_created(&lock, Some(&ending), &now());
        assert!(
            text.contains("Message  Your access is suspended by security — contact the SOC\n"),
            "{text}"
        );
        assert!(text.contains("Expires  2025-03-04 13:00:00 +01:00 (in 1h)\n"), "{text}");
        assert!(
            text.contains("Created  2025-03-04 11:30:00 +01:00 (30m ago) by soc@example.com\n"),
            "{text}"
        );
        assert!(
            text.ends_with("Ending 2 live sessions it covers (termination 0195a3c0-7e1f-7000-8000-00000000beef).\n"),
            "{text}"
        );
        let nothing = Termination::default();
        assert_eq!(lock_sessions(Some(&nothing)), "It covered no live session.\n");
        assert_eq!(lock_sessions(None), "No live session was ended for it.\n");
        assert_eq!(
            lock_deleted(&lock.id, Some(&lock)),
            "Removed lock 0195a3c0-7e1f-7000-8000-00000000f00d (user alice@example.com): what it refused is admitted again.\n"
        );
    }

    #[test]
    fn ending_with_a_lock_shows_both_before_asking() {
        let request = CreateLockRequest {
            target: Some(vigil_proto::v1::LockTarget {
                target: Some(vigil_proto::v1::lock_target::Target::User("alice@example.com".into())),
            }),
            message: "Contact the SOC".into(),
            ttl: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
            reason: String::new(),
        };
        let selector = SessionSelector {
            target: Some(Target::User("alice@example.com".into())),
        };
        let preview = ResolveSessionsResponse {
            sessions: vec![alice()],
            already_ended: vec![],
        };
        let text = end_lock_confirmation(&preview, &selector, &request);
        assert!(
            text.starts_with("1 session will end (user alice@example.com, reason: locked):"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "\nuser alice@example.com will be locked out for 1h: new sessions are refused with \"Contact the SOC\".\n"
            ),
            "{text}"
        );
        assert_eq!(
            end_lock_question(1, &request),
            "End 1 session and lock user alice@example.com? [y/N] "
        );
        let quiet = end_lock_confirmation(
            &ResolveSessionsResponse::default(),
            &selector,
            &CreateLockRequest {
                ttl: None,
                message: String::new(),
                ..request.clone()
            },
        );
        assert_eq!(
            quiet,
            "No live sessions for user alice@example.com.\n\nuser alice@example.com will be locked out until the lock is \
             removed: new sessions are refused with the server's lock message.\n"
        );
        assert_eq!(end_lock_question(0, &request), "Lock user alice@example.com? [y/N] ");
    }
}
