//! `policies` arguments and the requests they become.

use clap::{Args, Subcommand, ValueEnum};
use vigil_proto::v1::policy_scope::Scope;
use vigil_proto::v1::{
    ConcurrencyAction, CreatePolicyRequest, GetEffectivePolicyRequest, GlobalScope, Policy, PolicyRules, PolicyScope,
    UpdatePolicyRequest,
};

use crate::args::{parse_name, parse_rule_duration};
use crate::ids::parse_id;

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// List every policy, most general first. Rules a policy leaves unset read `inherit`.
    List(PoliciesListArgs),
    /// Show one policy.
    Get(PolicyGetArgs),
    /// Show the rules in force for a user on a resource, and the policies they come from.
    Effective(EffectiveArgs),
    /// Create the policy of a scope (each scope has at most one). Rules left out are inherited.
    Create(CreatePolicyArgs),
    /// Change a policy: the rules given are replaced, --clear ones are inherited again, the rest stay.
    Update(UpdatePolicyArgs),
    /// Delete a policy; what it covered falls back to less specific policies. The global one stays.
    ///
    /// Shows the policy and asks before deleting it (unless --yes).
    Delete(PolicyDeleteArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PoliciesListArgs {
    /// Show full policy ids (which `policies get`, `update` and `delete` take).
    #[arg(long)]
    pub wide: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PolicyGetArgs {
    /// The policy's id, or any unique part of its start or end (the ID column).
    #[arg(value_parser = parse_id)]
    pub id: String,
}

#[derive(Debug, Clone, Args)]
pub struct EffectiveArgs {
    /// The user (exact name).
    #[arg(long, value_parser = parse_name)]
    pub user: String,

    /// A group the user belongs to (repeatable) [default: the groups their latest session reported]
    #[arg(long = "group", value_name = "GROUP", value_parser = parse_name)]
    pub groups: Vec<String>,

    /// The resource (exact name).
    #[arg(long, value_parser = parse_name)]
    pub resource: String,
}

/// What a new policy applies to: exactly one of these.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct ScopeArgs {
    /// Every session (the least specific scope).
    #[arg(long)]
    pub global: bool,

    /// Sessions of the users in this group.
    #[arg(long, value_parser = parse_name)]
    pub group: Option<String>,

    /// Sessions of this user (the most specific scope).
    #[arg(long, value_parser = parse_name)]
    pub user: Option<String>,

    /// Sessions to this resource.
    #[arg(long, value_parser = parse_name)]
    pub resource: Option<String>,
}

/// The rule flags of `policies create` and `policies update`. Durations take units: "10m", "1h 30m", "8h".
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Rules")]
pub struct RuleArgs {
    /// Warn the user after this long without input ("10m").
    #[arg(long, value_name = "DURATION", value_parser = parse_rule_duration)]
    pub idle_warning: Option<prost_types::Duration>,

    /// End the session after this long without input ("30m"); must exceed the warning.
    #[arg(long, value_name = "DURATION", value_parser = parse_rule_duration)]
    pub idle_timeout: Option<prost_types::Duration>,

    /// End sessions older than this ("8h", "1h 30m").
    #[arg(long, value_name = "DURATION", value_parser = parse_rule_duration)]
    pub max_duration: Option<prost_types::Duration>,

    /// Live sessions a user may have at once; 0 means unlimited.
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<u32>,

    /// What to do when a new session would exceed --max-sessions.
    #[arg(long, value_enum, value_name = "ACTION")]
    pub on_excess: Option<ExcessArg>,

    /// Refuse sessions whose risk score is at least this (1-100).
    #[arg(long, value_name = "SCORE", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub deny_risk: Option<u32>,

    /// Flag sessions for review whose risk score is at least this (1-100).
    #[arg(long, value_name = "SCORE", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub flag_risk: Option<u32>,
}

/// What to do with a session over the concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExcessArg {
    /// Refuse the new session.
    DenyNew,
    /// Admit the new session and end the user's oldest.
    EndOldest,
}

/// One rule, by the name of its flag: what `policies update --clear` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuleField {
    IdleWarning,
    IdleTimeout,
    MaxDuration,
    MaxSessions,
    OnExcess,
    DenyRisk,
    FlagRisk,
}

