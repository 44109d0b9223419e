//! `sessions list|get|end`, `stats` and `watch`: ask the registry, render, write.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;

use chrono::{DateTime, Local, Utc};
use tonic::Code;
use vigil_proto::v1::{ListSessionsResponse, ResolveSessionsResponse, Session, Termination};

use super::args::{EndArgs, GetArgs, ListArgs, SortArg, WatchArgs};
use super::{json, render};
use crate::client::{Registry, Terminations, repeated_page_token};
use crate::console::Console;
use crate::error::{CliError, Service};
use crate::ids;
use crate::output::{Data, Printer};
use crate::session_lookup::{BIG_PAGE, every_page, resolve_session};
use crate::terminations::commands::follow;

pub(crate) async fn list_sessions(registry: &Registry, args: &ListArgs, p: &mut Printer<'_>) -> Result<(), CliError> {
    let page = if args.is_time_range() {
        in_time_range(registry, args, Utc::now()).await?
    } else if args.all {
        every_page(registry, args.to_request()).await?
    } else {
        registry.list_sessions(args.to_request()).await?
    };
    if p.is_human() {
        let wide = args.wide || p.is_wide();
        let table = render::sessions_table(&page.sessions, &Local::now(), wide);
        let table = crate::color::rows(&table, p.color, |row| {
            let session = page.sessions.get(row)?;
            let flagged = session.risk.as_ref().is_some_and(|risk| !risk.flags.is_empty());
            crate::color::session_style(session.status(), flagged)
        });
        p.table(&table)?;
        p.note(&render::sessions_footer(&page))?;
    } else {
        p.data(
            Data {
                json: &json::sessions_page(&page),
                names: render::session_names(&page.sessions),
                csv: Some(render::sessions_csv(&page.sessions)),
            },
            "a session list",
        )?;
    }
    Ok(())
}

/// `--since`/`--until`: the registry filters by everything but time, so the CLI walks the sessions newest
/// first and keeps those that started in the range, stopping at the first one older than `--since`. At
/// most `--limit` (every one with `--all`); the rest is counted as "more".
async fn in_time_range(
    registry: &Registry,
    args: &ListArgs,
    now: DateTime<Utc>,
) -> Result<ListSessionsResponse, CliError> {
    if args.sort != SortArg::Started || args.asc {
        return Err(CliError::Usage(
            "--since and --until list sessions newest first; leave out --sort and --asc".to_owned(),
        ));
    }
    let since = args.since.map(|since| since.resolve(now));
    let until = args.until.map(|until| until.resolve(now));
    let started = |s: &Session| s.started_at.as_ref().and_then(crate::format::to_datetime);
    let mut request = args.to_request();
    request.page_size = BIG_PAGE;
    let wanted = if args.all {
        usize::MAX
    } else {
        usize::try_from(args.limit).unwrap_or(50)
    };
    let mut kept = Vec::new();
    let mut more = false;
    'pages: loop {
        let page = registry.list_sessions(request.clone()).await?;
        for session in page.sessions {
            let at = started(&session);
            if let (Some(since), Some(at)) = (since, at)
                && at < since
            {
                break 'pages;
            }
            if let (Some(until), Some(at)) = (until, at)
                && at >= until
            {
                continue;
            }
            if kept.len() == wanted {
                more = true;
                break 'pages;
            }
            kept.push(session);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        if page.next_page_token == request.page_token {
            return Err(repeated_page_token(Service::Registry));
        }
        request.page_token = page.next_page_token;
    }
    let total = kept.len() as u64;
    Ok(ListSessionsResponse {
        sessions: kept,
        next_page_token: String::new(),
        total_size: total,
        total_size_is_lower_bound: more,
    })
}

pub(crate) async fn get_session(
    registry: &Registry,
    terminations: Option<&Terminations>,
    args: &GetArgs,
    p: &mut Printer<'_>,
) -> Result<(), CliError> {
    let id = resolve_session(registry, &args.id, false).await?;
    let session = registry.get_session(id).await?;
    let ending = match terminations {
        Some(terminations) => ended_by(terminations, &session, &mut HashMap::new()).await,
        None => None,
    };
    if p.is_human() {
        write!(
            p,
            "{}",
            render::session_detail(&session, ending.as_ref(), &Local::now())
        )?;
    } else {
        p.data(
            Data {
                json: &json::session_with_ending(&session, ending.as_ref()),
                names: render::session_names(std::slice::from_ref(&session)),
                csv: Some(render::sessions_csv(std::slice::from_ref(&session))),
            },
            "a session",
        )?;
    }
    Ok(())
}

/// The termination that ended `session`, named in its end detail (`ended by termination <id>`), for the
/// actor and the note. `None` when it was not ended by one, or the termination service cannot say: the
/// session is shown all the same. `seen` spares a watch asking twice about one termination.
pub(crate) async fn ended_by(
    terminations: &Terminations,
    session: &Session,
    seen: &mut HashMap<String, Option<Termination>>,
) -> Option<Termination> {
    let id = termination_of(session)?;
    if let Some(known) = seen.get(id) {
        return known.clone();
    }
    let found = terminations.get_termination(id.to_owned()).await.ok();
    seen.insert(id.to_owned(), found.clone());
    found
}

/// The id in `ended by termination <id>`.
pub fn termination_of(session: &Session) -> Option<&str> {
    let (_, rest) = session.end_detail.split_once("termination ")?;
    let id = rest.split(|c: char| !(c.is_ascii_hexdigit() || c == '-')).next()?;
    ids::is_full(id).then_some(id)
}

