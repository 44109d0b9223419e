//! `policies list|get|effective|create|update|delete`: ask the policy service, render, write.

use std::io::Write;

use chrono::Local;
use vigil_proto::v1::{ListSessionsRequest, Policy, SessionFilter, SessionOrderBy, SessionStatus};

use super::args::{
    CreatePolicyArgs, EffectiveArgs, PoliciesListArgs, PolicyDeleteArgs, PolicyGetArgs, UpdatePolicyArgs,
};
use super::render::GroupsFrom;
use super::{json, render};
use crate::client::{Policies, Registry};
use crate::console::Console;
use crate::error::{CliError, Service};
use crate::ids;
use crate::output::{Data, Grid, Printer};

/// The full id of the policy `given` names (policies are few: all of them are listed).
pub(crate) async fn resolve_policy(policies: &Policies, given: &str) -> Result<String, CliError> {
    if ids::is_full(given) {
        return Ok(given.to_owned());
    }
    let all = policies.list_policies().await?;
    let candidates = all
        .iter()
        .map(|policy| (policy.id.as_str(), crate::format::scope(policy.scope.as_ref())));
    ids::pick(given, "policy", Service::Policy, candidates)
}

pub(crate) async fn list_policies(
    policies: &Policies,
    args: &PoliciesListArgs,
    p: &mut Printer<'_>,
) -> Result<(), CliError> {
    let list = policies.list_policies().await?;
    if p.is_human() {
        p.table(&render::policies_table(&list, &Local::now(), args.wide || p.is_wide()))?;
        p.note(&render::policies_footer(&list))?;
    } else {
        let mut grid = Grid::new(&["id", "scope", "description"]);
        for policy in &list {
            grid.rows.push(vec![
                policy.id.clone(),
                crate::format::scope(policy.scope.as_ref()),
                policy.description.clone(),
            ]);
        }
        p.data(
            Data {
                json: &json::policies(&list),
                names: list.iter().map(|policy| format!("policy/{}", policy.id)).collect(),
                csv: Some(grid),
            },
            "a policy list",
        )?;
    }
    Ok(())
}

pub(crate) async fn get_policy(policies: &Policies, args: &PolicyGetArgs, p: &mut Printer<'_>) -> Result<(), CliError> {
    let id = resolve_policy(policies, &args.id).await?;
    let policy = policies.get_policy(id).await?;
    if p.is_human() {
        write!(p, "{}", render::policy_detail(&policy, &Local::now()))?;
    } else {
        write_policy(&policy, &json::policy(&policy), p)?;
    }
    Ok(())
}

fn write_policy(policy: &Policy, value: &serde_json::Value, p: &mut Printer<'_>) -> Result<(), CliError> {
    p.data(
        Data {
            json: value,
            names: vec![format!("policy/{}", policy.id)],
            csv: None,
        },
        "a policy",
    )
}

/// The rules in force for a user on a resource. Without `--group`, the groups are those the gateway
/// reported for the user's most recent session (live or ended); a user with no session has none known,
/// which the output says.
pub(crate) async fn effective_policy(
    policies: &Policies,
    registry: Option<&Registry>,
    args: &EffectiveArgs,
    p: &mut Printer<'_>,
) -> Result<(), CliError> {
    let mut request = args.to_request();
    let mut from = GroupsFrom::Flags;
    if args.groups.is_empty() {
        match latest_groups(registry, &args.user).await {
            Some(groups) => {
                request.user_groups = groups;
                from = GroupsFrom::Sessions;
            }
            None => p.note(&format!(
                "Note: no session of {} is known, so their groups are not; give them with --group.\n",
                args.user
            ))?,
        }
    }
    let effective = policies.get_effective_policy(request.clone()).await?;
    if p.is_human() {
        write!(p, "{}", render::effective_policy(&effective, &request, from))?;
    } else {
        let mut value = json::effective_policy(&effective);
        value["user_groups"] = serde_json::json!(request.user_groups);
        value["user_groups_from"] = serde_json::json!(match from {
            GroupsFrom::Flags => "flags",
            GroupsFrom::Sessions => "latest_session",
        });
        p.data(
            Data {
                json: &value,
                names: Vec::new(),
                csv: None,
            },
            "`policies effective`",
        )?;
    }
    Ok(())
}

/// The groups of the user's most recent session, if the registry knows one.
async fn latest_groups(registry: Option<&Registry>, user: &str) -> Option<Vec<String>> {
    let request = ListSessionsRequest {
        filter: Some(SessionFilter {
            statuses: [SessionStatus::Active, SessionStatus::Idle, SessionStatus::Disconnected]
                .into_iter()
                .map(i32::from)
                .collect(),
            user: user.to_owned(),
            ..SessionFilter::default()
        }),
        order_by: SessionOrderBy::StartedAt.into(),
        ascending: false,
        page_size: 1,
        page_token: String::new(),
    };
    let page = registry?.list_sessions(request).await.ok()?;
    page.sessions.into_iter().next().map(|session| session.user_groups)
}

/// The server checks the rules; its refusal (INVALID_ARGUMENT, ALREADY_EXISTS) is printed as it comes.
pub(crate) async fn create_policy(
    policies: &Policies,
    args: &CreatePolicyArgs,
    p: &mut Printer<'_>,
) -> Result<(), CliError> {
    let policy = policies.create_policy(args.to_request()).await?;
    write_saved("Created", &policy, p)
}

/// UpdatePolicy replaces the rules whole, so the policy is read first and the flags applied on top of it.
/// A change someone else makes between the two calls is overwritten: the service has no revision to guard
/// against that, and policies change rarely and by few people.
pub(crate) async fn update_policy(
    policies: &Policies,
    args: &UpdatePolicyArgs,
    p: &mut Printer<'_>,
) -> Result<(), CliError> {
    let mut args = args.clone();
    args.id = resolve_policy(policies, &args.id).await?;
    let current = policies.get_policy(args.id.clone()).await?;
    let policy = policies.update_policy(args.to_request(&current)).await?;
    write_saved("Updated", &policy, p)
}

fn write_saved(verb: &str, policy: &Policy, p: &mut Printer<'_>) -> Result<(), CliError> {
    if p.is_human() {
        write!(p, "{}", render::policy_saved(verb, policy, &Local::now()))?;
        Ok(())
    } else {
        write_policy(policy, &json::policy(policy), p)
    }
}

/// `policies delete`: show the policy, ask (unless `--yes`), delete it. The policy is read first even with
/// `--yes`, so an unknown id fails before anything else and the output says what was deleted.
pub(crate) async fn delete_policy(
    policies: &Policies,
    args: &PolicyDeleteArgs,
    p: &mut Printer<'_>,
    console: &mut Console<'_>,
) -> Result<(), CliError> {
    let id = resolve_policy(policies, &args.id).await?;
    let policy = policies.get_policy(id).await?;
    let text = render::policy_delete_confirmation(&policy, &Local::now());
    if args.dry_run {
        if p.is_human() {
            write!(p, "{text}")?;
            p.note("Dry run: nothing was deleted.\n")?;
        } else {
            write_policy(&policy, &json::policy(&policy), p)?;
        }
        return Ok(());
    }
    if !args.yes && !console.confirm(&text, &render::policy_delete_question(&policy))? {
        return Err(CliError::Aborted("deleted"));
    }
    policies.delete_policy(policy.id.clone()).await?;
    if p.is_human() {
        write!(p, "{}", render::policy_deleted(&policy))?;
        Ok(())
    } else {
        write_policy(&policy, &json::policy_deleted(&policy), p)
    }
}
