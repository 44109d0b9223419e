//! Where output goes and in which shape, kubectl's way: `-o table|wide|json|yaml|name|jsonpath=…|csv`,
//! `--no-headers`, and the split between data (stdout) and notes for people (stderr: footers, "more"
//! hints, "nothing matches"), so `sessionctl sessions list | awk '{print $2}'` sees the table alone.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use serde_json::Value;

use crate::error::CliError;

/// The shape of the output (`-o`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Columns for people (the default).
    #[default]
    Table,
    /// The table with every column and full ids.
    Wide,
    /// Pretty JSON (one object per line for `watch`).
    Json,
    /// YAML (one document per event for `watch`).
    Yaml,
    /// `kind/id`, one per line: what to feed back into another command.
    Name,
    /// A kubectl JSONPath template over the JSON output: `jsonpath={.sessions[*].id}`.
    JsonPath(String),
    /// Comma-separated values with a header row, for spreadsheets (lists only).
    Csv,
}

/// What `-o` accepts, for the help and for errors.
pub const FORMATS: &str = "table, wide, json, yaml, name, jsonpath=TEMPLATE, csv";

impl FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(template) = s.strip_prefix("jsonpath=") {
            // Checked now, so a typo is a usage error before anything is asked of a server.
            Template::parse(template)?;
            return Ok(OutputFormat::JsonPath(template.to_owned()));
        }
        match s {
            "table" => Ok(OutputFormat::Table),
            "wide" => Ok(OutputFormat::Wide),
            "json" => Ok(OutputFormat::Json),
            "yaml" => Ok(OutputFormat::Yaml),
            "name" => Ok(OutputFormat::Name),
            "csv" => Ok(OutputFormat::Csv),
            "jsonpath" => Err("jsonpath needs a template: -o 'jsonpath={.sessions[*].id}'".to_owned()),
            other => Err(format!("unknown output format `{other}`; expected one of: {FORMATS}")),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputFormat::Table => f.write_str("table"),
            OutputFormat::Wide => f.write_str("wide"),
            OutputFormat::Json => f.write_str("json"),
            OutputFormat::Yaml => f.write_str("yaml"),
            OutputFormat::Name => f.write_str("name"),
            OutputFormat::JsonPath(template) => write!(f, "jsonpath={template}"),
            OutputFormat::Csv => f.write_str("csv"),
        }
    }
}

impl OutputFormat {
    /// Tables and blocks for people (`table`, `wide`).
    pub fn is_human(&self) -> bool {
        matches!(self, OutputFormat::Table | OutputFormat::Wide)
    }
}

/// Rows for `-o csv` (and the source of the table's cells where a resource builds both from one grid).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grid {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Grid {
    pub fn new(header: &[&str]) -> Self {
        Grid {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled; CRLF-free (LF) lines.
    pub fn to_csv(&self, headers: bool) -> String {
        let mut out = String::new();
        let lines = headers.then_some(&self.header).into_iter().chain(self.rows.iter());
        for row in lines {
            let cells: Vec<String> = row.iter().map(|cell| csv_field(cell)).collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        out
    }
}

fn csv_field(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}

/// The machine-readable view of one answer: its JSON, its names (`kind/id`) and, for lists, its CSV.
pub struct Data<'a> {
    pub json: &'a Value,
    pub names: Vec<String>,
    pub csv: Option<Grid>,
}

/// stdout and stderr with the output settings; writing to it (`write!`) writes to stdout.
pub struct Printer<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    pub format: OutputFormat,
    pub no_headers: bool,
    /// Colour on: a terminal (or `--color always`) and no `NO_COLOR`.
    pub color: bool,
}

impl<'a> Printer<'a> {
    pub fn new(out: &'a mut dyn Write, err: &'a mut dyn Write, format: OutputFormat, no_headers: bool) -> Self {
        Printer {
            out,
            err,
            format,
            no_headers,
            color: false,
        }
    }

    pub fn is_human(&self) -> bool {
        self.format.is_human()
    }

    pub fn is_wide(&self) -> bool {
        self.format == OutputFormat::Wide
    }

    /// A table (its first line the header, dropped with `--no-headers`) to stdout.
    pub fn table(&mut self, text: &str) -> io::Result<()> {
        let body = if self.no_headers {
            text.split_once('\n').map_or("", |(_, rest)| rest)
        } else {
            text
        };
        self.out.write_all(terminal_safe(body).as_bytes())
    }

    /// A note for people — footers, "more" hints, "nothing matches" — to stderr, so pipes see data only.
    pub fn note(&mut self, text: &str) -> io::Result<()> {
        self.err.write_all(terminal_safe(text).as_bytes())?;
        self.err.flush()
    }

