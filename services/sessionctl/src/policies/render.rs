//! Policies for people: the list, one in full, the effective rules, what a delete will remove.

use std::fmt::Display;

use chrono::{DateTime, TimeZone};
use vigil_proto::v1::{EffectivePolicy, GetEffectivePolicyRequest, Policy, PolicyRules};

use crate::format::{self, INHERIT};
use crate::render::{key_values, table, with_ago};

/// What the effective rules show for a rule no policy sets (the server's built-in default, if any, applies).
const NOT_SET: &str = "not set";

/// The policies table, in the server's order (most general first), then how many there are. Rules a policy
/// leaves unset read `inherit`. `wide` shows full policy ids, which `policies get`, `update` and `delete` take.
pub fn policies_table<Tz: TimeZone>(policies: &[Policy], now: &DateTime<Tz>, wide: bool) -> String {
    if policies.is_empty() {
        return String::new();
    }
    let mut table = table(&[
        "ID",
        "SCOPE",
        "IDLE WARNING",
        "IDLE TIMEOUT",
        "MAX DURATION",
        "MAX SESSIONS",
        "DENY ≥",
        "FLAG ≥",
        "UPDATED",
    ]);
    for policy in policies {
        let id = if wide {
            format::or_none(&policy.id)
        } else {
            format::short_id(&policy.id)
        };
        let unset = PolicyRules::default();
        let rules = policy.rules.as_ref().unwrap_or(&unset);
        table.add_row(vec![
            id.to_owned(),
            format::scope(policy.scope.as_ref()),
            format::rule_duration(rules.idle_warning_after.as_ref(), INHERIT),
            format::rule_duration(rules.idle_timeout.as_ref(), INHERIT),
            format::rule_duration(rules.max_session_duration.as_ref(), INHERIT),
            format::max_sessions_with_action(rules, INHERIT),
            format::threshold(rules.deny_risk_score, INHERIT),
            format::threshold(rules.flag_risk_score, INHERIT),
            updated(policy, format::ago(policy.updated_at.as_ref(), now)),
        ]);
    }
    format!("{}\n", table.trim_fmt())
}

/// `N policies` (and "No policies." when there are none): for stderr.
pub fn policies_footer(policies: &[Policy]) -> String {
    let count = match policies.len() {
        1 => "1 policy\n".to_owned(),
        n => format!("{n} policies\n"),
    };
    if policies.is_empty() {
        format!("No policies.\n{count}")
    } else {
        count
    }
}

/// `2h ago by admin@example.com`: when, then who when known.
fn updated(policy: &Policy, when: String) -> String {
    if policy.updated_by.is_empty() {
        when
    } else {
        format!("{when} by {}", policy.updated_by)
    }
}

/// One policy as `Key   value` lines: scope, note, every rule (`inherit` when unset) and the last change.
pub fn policy_detail<Tz: TimeZone<Offset: Display>>(policy: &Policy, now: &DateTime<Tz>) -> String {
    let mut rows = vec![
        ("Policy", format::or_none(&policy.id).to_owned()),
        ("Scope", format::scope(policy.scope.as_ref())),
        ("Description", format::or_none(&policy.description).to_owned()),
    ];
    rows.extend(rule_rows(policy.rules.as_ref(), INHERIT));
    rows.push(("Updated", updated(policy, with_ago(policy.updated_at.as_ref(), now))));
    key_values(&rows)
}

/// A row per rule, `unset` for the rules not set.
fn rule_rows(rules: Option<&PolicyRules>, unset: &str) -> Vec<(&'static str, String)> {
    let default = PolicyRules::default();
    let rules = rules.unwrap_or(&default);
    vec![
        (
            "Idle warning",
            format::rule_duration(rules.idle_warning_after.as_ref(), unset),
        ),
        (
            "Idle timeout",
            format::rule_duration(rules.idle_timeout.as_ref(), unset),
        ),
        (
            "Max duration",
            format::rule_duration(rules.max_session_duration.as_ref(), unset),
        ),
        (
            "Max sessions",
            format::max_sessions(rules.max_concurrent_sessions, unset),
        ),
        (
            "On excess",
            format::concurrency_action(rules.concurrency_action())
                .unwrap_or(unset)
                .to_owned(),
        ),
        ("Deny if risk ≥", format::threshold(rules.deny_risk_score, unset)),
        ("Flag if risk ≥", format::threshold(rules.flag_risk_score, unset)),
    ]
}

