//! The command line: flags, subcommands, and how filters become registry requests.
//!
//! Everything a person can get wrong is checked here, by clap, so a bad flag is a usage error (exit 2)
//! before any connection is attempted.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vigil_proto::v1::{
    ListGatewaysRequest, ListSessionsRequest, ResourceType, SessionFilter, SessionOrderBy, SessionStatus,
    WatchSessionsRequest,
};

/// Where the registry listens when nothing else is said (`make run` starts it there).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7400";

/// `sessionctl`: see and follow remote-access sessions through the Vigil registry.
#[derive(Debug, Parser)]
#[command(name = "sessionctl", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts, before or after the subcommand's name.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The registry's gRPC address (`host:port` means `http://host:port`).
    #[arg(long, env = "VIGIL_SERVER", default_value = DEFAULT_SERVER, value_parser = parse_server, global = true)]
    pub server: String,

    /// Output format: a table for people, JSON for scripts.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,

    /// How long to wait for the registry to connect and to answer each call ("10s", "500ms", "1m").
    #[arg(long, default_value = "10s", value_parser = parse_timeout, global = true)]
    pub timeout: Duration,

    /// Bearer token sent with every call as `authorization: Bearer <token>`.
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List and inspect sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Live-session counts: active, idle, total duration, by type, flagged, gateways, ended in the last 24h.
    Stats,
    /// Follow session changes as they happen, one line per event, until Ctrl-C.
    Watch(WatchArgs),
    /// See the gateways the registry knows.
    #[command(subcommand)]
    Gateways(GatewaysCommand),
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions matching a filter, a page at a time.
    List(ListArgs),
    /// Show everything about one session.
    Get(GetArgs),
}

#[derive(Debug, Subcommand)]
pub enum GatewaysCommand {
    /// List gateways with their connection state.
    List(GatewaysListArgs),
}

/// Which sessions a command covers; shared by `sessions list` and `watch`.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Only sessions in this status (repeatable). `live` is active + idle; `all` includes disconnected ones.
    #[arg(long = "status", value_enum, default_values_t = vec![StatusArg::Live])]
    pub statuses: Vec<StatusArg>,

    /// Only this user (exact name).
    #[arg(long)]
    pub user: Option<String>,

    /// Only this resource (exact name).
    #[arg(long)]
    pub resource: Option<String>,

    /// Only this kind of resource.
    #[arg(long = "type", value_enum)]
    pub resource_type: Option<TypeArg>,

    /// Only sessions through this gateway (exact id).
    #[arg(long)]
    pub gateway: Option<String>,

    /// Only sessions from this country (two-letter code, any case).
    #[arg(long, value_parser = parse_country)]
    pub country: Option<String>,

    /// Case-insensitive text found in the user, resource, device, client IP, city or gateway.
    #[arg(short = 'q', long)]
    pub query: Option<String>,

    /// Only sessions with at least one risk flag.
    #[arg(long)]
    pub flagged: bool,

    /// Only sessions whose risk score is at least this (0-100).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub min_risk: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Active,
    Idle,
    Disconnected,
    /// Active and idle.
    Live,
    /// Every status, disconnected included.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TypeArg {
    Ssh,
    Rdp,
    Web,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortArg {
    /// When the session started.
    Started,
    /// Last user input.
    Activity,
    User,
    Resource,
    /// Risk score.
    Risk,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,

    /// Sort key; newest / latest / highest / Z-A first unless --asc.
    #[arg(long, value_enum, default_value_t = SortArg::Started)]
    pub sort: SortArg,

    /// Sort ascending.
    #[arg(long)]
    pub asc: bool,

    /// Page size (1-1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub limit: i32,

    /// Continue from the page token an earlier list printed (same filters and sort).
    #[arg(long)]
    pub page_token: Option<String>,

    /// Fetch every page, not just one.
    #[arg(long)]
    pub all: bool,

    /// Show full session ids and the gateway column.
    #[arg(long)]
    pub wide: bool,
}

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// The session's full id (UUID); `sessions list --wide` shows it.
    #[arg(value_parser = parse_session_id)]
    pub id: String,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub filter: FilterArgs,

    /// Start with the sessions that are live now (SNAPSHOT lines), then follow changes.
    #[arg(long)]
    pub snapshot: bool,
}

