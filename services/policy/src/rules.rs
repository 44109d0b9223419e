//! Which rules are in force for a session, and which rules make sense.
//!
//! **Precedence.** The policies that apply to a session are its user's, its resource's, its
//! user's groups' and the global one, in that order of precedence (user > resource > group >
//! global). Each rule is taken from the most specific policy that sets it; rules no policy sets
//! take the built-in defaults (idle warning after 10 minutes, idle timeout after 30 minutes, no
//! maximum duration, no concurrency limit, DENY_NEW when a limit is set without an action, no
//! risk thresholds).
//!
//! **Several groups.** A user in several groups with policies gets their rules in group-name
//! order: for each rule, the first group (by name, byte order) whose policy sets it wins. The
//! order is arbitrary but stable and explainable; `GetEffectivePolicy` shows the outcome.
//!
//! **Zero means off.** A duration or concurrency limit of zero turns the rule off, overriding
//! less specific policies (a service account exempt from the idle timeout, say).
//!
//! **Warnings.** A warning is only sent when an idle timeout is in force and the warning comes
//! before it; a policy that sets both must put the warning first. (Policies setting one each can
//! still combine into a warning at or after the timeout; then no warning is sent.)

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{ConcurrencyAction, ConcurrencyLimit, PolicyRecord, Rules, Scope, Subject};

/// Warn after this long without input, unless a policy says otherwise.
pub const DEFAULT_IDLE_WARNING_AFTER: Duration = Duration::from_secs(10 * 60);
/// End after this long without input, unless a policy says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Longest duration a rule may hold.
pub const MAX_RULE_DURATION: Duration = Duration::from_secs(366 * 24 * 60 * 60);
/// Shortest non-zero duration a rule may hold.
pub const MIN_RULE_DURATION: Duration = Duration::from_secs(1);
/// Highest concurrency limit (beyond it, "unlimited" — zero — says what is meant).
pub const MAX_CONCURRENCY_LIMIT: u32 = 10_000;
/// Risk scores run from 0 to this.
pub const MAX_RISK_SCORE: u32 = 100;

/// Refuses rules that make no sense, naming the field and the reason.
pub fn validate(rules: &Rules) -> ServiceResult<()> {
    let durations = [
        ("idle_warning_after", rules.idle_warning_after),
        ("idle_timeout", rules.idle_timeout),
        ("max_session_duration", rules.max_session_duration),
    ];
    for (field, value) in durations {
        if let Some(value) = value {
            if value > MAX_RULE_DURATION {
                return Err(ServiceError::invalid(format!(
                    "rules.{field} is {}; at most 366 days is allowed",
                    describe(value)
                )));
            }
            if !value.is_zero() && value < MIN_RULE_DURATION {
                return Err(ServiceError::invalid(format!(
                    "rules.{field} is {}; it must be at least 1 second, or 0 to turn it off",
                    describe(value)
                )));
            }
        }
    }
    match (rules.idle_warning_after, rules.idle_timeout) {
        (Some(warning), Some(timeout)) if !warning.is_zero() && timeout.is_zero() => {
            return Err(ServiceError::invalid(format!(
                "rules.idle_warning_after is {} but rules.idle_timeout is 0 (off): there is no disconnection to warn about",
                describe(warning)
            )));
        }
        (Some(warning), Some(timeout)) if !warning.is_zero() && warning >= timeout => {
            return Err(ServiceError::invalid(format!(
                "rules.idle_warning_after ({}) must be shorter than rules.idle_timeout ({}): the warning comes before the disconnection",
                describe(warning),
                describe(timeout)
            )));
        }
        _ => {}
    }
    if let Some(limit) = rules.max_concurrent_sessions
        && limit > MAX_CONCURRENCY_LIMIT
    {
        return Err(ServiceError::invalid(format!(
            "rules.max_concurrent_sessions is {limit}; at most {MAX_CONCURRENCY_LIMIT} is allowed (0 means unlimited)"
        )));
    }
    for (field, score) in [
        ("deny_risk_score", rules.deny_risk_score),
        ("flag_risk_score", rules.flag_risk_score),
    ] {
        if let Some(score) = score
            && !(1..=MAX_RISK_SCORE).contains(&score)
        {
            return Err(ServiceError::invalid(format!(
                "rules.{field} is {score}; it must be between 1 and {MAX_RISK_SCORE} (leave it unset for never)"
            )));
        }
    }
    if let (Some(deny), Some(flag)) = (rules.deny_risk_score, rules.flag_risk_score)
        && flag >= deny
    {
        return Err(ServiceError::invalid(format!(
            "rules.flag_risk_score ({flag}) must be lower than rules.deny_risk_score ({deny}): starts at or above the deny score are refused, never flagged"
        )));
    }
    Ok(())
}

