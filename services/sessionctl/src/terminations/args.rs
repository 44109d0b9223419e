//! `terminations` arguments and the requests they become.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use vigil_proto::v1::{EndReason, ListTerminationsRequest};

use crate::args::{Since, parse_name, parse_since};
use crate::ids::parse_id;

#[derive(Debug, Subcommand)]
pub enum TerminationsCommand {
    /// List terminations, newest first.
    List(TerminationsListArgs),
    /// Show one termination and what happened to each of its sessions.
    Get(TerminationGetArgs),
}

/// Every reason a session ends for, named as the REASON column shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReasonFilter {
    UserClosed,
    Admin,
    SelfService,
    IdleTimeout,
    MaxDuration,
    ConcurrencyLimit,
    Anomaly,
    Policy,
    Lost,
    GatewayLost,
    GatewayClosed,
    Locked,
}

impl ReasonFilter {
    pub fn to_proto(self) -> EndReason {
        match self {
            ReasonFilter::UserClosed => EndReason::UserClosed,
            ReasonFilter::Admin => EndReason::Admin,
            ReasonFilter::SelfService => EndReason::UserSelfService,
            ReasonFilter::IdleTimeout => EndReason::IdleTimeout,
            ReasonFilter::MaxDuration => EndReason::MaxDuration,
            ReasonFilter::ConcurrencyLimit => EndReason::ConcurrencyLimit,
            ReasonFilter::Anomaly => EndReason::Anomaly,
            ReasonFilter::Policy => EndReason::Policy,
            ReasonFilter::Lost => EndReason::Lost,
            ReasonFilter::GatewayLost => EndReason::GatewayLost,
            ReasonFilter::GatewayClosed => EndReason::GatewayClosed,
            ReasonFilter::Locked => EndReason::Locked,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct TerminationsListArgs {
    /// Only terminations by this actor.
    #[arg(long, value_parser = parse_name)]
    pub actor: Option<String>,

    /// Only terminations with this reason, as the REASON column shows it.
    #[arg(long, value_enum)]
    pub reason: Option<ReasonFilter>,

    /// Only terminations covering this session (its id, or a unique part of it).
    #[arg(long = "session", value_name = "ID", value_parser = parse_id)]
    pub session_id: Option<String>,

    /// Only terminations at or after this: a duration ago (1h, 2d), a date (2026-12-06) or an RFC 3339 time.
    #[arg(long, value_parser = parse_since)]
    pub since: Option<Since>,

    /// Only terminations before this (same forms as --since).
    #[arg(long, value_parser = parse_since, conflicts_with = "page_token")]
    pub until: Option<Since>,

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
    /// The termination's id, or any unique part of its start or end (the ID column).
    #[arg(value_parser = parse_id)]
    pub id: String,
}

impl TerminationsListArgs {
    /// The request for the first page this command asks for; `now` anchors a relative `--since`.
    pub fn to_request(&self, now: DateTime<Utc>) -> ListTerminationsRequest {
        ListTerminationsRequest {
            actor: self.actor.clone().unwrap_or_default(),
            reason: self
                .reason
                .map_or(EndReason::Unspecified, ReasonFilter::to_proto)
                .into(),
            session_id: self.session_id.clone().unwrap_or_default(),
            since: self
                .since
                .map(|since| vigil_proto::timestamp_from_millis(since.resolve(now).timestamp_millis())),
            page_size: self.limit,
            page_token: self.page_token.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::EndReason;

    use super::*;
    use clap::Parser;

    use crate::cli::{Cli, Command};
    use crate::testing::*;

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
            &["terminations", "list", "--session", "--", "--x"],
            &["terminations", "list", "--page-token", "t", "--until", "1h"],
            &["terminations", "get"],
        ] {
            let result = Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied()));
            let error = result.expect_err(&format!("{args:?} should not parse"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
        // Every reason the REASON column shows is one --reason takes.
        for shown in ["locked", "idle-timeout", "gateway-lost", "self-service", "user-closed"] {
            let args = terminations_list_args(&["--reason", shown]);
            let reason = args.reason.expect("a reason").to_proto();
            assert_eq!(crate::format::reason(reason), shown);
        }
    }
}
