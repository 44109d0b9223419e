//! Events: the sinks security events go to (webhooks, syslog) and how their delivery stands, and a
//! test event through one of them. Arguments, requests, rendering and JSON.

mod args;
pub(crate) mod commands;
pub(crate) mod json;
pub(crate) mod render;

pub use args::*;

use crate::args::GlobalArgs;
use crate::client::Events;
use crate::error::CliError;
use crate::output::Printer;

/// Runs one `events` subcommand against every distinct server among the registry's, termination's
/// and policy's (each runs a relay of its own; the all-in-one serves all three at one address).
pub(crate) async fn run(command: &EventsCommand, global: &GlobalArgs, p: &mut Printer<'_>) -> Result<(), CliError> {
    let servers = Events::connect_all(global).await?;
    match command {
        EventsCommand::Sinks(_) => commands::list_sinks(&servers, p).await,
        EventsCommand::Test(args) => commands::test_sink(&servers, args, p).await,
    }
}
