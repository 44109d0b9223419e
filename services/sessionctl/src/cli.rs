//! The command line: flags, subcommands, and how they become requests to the services.
//!
//! Everything a person can get wrong is checked here, by clap, so a bad flag is a usage error (exit 2)
//! before any connection is attempted.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use vigil_proto::v1::lock_target::Target as LockOn;
use vigil_proto::v1::policy_scope::Scope;
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::{
    AllSessions, ConcurrencyAction, CreateLockRequest, CreatePolicyRequest, EndReason, GetEffectivePolicyRequest,
    GlobalScope, ListGatewaysRequest, ListLocksRequest, ListSessionsRequest, ListTerminationsRequest, LockTarget,
    Policy, PolicyRules, PolicyScope, ResourceType, SessionFilter, SessionIds, SessionOrderBy, SessionSelector,
    SessionStatus, TerminateRequest, UpdatePolicyRequest, WatchSessionsRequest,
};

/// Where the registry listens when nothing else is said (`make run` starts it there).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7400";

/// `sessionctl`: see, follow and end remote-access sessions through Vigil.
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
    /// The registry's gRPC address (`host:port` means `http://host:port`; `https://` needs --ca)
    /// [default: the config file's `server`, else http://127.0.0.1:7400]
    #[arg(long, env = "VIGIL_SERVER", value_parser = parse_server, global = true)]
    pub server: Option<String>,

    /// The termination service's gRPC address, for deployments that run it apart from the registry
    /// (default: the --server address, where the all-in-one binary serves both).
    #[arg(long, env = "VIGIL_TERMINATION_SERVER", value_parser = parse_server, global = true)]
    pub termination_server: Option<String>,

    /// The policy service's gRPC address, for deployments that run it apart from the registry
    /// (default: the --server address, where the all-in-one binary serves both).
    #[arg(long, env = "VIGIL_POLICY_SERVER", value_parser = parse_server, global = true)]
    pub policy_server: Option<String>,

    /// Output format: a table for people, JSON for scripts.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,

    /// How long to wait for each service to connect and to answer each call ("10s", "500ms", "1m").
    #[arg(long, default_value = "10s", value_parser = parse_timeout, global = true)]
    pub timeout: Duration,

    /// Bearer token sent with every call as `authorization: Bearer <token>` [default: the config
    /// file's `token` or `token_file`; against a local server, ./vigil-data/admin.token if present]
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<Token>,

    /// The CA certificate (PEM) that signed the servers' certificates, for `https://` addresses.
    #[arg(long, env = "VIGIL_CA", value_name = "FILE", global = true)]
    pub ca: Option<PathBuf>,

    /// The configuration file with `server`, `token` (or `token_file`) and `ca`
    /// [default: $XDG_CONFIG_HOME/vigil/sessionctl.toml, or ~/.config/vigil/sessionctl.toml]
    #[arg(long, env = "SESSIONCTL_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
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
    /// The audit trail of ended sessions: who ended what, why, and whether the gateways did it.
    #[command(subcommand)]
    Terminations(TerminationsCommand),
    /// The rules sessions live by: idle timeouts, maximum duration, concurrent-session limits, risk thresholds.
    #[command(subcommand)]
    Policies(PoliciesCommand),
    /// Lock a user, group, resource, gateway, device or network out: its live sessions end and new ones are
    /// refused, with a message, until the lock expires or is removed.
    #[command(subcommand)]
    Locks(LocksCommand),
    /// The audit trail, newest first: terminations, policy changes and refused admissions — who, when,
    /// what, and how it ended.
    Audit(AuditArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only events at or after this time: RFC 3339 (2025-03-04T09:00:00Z) or a duration ago (1h, 2d).
    #[arg(long, value_parser = parse_since, default_value = "24h")]
    pub since: Since,

    /// Only what this actor did (refused admissions have the actor `admission`).
    #[arg(long, value_parser = parse_name)]
    pub actor: Option<String>,

    /// At most this many events (1-1000), the newest.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub limit: i32,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions matching a filter, a page at a time.
    List(ListArgs),
    /// Show everything about one session.
    Get(GetArgs),
    /// End live sessions: by id, or every session of a user, group, gateway, resource, device or network, or
    /// all of them.
    ///
    /// Shows what will end and asks before doing it (unless --yes), then waits for the gateways to confirm.
    /// With --lock, also locks the target out, so the user cannot simply sign in again (`sessions end --user U
    /// --lock --for 1h`: the one command an incident responder types).
    End(EndArgs),
}

#[derive(Debug, Subcommand)]
pub enum TerminationsCommand {
    /// List terminations, newest first.
    List(TerminationsListArgs),
    /// Show one termination and what happened to each of its sessions.
    Get(TerminationGetArgs),
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

/// Which sessions `sessions end` ends: exactly one of these.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct EndTarget {
    /// Session ids (full ids; `sessions list --wide` shows them).
    #[arg(value_name = "ID", value_parser = parse_session_id)]
    pub ids: Vec<String>,

    /// Every live session of this user (exact name).
    #[arg(long, value_parser = parse_name)]
    pub user: Option<String>,

    /// Every live session through this gateway (exact id).
    #[arg(long, value_parser = parse_name)]
    pub gateway: Option<String>,

    /// Every live session to this resource (exact name).
    #[arg(long, value_parser = parse_name)]
    pub resource: Option<String>,

    /// Every live session of the users in this group (as the gateway reported their groups).
    #[arg(long, value_parser = parse_name)]
    pub group: Option<String>,

    /// Every live session from this device (exact name).
    #[arg(long, value_parser = parse_name)]
    pub device: Option<String>,

    /// Every live session whose client address lies in this network ("203.0.113.0/24", "2001:db8::/32").
    #[arg(long, value_name = "NETWORK", value_parser = parse_name)]
    pub cidr: Option<String>,

    /// Every live session (with --idle: every idle one).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Args)]
pub struct EndArgs {
    #[command(flatten)]
    pub target: EndTarget,

    /// With --all: only the sessions that are idle.
    // Not `requires = "all"`: clap counts the `false` default of `--all` as present, so it would never fire.
    #[arg(long, conflicts_with_all = ["ids", "user", "gateway", "resource", "group", "device", "cidr"])]
    pub idle: bool,

    /// Also lock the target out: new sessions are refused (with --message) until the lock expires (--for) or
    /// is removed (`sessionctl locks delete`). The sessions end with the reason `locked`.
    #[arg(long, conflicts_with_all = ["ids", "all", "reason"])]
    pub lock: bool,

