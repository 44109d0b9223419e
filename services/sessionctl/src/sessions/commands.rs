//! `sessions list|get|end`, `stats` and `watch`: ask the registry, render, write.

use std::future::Future;
use std::io::Write;

use chrono::Local;
use tonic::Code;
use vigil_proto::v1::{ListSessionsResponse, ResolveSessionsResponse};

use super::args::*;
use super::{json, render};
use crate::cli::OutputFormat;
use crate::client::{Policies, Registry, Terminations, repeated_page_token};
use crate::console::Console;
use crate::error::{CliError, Service};
use crate::locks::commands::lock_termination;
use crate::terminations::commands::follow;

pub(crate) async fn list_sessions(
    registry: &Registry,
    args: &ListArgs,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let page = if args.all {
        every_page(registry, args).await?
    } else {
        registry.list_sessions(args.to_request()).await?
    };
    match output {
        OutputFormat::Table => write!(out, "{}", render::sessions_table(&page, &Local::now(), args.wide))?,
        OutputFormat::Json => writeln!(out, "{:#}", json::sessions_page(&page))?,
    }
    Ok(())
}

/// Follows `next_page_token` to the last page and returns everything as one page.
async fn every_page(registry: &Registry, args: &ListArgs) -> Result<ListSessionsResponse, CliError> {
    let mut request = args.to_request();
    let mut all = registry.list_sessions(request.clone()).await?;
    while !all.next_page_token.is_empty() {
        if all.next_page_token == request.page_token {
            return Err(repeated_page_token(Service::Registry));
        }
        request.page_token = std::mem::take(&mut all.next_page_token);
        let page = registry.list_sessions(request.clone()).await?;
        all.sessions.extend(page.sessions);
        all.total_size = page.total_size;
        all.total_size_is_lower_bound = page.total_size_is_lower_bound;
        all.next_page_token = page.next_page_token;
    }
    Ok(all)
}

pub(crate) async fn get_session(
    registry: &Registry,
    args: &GetArgs,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let session = registry.get_session(args.id.clone()).await?;
    match output {
        OutputFormat::Table => write!(out, "{}", render::session_detail(&session, &Local::now()))?,
        OutputFormat::Json => writeln!(out, "{:#}", json::session(&session))?,
    }
    Ok(())
}

pub(crate) async fn stats(registry: &Registry, output: OutputFormat, out: &mut impl Write) -> Result<(), CliError> {
    let stats = registry.get_stats().await?;
    match output {
        OutputFormat::Table => write!(out, "{}", render::stats_block(&stats, &Local::now()))?,
        OutputFormat::Json => writeln!(out, "{:#}", json::stats(&stats))?,
    }
    Ok(())
}

/// Prints one line per event until `shutdown` completes (a clean exit) or the stream fails or ends (an
/// error: a watch is meant to run until the person stops it).
pub(crate) async fn watch(
    registry: &Registry,
    args: &WatchArgs,
    output: OutputFormat,
    out: &mut impl Write,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CliError> {
    let mut events = registry.watch_sessions(args.to_request()).await?;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            message = events.message() => match message {
                Ok(Some(event)) => {
                    match output {
                        OutputFormat::Table => writeln!(out, "{}", render::event_line(&event, &Local::now()))?,
                        OutputFormat::Json => writeln!(out, "{}", json::event(&event))?,
                    }
                    // Someone is watching (or piping into `jq`): each event goes out as it comes.
                    out.flush()?;
                }
                Ok(None) => return Err(CliError::WatchEnded { server: registry.server().to_owned() }),
                Err(status) => return Err(registry.stream_error(status)),
            },
        }
    }
}