/// What `policies create` and `policies update` print: what was done (`verb`: "Created", "Updated"), then
/// the policy as the server now has it.
pub fn policy_saved<Tz: TimeZone<Offset: Display>>(verb: &str, policy: &Policy, now: &DateTime<Tz>) -> String {
    format!(
        "{verb} the policy for {}.\n\n{}",
        format::scope(policy.scope.as_ref()),
        policy_detail(policy, now)
    )
}

/// The rules in force for the user on the resource the request names, and the policies they come from (most
/// specific first, full ids). Rules no policy sets read `not set`.
pub fn effective_policy(
    effective: &EffectivePolicy,
    request: &GetEffectivePolicyRequest,
    groups_from: GroupsFrom,
) -> String {
    let groups = match request.user_groups.as_slice() {
        [] => String::new(),
        [one] => format!(" (group {one}{})", groups_from.suffix()),
        many => format!(" (groups {}{})", many.join(", "), groups_from.suffix()),
    };
    let mut rows = rule_rows(effective.rules.as_ref(), NOT_SET);
    let from = if effective.policy_ids.is_empty() {
        "none".to_owned()
    } else {
        effective.policy_ids.join("\n")
    };
    rows.push(("From policies", from));
    format!(
        "Rules for {}{groups} on {}:\n\n{}",
        format::or_none(&request.user),
        format::or_none(&request.resource_name),
        key_values(&rows)
    )
}

/// Where `policies effective` took the user's groups from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupsFrom {
    /// `--group` flags.
    Flags,
    /// The user's most recent session, as its gateway reported them.
    Sessions,
}

impl GroupsFrom {
    fn suffix(self) -> &'static str {
        match self {
            GroupsFrom::Flags => "",
            GroupsFrom::Sessions => ", from their latest session",
        }
    }
}

/// What `policies delete` shows before asking: the policy, and what deleting it means.
pub fn policy_delete_confirmation<Tz: TimeZone<Offset: Display>>(policy: &Policy, now: &DateTime<Tz>) -> String {
    format!(
        "{}\nWhat it covers falls back to the less specific policies.\n",
        policy_detail(policy, now)
    )
}

/// The question after [`policy_delete_confirmation`]; the answer is typed on the same line.
pub fn policy_delete_question(policy: &Policy) -> String {
    format!("Delete the policy for {}? [y/N] ", format::scope(policy.scope.as_ref()))
}