#[derive(Debug, Clone, Args)]
pub struct GatewaysListArgs {
    /// Only gateways with an open link.
    #[arg(long)]
    pub connected: bool,
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

impl FilterArgs {
    /// The registry filter these flags describe. Statuses are always sent explicitly (never empty), so
    /// what the person asked for does not depend on the server's default.
    pub fn to_filter(&self) -> SessionFilter {
        let mut statuses: Vec<SessionStatus> = self.statuses.iter().flat_map(|s| s.expand()).copied().collect();
        statuses.sort_by_key(|s| *s as i32);
        statuses.dedup();

        SessionFilter {
            statuses: statuses.into_iter().map(i32::from).collect(),
            user: self.user.clone().unwrap_or_default(),
            resource_name: self.resource.clone().unwrap_or_default(),
            resource_type: self
                .resource_type
                .map_or(ResourceType::Unspecified, TypeArg::to_proto)
                .into(),
            gateway_id: self.gateway.clone().unwrap_or_default(),
            country_code: self.country.clone().unwrap_or_default(),
            query: self.query.clone().unwrap_or_default(),
            min_risk_score: self.min_risk.unwrap_or(0),
            flagged_only: self.flagged,
            client_ip: String::new(),
        }
    }
}

impl StatusArg {
    fn expand(self) -> &'static [SessionStatus] {
        match self {
            StatusArg::Active => &[SessionStatus::Active],
            StatusArg::Idle => &[SessionStatus::Idle],
            StatusArg::Disconnected => &[SessionStatus::Disconnected],
            StatusArg::Live => &[SessionStatus::Active, SessionStatus::Idle],
            StatusArg::All => &[SessionStatus::Active, SessionStatus::Idle, SessionStatus::Disconnected],
        }
    }
}

impl TypeArg {
    fn to_proto(self) -> ResourceType {
        match self {
            TypeArg::Ssh => ResourceType::Ssh,
            TypeArg::Rdp => ResourceType::Rdp,
            TypeArg::Web => ResourceType::Web,
        }
    }
}

impl SortArg {
    fn to_proto(self) -> SessionOrderBy {
        match self {
            SortArg::Started => SessionOrderBy::StartedAt,
            SortArg::Activity => SessionOrderBy::LastActivity,
            SortArg::User => SessionOrderBy::User,
            SortArg::Resource => SessionOrderBy::Resource,
            SortArg::Risk => SessionOrderBy::RiskScore,
        }
    }
}

impl ListArgs {
    /// The request for the first page this command asks for.
    pub fn to_request(&self) -> ListSessionsRequest {
        ListSessionsRequest {
            filter: Some(self.filter.to_filter()),
            order_by: self.sort.to_proto().into(),
            ascending: self.asc,
            page_size: self.limit,
            page_token: self.page_token.clone().unwrap_or_default(),
        }
    }
}

impl WatchArgs {
    pub fn to_request(&self) -> WatchSessionsRequest {
        WatchSessionsRequest {
            filter: Some(self.filter.to_filter()),
            include_snapshot: self.snapshot,
        }
    }
}

impl GatewaysListArgs {
    pub fn to_request(&self) -> ListGatewaysRequest {
        ListGatewaysRequest {
            connected_only: self.connected,
        }
    }
}

/// Accepts `http://host:port`, or `host:port` (taken as plain HTTP).
fn parse_server(s: &str) -> Result<String, String> {
    let s = s.trim();
    let url = if s.contains("://") {
        s.to_owned()
    } else {
        format!("http://{s}")
    };
    if url.starts_with("https://") {
        return Err("https:// needs TLS, which sessionctl does not support yet; use an http:// address".to_owned());
    }
    if !url.starts_with("http://") {
        return Err(format!("`{s}` is not an http:// address"));
    }
    tonic::transport::Endpoint::from_shared(url.clone()).map_err(|e| format!("`{s}` is not a valid address: {e}"))?;
    Ok(url)
}

/// Accepts humantime durations ("10s", "1m 30s", "500ms") or a bare number of seconds.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let duration = match s.trim().parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10s, 500ms, 1m)"))?,
    };
    if duration.is_zero() {
        return Err("the timeout must be longer than zero".to_owned());
    }
    Ok(duration)
}

fn parse_country(s: &str) -> Result<String, String> {
    let code = s.trim();
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err("expected a two-letter country code, such as DE".to_owned())
    }
}

