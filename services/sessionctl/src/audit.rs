//! `sessionctl audit`: one trail, newest first, merged from the three places Vigil records what was
//! done and by whom —
//! - terminations (`TerminationService.ListTerminations`): who ended which sessions, and how
//!   delivery went;
//! - policy changes (`PolicyService.ListAuditEvents`): who created, changed or deleted a policy, and
//!   whether it was done;
//! - refused admissions (`SessionRegistry.ListSessions` with `denied_only`): starts the policy
//!   refused, recorded by the registry as sessions that ended as they began. Their actor is
//!   `admission`: nobody asked, the rules decided.

use std::fmt::Display;

use chrono::{DateTime, Local, TimeZone, Utc};
use serde_json::json;
use vigil_proto::v1::{
    AuditEvent, AuditOutcome, ListAuditEventsRequest, ListSessionsRequest, ListTerminationsRequest, Session,
    SessionFilter, SessionOrderBy, SessionStatus, Termination,
};

use clap::Args;

use crate::args::{Since, parse_name, parse_since};
use crate::client::{Policies, Registry, Terminations};
use crate::error::CliError;
use crate::output::{Data, Grid, Printer};
use crate::{format, render};

/// The actor of refused admissions.
pub const ADMISSION_ACTOR: &str = "admission";

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only events at or after this: a duration ago (1h, 2d), a date (2026-12-06) or an RFC 3339 time.
    #[arg(long, value_parser = parse_since, default_value = "24h")]
    pub since: Since,

    /// Only events before this (same forms as --since); what the "more" hint pages with.
    #[arg(long, value_parser = parse_since)]
    pub until: Option<Since>,

    /// Only what this actor did (refused admissions have the actor `admission`).
    #[arg(long, value_parser = parse_name)]
    pub actor: Option<String>,

    /// Only this action, or those under it: `sessions.terminate`, `policy` (every policy change),
    /// `admission.deny`.
    #[arg(long, value_parser = parse_name)]
    pub action: Option<String>,

    /// At most this many events (1-1000), the newest; a hint says how to see the next ones.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub limit: i32,
}

impl AuditArgs {
    /// Whether `action` is one this command shows.
    fn wants(&self, action: &str) -> bool {
        match &self.action {
            None => true,
            Some(wanted) => action == wanted || action.starts_with(&format!("{wanted}.")),
        }
    }
}

/// One line of the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: prost_types::Timestamp,
    pub actor: String,
    /// `sessions.terminate`, `policy.create`, `admission.deny`…
    pub action: String,
    pub target: String,
    pub outcome: String,
}

/// How many pages of each source are read at most to fill one answer with events before `--until`.
const MAX_PAGES: usize = 50;

/// What every source is asked for: events between `since` and `until`, by `actor` (any when
/// empty), `wanted` of them at most.
struct Window {
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    actor: String,
    wanted: usize,
}

impl Window {
    fn of(args: &AuditArgs, now: DateTime<Utc>) -> Self {
        Self {
            since: args.since.resolve(now),
            until: args.until.map(|until| until.resolve(now)),
            actor: args.actor.clone().unwrap_or_default(),
            // One more than asked, to know whether there is more.
            wanted: usize::try_from(args.limit).unwrap_or(100) + 1,
        }
    }

    fn since_timestamp(&self) -> prost_types::Timestamp {
        vigil_proto::timestamp_from_millis(self.since.timestamp_millis())
    }

    /// Whether an event at `ts` is before `--until` (an event without a time is kept).
    fn before_until(&self, ts: Option<&prost_types::Timestamp>) -> bool {
        match (self.until, ts.and_then(format::to_datetime)) {
            (Some(until), Some(at)) => at < until,
            _ => true,
        }
    }
}

/// Whether a paged read is done: enough read, no further page, or a page token that repeats.
fn last_page(read: usize, window: &Window, next: &str, current: &str) -> bool {
    read >= window.wanted || next.is_empty() || next == current
}