#[derive(Debug, Clone, Args)]
pub struct CreatePolicyArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,

    /// A note for people: why the policy exists.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,

    // Last: the flags after it would be listed under its "Rules" heading.
    #[command(flatten)]
    pub rules: RuleArgs,
}

#[derive(Debug, Clone, Args)]
pub struct UpdatePolicyArgs {
    /// The policy's id, or any unique part of its start or end (the ID column).
    #[arg(value_parser = parse_id)]
    pub id: String,

    /// Unset a rule, so it is inherited again (repeatable).
    #[arg(long, value_enum, value_name = "RULE")]
    pub clear: Vec<RuleField>,

    /// Replace the policy's note (an empty one removes it).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,

    // Last: the flags after it would be listed under its "Rules" heading.
    #[command(flatten)]
    pub rules: RuleArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PolicyDeleteArgs {
    /// The policy's id, or any unique part of its start or end (the ID column).
    #[arg(value_parser = parse_id)]
    pub id: String,

    /// Do not ask for confirmation (needed when stdin is not a terminal).
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Show the policy that would be deleted and stop.
    #[arg(long)]
    pub dry_run: bool,
}

impl EffectiveArgs {
    pub fn to_request(&self) -> GetEffectivePolicyRequest {
        GetEffectivePolicyRequest {
            user: self.user.clone(),
            user_groups: self.groups.clone(),
            resource_name: self.resource.clone(),
        }
    }
}

impl ScopeArgs {
    pub fn to_scope(&self) -> PolicyScope {
        // clap guarantees exactly one; the order below only matters if that ever changed.
        let scope = if let Some(user) = &self.user {
            Scope::User(user.clone())
        } else if let Some(resource) = &self.resource {
            Scope::ResourceName(resource.clone())
        } else if let Some(group) = &self.group {
            Scope::Group(group.clone())
        } else {
            Scope::Global(GlobalScope {})
        };
        PolicyScope { scope: Some(scope) }
    }
}

impl RuleArgs {
    /// The rules these flags set; every other rule is unset, that is inherited.
    pub fn to_rules(&self) -> PolicyRules {
        let mut rules = PolicyRules::default();
        self.apply_to(&mut rules);
        rules
    }

    /// Replaces the rules these flags set and leaves the others as they are.
    pub fn apply_to(&self, rules: &mut PolicyRules) {
        if let Some(after) = self.idle_warning {
            rules.idle_warning_after = Some(after);
        }
        if let Some(timeout) = self.idle_timeout {
            rules.idle_timeout = Some(timeout);
        }
        if let Some(max) = self.max_duration {
            rules.max_session_duration = Some(max);
        }
        if let Some(max) = self.max_sessions {
            rules.max_concurrent_sessions = Some(max);
        }
        if let Some(action) = self.on_excess {
            rules.set_concurrency_action(action.to_proto());
        }
        if let Some(score) = self.deny_risk {
            rules.deny_risk_score = Some(score);
        }
        if let Some(score) = self.flag_risk {
            rules.flag_risk_score = Some(score);
        }
    }

    /// The rules these flags set.
    pub fn given(&self) -> Vec<RuleField> {
        [
            (self.idle_warning.is_some(), RuleField::IdleWarning),
            (self.idle_timeout.is_some(), RuleField::IdleTimeout),
            (self.max_duration.is_some(), RuleField::MaxDuration),
            (self.max_sessions.is_some(), RuleField::MaxSessions),
            (self.on_excess.is_some(), RuleField::OnExcess),
            (self.deny_risk.is_some(), RuleField::DenyRisk),
            (self.flag_risk.is_some(), RuleField::FlagRisk),
        ]
        .into_iter()
        .filter_map(|(given, field)| given.then_some(field))
        .collect()
    }
}

impl ExcessArg {
    pub fn to_proto(self) -> ConcurrencyAction {
        match self {
            ExcessArg::DenyNew => ConcurrencyAction::DenyNew,
            ExcessArg::EndOldest => ConcurrencyAction::EndOldest,
        }
    }
}

impl RuleField {
    /// The flag that sets this rule, which is also its name for `--clear`.
    pub fn flag(self) -> &'static str {
        match self {
            RuleField::IdleWarning => "--idle-warning",
            RuleField::IdleTimeout => "--idle-timeout",
            RuleField::MaxDuration => "--max-duration",
            RuleField::MaxSessions => "--max-sessions",
            RuleField::OnExcess => "--on-excess",
            RuleField::DenyRisk => "--deny-risk",
            RuleField::FlagRisk => "--flag-risk",
        }
    }

