//! `locks create|list|delete`: ask the policy service, render, write.

use std::future::Future;
use std::io::Write;

use chrono::Local;
use tonic::Code;
use vigil_proto::v1::{CreateLockRequest, ListLocksRequest, Lock, ResolveSessionsResponse};

use super::args::{CreateLockArgs, LockDeleteArgs, LocksListArgs, sessions_of};
use super::{json, render};
use crate::client::{Policies, Registry, Terminations};
use crate::console::Console;
use crate::error::{CliError, Service};
use crate::ids;
use crate::output::{Data, Printer};
use crate::sessions::EndArgs;
use crate::sessions::commands::{dry_run, follow_and_summarise};
use crate::terminations::commands::lock_termination;

/// The live sessions a new lock would end, for the confirmation; someone the registry has never seen has
/// none (and can still be locked out ahead of time).
pub(crate) async fn lock_preview(
    registry: &Registry,
    request: &CreateLockRequest,
) -> Result<ResolveSessionsResponse, CliError> {
    let Some(selector) = request.target.as_ref().and_then(sessions_of) else {
        return Ok(ResolveSessionsResponse::default());
    };
    match registry.resolve_sessions(selector).await {
        Err(error) if error.server_code() == Some(Code::NotFound) => Ok(ResolveSessionsResponse::default()),
        result => result,
    }
}

/// `sessions end … --lock`: preview what the target covers now, ask (unless `--yes`), create the lock — which
/// ends those sessions, and any that start meanwhile, on the server — then follow that termination like
/// `sessions end` does. The preview guards nothing here (a lock is meant to catch what appears after it), so
/// no expected count is sent; a target with no live session is locked all the same.
pub(crate) async fn end_and_lock(
    services: (&Registry, &Terminations, &Policies),
    args: &EndArgs,
    p: &mut Printer<'_>,
    console: &mut Console<'_>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), CliError> {
    let (registry, terminations, policies) = services;
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
    let text = render::end_lock_confirmation(&preview, &selector, &request);
    if args.dry_run {
        return dry_run(p, &preview, &text, "Dry run: nothing was ended.\n");
    }
    if !args.yes && !console.confirm(&text, &render::end_lock_question(live, &request))? {
        return Err(CliError::Aborted("ended or locked"));
    }

    let lock = policies.create_lock(request).await?;
    if p.is_human() {
        write!(p, "{}", render::locked(&lock, &Local::now()))?;
        p.flush()?;
    }
    let termination = match lock_termination(terminations, &lock).await {
        Ok(found) => found,
        Err(error) => {
            // The lock stands whatever happened to the lookup: say so rather than fail.
            p.note(&format!(
                "Could not look up the sessions it ended ({error}); see `sessionctl terminations list`.\n"
            ))?;
            None
        }
    };
    let termination = match termination {
        Some(termination) if termination.session_count > 0 => {
            Some(follow_and_summarise(terminations, termination, args, p, shutdown).await?)
        }
        other => {
            if p.is_human() {
                write!(p, "{}", render::lock_sessions(other.as_ref()))?;
            }
            other
        }
    };
    if !p.is_human() {
        let outcome = json::lock_outcome(&lock, termination.as_ref(), &preview.already_ended);
        p.data(
            Data {
                json: &outcome,
                names: vec![format!("lock/{}", lock.id)],
                csv: None,
            },
            "`sessions end --lock`",
        )?;
    }
    Ok(())
}

/// `locks create`: show what the lock would end and ask when that is anything (unless `--yes`), create the
/// lock, then say whether it ended anything. `--dry-run` stops after showing.
pub(crate) async fn create_lock(
    services: (&Registry, &Policies, &Terminations),
    args: &CreateLockArgs,
    p: &mut Printer<'_>,
    console: &mut Console<'_>,
) -> Result<(), CliError> {
    let (registry, policies, terminations) = services;
    let request = args.to_request();
    let preview = lock_preview(registry, &request).await?;
    let live = preview.sessions.len();
    let selector = request.target.as_ref().and_then(sessions_of).unwrap_or_default();
    let text = render::end_lock_confirmation(&preview, &selector, &request);
    if args.dry_run {
        return dry_run(p, &preview, &text, "Dry run: nothing was locked or ended.\n");
    }
    if live > 0 && !args.yes {
        if !console.interactive {
            return Err(CliError::Usage(format!(
                "this lock would end {live} live session{}, and `locks create` asks first, but stdin is not a \
                 terminal; pass --yes to lock without asking (or --dry-run to see them)",
                if live == 1 { "" } else { "s" }
            )));
        }
        if !console.confirm(&text, &render::end_lock_question(live, &request))? {
            return Err(CliError::Aborted("ended or locked"));
        }
    }
    let lock = policies.create_lock(request).await?;
    // The lock is what was asked for; a failed lookup of what it ended only loses that line.
    let termination = lock_termination(terminations, &lock).await.ok().flatten();
    if p.is_human() {
        write!(
            p,
            "{}",
            render::lock_created(&lock, termination.as_ref(), &Local::now())
        )?;
    } else {
        p.data(
            Data {
                json: &json::lock_outcome(&lock, termination.as_ref(), &[]),
                names: vec![format!("lock/{}", lock.id)],
                csv: None,
            },
            "`locks create`",
        )?;
    }
    Ok(())
}