/// "10m", "1h 30m", "45s", "250ms": for messages.
pub fn describe(duration: Duration) -> String {
    let total = duration.as_secs();
    if total == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let (days, hours, minutes, seconds) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
        .into_iter()
        .filter(|(value, _)| *value > 0)
        .map(|(value, unit)| format!("{value}{unit}"))
        .collect();
    parts.join(" ")
}

/// A rule's value in force, and the policy it comes from (`None`: the built-in default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Option<String>,
}

/// The rules in force for one session, each with its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveRules {
    /// `None`: no warning.
    pub idle_warning_after: Sourced<Option<Duration>>,
    /// `None`: no idle timeout.
    pub idle_timeout: Sourced<Option<Duration>>,
    /// `None`: no maximum.
    pub max_session_duration: Sourced<Option<Duration>>,
    /// `None`: unlimited.
    pub max_concurrent_sessions: Sourced<Option<u32>>,
    pub concurrency_action: Sourced<ConcurrencyAction>,
    /// `None`: never refuse for risk.
    pub deny_risk_score: Sourced<Option<u32>>,
    /// `None`: never flag.
    pub flag_risk_score: Sourced<Option<u32>>,
    /// Every policy that applies, most specific first (whether or not it supplied a rule).
    pub applicable: Vec<String>,
}

/// What to do about a session that has been idle for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleVerdict {
    /// Nothing (yet).
    Fine,
    /// Warn the user: the session ends after `timeout` of idleness.
    Warn { timeout: Duration },
    /// End the session.
    End,
}

impl EffectiveRules {
    /// The policies that supplied at least one rule, most specific first.
    pub fn contributing(&self) -> Vec<String> {
        let sources = [
            &self.idle_warning_after.source,
            &self.idle_timeout.source,
            &self.max_session_duration.source,
            &self.max_concurrent_sessions.source,
            &self.concurrency_action.source,
            &self.deny_risk_score.source,
            &self.flag_risk_score.source,
        ];
        self.applicable
            .iter()
            .filter(|id| sources.iter().any(|source| source.as_deref() == Some(id.as_str())))
            .cloned()
            .collect()
    }

    /// The warning in force: set, with an idle timeout in force after it.
    pub fn idle_warning(&self) -> Option<Duration> {
        match (self.idle_warning_after.value, self.idle_timeout.value) {
            (Some(warning), Some(timeout)) if warning < timeout => Some(warning),
            _ => None,
        }
    }

    /// The concurrency limit in force, if any.
    pub fn concurrency_limit(&self) -> Option<ConcurrencyLimit> {
        self.max_concurrent_sessions.value.map(|max| ConcurrencyLimit {
            max,
            action: self.concurrency_action.value,
        })
    }

    /// What to do about a session idle for `idle`.
    pub fn idle_verdict(&self, idle: Duration) -> IdleVerdict {
        let Some(timeout) = self.idle_timeout.value else {
            return IdleVerdict::Fine;
        };
        if idle >= timeout {
            return IdleVerdict::End;
        }
        match self.idle_warning() {
            Some(warning) if idle >= warning => IdleVerdict::Warn { timeout },
            _ => IdleVerdict::Fine,
        }
    }

    /// The most specific applicable policy (for verdicts no single rule decided).
    pub fn most_specific(&self) -> Option<&str> {
        self.applicable.first().map(String::as_str)
    }
}

