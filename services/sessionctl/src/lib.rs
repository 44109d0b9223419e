//! `sessionctl`, the Vigil operator CLI: lists, inspects and watches sessions and gateways through the
//! registry's `vigil.v1.SessionRegistry` gRPC service, ends sessions through `vigil.v1.TerminationService`,
//! manages the policies sessions live by and the locks that shut targets out through
//! `vigil.v1.PolicyService`, and reads the audit trail of all three (`sessionctl audit`). The server, token and CA come from flags, `VIGIL_*` variables or a config
//! file (`profile`).
//!
//! - [`cli`]: the command line (clap) and how flags become requests.
//! - [`run`] / [`run_until`] / [`run_with`]: connect, call, render, write; what `main` and the end-to-end
//!   tests drive.
//! - [`render`] (tables and blocks for people), [`json`] (for scripts), [`format`] (single values): pure
//!   functions of proto values and a `now`.
//! - [`Console`]: where confirmations are asked and answered.
//! - [`CliError`]: failures worded for the terminal, each with its exit code.

mod audit;
pub mod cli;
mod client;
mod commands;
mod console;
mod error;
pub mod format;
pub mod json;
mod profile;
pub mod render;

use std::future::Future;
use std::io::{IsTerminal, Write};

pub use cli::{
    Cli, Command, GatewaysCommand, LocksCommand, OutputFormat, PoliciesCommand, SessionsCommand, TerminationsCommand,
};
pub use console::{Console, is_yes};
pub use error::{CliError, EXIT_ABORTED, EXIT_SERVER, EXIT_UNREACHABLE, EXIT_USAGE, Service, code_name};

use client::{Policies, Registry, Terminations};

/// Runs one parsed command line, writing its output to `out`; confirmations are asked on stderr and read
/// from stdin. A `watch` runs until Ctrl-C; Ctrl-C also cuts short the wait of `sessions end` (the
/// termination goes on without us).
pub async fn run(cli: Cli, out: &mut impl Write) -> Result<(), CliError> {
    run_until(cli, out, ctrl_c()).await
}

/// Like [`run`], but a `watch` (or the wait of `sessions end`) ends cleanly when `shutdown` completes
/// instead of on Ctrl-C; other commands ignore it.
pub async fn run_until(cli: Cli, out: &mut impl Write, shutdown: impl Future<Output = ()>) -> Result<(), CliError> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut input = std::io::BufReader::new(stdin);
    let mut prompts = std::io::stderr();
    let mut console = Console {
        input: &mut input,
        output: &mut prompts,
        interactive,
    };
    run_with(cli, out, &mut console, shutdown).await
}

/// Like [`run_until`], with confirmations asked on `console`: what tests drive to answer them.
pub async fn run_with(
    mut cli: Cli,
    out: &mut impl Write,
    console: &mut Console<'_>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CliError> {
    // What the command line leaves unsaid comes from the config file (see `profile`).
    profile::resolve(&mut cli.global)?;
    let global = &cli.global;
    let output = global.output;
    // Each command connects to the services it calls, and only to those.
    let registry = || Registry::connect(global);
    match &cli.command {
        Command::Sessions(SessionsCommand::List(args)) => {
            commands::list_sessions(&registry().await?, args, output, out).await
        }
        Command::Sessions(SessionsCommand::Get(args)) => {
            commands::get_session(&registry().await?, args, output, out).await
        }
        Command::Sessions(SessionsCommand::End(args)) => {
            // Refused before anything is asked of the servers: a script must never hang on a question.
            if !args.yes && !console.interactive {
                return Err(CliError::Usage(
                    "`sessions end` asks for confirmation, but stdin is not a terminal; pass --yes to end the \
                     sessions without asking"
                        .to_owned(),
                ));
            }
            let registry = registry().await?;
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
        Command::Stats => commands::stats(&registry().await?, output, out).await,
        Command::Watch(args) => commands::watch(&registry().await?, args, output, out, shutdown).await,
        Command::Gateways(GatewaysCommand::List(args)) => {
            commands::list_gateways(&registry().await?, args, output, out).await
        }
        Command::Terminations(TerminationsCommand::List(args)) => {
            let terminations = Terminations::connect(global, None).await?;
            commands::list_terminations(&terminations, args, output, out).await
        }
        Command::Terminations(TerminationsCommand::Get(args)) => {
            let terminations = Terminations::connect(global, None).await?;
            commands::get_termination(&terminations, args, output, out).await
        }
        Command::Policies(command) => run_policies(command, global, out, console).await,
        Command::Locks(command) => {
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
        Command::Audit(args) => {
            let registry = registry().await?;
            let terminations = Terminations::connect(global, Some(&registry)).await?;
            let policies = Policies::connect(global).await?;
            audit::audit(&registry, &terminations, &policies, args, global.output, out).await
        }
    }
}

async fn run_policies(
    command: &PoliciesCommand,
    global: &cli::GlobalArgs,
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

/// Completes on Ctrl-C. The handler is installed when this is first polled, that is only while watching or
/// while `sessions end` waits for the gateways, so everything else keeps the default (Ctrl-C kills the
/// process at once; at a confirmation prompt, before anything was ended).
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No handler could be installed, so Ctrl-C still ends the process the default way; nothing to wait for.
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// A port nothing listens on: bound by us, then released.
    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        listener.local_addr().expect("local address").port()
    }

    #[tokio::test]
    async fn an_unreachable_registry_says_where_and_how_to_fix_it() {
        let server = format!("http://127.0.0.1:{}", free_port());
        let cli = Cli::parse_from(["sessionctl", "--server", &server, "sessions", "list"]);
        let mut out = Vec::new();

        let error = run(cli, &mut out).await.expect_err("nobody listens there");

        assert_eq!(error.exit_code(), EXIT_UNREACHABLE);
        assert_eq!(
            error.to_string(),
            format!(
                "cannot reach the Vigil registry at {server} (connection refused). Is it running? Start it with \
                 `make run`, or point --server / VIGIL_SERVER at it."
            )
        );
        assert!(out.is_empty(), "nothing is printed on failure");
    }
}
