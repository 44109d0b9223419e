//! Terminations: arguments, requests, rendering and JSON.

mod args;
pub(crate) mod commands;
pub(crate) mod json;
pub(crate) mod render;

pub use args::*;

use crate::args::GlobalArgs;
use crate::client::{Registry, Terminations};
use crate::error::CliError;
use crate::output::Printer;

/// Runs one `terminations` subcommand against the termination service (and the registry, to resolve an
/// abbreviated `--session`).
pub(crate) async fn run(
    command: &TerminationsCommand,
    global: &GlobalArgs,
    p: &mut Printer<'_>,
) -> Result<(), CliError> {
    match command {
        TerminationsCommand::List(args) => {
            let needs_registry = args.session_id.as_deref().is_some_and(|id| !crate::ids::is_full(id));
            let registry = if needs_registry {
                Some(Registry::connect(global).await?)
            } else {
                None
            };
            let terminations = Terminations::connect(global, registry.as_ref()).await?;
            commands::list_terminations(&terminations, registry.as_ref(), args, p).await
        }
        TerminationsCommand::Get(args) => {
            let terminations = Terminations::connect(global, None).await?;
            commands::get_termination(&terminations, args, p).await
        }
    }
}