pub(crate) async fn list_locks(policies: &Policies, args: &LocksListArgs, p: &mut Printer<'_>) -> Result<(), CliError> {
    let locks = policies.list_locks(args.to_request()).await?;
    if p.is_human() {
        p.table(&render::locks_table(&locks, &Local::now(), args.wide || p.is_wide()))?;
        p.note(&render::locks_footer(&locks, args.all))?;
    } else {
        p.data(
            Data {
                json: &json::locks(&locks),
                names: locks.iter().map(|lock| format!("lock/{}", lock.id)).collect(),
                csv: Some(render::locks_csv(&locks)),
            },
            "a lock list",
        )?;
    }
    Ok(())
}

/// `locks delete`: by id (any unique abbreviation), or every lock on a target. The locks are looked up
/// first, to resolve the id and to say what each covered. None found is NOT_FOUND, or nothing at all with
/// `--ignore-not-found`.
pub(crate) async fn delete_lock(
    policies: &Policies,
    args: &LockDeleteArgs,
    p: &mut Printer<'_>,
) -> Result<(), CliError> {
    let known = policies.list_locks(ListLocksRequest { include_expired: true }).await?;
    let chosen = match locks_to_delete(&known, args)? {
        Err(error) if args.ignore_not_found && error.server_code() == Some(Code::NotFound) => Vec::new(),
        other => other?,
    };
    let mut deleted = Vec::new();
    for lock in &chosen {
        if !args.dry_run {
            match policies.delete_lock(lock.id.clone()).await {
                // Gone meanwhile (it expired, someone else removed it): what was asked for is so.
                Err(error) if args.ignore_not_found && error.server_code() == Some(Code::NotFound) => continue,
                other => other?,
            }
        }
        deleted.push(lock.clone());
    }
    print_deleted(&deleted, args.dry_run, p)
}

/// The locks `args` names among `known`: the outer error is a usage error (nothing named), the inner
/// one what the service would say (NOT_FOUND), which `--ignore-not-found` may forgive.
fn locks_to_delete(known: &[Lock], args: &LockDeleteArgs) -> Result<Result<Vec<Lock>, CliError>, CliError> {
    Ok(match (&args.id, args.target()) {
        // A whole id goes to the service as it is, so an unknown one is its NOT_FOUND.
        (Some(given), _) if ids::is_full(given) => Ok(vec![
            known
                .iter()
                .find(|lock| lock.id == *given)
                .cloned()
                .unwrap_or_else(|| Lock {
                    id: given.clone(),
                    ..Lock::default()
                }),
        ]),
        (Some(given), _) => {
            let now = Local::now();
            let candidates = known.iter().map(|lock| {
                let label = format!(
                    "{} ({})",
                    crate::format::lock_target(lock.target.as_ref()),
                    crate::format::lock_expiry(lock.expires_at.as_ref(), &now)
                );
                (lock.id.as_str(), label)
            });
            ids::pick(given, "lock", Service::Policy, candidates)
                .map(|id| known.iter().filter(|lock| lock.id == id).cloned().collect())
        }
        (None, Some(target)) => {
            let on_target: Vec<Lock> = known
                .iter()
                .filter(|lock| lock.target.as_ref() == Some(&target))
                .cloned()
                .collect();
            if on_target.is_empty() {
                Err(CliError::Server {
                    service: Service::Policy,
                    code: Code::NotFound,
                    message: format!("no lock on {}", crate::format::lock_target(Some(&target))),
                })
            } else {
                Ok(on_target)
            }
        }
        (None, None) => {
            return Err(CliError::Usage(
                "say which lock: its id, or --user, --group, --resource, --gateway, --device or --cidr".to_owned(),
            ));
        }
    })
}

/// What `locks delete` removed (or, with `--dry-run`, would remove).
fn print_deleted(deleted: &[Lock], dry_run: bool, p: &mut Printer<'_>) -> Result<(), CliError> {
    if p.is_human() {
        for lock in deleted {
            let line = render::lock_deleted(&lock.id, lock.target.is_some().then_some(lock));
            if dry_run {
                write!(p, "Would remove: {line}")?;
            } else {
                write!(p, "{line}")?;
            }
        }
        if deleted.is_empty() {
            p.note("No such lock; nothing to remove.\n")?;
        }
        if dry_run {
            p.note("Dry run: nothing was removed.\n")?;
        }
    } else {
        let value = serde_json::json!({
            "deleted": deleted.iter().map(|lock| json::lock_deleted(&lock.id, Some(lock))).collect::<Vec<_>>(),
            "dry_run": dry_run,
        });
        p.data(
            Data {
                json: &value,
                names: deleted.iter().map(|lock| format!("lock/{}", lock.id)).collect(),
                csv: None,
            },
            "`locks delete`",
        )?;
    }
    Ok(())
}