    /// The answer in the machine format asked for (never called for `table`/`wide`).
    pub fn data(&mut self, data: Data<'_>, what: &str) -> Result<(), CliError> {
        match &self.format {
            OutputFormat::Table | OutputFormat::Wide | OutputFormat::Json => writeln!(self.out, "{:#}", data.json)?,
            OutputFormat::Yaml => write!(self.out, "{}", to_yaml(data.json))?,
            OutputFormat::Name => {
                if data.names.is_empty() && !has_items(data.json) {
                    return Err(CliError::Usage(format!(
                        "-o name lists resources; {what} has none (try -o json)"
                    )));
                }
                for name in &data.names {
                    writeln!(self.out, "{name}")?;
                }
            }
            OutputFormat::JsonPath(template) => {
                let template = Template::parse(template).map_err(CliError::Usage)?;
                writeln!(self.out, "{}", template.render(data.json).map_err(CliError::Usage)?)?;
            }
            OutputFormat::Csv => match data.csv {
                Some(grid) => write!(self.out, "{}", grid.to_csv(!self.no_headers))?,
                None => {
                    return Err(CliError::Usage(format!(
                        "-o csv is for lists; {what} is not one (try -o json or -o yaml)"
                    )));
                }
            },
        }
        Ok(())
    }

    /// One event of a stream (`watch`) in the machine format: JSON on one line, a YAML document each.
    pub fn event(&mut self, data: Data<'_>) -> Result<(), CliError> {
        match &self.format {
            OutputFormat::Json => writeln!(self.out, "{}", data.json)?,
            OutputFormat::Yaml => write!(self.out, "---\n{}", to_yaml(data.json))?,
            OutputFormat::Csv => {
                return Err(CliError::Usage(
                    "-o csv is for lists; `watch` streams events (try -o json)".to_owned(),
                ));
            }
            _ => self.data(data, "an event")?,
        }
        self.out.flush()?;
        Ok(())
    }
}

/// Text from servers as a terminal may show it: control characters other than line breaks and tabs
/// are written out as escapes (`\u{1b}`), so a session's user name, a termination's note or an
/// audit target cannot move the cursor, retitle the window or erase what was printed. The one
/// escape kept is sessionctl's own colour (`ESC [ digits;… m`), which can only colour text.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let is_colour = |rest: &str| {
        rest.strip_prefix('[')
            .and_then(|rest| rest.split_once('m'))
            .is_some_and(|(codes, _)| {
                !codes.is_empty() && codes.len() <= 8 && codes.bytes().all(|b| b.is_ascii_digit() || b == b';')
            })
    };
    let unsafe_at = |index: usize, c: char| {
        c.is_control() && c != '\n' && c != '\t' && !(c == '\x1b' && is_colour(&text[index + 1..]))
    };
    if !text.char_indices().any(|(index, c)| unsafe_at(index, c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for (index, c) in text.char_indices() {
        if unsafe_at(index, c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether a list answer has an empty list in it (`-o name` of an empty list prints nothing, fine).
fn has_items(json: &Value) -> bool {
    json.as_object()
        .is_some_and(|object| object.values().any(|value| value.as_array().is_some()))
}

impl Write for Printer<'_> {
    /// Everything written to stdout passes [`terminal_safe`] (JSON and YAML escape on their own).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.out.write_all(terminal_safe(text).as_bytes())?,
            Err(_) => self
                .out
                .write_all(terminal_safe(&String::from_utf8_lossy(buf)).as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// JSON as block YAML: maps and lists indented, strings quoted only when plain YAML would misread them.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if map.is_empty() => out.push_str("{}\n"),
        Value::Array(items) if items.is_empty() => out.push_str("[]\n"),
        Value::Object(_) | Value::Array(_) => yaml_block(value, 0, &mut out),
        scalar => {
            out.push_str(&yaml_scalar(scalar));
            out.push('\n');
        }
    }
    out
}

fn yaml_block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                out.push_str(&format!("{pad}{}:", yaml_string(key)));
                yaml_child(value, indent, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&format!("{pad}-"));
                match item {
                    // A map in a list starts on the dash's line, its other keys under the first.
                    Value::Object(map) if !map.is_empty() => {
                        let mut nested = String::new();
                        yaml_block(item, indent + 2, &mut nested);
                        out.push(' ');
                        out.push_str(nested.trim_start());
                    }
                    _ => yaml_child(item, indent, out),
                }
            }
        }
        scalar => {
            out.push_str(&pad);
            out.push_str(&yaml_scalar(scalar));
            out.push('\n');
        }
    }
}

