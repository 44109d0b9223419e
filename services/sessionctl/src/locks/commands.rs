//! `locks create|list|delete`: ask the policy service, render, write.

use std::io::Write;

use chrono::Local;
use vigil_proto::v1::{EndReason, ListLocksRequest, ListTerminationsRequest, Lock, Termination};

use super::args::*;
use super::{json, render};
use crate::cli::OutputFormat;
use crate::client::{Policies, Terminations};
use crate::error::CliError;

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