/// `sessions end`: preview what the selector covers, ask (unless `--yes`), end exactly that many, then follow
/// the gateways' acknowledgements until done, `--wait-timeout`, or `shutdown` (Ctrl-C: the termination goes
/// on without us).
pub(crate) async fn end_sessions(
    registry: &Registry,
    terminations: &Terminations,
    args: &EndArgs,
    output: OutputFormat,
    out: &mut impl Write,
    console: &mut Console<'_>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CliError> {
    let selector = args.selector();
    let preview = registry.resolve_sessions(selector.clone()).await?;
    let live = preview.sessions.len();
    if live == 0 {
        match output {
            OutputFormat::Table => write!(out, "{}", render::nothing_to_end(&preview, &selector))?,
            OutputFormat::Json => writeln!(out, "{:#}", json::end_outcome(None, &preview.already_ended))?,
        }
        return Ok(());
    }
    if !args.yes {
        let text = render::end_confirmation(&preview, &selector, args.reason.to_proto());
        if !console.confirm(&text, &render::end_question(live))? {
            return Err(CliError::Aborted("ended"));
        }
    }

    // A count beyond u32 cannot be expressed; the saturated value makes the server refuse rather than
    // end a set nobody confirmed.
    let expected = u32::try_from(live).unwrap_or(u32::MAX);
    let termination = match terminations.terminate(args.to_request(expected)).await {
        Err(error) if error.server_code() == Some(Code::FailedPrecondition) => {
            // The count is only for the message: when it cannot be had, the message does without.
            let now = registry.resolve_sessions(selector).await.ok().map(|p| p.sessions.len());
            return Err(CliError::PreviewChanged { now });
        }
        result => result?,
    };

    if output == OutputFormat::Table {
        write!(out, "{}", crate::terminations::render::end_recorded(&termination))?;
        out.flush()?;
    }
    let termination = if args.no_wait {
        termination
    } else {
        follow(terminations, termination, args.wait_timeout, output, out, shutdown).await?
    };
    match output {
        OutputFormat::Table if args.no_wait => {
            write!(out, "{}", crate::terminations::render::end_not_waiting(&termination))?
        }
        OutputFormat::Table => write!(out, "{}", crate::terminations::render::end_summary(&termination))?,
        OutputFormat::Json => writeln!(
            out,
            "{:#}",
            json::end_outcome(Some(&termination), &preview.already_ended)
        )?,
    }
    Ok(())
}

/// `sessions end … --lock`: preview what the target covers now, ask (unless `--yes`), create the lock — which
/// ends those sessions, and any that start meanwhile, on the server — then follow that termination like
/// `sessions end` does. The preview guards nothing here (a lock is meant to catch what appears after it), so
/// no expected count is sent; a target with no live session is locked all the same.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn end_and_lock(
    registry: &Registry,
    terminations: &Terminations,
    policies: &Policies,
    args: &EndArgs,
    output: OutputFormat,
    out: &mut impl Write,
    console: &mut Console<'_>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CliError> {
    let Some(request) = args.lock_request() else {
        return Err(CliError::Usage(
            "--lock needs a target to lock: --user, --group, --gateway, --resource, --device or --cidr".to_owned(),
        ));
    };
    let selector = args.selector();
    let preview = match registry.resolve_sessions(selector.clone()).await {
        // Someone the registry has never seen can still be locked out before their first session.
        Err(error) if error.server_code() == Some(Code::NotFound) => ResolveSessionsResponse::default(),
        result => result?,
    };
    let live = preview.sessions.len();
    if !args.yes {
        let text = render::end_lock_confirmation(&preview, &selector, &request);
        if !console.confirm(&text, &render::end_lock_question(live, &request))? {
            return Err(CliError::Aborted("ended or locked"));
        }
    }

    let lock = policies.create_lock(request).await?;
    if output == OutputFormat::Table {
        write!(out, "{}", crate::locks::render::locked(&lock, &Local::now()))?;
        out.flush()?;
    }
    let termination = match lock_termination(terminations, &lock).await {
        Ok(found) => found,
        Err(error) => {
            // The lock stands whatever happened to the lookup: say so rather than fail.
            if output == OutputFormat::Table {
                writeln!(
                    out,
                    "Could not look up the sessions it ended ({error}); see `sessionctl terminations list`."
                )?;
            }
            None
        }
    };
    let termination = match termination {
        Some(termination) if termination.session_count > 0 => {
            if output == OutputFormat::Table {
                write!(out, "{}", crate::terminations::render::end_recorded(&termination))?;
                out.flush()?;
            }
            let termination = if args.no_wait {
                termination
            } else {
                follow(terminations, termination, args.wait_timeout, output, out, shutdown).await?
            };
            match output {
                OutputFormat::Table if args.no_wait => {
                    write!(out, "{}", crate::terminations::render::end_not_waiting(&termination))?
                }
                OutputFormat::Table => write!(out, "{}", crate::terminations::render::end_summary(&termination))?,
                OutputFormat::Json => {}
            }
            Some(termination)
        }
        other => {
            if output == OutputFormat::Table {
                write!(out, "{}", crate::locks::render::lock_sessions(other.as_ref()))?;
            }
            other
        }
    };
    if output == OutputFormat::Json {
        writeln!(
            out,
            "{:#}",
            crate::locks::json::lock_outcome(&lock, termination.as_ref(), &preview.already_ended)
        )?;
    }
    Ok(())
}
