//! `sessions` and `watch`/`stats` arguments, and the requests they become.

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use vigil_proto::v1::lock_target::Target as LockOn;
use vigil_proto::v1::session_selector::Target;
use vigil_proto::v1::{
    AllSessions, CreateLockRequest, EndReason, ListSessionsRequest, LockTarget, ResourceType, SessionFilter,
    SessionIds, SessionOrderBy, SessionSelector, SessionStatus, TerminateRequest, WatchSessionsRequest,
};

use crate::args::{Since, parse_name, parse_rule_duration, parse_since, parse_timeout};
use crate::ids::parse_id;

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

/// Which sessions a command covers; shared by `sessions list` and `watch`.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Only sessions in this status (repeatable). `live` is active + idle; `all` includes disconnected
    /// (ended) ones. [default: live; with --since or --until, all]
    #[arg(long = "status", value_enum)]
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
    #[arg(long, conflicts_with_all = ["since", "until"])]
    pub page_token: Option<String>,

    /// Fetch every page, not just one.
    #[arg(long)]
    pub all: bool,

    /// Only sessions that started at or after this: a duration ago (1h, 2d), a date (2026-12-06) or an RFC
    /// 3339 time. Includes ended sessions unless --status says otherwise.
    #[arg(long, value_parser = parse_since)]
    pub since: Option<Since>,

    /// Only sessions that started before this (same forms as --since).
    #[arg(long, value_parser = parse_since)]
    pub until: Option<Since>,

    /// Show full session ids and the gateway column (same as -o wide).
    #[arg(long)]
    pub wide: bool,
}

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// The session's id, or any unique part of its start or end (the SESSION column).
    #[arg(value_parser = parse_id)]
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

/// Which sessions `sessions end` ends: exactly one of these.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct EndTarget {
    /// Session ids, or unique parts of their start or end (the SESSION column).
    #[arg(value_name = "ID", value_parser = parse_id)]
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

    /// Show what would end (and be locked) and stop: nothing is ended, nothing asked.
    #[arg(long)]
    pub dry_run: bool,

    /// Return once the termination is recorded, without waiting for the gateways.
    #[arg(long)]
    pub no_wait: bool,

    /// How long to wait for the gateways to confirm ("30s", "2m").
    #[arg(long, default_value = "30s", value_parser = parse_timeout, conflicts_with = "no_wait")]
    pub wait_timeout: Duration,
}

impl FilterArgs {
    /// The registry filter these flags describe. Statuses are always sent explicitly (never empty), so
    /// what the person asked for does not depend on the server's default.
    pub fn to_filter(&self) -> SessionFilter {
        self.to_filter_defaulting(StatusArg::Live)
    }

    /// Like [`FilterArgs::to_filter`], with `default` when no --status is given.
    pub fn to_filter_defaulting(&self, default: StatusArg) -> SessionFilter {
        let given = if self.statuses.is_empty() {
            std::slice::from_ref(&default)
        } else {
            &self.statuses[..]
        };
        let mut statuses: Vec<SessionStatus> = given.iter().flat_map(|s| s.expand()).copied().collect();
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
        // A time range is about history: ended sessions count unless --status says otherwise.
        let default = if self.is_time_range() {
            StatusArg::All
        } else {
            StatusArg::Live
        };
        ListSessionsRequest {
            filter: Some(self.filter.to_filter_defaulting(default)),
            order_by: self.sort.to_proto().into(),
            ascending: self.asc,
            page_size: self.limit,
            page_token: self.page_token.clone().unwrap_or_default(),
        }
    }
}

impl ListArgs {
    /// Whether --since or --until was given.
    pub fn is_time_range(&self) -> bool {
        self.since.is_some() || self.until.is_some()
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

fn parse_country(s: &str) -> Result<String, String> {
    let code = s.trim();
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err("expected a two-letter country code, such as DE".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{
        AllSessions, EndReason, LockTarget, ResourceType, SessionIds, SessionOrderBy, SessionSelector, SessionStatus,
    };

    use super::*;
    use clap::Parser;

    use crate::cli::{Cli, Command};
    use crate::testing::*;

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
    fn a_shortened_id_points_to_the_full_one() {
        // What the SESSION column shows is an id `sessions get` takes (resolved against the registry).
        let cli = parse(&["sessions", "get", "3f2a9c1b"]);
        let Command::Sessions(SessionsCommand::Get(get)) = cli.command else {
            panic!("parsed as {:?}", cli.command)
        };
        assert_eq!(get.id, "3f2a9c1b");
        // A flag's hint that slipped past `--` is not an id.
        let error = Cli::try_parse_from(["sessionctl", "sessions", "get", "--", "--dry-run"]).expect_err("not an id");
        assert!(error.to_string().contains("looks like a flag"), "{error}");

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
            &["sessions", "end", "--", "--dry-run"],
            &["sessions", "end", "--all", "--reason", "whim"],
            &["sessions", "end", "--all", "--no-wait", "--wait-timeout", "5s"],
        ] {
            let result = Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied()));
            let error = result.expect_err(&format!("{args:?} should not parse"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
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
}
