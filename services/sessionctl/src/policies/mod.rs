//! Policies: arguments, requests, rendering and JSON.

mod args;
pub(crate) mod commands;
pub(crate) mod json;
pub(crate) mod render;

pub use args::*;

use std::io::Write;

use crate::cli::GlobalArgs;
use crate::client::Policies;
use crate::console::Console;
use crate::error::CliError;

/// Runs one `policies` subcommand against the policy service.
pub(crate) async fn run(
    command: &PoliciesCommand,
    global: &GlobalArgs,
    out: &mut impl Write,
    console: &mut Console<'_>,
) -> Result<(), CliError> {
    let output = global.output;
    // Mistakes the flags alone show are refused before connecting, like clap's.
    match command {
        PoliciesCommand::Update(args) => args.check().map_err(CliError::Usage)?,
        PoliciesCommand::Delete(args) if !args.yes && !console.interactive => {
            return Err(CliError::Usage(
                "`policies delete` asks for confirmation, but stdin is not a terminal; pass --yes to delete \
                 without asking"
                    .to_owned(),
            ));
        }
        _ => {}
    }
    let policies = Policies::connect(global).await?;
    match command {
        PoliciesCommand::List(args) => commands::list_policies(&policies, args, output, out).await,
        PoliciesCommand::Get(args) => commands::get_policy(&policies, args, output, out).await,
        PoliciesCommand::Effective(args) => commands::effective_policy(&policies, args, output, out).await,
        PoliciesCommand::Create(args) => commands::create_policy(&policies, args, output, out).await,
        PoliciesCommand::Update(args) => commands::update_policy(&policies, args, output, out).await,
        PoliciesCommand::Delete(args) => commands::delete_policy(&policies, args, output, out, console).await,
    }
}
