//! Policies for scripts.

use serde_json::{Value, json};
use vigil_proto::v1::policy_scope::Scope;
use vigil_proto::v1::{ConcurrencyAction, EffectivePolicy, Policy, PolicyRules, PolicyScope};

use crate::json::{duration_seconds, timestamp};

/// One policy: its scope, its rules (unset ones `null`: inherited), note and last change.
pub fn policy(p: &Policy) -> Value {
    json!({
        "id": p.id,
        "scope": policy_scope(p.scope.as_ref()),
        "rules": rules(p.rules.as_ref()),
        "description": p.description,
        "updated_by": p.updated_by,
        "updated_at": timestamp(p.updated_at.as_ref()),
    })
}

pub fn policies(policies: &[Policy]) -> Value {
    json!({ "policies": policies.iter().map(policy).collect::<Vec<_>>() })
}

/// What `policies delete` did: the policy as it was.
pub fn policy_deleted(p: &Policy) -> Value {
    json!({ "deleted": policy(p) })
}

/// The rules in force and the policies they come from, most specific first.
pub fn effective_policy(effective: &EffectivePolicy) -> Value {
    json!({
        "rules": rules(effective.rules.as_ref()),
        "policy_ids": effective.policy_ids,
    })
}

/// Every rule, `null` when unset; no rules at all reads as every rule unset.
pub fn rules(rules: Option<&PolicyRules>) -> Value {
    let unset = PolicyRules::default();
    let r = rules.unwrap_or(&unset);
    json!({
        "idle_warning_after_seconds": duration_seconds(r.idle_warning_after.as_ref()),
        "idle_timeout_seconds": duration_seconds(r.idle_timeout.as_ref()),
        "max_session_duration_seconds": duration_seconds(r.max_session_duration.as_ref()),
        "max_concurrent_sessions": r.max_concurrent_sessions,
        "concurrency_action": concurrency_action_name(r.concurrency_action()),
        "deny_risk_score": r.deny_risk_score,
        "flag_risk_score": r.flag_risk_score,
    })
}

/// A scope as one key named after the proto field it sets: `{"global": {}}`, `{"group": "sre"}`,
/// `{"user": ...}`, `{"resource_name": ...}`; `null` when unset.
pub fn policy_scope(scope: Option<&PolicyScope>) -> Value {
    match scope.and_then(|s| s.scope.as_ref()) {
        None => Value::Null,
        Some(Scope::Global(_)) => json!({ "global": {} }),
        Some(Scope::Group(group)) => json!({ "group": group }),
        Some(Scope::User(user)) => json!({ "user": user }),
        Some(Scope::ResourceName(resource)) => json!({ "resource_name": resource }),
    }
}

pub fn concurrency_action_name(action: ConcurrencyAction) -> Option<&'static str> {
    match action {
        ConcurrencyAction::DenyNew => Some("deny_new"),
        ConcurrencyAction::EndOldest => Some("end_oldest"),
        ConcurrencyAction::Unspecified => None,
    }
}

#[cfg(test)]
mod tests {
    use vigil_proto::v1::{ConcurrencyAction, EffectivePolicy, Policy, PolicyRules, PolicyScope};

    use super::*;
    use crate::testing::ts;

    #[test]
    fn a_policy_maps_its_scope_and_rules_with_unset_ones_null() {
        let p = Policy {
            id: "0195a3c0-7e1f-7000-8000-0000000000a1".into(),
            scope: Some(PolicyScope {
                scope: Some(Scope::Group("sre".into())),
            }),
            rules: Some(PolicyRules {
                idle_timeout: Some(prost_types::Duration {
                    seconds: 1800,
                    nanos: 0,
                }),
                idle_warning_after: Some(prost_types::Duration {
                    seconds: 90,
                    nanos: 500_000_000,
                }),
                max_concurrent_sessions: Some(0),
                concurrency_action: ConcurrencyAction::EndOldest.into(),
                deny_risk_score: Some(80),
                ..PolicyRules::default()
            }),
            description: "on-call engineers".into(),
            updated_by: "admin@example.com".into(),
            updated_at: ts(1_741_076_100, 0),
        };
        let value = policy(&p);
        assert_eq!(value["scope"], json!({ "group": "sre" }));
        assert_eq!(
            value["rules"],
            json!({
                "idle_warning_after_seconds": 90.5,
                "idle_timeout_seconds": 1800,
                "max_session_duration_seconds": null,
                "max_concurrent_sessions": 0,
                "concurrency_action": "end_oldest",
                "deny_risk_score": 80,
                "flag_risk_score": null,
            })
        );
        assert_eq!(value["description"], "on-call engineers");
        assert_eq!(value["updated_by"], "admin@example.com");
        assert_eq!(value["updated_at"], "2025-03-04T08:15:00Z");

        let bare = policy(&Policy::default());
        assert_eq!(bare["scope"], Value::Null);
        assert_eq!(bare["rules"]["idle_timeout_seconds"], Value::Null);
        assert_eq!(bare["rules"]["concurrency_action"], Value::Null);
        assert_eq!(bare["updated_at"], Value::Null);

        let global = PolicyScope {
            scope: Some(Scope::Global(vigil_proto::v1::GlobalScope {})),
        };
        assert_eq!(policy_scope(Some(&global)), json!({ "global": {} }));
        assert_eq!(policies(std::slice::from_ref(&p))["policies"][0]["id"], p.id.as_str());
        assert_eq!(policy_deleted(&p)["deleted"]["id"], p.id.as_str());

        let effective = effective_policy(&EffectivePolicy {
            rules: p.rules,
            policy_ids: vec!["user-policy".into(), "global-policy".into()],
        });
        assert_eq!(effective["policy_ids"], json!(["user-policy", "global-policy"]));
        assert_eq!(effective["rules"]["deny_risk_score"], 80);
    }
}