    /// With --lock: how long the lock lasts ("1h", "30m", "2d"); without it, until removed.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_rule_duration, requires = "lock")]
    pub lock_for: Option<prost_types::Duration>,

    /// Why, for the record and the user's notice.
    #[arg(long, value_enum, default_value_t = ReasonArg::Admin)]
    pub reason: ReasonArg,

    /// What the disconnected users see (default: the server's message for the reason); with --lock, also what
    /// refused users see.
    #[arg(long)]
    pub message: Option<String>,

    /// A note for the audit record ("suspected credential theft, ticket SOC-1234"); with --lock, the lock's
    /// reason.
    #[arg(long)]
    pub note: Option<String>,

    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Return once the termination is recorded, without waiting for the gateways.
    #[arg(long)]
    pub no_wait: bool,

    /// How long to wait for the gateways to confirm ("30s", "2m").
    #[arg(long, default_value = "30s", value_parser = parse_timeout, conflicts_with = "no_wait")]
    pub wait_timeout: Duration,
}

/// Why sessions are ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReasonArg {
    /// An administrator or operator ended them.
    Admin,
    /// The users asked for it themselves.
    SelfService,
    /// A policy required it.
    Policy,
    /// A location or device anomaly.
    Anomaly,
}

#[derive(Debug, Clone, Args)]
pub struct TerminationsListArgs {
    /// Only terminations by this actor.
    #[arg(long, value_parser = parse_name)]
    pub actor: Option<String>,

    /// Only terminations with this reason.
    #[arg(long, value_enum)]
    pub reason: Option<ReasonArg>,

    /// Only terminations covering this session (full id).
    #[arg(long = "session", value_name = "ID", value_parser = parse_session_id)]
    pub session_id: Option<String>,

    /// Only terminations at or after this time: RFC 3339 (2025-03-04T09:00:00Z) or a duration ago (1h, 2d).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<Since>,

    /// Page size (1-1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub limit: i32,

    /// Continue from the page token an earlier list printed (same filters).
    #[arg(long)]
    pub page_token: Option<String>,

    /// Fetch every page, not just one.
    #[arg(long)]
    pub all: bool,

    /// Show full termination ids (which `terminations get` takes).
    #[arg(long)]
    pub wide: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TerminationGetArgs {
    /// The termination's full id, as `sessions end` prints it (or `terminations list --wide`).
    #[arg(value_parser = parse_termination_id)]
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// List every policy, most general first. Rules a policy leaves unset read `inherit`.
    List(PoliciesListArgs),
    /// Show one policy.
    Get(PolicyGetArgs),
    /// Show the rules in force for a user on a resource, and the policies they come from.
    Effective(EffectiveArgs),
    /// Create the policy of a scope (each scope has at most one). Rules left out are inherited.
    Create(CreatePolicyArgs),
    /// Change a policy: the rules given are replaced, --clear ones are inherited again, the rest stay.
    Update(UpdatePolicyArgs),
    /// Delete a policy; what it covered falls back to less specific policies. The global one stays.
    ///
    /// Shows the policy and asks before deleting it (unless --yes).
    Delete(PolicyDeleteArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PoliciesListArgs {
    /// Show full policy ids (which `policies get`, `update` and `delete` take).
    #[arg(long)]
    pub wide: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PolicyGetArgs {
    /// The policy's full id; `policies list --wide` shows it.
    #[arg(value_parser = parse_policy_id)]
    pub id: String,
}

#[derive(Debug, Clone, Args)]
pub struct EffectiveArgs {
    /// The user (exact name).
    #[arg(long, value_parser = parse_name)]
    pub user: String,

    /// A group the user belongs to (repeatable).
    #[arg(long = "group", value_name = "GROUP", value_parser = parse_name)]
    pub groups: Vec<String>,

    /// The resource (exact name).
    #[arg(long, value_parser = parse_name)]
    pub resource: String,
}

/// What a new policy applies to: exactly one of these.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct ScopeArgs {
    /// Every session (the least specific scope).
    #[arg(long)]
    pub global: bool,

    /// Sessions of the users in this group.
    #[arg(long, value_parser = parse_name)]
    pub group: Option<String>,

    /// Sessions of this user (the most specific scope).
    #[arg(long, value_parser = parse_name)]
    pub user: Option<String>,

    /// Sessions to this resource.
    #[arg(long, value_parser = parse_name)]
    pub resource: Option<String>,
}

/// The rule flags of `policies create` and `policies update`. Durations take units: "10m", "1h 30m", "8h".
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Rules")]
pub struct RuleArgs {
    /// Warn the user after this long without input ("10m").
    #[arg(long, value_name = "DURATION", value_parser = parse_rule_duration)]
    pub idle_warning: Option<prost_types::Duration>,

    /// End the session after this long without input ("30m"); must exceed the warning.
    #[arg(long, value_name = "DURATION", value_parser = parse_rule_duration)]
    pub idle_timeout: Option<prost_types::Duration>,

    /// End sessions older than this ("8h", "1h 30m").
    #[arg(long, value_name = "DURATION", value_parser = parse_rule_duration)]
    pub max_duration: Option<prost_types::Duration>,

    /// Live sessions a user may have at once; 0 means unlimited.
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<u32>,

    /// What to do when a new session would exceed --max-sessions.
    #[arg(long, value_enum, value_name = "ACTION")]
    pub on_excess: Option<ExcessArg>,

    /// Refuse sessions whose risk score is at least this (1-100).
    #[arg(long, value_name = "SCORE", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub deny_risk: Option<u32>,

    /// Flag sessions for review whose risk score is at least this (1-100).
    #[arg(long, value_name = "SCORE", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub flag_risk: Option<u32>,
}

/// What to do with a session over the concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExcessArg {
    /// Refuse the new session.
    DenyNew,
    /// Admit the new session and end the user's oldest.
    EndOldest,
}

/// One rule, by the name of its flag: what `policies update --clear` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuleField {
    IdleWarning,
    IdleTimeout,
    MaxDuration,
    MaxSessions,
    OnExcess,
    DenyRisk,
    FlagRisk,
}

#[derive(Debug, Clone, Args)]
pub struct CreatePolicyArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,

    /// A note for people: why the policy exists.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,

    // Last: the flags after it would be listed under its "Rules" heading.
    #[command(flatten)]
    pub rules: RuleArgs,
}