/// Reads the three sources, newest first between `--since` and `--until`, and writes the merged trail: at
/// most `--limit` events, and a hint (`--until <the last one's time>`) when there are more.
pub(crate) async fn audit(
    registry: &Registry,
    terminations: &Terminations,
    policies: &Policies,
    args: &AuditArgs,
    p: &mut Printer<'_>,
) -> Result<(), CliError> {
    let window = Window::of(args, Utc::now());
    let ended = if args.wants("sessions.terminate") {
        kills(terminations, &window).await?
    } else {
        Vec::new()
    };
    let changed = if args.action.as_deref().is_none_or(|action| action.starts_with("policy")) {
        policy_changes(policies, &window, args).await?
    } else {
        Vec::new()
    };
    let denied = if (window.actor.is_empty() || window.actor == ADMISSION_ACTOR) && args.wants("admission.deny") {
        refusals(registry, &window).await?
    } else {
        Vec::new()
    };
    let mut entries = merge(
        &ended,
        &changed,
        &denied,
        window.since,
        i32::try_from(window.wanted).unwrap_or(i32::MAX),
    );
    let limit = usize::try_from(args.limit).unwrap_or(100);
    let more = entries.len() > limit;
    entries.truncate(limit);
    print_trail(&entries, more, p)
}

/// Termination's records (`sessions.terminate`).
async fn kills(terminations: &Terminations, window: &Window) -> Result<Vec<Termination>, CliError> {
    let mut ended = Vec::new();
    let mut request = ListTerminationsRequest {
        actor: window.actor.clone(),
        since: Some(window.since_timestamp()),
        page_size: 1000,
        ..ListTerminationsRequest::default()
    };
    for _ in 0..MAX_PAGES {
        let page = terminations.list_terminations(request.clone()).await?;
        ended.extend(
            page.terminations
                .into_iter()
                .filter(|t| window.before_until(t.created_at.as_ref())),
        );
        if last_page(ended.len(), window, &page.next_page_token, &request.page_token) {
            break;
        }
        request.page_token = page.next_page_token;
    }
    Ok(ended)
}

/// Policy's audit events (`policy.*`, `lock.*`) of the actions asked for.
async fn policy_changes(policies: &Policies, window: &Window, args: &AuditArgs) -> Result<Vec<AuditEvent>, CliError> {
    let mut changed = Vec::new();
    let mut request = ListAuditEventsRequest {
        actor: window.actor.clone(),
        since: Some(window.since_timestamp()),
        page_size: 1000,
        page_token: String::new(),
    };
    for _ in 0..MAX_PAGES {
        let page = policies.list_audit_events(request.clone()).await?;
        changed.extend(
            page.events
                .into_iter()
                .filter(|e| window.before_until(e.at.as_ref()) && args.wants(&e.action)),
        );
        if last_page(changed.len(), window, &page.next_page_token, &request.page_token) {
            break;
        }
        request.page_token = page.next_page_token;
    }
    Ok(changed)
}

/// Refused starts (`admission.deny`): the registry's denied sessions, newest first, back to `since`.
async fn refusals(registry: &Registry, window: &Window) -> Result<Vec<Session>, CliError> {
    let mut denied = Vec::new();
    let mut request = ListSessionsRequest {
        filter: Some(SessionFilter {
            statuses: vec![SessionStatus::Disconnected as i32],
            denied_only: true,
            ..SessionFilter::default()
        }),
        order_by: SessionOrderBy::StartedAt as i32,
        ascending: false,
        page_size: 1000,
        page_token: String::new(),
    };
    for _ in 0..MAX_PAGES {
        let page = registry.list_sessions(request.clone()).await?;
        let older = page
            .sessions
            .last()
            .and_then(|s| s.started_at.as_ref().and_then(format::to_datetime))
            .is_some_and(|at| at < window.since);
        denied.extend(
            page.sessions
                .into_iter()
                .filter(|s| window.before_until(s.started_at.as_ref())),
        );
        if older || last_page(denied.len(), window, &page.next_page_token, &request.page_token) {
            break;
        }
        request.page_token = page.next_page_token;
    }
    Ok(denied)
}

/// The merged trail as a table and a footer, or as data (with `more`, and the hint on stderr).
fn print_trail(entries: &[AuditEntry], more: bool, p: &mut Printer<'_>) -> Result<(), CliError> {
    if p.is_human() {
        p.table(&table(entries, &Local::now()))?;
        p.note(&footer(entries, more))?;
    } else {
        let mut value = to_json(entries);
        value["more"] = json!(more);
        p.data(
            Data {
                json: &value,
                names: Vec::new(),
                csv: Some(to_csv(entries)),
            },
            "the audit trail",
        )?;
        if more {
            p.note(&more_hint(entries))?;
        }
    }
    Ok(())
}

