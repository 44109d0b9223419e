//! Sessions: `sessions list|get|end`, `stats` and `watch` — their arguments, requests, rendering and JSON.

mod args;
pub(crate) mod commands;
pub(crate) mod json;
pub(crate) mod render;

pub use args::*;

use std::future::Future;
use std::io::Write;

use crate::cli::GlobalArgs;
use crate::client::{Policies, Registry, Terminations};
use crate::console::Console;
use crate::error::CliError;

/// Runs one `sessions` subcommand, connecting to the services it calls and only to those.
pub(crate) async fn run(
    command: &SessionsCommand,
    global: &GlobalArgs,
    out: &mut impl Write,
    console: &mut Console<'_>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CliError> {
    let output = global.output;
    match command {
        SessionsCommand::List(args) => {
            commands::list_sessions(&Registry::connect(global).await?, args, output, out).await
        }
        SessionsCommand::Get(args) => commands::get_session(&Registry::connect(global).await?, args, output, out).await,
        SessionsCommand::End(args) => {
            // Refused before anything is asked of the servers: a script must never hang on a question.
            if !args.yes && !console.interactive {
                return Err(CliError::Usage(
                    "`sessions end` asks for confirmation, but stdin is not a terminal; pass --yes to end the \
                     sessions without asking"
                        .to_owned(),
                ));
            }
            let registry = Registry::connect(global).await?;
            let terminations = Terminations::connect(global, Some(&registry)).await?;
            if args.lock {
                let policies = Policies::connect(global).await?;
                commands::end_and_lock(
                    &registry,
                    &terminations,
                    &policies,
                    args,
                    output,
                    out,
                    console,
                    shutdown,
                )
                .await
            } else {
                commands::end_sessions(&registry, &terminations, args, output, out, console, shutdown).await
            }
        }
    }
}
