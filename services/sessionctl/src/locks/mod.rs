//! Locks: arguments, requests, rendering and JSON.

mod args;
pub(crate) mod commands;
pub(crate) mod json;
pub(crate) mod render;

pub use args::*;

use std::future::Future;

use crate::args::GlobalArgs;
use crate::client::{Policies, Registry, Terminations};
use crate::console::Console;
use crate::error::CliError;
use crate::output::Printer;

/// Runs one `locks` subcommand against the policy service (and, for `create`, the registry to show what
/// the lock would end and the termination service to say what it ended).
pub(crate) async fn run(
    command: &LocksCommand,
    global: &GlobalArgs,
    p: &mut Printer<'_>,
    console: &mut Console<'_>,
) -> Result<(), CliError> {
    let policies = Policies::connect(global).await?;
    match command {
        LocksCommand::Create(args) => {
            let registry = Registry::connect(global).await?;
            let terminations = Terminations::connect(global, Some(&registry)).await?;
            commands::create_lock((&registry, &policies, &terminations), args, p, console).await
        }
        LocksCommand::List(args) => commands::list_locks(&policies, args, p).await,
        LocksCommand::Delete(args) => commands::delete_lock(&policies, args, p).await,
    }
}

/// `sessions end … --lock`: ends what the target covers by locking it (see [`commands::end_and_lock`]). Here
/// rather than with the `sessions` commands because it creates a lock; `sessions` depends on no lock.
pub(crate) async fn end_and_lock(
    args: &crate::sessions::EndArgs,
    global: &GlobalArgs,
    p: &mut Printer<'_>,
    console: &mut Console<'_>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CliError> {
    let (registry, terminations, args) = crate::sessions::connect_to_end(args, global, console).await?;
    let policies = Policies::connect(global).await?;
    commands::end_and_lock((&registry, &terminations, &policies), &args, p, console, shutdown).await
}