/// `More: repeat with --until <the oldest shown>`: the trail pages by time.
fn more_hint(entries: &[AuditEntry]) -> String {
    match entries.last().and_then(|entry| format::to_datetime(&entry.at)) {
        Some(at) => format!(
            "More: repeat with --until {} for older events.\n",
            at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        ),
        None => String::new(),
    }
}

/// How many events, and how to see older ones when there are more: for stderr.
pub fn footer(entries: &[AuditEntry], more: bool) -> String {
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str("Nothing was recorded in that time.\n");
    }
    let count = format::counted(entries.len() as u64, "event");
    if more {
        out.push_str(&format!("{count} (the newest; there are more)\n"));
        out.push_str(&more_hint(entries));
    } else {
        out.push_str(&format!("{count}\n"));
    }
    out
}

/// The trail for `-o csv`: RFC 3339 times.
pub fn to_csv(entries: &[AuditEntry]) -> Grid {
    let mut grid = Grid::new(&["at", "actor", "action", "target", "outcome"]);
    for entry in entries {
        grid.rows.push(vec![
            format::to_datetime(&entry.at)
                .map(|at| at.to_rfc3339())
                .unwrap_or_default(),
            entry.actor.clone(),
            entry.action.clone(),
            entry.target.clone(),
            entry.outcome.clone(),
        ]);
    }
    grid
}

/// The entries of all three sources at or after `since`, newest first, at most `limit`.
pub fn merge(
    terminations: &[Termination],
    events: &[AuditEvent],
    denied: &[Session],
    since: DateTime<Utc>,
    limit: i32,
) -> Vec<AuditEntry> {
    let mut entries: Vec<AuditEntry> = terminations
        .iter()
        .filter_map(termination_entry)
        .chain(events.iter().filter_map(policy_entry))
        .chain(denied.iter().filter_map(denied_entry))
        .filter(|entry| format::to_datetime(&entry.at).is_some_and(|at| at >= since))
        .collect();
    // Newest first; equal times keep a stable order by action and target.
    entries.sort_by(|a, b| {
        (b.at.seconds, b.at.nanos)
            .cmp(&(a.at.seconds, a.at.nanos))
            .then_with(|| a.action.cmp(&b.action))
            .then_with(|| a.target.cmp(&b.target))
    });
    entries.truncate(usize::try_from(limit).unwrap_or(0));
    entries
}

fn termination_entry(termination: &Termination) -> Option<AuditEntry> {
    let delivery = if termination.session_count == 0 {
        "nothing to end".to_owned()
    } else {
        format!(
            "{} of {} acknowledged, {} pending, {} failed",
            termination.acknowledged + termination.already_ended,
            termination.session_count,
            termination.pending + termination.delivered,
            termination.failed
        )
    };
    Some(AuditEntry {
        at: termination.created_at?,
        actor: termination.actor.clone(),
        action: "sessions.terminate".to_owned(),
        target: format!(
            "{} ({}, termination {})",
            format::selector(termination.selector.as_ref()),
            format::reason(termination.reason()),
            format::short_id(&termination.id)
        ),
        outcome: delivery,
    })
}

fn policy_entry(event: &AuditEvent) -> Option<AuditEntry> {
    let outcome = match event.outcome() {
        AuditOutcome::Succeeded => "done".to_owned(),
        AuditOutcome::Failed if event.detail.is_empty() => "failed".to_owned(),
        AuditOutcome::Failed => format!("failed: {}", event.detail),
        AuditOutcome::Unspecified => format::or_none("").to_owned(),
    };
    Some(AuditEntry {
        at: event.at?,
        actor: event.actor.clone(),
        action: event.action.clone(),
        target: event.target.clone(),
        outcome,
    })
}

