//! Policies: arguments, requests, rendering and JSON.

mod args;
pub(crate) mod commands;
pub(crate) mod json;
pub(crate) mod render;

pub use args::*;

use crate::args::GlobalArgs;
use crate::client::{Policies, Registry};
use crate::console::Console;
use crate::error::CliError;
use crate::output::Printer;

/// Runs one `policies` subcommand against the policy service (and, for `effective` without `--group`,
/// the registry, for the user's groups).
pub(crate) async fn run(
    command: &PoliciesCommand,
    global: &GlobalArgs,
    p: &mut Printer<'_>,
    console: &mut Console<'_>,
) -> Result<(), CliError> {
    // Mistakes the flags alone show are refused before connecting, like clap's.
    match command {
        PoliciesCommand::Update(args) => args.check().map_err(CliError::Usage)?,
        PoliciesCommand::Delete(args) if !args.yes && !args.dry_run && !console.interactive => {
            return Err(CliError::Usage(
                "`policies delete` asks for confirmation, but stdin is not a terminal; pass --yes to delete \
                 without asking (or --dry-run to see what would go)"
                    .to_owned(),
            ));
        }
        _ => {}
    }
    let policies = Policies::connect(global).await?;
    match command {
        PoliciesCommand::List(args) => commands::list_policies(&policies, args, p).await,
        PoliciesCommand::Get(args) => commands::get_policy(&policies, args, p).await,
        PoliciesCommand::Effective(args) => {
            // Only for the user's groups: without the registry, the rules are still shown (with a note).
            let registry = if args.groups.is_empty() {
                Registry::connect(global).await.ok()
            } else {
                None
            };
            commands::effective_policy(&policies, registry.as_ref(), args, p).await
        }
        PoliciesCommand::Create(args) => commands::create_policy(&policies, args, p).await,
        PoliciesCommand::Update(args) => commands::update_policy(&policies, args, p).await,
        PoliciesCommand::Delete(args) => commands::delete_policy(&policies, args, p, console).await,
    }
}
