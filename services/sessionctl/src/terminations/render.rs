//! Terminations for people: the trail, one in full, and the progress of an ending as it is followed.

use std::fmt::Display;

use chrono::{DateTime, TimeZone};
use vigil_proto::v1::{DeliveryState, ListTerminationsResponse, Termination};

use crate::format;
use crate::output::Grid;
use crate::render::{key_values, table, with_ago};

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

/// The terminations table, newest first; its first line is the header, empty when there are none.
///
/// PENDING counts every command the gateways have not answered yet (recorded or already handed over).
/// `wide` shows full termination ids.
pub fn terminations_table<Tz: TimeZone<Offset: Display>>(
    terminations: &[Termination],
    now: &DateTime<Tz>,
    wide: bool,
) -> String {
    if terminations.is_empty() {
        return String::new();
    }
    let grid = terminations_grid(terminations, now, wide);
    let header: Vec<&str> = grid.header.iter().map(String::as_str).collect();
    let mut table = table(&header);
    for row in grid.rows {
        table.add_row(row);
    }
    format!("{}\n", table.trim_fmt())
}

/// The table's cells; also what `-o csv` prints (with full ids and RFC 3339 times).
pub fn terminations_grid<Tz: TimeZone<Offset: Display>>(
    terminations: &[Termination],
    now: &DateTime<Tz>,
    wide: bool,
) -> Grid {
    let mut grid = Grid::new(&[
        "ID", "WHEN", "ACTOR", "SELECTOR", "REASON", "SESSIONS", "ACKED", "PENDING", "FAILED",
    ]);
    for t in terminations {
        let id = if wide {
            format::or_none(&t.id)
        } else {
            format::short_id(&t.id)
        };
        grid.rows.push(vec![
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
    grid
}

/// For `-o csv`: full ids and RFC 3339 times, the note too.
pub fn terminations_csv(terminations: &[Termination]) -> Grid {
    let mut grid = Grid::new(&[
        "id",
        "created_at",
        "actor",
        "selector",
        "reason",
        "note",
        "sessions",
        "acknowledged",
        "pending",
        "failed",
    ]);
    for t in terminations {
        grid.rows.push(vec![
            t.id.clone(),
            t.created_at
                .as_ref()
                .and_then(format::to_datetime)
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default(),
            t.actor.clone(),
            format::selector(t.selector.as_ref()),
            format::reason(t.reason()).to_owned(),
            t.note.clone(),
            t.session_count.to_string(),
            t.acknowledged.to_string(),
            (t.pending + t.delivered).to_string(),
            t.failed.to_string(),
        ]);
    }
    grid
}

/// How many are shown and, when there is more, how to get it: for stderr.
pub fn terminations_footer(page: &ListTerminationsResponse) -> String {
    let mut out = String::new();
    if page.terminations.is_empty() {
        out.push_str("No terminations match.\n");
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

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{DeliveryState, EndReason, ListTerminationsResponse, SessionSelector};

    use vigil_proto::v1::session_selector::Target;

    use super::*;
    use crate::testing::*;

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
        let text = terminations_table(&page.terminations, &now(), false);
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
        assert_eq!(terminations_footer(&page), "2 terminations\n");

        let wide = terminations_table(&page.terminations, &now(), true);
        assert!(wide.contains("0195a3c0-7e1f-7000-8000-00000000beef"), "{wide}");

        let more = ListTerminationsResponse {
            terminations: vec![],
            next_page_token: "t2".into(),
        };
        assert_eq!(terminations_table(&more.terminations, &now(), false), "");
        assert_eq!(
            terminations_footer(&more),
            "No terminations match.\n0 terminations\nMore: repeat with --page-token t2 for the next page, or add \
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
}