/// The line printed once the policy is gone.
pub fn policy_deleted(policy: &Policy) -> String {
    format!(
        "Deleted policy {} ({}).\n",
        format::or_none(&policy.id),
        format::scope(policy.scope.as_ref())
    )
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{EffectivePolicy, GetEffectivePolicyRequest, PolicyRules};

    use super::*;
    use crate::testing::*;

    #[test]
    fn policies_table_shows_every_rule_and_inherit_where_unset() {
        let text = policies_table(&three_policies(), &now(), false);
        let header = text.lines().next().expect("a header line");
        assert_eq!(
            header
                .split("   ")
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .collect::<Vec<_>>(),
            [
                "ID",
                "SCOPE",
                "IDLE WARNING",
                "IDLE TIMEOUT",
                "MAX DURATION",
                "MAX SESSIONS",
                "DENY ≥",
                "FLAG ≥",
                "UPDATED"
            ]
        );
        let row = line_containing(&text, "global");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [
                "000000a1",
                "global",
                "10m",
                "30m",
                "8h",
                "unlimited",
                "90",
                "50",
                "2h",
                "ago",
                "by",
                "admin@example.com"
            ]
        );
        let row = line_containing(&text, "group sre");
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            [
                "000000a2",
                "group",
                "sre",
                "inherit",
                "45m",
                "inherit",
                "3",
                "(end",
                "oldest)",
                "inherit",
                "inherit",
                "2h",
                "ago",
                "by",
                "admin@example.com"
            ]
        );
        // No rules at all: everything is inherited; no author: just when.
        let row = line_containing(&text, "user alice@example.com");
        assert_eq!(row.matches("inherit").count(), 6, "{row:?}");
        assert!(row.ends_with("2d ago"), "{row:?}");
        assert_eq!(policies_footer(&three_policies()), "3 policies\n");

        // Columns line up under their headers (by display column: `≥` is one wide but three bytes long).
        let column = header[..header.find("FLAG ≥").expect("FLAG column")].chars().count();
        let global = line_containing(&text, "global");
        assert_eq!(global.chars().skip(column).take(2).collect::<String>(), "50", "{text}");

        let wide = policies_table(&three_policies()[..1], &now(), true);
        assert!(wide.contains("0195a3c0-7e1f-7000-8000-0000000000a1"), "{wide}");
        assert_eq!(policies_footer(&three_policies()[..1]), "1 policy\n");
        assert_eq!(policies_table(&[], &now(), false), "");
        assert_eq!(policies_footer(&[]), "No policies.\n0 policies\n");
    }

    #[test]
    fn policy_detail_lists_every_rule() {
        let policies = three_policies();
        let text = policy_detail(&policies[1], &now());
        assert_eq!(value_of(&text, "Policy"), "0195a3c0-7e1f-7000-8000-0000000000a2");
        assert_eq!(value_of(&text, "Scope"), "group sre");
        assert_eq!(value_of(&text, "Description"), "-");
        assert_eq!(value_of(&text, "Idle warning"), "inherit");
        assert_eq!(value_of(&text, "Idle timeout"), "45m");
        assert_eq!(value_of(&text, "Max duration"), "inherit");
        assert_eq!(value_of(&text, "Max sessions"), "3");
        assert_eq!(value_of(&text, "On excess"), "end oldest");
        assert_eq!(value_of(&text, "Deny if risk ≥"), "inherit");
        assert_eq!(value_of(&text, "Flag if risk ≥"), "inherit");
        assert_eq!(
            value_of(&text, "Updated"),
            "2025-03-04 10:00:00 +01:00 (2h ago) by admin@example.com"
        );
        // Values line up: every value starts in the same column.
        let starts: Vec<usize> = text
            .lines()
            .map(|line| {
                let key_end = line.find("  ").expect("a key");
                line[key_end..]
                    .find(|c: char| c != ' ')
                    .map(|n| line[..key_end + n].chars().count())
            })
            .map(|start| start.expect("a value"))
            .collect();
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{text}");

        let text = policy_detail(&policies[0], &now());
        assert_eq!(value_of(&text, "Description"), "the defaults");
        assert_eq!(value_of(&text, "Max sessions"), "unlimited");
        assert_eq!(value_of(&text, "On excess"), "inherit");
        assert_eq!(value_of(&text, "Deny if risk ≥"), "90");

        let saved = policy_saved("Updated", &policies[1], &now());
        assert!(
            saved.starts_with("Updated the policy for group sre.\n\nPolicy "),
            "{saved}"
        );
    }

    #[test]
    fn effective_rules_name_their_policies_and_what_no_policy_sets() {
        let policies = three_policies();
        let effective = EffectivePolicy {
            rules: Some(PolicyRules {
                flag_risk_score: None,
                ..policies[0].rules.expect("rules")
            }),
            policy_ids: vec![policies[1].id.clone(), policies[0].id.clone()],
        };
        let request = GetEffectivePolicyRequest {
            user: "alice@example.com".into(),
            user_groups: vec!["sre".into(), "eng".into()],
            resource_name: "prod-db-01".into(),
        };
        let text = effective_policy(&effective, &request, GroupsFrom::Flags);
        assert!(
            text.starts_with("Rules for alice@example.com (groups sre, eng) on prod-db-01:\n\n"),
            "{text}"
        );
        assert_eq!(value_of(&text, "Idle timeout"), "30m");
        assert_eq!(value_of(&text, "Flag if risk ≥"), "not set");
        assert_eq!(value_of(&text, "On excess"), "not set");
        assert!(
            text.ends_with(
                "From policies   0195a3c0-7e1f-7000-8000-0000000000a2\n                \
                 0195a3c0-7e1f-7000-8000-0000000000a1\n"
            ),
            "{text}"
        );

        let alone = GetEffectivePolicyRequest {
            user_groups: vec!["sre".into()],
            ..request
        };
        let text = effective_policy(&EffectivePolicy::default(), &alone, GroupsFrom::Flags);
        assert!(
            text.starts_with("Rules for alice@example.com (group sre) on prod-db-01:"),
            "{text}"
        );
        assert_eq!(value_of(&text, "Idle warning"), "not set");
        assert_eq!(value_of(&text, "From policies"), "none");
    }

    #[test]
    fn deleting_a_policy_shows_it_asks_and_says_what_went() {
        let policies = three_policies();
        let text = policy_delete_confirmation(&policies[1], &now());
        assert!(text.starts_with("Policy "), "{text}");
        assert!(
            text.ends_with("\nWhat it covers falls back to the less specific policies.\n"),
            "{text}"
        );
        assert_eq!(
            policy_delete_question(&policies[1]),
            "Delete the policy for group sre? [y/N] "
        );
        assert_eq!(
            policy_deleted(&policies[2]),
            "Deleted policy 0195a3c0-7e1f-7000-8000-0000000000a3 (user alice@example.com).\n"
        );
    }
}
