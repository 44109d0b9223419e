//! `sessionctl`: parse the command line, run it, turn the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;
use sessionctl::Cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // clap prints usage errors itself and exits with code 2.
    let cli = Cli::parse();
    let mut stdout = std::io::stdout();
    match sessionctl::run(cli, &mut stdout).await {
        Ok(()) => ExitCode::SUCCESS,
        // `sessionctl ... | head` closing the pipe early is not a failure worth a message.
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
