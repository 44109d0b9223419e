//! What every command shares: the global flags and the parsers of values several resources take.
//! Apart from the command tree (`cli`) so that the resources' modules depend on this and not on
//! the tree that names them.

use std::fmt::{self};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use clap::Args;

use crate::color::ColorChoice;
use crate::output::OutputFormat;

/// Where the registry listens when nothing else is said (`make run` starts it there).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7400";

/// Flags every subcommand accepts, before or after the subcommand's name.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The registry's gRPC address (`host:port` means `http://host:port`; `https://` trusts --ca, else the
    /// system's trust store)
    /// [default: the config file's `server`, else http://127.0.0.1:7400]
    #[arg(long, env = "VIGIL_SERVER", value_parser = parse_server, global = true)]
    pub server: Option<String>,

    /// The termination service's gRPC address, for deployments that run it apart from the registry
    /// (default: the --server address, where the all-in-one binary serves both).
    #[arg(long, env = "VIGIL_TERMINATION_SERVER", value_parser = parse_server, global = true, hide_short_help = true)]
    pub termination_server: Option<String>,

    /// The policy service's gRPC address, for deployments that run it apart from the registry
    /// (default: the --server address, where the all-in-one binary serves both).
    #[arg(long, env = "VIGIL_POLICY_SERVER", value_parser = parse_server, global = true, hide_short_help = true)]
    pub policy_server: Option<String>,

    /// Output format: table, wide, json, yaml, name, jsonpath=TEMPLATE (kubectl's, such as
    /// 'jsonpath={.sessions[*].id}'), csv (lists)
    #[arg(short = 'o', long, value_name = "FORMAT", default_value = "table", value_parser = parse_output, global = true)]
    pub output: OutputFormat,

    /// Leave out the header row of tables (and of -o csv).
    #[arg(long, global = true)]
    pub no_headers: bool,

    /// Colour tables and watch lines: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto, global = true, hide_short_help = true)]
    pub color: ColorChoice,

    /// How long to wait for each service to connect and to answer each call ("10s", "500ms", "1m").
    #[arg(long, default_value = "10s", value_parser = parse_timeout, global = true, hide_short_help = true)]
    pub timeout: Duration,

    /// Bearer token sent with every call as `authorization: Bearer <token>` [default: the config
    /// file's `token` or `token_file`; against a local server, ./vigil-data/admin.token if present]
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<Token>,

    /// The CA certificate (PEM) that signed the servers' certificates, for `https://` addresses.
    #[arg(long, env = "VIGIL_CA", value_name = "FILE", global = true, hide_short_help = true)]
    pub ca: Option<PathBuf>,

    /// The configuration file with `server`, `token` (or `token_file`) and `ca`, or named profiles of them
    /// (`[contexts.NAME]`)
    /// [default: $XDG_CONFIG_HOME/vigil/sessionctl.toml, or ~/.config/vigil/sessionctl.toml]
    #[arg(
        long,
        env = "SESSIONCTL_CONFIG",
        value_name = "FILE",
        global = true,
        hide_short_help = true
    )]
    pub config: Option<PathBuf>,

    /// The named profile of the config file to use [default: its `current_context`]
    #[arg(long, env = "SESSIONCTL_CONTEXT", value_name = "NAME", global = true)]
    pub context: Option<String>,
}

impl GlobalArgs {
    /// The registry's address: `--server`, `VIGIL_SERVER`, the config file's, or the default.
    pub fn server(&self) -> &str {
        self.server.as_deref().unwrap_or(DEFAULT_SERVER)
    }

    /// Where the termination service listens: `--termination-server`, else the registry's address.
    pub fn termination_address(&self) -> &str {
        self.termination_server.as_deref().unwrap_or(self.server())
    }

    /// Where the policy service listens: `--policy-server`, else the registry's address.
    pub fn policy_address(&self) -> &str {
        self.policy_server.as_deref().unwrap_or(self.server())
    }
}

