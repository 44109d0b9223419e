//! Sinks for people.

use chrono::{DateTime, TimeZone};
use vigil_proto::v1::{SinkStatus, TestSinkResponse};

use crate::format;
use crate::render::table;

/// The filter as a sink applies it: `all`, `session.*,lock.created`, `… risk≥40`.
pub fn filter(sink: &SinkStatus) -> String {
    let types = if sink.types.is_empty() {
        "all".to_owned()
    } else {
        sink.types.join(",")
    };
    match sink.min_risk {
        Some(min) => format!("{types} risk≥{min}"),
        None => types,
    }
}

/// How far behind a sink is: `-` with nothing pending, else the count and the oldest event's age.
pub fn backlog<Tz: TimeZone>(sink: &SinkStatus, now: &DateTime<Tz>) -> String {
    if sink.backlog == 0 {
        return "0".to_owned();
    }
    match &sink.oldest_pending_at {
        Some(_) => format!(
            "{} (oldest {})",
            sink.backlog,
            format::ago(sink.oldest_pending_at.as_ref(), now)
        ),
        None => sink.backlog.to_string(),
    }
}

/// The latest error and how long ago it was; `-` when there was none.
pub fn last_error<Tz: TimeZone>(sink: &SinkStatus, now: &DateTime<Tz>) -> String {
    if sink.last_error.is_empty() {
        return format::NONE.to_owned();
    }
    match &sink.last_error_at {
        Some(_) => format!(
            "{} ({})",
            sink.last_error,
            format::ago(sink.last_error_at.as_ref(), now)
        ),
        None => sink.last_error.clone(),
    }
}

/// The sinks table (wide: the target, who delivers it, the last delivery); its first line is the
/// header, empty when there are none.
pub fn sinks_table<Tz: TimeZone>(sinks: &[SinkStatus], wide: bool, now: &DateTime<Tz>) -> String {
    if sinks.is_empty() {
        return String::new();
    }
    let mut header = vec![
        "SERVICE",
        "SINK",
        "KIND",
        "FILTER",
        "DELIVERED",
        "FAILED",
        "BACKLOG",
        "LAST ERROR",
    ];
    if wide {
        header.extend(["TARGET", "HOLDER", "LAST DELIVERED"]);
    }
    let mut table = table(&header);
    for sink in sinks {
        let mut row = vec![
            sink.service.clone(),
            sink.name.clone(),
            format::or_none(&sink.kind).to_owned(),
            filter(sink),
            sink.delivered.to_string(),
            sink.failed.to_string(),
            backlog(sink, now),
            last_error(sink, now),
        ];
        if wide {
            row.extend([
                format::or_none(&sink.target).to_owned(),
                format::or_none(&sink.holder).to_owned(),
                format::ago(sink.last_delivered_at.as_ref(), now),
            ]);
        }
        table.add_row(row);
    }
    format!("{}\n", table.trim_fmt())
}

/// How many sinks, and the backlog over all of them: for stderr.
pub fn sinks_footer(sinks: &[SinkStatus]) -> String {
    if sinks.is_empty() {
        return "No event sinks configured (see [events.sinks.<name>] in the services' configuration).\n".to_owned();
    }
    let mut names: Vec<&str> = sinks.iter().map(|sink| sink.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let backlog: u64 = sinks.iter().map(|sink| sink.backlog).sum();
    let failing = sinks
        .iter()
        .filter(|sink| sink.backlog > 0 && !sink.last_error.is_empty())
        .count();
    let mut text = format!(
        "{} over {}; {} pending",
        format::counted(names.len() as u64, "sink"),
        format::counted(sinks.len() as u64, "relay"),
        format::counted(backlog, "event")
    );
    if failing > 0 {
        text.push_str(&format!(", {failing} behind with an error"));
    }
    text.push('\n');
    text
}

/// What `events test` says when the sink took the event.
pub fn tested(sink: &str, answer: &TestSinkResponse) -> String {
    format!(
        "Test event {} delivered to sink {sink} (from the {} relay) in {} ms.\n",
        answer.event_id, answer.service, answer.elapsed_ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn soc() -> SinkStatus {
        SinkStatus {
            service: "registry".into(),
            name: "soc".into(),
            kind: "webhook".into(),
            target: "https://hooks.example.com".into(),
            types: vec!["session.*".into(), "lock.created".into()],
            min_risk: Some(40),
            delivered: 120,
            failed: 2,
            backlog: 7,
            oldest_pending_at: at("2025-03-04T11:55:00+01:00"),
            last_error: "HTTP 503 Service Unavailable".into(),
            last_error_at: at("2025-03-04T11:58:00+01:00"),
            last_delivered_at: at("2025-03-04T11:54:00+01:00"),
            holder: "registry-7f3a".into(),
            lease_until: at("2025-03-04T12:00:30+01:00"),
        }
    }

    #[test]
    fn the_table_shows_filter_counts_backlog_age_and_the_last_error() {
        let idle = SinkStatus {
            service: "policy".into(),
            name: "siem".into(),
            kind: "syslog".into(),
            ..SinkStatus::default()
        };
        let text = sinks_table(&[soc(), idle.clone()], false, &now());
        let row = line_containing(&text, "registry");
        for cell in [
            "soc",
            "webhook",
            "session.*,lock.created risk≥40",
            "120",
            "7 (oldest 5m ago)",
            "HTTP 503 Service Unavailable (2m ago)",
        ] {
            assert!(row.contains(cell), "{cell:?} missing from {row:?}");
        }
        assert!(!text.contains("hooks.example.com"), "the target is for -o wide");
        let row = line_containing(&text, "siem");
        assert!(row.contains("all") && row.contains('-'), "{row:?}");
        let wide = sinks_table(&[soc()], true, &now());
        assert!(
            wide.contains("https://hooks.example.com") && wide.contains("registry-7f3a"),
            "{wide}"
        );
        assert_eq!(sinks_table(&[], false, &now()), "");
        assert_eq!(
            sinks_footer(&[soc(), idle]),
            "2 sinks over 2 relays; 7 events pending, 1 behind with an error\n"
        );
        assert!(sinks_footer(&[]).starts_with("No event sinks configured"));
    }
}
