//! Protobuf messages ↔ domain values, validating on the way in.

use std::time::Duration;

use vigil_core::validate;
use vigil_proto::timestamp_from_millis;
use vigil_proto::v1 as pb;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{ConcurrencyAction, PolicyRecord, Rules, Scope};
use crate::rules::{EffectiveRules, MAX_RULE_DURATION};

/// A duration a caller sent: not negative, well-formed.
fn duration_from_proto(field: &str, value: Option<&prost_types::Duration>) -> ServiceResult<Option<Duration>> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value.seconds < 0 || value.nanos < 0 {
        return Err(ServiceError::invalid(format!("rules.{field} must not be negative")));
    }
    if value.nanos >= 1_000_000_000 {
        return Err(ServiceError::invalid(format!(
            "rules.{field} has {} nanoseconds; at most 999,999,999 are allowed",
            value.nanos
        )));
    }
    // Millisecond precision is what is stored: anything finer would be dropped silently, and a
    // positive duration under 1 ms would be stored as 0, which turns the rule off.
    if value.nanos % 1_000_000 != 0 {
        return Err(ServiceError::invalid(format!(
            "rules.{field} must be a whole number of milliseconds (it has {} nanoseconds)",
            value.nanos
        )));
    }
    let seconds = u64::try_from(value.seconds).unwrap_or(0);
    if seconds > MAX_RULE_DURATION.as_secs() {
        return Err(ServiceError::invalid(format!(
            "rules.{field} is {seconds} seconds; at most 366 days is allowed"
        )));
    }
    let millis = seconds * 1000 + u64::try_from(value.nanos / 1_000_000).unwrap_or(0);
    Ok(Some(Duration::from_millis(millis)))
}

fn duration_to_proto(value: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(value.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(value.subsec_nanos()).unwrap_or(0),
    }
}

fn action_to_proto(action: ConcurrencyAction) -> pb::ConcurrencyAction {
    match action {
        ConcurrencyAction::DenyNew => pb::ConcurrencyAction::DenyNew,
        ConcurrencyAction::EndOldest => pb::ConcurrencyAction::EndOldest,
    }
}

/// The rules a caller sent (not yet checked for sense: see [`crate::rules::validate`]).
pub fn rules_from_proto(rules: Option<&pb::PolicyRules>) -> ServiceResult<Rules> {
    let Some(rules) = rules else {
        return Ok(Rules::default());
    };
    let concurrency_action = match pb::ConcurrencyAction::try_from(rules.concurrency_action) {
        Ok(pb::ConcurrencyAction::Unspecified) => None,
        Ok(pb::ConcurrencyAction::DenyNew) => Some(ConcurrencyAction::DenyNew),
        Ok(pb::ConcurrencyAction::EndOldest) => Some(ConcurrencyAction::EndOldest),
        Err(_) => {
            return Err(ServiceError::invalid(format!(
                "rules.concurrency_action {} is not DENY_NEW or END_OLDEST",
                rules.concurrency_action
            )));
        }
    };
    Ok(Rules {
        idle_warning_after: duration_from_proto("idle_warning_after", rules.idle_warning_after.as_ref())?,
        idle_timeout: duration_from_proto("idle_timeout", rules.idle_timeout.as_ref())?,
        max_session_duration: duration_from_proto("max_session_duration", rules.max_session_duration.as_ref())?,
        max_concurrent_sessions: rules.max_concurrent_sessions,
        concurrency_action,
        deny_risk_score: rules.deny_risk_score,
        flag_risk_score: rules.flag_risk_score,
    })
}

pub fn rules_to_proto(rules: &Rules) -> pb::PolicyRules {
    pb::PolicyRules {
        idle_warning_after: rules.idle_warning_after.map(duration_to_proto),
        idle_timeout: rules.idle_timeout.map(duration_to_proto),
        max_session_duration: rules.max_session_duration.map(duration_to_proto),
        max_concurrent_sessions: rules.max_concurrent_sessions,
        concurrency_action: rules
            .concurrency_action
            .map_or(pb::ConcurrencyAction::Unspecified, action_to_proto) as i32,
        deny_risk_score: rules.deny_risk_score,
        flag_risk_score: rules.flag_risk_score,
    }
}

