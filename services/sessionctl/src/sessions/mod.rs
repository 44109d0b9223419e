//! Sessions: `sessions list|get|end`, `stats` and `watch` — their arguments, requests, rendering and JSON.

mod args;
pub(crate) mod commands;
pub(crate) mod json;
pub(crate) mod render;

pub use args::*;

use std::future::Future;

use crate::args::GlobalArgs;
use crate::client::{Registry, Terminations};
use crate::console::Console;
use crate::error::CliError;
use crate::output::Printer;

/// Runs one `sessions` subcommand, connecting to the services it calls and only to those.
pub(crate) async fn run(
    command: &SessionsCommand,
    global: &GlobalArgs,
    p: &mut Printer<'_>,
    console: &mut Console<'_>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CliError> {
    match command {
        SessionsCommand::List(args) => commands::list_sessions(&Registry::connect(global).await?, args, p).await,
        SessionsCommand::Get(args) => {
            let registry = Registry::connect(global).await?;
            // Only to say who ended an ended session: without the termination service, the rest still shows.
            let terminations = Terminations::connect(global, Some(&registry)).await.ok();
            commands::get_session(&registry, terminations.as_ref(), args, p).await
        }
        // `--lock` creates a lock, so `run_with` hands that to `locks::end_and_lock`.
        SessionsCommand::End(args) => {
            let (registry, terminations, args) = connect_to_end(args, global, console).await?;
            commands::end_sessions(&registry, &terminations, &args, p, console, shutdown).await
        }
    }
}

/// What `sessions end` (with or without `--lock`) does before anything is shown: refuses to ask without a
/// terminal, connects to the registry and the termination service, and resolves abbreviated ids.
pub(crate) async fn connect_to_end(
    args: &EndArgs,
    global: &GlobalArgs,
    console: &Console<'_>,
) -> Result<(Registry, Terminations, EndArgs), CliError> {
    // Refused before anything is asked of the servers: a script must never hang on a question.
    if !args.yes && !args.dry_run && !console.interactive {
        return Err(CliError::Usage(
            "`sessions end` asks for confirmation, but stdin is not a terminal; pass --yes to end the \
             sessions without asking (or --dry-run to see what would end)"
                .to_owned(),
        ));
    }
    let registry = Registry::connect(global).await?;
    let mut args = args.clone();
    commands::resolve_end_ids(&registry, &mut args).await?;
    let terminations = Terminations::connect(global, Some(&registry)).await?;
    Ok((registry, terminations, args))
}