pub(crate) async fn stats(registry: &Registry, p: &mut Printer<'_>) -> Result<(), CliError> {
    let stats = registry.get_stats().await?;
    if p.is_human() {
        write!(p, "{}", render::stats_block(&stats, &Local::now()))?;
    } else {
        p.data(
            Data {
                json: &json::stats(&stats),
                names: Vec::new(),
                csv: None,
            },
            "`stats`",
        )?;
    }
    Ok(())
}

/// Prints one line per event until `shutdown` completes (a clean exit) or the stream fails or ends (an
/// error: a watch is meant to run until the person stops it). Ended sessions name who ended them and why
/// when the termination service can say.
pub(crate) async fn watch(
    registry: &Registry,
    terminations: Option<&Terminations>,
    args: &WatchArgs,
    p: &mut Printer<'_>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CliError> {
    let mut events = registry.watch_sessions(args.to_request()).await?;
    let mut seen = HashMap::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            message = events.message() => match message {
                Ok(Some(event)) => {
                    let ending = match (terminations, &event.session) {
                        (Some(terminations), Some(session)) => ended_by(terminations, session, &mut seen).await,
                        _ => None,
                    };
                    if p.is_human() {
                        let line = render::event_line(&event, ending.as_ref(), &Local::now());
                        let line = crate::color::event_line(&line, &event, p.color);
                        writeln!(p, "{line}")?;
                        // Someone is watching: each event goes out as it comes.
                        p.flush()?;
                    } else {
                        let names = event.session.iter().map(|s| format!("session/{}", s.id)).collect();
                        p.event(Data { json: &json::event_with_ending(&event, ending.as_ref()), names, csv: None })?;
                    }
                }
                Ok(None) => return Err(CliError::WatchEnded { server: registry.server().to_owned() }),
                Err(status) => return Err(registry.stream_error(status)),
            },
        }
    }
}

/// Resolves abbreviated ids among the live sessions (only live ones can be ended).
pub(crate) async fn resolve_end_ids(registry: &Registry, args: &mut EndArgs) -> Result<(), CliError> {
    let mut full = Vec::with_capacity(args.target.ids.len());
    for given in &args.target.ids {
        full.push(resolve_session(registry, given, true).await?);
    }
    args.target.ids = full;
    Ok(())
}

/// `sessions end`: preview what the selector covers, ask (unless `--yes`), end exactly that many, then follow
/// the gateways' acknowledgements until done, `--wait-timeout`, or `shutdown` (Ctrl-C: the termination goes
/// on without us). With `--dry-run`, the preview is all.
pub(crate) async fn end_sessions(
    registry: &Registry,
    terminations: &Terminations,
    args: &EndArgs,
    p: &mut Printer<'_>,
    console: &mut Console<'_>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CliError> {
    let selector = args.selector();
    let preview = registry.resolve_sessions(selector.clone()).await?;
    let live = preview.sessions.len();
    if live == 0 {
        if p.is_human() {
            write!(p, "{}", render::nothing_to_end(&preview, &selector))?;
        } else {
            let outcome = json::end_outcome(None, &preview.already_ended);
            p.data(
                Data {
                    json: &outcome,
                    names: Vec::new(),
                    csv: None,
                },
                "`sessions end`",
            )?;
        }
        return Ok(());
    }
    if args.dry_run {
        let text = render::end_confirmation(&preview, &selector, args.reason.to_proto());
        return dry_run(p, &preview, &text, "Dry run: nothing was ended.\n");
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
    let termination = follow_and_summarise(terminations, termination, args, p, shutdown).await?;
    if !p.is_human() {
        let outcome = json::end_outcome(Some(&termination), &preview.already_ended);
        p.data(
            Data {
                json: &outcome,
                names: vec![format!("termination/{}", termination.id)],
                csv: None,
            },
            "`sessions end`",
        )?;
    }
    Ok(())
}

/// `--dry-run`: what would end, on stdout for people (the same text the confirmation shows) or as the
/// machine format's list of sessions; nothing is asked of the termination service.
pub(crate) fn dry_run(
    p: &mut Printer<'_>,
    preview: &ResolveSessionsResponse,
    text: &str,
    note: &str,
) -> Result<(), CliError> {
    if p.is_human() {
        write!(p, "{text}")?;
        p.note(note)?;
    } else {
        let page = ListSessionsResponse {
            sessions: preview.sessions.clone(),
            total_size: preview.sessions.len() as u64,
            ..ListSessionsResponse::default()
        };
        p.data(
            Data {
                json: &json::sessions_page(&page),
                names: render::session_names(&page.sessions),
                csv: Some(render::sessions_csv(&page.sessions)),
            },
            "a dry run",
        )?;
    }
    Ok(())
}

/// Prints that the termination is recorded, follows it (unless `--no-wait`) and prints how it went.
pub(crate) async fn follow_and_summarise(
    terminations: &Terminations,
    termination: Termination,
    args: &EndArgs,
    p: &mut Printer<'_>,
    shutdown: impl Future<Output = ()>,
) -> Result<Termination, CliError> {
    use crate::terminations::render as t;
    if p.is_human() {
        write!(p, "{}", t::end_recorded(&termination))?;
        p.flush()?;
    }
    let termination = if args.no_wait {
        termination
    } else {
        follow(terminations, termination, args.wait_timeout, p, shutdown).await?
    };
    if p.is_human() {
        let summary = if args.no_wait {
            t::end_not_waiting(&termination)
        } else {
            t::end_summary(&termination)
        };
        write!(p, "{summary}")?;
    }
    Ok(termination)
}
