//! `events` arguments.

use clap::{Args, Subcommand};

use crate::args::parse_name;

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// The sinks events go to, per service relay: filter, delivered, failed, backlog (and how old
    /// its oldest event is), last error.
    #[command(visible_alias = "status")]
    Sinks(SinksArgs),
    /// Send a test event through a sink now, and say whether it took it.
    Test(TestSinkArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SinksArgs {}

#[derive(Debug, Clone, Args)]
pub struct TestSinkArgs {
    /// The sink's name (`[events.sinks.<name>]`, the SINK column of `events sinks`).
    #[arg(value_parser = parse_name)]
    pub sink: String,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::testing::*;

    #[test]
    fn events_commands_parse() {
        for args in [&["events", "sinks"][..], &["events", "status"]] {
            assert!(
                matches!(parse(args).command, Command::Events(EventsCommand::Sinks(_))),
                "{args:?}"
            );
        }
        let Command::Events(EventsCommand::Test(test)) = parse(&["events", "test", "soc"]).command else {
            panic!("a test")
        };
        assert_eq!(test.sink, "soc");
        for args in [&["events", "test"][..], &["events", "test", ""], &["events", "send"]] {
            let result = Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied()));
            assert_eq!(result.expect_err("should not parse").exit_code(), 2, "{args:?}");
        }
    }
}
