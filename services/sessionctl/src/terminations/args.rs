//! `terminations` arguments and the requests they become.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use vigil_proto::v1::{EndReason, ListTerminationsRequest};

use crate::cli::{Since, parse_full_id, parse_name, parse_since};

#[derive(Debug, Subcommand)]
pub enum TerminationsCommand {
    /// List terminations, newest first.
    List(TerminationsListArgs),
    /// Show one termination and what happened to each of its sessions.
    Get(TerminationGetArgs),
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
    #[arg(long = "session", value_name = "ID", value_parser = crate::sessions::parse_session_id)]
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

fn parse_termination_id(s: &str) -> Result<String, String> {
    parse_full_id(s, "termination", "terminations list --wide")
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
}
