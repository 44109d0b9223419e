//! `policies list|get|effective|create|update|delete`: ask the policy service, render, write.

use std::io::Write;

use chrono::Local;
use vigil_proto::v1::Policy;

use super::args::*;
use super::{json, render};
use crate::cli::OutputFormat;
use crate::client::Policies;
use crate::console::Console;
use crate::error::CliError;

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