fn yaml_child(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            yaml_block(value, indent + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            yaml_block(value, indent + 2, out);
        }
        Value::Object(_) => out.push_str(" {}\n"),
        Value::Array(_) => out.push_str(" []\n"),
        scalar => {
            out.push(' ');
            out.push_str(&yaml_scalar(scalar));
            out.push('\n');
        }
    }
}

fn yaml_scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => yaml_string(s),
        other => other.to_string(),
    }
}

/// A string plain when YAML reads it back as that same string, else double-quoted (JSON escapes are
/// valid YAML double-quoted escapes).
fn yaml_string(s: &str) -> String {
    let reserved = matches!(
        s.to_ascii_lowercase().as_str(),
        "" | "null" | "~" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    );
    let numeric = s.parse::<f64>().is_ok() || s.starts_with(['+', '-', '.']) && s[1..].parse::<f64>().is_ok();
    let special_start = s.starts_with([
        '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', ' ',
    ]);
    let special_inside = s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.ends_with(' ');
    let control = s.chars().any(char::is_control);
    // YAML 1.1 readers take `2025-03-04` and `2025-03-04T08:15:00Z` for timestamps, `1:30` for a number.
    let time_like = s.starts_with(|c: char| c.is_ascii_digit()) && (s.contains(':') || looks_like_date(s));
    if reserved || numeric || special_start || special_inside || control || time_like {
        Value::String(s.to_owned()).to_string()
    } else {
        s.to_owned()
    }
}

/// `YYYY-MM-DD` at the start.
fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

/// A kubectl-style JSONPath template: literal text with `{…}` expressions such as `{.sessions[*].id}`,
/// `{.sessions[0].user}`, `{.total_size}`, `{"\n"}`. Each expression prints its matches separated by spaces;
/// strings bare, other values as JSON. `range`/`end` are not supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Path(Vec<Step>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    All,
}

impl Template {
    pub fn parse(template: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(unescape(&rest[..open])));
            }
            let close = rest[open..]
                .find('}')
                .map(|at| at + open)
                .ok_or_else(|| format!("jsonpath template `{template}`: a `{{` is not closed"))?;
            let expression = rest[open + 1..close].trim();
            if let Some(literal) = expression.strip_prefix('"').and_then(|e| e.strip_suffix('"')) {
                parts.push(Part::Text(unescape(literal)));
            } else {
                parts.push(Part::Path(
                    parse_path(expression).map_err(|e| format!("jsonpath `{expression}`: {e}"))?,
                ));
            }
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(unescape(rest)));
        }
        if parts.is_empty() {
            return Err("the jsonpath template is empty".to_owned());
        }
        Ok(Template { parts })
    }

    pub fn render(&self, value: &Value) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Path(steps) => {
                    let mut found = vec![value];
                    for step in steps {
                        found = found.into_iter().flat_map(|v| apply(v, step)).collect();
                    }
                    let shown: Vec<String> = found
                        .into_iter()
                        .map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect();
                    out.push_str(&shown.join(" "));
                }
            }
        }
        Ok(out)
    }
}

fn apply<'v>(value: &'v Value, step: &Step) -> Vec<&'v Value> {
    match (step, value) {
        (Step::Key(key), Value::Object(map)) => map.get(key).into_iter().collect(),
        (Step::Index(index), Value::Array(items)) => items.get(*index).into_iter().collect(),
        (Step::All, Value::Array(items)) => items.iter().collect(),
        (Step::All, Value::Object(map)) => map.values().collect(),
        _ => Vec::new(),
    }
}

fn parse_path(expression: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut rest = expression.strip_prefix('$').unwrap_or(expression);
    if rest.is_empty() || rest == "." {
        return Ok(steps);
    }
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']').ok_or("a `[` is not closed")?;
            let inside = after[..close].trim();
            steps.push(if inside == "*" {
                Step::All
            } else if let Ok(index) = inside.parse::<usize>() {
                Step::Index(index)
            } else {
                Step::Key(inside.trim_matches(['\'', '"']).to_owned())
            });
            rest = &after[close + 1..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let key = &after[..end];
            if key.is_empty() {
                return Err("expected a field name after `.`".to_owned());
            }
            steps.push(if key == "*" {
                Step::All
            } else {
                Step::Key(key.to_owned())
            });
            rest = &after[end..];
        } else {
            return Err("paths start with `.` (such as .sessions[*].id)".to_owned());
        }
    }
    Ok(steps)
}