    /// Unsets this rule in `rules`, so a less specific policy's applies.
    pub fn clear(self, rules: &mut PolicyRules) {
        match self {
            RuleField::IdleWarning => rules.idle_warning_after = None,
            RuleField::IdleTimeout => rules.idle_timeout = None,
            RuleField::MaxDuration => rules.max_session_duration = None,
            RuleField::MaxSessions => rules.max_concurrent_sessions = None,
            RuleField::OnExcess => rules.set_concurrency_action(ConcurrencyAction::Unspecified),
            RuleField::DenyRisk => rules.deny_risk_score = None,
            RuleField::FlagRisk => rules.flag_risk_score = None,
        }
    }
}

impl CreatePolicyArgs {
    pub fn to_request(&self) -> CreatePolicyRequest {
        CreatePolicyRequest {
            scope: Some(self.scope.to_scope()),
            rules: Some(self.rules.to_rules()),
            description: self.description.clone().unwrap_or_default(),
        }
    }
}

impl UpdatePolicyArgs {
    /// Refuses an update that would change nothing, or that both sets and clears a rule. Checked before
    /// anything is asked of the server.
    pub fn check(&self) -> Result<(), String> {
        let given = self.rules.given();
        if given.is_empty() && self.clear.is_empty() && self.description.is_none() {
            return Err(
                "nothing to change: give the rules to set (such as --idle-timeout 45m), --clear RULE, or \
                 --description"
                    .to_owned(),
            );
        }
        if let Some(both) = self.clear.iter().find(|field| given.contains(field)) {
            let flag = both.flag();
            let name = flag.trim_start_matches('-');
            return Err(format!(
                "`--clear {name}` and `{flag}` contradict each other; give one of them"
            ));
        }
        Ok(())
    }

