//! The command line: the resources' subcommands (global flags and shared parsers: `args`).
//!
//! Everything a person can get wrong is checked here, by clap, so a bad flag is a usage error (exit 2)
//! before any connection is attempted. Each resource's own flags live in its module (`sessions`,
//! `terminations`, `policies`, `locks`, `gateways`, `audit`).

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

pub use crate::args::{DEFAULT_SERVER, GlobalArgs, Since, Token};
use crate::audit::AuditArgs;
use crate::error::CliError;
use crate::events::EventsCommand;
use crate::gateways::GatewaysCommand;
use crate::locks::LocksCommand;
pub use crate::output::OutputFormat;
use crate::policies::PoliciesCommand;
use crate::sessions::{SessionsCommand, WatchArgs};
use crate::setup::{CompletionArgs, ConfigCommand, LoginArgs};
use crate::terminations::TerminationsCommand;

/// The exit codes, for `--help` (and the README).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  a service refused or failed the request (not found, invalid, permission denied, …)
  2  usage: a bad flag or value, an ambiguous id, a question that needs --yes without a terminal
  3  a service could not be reached, or did not answer within --timeout
  4  you answered no to a confirmation: nothing was done

Output: data on stdout; counts, hints and notes on stderr. -o json|yaml|name|jsonpath=…|csv for scripts.";

/// `sessionctl`: see, follow and end remote-access sessions through Vigil.
#[derive(Debug, Parser)]
#[command(
    name = "sessionctl",
    version,
    about,
    propagate_version = true,
    after_help = "`-h` is short, `--help` says more (every global option too).",
    after_long_help = EXIT_CODES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
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
    /// Where security events go (webhooks, syslog): each sink's delivery, and a test event.
    #[command(subcommand)]
    Events(EventsCommand),
    /// The audit trail, newest first: terminations, policy changes and refused admissions — who, when,
    /// what, and how it ended.
    Audit(AuditArgs),
    /// Store a token for the current profile (or --context), checked against its registry first.
    Login(LoginArgs),
    /// Named profiles (contexts): list, switch, create.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script: `source <(sessionctl completion bash)`.
    Completion(CompletionArgs),
}

impl Command {
    /// Whether the answer is a list (or one row of one), which `-o csv` can show.
    pub fn lists(&self) -> bool {
        use crate::locks::LocksCommand as L;
        use crate::policies::PoliciesCommand as P;
        use crate::terminations::TerminationsCommand as T;
        match self {
            Command::Sessions(SessionsCommand::List(_) | SessionsCommand::Get(_)) => true,
            Command::Sessions(SessionsCommand::End(end)) => end.dry_run,
            Command::Terminations(T::List(_) | T::Get(_)) => true,
            Command::Policies(P::List(_)) | Command::Locks(L::List(_)) | Command::Gateways(_) | Command::Audit(_) => {
                true
            }
            Command::Locks(L::Create(create)) => create.dry_run,
            Command::Events(EventsCommand::Sinks(_)) => true,
            _ => false,
        }
    }
}

/// `sessionctl completion SHELL`: the completion script, for `source <(sessionctl completion bash)`.
pub fn completion(args: &CompletionArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "sessionctl", out);
    Ok(())
}

#[cfg(test)]
mod tests {

    use std::time::Duration;

    use super::*;
    use crate::testing::*;

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
            &["sessions", "get", "--", "--dry-run"],
        ] {
            let result = Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied()));
            let error = result.expect_err(&format!("{args:?} should not parse"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn the_termination_server_defaults_to_the_registry() {
        let cli = parse(&["--server", "10.0.0.5:7400", "terminations", "list"]);
        assert_eq!(cli.global.termination_address(), "http://10.0.0.5:7400");
        let cli = parse(&["terminations", "list", "--termination-server", "10.0.0.6:7401"]);
        assert_eq!(cli.global.termination_address(), "http://10.0.0.6:7401");
        assert_eq!(cli.global.server(), DEFAULT_SERVER);
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

    #[test]
    fn short_help_is_compact_and_long_help_documents_the_exit_codes() {
        let short = Cli::try_parse_from(["sessionctl", "sessions", "list", "-h"])
            .expect_err("help")
            .to_string();
        assert!(!short.contains("--termination-server"), "{short}");
        assert!(short.contains("--output"), "{short}");
        let long = Cli::try_parse_from(["sessionctl", "--help"])
            .expect_err("help")
            .to_string();
        assert!(
            long.contains("Exit codes:") && long.contains("4  you answered no"),
            "{long}"
        );
        assert!(long.contains("--termination-server"), "{long}");
    }

    #[test]
    fn contexts_and_completion_parse() {
        let cli = parse(&["--context", "prod", "config", "use-context", "lab"]);
        assert_eq!(cli.global.context.as_deref(), Some("prod"));
        assert!(matches!(
            cli.command,
            Command::Config(crate::setup::ConfigCommand::UseContext(_))
        ));
        assert!(matches!(parse(&["completion", "zsh"]).command, Command::Completion(_)));
        assert!(Cli::try_parse_from(["sessionctl", "completion", "tcsh"]).is_err());
    }
}
