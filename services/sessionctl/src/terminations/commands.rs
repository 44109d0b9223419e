//! `terminations list|get`, and following a termination until the gateways are done.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use tokio::time::Instant;
use vigil_proto::v1::{EndReason, ListTerminationsRequest, ListTerminationsResponse, Lock, Termination};

use super::args::{TerminationGetArgs, TerminationsListArgs};
use super::{json, render};
use crate::client::{Registry, Terminations, repeated_page_token};
use crate::error::{CliError, Service};
use crate::ids;
use crate::output::{Data, Printer};

/// How often `sessions end` asks how far the gateways are.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How many of the most recent terminations an abbreviated id is looked for in.
pub const HISTORY_SEARCHED: usize = 10_000;

/// Polls the termination until no command waits on a gateway, `wait` has passed, or `shutdown`; prints a
/// progress line (table output) each time the counts move. Returns the last state seen.
pub(crate) async fn follow(
    terminations: &Terminations,
    mut termination: Termination,
    wait: Duration,
    p: &mut Printer<'_>,
    shutdown: impl Future<Output = ()>,
) -> Result<Termination, CliError> {
    let deadline = Instant::now() + wait;
    tokio::pin!(shutdown);
    let mut shown: Option<String> = None;
    while termination.pending + termination.delivered > 0 {
        if p.is_human() {
            let line = render::end_progress(&termination);
            if shown.as_ref() != Some(&line) {
                write!(p, "{line}")?;
                p.flush()?;
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
                p.note(&format!(
                    "Stopped following termination {}; see it with `sessionctl terminations get {}`.\n",
                    termination.id, termination.id
                ))?;
                return Err(error);
            }
        };
    }
    Ok(termination)
}

/// The termination the policy service issued for `lock` as it created it, if any: it carries the lock's id
/// in its note (`lock <id> by <creator>: <reason>`).
pub(crate) async fn lock_termination(
    terminations: &Terminations,
    lock: &Lock,
) -> Result<Option<Termination>, CliError> {
    let marker = format!("lock {} ", lock.id);
    // A minute's margin: the policy service's clock and termination's need not agree to the second.
    let since = lock.created_at.map(|at| prost_types::Timestamp {
        seconds: at.seconds - 60,
        nanos: at.nanos,
    });
    let request = ListTerminationsRequest {
        reason: EndReason::Locked.into(),
        since,
        page_size: 1000,
        ..ListTerminationsRequest::default()
    };
    let page = terminations.list_terminations(request).await?;
    Ok(page
        .terminations
        .into_iter()
        .find(|termination| termination.note.starts_with(&marker)))
}

pub(crate) async fn list_terminations(
    terminations: &Terminations,
    registry: Option<&Registry>,
    args: &TerminationsListArgs,
    p: &mut Printer<'_>,
) -> Result<(), CliError> {
    let mut request = args.to_request(Utc::now());
    if let Some(given) = &args.session_id
        && !ids::is_full(given)
    {
        let Some(registry) = registry else {
            return Err(CliError::Usage(format!("--session {given}: give the full session id")));
        };
        request.session_id = crate::session_lookup::resolve_session(registry, given, false).await?;
    }
    let page = match args.until {
        Some(until) => until_page(terminations, request, args, until.resolve(Utc::now())).await?,
        None if args.all => every_termination_page(terminations, request).await?,
        None => terminations.list_terminations(request).await?,
    };
    if p.is_human() {
        let table = render::terminations_table(&page.terminations, &Local::now(), args.wide || p.is_wide());
        let table = crate::color::rows(&table, p.color, |row| {
            crate::color::failure_style(page.terminations.get(row).is_some_and(|t| t.failed > 0))
        });
        p.table(&table)?;
        p.note(&render::terminations_footer(&page))?;
    } else {
        p.data(
            Data {
                json: &json::terminations_page(&page),
                names: page
                    .terminations
                    .iter()
                    .map(|t| format!("termination/{}", t.id))
                    .collect(),
                csv: Some(render::terminations_csv(&page.terminations)),
            },
            "a termination list",
        )?;
    }
    Ok(())
}

/// `--until`: the service filters from `--since` on, so the CLI walks newest first, skips what is newer than
/// `until`, and keeps `--limit` (every one with `--all`); "more" is said with an empty token the footer
/// does not offer.
async fn until_page(
    terminations: &Terminations,
    mut request: ListTerminationsRequest,
    args: &TerminationsListArgs,
    until: DateTime<Utc>,
) -> Result<ListTerminationsResponse, CliError> {
    let wanted = if args.all {
        usize::MAX
    } else {
        usize::try_from(args.limit).unwrap_or(50)
    };
    request.page_size = 1000;
    let mut kept = Vec::new();
    loop {
        let page = terminations.list_terminations(request.clone()).await?;
        for t in page.terminations {
            let at = t.created_at.as_ref().and_then(crate::format::to_datetime);
            if at.is_some_and(|at| at >= until) {
                continue;
            }
            if kept.len() == wanted {
                return Ok(ListTerminationsResponse {
                    terminations: kept,
                    next_page_token: String::new(),
                });
            }
            kept.push(t);
        }
        if page.next_page_token.is_empty() || page.next_page_token == request.page_token {
            return Ok(ListTerminationsResponse {
                terminations: kept,
                next_page_token: String::new(),
            });
        }
        request.page_token = page.next_page_token;
    }
}

/// The full id of the termination `given` names, among the [`HISTORY_SEARCHED`] most recent.
pub(crate) async fn resolve_termination(terminations: &Terminations, given: &str) -> Result<String, CliError> {
    if ids::is_full(given) {
        return Ok(given.to_owned());
    }
    let mut request = ListTerminationsRequest {
        page_size: 1000,
        ..ListTerminationsRequest::default()
    };
    let mut seen = Vec::new();
    while seen.len() < HISTORY_SEARCHED {
        let page = terminations.list_terminations(request.clone()).await?;
        seen.extend(page.terminations);
        if page.next_page_token.is_empty() || page.next_page_token == request.page_token {
            break;
        }
        request.page_token = page.next_page_token;
    }
    let now = Local::now();
    let candidates = seen.iter().map(|t| {
        let label = format!(
            "{} by {} ({})",
            crate::format::clock_time(t.created_at.as_ref(), &now),
            t.actor,
            crate::format::selector(t.selector.as_ref())
        );
        (t.id.as_str(), label)
    });
    ids::pick(given, "termination", Service::Termination, candidates)
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
    p: &mut Printer<'_>,
) -> Result<(), CliError> {
    let id = resolve_termination(terminations, &args.id).await?;
    let termination = terminations.get_termination(id).await?;
    if p.is_human() {
        write!(p, "{}", render::termination_detail(&termination, &Local::now()))?;
    } else {
        p.data(
            Data {
                json: &json::termination(&termination),
                names: vec![format!("termination/{}", termination.id)],
                csv: Some(render::terminations_csv(std::slice::from_ref(&termination))),
            },
            "a termination",
        )?;
    }
    Ok(())
}
