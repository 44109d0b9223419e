//! `terminations list|get`, and following a termination until the gateways are done.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use chrono::{Local, Utc};
use tokio::time::Instant;
use vigil_proto::v1::{ListTerminationsRequest, ListTerminationsResponse, Termination};

use super::args::*;
use super::{json, render};
use crate::cli::OutputFormat;
use crate::client::{Terminations, repeated_page_token};
use crate::error::{CliError, Service};

/// How often `sessions end` asks how far the gateways are.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Polls the termination until no command waits on a gateway, `wait` has passed, or `shutdown`; prints a
/// progress line (table output) each time the counts move. Returns the last state seen.
pub(crate) async fn follow(
    terminations: &Terminations,
    mut termination: Termination,
    wait: Duration,
    output: OutputFormat,
    out: &mut impl Write,
    shutdown: impl Future<Output = ()>,
) -> Result<Termination, CliError> {
    let deadline = Instant::now() + wait;
    tokio::pin!(shutdown);
    let mut shown: Option<String> = None;
    while termination.pending + termination.delivered > 0 {
        if output == OutputFormat::Table {
            let line = render::end_progress(&termination);
            if shown.as_ref() != Some(&line) {
                write!(out, "{line}")?;
                out.flush()?;
                shown = Some(line);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep_until((now + POLL_INTERVAL).min(deadline)) => {}
        }
        termination = match terminations.get_termination(termination.id.clone()).await {
            Ok(latest) => latest,
            Err(error) => {
                // The termination stands whatever happened to us: say where to look before failing.
                if output == OutputFormat::Table {
                    writeln!(
                        out,
                        "Stopped following termination {}; see it with `sessionctl terminations get {}`.",
                        termination.id, termination.id
                    )?;
                }
                return Err(error);
            }
        };
    }
    Ok(termination)
}

pub(crate) async fn list_terminations(
    terminations: &Terminations,
    args: &TerminationsListArgs,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let request = args.to_request(Utc::now());
    let page = if args.all {
        every_termination_page(terminations, request).await?
    } else {
        terminations.list_terminations(request).await?
    };
    match output {
        OutputFormat::Table => write!(out, "{}", render::terminations_table(&page, &Local::now(), args.wide))?,
        OutputFormat::Json => writeln!(out, "{:#}", json::terminations_page(&page))?,
    }
    Ok(())
}

/// Follows `next_page_token` to the last page and returns everything as one page.
async fn every_termination_page(
    terminations: &Terminations,
    mut request: ListTerminationsRequest,
) -> Result<ListTerminationsResponse, CliError> {
    let mut all = terminations.list_terminations(request.clone()).await?;
    while !all.next_page_token.is_empty() {
        if all.next_page_token == request.page_token {
            return Err(repeated_page_token(Service::Termination));
        }
        request.page_token = std::mem::take(&mut all.next_page_token);
        let page = terminations.list_terminations(request.clone()).await?;
        all.terminations.extend(page.terminations);
        all.next_page_token = page.next_page_token;
    }
    Ok(all)
}

pub(crate) async fn get_termination(
    terminations: &Terminations,
    args: &TerminationGetArgs,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let termination = terminations.get_termination(args.id.clone()).await?;
    match output {
        OutputFormat::Table => write!(out, "{}", render::termination_detail(&termination, &Local::now()))?,
        OutputFormat::Json => writeln!(out, "{:#}", json::termination(&termination))?,
    }
    Ok(())
}