    /// The request that turns `current` into what these flags ask for. UpdatePolicy replaces the rules
    /// whole, so every rule not named here is sent as it is now: cleared rules unset, given ones replaced,
    /// the note kept unless --description is given.
    pub fn to_request(&self, current: &Policy) -> UpdatePolicyRequest {
        let mut rules = current.rules.unwrap_or_default();
        for field in &self.clear {
            field.clear(&mut rules);
        }
        self.rules.apply_to(&mut rules);
        UpdatePolicyRequest {
            id: self.id.clone(),
            rules: Some(rules),
            description: self.description.clone().unwrap_or_else(|| current.description.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{
        ConcurrencyAction, CreatePolicyRequest, GetEffectivePolicyRequest, GlobalScope, Policy, PolicyRules,
        PolicyScope,
    };

    use super::*;
    use clap::Parser;

    use crate::cli::{Cli, Command};
    use crate::testing::*;

    fn policies(args: &[&str]) -> PoliciesCommand {
        let mut full = vec!["policies"];
        full.extend_from_slice(args);
        match parse(&full).command {
            Command::Policies(command) => command,
            other => panic!("parsed as {other:?}"),
        }
    }

    fn create_request(args: &[&str]) -> CreatePolicyRequest {
        let mut full = vec!["create"];
        full.extend_from_slice(args);
        match policies(&full) {
            PoliciesCommand::Create(create) => create.to_request(),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn update_args(args: &[&str]) -> UpdatePolicyArgs {
        let mut full = vec!["update", POLICY_ID];
        full.extend_from_slice(args);
        match policies(&full) {
            PoliciesCommand::Update(update) => update,
            other => panic!("parsed as {other:?}"),
        }
    }

    const POLICY_ID: &str = "0195a3c0-7e1f-7000-8000-0000000000a1";

    fn seconds(seconds: i64) -> Option<prost_types::Duration> {
        Some(prost_types::Duration { seconds, nanos: 0 })
    }

    #[test]
    fn policy_create_flags_become_the_rules_and_scope() {
        let request = create_request(&[
            "--group",
            "sre",
            "--idle-warning",
            "10m",
            "--idle-timeout",
            "1h 30m",
            "--max-duration",
            "8h",
            "--max-sessions",
            "3",
            "--on-excess",
            "end-oldest",
            "--deny-risk",
            "80",
            "--flag-risk",
            "50",
            "--description",
            "on-call engineers",
        ]);
        assert_eq!(
            request,
            CreatePolicyRequest {
                scope: Some(PolicyScope {
                    scope: Some(Scope::Group("sre".into()))
                }),
                rules: Some(PolicyRules {
                    idle_warning_after: seconds(600),
                    idle_timeout: seconds(5400),
                    max_session_duration: seconds(8 * 3600),
                    max_concurrent_sessions: Some(3),
                    concurrency_action: ConcurrencyAction::EndOldest.into(),
                    deny_risk_score: Some(80),
                    flag_risk_score: Some(50),
                }),
                description: "on-call engineers".into(),
            }
        );
    }

    #[test]
    fn rules_left_out_of_create_are_unset_and_zero_sessions_means_unlimited() {
        let request = create_request(&["--global"]);
        assert_eq!(
            request.scope,
            Some(PolicyScope {
                scope: Some(Scope::Global(GlobalScope {}))
            })
        );
        assert_eq!(request.rules, Some(PolicyRules::default()));
        assert_eq!(request.description, "");

        let rules = create_request(&[
            "--user",
            "alice@example.com",
            "--max-sessions",
            "0",
            "--on-excess",
            "deny-new",
        ])
        .rules
        .expect("rules are always sent");
        assert_eq!(rules.max_concurrent_sessions, Some(0), "0 is sent: it means unlimited");
        assert_eq!(rules.concurrency_action(), ConcurrencyAction::DenyNew);
        assert_eq!(rules.idle_timeout, None);

        let scope = |args: &[&str]| create_request(args).scope.and_then(|s| s.scope);
        assert_eq!(scope(&["--user", " bob "]), Some(Scope::User("bob".into())));
        assert_eq!(
            scope(&["--resource", "prod-db-01"]),
            Some(Scope::ResourceName("prod-db-01".into()))
        );
        // Sub-second precision survives the trip to the proto.
        let rules = create_request(&["--global", "--idle-warning", "1s 500ms"]).rules;
        assert_eq!(
            rules.and_then(|r| r.idle_warning_after),
            Some(prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
    }

    #[test]
    fn policy_flags_are_checked() {
        for args in [
            &["policies", "create"][..],
            &["policies", "create", "--global", "--group", "sre"],
            &["policies", "create", "--user", "a", "--resource", "r"],
            &["policies", "create", "--group", ""],
            &["policies", "create", "--global", "--idle-timeout", "30"],
            &["policies", "create", "--global", "--idle-timeout", "soon"],
            &["policies", "create", "--global", "--max-duration", "-1h"],
            &["policies", "create", "--global", "--max-sessions", "-1"],
            &["policies", "create", "--global", "--on-excess", "kill-all"],
            &["policies", "create", "--global", "--deny-risk", "0"],
            &["policies", "create", "--global", "--flag-risk", "101"],
            &["policies", "create", "--global", "--clear", "idle-timeout"],
            &["policies", "update", POLICY_ID, "--clear", "description"],
            &["policies", "update", POLICY_ID, "--global"],
            &["policies", "get", "--", "-a1"],
            &["policies", "delete", "a 1"],
            &["policies", "effective", "--user", "alice"],
            &["policies", "effective", "--resource", "prod-db-01"],
        ] {
            let result = Cli::try_parse_from(std::iter::once("sessionctl").chain(args.iter().copied()));
            let error = result.expect_err(&format!("{args:?} should not parse"));
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
        let error = Cli::try_parse_from(["sessionctl", "policies", "create", "--global", "--idle-timeout", "30"])
            .expect_err("no unit");
        assert!(error.to_string().contains("examples: 10m, 1h 30m, 8h"), "{error}");
    }

    fn current_policy() -> Policy {
        Policy {
            id: POLICY_ID.into(),
            scope: Some(PolicyScope {
                scope: Some(Scope::Group("sre".into())),
            }),
            rules: Some(PolicyRules {
                idle_warning_after: seconds(600),
                idle_timeout: seconds(1800),
                max_session_duration: seconds(8 * 3600),
                max_concurrent_sessions: Some(3),
                concurrency_action: ConcurrencyAction::DenyNew.into(),
                deny_risk_score: Some(80),
                flag_risk_score: Some(50),
            }),
            description: "on-call engineers".into(),
            ..Policy::default()
        }
    }

    #[test]
    fn update_changes_only_the_rules_given() {
        let current = current_policy();
        let args = update_args(&["--idle-timeout", "45m"]);
        args.check().expect("a change");

        let request = args.to_request(&current);

        let mut expected = current.rules.expect("rules");
        expected.idle_timeout = seconds(45 * 60);
        assert_eq!(request.id, POLICY_ID);
        assert_eq!(request.rules, Some(expected));
        assert_eq!(request.description, "on-call engineers", "the note is kept");

        let request =
            update_args(&["--on-excess", "end-oldest", "--deny-risk", "90", "--description", ""]).to_request(&current);
        let rules = request.rules.expect("rules");
        assert_eq!(rules.concurrency_action(), ConcurrencyAction::EndOldest);
        assert_eq!(rules.deny_risk_score, Some(90));
        assert_eq!(rules.max_concurrent_sessions, Some(3));
        assert_eq!(rules.idle_timeout, seconds(1800));
        assert_eq!(request.description, "", "an empty --description removes the note");

        // A policy without rules takes the flags as its only rules.
        let bare = Policy { rules: None, ..current };
        let request = update_args(&["--max-sessions", "0"]).to_request(&bare);
        assert_eq!(
            request.rules,
            Some(PolicyRules {
                max_concurrent_sessions: Some(0),
                ..PolicyRules::default()
            })
        );
    }

    #[test]
    fn clear_unsets_rules_so_they_are_inherited_again() {
        let current = current_policy();
        let args = update_args(&[
            "--clear",
            "max-duration",
            "--clear",
            "on-excess",
            "--clear",
            "flag-risk",
            "--idle-warning",
            "5m",
        ]);
        args.check().expect("set and clear different rules");

        let rules = args.to_request(&current).rules.expect("rules");

        assert_eq!(rules.max_session_duration, None);
        assert_eq!(rules.concurrency_action(), ConcurrencyAction::Unspecified);
        assert_eq!(rules.flag_risk_score, None);
        assert_eq!(rules.idle_warning_after, seconds(300));
        assert_eq!(rules.idle_timeout, seconds(1800));
        assert_eq!(rules.max_concurrent_sessions, Some(3));
        assert_eq!(rules.deny_risk_score, Some(80));

        // Each rule's --clear value is its flag's name, and clearing them all leaves no rule set.
        let full = current_policy().rules.expect("rules");
        let mut cleared = full;
        for field in RuleField::value_variants() {
            let name = field.flag().trim_start_matches("--");
            assert_eq!(<RuleField as ValueEnum>::from_str(name, false).as_ref(), Ok(field));
            let mut one = full;
            field.clear(&mut one);
            assert_ne!(one, full, "{field:?} clears its rule");
            field.clear(&mut cleared);
        }
        assert_eq!(cleared, PolicyRules::default());
    }

    #[test]
    fn an_update_must_change_something_and_not_contradict_itself() {
        let error = update_args(&[]).check().expect_err("nothing to change");
        assert!(error.starts_with("nothing to change"), "{error}");

        let error = update_args(&["--clear", "idle-timeout", "--idle-timeout", "45m"])
            .check()
            .expect_err("set and cleared");
        assert_eq!(
            error,
            "`--clear idle-timeout` and `--idle-timeout` contradict each other; give one of them"
        );

        update_args(&["--description", "new note"])
            .check()
            .expect("the note alone");
        update_args(&["--clear", "deny-risk"]).check().expect("a clear alone");
    }

    #[test]
    fn effective_flags_become_a_request() {
        let PoliciesCommand::Effective(args) = policies(&[
            "effective",
            "--user",
            "alice@example.com",
            "--group",
            "sre",
            "--group",
            "eng",
            "--resource",
            "prod-db-01",
        ]) else {
            panic!("not effective")
        };
        assert_eq!(
            args.to_request(),
            GetEffectivePolicyRequest {
                user: "alice@example.com".into(),
                user_groups: vec!["sre".into(), "eng".into()],
                resource_name: "prod-db-01".into(),
            }
        );
    }
}