fn denied_entry(session: &Session) -> Option<AuditEntry> {
    let reason = session
        .end_detail
        .strip_prefix("admission denied: ")
        .unwrap_or(&session.end_detail);
    Some(AuditEntry {
        at: session.started_at?,
        actor: ADMISSION_ACTOR.to_owned(),
        action: "admission.deny".to_owned(),
        target: format!(
            "{} → {} from {} via {}",
            session.user,
            format::resource(session),
            format::or_none(&session.client_ip),
            format::or_none(&session.gateway_id)
        ),
        outcome: format!("denied: {reason}"),
    })
}

/// The trail as a table; its first line is the header, empty when there is nothing.
pub fn table<Tz: TimeZone<Offset: Display>>(entries: &[AuditEntry], now: &DateTime<Tz>) -> String {
    if entries.is_empty() {
        return String::new();
    }
    let mut table = render::table(&["WHEN", "ACTOR", "ACTION", "TARGET", "OUTCOME"]);
    for entry in entries {
        table.add_row(vec![
            format::date_time(Some(&entry.at), now),
            format::or_none(&entry.actor).to_owned(),
            entry.action.clone(),
            entry.target.clone(),
            entry.outcome.clone(),
        ]);
    }
    format!("{}\n", table.trim_fmt())
}

/// The trail as JSON: `{"events": [{"at", "actor", "action", "target", "outcome"}]}`.
pub fn to_json(entries: &[AuditEntry]) -> serde_json::Value {
    let events: Vec<serde_json::Value> = entries
        .iter()
        .map(|entry| {
            json!({
                "at": format::to_datetime(&entry.at).map(|at| at.to_rfc3339()),
                "actor": entry.actor,
                "action": entry.action,
                "target": entry.target,
                "outcome": entry.outcome,
            })
        })
        .collect();
    json!({ "events": events })
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{EndReason, ResourceType, SessionIds, SessionSelector, session_selector::Target};

    use super::*;

    fn at(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn the_three_sources_merge_newest_first_within_the_window_and_limit() {
        let termination = Termination {
            id: "0195a3c0-7e1f-7000-8000-000000000001".into(),
            actor: "olga@example.com".into(),
            selector: Some(SessionSelector {
                target: Some(Target::SessionIds(SessionIds {
                    ids: vec!["0195a3c0-7e1f-7000-8000-0000000000aa".into()],
                })),
            }),
            reason: EndReason::Admin as i32,
            created_at: at(1_000),
            session_count: 1,
            acknowledged: 1,
            ..Termination::default()
        };
        let event = AuditEvent {
            id: "e1".into(),
            at: at(2_000),
            actor: "ada@example.com".into(),
            action: "policy.update".into(),
            target: "policy 0195… (user \"bob\")".into(),
            outcome: AuditOutcome::Failed as i32,
            detail: "policy \"x\" not found".into(),
        };
        let denied = Session {
            user: "mallory@example.com".into(),
            resource_name: "prod-db-01".into(),
            resource_type: ResourceType::Ssh as i32,
            client_ip: "203.0.113.9".into(),
            gateway_id: "gw-1".into(),
            started_at: at(3_000),
            end_detail: "admission denied: risk score 90 reaches the deny threshold 80".into(),
            ..Session::default()
        };
        let old = Termination {
            created_at: at(10),
            ..termination.clone()
        };
        let since = DateTime::from_timestamp(500, 0).unwrap();

        let entries = merge(&[termination, old], &[event], &[denied], since, 10);

        let actions: Vec<&str> = entries.iter().map(|entry| entry.action.as_str()).collect();
        assert_eq!(actions, ["admission.deny", "policy.update", "sessions.terminate"]);
        assert_eq!(entries[0].actor, ADMISSION_ACTOR);
        assert_eq!(
            entries[0].outcome,
            "denied: risk score 90 reaches the deny threshold 80"
        );
        assert!(
            entries[0].target.starts_with("mallory@example.com → prod-db-01"),
            "{}",
            entries[0].target
        );
        assert_eq!(entries[1].outcome, "failed: policy \"x\" not found");
        assert_eq!(entries[2].actor, "olga@example.com");
        assert_eq!(entries[2].outcome, "1 of 1 acknowledged, 0 pending, 0 failed");

        let two = merge(&[], &[], &[], since, 2);
        assert!(two.is_empty());
        let json = to_json(&entries);
        assert_eq!(json["events"][2]["actor"], "olga@example.com");
    }
}
