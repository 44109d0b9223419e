//! Colour for people at a terminal: idle sessions dimmed-yellow, flagged ones and failed deliveries red,
//! watch events by kind. Only on a terminal (or with `--color always`), never with `NO_COLOR` set
//! (<https://no-color.org>) unless `--color always` says so, and never in machine formats.
//!
//! Whole table rows are painted after layout, so the escape codes never count towards column widths.

use clap::ValueEnum;
use vigil_proto::v1::{SessionEvent, SessionEventKind, SessionStatus};

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set.
    #[default]
    Auto,
    Always,
    Never,
}

/// Whether to paint: `always`; `auto` on a terminal without `NO_COLOR`; never with `never`.
pub fn enabled(choice: ColorChoice, terminal: bool, no_color: Option<&str>) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && no_color.is_none_or(str::is_empty),
    }
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD_RED: &str = "\x1b[1;31m";
const RESET: &str = "\x1b[0m";

pub fn paint(text: &str, style: &str, on: bool) -> String {
    if on && !text.is_empty() {
        format!("{style}{text}{RESET}")
    } else {
        text.to_owned()
    }
}

/// Paints row `i` of a rendered table (line `i + 1`; the header is line 0) with `style(i)`.
pub fn rows(table: &str, on: bool, style: impl Fn(usize) -> Option<&'static str>) -> String {
    if !on {
        return table.to_owned();
    }
    let mut out = String::with_capacity(table.len());
    for (at, line) in table.lines().enumerate() {
        match at.checked_sub(1).and_then(&style) {
            Some(style) => out.push_str(&paint(line, style, true)),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The style of a session's row: red when flagged, yellow when idle.
pub fn session_style(status: SessionStatus, flagged: bool) -> Option<&'static str> {
    if flagged {
        Some(RED)
    } else if status == SessionStatus::Idle {
        Some(YELLOW)
    } else {
        None
    }
}

/// The style of a row with failures (failed deliveries).
pub fn failure_style(failed: bool) -> Option<&'static str> {
    failed.then_some(RED)
}

/// A watch line painted by its event's kind.
pub fn event_line(line: &str, event: &SessionEvent, on: bool) -> String {
    let style = match event.kind() {
        SessionEventKind::Opened => GREEN,
        SessionEventKind::Ended => RED,
        SessionEventKind::Denied => BOLD_RED,
        _ if event
            .session
            .as_ref()
            .is_some_and(|s| s.status() == SessionStatus::Idle) =>
        {
            YELLOW
        }
        _ => return line.to_owned(),
    };
    paint(line, style, on)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_means_a_terminal_without_no_color() {
        assert!(enabled(ColorChoice::Auto, true, None));
        assert!(enabled(ColorChoice::Auto, true, Some("")));
        assert!(!enabled(ColorChoice::Auto, true, Some("1")));
        assert!(!enabled(ColorChoice::Auto, false, None));
        assert!(enabled(ColorChoice::Always, false, Some("1")));
        assert!(!enabled(ColorChoice::Never, true, None));
    }

    #[test]
    fn rows_are_painted_whole_and_the_header_never() {
        let table = "A  B\n1  x\n2  y\n";
        let painted = rows(table, true, |row| (row == 1).then_some(YELLOW));
        assert_eq!(painted, "A  B\n1  x\n\x1b[33m2  y\x1b[0m\n");
        assert_eq!(rows(table, false, |_| Some(RED)), table);
    }
}
