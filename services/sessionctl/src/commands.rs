//! One function per subcommand: ask the registry, render, write.

use std::future::Future;
use std::io::Write;

use chrono::Local;
use tonic::Code;
use vigil_proto::v1::ListSessionsResponse;

use crate::cli::{GatewaysListArgs, GetArgs, ListArgs, OutputFormat, WatchArgs};
use crate::client::Registry;
use crate::error::CliError;
use crate::{json, render};

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
        // A token that does not move would loop forever; better to stop and say so.
        if all.next_page_token == request.page_token {
            return Err(CliError::Server {
                code: Code::Internal,
                message: "the registry returned the same page token twice; stopped paging".to_owned(),
            });
        }
        request.page_token = std::mem::take(&mut all.next_page_token);
        let page = registry.list_sessions(request.clone()).await?;
        all.sessions.extend(page.sessions);
        all.total_size = page.total_size;
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

pub(crate) async fn list_gateways(
    registry: &Registry,
    args: &GatewaysListArgs,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let gateways = registry.list_gateways(args.to_request()).await?.gateways;
    match output {
        OutputFormat::Table => write!(out, "{}", render::gateways_table(&gateways, &Local::now()))?,
        OutputFormat::Json => writeln!(out, "{:#}", json::gateways(&gateways))?,
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
