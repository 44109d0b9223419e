//! `sessionctl`, the Vigil operator CLI: lists, inspects and watches sessions and gateways through the
//! registry's `vigil.v1.SessionRegistry` gRPC service, ends sessions through `vigil.v1.TerminationService`,
//! manages the policies sessions live by and the locks that shut targets out through
//! `vigil.v1.PolicyService`, and reads the audit trail of all three (`sessionctl audit`). The server, token and CA come from flags, `VIGIL_*` variables or a config
//! file (`profile`).
//!
//! - [`cli`]: the command line (clap): global flags and the parsers every resource shares.
//! - one module per resource — `sessions` (with `stats` and `watch`), `terminations`, `policies`, `locks`,
//!   `gateways`, `audit`, `events` — each holding its arguments, the requests they become, its rendering and its JSON,
//!   with their tests beside them.
//! - [`run`] / [`run_until`] / [`run_with`]: connect, call, render, write; what `main` and the end-to-end
//!   tests drive.
//! - [`render`] (table layout), [`json`] (shared mappings), [`format`] (single values): the pieces every
//!   resource's output is made of; pure functions of proto values and a `now`.
//! - [`Console`]: where confirmations are asked and answered.
//! - [`CliError`]: failures worded for the terminal, each with its exit code.

mod args;
mod audit;
pub mod cli;
mod client;
mod color;
mod console;
mod error;
mod events;
pub mod format;
mod gateways;
mod ids;
pub mod json;
mod locks;
mod output;
mod policies;
mod profile;
pub mod render;
mod session_lookup;
mod sessions;
mod setup;
mod terminations;
#[cfg(test)]
mod testing;

use std::future::Future;
use std::io::{IsTerminal, Write};

pub use cli::{Cli, Command, OutputFormat};
pub use console::{Console, is_yes};
pub use error::{CliError, EXIT_ABORTED, EXIT_SERVER, EXIT_UNREACHABLE, EXIT_USAGE, Service, code_name};
pub use events::EventsCommand;
pub use gateways::GatewaysCommand;
pub use locks::LocksCommand;
pub use policies::PoliciesCommand;
pub use sessions::SessionsCommand;
pub use terminations::TerminationsCommand;

use client::{Policies, Registry, Terminations};
use output::Printer;

/// Runs one parsed command line, writing its output to `out` and notes for people (footers, hints) to
/// stderr; confirmations are asked on stderr and read from stdin. A `watch` runs until Ctrl-C; Ctrl-C also
/// cuts short the wait of `sessions end` (the termination goes on without us).
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
    let terminal = std::io::stdout().is_terminal();
    let mut notes = std::io::stderr();
    run_with(
        cli,
        Streams {
            out,
            err: &mut notes,
            terminal,
        },
        &mut console,
        shutdown,
    )
    .await
}

/// Where [`run_with`] writes: data to `out`, notes for people to `err`; `terminal` says whether `out` is
/// one (for `--color auto`).
pub struct Streams<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub terminal: bool,
}

/// Like [`run_until`], with the output streams and the console given: what tests drive to capture stdout
/// and stderr apart and to answer confirmations.
pub async fn run_with(
    mut cli: Cli,
    streams: Streams<'_>,
    console: &mut Console<'_>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CliError> {
    // Commands about sessionctl itself need no server, and must work while a profile is broken.
    match &cli.command {
        Command::Completion(args) => return cli::completion(args, streams.out),
        Command::Config(command) => {
            let mut p = Printer::new(
                streams.out,
                streams.err,
                cli.global.output.clone(),
                cli.global.no_headers,
            );
            return setup::config(command, &cli.global, &mut p);
        }
        _ => {}
    }
    // Refused before anything is done: a format that cannot show the answer must not follow an action.
    if cli.global.output == OutputFormat::Csv && !cli.command.lists() {
        return Err(CliError::Usage(
            "-o csv is for lists (sessions list|get, terminations list|get, policies list, locks list, gateways \
             list, events sinks, audit); try -o json or -o yaml"
                .to_owned(),
        ));
    }
    // What the command line leaves unsaid comes from the config file (see `profile`).
    profile::resolve(&mut cli.global)?;
    let global = &cli.global;
    let mut p = Printer::new(streams.out, streams.err, global.output.clone(), global.no_headers);
    let no_color = std::env::var("NO_COLOR").ok();
    p.color = global.output.is_human() && color::enabled(global.color, streams.terminal, no_color.as_deref());
    let p = &mut p;
    match &cli.command {
        Command::Sessions(SessionsCommand::End(args)) if args.lock => {
            locks::end_and_lock(args, global, p, console, shutdown).await
        }
        Command::Sessions(command) => sessions::run(command, global, p, console, shutdown).await,
        Command::Stats => sessions::commands::stats(&Registry::connect(global).await?, p).await,
        Command::Watch(args) => {
            let registry = Registry::connect(global).await?;
            // Only to say who ended a session: without the termination service, the watch still runs.
            let terminations = Terminations::connect(global, Some(&registry)).await.ok();
            sessions::commands::watch(&registry, terminations.as_ref(), args, p, shutdown).await
        }
        Command::Gateways(command) => gateways::run(command, global, p).await,
        Command::Terminations(command) => terminations::run(command, global, p).await,
        Command::Policies(command) => policies::run(command, global, p, console).await,
        Command::Locks(command) => locks::run(command, global, p, console).await,
        Command::Events(command) => events::run(command, global, p).await,
        Command::Audit(args) => {
            let registry = Registry::connect(global).await?;
            let terminations = Terminations::connect(global, Some(&registry)).await?;
            let policies = Policies::connect(global).await?;
            audit::audit(&registry, &terminations, &policies, args, p).await
        }
        Command::Login(args) => setup::login(args, global, p, console).await,
        Command::Completion(_) | Command::Config(_) => Ok(()),
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