fn unescape(text: &str) -> String {
    text.replace("\\n", "\n").replace("\\t", "\t")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn page() -> Value {
        json!({
            "sessions": [
                {"id": "a1", "user": "alice", "risk": {"score": 10, "flags": ["new_country"]}},
                {"id": "b2", "user": "bob: admin", "risk": null}
            ],
            "total_size": 2,
            "next_page_token": ""
        })
    }

    #[test]
    fn formats_parse_and_print_back() {
        for text in [
            "table",
            "wide",
            "json",
            "yaml",
            "name",
            "csv",
            "jsonpath={.sessions[*].id}",
        ] {
            let format: OutputFormat = text.parse().expect(text);
            assert_eq!(format.to_string(), text);
        }
        assert!("xml".parse::<OutputFormat>().unwrap_err().contains("jsonpath=TEMPLATE"));
        assert!("jsonpath".parse::<OutputFormat>().is_err());
        assert!("jsonpath={.a".parse::<OutputFormat>().is_err());
    }

    #[test]
    fn jsonpath_picks_fields_lists_and_literals() {
        let value = page();
        let render = |t: &str| Template::parse(t).expect(t).render(&value).expect(t);
        assert_eq!(render("{.sessions[*].id}"), "a1 b2");
        assert_eq!(render("{.sessions[0].risk.flags[0]}"), "new_country");
        assert_eq!(render("{.total_size}"), "2");
        assert_eq!(render("n={.total_size}{\"\\n\"}"), "n=2\n");
        assert_eq!(render("{.sessions[1].risk}"), "null");
        assert_eq!(render("{.missing}"), "");
    }

    #[test]
    fn yaml_quotes_only_what_would_be_misread() {
        let yaml = to_yaml(&page());
        assert_eq!(
            yaml,
            "next_page_token: \"\"\nsessions:\n  - id: a1\n    risk:\n      flags:\n        - new_country\n      \
             score: 10\n    user: alice\n  - id: b2\n    risk: null\n    user: \"bob: admin\"\ntotal_size: 2\n"
        );
        assert_eq!(
            to_yaml(&json!({"a": [], "b": {}, "c": "true", "d": "12"})),
            "a: []\nb: {}\nc: \"true\"\nd: \"12\"\n"
        );
        assert_eq!(
            to_yaml(&json!({"at": "2025-03-04T08:15:00Z", "day": "2025-03-04", "ip": "81.2.69.142"})),
            "at: \"2025-03-04T08:15:00Z\"\nday: \"2025-03-04\"\nip: 81.2.69.142\n"
        );
    }

    #[test]
    fn server_text_cannot_drive_the_terminal() {
        assert_eq!(terminal_safe("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(terminal_safe("\x1b[31mred\x1b[0m"), "\x1b[31mred\x1b[0m");
        assert_eq!(terminal_safe("a\x1b]0;pwned\x07b"), "a\\u{1b}]0;pwned\\u{7}b");
        assert_eq!(terminal_safe("x\x1b[2J\ry"), "x\\u{1b}[2J\\ry");
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut printer = Printer::new(&mut out, &mut err, OutputFormat::Table, false);
        printer.table("TARGET\nlock \x1b[2Jx\n").unwrap();
        printer.note("note \x1b]8;;http://evil\x07\n").unwrap();
        write!(printer, "id \x08\x08\x08").unwrap();
        let out = String::from_utf8(out).unwrap();
        let err = String::from_utf8(err).unwrap();
        assert!(!out.contains('\x1b') && !out.contains('\x08'), "{out:?}");
        assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err:?}");
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks() {
        let mut grid = Grid::new(&["ID", "NOTE"]);
        grid.rows.push(vec!["a1".into(), "plain".into()]);
        grid.rows.push(vec!["b2".into(), "says \"hi\", twice\nok".into()]);
        assert_eq!(
            grid.to_csv(true),
            "ID,NOTE\na1,plain\nb2,\"says \"\"hi\"\", twice\nok\"\n"
        );
        assert_eq!(grid.to_csv(false), "a1,plain\nb2,\"says \"\"hi\"\", twice\nok\"\n");
    }

    #[test]
    fn no_headers_drops_the_tables_first_line_and_notes_go_to_stderr() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut printer = Printer::new(&mut out, &mut err, OutputFormat::Table, true);
        printer.table("A  B\n1  2\n").expect("write");
        printer.note("1 of 1\n").expect("write");
        assert_eq!(String::from_utf8(out).expect("utf-8"), "1  2\n");
        assert_eq!(String::from_utf8(err).expect("utf-8"), "1 of 1\n");
    }
}
