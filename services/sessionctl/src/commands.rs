//! One function per subcommand: ask the services, render, write.

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use chrono::{Local, Utc};
use tokio::time::Instant;
use tonic::Code;
use vigil_proto::v1::{
    EndReason, ListLocksRequest, ListSessionsResponse, ListTerminationsRequest, ListTerminationsResponse, Lock, Policy,
    ResolveSessionsResponse, Termination,
};

use crate::cli::{
    CreateLockArgs, CreatePolicyArgs, EffectiveArgs, EndArgs, GatewaysListArgs, GetArgs, ListArgs, LockDeleteArgs,
    LocksListArgs, OutputFormat, PoliciesListArgs, PolicyDeleteArgs, PolicyGetArgs, TerminationGetArgs,
    TerminationsListArgs, UpdatePolicyArgs, WatchArgs,
};
use crate::client::{Policies, Registry, Terminations};
use crate::console::Console;
use crate::error::{CliError, Service};
use crate::{json, render};

/// How often `sessions end` asks how far the gateways are.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

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
        write!(out, "{}", render::end_recorded(&termination))?;
        out.flush()?;
    }
    let termination = if args.no_wait {
        termination
    } else {
        follow(terminations, termination, args.wait_timeout, output, out, shutdown).await?
    };
    match output {
        OutputFormat::Table if args.no_wait => write!(out, "{}", render::end_not_waiting(&termination))?,
        OutputFormat::Table => write!(out, "{}", render::end_summary(&termination))?,
        OutputFormat::Json => writeln!(
            out,
            "{:#}",
            json::end_outcome(Some(&termination), &preview.already_ended)
        )?,
    }
    Ok(())
}

/// Polls the termination until no command waits on a gateway, `wait` has passed, or `shutdown`; prints a
/// progress line (table output) each time the counts move. Returns the last state seen.
async fn follow(
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

pub(crate) async fn list_policies(
    policies: &Policies,
    args: &PoliciesListArgs,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let list = policies.list_policies().await?;
    match output {
        OutputFormat::Table => write!(out, "{}", render::policies_table(&list, &Local::now(), args.wide))?,
        OutputFormat::Json => writeln!(out, "{:#}", json::policies(&list))?,
    }
    Ok(())
}

pub(crate) async fn get_policy(
    policies: &Policies,
    args: &PolicyGetArgs,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let policy = policies.get_policy(args.id.clone()).await?;
    match output {
        OutputFormat::Table => write!(out, "{}", render::policy_detail(&policy, &Local::now()))?,
        OutputFormat::Json => writeln!(out, "{:#}", json::policy(&policy))?,
    }
    Ok(())
}

pub(crate) async fn effective_policy(
    policies: &Policies,
    args: &EffectiveArgs,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let request = args.to_request();
    let effective = policies.get_effective_policy(request.clone()).await?;
    match output {
        OutputFormat::Table => write!(out, "{}", render::effective_policy(&effective, &request))?,
        OutputFormat::Json => writeln!(out, "{:#}", json::effective_policy(&effective))?,
    }
    Ok(())
}

/// The server checks the rules; its refusal (INVALID_ARGUMENT, ALREADY_EXISTS) is printed as it comes.
pub(crate) async fn create_policy(
    policies: &Policies,
    args: &CreatePolicyArgs,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let policy = policies.create_policy(args.to_request()).await?;
    write_saved("Created", &policy, output, out)
}

/// UpdatePolicy replaces the rules whole, so the policy is read first and the flags applied on top of it.
/// A change someone else makes between the two calls is overwritten: the service has no revision to guard
/// against that, and policies change rarely and by few people.
pub(crate) async fn update_policy(
    policies: &Policies,
    args: &UpdatePolicyArgs,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let current = policies.get_policy(args.id.clone()).await?;
    let policy = policies.update_policy(args.to_request(&current)).await?;
    write_saved("Updated", &policy, output, out)
}

fn write_saved(verb: &str, policy: &Policy, output: OutputFormat, out: &mut impl Write) -> Result<(), CliError> {
    match output {
        OutputFormat::Table => write!(out, "{}", render::policy_saved(verb, policy, &Local::now()))?,
        OutputFormat::Json => writeln!(out, "{:#}", json::policy(policy))?,
    }
    Ok(())
}

/// `policies delete`: show the policy, ask (unless `--yes`), delete it. The policy is read first even with
/// `--yes`, so an unknown id fails before anything else and the output says what was deleted.
pub(crate) async fn delete_policy(
    policies: &Policies,
    args: &PolicyDeleteArgs,
    output: OutputFormat,
    out: &mut impl Write,
    console: &mut Console<'_>,
) -> Result<(), CliError> {
    let policy = policies.get_policy(args.id.clone()).await?;
    if !args.yes {
        let text = render::policy_delete_confirmation(&policy, &Local::now());
        if !console.confirm(&text, &render::policy_delete_question(&policy))? {
            return Err(CliError::Aborted("deleted"));
        }
    }
    policies.delete_policy(policy.id.clone()).await?;
    match output {
        OutputFormat::Table => write!(out, "{}", render::policy_deleted(&policy))?,
        OutputFormat::Json => writeln!(out, "{:#}", json::policy_deleted(&policy))?,
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
        write!(out, "{}", render::locked(&lock, &Local::now()))?;
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
                write!(out, "{}", render::end_recorded(&termination))?;
                out.flush()?;
            }
            let termination = if args.no_wait {
                termination
            } else {
                follow(terminations, termination, args.wait_timeout, output, out, shutdown).await?
            };
            match output {
                OutputFormat::Table if args.no_wait => write!(out, "{}", render::end_not_waiting(&termination))?,
                OutputFormat::Table => write!(out, "{}", render::end_summary(&termination))?,
                OutputFormat::Json => {}
            }
            Some(termination)
        }
        other => {
            if output == OutputFormat::Table {
                write!(out, "{}", render::lock_sessions(other.as_ref()))?;
            }
            other
        }
    };
    if output == OutputFormat::Json {
        writeln!(
            out,
            "{:#}",
            json::lock_outcome(&lock, termination.as_ref(), &preview.already_ended)
        )?;
    }
    Ok(())
}