/// A `--since`/`--until` bound: a point in time, or a duration before now (resolved when the request is built, so
/// tests can pin `now`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    At(DateTime<Utc>),
    Ago(Duration),
}

impl Since {
    pub fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Since::At(at) => at,
            // Absurdly long durations ("10000y") reach back to the epoch rather than fail.
            Since::Ago(ago) => TimeDelta::from_std(ago)
                .ok()
                .and_then(|ago| now.checked_sub_signed(ago))
                .map_or(DateTime::UNIX_EPOCH, |at| at.max(DateTime::UNIX_EPOCH)),
        }
    }
}

/// A bearer token. Its `Debug` never shows the value, so it cannot leak through logs or panics.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token itself, for the `authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl FromStr for Token {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let token = s.trim();
        if token.is_empty() {
            return Err("the token is empty".to_owned());
        }
        // It travels in an HTTP/2 header, which takes visible ASCII only.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a token may hold visible ASCII characters only (no spaces or control characters)".to_owned());
        }
        Ok(Token(token.to_owned()))
    }
}

/// `-o`: see [`OutputFormat`].
fn parse_output(s: &str) -> Result<OutputFormat, String> {
    s.parse()
}

/// Accepts `http://host:port`, or `host:port` (taken as plain HTTP).
pub(crate) fn parse_server(s: &str) -> Result<String, String> {
    let s = s.trim();
    let url = if s.contains("://") {
        s.to_owned()
    } else {
        format!("http://{s}")
    };
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(format!("`{s}` is not an http:// or https:// address"));
    }
    tonic::transport::Endpoint::from_shared(url.clone()).map_err(|e| format!("`{s}` is not a valid address: {e}"))?;
    Ok(url)
}

/// Accepts humantime durations ("10s", "1m 30s", "500ms") or a bare number of seconds.
pub(crate) fn parse_timeout(s: &str) -> Result<Duration, String> {
    let duration = match s.trim().parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10s, 500ms, 1m)"))?,
    };
    if duration.is_zero() {
        return Err("the timeout must be longer than zero".to_owned());
    }
    Ok(duration)
}

/// A rule's duration, with units ("10m", "1h 30m", "8h"): unlike --timeout, a bare number is refused,
/// since whether `30` means seconds or minutes is anybody's guess.
pub(crate) fn parse_rule_duration(s: &str) -> Result<prost_types::Duration, String> {
    let s = s.trim();
    let duration = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10m, 1h 30m, 8h)"))?;
    prost_types::Duration::try_from(duration).map_err(|_| format!("`{s}` is longer than a policy can hold"))
}

/// A user, gateway, resource or actor name: exact, so only surrounding blanks are dropped.
pub(crate) fn parse_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    if name.is_empty() {
        return Err("the name is empty".to_owned());
    }
    Ok(name.to_owned())
}

/// A `--since`/`--until` bound: an RFC 3339 time (2026-12-06T09:00:00Z), a date (2026-12-06: its start,
/// in the local time zone), or a duration before now ("1h", "2d 6h", or bare seconds).
pub(crate) fn parse_since(s: &str) -> Result<Since, String> {
    let s = s.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(s) {
        return Ok(Since::At(at.with_timezone(&Utc)));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let midnight = day.and_time(chrono::NaiveTime::MIN);
        let local = chrono::Local
            .from_local_datetime(&midnight)
            .earliest()
            .map(|at| at.with_timezone(&Utc))
            .unwrap_or_else(|| midnight.and_utc());
        return Ok(Since::At(local));
    }
    let ago = match s.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(s).map_err(|_| {
            format!(
                "`{s}` is neither a duration (1h, 30m, 2d), a date (2026-12-06) nor an RFC 3339 time \
                 (2026-12-06T09:00:00Z)"
            )
        })?,
    };
    Ok(Since::Ago(ago))
}