/// Merges policies given most specific first: each rule from the first that sets it, then the
/// defaults; zero durations and limits become "off".
pub fn merge(ordered: &[&PolicyRecord]) -> EffectiveRules {
    fn pick<T>(ordered: &[&PolicyRecord], get: impl Fn(&Rules) -> Option<T>) -> Option<(T, String)> {
        ordered
            .iter()
            .find_map(|policy| get(&policy.rules).map(|value| (value, policy.id.clone())))
    }
    let duration = |get: fn(&Rules) -> Option<Duration>, default: Option<Duration>| match pick(ordered, get) {
        Some((value, source)) => Sourced {
            value: (!value.is_zero()).then_some(value),
            source: Some(source),
        },
        None => Sourced {
            value: default,
            source: None,
        },
    };
    let optional = |get: fn(&Rules) -> Option<u32>, zero_is_off: bool| match pick(ordered, get) {
        Some((value, source)) => Sourced {
            value: (!(zero_is_off && value == 0)).then_some(value),
            source: Some(source),
        },
        None => Sourced {
            value: None,
            source: None,
        },
    };
    EffectiveRules {
        idle_warning_after: duration(|rules| rules.idle_warning_after, Some(DEFAULT_IDLE_WARNING_AFTER)),
        idle_timeout: duration(|rules| rules.idle_timeout, Some(DEFAULT_IDLE_TIMEOUT)),
        max_session_duration: duration(|rules| rules.max_session_duration, None),
        max_concurrent_sessions: optional(|rules| rules.max_concurrent_sessions, true),
        concurrency_action: match pick(ordered, |rules| rules.concurrency_action) {
            Some((value, source)) => Sourced {
                value,
                source: Some(source),
            },
            None => Sourced {
                value: ConcurrencyAction::DenyNew,
                source: None,
            },
        },
        deny_risk_score: optional(|rules| rules.deny_risk_score, false),
        flag_risk_score: optional(|rules| rules.flag_risk_score, false),
        applicable: ordered.iter().map(|policy| policy.id.clone()).collect(),
    }
}

/// A set of policies indexed by scope, to find what applies to many sessions quickly (the
/// sweeper loads all policies once per sweep; admission loads only the ones for one session).
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    global: Option<PolicyRecord>,
    users: HashMap<String, PolicyRecord>,
    resources: HashMap<String, PolicyRecord>,
    /// Ordered by name: the documented order among a user's groups.
    groups: BTreeMap<String, PolicyRecord>,
}

impl PolicySet {
    pub fn new(policies: impl IntoIterator<Item = PolicyRecord>) -> Self {
        let mut set = Self::default();
        for policy in policies {
            match &policy.scope {
                Scope::Global => set.global = Some(policy),
                Scope::User(name) => {
                    set.users.insert(name.clone(), policy);
                }
                Scope::Resource(name) => {
                    set.resources.insert(name.clone(), policy);
                }
                Scope::Group(name) => {
                    set.groups.insert(name.clone(), policy);
                }
            }
        }
        set
    }

    /// The policies that apply to `subject`, most specific first.
    pub fn applicable(&self, subject: Subject<'_>) -> Vec<&PolicyRecord> {
        let mut ordered = Vec::with_capacity(4);
        ordered.extend(self.users.get(subject.user));
        ordered.extend(self.resources.get(subject.resource));
        let mut groups: Vec<&String> = subject.groups.iter().collect();
        groups.sort();
        groups.dedup();
        ordered.extend(groups.into_iter().filter_map(|group| self.groups.get(group)));
        ordered.extend(self.global.as_ref());
        ordered
    }

    /// The rules in force for `subject`.
    pub fn effective(&self, subject: Subject<'_>) -> EffectiveRules {
        merge(&self.applicable(subject))
    }

    /// Every policy: the global one's rules, or the defaults where it sets none, are what a session
    /// gets when nothing more specific applies.
    fn global_rules(&self) -> EffectiveRules {
        merge(&self.global.iter().collect::<Vec<_>>())
    }