/// The rules in force, as `GetEffectivePolicy` shows them: a rule that is off is unset; the
/// concurrency action only shows with a limit.
pub fn effective_to_proto(rules: &EffectiveRules) -> pb::EffectivePolicy {
    let limit = rules.concurrency_limit();
    pb::EffectivePolicy {
        rules: Some(pb::PolicyRules {
            idle_warning_after: rules.idle_warning().map(duration_to_proto),
            idle_timeout: rules.idle_timeout.value.map(duration_to_proto),
            max_session_duration: rules.max_session_duration.value.map(duration_to_proto),
            max_concurrent_sessions: limit.map(|limit| limit.max),
            concurrency_action: limit.map_or(pb::ConcurrencyAction::Unspecified, |limit| {
                action_to_proto(limit.action)
            }) as i32,
            deny_risk_score: rules.deny_risk_score.value,
            flag_risk_score: rules.flag_risk_score.value,
        }),
        policy_ids: rules.contributing(),
    }
}

/// A scope a caller sent.
pub fn scope_from_proto(scope: Option<&pb::PolicyScope>) -> ServiceResult<Scope> {
    use pb::policy_scope::Scope as Kind;
    let scope = scope
        .and_then(|scope| scope.scope.as_ref())
        .ok_or_else(|| ServiceError::invalid("scope is required: global, or a group, user or resource_name"))?;
    Ok(match scope {
        Kind::Global(_) => Scope::Global,
        Kind::Group(name) => Scope::Group(validate::required_name("scope.group", name)?),
        Kind::User(name) => Scope::User(validate::required_name("scope.user", name)?),
        Kind::ResourceName(name) => Scope::Resource(validate::required_name("scope.resource_name", name)?),
    })
}

pub fn scope_to_proto(scope: &Scope) -> pb::PolicyScope {
    use pb::policy_scope::Scope as Kind;
    pb::PolicyScope {
        scope: Some(match scope {
            Scope::Global => Kind::Global(pb::GlobalScope {}),
            Scope::Group(name) => Kind::Group(name.clone()),
            Scope::User(name) => Kind::User(name.clone()),
            Scope::Resource(name) => Kind::ResourceName(name.clone()),
        }),
    }
}

pub fn policy_to_proto(policy: &PolicyRecord) -> pb::Policy {
    pb::Policy {
        id: policy.id.clone(),
        scope: Some(scope_to_proto(&policy.scope)),
        rules: Some(rules_to_proto(&policy.rules)),
        description: policy.description.clone(),
        updated_by: policy.updated_by.clone(),
        updated_at: Some(timestamp_from_millis(policy.updated_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto_duration(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
        Some(prost_types::Duration { seconds, nanos })
    }

    #[test]
    fn rules_round_trip() {
        let rules = Rules {
            idle_warning_after: Some(Duration::from_secs(600)),
            idle_timeout: Some(Duration::from_millis(1_800_250)),
            max_session_duration: Some(Duration::ZERO),
            max_concurrent_sessions: Some(3),
            concurrency_action: Some(ConcurrencyAction::EndOldest),
            deny_risk_score: Some(90),
            flag_risk_score: None,
        };
        assert_eq!(rules_from_proto(Some(&rules_to_proto(&rules))).unwrap(), rules);
        assert_eq!(rules_from_proto(None).unwrap(), Rules::default());
    }

    #[test]
    fn negative_and_malformed_durations_are_refused() {
        for (value, expected) in [
            (proto_duration(-1, 0), "must not be negative"),
            (proto_duration(0, -5), "must not be negative"),
            (proto_duration(1, 1_000_000_000), "nanoseconds"),
            (proto_duration(400 * 86_400, 0), "366 days"),
            (proto_duration(0, 1), "whole number of milliseconds"),
            (proto_duration(0, 999_999), "whole number of milliseconds"),
            (proto_duration(5, 1_500_000), "whole number of milliseconds"),
        ] {
            let rules = pb::PolicyRules {
                idle_timeout: value,
                ..Default::default()
            };
            match rules_from_proto(Some(&rules)) {
                Err(ServiceError::InvalidArgument(message)) => {
                    assert!(message.starts_with("rules.idle_timeout"), "{message}");
                    assert!(message.contains(expected), "{message}");
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        let rules = pb::PolicyRules {
            concurrency_action: 7,
            ..Default::default()
        };
        assert!(rules_from_proto(Some(&rules)).is_err());
    }

    #[test]
    fn scopes_are_required_and_named() {
        assert!(matches!(scope_from_proto(None), Err(ServiceError::InvalidArgument(_))));
        let empty_user = pb::PolicyScope {
            scope: Some(pb::policy_scope::Scope::User(String::new())),
        };
        assert!(matches!(
            scope_from_proto(Some(&empty_user)),
            Err(ServiceError::InvalidArgument(message)) if message.contains("scope.user")
        ));
        for scope in [
            Scope::Global,
            Scope::Group("eng".into()),
            Scope::User("alice".into()),
            Scope::Resource("db".into()),
        ] {
            assert_eq!(scope_from_proto(Some(&scope_to_proto(&scope))).unwrap(), scope);
        }
    }
}