/// Rejects the short ids the tables show, with a pointer to where the full id is.
fn parse_session_id(s: &str) -> Result<String, String> {
    let id = s.trim();
    if id.is_empty() {
        return Err("the session id is empty".to_owned());
    }
    let looks_shortened = id.len() < 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if looks_shortened {
        return Err(format!(
            "`{id}` looks like a shortened session id; `sessions get` needs the full id, which \
             `sessionctl sessions list --wide` shows"
        ));
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied())).expect("arguments parse")
    }

    fn list_args(args: &[&str]) -> ListArgs {
        let mut full = vec!["sessions", "list"];
        full.extend_from_slice(args);
        match parse(&full).command {
            Command::Sessions(SessionsCommand::List(list)) => list,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn filters_become_a_list_request() {
        let request = list_args(&["--status", "idle", "--type", "rdp", "--country", "de"]).to_request();
        let filter = request.filter.expect("filter is always sent");
        assert_eq!(filter.statuses, vec![SessionStatus::Idle as i32]);
        assert_eq!(filter.resource_type, ResourceType::Rdp as i32);
        assert_eq!(filter.country_code, "DE");
        assert_eq!(filter.user, "");
        assert!(!filter.flagged_only);
    }

    #[test]
    fn list_defaults_to_live_sessions_newest_first_fifty_per_page() {
        let request = list_args(&[]).to_request();
        let filter = request.filter.expect("filter is always sent");
        assert_eq!(
            filter.statuses,
            vec![SessionStatus::Active as i32, SessionStatus::Idle as i32]
        );
        assert_eq!(request.order_by, SessionOrderBy::StartedAt as i32);
        assert!(!request.ascending);
        assert_eq!(request.page_size, 50);
        assert_eq!(request.page_token, "");
    }

    #[test]
    fn every_filter_flag_reaches_the_request() {
        let request = list_args(&[
            "--status",
            "all",
            "--status",
            "idle",
            "--user",
            "alice@example.com",
            "--resource",
            "prod-db-01",
            "--gateway",
            "gw-eu-1",
            "-q",
            "berlin",
            "--flagged",
            "--min-risk",
            "40",
            "--sort",
            "risk",
            "--asc",
            "--limit",
            "10",
            "--page-token",
            "abc",
        ])
        .to_request();
        let filter = request.filter.expect("filter is always sent");
        // `all` and `idle` overlap: each status is sent once.
        assert_eq!(
            filter.statuses,
            vec![
                SessionStatus::Active as i32,
                SessionStatus::Idle as i32,
                SessionStatus::Disconnected as i32
            ]
        );
        assert_eq!(filter.user, "alice@example.com");
        assert_eq!(filter.resource_name, "prod-db-01");
        assert_eq!(filter.gateway_id, "gw-eu-1");
        assert_eq!(filter.query, "berlin");
        assert!(filter.flagged_only);
        assert_eq!(filter.min_risk_score, 40);
        assert_eq!(request.order_by, SessionOrderBy::RiskScore as i32);
        assert!(request.ascending);
        assert_eq!(request.page_size, 10);
        assert_eq!(request.page_token, "abc");
    }

    #[test]
    fn watch_takes_the_same_filters_and_a_snapshot_flag() {
        let cli = parse(&["watch", "--status", "disconnected", "--user", "bob", "--snapshot"]);
        let Command::Watch(watch) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        let request = watch.to_request();
        assert!(request.include_snapshot);
        let filter = request.filter.expect("filter is always sent");
        assert_eq!(filter.statuses, vec![SessionStatus::Disconnected as i32]);
        assert_eq!(filter.user, "bob");
    }

    #[test]
    fn global_flags_go_anywhere_and_have_defaults() {
        let cli = parse(&["stats"]);
        assert_eq!(cli.global.output, OutputFormat::Table);
        assert_eq!(cli.global.timeout, Duration::from_secs(10));

        let cli = parse(&[
            "sessions",
            "list",
            "-o",
            "json",
            "--server",
            "10.0.0.5:7400",
            "--timeout",
            "500ms",
        ]);
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.server, "http://10.0.0.5:7400");
        assert_eq!(cli.global.timeout, Duration::from_millis(500));

        let cli = parse(&["--timeout", "3", "--token", "s3cret", "gateways", "list"]);
        assert_eq!(cli.global.timeout, Duration::from_secs(3));
        assert_eq!(cli.global.token.as_ref().map(Token::expose), Some("s3cret"));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["sessions", "list", "--country", "Germany"][..],
            &["sessions", "list", "--min-risk", "101"],
            &["sessions", "list", "--limit", "0"],
            &["sessions", "list", "--status", "sleeping"],
            &["sessions", "list", "--type", "telnet"],
            &["--timeout", "0s", "stats"],
            &["--timeout", "soon", "stats"],
            &["--server", "https://registry:7400", "stats"],
            &["--server", "ftp://registry", "stats"],
            &["--token", "has space", "stats"],
            &["sessions", "get", "3f2a9c1b"],
        ] {
            let result = Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied()));
            let error = result.expect_err(&format!("{args:?} should not parse"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn a_shortened_id_points_to_the_full_one() {
        let error = Cli::try_parse_from(["sessionctl", "sessions", "get", "3f2a9c1b"]).expect_err("short id");
        assert!(error.to_string().contains("sessions list --wide"), "{error}");

        let cli = parse(&["sessions", "get", "3f2a9c1b-0000-4000-8000-000000000001"]);
        let Command::Sessions(SessionsCommand::Get(get)) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        assert_eq!(get.id, "3f2a9c1b-0000-4000-8000-000000000001");
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let cli = parse(&["--token", "s3cret", "stats"]);
        let debug = format!("{cli:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("redacted"));
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
