//! Locks: arguments, requests, rendering and JSON.

mod args;
pub(crate) mod commands;
pub(crate) mod json;
pub(crate) mod render;

pub use args::*;

use std::io::Write;

use crate::cli::GlobalArgs;
use crate::client::{Policies, Terminations};
use crate::error::CliError;

/// Runs one `locks` subcommand against the policy service (and, to say what a new lock ended, the
/// termination service).
pub(crate) async fn run(command: &LocksCommand, global: &GlobalArgs, out: &mut impl Write) -> Result<(), CliError> {
    let output = global.output;
    let policies = Policies::connect(global).await?;
    match command {
        LocksCommand::Create(args) => {
            let terminations = Terminations::connect(global, None).await?;
            commands::create_lock(&policies, &terminations, args, output, out).await
        }
        LocksCommand::List(args) => commands::list_locks(&policies, args, output, out).await,
        LocksCommand::Delete(args) => commands::delete_lock(&policies, args, output, out).await,
    }
}
