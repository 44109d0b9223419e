//! The `policies` table: one row per scope.

use std::time::Duration;

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{ConcurrencyAction, PolicyRecord, Rules, Scope, ScopeKind};

const TABLE: &str = "policies";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `global`, `group`, `resource` or `user`.
    pub scope_kind: String,
    /// The group, resource or user name; empty for the global policy.
    pub scope_name: String,
    pub idle_warning_after_ms: Option<i64>,
    pub idle_timeout_ms: Option<i64>,
    pub max_session_duration_ms: Option<i64>,
    pub max_concurrent_sessions: Option<i64>,
    /// A `ConcurrencyAction` proto number (1 DENY_NEW, 2 END_OLDEST).
    pub concurrency_action: Option<i16>,
    pub deny_risk_score: Option<i16>,
    pub flag_risk_score: Option<i16>,
    pub description: String,
    pub updated_by: String,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Column values of the proto numbers, frozen: rows outlive the code that wrote them.
const ACTION_DENY_NEW: i16 = 1;
const ACTION_END_OLDEST: i16 = 2;

fn millis(duration: Option<Duration>) -> Option<i64> {
    // Rules are validated to at most a year, so the fallback is unreachable.
    duration.map(|duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

fn duration(column: &str, millis: Option<i64>) -> ServiceResult<Option<Duration>> {
    millis
        .map(|millis| {
            u64::try_from(millis)
                .map(Duration::from_millis)
                .map_err(|_| ServiceError::internal(format!("{TABLE}.{column} holds a negative duration: {millis}")))
        })
        .transpose()
}

fn small(column: &str, value: Option<i64>) -> ServiceResult<Option<u32>> {
    value
        .map(|value| {
            u32::try_from(value)
                .map_err(|_| ServiceError::internal(format!("{TABLE}.{column} holds {value}, out of range")))
        })
        .transpose()
}

/// The rule columns of `rules`, set on `model`.
pub fn set_rules(model: &mut ActiveModel, rules: &Rules) {
    model.idle_warning_after_ms = Set(millis(rules.idle_warning_after));
    model.idle_timeout_ms = Set(millis(rules.idle_timeout));
    model.max_session_duration_ms = Set(millis(rules.max_session_duration));
    model.max_concurrent_sessions = Set(rules.max_concurrent_sessions.map(i64::from));
    model.concurrency_action = Set(rules.concurrency_action.map(|action| match action {
        ConcurrencyAction::DenyNew => ACTION_DENY_NEW,
        ConcurrencyAction::EndOldest => ACTION_END_OLDEST,
    }));
    // Scores are validated to 1..=100.
    model.deny_risk_score = Set(rules.deny_risk_score.map(|score| score.min(100) as i16));
    model.flag_risk_score = Set(rules.flag_risk_score.map(|score| score.min(100) as i16));
}

/// A row to insert for `policy`.
pub fn active_model(policy: &PolicyRecord) -> ActiveModel {
    let mut model = ActiveModel {
        id: Set(policy.id.clone()),
        scope_kind: Set(policy.scope.kind().as_str().to_owned()),
        scope_name: Set(policy.scope.name().to_owned()),
        description: Set(policy.description.clone()),
        updated_by: Set(policy.updated_by.clone()),
        updated_at: Set(policy.updated_at),
        ..Default::default()
    };
    set_rules(&mut model, &policy.rules);
    model
}

impl Model {
    /// The domain record; fails only if the row holds values no version of this code writes.
    pub fn into_record(self) -> ServiceResult<PolicyRecord> {
        let kind = ScopeKind::parse(&self.scope_kind).ok_or_else(|| {
            ServiceError::internal(format!("{TABLE}.scope_kind holds unknown value {:?}", self.scope_kind))
        })?;
        let concurrency_action = match self.concurrency_action {
            None => None,
            Some(ACTION_DENY_NEW) => Some(ConcurrencyAction::DenyNew),
            Some(ACTION_END_OLDEST) => Some(ConcurrencyAction::EndOldest),
            Some(other) => {
                return Err(ServiceError::internal(format!(
                    "{TABLE}.concurrency_action holds unknown value {other}"
                )));
            }
        };
        let rules = Rules {
            idle_warning_after: duration("idle_warning_after_ms", self.idle_warning_after_ms)?,
            idle_timeout: duration("idle_timeout_ms", self.idle_timeout_ms)?,
            max_session_duration: duration("max_session_duration_ms", self.max_session_duration_ms)?,
            max_concurrent_sessions: small("max_concurrent_sessions", self.max_concurrent_sessions)?,
            concurrency_action,
            deny_risk_score: small("deny_risk_score", self.deny_risk_score.map(i64::from))?,
            flag_risk_score: small("flag_risk_score", self.flag_risk_score.map(i64::from))?,
        };
        Ok(PolicyRecord {
            id: self.id,
            scope: Scope::from_parts(kind, self.scope_name),
            rules,
            description: self.description,
            updated_by: self.updated_by,
            updated_at: self.updated_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ActiveValue;

    fn value<T: Into<sea_orm::Value>>(active: ActiveValue<T>) -> T {
        match active {
            ActiveValue::Set(value) | ActiveValue::Unchanged(value) => value,
            ActiveValue::NotSet => panic!("not set"),
        }
    }

    #[test]
    fn every_rule_survives_its_row() {
        let policy = PolicyRecord {
            id: "p".into(),
            scope: Scope::Group("eng".into()),
            rules: Rules {
                idle_warning_after: Some(Duration::from_secs(300)),
                idle_timeout: Some(Duration::ZERO),
                max_session_duration: Some(Duration::from_millis(3_600_500)),
                max_concurrent_sessions: Some(3),
                concurrency_action: Some(ConcurrencyAction::EndOldest),
                deny_risk_score: Some(90),
                flag_risk_score: Some(50),
            },
            description: "engineers".into(),
            updated_by: "admin".into(),
            updated_at: 42,
        };
        let model = active_model(&policy);
        let row = Model {
            id: value(model.id),
            scope_kind: value(model.scope_kind),
            scope_name: value(model.scope_name),
            idle_warning_after_ms: value(model.idle_warning_after_ms),
            idle_timeout_ms: value(model.idle_timeout_ms),
            max_session_duration_ms: value(model.max_session_duration_ms),
            max_concurrent_sessions: value(model.max_concurrent_sessions),
            concurrency_action: value(model.concurrency_action),
            deny_risk_score: value(model.deny_risk_score),
            flag_risk_score: value(model.flag_risk_score),
            description: value(model.description),
            updated_by: value(model.updated_by),
            updated_at: value(model.updated_at),
        };
        assert_eq!(row.scope_kind, "group");
        assert_eq!(row.concurrency_action, Some(2));
        assert_eq!(row.into_record().unwrap(), policy);
    }

    #[test]
    fn rows_no_code_writes_are_internal_errors() {
        let row = Model {
            id: "p".into(),
            scope_kind: "planet".into(),
            scope_name: String::new(),
            idle_warning_after_ms: None,
            idle_timeout_ms: None,
            max_session_duration_ms: None,
            max_concurrent_sessions: None,
            concurrency_action: None,
            deny_risk_score: None,
            flag_risk_score: None,
            description: String::new(),
            updated_by: String::new(),
            updated_at: 0,
        };
        assert!(matches!(row.clone().into_record(), Err(ServiceError::Internal(_))));
        let row = Model {
            scope_kind: "global".into(),
            idle_timeout_ms: Some(-5),
            ..row
        };
        assert!(matches!(row.into_record(), Err(ServiceError::Internal(_))));
    }
}