    /// The shortest idleness after which any session can be warned or ended: no session idle for
    /// less needs looking at. `None` when no idle rule is in force anywhere.
    pub fn earliest_idle_action(&self) -> Option<Duration> {
        let global = self.global_rules();
        self.all()
            .flat_map(|policy| [policy.rules.idle_warning_after, policy.rules.idle_timeout])
            .chain([global.idle_warning_after.value, global.idle_timeout.value])
            .flatten()
            .filter(|value| !value.is_zero())
            .min()
    }

    /// The shortest maximum duration in force anywhere: no younger session needs looking at.
    pub fn shortest_max_duration(&self) -> Option<Duration> {
        let global = self.global_rules();
        self.all()
            .map(|policy| policy.rules.max_session_duration)
            .chain([global.max_session_duration.value])
            .flatten()
            .filter(|value| !value.is_zero())
            .min()
    }

    fn all(&self) -> impl Iterator<Item = &PolicyRecord> {
        self.global
            .iter()
            .chain(self.users.values())
            .chain(self.resources.values())
            .chain(self.groups.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn policy(id: &str, scope: Scope, rules: Rules) -> PolicyRecord {
        PolicyRecord {
            id: id.to_owned(),
            scope,
            rules,
            description: String::new(),
            updated_by: "test".to_owned(),
            updated_at: 0,
        }
    }

    fn subject<'a>(user: &'a str, groups: &'a [String], resource: &'a str) -> Subject<'a> {
        Subject { user, groups, resource }
    }

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn without_policies_the_defaults_apply() {
        let rules = PolicySet::default().effective(subject("alice", &[], "db"));
        assert_eq!(rules.idle_warning_after.value, Some(10 * MIN));
        assert_eq!(rules.idle_timeout.value, Some(30 * MIN));
        assert_eq!(rules.max_session_duration.value, None);
        assert_eq!(rules.concurrency_limit(), None);
        assert_eq!(rules.concurrency_action.value, ConcurrencyAction::DenyNew);
        assert_eq!((rules.deny_risk_score.value, rules.flag_risk_score.value), (None, None));
        assert!(rules.applicable.is_empty() && rules.contributing().is_empty());
        assert_eq!(rules.idle_timeout.source, None);
    }

    #[test]
    fn the_most_specific_policy_wins_field_by_field() {
        let set = PolicySet::new([
            policy(
                "global",
                Scope::Global,
                Rules {
                    idle_timeout: Some(30 * MIN),
                    max_session_duration: Some(480 * MIN),
                    deny_risk_score: Some(90),
                    ..Rules::default()
                },
            ),
            policy(
                "group",
                Scope::Group("eng".into()),
                Rules {
                    idle_timeout: Some(60 * MIN),
                    max_concurrent_sessions: Some(5),
                    ..Rules::default()
                },
            ),
            policy(
                "resource",
                Scope::Resource("prod-db".into()),
                Rules {
                    idle_timeout: Some(15 * MIN),
                    max_concurrent_sessions: Some(2),
                    ..Rules::default()
                },
            ),
            policy(
                "user",
                Scope::User("alice".into()),
                Rules {
                    idle_timeout: Some(5 * MIN),
                    idle_warning_after: Some(4 * MIN),
                    ..Rules::default()
                },
            ),
        ]);
        let eng = groups(&["eng"]);

        let alice = set.effective(subject("alice", &eng, "prod-db"));
        assert_eq!(alice.idle_timeout.value, Some(5 * MIN));
        assert_eq!(alice.idle_timeout.source.as_deref(), Some("user"));
        assert_eq!(alice.idle_warning_after.value, Some(4 * MIN));
        assert_eq!(alice.max_concurrent_sessions.value, Some(2), "resource beats group");
        assert_eq!(alice.max_concurrent_sessions.source.as_deref(), Some("resource"));
        assert_eq!(
            alice.max_session_duration.value,
            Some(480 * MIN),
            "inherited from global"
        );
        assert_eq!(alice.deny_risk_score.source.as_deref(), Some("global"));
        assert_eq!(alice.applicable, vec!["user", "resource", "group", "global"]);
        assert_eq!(alice.contributing(), vec!["user", "resource", "global"]);

        let bob = set.effective(subject("bob", &eng, "wiki"));
        assert_eq!(bob.idle_timeout.value, Some(60 * MIN), "group beats global");
        assert_eq!(bob.idle_warning_after.value, Some(10 * MIN), "the default");
        assert_eq!(bob.idle_warning_after.source, None);
        assert_eq!(bob.contributing(), vec!["group", "global"]);

        let carol = set.effective(subject("carol", &[], "wiki"));
        assert_eq!(carol.idle_timeout.value, Some(30 * MIN));
        assert_eq!(carol.applicable, vec!["global"]);
    }

