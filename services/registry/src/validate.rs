//! Turning what callers of the registry send into domain values, refusing what does not make
//! sense. The checks every service shares are `vigil_core::validate`'s (re-exported here); the
//! registry's own are its filters, sort orders and page sizes.

use vigil_proto::v1 as pb;
use vigil_runtime::{ServiceError, ServiceResult};

use crate::domain::{SessionFilter, SessionStatus, SortKey};
pub use vigil_core::validate::*;

/// A list/watch/stats filter.
pub fn filter(filter: Option<&pb::SessionFilter>) -> ServiceResult<SessionFilter> {
    let Some(filter) = filter else {
        return Ok(SessionFilter::default());
    };
    let mut statuses = Vec::with_capacity(filter.statuses.len());
    for &value in &filter.statuses {
        match SessionStatus::try_from(value) {
            Ok(SessionStatus::Unspecified) => {
                return Err(ServiceError::invalid(
                    "filter.statuses must not contain SESSION_STATUS_UNSPECIFIED",
                ));
            }
            Ok(status) if !statuses.contains(&status) => statuses.push(status),
            Ok(_) => {}
            Err(_) => {
                return Err(ServiceError::invalid(format!(
                    "filter.statuses: {value} is not a known session status"
                )));
            }
        }
    }
    let country_code = match filter.country_code.as_str() {
        "" => None,
        code if code.len() == 2 && code.chars().all(|c| c.is_ascii_alphabetic()) => Some(code.to_ascii_uppercase()),
        code => {
            return Err(ServiceError::invalid(format!(
                "filter.country_code {:?} is not a two-letter ISO 3166-1 code",
                truncate(code)
            )));
        }
    };
    // Refused admissions are recorded as DISCONNECTED sessions: asking for them implies that status.
    if filter.denied_only && statuses.is_empty() {
        statuses.push(SessionStatus::Disconnected);
    }
    if filter.min_risk_score > 100 {
        return Err(ServiceError::invalid(format!(
            "filter.min_risk_score {} is above 100, the highest score",
            filter.min_risk_score
        )));
    }
    Ok(SessionFilter {
        statuses,
        user: optional_name("filter.user", &filter.user)?,
        resource_name: optional_name("filter.resource_name", &filter.resource_name)?,
        resource_type: optional_resource_type("filter.resource_type", filter.resource_type)?,
        gateway_id: optional_name("filter.gateway_id", &filter.gateway_id)?,
        country_code,
        query: optional_name("filter.query", &filter.query)?.map(|query| query.to_lowercase()),
        min_risk_score: (filter.min_risk_score > 0).then_some(filter.min_risk_score),
        flagged_only: filter.flagged_only,
        client_ip: match filter.client_ip.as_str() {
            "" => None,
            ip => Some(client_ip("filter.client_ip", ip)?),
        },
        denied_only: filter.denied_only,
    })
}

/// A sort key.
pub fn order_by(value: i32) -> ServiceResult<SortKey> {
    match pb::SessionOrderBy::try_from(value) {
        Ok(pb::SessionOrderBy::Unspecified | pb::SessionOrderBy::StartedAt) => Ok(SortKey::StartedAt),
        Ok(pb::SessionOrderBy::LastActivity) => Ok(SortKey::LastActivity),
        Ok(pb::SessionOrderBy::User) => Ok(SortKey::User),
        Ok(pb::SessionOrderBy::Resource) => Ok(SortKey::Resource),
        Ok(pb::SessionOrderBy::RiskScore) => Ok(SortKey::RiskScore),
        Err(_) => Err(ServiceError::invalid(format!(
            "order_by {value} is not a known sort order"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message_of(result: ServiceResult<impl std::fmt::Debug>) -> String {
        match result {
            Err(ServiceError::InvalidArgument(message)) => message,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }
    #[test]
    fn filters_are_checked_and_normalised() {
        let request = pb::SessionFilter {
            statuses: vec![SessionStatus::Idle as i32, SessionStatus::Idle as i32],
            country_code: "de".into(),
            query: "Alice".into(),
            ..Default::default()
        };
        let filter = filter(Some(&request)).unwrap();
        assert_eq!(filter.statuses, vec![SessionStatus::Idle]);
        assert_eq!(filter.country_code.as_deref(), Some("DE"));
        assert_eq!(filter.query.as_deref(), Some("alice"));

        let bad = pb::SessionFilter {
            statuses: vec![9],
            ..Default::default()
        };
        assert!(message_of(super::filter(Some(&bad))).contains("9 is not a known session status"));
        let bad = pb::SessionFilter {
            country_code: "DEU".into(),
            ..Default::default()
        };
        assert!(message_of(super::filter(Some(&bad))).contains("not a two-letter"));
        let bad = pb::SessionFilter {
            min_risk_score: 101,
            ..Default::default()
        };
        assert!(message_of(super::filter(Some(&bad))).contains("above 100"));
    }
}