#[derive(Debug, Clone, Args)]
pub struct UpdatePolicyArgs {
    /// The policy's full id; `policies list --wide` shows it.
    #[arg(value_parser = parse_policy_id)]
    pub id: String,

    /// Unset a rule, so it is inherited again (repeatable).
    #[arg(long, value_enum, value_name = "RULE")]
    pub clear: Vec<RuleField>,

    /// Replace the policy's note (an empty one removes it).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,

    // Last: the flags after it would be listed under its "Rules" heading.
    #[command(flatten)]
    pub rules: RuleArgs,
}

#[derive(Debug, Subcommand)]
pub enum LocksCommand {
    /// Lock a target out: its live sessions end (reason `locked`) and new ones are refused with --message,
    /// until the lock expires (--for) or is removed.
    Create(CreateLockArgs),
    /// List the locks in force (with --all, expired ones too), oldest first.
    List(LocksListArgs),
    /// Remove a lock: what it refused is admitted again.
    Delete(LockDeleteArgs),
}

/// What a lock shuts out: exactly one of these.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct LockTargetArgs {
    /// A user (exact name).
    #[arg(long, value_parser = parse_name)]
    pub user: Option<String>,

    /// Every user who starts a session as a member of this group.
    #[arg(long, value_parser = parse_name)]
    pub group: Option<String>,

    /// A resource (exact name).
    #[arg(long, value_parser = parse_name)]
    pub resource: Option<String>,

    /// A gateway (exact id).
    #[arg(long, value_parser = parse_name)]
    pub gateway: Option<String>,

    /// A device (exact name).
    #[arg(long, value_parser = parse_name)]
    pub device: Option<String>,

    /// Every client address in this network ("203.0.113.0/24", "2001:db8::/32"; a bare address is just it).
    #[arg(long, value_name = "NETWORK", value_parser = parse_name)]
    pub cidr: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CreateLockArgs {
    #[command(flatten)]
    pub target: LockTargetArgs,

    /// How long the lock lasts ("1h", "30m", "2d"); without it, until removed.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_rule_duration)]
    pub lock_for: Option<prost_types::Duration>,

    /// What refused (and disconnected) users see (default: the server's message).
    #[arg(long)]
    pub message: Option<String>,

    /// Why, for the record ("suspected credential theft, ticket SOC-1234").
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LocksListArgs {
    /// Also list locks that have expired.
    #[arg(long)]
    pub all: bool,

    /// Show full lock ids (which `locks delete` takes).
    #[arg(long)]
    pub wide: bool,
}

#[derive(Debug, Clone, Args)]
pub struct LockDeleteArgs {
    /// The lock's full id; `locks list --wide` shows it.
    #[arg(value_parser = parse_lock_id)]
    pub id: String,
}

#[derive(Debug, Clone, Args)]
pub struct PolicyDeleteArgs {
    /// The policy's full id; `policies list --wide` shows it.
    #[arg(value_parser = parse_policy_id)]
    pub id: String,

    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// A `--since` bound: a point in time, or a duration before now (resolved when the request is built, so
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
            denied_only: false,
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

impl EndArgs {
    /// The sessions these flags select.
    pub fn selector(&self) -> SessionSelector {
        let t = &self.target;
        // clap guarantees exactly one target; the order below only matters if that ever changed.
        let target = if let Some(user) = &t.user {
            Target::User(user.clone())
        } else if let Some(gateway) = &t.gateway {
            Target::GatewayId(gateway.clone())
        } else if let Some(resource) = &t.resource {
            Target::ResourceName(resource.clone())
        } else if let Some(group) = &t.group {
            Target::Group(group.clone())
        } else if let Some(device) = &t.device {
            Target::Device(device.clone())
        } else if let Some(cidr) = &t.cidr {
            Target::Cidr(cidr.clone())
        } else if t.all {
            Target::All(AllSessions { idle_only: self.idle })
        } else {
            let mut ids = t.ids.clone();
            // Naming a session twice would make the expected count disagree with the server's.
            let mut seen = std::collections::HashSet::new();
            ids.retain(|id| seen.insert(id.clone()));
            Target::SessionIds(SessionIds { ids })
        };
        SessionSelector { target: Some(target) }
    }

    /// The request that ends the selected sessions, refused by the server unless exactly `expected_count`
    /// live sessions are still selected (what the person confirmed).
    pub fn to_request(&self, expected_count: u32) -> TerminateRequest {
        TerminateRequest {
            selector: Some(self.selector()),
            reason: self.reason.to_proto().into(),
            user_message: self.message.clone().unwrap_or_default(),
            note: self.note.clone().unwrap_or_default(),
            expected_count: Some(expected_count),
        }
    }
}

impl EndArgs {
    /// With --lock: the lock on the target these flags name. Sessions named by id or `--all` cannot be
    /// locked (clap refuses the combination), so those give `None` too.
    pub fn lock_request(&self) -> Option<CreateLockRequest> {
        if !self.lock {
            return None;
        }
        let target = match self.selector().target? {
            Target::User(user) => LockOn::User(user),
            Target::GatewayId(gateway) => LockOn::GatewayId(gateway),
            Target::ResourceName(resource) => LockOn::ResourceName(resource),
            Target::Group(group) => LockOn::Group(group),
            Target::Device(device) => LockOn::Device(device),
            Target::Cidr(cidr) => LockOn::Cidr(cidr),
            Target::SessionIds(_) | Target::All(_) => return None,
        };
        Some(CreateLockRequest {
            target: Some(LockTarget { target: Some(target) }),
            message: self.message.clone().unwrap_or_default(),
            ttl: self.lock_for,
            reason: self.note.clone().unwrap_or_default(),
        })
    }
}

impl LockTargetArgs {
    pub fn to_target(&self) -> LockTarget {
        // clap guarantees exactly one; the order below only matters if that ever changed.
        let target = if let Some(user) = &self.user {
            LockOn::User(user.clone())
        } else if let Some(group) = &self.group {
            LockOn::Group(group.clone())
        } else if let Some(resource) = &self.resource {
            LockOn::ResourceName(resource.clone())
        } else if let Some(gateway) = &self.gateway {
            LockOn::GatewayId(gateway.clone())
        } else if let Some(device) = &self.device {
            LockOn::Device(device.clone())
        } else {
            LockOn::Cidr(self.cidr.clone().unwrap_or_default())
        };
        LockTarget { target: Some(target) }
    }
}

impl CreateLockArgs {
    pub fn to_request(&self) -> CreateLockRequest {
        CreateLockRequest {
            target: Some(self.target.to_target()),
            message: self.message.clone().unwrap_or_default(),
            ttl: self.lock_for,
            reason: self.reason.clone().unwrap_or_default(),
        }
    }
}

impl LocksListArgs {
    pub fn to_request(&self) -> ListLocksRequest {
        ListLocksRequest {
            include_expired: self.all,
        }
    }
}

impl ReasonArg {
    pub fn to_proto(self) -> EndReason {
        match self {
            ReasonArg::Admin => EndReason::Admin,
            ReasonArg::SelfService => EndReason::UserSelfService,
            ReasonArg::Policy => EndReason::Policy,
            ReasonArg::Anomaly => EndReason::Anomaly,
        }
    }
}

impl TerminationsListArgs {
    /// The request for the first page this command asks for; `now` anchors a relative `--since`.
    pub fn to_request(&self, now: DateTime<Utc>) -> ListTerminationsRequest {
        ListTerminationsRequest {
            actor: self.actor.clone().unwrap_or_default(),
            reason: self.reason.map_or(EndReason::Unspecified, ReasonArg::to_proto).into(),
            session_id: self.session_id.clone().unwrap_or_default(),
            since: self
                .since
                .map(|since| vigil_proto::timestamp_from_millis(since.resolve(now).timestamp_millis())),
            page_size: self.limit,
            page_token: self.page_token.clone().unwrap_or_default(),
        }
    }
}

impl EffectiveArgs {
    pub fn to_request(&self) -> GetEffectivePolicyRequest {
        GetEffectivePolicyRequest {
            user: self.user.clone(),
            user_groups: self.groups.clone(),
            resource_name: self.resource.clone(),
        }
    }
}

impl ScopeArgs {
    pub fn to_scope(&self) -> PolicyScope {
        // clap guarantees exactly one; the order below only matters if that ever changed.
        let scope = if let Some(user) = &self.user {
            Scope::User(user.clone())
        } else if let Some(resource) = &self.resource {
            Scope::ResourceName(resource.clone())
        } else if let Some(group) = &self.group {
            Scope::Group(group.clone())
        } else {
            Scope::Global(GlobalScope {})
        };
        PolicyScope { scope: Some(scope) }
    }
}

impl RuleArgs {
    /// The rules these flags set; every other rule is unset, that is inherited.
    pub fn to_rules(&self) -> PolicyRules {
        let mut rules = PolicyRules::default();
        self.apply_to(&mut rules);
        rules
    }

    /// Replaces the rules these flags set and leaves the others as they are.
    pub fn apply_to(&self, rules: &mut PolicyRules) {
        if let Some(after) = self.idle_warning {
            rules.idle_warning_after = Some(after);
        }
        if let Some(timeout) = self.idle_timeout {
            rules.idle_timeout = Some(timeout);
        }
        if let Some(max) = self.max_duration {
            rules.max_session_duration = Some(max);
        }
        if let Some(max) = self.max_sessions {
            rules.max_concurrent_sessions = Some(max);
        }
        if let Some(action) = self.on_excess {
            rules.set_concurrency_action(action.to_proto());
        }
        if let Some(score) = self.deny_risk {
            rules.deny_risk_score = Some(score);
        }
        if let Some(score) = self.flag_risk {
            rules.flag_risk_score = Some(score);
        }
    }

    /// The rules these flags set.
    pub fn given(&self) -> Vec<RuleField> {
        [
            (self.idle_warning.is_some(), RuleField::IdleWarning),
            (self.idle_timeout.is_some(), RuleField::IdleTimeout),
            (self.max_duration.is_some(), RuleField::MaxDuration),
            (self.max_sessions.is_some(), RuleField::MaxSessions),
            (self.on_excess.is_some(), RuleField::OnExcess),
            (self.deny_risk.is_some(), RuleField::DenyRisk),
            (self.flag_risk.is_some(), RuleField::FlagRisk),
        ]
        .into_iter()
        .filter_map(|(given, field)| given.then_some(field))
        .collect()
    }
}

impl ExcessArg {
    pub fn to_proto(self) -> ConcurrencyAction {
        match self {
            ExcessArg::DenyNew => ConcurrencyAction::DenyNew,
            ExcessArg::EndOldest => ConcurrencyAction::EndOldest,
        }
    }
}

impl RuleField {
    /// The flag that sets this rule, which is also its name for `--clear`.
    pub fn flag(self) -> &'static str {
        match self {
            RuleField::IdleWarning => "--idle-warning",
            RuleField::IdleTimeout => "--idle-timeout",
            RuleField::MaxDuration => "--max-duration",
            RuleField::MaxSessions => "--max-sessions",
            RuleField::OnExcess => "--on-excess",
            RuleField::DenyRisk => "--deny-risk",
            RuleField::FlagRisk => "--flag-risk",
        }
    }

    /// Unsets this rule in `rules`, so a less specific policy's applies.
    pub fn clear(self, rules: &mut PolicyRules) {
        match self {
            RuleField::IdleWarning => rules.idle_warning_after = None,
            RuleField::IdleTimeout => rules.idle_timeout = None,
            RuleField::MaxDuration => rules.max_session_duration = None,
            RuleField::MaxSessions => rules.max_concurrent_sessions = None,
            RuleField::OnExcess => rules.set_concurrency_action(ConcurrencyAction::Unspecified),
            RuleField::DenyRisk => rules.deny_risk_score = None,
            RuleField::FlagRisk => rules.flag_risk_score = None,
        }
    }
}

impl CreatePolicyArgs {
    pub fn to_request(&self) -> CreatePolicyRequest {
        CreatePolicyRequest {
            scope: Some(self.scope.to_scope()),
            rules: Some(self.rules.to_rules()),
            description: self.description.clone().unwrap_or_default(),
        }
    }
}

impl UpdatePolicyArgs {
    /// Refuses an update that would change nothing, or that both sets and clears a rule. Checked before
    /// anything is asked of the server.
    pub fn check(&self) -> Result<(), String> {
        let given = self.rules.given();
        if given.is_empty() && self.clear.is_empty() && self.description.is_none() {
            return Err(
                "nothing to change: give the rules to set (such as --idle-timeout 45m), --clear RULE, or \
                 --description"
                    .to_owned(),
            );
        }
        if let Some(both) = self.clear.iter().find(|field| given.contains(field)) {
            let flag = both.flag();
            let name = flag.trim_start_matches('-');
            return Err(format!(
                "`--clear {name}` and `{flag}` contradict each other; give one of them"
            ));
        }
        Ok(())
    }

    /// The request that turns `current` into what these flags ask for. UpdatePolicy replaces the rules
    /// whole, so every rule not named here is sent as it is now: cleared rules unset, given ones replaced,
    /// the note kept unless --description is given.
    pub fn to_request(&self, current: &Policy) -> UpdatePolicyRequest {
        let mut rules = current.rules.unwrap_or_default();
        for field in &self.clear {
            field.clear(&mut rules);
        }
        self.rules.apply_to(&mut rules);
        UpdatePolicyRequest {
            id: self.id.clone(),
            rules: Some(rules),
            description: self.description.clone().unwrap_or_else(|| current.description.clone()),
        }
    }
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
    parse_full_id(s, "session", "sessions list --wide")
}

fn parse_termination_id(s: &str) -> Result<String, String> {
    parse_full_id(s, "termination", "terminations list --wide")
}

fn parse_policy_id(s: &str) -> Result<String, String> {
    parse_full_id(s, "policy", "policies list --wide")
}

fn parse_lock_id(s: &str) -> Result<String, String> {
    parse_full_id(s, "lock", "locks list --wide")
}

/// A rule's duration, with units ("10m", "1h 30m", "8h"): unlike --timeout, a bare number is refused,
/// since whether `30` means seconds or minutes is anybody's guess.
fn parse_rule_duration(s: &str) -> Result<prost_types::Duration, String> {
    let s = s.trim();
    let duration = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10m, 1h 30m, 8h)"))?;
    prost_types::Duration::try_from(duration).map_err(|_| format!("`{s}` is longer than a policy can hold"))
}