    #[test]
    fn several_groups_are_taken_in_name_order() {
        let set = PolicySet::new([
            policy(
                "ops",
                Scope::Group("ops".into()),
                Rules {
                    idle_timeout: Some(20 * MIN),
                    max_concurrent_sessions: Some(4),
                    ..Rules::default()
                },
            ),
            policy(
                "dev",
                Scope::Group("dev".into()),
                Rules {
                    idle_timeout: Some(40 * MIN),
                    ..Rules::default()
                },
            ),
        ]);
        // Given in any order, with duplicates and groups without policies.
        let member_of = groups(&["zzz", "ops", "dev", "ops"]);
        let rules = set.effective(subject("dana", &member_of, "db"));
        assert_eq!(rules.idle_timeout.value, Some(40 * MIN), "dev < ops by name");
        assert_eq!(rules.max_concurrent_sessions.value, Some(4), "only ops sets it");
        assert_eq!(rules.applicable, vec!["dev", "ops"]);
    }

    #[test]
    fn zero_turns_a_rule_off_and_overrides_less_specific_ones() {
        let set = PolicySet::new([
            policy(
                "global",
                Scope::Global,
                Rules {
                    max_session_duration: Some(60 * MIN),
                    max_concurrent_sessions: Some(3),
                    ..Rules::default()
                },
            ),
            policy(
                "robot",
                Scope::User("backup-bot".into()),
                Rules {
                    idle_warning_after: Some(Duration::ZERO),
                    idle_timeout: Some(Duration::ZERO),
                    max_session_duration: Some(Duration::ZERO),
                    max_concurrent_sessions: Some(0),
                    ..Rules::default()
                },
            ),
        ]);
        let robot = set.effective(subject("backup-bot", &[], "db"));
        assert_eq!(robot.idle_timeout.value, None);
        assert_eq!(robot.idle_verdict(Duration::from_secs(86_400)), IdleVerdict::Fine);
        assert_eq!(robot.max_session_duration.value, None);
        assert_eq!(robot.concurrency_limit(), None);
        assert_eq!(robot.max_concurrent_sessions.source.as_deref(), Some("robot"));

        let human = set.effective(subject("eve", &[], "db"));
        assert_eq!(
            human.concurrency_limit(),
            Some(ConcurrencyLimit {
                max: 3,
                action: ConcurrencyAction::DenyNew
            })
        );
    }

    #[test]
    fn idle_verdicts_warn_once_the_warning_is_due_and_end_at_the_timeout() {
        let rules = PolicySet::default().effective(subject("a", &[], "r"));
        assert_eq!(rules.idle_verdict(9 * MIN), IdleVerdict::Fine);
        assert_eq!(rules.idle_verdict(10 * MIN), IdleVerdict::Warn { timeout: 30 * MIN });
        assert_eq!(rules.idle_verdict(30 * MIN), IdleVerdict::End);

        // A warning combined from two policies to land after the timeout is not sent.
        let set = PolicySet::new([
            policy(
                "g",
                Scope::Global,
                Rules {
                    idle_timeout: Some(5 * MIN),
                    ..Rules::default()
                },
            ),
            policy(
                "u",
                Scope::User("a".into()),
                Rules {
                    idle_warning_after: Some(8 * MIN),
                    ..Rules::default()
                },
            ),
        ]);
        let rules = set.effective(subject("a", &[], "r"));
        assert_eq!(rules.idle_warning(), None);
        assert_eq!(rules.idle_verdict(6 * MIN), IdleVerdict::End);
        assert_eq!(rules.idle_verdict(4 * MIN), IdleVerdict::Fine);
    }