/// The termination the policy service issued for `lock` as it created it, if any: it carries the lock's id
/// in its note (`lock <id> by <creator>: <reason>`).
async fn lock_termination(terminations: &Terminations, lock: &Lock) -> Result<Option<Termination>, CliError> {
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

/// `locks create`: create the lock, then say whether it ended anything.
pub(crate) async fn create_lock(
    policies: &Policies,
    terminations: &Terminations,
    args: &CreateLockArgs,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let lock = policies.create_lock(args.to_request()).await?;
    // The lock is what was asked for; a failed lookup of what it ended only loses that line.
    let termination = lock_termination(terminations, &lock).await.ok().flatten();
    match output {
        OutputFormat::Table => write!(
            out,
            "{}",
            render::lock_created(&lock, termination.as_ref(), &Local::now())
        )?,
        OutputFormat::Json => writeln!(out, "{:#}", json::lock_outcome(&lock, termination.as_ref(), &[]))?,
    }
    Ok(())
}

pub(crate) async fn list_locks(
    policies: &Policies,
    args: &LocksListArgs,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let locks = policies.list_locks(args.to_request()).await?;
    match output {
        OutputFormat::Table => write!(
            out,
            "{}",
            render::locks_table(&locks, &Local::now(), args.wide, args.all)
        )?,
        OutputFormat::Json => writeln!(out, "{:#}", json::locks(&locks))?,
    }
    Ok(())
}

/// `locks delete`: the lock is looked up first only to say what it covered; an unknown id is the server's
/// NOT_FOUND.
pub(crate) async fn delete_lock(
    policies: &Policies,
    args: &LockDeleteArgs,
    output: OutputFormat,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let known = policies
        .list_locks(ListLocksRequest { include_expired: true })
        .await?
        .into_iter()
        .find(|lock| lock.id == args.id);
    policies.delete_lock(args.id.clone()).await?;
    match output {
        OutputFormat::Table => write!(out, "{}", render::lock_deleted(&args.id, known.as_ref()))?,
        OutputFormat::Json => writeln!(out, "{:#}", json::lock_deleted(&args.id, known.as_ref()))?,
    }
    Ok(())
}

/// A page token that does not move would loop forever; better to stop and say so.
fn repeated_page_token(service: Service) -> CliError {
    CliError::Server {
        service,
        code: Code::Internal,
        message: "the server returned the same page token twice; stopped paging".to_owned(),
    }
}
