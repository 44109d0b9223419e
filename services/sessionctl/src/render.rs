//! Human output shared by every resource: the table layout and key/value blocks. Each resource renders its
//! own values (`sessions::render`, …) as pure functions of proto values and `now`.
//!
//! Tables are laid out by `comfy-table` (which measures display width, so `⚑` and CJK city names line up)
//! without borders, like `kubectl`'s.

use std::fmt::Display;

use chrono::{DateTime, TimeZone};
use comfy_table::{ContentArrangement, Table, presets};

use crate::format::{self, NONE};

/// Spaces between table columns.
pub(crate) const COLUMN_GAP: u16 = 3;

pub(crate) fn with_ago<Tz: TimeZone<Offset: Display>>(
    ts: Option<&prost_types::Timestamp>,
    now: &DateTime<Tz>,
) -> String {
    match ts.and_then(format::to_datetime) {
        Some(_) => format!("{} ({})", format::date_time(ts, now), format::ago(ts, now)),
        None => NONE.to_owned(),
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
pub(crate) fn key_values(rows: &[(&str, String)]) -> String {
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
