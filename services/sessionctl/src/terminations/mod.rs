//! Terminations: arguments, requests, rendering and JSON.

mod args;
pub(crate) mod commands;
pub(crate) mod json;
pub(crate) mod render;

pub use args::*;

use std::io::Write;

use crate::cli::GlobalArgs;
use crate::client::Terminations;
use crate::error::CliError;

/// Runs one `terminations` subcommand against the termination service.
pub(crate) async fn run(
    command: &TerminationsCommand,
    global: &GlobalArgs,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let terminations = Terminations::connect(global, None).await?;
    match command {
        TerminationsCommand::List(args) => commands::list_terminations(&terminations, args, global.output, out).await,
        TerminationsCommand::Get(args) => commands::get_termination(&terminations, args, global.output, out).await,
    }
}