fn parse_full_id(s: &str, what: &str, shown_by: &str) -> Result<String, String> {
    let id = s.trim();
    if id.is_empty() {
        return Err(format!("the {what} id is empty"));
    }
    let looks_shortened = id.len() < 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if looks_shortened {
        return Err(format!(
            "`{id}` looks like a shortened {what} id; the full id is needed, which `sessionctl {shown_by}` shows"
        ));
    }
    Ok(id.to_owned())
}

/// A user, gateway, resource or actor name: exact, so only surrounding blanks are dropped.
fn parse_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    if name.is_empty() {
        return Err("the name is empty".to_owned());
    }
    Ok(name.to_owned())
}

/// An RFC 3339 time, or a duration before now ("1h", "2d 6h", or bare seconds).
fn parse_since(s: &str) -> Result<Since, String> {
    let s = s.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(s) {
        return Ok(Since::At(at.with_timezone(&Utc)));
    }
    let ago = match s.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(s).map_err(|_| {
            format!("`{s}` is neither an RFC 3339 time (2025-03-04T09:00:00Z) nor a duration (1h, 30m, 2d)")
        })?,
    };
    Ok(Since::Ago(ago))
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
        assert_eq!(cli.global.server(), "http://10.0.0.5:7400");
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

    fn end_args(args: &[&str]) -> EndArgs {
        let mut full = vec!["sessions", "end"];
        full.extend_from_slice(args);
        match parse(&full).command {
            Command::Sessions(SessionsCommand::End(end)) => end,
            other => panic!("parsed as {other:?}"),
        }
    }

    const ID_1: &str = "01a209da-fe18-708a-896c-97c6c27a4dbc";
    const ID_2: &str = "01a209da-fe17-7686-ade2-a08971035a38";

    #[test]
    fn end_by_ids_sends_each_id_once_with_the_defaults() {
        let request = end_args(&[ID_1, ID_2, ID_1]).to_request(2);
        assert_eq!(
            request.selector,
            Some(SessionSelector {
                target: Some(Target::SessionIds(SessionIds {
                    ids: vec![ID_1.to_owned(), ID_2.to_owned()]
                }))
            })
        );
        assert_eq!(request.reason, EndReason::Admin as i32);
        assert_eq!(request.user_message, "", "empty: the server's default message");
        assert_eq!(request.note, "");
        assert_eq!(request.expected_count, Some(2));
    }

    #[test]
    fn each_target_flag_becomes_its_selector() {
        let target = |args: &[&str]| end_args(args).selector().target.expect("a target");
        assert_eq!(
            target(&["--user", "alice@example.com"]),
            Target::User("alice@example.com".into())
        );
        assert_eq!(target(&["--gateway", "gw-eu-1"]), Target::GatewayId("gw-eu-1".into()));
        assert_eq!(
            target(&["--resource", " prod-db-01 "]),
            Target::ResourceName("prod-db-01".into())
        );
        assert_eq!(target(&["--all"]), Target::All(AllSessions { idle_only: false }));
        assert_eq!(
            target(&["--all", "--idle"]),
            Target::All(AllSessions { idle_only: true })
        );
    }

    #[test]
    fn reasons_message_and_note_reach_the_request() {
        for (flag, reason) in [
            ("admin", EndReason::Admin),
            ("self-service", EndReason::UserSelfService),
            ("policy", EndReason::Policy),
            ("anomaly", EndReason::Anomaly),
        ] {
            let request = end_args(&["--all", "--reason", flag]).to_request(7);
            assert_eq!(request.reason, reason as i32, "{flag}");
        }
        let args = end_args(&[
            "--user",
            "bob",
            "--message",
            "Your session was ended by security",
            "--note",
            "ticket SOC-1234",
            "--yes",
            "--wait-timeout",
            "5s",
        ]);
        assert!(args.yes);
        assert!(!args.no_wait);
        assert_eq!(args.wait_timeout, Duration::from_secs(5));
        let request = args.to_request(1);
        assert_eq!(request.user_message, "Your session was ended by security");
        assert_eq!(request.note, "ticket SOC-1234");

        let args = end_args(&["--all"]);
        assert_eq!(args.wait_timeout, Duration::from_secs(30));
        assert!(!args.yes);
        assert!(end_args(&["--all", "--no-wait", "-y"]).no_wait);
    }

    #[test]
    fn end_takes_exactly_one_target() {
        for args in [
            &["sessions", "end"][..],
            &["sessions", "end", "--user", "a", "--gateway", "g"],
            &["sessions", "end", ID_1, "--all"],
            &["sessions", "end", "--user", "a", "--all"],
            &["sessions", "end", "--user", "a", "--idle"],
            &["sessions", "end", "--idle"],
            &["sessions", "end", "--user", ""],
            &["sessions", "end", "c27a4dbc"],
            &["sessions", "end", "--all", "--reason", "whim"],
            &["sessions", "end", "--all", "--no-wait", "--wait-timeout", "5s"],
        ] {
            let result = Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied()));
            let error = result.expect_err(&format!("{args:?} should not parse"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
        let error = Cli::try_parse_from(["sessionctl", "sessions", "end", "c27a4dbc"]).expect_err("short id");
        assert!(error.to_string().contains("sessions list --wide"), "{error}");
    }

    #[test]
    fn end_takes_groups_devices_and_networks_too() {
        let target = |args: &[&str]| end_args(args).selector().target.expect("a target");
        assert_eq!(target(&["--group", "contractors"]), Target::Group("contractors".into()));
        assert_eq!(target(&["--device", "kiosk-7"]), Target::Device("kiosk-7".into()));
        assert_eq!(
            target(&["--cidr", "203.0.113.0/24"]),
            Target::Cidr("203.0.113.0/24".into())
        );
        assert!(
            end_args(&["--cidr", "10.0.0.0/8"]).lock_request().is_none(),
            "no --lock, no lock"
        );
    }

    #[test]
    fn end_with_lock_also_asks_for_a_lock_on_the_same_target() {
        let args = end_args(&[
            "--user",
            "alice@example.com",
            "--lock",
            "--for",
            "1h",
            "--message",
            "Your access is suspended by security — contact the SOC",
            "--note",
            "SOC-1234",
        ]);
        let lock = args.lock_request().expect("a lock");
        assert_eq!(
            lock.target,
            Some(LockTarget {
                target: Some(LockOn::User("alice@example.com".into()))
            })
        );
        assert_eq!(
            lock.ttl,
            Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0
            })
        );
        assert_eq!(lock.message, "Your access is suspended by security — contact the SOC");
        assert_eq!(lock.reason, "SOC-1234");
        let until_removed = end_args(&["--cidr", "10.0.0.0/8", "--lock"])
            .lock_request()
            .expect("a lock");
        assert_eq!(until_removed.ttl, None);
        assert_eq!(
            until_removed.target.and_then(|t| t.target),
            Some(LockOn::Cidr("10.0.0.0/8".into()))
        );
        for args in [
            &["sessions", "end", ID_1, "--lock"][..],
            &["sessions", "end", "--all", "--lock"],
            &["sessions", "end", "--user", "a", "--for", "1h"],
            &["sessions", "end", "--user", "a", "--lock", "--for", "60"],
            &["sessions", "end", "--user", "a", "--lock", "--reason", "policy"],
        ] {
            let result = Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied()));
            let error = result.expect_err(&format!("{args:?} should not parse"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }

    fn locks(args: &[&str]) -> LocksCommand {
        let mut full = vec!["locks"];
        full.extend_from_slice(args);
        match parse(&full).command {
            Command::Locks(command) => command,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn lock_flags_become_the_request() {
        let LocksCommand::Create(create) = locks(&[
            "create",
            "--user",
            "alice@example.com",
            "--for",
            "1h 30m",
            "--message",
            "Contact the SOC",
            "--reason",
            "SOC-1234",
        ]) else {
            panic!("a create")
        };
        assert_eq!(
            create.to_request(),
            CreateLockRequest {
                target: Some(LockTarget {
                    target: Some(LockOn::User("alice@example.com".into()))
                }),
                message: "Contact the SOC".into(),
                ttl: Some(prost_types::Duration {
                    seconds: 5400,
                    nanos: 0
                }),
                reason: "SOC-1234".into(),
            }
        );
        let target = |flag: &str, value: &str| match locks(&["create", flag, value]) {
            LocksCommand::Create(create) => create.to_request().target.and_then(|t| t.target),
            other => panic!("parsed as {other:?}"),
        };
        assert_eq!(
            target("--group", "contractors"),
            Some(LockOn::Group("contractors".into()))
        );
        assert_eq!(
            target("--resource", "prod-db"),
            Some(LockOn::ResourceName("prod-db".into()))
        );
        assert_eq!(
            target("--gateway", "gw-eu-1"),
            Some(LockOn::GatewayId("gw-eu-1".into()))
        );
        assert_eq!(target("--device", "kiosk-7"), Some(LockOn::Device("kiosk-7".into())));
        assert_eq!(
            target("--cidr", "2001:db8::/32"),
            Some(LockOn::Cidr("2001:db8::/32".into()))
        );
        let LocksCommand::Create(bare) = locks(&["create", "--user", "bob"]) else {
            panic!("a create")
        };
        let request = bare.to_request();
        assert_eq!(
            (request.ttl, request.message.as_str(), request.reason.as_str()),
            (None, "", "")
        );

        let LocksCommand::List(list) = locks(&["list", "--all", "--wide"]) else {
            panic!("a list")
        };
        assert!(list.to_request().include_expired && list.wide);
        let LocksCommand::List(list) = locks(&["list"]) else {
            panic!("a list")
        };
        assert!(!list.to_request().include_expired);
        let LocksCommand::Delete(delete) = locks(&["delete", ID_1]) else {
            panic!("a delete")
        };
        assert_eq!(delete.id, ID_1);
    }

    #[test]
    fn lock_flags_are_checked() {
        for args in [
            &["locks", "create"][..],
            &["locks", "create", "--user", "a", "--group", "g"],
            &["locks", "create", "--user", ""],
            &["locks", "create", "--user", "a", "--for", "90"],
            &["locks", "delete"],
            &["locks", "delete", "c27a4dbc"],
        ] {
            let result = Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied()));
            let error = result.expect_err(&format!("{args:?} should not parse"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
        let error = Cli::try_parse_from(["sessionctl", "locks", "delete", "c27a4dbc"]).expect_err("short id");
        assert!(error.to_string().contains("locks list --wide"), "{error}");
    }

    #[test]
    fn the_termination_server_defaults_to_the_registry() {
        let cli = parse(&["--server", "10.0.0.5:7400", "terminations", "list"]);
        assert_eq!(cli.global.termination_address(), "http://10.0.0.5:7400");
        let cli = parse(&["terminations", "list", "--termination-server", "10.0.0.6:7401"]);
        assert_eq!(cli.global.termination_address(), "http://10.0.0.6:7401");
        assert_eq!(cli.global.server(), DEFAULT_SERVER);
    }

    fn terminations_list_args(args: &[&str]) -> TerminationsListArgs {
        let mut full = vec!["terminations", "list"];
        full.extend_from_slice(args);
        match parse(&full).command {
            Command::Terminations(TerminationsCommand::List(list)) => list,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn terminations_list_filters_become_a_request() {
        let now = DateTime::parse_from_rfc3339("2025-03-04T12:00:00Z")
            .expect("valid time")
            .with_timezone(&Utc);
        let millis = |rfc3339: &str| {
            DateTime::parse_from_rfc3339(rfc3339)
                .expect("valid time")
                .timestamp_millis()
        };

        let request = terminations_list_args(&[]).to_request(now);
        assert_eq!(request.reason, EndReason::Unspecified as i32);
        assert_eq!(request.since, None);
        assert_eq!(request.page_size, 50);

        let request = terminations_list_args(&[
            "--actor",
            "admin@example.com",
            "--reason",
            "anomaly",
            "--session",
            ID_1,
            "--since",
            "90m",
            "--limit",
            "10",
            "--page-token",
            "p2",
        ])
        .to_request(now);
        assert_eq!(request.actor, "admin@example.com");
        assert_eq!(request.reason, EndReason::Anomaly as i32);
        assert_eq!(request.session_id, ID_1);
        let since = request.since.as_ref().and_then(vigil_proto::millis_from_timestamp);
        assert_eq!(since, Some(millis("2025-03-04T10:30:00Z")));
        assert_eq!(request.page_size, 10);
        assert_eq!(request.page_token, "p2");

        let request = terminations_list_args(&["--since", "2025-03-01T09:00:00+01:00"]).to_request(now);
        let since = request.since.as_ref().and_then(vigil_proto::millis_from_timestamp);
        assert_eq!(since, Some(millis("2025-03-01T08:00:00Z")));

        // Reaching back past the epoch stops at the epoch.
        let request = terminations_list_args(&["--since", "100000y"]).to_request(now);
        let since = request.since.as_ref().and_then(vigil_proto::millis_from_timestamp);
        assert_eq!(since, Some(0));
    }

    #[test]
    fn terminations_flags_are_checked() {
        for args in [
            &["terminations", "list", "--since", "yesterday"][..],
            &["terminations", "list", "--limit", "0"],
            &["terminations", "list", "--reason", "idle"],
            &["terminations", "list", "--session", "c27a4dbc"],
            &["terminations", "get", "c27a4dbc"],
            &["terminations", "get"],
        ] {
            let result = Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied()));
            let error = result.expect_err(&format!("{args:?} should not parse"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
        let error = Cli::try_parse_from(["sessionctl", "terminations", "get", "abcd1234"]).expect_err("short id");
        assert!(error.to_string().contains("terminations list --wide"), "{error}");
    }

    fn policies(args: &[&str]) -> PoliciesCommand {
        let mut full = vec!["policies"];
        full.extend_from_slice(args);
        match parse(&full).command {
            Command::Policies(command) => command,
            other => panic!("parsed as {other:?}"),
        }
    }

    fn create_request(args: &[&str]) -> CreatePolicyRequest {
        let mut full = vec!["create"];
        full.extend_from_slice(args);
        match policies(&full) {
            PoliciesCommand::Create(create) => create.to_request(),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn update_args(args: &[&str]) -> UpdatePolicyArgs {
        let mut full = vec!["update", POLICY_ID];
        full.extend_from_slice(args);
        match policies(&full) {
            PoliciesCommand::Update(update) => update,
            other => panic!("parsed as {other:?}"),
        }
    }

    const POLICY_ID: &str = "0195a3c0-7e1f-7000-8000-0000000000a1";

    fn seconds(seconds: i64) -> Option<prost_types::Duration> {
        Some(prost_types::Duration { seconds, nanos: 0 })
    }

    #[test]
    fn policy_create_flags_become_the_rules_and_scope() {
        let request = create_request(&[
            "--group",
            "sre",
            "--idle-warning",
            "10m",
            "--idle-timeout",
            "1h 30m",
            "--max-duration",
            "8h",
            "--max-sessions",
            "3",
            "--on-excess",
            "end-oldest",
            "--deny-risk",
            "80",
            "--flag-risk",
            "50",
            "--description",
            "on-call engineers",
        ]);
        assert_eq!(
            request,
            CreatePolicyRequest {
                scope: Some(PolicyScope {
                    scope: Some(Scope::Group("sre".into()))
                }),
                rules: Some(PolicyRules {
                    idle_warning_after: seconds(600),
                    idle_timeout: seconds(5400),
                    max_session_duration: seconds(8 * 3600),
                    max_concurrent_sessions: Some(3),
                    concurrency_action: ConcurrencyAction::EndOldest.into(),
                    deny_risk_score: Some(80),
                    flag_risk_score: Some(50),
                }),
                description: "on-call engineers".into(),
            }
        );
    }

    #[test]
    fn rules_left_out_of_create_are_unset_and_zero_sessions_means_unlimited() {
        let request = create_request(&["--global"]);
        assert_eq!(
            request.scope,
            Some(PolicyScope {
                scope: Some(Scope::Global(GlobalScope {}))
            })
        );
        assert_eq!(request.rules, Some(PolicyRules::default()));
        assert_eq!(request.description, "");

        let rules = create_request(&[
            "--user",
            "alice@example.com",
            "--max-sessions",
            "0",
            "--on-excess",
            "deny-new",
        ])
        .rules
        .expect("rules are always sent");
        assert_eq!(rules.max_concurrent_sessions, Some(0), "0 is sent: it means unlimited");
        assert_eq!(rules.concurrency_action(), ConcurrencyAction::DenyNew);
        assert_eq!(rules.idle_timeout, None);

        let scope = |args: &[&str]| create_request(args).scope.and_then(|s| s.scope);
        assert_eq!(scope(&["--user", " bob "]), Some(Scope::User("bob".into())));
        assert_eq!(
            scope(&["--resource", "prod-db-01"]),
            Some(Scope::ResourceName("prod-db-01".into()))
        );
        // Sub-second precision survives the trip to the proto.
        let rules = create_request(&["--global", "--idle-warning", "1s 500ms"]).rules;
        assert_eq!(
            rules.and_then(|r| r.idle_warning_after),
            Some(prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
    }

    #[test]
    fn policy_flags_are_checked() {
        for args in [
            &["policies", "create"][..],
            &["policies", "create", "--global", "--group", "sre"],
            &["policies", "create", "--user", "a", "--resource", "r"],
            &["policies", "create", "--group", ""],
            &["policies", "create", "--global", "--idle-timeout", "30"],
            &["policies", "create", "--global", "--idle-timeout", "soon"],
            &["policies", "create", "--global", "--max-duration", "-1h"],
            &["policies", "create", "--global", "--max-sessions", "-1"],
            &["policies", "create", "--global", "--on-excess", "kill-all"],
            &["policies", "create", "--global", "--deny-risk", "0"],
            &["policies", "create", "--global", "--flag-risk", "101"],
            &["policies", "create", "--global", "--clear", "idle-timeout"],
            &["policies", "update", POLICY_ID, "--clear", "description"],
            &["policies", "update", POLICY_ID, "--global"],
            &["policies", "get", "000000a1"],
            &["policies", "delete", "000000a1"],
            &["policies", "effective", "--user", "alice"],
            &["policies", "effective", "--resource", "prod-db-01"],
        ] {
            let result = Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied()));
            let error = result.expect_err(&format!("{args:?} should not parse"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
        let error = Cli::try_parse_from(["sessionctl", "policies", "get", "000000a1"]).expect_err("short id");
        assert!(error.to_string().contains("policies list --wide"), "{error}");
        let error = Cli::try_parse_from(["sessionctl", "policies", "create", "--global", "--idle-timeout", "30"])
            .expect_err("no unit");
        assert!(error.to_string().contains("examples: 10m, 1h 30m, 8h"), "{error}");
    }

    fn current_policy() -> Policy {
        Policy {
            id: POLICY_ID.into(),
            scope: Some(PolicyScope {
                scope: Some(Scope::Group("sre".into())),
            }),
            rules: Some(PolicyRules {
                idle_warning_after: seconds(600),
                idle_timeout: seconds(1800),
                max_session_duration: seconds(8 * 3600),
                max_concurrent_sessions: Some(3),
                concurrency_action: ConcurrencyAction::DenyNew.into(),
                deny_risk_score: Some(80),
                flag_risk_score: Some(50),
            }),
            description: "on-call engineers".into(),
            ..Policy::default()
        }
    }

    #[test]
    fn update_changes_only_the_rules_given() {
        let current = current_policy();
        let args = update_args(&["--idle-timeout", "45m"]);
        args.check().expect("a change");

        let request = args.to_request(&current);

        let mut expected = current.rules.expect("rules");
        expected.idle_timeout = seconds(45 * 60);
        assert_eq!(request.id, POLICY_ID);
        assert_eq!(request.rules, Some(expected));
        assert_eq!(request.description, "on-call engineers", "the note is kept");

        let request =
            update_args(&["--on-excess", "end-oldest", "--deny-risk", "90", "--description", ""]).to_request(&current);
        let rules = request.rules.expect("rules");
        assert_eq!(rules.concurrency_action(), ConcurrencyAction::EndOldest);
        assert_eq!(rules.deny_risk_score, Some(90));
        assert_eq!(rules.max_concurrent_sessions, Some(3));
        assert_eq!(rules.idle_timeout, seconds(1800));
        assert_eq!(request.description, "", "an empty --description removes the note");

        // A policy without rules takes the flags as its only rules.
        let bare = Policy { rules: None, ..current };
        let request = update_args(&["--max-sessions", "0"]).to_request(&bare);
        assert_eq!(
            request.rules,
            Some(PolicyRules {
                max_concurrent_sessions: Some(0),
                ..PolicyRules::default()
            })
        );
    }

    #[test]
    fn clear_unsets_rules_so_they_are_inherited_again() {
        let current = current_policy();
        let args = update_args(&[
            "--clear",
            "max-duration",
            "--clear",
            "on-excess",
            "--clear",
            "flag-risk",
            "--idle-warning",
            "5m",
        ]);
        args.check().expect("set and clear different rules");

        let rules = args.to_request(&current).rules.expect("rules");

        assert_eq!(rules.max_session_duration, None);
        assert_eq!(rules.concurrency_action(), ConcurrencyAction::Unspecified);
        assert_eq!(rules.flag_risk_score, None);
        assert_eq!(rules.idle_warning_after, seconds(300));
        assert_eq!(rules.idle_timeout, seconds(1800));
        assert_eq!(rules.max_concurrent_sessions, Some(3));
        assert_eq!(rules.deny_risk_score, Some(80));

        // Each rule's --clear value is its flag's name, and clearing them all leaves no rule set.
        let full = current_policy().rules.expect("rules");
        let mut cleared = full;
        for field in RuleField::value_variants() {
            let name = field.flag().trim_start_matches("--");
            assert_eq!(<RuleField as ValueEnum>::from_str(name, false).as_ref(), Ok(field));
            let mut one = full;
            field.clear(&mut one);
            assert_ne!(one, full, "{field:?} clears its rule");
            field.clear(&mut cleared);
        }
        assert_eq!(cleared, PolicyRules::default());
    }

    #[test]
    fn an_update_must_change_something_and_not_contradict_itself() {
        let error = update_args(&[]).check().expect_err("nothing to change");
        assert!(error.starts_with("nothing to change"), "{error}");

        let error = update_args(&["--clear", "idle-timeout", "--idle-timeout", "45m"])
            .check()
            .expect_err("set and cleared");
        assert_eq!(
            error,
            "`--clear idle-timeout` and `--idle-timeout` contradict each other; give one of them"
        );

        update_args(&["--description", "new note"])
            .check()
            .expect("the note alone");
        update_args(&["--clear", "deny-risk"]).check().expect("a clear alone");
    }

    #[test]
    fn effective_flags_become_a_request() {
        let PoliciesCommand::Effective(args) = policies(&[
            "effective",
            "--user",
            "alice@example.com",
            "--group",
            "sre",
            "--group",
            "eng",
            "--resource",
            "prod-db-01",
        ]) else {
            panic!("not effective")
        };
        assert_eq!(
            args.to_request(),
            GetEffectivePolicyRequest {
                user: "alice@example.com".into(),
                user_groups: vec!["sre".into(), "eng".into()],
                resource_name: "prod-db-01".into(),
            }
        );
    }

    #[test]
    fn the_policy_server_defaults_to_the_registry() {
        let cli = parse(&["--server", "10.0.0.5:7400", "policies", "list"]);
        assert_eq!(cli.global.policy_address(), "http://10.0.0.5:7400");
        let cli = parse(&["policies", "list", "--policy-server", "10.0.0.7:7402"]);
        assert_eq!(cli.global.policy_address(), "http://10.0.0.7:7402");
        assert_eq!(cli.global.termination_address(), DEFAULT_SERVER);
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