    #[test]
    fn sweep_bounds_cover_every_policy_and_the_defaults() {
        assert_eq!(PolicySet::default().earliest_idle_action(), Some(10 * MIN));
        assert_eq!(PolicySet::default().shortest_max_duration(), None);
        let set = PolicySet::new([
            policy(
                "g",
                Scope::Global,
                Rules {
                    idle_warning_after: Some(Duration::ZERO),
                    idle_timeout: Some(45 * MIN),
                    ..Rules::default()
                },
            ),
            policy(
                "u",
                Scope::User("a".into()),
                Rules {
                    idle_timeout: Some(3 * MIN),
                    max_session_duration: Some(120 * MIN),
                    ..Rules::default()
                },
            ),
            policy(
                "r",
                Scope::Resource("db".into()),
                Rules {
                    max_session_duration: Some(Duration::ZERO),
                    ..Rules::default()
                },
            ),
        ]);
        assert_eq!(set.earliest_idle_action(), Some(3 * MIN));
        assert_eq!(set.shortest_max_duration(), Some(120 * MIN));
    }

    #[test]
    fn nonsense_is_refused_with_the_reason() {
        let cases = [
            (
                Rules {
                    idle_warning_after: Some(40 * MIN),
                    idle_timeout: Some(30 * MIN),
                    ..Rules::default()
                },
                "must be shorter than rules.idle_timeout",
            ),
            (
                Rules {
                    idle_warning_after: Some(30 * MIN),
                    idle_timeout: Some(30 * MIN),
                    ..Rules::default()
                },
                "must be shorter",
            ),
            (
                Rules {
                    idle_warning_after: Some(10 * MIN),
                    idle_timeout: Some(Duration::ZERO),
                    ..Rules::default()
                },
                "no disconnection to warn about",
            ),
            (
                Rules {
                    max_session_duration: Some(Duration::from_secs(400 * 86_400)),
                    ..Rules::default()
                },
                "at most 366 days",
            ),
            (
                Rules {
                    idle_timeout: Some(Duration::from_millis(500)),
                    ..Rules::default()
                },
                "at least 1 second",
            ),
            (
                Rules {
                    max_concurrent_sessions: Some(20_000),
                    ..Rules::default()
                },
                "at most 10000",
            ),
            (
                Rules {
                    deny_risk_score: Some(0),
                    ..Rules::default()
                },
                "between 1 and 100",
            ),
            (
                Rules {
                    flag_risk_score: Some(101),
                    ..Rules::default()
                },
                "between 1 and 100",
            ),
            (
                Rules {
                    deny_risk_score: Some(70),
                    flag_risk_score: Some(80),
                    ..Rules::default()
                },
                "must be lower than rules.deny_risk_score",
            ),
        ];
        for (rules, expected) in cases {
            match validate(&rules) {
                Err(ServiceError::InvalidArgument(message)) => {
                    assert!(message.contains(expected), "{message:?} should say {expected:?}")
                }
                other => panic!("{rules:?} should be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn sensible_rules_pass() {
        let rules = Rules {
            idle_warning_after: Some(10 * MIN),
            idle_timeout: Some(30 * MIN),
            max_session_duration: Some(8 * 60 * MIN),
            max_concurrent_sessions: Some(3),
            concurrency_action: Some(ConcurrencyAction::EndOldest),
            deny_risk_score: Some(90),
            flag_risk_score: Some(60),
        };
        validate(&rules).unwrap();
        validate(&Rules::default()).unwrap();
        // Off is fine, including a warning turned off on its own.
        validate(&Rules {
            idle_warning_after: Some(Duration::ZERO),
            idle_timeout: Some(Duration::ZERO),
            max_concurrent_sessions: Some(0),
            ..Rules::default()
        })
        .unwrap();
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(describe(10 * MIN), "10m");
        assert_eq!(describe(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(describe(Duration::from_millis(250)), "250ms");
        assert_eq!(describe(Duration::from_secs(86_400 + 1)), "1d 1s");
    }
}
